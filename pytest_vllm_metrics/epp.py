"""The endpoint picker's (EPP's) own view of the pods, against the pods' own (--vllm-epp-url).

The EPP routes on each pod's queue and KV-cache gauges and publishes what it read: per pod, the queue it saw;
per pool, the ready pods and the average KV-cache utilization (names per generation in conformance/epp.toml).
Gauges move, and the EPP reads them on its own schedule, so the two views are compared at a quiet moment: the
pods are read before and after each read of the EPP, and a difference is a failure only when it outlasts the
EPP's refresh with the pods' values unchanged. When the run cannot tell, the verdict says why.
"""

from __future__ import annotations

import asyncio
import math
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from . import data, engines
from .engines import Engine, Metric
from .evaluate import across
from .observe import Observation
from .outcome import Level, Outcome, Problem, Verdict
from .schemas import Generation, Settle
from .scrape import Clients, FetchError, get_text, scrape
from .settings import Settings
from .snapshot import ExpositionError, Snapshot
from .targets import Target

_RANK = re.compile(r"^(?P<pod>.+)-rank-(?P<rank>\d+)$")  # a data-parallel rank's endpoint: "<pod>-rank-<n>"
_POOL_KV = "<average-kv>"  # the comparison key of the pool's KV average ("" is the ready count): no pod's name
# The gauges an EPP reads for KV-cache usage, newest first (vLLM renamed the gauge in 0.9.2; both are fractions).
_KV_GAUGES = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")


def generations() -> tuple[Generation, ...]:
    return data.epp().generation


def settle() -> Settle:
    return data.epp().settle


def epp_target(settings: Settings) -> Target | None:
    """The EPP as a target of its own; its bearer token (a ServiceMonitor's) from --vllm-epp-token-env."""
    if not settings.vllm_epp_url:
        return None
    token = os.environ.get(settings.vllm_epp_token_env, "").strip()
    options = {"headers": {"Authorization": f"Bearer {token}"}} if token else {}
    return Target(name="endpoint picker", base_url=settings.vllm_epp_url, client_options=options)


async def read_epp(client: Any, epp: Target, settings: Settings) -> Snapshot:
    """One read of the EPP's /metrics; FetchError naming the cause and the fix."""
    status, _, body = await get_text(client, epp, "/metrics", settings.vllm_timeout)
    if status in (401, 403):
        raise FetchError(
            f"the endpoint picker at {epp.shown_url} refused /metrics (HTTP {status}): its metrics need a bearer "
            f"token allowed to get the non-resource URL /metrics (the token its ServiceMonitor uses). Put it in "
            f"the environment variable ${settings.vllm_epp_token_env} (--vllm-epp-token-env names another).",
            inconclusive=True)
    if status != 200:
        raise FetchError(f"the endpoint picker at {epp.shown_url} answered /metrics with HTTP {status}; point "
                         f"--vllm-epp-url at the EPP's metrics port (9090 in the charts), without /metrics.",
                         inconclusive=status in (429, 502, 503, 504))
    try:
        snapshot = Snapshot.parse(body)
    except ExpositionError as exc:
        raise FetchError(f"the endpoint picker at {epp.shown_url} did not answer Prometheus text at /metrics "
                         f"({exc}); point --vllm-epp-url at the EPP's metrics port (9090 in the charts).") from None
    return snapshot


# -- one comparison, shared by the checks ------------------------------------------------------------------


@dataclass
class Pending:
    """A difference seen in consecutive rounds with the same values on both sides, since `since`."""

    pod: float
    epp: float
    since: float
    last: float


