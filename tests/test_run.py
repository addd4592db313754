"""The state of one pytest run (run.py): one observation per session, the targets it checks (its shard's), the
slices pytest-xdist's workers share, and close(). In process against simulated servers over real HTTP, and as
users run pytest with -n."""

from __future__ import annotations

import asyncio
import fnmatch
import gc
import itertools
import json
import pickle
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from filelock import FileLock

from conftest import (
    CLUSTER_VERDICTS,
    MONITORING,
    NS,
    PrivateCA,
    PrometheusAPI,
    closed_url,
    dashboard_file,
    deployment,
    json_report,
    name_of,
    panel_json,
    run_suite,
    vector,
    write_kubeconfig,
)
from pytest_vllm_metrics.catalog import load_catalog
from pytest_vllm_metrics.engines import Engine
from pytest_vllm_metrics.observe import Observation, Stage
from pytest_vllm_metrics.outcome import Problem
from pytest_vllm_metrics.prometheus import Held, Prometheus
from pytest_vllm_metrics.readers import load_dashboards
from pytest_vllm_metrics.run import PrometheusState, Run
from pytest_vllm_metrics.settings import Settings
from pytest_vllm_metrics.shard import Shard
from pytest_vllm_metrics.sim import SimHost, get_profile
from pytest_vllm_metrics.sim.kubeapi import ALL, Cluster, KubeDouble, build_app
from pytest_vllm_metrics.snapshot import Snapshot
from pytest_vllm_metrics.targets import Balancing, DataParallel, Target, TargetSource, host_port

# a generous timeout: the simulated servers must answer in time on a loaded machine too
REPORTED = ("--vllm-timeout=30", "--vllm-report=report.json")


def of(*urls: str, **settings: Any) -> Run:
    return Run(Settings(vllm_url=urls, vllm_requests=2, vllm_timeout=30.0, **settings), load_catalog())


# -- one observation per session -------------------------------------------------------------------------------


def test_the_session_observes_each_server_once(sim_host: SimHost) -> None:
    sim = sim_host.start(get_profile("x86_64"))
    run = of(sim.url)
    first = run.observations()
    assert run.observations() is first and run.observed() is first
    assert list(first) == [name_of(sim.url)] and first[name_of(sim.url)].errors == {}
    assert _requests_served(sim.url) == 2  # one workload of --vllm-requests


def test_a_run_that_observed_nothing_has_no_observations(sim_host: SimHost) -> None:
    sim = sim_host.start(get_profile("x86_64"))
    run = of(sim.url)
    assert run.observed() == {}
    run.close()
    assert run.observations() == {}  # closed: nothing observes the servers again
    assert _requests_served(sim.url) == 0


def test_close_frees_the_observations_and_stops_the_simulators() -> None:
    run = Run(Settings(vllm_sim=("x86_64",), vllm_requests=1, vllm_timeout=30.0), load_catalog())
    (target,) = run.targets()
    assert run.observations()[target.name].traffic is not None
    run.close()
    assert run.observed() == {}
    with pytest.raises(httpx.ConnectError):
        httpx.get(target.url("/metrics"), timeout=30)
    run.close()  # closed twice (pytest may): nothing more to stop


def test_the_simulators_are_targets_of_their_profile() -> None:
    run = Run(Settings(vllm_sim=("x86_64-dp", "x86_64"), vllm_api_key="sk-1"), load_catalog())
    try:
        dp, plain = run.targets()
        assert (dp.name, dp.source, dp.arch, dict(dp.detail)) == (
            "sim-x86_64-dp", TargetSource.SIM, "amd64", {"profile": "x86_64-dp", "simulated vLLM": "0.32.0"})
        # a data-parallel profile runs --data-parallel-hybrid-lb: its engines are known
        assert dp.data_parallel == DataParallel(size_local=8, start_rank=8, balancing=Balancing.HYBRID)
        assert plain.data_parallel is None
        # the run's API key is the simulators' own
        assert httpx.get(plain.url("/v1/models"), timeout=30).status_code == 401
        assert httpx.get(plain.url("/v1/models"), headers={"Authorization": "Bearer sk-1"}, timeout=30).is_success
    finally:
        run.close()


