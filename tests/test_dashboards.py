"""The dashboard check against the direct scrape of simulated servers, panel by panel."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import DASHBOARDS, NS, dashboard_file, panel_json, said, write_kubeconfig
from pytest_vllm_metrics.catalog import load_catalog
from pytest_vllm_metrics.judging import judge_reader
from pytest_vllm_metrics.observe import Observation, observe
from pytest_vllm_metrics.outcome import Outcome, Verdict
from pytest_vllm_metrics.prometheus import Prometheus
from pytest_vllm_metrics.readers import load_dashboards
from pytest_vllm_metrics.settings import Policy, Settings
from pytest_vllm_metrics.sim import SimHost, get_profile
from pytest_vllm_metrics.sim.kubeapi import KubeDouble
from pytest_vllm_metrics.targets import Target


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-rA", "-v", "-p", "no:cacheprovider", f"--grafana-dashboard={DASHBOARDS}", "-k",
                              "test_panel", *args)


def verdicts(result: pytest.RunResult) -> dict[str, str]:
    """Reader id -> outcome, from the verbose progress lines ("...::test_panel[dash::Title] PASSED ...")."""
    out = {}
    for line in result.outlines:
        if "::test_panel[" in line and not line.startswith(("PASSED", "FAILED", "XFAIL", "SKIPPED")):
            panel, _, rest = line.split("::test_panel[", 1)[1].partition("] ")
            out[panel] = rest.split()[0]
    return out


def test_arm64_seed_flags_exactly_the_hit_rate_panels_of_the_current_dashboard(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--vllm-sim=arm64-cpu")
    current = {panel: status for panel, status in verdicts(result).items()
               if panel.startswith("llm-d-performance::")}
    not_ok = {panel for panel, status in current.items() if status in ("FAILED", "XFAIL")}
    assert not_ok == {"llm-d-performance::KV Cache Hit Rate", "llm-d-performance::Per-Pod Cache Hit Rates"}
    result.stdout.fnmatch_lines(["XFAIL *llm-d-performance::KV Cache Hit Rate* - vLLM 0.11.2 disables prefix "
                                 "caching on arm64 CPUs*"])


def test_a_namespace_the_run_cannot_know_leaves_a_working_panel_inconclusive(pytester: pytest.Pytester) -> None:
    # The dashboard's saved $namespace is llm-d-cpu-inference: the simulator's series carry no namespace until
    # Prometheus scrapes them, so without Prometheus (or Kubernetes discovery) the matcher cannot be judged.
    result = run(pytester, "--vllm-sim=x86_64")
    found = verdicts(result)
    assert found["llm-d-performance::KV Cache Hit Rate"] == "INCONCLUSIVE"
    assert found["llm-d-performance::Per-Pod Cache Hit Rates"] == "INCONCLUSIVE"
    assert said(result, 'panel "KV Cache Hit Rate" (llm-d Performance Dashboard (panels reconstructed)) selects its '
                        'series with namespace=~"llm-d-cpu-inference": namespace is added by Prometheus when it '
                        'scrapes, and without --prometheus-url the run cannot know its value on sim-x86_64 (URL '
                        'targets carry none of them), so it cannot tell whether the panel shows data. Pass '
                        '--prometheus-url')


def test_on_kubernetes_the_mixed_fleet_hit_rate_shows_data_and_names_the_silent_pod(
        pytester: pytest.Pytester, double: KubeDouble) -> None:
    # decode-amd64 (vLLM 0.32, prefix caching on) and decode-arm64 (vLLM 0.11.2, which disables it on ARM CPUs):
    # the fleet's hit rate is a number, as Prometheus computes it; the per-pod panel has a dead line.
    kubeconfig = write_kubeconfig(pytester.path / "kubeconfig", double, "admin")
    result = run(pytester, f"--kubeconfig={kubeconfig}", f"--vllm-namespace={NS}", "--vllm-report=report.json")
    found = verdicts(result)
    assert found["llm-d-performance::KV Cache Hit Rate"] == "PASSED"
    assert found["llm-d-performance::Per-Pod Cache Hit Rates"] == "XFAIL"
    assert found["llm-d-performance::KV Cache Usage %"] == "PASSED"  # the namespace is known and judged
    report = json.loads((pytester.path / "report.json").read_text())
    reasons = {row["check"]: row["reason"] or " ".join(row["evidence"].get("notes", [])) for row in report["tests"]}
    assert reasons["panel: KV Cache Hit Rate"].startswith(
        "it aggregates vllm:prefix_cache_hits_total and vllm:prefix_cache_queries_total over the fleet: decode-amd64 "
        "moved them, while decode-arm64 contributes nothing (vLLM 0.11.2 disables prefix caching on arm64 CPUs")


def test_always_zero_names_the_flag_when_caching_is_off_by_choice(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--vllm-sim=x86_64-no-prefix-caching", "-k", "Hit and not Offload")
    result.stdout.fnmatch_lines(['*panel "KV Cache Hit Rate"*will be always zero / NaN: it aggregates '
                                 'vllm:prefix_cache_hits_total over the fleet*moved on none of its servers '
                                 '(sim-x86_64-no-prefix-caching)*0/0 = NaN*Root cause: vLLM reports '
                                 'enable_prefix_caching="False"*--no-enable-prefix-caching*'])
    result.stdout.fnmatch_lines(['*panel "Per-Pod Cache Hit Rates"*will be always zero / NaN on '
                                 'sim-x86_64-no-prefix-caching: vllm:prefix_cache_hits_total exists but did not move*'])


def test_older_copy_is_flagged_for_kubernetes_namespace(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--vllm-sim=x86_64")
    found = verdicts(result)
    old = {panel: status for panel, status in found.items() if panel.startswith("llm-d-performance-old::")}
    assert old.pop("llm-d-performance-old::EPP Pool Health & Load") == "SKIPPED"
    assert set(old.values()) == {"FAILED"}
    result.stdout.fnmatch_lines(["*selects vllm:prefix_cache_hits_total by label kubernetes_namespace, which no "
                                 "series carries*Prometheus Operator adds namespace and pod*"])


def test_request_preemptions_panel_is_flagged_for_the_missing_total(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--vllm-sim=x86_64")
    assert verdicts(result)["llm-d-failure-saturation::Request Preemptions"] == "FAILED"
    result.stdout.fnmatch_lines(["*queries vllm:num_preemptions, which no server exposes: the counter is "
                                 "vllm:num_preemptions_total*"])


def test_other_components_and_absent_features_get_their_own_verdict(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--vllm-sim=x86_64")
    found = verdicts(result)
    assert found["llm-d-performance::EPP Pool Health & Load"] == "SKIPPED"
    assert found["llm-d-performance::Offload Tier Hit Rate"] == "SKIPPED"
    result.stdout.fnmatch_lines(["*llm_d_epp_average_queue_size, llm_d_epp_ready_endpoints, metrics of the endpoint "
                                 "picker (EPP), not of vLLM: point the check at the EPP*"])


def test_unparsable_panel_query_is_a_verdict_not_a_crash(pytester: pytest.Pytester) -> None:
    pytester.makefile(".json", broken='{"title": "Broken", "panels": [{"title": "Bad", "targets": '
                                      '[{"expr": "sum(rate(vllm:prompt_tokens_total[5m]"}]}]}')
    result = pytester.runpytest("-rA", "-p", "no:cacheprovider", "--grafana-dashboard=broken.json",
                                "--vllm-sim=x86_64", "-k", "test_panel")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(['*panel "Bad" (Broken): its query does not parse as PromQL*'])
    assert "Traceback" not in result.stdout.str()


def test_unreadable_dashboard_json_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makefile(".json", broken="{not json")
    result = pytester.runpytest("--grafana-dashboard=broken.json", "--vllm-sim=x86_64")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: dashboard broken.json is not valid JSON*export it again from Grafana*"])


def test_terminal_and_html_list_every_panel_with_its_verdict(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--vllm-sim=arm64-cpu", "--html=report.html", "--self-contained-html")
    result.stdout.fnmatch_lines([
        "panels (will it show data?):",
        "  NO DATA              llm-d-failure-saturation :: Request Preemptions",
        "  LABEL MISMATCH       llm-d-performance-old :: KV Cache Hit Rate",
        "  ALWAYS ZERO / NAN    llm-d-performance :: KV Cache Hit Rate",
        "  INCONCLUSIVE         llm-d-performance :: KV Cache Usage %",
        "  NOT A VLLM METRIC    llm-d-performance :: EPP Pool Health & Load",
        "  FEATURE NOT ENABLED  llm-d-performance :: Offload Tier Hit Rate",
    ])
    html = (pytester.path / "report.html").read_text()
    assert "Grafana panels: will they show data?" in html
    # the dashboard drawn: the panel's box carries its verdict
    section = html.split('data-dashboard="llm-d-performance"', 1)[1].split("</section>", 1)[0]
    assert re.search(r'data-panel="KV Cache Hit Rate" data-verdict="always zero / NaN" data-outcome="xfailed"',
                     section), section[:2000]


# -- Grafana as it evaluates: variables, whole expressions, timing --------------------------------------------


# vLLM's own example dashboard: a query variable with no saved value, and '=' matchers on it.
MODEL_NAME = {"name": "model_name", "type": "query", "query": "label_values(vllm:num_requests_running, model_name)"}


@pytest.fixture
def observed(sim_host: SimHost) -> list[Observation]:
    """One simulated x86_64 vLLM, observed around a small workload as a run observes its targets."""
    sim = sim_host.start(get_profile("x86_64"))
    target = Target(name="decode-0", base_url=sim.url, arch="amd64")
    return list(asyncio.run(observe([target], Settings(vllm_requests=4))).values())


def judge(tmp_path: Path, observed: list[Observation], panels: list[dict[str, Any]],
          variables: list[dict[str, Any]] | None = None, **kwargs: Any) -> dict[str, Verdict]:
    loaded = load_dashboards((dashboard_file(tmp_path / "d.json", panels, variables),))
    return {p.title: judge_reader(p, observed, load_catalog(), Policy(), **kwargs) for p in loaded}


@pytest.mark.parametrize("content", ["{}", '{"dashboards": [{"title": "x"}]}'])
def test_input_without_panels_is_a_usage_error_naming_the_keys(pytester: pytest.Pytester, content: str) -> None:
    path = pytester.makefile(".json", nothing=content)
    result = pytester.runpytest("-p", "no:cacheprovider", "--vllm-sim=x86_64", f"--grafana-dashboard={path}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    keys = "an empty object" if content == "{}" else "top-level keys dashboards"
    result.stderr.fnmatch_lines([f"ERROR: dashboard {path} has no panels: found {keys}, expected a Grafana "
                                 f"dashboard model*Share > Export*"])


def test_dashboard_without_a_prometheus_query_is_a_usage_error(pytester: pytest.Pytester) -> None:
    path = dashboard_file(pytester.path / "logs.json", [{"title": "Notes", "type": "text"}, {
        "title": "Logs", "datasource": {"type": "loki", "uid": "l"}, "targets": [{"expr": '{app="vllm"}'}]}])
    result = pytester.runpytest("-p", "no:cacheprovider", "--vllm-sim=x86_64", f"--grafana-dashboard={path}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: dashboard {path} (vLLM) has no panel with a Prometheus query*another "
                                 f"data source such as Loki*"])


def test_directory_without_a_dashboard_file_is_a_usage_error(pytester: pytest.Pytester) -> None:
    empty = pytester.mkdir("dashboards")
    (empty / "notes.txt").write_text("no dashboard here")
    result = pytester.runpytest("-p", "no:cacheprovider", "--vllm-sim=x86_64", f"--grafana-dashboard={empty}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: dashboard directory {empty} holds no dashboard file (*.json, *.yaml, "
                                 f"*.yml)*"])


def test_query_variable_without_saved_value_shows_data_in_prometheus(
    pytester: pytest.Pytester, sim_host: SimHost, prometheus_server: Callable[..., str]
) -> None:
    # The finding: "$model_name" was written as .*, and model_name=".*" matches no series in Prometheus.
    sim = sim_host.start(get_profile("x86_64"))
    prom = prometheus_server({"decode-0": sim.url})
    path = dashboard_file(pytester.path / "vllm.json", [
        panel_json("Running", 'vllm:num_requests_running{model_name="$model_name"}'),
        panel_json("Tokens", 'sum(rate(vllm:prompt_tokens_total{model_name="$model_name"}[$__rate_interval]))'),
    ], [MODEL_NAME])
    result = pytester.runpytest("-rA", "-v", "-p", "no:cacheprovider", f"--vllm-url={sim.url}",
                                f"--prometheus-url={prom}", f"--grafana-dashboard={path}", "-k", "test_panel")
    found = verdicts(result)
    assert found == {"vllm::Running": "PASSED", "vllm::Tokens": "PASSED"}, result.stdout.str()


def test_query_variable_resolves_against_the_direct_scrape(tmp_path: Path, observed: list[Observation]) -> None:
    found = judge(tmp_path, observed, [panel_json("Running", 'vllm:num_requests_running{model_name="$model_name"}'),
                                       panel_json("Any", 'vllm:num_requests_running{model_name="$all_models"}')],
                  [MODEL_NAME, {**MODEL_NAME, "name": "all_models", "includeAll": True, "allValue": ".*"}])
    assert found["Running"].outcome == Outcome.PASSED
    assert found["Running"].evidence["exprs"] == ['vllm:num_requests_running{model_name="tiny"}']
    # All with allValue .* under an '=' matcher is the same bug in the dashboard itself: Grafana shows nothing.
    assert found["Any"].evidence["panel_verdict"] == "label mismatch"
    assert 'model_name=".*", which none of its series matches' in found["Any"].message
    assert "needs '=~'" in found["Any"].message


def test_whole_expression_or_absent_and_literals(tmp_path: Path, observed: list[Observation]) -> None:
    found = judge(tmp_path, observed, [
        # written for two vLLM versions: the old name is missing, the new one has data
        panel_json("Two versions", "vllm:gpu_cache_usage_perc or vllm:kv_cache_usage_perc"),
        panel_json("Absent", "absent(vllm:no_such_metric)"),
        panel_json("Constant", "vector(1)"),
        panel_json("Both", "vllm:num_requests_running and vllm:no_such_metric"),
    ])
    assert found["Two versions"].outcome == Outcome.PASSED
    assert "vllm:gpu_cache_usage_perc (in query A) is missing" in found["Two versions"].message
    assert found["Absent"].outcome == Outcome.PASSED and found["Constant"].outcome == Outcome.PASSED
    assert found["Both"].evidence["panel_verdict"] == "no data"
    assert "vllm:no_such_metric, which none of the 1 server(s) exposes" in found["Both"].message


def test_panel_with_one_empty_query_is_partial_at_should_level(tmp_path: Path, observed: list[Observation]) -> None:
    found = judge(tmp_path, observed, [panel_json("Queue", "vllm:num_requests_running", "vllm:num_requests_swapped"),
                                       panel_json("Swapped", "vllm:num_requests_swapped")])
    partial = found["Queue"]
    assert (partial.outcome, partial.level, partial.evidence["panel_verdict"]) == (Outcome.FAILED, "SHOULD",
                                                                                   "partial")
    assert "query B (vllm:num_requests_swapped) returns nothing" in partial.message
    assert "vLLM V1 does not swap" in partial.message
    # every query empty: the detailed reason, at MUST level, as before
    assert (found["Swapped"].evidence["panel_verdict"], found["Swapped"].level) == ("no data", "MUST")


def test_library_panel_is_not_checkable(tmp_path: Path, observed: list[Observation]) -> None:
    found = judge(tmp_path, observed, [panel_json("Running", "vllm:num_requests_running"),
                                       {"title": "Latency", "libraryPanel": {"uid": "abc", "name": "vLLM latency"}}])
    verdict = found["Latency"]
    assert (verdict.outcome, verdict.evidence["panel_verdict"]) == (Outcome.INCONCLUSIVE, "not checkable")
    assert 'library panel ("vLLM latency")' in verdict.message and "Export for sharing externally" in verdict.message
    assert verdict.target == "d"


def test_repeated_panel_names_the_copy_that_fails(tmp_path: Path, observed: list[Observation]) -> None:
    found = judge(tmp_path, observed, [panel_json("Per model", 'vllm:num_requests_running{model_name="$model"}',
                                             repeat="model")],
                  [{"name": "model", "type": "custom", "query": "tiny,retired-model", "includeAll": True,
                    "current": {"text": "All", "value": "$__all"}}])
    verdict = found["Per model"]
    assert verdict.evidence["panel_verdict"] == "label mismatch"
    assert verdict.message.endswith("(the copy repeated for $model=retired-model)")


def test_too_few_samples_in_prometheus_is_inconclusive_not_no_data(
    tmp_path: Path, observed: list[Observation], prometheus_server: Callable[..., str]
) -> None:
    # A 500ms window never holds two samples of a 1 s scrape: the same state as a Prometheus that has not
    # scraped twice since the workload, deterministically.
    prom = Prometheus(prometheus_server({"decode-0": observed[0].target.base_url}))
    found = judge(tmp_path, observed, [panel_json("Rate", "rate(vllm:prompt_tokens_total[500ms])")], prom=prom,
                  wait=1.0)
    verdict = found["Rate"]
    assert (verdict.outcome, verdict.evidence["panel_verdict"]) == (Outcome.INCONCLUSIVE, "inconclusive")
    assert "fewer than two samples of vllm:prompt_tokens_total within the panel's 500ms window" in verdict.message
    assert "(this panel waited 1 s of the wait all panels share" in verdict.message  # the wait it was given, bounded


def test_rate_panel_waits_for_the_second_scrape(
    tmp_path: Path, observed: list[Observation], prometheus_server: Callable[..., str]
) -> None:
    # Right after its first scrape Prometheus cannot take a derivative over 3s (it needs two samples); polling
    # (bounded) sees the panel show data. A gauge: the workload ran before this Prometheus, counters stay flat.
    prom = Prometheus(prometheus_server({"decode-0": observed[0].target.base_url}))
    found = judge(tmp_path, observed, [panel_json("Rate", "sum(deriv(vllm:kv_cache_usage_perc[3s]))")], prom=prom,
                  wait=60.0)  # ends as soon as the panel shows data: about two seconds, longer on a loaded machine
    assert found["Rate"].outcome == Outcome.PASSED, found["Rate"].message


def test_prometheus_error_is_inconclusive(tmp_path: Path, observed: list[Observation]) -> None:
    found = judge(tmp_path, observed, [panel_json("Running", 'vllm:num_requests_running{model_name="$model_name"}')],
                  [MODEL_NAME], prom=Prometheus("http://127.0.0.1:9", timeout=2))
    verdict = found["Running"]
    assert (verdict.outcome, verdict.evidence["panel_verdict"]) == (Outcome.INCONCLUSIVE, "inconclusive")
    assert "Prometheus at http://127.0.0.1:9 cannot be reached" in verdict.message
