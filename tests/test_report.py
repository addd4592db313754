"""Reports: the JSON conformance report, the terminal summary, pytest-html, the exit-code contract, secrets."""

from __future__ import annotations

import html
import json
import platform
import re
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import (
    KV_REASON,
    NO_PREFIX,
    NOT_ON_ARM,
    REPORT_TARGETS,
    RULE_REASON,
    TIMED_OUT,
    render,
    report_rows,
    upgrade_rows,
)
from pytest_vllm_metrics import gate, hygiene, report, report_html, report_terminal, upgrade
from pytest_vllm_metrics.gate import Result
from pytest_vllm_metrics.hygiene import StoreWarning
from pytest_vllm_metrics.kube import ClusterInfo
from pytest_vllm_metrics.multinode import Worker
from pytest_vllm_metrics.outcome import Level, Outcome, Verdict
from pytest_vllm_metrics.report import (
    Alike,
    Once,
    Tally,
    Warned,
    alike,
    all_targets,
    build,
    by_target,
    checks_count,
    dark_state,
    schema,
    story_text,
    upgrade_section,
    write_data,
    write_text,
)
from pytest_vllm_metrics.report import document as report_document
from pytest_vllm_metrics.rows import BUCKETS, Reader, Row, RowOutcome, TargetResult
from pytest_vllm_metrics.settings import Settings
from pytest_vllm_metrics.shard import Shard
from pytest_vllm_metrics.sim import SimHost, get_profile
from pytest_vllm_metrics.targets import Role
from pytest_vllm_metrics.versions import __version__


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-p", "no:cacheprovider", *args)


@pytest.mark.parametrize(
    ("profiles", "result"),
    [(["x86_64"], "success"), (["arm64-cpu"], "partial"), (["x86_64", "x86_64-no-prefix-caching"], "failure")],
)
def test_json_report_validates_and_its_counts_match_pytest(
    pytester: pytest.Pytester, profiles: list[str], result: str
) -> None:
    outcome = run(pytester, *(f"--vllm-sim={p}" for p in profiles), "--vllm-report=report.json")
    document = json.loads((pytester.path / "report.json").read_text())
    jsonschema.validate(document, schema())
    assert document["result"] == result
    counts = outcome.parseoutcomes()
    for name, key in (("passed", "passed"), ("failed", "failed"), ("skipped", "skipped"), ("xfailed", "xfailed")):
        assert document["counts"].get(name, 0) == counts.get(key, 0), name
    assert len(document["tests"]) == sum(counts.get(k, 0) for k in ("passed", "failed", "skipped", "xfailed"))
    assert sum(sum(c.values()) for c in document["countsByLevel"].values()) == len(document["tests"])
    assert {i["target"] for i in document["implementations"]} == {f"sim-{p}" for p in profiles}
    first = document["implementations"][0]
    assert first["model"] == "tiny" and first["blockSize"] == 128 and first["source"] == "sim"


def test_xfail_rows_carry_the_documented_reason(pytester: pytest.Pytester) -> None:
    run(pytester, "--vllm-sim=arm64-cpu", "--vllm-report=report.json")
    rows = json.loads((pytester.path / "report.json").read_text())["tests"]
    xfailed = [r for r in rows if r["outcome"] == "xfailed"]
    assert len(xfailed) == 3
    assert all("Prefix caching is not supported for ARM and POWER, S390X and RISC-V CPUs" in r["reason"]
               for r in xfailed)
    hits = next(r for r in xfailed if r["check"] == "moves: vllm:prefix_cache_hits_total")
    assert hits["level"] == "MUST" and hits["evidence"]["increase"] == 0


def test_yaml_report(pytester: pytest.Pytester) -> None:
    import yaml

    run(pytester, "--vllm-sim=x86_64", "--vllm-report=report.yaml", "-k", "test_reachable")
    document = yaml.safe_load((pytester.path / "report.yaml").read_text())
    jsonschema.validate(json.loads(json.dumps(document, default=str)), schema())
    assert document["kind"] == "ConformanceReport" and document["result"] == "success"


