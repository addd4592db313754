"""`pytest-vllm-metrics merge -o OUT SHARD.json...`: the JSON reports of a sharded run (--vllm-shard=K/N, one per K)
made one report, as one run over the whole fleet would have written it, in the format of OUT's suffix.

Each check that every shard ran (a check of the servers, judged per target) is combined target by target as one
run combines its targets (evaluate.combine), in the fleet's order; a check only shard 0 ran (a reader of the whole
fleet) is kept as it is. The merged rows then make the same report model as a run's (report.build), rendered by the
same writers. Exit code: the merged report's (0 success or partial, 1 failure, 75 inconclusive); 2 when the files
given are not the shards of one run.

It needs neither pytest's run nor a network: the report layer only (about 0.2 s to load; nothing of Kubernetes,
HTTP or the simulator).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from . import report, report_html, report_markdown
from .evaluate import combine
from .outcome import Level, Outcome, Verdict
from .report import Report, Tally
from .rows import BUCKETS, Row, RowOutcome, TargetResult
from .settings import Settings

EXIT_BAD_INPUT = 2
SUFFIXES = {".json": "JSON", ".yaml": "YAML", ".yml": "YAML", ".md": "Markdown", ".markdown": "Markdown",
            ".html": "HTML", ".xml": "JUnit XML"}
_SHARD_FIX = "pass the JSON reports the runs with --vllm-shard=K/N wrote (--vllm-report=shard-K.json), one per K"


# The options that differ from shard to shard by design: which shard, and the file it writes.
_PER_SHARD = ("--vllm-shard", "--vllm-report")


class MergeError(Exception):
    """Files that are not the shards of one run: one paragraph, naming the file and the fix."""


@dataclass(frozen=True)
class ShardReport:
    path: Path
    document: Mapping[str, Any]
    rows: list[Row] = field(default_factory=list)  # its `tests`, read

    @property
    def shard(self) -> Mapping[str, Any]:
        section: Mapping[str, Any] = self.document["shard"]
        return section

    @property
    def index(self) -> int:
        return int(self.shard["index"])

    @property
    def count(self) -> int:
        return int(self.shard["count"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pytest-vllm-metrics", description="Tools of pytest-vllm-metrics.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    merge_cmd = commands.add_parser(
        "merge", help="merge the JSON reports of a sharded run (--vllm-shard=K/N) into one report",
        description="Merge the JSON reports of the shards of one run (--vllm-shard=K/N, every K from 0 to N-1 once) "
                    "into one report, as one run over the whole fleet would have written it. Exit code: 0 when the "
                    "merged result passes (success or partial), 1 on a failure at or above the shards' "
                    "--vllm-fail-on, 75 when inconclusive, 2 when the files are not the shards of one run.")
    merge_cmd.add_argument("-o", "--output", required=True, metavar="OUT",
                           help="the merged report: .json or .yaml (the conformance report), .md (Markdown "
                                "summary), .html (a self-contained page) or .xml (JUnit, one test case per check)")
    merge_cmd.add_argument("shards", nargs="+", metavar="SHARD.json", help="the shards' JSON reports")
    args = parser.parse_args(argv)
    try:
        out = output_path(args.output)
        shards = check_together([load(Path(name)) for name in args.shards])
        model = merged(shards, out)
        write(model, out)
    except MergeError as exc:
        print(f"pytest-vllm-metrics merge: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"pytest-vllm-metrics merge: {len(shards)} shards, {len(model.implementations)} targets, "
          f"{len(model.rows)} checks: {model.result.value.upper()} ({model.counts_text()}); wrote {out}")
    return model.exit_code


def output_path(raw: str) -> Path:
    path = Path(raw).expanduser()
    if path.suffix.lower() not in SUFFIXES:
        raise MergeError(f"-o {raw}: the suffix does not name a report format; end the file name in "
                         f"{', '.join(SUFFIXES)}.")
    if path.is_dir():
        raise MergeError(f"-o {raw} is a directory; name the merged report's file, e.g. {raw}/report.json.")
    return path


def load(path: Path) -> ShardReport:
    """One shard's JSON report, or a MergeError saying why it is not one."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise MergeError(f"{path} cannot be read ({reason}); check the path, and {_SHARD_FIX}.") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MergeError(f"{path} is not JSON ({exc.msg} at line {exc.lineno}): {_SHARD_FIX}; the YAML, Markdown and "
                         f"HTML reports cannot be merged.") from None
    if not isinstance(document, dict) or document.get("kind") != "ConformanceReport" or not isinstance(
            document.get("tests"), list):
        raise MergeError(f"{path} is not a conformance report of pytest-vllm-metrics (no kind: ConformanceReport "
                         f"with tests): {_SHARD_FIX}.")
    shard = document.get("shard")
    if not isinstance(shard, dict):
        raise MergeError(f"{path} is the report of a run without --vllm-shard, which checked its targets whole: there "
                         f"is nothing to merge it with. {_SHARD_FIX[0].upper()}{_SHARD_FIX[1:]}.")
    missing = [key for key in ("index", "count", "fleet", "checked", "pytestStatus", "testsFailed") if key not in shard]
    if missing:
        raise MergeError(f"{path}: its shard section lacks {', '.join(missing)}; it was not written by this version "
                         f"of pytest-vllm-metrics, or was edited: rerun that shard.")
    return ShardReport(path, document, [_row(path, n, data) for n, data in enumerate(document["tests"])])


