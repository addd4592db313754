"""The HTML report's pictures (_html.py), read as a browser reads them: outcome symbols and colours, each dashboard
on Grafana's 24-column grid, the pods x checks grid, the workload's charts, and a style sheet that is well formed
and only styles what the report draws."""

from __future__ import annotations

import re

import pytest

from conftest import parse_html
from pytest_vllm_metrics import _html
from pytest_vllm_metrics._html import OUTCOMES, PanelBox, PodRow
from pytest_vllm_metrics.gate import Result
from pytest_vllm_metrics.rows import RowOutcome

P, F, X, Q, S = (RowOutcome.PASSED, RowOutcome.FAILED, RowOutcome.XFAILED, RowOutcome.INCONCLUSIVE,
                 RowOutcome.SKIPPED)


def test_each_outcome_has_its_symbol_word_and_colour() -> None:
    assert _html.symbol(F) == '<span class="vllm-sym o-failed" title="failed">✗</span>'
    assert [parse_html(_html.symbol(o)).one("span").text for o in RowOutcome] == ["✓", "✗", "✗", "!", "!", "?", "–"]
    legend = parse_html(_html.legend("<span>and more</span>")).one("div", class_="vllm-legend")
    assert [s.text for s in legend.children if not isinstance(s, str)] == [
        "✓ passed", "✗ failed", "! xfailed (documented limitation)", "? inconclusive (could not observe)",
        "– skipped (does not apply)", "and more"]
    assert _html.legend().endswith("</span> skipped (does not apply)</span></div>")
    assert [_html.result_badge(r) for r in Result] == [
        '<span class="vllm-result o-passed" data-result="success">SUCCESS</span>',
        '<span class="vllm-result o-xfailed" data-result="partial">PARTIAL</span>',
        '<span class="vllm-result o-inconclusive" data-result="inconclusive">INCONCLUSIVE</span>',
        '<span class="vllm-result o-failed" data-result="failure">FAILURE</span>']
    assert _html.esc('<a href="x">\'&') == "&lt;a href=&quot;x&quot;&gt;&#x27;&amp;"
    assert _html.esc(3) == "3"


def test_an_outcome_bar_stacks_the_checks_in_the_legends_order() -> None:
    bar = parse_html(_html.outcome_bar({S: 1, F: 1, P: 2})).one("svg")
    assert bar.attrs == {"width": "160", "height": "12", "role": "img", "aria-label": "outcomes"}
    assert [(r.attrs["x"], r.attrs["width"], r.attrs["fill"], r.text) for r in bar.all("rect")] == [
        ("0.0", "80.0", "#009E73", "2 passed"), ("80.0", "40.0", "#D55E00", "1 failed"),
        ("120.0", "40.0", "#8C8C8C", "1 skipped")]
    assert parse_html(_html.outcome_bar({}, width=10)).one("svg").all("rect") == []
    assert [r.attrs["width"] for r in parse_html(_html.outcome_bar({Q: 3}, width=90)).all("rect")] == ["90.0"]


def _box(title: str, grid: tuple[int, int, int, int] | None, row: str = "", outcome: RowOutcome = P,
         reason: str = "", dashboard: str = "d", dashboard_title: str = "D") -> PanelBox:
    return PanelBox(dashboard, dashboard_title, title, row, grid, "ok" if outcome == P else "no data", outcome, reason)