@dataclass
class Compared:
    """What the comparison found, per generation present on the EPP's page."""

    present: list[Generation] = field(default_factory=list)
    error: Problem | None = None  # the EPP could not be read (or is not an EPP)
    pods: dict[str, str] = field(default_factory=dict)  # our targets that answered: name -> pod name on the EPP
    unscraped: dict[str, str] = field(default_factory=dict)  # our targets that did not answer: name -> why
    foreign: set[str] = field(default_factory=set)  # endpoints the EPP lists that the run does not know
    unready: dict[str, str] = field(default_factory=dict)  # targets found but not checkable (not Ready): why
    listed_unready: set[str] = field(default_factory=set)  # of those, the ones the EPP lists
    queue: dict[tuple[str, str], tuple[str, float | None, float | None, float]] = field(default_factory=dict)
    # (generation, target) -> (state: agreed | differs | unsettled | missing, pod value, EPP value, how long)
    ready: dict[str, tuple[str, float | None, int, float]] = field(default_factory=dict)
    ranks: dict[str, int] = field(default_factory=dict)  # pods the EPP lists as several data-parallel endpoints
    kv: dict[str, list[float]] = field(default_factory=dict)  # generation -> the values of its average KV gauge
    kv_compared: dict[str, tuple[str, float | None, float | None, float]] = field(default_factory=dict)
    # generation -> (state, the pods' own average, the EPP's, how long), when the pool is comparable
    waited: float = 0.0
    # the EPP's page at its first and its last read, with the time of each (monotonic): its own error counters
    pages: list[tuple[float, Snapshot]] = field(default_factory=list)
    engines: dict[str, Engine] = field(default_factory=dict)  # each pod's model server: which gauge is its own


def _waiting(snapshot: Snapshot, engine: Engine = Engine.VLLM) -> float | None:
    return _own(snapshot, engine, Metric.QUEUED) if engine is not Engine.VLLM else snapshot.value(
        "vllm:num_requests_waiting")


def _kv_usage(snapshot: Snapshot, engine: Engine = Engine.VLLM) -> float | None:
    if engine is not Engine.VLLM:
        return _own(snapshot, engine, Metric.KV_USAGE)
    return next((v for v in (snapshot.value(name) for name in _KV_GAUGES) if v is not None), None)


def _own(snapshot: Snapshot, engine: Engine, metric: Metric) -> float | None:
    """Another engine's gauge of the model-server protocol (engines.toml), as the pod serves it."""
    spec = engines.profile(engine).selectors()[metric]
    return snapshot.value(spec.name, spec.labels or None)


def _epp_queues(snapshot: Snapshot, gen: Generation) -> tuple[dict[str, float], dict[str, int]]:
    """Per pod (data-parallel ranks summed into their pod), the queue the EPP reports, and how many endpoints
    (ranks) it lists for the pod."""
    queues: dict[str, float] = {}
    endpoints: dict[str, set[str]] = {}
    for series in snapshot.series(gen.per_pod_queue):
        endpoint = dict(series.labels).get(gen.pod_label, "")
        match = _RANK.match(endpoint)
        pod = match.group("pod") if match else endpoint
        queues[pod] = queues.get(pod, 0.0) + series.value
        endpoints.setdefault(pod, set()).add(endpoint)
    return queues, {pod: len(names) for pod, names in endpoints.items()}


