"""--vllm-epp-url: the endpoint picker's view of the pods against the pods' own, over real HTTP.

The simulated EPP (pytest_vllm_metrics/sim/epp.py) reads the simulated pods' /metrics as a real one does and
publishes the real names (gateway-api-inference-extension's inference_pool_*, llm-d-router's llm_d_epp_*):
`inference_pool_per_pod_queue_size{model_server_pod="pod1-rank-0",name="test-pool"} 100` is the shape of GAIE's
own collector test (pkg/epp/metrics/collectors/inference_pool_test.go).

One round of the comparison (epp._round) and the verdicts it leads to are also pinned in-process, on pages as
the EPP and vLLM 0.32 write them."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from conftest import CURRENT, LEGACY, NS, flat, said, write_kubeconfig
from pytest_vllm_metrics import epp
from pytest_vllm_metrics.engines import Engine
from pytest_vllm_metrics.outcome import Outcome
from pytest_vllm_metrics.settings import Settings
from pytest_vllm_metrics.sim import RunningSim, SimHost, get_profile
from pytest_vllm_metrics.sim.epp import set_kv_usage, set_waiting, start_epp
from pytest_vllm_metrics.sim.kubeapi import ALL, Cluster, KubeDouble, PodSpec
from pytest_vllm_metrics.snapshot import Snapshot
from pytest_vllm_metrics.targets import Target, host_port


@dataclass
class Pool:
    host: SimHost
    a: RunningSim
    b: RunningSim

    @property
    def names(self) -> dict[str, str]:
        """The pods as the EPP names them: here, the names the run gives URL targets (host:port)."""
        return {host_port(self.a.url): self.a.url, host_port(self.b.url): self.b.url}

    def epp(self, **options: object) -> str:
        return start_epp(self.host, self.names, **options)


@pytest.fixture
def pool(sim_host: SimHost) -> Iterator[Pool]:
    a, b = sim_host.start(get_profile("x86_64")), sim_host.start(get_profile("x86_64"))
    set_waiting(a, 2)  # two requests queue on pod a, none on pod b
    yield Pool(sim_host, a, b)


def run(pytester: pytest.Pytester, pool: Pool, epp: str, *args: str) -> pytest.RunResult:
    # -k test_epp: the EPP's checks only (no workload is needed to compare two views of the pods' gauges)
    return pytester.runpytest("-p", "no:cacheprovider", "-rA", f"--vllm-url={pool.a.url}", f"--vllm-url={pool.b.url}",
                              f"--vllm-epp-url={epp}", "-k", "test_epp", "--vllm-report=report.json", *args)


def outcomes(pytester: pytest.Pytester) -> dict[str, str]:
    rows = json.loads((pytester.path / "report.json").read_text())["tests"]
    return {row["check"]: row["outcome"] for row in rows}


@pytest.mark.parametrize("naming", [("inference_pool", "llm_d_epp"), ("inference_pool",), ("llm_d_epp",),
                                    ("llm_d_router_epp",)])
def test_an_agreeing_view_passes(pytester: pytest.Pytester, pool: Pool, naming: tuple[str, ...]) -> None:
    result = run(pytester, pool, pool.epp(naming=naming))
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    # only llm-d-router's EPP counts the pods it could not read (the simulator's counters stay flat)
    assert outcomes(pytester) == {"epp_queue_per_pod": "passed", "epp_ready_pods": "passed",
                                  "epp_kv_cache_average": "passed",
                                  "epp_reads_every_pod": "passed" if "llm_d_epp" in naming else "skipped"}
    rows = json.loads((pytester.path / "report.json").read_text())["tests"]
    queue = next(r for r in rows if r["check"] == "epp_queue_per_pod")
    assert queue["evidence"]["generations"] == list(naming)
    seen = queue["evidence"]["pods"][host_port(pool.a.url)]
    assert (seen["pod"], seen["epp"]) == (2.0, 2.0)
    assert seen["metric"].startswith(naming[0]) and seen["metric"].endswith("_queue_size")


def test_a_disagreeing_queue_fails_naming_the_pod_and_both_numbers(pytester: pytest.Pytester, pool: Pool) -> None:
    result = run(pytester, pool, pool.epp(fault="queue-disagrees"))
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert outcomes(pytester)["epp_queue_per_pod"] == "failed"
    assert outcomes(pytester)["epp_ready_pods"] == "passed"
    pod = host_port(pool.a.url)
    assert said(result, f"{pod}: the endpoint picker reports a queue of 5 (inference_pool_per_pod_queue_size), the "
                        f"pod's own vllm:num_requests_waiting is 2, unchanged for ")
    assert said(result, f"fails on {pod} (1 of 2 targets; 1 passed)")


def test_a_ready_count_that_disagrees_fails_with_both_numbers(pytester: pytest.Pytester, pool: Pool) -> None:
    result = run(pytester, pool, pool.epp(fault="ready-disagrees", naming=("llm_d_epp",)))
    assert outcomes(pytester)["epp_ready_pods"] == "failed"
    assert said(result, "the endpoint picker counts 3 ready pods (llm_d_epp_ready_endpoints), the run found 2 Ready "
                        "vLLM pods that answer")


def test_a_view_that_lags_less_than_the_epp_may_is_not_a_failure(pytester: pytest.Pytester, pool: Pool) -> None:
    # The EPP reads the pods on every 3rd read of its page: right after pod b's queue grows, its next two answers
    # still show the old value (the run's first read, and its first round's); then it catches up. Counted in
    # reads, not seconds, so that the lag is shorter than the EPP may lag however slowly the rounds come: a lag
    # of two rounds would be longer than 2.5 s if one round took that long.
    epp = pool.epp(refresh_every=3)
    assert "model_server_pod" in httpx.get(f"{epp}/metrics", timeout=10).text  # read 1: b has 0 waiting
    set_waiting(pool.b, 4)
    result = run(pytester, pool, epp)
    rows = json.loads((pytester.path / "report.json").read_text())["tests"]
    queue = next(r for r in rows if r["check"] == "epp_queue_per_pod")
    assert queue["outcome"] == "passed", result.stdout.str()
    assert queue["evidence"]["waited"] >= 0.25  # one more round: the difference was seen, and waited out


def test_a_view_that_lags_longer_than_the_epp_may_fails(pytester: pytest.Pytester, pool: Pool) -> None:
    epp = pool.epp(refresh_seconds=600.0)  # it never reads the pods again during the run
    assert "model_server_pod" in httpx.get(f"{epp}/metrics", timeout=10).text
    set_waiting(pool.b, 4)
    result = run(pytester, pool, epp)
    assert outcomes(pytester)["epp_queue_per_pod"] == "failed"
    assert said(result, f"{host_port(pool.b.url)}: the endpoint picker reports a queue of 0 "
                        f"(inference_pool_per_pod_queue_size), the pod's own vllm:num_requests_waiting is 4")


def test_an_unreachable_epp_is_inconclusive(pytester: pytest.Pytester, pool: Pool) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = run(pytester, pool, f"http://127.0.0.1:{port}")  # refused at once; the pods have the default timeout
    assert result.ret == 75
    assert set(outcomes(pytester).values()) == {"inconclusive"}
    assert said(result, f"endpoint picker: cannot connect to http://127.0.0.1:{port}")


def test_without_an_epp_url_the_checks_say_what_to_pass(pytester: pytest.Pytester, pool: Pool) -> None:
    result = pytester.runpytest("-p", "no:cacheprovider", "-rs", f"--vllm-url={pool.a.url}", "-k", "test_epp")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*no endpoint picker: pass --vllm-epp-url=http://<EPP service>:9090 to compare its "
                                 "view of the pods with theirs*"])


def test_a_token_is_sent_and_never_shown(pytester: pytest.Pytester, pool: Pool,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    token = "epp-token-6f1c2a"
    epp = pool.epp(fault="needs-token", token=token)
    refused = run(pytester, pool, epp)
    assert set(outcomes(pytester).values()) == {"inconclusive"}
    assert said(refused, "refused /metrics (HTTP 401): its metrics need a bearer token allowed to get the "
                         "non-resource URL /metrics (the token its ServiceMonitor uses). Put it in the environment "
                         "variable $EPP_TOKEN")
    monkeypatch.setenv("EPP_TOKEN", token)
    accepted = run(pytester, pool, epp)
    assert set(outcomes(pytester).values()) == {"passed"}
    assert token not in flat(refused) + flat(accepted) + (pytester.path / "report.json").read_text()


@pytest.mark.parametrize(("fault", "expected"), [
    ("no-kv", "the endpoint picker publishes no average KV-cache utilization "
              "(inference_pool_average_kv_cache_utilization, llm_d_epp_average_kv_cache_utilization)"),
    ("kv-percent", "the endpoint picker's inference_pool_average_kv_cache_utilization is 15, outside 0..1"),
])
def test_the_average_kv_cache_utilization_must_be_a_fraction(pytester: pytest.Pytester, pool: Pool, fault: str,
                                                             expected: str) -> None:
    set_kv_usage(pool.a, 0.3)  # pod a holds 30% of its KV cache, pod b none: the pool's average is 0.15
    result = run(pytester, pool, pool.epp(fault=fault))
    assert outcomes(pytester)["epp_kv_cache_average"] == "failed"
    assert said(result, expected)


def test_the_average_kv_cache_utilization_of_a_busy_pool_passes(pytester: pytest.Pytester, pool: Pool) -> None:
    set_kv_usage(pool.a, 0.3)
    run(pytester, pool, pool.epp())
    rows = json.loads((pytester.path / "report.json").read_text())["tests"]
    kv = next(r for r in rows if r["check"] == "epp_kv_cache_average")
    assert kv["outcome"] == "passed"
    assert kv["evidence"]["values"]["llm_d_epp_average_kv_cache_utilization"] == [0.15]
    assert kv["evidence"]["podsAverage"] == {"inference_pool_average_kv_cache_utilization": 0.15,
                                             "llm_d_epp_average_kv_cache_utilization": 0.15}


def test_an_average_kv_cache_utilization_that_is_not_the_pods_fails_with_both_numbers(
        pytester: pytest.Pytester, pool: Pool) -> None:
    # An EPP that reads a gauge the pods do not expose publishes 0 while they hold 30% and 0% of their caches:
    # within 0..1, so only the comparison with the pods' own gauges tells.
    set_kv_usage(pool.a, 0.3)
    result = run(pytester, pool, pool.epp(fault="kv-zero", naming=("inference_pool",)))
    assert outcomes(pytester)["epp_kv_cache_average"] == "failed"
    assert said(result, "the endpoint picker's inference_pool_average_kv_cache_utilization is 0, the pods' own "
                        "vllm:kv_cache_usage_perc average 0.15, unchanged for ")
    assert said(result, "(check its --kv-cache-usage-percentage-metric)")


def test_an_epp_of_another_pool_is_inconclusive(pytester: pytest.Pytester, pool: Pool) -> None:
    epp = start_epp(pool.host, {"llama-decode-7d9f-x2kq1": pool.a.url})  # pods named as on Kubernetes
    result = run(pytester, pool, epp)
    assert outcomes(pytester)["epp_queue_per_pod"] == "inconclusive"
    assert said(result, "the endpoint picker lists none of the pods this run checks (it lists llama-decode-7d9f-x2kq1")
    assert outcomes(pytester)["epp_ready_pods"] == "inconclusive"


def _ranked(pool: Pool) -> dict[str, str]:
    """Each pod serving two data-parallel ranks, as GAIE names them ("<pod>-rank-<n>", its collector test:
    pod1-rank-0): rank 0 is the pod the run scrapes, rank 1 an idle engine (so the pod's queue is rank 0's)."""
    idle = {name: pool.host.start(get_profile("x86_64")).url for name in pool.names}
    return {f"{name}-rank-{rank}": (url if rank == 0 else idle[name]) for name, url in pool.names.items()
            for rank in (0, 1)}


def test_data_parallel_ranks_count_for_their_pod_and_as_the_epp_counts_ready_endpoints(
        pytester: pytest.Pytester, pool: Pool) -> None:
    # The EPP counts an endpoint per rank: two pods with two ranks each are 4 ready endpoints, not a failure.
    run(pytester, pool, start_epp(pool.host, _ranked(pool)))
    assert outcomes(pytester) == {"epp_queue_per_pod": "passed", "epp_ready_pods": "passed",
                                  "epp_kv_cache_average": "passed", "epp_reads_every_pod": "passed"}
    rows = json.loads((pytester.path / "report.json").read_text())["tests"]
    ready = next(r for r in rows if r["check"] == "epp_ready_pods")["evidence"]
    assert ready["dataParallelRanks"] == {host_port(pool.a.url): 2, host_port(pool.b.url): 2}


def test_a_page_that_is_not_an_epp_is_inconclusive(pytester: pytest.Pytester, pool: Pool) -> None:
    result = run(pytester, pool, pool.b.url)  # a vLLM server, not an EPP
    assert set(outcomes(pytester).values()) == {"inconclusive"}
    assert said(result, "carries none of the endpoint picker's metrics")


# -- on Kubernetes: the EPP names pods by their Kubernetes name; the run reaches them through the API server ----

def _cluster_run(pytester: pytest.Pytester, sim_host: SimHost, tmp_path: Path, stale_listed: bool) -> pytest.RunResult:
    a, b, c = (sim_host.start(get_profile("x86_64")) for _ in range(3))
    set_waiting(a, 1)
    double = KubeDouble(sim_host, Cluster(
        namespaces={NS: [PodSpec("decode-a", LEGACY, "node-a", {"metrics": 8200}, backend=a.url),
                         PodSpec("decode-b", CURRENT, "node-a", {"metrics": 8200}, backend=b.url),
                         PodSpec("decode-c", CURRENT, "node-a", {"metrics": 8200}, backend=c.url, ready=False,
                                 phase="Running", reason="ContainersNotReady")]},
        nodes={"node-a": "amd64"}, tokens={"admin": ALL}))
    listed = {"decode-a": a.url, "decode-b": b.url} | ({"decode-c": c.url} if stale_listed else {})
    epp = start_epp(sim_host, listed, naming=("llm_d_epp",))
    kubeconfig = write_kubeconfig(tmp_path / "kc", double, "admin")
    return pytester.runpytest("-p", "no:cacheprovider", "-rA", f"--kubeconfig={kubeconfig}",
                              f"--vllm-namespace={NS}", f"--vllm-epp-url={epp}", "-k", "test_epp",
                              "--vllm-report=report.json")


def test_on_kubernetes_the_epps_view_of_the_ready_pods_passes(pytester: pytest.Pytester, sim_host: SimHost,
                                                              tmp_path: Path) -> None:
    _cluster_run(pytester, sim_host, tmp_path, stale_listed=False)
    found = outcomes(pytester)
    assert found["epp_ready_pods"] == "passed"
    # the pod that is not Ready cannot be compared: the check is inconclusive for it, and says why
    assert found["epp_queue_per_pod"] == "inconclusive"
    rows = json.loads((pytester.path / "report.json").read_text())["tests"]
    queue = next(r for r in rows if r["check"] == "epp_queue_per_pod")
    assert {name: t["outcome"] for name, t in queue["targets"].items()} == {
        "decode-a": "passed", "decode-b": "passed", "decode-c": "inconclusive"}


def test_on_kubernetes_an_epp_that_routes_to_a_pod_that_is_not_ready_fails(pytester: pytest.Pytester,
                                                                          sim_host: SimHost, tmp_path: Path) -> None:
    result = _cluster_run(pytester, sim_host, tmp_path, stale_listed=True)
    assert outcomes(pytester)["epp_ready_pods"] == "failed"
    assert said(result, "the endpoint picker counts 3 ready pods (llm_d_epp_ready_endpoints), the run found 2 Ready "
                        "vLLM pods that answer")
    assert said(result, "It lists decode-c, which is not Ready.")


# -- in-process: epp.compare over real HTTP (the simulated EPP and pods) and the verdicts it leads to ------------


def compared(pool: Pool, epp_url: str, *extra: Target, **settings: Any) -> epp.Compared:
    """What the run's comparison finds for pods a and b (named as URL targets are) and `extra` targets."""
    chosen = Settings(vllm_epp_url=epp_url, **settings)
    target = epp.epp_target(chosen)
    assert target is not None
    targets = [Target(name=name, base_url=url) for name, url in pool.names.items()]
    return asyncio.run(epp.compare(target, [*targets, *extra], chosen))


