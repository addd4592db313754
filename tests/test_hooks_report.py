"""The report hooks, in short in-process runs of a user's own checks (no server needed): a row per check, the one
report model at the session's end (its start time, pytest's own tally, the exit code), the terminal section, and
pytest-html's title, results-table columns, skip reasons, summary and environment table."""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import flat, parse_html
from pytest_vllm_metrics import gaie, report
from pytest_vllm_metrics._hooks_report import _outcome_of, _shard_targets, _write_gaie, row_of
from pytest_vllm_metrics.catalog import load_catalog
from pytest_vllm_metrics.outcome import Level
from pytest_vllm_metrics.rows import Row, RowOutcome
from pytest_vllm_metrics.run import Run
from pytest_vllm_metrics.settings import Settings
from pytest_vllm_metrics.shard import Shard
from test_report_gaie import every_check, target

pytestmark = pytest.mark.quick_run  # short in-process runs: kept in the mutation run

DASHBOARD = Path(__file__).parent / "data" / "upgrade" / "vllm-example-0.10.json"
LONG = "the counter went from 0 to 0 during the workload " * 3  # wraps in a narrow terminal
CHECKS = f"""
import pytest
from pytest_vllm_metrics.outcome import Outcome, Verdict


@pytest.mark.must
def test_fine(vllm_level, vllm_enforce):
    vllm_enforce(Verdict(Outcome.PASSED, "", vllm_level, target="decode-0"))


@pytest.mark.must
def test_broken(vllm_level, vllm_enforce):
    vllm_enforce(Verdict(Outcome.FAILED, "decode-0: {LONG.strip()}", vllm_level, target="decode-0"))


@pytest.mark.should
def test_unsure(vllm_level, vllm_enforce):
    vllm_enforce(Verdict(Outcome.INCONCLUSIVE, "decode-0: <timed out>", vllm_level, target="decode-0"))


@pytest.mark.may
def test_no_lora(vllm_level, vllm_enforce):
    pytest.skip("no LoRA adapter <served>")


def test_not_a_check():
    pytest.skip("a skip of a test that is not a check")


def test_plain():
    pass
"""


def run(pytester: pytest.Pytester, checks: str, *args: str) -> tuple[pytest.RunResult, dict[str, Any], str]:
    """A run of the given checks with the JSON and HTML reports: its result, the JSON report and the HTML page."""
    pytester.makepyfile(test_checks=checks)
    result = pytester.runpytest("-p", "no:cacheprovider", "--vllm-report=out/report.json", "--html=report.html",
                                "--self-contained-html", *args)
    return result, json.loads((pytester.path / "out" / "report.json").read_text()), (
        pytester.path / "report.html").read_text()


def blob(page: str) -> dict[str, Any]:
    """pytest-html's data: the results table's rows, the environment table."""
    found = re.search(r'data-jsonblob="(.*?)"', page, re.S)
    assert found is not None
    data: dict[str, Any] = json.loads(html.unescape(found.group(1)))
    return data


