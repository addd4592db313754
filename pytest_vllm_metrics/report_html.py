"""The HTML report (pytest-html): the summary at its top, the cells and extras of its results table, and its
environment table. It renders the report model and decides nothing; its pictures (outcome colours, each dashboard
on Grafana's grid, the pods x checks grid, the workload's charts) are drawn by _html.py."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from . import _html, multinode
from .report import Report, Tally, alike, all_targets, by_target, checks_count, dark_state
from .rows import (
    BUCKETS,
    READERS,
    Reader,
    Row,
    RowOutcome,
    check_group,
    consumer_kind,
    named,
    reader_of,
    without_target,
)
from .settings import Settings
from .targets import redact_url
from .versions import __version__

_CHARTED = 24  # pods charted one by one; a fleet's numbers are all in the JSON report


def summary(report: Report, in_pytest_html: bool = True) -> str:
    """The top of the HTML report: the result and what failed by reader (linked to each reader's section), then
    the targets (folded: pods with identical results are one row), their warnings, the pods x checks grid, the
    workload's numbers, each dashboard drawn with its panels' verdicts, the rules, autoscalers and endpoint
    picker, then what could not be observed and the documented limitations (each reason once). With
    --vllm-upgrade-to, the forecast's table in place of the targets' results (the run then only scrapes)."""
    esc = _html.esc
    rows, targets = report.rows, report.implementations
    parts = [_html.style(), '<div id="vllm-summary"><h2>vLLM metrics conformance</h2>',
             f"<p>Result: {_html.result_badge(report.result)} <span class='vllm-tally'>"
             f"{esc(tally_text(report))}</span></p>", _overview(report)]
    parts.append(_html.legend('<span>(pytest-html\'s "Skipped" filter below includes the inconclusive tests)</span>'
                              if in_pytest_html else ""))
    classes = pod_classes(rows, targets)
    if report.upgrade is not None:
        parts.append(upgrade_html(report.upgrade))
        parts.append(_scraped_table(targets, str(report.upgrade.get("to") or "")))
    else:
        parts.append(_targets_table(classes))
    parts.append(_warnings_html(report))
    parts.append(_pods_by_checks(rows, classes))
    charted = [] if report.upgrade is not None else _charted(classes, targets)
    charts = _html.charts([dict(t) for t in charted])
    if charts:
        shown = len([t for t in targets if isinstance(t.get("measured"), dict)])
        note = (f"<p>{len(charted)} of {shown} targets: one of each row of the targets table first; every "
                f"target's numbers are in the JSON report (<code>implementations[].measured</code>).</p>"
                if len(charted) < shown else "")
        parts.append(f"<h3 id='vllm-workload'>The workload, per pod</h3>{note}{charts}")
    boxes = _panel_boxes(rows, report.layout)
    if boxes:
        parts.append(f"<h3 id='{READERS[Reader.DASHBOARDS].anchor}'>Grafana panels: will they show data?</h3>"
                     "<p>Each dashboard as Grafana lays it out; hover a panel for its full reason.</p>")
        parts.append(_html.dashboards(boxes))
    consumers = [_consumers_table(rows, reader) for reader in (Reader.RULES, Reader.SCALERS, Reader.EPP)]
    if any(consumers):
        parts.append("<h3 id='vllm-consumers'>Other consumers of the metrics: will they get data?</h3>")
        parts.extend(consumers)
    for title, anchor, outcome, once in (
            ("Could not observe (neither passed nor failed)", "vllm-unobserved", RowOutcome.INCONCLUSIVE,
             report.unobserved),
            ("Documented limitations (XFAIL)", "vllm-limitations", RowOutcome.XFAILED, report.documented)):
        if once:
            parts.append(f"<h3 id='{anchor}'>{_html.symbol(outcome)} {esc(title)}</h3><ul class='vllm-once'>")
            parts.extend(f"<li data-count='{len(item.targets)}'>{_html.names(item.targets)}: "
                         f"<span class='vllm-reason'>{esc(item.reason)}</span> "
                         f"({esc(checks_count(item.checks))})</li>" for item in alike(once))
            parts.append("</ul>")
    parts.append("</div><!-- /vllm-summary -->")
    return "".join(parts)


def tally_text(report: Report) -> str:
    """How many tests ran and how they ended, by pytest's own count (the terminal's), skipped and inconclusive
    included: pytest-html's "N tests took" counts passed, failed, xfailed and xpassed only."""
    tally = report.tally or Tally()
    if not report.tally:
        return f"{len(report.rows)} checks: {report.counts_text()}"
    outcomes = {k: v for k, v in tally.outcomes.items() if v}
    ran = sum(outcomes.values())
    text = f"{ran} test{'s' * (ran != 1)}"
    if tally.collected and tally.collected != ran:
        text += f" of {tally.collected} collected"
    elif tally.collected:
        text += " (all collected)"
    shown = ", ".join(f"{n} {name}" for name, n in outcomes.items())
    return f"{text}: {shown}" if shown else text