def test_panels_are_placed_row_by_row_on_the_24_column_grid() -> None:
    placed = _html.place([
        _box("a", (0, 0, 12, 8)), _box("b", (12, 0, 12, 4)), _box("c", (0, 8, 24, 2)),
        # a collapsed row keeps the y of when it was open (here 30): laid out from its first panel
        _box("d", (0, 30, 6, 3), row="Cache"), _box("e", (20, 33, 10, 3), row="Cache"),  # e's w is cut at the edge
        _box("f", (30, 40, 4, 2), row="Cache"),  # beyond the last column: in it
        _box("g", None, row="Cache"), _box("h", None, row="Cache"), _box("i", None, row="Cache"),
        _box("j", None, row="Cache")])
    assert [(p if isinstance(p, str) else p.title, at) for p, at in placed] == [
        ("a", (0, 0, 12, 8)), ("b", (12, 0, 12, 4)), ("c", (0, 8, 24, 2)),
        ("Cache", (0, 10, 24, 1)),
        ("d", (0, 11, 6, 3)), ("e", (20, 14, 4, 3)), ("f", (23, 21, 1, 2)),
        # without gridPos: three to a line, below the row's panels (its bottom is f's: 10 + 1 + 12)
        ("g", (0, 23, 8, 5)), ("h", (8, 23, 8, 5)), ("i", (16, 23, 8, 5)), ("j", (0, 28, 8, 5))]
    flowed = _html.place([_box("a", None), _box("b", None, row="R"), _box("c", (0, 0, 24, 2), row="R")])
    assert [(p if isinstance(p, str) else p.title, at) for p, at in flowed] == [
        ("a", (0, 0, 8, 5)), ("R", (0, 5, 24, 1)), ("c", (0, 6, 24, 2)), ("b", (0, 8, 8, 5))]
    assert _html.place([]) == []


def test_each_dashboard_is_drawn_with_its_panels_verdicts_and_reasons() -> None:
    drawn = parse_html(_html.dashboards([
        _box("Throughput", (0, 0, 12, 8)),
        _box("KV", (12, 0, 12, 8), row="Cache", outcome=F,
             reason='panel "KV" (D) Query A: vllm:gpu_cache_usage_perc is gone\nsecond line'),
        _box("Other", None, dashboard="e", dashboard_title="", outcome=Q, reason='panel "Other" Query B: unknown'),
        _box("Same", None, dashboard="f", dashboard_title="f", outcome=F, reason="no lead here")]))
    sections = drawn.all("section", class_="vllm-dash")
    assert [(s.attrs["data-dashboard"], s.one("h4").text) for s in sections] == [("d", "D (d)"), ("e", "e"),
                                                                                  ("f", "f")]
    grid = sections[0].one("div", class_="vllm-grid")
    assert grid.one("div", class_="vllm-row-title").attrs["style"] == "grid-column:1/span 24;grid-row:9/span 1"
    assert grid.one("div", class_="vllm-row-title").text == "Cache"
    ok, kv = grid.all("div", class_="vllm-panel")
    assert ok.attrs == {"class": "vllm-panel o-passed", "style": "grid-column:1/span 12;grid-row:1/span 8",
                        "data-panel": "Throughput", "data-verdict": "ok", "data-outcome": "passed",
                        "data-grid": "0,0,12,8", "title": "ok"}
    assert ok.text == "Throughput ✓ ok" and ok.all("details") == []
    assert kv.attrs["style"] == "grid-column:13/span 12;grid-row:10/span 8" and kv.attrs["data-grid"] == "12,9,12,8"
    assert kv.attrs["title"] == 'panel "KV" (D) Query A: vllm:gpu_cache_usage_perc is gone\nsecond line'
    assert (kv.one("div", class_="t").text, kv.one("div", class_="v").text) == ("KV", "✗ no data")
    # one line in the box, without what the box already shows; the whole reason unfolds
    assert kv.one("div", class_="r").text == "Query A: vllm:gpu_cache_usage_perc is gone"
    assert kv.one("details").text == 'why panel "KV" (D) Query A: vllm:gpu_cache_usage_perc is gone second line'
    other = sections[1].one("div", class_="vllm-panel")
    assert other.one("div", class_="r").text == "Query B: unknown"
    assert other.attrs["style"] == "grid-column:1/span 8;grid-row:1/span 5"
    assert sections[2].one("div", class_="r").text == "no lead here"
    assert _html.dashboards([]) == ""