def _row(path: Path, n: int, data: Any) -> Row:
    try:
        return Row.from_json(data)
    except (TypeError, ValueError, AttributeError) as exc:
        test = data.get("id") if isinstance(data, dict) else None
        raise MergeError(f"{path}: its test {n + 1}{f' ({test})' if isinstance(test, str) else ''} is not a row as "
                         f"this version of pytest-vllm-metrics writes them ({exc}); it was edited, or written by "
                         f"another version: rerun that shard.") from None


def check_together(shards: list[ShardReport]) -> list[ShardReport]:
    """The shards in order 0..N-1, or a MergeError when they are not the shards of one run."""
    first = shards[0]
    for other in shards[1:]:
        if other.count != first.count:
            raise MergeError(f"{other.path} is shard {other.index} of {other.count}, and {first.path} shard "
                             f"{first.index} of {first.count}: the reports come from runs split differently; merge "
                             f"the reports of one run, every shard of the same --vllm-shard=K/N split.")
    seen: dict[int, Path] = {}
    for item in shards:
        if item.index in seen:
            raise MergeError(f"{seen[item.index]} and {item.path} are both shard {item.index} of {item.count}: pass "
                             f"each shard's report once (a Job's retried pod overwrites its own file).")
        seen[item.index] = item.path
    absent = [str(k) for k in range(first.count) if k not in seen]
    if absent:
        raise MergeError(f"shard{'s' * (len(absent) > 1)} {', '.join(absent)} of {first.count} "
                         f"{'are' if len(absent) > 1 else 'is'} missing: a merged report must cover the whole fleet; "
                         f"pass every shard's report (0 to {first.count - 1}), rerunning the shards that wrote none.")
    ordered = sorted(shards, key=lambda item: item.index)
    base = ordered[0]
    for item in ordered[1:]:
        for what, key in (("pytest-vllm-metrics version", "suiteVersion"), ("report format", "apiVersion"),
                          ("--vllm-fail-on", "failOn"), ("required and exempt features", "features")):
            if item.document.get(key) != base.document.get(key):
                raise MergeError(f"{item.path} has {what} {json.dumps(item.document.get(key))} and {base.path} "
                                 f"{json.dumps(base.document.get(key))}: run every shard with the same image and "
                                 f"options, then merge.")
        mine, theirs = _settings(item), _settings(base)
        if mine != theirs:
            differ = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
            raise MergeError(f"{item.path} was run with other options than {base.path} ({', '.join(differ)}): the "
                             f"shards' checks are the same only with the same options; run every shard with the same "
                             f"ones (only --vllm-shard and --vllm-report differ), then merge.")
        if item.shard["fleet"] != base.shard["fleet"]:
            gained = sorted(set(item.shard["fleet"]) - set(base.shard["fleet"]))
            lost = sorted(set(base.shard["fleet"]) - set(item.shard["fleet"]))
            change = "; ".join(part for part in (f"it saw {_few(gained)} that {base.path} did not" if gained else "",
                                                  f"it did not see {_few(lost)}" if lost else "") if part)
            raise MergeError(f"{item.path} saw another fleet than {base.path} ({change or 'in another order'}): the "
                             f"fleet changed while the shards discovered it (a rollout, or an autoscaler), so a target "
                             f"may have been checked twice or never; rerun the shards once the fleet is steady.")
    checked = [name for item in ordered for name in item.shard["checked"]]
    if sorted(checked) != sorted(base.shard["fleet"]):
        twice = sorted(name for name, n in Counter(checked).items() if n > 1)
        never = sorted(set(base.shard["fleet"]) - set(checked))
        raise MergeError(f"the shards' targets do not add up to their fleet (checked twice: {_few(twice) or 'none'}; "
                         f"never: {_few(never) or 'none'}): the reports come from different runs; merge the shards "
                         f"of one run.")
    return ordered


