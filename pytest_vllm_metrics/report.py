"""Report: one row per check (target, check, level, outcome, reason, evidence), rendered three ways:
the machine-readable conformance report (--vllm-report: JSON, YAML, or a Markdown summary for CI), the terminal
summary and the pytest-html report (its pictures are drawn by _html.py).

Overall result, in the spirit of the Gateway API ConformanceReport (and Sonobuoy's failed/unknown split):
  failure       a MUST check failed (or a test errored): the deployment breaks the contract;
  inconclusive  no MUST failure, but some check could not observe what it needs (unreachable, auth refused,
                unknown model, overloaded, restarted between the scrapes, a cap reached): rerun or fix the setup;
  partial       neither, but a SHOULD or MAY check failed, or a check XFAILed on a documented limitation;
  success       everything that ran passed (skips for features a server does not have are fine).
"""

from __future__ import annotations

import json
import platform
import textwrap
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from . import _html, _markdown
from .outcome import Outcome, Verdict
from .versions import __version__

ROWS_KEY = pytest.StashKey[list["Row"]]()
SCHEMA_VERSION = "1"


@dataclass
class Row:
    id: str
    target: str  # "" for a check of several targets: see `targets`
    check: str
    level: str
    outcome: str  # passed | failed | skipped | xfailed | xpassed | error | inconclusive
    reason: str = ""
    diagnosis: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)
    # A check across targets (a catalog family): each target's outcome, reason and diagnosis, by name.
    targets: dict[str, dict[str, str]] = field(default_factory=dict)

    def per_target(self) -> list[tuple[str, str, str]]:
        """(target, outcome, the reason a reader needs first) for each target this row judged."""
        if not self.targets:
            return [(self.target, self.outcome, _without_target(self.diagnosis or self.reason, self.target))]
        return [(name, t["outcome"], _without_target(t["diagnosis"] or t["reason"], name))
                for name, t in self.targets.items()]

    def shown_target(self) -> str:
        """The target column: the target, or for a check of several, the ones that did not pass."""
        if self.target or not self.targets:
            return self.target
        names = [name for name, t in self.targets.items() if t["outcome"] != "passed"]
        if not names or self.outcome == "passed":
            return f"all {len(self.targets)} targets"
        joined = ", ".join(names)
        return joined if len(joined) <= 32 else f"{len(names)} of {len(self.targets)} targets"


def row_for(item: pytest.Item, report: pytest.TestReport, verdict: Verdict | None) -> Row | None:
    """The row of a finished test, from the report of its deciding phase; None for other phases."""
    if report.when == "call" or (report.when == "setup" and not report.passed):
        outcome = _outcome(report)
    elif report.when == "teardown" and report.failed:
        outcome = "error"
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
        outcome, reason = str(Outcome.INCONCLUSIVE), verdict.message
    elif verdict is not None and outcome == "passed" and verdict.message:
        reason = verdict.message  # what a pass still says: the pods an aggregate does not see, what was not exercised
    targets = {name: {"outcome": str(v.outcome), "reason": v.message, "diagnosis": v.diagnosis or ""}
               for name, v in verdict.targets.items()} if verdict else {}
    if verdict is not None and verdict.target and not targets:
        target = verdict.target
    if len(targets) == 1:
        target = next(iter(targets))
    return Row(
        id=item.nodeid, target=str(target), check=str(check),
        level=str(verdict.level) if verdict else "MUST", outcome=outcome, reason=reason,
        diagnosis=(verdict.diagnosis or "") if verdict else "", evidence=_jsonable(verdict.evidence) if verdict else {},
        targets=targets,
    )


def _outcome(report: pytest.TestReport) -> str:
    if hasattr(report, "wasxfail"):
        return "xpassed" if report.passed else "xfailed"
    if report.when != "call" and report.failed:
        return "error"
    return str(report.outcome)


def _reason(report: pytest.TestReport) -> str:
    if hasattr(report, "wasxfail"):
        return str(report.wasxfail)
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    if report.failed:
        crash = getattr(report.longrepr, "reprcrash", None)
        text = crash.message if crash is not None else str(report.longrepr)
        return text.removeprefix("Failed: ")
    return ""


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


# -- the machine-readable conformance report -------------------------------------------------------------


def overall(rows: list[Row]) -> str:
    if any(r.outcome == "error" or (r.outcome == "failed" and r.level == "MUST") for r in rows):
        return "failure"
    if any(r.outcome == Outcome.INCONCLUSIVE for r in rows):
        return "inconclusive"
    if any(r.outcome in ("failed", "xfailed") for r in rows):
        return "partial"
    return "success"


def unobserved(rows: list[Row]) -> list[dict[str, Any]]:
    """Each target's observation problem once, with how many checks it left undecided: the "could not observe"
    section (a cause is stated per target, not per check)."""
    return _once(rows, Outcome.INCONCLUSIVE)


def documented(rows: list[Row]) -> list[dict[str, Any]]:
    """Each documented limitation once per target, in full: the reason vLLM gives, with its fix."""
    return _once(rows, Outcome.XFAILED)


