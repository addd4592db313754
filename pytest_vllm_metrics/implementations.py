"""What the reports say of each observed target (the JSON report's `implementations`): its version, model,
architecture, features, the data-parallel engines its page carries, and what the workload measured (the numbers the
HTML report charts). Plain JSON data: pytest-xdist workers send it to the controller."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .accounting import looks_exclusive
from .kube import ClusterInfo
from .multinode import engines_on_page
from .observe import Observation


def of(observed: Iterable[Observation], cluster: ClusterInfo | None) -> list[dict[str, Any]]:
    """Per observed target, in the order observed: what the reports say of it."""
    out = []
    led: dict[str, list[str]] = {}  # leader -> its multi-node workers
    for worker in cluster.workers if cluster is not None else ():
        if worker.leader and worker.checked:
            led.setdefault(worker.leader, []).append(worker.pod)
    for obs in observed:
        target = obs.target
        traffic = obs.traffic
        out.append({
            "target": target.name, "vllmVersion": obs.version, "model": traffic.model if traffic else None,
            "image": target.detail.get("image"), "architecture": target.arch, "node": target.node,
            "source": str(target.source), "modelServer": str(target.engine),
            "blockSize": obs.block_size if obs.cache_config else None,
            "prefixCaching": obs.prefix_caching, "features": sorted(obs.features),
            "exposition": obs.before.format if obs.before is not None else None,
            "measured": _measured(obs),
            # the data-parallel engines the page carries (its `engine` labels), what the command line runs,
            # and the workers whose engines report through it
            "engines": engines_on_page(obs.before) if obs.before is not None else None,
            "dataParallel": target.data_parallel.as_dict() if target.data_parallel else None,
            "multiNodeWorkers": led.get(target.name, []),
        })
    return out


# Histograms charted by the report: their bucket deltas are the workload's distribution.
_CHARTED_HISTOGRAMS = {"ttft": "vllm:time_to_first_token_seconds", "e2eLatency": "vllm:e2e_request_latency_seconds"}


def _measured(obs: Observation) -> dict[str, Any]:
    """The numbers the report charts for one target, as plain JSON data (pytest-xdist workers send it to the
    controller): the prefix cache's hits and queries during the workload, KV-cache usage and finished requests
    before and after it, and the TTFT and end-to-end latency of its requests (histogram bucket deltas)."""
    before, after, delta = obs.before, obs.after, obs.delta

    def before_after(name: str) -> dict[str, float | None]:
        return {"before": before.value(name) if before else None, "after": after.value(name) if after else None}

    measured: dict[str, Any] = {
        "kvCacheUsage": before_after("vllm:kv_cache_usage_perc"),
        "requestSuccess": before_after("vllm:request_success_total"),
        "prefixCache": None,
        # the process restarted or another one answered: differences across the scrapes mean little
        "restarted": bool(delta and delta.restarted),
        # finished requests and prompt tokens moved by exactly the workload: --vllm-exclusive would apply
        "looksExclusive": looks_exclusive(obs),
    }
    if delta is None:
        return measured | {key: [] for key in _CHARTED_HISTOGRAMS}
    after = delta.after
    if after.family("vllm:prefix_cache_queries_total") is not None:
        measured["prefixCache"] = {"hits": delta.increase("vllm:prefix_cache_hits_total"),
                                   "queries": delta.increase("vllm:prefix_cache_queries_total")}
    for key, name in _CHARTED_HISTOGRAMS.items():
        # [upper bound, requests at or below it] summed over the other labels (model, engine): cumulative
        by_bound = delta.increases_by(f"{name}_bucket", "le")
        measured[key] = [[le, by_bound[le]] for le in sorted(set(by_bound) - {""}, key=_bound)]
    return measured


def _bound(le: str) -> float:
    try:
        return float(le)
    except ValueError:
        return float("inf")