def _settings(item: ShardReport) -> dict[str, str]:
    found = (item.document.get("environment") or {}).get("settings") or {}
    return {key: str(value) for key, value in found.items() if key not in _PER_SHARD}


def _few(names: Sequence[str], shown: int = 5) -> str:
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")


# -- the merged report model ----------------------------------------------------------------------------------


def merged(shards: list[ShardReport], out: Path | None = None) -> Report:
    """The report one run over the whole fleet would have made, from its shards' reports (in shard order)."""
    base = shards[0]
    fleet: list[str] = list(base.shard["fleet"])
    rows_by_id: dict[str, list[Row]] = {}
    for item in shards:
        for row in item.rows:
            rows_by_id.setdefault(row.id, []).append(row)
    marks = {test: Level(mark) for item in shards for test, mark in (item.shard.get("marks") or {}).items()}
    rows = [_merged_row(found, fleet, marks.get(test)) for test, found in rows_by_id.items()]
    position = {name: i for i, name in enumerate(fleet)}
    implementations = sorted((impl for item in shards for impl in item.document["implementations"]),
                             key=lambda impl: position.get(str(impl.get("target")), len(position)))
    status, failed = _status(shards, rows)
    doc = base.document
    features = doc.get("features") or {}
    settings = Settings(vllm_fail_on=str(doc.get("failOn", "MUST")).lower(),
                        vllm_require_feature=tuple(features.get("required") or ()),
                        vllm_exempt_feature=tuple(features.get("exempt") or ()),
                        vllm_exclusive=bool(base.shard.get("exclusive")))
    model = report.build(rows, settings, implementations=implementations, layout=base.shard.get("layout") or (),
                         started=min(datetime.fromisoformat(item.document["date"]) for item in shards),
                         pytest_status=status, tests_failed=failed, tally=_tally(shards, rows))
    environment = dict(doc.get("environment") or {})
    environment.pop("shard", None)
    environment["settings"] = _settings(base)
    environment["merged"] = {"shards": base.count, "files": [str(item.path) for item in shards],
                             "generated": [item.document.get("environment", {}).get("generated") for item in shards]}
    cluster_notes = tuple((environment.get("kubernetes") or {}).get("notes") or ())
    return replace(model, environment=environment, notes=cluster_notes + model.notes,
                   path=str(out) if out is not None else None)


def _merged_row(found: list[Row], fleet: list[str], mark: Level | None) -> Row:
    """One check's row from the shards' rows of it: each target's own verdict, combined as one run combines them."""
    if len(found) == 1:
        return found[0]  # a reader of the fleet (shard 0's only), or a check of one target
    errored = [row for row in found if row.outcome == RowOutcome.ERROR]
    if errored:
        return errored[0]  # the test broke: its traceback says why, there is no verdict to combine
    cells = [(name, row) for row in found for name in row.targets]
    if not cells:  # no target's verdict (a shard without targets skips): the worst of the shards' rows
        return min(found, key=lambda row: BUCKETS.index(row.outcome.bucket))
    position = {name: i for i, name in enumerate(fleet)}
    cells.sort(key=lambda cell: position.get(cell[0], len(position)))
    verdicts = {}
    for name, row in cells:
        cell = row.targets[name]
        evidence = row.evidence.get(name) if len(row.targets) > 1 else row.evidence
        verdicts[name] = Verdict(Outcome(cell.outcome.value), cell.reason, row.level,
                                 dict(evidence) if isinstance(evidence, Mapping) else {}, cell.diagnosis or None,
                                 target=name)
    # The check's level: its mark's (a shard's row of one target states its verdict's, which may be lower); a check
    # without a mark (a user's own), the strictest its rows state
    level = mark or min((row.level for row in found if row.targets), key=_LEVELS.index)
    verdict = combine(verdicts, level)
    outcome = RowOutcome.of(verdict.outcome)
    reason = (verdict.diagnosis or verdict.message) if outcome == RowOutcome.XFAILED else verdict.message
    template = next(row for row in found if row.targets)
    return replace(template, target="" if len(verdicts) > 1 else next(iter(verdicts)), level=verdict.level,
                   outcome=outcome, reason=reason, diagnosis=verdict.diagnosis or "",
                   evidence=json.loads(json.dumps(verdict.evidence, default=str)),
                   targets={name: TargetResult(RowOutcome.of(v.outcome), v.message, v.diagnosis or "")
                            for name, v in verdict.targets.items()})


