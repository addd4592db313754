"""The pictures of the HTML report (the helper of report_html.py): outcome colours and symbols, each dashboard drawn
on Grafana's grid, the pods x checks grid and the workload's numbers as small inline SVG charts.

Everything is inline HTML, CSS and SVG: the report is one file that opens offline (no script, style or font
fetched). Colours are the Okabe-Ito palette (distinguishable with the common colour-vision deficiencies), and
every coloured mark also carries a symbol, so colour is never the only signal.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .gate import Result
from .rows import RowOutcome

# outcome -> (strong colour, light tint, symbol, word), in the order of a target's outcome bar
OUTCOMES: dict[RowOutcome, tuple[str, str, str, str]] = {
    RowOutcome.PASSED: ("#009E73", "#d9f2ea", "✓", "passed"),
    RowOutcome.FAILED: ("#D55E00", "#f9dfcc", "✗", "failed"),
    RowOutcome.ERROR: ("#D55E00", "#f9dfcc", "✗", "error"),
    RowOutcome.XFAILED: ("#E69F00", "#fcefd0", "!", "xfailed (documented limitation)"),
    RowOutcome.XPASSED: ("#E69F00", "#fcefd0", "!", "xpassed"),
    RowOutcome.INCONCLUSIVE: ("#5D3A9B", "#e6def3", "?", "inconclusive (could not observe)"),
    RowOutcome.SKIPPED: ("#8C8C8C", "#efefef", "–", "skipped (does not apply)"),
}
_LEGEND = (RowOutcome.PASSED, RowOutcome.FAILED, RowOutcome.XFAILED, RowOutcome.INCONCLUSIVE, RowOutcome.SKIPPED)
_DARK_TEXT = (RowOutcome.XFAILED, RowOutcome.XPASSED, RowOutcome.SKIPPED)  # light colours: black text on them
# the result's badge in an outcome's colour
_BADGE = {Result.SUCCESS: RowOutcome.PASSED, Result.PARTIAL: RowOutcome.XFAILED,
          Result.INCONCLUSIVE: RowOutcome.INCONCLUSIVE, Result.FAILURE: RowOutcome.FAILED}
_BEFORE, _AFTER = "#B0B0B0", "#0072B2"  # chart series: grey before the workload, blue after it
_GRID_COLUMNS = 24
_FLOW_W, _FLOW_H = 8, 5  # a panel without gridPos: three to a line


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def style() -> str:
    rules = [
        "#vllm-summary{font-family:sans-serif;line-height:1.35;color:#222;font-size:14px}",
                "#vllm-summary h2{margin-bottom:4px}#vllm-summary h3{margin:22px 0 6px}",
        "#vllm-summary a{color:#0072B2}",
        ".run-count{display:none}",  # pytest-html's own count leaves out skipped tests; ours is in the summary
        ".vllm-result{display:inline-block;padding:3px 12px;border-radius:4px;font-weight:bold;color:#fff}",
        ".vllm-legend{display:flex;flex-wrap:wrap;gap:6px 14px;margin:8px 0;font-size:13px}",
        ".vllm-legend span{display:inline-flex;align-items:center;gap:5px}",
        ".vllm-sym{display:inline-block;min-width:16px;height:16px;line-height:16px;text-align:center;"
        "border-radius:3px;font-weight:bold;font-size:12px;color:#fff}",
        "table.vllm-summary{border-collapse:collapse;margin:6px 0}",
        "table.vllm-summary th,table.vllm-summary td{padding:5px 14px;border-bottom:1px solid #ddd;"
        "vertical-align:top;text-align:left}",
        "table.vllm-summary td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}",
        "table.vllm-summary ul{margin:0;padding-left:18px}",
        "table.vllm-targets td:first-child{min-width:150px;overflow-wrap:anywhere}",
        ".vllm-reason{white-space:pre-wrap;overflow-wrap:anywhere}",
        ".vllm-dash{margin:10px 0 18px}",
        ".vllm-grid{display:grid;grid-template-columns:repeat(24,minmax(0,1fr));grid-auto-rows:minmax(18px,auto);"
        "gap:4px;background:#f4f5f5;padding:6px;border:1px solid #ddd;border-radius:4px}",
        ".vllm-row-title{font-weight:bold;font-size:13px;border-bottom:1px solid #bbb;align-self:end}",
        ".vllm-panel{border:1px solid #ccc;border-left:6px solid;border-radius:3px;padding:4px 7px;font-size:12px;"
        "min-width:0;overflow:hidden}",
        ".vllm-panel .t{font-weight:bold;font-size:13px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}",
        ".vllm-panel .v{font-weight:bold;margin:2px 0}",
        ".vllm-panel .r{white-space:nowrap;overflow:hidden;text-overflow:ellipsis;color:#333}",
        ".vllm-panel details{margin-top:3px}.vllm-panel summary{cursor:pointer;color:#555}",
        # the pods x checks grid: a square per check, in blocks per group that wrap alike on every row
        "table.vllm-matrix{border-collapse:collapse;font-size:11px;width:100%;margin:6px 0}",
        "table.vllm-matrix th,table.vllm-matrix td{text-align:left;vertical-align:top;padding:3px 6px;"
        "border-bottom:1px solid #e4e4e4}",
        "table.vllm-matrix .pod{max-width:220px;overflow-wrap:anywhere}",
        "table.vllm-matrix td.meta{white-space:nowrap}",
        ".vllm-blocks{display:flex;flex-wrap:wrap;gap:4px 10px}",
        ".vllm-block{display:grid;gap:2px;grid-auto-rows:12px;align-content:start}",
        ".vllm-block.head{display:block;font-size:10px;font-weight:bold;border-bottom:2px solid #888;"
        "overflow-wrap:anywhere}",
        ".cell{display:block;width:12px;height:12px;line-height:12px;font-size:9px;text-align:center;"
        "font-weight:bold;border-radius:2px;cursor:default}",
        ".cell.none{box-sizing:border-box;border:1px dashed #bbb}",
        "details.vllm-names{font-size:12px}details.vllm-names summary{cursor:pointer;color:#555}",
        ".vllm-names div{overflow-wrap:anywhere;max-height:12em;overflow-y:auto}",
        "table.vllm-readers td.vllm-bad{color:#D55E00;font-weight:bold}",
        ".vllm-story{font-size:15px}",
        "details.vllm-warning{margin:4px 0}details.vllm-warning summary{cursor:pointer}",
        "table.vllm-charts{border-collapse:collapse;font-size:12px}",
        "table.vllm-charts th,table.vllm-charts td{padding:4px 10px;border-bottom:1px solid #e4e4e4;text-align:left;"
        "vertical-align:middle}",
        "table.vllm-charts svg text{font-family:sans-serif;font-size:11px}",
        "ul.vllm-once li{margin-bottom:6px}",
    ]
    for outcome, (strong, tint, _, _) in OUTCOMES.items():
        rules.append(f".o-{outcome} .vllm-sym,.vllm-sym.o-{outcome}{{background:{strong}}}")
        rules.append(f".vllm-panel.o-{outcome}{{background:{tint};border-left-color:{strong}}}")
        text = "#000" if outcome in _DARK_TEXT else "#fff"
        rules.append(f".cell.o-{outcome}{{background:{strong};color:{text}}}")
        rules.append(f".vllm-result.o-{outcome}{{background:{strong}}}")
    for outcome in (RowOutcome.XFAILED, RowOutcome.XPASSED):
        rules.append(f".vllm-sym.o-{outcome},.o-{outcome} .vllm-sym{{color:#000}}")
    return "<style>" + "".join(rules) + "</style>"


def symbol(outcome: RowOutcome) -> str:
    _, _, mark, word = OUTCOMES[outcome]
    return f'<span class="vllm-sym o-{esc(outcome)}" title="{esc(word)}">{esc(mark)}</span>'


def legend(extra: str = "") -> str:
    items = "".join(f"<span>{symbol(o)} {esc(OUTCOMES[o][3])}</span>" for o in _LEGEND)
    return f'<div class="vllm-legend">{items}{extra}</div>'


def result_badge(result: Result) -> str:
    return (f'<span class="vllm-result o-{_BADGE[result]}" data-result="{esc(result)}">'
            f'{esc(result.value.upper())}</span>')


def outcome_bar(counts: dict[RowOutcome, int], width: int = 160) -> str:
    """One target's checks as a stacked bar, in the legend's order and colours."""
    total = sum(counts.values()) or 1
    x = 0.0
    parts = []
    for outcome in OUTCOMES:
        n = counts.get(outcome, 0)
        if n:
            w = width * n / total
            parts.append(f'<rect x="{x:.1f}" y="0" width="{w:.1f}" height="12" fill="{OUTCOMES[outcome][0]}">'
                         f"<title>{n} {esc(outcome)}</title></rect>")
            x += w
    return f'<svg width="{width}" height="12" role="img" aria-label="outcomes">{"".join(parts)}</svg>'


# -- dashboards, drawn -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PanelBox:
    dashboard: str
    dashboard_title: str
    title: str
    row: str
    grid: tuple[int, int, int, int] | None
    verdict: str  # the panel verdict: ok, partial, no data, ...
    outcome: RowOutcome
    reason: str


def place(panels: Sequence[PanelBox]) -> list[tuple[PanelBox | str, tuple[int, int, int, int]]]:
    """Where each panel goes on the 24-column grid, with a full-width bar for each row title.

    Each row is laid out on its own (its panels' y relative to its first panel), and the rows are stacked in
    the dashboard's order: collapsed rows keep the y of when they were open, so their raw y would overlap the
    panels below them. Panels without gridPos (the file says nothing) flow three to a line after the others."""
    sections: dict[str, list[PanelBox]] = {}
    for panel in panels:
        sections.setdefault(panel.row, []).append(panel)
    out: list[tuple[PanelBox | str, tuple[int, int, int, int]]] = []
    top = 0
    for row, members in sections.items():
        if row:
            out.append((row, (0, top, _GRID_COLUMNS, 1)))
            top += 1
        gridded = [p for p in members if p.grid is not None]
        first = min((p.grid[1] for p in gridded if p.grid), default=0)
        bottom = 0
        for panel in gridded:
            assert panel.grid is not None
            x, y, w, h = panel.grid
            x = min(x, _GRID_COLUMNS - 1)
            w = min(w, _GRID_COLUMNS - x)
            out.append((panel, (x, top + y - first, w, h)))
            bottom = max(bottom, y - first + h)
        x = 0
        for panel in (p for p in members if p.grid is None):
            if x + _FLOW_W > _GRID_COLUMNS:
                x, bottom = 0, bottom + _FLOW_H
            out.append((panel, (x, top + bottom, _FLOW_W, _FLOW_H)))
            x += _FLOW_W
        if x:
            bottom += _FLOW_H
        top += bottom
    return out


def dashboards(panels: Sequence[PanelBox]) -> str:
    by_dashboard: dict[str, list[PanelBox]] = {}
    for panel in panels:
        by_dashboard.setdefault(panel.dashboard, []).append(panel)
    parts = []
    for name, members in by_dashboard.items():
        title = members[0].dashboard_title or name
        shown = f"{title} ({name})" if title != name else name
        parts.append(f'<section class="vllm-dash" data-dashboard="{esc(name)}"><h4>{esc(shown)}</h4>'
                     f'<div class="vllm-grid">')
        for item, (x, y, w, h) in place(members):
            area = f"grid-column:{x + 1}/span {w};grid-row:{y + 1}/span {h}"
            if isinstance(item, str):
                parts.append(f'<div class="vllm-row-title" style="{area}">{esc(item)}</div>')
                continue
            # the one-line reason: without the "panel "T" (dashboard) " that the box already shows
            first = item.reason.split("\n", 1)[0]
            for lead in (f'panel "{item.title}" ({item.dashboard_title}) ', f'panel "{item.title}" '):
                if first.startswith(lead):
                    first = first.removeprefix(lead)
                    break
            parts.append(
                f'<div class="vllm-panel o-{esc(item.outcome)}" style="{area}" data-panel="{esc(item.title)}" '
                f'data-verdict="{esc(item.verdict)}" data-outcome="{esc(item.outcome)}" '
                f'data-grid="{x},{y},{w},{h}" title="{esc(item.reason or item.verdict)}">'
                f'<div class="t">{esc(item.title)}</div>'
                f'<div class="v">{symbol(item.outcome)} {esc(item.verdict)}</div>'
                + (f'<div class="r">{esc(first)}</div><details><summary>why</summary>'
                   f'<div class="vllm-reason">{esc(item.reason)}</div></details>' if item.reason else "")
                + "</div>")
        parts.append("</div></section>")
    return "".join(parts)


# -- pods x checks ----------------------------------------------------------------------------------------


def names(found: Sequence[str], like: bool = False, shown: int = 3) -> str:
    """Targets by name, folded when many: "97 targets like decode-0" (`like`: one row standing for alike
    targets) or the first few and how many more, every name in a <details> to unfold."""
    if len(found) == 1 or (not like and len(found) <= shown):
        return esc(", ".join(found))
    every = f'<details class="vllm-names"><summary>which</summary><div>{esc(", ".join(found))}</div></details>'
    if like:
        return f"<b>{len(found)} targets</b> like <b>{esc(found[0])}</b>{every}"
    return f"{esc(', '.join(found[:shown]))} and {len(found) - shown} more ({len(found)} targets){every}"


@dataclass(frozen=True)
class PodRow:
    """One row of the grid: targets with identical results (the first one named), each check's outcome and
    the reason it gave."""

    names: tuple[str, ...]
    architecture: str
    version: str
    cells: dict[str, tuple[RowOutcome, str]]  # check -> (outcome, reason)


_SQUARE, _GAP = 12, 2  # px of a check's square and the space between two
_BLOCK_MARGIN = 10  # px between two groups' blocks
_SQUARES_WIDTH = 700  # px the blocks may take on one line, beside the target, architecture and vLLM columns
_MIN_PER_LINE = 4  # squares on one line of a block, unless the group has fewer
_MIN_BLOCK = 56  # px of a block, for its group's name


def _per_line(sizes: Sequence[int]) -> list[int]:
    """Squares per line of each group's block: as few lines as fit the blocks side by side in _SQUARES_WIDTH
    (93 checks: two lines). With more groups than fit, the blocks wrap, alike on every row."""
    for lines in range(1, max(sizes, default=1) + 1):
        per = [max(min(n, _MIN_PER_LINE), -(-n // lines)) for n in sizes]
        if sum(_block_width(k) + _BLOCK_MARGIN for k in per) <= _SQUARES_WIDTH:
            return per
    return [min(n, _MIN_PER_LINE) for n in sizes]


def _block_width(per_line: int) -> int:
    # at least the width of a short group name above it ("relations", "server")
    return max(per_line * _SQUARE + (per_line - 1) * _GAP, _MIN_BLOCK)


def matrix(rows: Sequence[PodRow], columns: Sequence[tuple[str, str, str]]) -> str:
    """One row per set of alike targets; each check a square in its group's block, at the same place on every
    row, so that a column of squares reads down the fleet. No horizontal scrolling: the blocks wrap.

    `columns`: (group, check, short header), grouped."""
    groups: list[tuple[str, list[str]]] = []
    for group, check, _ in columns:
        if groups and groups[-1][0] == group:
            groups[-1][1].append(check)
        else:
            groups.append((group, [check]))
    per_line = _per_line([len(checks) for _, checks in groups])
    head = ['<table class="vllm-matrix"><thead><tr><th class="pod">Target</th><th>Architecture</th><th>vLLM</th>'
            '<th><div class="vllm-blocks">']
    head += [f'<div class="vllm-block head" style="width:{_block_width(k)}px" title="{esc(group)}: '
             f'{len(checks)} checks">{esc(group)} <span>({len(checks)})</span></div>'
             for (group, checks), k in zip(groups, per_line, strict=True)]
    head.append("</div></th></tr></thead><tbody>")
    body = []
    for row in rows:
        first, count = row.names[0], len(row.names)
        who = first if count == 1 else f"{first} and {count - 1} like it"
        line = [f'<tr data-target="{esc(first)}" data-targets="{esc(json.dumps(list(row.names)))}" '
                f'data-count="{count}"><th class="pod">{names(row.names, like=True)}</th>'
                f'<td class="meta">{esc(row.architecture)}</td><td class="meta">{esc(row.version)}</td>'
                f'<td><div class="vllm-blocks">']
        for (_, checks), k in zip(groups, per_line, strict=True):
            line.append(f'<div class="vllm-block" style="width:{_block_width(k)}px;'
                        f'grid-template-columns:repeat({k},{_SQUARE}px)">')
            for check in checks:
                found = row.cells.get(check)
                if found is None:
                    line.append(f'<span class="cell none" data-check="{esc(check)}" data-outcome="" '
                                f'title="{esc(who)} · {esc(check)}: not run"></span>')
                    continue
                outcome, reason = found
                mark = OUTCOMES[outcome][2]
                tip = f"{who} · {check}: {outcome.value.upper()}" + (f"\n{reason}" if reason else "")
                line.append(f'<span class="cell o-{esc(outcome)}" data-check="{esc(check)}" '
                            f'data-outcome="{esc(outcome)}" title="{esc(tip)}">{esc(mark)}</span>')
            line.append("</div>")
        line.append("</div></td></tr>")
        body.append("".join(line))
    return "".join(head) + "".join(body) + "</tbody></table>"


# -- the workload's numbers ------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "?" if value is None else f"{100 * value:.1f}%"


def _num(value: float | None) -> str:
    return "?" if value is None else f"{value:g}"


def hit_rate_bar(name: str, prefix: dict[str, float] | None, width: int = 180) -> str:
    """The prefix-cache hit rate during the workload: hits / queries of the counters' deltas."""
    hits = (prefix or {}).get("hits")
    queries = (prefix or {}).get("queries")
    rate = hits / queries if hits is not None and queries else None
    label = (f"{_pct(rate)} ({hits:g} of {queries:g} tokens)" if rate is not None and hits is not None
             and queries is not None else "no prefix-cache counters" if prefix is None
             else "no prefix-cache queries")
    w = width * min(max(rate or 0.0, 0.0), 1.0)
    return (f'<svg width="{width + 4}" height="30" role="img" aria-label="prefix-cache hit rate of {esc(name)}">'
            f'<rect x="0" y="0" width="{width}" height="12" fill="#eee"/>'
            f'<rect class="vllm-hit-bar" data-target="{esc(name)}" data-value="{"" if rate is None else f"{rate:.4f}"}"'
            f' x="0" y="0" width="{w:.1f}" height="12" fill="{_AFTER}"><title>{esc(label)}</title></rect>'
            f'<text x="0" y="26">{esc(label)}</text></svg>')


def before_after(name: str, kind: str, values: dict[str, float | None] | None, scale: float,
                 percent: bool, width: int = 150) -> str:
    """Two bars, before and after the workload, on a shared scale (1.0 for a fraction)."""
    values = values or {}
    before, after = values.get("before"), values.get("after")
    show = _pct if percent else _num
    label = f"{show(before)} → {show(after)}"
    bars = []
    for i, (which, value, colour) in enumerate((("before", before, _BEFORE), ("after", after, _AFTER))):
        w = width * min(max((value or 0.0) / scale, 0.0), 1.0) if scale else 0.0
        bars.append(f'<rect class="vllm-{kind}" data-target="{esc(name)}" data-when="{which}" '
                    f'data-value="{"" if value is None else value}" x="0" y="{i * 9}" width="{w:.1f}" height="8" '
                    f'fill="{colour}"><title>{which}: {esc(show(value))}</title></rect>')
    return (f'<svg width="{width + 4}" height="32" role="img" aria-label="{esc(kind)} of {esc(name)}">'
            f'<rect x="0" y="0" width="{width}" height="17" fill="#f3f3f3"/>{"".join(bars)}'
            f'<text x="0" y="29">{esc(label)}</text></svg>')


def _seconds(le: str) -> str:
    return "+Inf" if le == "+Inf" else f"{float(le):g} s"


def histogram(name: str, kind: str, buckets: Sequence[Sequence[Any]], width: int = 220) -> str:
    """The requests of the workload per histogram bucket (deltas of cumulative buckets), with p50 and p90."""
    bounds = [str(b[0]) for b in buckets]
    cumulative = [float(b[1]) for b in buckets]
    counts = [c - (cumulative[i - 1] if i else 0.0) for i, c in enumerate(cumulative)]
    total = cumulative[-1] if cumulative else 0.0
    if total <= 0:
        return f'<span class="vllm-{esc(kind)}" data-target="{esc(name)}" data-total="0">no requests observed</span>'
    used = [i for i, c in enumerate(counts) if c > 0]
    lo, hi = max(used[0] - 1, 0), min(used[-1] + 1, len(counts) - 1)
    shown = list(range(lo, hi + 1))
    step = width / len(shown)
    peak = max(counts[i] for i in shown) or 1.0

    def quantile(q: float) -> str:
        return _seconds(next(bounds[i] for i, c in enumerate(cumulative) if c >= q * total))

    bars = []
    for k, i in enumerate(shown):
        h = 36 * counts[i] / peak
        lower = _seconds(bounds[i - 1]) if i else "0 s"
        bars.append(f'<rect x="{k * step + 1:.1f}" y="{40 - h:.1f}" width="{max(step - 2, 1):.1f}" height="{h:.1f}" '
                    f'fill="{_AFTER}" data-le="{esc(bounds[i])}" data-count="{counts[i]:g}">'
                    f"<title>{counts[i]:g} requests in ({esc(lower)}, {esc(_seconds(bounds[i]))}]</title></rect>")
    label = f"{total:g} requests · p50 ≤ {quantile(0.5)} · p90 ≤ {quantile(0.9)}"
    return (f'<svg class="vllm-{esc(kind)}" data-target="{esc(name)}" data-total="{total:g}" width="{width + 4}" '
            f'height="68" role="img" aria-label="{esc(kind)} of {esc(name)}">'
            f'<line x1="0" y1="40.5" x2="{width}" y2="40.5" stroke="#999"/>{"".join(bars)}'
            f'<text x="0" y="52">{esc(_seconds(bounds[lo - 1]) if lo else "0 s")}</text>'
            f'<text x="{width}" y="52" text-anchor="end">{esc(_seconds(bounds[hi]))}</text>'
            f'<text x="0" y="65">{esc(label)}</text></svg>')


def charts(implementations: Iterable[dict[str, Any]]) -> str:
    """Per pod, what the workload did: one row each, the same scales down every column."""
    found = [i for i in implementations if isinstance(i.get("measured"), dict)]
    if not found:
        return ""
    requests = max([float(i["measured"].get("requestSuccess", {}).get("after") or 0.0) for i in found] + [1.0])
    rows = []
    for impl in found:
        name, measured = str(impl["target"]), impl["measured"]
        note = " (restarted between the scrapes)" if measured.get("restarted") else ""
        rows.append(
            f'<tr data-target="{esc(name)}"><th>{esc(name)}{esc(note)}</th>'
            f"<td>{hit_rate_bar(name, measured.get('prefixCache'))}</td>"
            f"<td>{before_after(name, 'kv-usage', measured.get('kvCacheUsage'), 1.0, True)}</td>"
            f"<td>{before_after(name, 'requests', measured.get('requestSuccess'), requests, False)}</td>"
            f"<td>{histogram(name, 'ttft', measured.get('ttft') or [])}</td>"
            f"<td>{histogram(name, 'e2e', measured.get('e2eLatency') or [])}</td></tr>")
    key = (f'<span><svg width="12" height="10"><rect width="12" height="10" fill="{_BEFORE}"/></svg> before the '
           f'workload</span><span><svg width="12" height="10"><rect width="12" height="10" fill="{_AFTER}"/></svg> '
           f"after it (or during it: hit rate, latencies)</span>")
    return (f'<div class="vllm-legend">{key}</div><table class="vllm-charts">'
            "<tr><th>Target</th>"
            "<th>Prefix-cache hit rate during the workload</th><th>KV-cache usage</th>"
            "<th>Requests finished (vllm:request_success_total)</th>"
            "<th>Time to first token</th><th>End-to-end latency</th></tr>" + "".join(rows) + "</table>")
