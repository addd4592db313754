"""The terminal summary (a CI log): the result and what failed by reader, each reader's verdicts, a compact table
of what did not pass, what could not be observed and the documented limitations (each reason once, naming its
targets), the upgrade forecast's table, the run's notes. All in full: wrapped, never cut (a fix at the end of a
reason is what the reader needs). It renders the report model and decides nothing."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from typing import Any

from .report import Report, alike, checks_count, dark_state, story_text
from .rows import Row, RowOutcome, consumer_kind, named

_TERMINAL_TARGETS = 3  # targets quoted per check in a CI log


def lines(report: Report, width: int = 120) -> list[str]:
    """Everything the terminal's "vLLM metrics conformance" section shows, below its title."""
    out = terminal_lines(report, width)
    if report.upgrade is not None:
        out += upgrade_lines(report.upgrade)
    out += [f"note: {note}" for note in report.notes]
    if report.path:
        out.append(f"conformance report: {report.path}")
    return out


def terminal_lines(report: Report, width: int = 120) -> list[str]:
    """The result and what failed by reader, then a compact table of what did not pass, every panel's and
    consumer's verdict, what could not be observed and the documented limitations."""
    width = max(width, 60)
    rows = report.rows
    notable = [r for r in rows if r.outcome.notable]
    out = [f"result: {report.result.value.upper()}  ({report.counts_text()})"]
    out.extend(_wrap(story_text(report), width, "  ", "    "))
    title_w = max((len(item.info.title) for item in report.readers), default=0)
    for item in report.readers:
        counts = ", ".join(f"{n} {b}" for b, n in item.counts.items() if n)
        out.append(f"  {item.info.title:{title_w}}  {item.total:>5} {item.info.of(item.total)}: {counts}")
    if report.warnings:
        concerned = len({name for w in report.warnings for name in w.targets})
        out.extend(_wrap(f"warnings: {len(report.warnings)} (checks that passed, but a common store or scraper drops "
                         f"or splits part of the page) on {concerned} target{'s' * (concerned != 1)}; each once in "
                         f"the warnings summary", width, "", "  "))
    panels = [r for r in rows if r.panel is not None]
    if panels:
        out.append("panels (will it show data?):")
        for row in panels:
            out.append(f"  {row.panel_verdict.upper():20} {row.target} :: {row.panel}")
            out.extend(_passed_note(row, width))
    consumers = [r for r in rows if consumer_kind(r)]
    if consumers:
        out.append("other consumers of the metrics (will they get data?):")
        for row in consumers:
            kind, _, title = row.check.partition(": ")
            out.append(f"  {row.panel_verdict.upper():20} {kind:7} {row.target} :: {title}")
            out.extend(_passed_note(row, width))
    target_w = min(max((len(r.shown_target()) for r in notable), default=0), 32)
    if notable:
        out.append(f"{'OUTCOME':8} {'LEVEL':6} {'TARGET':{target_w}} CHECK")
    for row in notable:
        out.append(f"{row.outcome.value.upper():8} {row.level.value:6} {row.shown_target():{target_w}} {row.check}")
        if row.outcome == RowOutcome.XFAILED:
            continue  # its documented reason is printed once per target, below
        # the diagnosis is what a reader of a CI log needs first; targets that gave the same one share it
        judged: dict[tuple[RowOutcome, str], list[str]] = {}
        for name, outcome, reason in row.per_target():
            if outcome.broken:
                judged.setdefault((outcome, reason), []).append(name)
        for (outcome, reason), names in list(judged.items())[:_TERMINAL_TARGETS]:
            text = " ".join(_without_lead(reason, row).split())
            if row.targets:  # name the targets, and their outcome where it differs from the check's
                text = f"{named(names)}{'' if outcome == row.outcome else f' ({outcome.value})'}: {text}"
            out.extend(_wrap(text, width, "    ", "      "))
        if len(judged) > _TERMINAL_TARGETS:
            rest = sum(len(names) for names in list(judged.values())[_TERMINAL_TARGETS:])
            out.append(f"    ... and {rest} more target{'s' * (rest != 1)} with other reasons (see the report)")
    for title, once in (("could not observe (neither passed nor failed; rerun or fix the setup):", report.unobserved),
                        ("documented limitations (XFAIL), as vLLM states them:", report.documented)):
        if once:
            out.append(title)
        for same in alike(once):
            reason = " ".join(same.reason.split())
            if len(same.targets) > _TERMINAL_TARGETS:  # a fleet's alike targets: one paragraph naming them
                out.extend(_wrap(f"{named(list(same.targets))}: {reason} [{checks_count(same.checks)}]", width,
                                 "  ", "    "))
                continue
            for name, checks in zip(same.targets, same.checks, strict=True):
                out.extend(_wrap(f"{name}: {reason} [{checks_count([checks])}]", width, "  ", "    "))
    return out


def upgrade_lines(forecast: Mapping[str, Any]) -> list[str]:
    """The upgrade forecast as a table: per consumer that goes dark, each family it loses (lines are not cut:
    names and flags must stay whole to be copied)."""
    to = forecast["to"]
    fleet_text = ", ".join(f"{v} on {len(t)} target{'s' * (len(t) != 1)}" for v, t in forecast["fleet"].items())
    dark = [(c, d) for c in forecast["consumers"] for d in c["dark"]]
    losing = [c for c in forecast["consumers"] if c["dark"]]
    out = [f"upgrade to vLLM {to}: {len(losing)} of {len(forecast['consumers'])} consumers go dark (the fleet "
           f"runs {fleet_text or 'an unknown version'})"]
    if not dark:
        return out
    header = ("METRIC", f"ON {to}", "BUYS TIME", "REMOVED", "RENAMED TO")
    cells = [(d["metric"], dark_state(d), d["flag"] or "-", d["removed_in"] or "-", d["replaced_by"] or "-")
             for _, d in dark]
    widths = [max(len(row[i]) for row in [header, *cells]) for i in range(len(header))]

    def line(row: tuple[str, ...]) -> str:
        return "    " + "  ".join(f"{cell:{width}}" for cell, width in zip(row, widths, strict=True)).rstrip()

    out.append(line(header))
    for consumer in losing:
        out.append(f"  {consumer['kind']} {consumer['dashboard']} :: {consumer['title']}")
        out.extend(line(cells[i]) for i, (c, _) in enumerate(dark) if c is consumer)
    out.append(f"  policy: {' '.join(forecast['policy']['text'].split())}")
    return out


def _passed_note(row: Row, width: int) -> list[str]:
    """What a reader that works still says (the pods its aggregate does not see and why), under its line; the
    reasons of the others are in the table below."""
    return _wrap(row.reason, width, " " * 4, " " * 6) if row.outcome == RowOutcome.PASSED and row.reason else []


def _wrap(text: str, width: int, first: str, rest: str) -> list[str]:
    # never at a hyphen: option names (--vllm-model) must stay whole to be copied or searched
    return textwrap.wrap(text, width=width, initial_indent=first, subsequent_indent=rest, break_on_hyphens=False)


def _without_lead(reason: str, row: Row) -> str:
    """A panel's reason without its opening 'panel "T" (dashboard) ', which the line above already shows."""
    if row.panel is not None:
        lead = f'panel "{row.panel}" '
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
