"""The gate: a check's level is its one must/should/may mark (the vllm_level fixture), and one rule of the rows and
--vllm-fail-on gives the run's result, which every report states (the JSON report, the terminal, the HTML badge)
and the exit code follows."""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from pytest_vllm_metrics import gate
from pytest_vllm_metrics.gate import Result
from pytest_vllm_metrics.outcome import Level
from pytest_vllm_metrics.rows import Row, RowOutcome
from pytest_vllm_metrics.settings import Settings
from pytest_vllm_metrics.shard import Shard

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
    assert "Traceback" not in run.stdout.str() and "another exception occurred" not in run.stdout.str()


def test_a_module_mark_gives_its_checks_their_level(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_checks="""
        import pytest

        pytestmark = pytest.mark.may

        def test_mine(vllm_level):
            assert vllm_level == "MAY"
    """)
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


# -- the same rule in-process: the rows of a run -> its result and exit code ------------------------------------

_ROW_OUTCOMES = {"FAILED": RowOutcome.FAILED, "INCONCLUSIVE": RowOutcome.INCONCLUSIVE, "XFAILED": RowOutcome.XFAILED,
                 "PASSED": RowOutcome.ERROR}  # the case whose fixture broke errs


def _rows(checks: tuple[str, ...]) -> list[Row]:
    """The rows of a run of the table's checks, beside the MUST check that passes."""
    rows = [Row(id="test_checks.py::test_fine", target="", check="fine", level=Level.MUST, outcome=RowOutcome.PASSED)]
    for name in checks:
        mark, outcome, _ = CASES[name]
        rows.append(Row(id=f"test_checks.py::test_{name}", target="", check=name, level=Level(mark.upper()),
                        outcome=_ROW_OUTCOMES[outcome]))
    return rows


@pytest.mark.parametrize("fail_on", ["must", "should", "may"])
@pytest.mark.parametrize("checks", list(EXPECTED), ids=lambda checks: "+".join(checks) or "nothing_failed")
def test_the_result_and_its_exit_code_from_the_rows(checks: tuple[str, ...], fail_on: str) -> None:
    expected = EXPECTED[checks][["must", "should", "may"].index(fail_on)]
    floor = gate.fail_on(Settings(vllm_fail_on=fail_on))
    rows = _rows(checks)
    assert floor == Level(fail_on.upper())
    assert gate.result(rows, floor) == expected
    failed = sum(1 for row in rows if row.outcome in (RowOutcome.FAILED, RowOutcome.ERROR))
    assert gate.exit_code(expected, rows, int(pytest.ExitCode.TESTS_FAILED if failed else pytest.ExitCode.OK),
                          failed) == EXIT_CODES[expected]
    assert expected.exit_code == EXIT_CODES[expected]


def test_which_failures_fail_the_run() -> None:
    def row(level: Level, outcome: RowOutcome) -> Row:
        return Row(id="t", target="", check="c", level=level, outcome=outcome)

    assert gate.fails_the_run(row(Level.MAY, RowOutcome.ERROR), Level.MUST)  # an error, whatever its level
    assert gate.fails_the_run(row(Level.SHOULD, RowOutcome.FAILED), Level.SHOULD)  # at the floor
    assert not gate.fails_the_run(row(Level.MAY, RowOutcome.FAILED), Level.SHOULD)  # one below it
    assert not gate.fails_the_run(row(Level.MUST, RowOutcome.XFAILED), Level.MAY)
    assert not gate.fails_the_run(row(Level.MUST, RowOutcome.INCONCLUSIVE), Level.MAY)
    assert gate.result([], Level.MUST) is Result.SUCCESS
    assert gate.result([row(Level.MUST, RowOutcome.XPASSED), row(Level.MUST, RowOutcome.SKIPPED)],
                       Level.MUST) is Result.SUCCESS  # an unexpected pass is a pass, a skip does not apply


def test_pytests_own_status_beyond_the_checks_stays_pytests() -> None:
    failed = [Row(id="t", target="", check="c", level=Level.MAY, outcome=RowOutcome.FAILED),
              Row(id="u", target="", check="d", level=Level.MUST, outcome=RowOutcome.ERROR)]
    for status in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.INTERNAL_ERROR, pytest.ExitCode.USAGE_ERROR,
                   pytest.ExitCode.NO_TESTS_COLLECTED):
        assert gate.exit_code(Result.SUCCESS, failed, int(status), 0) == int(status)
    # pytest counted the checks' two failures: the result decides; a third is a test that is not a check
    assert gate.exit_code(Result.PARTIAL, failed, int(pytest.ExitCode.TESTS_FAILED), 2) == 0
    assert gate.exit_code(Result.INCONCLUSIVE, failed, int(pytest.ExitCode.TESTS_FAILED), 2) == 75
    assert gate.exit_code(Result.PARTIAL, failed, int(pytest.ExitCode.TESTS_FAILED), 3) == 1
    assert gate.exit_code(Result.SUCCESS, [], int(pytest.ExitCode.OK), 0) == 0
    assert gate.exit_code(Result.FAILURE, [], int(pytest.ExitCode.OK), 0) == 1


