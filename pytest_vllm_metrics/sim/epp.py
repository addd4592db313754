"""A simulated endpoint picker (EPP): its /metrics page, built from the simulated pods' own gauges.

Like a real EPP it reads each pod's /metrics (over HTTP) and publishes what it saw under the real names
(conformance/epp.toml): per pod the queue (vllm:num_requests_waiting), per pool the ready pods and the average
KV-cache utilization and queue. `naming` selects the generations it writes (llm-d's EPP writes both);
`refresh_seconds` makes it read the pods on its own schedule, as a real one does; `fault` makes its view
disagree with the pods' (see FAULTS).

    url = start_epp(host, {"pod-a": sim_a.url, "pod-b": sim_b.url}, naming=("llm_d_epp",))
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp
from aiohttp import web

from .. import engines
from ..engines import Metric
from ..epp import generations
from ..schemas import Generation
from ..snapshot import ExpositionError, Snapshot
from .server import ENGINE, RunningSim, SimHost

FAULTS = {
    "queue-disagrees": "the first pod's queue is published 3 higher than the pod's own",
    "ready-disagrees": "the ready count is published one higher than the pods that answer",
    "no-kv": "no average KV-cache utilization is published",
    "kv-percent": "the average KV-cache utilization is published in percent (0..100), not as a fraction",
    "kv-zero": "the average KV-cache utilization is published as 0 whatever the pods hold (an EPP reading a gauge "
               "the pods do not expose)",
    "needs-token": "/metrics answers 401 without 'Authorization: Bearer <token>'",
    "extract-errors": "each read of the pods counts an extract error (a spec a pod's page does not serve)",
}
# Its data-layer error counters (llm-d-router, llm_d_epp naming): a pod that does not answer counts a poll error
# at each read. A real EPP exposes each series from its first error; the simulator shows them from 0.
_ERRORS = {"poll": ("llm_d_epp_datalayer_poll_errors_total", "[ALPHA] Data-source poll errors per source type.",
                    'source_type="metrics-data-source"'),
           "extract": ("llm_d_epp_datalayer_extract_errors_total",
                       "[ALPHA] Extract errors per source/extractor type.",
                       'extractor_type="core-metrics-extractor",source_type="metrics-data-source"')}
# The help text of the real metrics (gateway-api-inference-extension and llm-d-router), per role.
_HELP = {
    "per_pod_queue": "[ALPHA] The total number of requests pending in the model server queue for each underlying "
                     "pod.",
    "ready": "[ALPHA] The number of ready pods in the inference server pool.",
    "average_kv": "[ALPHA] The average kv cache utilization for an inference server pool.",
    "average_queue": "[ALPHA] The average number of requests pending in the model server queue.",
}
_SEEN = web.AppKey("seen", dict)


def build_epp_app(pods: Mapping[str, str], pool: str = "sim-pool", naming: Sequence[str] = ("inference_pool",
                  "llm_d_epp"), fault: str | None = None, refresh_seconds: float = 0.0, refresh_every: int = 1,
                  token: str | None = None) -> web.Application:
    """The EPP's metrics server for `pods` (name as the EPP labels it -> the pod's base URL). It reads the pods
    again when its view is `refresh_seconds` old, and (0 s) on every `refresh_every`-th read of its page: a
    view that lags behind the pods for a given time, or for a given number of reads."""
    by_name = {g.name: g for g in generations()}
    unknown = [n for n in naming if n not in by_name]
    if unknown or (fault is not None and fault not in FAULTS):
        raise ValueError(f"unknown naming {unknown} or fault {fault!r}; namings: {', '.join(by_name)}; faults: "
                         f"{', '.join(FAULTS)}")
    chosen = [by_name[n] for n in naming]
    app = web.Application()
    app[_SEEN] = {"at": None, "values": {}, "reads": 0, "errors": {"poll": 0, "extract": 0}}

    async def metrics(request: web.Request) -> web.Response:
        if fault == "needs-token" and request.headers.get("Authorization") != f"Bearer {token}":
            return web.Response(status=401, text="Unauthorized")
        seen = app[_SEEN]
        if seen["at"] is None:
            due = True
        elif refresh_seconds:
            due = time.monotonic() - seen["at"] >= refresh_seconds
        else:
            due = seen["reads"] % refresh_every == 0
        if due:
            seen["values"] = await _read_pods(pods)
            seen["at"] = time.monotonic()
            seen["errors"]["poll"] += len(pods) - len(seen["values"])
            seen["errors"]["extract"] += 1 if fault == "extract-errors" else 0
        seen["reads"] += 1
        errors = seen["errors"] if "llm_d_epp" in naming else {}
        return web.Response(text=_page(chosen, pool, seen["values"], fault) + _errors(errors),
                            content_type="text/plain")

    app.router.add_get("/metrics", metrics)
    return app


async def _read_pods(pods: Mapping[str, str]) -> dict[str, tuple[float, float]]:
    """(waiting, KV-cache usage) of each pod that answers, read from its /metrics as an EPP reads it."""
    async def one(session: aiohttp.ClientSession, url: str) -> tuple[float, float] | None:
        # the pod's engine by the page it serves (a real EPP knows it from the pod's engine label)
        for path in dict.fromkeys(p.metrics_path for p in engines.profiles().values()):
            try:
                async with session.get(f"{url}{path}") as response:
                    if response.status != 200:
                        continue
                    page = Snapshot.parse(await response.text())
            except (aiohttp.ClientError, ExpositionError, TimeoutError):
                return None
            for profile in engines.profiles().values():
                specs = profile.selectors()
                queued, usage = specs[Metric.QUEUED], specs[Metric.KV_USAGE]
                waiting = page.value(queued.name, queued.labels or None)
                if waiting is not None:
                    return waiting, page.value(usage.name, usage.labels or None) or 0.0
        return None

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        read = await asyncio.gather(*(one(session, url) for url in pods.values()))
    return {name: values for name, values in zip(pods, read, strict=True) if values is not None}


def _page(chosen: list[Generation], pool: str, values: dict[str, tuple[float, float]], fault: str | None) -> str:
    lines: list[str] = []
    first = next(iter(values), None)
    ready = len(values) + (1 if fault == "ready-disagrees" else 0)
    kv = sum(v[1] for v in values.values()) / len(values) if values else 0.0
    queue = sum(v[0] for v in values.values()) / len(values) if values else 0.0
    for gen in chosen:
        lines += [f"# HELP {gen.per_pod_queue} {_HELP['per_pod_queue']}", f"# TYPE {gen.per_pod_queue} gauge"]
        for name, (waiting, _) in values.items():
            shown = waiting + 3 if fault == "queue-disagrees" and name == first else waiting
            lines.append(f'{gen.per_pod_queue}{{{gen.pod_label}="{name}",name="{pool}"}} {shown:g}')
        gauges = [("ready", gen.ready, float(ready)), ("average_queue", gen.average_queue, queue)]
        if fault != "no-kv":
            shown_kv = kv * 100 if fault == "kv-percent" else 0.0 if fault == "kv-zero" else kv
            gauges.append(("average_kv", gen.average_kv, shown_kv))
        for role, metric, value in gauges:
            lines += [f"# HELP {metric} {_HELP[role]}", f"# TYPE {metric} gauge",
                      f'{metric}{{name="{pool}"}} {value:g}']
    return "\n".join(lines) + "\n"


def _errors(counts: Mapping[str, int]) -> str:
    lines: list[str] = []
    for kind, count in counts.items():
        name, help_text, labels = _ERRORS[kind]
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter", f"{name}{{{labels}}} {count}"]
    return "".join(line + "\n" for line in lines)


def start_epp(host: SimHost, pods: Mapping[str, str], **options: Any) -> str:
    """Serve a simulated EPP for `pods` on the host's loop; return its base URL."""
    return host.start_app(build_epp_app(pods, **options))


def set_waiting(sim: RunningSim, value: float) -> None:
    """Set a simulated pod's queue (vllm:num_requests_waiting): requests waiting for a slot."""
    _set(sim, "vllm:num_requests_waiting", value)


def set_kv_usage(sim: RunningSim, value: float) -> None:
    """Set a simulated pod's KV-cache usage (vllm:kv_cache_usage_perc, a fraction 0..1)."""
    _set(sim, "vllm:kv_cache_usage_perc", value)


def _set(sim: RunningSim, family: str, value: float) -> None:
    engine = sim.runner.app[ENGINE][0]
    engine.metrics[family].labels(engine="0", model_name=sim.profile.model).set(value)
