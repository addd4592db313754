"""The rows of the reports: one per check (a test that judges targets or a reader of the metrics, or enforces a
verdict), made from pytest's report of it. A row is a value: frozen, its outcome and level typed. It travels from
pytest-xdist workers to the controller as plain data (`as_json`, `from_json`), the form the JSON report has.

Which reader of the metrics a row speaks for (the servers, a Grafana panel, a rule, a scaler, the endpoint picker,
the upgrade forecast) is told here too: every report groups its story by reader.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import pytest

from .outcome import Level, Outcome, Verdict


class RowOutcome(StrEnum):
    """A check's outcome as the reports state it: the verdict's (outcome.Outcome), and pytest's own words for a
    test that broke (an error) or passed while a documented limitation was expected (an unexpected pass)."""

    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    XFAILED = "xfailed"
    XPASSED = "xpassed"
    INCONCLUSIVE = "inconclusive"
    SKIPPED = "skipped"

    @property
    def bucket(self) -> RowOutcome:
        """The outcome as the reports count it: an error is a failure, an unexpected pass a pass."""
        return _BUCKET_OF.get(self, self)

    @property
    def broken(self) -> bool:
        """Listed with its reason where the reports say what does not work."""
        return self in (RowOutcome.FAILED, RowOutcome.ERROR, RowOutcome.XPASSED)

    @property
    def notable(self) -> bool:
        """Listed in the terminal's table of what did not simply pass."""
        return self.broken or self == RowOutcome.XFAILED

    @property
    def fails(self) -> bool:
        """A failure of the check (whether it fails the run depends on its level: see gate.result)."""
        return self in (RowOutcome.FAILED, RowOutcome.ERROR)

    @classmethod
    def of(cls, outcome: Outcome) -> RowOutcome:
        return cls(outcome.value)


_BUCKET_OF = {RowOutcome.ERROR: RowOutcome.FAILED, RowOutcome.XPASSED: RowOutcome.PASSED}
# The outcomes as the reports count them, worst first.
BUCKETS = (RowOutcome.FAILED, RowOutcome.INCONCLUSIVE, RowOutcome.XFAILED, RowOutcome.PASSED, RowOutcome.SKIPPED)


def worse(one: RowOutcome | None, other: RowOutcome) -> RowOutcome:
    """The worse of two counted outcomes (None: nothing yet)."""
    return other if one is None or BUCKETS.index(other) < BUCKETS.index(one) else one


@dataclass(frozen=True)
class TargetResult:
    """One target's own outcome of a check across several: what its verdict said."""

    outcome: RowOutcome
    reason: str = ""
    diagnosis: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "outcome", RowOutcome(self.outcome))  # a plain "failed" is accepted, and checked


@functools.lru_cache(maxsize=4096)
def _target_result(outcome: str, reason: str = "", diagnosis: str = "") -> TargetResult:
    """A target's result from its plain data, made once for alike ones: a fleet's ~100,000 cells say a few thousand
    different things, and the controller of pytest-xdist makes them all again from JSON."""
    return TargetResult(RowOutcome(outcome), reason, diagnosis)


