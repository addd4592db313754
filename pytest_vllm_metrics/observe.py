"""One pass over every target: version, scrape before, workload, scrape after. Concurrent across targets.

Each stage of each target either succeeds or records a one-paragraph reason; a broken target never stops
the others, and every item of the run reads the same two scrapes (never a scrape per test).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import httpx

from . import data, engines, features, schemas
from .engines import Engine, Metric
from .outcome import Problem
from .scrape import Clients, FetchError, get_text, scrape, shown_path
from .settings import Settings
from .snapshot import Delta, Snapshot
from .targets import Target, TargetSource
from .traffic import Aborts, TrafficResult, Workload

DEFAULT_BLOCK_SIZE = 16  # vLLM's GPU default, used when cache_config_info is missing


class Stage(StrEnum):
    """The stages of a target's observation; each either has its result or records why not (`errors`)."""

    BEFORE = "before"  # the scrape before the workload
    VERSION = "version"  # GET /version
    TRAFFIC = "traffic"  # the workload
    AFTER = "after"  # the scrape after it


class Check(StrEnum):
    """The checks that report a failed stage of a target's observation (conformance/test_server.py), each once
    per target: the other checks that need the stage point at it instead of failing with the same text."""

    REACHABLE = "test_reachable"  # the scrapes of /metrics, before and after the workload
    WORKLOAD_SERVED = "test_workload_served"  # the workload
    VERSION = "test_version"  # GET /version


@dataclass
class Observation:
    target: Target
    version: str | None = None
    before: Snapshot | None = None
    traffic: TrafficResult | None = None
    after: Snapshot | None = None
    # --vllm-exclusive only: streams closed mid-way after the second scrape, and the gauges afterwards
    aborts: Aborts | None = None
    errors: dict[Stage, Problem] = field(default_factory=dict)  # stage -> why it has no result
    # Every check of this target asks for these: computed once per pair of snapshots, not once per check.
    _delta: Delta | None = field(default=None, init=False, repr=False, compare=False)
    _features: tuple[Snapshot, set[str]] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def delta(self) -> Delta | None:
        if self.before is None or self.after is None:
            return None
        if self._delta is None or self._delta.before is not self.before or self._delta.after is not self.after:
            self._delta = Delta(self.before, self.after)
        return self._delta

    @property
    def cache_config(self) -> dict[str, str]:
        snapshot = self.before or self.after
        return (snapshot.info("vllm:cache_config_info") if snapshot else None) or {}

    @property
    def block_size(self) -> int:
        try:
            return int(self.cache_config["block_size"])
        except (KeyError, ValueError):
            return DEFAULT_BLOCK_SIZE

    @property
    def prefix_caching(self) -> str | None:
        """The server's own word: "True", "False" (or "None" on V0), None when it does not say."""
        return self.cache_config.get("enable_prefix_caching")

    @property
    def features(self) -> set[str]:
        if self.before is None:
            return set()
        if self._features is None or self._features[0] is not self.before:
            self._features = (self.before, features.detect(self.before))
        return self._features[1]

    def failure(self, *stages: Stage, reporter: Check | None = None) -> Problem | None:
        """The first recorded problem among `stages`, for a check that needs them. A failure is the
        problem itself for the check that reports it (`reporter`); for any other check it is inconclusive and
        points at that one, so that a broken server fails one check, not every check with the same text."""
        if self.target.unavailable:
            return Problem(self.target.unavailable)
        for stage in stages:
            problem = self.errors.get(stage)
            if problem is None:
                continue
            if problem.inconclusive or not problem.check or problem.check == reporter:
                return problem
            return Problem(f"{self.target.name}: see {problem.check}: {problem.cause}")
        return None


async def observe(targets: Sequence[Target], settings: Settings) -> dict[str, Observation]:
    gateway = Target(name="gateway", base_url=settings.vllm_gateway_url) if settings.vllm_gateway_url else None
    slots = asyncio.Semaphore(settings.vllm_concurrency)
    async with Clients() as clients:

        async def bounded(target: Target) -> Observation:
            async with slots:
                return await _observe_one(clients.get(target), target, settings,
                                          clients.get(gateway) if gateway else None)

        results = await asyncio.gather(*(bounded(target) for target in targets))
    return {obs.target.name: obs for obs in results}


async def _observe_one(client: httpx.AsyncClient, target: Target, settings: Settings,
                       gateway: httpx.AsyncClient | None) -> Observation:
    obs = Observation(target)
    if target.unavailable:
        return obs
    try:
        await _stages(client, obs, settings, gateway)
    except Exception as exc:  # one broken target never stops the others
        # the stage that was running: the first one without a result
        stage = Stage.BEFORE if obs.before is None else Stage.TRAFFIC if obs.traffic is None else Stage.AFTER
        obs.errors[stage] = Problem(f"{target.name}: unexpected {type(exc).__name__} while checking this server, so "
                                    f"the checks that need it could not observe it. Please report it with the "
                                    f"server's /metrics page.")
    return obs


