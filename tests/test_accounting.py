"""--vllm-exclusive (accounting.py): exact accounting and gauges back to zero, the checks vLLM's own metrics test
makes. Every answer the exact checks give, whole: outcome, level, message and evidence.

Constructed observations (two small pages, the workload's record, the abort probe's record), no server: the
messages are what users read, so each is asserted in full. Then through pytest against the simulator (clean, and
with the faults users reported: n > 1 counted twice, gauges stuck after aborted requests)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest

from conftest import exposition, name_of, said, verdicts
from pytest_vllm_metrics import accounting
from pytest_vllm_metrics.catalog import load_catalog
from pytest_vllm_metrics.observe import Observation
from pytest_vllm_metrics.outcome import Outcome, Problem, Verdict
from pytest_vllm_metrics.settings import Policy
from pytest_vllm_metrics.sim import SimHost, get_profile
from pytest_vllm_metrics.snapshot import Snapshot
from pytest_vllm_metrics.targets import Target
from pytest_vllm_metrics.traffic import Aborts, RequestRecord, TrafficResult

EXCLUSIVE = Policy(exclusive=True)
SHARED = Policy()
WHERE = "decode-0 (vLLM 0.32.0, x86_64)"
PROMPT = accounting.Exact("vllm:prompt_tokens_total", "engine_prompt_tokens", "usage.prompt_tokens once per choice")
SUCCESS = "vllm:request_success_total"
LENGTH, STOP, ABORT = (f'{SUCCESS}{{finished_reason="{reason}"}}' for reason in ("length", "stop", "abort"))
NOT_EXCLUSIVE = ("decode-0: needs --vllm-exclusive (no other traffic reaches the target during the run); without "
                 "it, counters are judged by the at-least rule of test_moves.")
LOOKED_EXCLUSIVE = " This run looked exclusive: finished requests and prompt tokens moved by exactly the workload."
RUNNING, WAITING, KV = "vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc"


page = exposition


def record(prompt: int = 10, completion: int = 8, n: int = 1, reason: str | None = "length", status: int = 200,
           max_tokens: int = 8) -> RequestRecord:
    return RequestRecord("completion", status, 0.1, prompt_tokens=prompt, completion_tokens=completion, n=n,
                         max_tokens=max_tokens, finish_reasons=dict.fromkeys(range(n), reason) if reason else {})


def traffic(*records: RequestRecord) -> TrafficResult:
    return TrafficResult(model="m", block_size=16, records=list(records))


def observation(before: Snapshot | None, after: Snapshot | None, sent: TrafficResult | None,
                aborts: Aborts | None = None, version: str = "0.32.0", unavailable: str | None = None
                ) -> Observation:
    return Observation(Target("decode-0", "http://10.0.0.1:8200", arch="x86_64", unavailable=unavailable),
                       version=version, before=before, traffic=sent, after=after, aborts=aborts)


def moved(counters: Mapping[str, tuple[float, float]], sent: TrafficResult, start_after: float = 1000.0
          ) -> Observation:
    """An observation where each counter went from its first value to its second."""
    before = page({name: values[0] for name, values in counters.items()})
    after = page({name: values[1] for name, values in counters.items()}, start=start_after)
    return observation(before, after, sent)


def judge(obs: Observation, policy: Policy = EXCLUSIVE, rule: accounting.Exact = PROMPT, level: str = "SHOULD"
          ) -> Verdict:
    return accounting.exact(rule, obs, policy, load_catalog(), level)


def assert_verdict(verdict: Verdict, outcome: Outcome, message: str, level: str = "SHOULD") -> None:
    assert (verdict.outcome, verdict.message, verdict.level) == (outcome, message, level)


# -- looks_exclusive: the note of a run without the switch -------------------------------------------------------


EXACTLY = {SUCCESS: (3, 6), PROMPT.name: (100, 130)}  # 10 + 2 * 10 prompt tokens, 3 choices
SENT = (record(10), record(10, n=2))


@pytest.mark.parametrize(("counters", "looked"), [
    (EXACTLY, True),
    ({SUCCESS: (3, 7), PROMPT.name: (100, 130)}, False),  # one request more finished: someone else's
    ({SUCCESS: (3, 5), PROMPT.name: (100, 130)}, False),  # one less
    ({SUCCESS: (3, 6), PROMPT.name: (100, 131)}, False),  # one prompt token more
    ({SUCCESS: (3, 6), PROMPT.name: (100, 129)}, False),  # one prompt token less
])
def test_looks_exclusive_only_when_both_counters_moved_by_exactly_the_workload(
        counters: dict[str, tuple[float, float]], looked: bool) -> None:
    assert accounting.looks_exclusive(moved(counters, traffic(*SENT))) is looked


@pytest.mark.parametrize("obs", [
    observation(page({}), None, traffic(record())),  # no second scrape
    observation(page({SUCCESS: 0, PROMPT.name: 0}), page({SUCCESS: 1, PROMPT.name: 10}), None),  # no workload
    moved({SUCCESS: (0, 0), PROMPT.name: (0, 0)}, traffic(record(status=500))),  # no request succeeded
    moved({SUCCESS: (0, 1), PROMPT.name: (0, 10)}, traffic(record(10)), start_after=2000.0),  # restarted
    moved({SUCCESS: (0, 1), PROMPT.name: (0, 10)}, traffic(record(10, completion=0))),  # an answer without usage
    moved({SUCCESS: (0, 1), PROMPT.name: (0, 0)}, traffic(record(0))),  # no prompt usage either
], ids=["no-second-scrape", "no-workload", "none-succeeded", "restarted", "no-completion-usage",
        "no-prompt-usage"])
def test_looks_exclusive_cannot_tell(obs: Observation) -> None:
    assert accounting.looks_exclusive(obs) is None


# -- the gate every exact check passes first ----------------------------------------------------------------------


def test_without_the_switch_the_exact_check_is_skipped_and_says_why() -> None:
    shared = moved({SUCCESS: (3, 7), PROMPT.name: (100, 150)}, traffic(*SENT))
    assert_verdict(judge(shared, SHARED), Outcome.SKIPPED, NOT_EXCLUSIVE)
    assert judge(shared, SHARED).evidence == {}


def test_without_the_switch_an_exclusive_looking_run_gets_the_note() -> None:
    assert_verdict(judge(moved(EXACTLY, traffic(*SENT)), SHARED), Outcome.SKIPPED, NOT_EXCLUSIVE + LOOKED_EXCLUSIVE)


def test_without_the_switch_a_run_that_cannot_be_told_gets_no_note() -> None:
    restarted = moved(EXACTLY, traffic(*SENT), start_after=2000.0)
    assert_verdict(judge(restarted, SHARED), Outcome.SKIPPED, NOT_EXCLUSIVE)


@pytest.mark.parametrize("stage", ["before", "traffic", "after"])
@pytest.mark.parametrize(("inconclusive", "outcome"), [(True, Outcome.INCONCLUSIVE), (False, Outcome.FAILED)])
def test_a_stage_that_has_no_result_is_the_verdict(stage: str, inconclusive: bool, outcome: Outcome) -> None:
    obs = moved(EXACTLY, traffic(*SENT))
    obs.errors[stage] = Problem(f"decode-0: the {stage} stage broke.", inconclusive)
    assert_verdict(judge(obs), outcome, f"decode-0: the {stage} stage broke.")
    assert_verdict(accounting.finish_reasons(obs, EXCLUSIVE, "SHOULD"), outcome, f"decode-0: the {stage} stage broke.")


def test_the_first_stage_without_a_result_is_the_one_named() -> None:
    obs = moved(EXACTLY, traffic(*SENT))
    obs.errors["after"] = Problem("decode-0: no second scrape.")
    obs.errors["before"] = Problem("decode-0: no first scrape.", inconclusive=False)
    assert_verdict(judge(obs), Outcome.FAILED, "decode-0: no first scrape.")


def test_an_unavailable_target_is_inconclusive_with_its_reason() -> None:
    obs = observation(None, None, None, unavailable="decode-0: the pod is not Ready.")
    assert_verdict(judge(obs), Outcome.INCONCLUSIVE, "decode-0: the pod is not Ready.")


def test_a_workload_through_the_gateway_cannot_be_counted_per_pod() -> None:
    verdict = judge(moved(EXACTLY, traffic(*SENT)), Policy(exclusive=True, via_gateway=True))
    assert_verdict(verdict, Outcome.INCONCLUSIVE, "decode-0: the workload went through the gateway, which decides "
                                                  "each pod's share, so no pod's exact count is known; target the "
                                                  "pods.")


def test_a_failed_workload_request_makes_the_count_unknown() -> None:
    sent = traffic(*SENT, RequestRecord("chat", 500, 0.1, error="boom"))
    assert_verdict(judge(moved(EXACTLY, sent)), Outcome.INCONCLUSIVE,
                   "decode-0: 1 of 3 workload requests failed, and what the server counted of them cannot be known; "
                   "2/3 requests succeeded, 20 prompt tokens (shared prefix 0 tokens, block size 16), 16 generated "
                   "tokens; first failure: chat -> 500: boom.")


def test_an_answer_without_usage_makes_the_tokens_unknown() -> None:
    sent = traffic(record(10), record(10, completion=0, n=2))
    assert_verdict(judge(moved(EXACTLY, sent)), Outcome.INCONCLUSIVE,
                   "decode-0: an answer carried no usage (prompt and completion tokens), so the workload's exact "
                   "tokens are unknown.")


def test_a_restart_between_the_scrapes_is_inconclusive() -> None:
    assert_verdict(judge(moved(EXACTLY, traffic(*SENT), start_after=2000.0)), Outcome.INCONCLUSIVE,
                   "decode-0: the server restarted between the scrapes (or another process answered the second): "
                   "exact counts cannot be compared; rerun.")


# -- exact: one counter, one workload quantity --------------------------------------------------------------------


def expected_evidence(expected: int, got: float | None, before: float | None, after: float | None,
                      quantity: str = "engine_prompt_tokens") -> dict[str, Any]:
    return {"expected": expected, "got": got, "before": before, "after": after, "quantity": quantity,
            "workload": "2/2 requests succeeded, 20 prompt tokens (shared prefix 0 tokens, block size 16), 16 "
                        "generated tokens", "requests": 2, "choices": 3}


def test_exactly_the_workload_passes() -> None:
    verdict = judge(moved(EXACTLY, traffic(*SENT)))
    assert_verdict(verdict, Outcome.PASSED, "")
    assert verdict.evidence == expected_evidence(30, 30.0, 100.0, 130.0)


def test_the_level_defaults_to_must() -> None:
    obs = moved(EXACTLY, traffic(*SENT))
    assert accounting.exact(PROMPT, obs, EXCLUSIVE, load_catalog()).level == "MUST"
    assert accounting.exact(PROMPT, obs, SHARED, load_catalog()).level == "MUST"
    assert accounting.finish_reasons(obs, EXCLUSIVE).level == "MUST"
    assert accounting.gauges_return_to_zero(obs, SHARED).level == "MUST"


def test_one_more_than_the_workload_fails_as_counted_twice_or_shared() -> None:
    verdict = judge(moved({SUCCESS: (3, 6), PROMPT.name: (100, 131)}, traffic(*SENT)))
    assert_verdict(verdict, Outcome.FAILED,
                   f"{WHERE}: vllm:prompt_tokens_total moved by 31, expected exactly 30 (usage.prompt_tokens once "
                   "per choice; 2 requests, 3 choices): more than the workload: the server counts some of it twice, "
                   "or other clients used it during the run (then leave out --vllm-exclusive).")
    assert verdict.evidence == expected_evidence(30, 31.0, 100.0, 131.0)


def test_one_less_than_the_workload_fails_as_not_counted() -> None:
    verdict = judge(moved({SUCCESS: (3, 6), PROMPT.name: (100, 129)}, traffic(*SENT)))
    assert_verdict(verdict, Outcome.FAILED,
                   f"{WHERE}: vllm:prompt_tokens_total moved by 29, expected exactly 30 (usage.prompt_tokens once "
                   "per choice; 2 requests, 3 choices): less than the workload: the server did not count every "
                   "request.")
    assert verdict.evidence == expected_evidence(30, 29.0, 100.0, 129.0)


def test_a_counter_that_did_not_move_fails_as_not_counted() -> None:
    verdict = judge(moved({PROMPT.name: (100, 100)}, traffic(*SENT)))
    assert_verdict(verdict, Outcome.FAILED,
                   f"{WHERE}: vllm:prompt_tokens_total moved by 0, expected exactly 30 (usage.prompt_tokens once "
                   "per choice; 2 requests, 3 choices): less than the workload: the server did not count every "
                   "request.")
    assert verdict.evidence == expected_evidence(30, 0.0, 100.0, 100.0)


def test_a_counter_first_seen_after_the_workload_counts_from_zero() -> None:
    obs = observation(page({}), page({PROMPT.name: 30}), traffic(*SENT))
    verdict = judge(obs)
    assert_verdict(verdict, Outcome.PASSED, "")
    assert verdict.evidence == expected_evidence(30, 30.0, None, 30.0)


def test_a_counter_that_went_backwards_fails() -> None:
    verdict = judge(moved({PROMPT.name: (100, 90)}, traffic(*SENT)))
    assert_verdict(verdict, Outcome.FAILED,
                   f"{WHERE}: vllm:prompt_tokens_total went backwards from 100 to 90 while the server did not "
                   "restart.")
    assert verdict.evidence == expected_evidence(30, 0.0, 100.0, 90.0)


def test_a_counter_missing_after_the_workload_is_left_to_test_present() -> None:
    verdict = judge(observation(page({PROMPT.name: 100}), page({}), traffic(*SENT)))
    assert_verdict(verdict, Outcome.SKIPPED, "decode-0: vllm:prompt_tokens_total is not on the page (test_present "
                                             "judges that); nothing to count.")
    assert verdict.evidence == expected_evidence(30, None, 100.0, None)


def test_a_family_the_version_does_not_emit_is_skipped() -> None:
    rule = accounting.Exact("vllm:request_params_max_tokens_sum", "engine_max_tokens", "max_tokens once per choice")
    obs = moved(EXACTLY, traffic(*SENT))
    obs.version = "0.7.3"
    assert_verdict(judge(obs, rule=rule), Outcome.SKIPPED,
                   "vllm:request_params_max_tokens is emitted by vLLM >=0.8.0; this server reports vLLM 0.7.3")
    obs.version = "0.8.0"  # the first version that emits it: counted (here: not on the page)
    assert judge(obs, rule=rule).outcome == Outcome.SKIPPED
    assert judge(obs, rule=rule).message.endswith("is not on the page (test_present judges that); nothing to count.")


def test_a_family_outside_the_catalog_is_still_counted() -> None:
    rule = accounting.Exact("vllm:new_requests_total", "requests", "one per request")
    verdict = judge(moved({"vllm:new_requests_total": (0, 3)}, traffic(*SENT)), rule=rule)
    assert_verdict(verdict, Outcome.FAILED,
                   f"{WHERE}: vllm:new_requests_total moved by 3, expected exactly 2 (one per request; 2 requests, "
                   "3 choices): more than the workload: the server counts some of it twice, or other clients used "
                   "it during the run (then leave out --vllm-exclusive).")


SPEC_DECODE = ("# TYPE vllm:spec_decode_num_drafts counter\n"
               'vllm:spec_decode_num_drafts_total{engine="0",model_name="m"} 4\n')


def test_a_rule_not_judged_under_a_feature_is_skipped_where_it_is_on() -> None:
    rule = next(rule for rule in accounting.exact_rules() if rule.not_with_feature)
    assert (rule.name, rule.equals, rule.not_with_feature) == ("vllm:inter_token_latency_seconds", "decode_steps",
                                                               "spec_decode")
    before = page({rule.name: 0}, extra=SPEC_DECODE)
    obs = observation(before, page({rule.name: 99}, extra=SPEC_DECODE), traffic(*SENT))
    assert_verdict(judge(obs, rule=rule), Outcome.SKIPPED,
                   f"decode-0: vllm:inter_token_latency_seconds is not counted exactly where spec_decode is on: "
                   f"{rule.not_with_why}.")
    assert rule.not_with_why.startswith("vLLM observes it once per decode step")
    # without the feature, the same rule counts: 16 tokens minus one per choice
    plain = observation(page({rule.name: 0}), page({rule.name: 13}), traffic(*SENT))
    assert_verdict(judge(plain, rule=rule), Outcome.PASSED, "")


def test_the_rules_read_their_meaning_from_the_quantities() -> None:
    rules = {rule.name: rule for rule in accounting.exact_rules()}
    assert rules["vllm:request_params_n_sum"] == accounting.Exact(
        "vllm:request_params_n_sum", "choices", "one per choice: a request with n=2 is two engine requests")
    assert (rules["vllm:request_params_n_sum"].id, rules["vllm:request_params_n_sum"].family) == (
        "vllm:request_params_n_sum", "vllm:request_params_n")
    assert rules[SUCCESS].family == SUCCESS


# -- finish reasons -----------------------------------------------------------------------------------------------


REASONS = traffic(record(10, reason="stop"), record(10, n=2))  # stop 1, length 2


def test_finish_reasons_pass_when_each_reason_moved_by_its_choices() -> None:
    obs = moved({LENGTH: (5, 7), STOP: (0, 1), ABORT: (4, 4)}, REASONS)
    verdict = accounting.finish_reasons(obs, EXCLUSIVE, "SHOULD")
    assert_verdict(verdict, Outcome.PASSED, "")
    assert verdict.evidence == {"expected": {"stop": 1, "length": 2}, "got": {"abort": 0.0, "length": 2.0,
                                                                              "stop": 1.0}}


def test_finish_reasons_with_one_reason_one_off_fail_naming_it() -> None:
    obs = moved({LENGTH: (5, 8), STOP: (0, 1)}, REASONS)
    verdict = accounting.finish_reasons(obs, EXCLUSIVE, "SHOULD")
    assert_verdict(verdict, Outcome.FAILED,
                   f'{WHERE}: vllm:request_success_total: finished_reason="length" moved by 3, expected 2 (the '
                   "answers' finish_reason of each choice). Panels of errors and truncations by reason read these "
                   "series.")
    assert verdict.evidence == {"expected": {"stop": 1, "length": 2}, "got": {"length": 3.0, "stop": 1.0}}


def test_finish_reasons_count_a_reason_the_workload_never_saw() -> None:
    obs = moved({LENGTH: (5, 7), STOP: (0, 0), ABORT: (4, 5)}, REASONS)
    verdict = accounting.finish_reasons(obs, EXCLUSIVE, "SHOULD")
    assert_verdict(verdict, Outcome.FAILED,
                   f'{WHERE}: vllm:request_success_total: finished_reason="abort" moved by 1, expected 0, '
                   'finished_reason="stop" moved by 0, expected 1 (the answers\' finish_reason of each choice). '
                   "Panels of errors and truncations by reason read these series.")


def test_finish_reasons_ignore_a_series_without_the_label() -> None:
    obs = moved({LENGTH: (5, 7), STOP: (0, 1), SUCCESS: (0, 9)}, REASONS)
    verdict = accounting.finish_reasons(obs, EXCLUSIVE, "SHOULD")
    assert_verdict(verdict, Outcome.PASSED, "")
    assert verdict.evidence["got"] == {"length": 2.0, "stop": 1.0}


def test_choices_without_a_finish_reason_are_inconclusive() -> None:
    sent = traffic(record(10, reason="stop"), record(10, n=2, reason=None))
    obs = moved({LENGTH: (5, 7), STOP: (0, 1)}, sent)
    verdict = accounting.finish_reasons(obs, EXCLUSIVE, "SHOULD")
    assert_verdict(verdict, Outcome.INCONCLUSIVE, "decode-0: 2 choice(s) came back without a finish_reason.")
    assert verdict.evidence == {"expected": {"stop": 1}, "got": {"length": 2.0, "stop": 1.0}}


def test_finish_reasons_share_the_gate() -> None:
    obs = moved({LENGTH: (5, 7), STOP: (0, 1)}, REASONS)
    assert_verdict(accounting.finish_reasons(obs, SHARED, "SHOULD"), Outcome.SKIPPED, NOT_EXCLUSIVE)
    restarted = moved({LENGTH: (5, 7), STOP: (0, 1)}, REASONS, start_after=2000.0)
    assert accounting.finish_reasons(restarted, EXCLUSIVE, "SHOULD").outcome == Outcome.INCONCLUSIVE


# -- gauges back to zero after aborted requests -------------------------------------------------------------------


DURING: dict[str, float | None] = {RUNNING: 3.0, WAITING: 0.0, KV: 0.5}


def probed(aborts: Aborts | None) -> Observation:
    return observation(page({}), page({}), traffic(record()), aborts)


def test_gauges_without_the_switch_are_skipped() -> None:
    assert_verdict(accounting.gauges_return_to_zero(probed(Aborts()), SHARED, "SHOULD"), Outcome.SKIPPED,
                   "decode-0: needs --vllm-exclusive: on a shared server other clients' requests keep these gauges "
                   "up.")


@pytest.mark.parametrize("stage", ["before", "traffic", "after"])
@pytest.mark.parametrize(("inconclusive", "outcome"), [(True, Outcome.INCONCLUSIVE), (False, Outcome.FAILED)])
def test_gauges_without_a_stage_have_its_verdict(stage: str, inconclusive: bool, outcome: Outcome) -> None:
    obs = probed(Aborts(opened=3, aborted=3, settled_after=0.2))
    obs.errors[stage] = Problem(f"decode-0: the {stage} stage broke.", inconclusive)
    assert_verdict(accounting.gauges_return_to_zero(obs, EXCLUSIVE, "SHOULD"), outcome,
                   f"decode-0: the {stage} stage broke.")


def test_gauges_without_the_probe_are_inconclusive() -> None:
    verdict = accounting.gauges_return_to_zero(probed(None), EXCLUSIVE, "SHOULD")
    assert_verdict(verdict, Outcome.INCONCLUSIVE, "decode-0: the abort probe did not run (the workload went through "
                                                  "the gateway); target the pods.")
    assert verdict.evidence == {}


def test_gauges_after_a_probe_that_could_not_run_are_inconclusive() -> None:
    aborts = Aborts(opened=1, error="HTTP 400: max_tokens too large")
    verdict = accounting.gauges_return_to_zero(probed(aborts), EXCLUSIVE, "SHOULD")
    assert_verdict(verdict, Outcome.INCONCLUSIVE, "decode-0: the abort probe could not run: HTTP 400: max_tokens too "
                                                  "large")
    assert verdict.evidence == vars(aborts)


def test_gauges_when_nothing_was_aborted_are_inconclusive() -> None:
    aborts = Aborts(opened=3, finished=3, during=DURING)
    verdict = accounting.gauges_return_to_zero(probed(aborts), EXCLUSIVE, "SHOULD")
    assert_verdict(verdict, Outcome.INCONCLUSIVE,
                   "decode-0: the server finished all 3 streaming requests of the abort probe before the suite could "
                   "close them, so nothing was aborted.")
    assert verdict.evidence["finished"] == 3


def test_gauges_that_settled_pass_with_the_values_during_and_after() -> None:
    aborts = Aborts(opened=3, aborted=3, during=DURING, after={RUNNING: 0.0, WAITING: 0.0, KV: 0.0},
                    settled_after=0.4, waited=10.0, polls=2)
    verdict = accounting.gauges_return_to_zero(probed(aborts), EXCLUSIVE, "SHOULD")
    assert_verdict(verdict, Outcome.PASSED, "")
    assert verdict.evidence == {"opened": 3, "finished": 0, "aborted": 3, "during": DURING,
                                "after": {RUNNING: 0.0, WAITING: 0.0, KV: 0.0}, "settled_after": 0.4,
                                "waited": 10.0, "polls": 2, "error": None}


def test_gauges_that_settled_at_once_pass() -> None:
    aborts = Aborts(opened=3, aborted=1, finished=2, after={RUNNING: 0.0}, settled_after=0.0, waited=10.0, polls=1)
    assert accounting.gauges_return_to_zero(probed(aborts), EXCLUSIVE, "SHOULD").outcome == Outcome.PASSED


def test_gauges_stuck_after_aborts_fail_naming_the_stuck_values_and_the_wait() -> None:
    aborts = Aborts(opened=3, aborted=2, finished=1, during=DURING, after={RUNNING: 2.0, WAITING: 0.0, KV: 0.25},
                    waited=10.0, polls=50)
    verdict = accounting.gauges_return_to_zero(probed(aborts), EXCLUSIVE, "SHOULD")
    assert_verdict(verdict, Outcome.FAILED,
                   f"{WHERE}: after the suite closed 2 streaming requests mid-way, the gauges still read "
                   "vllm:num_requests_running 2, vllm:kv_cache_usage_perc 0.25 10 s later (50 polls). Dashboards and "
                   "autoscalers then see load that is gone: vLLM refreshes these gauges at a scheduler step, and a "
                   "server that takes no step after aborted requests keeps the last values (fixed in vLLM 0.10.2).")
    assert verdict.evidence == vars(aborts) and verdict.evidence["during"] == DURING


def test_gauges_at_zero_while_the_streams_were_open_are_inconclusive() -> None:
    # a fast model generates the probe's tokens in full before the client closes its streams: nothing is aborted
    aborts = Aborts(opened=3, aborted=3, during={RUNNING: 0.0, WAITING: 0.0, KV: 0.0},
                    after={RUNNING: 0.0, WAITING: 0.0, KV: 0.0}, settled_after=0.0, waited=10.0, polls=1)
    assert_verdict(accounting.gauges_return_to_zero(probed(aborts), EXCLUSIVE, "SHOULD"), Outcome.INCONCLUSIVE,
                   "decode-0: the server no longer counted the abort probe's 3 streaming requests while they were "
                   "open (the gauges read 0): it had generated them in full, so the abort path was not exercised.")
    running = Aborts(opened=3, aborted=3, during={RUNNING: 0.0, WAITING: 0.0, KV: 0.001},
                     after={RUNNING: 0.0, WAITING: 0.0, KV: 0.0}, settled_after=0.2, waited=10.0, polls=2)
    assert accounting.gauges_return_to_zero(probed(running), EXCLUSIVE, "SHOULD").outcome == Outcome.PASSED


ACCOUNTING = ("-k", "counts_exactly or finish_reasons_exactly or gauges_return_to_zero")


def run(pytester: pytest.Pytester, *urls: str, exclusive: bool = True, extra: tuple[str, ...] = ()) -> pytest.RunResult:
    args = [f"--vllm-url={url}" for url in urls] + (["--vllm-exclusive"] if exclusive else []) + list(extra)
    return pytester.runpytest("-p", "no:cacheprovider", "--vllm-report=report.json", *args, *ACCOUNTING)


# -- through pytest, against the simulator -------------------------------------------------------------------


def test_clean_simulator_counts_exactly(pytester: pytest.Pytester, sim_host: SimHost) -> None:
    sim = sim_host.start(get_profile("x86_64"))
    result = run(pytester, sim.url)
    outcomes = result.parseoutcomes()
    assert outcomes["passed"] == len(accounting.exact_rules()) + 2 and "failed" not in outcomes, result.stdout.str()
    report = json.loads((pytester.path / "report.json").read_text())
    assert report["implementations"][0]["measured"]["looksExclusive"] is True
    assert "as if no other traffic reached them" not in result.stdout.str()  # said only without the switch
    rows = {row["check"]: row for row in report["tests"]}
    # the exclusive workload: 8 requests (one calibrates) and 2 with n=2, one of them streamed
    evidence = rows["counts_exactly[vllm:request_params_n]"]["evidence"]
    assert (evidence["expected"], evidence["got"], evidence["choices"]) == (10, 10.0, 12)
    itl = rows["counts_exactly[vllm:inter_token_latency_seconds]"]["evidence"]
    # max_tokens - 1 per choice, but the request asked to stop on "e" stopped at its 4th token ("... charlie")
    assert itl["expected"] == itl["got"] == 12 * (8 - 1) - (8 - 4)
    aborts = rows["gauges_return_to_zero_after_aborts"]["evidence"]
    assert aborts["aborted"] == 3 and aborts["during"]["vllm:num_requests_running"] == 3
    assert aborts["after"] == {"vllm:num_requests_running": 0, "vllm:num_requests_waiting": 0,
                               "vllm:kv_cache_usage_perc": 0}


def test_without_the_switch_the_exact_checks_are_left_out_and_the_report_notes_an_exclusive_looking_run(
    pytester: pytest.Pytester, sim_host: SimHost
) -> None:
    sim = sim_host.start(get_profile("x86_64"))
    collected = pytester.runpytest("-p", "no:cacheprovider", "--collect-only", "-q", f"--vllm-url={sim.url}")
    assert "test_hygiene.py::test_labels_per_series_fit_the_stores" in collected.stdout.str()
    assert "test_accounting.py" not in collected.stdout.str()  # the exact checks need the switch
    result = pytester.runpytest("-p", "no:cacheprovider", "--vllm-report=report.json", f"--vllm-url={sim.url}",
                                "-k", "workload_served")
    assert result.ret == 0, result.stdout.str()
    report = json.loads((pytester.path / "report.json").read_text())
    # nothing else reached the simulator: the report notes that --vllm-exclusive would have applied
    assert report["implementations"][0]["measured"]["looksExclusive"] is True
    result.stdout.fnmatch_lines([f"note: on {name_of(sim.url)} the finished requests and prompt tokens moved by "
                                 f"exactly the workload, as if no other traffic reached them: if that holds, "
                                 f"--vllm-exclusive checks their counters exactly"])
    exclusive = run(pytester, sim.url, extra=("-k", "workload_served"))
    assert "as if no other traffic reached them" not in exclusive.stdout.str()  # said only when not passed


def test_generation_tokens_counted_twice_for_n_above_1(pytester: pytest.Pytester, sim_host: SimHost) -> None:
    sim = sim_host.start(get_profile("x86_64").replace(fault="counts-n-twice"))
    result = run(pytester, sim.url)
    per_target = {test: outcome for (test, _), outcome in verdicts(pytester).items()}
    assert [test for test, outcome in per_target.items() if outcome == "failed"] == [
        "test_counts_exactly[vllm:generation_tokens_total]"], result.stdout.str()
    # two requests with n=2 of 8 tokens: 32 tokens counted twice (one request stopped at its 4th token on its stop
    # string); the histogram's sum stays right
    assert said(result, f"{name_of(sim.url)} (vLLM 0.32.0, unknown): vllm:generation_tokens_total moved by 124, "
                        f"expected exactly 92 (the answers' usage.completion_tokens; 10 requests, 12 choices): more "
                        f"than the workload: the server counts some of it twice")
    assert per_target["test_counts_exactly[vllm:request_generation_tokens_sum]"] == "passed"


def test_gauges_that_stay_up_after_aborts_fail(pytester: pytest.Pytester, sim_host: SimHost) -> None:
    stuck = sim_host.start(get_profile("x86_64").replace(fault="gauges-stuck"))
    clean = sim_host.start(get_profile("x86_64"))
    # the wait for the gauges (10 s) is capped by the phase's cap; the cap bounds each server's workload too, so it
    # leaves the clean server's ten requests time to spare on a loaded machine
    result = run(pytester, stuck.url, clean.url, extra=("--vllm-phase-timeout=8",))
    per_target = verdicts(pytester)
    assert per_target["test_gauges_return_to_zero_after_aborts", name_of(stuck.url)] == "failed"
    assert per_target["test_gauges_return_to_zero_after_aborts", name_of(clean.url)] == "passed"
    assert said(result, "after the suite closed 3 streaming requests mid-way, the gauges still read "
                        "vllm:num_requests_running 3, vllm:kv_cache_usage_perc 0.00219727 8 s later")
    # what was counted before the aborts is exact on both
    assert {outcome for (test, _), outcome in per_target.items() if test != "test_gauges_return_to_zero_after_aborts"
            } == {"passed"}


def test_a_restart_during_the_workload_is_inconclusive_not_a_miscount(
    pytester: pytest.Pytester, sim_host: SimHost
) -> None:
    sim = sim_host.start(get_profile("x86_64").replace(restart_after_requests=3))
    result = run(pytester, sim.url)
    outcomes = verdicts(pytester)
    assert outcomes["test_counts_exactly[vllm:prompt_tokens_total]", name_of(sim.url)] == "inconclusive"
    assert "failed" not in outcomes.values(), result.stdout.str()
    assert said(result, "the server restarted between the scrapes (or another process answered the second): exact "
                        "counts cannot be compared; rerun.")


# -- boundaries, on constructed observations -----------------------------------------------------------------


@pytest.mark.parametrize(("moved", "outcome", "words"), [
    (40, Outcome.PASSED, ""),
    (41, Outcome.FAILED, "moved by 41, expected exactly 40 (usage.prompt_tokens once per choice; 2 requests, 3 "
                         "choices): more than the workload"),
    (39, Outcome.FAILED, "moved by 39, expected exactly 40 (usage.prompt_tokens once per choice; 2 requests, 3 "
                         "choices): less than the workload"),
])
def test_exact_is_exact(moved: float, outcome: Outcome, words: str) -> None:
    ok = traffic(record(10), record(15, 16, n=2))  # 10 + 2 * 15 = 40: each choice is prefilled
    obs = observation(page({PROMPT.name: 100}), page({PROMPT.name: 100 + moved}), ok)
    verdict = accounting.exact(PROMPT, obs, EXCLUSIVE, load_catalog())
    assert verdict.outcome == outcome and words in verdict.message, verdict.message
    # a failed request: what the server counted of it is unknown, whatever moved
    failed = observation(page({PROMPT.name: 100}), page({PROMPT.name: 100 + moved}),
                         traffic(record(10), record(15, 16, n=2), record(status=500)))
    assert accounting.exact(PROMPT, failed, EXCLUSIVE, load_catalog()).outcome == Outcome.INCONCLUSIVE


@pytest.mark.parametrize(("policy", "start", "outcome", "words"), [
    (Policy(), 1000.0, Outcome.SKIPPED, "needs --vllm-exclusive"),
    (Policy(exclusive=True, via_gateway=True), 1000.0, Outcome.INCONCLUSIVE, "went through the gateway"),
    (EXCLUSIVE, 2000.0, Outcome.INCONCLUSIVE, "restarted between the scrapes"),
])
def test_exact_cannot_tell(policy: Policy, start: float, outcome: Outcome, words: str) -> None:
    obs = observation(page({PROMPT.name: 100}), page({PROMPT.name: 110}, start=start), traffic(record(10)))
    verdict = accounting.exact(PROMPT, obs, policy, load_catalog())
    assert verdict.outcome == outcome and words in verdict.message, verdict.message


def test_the_note_says_looked_exclusive_only_when_it_did() -> None:
    success = 'vllm:request_success_total{finished_reason="length"}'
    exact = observation(page({PROMPT.name: 0, success: 0}), page({PROMPT.name: 10, success: 1}), traffic(record(10)))
    shared = observation(page({PROMPT.name: 0, success: 0}), page({PROMPT.name: 20, success: 2}), traffic(record(10)))
    assert accounting.looks_exclusive(exact) is True and accounting.looks_exclusive(shared) is False
    assert accounting.exact(PROMPT, exact, Policy(), load_catalog()).message.endswith("exactly the workload.")
    assert "looked exclusive" not in accounting.exact(PROMPT, shared, Policy(), load_catalog()).message


def test_finish_reasons_are_counted_per_reason() -> None:
    length, stop = ('vllm:request_success_total{finished_reason="length"}',
                    'vllm:request_success_total{finished_reason="stop"}')
    sent = traffic(record(10, reason="stop"), record(10, n=2))
    right = observation(page({length: 5, stop: 0}), page({length: 7, stop: 1}), sent)
    assert accounting.finish_reasons(right, EXCLUSIVE).outcome == Outcome.PASSED
    wrong = observation(page({length: 5, stop: 0}), page({length: 8, stop: 0}), sent)
    verdict = accounting.finish_reasons(wrong, EXCLUSIVE)
    assert verdict.outcome == Outcome.FAILED
    assert ('finished_reason="length" moved by 3, expected 2, finished_reason="stop" moved by 0, expected 1'
            in verdict.message)


@pytest.mark.parametrize(("aborts", "outcome"), [
    (Aborts(opened=3, aborted=3, settled_after=0.2, after={"vllm:num_requests_running": 0.0}), Outcome.PASSED),
    (Aborts(opened=3, aborted=3, waited=10, polls=50, after={"vllm:num_requests_running": 1.0}), Outcome.FAILED),
    (Aborts(opened=3, finished=3), Outcome.INCONCLUSIVE),  # nothing was aborted: nothing to judge
    (Aborts(error="HTTP 400"), Outcome.INCONCLUSIVE),
])
def test_gauges_verdicts(aborts: Aborts, outcome: Outcome) -> None:
    obs = observation(page({}), page({}), traffic(record()), aborts)
    assert accounting.gauges_return_to_zero(obs, EXCLUSIVE).outcome == outcome
    assert accounting.gauges_return_to_zero(obs, Policy()).outcome == Outcome.SKIPPED


def test_spec_decode_leaves_the_per_step_count_out_and_counts_the_rest(pytester: pytest.Pytester,
                                                                      sim_host: SimHost) -> None:
    # a speculative-decoding vLLM observes one inter-token latency per step, and a step may emit several tokens
    # (the real capture: 6 for 16 tokens): not a miscount, and everything else still counts exactly
    sim = sim_host.start(get_profile("x86_64-spec-decode"))
    result = run(pytester, sim.url)
    outcomes = result.parseoutcomes()
    assert outcomes["passed"] == len(accounting.exact_rules()) + 1 and "failed" not in outcomes, result.stdout.str()
    assert verdicts(pytester)["test_counts_exactly[vllm:inter_token_latency_seconds]", name_of(sim.url)] == "skipped"
    row = next(row for row in json.loads((pytester.path / "report.json").read_text())["tests"]
               if row["check"] == "counts_exactly[vllm:inter_token_latency_seconds]")
    assert "is not counted exactly where spec_decode is on: vLLM observes it once per decode step" in json.dumps(row)