def test_each_engines_simulator_is_a_target_of_that_engine_with_its_version() -> None:
    run = Run(Settings(vllm_sim=("x86_64", "sglang-0.5.9", "triton-tensorrt-llm")), load_catalog())
    try:
        # vLLM says its version at /version; another engine's is its profile's
        assert [(t.name, t.engine, dict(t.detail), t.engine_version) for t in run.targets()] == [
            ("sim-x86_64", Engine.VLLM, {"profile": "x86_64", "simulated vLLM": "0.32.0"}, None),
            ("sim-sglang-0.5.9", Engine.SGLANG, {"profile": "sglang-0.5.9", "simulated sglang": "0.5.9"}, "0.5.9"),
            ("sim-triton-tensorrt-llm", Engine.TRITON_TENSORRT_LLM,
             {"profile": "triton-tensorrt-llm", "simulated triton-tensorrt-llm": "25.12"}, "25.12")]
    finally:
        run.close()


def test_url_targets_are_of_the_runs_architecture_and_engine() -> None:
    run = Run(Settings(vllm_url=("http://127.0.0.1:9001",), vllm_arch="arm64",
                       vllm_engine=Engine.TRITON_TENSORRT_LLM), load_catalog())
    (target,) = run.targets()
    # Triton serves its page on a port of its own (8002) of the same host
    assert (target.arch, target.engine, target.metrics_base_url) == (
        "arm64", Engine.TRITON_TENSORRT_LLM, "http://127.0.0.1:8002")


# -- the targets of a shard -----------------------------------------------------------------------------------


def test_a_shard_checks_its_slice_and_knows_the_whole_fleet() -> None:
    urls = ("http://127.0.0.1:9001", "http://127.0.0.1:9002", "http://127.0.0.1:9003")
    names = [name_of(url) for url in urls]
    assert of(*urls).target_names() == names
    first, second = of(*urls, vllm_shard=Shard(0, 2)), of(*urls, vllm_shard=Shard(1, 2))
    assert first.fleet_names() == second.fleet_names() == names
    assert first.target_names() == [names[0], names[2]] and second.target_names() == [names[1]]
    assert [t.name for t in second.targets()] == [names[1]]


@pytest.mark.parametrize(("shard", "started"), [(Shard(1, 2), "sim-x86_64"), (Shard(0, 2), "sim-arm64-cpu")])
def test_another_shards_simulators_are_not_started(shard: Shard, started: str) -> None:
    run = Run(Settings(vllm_sim=("x86_64", "arm64-cpu"), vllm_shard=shard), load_catalog())
    try:
        # the shards deal the fleet in the order of the names: sim-arm64-cpu is shard 0's, sim-x86_64 shard 1's
        assert [t.name for t in run.targets()] == [started]
        assert run.fleet_names() == ["sim-x86_64", "sim-arm64-cpu"]
        assert len(run._sim_host.servers) == 1  # type: ignore[attr-defined]  # no server nobody checks
    finally:
        run.close()


# -- discovery on Kubernetes, and the cluster's own readers of the metrics -----------------------------------------


def _on(kubeconfig: Path, **settings: Any) -> Run:
    """A run on the pods of namespace NS of the cluster `kubeconfig` names."""
    return Run(Settings(vllm_namespace=NS, kubeconfig=str(kubeconfig), **{"vllm_timeout": 30.0, **settings}),
               load_catalog())


def test_a_namespaces_pods_are_found_once_with_the_runs_selector_port_and_context(
        double: KubeDouble, tmp_path: Path) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "kc", double, "admin", extra_contexts=("prod",))
    run = _on(kubeconfig, kube_context="prod", vllm_selector="llm-d.ai/inferenceServing=true", vllm_port="proxy")
    assert run.cluster() is None  # nothing discovered before the targets are asked for
    (target,) = run.targets()  # the pod of the old label spelling only
    assert target.name == "decode-amd64"
    assert target.base_url == f"{double.url}/api/v1/namespaces/{NS}/pods/decode-amd64:8000/proxy"  # its port "proxy"
    assert dict(target.detail) == {"namespace": NS, "node": "node-a", "arch": "amd64", "transport": "proxy",
                                   "container": "vllm"}
    cluster = run.cluster()
    assert cluster is not None
    assert (cluster.context, cluster.namespace, cluster.selectors) == ("prod", NS, ("llm-d.ai/inferenceServing=true",))
    assert run.kube_targets() == [target] and run.cluster() is cluster  # discovered once


def test_the_pods_without_the_container_the_run_names_are_reported_not_checked(
        double: KubeDouble, tmp_path: Path) -> None:
    run = _on(write_kubeconfig(tmp_path / "kc", double, "admin"), vllm_container="sidecar")
    assert [(t.name, t.unavailable) for t in run.targets()] == [
        (pod, f"{pod}: has no container 'sidecar' (its containers: vllm); check --vllm-container.")
        for pod in ("decode-amd64", "decode-arm64")]