def _overview(report: Report) -> str:
    """What failed, by reader: a sentence, then a row per reader linked to its section, with its counts."""
    esc = _html.esc
    if not report.readers:
        return ""
    sentence = [f"<a href='#{READERS[reader].anchor}'>{esc(text)}</a>" if reader else esc(text)
                for reader, text in report.story]
    parts = [f"<p class='vllm-story'><b>What failed:</b> {'; '.join(sentence)}.</p>",
             "<table class='vllm-summary vllm-readers'><tr><th>Reader</th><th>Checked</th>"]
    parts += [f"<th>{_html.symbol(b)} {esc(b)}</th>" for b in BUCKETS]
    parts.append("</tr>")
    for item in report.readers:
        counts = item.counts
        cells = "".join(f"<td class='num{' vllm-bad' if b == RowOutcome.FAILED and counts[b] else ''}' "
                        f"data-bucket='{b}'>{counts[b] or ''}</td>" for b in BUCKETS)
        parts.append(f"<tr data-overview='{esc(item.reader)}' data-total='{item.total}' "
                     + " ".join(f"data-{b}='{counts[b]}'" for b in BUCKETS)
                     + f"><td><a href='#{item.info.anchor}'>{esc(item.info.title)}</a></td>"
                       f"<td class='num'>{item.total} {esc(item.info.of(item.total))}</td>{cells}</tr>")
    parts.append("</table>")
    return "".join(parts)


def _consumers_table(rows: Iterable[Row], reader: Reader) -> str:
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
        reason = "" if row.outcome == RowOutcome.PASSED and not row.reason else row.why
        parts.append(f"<tr class='o-{esc(row.outcome)}' data-reader='{reader}' data-consumer='{esc(row.check)}' "
                     f"data-verdict='{esc(row.panel_verdict)}' data-outcome='{esc(row.outcome)}'>"
                     f"<td>{esc(kind)}</td><td>{esc(row.target)}</td><td>{esc(name)}</td>"
                     f"<td>{_html.symbol(row.outcome)} {esc(row.panel_verdict)}</td>"
                     f"<td class='vllm-reason'>{esc(reason)}</td></tr>")
    parts.append("</table>")
    return "".join(parts)


@dataclass
class PodClass:
    """Targets with the same results (architecture, vLLM version and each check's outcome): one row of the
    targets table and of the pods x checks grid, however many pods it stands for."""

    members: list[Mapping[str, Any]]
    # per check, in the suite's order: (check, outcome, each reason given -> the members that gave it)
    checks: list[tuple[str, RowOutcome, dict[str, list[str]]]]

    @property
    def names(self) -> list[str]:
        return [str(m["target"]) for m in self.members]

    @property
    def worst(self) -> RowOutcome:
        return next((b for b in BUCKETS if any(o.bucket == b for _, o, _ in self.checks)), RowOutcome.SKIPPED)


