"""Cardinality and label hygiene of one /metrics page: what a store or a scraper does to it, not what vLLM means.

No traffic is needed: each check reads the page (after the workload when there is one, since some series appear
only then). The caps and their sources are data (conformance/hygiene.toml).

What depends on where the page goes (a store's label cap, a scrape's body size limit, joins across restarts) is
not a failure of the server: the suite cannot see the store. Those checks pass with a warning that names the
store and the cap (`StoreWarning`, shown in pytest's warnings summary and kept as the target's reason in the
reports). What is wrong wherever the page goes (one engine's value split over several series, a family growing
without bound) fails.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from . import data
from .observe import Observation, Stage
from .outcome import Level, Outcome, Verdict
from .schemas import Store
from .settings import MAX_BODY_BYTES
from .snapshot import Family, LabelSet, Snapshot

_SHOWN = 3  # series or families quoted in a message; the evidence lists every one
_NAMED = 3  # targets named in a warning; the reports list every one
_BUCKET_LABELS = ("le", "quantile")


class StoreWarning(UserWarning):
    """The page is fine for vLLM but a common store or scraper drops or splits part of it."""


def warn(verdict: Verdict) -> None:
    """Show each distinct warning once in pytest's warnings summary, naming the targets it concerns: a fleet's
    pods warned alike make one warning, not one per pod (the reports keep every target's own)."""
    if not verdict.targets:
        if verdict.outcome == Outcome.PASSED and verdict.message:
            warnings.warn(StoreWarning(verdict.message), stacklevel=2)
        return
    alike: dict[str, list[str]] = {}
    for name, each in verdict.targets.items():
        if each.outcome == Outcome.PASSED and each.message:
            alike.setdefault(each.message.removeprefix(f"{name}: "), []).append(name)
    for text, names in alike.items():
        shown = ", ".join(names[:_NAMED]) + (
            f" and {len(names) - _NAMED} more ({len(names)} targets)" if len(names) > _NAMED else "")
        warnings.warn(StoreWarning(f"{shown}: {text}"), stacklevel=2)


def _warning(message: str, level: Level, evidence: dict[str, Any]) -> Verdict:
    return Verdict(Outcome.PASSED, message, level, evidence | {"warning": True})


@dataclass(frozen=True)
class Rules:
    stores: tuple[Store, ...]
    target_labels: tuple[str, ...]  # the labels the assumed scrape adds
    scrape_kind: str
    volatile: tuple[tuple[str, tuple[str, ...], str], ...]  # family, labels, why
    max_series_per_family: int
    warn_page_bytes: int
    process_labels: tuple[str, ...]


@cache
def rules() -> Rules:
    table = data.hygiene()
    kinds = table.target_labels
    return Rules(
        stores=tuple(sorted(table.store, key=lambda s: s.max_labels)),
        target_labels=kinds.service_monitor if kinds.assumed == "ServiceMonitor" else kinds.pod_monitor,
        scrape_kind=kinds.assumed,
        volatile=tuple((v.family, v.labels, v.why) for v in table.volatile),
        max_series_per_family=table.series.max_per_family,
        warn_page_bytes=table.page.warn_bytes,
        process_labels=table.duplicates.process_labels,
    )


def _page(obs: Observation, level: Level) -> Snapshot | Verdict:
    """The page to judge (after the workload if it was scraped), or the verdict of why there is none."""
    problem = obs.failure(Stage.BEFORE)
    if problem:
        return problem.verdict(level)
    page = obs.after or obs.before
    assert page is not None
    return page


def _family_of(sample: str, families: Mapping[str, Family]) -> str:
    for suffix in ("_bucket", "_count", "_sum"):
        if sample.endswith(suffix) and sample[: -len(suffix)] in families:
            return sample[: -len(suffix)]
    return sample


# What the checks below read of a page depends on its names and labels only: computed once per page structure
# (Snapshot.per_structure), so a fleet whose pages share one pays for it once.

def _widest(families: Mapping[str, Family], label_sets: Mapping[str, list[LabelSet]]) -> dict[str, int]:
    """Family -> the most labels one of its series has."""
    widest: dict[str, int] = {}
    for sample, sets in label_sets.items():
        most = max(map(len, sets), default=0)
        family = _family_of(sample, families)
        widest[family] = max(widest.get(family, 0), most)
    return widest


def _series_counts(families: Mapping[str, Family], label_sets: Mapping[str, list[LabelSet]]) -> dict[str, int]:
    """Family -> its number of series on the page."""
    counts: dict[str, int] = defaultdict(int)
    for sample, sets in label_sets.items():
        counts[_family_of(sample, families)] += len(sets)
    return dict(counts)


def _splits(families: Mapping[str, Family],
            label_sets: Mapping[str, list[LabelSet]]) -> tuple[dict[str, str], dict[str, int]]:
    """vLLM families split by a process label (family -> the label), and into copies of one label set (family ->
    most copies)."""
    process_labels = set(rules().process_labels)
    with_pid: dict[str, str] = {}
    duplicated: dict[str, int] = {}
    for sample, sets in label_sets.items():
        if not sample.startswith("vllm:"):
            continue  # vLLM's own families; the collectors' are one per process by design
        family = _family_of(sample, families)
        seen: dict[LabelSet, int] = defaultdict(int)
        for labels in sets:
            names = {k for k, _ in labels}
            if names & process_labels:
                with_pid.setdefault(family, sorted(names & process_labels)[0])
            seen[tuple((k, v) for k, v in labels if k not in process_labels)] += 1
        copies = max(seen.values(), default=1)
        if copies > 1:
            duplicated[family] = max(duplicated.get(family, 0), copies)
    return with_pid, duplicated


def labels_per_series(obs: Observation, level: Level = Level.SHOULD) -> Verdict:
    """Every series, with the labels a Prometheus Operator scrape adds, fits every store's label cap."""
    page = _page(obs, level)
    if isinstance(page, Verdict):
        return page
    r = rules()
    added = len(r.target_labels)
    widest = page.per_structure(_widest)
    top = max(widest.values(), default=0)
    evidence: dict[str, Any] = {"most_labels": top, "scrape_adds": list(r.target_labels),
                                "caps": {s.name: s.max_labels for s in r.stores}}
    broken = [s for s in r.stores if top + added > s.max_labels]
    if not broken:
        return Verdict(Outcome.PASSED, level=level, evidence=evidence)
    smallest = broken[0].max_labels
    over = sorted((f for f, n in widest.items() if n + added > smallest), key=lambda f: -widest[f])
    evidence["over"] = {f: widest[f] for f in over}
    named = ", ".join(f"{f} ({widest[f]} labels)" for f in over[:_SHOWN]) + (
        f" and {len(over) - _SHOWN} more" if len(over) > _SHOWN else "")
    stores = "; ".join(f"{s.name}: {s.flag}={s.max_labels}" for s in broken)
    return _warning((
        f"{obs.target.name}: {named} with the {added} labels a Prometheus Operator {r.scrape_kind} scrape adds "
        f"({', '.join(r.target_labels)}) reach {widest[over[0]] + added} labels per series, more than {stores}. "
        f"Such a store drops the series while the write still succeeds, so panels and alerts on it see nothing. "
        f"Drop labels the dashboards do not use before the write (a metricRelabelings labeldrop on the "
        f"ServiceMonitor), or raise the store's cap."), level, evidence)


def volatile_labels(obs: Observation, level: Level = Level.MAY) -> Verdict:
    """Info series whose labels are sized at startup: a new series per restart, and joins that break."""
    page = _page(obs, level)
    if isinstance(page, Verdict):
        return page
    found: dict[str, dict[str, str]] = {}
    reasons: dict[str, str] = {}
    for family, names, why in rules().volatile:
        for series in page.samples.get(family, []):
            own = dict(series.labels)
            values = {name: own[name] for name in names if own.get(name) not in (None, "", "None")}
            if values:
                found.setdefault(family, {}).update(values)
                reasons[family] = why
    if not found:
        return Verdict(Outcome.PASSED, level=level)
    parts = [f"{family} carries {', '.join(f'{k}={v!r}' for k, v in values.items())} ({reasons[family]})"
             for family, values in found.items()]
    return _warning((
        f"{obs.target.name}: {'; '.join(parts)}. When a restart finds other free memory these values change: the "
        f"info metric starts a new series, and a query that joins on these labels misses across the restart. "
        f"Join on stable labels (engine, block_size, enable_prefix_caching) only."), level, {"labels": found})


def series_per_family(obs: Observation, level: Level = Level.SHOULD) -> Verdict:
    page = _page(obs, level)
    if isinstance(page, Verdict):
        return page
    counts = page.per_structure(_series_counts)
    cap = rules().max_series_per_family
    over = sorted((f for f, n in counts.items() if n > cap), key=lambda f: -counts[f])
    evidence: dict[str, Any] = {"largest": max(counts.values(), default=0), "cap": cap,
                                "series_on_page": sum(counts.values())}
    if not over:
        return Verdict(Outcome.PASSED, level=level, evidence=evidence)
    evidence["over"] = {f: counts[f] for f in over}
    named = ", ".join(f"{f} ({counts[f]} series)" for f in over[:_SHOWN]) + (
        f" and {len(over) - _SHOWN} more" if len(over) > _SHOWN else "")
    return Verdict(Outcome.FAILED, (
        f"{obs.target.name}: {named} {'has' if len(over) == 1 else 'have'} more than {cap} series on one page; a "
        f"vLLM family has at most 25 per "
        f"engine, so a label without bound (request or adapter ids) grows it, and the store with it. Find the "
        f"label whose values keep changing and drop it before the write."), level, evidence)


def page_size(obs: Observation, level: Level = Level.SHOULD) -> Verdict:
    page = _page(obs, level)
    if isinstance(page, Verdict):
        return page
    warn = rules().warn_page_bytes
    evidence: dict[str, Any] = {"bytes": page.size, "warn_bytes": warn, "suite_cap_bytes": MAX_BODY_BYTES}
    if page.size is None:
        return Verdict(Outcome.SKIPPED, f"{obs.target.name}: the page's size was not measured", level, evidence)
    if page.size <= warn:
        return Verdict(Outcome.PASSED, level=level, evidence=evidence)
    return _warning((
        f"{obs.target.name}: the /metrics page is {page.size:,} bytes, above {warn // 2**20} MiB (a vLLM page is "
        f"about 50 KB). A scrape with body_size_limit (Prometheus Operator: enforcedBodySizeLimit) below the page's "
        f"size fails whole, every series of the pod with it; this suite reads at most "
        f"{MAX_BODY_BYTES // 2**20} MiB. Find the family that grows (series per family) and bound it."),
        level, evidence)


def duplicate_series(obs: Observation, level: Level = Level.MUST) -> Verdict:
    """One series per engine and model: a process label (`pid`) or a repeated label set splits a value."""
    page = _page(obs, level)
    if isinstance(page, Verdict):
        return page
    with_pid, duplicated = page.per_structure(_splits)
    evidence: dict[str, Any] = {"process_label": dict(with_pid), "duplicated": dict(duplicated)}
    if not with_pid and not duplicated:
        return Verdict(Outcome.PASSED, level=level, evidence=evidence)
    families = sorted(set(with_pid) | set(duplicated))
    parts = []
    for family in families[:_SHOWN]:
        label = f" by its {with_pid[family]} label" if family in with_pid else ""
        split = duplicated.get(family)
        parts.append(f"{family} is split{label}" + (f" into {split} series per engine and model" if split else ""))
    more = f" (and {len(families) - _SHOWN} more families)" if len(families) > _SHOWN else ""
    return Verdict(Outcome.FAILED, (
        f"{obs.target.name}: {'; '.join(parts)}{more}. One engine's value then lives in several series: sum() "
        f"counts it once per process and a reader that keeps one series (an endpoint picker, max()) may keep a "
        f"stale one. vLLM exposed kv_cache_usage_perc this way with several API server processes before 0.11.1 "
        f"(its gauges now use the most recent process' value); upgrade, or run one API server per engine."),
        level, evidence)
