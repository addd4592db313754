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
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from . import _html, _markdown
from .outcome import Outcome, Verdict

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
    targets = {name: {"outcome": str(v.outcome), "reason": v.message, "diagnosis": v.diagnosis or ""}
               for name, v in verdict.targets.items()} if verdict else {}
    if verdict is not None and verdict.target and not targets:
        target = verdict.target
    if len(targets) == 1:
        target = next(iter(targets))
    return Row(
        id=item.nodeid, target=str(target), check=str(check),
        level=verdict.level if verdict else "MUST", outcome=outcome, reason=reason,
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
    from . import __version__

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
        "tests": [asdict(row) for row in rows],
    }


def schema() -> dict[str, Any]:
    text = resources.files(__package__).joinpath("report.schema.json").read_text(encoding="utf-8")
    result: dict[str, Any] = json.loads(text)
    return result


def python_environment() -> dict[str, str]:
    return {"python": platform.python_version(), "pytest": pytest.__version__,
            "generated": datetime.now(UTC).isoformat(timespec="seconds")}


# -- terminal --------------------------------------------------------------------------------------------


_TERMINAL_TARGETS = 3  # targets quoted per check in a CI log


# The checks of the metrics' other consumers (consumers.py): judged as panels, listed apart from them.
CONSUMER_KINDS = ("alert", "record", "keda", "adapter", "epp")


def consumer_kind(row: Row) -> str | None:
    kind = row.check.split(": ", 1)[0]
    return kind if ": " in row.check and kind in CONSUMER_KINDS else None


def panel_verdict(row: Row) -> str:
    return str(row.evidence.get("panel_verdict") or ("ok" if row.outcome == "passed" else row.outcome))


def terminal_lines(rows: list[Row], width: int = 120) -> list[str]:
    """A compact table of what did not pass, then every panel's verdict, what could not be observed and the
    documented limitations (each once per target, in full); readable in a CI log."""
    width = max(width, 60)
    notable = [r for r in rows if r.outcome in ("failed", "error", "xfailed", "xpassed")]
    lines = [f"result: {overall(rows).upper()}  ({_counts(rows)})"]
    panels = [r for r in rows if r.check.startswith("panel: ")]
    if panels:
        lines.append("panels (will it show data?):")
        for row in panels:
            lines.append(f"  {panel_verdict(row).upper():20} {row.target} :: {row.check.removeprefix('panel: ')}")
    consumers = [r for r in rows if consumer_kind(r)]
    if consumers:
        lines.append("other consumers of the metrics (will they get data?):")
        for row in consumers:
            kind, _, title = row.check.partition(": ")
            lines.append(f"  {panel_verdict(row).upper():20} {kind:7} {row.target} :: {title}")
    if notable:
        target_w = min(max(len(r.shown_target()) for r in notable), 32)
        lines.append(f"{'OUTCOME':8} {'LEVEL':6} {'TARGET':{target_w}} CHECK")
    for row in notable:
        lines.append(f"{row.outcome.upper():8} {row.level:6} {row.shown_target()[:target_w]:{target_w}} {row.check}")
        if row.outcome == Outcome.XFAILED:
            continue  # its documented reason is printed once per target, below
        # the diagnosis is what a reader of a CI log needs first
        judged = [(name, outcome, reason) for name, outcome, reason in row.per_target()
                  if outcome in ("failed", "error", "xpassed")]
        for name, outcome, reason in judged[:_TERMINAL_TARGETS]:
            text = " ".join(reason.split())
            if row.targets:  # name the target, and its outcome where it differs from the check's
                text = f"{name}{'' if outcome == row.outcome else f' ({outcome})'}: {text}"
            lines.extend(_wrap(text, width, "    ", "      ", max_lines=6 if len(judged) == 1 else 3,
                               placeholder=" …"))
        if len(judged) > _TERMINAL_TARGETS:
            lines.append(f"    ... and {len(judged) - _TERMINAL_TARGETS} more targets (see the report)")
    for title, found in (("could not observe (neither passed nor failed; rerun or fix the setup):", unobserved(rows)),
                         ("documented limitations (XFAIL), as vLLM states them:", documented(rows))):
        if found:
            lines.append(title)
        for item in found:
            checks = len(item["checks"])
            text = f"{item['target']}: {' '.join(item['reason'].split())} [{checks} check{'s' * (checks != 1)}]"
            lines.extend(_wrap(text, width, "  ", "    "))
    return lines