def test_a_run_of_checks_makes_one_report_model_stated_everywhere(pytester: pytest.Pytester,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    before = datetime.now(UTC)
    result, document, page = run(pytester, CHECKS)
    # one row per check, in the order they ran; the tests that are not checks have none
    assert [(t["check"], t["target"], t["level"], t["outcome"]) for t in document["tests"]] == [
        ("fine", "decode-0", "MUST", "passed"), ("broken", "decode-0", "MUST", "failed"),
        ("unsure", "decode-0", "SHOULD", "inconclusive"), ("no_lora", "", "MAY", "skipped")]
    assert (document["result"], document["exitCode"], result.ret) == ("failure", 1, 1)
    assert document["date"].endswith("+00:00")  # when the run started, in UTC, to the second
    assert before.replace(microsecond=0) <= datetime.fromisoformat(document["date"]) <= datetime.now(UTC)
    # the terminal: the section, its lines wrapped to the terminal's width
    lines = result.stdout.lines
    start = next(i for i, line in enumerate(lines) if " vLLM metrics conformance " in line)
    assert lines[start + 1] == "result: FAILURE  (1 failed, 1 inconclusive, 1 passed, 1 skipped)"
    assert "FAILED   MUST   decode-0 broken" in lines
    after = lines[lines.index("FAILED   MUST   decode-0 broken") + 1:]
    reason = after[:next(i for i, line in enumerate(after) if not line.startswith("    "))]
    assert len(reason) == 2 and all(len(line) <= 80 for line in reason)
    assert " ".join(" ".join(reason).split()) == " ".join(LONG.split())
    assert "conformance report: out/report.json" in lines
    # the HTML report: its title, the columns it adds, the summary of the same model
    assert '<title id="head-title">vLLM metrics conformance</title>' in page
    header = re.findall(r'<th class="sortable" data-column-type="(\w+)">(\w+)</th>', page)
    assert header == [("result", "Result"), ("testId", "Test"), ("target", "Target"), ("level", "Level"),
                      ("outcome", "Outcome"), ("duration", "Duration")]
    data = blob(page)
    rows = {test_id: test[0] for test_id, test in data["tests"].items()}
    cells = {test_id.split("::")[-1]: [re.sub(r"<[^>]+>", "", c) for c in row["resultsTableRow"]]
             for test_id, row in rows.items()}
    assert {name: found[2:5] for name, found in cells.items()} == {
        "test_fine": ["decode-0", "MUST", "passed"], "test_broken": ["decode-0", "MUST", "failed"],
        "test_unsure": ["decode-0", "SHOULD", "inconclusive"], "test_no_lora": ["", "MAY", "skipped"],
        "test_not_a_check": ["", "", ""], "test_plain": ["", "", ""]}
    logs = {test_id.split("::")[-1]: row["log"] for test_id, row in rows.items()}
    # a skip's log is its reason, not pytest's (path, line, reason) tuple; an inconclusive check's is its cause
    assert logs["test_unsure"] == "decode-0: &lt;timed out&gt;"
    assert logs["test_no_lora"] == "no LoRA adapter &lt;served&gt;"
    assert logs["test_not_a_check"] == "a skip of a test that is not a check"
    summary = parse_html(page[page.index('<div id="vllm-summary">'):page.index("<!-- /vllm-summary -->")])
    # pytest's own tally: every test that ran, skipped and inconclusive ones included
    assert summary.one("span", class_="vllm-tally").text == (
        "6 tests (all collected): 2 passed, 1 failed, 1 inconclusive, 2 skipped")
    assert data["environment"]["pytest-vllm-metrics"]  # the environment table: the plugin's rows


def test_a_failing_test_that_is_not_a_check_keeps_pytests_exit_code(pytester: pytest.Pytester) -> None:
    # a check that passes, then a test that is not a check fails: -x stops the run there
    checks = CHECKS.replace("def test_plain():\n    pass", "").replace("def test_fine(", "def test_a_fine(")
    checks = checks.replace("@pytest.mark.must\ndef test_broken", "def test_b_plain():\n    assert False\n\n\n"
                                                                  "@pytest.mark.must\ndef test_broken")
    result, document, page = run(pytester, checks, "-x", "-p", "no:randomly")
    assert [t["check"] for t in document["tests"]] == ["a_fine"]
    assert (document["result"], document["exitCode"], result.ret) == ("success", 1, 1)
    summary = parse_html(page[page.index('<div id="vllm-summary">'):page.index("<!-- /vllm-summary -->")])
    assert summary.one("span", class_="vllm-tally").text == "2 tests of 6 collected: 1 passed, 1 failed"


def test_without_checks_no_section_and_no_summary(pytester: pytest.Pytester) -> None:
    result, document, page = run(pytester, "def test_plain():\n    pass\n")
    assert document["tests"] == [] and result.ret == 0
    assert "vLLM metrics conformance =" not in result.stdout.str()
    assert 'id="vllm-summary"' not in page


def test_a_panel_check_is_drawn_where_its_dashboard_puts_it(pytester: pytest.Pytester) -> None:
    checks = """
import pytest
from pytest_vllm_metrics.outcome import Outcome, Verdict


def test_panel(vllm_panel, vllm_enforce):
    vllm_enforce(Verdict(Outcome.PASSED, "", evidence={"panel_verdict": "ok"}))
"""
    result, document, page = run(pytester, checks, f"--grafana-dashboard={DASHBOARD}")
    panels = [p for p in json.loads(DASHBOARD.read_text())["panels"] if p["type"] != "row"]
    assert [t["check"] for t in document["tests"]] == [f"panel: {p['title']}" for p in panels], flat(result)
    summary = parse_html(page[page.index('<div id="vllm-summary">'):page.index("<!-- /vllm-summary -->")])
    dash = summary.one("section", class_="vllm-dash")
    assert (dash.attrs["data-dashboard"], dash.one("h4").text) == ("vllm-example-0.10", "vLLM (vllm-example-0.10)")
    # each panel at its gridPos, in the file's order
    assert [(p.attrs["data-panel"], p.attrs["data-verdict"], p.attrs["data-grid"])
            for p in dash.all("div", class_="vllm-panel")] == [
        (p["title"], "ok", ",".join(str(p["gridPos"][k]) for k in "xywh")) for p in panels]


def test_a_dashboards_rows_title_their_panels_and_panels_without_a_place_flow_three_to_a_line(
        pytester: pytest.Pytester) -> None:
    # vLLM's query-statistics dashboard (tests/data/public/SOURCES.md): four rows, and no panel has a gridPos
    dashboard = Path(__file__).parent / "data" / "public" / "dashboards" / "vllm-query-statistics.json"
    checks = """
from pytest_vllm_metrics.outcome import Outcome, Verdict


def test_panel(vllm_panel, vllm_enforce):
    vllm_enforce(Verdict(Outcome.PASSED, "", evidence={"panel_verdict": "ok"}))
"""
    result, document, page = run(pytester, checks, f"--grafana-dashboard={dashboard}")
    assert len(document["tests"]) == 14, flat(result)
    summary = parse_html(page[page.index('<div id="vllm-summary">'):page.index("<!-- /vllm-summary -->")])
    dash = summary.one("section", class_="vllm-dash")
    assert [title.text for title in dash.all("div", class_="vllm-row-title")] == [
        "Request Over Time", "Size Distribution", "Input Token Over Time", "Output Token Over Time"]
    # the first row: its title's bar, then its five panels three to a line, 8 columns wide and 5 high
    assert [(p.attrs["data-panel"], p.attrs["data-grid"]) for p in dash.all("div", class_="vllm-panel")][:5] == [
        ("Successful Requests Over Time", "0,1,8,5"), ("Requests Avg Rate", "8,1,8,5"), ("p50 Latency", "16,1,8,5"),
        ("p90 Latency", "0,6,8,5"), ("p99 Latency", "8,6,8,5")]


def test_the_results_table_adds_exactly_its_three_columns_and_keeps_pytests_logs(pytester: pytest.Pytester) -> None:
    checks = CHECKS + """

@pytest.mark.must
@pytest.mark.xfail(reason="a known bug of the check")
def test_known(vllm_level, vllm_enforce):
    assert False, "the known bug"


def test_printing():
    print("said by the test")
"""
    _, _, page = run(pytester, checks)
    start = page.index('<thead id="results-table-head">')
    head = parse_html(page[start:page.index("</thead>", start) + len("</thead>")])
    assert head.text == "Result Test Target Level Outcome Duration Links"
    rows = {test_id.split("::")[-1]: test[0] for test_id, test in blob(page)["tests"].items()}
    # every row has the header's seven cells: pytest-html's own (the duration, the links) kept after the three
    for name, row in rows.items():
        columns = [re.search(r'class="col-([\w-]+)"', cell).group(1)  # type: ignore[union-attr]
                   for cell in row["resultsTableRow"]]
        assert columns == ["result", "testId", "target", "level", "outcome", "duration", "links"], name
    # pytest's own log where the check's reason does not replace it: an expected failure's, a passed test's output
    assert "AssertionError: the known bug" in rows["test_known"]["log"]
    assert "said by the test" in rows["test_printing"]["log"]


def test_a_run_that_selects_nothing_keeps_pytests_exit_code(pytester: pytest.Pytester) -> None:
    result, document, _ = run(pytester, CHECKS, "-k", "nothing_has_this_name")
    assert document["tests"] == []
    assert (document["exitCode"], result.ret) == (5, pytest.ExitCode.NO_TESTS_COLLECTED)


def test_a_run_without_the_terminal_still_counts_what_pytest_ran(pytester: pytest.Pytester) -> None:
    result, document, page = run(pytester, CHECKS, "-p", "no:terminal")
    assert (document["result"], document["exitCode"], result.ret) == ("failure", 1, 1)
    summary = parse_html(page[page.index('<div id="vllm-summary">'):page.index("<!-- /vllm-summary -->")])
    # no terminal, so pytest counted nothing: the summary counts the checks instead (not "0 tests")
    assert summary.one("span", class_="vllm-tally").text == (
        "4 checks: 1 failed, 1 inconclusive, 1 passed, 1 skipped")


def test_the_gaie_reports_are_written_with_the_given_version_and_fields_and_named_for_the_terminal(
        tmp_path: Path) -> None:
    # --vllm-gaie-report=DIR --vllm-gaie-version=v1.7.0 --vllm-gaie-implementation=contact=@me, after a run whose
    # protocol checks judged one vLLM server (the rows as the run makes them)
    settings = Settings(vllm_gaie_report=str(tmp_path / "gaie"), vllm_gaie_version="v1.7.0",
                        vllm_gaie_implementation=(gaie.Field(None, "contact", "@me"),))
    run = Run(settings, load_catalog())
    lines = _write_gaie(report.build(every_check(), implementations=[target("a")]), run)
    written = sorted((tmp_path / "gaie").rglob("*.yaml"))
    assert len(written) == 1 and lines == [f"GAIE report: {written[0]}"]
    document = yaml.safe_load(written[0].read_text())
    assert document["GatewayAPIInferenceExtensionVersion"] == "v1.7.0"
    assert document["implementation"]["contact"] == ["@me"]
    # a run whose protocol checks judged no server writes none, and says why
    assert _write_gaie(report.build([], implementations=[target("a")]), run) == [
        "GAIE report: none written: no model-server protocol check judged a target (test_model_server.py was not "
        "selected, or no target was observed)"]


def test_a_shards_report_names_the_fleet_and_the_slice_it_checked() -> None:
    # --vllm-shard=1/2 over two URLs (no discovery): the merge needs every target and this shard's own
    urls = ("http://10.0.0.1:8000", "http://10.0.0.2:8000")
    run = Run(Settings(vllm_url=urls, vllm_shard=Shard(1, 2)), load_catalog())
    found = _shard_targets(run)
    assert sorted(found) == ["checked", "fleet"] and len(found["fleet"]) == 2
    assert found["checked"] == run.target_names() and len(found["checked"]) == 1
    assert set(found["checked"]) < set(found["fleet"])
    assert _shard_targets(Run(Settings(vllm_url=urls), load_catalog())) == {}  # not sharded: nothing to add


def test_the_terminal_says_when_no_gaie_report_was_written(pytester: pytest.Pytester) -> None:
    result, _, _ = run(pytester, CHECKS, "--vllm-gaie-report=gaie")
    assert ("GAIE report: none written: no model-server protocol check judged a target (test_model_server.py was "
            "not selected, or no target was observed)") in result.stdout.lines


def test_a_shards_run_writes_what_the_merge_needs(pytester: pytest.Pytester) -> None:
    # --vllm-shard=0/1 with a URL target nothing answers at: the fleet, the slice, each check's level mark
    result, document, _ = run(pytester, CHECKS, "--vllm-shard=0/1", "--vllm-url=http://127.0.0.1:9")
    shard = document["shard"]
    assert (shard["index"], shard["count"], shard["fleet"], shard["checked"]) == (0, 1, ["127.0.0.1:9"],
                                                                                   ["127.0.0.1:9"])
    # the bundled suite's checks run too (a target is given), each with its own mark
    assert set(shard["marks"]) == {t["id"] for t in document["tests"]} and len(shard["marks"]) > 100
    assert set(shard["marks"].values()) == {"MUST", "SHOULD", "MAY"}
    assert (shard["pytestStatus"], shard["testsFailed"], result.ret) == (1, 1, 1)
    assert [t["target"] for t in document["implementations"]] == ["127.0.0.1:9"]  # the target, though unreachable


def test_a_row_a_pytest_xdist_worker_sends_as_json_is_read_back_whole() -> None:
    # the controller gets each check's row as JSON text; an inconclusive one is shown as such at every phase
    row = Row(id="test_checks.py::test_unsure", target="decode-0", check="unsure", level=Level.SHOULD,
              outcome=RowOutcome.INCONCLUSIVE, reason="decode-0: <timed out>")
    sent = pytest.TestReport(row.id, ("test_checks.py", 1, "test_unsure"), {}, "skipped", None, "call")
    sent.vllm_row = row.to_wire()  # type: ignore[attr-defined]
    sent.vllm_outcome = row.outcome.value  # type: ignore[attr-defined]
    assert _outcome_of(sent) == RowOutcome.INCONCLUSIVE and row_of(sent) == row
