"""What the reports say of each observed target (the JSON report's `implementations`): simulated servers observed
around a real workload on loopback, an unreachable one, and the multi-node workers a cluster lists."""

from __future__ import annotations

import asyncio
from typing import Any

from conftest import exposition, observed
from pytest_vllm_metrics import implementations
from pytest_vllm_metrics.engines import Engine
from pytest_vllm_metrics.kube import ClusterInfo
from pytest_vllm_metrics.multinode import Worker
from pytest_vllm_metrics.observe import Observation, observe
from pytest_vllm_metrics.settings import Settings
from pytest_vllm_metrics.sim import SimHost
from pytest_vllm_metrics.snapshot import Snapshot
from pytest_vllm_metrics.targets import DataParallel, Role, Target, TargetSource


def _bounds(buckets: list[list[Any]]) -> list[float]:
    return [float(le) for le, _ in buckets]


def test_a_target_observed_around_the_workload(host: SimHost) -> None:
    found = observed(host, "x86_64", name="decode-0", arch="amd64", node="node-a", source=TargetSource.KUBERNETES,
                     detail={"image": "vllm/vllm-openai:v0.32.0"}, data_parallel=DataParallel(size=1))
    obs = found[0]
    [said] = implementations.of(found, None)
    measured = said.pop("measured")
    assert said == {
        "target": "decode-0", "vllmVersion": "0.32.0", "model": "tiny", "image": "vllm/vllm-openai:v0.32.0",
        "architecture": "amd64", "node": "node-a", "source": "kubernetes", "modelServer": "vllm",
        "modelServerVersion": "0.32.0", "blockSize": 128, "prefixCaching": "True",
        "features": ["core", "http", "prefix_caching"], "exposition": "text/0.0.4", "engines": ["0"],
        "dataParallel": DataParallel(size=1).as_dict(), "multiNodeWorkers": []}
    assert obs.delta is not None
    hits = obs.delta.increase("vllm:prefix_cache_hits_total")
    queries = obs.delta.increase("vllm:prefix_cache_queries_total")
    assert 0 < hits < queries  # the workload repeats a prefix: some hits, among more queries
    assert measured["prefixCache"] == {"hits": hits, "queries": queries}
    assert measured["requestSuccess"] == {"before": 0.0, "after": 4.0}  # the workload's 4 requests
    assert measured["kvCacheUsage"] == {"before": 0.0, "after": 0.0}  # idle at both scrapes
    assert (measured["restarted"], measured["looksExclusive"]) == (False, True)
    for key in ("ttft", "e2eLatency"):
        buckets = measured[key]
        # every bucket bound in numeric order, +Inf last; cumulative counts of the workload's 4 requests
        assert buckets[-1] == ["+Inf", 4.0]
        assert _bounds(buckets) == sorted(_bounds(buckets)) and len(buckets) > 10
        counts = [n for _, n in buckets]
        assert counts == sorted(counts)


def test_a_target_that_restarted_between_the_scrapes_without_prefix_cache_or_cache_config() -> None:
    # a page with neither vllm:cache_config_info nor the prefix-cache counters; its process started anew
    values = {"vllm:request_success_total": 5.0, "vllm:kv_cache_usage_perc": 0.25}
    obs = Observation(Target(name="decode-0", base_url="http://127.0.0.1:9"), version="0.32.0",
                      before=exposition(values, start=1000.0), after=exposition(values | {
                          "vllm:request_success_total": 2.0, "vllm:kv_cache_usage_perc": 0.5}, start=2000.0))
    [said] = implementations.of([obs], None)
    assert (said["blockSize"], said["prefixCaching"], said["exposition"]) == (None, None, "text/0.0.4")
    assert said["measured"] == {
        "kvCacheUsage": {"before": 0.25, "after": 0.5}, "requestSuccess": {"before": 5.0, "after": 2.0},
        "prefixCache": None, "restarted": True, "looksExclusive": None, "ttft": [], "e2eLatency": []}