async def compare(epp: Target, targets: Sequence[Target], settings: Settings) -> Compared:
    found = Compared()
    if settings.policy.sliced:  # the picker routes over every pod, and a shard observes its slice only
        found.error = Problem(f"the endpoint picker's view of the pool is compared with every pod's own, and "
                              f"{settings.vllm_shard} sees only its slice of the fleet; run the endpoint-picker "
                              f"check unsharded (--vllm-epp-url without --vllm-shard).")
        return found
    bounds = settle()
    ours = [t for t in targets if not t.unavailable]
    found.unready = {t.name: t.unavailable for t in targets if t.unavailable}
    found.engines = {t.name: t.engine for t in ours}
    async with Clients() as clients:

        async def pods() -> dict[str, Snapshot | str]:
            async def one(target: Target) -> Snapshot | str:
                try:
                    return await scrape(clients.get(target), target, settings.vllm_metrics_path,
                                        settings.vllm_timeout)
                except FetchError as exc:
                    return str(exc)

            pages = await asyncio.gather(*(one(t) for t in ours))
            return dict(zip((t.name for t in ours), pages, strict=True))

        try:
            first = await read_epp(clients.get(epp), epp, settings)
        except FetchError as exc:
            found.error = Problem(str(exc), exc.inconclusive)
            return found
        found.pages = [(time.monotonic(), first)]
        found.present = [g for g in generations() if any(first.family(f) for f in g.families)]
        if not found.present:
            names = ", ".join(g.per_pod_queue for g in generations())
            found.error = Problem(f"{epp.shown_url}/metrics carries none of the endpoint picker's metrics ({names}, "
                                  f"...): it is not an EPP's metrics page. Point --vllm-epp-url at the EPP's "
                                  f"metrics port (9090 in the charts).", inconclusive=True)
            return found
        pending: dict[tuple[str, str], Pending] = {}
        start = time.monotonic()
        deadline = start + min(2 * bounds.pool_seconds + 2 * settings.vllm_timeout, settings.vllm_phase_timeout)
        while True:
            before = await pods()
            try:
                page = await read_epp(clients.get(epp), epp, settings)
            except FetchError as exc:
                found.error = Problem(str(exc), exc.inconclusive)
                return found
            after = await pods()
            now = time.monotonic()
            found.pages[1:] = [(now, page)]
            open_keys = _round(found, before, after, page, pending, now)
            found.waited = now - start
            confirmed = all(now - pending[k].since >= _bound(k, bounds) for k in open_keys if k in pending)
            if not open_keys or (confirmed and all(k in pending for k in open_keys)) or now >= deadline:
                break
            await asyncio.sleep(min(bounds.poll_seconds, max(deadline - now, 0)))
    close(found, pending, bounds)
    return found


def close(found: Compared, pending: dict[tuple[str, str], Pending], bounds: Settle) -> None:
    """The differences still open when the comparison ends: failures if they outlasted the EPP's lag, else
    unsettled."""
    for key, item in pending.items():
        state = "differs" if item.last - item.since >= _bound(key, bounds) else "unsettled"
        _settle(found, key, state, item.pod, item.epp, item.last - item.since)


def _bound(key: tuple[str, str], bounds: Settle) -> float:
    return bounds.pool_seconds if key[1] in ("", _POOL_KV) else bounds.per_pod_seconds


def _settle(found: Compared, key: tuple[str, str], state: str, pod: float | None, epp: float | None,
            lasted: float) -> None:
    generation, target = key
    if target == "":
        found.ready[generation] = (state, epp, int(pod or 0), lasted)
    elif target == _POOL_KV:
        found.kv_compared[generation] = (state, pod, epp, lasted)
    else:
        found.queue[key] = (state, pod, epp, lasted)