def _wrap(text: str, width: int, first: str, rest: str, **options: Any) -> list[str]:
    # never at a hyphen: option names (--vllm-model) must stay whole to be copied or searched
    return textwrap.wrap(text, width=width, initial_indent=first, subsequent_indent=rest, break_on_hyphens=False,
                         **options)


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
    module = row.id.split("::", 1)[0].rsplit("/", 1)[-1].removesuffix(".py").removeprefix("test_")
    return module.replace("_", " "), row.check


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


def summary_html(rows: list[Row], targets: list[dict[str, Any]], panels: list[dict[str, Any]] | None = None,
                 tally: dict[str, Any] | None = None) -> str:
    """The top of the HTML report: the result, each target's summary, the pods x checks grid, the workload's
    numbers per pod, each dashboard drawn with its panels' verdicts, then what could not be observed and the
    documented limitations (each once per target, in full).

    `panels`: the dashboards' panels in their order with their place (dashboard, title, dashboardTitle, row,
    grid); `tally`: pytest's own counts (collected, outcomes)."""
    esc = _html.esc
    result = overall(rows)
    parts = [_html.style(), '<div id="vllm-summary"><h2>vLLM metrics conformance</h2>',
             f"<p>Result: {_html.result_badge(result)} <span class='vllm-tally'>{esc(tally_text(rows, tally))}"
             f"</span></p>",
             _html.legend('<span>(pytest-html\'s "Skipped" filter below includes the inconclusive tests)</span>')]
    parts.append(_targets_table(rows, targets))
    parts.append(_pods_by_checks(rows, targets))
    charts = _html.charts(targets)
    if charts:
        parts.append(f"<h3>The workload, per pod</h3>{charts}")
    boxes = _panel_boxes(rows, panels or [])
    if boxes:
        parts.append("<h3>Grafana panels: will they show data?</h3>"
                     "<p>Each dashboard as Grafana lays it out; hover a panel for its full reason.</p>")
        parts.append(_html.dashboards(boxes))
    parts.append(_consumers_table(rows))
    for title, found in (("Could not observe (neither passed nor failed)", unobserved(rows)),
                         ("Documented limitations (XFAIL)", documented(rows))):
        if found:
            outcome = Outcome.INCONCLUSIVE if title.startswith("Could") else Outcome.XFAILED
            parts.append(f"<h3>{_html.symbol(outcome)} {esc(title)}</h3><ul class='vllm-once'>")
            parts.extend(f"<li><b>{esc(item['target'])}</b>: <span class='vllm-reason'>{esc(item['reason'])}</span> "
                         f"({len(item['checks'])} check{'s' * (len(item['checks']) != 1)})</li>" for item in found)
            parts.append("</ul>")
    parts.append("</div>")
    return "".join(parts)