def _once(rows: list[Row], outcome: str) -> list[dict[str, Any]]:
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        if row.outcome != outcome and not any(t["outcome"] == outcome for t in row.targets.values()):
            continue
        for name, its_outcome, reason in row.per_target():
            if its_outcome == outcome:
                entry = found.setdefault((name, reason), {"target": name or "every target", "reason": reason,
                                                          "checks": []})
                entry["checks"].append(row.check)
    return list(found.values())


def conformance_report(rows: list[Row], environment: dict[str, Any], implementations: list[dict[str, Any]],
                       features: dict[str, Any], started: datetime) -> dict[str, Any]:
    by_level: dict[str, Counter[str]] = {}
    for row in rows:
        by_level.setdefault(row.level, Counter())[row.outcome] += 1
    return {
        "apiVersion": f"pytest-vllm-metrics/v{SCHEMA_VERSION}",
        "kind": "ConformanceReport",
        "suiteVersion": __version__,
        "date": started.isoformat(timespec="seconds"),
        "implementations": implementations,
        "environment": environment,
        "features": features,
        "result": overall(rows),
        "resultRule": "failure: a MUST check failed or a test errored; inconclusive: otherwise, a check could not "
                      "observe what it needs (see couldNotObserve); partial: otherwise, a SHOULD/MAY check failed or "
                      "a check xfailed on a documented limitation; success: none of these",
        "couldNotObserve": unobserved(rows),
        "documentedLimitations": documented(rows),
        "counts": dict(Counter(r.outcome for r in rows)),
        "countsByLevel": {level: dict(counter) for level, counter in sorted(by_level.items())},
        "readers": readers(rows),
        "warnings": warnings_found(rows),
        "tests": [asdict(row) for row in rows],
    }


def schema() -> dict[str, Any]:
    text = resources.files(__package__).joinpath("report.schema.json").read_text(encoding="utf-8")
    result: dict[str, Any] = json.loads(text)
    return result


def python_environment() -> dict[str, str]:
    return {"python": platform.python_version(), "pytest": pytest.__version__,
            "generated": datetime.now(UTC).isoformat(timespec="seconds")}


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
# The outcomes as the reports count them, worst first: an error is a failure, an unexpected pass a pass.
BUCKETS = ("failed", "inconclusive", "xfailed", "passed", "skipped")
_BUCKET_OF = {"error": "failed", "xpassed": "passed"}
_BROKEN = ("failed", "error", "xpassed")  # what "Not working, and why" lists with its reason


def bucket(outcome: str) -> str:
    return _BUCKET_OF.get(outcome, outcome)


def consumer_kind(row: Row) -> str | None:
    kind = row.check.split(": ", 1)[0]
    return kind if ": " in row.check and kind in CONSUMER_KINDS else None


def _module(row: Row) -> str:
    return row.id.split("::", 1)[0].rsplit("/", 1)[-1].removesuffix(".py").removeprefix("test_")


def reader_of(row: Row) -> Reader:
    kind = consumer_kind(row)
    if kind is not None:
        return _CONSUMER_READERS[kind]
    if row.check.startswith("panel: "):
        return Reader.DASHBOARDS
    module = _module(row)
    if module in ("upgrade", "epp"):  # the bundled suite's upgrade forecast and its endpoint-picker checks
        return Reader(module)
    if row.target or row.targets:  # judges one target, or each of several (every row per_target() names)
        return Reader.TARGETS
    return Reader.OTHER


def readers(rows: list[Row]) -> list[dict[str, Any]]:
    """Per kind of reader that the run checked: how many, and how they came out. A target counts once, by the
    worst of its checks (the rows of the targets table add up to it); every other reader once per check (a
    panel, a rule)."""
    found: dict[Reader, dict[str | int, str]] = {}
    for index, row in enumerate(rows):
        reader = reader_of(row)
        units = found.setdefault(reader, {})
        if reader == Reader.TARGETS:
            for name, outcome, _ in row.per_target():
                if name:
                    units[name] = _worse(units.get(name), bucket(outcome))
        else:
            units[index] = bucket(row.outcome)
    out = []
    for reader in Reader:
        if found.get(reader):
            counts = Counter(found[reader].values())
            info = READERS[reader]
            out.append({"reader": str(reader), "title": info.title, "unit": info.unit, "units": info.units,
                        "total": len(found[reader]), "counts": {b: counts.get(b, 0) for b in BUCKETS}})
    return out


def _worse(one: str | None, other: str) -> str:
    return other if one is None or BUCKETS.index(other) < BUCKETS.index(one) else one


def _of(n: int, item: dict[str, Any]) -> str:
    return f"{n} of {item['total']} {item['units'] if item['total'] != 1 else item['unit']}"


