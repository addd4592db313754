"""The Markdown summary (--vllm-report=summary.md): a CI job summary or a merge-request comment. The result and
what failed by reader, a table per target, the failing checks and panels with their reasons (one line per distinct
reason), the upgrade forecast, what could not be observed and the documented limitations. It renders the report
model and decides nothing; tables and truncation are _markdown.py's."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from . import _markdown
from .gate import Result
from .report import Report, all_targets, by_target, dark_state, story_text
from .rows import RowOutcome, without_target

# GitHub Actions' limit for $GITHUB_STEP_SUMMARY (per step); a GitLab note allows 1,000,000 characters.
MARKDOWN_LIMIT = 1024 * 1024
_MD_NAMES = 8  # targets named per reason; the rest are counted
_MARK = {Result.SUCCESS: "✅", Result.PARTIAL: "⚠️", Result.INCONCLUSIVE: "❔", Result.FAILURE: "❌"}
# the targets table's columns: the outcomes it counts, with their symbols
_COLUMNS = ((RowOutcome.PASSED, "✓"), (RowOutcome.FAILED, "✗"), (RowOutcome.XFAILED, "!"),
            (RowOutcome.INCONCLUSIVE, "?"), (RowOutcome.SKIPPED, "–"))


def summary(report: Report, limit: int = MARKDOWN_LIMIT) -> str:
    """The report as Markdown, truncated with a note when longer than `limit` bytes (UTF-8)."""
    md = _markdown
    rows = report.rows
    blocks = [f"## {_MARK[report.result]} vLLM metrics conformance: {report.result.value.upper()}\n\n"
              f"**What failed:** {md.inline(story_text(report))}.\n\n"
              f"{len(rows)} checks: {report.counts_text()}. Symbols: ✓ passed, ✗ failed, ! xfailed (documented "
              f"limitation), ? inconclusive (could not observe), – skipped.\n"]
    per_target = by_target(rows)
    table = []
    for impl in all_targets(rows, report.implementations):
        counts = Counter(outcome for _, outcome, _ in per_target.get(str(impl["target"]), []))
        table.append([str(impl["target"]), str(impl.get("architecture") or ""), str(impl.get("vllmVersion") or "?"),
                      *(str(counts.get(outcome, 0)) for outcome, _ in _COLUMNS)])
    if table:
        blocks.append("### Targets\n\n" + md.table(
            ["target", "architecture", "vLLM", *(f"{mark} {outcome}" for outcome, mark in _COLUMNS)], table,
            right=range(3, 8)))
    failing = []
    for row in rows:
        if not row.outcome.broken or row.panel is not None:
            continue
        grouped: dict[str, list[str]] = {}
        for name, outcome, reason in row.per_target():
            if outcome.broken:
                grouped.setdefault(reason, []).append(name or "every target")
        for reason, names in grouped.items():
            failing.append([row.outcome.value, row.level.value, md.names(names, _MD_NAMES), row.check, reason])
    if failing:
        blocks.append("### Failing checks\n\n" + md.table(["outcome", "level", "targets", "check", "why"], failing))
    panels = [[r.target, str(r.panel), r.panel_verdict, r.outcome.value, without_target(r.why, r.target)]
              for r in rows if r.panel is not None and r.outcome not in (RowOutcome.PASSED, RowOutcome.SKIPPED)]
    if panels:
        blocks.append("### Grafana panels that will not show data\n\n"
                      + md.table(["dashboard", "panel", "verdict", "outcome", "why"], panels))
    if report.upgrade is not None:
        blocks.append(upgrade_markdown(report.upgrade))
    for title, found in (("Could not observe (neither passed nor failed)", report.unobserved),
                         ("Documented limitations (XFAIL)", report.documented)):
        if found:
            blocks.append(f"### {title}\n\n" + "".join(
                f"- **{md.inline(item.target)}** ({len(item.checks)} check{'s' * (len(item.checks) != 1)}): "
                f"{md.inline(item.reason)}\n" for item in found))
    return md.fit(blocks, limit, "the full report is in the HTML report or --vllm-report=report.json")


def upgrade_markdown(forecast: Mapping[str, Any]) -> str:
    """The upgrade forecast's section: one row per consumer and family that goes dark."""
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    to = forecast["to"]
    dark = [(c, d) for c in forecast["consumers"] for d in c["dark"]]
    losing = len([c for c in forecast["consumers"] if c["dark"]])
    fleet_text = ", ".join(f"{v} ({len(t)})" for v, t in forecast["fleet"].items()) or "unknown"
    text = (f"### Upgrade to vLLM {to}: {losing} of {len(forecast['consumers'])} consumers go dark\n\n"
            f"The fleet runs {fleet_text}. {forecast['policy']['text']}\n")
    if dark:
        text += ("\n| kind | consumer | metric | on " + to + " | buys time | removed in | renamed to |\n"
                 "|---|---|---|---|---|---|---|\n")
        text += "".join(f"| {c['kind']} | {cell(c['dashboard'])} :: {cell(c['title'])} | `{d['metric']}` | "
                        f"{dark_state(d)} | {('`' + d['flag'] + '`') if d['flag'] else '-'} | "
                        f"{d['removed_in'] or '-'} | {('`' + d['replaced_by'] + '`') if d['replaced_by'] else '-'} |\n"
                        for c, d in dark)
    return text