def verdicts_of(found: epp.Compared) -> dict[str, tuple[str, str]]:
    return {check.__name__: (v.outcome, v.message) for check in (epp.queue_per_pod, epp.ready_pods,
                                                                 epp.average_kv_cache) if (v := check(found))}


def test_an_agreeing_view_passes_in_one_round(pool: Pool) -> None:
    set_kv_usage(pool.a, 0.3)
    found = compared(pool, pool.epp())
    assert [g.name for g in found.present] == ["inference_pool", "llm_d_epp"]
    assert {name: outcome for name, (outcome, _) in verdicts_of(found).items()} == {
        "queue_per_pod": "passed", "ready_pods": "passed", "average_kv_cache": "passed"}
    a = next(iter(pool.names))
    queue = epp.queue_per_pod(found)
    assert queue.evidence["pods"][a] == {"metric": "inference_pool_per_pod_queue_size", "pod": 2.0, "epp": 2.0}
    assert (queue.evidence["generations"], queue.evidence["notChecked"]) == (["inference_pool", "llm_d_epp"], [])
    assert 0 <= queue.evidence["waited"] < epp.settle().per_pod_seconds
    assert epp.ready_pods(found).evidence == {"ready": {"inference_pool": 2.0, "llm_d_epp": 2.0}, "pods": 2,
                                              "dataParallelRanks": {}}
    assert epp.average_kv_cache(found).evidence == {
        "values": {"inference_pool_average_kv_cache_utilization": [0.15],
                   "llm_d_epp_average_kv_cache_utilization": [0.15]},
        "podsAverage": {"inference_pool_average_kv_cache_utilization": 0.15,
                        "llm_d_epp_average_kv_cache_utilization": 0.15}}