def story(found: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """What failed, by reader, as short sentences: (reader, text). The first words a reader of any report sees
    after the result, so that a FAILURE names where it is (five panels, not the servers)."""
    failing = [item for item in found if item["counts"]["failed"]]
    out = [(item["reader"], f"{_of(item['counts']['failed'], item)} {READERS[Reader(item['reader'])].failed}")
           for item in failing]
    targets = next((item for item in found if item["reader"] == Reader.TARGETS), None)
    if failing and targets is not None and not targets["counts"]["failed"]:
        total = targets["total"]
        out.append((str(Reader.TARGETS), f"none of the {total} targets failed a check" if total > 1
                    else "the target failed no check"))
    if not failing:
        out.insert(0, ("", "nothing failed"))
    for item in found:
        if item["counts"]["inconclusive"]:
            out.append((item["reader"], f"{_of(item['counts']['inconclusive'], item)} could not be judged"))
    return out


def warnings_found(rows: list[Row]) -> list[dict[str, Any]]:
    """The warnings of checks that passed (a store's label cap, a scrape's size limit: `StoreWarning`), each
    distinct text once with the targets it concerns: a fleet of 1,000 pods warned alike is one warning."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        for name, outcome, text in row.per_target():
            evidence = row.evidence.get(name) if len(row.targets) > 1 else row.evidence
            if outcome == "passed" and text and isinstance(evidence, dict) and evidence.get("warning"):
                entry = found.setdefault((row.check, text), {"check": row.check, "text": text, "targets": []})
                entry["targets"].append(name)
    return list(found.values())


def alike(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Entries of unobserved() or documented() with the same reason as one, naming every target it concerns."""
    out: dict[str, dict[str, Any]] = {}
    for item in found:
        entry = out.setdefault(item["reason"], {"reason": item["reason"], "targets": [], "checks": []})
        entry["targets"].append(item["target"])
        entry["checks"].append(len(item["checks"]))
    return list(out.values())


def named(names: list[str], shown: int = 3) -> str:
    """The first names, and how many more: a fleet's 1,000 pods alike make one line."""
    if len(names) <= shown:
        return ", ".join(names)
    return f"{', '.join(names[:shown])} and {len(names) - shown} more ({len(names)} targets)"


def _checks_count(counts: list[int]) -> str:
    low, high = min(counts), max(counts)
    each = " each" if len(counts) > 1 else ""
    return f"{high} check{'s' * (high != 1)}{each}" if low == high else f"{low}-{high} checks each"


# -- terminal --------------------------------------------------------------------------------------------


_TERMINAL_TARGETS = 3  # targets quoted per check in a CI log


def panel_verdict(row: Row) -> str:
    return str(row.evidence.get("panel_verdict") or ("ok" if row.outcome == "passed" else row.outcome))


def terminal_lines(rows: list[Row], width: int = 120) -> list[str]:
    """What failed by reader, then a compact table of what did not pass, every panel's and consumer's verdict,
    what could not be observed and the documented limitations (each reason once, naming its targets), all in
    full: wrapped, never cut (a fix at the end of a reason is what the reader needs)."""
    width = max(width, 60)
    notable = [r for r in rows if r.outcome in ("failed", "error", "xfailed", "xpassed")]
    found = readers(rows)
    lines = [f"result: {overall(rows).upper()}  ({_counts(rows)})"]
    lines.extend(_wrap("; ".join(text for _, text in story(found)), width, "  ", "    "))
    title_w = max((len(READERS[Reader(item["reader"])].title) for item in found), default=0)
    for item in found:
        counts = ", ".join(f"{n} {b}" for b, n in item["counts"].items() if n)
        lines.append(f"  {READERS[Reader(item['reader'])].title:{title_w}}  {item['total']:>5} "
                     f"{item['units'] if item['total'] != 1 else item['unit']}: {counts}")
    warned = warnings_found(rows)
    if warned:
        concerned = len({name for w in warned for name in w["targets"]})
        lines.extend(_wrap(f"warnings: {len(warned)} (checks that passed, but a common store or scraper drops or "
                           f"splits part of the page) on {concerned} target{'s' * (concerned != 1)}; each once in "
                           f"the warnings summary", width, "", "  "))
    panels = [r for r in rows if r.check.startswith("panel: ")]
    if panels:
        lines.append("panels (will it show data?):")
        for row in panels:
            lines.append(f"  {panel_verdict(row).upper():20} {row.target} :: {row.check.removeprefix('panel: ')}")
            lines.extend(_passed_note(row, width))
    consumers = [r for r in rows if consumer_kind(r)]
    if consumers:
        lines.append("other consumers of the metrics (will they get data?):")
        for row in consumers:
            kind, _, title = row.check.partition(": ")
            lines.append(f"  {panel_verdict(row).upper():20} {kind:7} {row.target} :: {title}")
            lines.extend(_passed_note(row, width))
    if notable:
        target_w = min(max(len(r.shown_target()) for r in notable), 32)
        lines.append(f"{'OUTCOME':8} {'LEVEL':6} {'TARGET':{target_w}} CHECK")
    for row in notable:
        lines.append(f"{row.outcome.upper():8} {row.level:6} {row.shown_target():{target_w}} {row.check}")
        if row.outcome == Outcome.XFAILED:
            continue  # its documented reason is printed once per target, below
        # the diagnosis is what a reader of a CI log needs first; targets that gave the same one share it
        judged: dict[tuple[str, str], list[str]] = {}
        for name, outcome, reason in row.per_target():
            if outcome in _BROKEN:
                judged.setdefault((outcome, reason), []).append(name)
        for (outcome, reason), names in list(judged.items())[:_TERMINAL_TARGETS]:
            text = " ".join(_without_lead(reason, row).split())
            if row.targets:  # name the targets, and their outcome where it differs from the check's
                text = f"{named(names)}{'' if outcome == row.outcome else f' ({outcome})'}: {text}"
            lines.extend(_wrap(text, width, "    ", "      "))
        if len(judged) > _TERMINAL_TARGETS:
            rest = sum(len(names) for names in list(judged.values())[_TERMINAL_TARGETS:])
            lines.append(f"    ... and {rest} more target{'s' * (rest != 1)} with other reasons (see the report)")
    for title, once in (("could not observe (neither passed nor failed; rerun or fix the setup):", unobserved(rows)),
                        ("documented limitations (XFAIL), as vLLM states them:", documented(rows))):
        if once:
            lines.append(title)
        for item in alike(once):
            reason = " ".join(item["reason"].split())
            if len(item["targets"]) > _TERMINAL_TARGETS:  # a fleet's alike targets: one paragraph naming them
                text = f"{named(item['targets'])}: {reason} [{_checks_count(item['checks'])}]"
                lines.extend(_wrap(text, width, "  ", "    "))
                continue
            for name, checks in zip(item["targets"], item["checks"], strict=True):
                lines.extend(_wrap(f"{name}: {reason} [{_checks_count([checks])}]", width, "  ", "    "))
    return lines


def _passed_note(row: Row, width: int) -> list[str]:
    """What a reader that works still says (the pods its aggregate does not see and why), under its line; the
    reasons of the others are in the table below."""
    return _wrap(row.reason, width, " " * 4, " " * 6) if row.outcome == "passed" and row.reason else []


def _wrap(text: str, width: int, first: str, rest: str) -> list[str]:
    # never at a hyphen: option names (--vllm-model) must stay whole to be copied or searched
    return textwrap.wrap(text, width=width, initial_indent=first, subsequent_indent=rest, break_on_hyphens=False)


def _without_lead(reason: str, row: Row) -> str:
    """A panel's reason without its opening 'panel "T" (dashboard) ', which the line above already shows."""
    if row.check.startswith("panel: "):
        title = row.check.removeprefix("panel: ")
        lead = f'panel "{title}" '
        if reason.startswith(lead):
            rest = reason.removeprefix(lead)
            if rest.startswith("(") and ") " in rest:  # the dashboard's title, which may hold parentheses
                depth = 0
                for i, char in enumerate(rest):
                    depth += {"(": 1, ")": -1}.get(char, 0)
                    if depth == 0:
                        return rest[i + 1:].lstrip()
            return rest
    return reason


def _without_target(reason: str, target: str) -> str:
    """Messages start with the target's name; where the row already shows it, drop it."""
    if target and reason.startswith(target) and ": " in reason:
        return reason.split(": ", 1)[1]
    return reason


def _counts(rows: list[Row]) -> str:
    counts = Counter(r.outcome for r in rows)
    return ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items())) or "no checks"


