"""Fixtures for the bundled suite and for users' own tests.

    def test_my_counter(vllm_delta):           # runs once per target
        assert vllm_delta.increase("vllm:prompt_tokens_total") > 0
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from .catalog import Catalog
from .epp_config import judge as judge_epp
from .gate import LevelError, level_of
from .judging import judge_reader
from .kube import ClusterInfo
from .observe import Check, Observation, Stage
from .outcome import Level, Outcome, Verdict
from .readers import Reader
from .run import RUN_KEY, PrometheusState, Run
from .scrape import Clients, FetchError, scrape
from .settings import Policy, Settings
from .snapshot import Delta, Snapshot
from .targets import Target, TargetSource
from .traffic import TrafficResult, Workload

VERDICT_KEY = pytest.StashKey[Verdict]()


def _run(request: pytest.FixtureRequest) -> Run:
    return request.config.stash[RUN_KEY]


@pytest.fixture(scope="session")
def vllm_settings(request: pytest.FixtureRequest) -> Settings:
    """The resolved settings of this run."""
    return _run(request).settings


@pytest.fixture(scope="session")
def vllm_policy(vllm_settings: Settings) -> Policy:
    """The few settings the checks read: required and exempt features, gateway, namespace."""
    return vllm_settings.policy


@pytest.fixture(scope="session")
def vllm_catalog(request: pytest.FixtureRequest) -> Catalog:
    """The metric catalog: the bundled entries plus --vllm-catalog files."""
    return _run(request).catalog


@pytest.fixture(scope="session")
def vllm_targets(request: pytest.FixtureRequest) -> list[Target]:
    """Every target of the run (simulators are started here)."""
    return _run(request).targets()


@pytest.fixture(scope="session")
def vllm_cluster(request: pytest.FixtureRequest) -> ClusterInfo:
    """The Kubernetes cluster of --vllm-namespace: `api_client`, `context`, `server`, `version`, `notes`."""
    cluster = _run(request).cluster()
    if cluster is None:
        pytest.skip("no Kubernetes namespace: pass --vllm-namespace")
    return cluster


@pytest.fixture(scope="session")
def vllm_pods(vllm_targets: list[Target]) -> list[Target]:
    """The discovered pods (Ready or not) as Targets with node, arch and labels."""
    return [target for target in vllm_targets if target.source is TargetSource.KUBERNETES]


@pytest.fixture(scope="session")
def vllm_prometheus(request: pytest.FixtureRequest) -> PrometheusState:
    """The Prometheus of --prometheus-url (`.prom` to query), synced with the workload once."""
    run = _run(request)
    if not run.settings.prometheus_url:
        pytest.skip("no Prometheus: pass --prometheus-url")
    return run.prometheus()


@pytest.fixture
def vllm_judge_panel(request: pytest.FixtureRequest) -> Callable[[Reader], Verdict]:
    """Judges a Grafana panel or another consumer of the metrics (a `readers.Reader`) against every observed
    target, and against Prometheus when --prometheus-url is given (within the wait all panels share)."""
    run = _run(request)
    observations = list(request.getfixturevalue("vllm_observations").values())
    prom, wait = None, None
    if run.settings.prometheus_url:
        state = request.getfixturevalue("vllm_prometheus")
        if not state.error:
            prom, wait = state.prom, state.panel_wait()

    def judge(panel: Reader) -> Verdict:
        if panel.epp is not None:  # an endpoint picker's configuration: read per engine, as the EPP reads pages
            return judge_epp(panel.epp, observations)
        return judge_reader(panel, observations, run.catalog, run.settings.policy, prom, wait)

    return judge


@pytest.fixture(scope="session")
def vllm_observations(request: pytest.FixtureRequest) -> dict[str, Observation]:
    """Per target name: version, scrape before, workload, scrape after. Computed once per session (under
    pytest-xdist, once for all workers: see `Run.observations`)."""
    worker = getattr(request.config, "workerinput", None)
    if worker is None:
        return _run(request).observations()
    # pytest-xdist's documented way to share a session resource: files in the workers' common temp directory.
    base = request.getfixturevalue("tmp_path_factory").getbasetemp().parent
    shared = base / f"vllm-observation-{worker['testrunuid']}"
    place = (int(worker["workerid"].removeprefix("gw")), int(worker["workercount"]))
    return _run(request).observations(shared, place)


@pytest.fixture(scope="session")
def vllm_target(request: pytest.FixtureRequest, vllm_targets: list[Target]) -> Target:
    """The target of this test; tests using it (or a fixture built on it) run once per target."""
    name = request.param
    return next(target for target in vllm_targets if target.name == name)


@pytest.fixture
def vllm_observation(vllm_target: Target, vllm_observations: dict[str, Observation]) -> Observation:
    """The session's observation of this test's target."""
    return vllm_observations[vllm_target.name]


@pytest.fixture
def vllm_delta(vllm_observation: Observation) -> Delta:
    """Before/after snapshots of this test's target around the workload: `vllm_delta.increase(name)`."""
    # a user's own test states the scrape's problem in full: test_reachable may not be in the run
    problem = vllm_observation.failure(Stage.BEFORE, Stage.AFTER, reporter=Check.REACHABLE)
    if problem or vllm_observation.delta is None:
        pytest.fail(problem.message if problem else f"{vllm_observation.target.name}: no before/after snapshots",
                    pytrace=False)
    return vllm_observation.delta