async def _stages(client: httpx.AsyncClient, obs: Observation, settings: Settings,
                  gateway: httpx.AsyncClient | None) -> None:
    target, timeout, cap = obs.target, settings.vllm_timeout, settings.vllm_phase_timeout
    try:
        obs.before = await scrape(client, target, settings.vllm_metrics_path, timeout)
    except FetchError as exc:
        # One problem for every stage that could not happen: the reports state it once per target.
        obs.errors[Stage.BEFORE] = obs.errors[Stage.TRAFFIC] = obs.errors[Stage.AFTER] = _scrape_problem(exc)
        return
    if target.engine is Engine.VLLM:  # vLLM's /version; other engines' as discovery knows it, if it does
        obs.version = await _version(client, target, timeout, obs)
    else:
        obs.version = target.engine_version
    if settings.vllm_upgrade_to:
        # What goes dark in an upgrade is read from the page and the version: no workload, no second scrape.
        obs.errors[Stage.TRAFFIC] = obs.errors[Stage.AFTER] = Problem(
            f"{target.name}: no workload is sent with --vllm-upgrade-to (the run only scrapes); run without it "
            f"for the checks that need the workload.")
        return
    traffic_target, traffic_client = target, client
    proxied = target.source is TargetSource.KUBERNETES and target.detail.get("transport") == "proxy"
    if settings.vllm_api_key and proxied and gateway is None:
        # The API server authenticates the suite by the Authorization header and does not pass it on, so a
        # vLLM API key cannot reach the pod through its proxy.
        obs.errors[Stage.TRAFFIC] = Problem(
            f"{target.name}: the workload cannot carry the vLLM API key through the API server's pod proxy (the "
            f"API server takes the Authorization header for itself). Run inside the cluster with "
            f"--vllm-transport=direct, or send the workload through --vllm-gateway-url."
        )
        return await _scrape_after(client, obs, settings)
    if gateway is not None and settings.vllm_gateway_url:
        # Through the inference gateway: the endpoint picker chooses the pod, as for real users.
        traffic_target = Target(name=f"{target.name} via gateway", base_url=settings.vllm_gateway_url)
        traffic_client = gateway
    workload = Workload(traffic_client, traffic_target, model=settings.vllm_model, api_key=settings.vllm_api_key,
                        requests=settings.vllm_requests, max_tokens=settings.vllm_max_tokens, timeout=timeout,
                        exclusive=settings.vllm_exclusive)
    try:
        obs.traffic = await asyncio.wait_for(workload.run(obs.block_size), cap)
    except TimeoutError:
        obs.traffic = workload.partial
        obs.traffic.error = (f"the workload phase reached its cap of {cap:g} s (--vllm-phase-timeout) after "
                             f"{len(obs.traffic.records)} of {settings.vllm_requests} requests; raise the cap or "
                             f"send fewer requests")
    if obs.traffic.error:  # no workload, or only part of it: the run could not observe what it needs
        obs.errors[Stage.TRAFFIC] = Problem(f"{target.name}: {obs.traffic.error}",
                                        inconclusive=not obs.traffic.server_failed, check=Check.WORKLOAD_SERVED,
                                        cause=_first_sentence(obs.traffic.error))
    elif not obs.traffic.requests:
        # The server answered every request with an error of its own: it does not serve (a failure).
        obs.errors[Stage.TRAFFIC] = Problem(f"{target.name}: every workload request failed: {obs.traffic.summary()}",
                                        inconclusive=False, check=Check.WORKLOAD_SERVED,
                                        cause="every workload request failed")
    await _scrape_after(client, obs, settings)
    if Stage.TRAFFIC not in obs.errors and Stage.AFTER not in obs.errors and gateway is None:
        # After the second scrape, so that what the aborted requests count never enters the exact accounting.
        if target.engine is not Engine.VLLM:
            # the model-server protocol's gauges under load and back at idle (vLLM's: --vllm-exclusive)
            profile = engines.profile(target.engine)
            obs.aborts = await _abort_probe(client, workload, obs, settings, {
                spec.text: (spec.name, spec.labels) for spec in profile.selectors().values()},
                profile.required[Metric.RUNNING], profile.settle_seconds)
        elif settings.vllm_exclusive:
            probe = gauge_probe()
            obs.aborts = await _abort_probe(client, workload, obs, settings, {
                name: (name, {}) for name in probe.names}, "vllm:num_requests_running", probe.wait_seconds)


