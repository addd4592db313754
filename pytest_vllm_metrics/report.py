"""The report model: built once per run, at its end, from the checks' rows and what the run observed, and kept on
the session (`REPORT_KEY`). Every writer renders it and decides nothing: the JSON/YAML conformance report
(`document`, here), the terminal summary (report_terminal), the HTML summary (report_html), the Markdown CI summary
(report_markdown). The result and the exit code are gate.py's, from the rows and --vllm-fail-on.
"""

from __future__ import annotations

import json
import os
import platform
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from . import gate, multinode, upgrade
from .kube import ClusterInfo
from .outcome import Level
from .rows import BUCKETS, READERS, Reader, ReaderInfo, Row, RowOutcome, named, reader_of, worse
from .settings import Settings
from .versions import __version__

ROWS_KEY = pytest.StashKey[list[Row]]()
SCHEMA_VERSION = "1"


@dataclass(frozen=True)
class ReaderCount:
    """One kind of reader the run checked: how many, and how they came out (a target counts once, by the worst of
    its checks; any other reader once per check)."""

    reader: Reader
    total: int
    counts: Mapping[RowOutcome, int]  # per bucket (rows.BUCKETS), every bucket present

    @property
    def info(self) -> ReaderInfo:
        return READERS[self.reader]

    def of(self, n: int) -> str:
        """'5 of 21 panels'."""
        return f"{n} of {self.total} {self.info.of(self.total)}"


@dataclass(frozen=True)
class Once:
    """A target's observation problem, or a documented limitation, stated once with the checks it explains."""

    target: str
    reason: str
    checks: tuple[str, ...]


@dataclass(frozen=True)
class Alike:
    """Entries of `Once` with the same reason as one: every target it concerns, and how many checks on each."""

    reason: str
    targets: tuple[str, ...]
    checks: tuple[int, ...]


@dataclass(frozen=True)
class Warned:
    """A warning of checks that passed, once per distinct text, with the targets it concerns."""

    check: str
    text: str
    targets: tuple[str, ...]


@dataclass(frozen=True)
class Tally:
    """What pytest itself counted (the terminal's "73 passed, 9 skipped, 2 inconclusive") and collected."""

    collected: int = 0
    outcomes: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Report:
    rows: tuple[Row, ...]
    implementations: tuple[Mapping[str, Any], ...]  # what the reports say of each observed target
    environment: Mapping[str, Any]  # python, pytest, the settings, the cluster
    features: Mapping[str, list[str]]  # required and exempt
    started: datetime
    fail_on: Level
    result: gate.Result
    exit_code: int
    readers: tuple[ReaderCount, ...]  # in Reader's order, the kinds the run checked
    story: tuple[tuple[Reader | None, str], ...]  # what failed, by reader: the first words of every report
    warnings: tuple[Warned, ...]
    unobserved: tuple[Once, ...]  # the "could not observe" section
    documented: tuple[Once, ...]  # the documented limitations (XFAIL)
    upgrade: Mapping[str, Any] | None  # the forecast of --vllm-upgrade-to (the JSON report's `upgrade`)
    notes: tuple[str, ...] = ()  # the terminal's notes: the cluster's, the data-parallel engines, --vllm-exclusive
    path: str | None = None  # where --vllm-report writes
    layout: tuple[Mapping[str, Any], ...] = ()  # the dashboards' panels in order, with where Grafana draws them
    tally: Tally | None = None
    shard: Mapping[str, Any] | None = None  # --vllm-shard: what the merge needs (`shard_section`)

    @property
    def counts(self) -> Counter[RowOutcome]:
        return Counter(row.outcome for row in self.rows)

    def counts_text(self) -> str:
        """'1 failed, 73 passed, 9 skipped': the rows' outcomes."""
        return ", ".join(f"{n} {outcome}" for outcome, n in sorted(self.counts.items())) or "no checks"