class Scraper:
    """Scrape a target on demand: `vllm_scraper.scrape(target) -> Snapshot`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def scrape(self, target: Target) -> Snapshot:
        async def once() -> Snapshot:
            async with Clients() as clients:
                return await scrape(clients.get(target), target, self.settings.vllm_metrics_path,
                                    self.settings.vllm_timeout)

        try:
            return asyncio.run(once())
        except FetchError as exc:
            problem = str(exc)
        # failed outside the except block: the report shows the cause once, not "during handling of" it again
        pytest.fail(problem, pytrace=False)


@pytest.fixture(scope="session")
def vllm_scraper(vllm_settings: Settings) -> Scraper:
    return Scraper(vllm_settings)


@pytest.fixture(scope="session")
def vllm_workload(vllm_settings: Settings) -> Callable[..., TrafficResult]:
    """Send the bounded workload to a target again: `vllm_workload(target, requests=4)`."""

    def send(target: Target, requests: int | None = None, block_size: int | None = None) -> TrafficResult:
        async def go() -> TrafficResult:
            async with Clients() as clients:
                client = clients.get(target)
                size = block_size
                if size is None:  # the server's own KV block size, read as the session's observation reads it
                    try:
                        page: Snapshot | None = await scrape(client, target, vllm_settings.vllm_metrics_path,
                                                             vllm_settings.vllm_timeout)
                    except FetchError:
                        page = None
                    size = Observation(target, before=page).block_size
                workload = Workload(client, target, model=vllm_settings.vllm_model,
                                    api_key=vllm_settings.vllm_api_key,
                                    requests=min(requests or vllm_settings.vllm_requests, 64),
                                    max_tokens=vllm_settings.vllm_max_tokens, timeout=vllm_settings.vllm_timeout)
                return await workload.run(size)

        return asyncio.run(go())

    return send


@pytest.fixture
def vllm_level(request: pytest.FixtureRequest) -> Level:
    """This check's level (MUST, SHOULD or MAY), read from its one must/should/may mark: on the test function, its
    class or module, or on its parameter (the catalog's checks get theirs from their entry). A test without one,
    or with several, errs saying so."""
    try:
        return level_of(request.node)
    except LevelError as exc:
        problem = str(exc)
    pytest.fail(problem, pytrace=False)  # outside the except block, as in Scraper.scrape


@pytest.fixture
def vllm_enforce(request: pytest.FixtureRequest) -> Callable[[Verdict], None]:
    """Turn a Verdict into the pytest outcome, and keep it on the item for the reports."""

    def enforce(verdict: Verdict) -> None:
        request.node.stash[VERDICT_KEY] = verdict
        if verdict.outcome == Outcome.SKIPPED:
            pytest.skip(verdict.message)
        if verdict.outcome == Outcome.INCONCLUSIVE:
            # Not a pass and not a failure: pytest skips it, and the report hooks show it as INCONCLUSIVE and
            # set the run's exit code. Its cause is printed once per target, not once per check.
            pytest.skip(f"inconclusive: {verdict.message.splitlines()[0]}")
        if verdict.outcome == Outcome.XFAILED:
            # Decided once the target's architecture and version are known, so it cannot be a static mark.
            request.applymarker(pytest.mark.xfail(reason=verdict.diagnosis or verdict.message, strict=False))
            pytest.fail(verdict.message, pytrace=False)
        if verdict.outcome == Outcome.FAILED:
            pytest.fail(verdict.message, pytrace=False)

    return enforce