def _round(found: Compared, before: dict[str, Snapshot | str], after: dict[str, Snapshot | str], page: Snapshot,
           pending: dict[tuple[str, str], Pending], now: float) -> list[tuple[str, str]]:
    """One round: settle what agrees, (re)start the clock of what differs; return the keys still open."""
    found.unscraped = {name: p for name, p in after.items() if isinstance(p, str)}
    found.unscraped.update({name: p for name, p in before.items() if isinstance(p, str)})
    answered = [name for name in after if name not in found.unscraped]
    found.pods = {name: name for name in answered}
    open_keys: list[tuple[str, str]] = []

    def observe(key: tuple[str, str], pod: float, epp: float, stable: bool) -> None:
        if epp == pod and stable:
            pending.pop(key, None)
            _settle(found, key, "agreed", pod, epp, 0.0)
            return
        item = pending.get(key)
        if not stable or item is None or (item.pod, item.epp) != (pod, epp):
            pending[key] = Pending(pod, epp, now, now)  # a new difference (or the values moved): its clock restarts
        else:
            item.last = now
        open_keys.append(key)

    for gen in found.present:
        queues, endpoints = _epp_queues(page, gen)
        if page.family(gen.per_pod_queue) is not None:
            found.foreign |= set(queues) - set(after) - set(found.unready)
            found.listed_unready |= set(queues) & set(found.unready)
            for name in answered:
                pod_before, pod_after = before[name], after[name]
                assert isinstance(pod_before, Snapshot) and isinstance(pod_after, Snapshot)
                engine = found.engines.get(name, Engine.VLLM)
                waiting_before, waiting_after = _waiting(pod_before, engine), _waiting(pod_after, engine)
                key = (gen.name, name)
                if name not in queues or waiting_after is None:
                    pending.pop(key, None)
                    _settle(found, key, "missing", waiting_after, queues.get(name), 0.0)
                    continue
                observe(key, waiting_after, queues[name], waiting_before == waiting_after)
        # The EPP counts endpoints: a pod serving data-parallel ranks on several ports is one endpoint per rank
        # ("<pod>-rank-<n>"), so each pod counts as many as the EPP lists for it (at least one).
        found.ranks = {name: endpoints[name] for name in answered if endpoints.get(name, 1) > 1}
        expected = len(answered) + sum(n - 1 for n in found.ranks.values())
        ready = page.series(gen.ready)
        if ready and len(ready) == 1 and not found.unscraped:
            observe((gen.name, ""), float(expected), ready[0].value, True)
        elif ready:
            found.ready[gen.name] = ("unknown", ready[0].value if len(ready) == 1 else None, expected, 0.0)
        found.kv[gen.name] = [s.value for s in page.series(gen.average_kv)]
        # The EPP averages the KV usage of the pods it routes to; comparable when those are exactly the pods that
        # answered (one endpoint each) and every one exposes the gauge. A value outside 0..1 fails as it is.
        pages = [(before[n], after[n]) for n in answered]
        usage = [(_kv_usage(b, found.engines.get(n, Engine.VLLM)), _kv_usage(a, found.engines.get(n, Engine.VLLM)))
                 for n, (b, a) in zip(answered, pages, strict=True)
                 if isinstance(b, Snapshot) and isinstance(a, Snapshot)]
        if (len(found.kv[gen.name]) == 1 and 0.0 <= found.kv[gen.name][0] <= 1.0 and answered
                and all(u is not None for _, u in usage)
                and not (found.unscraped or found.foreign or found.listed_unready or found.ranks)):
            mean = sum(u for _, u in usage if u is not None) / len(usage)
            # rounded: the EPP sums in its own order (Go float64), and prints its own shortest form
            observe((gen.name, _POOL_KV), round(mean, 6), round(found.kv[gen.name][0], 6),
                    all(b == a for b, a in usage))
    return open_keys


# -- verdicts --------------------------------------------------------------------------------------------------


def _gate(found: Compared) -> Verdict | None:
    if found.error is not None:
        return found.error.verdict(Level.MUST)
    return None


def queue_per_pod(found: Compared) -> Verdict:
    """Each pod's queue as the EPP reports it equals the pod's own vllm:num_requests_waiting at a quiet moment."""
    gate = _gate(found)
    if gate is not None:
        return gate
    with_queue = [g for g in found.present if any(k[0] == g.name for k in found.queue)]
    if not with_queue:
        if not found.pods:
            return Verdict(Outcome.INCONCLUSIVE, _no_pods(found), Level.MUST)
        return Verdict(Outcome.SKIPPED, "this endpoint picker publishes no per-pod queue (" + ", ".join(
            g.per_pod_queue for g in generations()) + "): only its pool averages can be checked.", Level.MUST)
    known = {name for (_, name), item in found.queue.items() if item[0] != "missing"}
    if not known:
        listed = ", ".join(sorted(found.foreign)[:5]) or "none"
        return Verdict(Outcome.INCONCLUSIVE, f"the endpoint picker lists none of the pods this run checks (it lists "
                                             f"{listed}; the run checks {', '.join(sorted(found.pods)[:5])}): it "
                                             f"serves another pool, or the targets are not named as their pods "
                                             f"(the EPP names pods by their Kubernetes name: use --vllm-namespace).",
                       Level.MUST)
    verdicts: dict[str, Verdict] = {}
    for (generation, name), (state, pod, epp, lasted) in found.queue.items():
        gen = next(g for g in found.present if g.name == generation)
        verdict = _queue_verdict(gen, name, state, pod, epp, lasted)
        mine = verdicts.get(name)
        if mine is None or _worse(verdict, mine):
            verdicts[name] = verdict
    for name, why in {**found.unready, **found.unscraped}.items():
        verdicts[name] = Verdict(Outcome.INCONCLUSIVE, why, Level.MUST, target=name)
    # folded as every check across targets is: the worst outcome, naming the pods that did not pass
    folded = across([Observation(Target(name=name, base_url="")) for name in verdicts],
                    lambda obs: verdicts[obs.target.name], Level.MUST)
    return folded.but(evidence={"pods": folded.evidence, "generations": [g.name for g in found.present],
                                "notChecked": sorted(found.foreign), "waited": round(found.waited, 2)})