def test_an_unreachable_target_has_no_numbers() -> None:
    target = Target(name="gone", base_url="http://127.0.0.1:9", arch="arm64")
    found = list(asyncio.run(observe([target], Settings(vllm_requests=1))).values())
    [said] = implementations.of(found, None)
    assert said == {
        "target": "gone", "vllmVersion": None, "model": None, "image": None, "architecture": "arm64", "node": None,
        "source": "url", "modelServer": "vllm", "modelServerVersion": None, "blockSize": None,
        "prefixCaching": None, "features": [],
        "exposition": None,
        "measured": {"kvCacheUsage": {"before": None, "after": None}, "requestSuccess": {"before": None, "after": None},
                     "prefixCache": None, "restarted": False, "looksExclusive": None, "ttft": [], "e2eLatency": []},
        "engines": None, "dataParallel": None, "multiNodeWorkers": []}


def test_a_leader_lists_the_checked_workers_whose_engines_report_through_it(host: SimHost) -> None:
    found = observed(host, "x86_64", name="vllm-0")
    cluster = ClusterInfo(api_client=None, context="kind", server="https://kube.test", version="v1.31",
                          namespace="llm-d", selectors=(), workers=[
                              Worker("vllm-0-1", Role.HEADLESS, "vllm serve --headless", leader="vllm-0", checked=True),
                              Worker("vllm-0-2", Role.RAY_WORKER, "ray start", leader="vllm-0", checked=True),
                              Worker("vllm-1-1", Role.HEADLESS, "vllm serve --headless", leader="vllm-1", checked=True),
                              Worker("vllm-0-3", Role.HEADLESS, "vllm serve --headless", leader="vllm-0"),
                              Worker("orphan", Role.HEADLESS, "vllm serve --headless", checked=True)])
    [said] = implementations.of(found, cluster)
    assert said["multiNodeWorkers"] == ["vllm-0-1", "vllm-0-2"]


def test_a_malformed_histogram_does_not_stop_the_report() -> None:
    # a bucket without `le` and one whose bound is not a number (a broken exporter or relabeling): the readable
    # bounds are charted in order, the unreadable one with +Inf at the end, and nothing raises
    page = """# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{le="0.5"} %d
vllm:time_to_first_token_seconds_bucket{le="oops"} %d
vllm:time_to_first_token_seconds_bucket{model_name="m"} %d
vllm:time_to_first_token_seconds_bucket{le="+Inf"} %d
vllm:time_to_first_token_seconds_count %d
vllm:time_to_first_token_seconds_sum 1
"""
    obs = Observation(Target(name="decode-0", base_url="http://127.0.0.1:9"),
                      before=Snapshot.parse(page % (0, 0, 0, 0, 0)), after=Snapshot.parse(page % (1, 2, 2, 2, 2)))
    [said] = implementations.of([obs], None)
    ttft = said["measured"]["ttft"]
    assert ttft[0] == ["0.5", 1.0] and sorted(map(tuple, ttft[1:])) == [("+Inf", 2.0), ("oops", 2.0)]


def test_a_bucket_whose_bound_is_empty_is_not_charted() -> None:
    # an empty label value is no label to Prometheus: a bucket with le="" has no bound to chart
    page = """# TYPE vllm:e2e_request_latency_seconds histogram
vllm:e2e_request_latency_seconds_bucket{le="1.0"} %d
vllm:e2e_request_latency_seconds_bucket{le=""} %d
vllm:e2e_request_latency_seconds_bucket{le="+Inf"} %d
vllm:e2e_request_latency_seconds_count %d
vllm:e2e_request_latency_seconds_sum 1
"""
    obs = Observation(Target(name="decode-0", base_url="http://127.0.0.1:9"),
                      before=Snapshot.parse(page % (0, 0, 0, 0)), after=Snapshot.parse(page % (1, 3, 3, 3)))
    [said] = implementations.of([obs], None)
    assert said["measured"]["e2eLatency"] == [["1.0", 1.0], ["+Inf", 3.0]]


def test_another_model_servers_version_is_no_vllm_version() -> None:
    # an SGLang server states its own version: the report's vllmVersion is for vLLM only
    obs = Observation(Target(name="sglang-0", base_url="http://127.0.0.1:9", engine=Engine.SGLANG), version="0.4.6")
    [said] = implementations.of([obs], None)
    assert (said["modelServer"], said["modelServerVersion"], said["vllmVersion"]) == ("sglang", "0.4.6", None)