def test_terminal_summary_lists_failures_and_xfails_with_their_diagnosis(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--vllm-sim=arm64-cpu", "--vllm-sim=x86_64-no-prefix-caching", "-m", "must")
    result.stdout.fnmatch_lines([
        "*= vLLM metrics conformance =*",
        "result: FAILURE  (*)",
        "OUTCOME  LEVEL  TARGET*CHECK",
        # one check across both servers: it fails (on one) and names each server's cause
        "FAILED   MUST   2 of 2 targets* moves: vllm:prefix_cache_queries_total",
        "    sim-x86_64-no-prefix-caching: vLLM reports enable_prefix_caching=\"False\" in*",
        # the documented reason: once for its target, whatever the number of checks it explains
        "documented limitations (XFAIL), as vLLM states them:",
        "  sim-arm64-cpu: vLLM 0.11.2 disables prefix caching on arm64 CPUs:*",
    ])
    assert result.stdout.str().count("sim-arm64-cpu: vLLM 0.11.2 disables prefix caching") == 1


def test_exit_code_follows_the_requirement_level(pytester: pytest.Pytester) -> None:
    # Without MUST checks only SHOULD checks fail on this server: by default that does not fail the run.
    should_only = run(pytester, "--vllm-sim=x86_64-no-prefix-caching", "-m", "not must")
    assert should_only.parseoutcomes()["failed"] >= 1
    assert should_only.ret == pytest.ExitCode.OK
    strict = run(pytester, "--vllm-sim=x86_64-no-prefix-caching", "-m", "not must", "--vllm-fail-on=should")
    assert strict.ret == pytest.ExitCode.TESTS_FAILED
    must = run(pytester, "--vllm-sim=x86_64-no-prefix-caching", "-m", "must")
    assert must.ret == pytest.ExitCode.TESTS_FAILED


def test_users_failing_test_still_fails_the_run(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_team="def test_mine(vllm_delta):\n    assert False, 'team check'\n")
    result = run(pytester, "--vllm-sim=x86_64", "test_team.py")
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_junit_xml_carries_target_check_and_level(pytester: pytest.Pytester) -> None:
    run(pytester, "--vllm-sim=x86_64", "-k", "test_reachable", "--junitxml=junit.xml")
    xml = (pytester.path / "junit.xml").read_text()
    assert '<property name="vllm_target" value="sim-x86_64"' in xml
    assert '<property name="vllm_level" value="MUST"' in xml


def test_self_contained_html_shows_summary_xfail_reason_and_environment_in_a_browser(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    run(pytester, "--vllm-sim=arm64-cpu", "--vllm-sim=x86_64", "--html=report.html", "--self-contained-html")
    report = pytester.path / "report.html"
    raw = report.read_text()
    assert 'src="http' not in raw and 'href="assets' not in raw  # self-contained: no external assets
    text = render(report, tmp_path)
    assert "vLLM metrics conformance" in text and "Result: PARTIAL" in text
    assert "Not working, and why" in text
    # the results table (drawn by JavaScript from the data blob) shows the XFAIL rows and their reason
    assert "Expected failures" in text
    assert "vLLM 0.11.2 disables prefix caching on arm64 CPUs" in text
    # the environment table: per target version, model, architecture, block size, features
    assert "Target sim-arm64-cpu" in text
    assert "vLLM 0.11.2, model tiny, arch arm64, block size 128, prefix caching False" in text
    assert "Simulator profiles" in text and "pytest-vllm-metrics" in text


def test_secrets_never_reach_any_artifact(pytester: pytest.Pytester, sim_host: SimHost) -> None:
    secret = "sk-secret-4f2a9c1b77"
    sim = sim_host.start(get_profile("arm64-cpu").replace(api_key=secret))
    result = run(pytester, f"--vllm-url={sim.url}", f"--vllm-api-key={secret}", "--vllm-arch=arm64",
                 "--html=report.html", "--self-contained-html", "--junitxml=junit.xml", "--vllm-report=report.json",
                 "-rA", "-v")
    assert result.parseoutcomes()["passed"] > 50  # the key worked
    artifacts = {name: (pytester.path / name).read_text() for name in ("report.html", "junit.xml", "report.json")}
    artifacts["terminal"] = result.stdout.str() + result.stderr.str()
    for name, text in artifacts.items():
        assert secret not in text, name
        # nor base64-encoded, as self-contained HTML inlines extras
        import base64
        assert base64.b64encode(secret.encode()).decode()[:16] not in text, name


def test_reasons_keep_their_text_where_no_target_name_leads_them() -> None:
    # A panel's reason names a query, not a target: nothing before its first ": " may be dropped.
    panel = Row(id="test_dashboards.py::test_panel[d::KV]", target="llm-d", check="panel: KV Cache Hit Rate",
                level="MUST", outcome="failed", reason="Query A: vllm:prefix_cache_hits_total is always 0")
    fleet = Row(id="test_metrics.py::test_moves[x]", target="", check="moves: x", level="MUST", outcome="failed",
                reason="fails on b (1 of 2 targets; 1 passed).",
                targets={"a": {"outcome": "passed", "reason": "", "diagnosis": ""},
                         "b": {"outcome": "failed", "reason": "b (vLLM 0.32.0, amd64): x went from 0 to 0",
                               "diagnosis": ""}})
    html_text = report_html.summary(build([panel, fleet], implementations=[
        {"target": "b", "architecture": "amd64", "vllmVersion": "0.32.0"}]))
    assert "Query A: vllm:prefix_cache_hits_total is always 0" in html_text
    shown = re.sub(r"<[^>]+>", "", html_text)  # the text a browser draws
    assert "moves: x: x went from 0 to 0" in shown  # the target's own name is dropped from its row
    lines = report_terminal.terminal_lines(build([fleet]))
    assert "FAILED   MUST   b moves: x" in lines and "    b: x went from 0 to 0" in lines


# -- one story: what failed by reader, whole reasons, warnings once, the upgrade mode -------------------------

DATA = Path(__file__).parent / "data"


def section(result: pytest.RunResult) -> list[str]:
    """The lines of the plugin's terminal section."""
    lines = result.stdout.lines
    start = next(i for i, line in enumerate(lines) if " vLLM metrics conformance " in line)
    end = next(i for i, line in enumerate(lines) if i > start and line.startswith(("conformance report:", "-")))
    return lines[start + 1:end]


def summary_attributes(html_text: str) -> list[dict[str, str]]:
    """The attributes of every element of the HTML summary (rendered on the server: no browser needed)."""
    found: list[dict[str, str]] = []

    class Elements(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            found.append({k: v or "" for k, v in attrs})

    Elements().feed(html_text[html_text.index('<div id="vllm-summary">'):html_text.index("<!-- /vllm-summary -->")])
    return found


def test_a_run_failing_only_on_consumers_says_so_first_and_prints_every_reason_whole(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    result = run(pytester, "--vllm-sim=x86_64", "--vllm-sim=arm64-cpu", f"--grafana-dashboard={DATA / 'dashboards'}",
                 f"--prometheus-rules={DATA / 'rules'}", "--vllm-report=report.json", "--html=report.html",
                 "--self-contained-html")
    document = json.loads((pytester.path / "report.json").read_text())
    jsonschema.validate(document, schema())
    lines = section(result)
    # right under the result: what failed, by reader, then each reader's counts (the HTML's and the JSON's)
    assert lines[0].startswith("result: FAILURE")
    # the llm-d dashboards' saved $namespace cannot be judged on simulators: those panels are inconclusive
    assert " ".join(" ".join(lines[1:3]).split()) == ("5 of 21 panels failed; 6 of 12 rules failed; none of the 2 "
                                                      "targets failed a check; 8 of 21 panels could not be judged")
    readers = {r["reader"]: r for r in document["readers"]}
    assert readers["targets"]["counts"] == {"failed": 0, "inconclusive": 0, "xfailed": 1, "passed": 1, "skipped": 0}
    assert readers["dashboards"]["counts"]["failed"] == 5 and readers["rules"]["counts"]["failed"] == 6
    for item in document["readers"]:
        counts = ", ".join(f"{n} {b}" for b, n in item["counts"].items() if n)
        assert any(re.fullmatch(rf"  {re.escape(item['title'])} +{item['total']} {item['units']}: {counts}", line)
                   for line in lines), item
    html_text = (pytester.path / "report.html").read_text()
    top = {a["data-overview"]: a for a in summary_attributes(html_text) if "data-overview" in a}
    assert {k: {b: int(a[f"data-{b}"]) for b in readers[k]["counts"]} for k, a in top.items()} == {
        k: r["counts"] for k, r in readers.items()}
    # every failing check's reason in full, its fix included, wrapped within the width and never cut
    assert "…" not in "\n".join(lines)
    flat_section = " ".join(" ".join(lines).split())
    failing = [r for r in document["tests"] if r["outcome"] == "failed"]
    assert len(failing) == 11
    for row in failing:
        reason = " ".join((row["diagnosis"] or row["reason"]).split())
        if row["check"].startswith("panel: "):  # the line above names the panel and its dashboard
            reason = reason.split(")) ", 1)[1]
        assert reason in flat_section, row["check"]
    assert "Prometheus Operator adds namespace and pod, not kubernetes_namespace or kubernetes_pod_name: select on " \
           "the label the scrape adds." in flat_section
    assert all(len(line) <= 100 for line in lines if line.startswith("    "))


def test_warnings_once_per_distinct_text_naming_the_targets(pytester: pytest.Pytester) -> None:
    result = run(pytester, *["--vllm-sim=x86_64"] * 4, "--vllm-sim=arm64-cpu", "-k", "hygiene",
                 "--vllm-report=report.json", "--html=report.html", "--self-contained-html")
    assert result.parseoutcomes()["warnings"] == 2  # not 10: two distinct warnings, on five pods
    names = "sim-x86_64, sim-x86_64-2, sim-x86_64-3 and 2 more (5 targets): "
    result.stdout.fnmatch_lines([f"*StoreWarning: {names}vllm:cache_config_info (37 labels) with the 7 labels*",
                                 f"*StoreWarning: {names}vllm:cache_config_info carries num_gpu_blocks='4096'*"])
    document = json.loads((pytester.path / "report.json").read_text())
    assert [len(w["targets"]) for w in document["warnings"]] == [5, 5]
    assert "warnings: 2 (checks that passed, but a common store or scraper drops or splits" in result.stdout.str()
    html_text = (pytester.path / "report.html").read_text()
    folded = [a for a in summary_attributes(html_text) if "vllm-warning" in a.get("class", "")]
    assert [a["data-count"] for a in folded] == ["5", "5"]


def test_warn_names_a_thousand_targets_warned_alike_in_one_warning() -> None:
    texts = {f"decode-{i}": "the page is 5 MB" if i < 998 else "44 labels" for i in range(1000)}
    verdict = Verdict(Outcome.PASSED, "", "SHOULD", targets={
        name: Verdict(Outcome.PASSED, f"{name}: {text}", "SHOULD") for name, text in texts.items()})
    verdict.targets["decode-5"] = Verdict(Outcome.FAILED, "decode-5: split", "SHOULD")  # not a warning
    with pytest.warns(StoreWarning) as caught:
        hygiene.warn(verdict)
    assert [str(w.message) for w in caught] == [
        "decode-0, decode-1, decode-2 and 994 more (997 targets): the page is 5 MB",
        "decode-998, decode-999: 44 labels"]


def test_the_upgrade_forecast_shows_what_it_did_not_placeholders(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--vllm-sim=x86_64-0.10", f"--grafana-dashboard={DATA / 'upgrade'}",
                 "--vllm-upgrade-to=0.13.0", "--html=report.html", "--self-contained-html")
    lines = section(result)
    assert lines[1] == "  2 of 6 consumers go dark"
    html_text = (pytester.path / "report.html").read_text()
    summary = html_text[html_text.index('<div id="vllm-summary">'):html_text.index("<!-- /vllm-summary -->")]
    shown = " ".join(re.sub(r"<[^>]+>", " ", summary).split())
    # the targets: scraped once, with the version each reported, and no workload charted
    assert "vLLM servers: scraped for the forecast" in shown
    assert "sim-x86_64-0.10 amd64 0.10.1 scraped once" in shown
    assert "The workload, per pod" not in shown and "0 → ?" not in shown
    assert "What failed: 2 of 6 consumers go dark" in shown
    assert shown.index("What failed") < shown.index("Upgrade to vLLM 0.13.0: what goes dark") < shown.index(
        "scraped for the forecast")
    # the environment table: what the target said, nothing it was not asked (no model: no /v1/models read)
    blob = json.loads(html.unescape(re.search(r'data-jsonblob="(.*?)"', html_text, re.S).group(1)))  # type: ignore[union-attr]
    assert blob["environment"]["Target sim-x86_64-0.10"] == (
        "vLLM 0.10.1, arch amd64, block size 128, prefix caching True, features core, http, prefix_caching, "
        "scraped once for the upgrade forecast, no workload")


# -- the report model, in-process: what every writer states --------------------------------------------------


def test_the_model_of_a_run_counts_each_reader_and_tells_what_failed_first() -> None:
    model = build(report_rows(), implementations=REPORT_TARGETS)
    assert (model.result, model.exit_code, model.fail_on) == (Result.FAILURE, 1, Level.MUST)
    assert model.counts_text() == "2 failed, 2 inconclusive, 4 passed, 1 xfailed"
    # a target counts once, by the worst of its checks; a panel, rule or scaler once per check
    assert [(c.reader, c.total, [c.counts[b] for b in BUCKETS]) for c in model.readers] == [
        (Reader.TARGETS, 3, [1, 1, 1, 0, 0]), (Reader.DASHBOARDS, 2, [1, 0, 0, 1, 0]),
        (Reader.RULES, 1, [0, 1, 0, 0, 0]), (Reader.SCALERS, 1, [0, 0, 0, 1, 0])]
    assert story_text(model) == ("1 of 3 targets failed; 1 of 2 panels failed; 1 of 3 targets could not be judged; "
                                 "1 of 1 rule could not be judged")
    assert [reader for reader, _ in model.story] == [Reader.TARGETS, Reader.DASHBOARDS, Reader.TARGETS, Reader.RULES]
    # each cause once per target, with the checks it explains
    assert model.unobserved == (Once("decode-2", TIMED_OUT, ("reachable", "moves: vllm:prefix_cache_hits_total")),
                                Once("vllm-rules", RULE_REASON, ("alert: VLLMKVCacheHigh",)))
    assert model.documented == (Once("decode-0", NOT_ON_ARM, ("present: vllm:lora_requests_info",)),)
    assert (model.warnings, model.upgrade, model.notes, model.path, model.tally) == ((), None, (), None, None)
    assert model.features == {"required": [], "exempt": []}
    assert model.started.tzinfo is UTC  # when not given: now, in UTC


def test_the_story_names_where_it_failed_and_what_did_not() -> None:
    rows = report_rows()
    panel, throughput, rule, scaler = rows[5:]
    target = Row(id="conformance/test_server.py::test_reachable[d]", target="d", check="reachable", level=Level.MUST,
                 outcome=RowOutcome.PASSED)
    two = [target, Row(id="conformance/test_server.py::test_reachable[e]", target="e", check="reachable",
                       level=Level.MUST, outcome=RowOutcome.SKIPPED)]
    assert story_text(build([panel, throughput, target])) == "1 of 2 panels failed; the target failed no check"
    assert story_text(build([panel, *two])) == "1 of 1 panel failed; none of the 2 targets failed a check"
    assert story_text(build([panel])) == "1 of 1 panel failed"
    assert story_text(build([throughput, rule, target])) == "nothing failed; 1 of 1 rule could not be judged"
    assert build([throughput, rule, target]).story[0] == (None, "nothing failed")
    assert story_text(build([scaler])) == "nothing failed"
    assert build([]).story == ((None, "nothing failed"),) and build([]).counts_text() == "no checks"


def test_the_model_follows_the_fail_on_level_and_pytests_own_status() -> None:
    should_only = [r for r in report_rows() if r.level != Level.MUST or r.outcome != RowOutcome.FAILED]
    failed = Row(id="t::test_x", target="", check="x", level=Level.SHOULD, outcome=RowOutcome.FAILED)
    model = build([*should_only, failed])
    assert (model.result, model.exit_code) == (Result.INCONCLUSIVE, 75)
    model = build([*should_only, failed], Settings(vllm_fail_on="should"))
    assert (model.result, model.exit_code, model.fail_on) == (Result.FAILURE, 1, Level.SHOULD)
    model = build([failed])
    assert (model.result, model.exit_code) == (Result.PARTIAL, 0)  # pytest counted the failure, the rule decides
    assert build([failed], tests_failed=2).exit_code == 1  # a failing test that is not a check
    assert build([failed], pytest_status=int(pytest.ExitCode.INTERRUPTED)).exit_code == 2
    assert build([failed], pytest_status=int(pytest.ExitCode.OK), tests_failed=0).exit_code == 0


def test_each_cause_and_limitation_once_per_target_with_the_checks_it_explains() -> None:
    def across(check: str, **targets: str) -> Row:
        return Row(id=f"t::test_x[{check}]", target="", check=check, level=Level.MUST, outcome=RowOutcome.FAILED,
                   targets={name: TargetResult(RowOutcome(o), f"{name}: {o} here") for name, o in targets.items()})

    rows = [across("a", p="inconclusive", q="failed"), across("b", p="inconclusive", q="inconclusive"),
            across("c", p="passed", q="xfailed"),
            Row(id="t::test_y", target="", check="y", level=Level.MUST, outcome=RowOutcome.INCONCLUSIVE,
                reason="no target answered")]
    model = build(rows)
    assert model.unobserved == (Once("p", "inconclusive here", ("a", "b")), Once("q", "inconclusive here", ("b",)),
                                Once("every target", "no target answered", ("y",)))
    assert model.documented == (Once("q", "xfailed here", ("c",)),)
    assert alike(model.unobserved) == [Alike("inconclusive here", ("p", "q"), (2, 1)),
                                       Alike("no target answered", ("every target",), (1,))]
    assert [checks_count(c) for c in ([3], [1], [3, 3], [1, 3], [2, 1, 2])] == [
        "3 checks", "1 check", "3 checks each", "1-3 checks each", "1-2 checks each"]


def test_warnings_of_checks_that_passed_once_per_text_with_their_targets() -> None:
    def row(check: str, evidence: dict[str, Any], **targets: tuple[str, str]) -> Row:
        return Row(id=f"t::test_x[{check}]", target="", check=check, level=Level.SHOULD,
                   outcome=RowOutcome.PASSED, evidence=evidence,
                   targets={n: TargetResult(RowOutcome(o), f"{n}: {text}") for n, (o, text) in targets.items()})

    warned = {"warning": "StoreWarning"}
    rows = [row("labels", {"a": warned, "b": warned, "c": {}, "d": warned, "e": warned},
                a=("passed", "37 labels"), b=("passed", "37 labels"), c=("passed", "37 labels"),
                d=("failed", "37 labels"), e=("passed", "")),
            row("size", {"a": warned, "b": "not a mapping"}, a=("passed", "5 MB"), b=("passed", "5 MB")),
            Row(id="t::test_one[x]", target="x", check="one", level=Level.MUST, outcome=RowOutcome.PASSED,
                reason="x: 44 labels", evidence=warned),
            Row(id="t::test_one[y]", target="y", check="one", level=Level.MUST, outcome=RowOutcome.PASSED,
                reason="y: 44 labels", evidence={"warning": ""}),
            row("single", warned, z=("passed", "one target: its own evidence"))]
    assert build(rows).warnings == (Warned("labels", "37 labels", ("a", "b")), Warned("size", "5 MB", ("a",)),
                                    Warned("one", "44 labels", ("x",)),
                                    Warned("single", "one target: its own evidence", ("z",)))


def test_targets_by_name_the_observed_ones_first() -> None:
    rows = report_rows()
    assert by_target(rows)["decode-1"] == [
        ("reachable", RowOutcome.PASSED, ""), ("moves: vllm:prefix_cache_hits_total", RowOutcome.FAILED, NO_PREFIX),
        ("present: vllm:lora_requests_info", RowOutcome.PASSED, "")]
    assert by_target(rows)["vllm-dash"][0] == ("panel: KV Cache Usage", RowOutcome.FAILED, KV_REASON)
    # a target a row names that was not observed comes after the observed ones; readers' sources are not targets
    observed = [{"target": "decode-1", "architecture": "amd64", "vllmVersion": "0.32.0"}]
    assert all_targets(rows, observed) == [*observed, {"target": "decode-0", "architecture": "", "vllmVersion": None},
                                           {"target": "decode-2", "architecture": "", "vllmVersion": None}]
    unnamed = Row(id="t::test_y", target="", check="y", level=Level.MUST, outcome=RowOutcome.FAILED)
    assert all_targets([unnamed], []) == []


def test_the_environment_and_the_notes_of_a_run() -> None:
    settings = Settings(vllm_sim=("x86_64",), vllm_fail_on="should",
                        sources={"vllm_sim": "command line", "vllm_fail_on": "command line"})
    cluster = ClusterInfo(api_client=None, context="kind-llm-d", server="https://127.0.0.1:6443", version="v1.31.0",
                          namespace="llm-d", selectors=("llm-d.ai/role=decode",),
                          notes=["could not list nodes: forbidden"],
                          workers=[Worker("vllm-0-1", Role.HEADLESS, "vllm serve --headless", leader="vllm-0")])
    targets = [{"target": "a", "measured": {"looksExclusive": True}}, {"target": "b", "measured": None},
               {"target": "c", "measured": {"looksExclusive": False}},
               {"target": "d", "engines": ["0", "1"], "dataParallel": {"expectedEngines": 2}}]
    model = build([], settings, implementations=targets, cluster=cluster)
    env = model.environment
    assert (env["python"], env["pytest"]) == (platform.python_version(), pytest.__version__)
    assert datetime.fromisoformat(env["generated"]).tzinfo is not None
    assert env["settings"] == {"--vllm-sim": "x86_64 (from command line)",
                               "--vllm-fail-on": "should (from command line)"}
    assert env["kubernetes"] == {"context": "kind-llm-d", "server": "https://127.0.0.1:6443", "version": "v1.31.0",
                                 "namespace": "llm-d", "selectors": ["llm-d.ai/role=decode"],
                                 "notes": ["could not list nodes: forbidden"],
                                 "multiNodeWorkers": [cluster.workers[0].as_dict()]}
    assert model.notes == (
        "could not list nodes: forbidden", "data-parallel engines on each page: d: engines 0-1 (2 of the 2 its command "
        "line runs)", "on a the finished requests and prompt tokens moved by exactly the workload, as if no other "
        "traffic reached them: if that holds, --vllm-exclusive checks their counters exactly")
    assert build([], Settings(vllm_exclusive=True), implementations=targets[:3]).notes == ()
    assert "kubernetes" not in build([]).environment and build([]).notes == ()


def test_the_upgrade_section_from_the_evidence_its_checks_left() -> None:
    rows = upgrade_rows("0.11.0")
    section = upgrade_section([*rows, *report_rows()])
    assert section is not None
    assert (section["to"], section["policy"]) == ("0.11.0", upgrade.policy())
    assert section["fleet"] == {"0.10.1": ["decode-0", "decode-1"], "unknown": ["decode-2"]}
    gauge = ["vllm:gpu_cache_usage_perc"]
    assert [(c["kind"], c["dashboard"], c["title"], c["outcome"], c["reads"], len(c["dark"]))
            for c in section["consumers"]] == [("panel", "vllm-dash", "KV Cache Usage", "failed", gauge, 1),
                                               ("alert", "vllm-dash", "VLLMKVCacheHigh", "failed", gauge, 1),
                                               ("keda", "vllm-dash", "vllm-scaler", "passed",
                                                ["vllm:num_requests_running"], 0)]
    assert [c["reason"] for c in section["consumers"]] == [r.reason for r in rows]
    assert upgrade_section(report_rows()) is None
    assert build(rows).upgrade == section | {"consumers": section["consumers"]}
    # an unreachable fleet left no `fleet`: the section says so with none
    unknown = [Row(id=rows[0].id, target="", check=rows[0].check, level=Level.MUST, outcome=RowOutcome.INCONCLUSIVE,
                   evidence={"upgrade": {k: v for k, v in rows[0].evidence["upgrade"].items() if k != "fleet"}})]
    assert upgrade_section(unknown)["fleet"] == {}  # type: ignore[index]


def test_a_families_fate_in_a_few_words() -> None:
    assert dark_state({"state": "not yet", "emitted": ">=0.11.0"}) == "not there yet (>=0.11.0)"
    assert dark_state({"state": "hidden", "hidden_from": "0.11.0"}) == "hidden since 0.11.0"
    assert dark_state({"state": "removed", "hidden_from": "0.11.0"}) == "removed (hidden since 0.11.0)"


def test_the_conformance_document_states_the_model(tmp_path: Path) -> None:
    started = datetime(2026, 12, 2, 10, 30, 15, 123, tzinfo=UTC)
    rows = [*report_rows(), *upgrade_rows("0.11.0")]
    model = build(rows, Settings(vllm_require_feature=("lora",), vllm_exempt_feature=("spec_decode",)),
                  implementations=REPORT_TARGETS, started=started)
    document = report_document(model)
    jsonschema.validate(document, schema())
    assert {k: document[k] for k in ("apiVersion", "kind", "suiteVersion", "date", "result", "failOn", "exitCode")
            } == {"apiVersion": "pytest-vllm-metrics/v1", "kind": "ConformanceReport", "suiteVersion": __version__,
                  "date": "2026-12-02T10:30:15+00:00", "result": "failure", "failOn": "MUST", "exitCode": 1}
    assert document["resultRule"] == gate.RULE
    assert document["implementations"] == REPORT_TARGETS
    assert document["features"] == {"required": ["lora"], "exempt": ["spec_decode"]}
    assert document["environment"] == dict(model.environment)
    assert document["couldNotObserve"] == [
        {"target": "decode-2", "reason": TIMED_OUT, "checks": ["reachable", "moves: vllm:prefix_cache_hits_total"]},
        {"target": "vllm-rules", "reason": RULE_REASON, "checks": ["alert: VLLMKVCacheHigh"]}]
    assert document["documentedLimitations"] == [
        {"target": "decode-0", "reason": NOT_ON_ARM, "checks": ["present: vllm:lora_requests_info"]}]
    assert document["counts"] == {"passed": 5, "inconclusive": 2, "failed": 4, "xfailed": 1}
    assert document["countsByLevel"] == {"MUST": {"passed": 5, "inconclusive": 2, "failed": 4},
                                         "SHOULD": {"xfailed": 1}}
    assert document["readers"][0] == {"reader": "targets", "title": "vLLM servers", "unit": "target",
                                      "units": "targets", "total": 3, "counts": {
                                          "failed": 1, "inconclusive": 1, "xfailed": 1, "passed": 0, "skipped": 0}}
    assert [r["reader"] for r in document["readers"]] == ["targets", "dashboards", "rules", "scalers", "upgrade"]
    assert document["warnings"] == []
    assert document["tests"] == [row.as_json() for row in rows]
    assert document["upgrade"] == model.upgrade
    assert "upgrade" not in report_document(build(report_rows()))
    # written as JSON, or as YAML for a .yaml or .yml path: the same document
    for name in ("report.json", "report.yaml", "report.yml"):
        write_data(tmp_path / name, model)
    text = (tmp_path / "report.json").read_text()
    assert json.loads(text) == document and text.endswith("}\n") and text.startswith('{\n  "apiVersion"')
    # written row by row with a two-space indent; the implementations, and a row's per-target maps, hold one
    # target per line
    keys = list(document)
    head = {key: document[key] for key in keys[: keys.index("tests")]}
    lines = text.splitlines()
    one_per_line = "[\n" + ",\n".join(f"    {json.dumps(found)}" for found in document["implementations"]) + "\n  ]"
    assert len(document["implementations"]) == 3 and one_per_line in text
    assert text.startswith(json.dumps({**head, "implementations": "IMPLEMENTATIONS"}, indent=2).replace(
        '"IMPLEMENTATIONS"', one_per_line)[:-2] + ',\n  "tests": [\n    {\n      "id": ')
    per_target = [(key, name, value) for row in document["tests"] for key in ("evidence", "targets")
                  for name, value in row[key].items()]
    assert {key for key, _, _ in per_target} == {"evidence", "targets"}
    for _, name, value in per_target:
        assert f"        {json.dumps(name)}: {json.dumps(value)}" in {line.rstrip(",") for line in lines}
    assert text.count("\n") == len(json.dumps(document, indent=2).splitlines()) - sum(
        len(json.dumps(value, indent=2).splitlines()) - 1 for value in document["implementations"]) - sum(
        len(json.dumps(value, indent=2).splitlines()) - 1 for _, _, value in per_target)
    assert not list(tmp_path.glob(".*.part"))  # written beside, then renamed: nothing left over
    for few in ([], rows[:1]):  # no row (an empty list), one row (no comma)
        write_data(tmp_path / "few.json", build(few))
        few_text = (tmp_path / "few.json").read_text()
        assert json.loads(few_text) == report_document(build(few)) and few_text.endswith("\n}\n")
    written = (tmp_path / "report.yaml").read_text()
    assert yaml.safe_load(written) == document and written.startswith("apiVersion: pytest-vllm-metrics/v1\nkind:")
    yml = (tmp_path / "report.yml").read_text()
    assert yaml.safe_load(yml) == document and yml.startswith("apiVersion: pytest-vllm-metrics/v1\nkind:")


def test_each_targets_own_words_are_written_on_its_line_even_when_most_are_alike(tmp_path: Path) -> None:
    # a fleet's cells are mostly alike and encoded once: alike in outcome is not alike in words
    cells = {"pod-a": ("passed", "pod-a: moved by 2", ""), "pod-b": ("passed", "pod-b: moved by 3", ""),
             "pod-c": ("passed", "pod-a: moved by 2", ""), "pod-d": ("passed", "pod-a: moved by 2", "why")}
    row = Row(id="t::moves", target="", check="moves: x", level=Level.MUST, outcome=RowOutcome.PASSED,
              targets={name: TargetResult(RowOutcome(o), r, d) for name, (o, r, d) in cells.items()})
    write_data(tmp_path / "r.json", build([row]))
    text = (tmp_path / "r.json").read_text()
    assert json.loads(text)["tests"][0]["targets"] == {
        name: {"outcome": o, "reason": r, "diagnosis": d} for name, (o, r, d) in cells.items()}
    assert '        "pod-b": {"outcome": "passed", "reason": "pod-b: moved by 3", "diagnosis": ""},\n' in text


def test_each_targets_evidence_is_its_own_when_objects_are_shared_or_alike(tmp_path: Path) -> None:
    # the rows pytest-xdist's workers send share one object for alike values: each is still written as its own
    shared, other = {"seen": 1, "labels": ["x"]}, {"seen": 2}
    evidence = {"a": shared, "b": shared, "c": {"seen": 1, "labels": ["x"]}, "d": other, "e": shared["labels"],
                "f": 1, "g": 1.0, "h": None, "i": 2}  # None: an object like the others, with an identity of its own
    row = Row(id="t::x", target="", check="x", level=Level.MUST, outcome=RowOutcome.PASSED, evidence=evidence)
    write_data(tmp_path / "r.json", build([row]))
    text = (tmp_path / "r.json").read_text()
    assert json.loads(text)["tests"][0]["evidence"] == evidence
    lines = {line.rstrip(",") for line in text.splitlines()}
    for name, value in evidence.items():
        assert f"        {json.dumps(name)}: {json.dumps(value)}" in lines


_PLAIN = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=10)


ODD_POD = 'pod-\u00e9"0'  # a name JSON escapes


def _one_per_line(tmp_path: Path, value: Any) -> str:
    row = Row(id="t::x", target="", check="x", level=Level.MUST, outcome=RowOutcome.PASSED,
              evidence={ODD_POD: value, "pod-1": {"type": "gauge", "labels": ["engine"]}})
    write_data(tmp_path / "r.json", build([row]))
    return (tmp_path / "r.json").read_text()


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), 1e-07, 2**70, "caf\u00e9 \u2603 \"q\"\n",
                                   {"a": [1, 2.5, None, True]}, [], {}])