def test_a_context_the_kubeconfig_lacks_stops_the_run_naming_the_ones_it_has(
        double: KubeDouble, tmp_path: Path) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "kc", double, "admin")
    with pytest.raises(pytest.UsageError) as stopped:
        _on(kubeconfig, kube_context="elsewhere").target_names()
    assert str(stopped.value) == (f"context 'elsewhere' is not in kubeconfig {kubeconfig}; its contexts are test. "
                                  f"Pass one with --kube-context.")


def test_a_shard_deals_the_pods_after_the_urls_in_the_order_of_their_namespace(
        double: KubeDouble, tmp_path: Path) -> None:
    # (namespace, name): the URL (no namespace) first, then decode-amd64 and decode-arm64 of NS
    run = _on(write_kubeconfig(tmp_path / "kc", double, "admin"), vllm_url=("http://localhost:9001",),
              vllm_shard=Shard(0, 2))
    assert run.fleet_names() == ["localhost:9001", "decode-amd64", "decode-arm64"]
    assert run.target_names() == ["localhost:9001", "decode-arm64"]


def test_the_clusters_readers_join_the_runs_own_once_its_pods_are_discovered(
        consumers_cluster: Cluster, sim_host: SimHost, tmp_path: Path) -> None:
    double = KubeDouble(sim_host, consumers_cluster)
    # the run's own dashboard, over a series a recording rule of the cluster makes
    own = load_dashboards([dashboard_file(tmp_path / "own.json", [
        panel_json("Hits", "sum(namespace:vllm_prefix_cache_hits:rate1m)")])])
    run = Run(Settings(vllm_namespace=NS, grafana_namespace=MONITORING, vllm_timeout=30.0,
                       kubeconfig=str(write_kubeconfig(tmp_path / "kc", double, "admin"))), load_catalog(), own)
    run.read_cluster_consumers()  # no cluster yet: nothing read
    assert ([p.id for p in run.panels], run.consumers) == (["own::Hits"], [])

    run.target_names()  # discovery, at collection
    run.read_cluster_consumers()
    # the sidecar's and the Grafana Operator's dashboards of the Grafana namespace that read vLLM
    assert Counter(p.dashboard for p in run.panels) == {"own": 1, "llm-d-failure-saturation": 4,
                                                        "vllm-performance-gzipped": 12,
                                                        "vllm-performance-old-from-configmap": 5}
    # the rules, then prometheus-adapter's, KEDA's and the endpoint picker's
    rules = [test for test in CLUSTER_VERDICTS if test.startswith(("record:", "alert:"))]
    consumers = rules + [test for kind in ("adapter:", "keda:", "epp:") for test in CLUSTER_VERDICTS
                         if test.startswith(kind)]
    assert [f"{c.kind}:{c.id}" for c in run.consumers] == consumers
    adapter = next(c for c in run.consumers if c.id == "prometheus-adapter::vllm_kv_cache_usage")
    assert adapter.exprs[1] == f'max(vllm:gpu_cache_usage_perc{{namespace="{NS}"}})'  # the pods' namespace
    # the run's own panel is judged by the recording rule's test, not as a missing vLLM metric
    assert "namespace:vllm_prefix_cache_hits:rate1m" in run.panels[0].recorded
    cluster = run.cluster()
    assert cluster is not None
    notes = list(cluster.notes)
    assert [note.split(" (")[0] for note in notes] == [
        f"not checked: dashboard namespace {MONITORING}",
        f'ConfigMap {MONITORING}/prometheus-adapter, key config.yaml, rule externalRules[2]: its seriesQuery '
        f'{{__name__=~"^vllm:.*_total$"}} selects series by a name pattern, not one metric; not checked']

    panels, consumers_read = [p.id for p in run.panels], list(run.consumers)
    run.read_cluster_consumers()  # asked again (at every collection): read once
    assert ([p.id for p in run.panels], run.consumers, cluster.notes) == (panels, consumers_read, notes)