@dataclass(frozen=True)
class Row:
    id: str
    target: str  # "" for a check of several targets: see `targets`
    check: str
    level: Level
    outcome: RowOutcome
    reason: str = ""
    diagnosis: str = ""
    evidence: Mapping[str, Any] = field(default_factory=dict)
    # A check across targets (a catalog family): each target's own outcome, reason and diagnosis, by name.
    targets: Mapping[str, TargetResult] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # the JSON report's plain words ("failed", "MUST", a target's object) are accepted, and checked
        object.__setattr__(self, "level", Level(self.level))
        object.__setattr__(self, "outcome", RowOutcome(self.outcome))
        object.__setattr__(self, "targets", {name: t if isinstance(t, TargetResult) else _target_result(**t)
                                             for name, t in self.targets.items()})

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Row:
        return cls(**data)

    def to_wire(self) -> str:
        """The row as a pytest-xdist worker sends it to the controller (`from_wire`): as_json's data with each
        distinct per-target result and evidence value sent once. A fleet's row holds ~1,000 of each, and the rows
        of 1,000 servers say ~100,000 things of which ~3,000 differ."""
        cells: dict[TargetResult, int] = {}
        targets = {name: cells.setdefault(t, len(cells)) for name, t in self.targets.items()}
        known: dict[str, int] = {}  # a value's JSON -> its position in `values`: alike as JSON, sent once
        values: list[Any] = []
        evidence: dict[str, int] = {}
        for key, value in self.evidence.items():
            text = json.dumps(value)
            index = known.get(text)
            if index is None:
                index = known[text] = len(values)
                values.append(value)
            evidence[key] = index
        return json.dumps({"row": self._head(), "cells": [[t.outcome.value, t.reason, t.diagnosis] for t in cells],
                           "targets": targets, "values": values, "evidence": evidence})

    @classmethod
    def from_wire(cls, text: str) -> Row:
        """The row a worker sent (`to_wire`); alike results and evidence values are one object each."""
        data = json.loads(text)
        cells = [_target_result(outcome, reason, diagnosis) for outcome, reason, diagnosis in data["cells"]]
        values = data["values"]
        return cls(**data["row"], evidence={key: values[i] for key, i in data["evidence"].items()},
                   targets={name: cells[i] for name, i in data["targets"].items()})

    def as_json(self) -> dict[str, Any]:
        """The row as plain data: the JSON report's `tests[]` (pytest-xdist sends `to_wire`'s shorter form)."""
        return {**self._head(), "evidence": dict(self.evidence),
                "targets": {name: {"outcome": t.outcome.value, "reason": t.reason, "diagnosis": t.diagnosis}
                            for name, t in self.targets.items()}}

    def _head(self) -> dict[str, str]:
        """The row's own fields as plain data, as as_json and to_wire both start."""
        return {"id": self.id, "target": self.target, "check": self.check, "level": self.level.value,
                "outcome": self.outcome.value, "reason": self.reason, "diagnosis": self.diagnosis}

    def junit_properties(self) -> list[tuple[str, str]]:
        """The row as JUnit test-case properties: target, check, level, outcome, and each target's own outcome, so
        that a CI tool reading JUnit sees which pod failed a check of several."""
        return [("vllm_target", self.target or "every target"), ("vllm_check", self.check),
                ("vllm_level", self.level.value), ("vllm_outcome", self.outcome.value),
                *((f"vllm_target_outcome:{name}", outcome.value) for name, outcome, _ in self.per_target() if name)]

    def per_target(self) -> list[tuple[str, RowOutcome, str]]:
        """(target, outcome, the reason a reader needs first) for each target this row judged."""
        if not self.targets:
            return [(self.target, self.outcome, without_target(self.diagnosis or self.reason, self.target))]
        return [(name, t.outcome, without_target(t.diagnosis or t.reason, name)) for name, t in self.targets.items()]

    def shown_target(self) -> str:
        """The target column: the target, or for a check of several, the ones that did not pass."""
        if self.target or not self.targets:
            return self.target
        names = [name for name, t in self.targets.items() if t.outcome != RowOutcome.PASSED]
        if not names or self.outcome == RowOutcome.PASSED:
            return f"all {len(self.targets)} targets"
        joined = ", ".join(names)
        return joined if len(joined) <= 32 else f"{len(names)} of {len(self.targets)} targets"

    @property
    def panel(self) -> str | None:
        """The title of the Grafana panel this row judges, if it judges one."""
        return self.check.removeprefix(_PANEL) if self.check.startswith(_PANEL) else None

    @property
    def panel_verdict(self) -> str:
        """A reader's verdict in the panels' vocabulary ("ok", "no data", "label mismatch", ...)."""
        return str(self.evidence.get("panel_verdict") or ("ok" if self.outcome == RowOutcome.PASSED
                                                         else self.outcome))

    @property
    def why(self) -> str:
        """The reason a reader needs first: the diagnosis, else the reason."""
        return self.diagnosis or self.reason


_PANEL = "panel: "