# -- pytest-html -----------------------------------------------------------------------------------------


def check_group(row: Row) -> tuple[str, str]:
    """(group, short name) of a check, for the columns of the pods x checks grid: catalog checks by kind
    ("present", "moves"), the others by their test module ("prefix cache", "server", your own)."""
    if ": " in row.check:
        group, rest = row.check.split(": ", 1)
        return group, rest.removeprefix("vllm:")
    return _module(row).replace("_", " "), row.check


def tally_text(rows: list[Row], tally: dict[str, Any] | None) -> str:
    """How many tests ran and how they ended, by pytest's own count (the terminal's), skipped and inconclusive
    included: pytest-html's "N tests took" counts passed, failed, xfailed and xpassed only."""
    if not tally:
        return f"{len(rows)} checks: {_counts(rows)}"
    outcomes = {k: v for k, v in tally.get("outcomes", {}).items() if v}
    ran = sum(outcomes.values())
    collected = int(tally.get("collected") or 0)
    text = f"{ran} test{'s' * (ran != 1)}"
    if collected and collected != ran:
        text += f" of {collected} collected"
    elif collected:
        text += " (all collected)"
    shown = ", ".join(f"{n} {name}" for name, n in outcomes.items())
    return f"{text}: {shown}" if shown else text


@dataclass
class PodClass:
    """Targets with the same results (architecture, vLLM version and each check's outcome): one row of the
    targets table and of the pods x checks grid, however many pods it stands for."""

    members: list[dict[str, Any]]
    # per check, in the suite's order: (check, outcome, each reason given -> the members that gave it)
    checks: list[tuple[str, str, dict[str, list[str]]]]

    @property
    def names(self) -> list[str]:
        return [str(m["target"]) for m in self.members]

    @property
    def worst(self) -> str:
        return next((b for b in BUCKETS if any(bucket(o) == b for _, o, _ in self.checks)), "skipped")


def pod_classes(rows: list[Row], targets: list[dict[str, Any]]) -> list[PodClass]:
    """The judged targets folded by identical results, the classes that did not pass first (then in the order
    the targets came)."""
    judged = [r for r in rows if reader_of(r) == Reader.TARGETS]
    by_target = _by_target(judged)
    found: dict[tuple[Any, ...], PodClass] = {}
    for target in _all_targets(judged, targets):
        name = str(target["target"])
        mine = by_target.get(name)
        if not mine:
            continue
        key = (target.get("architecture") or "", target.get("vllmVersion") or "",
               tuple((check, outcome) for check, outcome, _ in mine))
        pods = found.get(key)
        if pods is None:
            pods = found[key] = PodClass([], [(check, outcome, {}) for check, outcome, _ in mine])
        pods.members.append(target)
        for (_, _, reasons), (_, _, reason) in zip(pods.checks, mine, strict=True):
            reasons.setdefault(reason, []).append(name)
    return sorted(found.values(), key=lambda pods: BUCKETS.index(pods.worst))