def test_the_runs_timeout_bounds_discovery_and_the_read_of_the_clusters_readers(
        consumers_cluster: Cluster, sim_host: SimHost, tmp_path: Path) -> None:
    """/version and KEDA's list hold their answer until the test ends: both calls time out after --vllm-timeout,
    whatever the machine's speed, and the run goes on with a note of each."""
    app = build_app(consumers_cluster)
    released = threading.Event()

    @web.middleware
    async def stalled(request: web.Request, handler: Callable[..., Any]) -> web.StreamResponse:
        if request.path.rstrip("/") == "/version" or request.path.endswith("/scaledobjects"):
            await asyncio.get_running_loop().run_in_executor(None, released.wait, 60.0)
        return await handler(request)  # type: ignore[no-any-return]

    app.middlewares.append(stalled)
    kubeconfig = tmp_path / "kc"
    kubeconfig.write_text(json.dumps(KubeDouble.kubeconfig(sim_host.start_app(app), "admin", namespace=NS)))
    run = _on(kubeconfig, grafana_namespace=MONITORING, vllm_timeout=3.0)
    try:
        assert run.target_names() == ["decode-amd64", "decode-arm64"]
        run.read_cluster_consumers()
    finally:
        released.set()
    cluster = run.cluster()
    assert cluster is not None
    version, keda = cluster.notes[:2]
    assert fnmatch.fnmatch(version, "Kubernetes version unknown (informational only): GET /version failed (*timed "
                                    "out*)"), version
    assert fnmatch.fnmatch(keda, f"scaledobjects.keda.sh in namespace {NS} not checked: listing them failed (*timed "
                                 f"out*)"), keda
    assert [c.kind for c in run.consumers].count("keda") == 0 and run.consumers  # the other reads were made


# -- what the session keeps -----------------------------------------------------------------------------------


def test_the_observation_stays_out_of_the_collectors_scans_until_close(sim_host: SimHost) -> None:
    run = of(sim_host.start(get_profile("x86_64")).url)
    observed = run.observations()
    assert not any(o is observed for o in gc.get_objects())  # frozen: not among what the collector scans
    assert run.observations() is observed  # asked again: the same observation
    run.close()
    assert gc.get_freeze_count() == 0  # given back: collectable again after the session
    assert any(o is observed for o in gc.get_objects())  # and scanned again
    gc.freeze()  # what another part of the process keeps out of the scans
    frozen = gc.get_freeze_count()
    try:
        run.close()  # closed twice (pytest may): what it gave back is not given back again
        # a frozen object freed meanwhile (under a tracer) lowers the count a little
        assert frozen - 1000 < gc.get_freeze_count() <= frozen
    finally:
        gc.unfreeze()


def test_keeping_the_session_collects_only_the_young_garbage_before_it() -> None:
    # a full collection scans the whole heap, which a fleet's objects make slow; the young generations are cheap
    run = of("http://127.0.0.1:9")
    collected: list[int] = []

    def seen(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collected.append(info["generation"])

    gc.callbacks.append(seen)
    try:
        run.keep()
    finally:
        gc.callbacks.remove(seen)
        run.close()
    assert collected == [1]


def test_a_process_that_ends_with_the_session_keeps_it_out_of_the_scans(sim_host: SimHost) -> None:
    # a pytest-xdist worker: its interpreter's exit would scan the whole heap again; nothing is given back
    run = of(sim_host.start(get_profile("x86_64")).url)
    survivor = {"still": "here"}  # something the session leaves alive, as pytest's own objects
    run.observations()
    try:
        run.close(process_ends=True)
        assert run.observed() == {} and gc.get_freeze_count() > 0
        assert not any(o is survivor for o in gc.get_objects())  # frozen with the rest
        run.close(process_ends=True)  # closed twice (pytest may): nothing more to do
    finally:
        gc.unfreeze()


@pytest.mark.spawns
def test_a_process_that_goes_on_gets_its_heap_back_and_freezes_it_only_as_it_exits(
        sim_host: SimHost, tmp_path: Path) -> None:
    # pytest run in-process, then the process goes on: collectable after the session, out of the scans at exit
    url = sim_host.start(get_profile("x86_64")).url
    script = tmp_path / "in_process.py"
    script.write_text(f"""
import atexit, gc, sys
atexit.register(lambda: print("frozen at exit:", gc.get_freeze_count() > 0))  # runs after the plugin's own
code = __import__("pytest").main(["-q", "-p", "no:cacheprovider", "--vllm-url={url}", "-k", "test_reachable"])
print("frozen after the session:", gc.get_freeze_count() > 0)
sys.exit(code)
""")
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-2:] == ["frozen after the session: False", "frozen at exit: True"]