def test_targets_are_named_or_folded() -> None:
    assert _html.names(["a"]) == "a" and _html.names(["a"], like=True) == "a"
    assert _html.names(["a", "b", "c"]) == "a, b, c"
    assert _html.names(["a", "<b>"], like=True) == (
        '<b>2 targets</b> like <b>a</b><details class="vllm-names"><summary>which</summary><div>a, &lt;b&gt;</div>'
        '</details>')
    assert _html.names(["a", "b", "c", "d"]) == (
        'a, b, c and 1 more (4 targets)<details class="vllm-names"><summary>which</summary><div>a, b, c, d</div>'
        '</details>')
    assert parse_html(_html.names(["a", "b", "c"], shown=2)).text == "a, b and 1 more (3 targets) which a, b, c"


def test_the_grids_blocks_take_as_few_lines_as_fit_700_px() -> None:
    assert _html._block_width(1) == 56 and _html._block_width(4) == 56 and _html._block_width(5) == 68
    assert _html._per_line([93]) == [47]  # 93 checks: two lines of 47 squares (656 px)
    assert _html._per_line([50]) == [25]  # 698 px and 10 px of margin: over 700, two lines
    assert _html._per_line([49]) == [49]  # 684 px and 10 px of margin: 694, one line
    assert _html._per_line([1, 2]) == [1, 2]
    assert _html._per_line([3, 40, 50]) == [3, 14, 17]
    assert _html._per_line([10] * 20) == [4] * 20  # more groups than fit: they wrap, four squares a line
    assert _html._per_line([]) == []


def test_the_pods_by_checks_grid() -> None:
    columns = [("server", "reachable", "reachable"), ("server", "version", "version"),
               ("moves", "moves: vllm:a", "a")]
    rows = [PodRow(("decode-0",), "amd64", "0.32.0", {"reachable": (P, ""), "moves: vllm:a": (F, "stuck at 0")}),
            PodRow(("decode-1", "decode-2"), "arm64", "?", {"reachable": (Q, "timed out"), "version": (X, "doc"),
                                                            "moves: vllm:a": (S, "")})]
    grid = parse_html(_html.matrix(rows, columns)).one("table", class_="vllm-matrix")
    assert grid.one("thead").text == "Target Architecture vLLM server (2) moves (1)"
    heads = grid.all("div", class_="head")
    assert [(h.attrs["style"], h.attrs["title"]) for h in heads] == [("width:56px", "server: 2 checks"),
                                                                    ("width:56px", "moves: 1 checks")]
    first, second = grid.one("tbody").all("tr")
    assert first.attrs == {"data-target": "decode-0", "data-targets": '["decode-0"]', "data-count": "1"}
    assert second.attrs == {"data-target": "decode-1", "data-targets": '["decode-1", "decode-2"]', "data-count": "2"}
    assert [c.text for c in first.all("td", class_="meta")] == ["amd64", "0.32.0"]
    assert first.one("th").text == "decode-0"
    assert second.one("th").text == "2 targets like decode-1 which decode-1, decode-2"
    assert [b.attrs["style"] for b in first.all("div", class_="vllm-block")] == [
        "width:56px;grid-template-columns:repeat(2,12px)", "width:56px;grid-template-columns:repeat(1,12px)"]
    cells = [(c.attrs["class"], c.attrs["data-check"], c.attrs["data-outcome"], c.attrs["title"], c.text)
             for c in first.all("span")]
    assert cells == [("cell o-passed", "reachable", "passed", "decode-0 · reachable: PASSED", "✓"),
                     ("cell none", "version", "", "decode-0 · version: not run", ""),
                     ("cell o-failed", "moves: vllm:a", "failed", "decode-0 · moves: vllm:a: FAILED\nstuck at 0", "✗")]
    assert [(c.attrs["title"], c.text) for c in second.all("span", class_="cell")] == [
        ("decode-1 and 1 like it · reachable: INCONCLUSIVE\ntimed out", "?"),
        ("decode-1 and 1 like it · version: XFAILED\ndoc", "!"),
        ("decode-1 and 1 like it · moves: vllm:a: SKIPPED", "–")]