def _consumers_table(rows: list[Row]) -> str:
    """The other consumers (rules, scalers, the endpoint picker's flags): a table, not a dashboard picture."""
    esc = _html.esc
    consumers = [r for r in rows if consumer_kind(r)]
    if not consumers:
        return ""
    parts = ["<h3>Other consumers of the metrics: will they get data?</h3>",
             "<table class='vllm-summary vllm-consumers'><tr><th>Kind</th><th>Source</th><th>Name</th>"
             "<th>Verdict</th><th>Why</th></tr>"]
    for row in consumers:
        kind, _, title = row.check.partition(": ")
        reason = "" if row.outcome == "passed" and not row.reason else (row.diagnosis or row.reason)
        parts.append(f"<tr class='o-{esc(row.outcome)}' data-consumer='{esc(row.check)}' "
                     f"data-verdict='{esc(panel_verdict(row))}' data-outcome='{esc(row.outcome)}'>"
                     f"<td>{esc(kind)}</td><td>{esc(row.target)}</td><td>{esc(title)}</td>"
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
    dashboards = {r.target for r in rows if r.check.startswith("panel: ") or consumer_kind(r)}
    extra = {name for r in rows for name, _, _ in r.per_target()} - known - dashboards - {""}
    return list(targets) + [{"target": name, "architecture": "", "vllmVersion": None} for name in sorted(extra)]


def _targets_table(rows: list[Row], targets: list[dict[str, Any]]) -> str:
    esc = _html.esc
    parts = ["<table class='vllm-summary'><tr><th>Target</th><th>Architecture</th><th>vLLM</th>"
             "<th>Passed</th><th>Checks</th><th>Not working, and why</th></tr>"]
    by_target = _by_target(rows)
    for target in _all_targets(rows, targets):
        mine = by_target.get(str(target["target"]), [])
        if not mine:
            continue
        counts = Counter(outcome for _, outcome, _ in mine)
        # the same reason for several checks of a target is stated once, in full, with the checks it explains
        broken: dict[tuple[str, str], list[str]] = {}
        for check, outcome, reason in mine:
            if outcome in ("failed", "error", "xpassed"):
                broken.setdefault((outcome, reason), []).append(check)
        items = "".join(f"<li class='o-{esc(outcome)}'>{_html.symbol(outcome)} <b>{esc(', '.join(checks))}</b>: "
                        f"<span class='vllm-reason'>{esc(reason)}</span></li>"
                        for (outcome, reason), checks in broken.items())
        # documented limitations and observation problems: stated once per target, in full, below the grids
        for outcome, where in ((Outcome.XFAILED, "documented limitation"), (Outcome.INCONCLUSIVE, "could not observe")):
            count = counts.get(outcome, 0)
            if count:
                items += (f"<li class='o-{outcome}'>{_html.symbol(outcome)} {count} check{'s' * (count != 1)}: "
                          f"{where} (below)</li>")
        items = items or "<li>everything checked works</li>"
        parts.append(f"<tr data-target='{esc(target['target'])}'><td>{esc(target['target'])}</td>"
                     f"<td>{esc(target.get('architecture') or '')}</td><td>{esc(target.get('vllmVersion') or '?')}</td>"
                     f"<td class='num'>{_html.symbol('passed')} {counts.get('passed', 0)} of {len(mine)}</td>"
                     f"<td>{_html.outcome_bar(dict(counts))}</td><td><ul>{items}</ul></td></tr>")
    parts.append("</table>")
    return "".join(parts)


def _pods_by_checks(rows: list[Row], targets: list[dict[str, Any]]) -> str:
    names = [str(t["target"]) for t in _all_targets(rows, targets)]
    wanted = set(names)
    columns: dict[str, tuple[str, str, str]] = {}
    cells: dict[tuple[str, str], tuple[str, str]] = {}
    for row in rows:
        judged = [(n, o, r) for n, o, r in row.per_target() if n in wanted]
        if not judged:
            continue  # a panel (judged per dashboard) or a check of no target
        group, short = check_group(row)
        columns.setdefault(row.check, (group, row.check, short))
        for name, outcome, reason in judged:
            cells[(name, row.check)] = (outcome, reason)
    if not columns:
        return ""
    # group the columns (present, moves, prefix cache, server...), keeping the suite's order within a group
    order = list(dict.fromkeys(group for group, _, _ in columns.values()))
    ordered = sorted(columns.values(), key=lambda c: order.index(c[0]))
    shown = [t for t in _all_targets(rows, targets) if any((str(t["target"]), c[1]) in cells for c in ordered)]
    return ("<h3>Pods × checks</h3><p>Each cell is that target's own outcome; hover it for the reason.</p>"
            + _html.matrix(shown, ordered, cells))


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
    blocks = [f"## {mark} vLLM metrics conformance: {result.upper()}\n\n"
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