def build(rows: Iterable[Row], settings: Settings | None = None, *, implementations: Iterable[Mapping[str, Any]] = (),
          cluster: ClusterInfo | None = None, layout: Iterable[Mapping[str, Any]] = (),
          started: datetime | None = None, pytest_status: int | None = None, tests_failed: int | None = None,
          tally: Tally | None = None, fleet: Iterable[str] = (), checked: Iterable[str] = (),
          marks: Mapping[str, str] | None = None) -> Report:
    """The report of a run. `pytest_status` and `tests_failed`: pytest's exit status and count of failed tests
    before the checks decide (by default, what the rows alone would make them). `fleet`, `checked`, `marks`: under
    --vllm-shard, every target of the fleet, whichever shard checks it, the ones this shard checked, and each check's
    level mark by test id."""
    settings = settings or Settings()
    found = tuple(rows)
    targets = tuple(implementations)
    floor = gate.fail_on(settings)
    result = gate.result(found, floor)
    failed = sum(1 for row in found if row.outcome.fails) if tests_failed is None else tests_failed
    status = pytest_status if pytest_status is not None else (
        pytest.ExitCode.TESTS_FAILED if failed else pytest.ExitCode.OK)
    counted = readers(found)
    return Report(
        rows=found, implementations=targets, environment=environment(settings, cluster),
        features={"required": list(settings.vllm_require_feature), "exempt": list(settings.vllm_exempt_feature)},
        started=started or datetime.now(UTC), fail_on=floor, result=result,
        exit_code=gate.exit_code(result, found, status, failed), readers=counted, story=story(counted),
        warnings=warnings_found(found), unobserved=_once(found, RowOutcome.INCONCLUSIVE),
        documented=_once(found, RowOutcome.XFAILED), upgrade=upgrade_section(found),
        notes=_notes(settings, cluster, targets), path=settings.vllm_report, layout=tuple(layout), tally=tally,
        shard=shard_section(settings, list(fleet), list(checked), layout, status, failed, tally, marks or {}))


def shard_section(settings: Settings, fleet: list[str], checked: list[str],
                  layout: Iterable[Mapping[str, Any]], status: int, failed: int, tally: Tally | None,
                  marks: Mapping[str, str]) -> dict[str, Any] | None:
    """What `pytest-vllm-metrics merge` needs of a shard's run beyond the rows (the JSON report's `shard`): which
    shard, the fleet it saw and the targets it checked, what pytest counted, the dashboards' layout, and each check's
    level mark (a row of one target states its verdict's level, which may be lower)."""
    shard = settings.vllm_shard
    if shard is None:
        return None
    return {"index": shard.index, "count": shard.count, "fleet": fleet,
            "checked": checked, "exclusive": settings.vllm_exclusive,
            "pytestStatus": int(status), "testsFailed": failed,
            "tally": {"collected": tally.collected, "outcomes": dict(tally.outcomes)} if tally else None,
            "layout": [dict(panel) for panel in layout], "marks": dict(marks)}


def environment(settings: Settings, cluster: ClusterInfo | None) -> dict[str, Any]:
    env: dict[str, Any] = {"python": platform.python_version(), "pytest": pytest.__version__,
                           "generated": datetime.now(UTC).isoformat(timespec="seconds"),
                           "settings": {k: v for k, v in (line.split(": ", 1) for line in settings.header_lines())}}
    if settings.vllm_shard is not None:
        env["shard"] = str(settings.vllm_shard)
    if cluster is not None:
        env["kubernetes"] = {"context": cluster.context, "server": cluster.server, "version": cluster.version,
                             "namespace": cluster.namespace, "selectors": list(cluster.selectors),
                             "notes": cluster.notes,
                             "multiNodeWorkers": [worker.as_dict() for worker in cluster.workers]}
    return env


def _notes(settings: Settings, cluster: ClusterInfo | None, targets: tuple[Mapping[str, Any], ...]) -> tuple[str, ...]:
    notes = list(cluster.notes if cluster is not None else ())  # informational calls that failed
    engines = multinode.engines_note([dict(t) for t in targets])
    if engines:
        notes.append(engines)
    looked = [str(t["target"]) for t in targets if (t.get("measured") or {}).get("looksExclusive")]
    if looked and not settings.vllm_exclusive:
        notes.append(f"on {named(looked)} the finished requests and prompt tokens moved by exactly the workload, as if "
                     f"no other traffic reached them: if that holds, --vllm-exclusive checks their counters exactly")
    return tuple(notes)


# -- what the rows say, once: by reader, the warnings, the observation problems and limitations ---------------