def test_each_targets_evidence_is_the_json_of_its_value_fixed_examples(tmp_path: Path, value: Any) -> None:
    text = _one_per_line(tmp_path, value)
    assert f"        {json.dumps(ODD_POD)}: {json.dumps(value)},\n" in text


@given(_PLAIN)
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_each_targets_evidence_is_the_json_of_its_value(tmp_path: Path, value: Any) -> None:
    assert f"        {json.dumps(ODD_POD)}: {json.dumps(value)},\n" in _one_per_line(tmp_path, value)


@pytest.mark.skipif(platform.python_implementation() != "CPython", reason="the C encoder is CPython's")
def test_a_fleets_entries_are_encoded_by_the_c_encoder_as_json_dumps_writes_them() -> None:
    # a fleet's report holds ~200,000 per-target entries: on CPython they are written by its C encoder, made once
    # with json.dumps' own settings (key order kept, NaN and infinities allowed, non-ASCII escaped)
    encode = report._c_encoder()
    assert encode is not json.dumps
    for value in [{"type": "gauge", "labels": ["engine"], "b": 1, "a": {ODD_POD: [1.5, None, False]}},
                  float("nan"), float("inf"), "caf\u00e9 \u2603 \"q\"\n", 2**70, [], {}]:
        assert encode(value) == json.dumps(value)