def test_a_queue_that_differs_for_longer_than_the_epp_may_lag_fails(pool: Pool) -> None:
    found = compared(pool, pool.epp(fault="queue-disagrees"))
    outcome, message = verdicts_of(found)["queue_per_pod"]
    a, b = pool.names
    assert outcome == "failed"
    assert message.startswith(f"fails on {a} (1 of 2 targets; 1 passed)"), message
    verdict = epp.queue_per_pod(found)
    assert verdict.evidence["pods"][a]["epp"] == 5.0 and verdict.targets[b].outcome == "passed"
    assert found.queue[("inference_pool", a)][:3] == ("differs", 2.0, 5.0)
    assert found.queue[("inference_pool", a)][3] >= epp.settle().per_pod_seconds
    assert epp.settle().per_pod_seconds <= found.waited < 2 * epp.settle().pool_seconds + 2 * 10.0
    assert verdicts_of(found)["ready_pods"][0] == "passed"


def test_a_difference_the_wait_is_too_short_to_confirm_is_inconclusive(pool: Pool) -> None:
    # the phase cap (1 s) ends the comparison before the EPP's lag (2.5 s per pod) has passed
    found = compared(pool, pool.epp(fault="queue-disagrees"), vllm_phase_timeout=1.0)
    a, _ = pool.names
    assert found.waited < epp.settle().per_pod_seconds
    assert found.queue[("inference_pool", a)][0] == "unsettled"
    assert verdicts_of(found)["queue_per_pod"][0] == "inconclusive"
    assert f"{a}: the pod's queue (2) and the endpoint picker's (5, inference_pool_per_pod_queue_size) kept " \
           f"changing; no quiet moment came within the wait. Rerun when the pool is idle." == \
           epp.queue_per_pod(found).targets[a].message


def test_a_ready_count_that_differs_for_longer_than_the_pool_bound_fails(pool: Pool) -> None:
    found = compared(pool, pool.epp(fault="ready-disagrees", naming=("llm_d_epp",)))
    outcome, message = verdicts_of(found)["ready_pods"]
    assert outcome == "failed"
    assert message.startswith("the endpoint picker counts 3 ready pods (llm_d_epp_ready_endpoints), the run found 2 "
                              "Ready vLLM pods that answer, unchanged for ")
    assert message.endswith(" s: it routes to pods that are gone, or misses Ready ones.")
    assert found.ready["llm_d_epp"][3] >= epp.settle().pool_seconds
    assert epp.ready_pods(found).evidence == {"metric": "llm_d_epp_ready_endpoints", "epp": 3.0, "pods": 2,
                                              "endpoints": 2, "listedNotReady": []}


