"""One check over many targets: the folded verdict, its message, and a test count that ignores fleet size."""

from __future__ import annotations

import pytest

from pytest_vllm_metrics.evaluate import Verdict, across
from pytest_vllm_metrics.observe import Observation
from pytest_vllm_metrics.targets import Target


def fleet(*outcomes: str) -> tuple[list[Observation], dict[str, Verdict]]:
    observations = [Observation(Target(name=f"decode-{i}", base_url=f"http://10.0.0.{i}:8200"))
                    for i in range(len(outcomes))]
    verdicts = {
        f"decode-{i}": Verdict(outcome, f"decode-{i} (vLLM 0.32.0, amd64): {outcome} here" if outcome != "passed"
                               else "", diagnosis="vLLM 0.11.2 disables prefix caching" if outcome == "xfailed"
                               else None)
        for i, outcome in enumerate(outcomes)
    }
    return observations, verdicts


@pytest.mark.parametrize(
    ("outcomes", "expected"),
    [
        (("passed", "passed"), "passed"),
        (("passed", "skipped"), "passed"),
        (("skipped", "skipped"), "skipped"),
        (("passed", "xfailed"), "xfailed"),
        (("xfailed", "failed", "passed"), "failed"),
        (("skipped", "failed"), "failed"),
    ],
)
def test_the_worst_outcome_decides(outcomes: tuple[str, ...], expected: str) -> None:
    observations, verdicts = fleet(*outcomes)
    verdict = across(observations, lambda obs: verdicts[obs.target.name], "MUST")
    assert verdict.outcome == expected
    assert {name: v.outcome for name, v in verdict.targets.items()} == dict(zip(verdicts, outcomes, strict=True))


def test_first_line_names_the_failing_targets_and_counts_the_rest() -> None:
    observations, verdicts = fleet("passed", "failed", "xfailed", "failed")
    verdict = across(observations, lambda obs: verdicts[obs.target.name], "SHOULD")
    first, *quoted = verdict.message.splitlines()
    assert first == "fails on decode-1, decode-3 (2 of 4 targets; 1 xfailed, 1 passed)."
    assert quoted == ["decode-1 (vLLM 0.32.0, amd64): failed here", "decode-3 (vLLM 0.32.0, amd64): failed here"]
    assert verdict.level == "SHOULD"


def test_documented_limitation_groups_targets_under_one_reason() -> None:
    observations, verdicts = fleet("xfailed", "passed", "xfailed")
    verdict = across(observations, lambda obs: verdicts[obs.target.name], "MUST")
    assert verdict.diagnosis == "decode-0, decode-2: vLLM 0.11.2 disables prefix caching"


def test_a_large_fleet_is_quoted_in_part_and_named_in_full() -> None:
    observations, verdicts = fleet(*["failed"] * 40)
    verdict = across(observations, lambda obs: verdicts[obs.target.name], "MUST")
    first, *quoted = verdict.message.splitlines()
    assert first == "fails on decode-0, decode-1, decode-2, decode-3, decode-4 and 35 more (40 of 40 targets)."
    assert len(quoted) == 6 and quoted[-1].startswith("... and 35 more: decode-5, decode-6,")
    assert quoted[-1].endswith("decode-39.")


def test_one_target_keeps_its_own_message() -> None:
    observations, verdicts = fleet("failed")
    verdict = across(observations, lambda obs: verdicts[obs.target.name], "MUST")
    assert verdict.message == "decode-0 (vLLM 0.32.0, amd64): failed here"


def test_no_target_is_a_skip_that_says_how_to_name_one() -> None:
    verdict = across([], lambda obs: Verdict("passed"), "MUST")
    assert verdict.outcome == "skipped" and "--vllm-url" in verdict.message


def test_the_bundled_suite_has_as_many_tests_for_three_servers_as_for_one(pytester: pytest.Pytester) -> None:
    def collected(*args: str) -> int:
        result = pytester.runpytest("--collect-only", "-q", *args)
        return int(result.outlines[-1].split()[0])  # "84 tests collected in 0.7s"

    one = collected("--vllm-sim=x86_64")
    assert one > 60
    assert collected("--vllm-sim=x86_64", "--vllm-sim=arm64-cpu", "--vllm-sim=x86_64") == one
