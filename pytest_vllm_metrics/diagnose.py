"""Diagnose: known causes as data (conformance/limitations.toml, conformance/diagnosis.toml)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from .catalog import conformance_data
from .versions import VersionRange


@dataclass(frozen=True)
class Limitation:
    feature: str
    device: str
    arch: tuple[str, ...]
    versions: VersionRange
    message: str
    source: str
    fix: str

    def reason(self, arch: str, version: str) -> str:
        return (f"vLLM {version} disables {self.feature.replace('_', ' ')} on {arch} CPUs: \"{self.message}\" "
                f"({self.source}); the server confirms it: vllm:cache_config_info has "
                f"enable_prefix_caching=\"False\"; fix: {self.fix}")


@dataclass(frozen=True)
class Rule:
    id: str
    when: dict[str, Any]
    message: str


@cache
def limitations() -> tuple[Limitation, ...]:
    return tuple(
        Limitation(
            feature=row["feature"], device=row["device"], arch=tuple(row["arch"]),
            versions=VersionRange(row["versions"]), message=row["message"], source=row["source"], fix=row["fix"],
        )
        for row in conformance_data("limitations.toml")["limitation"]
    )


@cache
def rules() -> tuple[Rule, ...]:
    rows = conformance_data("diagnosis.toml")["rule"]
    return tuple(Rule(row["id"], dict(row["when"]), row["message"]) for row in rows)


def known_limitation(feature: str, arch: str, version: str | None, reported_off: bool) -> Limitation | None:
    """The documented limitation explaining why `feature` is off, if the server itself reports it off."""
    if not reported_off or version is None:
        return None
    for row in limitations():
        if row.feature == feature and arch in row.arch and row.versions.contains(version):
            return row
    return None


def diagnose(facts: dict[str, Any]) -> tuple[str, str] | None:
    """(rule id, message) of the first rule whose conditions all hold, placeholders filled from facts."""
    for rule in rules():
        if all(facts.get(key) == value for key, value in rule.when.items()):
            return rule.id, rule.message.format_map(_Defaulting(facts))
    return None


class _Defaulting(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "unknown"