_CHARTED = 24  # pods charted one by one; a fleet's numbers are all in the JSON report


def summary_html(rows: list[Row], targets: list[dict[str, Any]], panels: list[dict[str, Any]] | None = None,
                 tally: dict[str, Any] | None = None, upgrade: dict[str, Any] | None = None,
                 upgrade_html: str = "") -> str:
    """The top of the HTML report: the result and what failed by reader (linked to each reader's section), then
    the targets (folded: pods with identical results are one row), their warnings, the pods x checks grid, the
    workload's numbers, each dashboard drawn with its panels' verdicts, the rules, autoscalers and endpoint
    picker, then what could not be observed and the documented limitations (each reason once).

    `panels`: the dashboards' panels in their order with their place (dashboard, title, dashboardTitle, row,
    grid); `tally`: pytest's own counts (collected, outcomes); `upgrade`: the forecast of --vllm-upgrade-to and
    `upgrade_html` its section (the run then only scrapes)."""
    esc = _html.esc
    result = overall(rows)
    found = readers(rows)
    parts = [_html.style(), '<div id="vllm-summary"><h2>vLLM metrics conformance</h2>',
             f"<p>Result: {_html.result_badge(result)} <span class='vllm-tally'>{esc(tally_text(rows, tally))}"
             f"</span></p>", _overview(found)]
    parts.append(_html.legend('<span>(pytest-html\'s "Skipped" filter below includes the inconclusive tests)</span>'))
    classes = pod_classes(rows, targets)
    if upgrade is not None:
        parts.append(upgrade_html)
        parts.append(_scraped_table(targets, str(upgrade.get("to") or "")))
    else:
        parts.append(_targets_table(classes))
    parts.append(_warnings_html(warnings_found(rows)))
    parts.append(_pods_by_checks(rows, classes))
    charted = [] if upgrade is not None else _charted(classes, targets)
    charts = _html.charts(charted)
    if charts:
        shown = len([t for t in targets if isinstance(t.get("measured"), dict)])
        note = (f"<p>{len(charted)} of {shown} targets: one of each row of the targets table first; every "
                f"target's numbers are in the JSON report (<code>implementations[].measured</code>).</p>"
                if len(charted) < shown else "")
        parts.append(f"<h3 id='vllm-workload'>The workload, per pod</h3>{note}{charts}")
    boxes = _panel_boxes(rows, panels or [])
    if boxes:
        parts.append(f"<h3 id='{READERS[Reader.DASHBOARDS].anchor}'>Grafana panels: will they show data?</h3>"
                     "<p>Each dashboard as Grafana lays it out; hover a panel for its full reason.</p>")
        parts.append(_html.dashboards(boxes))
    consumers = [_consumers_table(rows, reader) for reader in (Reader.RULES, Reader.SCALERS, Reader.EPP)]
    if any(consumers):
        parts.append("<h3 id='vllm-consumers'>Other consumers of the metrics: will they get data?</h3>")
        parts.extend(consumers)
    for title, anchor, once in (
            ("Could not observe (neither passed nor failed)", "vllm-unobserved", unobserved(rows)),
            ("Documented limitations (XFAIL)", "vllm-limitations", documented(rows))):
        if once:
            outcome = Outcome.INCONCLUSIVE if anchor == "vllm-unobserved" else Outcome.XFAILED
            parts.append(f"<h3 id='{anchor}'>{_html.symbol(outcome)} {esc(title)}</h3><ul class='vllm-once'>")
            parts.extend(f"<li data-count='{len(item['targets'])}'>{_html.names(item['targets'])}: "
                         f"<span class='vllm-reason'>{esc(item['reason'])}</span> "
                         f"({esc(_checks_count(item['checks']))})</li>" for item in alike(once))
            parts.append("</ul>")
    parts.append("</div><!-- /vllm-summary -->")
    return "".join(parts)


def _overview(found: list[dict[str, Any]]) -> str:
    """What failed, by reader: a sentence, then a row per reader linked to its section, with its counts."""
    esc = _html.esc
    if not found:
        return ""
    sentence = []
    for reader, text in story(found):
        anchor = READERS[Reader(reader)].anchor if reader else ""
        sentence.append(f"<a href='#{anchor}'>{esc(text)}</a>" if anchor else esc(text))
    parts = [f"<p class='vllm-story'><b>What failed:</b> {'; '.join(sentence)}.</p>",
             "<table class='vllm-summary vllm-readers'><tr><th>Reader</th><th>Checked</th>"]
    parts += [f"<th>{_html.symbol(b)} {esc(b)}</th>" for b in BUCKETS]
    parts.append("</tr>")
    for item in found:
        info = READERS[Reader(item["reader"])]
        counts = item["counts"]
        cells = "".join(f"<td class='num{' vllm-bad' if b == 'failed' and counts[b] else ''}' data-bucket='{b}'>"
                        f"{counts[b] or ''}</td>" for b in BUCKETS)
        parts.append(f"<tr data-overview='{esc(item['reader'])}' data-total='{item['total']}' "
                     + " ".join(f"data-{b}='{counts[b]}'" for b in BUCKETS)
                     + f"><td><a href='#{info.anchor}'>{esc(info.title)}</a></td>"
                       f"<td class='num'>{item['total']} {esc(item['units'] if item['total'] != 1 else item['unit'])}"
                       f"</td>{cells}</tr>")
    parts.append("</table>")
    return "".join(parts)