def row_for(item: pytest.Item, report: pytest.TestReport, verdict: Verdict | None, level: Level | None) -> Row | None:
    """The row of a finished test, from the report of its deciding phase; None for other phases. `level`: the
    check's level (gate.row_level); without one, MUST."""
    if report.when == "call" or (report.when == "setup" and not report.passed):
        outcome = _outcome(report)
    elif report.when == "teardown" and report.failed:
        outcome = RowOutcome.ERROR
    else:
        return None
    params = getattr(item, "callspec", None)
    values = params.params if params else {}
    target = values.get("vllm_target") or ""
    entry = values.get("vllm_entry") or values.get("vllm_moving_entry")
    panel = values.get("vllm_panel") or values.get("vllm_consumer")
    name = str(getattr(item, "originalname", item.name)).removeprefix("test_")
    if panel is not None:  # a Grafana panel ("panel: T"), or another consumer ("alert: T", "keda: T", ...)
        target, check = panel.dashboard, f"{panel.kind}: {panel.title}"
    elif entry is not None:
        check = f"{name}: {entry.name}"
    else:
        # other parameters than the target: keep their part of the id, e.g. "cached" in "[sim-x86_64-cached]"
        rest = params.id.removeprefix(str(target)).lstrip("-") if params else ""
        check = f"{name}[{rest}]" if rest else name
    reason = _reason(report)
    if verdict is not None and verdict.outcome == Outcome.INCONCLUSIVE and report.skipped:
        outcome, reason = RowOutcome.INCONCLUSIVE, verdict.message
    elif verdict is not None and outcome == RowOutcome.PASSED and verdict.message:
        reason = verdict.message  # what a pass still says: the pods an aggregate does not see, what was not exercised
    # One result per distinct (outcome, reason, diagnosis): a fleet's pods alike share it.
    shared: dict[tuple[Outcome, str, str], TargetResult] = {}
    targets = {name: _shared_result(shared, v) for name, v in verdict.targets.items()} if verdict else {}
    if verdict is not None and verdict.target and not targets:
        target = verdict.target
    if len(targets) == 1:
        target = next(iter(targets))
    return Row(
        id=item.nodeid, target=str(target), check=str(check),
        level=level or Level.MUST, outcome=outcome, reason=reason,
        diagnosis=(verdict.diagnosis or "") if verdict else "", evidence=jsonable(verdict.evidence) if verdict else {},
        targets=targets,
    )


def _outcome(report: pytest.TestReport) -> RowOutcome:
    if hasattr(report, "wasxfail"):
        return RowOutcome.XPASSED if report.passed else RowOutcome.XFAILED
    if report.when != "call" and report.failed:
        return RowOutcome.ERROR
    return RowOutcome(report.outcome)


def _reason(report: pytest.TestReport) -> str:
    if hasattr(report, "wasxfail"):
        return str(report.wasxfail)
    skipped = skipped_reason(report)
    if skipped is not None:
        return skipped
    if report.failed:
        crash = getattr(report.longrepr, "reprcrash", None)
        text = crash.message if crash is not None else str(report.longrepr)
        return text.removeprefix("Failed: ")
    return ""


def skipped_reason(report: pytest.TestReport) -> str | None:
    """The text of a skip (pytest keeps it as a (path, line, "Skipped: ...") tuple)."""
    if report.skipped and isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    return None


def _shared_result(shared: dict[tuple[Outcome, str, str], TargetResult], verdict: Verdict) -> TargetResult:
    key = (verdict.outcome, verdict.message, verdict.diagnosis or "")
    result = shared.get(key)
    if result is None:
        result = shared[key] = TargetResult(RowOutcome.of(key[0]), key[1], key[2])
    return result