def test_a_run_that_kept_nothing_leaves_what_others_froze_alone() -> None:
    gc.freeze()
    frozen = gc.get_freeze_count()
    try:
        of("http://127.0.0.1:9").close()
        # neither unfrozen nor frozen more; a frozen object freed meanwhile (under a tracer) lowers the count a little
        assert frozen - 1000 < gc.get_freeze_count() <= frozen
    finally:
        gc.unfreeze()


# -- the slices of pytest-xdist's workers ----------------------------------------------------------------------


def test_a_worker_observes_its_slice_then_any_slice_no_worker_asked_for(sim_host: SimHost, tmp_path: Path) -> None:
    sims = [sim_host.start(get_profile("x86_64")) for _ in range(3)]
    urls = [sim.url for sim in sims]
    shared = tmp_path / "vllm-observation"
    observed = of(*urls).observations(shared, (1, 2))
    assert list(observed) == [name_of(url) for url in urls]  # in the run's order
    assert [_requests_served(url) for url in urls] == [2, 2, 2]
    # the worker of index 1 has the second server; slice 0 (the first and the third) no worker had asked for
    slices = {path.name: sorted(pickle.loads(path.read_bytes())) for path in tmp_path.glob("vllm-observation.[0-9]")}
    assert slices == {"vllm-observation.0": sorted([name_of(urls[0]), name_of(urls[2])]),
                      "vllm-observation.1": [name_of(urls[1])]}


def test_the_other_worker_reads_the_stored_slices_with_its_own_targets(sim_host: SimHost, tmp_path: Path) -> None:
    sims = [sim_host.start(get_profile("x86_64")) for _ in range(2)]
    urls = [sim.url for sim in sims]
    shared = tmp_path / "vllm-observation"
    first = of(*urls).observations(shared, (0, 2))
    other = of(*urls)
    second = other.observations(shared, (1, 2))
    assert [_requests_served(url) for url in urls] == [2, 2]  # no second workload
    assert list(second) == list(first)
    for name, obs in second.items():
        # its own target (with its connection options), not the pickled copy
        assert any(obs.target is mine for mine in other.targets())
        assert obs.traffic is not None and obs.traffic.requests == first[name].traffic.requests  # type: ignore[union-attr]


def test_each_worker_describes_the_servers_it_observed_and_the_controller_puts_them_in_the_runs_order(
        sim_host: SimHost, tmp_path: Path) -> None:
    sims = [sim_host.start(get_profile(profile)) for profile in ("x86_64", "arm64-cpu", "x86_64")]
    urls = [sim.url for sim in sims]
    shared = tmp_path / "vllm-observation"
    workers = [of(*urls), of(*urls)]
    workers[1].observations(shared, (1, 2))  # the second worker first: its slice, then slice 0 no worker asked for
    workers[0].observations(shared, (0, 2))  # reads slice 0
    parts = [worker.implementations_observed_here() for worker in workers]
    assert [[position for position, _ in part] for part in parts] == [[], [0, 1, 2]]  # the second observed all
    controller = of(*urls)
    for part in reversed(parts):
        controller.add_worker_implementations(part)
    assert [found["target"] for found in controller.implementations()] == [name_of(url) for url in urls]
    assert [found["vllmVersion"] for found in controller.implementations()] == [
        get_profile(profile).version for profile in ("x86_64", "arm64-cpu", "x86_64")]


@pytest.mark.parametrize(("servers", "concurrency", "bound"), [(1, 1, 300), (2, 2, 300), (3, 2, 540)])
def test_a_worker_that_waits_past_the_bound_for_another_says_so_of_every_server_of_the_slice(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, servers: int, concurrency: int, bound: int) -> None:
    # Another worker holds the slice and never finishes. The wait is bounded by what observing the slice may take: per
    # round of --vllm-concurrency servers, four requests (--vllm-timeout, 30 s) and a phase (--vllm-phase-timeout,
    # 120 s), then a minute more. A clock that moves a day at each reading stands for the wait.
    urls = [closed_url() for _ in range(servers)]  # never asked: the slice is not this worker's to observe
    run = of(*urls, vllm_concurrency=concurrency)
    shared = tmp_path / "vllm-observation"
    days = itertools.count(0.0, 86400.0)
    try:
        with FileLock(f"{shared}.0.lock"), monkeypatch.context() as clock:  # the other worker's
            clock.setattr(time, "perf_counter", lambda: next(days))
            observed = run.observations(shared, (0, 1))
    finally:
        run.close()
    problem = Problem(f"another pytest-xdist worker did not finish observing its servers within {bound} s; rerun, "
                      f"or without -n.")
    assert observed == {name_of(url): Observation(Target(name=name_of(url), base_url=""),
                                                  errors={Stage.BEFORE: problem}) for url in urls}
    assert not shared.with_name("vllm-observation.0").exists()