def _consumers_table(rows: list[Row], reader: Reader) -> str:
    """One reader's checks (rules, autoscalers, the endpoint picker): a table, not a dashboard picture."""
    esc = _html.esc
    mine = [r for r in rows if reader_of(r) == reader]
    if not mine:
        return ""
    parts = [f"<h4 id='{READERS[reader].anchor}'>{esc(READERS[reader].title)}</h4>",
             "<table class='vllm-summary vllm-consumers'><tr><th>Kind</th><th>Source</th><th>Name</th>"
             "<th>Verdict</th><th>Why</th></tr>"]
    for row in mine:
        kind, _, name = row.check.partition(": ") if consumer_kind(row) else ("check", "", row.check)
        reason = "" if row.outcome == "passed" and not row.reason else (row.diagnosis or row.reason)
        parts.append(f"<tr class='o-{esc(row.outcome)}' data-reader='{reader}' data-consumer='{esc(row.check)}' "
                     f"data-verdict='{esc(panel_verdict(row))}' data-outcome='{esc(row.outcome)}'>"
                     f"<td>{esc(kind)}</td><td>{esc(row.target)}</td><td>{esc(name)}</td>"
                     f"<td>{_html.symbol(row.outcome)} {esc(panel_verdict(row))}</td>"
                     f"<td class='vllm-reason'>{esc(reason)}</td></tr>")
    parts.append("</table>")
    return "".join(parts)


def _by_target(rows: list[Row]) -> dict[str, list[tuple[str, str, str]]]:
    found: dict[str, list[tuple[str, str, str]]] = {}
    for row in rows:
        for name, outcome, reason in row.per_target():
            found.setdefault(name, []).append((row.check, outcome, reason))
    return found


