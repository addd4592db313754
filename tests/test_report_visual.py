"""The HTML report shows, in a real headless Chromium with the network cut off: each dashboard drawn on its
grid with each panel's verdict, the pods x checks grid with each target's own outcome, the workload's charts,
skipped rows with their reason only, counts that match pytest's."""

from __future__ import annotations

import base64
import html
import json
import re
import subprocess
import sys
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from conftest import DASHBOARDS, RULES, dump_dom, render
from pytest_vllm_metrics import report_html, report_terminal
from pytest_vllm_metrics.report import build
from pytest_vllm_metrics.rows import Row

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
    """Every element's tag and attributes, and the text, from the DOM Chromium dumps (after pytest-html's script
    ran)."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str]]] = []
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, {k: v or "" for k, v in attrs}))

    def handle_data(self, data: str) -> None:
        self.parts.append(data)

    def text(self) -> str:
        return " ".join(" ".join(self.parts).split())

    def tagged(self, attribute: str) -> list[dict[str, str]]:
        return [attrs for _, attrs in self.found if attribute in attrs]

    def classed(self, cls: str) -> list[dict[str, str]]:
        return [attrs for _, attrs in self.found if cls in attrs.get("class", "").split()]


def parse(dom: str) -> _Elements:
    parser = _Elements()
    parser.feed(dom)
    return parser


def elements(dom: str, cls: str) -> list[dict[str, str]]:
    return parse(dom).classed(cls)


@pytest.fixture(scope="module")
def run_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One run as a user makes it: two simulated servers, the bundled dashboards plus a gridded one."""
    path = tmp_path_factory.mktemp("report")
    (path / "gridded").mkdir()
    (path / "gridded" / "gridded.json").write_text(json.dumps(GRIDDED))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--vllm-sim=x86_64", "--vllm-sim=arm64-cpu",
         "--vllm-timeout=60",  # the report is under test, not the machine: no request times out on a loaded one
         f"--grafana-dashboard={DASHBOARDS}", f"--grafana-dashboard={path / 'gridded'}", f"--prometheus-rules={RULES}",
         "--html=report.html",
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


def grid(page: _Elements) -> dict[tuple[str, str], str]:
    """The pods x checks grid read back: (target, check) -> outcome, for every target a row stands for."""
    found: dict[tuple[str, str], str] = {}
    members: list[str] = []
    for tag, attrs in page.found:
        if tag == "tr" and "data-targets" in attrs:
            # a row of the grid (the targets table's rows say which outcome is their worst: not the grid's)
            members = [] if "data-worst" in attrs else json.loads(attrs["data-targets"])
        elif "cell" in attrs.get("class", "").split():
            for name in members:
                assert (name, attrs["data-check"]) not in found
                found[(name, attrs["data-check"])] = attrs["data-outcome"]
    return found