def test_workers_that_found_different_fleets_read_the_servers_the_other_observed_as_it_observed_them(
        tmp_path: Path) -> None:
    # A pod came or went between the workers' discoveries: the slices they deal differ. The first worker (of index 1,
    # with a, b, c) observes its slice [b] and [a, c]; the second (of index 0, with b, c: a is gone) has the slices
    # [b] and [c], and reads each from what the first stored, with the target the first observed.
    a, b, c = (closed_url() for _ in range(3))  # answered at once: the connection is refused
    shared = tmp_path / "vllm-observation"
    first = of(a, b, c)
    second = of(b, c)
    try:
        made = first.observations(shared, (1, 2))
        read = second.observations(shared, (0, 2))
    finally:
        first.close()
        second.close()
    assert list(read) == [name_of(b), name_of(c)]
    assert read == {name: made[name] for name in read}  # its target included
    assert second.implementations_observed_here() == []  # it observed none itself


def test_a_workers_stored_slice_holds_no_credentials_of_the_cluster(
        double: KubeDouble, cluster: Cluster, tmp_path: Path) -> None:
    token = "sk-cluster-token-4b1d"
    cluster.tokens[token] = ALL
    run = Run(Settings(vllm_namespace=NS, kubeconfig=str(write_kubeconfig(tmp_path / "kc", double, token)),
                       vllm_requests=1, vllm_timeout=30.0), load_catalog())
    shared = tmp_path / "vllm-observation"
    try:
        observed = run.observations(shared, (0, 1))
    finally:
        run.close()
    assert [(name, obs.errors) for name, obs in observed.items()] == [("decode-amd64", {}), ("decode-arm64", {})]
    stored = shared.with_name("vllm-observation.0").read_bytes()
    assert sorted(pickle.loads(stored)) == ["decode-amd64", "decode-arm64"]
    assert token.encode() not in stored  # the pods are reached with it, in this process only


def test_a_leaders_description_names_its_multi_node_workers(sim_host: SimHost, tmp_path: Path) -> None:
    # the head runs the API server of four data-parallel engines, two of them on a headless node
    double = KubeDouble(sim_host, deployment("vllm-dp-headless", sim_host))
    run = Run(Settings(vllm_namespace=NS, kubeconfig=str(write_kubeconfig(tmp_path / "kc", double, "admin")),
                       vllm_requests=1, vllm_timeout=30.0), load_catalog())
    try:
        run.observations(tmp_path / "vllm-observation", (0, 1))
        # what a pytest-xdist worker sends of the servers it observed, and what a run without -n describes
        [(position, here)] = run.implementations_observed_here()
        assert (position, here["target"], here["multiNodeWorkers"]) == (0, "dp-head", ["dp-node-1"])
        assert [(found["target"], found["multiNodeWorkers"]) for found in run.implementations()] == [
            ("dp-head", ["dp-node-1"])]
    finally:
        run.close()


# -- Prometheus' shared wait ------------------------------------------------------------------------------------


def test_the_panels_share_one_wait_that_starts_with_the_first_panel(prom: Prometheus) -> None:
    state = PrometheusState(prom, waited=3600.0)
    started = time.monotonic()
    first = state.panel_wait()
    assert 3600.0 - (time.monotonic() - started) <= first <= 3600.0
    assert state.panel_wait() <= first  # the same clock, not a new wait per panel
    state.waited = 0.0
    assert state.panel_wait() > 3000.0  # the deadline is set once, by the first panel
    assert PrometheusState(prom, waited=0.0).panel_wait() == 0.0


