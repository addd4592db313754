"""One round of the EPP comparison (epp._round) and the pool verdicts it leads to, in-process: pages as the EPP
and vLLM 0.32 write them, no server. The runs over real HTTP are in tests/test_epp.py; these pin the pool
gauges' boundaries: data-parallel endpoints in the ready count, and the KV-cache average against the pods'."""

from __future__ import annotations

import pytest

from pytest_vllm_metrics import epp
from pytest_vllm_metrics.outcome import Outcome
from pytest_vllm_metrics.snapshot import Snapshot

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
