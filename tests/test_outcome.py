"""The outcome vocabulary (outcome.py): Outcome, Level, the order of outcomes across targets, Verdict, Problem."""

from __future__ import annotations

import dataclasses

import pytest

from pytest_vllm_metrics.outcome import EXIT_INCONCLUSIVE, WORST_FIRST, Level, Outcome, Problem, Verdict

# -- Level ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("level", "floor", "expected"), [
    (Level.MUST, Level.MUST, True),  # exactly at the floor
    (Level.MUST, Level.SHOULD, True),
    (Level.MUST, Level.MAY, True),
    (Level.SHOULD, Level.MUST, False),  # one below the floor
    (Level.SHOULD, Level.SHOULD, True),
    (Level.SHOULD, Level.MAY, True),
    (Level.MAY, Level.SHOULD, False),
    (Level.MAY, Level.MAY, True),
])
def test_a_level_is_at_least_its_floor_and_every_stricter_one(level: Level, floor: Level, expected: bool) -> None:
    assert level.at_least(floor) is expected


def test_levels_and_outcomes_are_spelled_as_the_reports_write_them() -> None:
    assert [str(level) for level in Level] == ["MUST", "SHOULD", "MAY"]
    assert [str(o) for o in Outcome] == ["passed", "failed", "xfailed", "skipped", "inconclusive"]


# -- WORST_FIRST: the outcome of a check across several targets ---------------------------------------------


def test_worst_first_holds_every_outcome_once() -> None:
    assert sorted(WORST_FIRST) == sorted(Outcome)
    assert len(set(WORST_FIRST)) == len(WORST_FIRST)


@pytest.mark.parametrize(("seen", "worst"), [
    ({Outcome.PASSED, Outcome.FAILED, Outcome.INCONCLUSIVE}, Outcome.FAILED),  # one failing target fails the check
    ({Outcome.PASSED, Outcome.INCONCLUSIVE}, Outcome.INCONCLUSIVE),  # never a pass when a target could not tell
    ({Outcome.PASSED, Outcome.XFAILED}, Outcome.XFAILED),  # a documented limitation is not hidden by a pass
    ({Outcome.PASSED, Outcome.SKIPPED}, Outcome.PASSED),  # a target the check does not apply to does not skip it
    ({Outcome.SKIPPED}, Outcome.SKIPPED),
])
def test_the_worst_outcome_of_the_targets_is_the_checks(seen: set[Outcome], worst: Outcome) -> None:
    assert next(o for o in WORST_FIRST if o in seen) == worst


def test_an_inconclusive_run_exits_with_ex_tempfail() -> None:
    # sysexits.h: EX_TEMPFAIL 75, the code CI systems treat as "retry"; a failure exits 1, never 75
    assert EXIT_INCONCLUSIVE == 75


# -- Verdict ----------------------------------------------------------------------------------------------------


def test_a_verdict_defaults_to_a_must_check_of_one_target() -> None:
    verdict = Verdict(Outcome.PASSED)
    assert (verdict.message, verdict.level, verdict.evidence, verdict.diagnosis, verdict.targets, verdict.target) == (
        "", Level.MUST, {}, None, {}, "")


def test_plain_strings_become_the_typed_vocabulary() -> None:
    verdict = Verdict("failed", "m", "SHOULD")  # type: ignore[arg-type]
    assert verdict.outcome is Outcome.FAILED and verdict.level is Level.SHOULD


@pytest.mark.parametrize(("outcome", "level"), [("fail", "MUST"), ("failed", "must"), ("", "MUST")])
def test_a_word_outside_the_vocabulary_is_refused(outcome: str, level: str) -> None:
    with pytest.raises(ValueError):
        Verdict(outcome, "m", level)  # type: ignore[arg-type]


def test_but_changes_only_the_fields_named_and_leaves_the_verdict_as_it_was() -> None:
    original = Verdict(Outcome.FAILED, "was", Level.SHOULD, {"k": 1}, diagnosis="d", target="decode-0")
    changed = original.but(outcome=Outcome.XFAILED, message="now")
    assert changed == Verdict(Outcome.XFAILED, "now", Level.SHOULD, {"k": 1}, diagnosis="d", target="decode-0")
    assert original.outcome is Outcome.FAILED and original.message == "was"


def test_but_checks_the_vocabulary_too() -> None:
    assert Verdict(Outcome.PASSED).but(level="MAY").level is Level.MAY
    with pytest.raises(ValueError):
        Verdict(Outcome.PASSED).but(outcome="ok")


def test_but_refuses_a_field_a_verdict_does_not_have() -> None:
    with pytest.raises(TypeError, match="Verdict has no field"):
        Verdict(Outcome.PASSED).but(targets={}, pod="decode-0")
    with pytest.raises(TypeError, match=r"^Verdict has no field\(s\) node, pod$"):  # each named, in order
        Verdict(Outcome.PASSED).but(pod="decode-0", node="n1")
    changed = Verdict(Outcome.PASSED).but(target="decode-0")
    assert (changed.target, changed.outcome) == ("decode-0", Outcome.PASSED)
    with pytest.raises(dataclasses.FrozenInstanceError):
        changed.target = "x"  # type: ignore[misc]


def test_of_target_names_the_target_and_changes_nothing_else() -> None:
    original = Verdict(Outcome.FAILED, "was", Level.SHOULD, {"k": 1}, diagnosis="d", target="decode-0",
                       targets={"a": Verdict(Outcome.PASSED)})
    changed = original.of_target("decode-1")
    assert changed == dataclasses.replace(original, target="decode-1") and changed is not original
    assert original.target == "decode-0"
    with pytest.raises(dataclasses.FrozenInstanceError):
        changed.target = "x"  # type: ignore[misc]


def test_a_verdict_is_never_changed_in_place() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Verdict(Outcome.PASSED).message = "x"  # type: ignore[misc]


def test_the_evidence_of_two_verdicts_is_not_shared() -> None:
    first, second = Verdict(Outcome.PASSED), Verdict(Outcome.PASSED)
    first.evidence["k"] = 1
    assert second.evidence == {}


# -- Problem: why a stage of an observation has no result ----------------------------------------------------


def test_a_problem_is_inconclusive_by_default_with_its_message() -> None:
    verdict = Problem("decode-0: the page timed out").verdict()
    assert verdict == Verdict(Outcome.INCONCLUSIVE, "decode-0: the page timed out", Level.MUST)


def test_a_problem_of_the_server_is_a_failure_at_the_checks_level_for_its_target() -> None:
    problem = Problem("decode-0: /metrics answered 404", inconclusive=False, check="test_reachable", cause="404")
    verdict = problem.verdict(Level.SHOULD, target="decode-0")
    assert (verdict.outcome, verdict.message, verdict.level, verdict.target) == (
        Outcome.FAILED, "decode-0: /metrics answered 404", Level.SHOULD, "decode-0")
    assert verdict.evidence == {} and verdict.diagnosis is None