def _status(shards: list[ShardReport], rows: list[Row]) -> tuple[int, int]:
    """pytest's status and count of failed tests of the whole run: a shard's own status that says more than its
    checks (interrupted, an internal error), else failed when any shard failed a test; the failed tests that are not
    checks add up over the shards, the checks count once."""
    statuses = [int(item.shard["pytestStatus"]) for item in shards]
    status = next((s for s in statuses if s not in (0, 1)), 1 if 1 in statuses else 0)
    others = sum(int(item.shard["testsFailed"]) - sum(1 for row in item.document["tests"]
                                                      if row["outcome"] in ("failed", "error")) for item in shards)
    return status, max(others, 0) + sum(1 for row in rows if row.outcome.fails)


def _tally(shards: list[ShardReport], rows: list[Row]) -> Tally | None:
    """What pytest would have counted: the merged checks, plus shard 0's tests that are not checks."""
    base = shards[0]
    tally = base.shard.get("tally")
    if not tally:
        return None
    own = Counter(str(row["outcome"]) for row in base.document["tests"])
    now = Counter(row.outcome.value for row in rows)
    outcomes = {name: max(int(n) - own.get(name, 0), 0) + now.get(name, 0) for name, n in tally["outcomes"].items()}
    return Tally(int(tally["collected"]) - len(base.document["tests"]) + len(rows), outcomes)


# -- the writers: the run's own, and a JUnit file ---------------------------------------------------------------


def write(model: Report, out: Path) -> None:
    suffix = out.suffix.lower()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if suffix in (".md", ".markdown"):
            report.write_text(out, report_markdown.summary(model))
        elif suffix == ".html":
            report.write_text(out, report_html.page(model))
        elif suffix == ".xml":
            report.write_text(out, junit(model))
        else:
            report.write_data(out, model)
    except OSError as exc:
        raise MergeError(f"cannot write {out} ({exc.strerror or exc}); check that its directory is writable.") from None


def junit(model: Report) -> str:
    """JUnit XML: one test case per check, with the properties the plugin's --junitxml gives it
    (rows.junit_properties); an inconclusive check is skipped, as pytest reports it."""
    cases = []
    counts = Counter[str]()
    for row in model.rows:
        path, _, name = row.id.partition("::")
        classname = ".".join(part for part in path.removesuffix(".py").split("/") if part not in ("", "..", "."))
        properties = "".join(f"<property name={quoteattr(key)} value={quoteattr(value)} />"
                             for key, value in row.junit_properties())
        why = row.why
        inner = ""
        if row.outcome == RowOutcome.FAILED:
            inner, counts["failures"] = f"<failure message={quoteattr(why.splitlines()[0] if why else '')}>" \
                                        f"{escape(why)}</failure>", counts["failures"] + 1
        elif row.outcome == RowOutcome.ERROR:
            inner, counts["errors"] = f"<error message={quoteattr('error')}>{escape(why)}</error>", counts["errors"] + 1
        elif row.outcome in (RowOutcome.SKIPPED, RowOutcome.INCONCLUSIVE, RowOutcome.XFAILED):
            kind = {RowOutcome.XFAILED: "pytest.xfail", RowOutcome.INCONCLUSIVE: "inconclusive"}.get(row.outcome,
                                                                                                    "pytest.skip")
            inner = f"<skipped type={quoteattr(kind)} message={quoteattr(why.splitlines()[0] if why else '')} />"
            counts["skipped"] += 1
        cases.append(f"<testcase classname={quoteattr(classname)} name={quoteattr(name or path)}>"
                     f"<properties>{properties}</properties>{inner}</testcase>")
    suite = (f'<testsuite name="vllm-metrics" errors="{counts["errors"]}" failures="{counts["failures"]}" '
             f'skipped="{counts["skipped"]}" tests="{len(model.rows)}" '
             f'timestamp={quoteattr(model.started.isoformat(timespec="seconds"))}>')
    return ('<?xml version="1.0" encoding="utf-8"?>\n<testsuites name="pytest tests">' + suite + "".join(cases)
            + "</testsuite></testsuites>\n")


_LEVELS = tuple(Level)  # strictest first


if __name__ == "__main__":  # python -m pytest_vllm_metrics.merge
    sys.exit(main())
