"""The run's gate, decided once from the options: a check's level (its one must/should/may mark), which parts of the
bundled suite are collected, and what the checks' rows make of the run under --vllm-fail-on: its result and its exit
code. Every report states the result this module gives, and the run exits with its code, so they always agree.

The result, worst first (in the spirit of the Gateway API ConformanceReport, and Sonobuoy's failed/unknown split):

  failure       a check at or above --vllm-fail-on (default MUST) failed, or a test errored       exit code 1
  inconclusive  otherwise, a check could not observe what it needs (its cause is in couldNotObserve)        75
  partial       otherwise, a check below --vllm-fail-on failed, or a check XFAILed on a documented
                limitation                                                                               0
  success       otherwise: everything that ran passed (skips for features a server does not have are
                fine; an unexpected pass of a documented limitation is a pass)                           0

pytest's own statuses beyond the checks stay pytest's: a test that is not a check failed (1), the run was
interrupted (2), an internal error (3), a usage error (4), nothing collected (5).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from enum import StrEnum
from typing import Protocol

import pytest

from .outcome import EXIT_INCONCLUSIVE, Level
from .rows import Row, RowOutcome
from .settings import Settings
from .shard import judges_fleet


class Result(StrEnum):
    SUCCESS = "success"
    PARTIAL = "partial"
    INCONCLUSIVE = "inconclusive"
    FAILURE = "failure"

    @property
    def exit_code(self) -> int:
        return _EXIT_CODES[self]


_EXIT_CODES = {Result.SUCCESS: pytest.ExitCode.OK, Result.PARTIAL: pytest.ExitCode.OK,
               Result.INCONCLUSIVE: EXIT_INCONCLUSIVE, Result.FAILURE: pytest.ExitCode.TESTS_FAILED}

# The rule as the JSON report states it (`resultRule`).
RULE = ("failure: a check at or above the fail-on level (failOn) failed, or a test errored; inconclusive: otherwise, "
        "a check could not observe what it needs (see couldNotObserve); partial: otherwise, a check below the fail-on "
        "level failed, or a check xfailed on a documented limitation; success: none of these. The exit code follows "
        "the result: 1 for failure, 75 for inconclusive, 0 otherwise")


def fail_on(settings: Settings) -> Level:
    """--vllm-fail-on: the lowest level whose failures fail the run."""
    return Level(settings.vllm_fail_on.upper())


def fails_the_run(row: Row, floor: Level) -> bool:
    """A test that errored, or a check at or above `floor` that failed."""
    return row.outcome == RowOutcome.ERROR or (row.outcome == RowOutcome.FAILED and row.level.at_least(floor))


def result(rows: Iterable[Row], floor: Level) -> Result:
    """The run's result from its checks' rows, with failures counted from level `floor` up (--vllm-fail-on)."""
    found = list(rows)
    if any(fails_the_run(row, floor) for row in found):
        return Result.FAILURE
    if any(row.outcome == RowOutcome.INCONCLUSIVE for row in found):
        return Result.INCONCLUSIVE
    if any(row.outcome in (RowOutcome.FAILED, RowOutcome.XFAILED) for row in found):
        return Result.PARTIAL
    return Result.SUCCESS


def exit_code(outcome: Result, rows: Iterable[Row], pytest_status: int, tests_failed: int) -> int:
    """The run's exit code: the result's, unless pytest's own status says more than the checks can (an interrupted
    run, a usage error, nothing collected), or a test that is not a check failed (`tests_failed`: pytest's count
    of failed tests, which counts the checks' failures and errors too)."""
    if pytest_status not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        return int(pytest_status)
    if tests_failed > sum(1 for row in rows if row.outcome.fails):
        return int(pytest.ExitCode.TESTS_FAILED)
    return int(outcome.exit_code)


# -- a check's level: its one must/should/may mark -----------------------------------------------------------

MARKS = {level: level.value.lower() for level in Level}  # the marker of each level: "must", "should", "may"
MARKERS = tuple(f"{name}: a {level} requirement of the catalog" for level, name in MARKS.items())
_LEVEL_OF = {name: level for level, name in MARKS.items()}


class LevelError(Exception):
    """A check with no level mark, or several."""


class Marked(Protocol):
    """A test item (or the node of a fixture's request): what its level is read from."""

    @property
    def nodeid(self) -> str: ...

    def iter_markers(self, name: str | None = None) -> Iterator[pytest.Mark]: ...


def mark(level: Level) -> pytest.MarkDecorator:
    """The mark that gives a check its level (at parametrization, from its catalog entry)."""
    decorator: pytest.MarkDecorator = getattr(pytest.mark, MARKS[level])
    return decorator


def marked_level(node: Marked) -> Level | None:
    """The level a test's mark gives it (from its function, class, module or parameters); None without one.
    Raises LevelError when it has several: which one it is must not depend on the order of the marks."""
    found = sorted({_LEVEL_OF[m.name] for m in node.iter_markers() if m.name in _LEVEL_OF}, key=list(Level).index)
    if len(found) > 1:
        marks = " and ".join(f"@pytest.mark.{MARKS[level]}" for level in found)
        raise LevelError(f"{node.nodeid} has the marks {marks}: a check has one level; keep one of them.")
    return found[0] if found else None


def level_of(node: Marked) -> Level:
    """The level of a check: its one must/should/may mark. Raises LevelError without one."""
    level = marked_level(node)
    if level is None:
        raise LevelError(f"{node.nodeid} has no level mark, so the vllm_level fixture cannot tell how much it "
                         f"matters: mark the test with @pytest.mark.must, @pytest.mark.should or @pytest.mark.may (or "
                         f"give each parameter its mark with pytest.param(..., marks=pytest.mark.must)).")
    return level


def row_level(node: Marked, verdict: Level | None) -> Level | None:
    """A check's level as its row states it: its mark's, lowered where its verdict says less (a panel that shows
    data from only some of its queries fails at SHOULD), never raised; without a mark (a user's own test), the
    verdict's."""
    try:
        level = marked_level(node)
    except LevelError:
        level = None  # several marks: the check itself errs, saying so, if it asks for its level (vllm_level)
    if level is None or verdict is None:
        return level or verdict
    return verdict if level.at_least(verdict) else level


# -- what is collected: the bundled suite's optional parts ---------------------------------------------------

# A bundled test file that runs only when the run asks for what it checks.
_ASKED_FOR = {
    "test_dashboards.py": "panels",  # --grafana-dashboard (or dashboards found in the namespace)
    "test_consumers.py": "consumers",  # --prometheus-rules (or rules, scalers, the EPP found in the namespace)
    "test_prometheus.py": "prometheus",  # --prometheus-url
    "test_accounting.py": "exclusive",  # --vllm-exclusive: exact counts hold only when nothing else reaches the targets
    "test_upgrade.py": "upgrade",  # --vllm-upgrade-to
}


# The bundled test files that judge readers of the whole fleet rather than each server: under --vllm-shard, shard 0
# alone runs them (shard.judges_fleet), so that a fleet's panel is judged once, not once per shard.
FLEET_LEVEL = frozenset({"test_dashboards.py", "test_consumers.py", "test_epp.py"})


def collects(name: str, settings: Settings, panels: bool, consumers: bool) -> bool:
    """Whether the bundled test file `name` runs. An upgrade forecast sends no workload, so only its own file runs;
    otherwise every file but the optional ones that were not asked for, and but the fleet's readers on a shard other
    than 0. `panels`, `consumers`: whether the run has dashboards and other consumers of the metrics to judge."""
    if not name.startswith("test_"):
        return True
    if name in FLEET_LEVEL and not judges_fleet(settings.vllm_shard):
        return False
    if settings.vllm_upgrade_to:
        return name == "test_upgrade.py"
    asked = {"panels": panels, "consumers": consumers, "prometheus": bool(settings.prometheus_url),
             "exclusive": settings.vllm_exclusive, "upgrade": False}
    return asked[_ASKED_FOR[name]] if name in _ASKED_FOR else True