def _queue_verdict(gen: Generation, name: str, state: str, pod: float | None, epp: float | None,
                   lasted: float) -> Verdict:
    evidence = {"metric": gen.per_pod_queue, "pod": pod, "epp": epp}
    if state == "agreed":
        return Verdict(Outcome.PASSED, "", Level.MUST, evidence, target=name)
    if state == "missing" and epp is None:
        return Verdict(Outcome.FAILED, f"{name}: the endpoint picker does not list this pod in {gen.per_pod_queue} "
                                       f"although it answers: the EPP does not route to it (is it in the "
                                       f"InferencePool's selector, and Ready?).", Level.MUST, evidence, target=name)
    if state == "missing":
        return Verdict(Outcome.FAILED, f"{name}: the pod exposes no vllm:num_requests_waiting, the queue the "
                                       f"endpoint picker routes on.", Level.MUST, evidence, target=name)
    if state == "differs":
        return Verdict(Outcome.FAILED, f"{name}: the endpoint picker reports a queue of {_num(epp)} "
                                       f"({gen.per_pod_queue}), the pod's own vllm:num_requests_waiting is "
                                       f"{_num(pod)}, unchanged for {lasted:.1f} s: the EPP routes on a view of "
                                       f"this pod that is not the pod's.", Level.MUST, evidence, target=name)
    return Verdict(Outcome.INCONCLUSIVE, f"{name}: the pod's queue ({_num(pod)}) and the endpoint picker's "
                                         f"({_num(epp)}, {gen.per_pod_queue}) kept changing; no quiet moment came "
                                         f"within the wait. Rerun when the pool is idle.", Level.MUST, evidence,
                   target=name)


def _worse(a: Verdict, b: Verdict) -> bool:
    order = [Outcome.FAILED, Outcome.INCONCLUSIVE, Outcome.XFAILED, Outcome.PASSED, Outcome.SKIPPED]
    return order.index(a.outcome) < order.index(b.outcome)


def ready_pods(found: Compared) -> Verdict:
    """The pool's ready count as the EPP reports it equals the Ready vLLM pods the run found."""
    gate = _gate(found)
    if gate is not None:
        return gate
    if not found.ready:
        return Verdict(Outcome.FAILED, "the endpoint picker publishes no ready-pod count (" + ", ".join(
            g.ready for g in found.present) + "), which dashboards and autoscalers read.", Level.MUST)
    if found.foreign:
        return Verdict(Outcome.INCONCLUSIVE, f"the endpoint picker routes to pods this run did not find "
                                             f"({', '.join(sorted(found.foreign)[:5])}), so its ready count cannot "
                                             f"be compared: widen --vllm-selector to the InferencePool's pods.",
                       Level.MUST)
    for generation, (state, epp, ours, lasted) in found.ready.items():
        gen = next(g for g in found.present if g.name == generation)
        if state == "unknown":
            why = (", ".join(found.unscraped.values()) if found.unscraped
                   else f"{gen.ready} has one series per pool and this EPP serves several")
            return Verdict(Outcome.INCONCLUSIVE, f"the endpoint picker's ready count cannot be compared: {why}",
                           Level.MUST)
        found_here = _found_ready(found, ours)
        if state == "differs":
            listed = sorted(found.listed_unready)
            unready = (f" It lists {', '.join(listed)}, which {'is' if len(listed) == 1 else 'are'} not Ready."
                       if listed else "")
            return Verdict(Outcome.FAILED, f"the endpoint picker counts {_num(epp)} ready pods ({gen.ready}), the "
                                           f"run found {found_here} that answer, unchanged for {lasted:.1f} s: it "
                                           f"routes to pods that are gone, or misses Ready ones.{unready}", Level.MUST,
                           {"metric": gen.ready, "epp": epp, "pods": len(found.pods), "endpoints": ours,
                            "listedNotReady": listed})
        if state == "unsettled":
            return Verdict(Outcome.INCONCLUSIVE, f"the endpoint picker's ready count ({_num(epp)}, {gen.ready}) "
                                                 f"differed from the {found_here} found for {lasted:.1f} s, less "
                                                 f"than it may lag (it flushes its pool gauges every few seconds); "
                                                 f"rerun.", Level.MUST)
    return Verdict(Outcome.PASSED, "", Level.MUST, {"ready": {g: r[1] for g, r in found.ready.items()},
                                                "pods": len(found.pods), "dataParallelRanks": dict(found.ranks)})


