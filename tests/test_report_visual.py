"""The HTML report shows, in a real headless Chromium with the network cut off: each dashboard drawn on its
grid with each panel's verdict, the pods x checks grid with each target's own outcome, the workload's charts,
skipped rows with their reason only, counts that match pytest's."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from pytest_vllm_metrics.report import Row, summary_html
from test_reports import _chromium, render

DASHBOARDS = Path(__file__).parent / "data" / "dashboards"

# A dashboard as Grafana 10 saves it: panels at the top, an expanded row, a collapsed row holding its panels
# (their y is where they were when it was open), and a text panel (no query: not drawn).
GRIDDED = {
    "title": "Gridded", "schemaVersion": 39,
    "panels": [
        {"type": "stat", "title": "Hit rate", "gridPos": {"x": 0, "y": 0, "w": 12, "h": 6},
         "targets": [{"expr": "rate(vllm:prefix_cache_hits_total[5m])"}]},  # a line per pod
        {"type": "stat", "title": "Preemptions", "gridPos": {"x": 12, "y": 0, "w": 12, "h": 6},
         "targets": [{"expr": "vllm:num_preemptions"}]},
        {"type": "row", "title": "Latency", "collapsed": False, "gridPos": {"x": 0, "y": 6, "w": 24, "h": 1},
         "panels": []},
        {"type": "timeseries", "title": "TTFT", "gridPos": {"x": 0, "y": 7, "w": 24, "h": 5},
         "targets": [{"expr": "histogram_quantile(0.9, sum by (le) "
                               "(rate(vllm:time_to_first_token_seconds_bucket[5m])))"}]},
        {"type": "row", "title": "Collapsed", "collapsed": True, "gridPos": {"x": 0, "y": 12, "w": 24, "h": 1},
         "panels": [{"type": "stat", "title": "E2E", "gridPos": {"x": 16, "y": 40, "w": 8, "h": 4},
                     "targets": [{"expr": "sum(vllm:e2e_request_latency_seconds_count)"}]},
                    {"type": "text", "title": "Notes", "gridPos": {"x": 0, "y": 40, "w": 16, "h": 4}}]},
    ],
}
# Where the report draws them: each row on its own, stacked, a bar for each row title.
EXPECTED_GRID = {"Hit rate": "0,0,12,6", "Preemptions": "12,0,12,6", "TTFT": "0,7,24,5", "E2E": "16,13,8,4"}

# Reads the laid-out page back: each panel box's and hit-rate bar's rectangle, as the browser drew it.
_GEOMETRY = """<script>
window.addEventListener('load', () => {
  const out = {};
  document.querySelectorAll('.vllm-panel').forEach((el) => {
    const r = el.getBoundingClientRect();
    out[el.closest('[data-dashboard]').dataset.dashboard + '::' + el.dataset.panel] =
      [r.left, r.top, r.width, r.height];
  });
  const pre = document.createElement('pre');
  pre.id = 'geometry';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


class _Elements(HTMLParser):
    """Every element's tag and attributes, from the DOM Chromium dumps (after pytest-html's script ran)."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, {k: v or "" for k, v in attrs}))


def dump_dom(html_file: Path, tmp_path: Path) -> str:
    """The DOM after the page's scripts ran, in headless Chromium, every host name unresolvable (offline)."""
    return subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
         "--disable-background-networking", "--disable-component-update", "--host-resolver-rules=MAP * ~NOTFOUND",
         f"--user-data-dir={tmp_path / 'chromium'}", "--window-size=1400,1000", "--virtual-time-budget=10000",
         "--dump-dom", html_file.as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout


def elements(dom: str, cls: str) -> list[dict[str, str]]:
    parser = _Elements()
    parser.feed(dom)
    return [attrs for _, attrs in parser.found if cls in attrs.get("class", "").split()]


@pytest.fixture(scope="module")
def run_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One run as a user makes it: two simulated servers, the bundled dashboards plus a gridded one."""
    path = tmp_path_factory.mktemp("report")
    (path / "gridded").mkdir()
    (path / "gridded" / "gridded.json").write_text(json.dumps(GRIDDED))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--vllm-sim=x86_64", "--vllm-sim=arm64-cpu",
         f"--grafana-dashboard={DASHBOARDS}", f"--grafana-dashboard={path / 'gridded'}", "--html=report.html",
         "--self-contained-html", "--vllm-report=report.json", "--junitxml=junit.xml"],
        cwd=path, capture_output=True, text=True, timeout=300,
    )
    assert (path / "report.html").exists(), result.stdout[-3000:] + result.stderr[-3000:]
    return {"path": path, "stdout": result.stdout, "document": json.loads((path / "report.json").read_text())}


def test_the_report_loads_offline_and_fetches_nothing(run_report: dict[str, Any], tmp_path: Path) -> None:
    raw = (run_report["path"] / "report.html").read_text()
    # no script, stylesheet, font or image from the network: only pytest-html's own link to PyPI is a URL
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=[\"']?(https?:)?//", raw, re.I)
    assert not re.search(r"(@import|url\()\s*[\"']?(https?:)?//", raw, re.I)
    text = render(run_report["path"] / "report.html", tmp_path)
    assert "Grafana panels: will they show data?" in text and "Pods × checks" in text


def test_each_dashboard_is_drawn_panel_by_panel_at_its_grid_position(run_report: dict[str, Any],
                                                                     tmp_path: Path) -> None:
    page = run_report["path"] / "measured.html"
    page.write_text((run_report["path"] / "report.html").read_text().replace("</body>", _GEOMETRY + "</body>"))
    dom = dump_dom(page, tmp_path)
    boxes = elements(dom, "vllm-panel")
    rows = [r for r in run_report["document"]["tests"] if r["check"].startswith("panel: ")]
    # one box per judged panel, each with its verdict
    drawn = {(b["data-panel"], b["data-verdict"], b["data-outcome"]) for b in boxes}
    assert len(boxes) == len(rows)
    assert drawn == {(r["check"].removeprefix("panel: "), r["evidence"]["panel_verdict"], r["outcome"])
                     for r in rows}
    assert {b["data-verdict"] for b in boxes} >= {"ok", "no data", "label mismatch", "always zero / NaN",
                                                  "not a vLLM metric"}
    # the gridded dashboard: each panel where its gridPos puts it, rows stacked, the text panel left out
    gridded = {b["data-panel"]: b for b in boxes if b["data-panel"] in EXPECTED_GRID}
    assert {name: b["data-grid"] for name, b in gridded.items()} == EXPECTED_GRID
    assert gridded["Preemptions"]["data-verdict"] == "no data" and "num_preemptions_total" in gridded[
        "Preemptions"]["title"]  # the full reason on hover
    # ... and where the browser drew it
    geometry = json.loads(re.search(r'<pre id="geometry">(.*?)</pre>', dom, re.S).group(1))  # type: ignore[union-attr]
    hit, pre, ttft, e2e = (geometry[f"gridded::{n}"] for n in ("Hit rate", "Preemptions", "TTFT", "E2E"))
    assert hit[1] == pre[1] and hit[0] < pre[0] and abs(hit[2] - pre[2]) < 2  # side by side, half each
    assert ttft[1] > hit[1] + hit[3] and abs(ttft[2] - (hit[2] * 2 + 4)) < 4  # below, under the row bar, full width
    assert e2e[1] > ttft[1] + ttft[3] and e2e[0] > ttft[0] + ttft[2] * 0.6  # the collapsed row's panel, right third
    # the bundled dashboards have no gridPos: flowed three to a line, in the file's order
    flowed = [b for b in boxes if b["data-panel"] not in EXPECTED_GRID]
    assert all(b["data-grid"].split(",")[2:] == ["8", "5"] for b in flowed)
    perf = [geometry[f"llm-d-performance::{t}"] for t in ("Time to First Token (TTFT)", "Inter-Token Latency",
                                                            "KV Cache Hit Rate", "Per-Pod Cache Hit Rates")]
    assert perf[0][1] == perf[1][1] == perf[2][1] < perf[3][1] and perf[0][0] < perf[1][0] < perf[2][0]
    # every panel's full reason is in an expandable detail
    assert dom.count("<details>") >= sum(1 for r in rows if r["reason"])


def test_pods_by_checks_has_each_targets_own_outcome(run_report: dict[str, Any], tmp_path: Path) -> None:
    dom = dump_dom(run_report["path"] / "report.html", tmp_path)
    cells = {(c["data-target"], c["data-check"]): c for c in elements(dom, "cell")}
    expected = {(name, row["check"]): t["outcome"] for row in run_report["document"]["tests"]
                for name, t in row["targets"].items()}
    assert len(expected) > 100
    assert {key: c["data-outcome"] for key, c in cells.items()} == expected
    # the documented limitation of arm64-cpu, not the check's folded outcome, and its reason on hover
    arm = cells[("sim-arm64-cpu", "moves: vllm:prefix_cache_hits_total")]
    assert arm["data-outcome"] == "xfailed" and "disables prefix caching" in arm["title"]
    assert cells[("sim-x86_64", "moves: vllm:prefix_cache_hits_total")]["data-outcome"] == "passed"
    # grouped by kind: present, moves, prefix cache, server
    text = render(run_report["path"] / "report.html", tmp_path)
    assert re.search(r"present .*moves .*prefix cache .*server", text)


def test_charts_one_hit_rate_bar_per_pod_and_the_latency_distributions(run_report: dict[str, Any],
                                                                        tmp_path: Path) -> None:
    dom = dump_dom(run_report["path"] / "report.html", tmp_path)
    bars = {b["data-target"]: b for b in elements(dom, "vllm-hit-bar")}
    assert set(bars) == {"sim-x86_64", "sim-arm64-cpu"}
    assert 0 < float(bars["sim-x86_64"]["data-value"]) <= 1  # prefix caching on: hits during the workload
    assert bars["sim-arm64-cpu"]["data-value"] == ""  # off (vLLM 0.11.2 on ARM): no query to divide by
    implementations = {i["target"]: i for i in run_report["document"]["implementations"]}
    measured = implementations["sim-x86_64"]["measured"]
    assert float(bars["sim-x86_64"]["data-value"]) == pytest.approx(
        measured["prefixCache"]["hits"] / measured["prefixCache"]["queries"], abs=1e-4)
    for kind, key in (("vllm-ttft", "ttft"), ("vllm-e2e", "e2eLatency")):
        charts = {c["data-target"]: c for c in elements(dom, kind)}
        assert set(charts) == {"sim-x86_64", "sim-arm64-cpu"}
        for name, chart in charts.items():  # every request of the workload, once, in some bucket
            assert float(chart["data-total"]) == implementations[name]["measured"][key][-1][1] == 8
    requests = [e for e in elements(dom, "vllm-requests") if e["data-target"] == "sim-x86_64"]
    assert {e["data-when"]: float(e["data-value"]) for e in requests} == {"before": 0.0, "after": 8.0}


def test_skipped_rows_show_their_reason_and_the_counts_match_pytest(run_report: dict[str, Any],
                                                                   tmp_path: Path) -> None:
    raw = (run_report["path"] / "report.html").read_text()
    import html

    blob = json.loads(html.unescape(re.search(r'data-jsonblob="(.*?)"', raw, re.S).group(1)))  # type: ignore[union-attr]
    skipped = [t for tests in blob["tests"].values() for t in tests if t["result"] == "Skipped"]
    assert skipped and all(not t["log"].startswith("(") and ".py', " not in t["log"] for t in skipped)
    assert any("LoRA" in t["log"] or "feature" in t["log"] for t in skipped)
    text = render(run_report["path"] / "report.html", tmp_path)
    found = re.findall(r"(\d+) (passed|failed|skipped|xfailed|inconclusive)", run_report["stdout"].splitlines()[-1])
    counts = {k: int(v) for v, k in found}
    total = sum(counts.values())
    assert f"{total} tests (all collected): " in text
    for name, n in counts.items():
        assert f"{n} {name}" in text.split("(all collected): ", 1)[1][:200]


def test_junit_carries_each_targets_outcome(run_report: dict[str, Any]) -> None:
    xml = (run_report["path"] / "junit.xml").read_text()
    case = re.search(r'<testcase [^>]*name="test_moves\[vllm:prefix_cache_hits_total\]".*?</testcase>', xml, re.S)
    assert case is not None
    assert '<property name="vllm_target_outcome:sim-arm64-cpu" value="xfailed"' in case.group(0)
    assert '<property name="vllm_target_outcome:sim-x86_64" value="passed"' in case.group(0)


def test_inconclusive_cells_are_not_failures() -> None:
    rows = [Row(id="test_server.py::test_reachable", target="", check="reachable", level="MUST", outcome="failed",
                targets={"a": {"outcome": "failed", "reason": "a: refused", "diagnosis": ""},
                         "b": {"outcome": "inconclusive", "reason": "b: timed out after 10 s", "diagnosis": ""}})]
    page = summary_html(rows, [{"target": "a", "architecture": "amd64", "vllmVersion": "0.32.0"},
                               {"target": "b", "architecture": "arm64", "vllmVersion": "0.32.0"}])
    a = re.search(r'<td class="cell o-failed" data-target="a"[^>]*>(.*?)</td>', page)
    b = re.search(r'<td class="cell o-inconclusive" data-target="b"[^>]*title="([^"]*)"[^>]*>(.*?)</td>', page)
    assert a is not None and b is not None
    assert a.group(1) == "✗" and b.group(2) == "?" and "timed out after 10 s" in b.group(1)
    colours = dict(re.findall(r"td\.cell\.o-(\w+)\{background:(#\w+)", page))
    assert colours["inconclusive"] != colours["failed"]
    assert "could not observe" in page.lower()
