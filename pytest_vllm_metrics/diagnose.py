"""Diagnose: known causes as data (conformance/limitations.toml, conformance/diagnosis.toml)."""

from __future__ import annotations

from typing import Any

from . import data
from .schemas import Limitation, Rule


def limitations() -> tuple[Limitation, ...]:
    return data.limitations().limitation


def rules() -> tuple[Rule, ...]:
    return data.diagnosis().rule


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