def test_a_shards_report_carries_what_the_merge_needs() -> None:
    # --vllm-shard=1/3: the fleet seen, the targets this shard checked, pytest's own counts and each check's mark
    fleet, layout = ["decode-0", "decode-1", "decode-2"], [{"dashboard": "d", "title": "T", "row": "", "grid": None}]
    model = build(report_rows(), Settings(vllm_shard=Shard(1, 3)), layout=layout, pytest_status=1, tests_failed=7,
                  tally=Tally(12, {"passed": 5, "failed": 7}), fleet=fleet, checked=["decode-1"],
                  marks={"conformance/test_server.py::test_reachable[decode-1]": "MUST"})
    expected = {"index": 1, "count": 3, "fleet": fleet, "checked": ["decode-1"], "exclusive": False,
                "pytestStatus": 1, "testsFailed": 7, "tally": {"collected": 12, "outcomes": {"passed": 5, "failed": 7}},
                "layout": layout, "marks": {"conformance/test_server.py::test_reachable[decode-1]": "MUST"}}
    assert model.shard == expected
    assert model.environment["shard"] == "shard 1 of 3" and "shard" not in build(report_rows()).environment
    document = report_document(model)
    assert document["shard"] == expected
    jsonschema.validate(document, schema())
    # pytest's count of failed tests as given, not the rows' (a test may fail outside the checks)
    assert build(report_rows(), Settings(vllm_shard=Shard(0, 1)), tests_failed=7).shard["testsFailed"] == 7
    assert build(report_rows(), Settings(vllm_shard=Shard(0, 1))).shard["testsFailed"] == sum(
        1 for row in report_rows() if row.outcome.fails)
    assert "shard" not in report_document(build(report_rows()))