def test_a_lag_shorter_than_the_epps_is_waited_out(pool: Pool) -> None:
    epp_url = pool.epp(refresh_every=3)
    assert "model_server_pod" in httpx.get(f"{epp_url}/metrics", timeout=10).text  # read 1: b has 0 waiting
    set_waiting(pool.b, 4)
    found = compared(pool, epp_url)
    assert verdicts_of(found)["queue_per_pod"][0] == "passed"
    assert found.waited >= epp.settle().poll_seconds


@pytest.mark.parametrize(("fault", "outcome", "message"), [
    ("no-kv", "failed", "the endpoint picker publishes no average KV-cache utilization "
                        "(inference_pool_average_kv_cache_utilization, llm_d_epp_average_kv_cache_utilization): it "
                        "reads no KV-cache gauge from the pods (check its --kv-cache-usage-percentage-metric: "
                        "vllm:kv_cache_usage_perc since vLLM 0.9.2)."),
    ("kv-percent", "failed", "the endpoint picker's inference_pool_average_kv_cache_utilization is 15, outside 0..1: "
                             "the gauge it reads from the pods is not a fraction of the KV cache."),
])
def test_an_average_kv_cache_that_is_no_fraction_fails_at_once(pool: Pool, fault: str, outcome: str,
                                                              message: str) -> None:
    set_kv_usage(pool.a, 0.3)
    found = compared(pool, pool.epp(fault=fault))
    assert verdicts_of(found)["average_kv_cache"] == (outcome, message)
    assert found.waited < epp.settle().poll_seconds * 4  # nothing to wait for: one round


