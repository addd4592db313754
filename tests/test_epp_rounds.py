"""One round of the EPP comparison (epp._round) and the verdicts it leads to, in-process: pages as the EPP
and vLLM 0.32 write them, no server. The runs over real HTTP are in tests/test_epp.py; these pin each
verdict's words and the boundaries: each difference's bound, data-parallel endpoints in the ready count, and the
KV-cache average against the pods'."""

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
