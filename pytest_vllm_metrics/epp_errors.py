"""The endpoint picker's own count of the pods it cannot read (--vllm-epp-url).

llm-d-router's EPP counts each failed scrape of a pod (`llm_d_epp_datalayer_poll_errors_total{source_type}`) and each
metric it could not take from a page it scraped (`llm_d_epp_datalayer_extract_errors_total{source_type,
extractor_type}`). It reads every pod every --refresh-metrics-interval (50 ms by default), so over a few seconds a
pod it cannot read raises a counter many times; a healthy pool leaves both flat. client_golang exposes a labelled
counter from its first increment: a series that appears during the run rose from 0.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from .epp import Compared, read_epp, settle
from .outcome import Level, Outcome, Verdict
from .scrape import Clients, FetchError
from .settings import Settings
from .snapshot import Snapshot
from .targets import Target

__all__ = ["COUNTERS", "cover_span", "flat_errors"]

# llm-d-router pkg/common/observability/metrics/metrics.go (subsystem llm_d_epp), with what a rise of each means
COUNTERS = {
    "llm_d_epp_datalayer_poll_errors_total":
        "its scrape of a pod's metrics fails (the scheme, port or path of its metrics-data-source plugin, or a pod "
        "that does not answer)",
    "llm_d_epp_datalayer_extract_errors_total":
        "a metric it is configured to read is missing from a pod's page (see the endpoint picker's engineConfigs "
        "check: a spec the engine does not serve)",
}


def span() -> float:
    """How long the counters are watched at least: the EPP's per-pod lag bound, dozens of its refreshes."""
    return settle().per_pod_seconds


async def cover_span(found: Compared, epp: Target, settings: Settings) -> None:
    """Read the EPP once more when its first and last reads are closer than `span()` (a quiet pool settles at
    once): the counters need several refreshes to say anything. A failed read leaves the pages as they are."""
    if not found.pages or found.error is not None:
        return
    rest = span() - (found.pages[-1][0] - found.pages[0][0])
    if rest <= 0:
        return
    await asyncio.sleep(rest)
    async with Clients() as clients:
        try:
            page = await read_epp(clients.get(epp), epp, settings)
        except FetchError:
            return
    found.pages[1:] = [(time.monotonic(), page)]


def _values(page: Snapshot, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {tuple(sorted(s.labels)): s.value for s in page.series(name)}


def flat_errors(found: Compared) -> Verdict:
    """Both error counters stay flat between the EPP's first and last read of the run."""
    if found.error is not None:
        return found.error.verdict(Level.MUST)
    if len(found.pages) < 2:
        return Verdict(Outcome.INCONCLUSIVE, "the endpoint picker was read only once, so its error counters could "
                                             "not be compared over time; rerun.", Level.MUST)
    (start, first), (end, last) = found.pages[0], found.pages[-1]
    seconds = end - start
    if not any(page.family(name) for page in (first, last) for name in COUNTERS):
        return Verdict(Outcome.SKIPPED, f"the endpoint picker serves neither {' nor '.join(COUNTERS)}: an EPP older "
                                        f"than llm-d-router's data layer, or one that has not failed to read a pod "
                                        f"since it started (it exposes each series from its first error).", Level.MUST)
    rises: list[str] = []
    evidence: dict[str, Any] = {"seconds": round(seconds, 2)}
    for name, meaning in COUNTERS.items():
        before, after = _values(first, name), _values(last, name)
        evidence[name] = {",".join(f"{k}={v}" for k, v in labels) or "-": {"first": before.get(labels, 0.0),
                                                                          "last": value}
                          for labels, value in after.items()}
        for labels, value in after.items():
            was = before.get(labels, 0.0)
            if value < was:
                return Verdict(Outcome.INCONCLUSIVE, f"the endpoint picker's {name} went down ({was:g} to {value:g}): "
                                                     f"it restarted during the run; rerun.", Level.MUST, evidence)
            if value > was:
                shown = ",".join(f'{k}="{v}"' for k, v in labels)
                rises.append(f"{name}{{{shown}}} rose by {value - was:g}: {meaning}")
    if rises:
        return Verdict(Outcome.FAILED, f"over {seconds:.1f} s of the run the endpoint picker counted errors reading "
                                       f"the pods it routes to: " + "; ".join(rises) + ". It schedules on stale or "
                                       "missing metrics for those pods; its log names them.", Level.MUST, evidence)
    return Verdict(Outcome.PASSED, "", Level.MUST, evidence)