def pod_classes(rows: Iterable[Row], targets: Iterable[Mapping[str, Any]]) -> list[PodClass]:
    """The judged targets folded by identical results, the classes that did not pass first (then in the order
    the targets came)."""
    judged = [r for r in rows if reader_of(r) == Reader.TARGETS]
    per_target = by_target(judged)
    found: dict[tuple[Any, ...], PodClass] = {}
    for target in all_targets(judged, targets):
        name = str(target["target"])
        mine = per_target.get(name)
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
        broken: dict[tuple[RowOutcome, str, tuple[str, ...]], list[str]] = {}
        for check, outcome, reasons in pods.checks:
            if outcome.broken:
                for reason, names in reasons.items():
                    broken.setdefault((outcome, reason, tuple(names) if len(reasons) > 1 else ()), []).append(check)
        items = "".join(f"<li class='o-{esc(outcome)}'>{_html.symbol(outcome)} <b>{esc(', '.join(checks))}</b>: "
                        f"<span class='vllm-reason'>{esc(reason)}</span>"
                        + (f" (on {_html.names(list(whose))})" if whose else "") + "</li>"
                        for (outcome, reason, whose), checks in broken.items())
        # documented limitations and observation problems: stated once per reason, in full, below the grids
        for outcome, where, anchor in ((RowOutcome.XFAILED, "documented limitation", "vllm-limitations"),
                                       (RowOutcome.INCONCLUSIVE, "could not observe", "vllm-unobserved")):
            count = counts.get(outcome, 0)
            if count:
                items += (f"<li class='o-{outcome}'>{_html.symbol(outcome)} {count} check{'s' * (count != 1)}: "
                          f"<a href='#{anchor}'>{where} (below)</a></li>")
        items = items or "<li>everything checked works</li>"
        parts.append(f"<tr data-target='{esc(first['target'])}' data-targets='{esc(json.dumps(pods.names))}' "
                     f"data-count='{len(pods.members)}' data-worst='{pods.worst}'>"
                     f"<td>{_html.names(pods.names, like=True)}</td>"
                     f"<td>{esc(first.get('architecture') or '')}</td><td>{esc(first.get('vllmVersion') or '?')}</td>"
                     f"<td class='num'>{_html.symbol(RowOutcome.PASSED)} {counts.get(RowOutcome.PASSED, 0)} of "
                     f"{len(pods.checks)}</td><td>{_html.outcome_bar(dict(counts))}</td><td><ul>{items}</ul></td></tr>")
    parts.append("</table>")
    return "".join(parts)


def _scraped_table(targets: Iterable[Mapping[str, Any]], to: str) -> str:
    """With --vllm-upgrade-to no target is judged: what the run did with each (one scrape and its version)."""
    esc = _html.esc
    folded: dict[tuple[str, str, bool], list[str]] = {}
    for target in targets:
        key = (str(target.get("architecture") or ""), str(target.get("vllmVersion") or "unknown"),
               target.get("exposition") is not None)
        folded.setdefault(key, []).append(str(target["target"]))
    if not folded:
        return ""
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


def _warnings_html(report: Report) -> str:
    """Each distinct warning on one line, with the targets it concerns; its full text and every target folded."""
    esc = _html.esc
    if not report.warnings:
        return ""
    parts = [f"<h3 id='vllm-warnings'>Warnings: {len(report.warnings)} (the checks passed; a common store or scraper "
             "drops or splits part of the page)</h3>"]
    for item in report.warnings:
        head = item.text.split(". ", 1)[0].rstrip(".") + "."
        parts.append(f"<details class='vllm-warning' data-check='{esc(item.check)}' "
                     f"data-count='{len(item.targets)}'><summary>{_html.symbol(RowOutcome.XFAILED)} "
                     f"<b>{esc(named(list(item.targets)))}</b>: {esc(head)}</summary>"
                     f"<div class='vllm-reason'>{esc(item.text)}</div><p>Check: {esc(item.check)}. "
                     f"Targets ({len(item.targets)}): {esc(', '.join(item.targets))}</p></details>")
    return "".join(parts)


def _pods_by_checks(rows: Iterable[Row], classes: list[PodClass]) -> str:
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