def _all_targets(rows: list[Row], targets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The observed targets, then any a row names that was not observed (a check of one target)."""
    known = {str(t["target"]) for t in targets}
    dashboards = {r.target for r in rows if reader_of(r) != Reader.TARGETS}
    extra = {name for r in rows for name, _, _ in r.per_target()} - known - dashboards - {""}
    return list(targets) + [{"target": name, "architecture": "", "vllmVersion": None} for name in sorted(extra)]


def _targets_table(classes: list[PodClass]) -> str:
    esc = _html.esc
    if not classes:
        return ""
    parts = [f"<h3 id='{READERS[Reader.TARGETS].anchor}'>vLLM servers</h3>",
             "<table class='vllm-summary vllm-targets'><tr><th>Target</th><th>Architecture</th><th>vLLM</th>"
             "<th>Passed</th><th>Checks</th><th>Not working, and why</th></tr>"]
    for pods in classes:
        first = pods.members[0]
        counts = Counter(outcome for _, outcome, _ in pods.checks)
        # the same reason for several checks is stated once, in full, with the checks it explains; a reason only
        # some of the row's targets gave names them
        broken: dict[tuple[str, str, tuple[str, ...]], list[str]] = {}
        for check, outcome, reasons in pods.checks:
            if outcome in _BROKEN:
                for reason, names in reasons.items():
                    broken.setdefault((outcome, reason, tuple(names) if len(reasons) > 1 else ()), []).append(check)
        items = "".join(f"<li class='o-{esc(outcome)}'>{_html.symbol(outcome)} <b>{esc(', '.join(checks))}</b>: "
                        f"<span class='vllm-reason'>{esc(reason)}</span>"
                        + (f" (on {_html.names(list(whose))})" if whose else "") + "</li>"
                        for (outcome, reason, whose), checks in broken.items())
        # documented limitations and observation problems: stated once per reason, in full, below the grids
        for outcome, where, anchor in ((Outcome.XFAILED, "documented limitation", "vllm-limitations"),
                                       (Outcome.INCONCLUSIVE, "could not observe", "vllm-unobserved")):
            count = counts.get(outcome, 0)
            if count:
                items += (f"<li class='o-{outcome}'>{_html.symbol(outcome)} {count} check{'s' * (count != 1)}: "
                          f"<a href='#{anchor}'>{where} (below)</a></li>")
        items = items or "<li>everything checked works</li>"
        parts.append(f"<tr data-target='{esc(first['target'])}' data-targets='{esc(json.dumps(pods.names))}' "
                     f"data-count='{len(pods.members)}' data-worst='{pods.worst}'>"
                     f"<td>{_html.names(pods.names, like=True)}</td>"
                     f"<td>{esc(first.get('architecture') or '')}</td><td>{esc(first.get('vllmVersion') or '?')}</td>"
                     f"<td class='num'>{_html.symbol('passed')} {counts.get('passed', 0)} of {len(pods.checks)}</td>"
                     f"<td>{_html.outcome_bar(dict(counts))}</td><td><ul>{items}</ul></td></tr>")
    parts.append("</table>")
    return "".join(parts)


def _scraped_table(targets: list[dict[str, Any]], to: str) -> str:
    """With --vllm-upgrade-to no target is judged: what the run did with each (one scrape and its version)."""
    esc = _html.esc
    if not targets:
        return ""
    folded: dict[tuple[str, str, bool], list[str]] = {}
    for target in targets:
        key = (str(target.get("architecture") or ""), str(target.get("vllmVersion") or "unknown"),
               target.get("exposition") is not None)
        folded.setdefault(key, []).append(str(target["target"]))
    parts = [f"<h3 id='{READERS[Reader.TARGETS].anchor}'>vLLM servers: scraped for the forecast</h3>",
             f"<p>With <code>--vllm-upgrade-to={esc(to)}</code> the run scrapes each target's /metrics once and reads "
             f"its /version: it sends no workload and judges no target. What it judges is each consumer of the "
             f"metrics, against what vLLM {esc(to)} emits (above).</p>",
             "<table class='vllm-summary vllm-targets'><tr><th>Target</th><th>Architecture</th>"
             "<th>vLLM (as the target reports it)</th><th>/metrics</th></tr>"]
    for (arch, version, scraped), names in folded.items():
        parts.append(f"<tr data-target='{esc(names[0])}' data-targets='{esc(json.dumps(names))}' "
                     f"data-count='{len(names)}'><td>{_html.names(names, like=True)}</td><td>{esc(arch)}</td>"
                     f"<td>{esc(version)}</td><td>{'scraped once' if scraped else 'not scraped (below)'}</td></tr>")
    parts.append("</table>")
    return "".join(parts)


def _warnings_html(found: list[dict[str, Any]]) -> str:
    """Each distinct warning on one line, with the targets it concerns; its full text and every target folded."""
    esc = _html.esc
    if not found:
        return ""
    parts = [f"<h3 id='vllm-warnings'>Warnings: {len(found)} (the checks passed; a common store or scraper "
             "drops or splits part of the page)</h3>"]
    for item in found:
        text = str(item["text"])
        head = text.split(". ", 1)[0].rstrip(".") + "."
        parts.append(f"<details class='vllm-warning' data-check='{esc(item['check'])}' "
                     f"data-count='{len(item['targets'])}'><summary>{_html.symbol('xfailed')} "
                     f"<b>{esc(named(item['targets']))}</b>: {esc(head)}</summary>"
                     f"<div class='vllm-reason'>{esc(text)}</div><p>Check: {esc(item['check'])}. "
                     f"Targets ({len(item['targets'])}): {esc(', '.join(item['targets']))}</p></details>")
    return "".join(parts)


def _pods_by_checks(rows: list[Row], classes: list[PodClass]) -> str:
    columns: dict[str, tuple[str, str, str]] = {}
    for row in rows:
        if reader_of(row) == Reader.TARGETS:
            group, short = check_group(row)
            columns.setdefault(row.check, (group, row.check, short))
    if not columns or not classes:
        return ""
    # group the columns (present, moves, prefix cache, server...), keeping the suite's order within a group
    order = list(dict.fromkeys(group for group, _, _ in columns.values()))
    ordered = sorted(columns.values(), key=lambda c: order.index(c[0]))
    lines = []
    for pods in classes:
        cells = {}
        for check, outcome, reasons in pods.checks:
            reason = next(iter(reasons))
            more = len(reasons) - 1
            cells[check] = (outcome, reason + (f"\n(and {more} other reason{'s' * (more != 1)} on other targets of "
                                               f"this row)" if more else ""))
        lines.append(_html.PodRow(tuple(pods.names), str(pods.members[0].get("architecture") or ""),
                                  str(pods.members[0].get("vllmVersion") or "?"), cells))
    return ("<h3 id='vllm-grid'>Pods × checks</h3><p>Each square is one check, in the same place on every row; "
            "targets with identical results share a row. Hover a square for the check and its reason.</p>"
            + _html.matrix(lines, ordered))


def _charted(classes: list[PodClass], targets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The targets whose workload is charted: all of a small fleet; of a large one, the first of each row of the
    targets table, then the others in order, up to _CHARTED."""
    measured = [t for t in targets if isinstance(t.get("measured"), dict)]
    if len(measured) <= _CHARTED:
        return measured
    first = {str(pods.members[0]["target"]) for pods in classes}
    picked = [t for t in measured if str(t["target"]) in first][:_CHARTED]
    chosen = {str(t["target"]) for t in picked}
    picked += [t for t in measured if str(t["target"]) not in chosen][:_CHARTED - len(picked)]
    return picked


def _panel_boxes(rows: list[Row], panels: list[dict[str, Any]]) -> list[_html.PanelBox]:
    judged = {(r.target, r.check.removeprefix("panel: ")): r for r in rows if r.check.startswith("panel: ")}
    boxes = []
    for panel in panels:
        row = judged.pop((str(panel["dashboard"]), str(panel["title"])), None)
        if row is not None:  # a panel deselected (-k) was not judged: not drawn
            grid = panel.get("grid")
            boxes.append(_html.PanelBox(
                str(panel["dashboard"]), str(panel.get("dashboardTitle") or ""), str(panel["title"]),
                str(panel.get("row") or ""), (int(grid[0]), int(grid[1]), int(grid[2]), int(grid[3])) if grid else None,
                panel_verdict(row), row.outcome, _without_target(row.diagnosis or row.reason, row.target)))
    for (dashboard, title), row in judged.items():  # judged, but not in the layout: flowed after the others
        boxes.append(_html.PanelBox(dashboard, "", title, "", None, panel_verdict(row), row.outcome,
                                    row.diagnosis or row.reason))
    return boxes


def skipped_reason(report: pytest.TestReport) -> str | None:
    """The text of a skip (pytest keeps it as a (path, line, "Skipped: ...") tuple), for pytest-html's log."""
    if report.skipped and isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    return None


# -- Markdown: a CI job summary or a merge-request comment -----------------------------------------------

# GitHub Actions' limit for $GITHUB_STEP_SUMMARY (per step); a GitLab note allows 1,000,000 characters.
MARKDOWN_LIMIT = 1024 * 1024
_MD_NAMES = 8  # targets named per reason; the rest are counted


def markdown_summary(document: dict[str, Any], limit: int = MARKDOWN_LIMIT) -> str:
    """The conformance report as Markdown for a CI job summary: the result, a table per target, the failing
    checks and panels with their reasons (one line per distinct reason), what could not be observed and the
    documented limitations. Truncated with a note when longer than `limit` bytes (UTF-8)."""
    rows = [Row(**t) for t in document["tests"]]
    md = _markdown
    result = str(document["result"])
    mark = {"success": "✅", "partial": "⚠️", "inconclusive": "❔"}.get(result, "❌")
    found = document.get("readers") or readers(rows)
    blocks = [f"## {mark} vLLM metrics conformance: {result.upper()}\n\n"
              f"**What failed:** {md.inline('; '.join(text for _, text in story(found)))}.\n\n"
              f"{len(rows)} checks: {_counts(rows)}. Symbols: ✓ passed, ✗ failed, ! xfailed (documented "
              f"limitation), ? inconclusive (could not observe), – skipped.\n"]
    by_target = _by_target(rows)
    table = []
    for impl in _all_targets(rows, list(document.get("implementations") or [])):
        counts = Counter(outcome for _, outcome, _ in by_target.get(str(impl["target"]), []))
        table.append([str(impl["target"]), str(impl.get("architecture") or ""), str(impl.get("vllmVersion") or "?"),
                      *(str(counts.get(o, 0)) for o in ("passed", "failed", "xfailed", "inconclusive", "skipped"))])
    if table:
        blocks.append("### Targets\n\n" + md.table(
            ["target", "architecture", "vLLM", "✓ passed", "✗ failed", "! xfailed", "? inconclusive", "– skipped"],
            table, right=range(3, 8)))
    failing = []
    for row in rows:
        if row.outcome not in ("failed", "error", "xpassed") or row.check.startswith("panel: "):
            continue
        grouped: dict[str, list[str]] = {}
        for name, outcome, reason in row.per_target():
            if outcome in ("failed", "error", "xpassed"):
                grouped.setdefault(reason, []).append(name or "every target")
        for reason, names in grouped.items():
            failing.append([row.outcome, row.level, md.names(names, _MD_NAMES), row.check, reason])
    if failing:
        blocks.append("### Failing checks\n\n" + md.table(["outcome", "level", "targets", "check", "why"], failing))
    panels = [[r.target, r.check.removeprefix("panel: "), panel_verdict(r), r.outcome,
               _without_target(r.diagnosis or r.reason, r.target)]
              for r in rows if r.check.startswith("panel: ") and r.outcome not in ("passed", "skipped")]
    if panels:
        blocks.append("### Grafana panels that will not show data\n\n"
                      + md.table(["dashboard", "panel", "verdict", "outcome", "why"], panels))
    if document.get("upgrade"):
        from .upgrade import markdown  # the upgrade forecast's own section (--vllm-upgrade-to)

        blocks.append(markdown(document["upgrade"]))
    for title, found in (("Could not observe (neither passed nor failed)", document.get("couldNotObserve") or []),
                         ("Documented limitations (XFAIL)", document.get("documentedLimitations") or [])):
        if found:
            blocks.append(f"### {title}\n\n" + "".join(
                f"- **{md.inline(item['target'])}** ({len(item['checks'])} check{'s' * (len(item['checks']) != 1)}): "
                f"{md.inline(item['reason'])}\n" for item in found))
    return md.fit(blocks, limit, "the full report is in the HTML report or --vllm-report=report.json")


def write(path: Path, report: dict[str, Any]) -> None:
    if path.suffix in (".yaml", ".yml"):
        import yaml  # optional: YAML only when asked for

        path.write_text(yaml.safe_dump(report, sort_keys=False), encoding="utf-8")
    elif path.suffix in (".md", ".markdown"):
        path.write_text(markdown_summary(report), encoding="utf-8")
    else:
        path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