def test_the_epps_errors_are_one_message_each(pool: Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    unreachable = compared(pool, f"http://127.0.0.1:{port}")
    assert unreachable.error is not None and unreachable.error.inconclusive
    assert set(verdicts_of(unreachable).values()) == {
        ("inconclusive", unreachable.error.message)}
    assert unreachable.error.message.startswith(f"endpoint picker: cannot connect to http://127.0.0.1:{port}")
    # a vLLM server's page is no EPP's
    not_epp = compared(pool, pool.b.url)
    assert not_epp.error is not None and not_epp.error.inconclusive
    assert not_epp.error.message == (
        f"{pool.b.url}/metrics carries none of the endpoint picker's metrics (inference_pool_per_pod_queue_size, "
        f"llm_d_epp_per_endpoint_queue_size, llm_d_router_epp_per_endpoint_queue_size, ...): it is not an EPP's "
        f"metrics page. Point --vllm-epp-url at the EPP's metrics port (9090 in the charts).")
    # a path that is not the metrics port's: not found, a mistake to fix (not inconclusive)
    elsewhere = f"{pool.epp()}/nowhere"
    missing = compared(pool, elsewhere)
    assert missing.error is not None and not missing.error.inconclusive
    assert missing.error.message == (
        f"the endpoint picker at {elsewhere} answered /metrics with HTTP 404; point --vllm-epp-url at the EPP's "
        f"metrics port (9090 in the charts), without /metrics.")
    assert epp.queue_per_pod(missing).outcome == "failed"


def test_the_token_the_epp_asks_for_comes_from_the_environment(pool: Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    token = "epp-token-6f1c2a"
    epp_url = pool.epp(fault="needs-token", token=token)
    refused = compared(pool, epp_url, vllm_epp_token_env="MY_EPP_TOKEN")
    assert refused.error is not None and refused.error.inconclusive
    assert refused.error.message == (
        f"the endpoint picker at {epp_url} refused /metrics (HTTP 401): its metrics need a bearer token allowed to "
        f"get the non-resource URL /metrics (the token its ServiceMonitor uses). Put it in the environment variable "
        f"$MY_EPP_TOKEN (--vllm-epp-token-env names another).")
    monkeypatch.setenv("MY_EPP_TOKEN", "  ")  # blank: no header, refused again
    assert compared(pool, epp_url, vllm_epp_token_env="MY_EPP_TOKEN").error is not None
    monkeypatch.setenv("MY_EPP_TOKEN", f" {token}\n")
    assert compared(pool, epp_url, vllm_epp_token_env="MY_EPP_TOKEN").error is None
    assert epp.epp_target(Settings()) is None


def test_pods_that_did_not_answer_or_are_not_ready_are_named_inconclusive(pool: Pool) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    gone = Target(name="gone", base_url=f"http://127.0.0.1:{port}")
    unready = Target(name="starting", base_url="", unavailable="starting: pod is not Ready")
    found = compared(pool, pool.epp(), gone, unready)
    assert set(found.unscraped) == {"gone"} and found.unready == {"starting": "starting: pod is not Ready"}
    queue = epp.queue_per_pod(found)
    assert queue.outcome == "inconclusive"
    assert {name: t.outcome for name, t in queue.targets.items()} == {
        **{name: "passed" for name in pool.names}, "gone": "inconclusive", "starting": "inconclusive"}
    assert queue.targets["starting"].message == "starting: pod is not Ready"
    # the ready count cannot be compared while a pod did not answer: the reason is its error
    outcome, message = verdicts_of(found)["ready_pods"]
    assert outcome == "inconclusive"
    assert message.startswith(f"the endpoint picker's ready count cannot be compared: gone: cannot connect to "
                              f"http://127.0.0.1:{port}")
    # only pods that did not answer: nothing to compare with
    chosen = Settings(vllm_epp_url=pool.epp())
    alone = asyncio.run(epp.compare(epp.epp_target(chosen) or gone, [gone, unready], chosen))
    assert epp.queue_per_pod(alone).outcome == "inconclusive"
    assert epp.queue_per_pod(alone).message.startswith(
        "no vLLM pod answered, so the endpoint picker's view has nothing to be compared with: gone: cannot connect")
    capped = Settings(vllm_epp_url=chosen.vllm_epp_url, vllm_phase_timeout=1.0)  # its ready count differs: no wait
    none = asyncio.run(epp.compare(epp.epp_target(capped) or gone, [unready], capped))
    assert (epp.queue_per_pod(none).outcome, epp.queue_per_pod(none).message) == (
        "inconclusive",
        "no vLLM pod answered, so the endpoint picker's view has nothing to be compared with: no target")


def test_an_epp_of_another_pool_lists_none_of_the_pods(pool: Pool) -> None:
    # (the ready counts differ too: the phase cap ends the wait, the verdicts do not depend on it)
    found = compared(pool, start_epp(pool.host, {"llama-decode-7d9f-x2kq1": pool.a.url}), vllm_phase_timeout=1.0)
    a, b = sorted(pool.names)
    assert verdicts_of(found)["queue_per_pod"] == ("inconclusive", (
        f"the endpoint picker lists none of the pods this run checks (it lists llama-decode-7d9f-x2kq1; the run "
        f"checks {a}, {b}): it serves another pool, or the targets are not named as their pods (the EPP names "
        f"pods by their Kubernetes name: use --vllm-namespace)."))
    assert verdicts_of(found)["ready_pods"] == ("inconclusive", (
        "the endpoint picker routes to pods this run did not find (llama-decode-7d9f-x2kq1), so its ready count "
        "cannot be compared: widen --vllm-selector to the InferencePool's pods."))


def test_data_parallel_ranks_count_as_the_epp_counts_endpoints(pool: Pool) -> None:
    found = compared(pool, start_epp(pool.host, _ranked(pool)))
    assert {name: outcome for name, (outcome, _) in verdicts_of(found).items()} == {
        "queue_per_pod": "passed", "ready_pods": "passed", "average_kv_cache": "passed"}
    assert epp.ready_pods(found).evidence["dataParallelRanks"] == {name: 2 for name in pool.names}


# -- one round of the comparison (epp._round) in process: pages as the EPP and vLLM 0.32 write them, no server --
# Each verdict's words and the boundaries: each difference's bound, data-parallel endpoints in the ready count,
# and the KV-cache average against the pods'.

POOL = next(g for g in epp.generations() if g.name == "inference_pool")
BOUND = epp.settle().pool_seconds


def pod(waiting: float = 0.0, kv: float | None = 0.0, old_name: bool = False) -> Snapshot:
    """A vLLM pod's gauges (vLLM 0.32 names; `old_name`: the KV gauge as vLLM before 0.9.2 named it)."""
    gauge = "vllm:gpu_cache_usage_perc" if old_name else "vllm:kv_cache_usage_perc"
    lines = ["# TYPE vllm:num_requests_waiting gauge",
             f'vllm:num_requests_waiting{{engine="0",model_name="m"}} {waiting}']
    if kv is not None:
        lines += [f"# TYPE {gauge} gauge", f'{gauge}{{engine="0",model_name="m"}} {kv}']
    return Snapshot.parse("\n".join(lines) + "\n")


def page(queues: dict[str, float], ready: float, kv: float) -> Snapshot:
    """The EPP's page, as gateway-api-inference-extension writes it (pool "p")."""
    lines = [f"# TYPE {POOL.per_pod_queue} gauge"]
    lines += [f'{POOL.per_pod_queue}{{{POOL.pod_label}="{name}",name="p"}} {value}' for name, value in queues.items()]
    lines += [f"# TYPE {POOL.ready} gauge", f'{POOL.ready}{{name="p"}} {ready}',
              f"# TYPE {POOL.average_kv} gauge", f'{POOL.average_kv}{{name="p"}} {kv}']
    return Snapshot.parse("\n".join(lines) + "\n")


def one_round(before: dict[str, Snapshot], epp_page: Snapshot, after: dict[str, Snapshot] | None = None,
              pending: dict[tuple[str, str], epp.Pending] | None = None, now: float = 100.0
              ) -> tuple[epp.Compared, list[tuple[str, str]], dict[tuple[str, str], epp.Pending]]:
    found = epp.Compared(present=[POOL])
    pending = {} if pending is None else pending
    pages: dict[str, Snapshot | str] = dict(before)
    open_keys = epp._round(found, pages, dict(after or before), epp_page, pending, now)
    return found, open_keys, pending


def settled(before: dict[str, Snapshot], epp_page: Snapshot) -> epp.Compared:
    """Two rounds with the same values, the second after the pool bound: what differs is confirmed."""
    found, _, pending = one_round(before, epp_page)
    for item in pending.values():
        item.since -= BOUND
    found, _, _ = one_round(before, epp_page, pending=pending, now=100.0)
    epp.close(found, pending, epp.settle())
    return found


# -- the ready count counts data-parallel endpoints as the EPP does ------------------------------------------------


def test_two_pods_with_two_ranks_each_are_four_ready_endpoints() -> None:
    ranks = {"a-rank-0": 0, "a-rank-1": 0, "b-rank-0": 0, "b-rank-1": 0}
    found, open_keys, _ = one_round({"a": pod(), "b": pod()}, page(ranks, ready=4, kv=0))
    assert found.ready["inference_pool"] == ("agreed", 4.0, 4, 0.0)
    assert found.ranks == {"a": 2, "b": 2}
    assert epp.ready_pods(found).outcome == Outcome.PASSED
    assert ("inference_pool", "") not in open_keys


def test_one_pod_with_ranks_beside_one_without() -> None:
    found, _, _ = one_round({"a": pod(), "b": pod()}, page({"a-rank-0": 0, "a-rank-1": 0, "a-rank-2": 0, "b": 0},
                                                           ready=4, kv=0))
    assert found.ready["inference_pool"][2] == 4
    assert found.ranks == {"a": 3}


def test_a_pod_the_epp_does_not_list_still_counts_once() -> None:
    _, _, pending = one_round({"a": pod(), "b": pod()}, page({"a-rank-0": 0, "a-rank-1": 0}, ready=2, kv=0))
    expected = pending[("inference_pool", "")]  # a's two ranks and b, which the EPP should list: a difference
    assert (expected.pod, expected.epp) == (3.0, 2.0)


def test_a_ready_count_off_by_one_from_the_endpoints_fails_naming_the_ranks() -> None:
    found = settled({"a": pod(), "b": pod()},
                    page({"a-rank-0": 0, "a-rank-1": 0, "b-rank-0": 0, "b-rank-1": 0}, ready=5, kv=0))
    verdict = epp.ready_pods(found)
    assert verdict.outcome == Outcome.FAILED
    assert ("the endpoint picker counts 5 ready pods (inference_pool_ready_pods), the run found 2 Ready vLLM pods "
            "(4 endpoints: a serves 2, b serves 2 data-parallel ranks) that answer, unchanged for ") in verdict.message
    assert verdict.evidence["endpoints"] == 4 and verdict.evidence["pods"] == 2


def test_one_ready_pod_is_named_in_the_singular() -> None:
    found = settled({"a": pod()}, page({"a": 0}, ready=2, kv=0))
    assert "the run found 1 Ready vLLM pod that answer" in epp.ready_pods(found).message


# -- the KV-cache average equals the pods' own ---------------------------------------------------------------------


@pytest.mark.parametrize(("epp_kv", "state"), [
    (0.15, "agreed"),
    (0.1500004, "agreed"),  # the EPP sums in its own order and prints its own digits: equal to 6 decimals
    (0.150001, None),  # one millionth apart: a difference, its clock starts
    (0.0, None),
])
def test_the_kv_average_agrees_to_six_decimals(epp_kv: float, state: str | None) -> None:
    found, open_keys, pending = one_round({"a": pod(kv=0.3), "b": pod(kv=0.0)}, page({"a": 0, "b": 0}, 2, epp_kv))
    key = ("inference_pool", "<average-kv>")
    if state:
        assert found.kv_compared["inference_pool"] == (state, 0.15, round(epp_kv, 6), 0.0)
        assert key not in open_keys
    else:
        assert key in open_keys and key in pending


def test_a_kv_average_that_is_not_the_pods_fails_once_it_outlasts_the_pool_bound() -> None:
    found = settled({"a": pod(kv=0.3), "b": pod(kv=0.0)}, page({"a": 0, "b": 0}, 2, 0.0))
    verdict = epp.average_kv_cache(found)
    assert verdict.outcome == Outcome.FAILED
    assert verdict.message.startswith("the endpoint picker's inference_pool_average_kv_cache_utilization is 0, the "
                                      "pods' own vllm:kv_cache_usage_perc average 0.15, unchanged for ")
    assert verdict.evidence["podsAverage"] == 0.15


def test_a_kv_difference_shorter_than_the_bound_is_inconclusive() -> None:
    found, _, pending = one_round({"a": pod(kv=0.3), "b": pod(kv=0.0)}, page({"a": 0, "b": 0}, 2, 0.0))
    epp.close(found, pending, epp.settle())  # closed in the round that opened it: 0 s, under the bound
    verdict = epp.average_kv_cache(found)
    assert verdict.outcome == Outcome.INCONCLUSIVE
    assert "differed from the pods' own average (0.15) for 0.0 s, less than it may lag" in verdict.message


def test_a_pods_kv_usage_that_moves_restarts_the_clock() -> None:
    before = {"a": pod(kv=0.3), "b": pod(kv=0.0)}
    found, _, pending = one_round(before, page({"a": 0, "b": 0}, 2, 0.0), after={"a": pod(kv=0.4), "b": pod()})
    assert pending[("inference_pool", "<average-kv>")].since == 100.0
    assert "inference_pool" not in found.kv_compared


def test_pods_of_an_older_vllm_are_compared_by_their_gauge() -> None:
    found, _, _ = one_round({"a": pod(kv=0.2, old_name=True)}, page({"a": 0}, 1, 0.2))
    assert found.kv_compared["inference_pool"][0] == "agreed"


@pytest.mark.parametrize("case", ["ranks", "foreign pod", "pod without the gauge", "out of range"])
def test_the_kv_average_is_not_compared_when_the_pools_differ(case: str) -> None:
    pods = {"a": pod(kv=0.3), "b": pod(kv=0.0 if case != "pod without the gauge" else None)}
    queues = {"a": 0.0, "b": 0.0}
    if case == "ranks":
        queues = {"a-rank-0": 0.0, "a-rank-1": 0.0, "b": 0.0}
    if case == "foreign pod":
        queues["c"] = 0.0
    found, open_keys, _ = one_round(pods, page(queues, 2, 1.5 if case == "out of range" else 0.9))
    assert "inference_pool" not in found.kv_compared
    assert ("inference_pool", "<average-kv>") not in open_keys
    verdict = epp.average_kv_cache(found)
    assert verdict.outcome == (Outcome.FAILED if case == "out of range" else Outcome.PASSED)


# -- each difference is confirmed after its own bound: a pod's queue after per_pod_seconds, the pool's after
# pool_seconds


def closed_after(lasted: float, before: dict[str, Snapshot], epp_page: Snapshot) -> epp.Compared:
    """The comparison closed with every difference seen unchanged for `lasted` seconds."""
    found, _, pending = one_round(before, epp_page)
    for item in pending.values():
        item.since = item.last - lasted
    epp.close(found, pending, epp.settle())
    return found


@pytest.mark.parametrize(("lasted", "queue", "pool"), [
    (epp.settle().per_pod_seconds - 0.25, "unsettled", "unsettled"),
    (epp.settle().per_pod_seconds, "differs", "unsettled"),
    (BOUND - 0.25, "differs", "unsettled"),
    (BOUND, "differs", "differs"),
])
def test_a_difference_is_confirmed_once_it_lasted_its_bound(lasted: float, queue: str, pool: str) -> None:
    found = closed_after(lasted, {"a": pod(waiting=2, kv=0.3), "b": pod()}, page({"a": 5, "b": 0}, ready=3, kv=0.0))
    assert found.queue[("inference_pool", "a")] == (queue, 2.0, 5.0, lasted)
    assert found.ready["inference_pool"] == (pool, 3.0, 2, lasted)
    assert found.kv_compared["inference_pool"] == (pool, 0.15, 0.0, lasted)


# -- the per-pod queue's verdicts ------------------------------------------------------------------------------------


def test_each_pods_queue_verdict_names_the_pod_and_both_numbers() -> None:
    before = {"a": pod(waiting=2), "b": pod(), "c": pod(), "d": pod(waiting=1)}
    after = {**before, "d": pod(waiting=3)}  # d's queue moves during the round
    found, _, pending = one_round(before, page({"a": 5, "b": 0, "d": 1}, ready=4, kv=0.0), after=after)
    for item in pending.values():
        item.since -= BOUND
    found, _, _ = one_round(before, page({"a": 5, "b": 0, "d": 1}, ready=4, kv=0.0), after=after, pending=pending)
    epp.close(found, pending, epp.settle())
    verdict = epp.queue_per_pod(found)
    assert verdict.outcome == "failed"
    by_pod = {name: (v.outcome, v.message) for name, v in verdict.targets.items()}
    assert by_pod["a"] == ("failed", f"a: the endpoint picker reports a queue of 5 "
                                     f"(inference_pool_per_pod_queue_size), the pod's own vllm:num_requests_waiting "
                                     f"is 2, unchanged for {BOUND:.1f} s: the EPP routes on a view of this pod that "
                                     f"is not the pod's.")
    assert by_pod["b"] == ("passed", "")
    assert by_pod["c"] == ("failed", "c: the endpoint picker does not list this pod in "
                                     "inference_pool_per_pod_queue_size although it answers: the EPP does not route "
                                     "to it (is it in the InferencePool's selector, and Ready?).")
    assert by_pod["d"] == ("inconclusive", "d: the pod's queue (3) and the endpoint picker's (1, "
                                           "inference_pool_per_pod_queue_size) kept changing; no quiet moment came "
                                           "within the wait. Rerun when the pool is idle.")
    assert verdict.evidence["pods"]["a"] == {"metric": "inference_pool_per_pod_queue_size", "pod": 2.0, "epp": 5.0}
    assert verdict.evidence["pods"]["c"] == {"metric": "inference_pool_per_pod_queue_size", "pod": 0.0, "epp": None}
    assert verdict.evidence["pods"]["d"] == {"metric": "inference_pool_per_pod_queue_size", "pod": 3.0, "epp": 1.0}
    assert verdict.message.startswith("fails on ") and "(2 of 4 targets; 1 inconclusive, 1 passed)" in \
        verdict.message.splitlines()[0]


def test_a_pod_without_the_queue_gauge_fails_naming_the_gauge() -> None:
    without = Snapshot.parse("# TYPE vllm:kv_cache_usage_perc gauge\nvllm:kv_cache_usage_perc 0\n")
    found, _, _ = one_round({"a": without, "b": pod()}, page({"a": 1, "b": 0}, ready=2, kv=0.0))
    assert found.queue[("inference_pool", "a")] == ("missing", None, 1.0, 0.0)
    verdict = epp.queue_per_pod(found).targets["a"]
    assert (verdict.outcome, verdict.message) == ("failed", "a: the pod exposes no vllm:num_requests_waiting, the "
                                                            "queue the endpoint picker routes on.")
    assert verdict.evidence == {"metric": "inference_pool_per_pod_queue_size", "pod": None, "epp": 1.0}


def test_a_pod_is_judged_by_its_worst_generation() -> None:
    both = [g for g in epp.generations() if g.name in ("inference_pool", "llm_d_epp")]
    other = both[1]
    epp_page = Snapshot.parse(f'# TYPE {POOL.per_pod_queue} gauge\n{POOL.per_pod_queue}{{{POOL.pod_label}="a"}} 0\n'
                              f'# TYPE {other.per_pod_queue} gauge\n{other.per_pod_queue}{{{other.pod_label}="a"}} 9\n')
    found = epp.Compared(present=both)
    pending: dict[tuple[str, str], epp.Pending] = {}
    epp._round(found, {"a": pod()}, {"a": pod()}, epp_page, pending, 100.0)
    for item in pending.values():
        item.since -= BOUND
    epp._round(found, {"a": pod()}, {"a": pod()}, epp_page, pending, 100.0)
    epp.close(found, pending, epp.settle())
    assert found.queue[("inference_pool", "a")][0] == "agreed" and found.queue[("llm_d_epp", "a")][0] == "differs"
    verdict = epp.queue_per_pod(found)
    assert verdict.outcome == "failed" and "(llm_d_epp_per_endpoint_queue_size)" in verdict.message
    assert verdict.evidence["generations"] == ["inference_pool", "llm_d_epp"]


def test_an_epp_without_a_per_pod_queue_is_skipped_for_it() -> None:
    pool_only = Snapshot.parse(f"# TYPE {POOL.ready} gauge\n{POOL.ready} 1\n")
    found, _, _ = one_round({"a": pod()}, pool_only)
    verdict = epp.queue_per_pod(found)
    assert (verdict.outcome, verdict.message) == (
        "skipped", "this endpoint picker publishes no per-pod queue (inference_pool_per_pod_queue_size, "
                   "llm_d_epp_per_endpoint_queue_size, llm_d_router_epp_per_endpoint_queue_size): only its pool "
                   "averages can be checked.")
    assert epp.ready_pods(found).outcome == "passed"
    assert epp.average_kv_cache(found).outcome == "failed"


# -- the pool's verdicts ------------------------------------------------------------------------------------------


def test_the_ready_count_of_an_epp_serving_several_pools_cannot_be_compared() -> None:
    several = Snapshot.parse(f'# TYPE {POOL.per_pod_queue} gauge\n{POOL.per_pod_queue}{{{POOL.pod_label}="a"}} 0\n'
                             f'# TYPE {POOL.ready} gauge\n{POOL.ready}{{name="p"}} 1\n{POOL.ready}{{name="q"}} 3\n')
    found, _, _ = one_round({"a": pod()}, several)
    assert found.ready["inference_pool"] == ("unknown", None, 1, 0.0)
    assert epp.ready_pods(found).message == ("the endpoint picker's ready count cannot be compared: "
                                             "inference_pool_ready_pods has one series per pool and this EPP serves "
                                             "several")


def test_an_epp_without_a_ready_count_fails_naming_what_it_should_publish() -> None:
    no_ready = Snapshot.parse(f'# TYPE {POOL.per_pod_queue} gauge\n{POOL.per_pod_queue}{{{POOL.pod_label}="a"}} 0\n')
    found, _, _ = one_round({"a": pod()}, no_ready)
    assert (epp.ready_pods(found).outcome, epp.ready_pods(found).message) == (
        "failed", "the endpoint picker publishes no ready-pod count (inference_pool_ready_pods), which dashboards and "
                  "autoscalers read.")


@pytest.mark.parametrize(("listed", "said"), [
    ({"c"}, " It lists c, which is not Ready."),
    ({"c", "d"}, " It lists c, d, which are not Ready."),
    (set(), ""),
])
def test_a_ready_count_that_counts_pods_that_are_not_ready_names_them(listed: set[str], said: str) -> None:
    found = epp.Compared(present=[POOL], unready={name: f"{name}: not Ready" for name in ("c", "d")})
    queues = {"a": 0.0, **{name: 0.0 for name in listed}}
    pending: dict[tuple[str, str], epp.Pending] = {}
    epp._round(found, {"a": pod()}, {"a": pod()}, page(queues, ready=1 + len(listed) + 1, kv=0.0), pending, 100.0)
    for item in pending.values():
        item.since -= BOUND
    epp.close(found, pending, epp.settle())
    verdict = epp.ready_pods(found)
    assert verdict.outcome == "failed" and verdict.message.endswith(f"misses Ready ones.{said}")
    assert verdict.evidence["listedNotReady"] == sorted(listed)


def test_a_ready_count_difference_shorter_than_the_bound_is_inconclusive() -> None:
    found = closed_after(1.0, {"a": pod()}, page({"a": 0}, ready=2, kv=0.0))
    assert (epp.ready_pods(found).outcome, epp.ready_pods(found).message) == (
        "inconclusive", "the endpoint picker's ready count (2, inference_pool_ready_pods) differed from the 1 Ready "
                        "vLLM pod found for 1.0 s, less than it may lag (it flushes its pool gauges every few "
                        "seconds); rerun.")


@pytest.mark.parametrize("kv", ["NaN", "-0.01", "1.01"])
def test_an_average_kv_cache_outside_a_fraction_fails(kv: str) -> None:
    found, _, _ = one_round({"a": pod()}, Snapshot.parse(
        f'# TYPE {POOL.per_pod_queue} gauge\n{POOL.per_pod_queue}{{{POOL.pod_label}="a"}} 0\n'
        f"# TYPE {POOL.average_kv} gauge\n{POOL.average_kv} {kv}\n"))
    verdict = epp.average_kv_cache(found)
    assert verdict.outcome == "failed"
    assert verdict.message == (f"the endpoint picker's inference_pool_average_kv_cache_utilization is "
                               f"{float(kv):g}, outside 0..1: the gauge it reads from the pods is not a fraction of "
                               f"the KV cache.")


@pytest.mark.parametrize("kv", ["0", "1"])
def test_an_average_kv_cache_at_either_end_of_a_fraction_is_one(kv: str) -> None:
    found, _, _ = one_round({"a": pod(kv=float(kv))}, page({"a": 0}, ready=1, kv=float(kv)))
    assert epp.average_kv_cache(found).outcome == "passed"
    assert found.kv_compared["inference_pool"][0] == "agreed"


@pytest.mark.parametrize(("status", "inconclusive"), [
    # busy or behind a gateway that could not reach it: could not observe; any other answer: the URL is wrong
    (429, True), (502, True), (503, True), (504, True), (404, False), (500, False), (505, False),
])
def test_an_epp_that_answers_metrics_with_an_error_status(sim_host: SimHost, status: int, inconclusive: bool) -> None:
    async def metrics(request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["status"]), text="busy")

    app = web.Application()
    app.router.add_get("/{status}/metrics", metrics)
    target = Target(name="endpoint picker", base_url=f"{sim_host.start_app(app)}/{status}")

    async def read() -> None:
        async with httpx.AsyncClient() as client:
            await epp.read_epp(client, target, Settings())

    with pytest.raises(epp.FetchError) as raised:
        asyncio.run(read())
    assert raised.value.inconclusive is inconclusive
    said_here = f"answered /metrics with HTTP {status}; point --vllm-epp-url at the EPP's metrics port"
    assert said_here in str(raised.value)
    # each of the EPP's checks says it, as not observed (busy) or failed (not the EPP's metrics port)
    found = asyncio.run(epp.compare(target, [], Settings()))
    verdict = epp.queue_per_pod(found)
    assert (verdict.outcome, said_here in verdict.message) == ("inconclusive" if inconclusive else "failed", True)


def test_without_the_token_variable_set_no_authorization_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VLLM_EPP_TOKEN_NOT_SET", raising=False)
    target = epp.epp_target(Settings(vllm_epp_url="http://epp.test:9090", vllm_epp_token_env="VLLM_EPP_TOKEN_NOT_SET"))
    assert target is not None and target.client_options == {}


def test_when_no_pod_answered_each_ones_cause_is_named() -> None:
    found = epp.Compared(present=[POOL], unscraped={"a": "a: connection refused", "b": "b: timed out after 5 s"})
    verdict = epp.queue_per_pod(found)
    assert (verdict.outcome, verdict.message) == (
        "inconclusive", "no vLLM pod answered, so the endpoint picker's view has nothing to be compared with: "
                        "a: connection refused; b: timed out after 5 s")


def test_a_queue_series_without_the_pod_label_leaves_the_pods_verdicts_alone() -> None:
    epp_page = Snapshot.parse(f"# TYPE {POOL.per_pod_queue} gauge\n{POOL.per_pod_queue}{{{POOL.pod_label}=\"a\"}} 0\n"
                              f'{POOL.per_pod_queue}{{name="p"}} 4\n')
    found = settled({"a": pod()}, epp_page)
    found.waited = 2.345
    verdict = epp.queue_per_pod(found)
    assert (verdict.outcome, verdict.targets["a"].outcome) == ("passed", "passed")
    assert verdict.evidence["waited"] == 2.35  # seconds, to the hundredth


@pytest.mark.parametrize("foreign", [6, 0])
def test_an_epp_that_lists_none_of_the_pods_names_five_of_each_side(foreign: int) -> None:
    mine = [f"decode-{i}" for i in range(6)]
    found = epp.Compared(present=[POOL], pods={name: name for name in mine},
                         foreign={f"other-{i}" for i in range(foreign)},
                         queue={("inference_pool", name): ("missing", 1.0, None, 0.0) for name in mine})
    listed = "other-0, other-1, other-2, other-3, other-4" if foreign else "none"
    verdict = epp.queue_per_pod(found)
    assert (verdict.outcome, verdict.level) == ("inconclusive", "MUST")
    assert verdict.message == (
        f"the endpoint picker lists none of the pods this run checks (it lists {listed}; the run checks decode-0, "
        f"decode-1, decode-2, decode-3, decode-4): it serves another pool, or the targets are not named as their pods "
        f"(the EPP names pods by their Kubernetes name: use --vllm-namespace).")


def test_the_epps_pool_numbers_as_evidence_when_they_fail_or_agree() -> None:
    # outside a fraction: the values the EPP published
    found, _, _ = one_round({"a": pod()}, page({"a": 0}, ready=1, kv=1.5))
    assert epp.average_kv_cache(found).evidence == {"values": {POOL.average_kv: [1.5]}}
    # differing from the pods' own average, and agreeing: the EPP's values and the pods' average
    differs = settled({"a": pod(kv=0.3), "b": pod(kv=0.0)}, page({"a": 0, "b": 0}, 2, 0.0))
    assert epp.average_kv_cache(differs).evidence == {"values": {POOL.average_kv: [0.0]}, "podsAverage": 0.15}
    agreed = settled({"a": pod(kv=0.2), "b": pod(kv=0.4)}, page({"a": 0, "b": 0}, 2, 0.3))
    verdict = epp.average_kv_cache(agreed)
    assert (verdict.outcome, verdict.message) == ("passed", "")
    assert verdict.evidence["podsAverage"] == {POOL.average_kv: pytest.approx(0.3)}
    ready = epp.ready_pods(agreed)
    assert (ready.outcome, ready.message, ready.evidence["ready"]) == ("passed", "", {"inference_pool": 2.0})


def test_a_ready_count_beside_pods_it_should_not_route_to_names_five_of_them() -> None:
    found = settled({"a": pod()}, page({"a": 0, **{f"other-{i}": 0 for i in range(6)}}, ready=7, kv=0))
    verdict = epp.ready_pods(found)
    assert (verdict.outcome, verdict.message) == (
        "inconclusive", "the endpoint picker routes to pods this run did not find (other-0, other-1, other-2, "
                        "other-3, other-4), so its ready count cannot be compared: widen --vllm-selector to the "
                        "InferencePool's pods.")


def test_a_ready_count_beside_pods_that_did_not_answer_names_each_cause() -> None:
    found = settled({"a": pod()}, page({"a": 0}, ready=3, kv=0))
    found.unscraped = {"b": "b: connection refused", "c": "c: timed out"}
    found.ready = {"inference_pool": ("unknown", 3.0, 1, 0.0)}
    assert epp.ready_pods(found).message == ("the endpoint picker's ready count cannot be compared: "
                                             "b: connection refused, c: timed out")


def test_a_pod_of_another_engine_is_compared_on_its_own_gauges(sim_host: SimHost) -> None:
    # an SGLang pod serves sglang:num_queue_reqs and sglang:token_usage, not vLLM's: the EPP reads those for it
    sglang, vllm = sim_host.start(get_profile("sglang-0.5.16")), sim_host.start(get_profile("x86_64"))
    set_waiting(vllm, 2)
    pods = {host_port(sglang.url): sglang.url, host_port(vllm.url): vllm.url}
    chosen = Settings(vllm_epp_url=start_epp(sim_host, pods))
    target = epp.epp_target(chosen)
    assert target is not None
    targets = [Target(name=host_port(sglang.url), base_url=sglang.url, engine=Engine.SGLANG, metrics_path="/metrics"),
               Target(name=host_port(vllm.url), base_url=vllm.url)]
    found = asyncio.run(epp.compare(target, targets, chosen))
    queue = epp.queue_per_pod(found)
    assert queue.outcome == "passed", queue.message
    assert {name: (pod["pod"], pod["epp"]) for name, pod in queue.evidence["pods"].items()} == {
        host_port(sglang.url): (0.0, 0.0), host_port(vllm.url): (2.0, 2.0)}
    assert epp.average_kv_cache(found).outcome == "passed"