def per_target(rows: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    """Each target's own outcome of each check, from the report model's rows."""
    return {(name, row["check"]): t["outcome"] for row in rows for name, t in row["targets"].items()}


def test_pods_by_checks_has_each_targets_own_outcome(run_report: dict[str, Any], tmp_path: Path) -> None:
    dom = dump_dom(run_report["path"] / "report.html", tmp_path)
    cells = {c["title"].split(" · ", 1)[0] + " · " + c["data-check"]: c for c in elements(dom, "cell")}
    expected = per_target(run_report["document"]["tests"])
    assert len(expected) > 100
    assert grid(parse(dom)) == expected
    # the documented limitation of arm64-cpu, not the check's folded outcome, and its reason on hover
    arm = cells["sim-arm64-cpu · moves: vllm:prefix_cache_hits_total"]
    assert arm["data-outcome"] == "xfailed" and "disables prefix caching" in arm["title"]
    assert cells["sim-x86_64 · moves: vllm:prefix_cache_hits_total"]["data-outcome"] == "passed"
    # grouped by kind: present, moves, prefix cache, server
    text = render(run_report["path"] / "report.html", tmp_path)
    assert re.search(r"present \(\d+\) .*moves \(\d+\) .*prefix cache \(\d+\) .*server \(\d+\)", text)


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
    page = report_html.summary(build(rows, implementations=[
        {"target": "a", "architecture": "amd64", "vllmVersion": "0.32.0"},
        {"target": "b", "architecture": "arm64", "vllmVersion": "0.32.0"}]))
    a = re.search(r'<span class="cell o-failed" data-check="reachable"[^>]*title="a · [^>]*>(.*?)</span>', page)
    b = re.search(r'<span class="cell o-inconclusive" data-check="reachable"[^>]*title="(b · [^"]*)"[^>]*>(.*?)</span>',
                  page)
    assert a is not None and b is not None
    assert a.group(1) == "✗" and b.group(2) == "?" and "timed out after 10 s" in b.group(1)
    colours = dict(re.findall(r"\.cell\.o-(\w+)\{background:(#\w+)", page))
    assert colours["inconclusive"] != colours["failed"]
    assert "could not observe" in page.lower()


# -- a fleet's report at a 1,280 px window: 2, 100 and 1,000 pods ----------------------------------------------

# Reads the laid-out page back: its width, any element past the window's right edge, where "What failed" is.
_MEASURE = """<script>
window.addEventListener('load', () => setTimeout(() => {
  const root = document.documentElement;
  const wide = [];
  for (const el of document.body.querySelectorAll('*')) {
    const r = el.getBoundingClientRect();
    if (r.width > 0 && r.right > root.clientWidth + 0.5) {
      wide.push(el.tagName + '.' + el.className + ' ends at ' + Math.round(r.right));
    }
  }
  const pre = document.createElement('pre');
  pre.id = 'measured';
  pre.textContent = JSON.stringify({scrollWidth: root.scrollWidth, innerWidth: window.innerWidth,
    wide: wide.slice(0, 10), story: document.querySelector('.vllm-story').getBoundingClientRect().top});
  document.body.appendChild(pre);
}, 0));
</script>"""
_BUCKET = {"error": "failed", "xpassed": "passed"}  # how the reports count an error and an unexpected pass
_BUCKETS = ("failed", "inconclusive", "xfailed", "passed", "skipped")
FLEET = ["x86_64"] * 97 + ["arm64-cpu"] * 2 + ["x86_64-no-prefix-caching"]


@pytest.fixture(scope="module")
def fleet_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """100 simulated pods as a user runs them (97 alike, 2 with vLLM 0.11.2 on ARM, 1 started without prefix
    caching), with the bundled dashboards and rule files."""
    path = tmp_path_factory.mktemp("fleet")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *(f"--vllm-sim={p}" for p in FLEET),
         "--vllm-timeout=60",  # 100 servers in one process, 16 at once: no request times out on a loaded machine
         f"--grafana-dashboard={DASHBOARDS}", f"--prometheus-rules={RULES}", "--html=report.html",
         "--self-contained-html", "--vllm-report=report.json"],
        cwd=path, capture_output=True, text=True, timeout=300,
    )
    assert (path / "report.html").exists(), result.stdout[-3000:] + result.stderr[-3000:]
    return {"path": path, "stdout": result.stdout, "document": json.loads((path / "report.json").read_text())}


def thousand_pods(document: dict[str, Any]) -> tuple[list[Row], list[dict[str, Any]]]:
    """The report model of 1,000 pods, from a real run's: pod i gets the results of the run's target i % 100,
    with its own name; decode-0005..0007 are refused on the reachability check, each with its own reason, and
    decode-0008 could not be observed at all."""
    live = {str(i["target"]): i for i in document["implementations"]}
    names = [f"decode-{i:04d}" for i in range(1000)]
    source = {name: list(live)[i % len(live)] for i, name in enumerate(names)}
    rows = []
    for raw in document["tests"]:
        if raw["targets"]:
            own = {name: {k: v.replace(source[name], name) for k, v in raw["targets"][source[name]].items()}
                   for name in names}
            own["decode-0008"] = {"outcome": "inconclusive", "reason": "decode-0008: could not scrape /metrics: timed "
                                  "out after 10 s; check the pod's readiness, or raise --vllm-timeout",
                                  "diagnosis": ""}
            raw = {**raw, "targets": own, "evidence": {name: raw["evidence"].get(source[name], {}) for name in names}}
            if raw["check"] == "reachable":
                for name in ("decode-0005", "decode-0006", "decode-0007"):
                    own[name] = {"outcome": "failed", "reason": f"{name}: connection refused on port 82{name[-2:]}",
                                 "diagnosis": ""}
                raw["outcome"] = "failed"
        rows.append(Row.from_json(raw))
    return rows, [{**live[source[name]], "target": name} for name in names]


