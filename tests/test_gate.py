"""The gate: a check's level is its one must/should/may mark (the vllm_level fixture), and one rule of the rows and
--vllm-fail-on gives the run's result, which every report states (the JSON report, the terminal, the HTML badge)
and the exit code follows."""

from __future__ import annotations

import json
import re
import textwrap

import pytest

from pytest_vllm_metrics.gate import Result

# A check as a user writes one: its level from its mark, its verdict handed to vllm_enforce. Each case of the table
# below is such a check (a broken fixture for a test that errs), next to a MUST check that passes.
CHECK = """
import pytest
from pytest_vllm_metrics.outcome import Outcome, Verdict


@pytest.fixture
def broken():
    raise RuntimeError("the check's own fixture broke")


@pytest.mark.must
def test_fine(vllm_level, vllm_enforce):
    vllm_enforce(Verdict(Outcome.PASSED, "", vllm_level))
"""
CASE = """

@pytest.mark.{mark}
def test_{name}(vllm_level, vllm_enforce{fixture}):
    vllm_enforce(Verdict(Outcome.{outcome}, "{name}: the reason", vllm_level))
"""
CASES = {  # name -> (mark, outcome, extra fixture)
    "failed_must": ("must", "FAILED", ""),
    "failed_should": ("should", "FAILED", ""),
    "failed_may": ("may", "FAILED", ""),
    "inconclusive": ("must", "INCONCLUSIVE", ""),
    "xfail": ("must", "XFAILED", ""),
    "error": ("may", "PASSED", ", broken"),
}
FAIL, UNSURE, PART, OK = Result.FAILURE, Result.INCONCLUSIVE, Result.PARTIAL, Result.SUCCESS
# (the checks of the run beside the passing one) -> the result with --vllm-fail-on = must, should, may
EXPECTED = {
    (): (OK, OK, OK),
    ("failed_must",): (FAIL, FAIL, FAIL),
    ("failed_should",): (PART, FAIL, FAIL),
    ("failed_may",): (PART, PART, FAIL),
    ("inconclusive",): (UNSURE, UNSURE, UNSURE),
    ("xfail",): (PART, PART, PART),
    ("error",): (FAIL, FAIL, FAIL),  # a test that errs fails the run whatever its level
    ("failed_should", "inconclusive"): (UNSURE, FAIL, FAIL),  # a failure that counts outranks what was not observed
    ("failed_may", "xfail"): (PART, PART, FAIL),
}
EXIT_CODES = {OK: 0, PART: 0, UNSURE: 75, FAIL: 1}


@pytest.mark.parametrize("fail_on", ["must", "should", "may"])
@pytest.mark.parametrize("checks", list(EXPECTED), ids=lambda checks: "+".join(checks) or "nothing_failed")
def test_every_report_states_the_result_the_exit_code_follows(pytester: pytest.Pytester, checks: tuple[str, ...],
                                                              fail_on: str) -> None:
    pytester.makepyfile(test_checks=CHECK + "".join(
        CASE.format(name=name, mark=CASES[name][0], outcome=CASES[name][1], fixture=CASES[name][2])
        for name in checks))
    run = pytester.runpytest("-p", "no:cacheprovider", f"--vllm-fail-on={fail_on}", "--vllm-report=report.json",
                             "--html=report.html", "--self-contained-html")
    expected = EXPECTED[checks][["must", "should", "may"].index(fail_on)]
    document = json.loads((pytester.path / "report.json").read_text())
    assert (document["result"], document["failOn"], document["exitCode"]) == (
        expected, fail_on.upper(), EXIT_CODES[expected])
    run.stdout.fnmatch_lines([f"result: {expected.upper()}  (*)"])
    badge = re.findall(r'class="vllm-result o-\w+" data-result="(\w+)"', (pytester.path / "report.html").read_text())
    assert badge == [expected]
    assert run.ret == EXIT_CODES[expected]


def test_a_failing_test_that_is_not_a_check_fails_the_run(pytester: pytest.Pytester) -> None:
    # not a check (no vllm_* fixture): no row, so the result is the checks'; the exit code is pytest's own
    pytester.makepyfile(test_checks=CHECK + "\n\ndef test_plain():\n    assert False\n")
    run = pytester.runpytest("-p", "no:cacheprovider", "--vllm-report=report.json")
    document = json.loads((pytester.path / "report.json").read_text())
    assert (document["result"], document["exitCode"], run.ret) == ("success", 1, 1)


def test_a_checks_level_is_its_mark_in_every_report(pytester: pytest.Pytester) -> None:
    # a verdict that says MUST (its default) in a check marked SHOULD: the check is a SHOULD one
    pytester.makepyfile(test_checks="""
        import pytest
        from pytest_vllm_metrics.outcome import Outcome, Verdict

        @pytest.mark.should
        def test_mine(vllm_level, vllm_enforce):
            assert vllm_level == "SHOULD"
            vllm_enforce(Verdict(Outcome.FAILED, "broken"))
    """)
    run = pytester.runpytest("-p", "no:cacheprovider", "--vllm-report=report.json", "--junitxml=junit.xml")
    row = json.loads((pytester.path / "report.json").read_text())["tests"][0]
    assert (row["level"], row["outcome"]) == ("SHOULD", "failed")
    assert '<property name="vllm_level" value="SHOULD"' in (pytester.path / "junit.xml").read_text()
    run.stdout.fnmatch_lines(["result: PARTIAL  (*)", "FAILED   SHOULD * mine"])
    assert run.ret == 0


@pytest.mark.parametrize(("marks", "said"), [
    ("", "test_checks.py::test_mine has no level mark, so the vllm_level fixture cannot tell how much it matters: "
         "mark the test with @pytest.mark.must, @pytest.mark.should or @pytest.mark.may"),
    ("@pytest.mark.must\n@pytest.mark.may\n", "test_checks.py::test_mine has the marks @pytest.mark.must and "
                                               "@pytest.mark.may: a check has one level; keep one of them."),
])
def test_vllm_level_says_what_is_wrong_with_a_checks_marks(pytester: pytest.Pytester, marks: str, said: str) -> None:
    pytester.makepyfile(test_checks="import pytest\n\n" + marks + textwrap.dedent("""
        def test_mine(vllm_level):
            pass
    """))
    run = pytester.runpytest("-p", "no:cacheprovider")
    run.assert_outcomes(errors=1)
    assert said in " ".join(run.stdout.str().split())
    assert "Traceback" not in run.stdout.str()


def test_a_module_mark_gives_its_checks_their_level(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_checks="""
        import pytest

        pytestmark = pytest.mark.may

        def test_mine(vllm_level):
            assert vllm_level == "MAY"
    """)
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)