def readers(rows: Iterable[Row]) -> tuple[ReaderCount, ...]:
    """Per kind of reader that the run checked: how many, and how they came out. A target counts once, by the
    worst of its checks (the rows of the targets table add up to it); every other reader once per check (a
    panel, a rule)."""
    found: dict[Reader, dict[str | int, RowOutcome]] = {}
    for index, row in enumerate(rows):
        reader = reader_of(row)
        units = found.setdefault(reader, {})
        if reader == Reader.TARGETS:
            for name, outcome, _ in row.per_target():
                if name:
                    units[name] = worse(units.get(name), outcome.bucket)
        else:
            units[index] = row.outcome.bucket
    out = []
    for reader in Reader:
        if found.get(reader):
            counts = Counter(found[reader].values())
            out.append(ReaderCount(reader, len(found[reader]), {b: counts.get(b, 0) for b in BUCKETS}))
    return tuple(out)


def story(found: Iterable[ReaderCount]) -> tuple[tuple[Reader | None, str], ...]:
    """What failed, by reader, as short sentences: (reader, text). The first words a reader of any report sees
    after the result, so that a FAILURE names where it is (five panels, not the servers)."""
    counted = list(found)
    failing = [item for item in counted if item.counts[RowOutcome.FAILED]]
    out: list[tuple[Reader | None, str]] = [
        (item.reader, f"{item.of(item.counts[RowOutcome.FAILED])} {item.info.failed}") for item in failing]
    targets = next((item for item in counted if item.reader == Reader.TARGETS), None)
    if failing and targets is not None and not targets.counts[RowOutcome.FAILED]:
        out.append((Reader.TARGETS, f"none of the {targets.total} targets failed a check" if targets.total > 1
                    else "the target failed no check"))
    if not failing:
        out.insert(0, (None, "nothing failed"))
    for item in counted:
        if item.counts[RowOutcome.INCONCLUSIVE]:
            out.append((item.reader, f"{item.of(item.counts[RowOutcome.INCONCLUSIVE])} could not be judged"))
    return tuple(out)


def story_text(report: Report) -> str:
    return "; ".join(text for _, text in report.story)


def warnings_found(rows: Iterable[Row]) -> tuple[Warned, ...]:
    """The warnings of checks that passed (a store's label cap, a scrape's size limit: `StoreWarning`), each
    distinct text once with the targets it concerns: a fleet of 1,000 pods warned alike is one warning."""
    found: dict[tuple[str, str], list[str]] = {}
    for row in rows:
        for name, outcome, text in row.per_target():
            evidence = row.evidence.get(name) if len(row.targets) > 1 else row.evidence
            if outcome == RowOutcome.PASSED and text and isinstance(evidence, Mapping) and evidence.get("warning"):
                found.setdefault((row.check, text), []).append(name)
    return tuple(Warned(check, text, tuple(names)) for (check, text), names in found.items())


def _once(rows: Iterable[Row], outcome: RowOutcome) -> tuple[Once, ...]:
    """Each target's `outcome` (an observation problem, a documented limitation) once per reason, with the checks
    it explains (a cause is stated per target, not per check)."""
    found: dict[tuple[str, str], list[str]] = {}
    for row in rows:
        if row.outcome != outcome and not any(t.outcome == outcome for t in row.targets.values()):
            continue
        for name, its_outcome, reason in row.per_target():
            if its_outcome == outcome:
                found.setdefault((name, reason), []).append(row.check)
    return tuple(Once(name or "every target", reason, tuple(checks)) for (name, reason), checks in found.items())


def alike(found: Iterable[Once]) -> list[Alike]:
    """Entries of the same reason as one, naming every target it concerns."""
    out: dict[str, tuple[list[str], list[int]]] = {}
    for item in found:
        names, checks = out.setdefault(item.reason, ([], []))
        names.append(item.target)
        checks.append(len(item.checks))
    return [Alike(reason, tuple(names), tuple(checks)) for reason, (names, checks) in out.items()]


def checks_count(counts: Iterable[int]) -> str:
    """'3 checks', '3 checks each', '1-3 checks each'."""
    found = list(counts)
    low, high = min(found), max(found)
    each = " each" if len(found) > 1 else ""
    return f"{high} check{'s' * (high != 1)}{each}" if low == high else f"{low}-{high} checks each"


def by_target(rows: Iterable[Row]) -> dict[str, list[tuple[str, RowOutcome, str]]]:
    """Per target: (check, its outcome there, its reason there), in the rows' order."""
    found: dict[str, list[tuple[str, RowOutcome, str]]] = {}
    for row in rows:
        for name, outcome, reason in row.per_target():
            found.setdefault(name, []).append((row.check, outcome, reason))
    return found