@pytest.mark.parametrize(("phase", "waited"), [(120.0, 15.0), (15.0, 15.0), (14.0, 14.0)])
def test_prometheus_is_synced_once_bounded_by_two_scrape_intervals_or_the_phase_cap(
        sim_host: SimHost, api: PrometheusAPI, monkeypatch: pytest.MonkeyPatch, phase: float, waited: float) -> None:
    sim = sim_host.start(get_profile("x86_64"))
    instance = host_port(sim.url)
    api.active = [{"labels": {"instance": instance}, "scrapeInterval": "5s"}]  # 2 x 5 s + 5 s: 15 s
    selector = f'vllm:prompt_tokens_total{{instance="{instance}"}}'
    api.answer(f"sum({selector})", vector({"metric": {}, "value": [1700000000.0, "1e9"]}))  # past the workload's
    api.answer(f"max(timestamp({selector}))", vector({"metric": {}, "value": [1700000000.0, "1699999990"]}))
    monkeypatch.setenv("MY_PROM_TOKEN", "prom-token")
    run = of(sim.url, prometheus_url=api.url + "/", prometheus_token_env="MY_PROM_TOKEN", vllm_phase_timeout=phase)
    state = run.prometheus()
    assert run.prometheus() is state  # once per run
    assert (state.error, state.waited) == (None, waited)
    assert state.held == {name_of(sim.url): Held(1e9, 1699999990.0)}
    assert {seen.authorization for seen in api.seen} == {"Bearer prom-token"}
    assert sum(seen.path == "/api/v1/targets" for seen in api.seen) == 2  # the interval, then who is scraped


def test_prometheus_is_synced_on_the_vllm_targets_that_were_scraped_only(sim_host: SimHost, api: PrometheusAPI) -> None:
    # the sync counter is vLLM's: an SGLang server is only checked for being scraped, and a server that could not be
    # scraped has no value to wait for
    sim = sim_host.start(get_profile("x86_64"))
    run = Run(Settings(vllm_url=(sim.url, "http://127.0.0.1:9"), vllm_sim=("sglang-0.5.9",), prometheus_url=api.url,
                       vllm_requests=2, vllm_timeout=30.0), load_catalog())
    api.active = [{"labels": {"instance": host_port(t.base_url)}, "scrapeInterval": "1s"} for t in run.targets()]
    selector = f'vllm:prompt_tokens_total{{instance="{host_port(sim.url)}"}}'
    api.answer(f"sum({selector})", vector({"metric": {}, "value": [1700000000.0, "1e9"]}))
    assert list(run.prometheus().held) == [name_of(sim.url)]


def test_a_prometheus_that_cannot_answer_is_the_states_error(sim_host: SimHost, api: PrometheusAPI) -> None:
    api.fixed = (503, "text/plain", "unavailable")
    state = of(sim_host.start(get_profile("x86_64")).url, prometheus_url=api.url).prometheus()
    assert state.error is not None and "503" in state.error
    assert (state.held, state.waited) == ({}, 0.0)


@pytest.mark.parametrize("trust", ["ca", "insecure"])
def test_a_prometheus_behind_a_private_ca_is_trusted_with_its_ca_or_not_verified(
        tls_api: PrometheusAPI, private_ca: PrivateCA, trust: str) -> None:
    tls_api.active = [{"labels": {"instance": "127.0.0.1:9"}, "scrapeInterval": "5s"}]
    run = Run(Settings(prometheus_url=tls_api.url, prometheus_ca=private_ca.ca if trust == "ca" else None,
                       prometheus_insecure=trust == "insecure", vllm_timeout=30.0), load_catalog())
    state = run.prometheus()
    assert (state.error, state.waited) == (None, 15.0)
    run.close()
    run.close()  # closed twice (pytest may): nothing more to close


def test_a_prometheus_that_does_not_answer_within_the_runs_timeout_is_the_states_error(api: PrometheusAPI) -> None:
    api.stall = threading.Event()  # held until the test ends: the request times out whatever the machine's speed
    run = Run(Settings(prometheus_url=api.url, vllm_timeout=2.0), load_catalog())
    try:
        state = run.prometheus()
    finally:
        api.stall.set()
        run.close()
    assert state.error is not None and "timed out" in state.error, state.error
    assert (state.held, state.waited) == ({}, 0.0)


def _requests_served(url: str) -> float:
    page = Snapshot.parse(httpx.get(url + "/metrics").text)
    return page.value("vllm:request_success_total") or 0.0


def _verdicts_by_check(pytester: pytest.Pytester) -> dict[str, Any]:
    """Each check's verdict in the JSON report: its outcome, level, reason, diagnosis and every target's own (the
    evidence holds timings)."""
    return {row["id"]: {key: value for key, value in row.items() if key != "evidence"}
            for row in json_report(pytester)["tests"]}


def _described(implementations: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(found["target"], found["vllmVersion"], found["architecture"]) for found in implementations]


# -- as users run pytest with -n -----------------------------------------------------------------------------


