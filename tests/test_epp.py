"""--vllm-epp-url: the endpoint picker's view of the pods against the pods' own, over real HTTP.

The simulated EPP (pytest_vllm_metrics/sim/epp.py) reads the simulated pods' /metrics as a real one does and
publishes the real names (gateway-api-inference-extension's inference_pool_*, llm-d-router's llm_d_epp_*):
`inference_pool_per_pod_queue_size{model_server_pod="pod1-rank-0",name="test-pool"} 100` is the shape of GAIE's
own collector test (pkg/epp/metrics/collectors/inference_pool_test.go)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from conftest import CURRENT, LEGACY, NS, flat, said, write_kubeconfig
from pytest_vllm_metrics.sim import RunningSim, SimHost, get_profile
from pytest_vllm_metrics.sim.epp import set_kv_usage, set_waiting, start_epp
from pytest_vllm_metrics.sim.kubeapi import ALL, Cluster, KubeDouble, PodSpec
from pytest_vllm_metrics.targets import host_port


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
    assert outcomes(pytester) == {"epp_queue_per_pod": "passed", "epp_ready_pods": "passed",
                                  "epp_kv_cache_average": "passed"}
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
                                  "epp_kv_cache_average": "passed"}
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
