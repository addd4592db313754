"""Reports: the JSON conformance report, the terminal summary, pytest-html, the exit-code contract, secrets."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import jsonschema
import pytest

from pytest_vllm_metrics import hygiene, report_html, report_terminal
from pytest_vllm_metrics.hygiene import StoreWarning
from pytest_vllm_metrics.outcome import Outcome, Verdict
from pytest_vllm_metrics.report import build, schema
from pytest_vllm_metrics.rows import Row
from pytest_vllm_metrics.sim import SimHost, get_profile


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


class _Text(HTMLParser):
    """Text content of a DOM (attributes ignored): what a browser draws, not what a script carries."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def _chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: .ci/run installs the Debian package")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return path


def render(html_file: Path, tmp_path: Path) -> str:
    """The page after its JavaScript ran, in headless Chromium."""
    dom = subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'chromium'}", "--virtual-time-budget=10000", "--dump-dom",
         html_file.as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout
    parser = _Text()
    parser.feed(dom)
    return " ".join(" ".join(parser.parts).split())


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
