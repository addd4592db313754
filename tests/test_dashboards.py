"""The dashboard check against the direct scrape of simulated servers, panel by panel."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_vllm_metrics.dashboards import load_panels, selectors, substitute

DASHBOARDS = Path(__file__).parent / "data" / "dashboards"


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-rA", "-v", "-p", "no:cacheprovider", f"--grafana-dashboard={DASHBOARDS}", "-k",
                              "test_panel", *args)


def verdicts(result: pytest.RunResult) -> dict[str, str]:
    """Panel id -> outcome, from the verbose progress lines ("...::test_panel[dash::Title] PASSED ...")."""
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


def test_x86_64_passes_the_hit_rate_panels(pytester: pytest.Pytester) -> None:
    found = verdicts(run(pytester, "--vllm-sim=x86_64"))
    assert found["llm-d-performance::KV Cache Hit Rate"] == "PASSED"
    assert found["llm-d-performance::Per-Pod Cache Hit Rates"] == "PASSED"


def test_always_zero_names_the_flag_when_caching_is_off_by_choice(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--vllm-sim=x86_64-no-prefix-caching", "-k", "Hit and not Offload")
    result.stdout.fnmatch_lines(['*panel "KV Cache Hit Rate"*will be always zero / NaN on '
                                 'sim-x86_64-no-prefix-caching*0/0 = NaN*Root cause: vLLM reports '
                                 'enable_prefix_caching="False"*--no-enable-prefix-caching*'])


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


def test_rows_and_nested_panels_are_walked(tmp_path: Path) -> None:
    (tmp_path / "rows.json").write_text(
        '{"title": "R", "panels": [{"type": "row", "title": "Row", "panels": [{"title": "Inner", "targets": '
        '[{"expr": "vllm:num_requests_running"}]}]}, {"title": "Top", "targets": [{"expr": "up"}]}]}')
    assert [p.title for p in load_panels((tmp_path,))] == ["Inner", "Top"]


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ('rate(x{ns=~"$namespace"}[$__rate_interval])', 'rate(x{ns=~"prod"}[5m])'),
        ('x{m=~"${model}"} / y{m=~"[[model]]"}', 'x{m=~".*"} / y{m=~".*"}'),
        ("increase(x[$__range])", "increase(x[1h])"),
    ],
)
def test_grafana_variables_are_substituted(expr: str, expected: str) -> None:
    assert substitute(expr, {"model": ".*"}, "prod") == expected
    assert selectors(expected)  # and the result parses


def test_selectors_come_from_the_parser() -> None:
    found = selectors('sum by (pod) (rate(vllm:a_total{x="1", y=~"2"}[5m])) / on(pod) {__name__="vllm:b"}')
    assert [(s.metric, s.matchers) for s in found] == [
        ("vllm:a_total", (("x", "Equal", "1"), ("y", "Re", "2"))), ("vllm:b", ())]


def test_terminal_and_html_list_every_panel_with_its_verdict(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--vllm-sim=arm64-cpu", "--html=report.html", "--self-contained-html")
    result.stdout.fnmatch_lines([
        "panels (will it show data?):",
        "  NO DATA              llm-d-failure-saturation :: Request Preemptions",
        "  LABEL MISMATCH       llm-d-performance-old :: KV Cache Hit Rate",
        "  ALWAYS ZERO / NAN    llm-d-performance :: KV Cache Hit Rate",
        "  OK                   llm-d-performance :: KV Cache Usage %",
        "  NOT A VLLM METRIC    llm-d-performance :: EPP Pool Health & Load",
        "  FEATURE NOT ENABLED  llm-d-performance :: Offload Tier Hit Rate",
    ])
    html = (pytester.path / "report.html").read_text()
    assert "Grafana panels: will they show data?" in html
    assert "<td>llm-d-performance</td><td>KV Cache Hit Rate</td><td><b>always zero / NaN</b></td>" in html