def test_the_prefix_cache_hit_rate_of_the_workload() -> None:
    bar = parse_html(_html.hit_rate_bar("a<", {"hits": 1.0, "queries": 4.0})).one("svg")
    assert (bar.attrs["width"], bar.attrs["aria-label"]) == ("184", "prefix-cache hit rate of a<")
    rate = bar.one("rect", class_="vllm-hit-bar")
    assert (rate.attrs["data-target"], rate.attrs["data-value"], rate.attrs["width"], rate.text) == (
        "a<", "0.2500", "45.0", "25.0% (1 of 4 tokens)")
    assert bar.one("text").text == "25.0% (1 of 4 tokens)"
    assert bar.all("rect")[0].attrs == {"x": "0", "y": "0", "width": "180", "height": "12", "fill": "#eee"}
    for prefix, label in ((None, "no prefix-cache counters"), ({"hits": 0.0, "queries": 0.0},
                                                                "no prefix-cache queries"),
                          ({"queries": 3.0}, "no prefix-cache queries")):
        rect = parse_html(_html.hit_rate_bar("a", prefix)).one("rect", class_="vllm-hit-bar")
        assert (rect.attrs["data-value"], rect.attrs["width"], rect.text) == ("", "0.0", label)
    full = parse_html(_html.hit_rate_bar("a", {"hits": 6.0, "queries": 4.0}, width=100)).one("rect",
                                                                                             class_="vllm-hit-bar")
    assert (full.attrs["width"], full.attrs["data-value"], full.text) == ("100.0", "1.5000", "150.0% (6 of 4 tokens)")


def test_before_and_after_on_a_shared_scale() -> None:
    usage = parse_html(_html.before_after("a", "kv-usage", {"before": 0.25, "after": None}, 1.0, True)).one("svg")
    assert (usage.attrs["width"], usage.attrs["aria-label"]) == ("154", "kv-usage of a")
    assert [(r.attrs["class"], r.attrs["data-when"], r.attrs["data-value"], r.attrs["y"], r.attrs["width"],
             r.attrs["fill"], r.text) for r in usage.all("rect", class_="vllm-kv-usage")] == [
        ("vllm-kv-usage", "before", "0.25", "0", "37.5", "#B0B0B0", "before: 25.0%"),
        ("vllm-kv-usage", "after", "", "9", "0.0", "#0072B2", "after: ?")]
    assert usage.one("text").text == "25.0% → ?"
    requests = parse_html(_html.before_after("a", "requests", {"before": 2.0, "after": 16.0}, 8.0, False, width=100))
    assert [(r.attrs["data-value"], r.attrs["width"], r.text) for r in requests.all("rect", class_="vllm-requests")
            ] == [("2.0", "25.0", "before: 2"), ("16.0", "100.0", "after: 16")]
    assert requests.one("text").text == "2 → 16"
    assert [r.attrs["width"] for r in parse_html(_html.before_after("a", "k", {"before": 1.0}, 0.0, False)).all(
        "rect", class_="vllm-k")] == ["0.0", "0.0"]  # no scale: no bar
    assert parse_html(_html.before_after("a", "k", None, 1.0, True)).one("text").text == "? → ?"
    assert [r.attrs["width"] for r in parse_html(_html.before_after("a", "k", {"before": -1.0}, 1.0, True)).all(
        "rect", class_="vllm-k")] == ["0.0", "0.0"]