def all_targets(rows: Iterable[Row], targets: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The observed targets, then any a row names that was not observed (a check of one target)."""
    found = list(rows)
    given = list(targets)
    known = {str(t["target"]) for t in given}
    dashboards = {r.target for r in found if reader_of(r) != Reader.TARGETS}
    extra = {name for r in found for name, _, _ in r.per_target()} - known - dashboards - {""}
    return given + [{"target": name, "architecture": "", "vllmVersion": None} for name in sorted(extra)]


# -- the upgrade forecast's section: one entry per consumer, from the evidence its check left --------------------


def upgrade_section(rows: Iterable[Row]) -> dict[str, Any] | None:
    """The upgrade section of the reports, from the evidence the upgrade checks left on their rows (rows travel
    from pytest-xdist workers as plain data); None when the run made no upgrade check."""
    found = [(row, row.evidence["upgrade"]) for row in rows if "upgrade" in row.evidence]
    if not found:
        return None
    fleet_versions: dict[str, set[str]] = {}
    consumers = []
    for row, forecast in found:
        for version, targets in (forecast.get("fleet") or {}).items():
            fleet_versions.setdefault(version, set()).update(targets)
        consumers.append({"kind": forecast["kind"], "dashboard": forecast["dashboard"], "title": forecast["title"],
                          "outcome": row.outcome.value, "reads": forecast["reads"], "dark": forecast["dark"],
                          "reason": row.reason})
    return {"to": found[0][1]["to"], "policy": upgrade.policy(),
            "fleet": {version: sorted(targets) for version, targets in sorted(fleet_versions.items())},
            "consumers": consumers}


def dark_state(gone: Mapping[str, Any]) -> str:
    """What becomes of a family at the version the fleet moves to, in a few words (upgrade.Fate's state)."""
    if gone["state"] == "not yet":
        return f"not there yet ({gone['emitted']})"
    if gone["state"] == "hidden":
        return f"hidden since {gone['hidden_from']}"
    return f"removed (hidden since {gone['hidden_from']})"


# -- the machine-readable conformance report (--vllm-report=report.json or .yaml) ------------------------------


def document(report: Report, rows: bool = True) -> dict[str, Any]:
    """The conformance report as plain data (report.schema.json); without `rows`, its `tests` are left for
    `write_data` to write one by one."""
    by_level: dict[str, Counter[str]] = {}
    for row in report.rows:
        by_level.setdefault(row.level.value, Counter())[row.outcome.value] += 1
    out = {
        "apiVersion": f"pytest-vllm-metrics/v{SCHEMA_VERSION}",
        "kind": "ConformanceReport",
        "suiteVersion": __version__,
        "date": report.started.isoformat(timespec="seconds"),
        "implementations": [dict(t) for t in report.implementations],
        "environment": dict(report.environment),
        "features": dict(report.features),
        "result": report.result.value,
        "resultRule": gate.RULE,
        "failOn": report.fail_on.value,
        "exitCode": report.exit_code,
        "couldNotObserve": [_once_json(item) for item in report.unobserved],
        "documentedLimitations": [_once_json(item) for item in report.documented],
        "counts": {outcome.value: n for outcome, n in report.counts.items()},
        "countsByLevel": {level: dict(counter) for level, counter in sorted(by_level.items())},
        "readers": [{"reader": item.reader.value, "title": item.info.title, "unit": item.info.unit,
                     "units": item.info.units, "total": item.total,
                     "counts": {b.value: n for b, n in item.counts.items()}} for item in report.readers],
        "warnings": [{"check": w.check, "text": w.text, "targets": list(w.targets)} for w in report.warnings],
        "tests": [row.as_json() for row in report.rows] if rows else _ROWS,
    }
    if report.upgrade is not None:
        out["upgrade"] = dict(report.upgrade)
    if report.shard is not None:
        out["shard"] = dict(report.shard)
    return out


def _once_json(item: Once) -> dict[str, Any]:
    return {"target": item.target, "reason": item.reason, "checks": list(item.checks)}


def write_data(path: Path, report: Report) -> None:
    """The conformance report as YAML (.yaml, .yml) or JSON."""
    if path.suffix in (".yaml", ".yml"):
        import yaml  # optional: YAML only when asked for

        write_text(path, yaml.safe_dump(document(report), sort_keys=False))
    else:
        write_text(path, _json_text(document(report, rows=False), report.rows))


# Where `tests` goes in a document written row by row.
_ROWS: list[Any] = []


def _json_text(doc: dict[str, Any], rows: Sequence[Row]) -> Iterator[str]:
    """The document as JSON with a two-space indent, its rows made plain data and written one at a time (a fleet's
    report holds every row's per-target results, too much to hold twice). What holds one entry per target is written
    one target per line: the `implementations`, and a row's `evidence` and `targets`. A fleet's report stays readable
    line by line, and the compact encoder writes those ~200,000 entries several times faster than the indenting
    one."""
    yield "{"
    for n, (key, value) in enumerate(doc.items()):
        yield f"{',' if n else ''}\n  {_key(key)}: "
        if value is _ROWS:
            for i, row in enumerate(rows):
                yield f"{',' if i else '['}\n    " + _row_text(row.as_json())
            yield "\n  ]" if rows else "[]"
        elif key in _LISTS_ONE_PER_LINE and isinstance(value, list) and value:
            yield "[\n    " + ",\n    ".join(map(_compact, value)) + "\n  ]"
        else:
            yield _indented(value, "\n  ")
    yield "\n}\n"


# The document's lists, and a row's maps, written one entry per line.
_LISTS_ONE_PER_LINE = ("implementations",)
_ONE_PER_LINE = ("evidence", "targets")


def _row_text(row: dict[str, Any]) -> str:
    parts = []
    for key, value in row.items():
        if key in _ONE_PER_LINE and isinstance(value, dict) and value:
            encode = _cell_encoder() if key == "targets" else _object_encoder()
            entries = ",\n        ".join(f"{_key(k)}: {encode(v)}" for k, v in value.items())
            parts.append(f"{_key(key)}: {{\n        {entries}\n      }}")
        else:
            parts.append(f"{_key(key)}: {_indented(value, chr(10) + '      ')}")
    return "{\n      " + ",\n      ".join(parts) + "\n    }" if parts else "{}"


# json.dumps of a string (a key: a target's name), by the C function json.dumps itself ends in for one.
_key: Callable[[str], str] = json.encoder.encode_basestring_ascii


def _c_encoder() -> Callable[[Any], str]:
    """json.dumps(value) for plain data, without its setup per call (it builds CPython's C encoder each time, and a
    fleet's report holds ~200,000 entries): the C encoder made once, with json.dumps' own settings. json.dumps itself
    where the interpreter has none."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return json.dumps
    try:
        encoder = make(None, None, json.encoder.encode_basestring_ascii, None, ": ", ", ", False, False, True)
    except TypeError:  # another interpreter, or another signature: the plain way
        return json.dumps
    return lambda value: "".join(encoder(value, 0))


_compact = _c_encoder()


def _cell_encoder() -> Callable[[dict[str, str]], str]:
    """JSON of a row's `targets` cells (outcome, reason and diagnosis: strings), each distinct one encoded once: a
    fleet's targets mostly say the same."""
    encoded: dict[tuple[str, ...], str] = {}

    def encode(cell: dict[str, str]) -> str:
        key = tuple(cell.values())
        text = encoded.get(key)
        if text is None:
            text = encoded[key] = _compact(cell)
        return text

    return encode


def _object_encoder() -> Callable[[Any], str]:
    """JSON of a row's `evidence` values, each object encoded once: the rows pytest-xdist's workers send hold one
    object for the values that are alike (Row.from_wire). By identity, for one row, while the row holds them."""
    encoded: dict[int, str] = {}

    def encode(value: Any) -> str:
        text = encoded.get(id(value))
        if text is None:
            text = encoded[id(value)] = _compact(value)
        return text

    return encode


def _indented(value: Any, newline: str) -> str:
    # JSON's strings hold no raw newline: every one in the text starts a line, to be indented one level more.
    return json.dumps(value, indent=2).replace("\n", newline)


def write_text(path: Path, text: str | Iterable[str]) -> None:
    """A report file, whole or not at all: written beside it, then renamed over it, so that whoever waits for it (the
    merge of a sharded run's reports) never reads half of it. `text` may come in parts."""
    part = path.with_name(f".{path.name}.part")
    with part.open("w", encoding="utf-8") as out:
        out.writelines([text] if isinstance(text, str) else text)
    os.replace(part, path)


def schema() -> dict[str, Any]:
    text = resources.files(__package__).joinpath("report.schema.json").read_text(encoding="utf-8")
    result: dict[str, Any] = json.loads(text)
    return result