def _found_ready(found: Compared, endpoints: int) -> str:
    """The Ready pods the run found, as the EPP should count them: "3 Ready vLLM pods", or with data-parallel
    ranks "2 Ready vLLM pods (4 endpoints: decode-a serves 3 data-parallel ranks)"."""
    pods = f"{len(found.pods)} Ready vLLM pod{'' if len(found.pods) == 1 else 's'}"
    if not found.ranks:
        return pods
    ranks = ", ".join(f"{pod} serves {n}" for pod, n in sorted(found.ranks.items()))
    return f"{pods} ({endpoints} endpoints: {ranks} data-parallel ranks)"


def average_kv_cache(found: Compared) -> Verdict:
    """The pool's average KV-cache utilization is published, as a fraction in 0..1 (the GAIE protocol's unit), and
    equals the pods' own average once it has had time to catch up (when the EPP routes to exactly those pods)."""
    gate = _gate(found)
    if gate is not None:
        return gate
    missing = [g.average_kv for g in found.present if not found.kv.get(g.name)]
    if len(missing) == len(found.present):
        return Verdict(Outcome.FAILED, f"the endpoint picker publishes no average KV-cache utilization "
                                       f"({', '.join(missing)}): it reads no KV-cache gauge from the pods (check its "
                                       f"--kv-cache-usage-percentage-metric: vllm:kv_cache_usage_perc since vLLM "
                                       f"0.9.2).", Level.MUST)
    values = {g.average_kv: found.kv[g.name] for g in found.present if found.kv.get(g.name)}
    bad = {name: v for name, vs in values.items() for v in vs if math.isnan(v) or not 0.0 <= v <= 1.0}
    if bad:
        name, value = next(iter(bad.items()))
        return Verdict(Outcome.FAILED, f"the endpoint picker's {name} is {value:g}, outside 0..1: the gauge it reads "
                                       f"from the pods is not a fraction of the KV cache.", Level.MUST,
                       {"values": values})
    compared = {g.average_kv: found.kv_compared[g.name] for g in found.present if g.name in found.kv_compared}
    for name, (state, pods, epp, lasted) in compared.items():
        if state == "differs":
            return Verdict(Outcome.FAILED, f"the endpoint picker's {name} is {_num(epp)}, the pods' own "
                                           f"{_KV_GAUGES[0]} average {_num(pods)}, unchanged for {lasted:.1f} s: it "
                                           f"reads another gauge than the pods expose, or pods that are gone (check "
                                           f"its --kv-cache-usage-percentage-metric).", Level.MUST,
                           {"values": values, "podsAverage": pods})
        if state == "unsettled":
            return Verdict(Outcome.INCONCLUSIVE, f"the endpoint picker's {name} ({_num(epp)}) differed from the pods' "
                                                 f"own average ({_num(pods)}) for {lasted:.1f} s, less than it may lag "
                                                 f"(it flushes its pool gauges every few seconds); rerun.", Level.MUST)
    averages = {name: pods for name, (_, pods, _, _) in compared.items()}
    return Verdict(Outcome.PASSED, "", Level.MUST, {"values": values, "podsAverage": averages})


def _no_pods(found: Compared) -> str:
    causes = "; ".join(found.unscraped.values())
    return (f"no vLLM pod answered, so the endpoint picker's view has nothing to be compared with: "
            f"{causes or 'no target'}")


def _num(value: float | None) -> str:
    if value is None:
        return "nothing"
    return f"{value:g}"