def test_a_latency_histogram_of_the_workloads_requests() -> None:
    buckets = [["0.05", 0.0], ["0.1", 0.0], ["0.5", 1.0], ["1.0", 3.0], ["2.5", 4.0], ["5.0", 4.0], ["+Inf", 4.0]]
    svg = parse_html(_html.histogram("a", "ttft", buckets)).one("svg")
    assert {k: svg.attrs[k] for k in ("class", "data-target", "data-total", "width", "aria-label")} == {
        "class": "vllm-ttft", "data-target": "a", "data-total": "4", "width": "224", "aria-label": "ttft of a"}
    # the buckets that hold requests, and one empty bucket either side
    bars = [(r.attrs["x"], r.attrs["y"], r.attrs["width"], r.attrs["height"], r.attrs["data-le"],
             r.attrs["data-count"], r.text) for r in svg.all("rect")]
    assert bars == [("1.0", "40.0", "42.0", "0.0", "0.1", "0", "0 requests in (0.05 s, 0.1 s]"),
                    ("45.0", "22.0", "42.0", "18.0", "0.5", "1", "1 requests in (0.1 s, 0.5 s]"),
                    ("89.0", "4.0", "42.0", "36.0", "1.0", "2", "2 requests in (0.5 s, 1 s]"),
                    ("133.0", "22.0", "42.0", "18.0", "2.5", "1", "1 requests in (1 s, 2.5 s]"),
                    ("177.0", "40.0", "42.0", "0.0", "5.0", "0", "0 requests in (2.5 s, 5 s]")]
    assert [t.text for t in svg.all("text")] == ["0.05 s", "5 s", "4 requests · p50 ≤ 1 s · p90 ≤ 2.5 s"]
    first = parse_html(_html.histogram("a", "e2e", [["0.5", 2.0], ["+Inf", 2.0]], width=100)).one("svg")
    assert [(r.attrs["x"], r.attrs["width"], r.text) for r in first.all("rect")] == [
        ("1.0", "48.0", "2 requests in (0 s, 0.5 s]"), ("51.0", "48.0", "0 requests in (0.5 s, +Inf]")]
    assert [t.text for t in first.all("text")] == ["0 s", "+Inf", "2 requests · p50 ≤ 0.5 s · p90 ≤ 0.5 s"]
    late = parse_html(_html.histogram("a", "e2e", [["1", 0.0], ["+Inf", 3.0]])).one("svg")
    assert [t.text for t in late.all("text")] == ["0 s", "+Inf", "3 requests · p50 ≤ +Inf · p90 ≤ +Inf"]
    for empty in ([], [["0.5", 0.0], ["+Inf", 0.0]]):
        assert _html.histogram("a", "ttft", empty) == (
            '<span class="vllm-ttft" data-target="a" data-total="0">no requests observed</span>')
    assert parse_html(_html.histogram("a", "t", [["1", 1.0]], width=1)).one("rect").attrs["width"] == "1.0"


def test_the_workload_charts_one_row_per_pod_on_shared_scales() -> None:
    measured = {"kvCacheUsage": {"before": 0.0, "after": 0.5}, "requestSuccess": {"before": 0.0, "after": 4.0},
                "prefixCache": {"hits": 1.0, "queries": 4.0}, "restarted": False,
                "ttft": [["0.5", 4.0], ["+Inf", 4.0]], "e2eLatency": []}
    found = parse_html(_html.charts([
        {"target": "a", "measured": measured},
        {"target": "b", "measured": measured | {"restarted": True, "requestSuccess": {"before": 4.0, "after": 8.0}}},
        {"target": "c", "measured": None}]))
    table = found.one("table", class_="vllm-charts")
    rows = table.all("tr")
    assert rows[0].text == ("Target Prefix-cache hit rate during the workload KV-cache usage Requests finished "
                            "(vllm:request_success_total) Time to first token End-to-end latency")
    assert [(r.attrs["data-target"], r.one("th").text) for r in rows[1:]] == [
        ("a", "a"), ("b", "b (restarted between the scrapes)")]
    # the requests' bars share the largest count as their scale: a's 4 is half of b's 8
    assert [r.attrs["width"] for r in rows[1].all("rect", class_="vllm-requests")] == ["0.0", "75.0"]
    assert [r.attrs["width"] for r in rows[2].all("rect", class_="vllm-requests")] == ["75.0", "150.0"]
    assert rows[1].one("span", class_="vllm-e2e").text == "no requests observed"
    assert rows[1].one("svg", class_="vllm-ttft").attrs["data-total"] == "4"
    assert [s.text for s in found.one("div", class_="vllm-legend").children if not isinstance(s, str)] == [
        "before the workload", "after it (or during it: hit rate, latencies)"]
    assert [r.attrs["fill"] for r in found.one("div", class_="vllm-legend").all("rect")] == ["#B0B0B0", "#0072B2"]
    # no finished requests anywhere: the scale is one request
    idle = parse_html(_html.charts([{"target": "a", "measured": {"requestSuccess": {"before": 0.5, "after": None}}}]))
    assert [r.attrs["width"] for r in idle.all("rect", class_="vllm-requests")] == ["75.0", "0.0"]
    assert parse_html(_html.charts([{"target": "a", "measured": {}}])).one("span", class_="vllm-ttft").text == (
        "no requests observed")
    assert _html.charts([{"target": "c", "measured": None}]) == "" and _html.charts([]) == ""