def gauge_probe() -> schemas.AbortGauges:
    """The gauges that must return to 0 after aborted requests, and the probe's bounds (accounting.toml)."""
    return data.accounting().gauges


async def _abort_probe(client: httpx.AsyncClient, workload: Workload, obs: Observation, settings: Settings,
                       read: Mapping[str, tuple[str, Mapping[str, str]]], running: str, wait: float) -> Aborts:
    """Close streaming requests mid-way, then poll /metrics (bounded by `wait`) until the gauges read 0 again.
    `read`: each gauge's name in the record -> its family and label matchers; `running`: the one that shows the
    streams were picked up."""
    probe = gauge_probe()
    path, timeout = settings.vllm_metrics_path, settings.vllm_timeout

    async def gauges() -> dict[str, float | None]:
        page = await scrape(client, obs.target, path, timeout)
        return {key: page.value(name, labels) for key, (name, labels) in read.items()}

    async def while_open() -> None:
        # an engine updates its gauges at its next step, which may come after the first token is read
        deadline = time.monotonic() + probe.during_seconds
        aborts.during = await gauges()
        while not aborts.during.get(running) and time.monotonic() < deadline:
            await asyncio.sleep(probe.poll_seconds)
            aborts.during = await gauges()

    aborts = Aborts()
    try:
        await workload.abort_streams(aborts, probe.streams, probe.max_tokens, while_open)
        if aborts.error or not aborts.aborted:
            return aborts
        closed = time.monotonic()
        aborts.waited = min(wait, settings.vllm_phase_timeout)
        while True:  # a bounded poll: the server refreshes its gauges at its next scheduler step
            aborts.after = await gauges()
            aborts.polls += 1
            if all(not value for value in aborts.after.values()):
                aborts.settled_after = time.monotonic() - closed
                return aborts
            if time.monotonic() - closed >= aborts.waited:
                return aborts
            await asyncio.sleep(probe.poll_seconds)
    except FetchError as exc:
        aborts.error = str(exc)
    return aborts


_SETTLE_SECONDS = 3.0  # exclusive runs: how long the last requests' counts may take to reach /metrics
_SETTLE_POLL = 0.1


async def _scrape_after(client: httpx.AsyncClient, obs: Observation, settings: Settings) -> None:
    try:
        obs.after = await scrape(client, obs.target, settings.vllm_metrics_path, settings.vllm_timeout)
        # vLLM records a step's stats just after handing its outputs to the requests: an answer can reach the
        # suite before its counts reach /metrics. Exact accounting waits (bounded) for every finished choice.
        expected = obs.traffic.choices if settings.vllm_exclusive and obs.traffic else 0
        deadline = time.monotonic() + _SETTLE_SECONDS
        while obs.before is not None and expected and time.monotonic() < deadline:
            if Delta(obs.before, obs.after).increase("vllm:request_success_total") >= expected:
                break
            await asyncio.sleep(_SETTLE_POLL)
            obs.after = await scrape(client, obs.target, settings.vllm_metrics_path, settings.vllm_timeout)
    except FetchError as exc:
        obs.errors[Stage.AFTER] = _scrape_problem(exc)


def _scrape_problem(exc: FetchError) -> Problem:
    """A scrape of /metrics that failed: test_reachable reports it, the checks that need the page point at it.
    A server that answered wrongly or not at all (connection refused or closed) is not reachable: a failure."""
    return Problem(str(exc), exc.inconclusive and not exc.unanswered, check=Check.REACHABLE, cause=exc.cause)


def _first_sentence(text: str) -> str:
    return text.split(". ", 1)[0].rstrip(".")


async def _version(client: httpx.AsyncClient, target: Target, timeout: float, obs: Observation) -> str | None:
    try:
        status, _, body = await get_text(client, target, "/version", timeout)
    except FetchError as exc:
        obs.errors[Stage.VERSION] = Problem(str(exc), exc.inconclusive, check=Check.VERSION, cause=exc.cause)
        return None
    try:
        version = json.loads(body)["version"] if status == 200 else None
    except (ValueError, KeyError, TypeError):
        version = None
    if not isinstance(version, str):
        shown = f"GET {shown_path(target, '/version')} answered HTTP {status} without a version"
        obs.errors[Stage.VERSION] = Problem(
            f'{target.name}: {shown}; every vLLM serves {{"version": "..."}} there. Version-dependent checks '
            f"assume the newest vLLM.", inconclusive=False, check=Check.VERSION, cause=shown
        )
        return None
    return version
