"""The HTML report's summary, results-table cells and environment table, read as a browser reads them: each
section's text, its links and the data-* attributes a reader (or a script) relies on, for a run on pods, panels
and consumers, an upgrade forecast and a fleet."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from conftest import (
    KV_REASON,
    NO_PREFIX,
    NOT_ON_ARM,
    REPORT_TARGETS,
    RULE_REASON,
    TIMED_OUT,
    Node,
    parse_html,
    report_rows,
    upgrade_rows,
)
from pytest_vllm_metrics import report_html
from pytest_vllm_metrics.kube import ClusterInfo
from pytest_vllm_metrics.outcome import Level
from pytest_vllm_metrics.report import Tally, build
from pytest_vllm_metrics.rows import Row, RowOutcome, TargetResult
from pytest_vllm_metrics.settings import Settings

LAYOUT = [{"dashboard": "vllm-dash", "dashboardTitle": "vLLM", "title": title, "row": row, "grid": grid}
          for title, row, grid in (("Throughput", "", [0, 0, 12, 8]), ("Not judged", "", [12, 0, 12, 8]),
                                   ("KV Cache Usage", "Cache", [0, 9, 24, 6]))]


def page(rows: list[Row], targets: list[dict[str, Any]] | None = None, **kwargs: Any) -> Node:
    """The summary of a run, parsed."""
    text = report_html.summary(build(rows, implementations=targets or [], **kwargs))
    assert text.startswith("<style>") and text.endswith("</div><!-- /vllm-summary -->")
    root = parse_html(text)
    summary = root.one("div", id="vllm-summary")
    assert loose_text(root, top=True) + loose_text(summary, top=True) == []
    return summary


def loose_text(node: Node, top: bool = False) -> list[str]:
    """Text that no element of its own holds: between the summary's sections, a table's rows, a list's items
    (a browser draws it where no reader expects it)."""
    found = [c for c in node.children if isinstance(c, str) and c.strip()] if top or node.tag in _NO_TEXT else []
    return found + [text for c in node.children if isinstance(c, Node) for text in loose_text(c)]


_NO_TEXT = {"section", "table", "thead", "tbody", "tr", "ul", "ol"}


def sections(summary: Node) -> list[str]:
    """The summary's parts in order: each heading's text."""
    return [n.text for n in summary.all() if n.tag in ("h2", "h3", "h4")]


def test_a_run_on_pods_panels_and_consumers_from_the_top() -> None:
    summary = page(report_rows(), REPORT_TARGETS, layout=LAYOUT)
    assert sections(summary) == [
        "vLLM metrics conformance", "vLLM servers", "Pods × checks", "Grafana panels: will they show data?",
        "vLLM (vllm-dash)", "Other consumers of the metrics: will they get data?", "Alerting and recording rules",
        "Autoscalers and adapters (KEDA, prometheus-adapter)", "? Could not observe (neither passed nor failed)",
        "! Documented limitations (XFAIL)"]
    badge = summary.one("span", class_="vllm-result")
    assert (badge.attrs, badge.text) == ({"class": "vllm-result o-failed", "data-result": "failure"}, "FAILURE")
    assert summary.one("span", class_="vllm-tally").text == "9 checks: 2 failed, 2 inconclusive, 4 passed, 1 xfailed"
    story = summary.one("p", class_="vllm-story")
    assert story.text == ("What failed: 1 of 3 targets failed; 1 of 2 panels failed; 1 of 3 targets could not be "
                          "judged; 1 of 1 rule could not be judged.")
    assert [a.attrs["href"] for a in story.all("a")] == ["#vllm-targets", "#vllm-dashboards", "#vllm-targets",
                                                        "#vllm-rules"]
    # every link leads to a section of the page
    ids = {n.attrs["id"] for n in summary.all() if "id" in n.attrs}
    assert {a.attrs["href"][1:] for a in summary.all("a")} <= ids
    assert summary.one("div", class_="vllm-legend").text == (
        "✓ passed✗ failed! xfailed (documented limitation)? inconclusive (could not observe)– skipped (does not "
        "apply)(pytest-html's \"Skipped\" filter below includes the inconclusive tests)")


def test_the_readers_table_counts_each_reader_and_links_its_section() -> None:
    table = page(report_rows()).one("table", class_="vllm-readers")
    rows = table.all("tr")
    assert rows[0].text == "Reader Checked ✗ failed ? inconclusive ! xfailed ✓ passed – skipped"
    assert [{k: v for k, v in r.attrs.items()} for r in rows[1:]] == [
        {"data-overview": "targets", "data-total": "3", "data-failed": "1", "data-inconclusive": "1",
         "data-xfailed": "1", "data-passed": "0", "data-skipped": "0"},
        {"data-overview": "dashboards", "data-total": "2", "data-failed": "1", "data-inconclusive": "0",
         "data-xfailed": "0", "data-passed": "1", "data-skipped": "0"},
        {"data-overview": "rules", "data-total": "1", "data-failed": "0", "data-inconclusive": "1",
         "data-xfailed": "0", "data-passed": "0", "data-skipped": "0"},
        {"data-overview": "scalers", "data-total": "1", "data-failed": "0", "data-inconclusive": "0",
         "data-xfailed": "0", "data-passed": "1", "data-skipped": "0"}]
    assert [r.text for r in rows[1:]] == ["vLLM servers 3 targets 1 1 1", "Grafana panels 2 panels 1 1",
                                          "Alerting and recording rules 1 rule 1",
                                          "Autoscalers and adapters (KEDA, prometheus-adapter) 1 reader 1"]
    assert [r.one("a").attrs["href"] for r in rows[1:]] == ["#vllm-targets", "#vllm-dashboards", "#vllm-rules",
                                                           "#vllm-scalers"]
    # each count in its bucket's column; a failure stands out
    first = rows[1].all("td")
    assert [(c.attrs.get("data-bucket"), c.attrs["class"], c.text) for c in first[1:]] == [
        (None, "num", "3 targets"), ("failed", "num vllm-bad", "1"), ("inconclusive", "num", "1"),
        ("xfailed", "num", "1"), ("passed", "num", ""), ("skipped", "num", "")]
    assert [c.attrs["class"] for c in rows[3].all("td")[2:]] == ["num"] * 5  # no failure: nothing stands out
    assert page([]).all("table", class_="vllm-readers") == [] and page([]).all("p", class_="vllm-story") == []


def test_the_targets_table_folds_alike_pods_and_states_each_reason_once() -> None:
    table = page(report_rows(), REPORT_TARGETS).one("table", class_="vllm-targets")
    rows = table.all("tr")
    assert rows[0].text == "Target Architecture vLLM Passed Checks Not working, and why"
    # the rows that did not pass first (worst first), each with its outcome bar and what does not work
    assert [(r.attrs["data-target"], json.loads(r.attrs["data-targets"]), r.attrs["data-count"],
             r.attrs["data-worst"]) for r in rows[1:]] == [
        ("decode-1", ["decode-1"], "1", "failed"), ("decode-2", ["decode-2"], "1", "inconclusive"),
        ("decode-0", ["decode-0"], "1", "xfailed")]
    assert [r.text for r in rows[1:]] == [
        f"decode-1 amd64 0.32.0 ✓ 2 of 3 2 passed 1 failed ✗ moves: vllm:prefix_cache_hits_total: {NO_PREFIX}",
        "decode-2 amd64 0.32.0 ✓ 1 of 3 1 passed 2 inconclusive ? 2 checks: could not observe (below)",
        "decode-0 arm64 0.11.2 ✓ 2 of 3 2 passed 1 xfailed ! 1 check: documented limitation (below)"]
    assert [li.attrs["class"] for r in rows[1:] for li in r.all("li")] == ["o-failed", "o-inconclusive", "o-xfailed"]
    assert [a.attrs["href"] for a in table.all("a")] == ["#vllm-unobserved", "#vllm-limitations"]
    # pods with identical results are one row; a reason only some of them gave names them
    def pod(name: str, reason: str, outcome: str = "failed") -> Row:
        return Row(id=f"conformance/test_server.py::test_reachable[{name}]", target=name, check="reachable",
                   level=Level.MUST, outcome=RowOutcome(outcome), reason=f"{name}: {reason}")

    targets = [{"target": n, "architecture": "amd64", "vllmVersion": "0.32.0"} for n in ("a", "b", "c", "d")]
    table = page([pod("a", "refused"), pod("b", "refused"), pod("c", "timed out"), pod("d", "", "passed")],
                 targets).one("table", class_="vllm-targets")
    rows = table.all("tr")[1:]
    assert [(r.attrs["data-target"], json.loads(r.attrs["data-targets"]), r.attrs["data-count"]) for r in rows] == [
        ("a", ["a", "b", "c"], "3"), ("d", ["d"], "1")]
    assert rows[0].all("td")[0].text == "3 targets like a which a, b, c"
    assert [li.text for li in rows[0].all("li")] == ["✗ reachable: refused (on a, b)", "✗ reachable: timed out (on c)"]
    assert rows[1].text == "d amd64 0.32.0 ✓ 1 of 1 1 passed everything checked works"
    # the same reason for several checks: once, naming them
    both = [pod("a", "refused"), Row(id="conformance/test_server.py::test_version[a]", target="a", check="version",
                                     level=Level.MUST, outcome=RowOutcome.FAILED, reason="a: refused")]
    rows = page(both, targets[:1]).one("table", class_="vllm-targets").all("tr")[1:]
    assert [li.text for li in rows[0].all("li")] == ["✗ reachable, version: refused"]
    assert page(report_rows()[5:]).all("table", class_="vllm-targets") == []  # no target judged: no table


def test_an_unobserved_pod_shows_what_it_knows() -> None:
    rows = page(report_rows()[:3]).one("table", class_="vllm-targets").all("tr")[1:]
    # not among the observed targets: named by its rows, its version unknown
    assert [r.all("td")[:3] and [c.text for c in r.all("td")[:3]] for r in rows] == [
        ["decode-2", "", "?"], ["2 targets like decode-0 which decode-0, decode-1", "", "?"]]


def test_the_pods_by_checks_grid_one_square_per_check_and_its_reason_on_hover() -> None:
    summary = page(report_rows(), REPORT_TARGETS)
    grid = summary.one("table", class_="vllm-matrix")
    assert summary.one("h3", id="vllm-grid").text == "Pods × checks"
    heads = grid.all("div", class_="head")
    assert [(h.text, h.attrs["title"]) for h in heads] == [
        ("server (1)", "server: 1 checks"), ("moves (1)", "moves: 1 checks"), ("present (1)", "present: 1 checks")]
    body = grid.one("tbody").all("tr")
    assert [r.attrs["data-target"] for r in body] == ["decode-1", "decode-2", "decode-0"]
    cells = {(r.attrs["data-target"], c.attrs["data-check"]): (c.attrs["data-outcome"], c.attrs["title"], c.text)
             for r in body for c in r.all("span", class_="cell")}
    assert cells[("decode-1", "moves: vllm:prefix_cache_hits_total")] == (
        "failed", f"decode-1 · moves: vllm:prefix_cache_hits_total: FAILED\n{NO_PREFIX}", "✗")
    assert cells[("decode-2", "reachable")] == ("inconclusive", f"decode-2 · reachable: INCONCLUSIVE\n{TIMED_OUT}", "?")
    assert cells[("decode-0", "present: vllm:lora_requests_info")] == (
        "xfailed", f"decode-0 · present: vllm:lora_requests_info: XFAILED\n{NOT_ON_ARM}", "!")
    assert cells[("decode-1", "reachable")] == ("passed", "decode-1 · reachable: PASSED", "✓")
    # a row of alike pods whose reasons differ: the first, and how many others
    def pod(name: str, reason: str) -> Row:
        return Row(id=f"conformance/test_server.py::test_reachable[{name}]", target=name, check="reachable",
                   level=Level.MUST, outcome=RowOutcome.FAILED, reason=f"{name}: {reason}")

    for reasons, more in ((("refused", "timed out"), "(and 1 other reason on other targets of this row)"),
                          (("refused", "timed out", "reset"), "(and 2 other reasons on other targets of this row)")):
        rows = [pod(f"p{i}", r) for i, r in enumerate(reasons)]
        cell = page(rows).one("span", class_="cell")
        assert cell.attrs["title"] == f"p0 and {len(reasons) - 1} like it · reachable: FAILED\nrefused\n{more}"
    assert page(report_rows()[5:]).all("table", class_="vllm-matrix") == []


def test_the_grid_folds_only_pods_of_one_architecture_and_version_and_says_which() -> None:
    def passed(name: str) -> Row:
        return Row(id=f"conformance/test_server.py::test_reachable[{name}]", target=name, check="reachable",
                   level=Level.MUST, outcome=RowOutcome.PASSED)

    # an observed target that no check judged comes first: it has no row, the others still do
    targets = [{"target": "idle"}] + [{"target": name, "architecture": arch, "vllmVersion": version}
                                      for name, arch, version in (("a", "amd64", "0.32.0"), ("b", "arm64", "0.32.0"),
                                                                  ("c", "amd64", "0.11.2"), ("d", "amd64", "0.32.0"))]
    summary = page([passed(name) for name in "abcd"], targets)
    parts = [c for c in summary.children if isinstance(c, Node)]
    heading = parts.index(summary.one("h3", id="vllm-grid"))
    assert (parts[heading].text, parts[heading + 1].tag) == ("Pods × checks", "p")
    assert parts[heading + 1].text == (
        "Each square is one check, in the same place on every row; targets with identical results share a row. "
        "Hover a square for the check and its reason.")
    body = summary.one("table", class_="vllm-matrix").one("tbody").all("tr")
    assert [(json.loads(r.attrs["data-targets"]), [c.text for c in r.all("td", class_="meta")]) for r in body] == [
        (["a", "d"], ["amd64", "0.32.0"]), (["b"], ["arm64", "0.32.0"]), (["c"], ["amd64", "0.11.2"])]
    # a target that was not observed: no architecture, its version unknown
    body = page(report_rows()[:3]).one("table", class_="vllm-matrix").one("tbody").all("tr")
    assert [[c.text for c in r.all("td", class_="meta")] for r in body] == [["", "?"], ["", "?"]]


def test_the_grid_keeps_groups_together_in_the_suites_order() -> None:
    def check(check: str, module: str) -> Row:
        return Row(id=f"conformance/test_{module}.py::test_x[{check}]", target="a", check=check, level=Level.MUST,
                   outcome=RowOutcome.PASSED)

    rows = [check("present: vllm:a", "metrics"), check("reachable", "server"), check("moves: vllm:b", "metrics"),
            check("present: vllm:c", "metrics"), check("version", "server"), check("present: vllm:a", "metrics")]
    grid = page(rows).one("table", class_="vllm-matrix")
    assert [h.text for h in grid.all("div", class_="head")] == ["present (2)", "server (2)", "moves (1)"]
    assert [c.attrs["data-check"] for c in grid.all("span", class_="cell")] == [
        "present: vllm:a", "present: vllm:c", "reachable", "version", "moves: vllm:b"]


def test_panels_are_drawn_where_their_dashboard_puts_them() -> None:
    summary = page(report_rows(), REPORT_TARGETS, layout=LAYOUT)
    assert summary.one("h3", id="vllm-dashboards").text == "Grafana panels: will they show data?"
    dash = summary.one("section", class_="vllm-dash")
    assert dash.attrs["data-dashboard"] == "vllm-dash" and dash.one("h4").text == "vLLM (vllm-dash)"
    panels = dash.all("div", class_="vllm-panel")
    # in the layout's order; a panel that was not judged (deselected) is not drawn
    assert [(p.attrs["data-panel"], p.attrs["data-verdict"], p.attrs["data-outcome"], p.attrs["data-grid"])
            for p in panels] == [("Throughput", "ok", "passed", "0,0,12,8"),
                                 ("KV Cache Usage", "no data", "failed", "0,9,24,6")]
    kv = panels[1]
    assert kv.one("div", class_="r").text == "Query A: vllm:gpu_cache_usage_perc is on no target: vLLM 0.11 renamed it"
    assert kv.one("div", class_="vllm-reason").text == KV_REASON and kv.attrs["title"] == KV_REASON
    assert [p.attrs["data-panel"] for p in page(report_rows()).all("div", class_="vllm-panel")] == [
        "KV Cache Usage", "Throughput"]  # without a layout: flowed in the rows' order, none left out
    # the same panel title on two dashboards: each on its own
    other = Row(id="t::test_panel[other::Throughput]", target="other", check="panel: Throughput", level=Level.MUST,
                outcome=RowOutcome.FAILED, reason="no data", evidence={"panel_verdict": "no data"})
    drawn = page([*report_rows()[5:7], other], layout=LAYOUT).all("div", class_="vllm-panel")
    assert [(p.attrs["data-panel"], p.attrs["data-outcome"]) for p in drawn] == [
        ("Throughput", "passed"), ("KV Cache Usage", "failed"), ("Throughput", "failed")]
    assert page(report_rows()[:5]).all("section", class_="vllm-dash") == []


def test_the_rules_scalers_and_endpoint_picker_each_have_their_table() -> None:
    epp = Row(id="conformance/test_epp.py::test_flags", target="", check="flags", level=Level.SHOULD,
              outcome=RowOutcome.PASSED, reason="")
    epp_failed = Row(id="conformance/test_epp.py::test_scores", target="epp", check="epp: kv-cache scorer",
                     level=Level.MUST, outcome=RowOutcome.FAILED, reason="its metric is gone",
                     diagnosis="read vllm:kv_cache_usage_perc")
    summary = page([*report_rows(), epp, epp_failed])
    tables = summary.all("table", class_="vllm-consumers")
    assert [t.all("tr")[0].text for t in tables] == ["Kind Source Name Verdict Why"] * 3
    rows = [r for t in tables for r in t.all("tr")[1:]]
    assert [r.attrs for r in rows] == [
        {"class": "o-inconclusive", "data-reader": "rules", "data-consumer": "alert: VLLMKVCacheHigh",
         "data-verdict": "inconclusive", "data-outcome": "inconclusive"},
        {"class": "o-passed", "data-reader": "scalers", "data-consumer": "keda: vllm-scaler", "data-verdict": "ok",
         "data-outcome": "passed"},
        {"class": "o-passed", "data-reader": "epp", "data-consumer": "flags", "data-verdict": "ok",
         "data-outcome": "passed"},
        {"class": "o-failed", "data-reader": "epp", "data-consumer": "epp: kv-cache scorer", "data-verdict": "failed",
         "data-outcome": "failed"}]
    assert [r.text for r in rows] == [
        f"alert vllm-rules VLLMKVCacheHigh ? inconclusive {RULE_REASON}",
        "keda keda-ns vllm-scaler ✓ ok its query sums 2 of the 3 pods (decode-2: no data)",
        "check flags ✓ ok", "epp epp kv-cache scorer ✗ failed read vllm:kv_cache_usage_perc"]
    assert [h.text for h in summary.all("h4") if "id" in h.attrs] == [
        "Alerting and recording rules", "Autoscalers and adapters (KEDA, prometheus-adapter)",
        "Endpoint picker (EPP)"]
    assert [h.attrs["id"] for h in summary.all("h4") if "id" in h.attrs] == ["vllm-rules", "vllm-scalers", "vllm-epp"]
    assert page(report_rows()[:5]).all("h3", id="vllm-consumers") == []


def test_causes_and_limitations_once_each_with_their_targets() -> None:
    summary = page(report_rows())
    unobserved = summary.one("h3", id="vllm-unobserved")
    assert unobserved.one("span", class_="vllm-sym").attrs["class"] == "vllm-sym o-inconclusive"
    lists = summary.all("ul", class_="vllm-once")
    assert [[(li.attrs["data-count"], li.text) for li in ul.all("li")] for ul in lists] == [
        [("1", f"decode-2: {TIMED_OUT} (2 checks)"), ("1", f"vllm-rules: {RULE_REASON} (1 check)")],
        [("1", f"decode-0: {NOT_ON_ARM} (1 check)")]]
    assert summary.one("h3", id="vllm-limitations").one("span").attrs["class"] == "vllm-sym o-xfailed"
    alike = [Row(id=f"t::test_x[{n}]", target=n, check="x", level=Level.MUST, outcome=RowOutcome.INCONCLUSIVE,
                 reason=f"{n}: refused") for n in ("a", "b", "c", "d")]
    [item] = page(alike).one("ul", class_="vllm-once").all("li")
    assert (item.attrs["data-count"], item.text) == ("4", "a, b, c and 1 more (4 targets) which a, b, c, d : refused "
                                                          "(1 check each)")
    assert page(report_rows()[5:7]).all("ul", class_="vllm-once") == []


def test_warnings_folded_each_once_with_every_target() -> None:
    names = ["a", "b", "c", "d"]
    row = Row(id="t::test_x[labels]", target="", check="labels", level=Level.SHOULD, outcome=RowOutcome.PASSED,
              evidence={n: {"warning": "StoreWarning"} for n in names},
              targets={n: TargetResult(RowOutcome.PASSED, f"{n}: 37 labels. Prometheus keeps 30. Raise the cap.")
                       for n in names})
    summary = page([row])
    assert summary.one("h3", id="vllm-warnings").text == (
        "Warnings: 1 (the checks passed; a common store or scraper drops or splits part of the page)")
    folded = summary.one("details", class_="vllm-warning")
    assert (folded.attrs["data-check"], folded.attrs["data-count"]) == ("labels", "4")
    assert folded.one("summary").text == "! a, b, c and 1 more (4 targets): 37 labels."
    assert folded.one("div", class_="vllm-reason").text == "37 labels. Prometheus keeps 30. Raise the cap."
    assert folded.one("p").text == "Check: labels. Targets (4): a, b, c, d"
    assert page(report_rows()).all("h3", id="vllm-warnings") == []


def test_the_tally_is_pytests_own_count() -> None:
    model = build(report_rows())
    assert report_html.tally_text(model) == "9 checks: 2 failed, 2 inconclusive, 4 passed, 1 xfailed"
    def tally(collected: int, **outcomes: int) -> str:
        return report_html.tally_text(build([], tally=Tally(collected, outcomes)))

    assert tally(12, passed=9, skipped=2, inconclusive=0, failed=1) == (
        "12 tests (all collected): 9 passed, 2 skipped, 1 failed")
    assert tally(14, passed=9, skipped=2, failed=1) == "12 tests of 14 collected: 9 passed, 2 skipped, 1 failed"
    assert tally(1, passed=1) == "1 test (all collected): 1 passed"
    assert tally(0, passed=2) == "2 tests: 2 passed"
    assert tally(3) == "0 tests of 3 collected"
    assert report_html.tally_text(build([], tally=Tally())) == "0 tests"


def test_the_upgrade_forecast_replaces_the_targets_results() -> None:
    targets = [dict(t, exposition="text/0.0.4" if i < 2 else None) for i, t in enumerate(REPORT_TARGETS)]
    targets.append({"target": "decode-3", "architecture": "amd64", "vllmVersion": "0.32.0", "exposition": "x"})
    summary = page(upgrade_rows("0.11.0"), targets)
    assert sections(summary) == ["vLLM metrics conformance", "Upgrade to vLLM 0.11.0: what goes dark",
                                 "vLLM servers: scraped for the forecast"]
    forecast = summary.one("div", id="vllm-upgrade")
    assert forecast.one("p").text == (
        "The fleet runs 0.10.1: decode-0, decode-1; unknown: decode-2. 2 of 3 consumers lose data. A metric deprecated "
        "in vLLM X.Y is hidden in X.Y+1, where --show-hidden-metrics-for-version=X.Y shows it again for one more minor "
        "release, and removed in X.Y+2.")
    rows = forecast.one("table").all("tr")
    assert rows[0].text == "Kind Consumer Metric On 0.11.0 Buys time Removed in Renamed to"
    assert [(r.attrs, r.text) for r in rows[1:]] == [
        ({"class": "o-failed"}, "panel vllm-dash :: KV Cache Usage vllm:gpu_cache_usage_perc hidden since 0.11.0 "
                                "--show-hidden-metrics-for-version=0.10 0.12.0 vllm:kv_cache_usage_perc"),
        ({"class": "o-failed"}, "alert vllm-dash :: VLLMKVCacheHigh vllm:gpu_cache_usage_perc hidden since 0.11.0 "
                                "--show-hidden-metrics-for-version=0.10 0.12.0 vllm:kv_cache_usage_perc")]
    assert [c.text for c in rows[1].all("code")] == ["vllm:gpu_cache_usage_perc",
                                                     "--show-hidden-metrics-for-version=0.10",
                                                     "vllm:kv_cache_usage_perc"]
    scraped = summary.one("table", class_="vllm-targets")
    assert summary.one("h3", id="vllm-targets").text == "vLLM servers: scraped for the forecast"
    assert [p.text for p in summary.all("p")][-1] == (
        "With --vllm-upgrade-to=0.11.0 the run scrapes each target's /metrics once and reads its /version: it sends "
        "no workload and judges no target. What it judges is each consumer of the metrics, against what vLLM 0.11.0 "
        "emits (above).")
    assert [(r.attrs["data-target"], json.loads(r.attrs["data-targets"]), r.attrs["data-count"], r.text)
            for r in scraped.all("tr")[1:]] == [
        ("decode-0", ["decode-0"], "1", "decode-0 arm64 0.11.2 scraped once"),
        ("decode-1", ["decode-1", "decode-3"], "2", "2 targets like decode-1 which decode-1, decode-3 amd64 0.32.0 "
                                                    "scraped once"),
        ("decode-2", ["decode-2"], "1", "decode-2 amd64 0.32.0 not scraped (below)")]
    assert scraped.all("tr")[0].text == "Target Architecture vLLM (as the target reports it) /metrics"
    unknown = page(upgrade_rows("0.13.0"), [{"target": "x"}]).one("table", class_="vllm-targets")
    assert unknown.all("tr")[1].text == "x unknown not scraped (below)"
    assert page(upgrade_rows("0.13.0")).all("table", class_="vllm-targets") == []  # no target known


def test_an_upgrade_with_nothing_dark_and_no_fleet() -> None:
    forecast = {"to": "0.12.0", "fleet": {}, "policy": {"text": "The <policy>."},
                "consumers": [{"kind": "keda", "dashboard": "d", "title": "t", "dark": []}]}
    section = parse_html(report_html.upgrade_html(forecast)).one("div", id="vllm-upgrade")
    assert section.text == ("Upgrade to vLLM 0.12.0: what goes dark The fleet runs unknown. 0 of 1 consumers lose "
                            "data. The <policy>.")
    assert section.all("table") == []
    forecast["consumers"] = [{"kind": "panel", "dashboard": "d", "title": "t", "dark": [
        {"metric": "vllm:x", "state": "not yet", "emitted": ">=0.13.0", "flag": None, "removed_in": None,
         "replaced_by": None}, {"metric": "vllm:y", "state": "removed", "hidden_from": "0.10.0", "flag": None,
                                "removed_in": "0.11.0", "replaced_by": "vllm:z"}]}]
    section = parse_html(report_html.upgrade_html(forecast)).one("div", id="vllm-upgrade")
    assert section.one("p").text.startswith("The fleet runs unknown. 1 of 1 consumers lose data.")
    assert [r.text for r in section.all("tr")[1:]] == [
        "panel d :: t vllm:x not there yet (>=0.13.0)",
        "panel d :: t vllm:y removed (hidden since 0.10.0) 0.11.0 vllm:z"]


def test_the_workload_is_charted_per_pod_one_of_each_row_first() -> None:
    measured = {"kvCacheUsage": {"before": 0.0, "after": 0.5}, "requestSuccess": {"before": 0.0, "after": 4.0},
                "prefixCache": {"hits": 1.0, "queries": 4.0}, "ttft": [], "e2eLatency": []}

    def pods(n: int, failing: set[int]) -> tuple[list[Row], list[dict[str, Any]]]:
        names = [f"pod-{i:02d}" for i in range(n)]
        rows = [Row(id=f"conformance/test_server.py::test_reachable[{p}]", target=p, check="reachable",
                    level=Level.MUST, outcome=RowOutcome.FAILED if i in failing else RowOutcome.PASSED,
                    reason=f"{p}: refused") for i, p in enumerate(names)]
        return rows, [{"target": p, "architecture": "amd64", "vllmVersion": "0.32.0", "measured": measured}
                      for p in names]

    summary = page(*pods(24, set()))
    assert summary.one("h3", id="vllm-workload").text == "The workload, per pod"
    assert len(summary.one("table", class_="vllm-charts").all("tr")) == 25 and "of 24 targets" not in summary.text
    rows, targets = pods(30, {5, 29})
    summary = page(rows, [*targets, {"target": "no-numbers", "measured": None}])
    note = summary.one("h3", id="vllm-workload")
    assert note.text == "The workload, per pod"
    charted = [r.attrs["data-target"] for r in summary.one("table", class_="vllm-charts").all("tr")[1:]]
    # the first pod of each row of the targets table (the failing pods' row first), then the others in order
    assert charted == ["pod-00", "pod-05", *[f"pod-{i:02d}" for i in range(1, 24) if i != 5]]
    assert ("24 of 30 targets: one of each row of the targets table first; every target's numbers are in the JSON "
            "report (implementations[].measured).") in summary.text
    assert page(report_rows(), REPORT_TARGETS).all("h3", id="vllm-workload") == []  # nothing measured


def test_the_results_table_cells_and_extras_of_a_check() -> None:
    rows = report_rows()
    assert report_html.table_cells(rows[3]) == ['<td class="col-target">decode-1, decode-2</td>',
                                                '<td class="col-level">MUST</td>',
                                                '<td class="col-outcome">failed</td>']
    assert report_html.table_cells(None) == ['<td class="col-target"></td>', '<td class="col-level"></td>',
                                             '<td class="col-outcome"></td>']
    assert report_html.escaped('<b a="1">') == "&lt;b a=&quot;1&quot;&gt;"
    assert report_html.shown_reason(rows[2]) == f"decode-2: {TIMED_OUT}"
    assert report_html.shown_reason(rows[0]) is None  # passed, no reason
    assert report_html.shown_reason(rows[8]) is None  # passed: its note is in the summary
    failed_without_reason = Row(id="t", target="", check="c", level=Level.MUST, outcome=RowOutcome.FAILED)
    assert report_html.shown_reason(failed_without_reason) is None


def test_a_fleets_evidence_keeps_the_targets_that_did_not_pass_first() -> None:
    def fleet(n: int, failing: set[int], evidence: dict[str, Any] | None = None) -> Row:
        names = [f"pod-{i:02d}" for i in range(n)]
        return Row(id="t::test_x[m]", target="", check="moves: m", level=Level.MUST, outcome=RowOutcome.FAILED,
                   evidence=evidence if evidence is not None else {p: {"increase": i} for i, p in enumerate(names)},
                   targets={p: TargetResult(RowOutcome.FAILED if i in failing else RowOutcome.PASSED)
                            for i, p in enumerate(names)})

    small = fleet(20, {3})
    assert report_html.evidence(small) == small.evidence  # up to 20 targets: all of it
    large = fleet(25, {22, 24})
    kept = report_html.evidence(large)
    assert list(kept) == ["pod-22", "pod-24", *[f"pod-{i:02d}" for i in range(18)], "more targets"]
    assert kept["pod-22"] == {"increase": 22}
    assert kept["more targets"] == ("5 more, not shown here: every target's evidence is in the JSON report "
                                    "(--vllm-report=report.json)")
    flat = fleet(25, {1}, evidence={"increase": 0})
    assert report_html.evidence(flat) == {"increase": 0}  # not per target: as it is


def test_the_environment_table_one_row_per_kind_of_target() -> None:
    settings = Settings(vllm_url=("https://user:secret@vllm.example:8000",), vllm_sim=("x86_64", "x86_64", "arm64-cpu"))
    cluster = ClusterInfo(api_client=None, context="kind", server="https://kube.test", version="v1.31.0",
                          namespace="llm-d", selectors=("app=vllm", "llm-d.ai/role=decode"),
                          notes=["no nodes: forbidden", "no LWS"])
    impl = {"vllmVersion": "0.32.0", "model": "tiny", "architecture": "amd64", "blockSize": 16,
            "prefixCaching": "True", "features": ["core", "http"]}
    targets = [{"target": "a", "node": "n1", **impl}, {"target": "b", "node": "n2", **impl},
               {"target": "c", "node": "n1", **impl}, {"target": "d", "node": "n3", **impl},
               {"target": "e", **impl, "model": None, "architecture": "", "blockSize": None, "prefixCaching": None,
                "features": [], "vllmVersion": None},
               {"target": "f", **impl, "node": "n1", "engines": ["0", "1"], "dataParallel": {"expectedEngines": 4}}]
    found = report_html.metadata(build([], settings, implementations=targets, cluster=cluster), settings)
    assert found == {
        "pytest-vllm-metrics": report_html.__version__,
        "vLLM URLs": "https://***@vllm.example:8000",
        "Simulator profiles": "x86_64 (2 servers), arm64-cpu",
        "Kubernetes": "context kind, server https://kube.test (v1.31.0)",
        "Namespace": "llm-d", "Selector": "app=vllm or llm-d.ai/role=decode", "Notes": "no nodes: forbidden; no LWS",
        "Targets a, b, c and 1 more (4 targets)": "vLLM 0.32.0, model tiny, arch amd64, block size 16, prefix caching "
                                                  "True, features core, http, nodes n1, n2, n3",
        "Target e": "vLLM unknown, arch unknown, features none detected",
        "Target f": "vLLM 0.32.0, model tiny, arch amd64, block size 16, prefix caching True, features core, http, "
                    "engines 0-1 (2 of the 4 its command line runs), node n1"}
    upgrade = Settings(vllm_upgrade_to="0.11.0")
    assert report_html.metadata(build([], upgrade, implementations=targets[4:5]), upgrade) == {
        "pytest-vllm-metrics": report_html.__version__,
        "Target e": "vLLM unknown, arch unknown, features none detected, scraped once for the upgrade forecast, no "
                    "workload"}


def test_a_fleet_of_many_kinds_gives_the_environment_twelve_rows() -> None:
    targets = [{"target": f"pod-{i}", "vllmVersion": f"0.{i}.0", "architecture": "amd64"} for i in range(15)]
    targets.append({"target": "pod-again", "vllmVersion": "0.14.0", "architecture": "amd64"})
    found = report_html.metadata(build([], implementations=targets), Settings())
    assert list(found)[1:] == [*(f"Target pod-{i}" for i in range(12)), "Other targets"]
    assert found["Other targets"] == "4 more, each in the summary's table of vLLM servers"
    twelve = report_html.metadata(build([], implementations=targets[:12]), Settings())
    assert "Other targets" not in twelve and len(twelve) == 13


def test_the_dashboards_section_says_how_to_read_it() -> None:
    summary = page(report_rows(), REPORT_TARGETS, layout=LAYOUT)
    parts = [c for c in summary.children if isinstance(c, Node)]
    heading = parts.index(summary.one("h3", id="vllm-dashboards"))
    assert parts[heading + 1].text == "Each dashboard as Grafana lays it out; hover a panel for its full reason."


def test_a_one_sentence_warning_ends_with_one_period() -> None:
    row = Row(id="t::test_x[labels]", target="", check="labels", level=Level.SHOULD, outcome=RowOutcome.PASSED,
              evidence={n: {"warning": "StoreWarning"} for n in "ab"},
              targets={n: TargetResult(RowOutcome.PASSED, f"{n}: 37 labels, Prometheus keeps 30.") for n in "ab"})
    folded = page([row]).one("details", class_="vllm-warning")
    assert folded.one("summary").text == "! a, b: 37 labels, Prometheus keeps 30."


def test_twenty_four_pods_are_all_charted_in_their_order() -> None:
    measured = {"kvCacheUsage": {"before": 0.0, "after": 0.5}, "requestSuccess": {"before": 0.0, "after": 4.0},
                "prefixCache": {"hits": 1.0, "queries": 4.0}, "ttft": [], "e2eLatency": []}
    names = [f"pod-{i:02d}" for i in range(24)]
    rows = [Row(id=f"conformance/test_server.py::test_reachable[{p}]", target=p, check="reachable", level=Level.MUST,
                outcome=RowOutcome.FAILED if i == 5 else RowOutcome.PASSED, reason=f"{p}: refused")
            for i, p in enumerate(names)]
    targets = [{"target": p, "architecture": "amd64", "vllmVersion": "0.32.0", "measured": measured} for p in names]
    summary = page(rows, targets)
    # exactly _CHARTED pods: every one, in the order they came (the failing pod's row is not put first)
    assert [r.attrs["data-target"] for r in summary.one("table", class_="vllm-charts").all("tr")[1:]] == names
    # an upgrade forecast sends no workload: nothing charted, whatever the targets carry
    upgraded = page(upgrade_rows("0.11.0"), [dict(t, target=f"decode-{i}") for i, t in enumerate(targets[:3])])
    assert upgraded.all("table", class_="vllm-charts") == [] and upgraded.all("h3", id="vllm-workload") == []


def test_the_environment_table_names_every_url_given() -> None:
    settings = Settings(vllm_url=("http://10.0.0.1:8000", "http://10.0.0.2:8000"))
    assert report_html.metadata(build([], settings), settings)["vLLM URLs"] == (
        "http://10.0.0.1:8000, http://10.0.0.2:8000")


def test_a_merged_report_is_a_page_of_its_own_with_its_environment_and_every_check() -> None:
    # `pytest-vllm-metrics merge -o report.html`: no pytest-html around it, so the page holds the summary, the
    # environment (the merged shards' files named) and a table of every check
    model = build(report_rows(), Settings(vllm_model="org/m&v2", sources={"vllm_model": "command line"}),
                  implementations=REPORT_TARGETS)
    environment = {**model.environment, "merged": {"shards": 2, "files": ["shard-0.json", "shard<1>.json"],
                                                   "generated": [None, None]}}
    text = report_html.page(replace(model, environment=environment))
    assert text.startswith("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>vLLM metrics "
                           "conformance</title></head><body><style>")
    assert text.endswith("</table></div></body></html>\n")
    root = parse_html(text)
    assert loose_text(root.one("body"), top=True) == []  # no stray text between its sections, rows or cells
    assert "pytest-html" not in root.text  # a page of its own: no word of pytest-html's filters
    legend = root.one("div", class_="vllm-legend")  # the outcomes' symbols only, nothing after them
    assert legend.children and all(isinstance(c, Node) and c.tag == "span" for c in legend.children)
    assert root.one("h2").text == "vLLM metrics conformance"
    assert [n.text for n in root.all("h3", id="vllm-environment")] == ["Environment"]
    env = [[td.text for td in tr.all("td")] for tr in root.all("table", class_="vllm-summary")[-2].all("tr")]
    assert env == [["python", model.environment["python"]], ["pytest", model.environment["pytest"]],
                   ["generated", model.environment["generated"]],
                   ["settings --vllm-model", "org/m&v2 (from command line)"],
                   ["merged from", "2 shards: shard-0.json, shard<1>.json"]]
    assert "org/m&amp;v2" in text and "shard&lt;1&gt;.json" in text
    checks = root.one("table", id="vllm-checks").all("tr")
    assert [th.text for th in checks[0].all("th")] == ["Test", "Target", "Level", "Outcome", "Reason"]
    assert [[td.text for td in tr.all("td")] for tr in checks[1:]] == [
        [row.id, row.shown_target(), row.level.value, row.outcome.value,
         row.reason if row.outcome != RowOutcome.PASSED else ""] for row in model.rows]
    assert {tr.attrs.get("class") for tr in checks[1:]} == {"vllm-check"}
    assert root.one("h3", id="results-table").text == "Every check"


def test_a_merged_report_without_merge_facts_has_no_merged_from_row() -> None:
    text = report_html.page(build(report_rows()[:1]))
    assert "merged from" not in text


def test_the_environment_names_another_model_server_by_its_engine() -> None:
    # an SGLang server (the endpoint picker's engine label) has no vLLM version to show
    targets = [{"target": "sglang-0", "modelServer": "sglang", "modelServerVersion": "0.4.6", "vllmVersion": None,
                "model": "tiny", "architecture": "amd64", "features": ["core"]},
               {"target": "vllm-0", "modelServer": "vllm", "vllmVersion": "0.32.0", "architecture": "amd64",
                "features": ["core"]}]
    found = report_html.metadata(build([], implementations=targets), Settings())
    assert found["Target sglang-0"] == "sglang, model tiny, arch amd64, features core"
    assert found["Target vllm-0"] == "vLLM 0.32.0, arch amd64, features core"


def test_a_pod_that_passed_nothing_lists_its_failure_limitation_and_what_could_not_be_observed() -> None:
    def check(check: str, outcome: str, reason: str) -> Row:
        return Row(id=f"conformance/test_server.py::test_{check}[a]", target="a", check=check, level=Level.MUST,
                   outcome=RowOutcome(outcome), reason=f"a: {reason}")

    rows = [check("reachable", "failed", "refused"), check("version", "inconclusive", TIMED_OUT),
            check("lora", "xfailed", NOT_ON_ARM)]
    table = page(rows, [{"target": "a", "architecture": "arm64", "vllmVersion": "0.32.0"}]).one(
        "table", class_="vllm-targets")
    [row] = table.all("tr")[1:]
    assert row.all("td")[3].text == "✓ 0 of 3"
    assert [li.text for li in row.all("li")] == [
        "✗ reachable: refused", "! 1 check: documented limitation (below)", "? 1 check: could not observe (below)"]


def test_a_rule_whose_name_holds_a_colon_keeps_its_name_whole() -> None:
    # a Grafana-managed alert's title is free text: "vLLM: KV cache high" is one name
    row = Row(id="conformance/test_rules.py::test_reader[alert: vLLM: KV cache high]", target="vllm-rules",
              check="alert: vLLM: KV cache high", level=Level.MUST, outcome=RowOutcome.PASSED,
              evidence={"panel_verdict": "ok"})
    table = page([row]).one("table", class_="vllm-consumers")
    assert [td.text for td in table.all("tr")[1].all("td")] == ["alert", "vllm-rules", "vLLM: KV cache high", "✓ ok",
                                                                  ""]


def test_a_run_where_nothing_failed_says_so_first() -> None:
    passed = [Row(id=f"conformance/test_server.py::test_reachable[{name}]", target=name, check="reachable",
                  level=Level.MUST, outcome=RowOutcome.PASSED) for name in ("a", "b")]
    assert page(passed).one("p", class_="vllm-story").text == "What failed: nothing failed."


def test_panels_without_a_layout_are_flowed_under_their_dashboards_uid_with_their_verdicts() -> None:
    dash = page(report_rows()).one("section", class_="vllm-dash")  # no layout: nothing known of the dashboard
    assert dash.attrs["data-dashboard"] == "vllm-dash" and dash.one("h4").text == "vllm-dash"
    assert dash.all("div", class_="vllm-row-title") == []
    assert [(p.attrs["data-panel"], p.attrs["data-verdict"], p.attrs["title"])
            for p in dash.all("div", class_="vllm-panel")] == [("KV Cache Usage", "no data", KV_REASON),
                                                                ("Throughput", "ok", "ok")]
    # a layout without the dashboard's title: named by its uid alone
    untitled = [{k: v for k, v in panel.items() if k != "dashboardTitle"} for panel in LAYOUT]
    assert page(report_rows(), layout=untitled).one("section", class_="vllm-dash").one("h4").text == "vllm-dash"


def test_a_judged_panel_the_layout_does_not_know_is_flowed_with_the_panels_outside_rows() -> None:
    # Grafana draws the panels outside rows first: the unknown one joins them, above the dashboard's rows
    latency = Row(id="t::test_panel[vllm-dash::Latency]", target="vllm-dash", check="panel: Latency",
                  level=Level.MUST, outcome=RowOutcome.PASSED, evidence={"panel_verdict": "ok"})
    dash = page([*report_rows()[5:7], latency], layout=LAYOUT).one("section", class_="vllm-dash")
    assert [(p.attrs["data-panel"], p.attrs["data-grid"]) for p in dash.all("div", class_="vllm-panel")] == [
        ("Throughput", "0,0,12,8"), ("Latency", "0,8,8,5"), ("KV Cache Usage", "0,14,24,6")]
    assert [r.text for r in dash.all("div", class_="vllm-row-title")] == ["Cache"]
