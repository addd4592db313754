"""Optional features of a server, detected from its metrics by the rules in conformance/features.toml."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

from . import data
from .schemas import FeatureRule
from .snapshot import Snapshot


@dataclass(frozen=True)
class FeatureStatus:
    """Whether a target's checks of one feature run, and why not."""

    run: bool
    reason: str = ""
    required: bool = False


def detect(snapshot: Snapshot) -> set[str]:
    """Features the server shows it has."""
    names = snapshot.names()
    found: set[str] = set()
    for feature, rule in data.features().feature.items():
        if rule.always:
            found.add(feature)
        elif rule.info:
            info = snapshot.info(rule.info) or {}
            if info.get(rule.label) == rule.equals:
                found.add(feature)
        elif any(name in names for name in rule.families) or any(
            name.startswith(prefix) for name in names for prefix in rule.prefixes
        ):
            found.add(feature)
    return found


def expected_by_default(feature: str) -> bool:
    rules: Mapping[str, FeatureRule] = cast("Mapping[str, FeatureRule]", data.features().feature)  # by any name
    rule = rules.get(feature)
    return rule is not None and (rule.expected or rule.always)


def status(feature: str, detected: set[str], required: tuple[str, ...], exempt: tuple[str, ...]) -> FeatureStatus:
    """Decide whether the checks of `feature` run on a target with `detected` features."""
    if feature in exempt:
        return FeatureStatus(False, f"feature {feature} exempted by --vllm-exempt-feature={feature}")
    if feature in required or expected_by_default(feature):
        # Required or expected features run even when not detected: their absence is the failure.
        return FeatureStatus(True, required=True)
    if feature in detected:
        return FeatureStatus(True)
    return FeatureStatus(
        False,
        f"feature {feature} is not enabled on this server (not detected from its metrics); pass "
        f"--vllm-require-feature={feature} to require it",
    )
