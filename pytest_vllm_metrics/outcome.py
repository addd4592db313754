"""The outcome vocabulary every check speaks, and the Verdict that carries one.

    passed        the deployment does what the check asks
    failed        the deployment breaks the contract (a FAIL means the deployment is wrong)
    xfailed       it fails on a limitation vLLM documents (the reason is vLLM's own)
    skipped       the check does not apply (a feature the server does not have, another vLLM version)
    inconclusive  the run could not observe what the check needs (unreachable, auth refused, unknown model,
                  overloaded, restarted between the scrapes, a cap reached): never a pass, never a failure

Renderers (terminal, HTML, JSON, JUnit) read these fields; none parses a message back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Outcome(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    XFAILED = "xfailed"
    SKIPPED = "skipped"
    INCONCLUSIVE = "inconclusive"


class Level(StrEnum):
    """How much a check matters (RFC 2119): a MUST failure fails the run by default (--vllm-fail-on)."""

    MUST = "MUST"
    SHOULD = "SHOULD"
    MAY = "MAY"

    def at_least(self, floor: Level) -> bool:
        """Whether this level is `floor` or stricter (MUST is at least SHOULD)."""
        return _LEVEL_ORDER.index(self) <= _LEVEL_ORDER.index(floor)


_LEVEL_ORDER = (Level.MUST, Level.SHOULD, Level.MAY)


# Which outcome a check across several targets takes: the first of these that any target has.
WORST_FIRST = (Outcome.FAILED, Outcome.INCONCLUSIVE, Outcome.XFAILED, Outcome.PASSED, Outcome.SKIPPED)

# The exit code of a run in which nothing failed but some check could not observe what it needs
# (sysexits' EX_TEMPFAIL: "a temporary failure; the user is invited to retry"). A failure still exits 1.
EXIT_INCONCLUSIVE = 75


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    message: str = ""
    level: Level = Level.MUST
    evidence: dict[str, Any] = field(default_factory=dict)
    diagnosis: str | None = None
    # A check across targets: each target's own verdict, by target name (empty for a check of one target).
    targets: dict[str, Verdict] = field(default_factory=dict)
    # The target (or dashboard) this verdict judges; "" for a check of several.
    target: str = ""

    def __post_init__(self) -> None:
        # a plain "failed" or "MUST" is accepted, and checked (typed ones pass as they are: a fleet makes ~100,000)
        if type(self.outcome) is not Outcome:
            object.__setattr__(self, "outcome", Outcome(self.outcome))
        if type(self.level) is not Level:
            object.__setattr__(self, "level", Level(self.level))

    def of_target(self, target: str) -> Verdict:
        """The same verdict, of `target`: `but(target=target)` for the ~100,000 verdicts of a fleet's run."""
        new = object.__new__(Verdict)
        new.__dict__.update(self.__dict__, target=target)
        return new

    def but(self, **changes: Any) -> Verdict:
        """The same verdict with some fields changed (a verdict is a value: it is never changed in place). As
        dataclasses.replace, without its cost: every check names each target's verdict this way."""
        unknown = changes.keys() - _VERDICT_FIELDS
        if unknown:
            raise TypeError(f"Verdict has no field(s) {', '.join(sorted(unknown))}")
        new = object.__new__(Verdict)
        new.__dict__.update(self.__dict__, **changes)
        new.__post_init__()
        return new


@dataclass(frozen=True)
class Problem:
    """Why one stage of a target's observation has no result: one paragraph with the cause and the fix.

    `inconclusive` problems mean the run could not observe (the checks that need the stage say so); the
    others are the server answering wrongly. Such a failure is reported by one check, `check` (a server whose
    /metrics answers 404 fails test_reachable); every other check that needs the stage cannot judge the
    server and says so, naming that check and `cause` (the failure in a few words), so that one broken server
    is one failure, not one per check."""

    message: str
    inconclusive: bool = True
    check: str = ""
    cause: str = ""

    def verdict(self, level: Level = Level.MUST, target: str = "") -> Verdict:
        outcome = Outcome.INCONCLUSIVE if self.inconclusive else Outcome.FAILED
        return Verdict(outcome, self.message, level, target=target)


_VERDICT_FIELDS = frozenset(Verdict.__dataclass_fields__)