@pytest.mark.usefixtures("ascii_locale")
def test_a_report_file_is_written_as_utf8_whatever_the_locale(tmp_path: Path) -> None:
    # the HTML and Markdown reports hold symbols (✓ ✗) that ASCII cannot write
    write_text(tmp_path / "report.html", "<p>\u2713 passed, \u2717 failed</p>")
    assert (tmp_path / "report.html").read_bytes() == "<p>\u2713 passed, \u2717 failed</p>".encode()


def test_the_document_lists_each_warning_and_the_settings_as_given() -> None:
    settings = Settings(vllm_model="org/model: v2", vllm_fail_on="may",
                        sources={"vllm_model": "command line", "vllm_fail_on": "env VLLM_FAIL_ON"})
    row = Row(id="t::test_x[a]", target="a", check="labels", level=Level.SHOULD, outcome=RowOutcome.PASSED,
              reason="a: 37 labels", evidence={"warning": "StoreWarning"})
    document = report_document(build([row], settings))
    jsonschema.validate(document, schema())
    assert document["warnings"] == [{"check": "labels", "text": "37 labels", "targets": ["a"]}]
    # a value holding ": " stays whole under its option
    assert document["environment"]["settings"] == {"--vllm-model": "org/model: v2 (from command line)",
                                                   "--vllm-fail-on": "may (from env VLLM_FAIL_ON)"}
