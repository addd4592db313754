"""Multi-node vLLM on Kubernetes: API servers told from the workers that run engines without one, and each
data-parallel server's engines on its page.

The deployments are real manifests (tests/data/multinode/*.yaml, each citing its source) served as pods by the
API-server double, with the simulator behind the pods that serve the API; the real `kubernetes` client reads them.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from conftest import NS, deployment, json_report, manifest, run_kube, said, verdicts, write_kubeconfig
from pytest_vllm_metrics import _launch
from pytest_vllm_metrics.kube import ClusterInfo, discover
from pytest_vllm_metrics.multinode import (
    Worker,
    data_parallel_engines,
    engines_note,
    engines_on_page,
    engines_shown,
    lws_name,
    lws_worker_hint,
    workers_note,
)
from pytest_vllm_metrics.observe import Observation
from pytest_vllm_metrics.outcome import EXIT_INCONCLUSIVE, Problem
from pytest_vllm_metrics.report import schema
from pytest_vllm_metrics.sim import SimHost, build_app, get_profile
from pytest_vllm_metrics.sim.kubeapi import Cluster, KubeDouble, PodSpec
from pytest_vllm_metrics.snapshot import Snapshot
from pytest_vllm_metrics.targets import Balancing, DataParallel, Role, Target

FAST = ("-k", "reachable or workload_served or data_parallel")  # the checks these tests are about


def kube_run(pytester: pytest.Pytester, sim_host: SimHost, cluster: Cluster, tmp_path: Path,
             *args: str) -> pytest.RunResult:
    double = KubeDouble(sim_host, cluster)
    return run_kube(pytester, write_kubeconfig(tmp_path / "kc", double, "admin"), *args)


def implementation(document: dict[str, Any], target: str) -> dict[str, Any]:
    return next(i for i in document["implementations"] if i["target"] == target)


# -- headless and Ray workers: listed with their leader, never scraped ------------------------------------------


def test_ray_workers_of_a_leaderworkerset_are_listed_with_their_leader_not_scraped(
    pytester: pytest.Pytester, sim_host: SimHost, tmp_path: Path
) -> None:
    cluster = deployment("vllm-lws-ray", sim_host)
    result = kube_run(pytester, sim_host, cluster, tmp_path, "--vllm-selector=leaderworkerset.sigs.k8s.io/name=vllm",
                      "--html=report.html", "--self-contained-html", *FAST)
    assert result.ret == 0, result.stdout.str()
    # the leaders are checked; the workers are neither failed nor inconclusive: they are not targets at all
    assert set(verdicts(pytester).values()) <= {"passed", "skipped"}
    assert {name for _, name in verdicts(pytester)} == {"vllm-0", "vllm-1"}
    note = ("multi-node workers (not scraped: no API server): vllm-0-1 (Ray worker: multi-node-serving.sh worker "
            "--ray_address=vllm-0.vllm.llm-d-cpu-inference; leader vllm-0 (LeaderWorkerSet vllm, group 0)); vllm-1-1 "
            "(Ray worker: multi-node-serving.sh worker --ray_address=vllm-1.vllm.llm-d-cpu-inference; leader vllm-1 "
            "(LeaderWorkerSet vllm, group 1))")
    assert said(result, f"note: {note}")
    document = json_report(pytester)
    assert document["environment"]["kubernetes"]["multiNodeWorkers"] == [
        {"pod": "vllm-0-1", "role": "ray worker", "node": "node-b", "leader": "vllm-0",
         "command": "multi-node-serving.sh worker --ray_address=vllm-0.vllm.llm-d-cpu-inference",
         "leaderFrom": "LeaderWorkerSet vllm, group 0", "leaderChecked": True, "engines": None},
        {"pod": "vllm-1-1", "role": "ray worker", "node": "node-b", "leader": "vllm-1",
         "command": "multi-node-serving.sh worker --ray_address=vllm-1.vllm.llm-d-cpu-inference",
         "leaderFrom": "LeaderWorkerSet vllm, group 1", "leaderChecked": True, "engines": None}]
    assert note in document["environment"]["kubernetes"]["notes"]
    assert implementation(document, "vllm-0")["multiNodeWorkers"] == ["vllm-0-1"]
    assert note in (pytester.path / "report.html").read_text()  # the HTML report's environment


def test_headless_worker_is_found_by_its_data_parallel_address(
    pytester: pytest.Pytester, sim_host: SimHost, tmp_path: Path
) -> None:
    result = kube_run(pytester, sim_host, deployment("vllm-dp-headless", sim_host), tmp_path, *FAST)
    assert result.ret == 0, result.stdout.str()
    assert {name for _, name in verdicts(pytester)} == {"dp-head"}
    assert said(result, "note: multi-node workers (not scraped: no API server): dp-node-1 (headless engines: vllm "
                        "serve --headless, data-parallel engines 2-3; leader dp-head (--data-parallel-address "
                        "10.99.48.128))")
    # the head's API server balances over every rank, its own and the headless node's: all four on its page
    assert verdicts(pytester)["test_data_parallel_engines", "dp-head"] == "passed"
    head = implementation(json_report(pytester), "dp-head")
    assert head["engines"] == ["0", "1", "2", "3"]
    assert head["dataParallel"] == {
        "size": 4, "sizeLocal": 2, "startRank": None, "rank": None, "balancing": "internal", "backend": "mp",
        "address": "10.99.48.128", "unresolved": [], "expectedEngines": 4, "firstEngine": 0}


def test_one_script_for_leader_and_worker_runs_the_branch_of_each_pod(
    pytester: pytest.Pytester, sim_host: SimHost, tmp_path: Path
) -> None:
    # Both pods' args hold `--headless`; LWS_WORKER_INDEX decides which `vllm serve` each runs.
    result = kube_run(pytester, sim_host, deployment("kserve-lws-dp", sim_host), tmp_path,
                      "--vllm-selector=leaderworkerset.sigs.k8s.io/name=llama-kserve-mn", *FAST)
    assert result.ret == 0, result.stdout.str()
    assert {name for _, name in verdicts(pytester)} == {"llama-kserve-mn-0"}
    assert said(result, "llama-kserve-mn-0-1 (headless engines: vllm serve --headless, data-parallel engines 2-3; "
                        "leader llama-kserve-mn-0 (LeaderWorkerSet llama-kserve-mn, group 0))")
    assert verdicts(pytester)["test_data_parallel_engines", "llama-kserve-mn-0"] == "passed"


@pytest.mark.parametrize(("deployment_name", "selector", "only", "why"), [
    # the selector finds the Ray workers and not their leaders (the leaderTemplate's pods carry role=leader)
    ("vllm-lws-ray", "leaderworkerset.sigs.k8s.io/worker-index=1", None,
     "vllm-0-1: a multi-node worker (Ray worker: multi-node-serving.sh worker --ray_address=vllm-0.vllm.llm-d-cpu-"
     "inference) runs engines without an API server, so it has no /metrics of its own; its engines' metrics are on "
     "its leader's page, and its leader vllm-0 (LeaderWorkerSet vllm, group 0) is not among the pods the run checks "
     "(those matching leaderworkerset.sigs.k8s.io/worker-index=1 in namespace llm-d-cpu-inference that serve the "
     "API). Nothing of the run sees those engines: select the leader's pods too (e.g. "
     "--vllm-selector=leaderworkerset.sigs.k8s.io/name=vllm)."),
    # a headless node whose head is not in the namespace: no LeaderWorkerSet to name it, an address of no pod
    ("vllm-dp-headless", None, {"dp-node-1"},
     "dp-node-1: a multi-node worker (headless engines: vllm serve --headless) runs engines without an API server, "
     "so it has no /metrics of its own; its engines' metrics are on its leader's page, and the run cannot tell its "
     "leader (--data-parallel-address 10.99.48.128 names no pod of the run). Nothing of the run sees those "
     "engines: select the leader's pod too (--vllm-selector)."),
])
def test_a_fleet_of_only_workers_is_inconclusive_naming_why(
    pytester: pytest.Pytester, sim_host: SimHost, tmp_path: Path, deployment_name: str, selector: str | None,
    only: set[str] | None, why: str
) -> None:
    cluster = deployment(deployment_name, sim_host, only=only)
    result = kube_run(pytester, sim_host, cluster, tmp_path, *([f"--vllm-selector={selector}"] if selector else []))
    assert result.ret == EXIT_INCONCLUSIVE, result.stdout.str()
    outcomes = set(verdicts(pytester).values())
    assert outcomes == {"inconclusive"}, outcomes  # every check of every worker: neither passed nor failed
    assert said(result, why)
    document = json_report(pytester)
    assert document["result"] == "inconclusive"
    assert all(not w["leaderChecked"] for w in document["environment"]["kubernetes"]["multiNodeWorkers"])


def test_a_leaderworkerset_worker_the_run_cannot_read_gets_the_hint(
    pytester: pytest.Pytester, sim_host: SimHost, tmp_path: Path
) -> None:
    # the Ray worker of vLLM's example, started by its image's own entrypoint instead (no command to read)
    cluster = deployment("vllm-lws-ray", sim_host, only={"vllm-0", "vllm-0-1"})
    cluster.namespaces[NS][1].command = None
    result = kube_run(pytester, sim_host, cluster, tmp_path, "--vllm-selector=leaderworkerset.sigs.k8s.io/name=vllm",
                      "-k", "reachable")
    assert verdicts(pytester) == {("test_reachable", "vllm-0"): "passed",
                                  ("test_reachable", "vllm-0-1"): "inconclusive"}
    assert said(result, "vllm-0-1: declares no port on container vllm-worker (ports: none declared); pass "
                        "--vllm-port. It is worker 1 of LeaderWorkerSet vllm: if it runs engines without an API server "
                        "(a multi-node worker), their metrics are on its leader's page; select the leaders only (e.g. "
                        "leaderworkerset.sigs.k8s.io/worker-index=0).")


# -- data-parallel servers: every engine on the page -------------------------------------------------------------


def test_hybrid_data_parallel_pods_show_their_engines(pytester: pytest.Pytester, sim_host: SimHost,
                                                     tmp_path: Path) -> None:
    result = kube_run(pytester, sim_host, deployment("wide-ep-lws", sim_host), tmp_path, "--html=report.html",
                      "--self-contained-html", *FAST)
    assert result.ret == 0, result.stdout.str()
    # llm-d's wide-EP pods all serve the API (hybrid load balancing): both are targets, neither is a worker
    assert verdicts(pytester)["test_data_parallel_engines", "wide-ep-llm-d-decode-0"] == "passed"
    assert verdicts(pytester)["test_data_parallel_engines", "wide-ep-llm-d-decode-0-1"] == "passed"
    assert said(result, "note: data-parallel engines on each page: wide-ep-llm-d-decode-0: engines 0-7 (8 of the 8 "
                        "its command line runs); wide-ep-llm-d-decode-0-1: engines 8-15 (8 of the 8 its command line "
                        "runs)")
    assert not said(result, "multi-node workers")
    document = json_report(pytester)
    jsonschema.validate(document, schema())
    second = implementation(document, "wide-ep-llm-d-decode-0-1")
    assert second["engines"] == [str(rank) for rank in range(8, 16)]
    assert second["dataParallel"]["balancing"] == "hybrid"
    assert (second["dataParallel"]["expectedEngines"], second["dataParallel"]["firstEngine"]) == (8, 8)
    assert "engines 8-15 (8 of the 8 its command line runs)" in (pytester.path / "report.html").read_text()


@pytest.mark.parametrize(("served", "missing"), [
    (7, "engine 15 is missing"),  # one below what the command line runs
    (4, "engines 12-15 are missing"),
])
def test_an_engine_missing_from_the_page_fails(pytester: pytest.Pytester, sim_host: SimHost, tmp_path: Path,
                                               served: int, missing: str) -> None:
    cluster = deployment("wide-ep-lws", sim_host, serves={"wide-ep-llm-d-decode-0-1": {
        "data_parallel_size_local": served}})
    result = kube_run(pytester, sim_host, cluster, tmp_path, "-k", "data_parallel")
    result.assert_outcomes(failed=1)
    assert verdicts(pytester) == {("test_data_parallel_engines", "wide-ep-llm-d-decode-0"): "passed",
                                  ("test_data_parallel_engines", "wide-ep-llm-d-decode-0-1"): "failed"}
    assert said(result, f"wide-ep-llm-d-decode-0-1: its /metrics carries engines 8-{7 + served}, not all of the 8 "
                        f"engines its command line runs (--data-parallel-hybrid-lb --data-parallel-size 16 "
                        f"--data-parallel-size-local 8 --data-parallel-start-rank 8, hybrid load balancing): "
                        f"{missing}. Their requests, tokens, queue and KV cache are counted nowhere")
    row = next(r for r in json_report(pytester)["tests"] if r["id"].endswith("test_data_parallel_engines"))
    assert (row["level"], row["outcome"]) == ("MUST", "failed")


# -- the verdict on what the run could not resolve (in-process: no wire protocol involved) ------------------------


def _page(*engines: str) -> Snapshot:
    lines = ["# TYPE vllm:num_requests_running gauge"]
    lines += [f'vllm:num_requests_running{{engine="{e}",model_name="m"}} 0' for e in engines]
    return Snapshot.parse("\n".join(lines) + "\n")


def _obs(dp: DataParallel | None, page: Snapshot | None, source: str = "kubernetes") -> Observation:
    return Observation(Target("pod-a", "http://x", source=source, data_parallel=dp), before=page)


@pytest.mark.parametrize(("dp", "page", "outcome", "message"), [
    (DataParallel(size_local=8, start_rank=8, balancing=Balancing.HYBRID), _page(*map(str, range(8, 16))), "passed",
     "pod-a: engines 8-15 on its page"),
    # the start rank comes from a variable the run cannot resolve: the count still decides
    (DataParallel(size_local=2, balancing=Balancing.HYBRID, unreadable=("--data-parallel-start-rank",)),
     _page("6"), "failed", "not all of the 2 engines its command line runs (--data-parallel-hybrid-lb "
                           "--data-parallel-size-local 2 --data-parallel-start-rank (unresolved), hybrid load "
                           "balancing): 1 of them is missing"),
    (DataParallel(size_local=2, balancing=Balancing.HYBRID, unreadable=("--data-parallel-start-rank",)),
     _page("6", "7"), "passed", "engines 6-7"),
    (DataParallel(balancing=Balancing.HYBRID, unreadable=("--data-parallel-size-local",)), _page("0"),
     "inconclusive", "pod-a: cannot tell how many engines its page must carry: hybrid load balancing runs "
                     "--data-parallel-size-local engines, and its value cannot be resolved "
                     "(--data-parallel-size-local). The page carries engines 0."),
    (DataParallel(size=2), Snapshot.parse("# TYPE vllm:x counter\nvllm:x_total 1\n"), "inconclusive",
     "its vLLM series carry no engine label"),
    # an externally balanced rank runs its own engine: that rank must be on the page
    (DataParallel(size=4, rank=3, balancing=Balancing.EXTERNAL), _page("0"), "failed", "engine 3 is missing"),
    (DataParallel(size=2), None, "inconclusive", "pod-a: GET /metrics timed out"),
    (None, _page("0"), "skipped", "not a data-parallel server (no --data-parallel-* flag on its command line)"),
    (None, None, "inconclusive", "pod-a: GET /metrics timed out"),
])
def test_data_parallel_verdicts(dp: DataParallel | None, page: Snapshot | None, outcome: str, message: str) -> None:
    obs = _obs(dp, page)
    if page is None:
        obs.errors["before"] = Problem("pod-a: GET /metrics timed out")
    verdict = data_parallel_engines(obs)
    assert (verdict.outcome, verdict.level) == (outcome, "MUST")
    assert message in verdict.message


# -- reading the command lines of the real manifests ----------------------------------------------------------


def _read(pod: dict[str, Any]) -> _launch.Launch:
    return _launch.read(pod.get("command") or [], pod.get("args") or [], pod.get("env") or {},
                        pod["labels"].get("leaderworkerset.sigs.k8s.io/worker-index"))


@pytest.mark.parametrize(("name", "roles"), [
    ("wide-ep-lws", [Role.SERVER, Role.SERVER]),
    ("vllm-lws-ray", [Role.SERVER, Role.RAY_WORKER, Role.SERVER, Role.RAY_WORKER]),
    ("vllm-dp-headless", [Role.SERVER, Role.HEADLESS]),
    ("kserve-lws-dp", [Role.SERVER, Role.HEADLESS]),
])
def test_roles_of_the_real_manifests(name: str, roles: list[Role]) -> None:
    assert [_read(pod).role for pod in manifest(name)] == roles


def test_wide_ep_flags_resolve_through_the_environment_and_the_script() -> None:
    # --data-parallel-size $((LWS_GROUP_SIZE * DP_SIZE_LOCAL)), --data-parallel-start-rank $START_RANK where
    # START_RANK=$(( ${LWS_WORKER_INDEX:-0} * DP_SIZE_LOCAL )): the shell's arithmetic over LWS's variables
    second = _read(manifest("wide-ep-lws")[1])
    assert second.data_parallel == DataParallel(size=16, size_local=8, start_rank=8, balancing=Balancing.HYBRID,
                                                address="wide-ep-llm-d-decode-0.wide-ep-llm-d-decode."
                                                        "llm-d-cpu-inference")
    assert second.how == "vllm serve"


def test_a_value_from_outside_the_pod_spec_is_unresolved_not_guessed() -> None:
    # DP_SIZE_LOCAL from a ConfigMap (valueFrom): the pod spec has no value for it
    pod = manifest("wide-ep-lws")[1]
    env = {k: v for k, v in pod["env"].items() if k != "DP_SIZE_LOCAL"}
    launch = _launch.read(pod["command"], pod["args"], env)
    assert launch.data_parallel is not None
    assert set(launch.data_parallel.unreadable) == {"--data-parallel-size", "--data-parallel-size-local",
                                                    "--data-parallel-start-rank"}
    count, _, why = launch.data_parallel.expected_engines()
    assert count is None and "cannot be resolved" in why


@pytest.mark.parametrize(("command", "args", "env", "role", "how", "leader"), [
    # kserve/kserve config/llmisvc/config-llm-decode-worker-data-parallel.yaml (commit 3cb95ee9454d): the worker's
    # `eval "vllm serve ..."`, filled in for dataLocal 2, data 2
    (["/bin/sh", "-c"], ['START_RANK=$(( ${LWS_WORKER_INDEX:-0} * 2 ))\neval "vllm serve \\\n  /mnt/models \\\n'
                         '  --served-model-name "llama" \\\n  --port 8001 \\\n  --data-parallel-size $(( 2 * 2 )) \\\n'
                         '  --data-parallel-size-local 2 \\\n  --data-parallel-address $(LWS_LEADER_ADDRESS) \\\n'
                         '  --data-parallel-start-rank $START_RANK \\\n  --data-parallel-hybrid-lb \\\n'
                         '  ${VLLM_ADDITIONAL_ARGS} \\\n  --trust-remote-code \\\n  --headless"'],
     {"LWS_WORKER_INDEX": "1", "LWS_LEADER_ADDRESS": "ms-0.ms.ns"}, Role.HEADLESS, "vllm serve --headless",
     "ms-0.ms.ns"),
    # vLLM examples/online_serving/multi-node-serving.sh: the worker's own `ray start`
    (["/bin/bash", "-c"], ["ray start --address=$ray_address:$ray_port --block"],
     {"ray_address": "10.0.0.5", "ray_port": "6379"}, Role.RAY_WORKER, "ray start --address=10.0.0.5:6379",
     "10.0.0.5"),
    (["/bin/bash", "-c"], ["ray start --head --port=6379 && vllm serve m --port 8000"], {}, Role.SERVER,
     "vllm serve", None),
    # vLLM's data_parallel_deployment.md, node 1 as an argument list (no shell) to the image's `vllm serve`
    ([], ["m", "--headless", "-dp", "4", "-dpl", "2", "-dpr", "2", "-dpa", "10.99.48.128"], {}, Role.HEADLESS,
     "the image's entrypoint --headless", "10.99.48.128"),
    (["python3", "-m", "vllm.entrypoints.openai.api_server"], ["--port", "8080"], {}, Role.SERVER,
     "python -m vllm.entrypoints.openai.api_server", None),
    ([], ["--model", "m"], {}, Role.SERVER, "", None),  # the image's own command: a server, as ever
])
def test_command_lines(command: list[str], args: list[str], env: dict[str, str], role: Role, how: str,
                       leader: str | None) -> None:
    launch = _launch.read(command, args, env)
    assert (launch.role, launch.how, launch.leader_address) == (role, how, leader)


def test_the_headless_worker_s_engines_from_short_flags() -> None:
    launch = _launch.read([], ["m", "--headless", "-dp", "4", "-dpl", "2", "-dpr", "2"], {})
    assert launch.data_parallel == DataParallel(size=4, size_local=2, start_rank=2)


def test_simulated_data_parallel_page_has_every_series_once_per_engine(sim_host: SimHost) -> None:
    one = Snapshot.parse(httpx.get(sim_host.start(get_profile("x86_64")).url + "/metrics").text)
    eight = Snapshot.parse(httpx.get(sim_host.start(get_profile("x86_64-dp")).url + "/metrics").text)
    for name, series in one.samples.items():
        if any(key == "engine" for s in series for key, _ in s.labels):
            assert len(eight.samples[name]) == 8 * len(series), name
            assert {dict(s.labels)["engine"] for s in eight.samples[name]} == {str(r) for r in range(8, 16)}


@pytest.mark.parametrize("changes", [{"data_parallel_size_local": 0}, {"data_parallel_start_rank": -1}])
def test_simulator_refuses_data_parallelism_vllm_would_not_run(changes: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="manages data_parallel_size_local >= 1 engines from data_parallel_start_rank"):
        build_app(get_profile("x86_64").replace(**changes))


# -- the workers and their leaders as discovery finds them (in-process: the kubernetes client and the double) ------


def discovered(sim_host: SimHost, cluster: Cluster, tmp_path: Path, selector: str | None = None
               ) -> tuple[ClusterInfo, list[Target]]:
    double = KubeDouble(sim_host, cluster)
    return discover(namespace=NS, selector=selector, container=None, port=None, timeout=30.0, context=None,
                    kubeconfig=str(write_kubeconfig(tmp_path / "kc", double, "admin")), transport="proxy")


def test_ray_workers_are_found_with_the_leader_of_their_group(sim_host: SimHost, tmp_path: Path) -> None:
    info, targets = discovered(sim_host, deployment("vllm-lws-ray", sim_host), tmp_path,
                               "leaderworkerset.sigs.k8s.io/name=vllm")
    assert [t.name for t in targets] == ["vllm-0", "vllm-1"]
    assert [w.as_dict() for w in info.workers] == [
        {"pod": "vllm-0-1", "role": "ray worker", "command": "multi-node-serving.sh worker --ray_address=vllm-0.vllm."
         "llm-d-cpu-inference", "node": "node-b", "leader": "vllm-0", "leaderFrom": "LeaderWorkerSet vllm, group 0",
         "leaderChecked": True, "engines": None},
        {"pod": "vllm-1-1", "role": "ray worker", "command": "multi-node-serving.sh worker --ray_address=vllm-1.vllm."
         "llm-d-cpu-inference", "node": "node-b", "leader": "vllm-1", "leaderFrom": "LeaderWorkerSet vllm, group 1",
         "leaderChecked": True, "engines": None}]
    assert info.notes[-1] == (
        "multi-node workers (not scraped: no API server): vllm-0-1 (Ray worker: multi-node-serving.sh worker "
        "--ray_address=vllm-0.vllm.llm-d-cpu-inference; leader vllm-0 (LeaderWorkerSet vllm, group 0)); vllm-1-1 "
        "(Ray worker: multi-node-serving.sh worker --ray_address=vllm-1.vllm.llm-d-cpu-inference; leader vllm-1 "
        "(LeaderWorkerSet vllm, group 1))")


def test_a_headless_worker_has_its_engines_and_the_leader_at_its_address(sim_host: SimHost, tmp_path: Path) -> None:
    info, targets = discovered(sim_host, deployment("vllm-dp-headless", sim_host), tmp_path)
    assert [t.name for t in targets] == ["dp-head"]
    assert targets[0].data_parallel == DataParallel(size=4, size_local=2, address="10.99.48.128")
    (worker,) = info.workers
    assert worker.as_dict() == {"pod": "dp-node-1", "role": "headless", "command": "vllm serve --headless",
                                "node": "node-b", "leader": "dp-head", "leaderFrom": "--data-parallel-address "
                                "10.99.48.128", "leaderChecked": True, "engines": "2-3"}
    assert worker.text() == ("dp-node-1 (headless engines: vllm serve --headless, data-parallel engines 2-3; leader "
                             "dp-head (--data-parallel-address 10.99.48.128))")


def test_a_worker_without_its_leader_says_which_leader_is_missing(sim_host: SimHost, tmp_path: Path) -> None:
    info, targets = discovered(sim_host, deployment("vllm-dp-headless", sim_host, only={"dp-node-1"}), tmp_path)
    (worker,) = info.workers
    assert (worker.leader, worker.checked) == (None, False)
    assert worker.text() == ("dp-node-1 (headless engines: vllm serve --headless, data-parallel engines 2-3; leader "
                             "unknown (--data-parallel-address 10.99.48.128 names no pod of the run))")
    assert [t.name for t in targets] == ["dp-node-1"] and targets[0].unavailable
    # the leader is found (its group's worker 0) but not among the pods the selector chose
    info, _ = discovered(sim_host, deployment("vllm-lws-ray", sim_host), tmp_path,
                         "leaderworkerset.sigs.k8s.io/worker-index=1")
    assert [w.text() for w in info.workers] == [
        "vllm-0-1 (Ray worker: multi-node-serving.sh worker --ray_address=vllm-0.vllm.llm-d-cpu-inference; leader "
        "vllm-0 (LeaderWorkerSet vllm, group 0), not among the checked pods)",
        "vllm-1-1 (Ray worker: multi-node-serving.sh worker --ray_address=vllm-1.vllm.llm-d-cpu-inference; leader "
        "vllm-1 (LeaderWorkerSet vllm, group 1), not among the checked pods)"]


def test_one_script_runs_the_leaders_branch_on_worker_0_and_the_workers_elsewhere(sim_host: SimHost,
                                                                                tmp_path: Path) -> None:
    info, targets = discovered(sim_host, deployment("kserve-lws-dp", sim_host), tmp_path,
                               "leaderworkerset.sigs.k8s.io/name=llama-kserve-mn")
    assert [t.name for t in targets] == ["llama-kserve-mn-0"]
    assert [w.text() for w in info.workers] == [
        "llama-kserve-mn-0-1 (headless engines: vllm serve --headless, data-parallel engines 2-3; leader "
        "llama-kserve-mn-0 (LeaderWorkerSet llama-kserve-mn, group 0))"]


LWS = "leaderworkerset.sigs.k8s.io/"


def _ray(cluster: Cluster, name: str) -> PodSpec:
    return next(p for p in cluster.namespaces[NS] if p.name == name)


@pytest.mark.parametrize(("change", "leader", "leader_from"), [
    # an older LeaderWorkerSet labels no group-key: the group index ties a worker to its leader
    ("no group key", "vllm-0", "LeaderWorkerSet vllm, group 0"),
    # the leader pod is not listed (another selector): the worker's leader-name annotation names it
    ("leader not listed", "vllm-0", "LeaderWorkerSet vllm, group 0"),
    # a Ray worker outside a LeaderWorkerSet: its head's address is the leader's DNS name, <pod>.<service>.<ns>
    ("no LeaderWorkerSet", "vllm-0", "the Ray head address vllm-0.vllm.llm-d-cpu-inference"),
    # the same address for two pods: the IP cannot tell, the name is no pod either
    ("no LeaderWorkerSet, by a shared IP", None, "the Ray head address 10.0.2.10"),
    ("no LeaderWorkerSet, by IP", "vllm-0", "the Ray head address 10.0.2.10"),
    # a group-key of its own: worker 0 of another group is not its leader, and no annotation names one: its Ray
    # head's address does
    ("another group key", "vllm-0", "the Ray head address vllm-0.vllm.llm-d-cpu-inference"),
])
def test_a_workers_leader_by_each_thing_that_names_it(sim_host: SimHost, tmp_path: Path, change: str,
                                                      leader: str | None, leader_from: str) -> None:
    cluster = deployment("vllm-lws-ray", sim_host, only={"vllm-0", "vllm-0-1", "vllm-1"})
    worker, head = _ray(cluster, "vllm-0-1"), _ray(cluster, "vllm-0")
    if change == "no group key":
        for pod in cluster.namespaces[NS]:
            del pod.labels[f"{LWS}group-key"]
    elif change == "leader not listed":
        cluster.namespaces[NS].remove(head)
    elif change.startswith("no LeaderWorkerSet"):
        for pod in cluster.namespaces[NS]:
            pod.labels = {k: v for k, v in pod.labels.items() if not k.startswith(LWS)}
            pod.annotations = {}
        if "IP" in change:
            worker.env["LWS_LEADER_ADDRESS"] = head.ip
        if "shared" in change:
            _ray(cluster, "vllm-1").ip = head.ip
    else:
        worker.labels[f"{LWS}group-key"] = "another"
        worker.annotations = {}
    for pod in cluster.namespaces[NS]:
        pod.labels["app"] = "vllm"
    info, _ = discovered(sim_host, cluster, tmp_path, "app=vllm")
    (found,) = info.workers
    assert (found.leader, found.leader_from) == (leader, leader_from)
    assert found.checked is (leader == "vllm-0" and change != "leader not listed")


def _worker(pod: str, **fields: Any) -> Worker:
    return Worker(pod, Role.RAY_WORKER, "ray start --address=h:6379", **fields)


def test_the_workers_note_names_eight_and_counts_the_rest() -> None:
    workers = [_worker(f"w-{n}", leader="h", checked=True) for n in range(10)]
    assert workers_note(workers[:8]) == "multi-node workers (not scraped: no API server): " + "; ".join(
        f"w-{n} (Ray worker: ray start --address=h:6379; leader h)" for n in range(8))
    assert workers_note(workers[:9]).endswith("w-7 (Ray worker: ray start --address=h:6379; leader h); and 1 more "
                                              "(the JSON report's environment.kubernetes.multiNodeWorkers lists "
                                              "every one)")
    assert workers_note(workers).count("w-") == 8 and workers_note(workers).endswith(
        "; and 2 more (the JSON report's environment.kubernetes.multiNodeWorkers lists every one)")
    assert _worker("w").text() == "w (Ray worker: ray start --address=h:6379; leader unknown)"
    assert _worker("w", leader="h").text() == "w (Ray worker: ray start --address=h:6379; leader h, not among the " \
                                              "checked pods)"
    assert _worker("w").as_dict() == {"pod": "w", "role": "ray worker", "command": "ray start --address=h:6379",
                                      "node": None, "leader": None, "leaderFrom": None, "leaderChecked": False,
                                      "engines": None}
    assert Worker("w", Role.HEADLESS, "vllm serve --headless").role_shown == "headless engines"


@pytest.mark.parametrize(("implementation", "shown"), [
    ({"engines": ["0"]}, ""),
    ({"engines": []}, ""),
    ({}, ""),
    ({"engines": ["0", "1"]}, "engines 0-1"),
    ({"engines": ["8", "9"], "dataParallel": {"expectedEngines": 8}}, "engines 8-9 (2 of the 8 its command line runs)"),
    ({"engines": [], "dataParallel": {"size": 2}}, "engines none"),
    ({"engines": ["0"], "dataParallel": {"expectedEngines": 1}}, "engines 0 (1 of the 1 its command line runs)"),
])
def test_a_targets_engines_in_the_reports(implementation: dict[str, Any], shown: str) -> None:
    assert engines_shown(implementation) == shown


def test_the_engines_note_names_eight_data_parallel_targets_and_counts_the_rest() -> None:
    assert engines_note([{"target": "a", "engines": ["0"]}]) is None
    assert engines_note([]) is None
    many = [{"target": f"t{n}", "engines": ["0", "1"]} for n in range(10)]
    assert engines_note([*many[:1], {"target": "a", "engines": ["0"]}]) == (
        "data-parallel engines on each page: t0: engines 0-1")
    assert engines_note(many[:8]) == "data-parallel engines on each page: " + "; ".join(
        f"t{n}: engines 0-1" for n in range(8))
    assert engines_note(many[:9]).endswith("t7: engines 0-1; and 1 more (see the report)")
    assert engines_note(many).endswith("t7: engines 0-1; and 2 more (see the report)")


def test_the_engines_on_a_page_in_rank_order() -> None:
    page = Snapshot.parse("# TYPE vllm:num_requests_running gauge\n"
                          + "".join(f'vllm:num_requests_running{{engine="{e}"}} 0\n' for e in ("10", "9", "x", "0"))
                          + '# TYPE other gauge\nother{engine="7"} 0\n')
    assert engines_on_page(page) == ["0", "9", "10", "x"]


@pytest.mark.parametrize(("labels", "hint"), [
    ({}, ""), ({f"{LWS}worker-index": "0", f"{LWS}name": "v"}, ""),
    ({f"{LWS}worker-index": "2", f"{LWS}name": "v"},
     " It is worker 2 of LeaderWorkerSet v: if it runs engines without an API server (a multi-node worker), their "
     "metrics are on its leader's page; select the leaders only (e.g. leaderworkerset.sigs.k8s.io/worker-index=0)."),
    ({f"{LWS}worker-index": "1"}, " It is worker 1 of LeaderWorkerSet ?: if it runs *"),
])
def test_a_leaderworkerset_worker_gets_the_hint_and_no_other_pod_does(labels: dict[str, str], hint: str) -> None:
    assert fnmatch.fnmatchcase(lws_worker_hint(labels), hint)
    assert lws_name(labels) == labels.get(f"{LWS}name")


_UNDERCOUNTS = ("Their requests, tokens, queue and KV cache are counted nowhere: every panel, alert and autoscaler "
                "reading this pod undercounts. Check that the port scraped is this pod's own vLLM API server "
                "(--vllm-port), and the server's --data-parallel-* flags.")
_HYBRID_8 = "--data-parallel-hybrid-lb --data-parallel-size-local 8 --data-parallel-start-rank 8"


@pytest.mark.parametrize(("dp", "engines", "message", "missing"), [
    (DataParallel(size_local=8, start_rank=8, balancing=Balancing.HYBRID), range(8, 15),
     f"pod-a: its /metrics carries engines 8-14, not all of the 8 engines its command line runs ({_HYBRID_8}, hybrid "
     f"load balancing): engine 15 is missing. {_UNDERCOUNTS}", ["15"]),
    (DataParallel(size_local=8, start_rank=8, balancing=Balancing.HYBRID), range(8, 12),
     f"pod-a: its /metrics carries engines 8-11, not all of the 8 engines its command line runs ({_HYBRID_8}, hybrid "
     f"load balancing): engines 12-15 are missing. {_UNDERCOUNTS}", ["12", "13", "14", "15"]),
    (DataParallel(size_local=3, balancing=Balancing.HYBRID, unreadable=("--data-parallel-start-rank",)), range(6, 7),
     "pod-a: its /metrics carries engines 6, not all of the 3 engines its command line runs (--data-parallel-hybrid-lb "
     "--data-parallel-size-local 3 --data-parallel-start-rank (unresolved), hybrid load balancing): 2 of them are "
     f"missing. {_UNDERCOUNTS}", 2),
    (DataParallel(size=2), range(2), "pod-a: engines 0-1 on its page: the 2 engines its command line runs "
                                     "(--data-parallel-size 2, internal load balancing)", []),
    (DataParallel(size=1), range(1), "pod-a: engines 0 on its page: the 1 engine its command line runs "
                                     "(--data-parallel-size 1, internal load balancing)", []),
])
def test_a_data_parallel_verdict_in_full_with_its_evidence(dp: DataParallel, engines: range, message: str,
                                                           missing: list[str] | int) -> None:
    verdict = data_parallel_engines(_obs(dp, _page(*map(str, engines))))
    assert verdict.message == message
    count, first, _ = dp.expected_engines()
    assert verdict.evidence == {"engines": [str(e) for e in engines], "flags": dp.flags(),
                                "balancing": str(dp.balancing), "expected": count, "firstEngine": first,
                                "missing": missing}


def test_an_undecidable_data_parallel_verdict_keeps_its_evidence() -> None:
    unresolved = DataParallel(balancing=Balancing.HYBRID, unreadable=("--data-parallel-size-local",))
    no_engines = Snapshot.parse("# TYPE vllm:x counter\nvllm:x_total 1\n")
    verdict = data_parallel_engines(_obs(unresolved, no_engines))
    assert verdict.message.endswith("(--data-parallel-size-local). The page carries engines none.")
    assert verdict.evidence == {"engines": [], "flags": unresolved.flags(), "balancing": "hybrid", "expected": None,
                                "firstEngine": 0}
    unlabelled = data_parallel_engines(_obs(DataParallel(size=2), no_engines))
    assert unlabelled.evidence == {"engines": [], "flags": "--data-parallel-size 2", "balancing": "internal",
                                   "expected": 2, "firstEngine": 0}