def fleet_page(size: int, request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, list[dict[str, Any]]]:
    """The HTML report of `size` pods and the report model's rows it shows. 2 and 100 pods: a real run's report.
    1,000: the real 100-pod page, its summary written anew from the 1,000-pod model."""
    if size < 1000:
        run = request.getfixturevalue("run_report" if size == 2 else "fleet_report")
        return run["path"] / "report.html", run["document"]["tests"]
    run = request.getfixturevalue("fleet_report")
    rows, implementations = thousand_pods(run["document"])
    raw = (run["path"] / "report.html").read_text()
    start, end = raw.index("<style>#vllm-summary{"), raw.index("<!-- /vllm-summary -->") + len("<!-- /vllm-summary -->")
    page = tmp_path / "report-1000.html"
    page.write_text(raw[:start] + report_html.summary(build(rows, implementations=implementations)) + raw[end:])
    return page, [row.as_json() for row in rows]


def bucketed(outcomes: list[str]) -> Counter[str]:
    return Counter(_BUCKET.get(o, o) for o in outcomes)


@pytest.mark.parametrize("size", [2, 100, 1000])
def test_at_2_100_and_1000_pods_the_report_fits_1280_px_and_its_top_agrees_with_its_details(
    size: int, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    report, rows = fleet_page(size, request, tmp_path)
    measuring = tmp_path / "measured.html"
    measuring.write_text(report.read_text().replace("</body>", _MEASURE + "</body>"))
    dom = dump_dom(measuring, tmp_path, width=1280)
    measured = json.loads(re.search(r'<pre id="measured">(.*?)</pre>', dom, re.S).group(1))  # type: ignore[union-attr]
    # no horizontal scroll at a 1,280 px window: nothing reaches past its right edge, the grid included
    assert measured["innerWidth"] == 1280
    assert measured["scrollWidth"] <= 1280 and measured["wide"] == [], measured
    assert measured["story"] < 1000  # what failed is on the first screen
    page = parse(dom)
    # every target's own outcome of every check is in the grid, on the row that stands for it
    expected = per_target(rows)
    assert len({name for name, _ in expected}) == size
    assert grid(page) == expected
    # the sections below the top, counted as they show: each target by its worst check, each panel, each rule...
    worst: dict[str, str] = {}
    for (name, _), outcome in expected.items():
        worst[name] = min(worst.get(name, "skipped"), _BUCKET.get(outcome, outcome), key=_BUCKETS.index)
    classes = page.tagged("data-worst")  # the targets table: a row per set of alike targets
    table: Counter[str] = Counter()
    for row in classes:
        table[row["data-worst"]] += int(row["data-count"])
    assert table == Counter(worst.values())
    panels = page.classed("vllm-panel")
    assert len(panels) == sum(1 for r in rows if r["check"].startswith("panel: "))
    shown = {"targets": table, "dashboards": bucketed([b["data-outcome"] for b in panels])}
    for row in page.tagged("data-reader"):  # the rules, autoscalers and endpoint picker tables
        shown.setdefault(row["data-reader"], Counter()).update(bucketed([row["data-outcome"]]))
    assert sum(shown["rules"].values()) == sum(1 for r in rows if r["check"].split(":")[0] in ("alert", "record"))
    # ... are what the top counts, reader by reader, and the sentence names each reader with a failure
    top = {row["data-overview"]: row for row in page.tagged("data-overview")}
    assert set(top) == set(shown)  # every reader the run checked has its row at the top, and its section
    text = page.text()
    for reader, counts in shown.items():
        assert {b: int(top[reader][f"data-{b}"]) for b in _BUCKETS} == {b: counts[b] for b in _BUCKETS}, reader
        assert int(top[reader]["data-total"]) == sum(counts.values())
        if counts["failed"]:
            assert re.search(rf"What failed: .*{counts['failed']} of {sum(counts.values())} \w+ failed", text), reader
    # alike pods share a row: the 97 x86_64 pods are one, each odd kind its own
    assert len(classes) == {2: 2, 100: 3, 1000: 5}[size]
    if size == 1000:
        # 966 alike, the 20 and 10 of the fleet's odd ones, the refused three, the one not observed
        assert sorted(int(row["data-count"]) for row in classes) == [1, 3, 10, 20, 966]
        assert "966 targets like decode-0000" in text and "3 targets like decode-0005" in text
        for name in ("decode-0005", "decode-0006", "decode-0007"):  # each refused pod's own reason, naming it
            assert f"connection refused on port 82{name[-2:]} (on {name})" in text


def test_a_fleet_of_100_tells_one_story_in_the_terminal_and_the_html(fleet_report: dict[str, Any]) -> None:
    stdout, document = fleet_report["stdout"], fleet_report["document"]
    raw = (fleet_report["path"] / "report.html").read_text()
    page = parse(raw[raw.index('<div id="vllm-summary">'):raw.index("<!-- /vllm-summary -->")])
    # the terminal's readers are the HTML's top rows, count for count
    for item in document["readers"]:
        counts = ", ".join(f"{n} {b}" for b, n in item["counts"].items() if n)
        assert re.search(rf"^  {re.escape(item['title'])} +{item['total']} {item['units']}: {counts}$", stdout, re.M)
    top = {a["data-overview"]: {b: int(a[f"data-{b}"]) for b in _BUCKETS} for a in page.tagged("data-overview")}
    assert top == {item["reader"]: item["counts"] for item in document["readers"]}
    # the llm-d dashboards' saved $namespace cannot be judged on simulators: those panels are inconclusive
    assert "1 of 100 targets failed; 5 of 21 panels failed; 6 of 12 rules failed; 8 of 21 panels could not be " \
           "judged" in " ".join(stdout.split())
    # 200 store warnings (two per pod) are two, each naming the pods it concerns
    assert re.search(r"\b2 warnings\b", stdout.splitlines()[-1])
    warned = [line for line in stdout.splitlines() if "StoreWarning: " in line]
    assert len(warned) == 2 and all("StoreWarning: sim-x86_64, sim-x86_64-2, sim-x86_64-3 and 97 more (100 targets): "
                                    in line for line in warned)
    assert [len(w["targets"]) for w in document["warnings"]] == [100, 100]
    assert [a["data-count"] for a in page.classed("vllm-warning")] == ["100", "100"]
    # pytest-html's environment table: a row per kind of target, not one per pod
    blob = json.loads(html.unescape(re.search(r'data-jsonblob="(.*?)"', raw, re.S).group(1)))  # type: ignore[union-attr]
    targets = {k: v for k, v in blob["environment"].items() if k.startswith("Target")}
    assert list(targets) == ["Targets sim-x86_64, sim-x86_64-2, sim-x86_64-3 and 94 more (97 targets)",
                             "Targets sim-arm64-cpu, sim-arm64-cpu-2", "Target sim-x86_64-no-prefix-caching"]
    assert blob["environment"]["Simulator profiles"] == ("x86_64 (97 servers), arm64-cpu (2 servers), "
                                                         "x86_64-no-prefix-caching")
    # each check's evidence in the HTML report: the targets that did not pass first, 20 in all (the JSON: every one)
    extra = blob["tests"]["test_metrics.py::test_moves[vllm:prefix_cache_queries_total]"][0]["extras"][0]
    evidence = json.loads(base64.b64decode(extra["content"].split("base64,", 1)[1]))
    assert len(evidence) == 21 and set(list(evidence)[:3]) == {  # xfailed on ARM, failed without prefix caching
        "sim-arm64-cpu", "sim-arm64-cpu-2", "sim-x86_64-no-prefix-caching"}
    assert evidence["more targets"].startswith("80 more, not shown here: every target's evidence is in the JSON")
    assert len(raw) < 2_000_000  # 6.5 MB when every pod's evidence of every check was inlined


def test_a_thousand_pods_make_a_terminal_summary_as_short_as_a_hundred(fleet_report: dict[str, Any]) -> None:
    rows, _ = thousand_pods(fleet_report["document"])
    lines = report_terminal.terminal_lines(build(rows), width=120)
    assert " ".join(" ".join(lines[1:3]).split()) == (
        "13 of 1000 targets failed; 5 of 21 panels failed; 6 of 12 rules failed; 1 of 1000 targets could not be "
        "judged; 8 of 21 panels could not be judged")
    text = " ".join(" ".join(lines).split())
    # the 20 ARM pods' documented limitation: one paragraph naming them (and the panel it makes always zero)
    limitations = text.split("documented limitations (XFAIL)", 1)[1]
    assert limitations.count("disables prefix caching on arm64 CPUs") == 1
    # (the two recording rules that aggregate the fleet's hits say, under their OK, which pods add nothing and why)
    named = re.search(r"documented limitations \(XFAIL\), as vLLM states them: (.*?) and \d+ more \((\d+) targets\): "
                      r"vLLM 0.11.2 disables", text)
    assert named is not None and int(named.group(2)) >= 20  # the 20 pods, and the panels and rules they break
    assert "[3 checks each]" in text  # its three prefix-cache checks (the panels' $namespace is not judged here)
    hundred = report_terminal.terminal_lines(build(Row.from_json(r) for r in fleet_report["document"]["tests"]),
                                             width=120)
    assert len(lines) <= len(hundred) + 20  # the refused and unobserved pods add their lines; the fleet's size not
