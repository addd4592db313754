"""--vllm-exclusive: exact accounting and gauges back to zero, the checks vLLM's own metrics test makes.

Through pytest against the simulator (clean, and with the faults users reported: n > 1 counted twice, gauges
stuck after aborted requests), and the boundaries of each check on constructed observations."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from conftest import exposition, said, verdicts
from pytest_vllm_metrics import accounting
from pytest_vllm_metrics.catalog import load_catalog
from pytest_vllm_metrics.observe import Observation
from pytest_vllm_metrics.outcome import Outcome
from pytest_vllm_metrics.settings import Policy
from pytest_vllm_metrics.sim import SimHost, get_profile
from pytest_vllm_metrics.snapshot import Snapshot
from pytest_vllm_metrics.targets import Target
from pytest_vllm_metrics.traffic import Aborts, RequestRecord, TrafficResult, Workload

EXCLUSIVE = Policy(exclusive=True)
ACCOUNTING = ("-k", "counts_exactly or finish_reasons_exactly or gauges_return_to_zero")


def run(pytester: pytest.Pytester, *urls: str, exclusive: bool = True, extra: tuple[str, ...] = ()) -> pytest.RunResult:
    args = [f"--vllm-url={url}" for url in urls] + (["--vllm-exclusive"] if exclusive else []) + list(extra)
    return pytester.runpytest("-p", "no:cacheprovider", "--vllm-report=report.json", *args, *ACCOUNTING)


def name_of(url: str) -> str:
    return url.removeprefix("http://")


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


def test_the_exclusive_workload_records_usage_and_finish_reasons_per_request(sim_host: SimHost) -> None:
    sim = sim_host.start(get_profile("x86_64"))

    async def go() -> TrafficResult:
        async with httpx.AsyncClient() as client:
            workload = Workload(client, Target("sim", sim.url), model=None, api_key=None, requests=4, max_tokens=5,
                                timeout=10, exclusive=True)
            return await workload.run(128)

    traffic = asyncio.run(go())
    shape = [(r.kind, r.n, r.completion_tokens, sorted(r.finish_reasons.items())) for r in traffic.records]
    assert shape == [
        ("completion", 1, 5, [(0, "length")]),
        ("completion", 1, 5, [(0, "length")]),
        ("completion-stream", 1, 5, [(0, "length")]),
        ("chat", 1, 5, [(0, "length")]),
        ("completion", 2, 10, [(0, "length"), (1, "length")]),
        ("chat-stream", 2, 10, [(0, "length"), (1, "length")]),
    ]
    assert (traffic.requests, traffic.choices, traffic.decode_steps) == (6, 8, 40 - 8)
    assert traffic.engine_prompt_tokens == sum(r.prompt_tokens * r.n for r in traffic.records)


# -- boundaries, on constructed observations -----------------------------------------------------------------


page = exposition


def traffic(*records: RequestRecord) -> TrafficResult:
    return TrafficResult(model="m", block_size=16, records=list(records))


def record(prompt: int = 10, completion: int = 8, n: int = 1, reason: str = "length", status: int = 200
           ) -> RequestRecord:
    return RequestRecord("completion", status, 0.1, prompt_tokens=prompt, completion_tokens=completion, n=n,
                         max_tokens=8, finish_reasons=dict.fromkeys(range(n), reason))


def observation(before: Snapshot, after: Snapshot, sent: TrafficResult, aborts: Aborts | None = None) -> Observation:
    return Observation(Target("decode-0", "http://10.0.0.1:8200"), version="0.32.0", before=before, traffic=sent,
                       after=after, aborts=aborts)


PROMPT = accounting.Exact("vllm:prompt_tokens_total", "engine_prompt_tokens", "usage.prompt_tokens once per choice")


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