def jsonable(value: Any) -> Any:
    """The value as the JSON report holds it (what json.dumps(default=str) then json.loads would give), without
    the round trip: a fleet's evidence is large, and its strings are shared rather than copied."""
    if value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, dict):
        return {_json_key(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, str):  # a str enum: its text
        return str.__str__(value)
    if isinstance(value, int):  # an int enum (bool has no subclasses: taken above)
        return int(value)
    if isinstance(value, float):
        return float(value)
    return str(value)


def _json_key(key: Any) -> str:
    if isinstance(key, str):
        return str.__str__(key)
    if key is None or isinstance(key, bool | int | float):
        return json.dumps(key)  # JSON's spelling of the key: null, true, 1, 1.5
    return str(key)


def without_target(reason: str, target: str) -> str:
    """Messages start with the target's name; where the row already shows it, drop it."""
    if target and reason.startswith(target) and ": " in reason:
        return reason.split(": ", 1)[1]
    return reason


def named(names: list[str], shown: int = 3) -> str:
    """The first names, and how many more: a fleet's 1,000 pods alike make one line."""
    if len(names) <= shown:
        return ", ".join(names)
    return f"{', '.join(names[:shown])} and {len(names) - shown} more ({len(names)} targets)"


# -- who reads the metrics: the groups every report tells its story by --------------------------------------


class Reader(StrEnum):
    """The kinds of reader of vLLM's metrics a check speaks for: the servers themselves, then each consumer."""

    TARGETS = "targets"
    DASHBOARDS = "dashboards"
    RULES = "rules"
    SCALERS = "scalers"
    EPP = "epp"
    UPGRADE = "upgrade"
    OTHER = "other"


@dataclass(frozen=True)
class ReaderInfo:
    title: str
    unit: str  # what is counted: a target, a panel, a rule...
    units: str
    anchor: str  # the id of its section in the HTML report
    failed: str = "failed"  # what a failure means for it

    def of(self, n: int) -> str:
        return self.unit if n == 1 else self.units


READERS: dict[Reader, ReaderInfo] = {
    Reader.TARGETS: ReaderInfo("vLLM servers", "target", "targets", "vllm-targets"),
    Reader.DASHBOARDS: ReaderInfo("Grafana panels", "panel", "panels", "vllm-dashboards"),
    Reader.RULES: ReaderInfo("Alerting and recording rules", "rule", "rules", "vllm-rules"),
    Reader.SCALERS: ReaderInfo("Autoscalers and adapters (KEDA, prometheus-adapter)", "reader", "readers",
                               "vllm-scalers"),
    Reader.EPP: ReaderInfo("Endpoint picker (EPP)", "check", "checks", "vllm-epp"),
    Reader.UPGRADE: ReaderInfo("Upgrade forecast", "consumer", "consumers", "vllm-upgrade", "go dark"),
    Reader.OTHER: ReaderInfo("Other checks", "check", "checks", "results-table"),  # pytest-html's results table
}

# The checks of the metrics' other consumers (consumers.py): judged as panels, listed apart from them.
CONSUMER_KINDS = ("alert", "record", "keda", "adapter", "epp")
_CONSUMER_READERS = {"alert": Reader.RULES, "record": Reader.RULES, "keda": Reader.SCALERS,
                     "adapter": Reader.SCALERS, "epp": Reader.EPP}


def consumer_kind(row: Row) -> str | None:
    kind = row.check.split(": ", 1)[0]
    return kind if ": " in row.check and kind in CONSUMER_KINDS else None


def _module(row: Row) -> str:
    return row.id.split("::", 1)[0].rsplit("/", 1)[-1].removesuffix(".py").removeprefix("test_")


def reader_of(row: Row) -> Reader:
    kind = consumer_kind(row)
    if kind is not None:
        return _CONSUMER_READERS[kind]
    if row.panel is not None:
        return Reader.DASHBOARDS
    module = _module(row)
    if module in ("upgrade", "epp"):  # the bundled suite's upgrade forecast and its endpoint-picker checks
        return Reader(module)
    if row.target or row.targets:  # judges one target, or each of several (every row per_target() names)
        return Reader.TARGETS
    return Reader.OTHER


def check_group(row: Row) -> tuple[str, str]:
    """(group, short name) of a check, for the columns of the pods x checks grid: catalog checks by kind
    ("present", "moves"), the others by their test module ("prefix cache", "server", your own)."""
    if ": " in row.check:
        group, rest = row.check.split(": ", 1)
        return group, rest.removeprefix("vllm:")
    return _module(row).replace("_", " "), row.check