def test_the_style_sheet_is_well_formed_and_styles_what_the_report_draws() -> None:
    css = _html.style()
    assert css.startswith("<style>") and css.endswith("</style>")
    body = css.removeprefix("<style>").removesuffix("</style>")
    rules = re.findall(r"([^{}]+)\{([^{}]*)\}", body)
    assert "".join(f"{s}{{{d}}}" for s, d in rules) == body  # nothing outside a rule
    known = {"vllm-summary", "vllm-result", "vllm-legend", "vllm-sym", "vllm-targets", "vllm-reason", "vllm-dash",
             "vllm-grid", "vllm-row-title", "vllm-panel", "t", "v", "r", "vllm-matrix", "pod", "meta", "vllm-blocks",
             "vllm-block", "head", "cell", "none", "vllm-names", "vllm-readers", "vllm-bad", "vllm-story",
             "vllm-warning", "vllm-charts", "vllm-once", "num", "run-count",  # pytest-html's own count, hidden
             *(f"o-{o}" for o in RowOutcome)}
    tags = {"h2", "h3", "a", "span", "table", "th", "td", "ul", "li", "details", "summary", "div", "svg", "text"}
    for selectors, declarations in rules:
        for selector in selectors.split(","):
            for part in selector.split():
                tag, *names = re.split(r"(?=[.#:])", part)
                assert tag == "" or tag in tags, selector
                for name in names:
                    assert name in (":first-child",) or (name[0] in ".#" and name[1:] in known), selector
        for declaration in declarations.split(";"):
            prop, _, value = declaration.partition(":")
            assert re.fullmatch(r"[a-z-]+", prop) and value and value == value.strip(), declaration
    # each outcome's colours, and black text on its light ones
    for outcome, (strong, tint, _, _) in OUTCOMES.items():
        assert f".vllm-panel.o-{outcome}{{background:{tint};border-left-color:{strong}}}" in body
        text = "#000" if outcome in (X, RowOutcome.XPASSED, S) else "#fff"
        assert f".cell.o-{outcome}{{background:{strong};color:{text}}}" in body
        assert f".vllm-result.o-{outcome}{{background:{strong}}}" in body
        assert f".o-{outcome} .vllm-sym,.vllm-sym.o-{outcome}{{background:{strong}}}" in body
    assert ".vllm-sym.o-xfailed,.o-xfailed .vllm-sym{color:#000}" in body
    assert ".vllm-sym.o-xpassed,.o-xpassed .vllm-sym{color:#000}" in body
    assert ".run-count{display:none}" in body


@pytest.mark.parametrize(("value", "pct", "num"), [(None, "?", "?"), (0.0, "0.0%", "0"), (0.12345, "12.3%", "0.12345"),
                                                   (3.0, "300.0%", "3")])
def test_numbers_as_the_charts_print_them(value: float | None, pct: str, num: str) -> None:
    assert (_html._pct(value), _html._num(value)) == (pct, num)