def _charted(classes: list[PodClass], targets: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
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


def _panel_boxes(rows: Iterable[Row], layout: Iterable[Mapping[str, Any]]) -> list[_html.PanelBox]:
    judged = {(r.target, r.panel): r for r in rows if r.panel is not None}
    boxes = []
    for panel in layout:
        row = judged.pop((str(panel["dashboard"]), str(panel["title"])), None)
        if row is not None:  # a panel deselected (-k) was not judged: not drawn
            grid = panel.get("grid")
            boxes.append(_html.PanelBox(
                str(panel["dashboard"]), str(panel.get("dashboardTitle") or ""), str(panel["title"]),
                str(panel.get("row") or ""), (int(grid[0]), int(grid[1]), int(grid[2]), int(grid[3])) if grid else None,
                row.panel_verdict, row.outcome, without_target(row.why, row.target)))
    for (dashboard, title), row in judged.items():  # judged, but not in the layout: flowed after the others
        boxes.append(_html.PanelBox(dashboard, "", str(title), "", None, row.panel_verdict, row.outcome, row.why))
    return boxes


def upgrade_html(forecast: Mapping[str, Any]) -> str:
    """The upgrade forecast's section: the fleet's versions, then a row per consumer and family that goes dark."""
    esc = _html.esc
    to = forecast["to"]
    dark = [(c, d) for c in forecast["consumers"] for d in c["dark"]]
    fleet_text = "; ".join(f"{v}: {', '.join(t)}" for v, t in forecast["fleet"].items()) or "unknown"
    parts = [f"<div id='vllm-upgrade'><h3>Upgrade to vLLM {esc(to)}: what goes dark</h3>",
             f"<p>The fleet runs {esc(fleet_text)}. {len({id(c) for c, _ in dark})} of "
             f"{len(forecast['consumers'])} consumers lose data. {esc(forecast['policy']['text'])}</p>"]
    if dark:
        parts.append("<table class='vllm-summary'><tr><th>Kind</th><th>Consumer</th><th>Metric</th>"
                     f"<th>On {esc(to)}</th><th>Buys time</th><th>Removed in</th><th>Renamed to</th></tr>")
        parts.extend(
            f"<tr class='o-{RowOutcome.FAILED}'><td>{esc(c['kind'])}</td><td>{esc(c['dashboard'])} :: {esc(c['title'])}"
            f"</td><td><code>{esc(d['metric'])}</code></td><td>{esc(dark_state(d))}</td>"
            f"<td><code>{esc(d['flag'] or '')}</code></td><td>{esc(d['removed_in'] or '')}</td>"
            f"<td><code>{esc(d['replaced_by'] or '')}</code></td></tr>" for c, d in dark)
        parts.append("</table>")
    parts.append("</div>")
    return "".join(parts)


# -- the results table, its extras and the environment table -------------------------------------------------

_EVIDENCE_TARGETS = 20  # targets whose evidence the HTML report carries per check (the JSON report: every one)


def table_cells(row: Row | None) -> list[str]:
    """The Target, Level and Outcome cells of a test's row in the results table (empty for a test that is not a
    check: every row has the header's cells)."""
    esc = _html.esc
    return [f'<td class="col-target">{esc(row.shown_target() if row else "")}</td>',
            f'<td class="col-level">{esc(row.level.value if row else "")}</td>',
            f'<td class="col-outcome">{esc(row.outcome.value if row else "")}</td>']


def evidence(row: Row) -> Mapping[str, Any]:
    """A check's evidence for the HTML report: of a fleet, the targets that did not pass first, up to
    _EVIDENCE_TARGETS (1,000 pods' evidence on every check would make a report too large to open)."""
    if len(row.targets) <= _EVIDENCE_TARGETS or set(row.evidence) != set(row.targets):
        return row.evidence
    kept = sorted(row.targets, key=lambda name: row.targets[name].outcome == RowOutcome.PASSED)[:_EVIDENCE_TARGETS]
    return {name: row.evidence[name] for name in kept} | {
        "more targets": f"{len(row.targets) - len(kept)} more, not shown here: every target's evidence is in the "
                        f"JSON report (--vllm-report=report.json)"}


def escaped(text: str) -> str:
    return _html.esc(text)


def shown_reason(row: Row) -> str | None:
    """The reason extra of a check that did not pass."""
    return row.reason if row.reason and row.outcome != RowOutcome.PASSED else None


_METADATA_ROWS = 12  # rows of pytest-html's environment table given to the targets


def metadata(report: Report, settings: Settings) -> dict[str, str]:
    """pytest-html's environment table: the plugin, the targets given, the cluster, and one row per kind of target
    (a fleet's 1,000 alike pods are one row)."""
    out = {"pytest-vllm-metrics": __version__}
    if settings.vllm_url:
        out["vLLM URLs"] = ", ".join(redact_url(url) for url in settings.vllm_url)
    if settings.vllm_sim:  # a fleet of one profile is named once, with how many
        out["Simulator profiles"] = ", ".join(
            profile if n == 1 else f"{profile} ({n} servers)" for profile, n in Counter(settings.vllm_sim).items())
    cluster = report.environment.get("kubernetes")
    if cluster is not None:
        out["Kubernetes"] = f"context {cluster['context']}, server {cluster['server']} ({cluster['version']})"
        out["Namespace"] = cluster["namespace"]
        out["Selector"] = " or ".join(cluster["selectors"])
        if cluster["notes"]:  # every note: a refused read says which grant is missing
            out["Notes"] = "; ".join(cluster["notes"])
    alike_targets: dict[str, list[Mapping[str, Any]]] = {}
    for impl in report.implementations:
        alike_targets.setdefault(_described(impl, bool(settings.vllm_upgrade_to)), []).append(impl)
    for shown, (text, impls) in enumerate(alike_targets.items()):
        if shown == _METADATA_ROWS:
            rest = sum(len(i) for i in list(alike_targets.values())[shown:])
            out["Other targets"] = f"{rest} more, each in the summary's table of vLLM servers"
            break
        names = [str(i["target"]) for i in impls]
        nodes = sorted({str(i["node"]) for i in impls if i.get("node")})
        where = (f", node {nodes[0]}" if len(nodes) == 1 else f", nodes {named(nodes)}" if nodes else "")
        key = f"Target {names[0]}" if len(names) == 1 else f"Targets {named(names)}"
        out[key] = text + where
    return out


def _described(impl: Mapping[str, Any], upgrade: bool) -> str:
    """One target as the environment table shows it, without what it does not know (no model was asked for
    when the run only scrapes)."""
    server = impl.get("modelServer") or "vllm"
    parts = [f"vLLM {impl.get('vllmVersion') or 'unknown'}" if server == "vllm" else server]
    if impl.get("model"):
        parts.append(f"model {impl['model']}")
    parts.append(f"arch {impl.get('architecture') or 'unknown'}")
    if impl.get("blockSize") is not None:
        parts.append(f"block size {impl['blockSize']}")
    if impl.get("prefixCaching") is not None:
        parts.append(f"prefix caching {impl['prefixCaching']}")
    parts.append(f"features {', '.join(impl.get('features') or []) or 'none detected'}")
    engines = multinode.engines_shown(impl)  # a data-parallel server: the engines its page carries
    if engines:
        parts.append(engines)
    if upgrade:
        parts.append("scraped once for the upgrade forecast, no workload")
    return ", ".join(parts)


# -- a page of its own: the merged report of a sharded run (`pytest-vllm-metrics merge -o report.html`) ------------


def page(report: Report) -> str:
    """The report as one self-contained HTML page, without pytest-html: the summary, the environment, and a table
    of every check (its target, level, outcome and reason), as pytest-html's report of a run shows them."""
    esc = _html.esc
    environment = [(key, value) for key, value in report.environment.items() if not isinstance(value, Mapping)]
    environment += [(f"settings {key}", value) for key, value in (report.environment.get("settings") or {}).items()]
    merged = report.environment.get("merged")
    if isinstance(merged, Mapping):
        environment.append(("merged from", f"{merged.get('shards')} shards: {', '.join(merged.get('files') or [])}"))
    env_rows = "".join(f"<tr><td>{esc(key)}</td><td>{esc(value)}</td></tr>" for key, value in environment)
    checks = "".join(
        f"<tr class='vllm-check'><td>{esc(row.id)}</td>{''.join(table_cells(row))}"
        f"<td>{esc(shown_reason(row) or '')}</td></tr>" for row in report.rows)
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>vLLM metrics conformance</title>"
            "</head><body>" + summary(report, in_pytest_html=False)
            + "<div id='vllm-summary'><h3 id='vllm-environment'>Environment</h3>"
            + f"<table class='vllm-summary'>{env_rows}</table>"
            + "<h3 id='results-table'>Every check</h3><table class='vllm-summary' id='vllm-checks'>"
            + "<tr><th>Test</th><th>Target</th><th>Level</th><th>Outcome</th><th>Reason</th></tr>"
            + checks + "</table></div></body></html>\n")
