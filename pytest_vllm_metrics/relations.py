"""Relations between an optional feature's counters (conformance/relations.toml), judged on the workload's delta.

Speculative decoding: accepted tokens never exceed drafted ones, and acceptance never grows with the draft
position. LoRA: the newest `vllm:lora_requests_info` series was refreshed while the workload ran.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from . import data
from .catalog import Catalog, Entry
from .evaluate import described, gate, moved_gate, restarted
from .observe import Observation, Stage
from .outcome import Outcome, Verdict
from .schemas import Relation
from .settings import Policy
from .snapshot import Delta, Series, Snapshot


def relations() -> tuple[Relation, ...]:
    return data.relations().relation


def newest(snapshot: Snapshot, name: str) -> Series | None:
    """The series of an info metric whose value (an update time) is the highest: the one readers take."""
    series = snapshot.series(name)
    return max(series, key=lambda s: s.value) if series else None


def judge(relation: Relation, catalog: Catalog, obs: Observation, policy: Policy) -> Verdict:
    entry = catalog.get(relation.entry)
    assert entry is not None, f"relations.toml names {relation.entry}, which the catalog does not have"
    gated = gate(entry, obs, policy, Stage.TRAFFIC, Stage.AFTER) or moved_gate(entry, obs)
    if gated:
        return gated
    delta = obs.delta
    assert delta is not None
    missing = [name for name in (relation.family, relation.smaller, relation.larger, relation.sums_to,
                                 relation.moved) if name and delta.after.family(name) is None]
    if missing:  # a required feature the server does not have: no relation of it can hold
        return Verdict(Outcome.FAILED, f"{described(obs)}: {', '.join(missing)} missing from /metrics after the "
                                       f"workload, so {relation.id} does not hold; {relation.why}.", entry.level)
    if relation.kind == "refreshed":
        return _refreshed(relation, entry, obs, delta)
    moved = delta.increase(relation.moved)
    if moved <= 0:
        if delta.restart_seen:
            return restarted(entry, obs, {relation.moved: moved})
        return Verdict(Outcome.INCONCLUSIVE, f"{obs.target.name}: could not judge {relation.id}: {relation.moved} "
                                             f"did not move during the workload, so nothing was drafted. The ngram "
                                             f"method drafts only when the last tokens recur earlier in the prompt or "
                                             f"output; a longer output (--vllm-max-tokens) gives it more chances.",
                       entry.level, {relation.moved: moved})
    if relation.kind == "at_most":
        return _at_most(relation, entry, obs, delta)
    return _non_increasing(relation, entry, obs, delta)


def _at_most(relation: Relation, entry: Entry, obs: Observation, delta: Delta) -> Verdict:
    small, large = delta.increase(relation.smaller), delta.increase(relation.larger)
    evidence = {relation.smaller: small, relation.larger: large, relation.moved: delta.increase(relation.moved)}
    if small <= large:
        return Verdict(Outcome.PASSED, level=entry.level, evidence=evidence)
    return Verdict(Outcome.FAILED, f"{described(obs)}: {relation.smaller} grew by {small:g} during the workload, more "
                                   f"than {relation.larger} (+{large:g}); {relation.why}.", entry.level, evidence)


def _non_increasing(relation: Relation, entry: Entry, obs: Observation, delta: Delta) -> Verdict:
    steps: dict[int, float] = {}
    for series in delta.after.series(relation.family):
        label = dict(series.labels).get(relation.by, "")
        if label.isdigit():
            steps[int(label)] = delta.increase(relation.family, {relation.by: label})
    ordered = sorted(steps.items())
    evidence: dict[str, Any] = {f"{relation.by}={k}": v for k, v in ordered}
    where = described(obs)
    if not ordered:
        return Verdict(Outcome.FAILED, f"{where}: {relation.family} has no series with a {relation.by} label after "
                                       f"the workload; per-{relation.by} panels show nothing.", entry.level, evidence)
    for (low, low_value), (high, high_value) in pairwise(ordered):
        if high_value > low_value:
            return Verdict(Outcome.FAILED, f"{where}: {relation.family} grew more at {relation.by} {high} "
                                           f"(+{high_value:g}) than at {relation.by} {low} (+{low_value:g}) during "
                                           f"the workload; {relation.why}.", entry.level, evidence)
    if relation.sums_to:
        total = delta.increase(relation.sums_to)
        evidence[relation.sums_to] = total
        summed = sum(value for _, value in ordered)
        if summed != total:
            return Verdict(Outcome.FAILED, f"{where}: {relation.family} grew by {summed:g} over all "
                                           f"{relation.by}s while {relation.sums_to} grew by {total:g}; "
                                           f"{relation.why}.", entry.level, evidence)
    return Verdict(Outcome.PASSED, level=entry.level, evidence=evidence)


def _refreshed(relation: Relation, entry: Entry, obs: Observation, delta: Delta) -> Verdict:
    before, after = newest(delta.before, relation.family), newest(delta.after, relation.family)
    evidence = {"before": dict(before.labels) | {"value": before.value} if before else None,
                "after": dict(after.labels) | {"value": after.value} if after else None}
    where = described(obs)
    if after is None:
        return Verdict(Outcome.FAILED, f"{where}: {relation.family} has no series after the workload; "
                                       f"{relation.why}.", entry.level, evidence)
    if before is None or after.value > before.value:
        return Verdict(Outcome.PASSED, level=entry.level, evidence=evidence)
    return Verdict(Outcome.FAILED, f"{where}: the newest series of {relation.family} kept the value {after.value:g} "
                                   f"through the workload (an update time, the highest read as current); "
                                   f"{relation.why}.", entry.level, evidence)