@pytest.mark.spawns
def test_xdist_sends_one_workload_per_server_and_gives_the_serial_verdicts(
        pytester: pytest.Pytester, sim_host: SimHost) -> None:
    healthy = sim_host.start(get_profile("x86_64"))
    arm = sim_host.start(get_profile("arm64-cpu"))
    args = (f"--vllm-url={healthy.url}", f"--vllm-url={arm.url}", "--vllm-arch=arm64")

    serial = run_suite(pytester, *REPORTED, *args)
    per_workload = _requests_served(healthy.url)
    serial_verdicts = _verdicts_by_check(pytester)
    serial_implementations = _described(json_report(pytester)["implementations"])
    parallel = run_suite(pytester, *REPORTED, "-n", "2", f"--basetemp={pytester.path / 'basetemp'}", *args)

    assert per_workload == 8  # --vllm-requests' default: one workload
    assert _requests_served(healthy.url) == 2 * per_workload  # the -n 2 run sent exactly one more
    assert _verdicts_by_check(pytester) == serial_verdicts
    assert parallel.ret == serial.ret
    assert parallel.parseoutcomes() == serial.parseoutcomes()  # pytest's own tally too
    assert "INTERNALERROR" not in parallel.stdout.str() + parallel.stderr.str()
    parallel.stdout.fnmatch_lines(["*2 workers*", "result: *"])
    # the controller knows every target, from the workers' parts, in the run's order
    assert _described(json_report(pytester)["implementations"]) == serial_implementations == [
        (name_of(healthy.url), "0.32.0", "arm64"), (name_of(arm.url), "0.11.2", "arm64")]
    # the observation was spread: each worker observed a slice of its own, one server each, none twice
    slices = [pickle.loads(path.read_bytes()) for path in sorted((pytester.path / "basetemp").glob(
        "vllm-observation-*.[0-9]"))]
    assert sorted(len(observed) for observed in slices) == [1, 1]
    assert {name for observed in slices for name in observed} == {name_of(healthy.url), name_of(arm.url)}


@pytest.mark.spawns
def test_xdist_counts_the_inconclusive_checks_as_a_serial_run_does(pytester: pytest.Pytester,
                                                                     sim_host: SimHost) -> None:
    # A saturated server's workload checks cannot be judged: pytest's tally and status letters say inconclusive
    # under -n as without it (the controller reads the outcome the workers sent with each row).
    busy = sim_host.start(get_profile("x86_64").replace(fault="completions-429"))
    args = (f"--vllm-url={busy.url}", "-k", "test_moves or test_reachable")
    serial = run_suite(pytester, *args)
    parallel = run_suite(pytester, *args, "-n", "2")
    tally = {k: v for k, v in serial.parseoutcomes().items() if k != "deselected"}  # -n does not print that one
    assert tally["inconclusive"] > 0 and tally["passed"] > 0
    assert parallel.parseoutcomes() == tally
    assert parallel.ret == serial.ret


@pytest.mark.spawns
def test_xdist_workers_end_with_their_heap_out_of_the_scans_and_the_controller_gives_it_back(
        pytester: pytest.Pytester, sim_host: SimHost) -> None:
    url = sim_host.start(get_profile("x86_64")).url
    pytester.makeconftest(f"""
        import gc, os, pytest
        @pytest.hookimpl(trylast=True)  # after the plugin's own
        def pytest_unconfigure(config):
            role = config.workerinput["workerid"] if hasattr(config, "workerinput") else "controller"
            with open(os.path.join({str(pytester.path)!r}, role + ".frozen"), "w") as out:
                out.write(str(gc.get_freeze_count()))
            gc.unfreeze()
    """)
    result = run_suite(pytester, f"--vllm-url={url}", "-n", "1", "-k", "test_reachable")
    result.assert_outcomes(passed=1)
    assert int((pytester.path / "gw0.frozen").read_text()) > 0
    assert int((pytester.path / "controller.frozen").read_text()) == 0


@pytest.mark.spawns
def test_xdist_worker_without_a_check_leaves_its_slice_to_the_others(
        pytester: pytest.Pytester, sim_host: SimHost) -> None:
    # One check for two workers: the worker that runs it observes its own slice and the one of the worker that
    # never asked; still one workload per server.
    sims = [sim_host.start(get_profile("x86_64")) for _ in range(2)]
    urls = (f"--vllm-url={sim.url}" for sim in sims)
    result = run_suite(pytester, *REPORTED, "-n", "2", *urls, "-k", "test_workload_served")

    assert result.ret == 0
    assert [_requests_served(sim.url) for sim in sims] == [8, 8]
    assert [row["outcome"] for row in json_report(pytester)["tests"]] == ["passed"]