@dataclass
class _Node:
    """What a check's level is read from (gate.Marked): its id and its marks, nearest first."""

    marks: tuple[pytest.MarkDecorator, ...] = ()
    nodeid: str = "test_checks.py::test_mine"

    def iter_markers(self, name: str | None = None) -> Iterator[pytest.Mark]:
        return (m.mark for m in self.marks if name is None or m.name == name)


def test_a_checks_level_is_its_one_mark() -> None:
    assert gate.mark(Level.MUST).name == "must" and gate.mark(Level.MAY).name == "may"
    assert gate.marked_level(_Node((pytest.mark.should, pytest.mark.parametrize("x", [1])))) is Level.SHOULD
    assert gate.marked_level(_Node((pytest.mark.skip,))) is None
    assert gate.level_of(_Node((gate.mark(Level.MAY),))) is Level.MAY
    # the same mark twice (the function's and its module's) is one level
    assert gate.level_of(_Node((pytest.mark.must, pytest.mark.must))) is Level.MUST
    with pytest.raises(gate.LevelError) as several:
        gate.level_of(_Node((pytest.mark.may, pytest.mark.must, pytest.mark.should)))
    assert str(several.value) == ("test_checks.py::test_mine has the marks @pytest.mark.must and @pytest.mark.should "
                                  "and @pytest.mark.may: a check has one level; keep one of them.")
    with pytest.raises(gate.LevelError, match=r"has the marks @pytest.mark.should and @pytest.mark.may: a check"):
        gate.level_of(_Node((pytest.mark.may, pytest.mark.should)))  # two: already one too many
    with pytest.raises(gate.LevelError) as none:
        gate.level_of(_Node())
    assert str(none.value) == (
        "test_checks.py::test_mine has no level mark, so the vllm_level fixture cannot tell how much it matters: mark "
        "the test with @pytest.mark.must, @pytest.mark.should or @pytest.mark.may (or give each parameter its mark "
        "with pytest.param(..., marks=pytest.mark.must)).")


def test_a_rows_level_is_its_marks_lowered_by_its_verdict_never_raised() -> None:
    must, should = _Node((pytest.mark.must,)), _Node((pytest.mark.should,))
    assert gate.row_level(must, Level.SHOULD) is Level.SHOULD  # a partial panel fails at SHOULD
    assert gate.row_level(should, Level.MUST) is Level.SHOULD
    assert gate.row_level(should, Level.SHOULD) is Level.SHOULD
    assert gate.row_level(must, None) is Level.MUST
    assert gate.row_level(_Node(), Level.MAY) is Level.MAY  # a user's own test: its verdict's
    assert gate.row_level(_Node(), None) is None
    assert gate.row_level(_Node((pytest.mark.must, pytest.mark.may)), Level.SHOULD) is Level.SHOULD


@pytest.mark.parametrize(("name", "asked", "runs"), [
    ("conftest.py", {"vllm_upgrade_to": "0.11.0"}, True),
    ("test_server.py", {}, True),
    ("test_server.py", {"vllm_upgrade_to": "0.11.0"}, False),  # a forecast sends no workload: its file alone
    ("test_upgrade.py", {"vllm_upgrade_to": "0.11.0"}, True),
    ("test_upgrade.py", {}, False),
    ("test_dashboards.py", {}, False),
    ("test_dashboards.py", {"panels": True}, True),
    ("test_consumers.py", {"panels": True}, False),
    ("test_consumers.py", {"consumers": True}, True),
    ("test_prometheus.py", {}, False),
    ("test_prometheus.py", {"prometheus_url": "http://prometheus:9090"}, True),
    ("test_accounting.py", {}, False),
    ("test_accounting.py", {"vllm_exclusive": True}, True),
    # the fleet's readers are judged once, by shard 0 (or an unsharded run); the servers' checks by every shard
    ("test_dashboards.py", {"panels": True, "vllm_shard": Shard(0, 2)}, True),
    ("test_dashboards.py", {"panels": True, "vllm_shard": Shard(1, 2)}, False),
    ("test_epp.py", {"vllm_shard": Shard(1, 2)}, False),
    ("test_epp.py", {}, True),
    ("test_server.py", {"vllm_shard": Shard(1, 2)}, True),
    ("test_upgrade.py", {"vllm_upgrade_to": "0.11.0", "vllm_shard": Shard(1, 2)}, True),
])
def test_the_bundled_suites_optional_parts_run_when_asked_for(name: str, asked: dict[str, Any], runs: bool) -> None:
    settings = Settings(**{k: v for k, v in asked.items() if k not in ("panels", "consumers")})
    assert gate.collects(name, settings, asked.get("panels", False), asked.get("consumers", False)) is runs
