"""The metrics' other consumers, judged as panels: Prometheus rules (files and PrometheusRule YAML), and from the
cluster the PrometheusRules, dashboard ConfigMaps, KEDA scalers, prometheus-adapter rules and the endpoint
picker's flags."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import prometheus_rule_files
from pytest_vllm_metrics.sim import SimHost, get_profile

RULES = Path(__file__).parent / "data" / "rules"


def outcomes(pytester: pytest.Pytester, report: str = "report.json") -> dict[str, tuple[str, str, str]]:
    """Consumer test id ("alert:vllm-alerts::VLLMKVCacheHigh") -> (outcome, verdict, reason), from the JSON
    report."""
    rows = json.loads((pytester.path / report).read_text())["tests"]
    return {row["id"].split("[", 1)[1].rstrip("]"): (row["outcome"], row["evidence"].get("panel_verdict", ""),
                                                     row["reason"] or " ".join(row["evidence"].get("notes", [])))
            for row in rows if "test_consumer[" in row["id"]}


def run_rules(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-rA", "-p", "no:cacheprovider", f"--prometheus-rules={RULES}",
                              "--vllm-report=report.json", "-k", "test_consumer", *args)


# What each rule of tests/data/rules gets from a vLLM 0.32 (the simulator's x86_64 profile, prefix caching on).
EXPECTED = {
    "alert:vllm-alerts::VLLMKVCacheHigh": ("failed", "no data"),
    "alert:vllm-alerts::VLLMKVCacheUsageHigh": ("passed", "ok"),
    "alert:vllm-alerts::VLLMPreempting": ("failed", "no data"),
    "alert:vllm-alerts::VLLMQueueBuildsUp": ("failed", "label mismatch"),
    "alert:vllm-alerts::VLLMMetricsAbsent": ("passed", "ok"),
    "record:vllm-prefix-cache::namespace:vllm_prefix_cache_hits:rate1m": ("passed", "ok"),
    "record:vllm-prefix-cache::namespace:vllm_prefix_cache_hit_ratio:rate1m": ("passed", "ok"),
    "record:vllm-prefix-cache::namespace:vllm_gpu_prefix_cache_hits:rate1m": ("failed", "no data"),
    "alert:vllm-latency::VLLMSlowDecode": ("failed", "no data"),
}


def assert_reasons(found: dict[str, tuple[str, str, str]]) -> None:
    assert {test: (o, v) for test, (o, v, _) in found.items()} == EXPECTED
    renamed = found["alert:vllm-alerts::VLLMKVCacheHigh"][2]
    assert renamed.startswith("This alert can never fire: its expression returns no series. alert "
                              '"VLLMKVCacheHigh" (file '), renamed
    assert "queries vllm:gpu_cache_usage_perc, which vLLM renamed: the servers expose vllm:kv_cache_usage_perc" \
        in renamed
    assert "the counter is vllm:num_preemptions_total" in found["alert:vllm-alerts::VLLMPreempting"][2]
    assert "can never fire" in found["alert:vllm-alerts::VLLMPreempting"][2]
    label = found["alert:vllm-alerts::VLLMQueueBuildsUp"][2]
    assert "can never fire" in label and "by label kubernetes_namespace, which no series carries" in label
    record = found["record:vllm-prefix-cache::namespace:vllm_gpu_prefix_cache_hits:rate1m"][2]
    assert record.startswith('recording rule "namespace:vllm_gpu_prefix_cache_hits:rate1m" (PrometheusRule '
                             'llm-d-cpu-inference/vllm-prefix-cache in '), record
    assert "vllm:gpu_prefix_cache_hits_total, which vLLM renamed" in record and "never fire" not in record
    assert "vllm:time_per_output_token_seconds_bucket, which vLLM renamed: the servers expose " \
           "vllm:inter_token_latency_seconds" in found["alert:vllm-latency::VLLMSlowDecode"][2]


def test_every_rule_gets_its_verdict_against_a_real_prometheus_loaded_with_the_rules(
    pytester: pytest.Pytester, sim_host: SimHost, prometheus_server: Callable[..., str]
) -> None:
    sim = sim_host.start(get_profile("x86_64"))
    prom = prometheus_server({"decode-0": sim.url}, rules=(RULES,))
    result = run_rules(pytester, f"--vllm-url={sim.url}", f"--prometheus-url={prom}")
    found = outcomes(pytester)
    assert_reasons(found)
    quiet = found["alert:vllm-alerts::VLLMKVCacheUsageHigh"][2]
    assert "not firing now: its condition is false, and the series it compares have data" in quiet
    assert "fires when vllm:num_requests_running has no series" in found["alert:vllm-alerts::VLLMMetricsAbsent"][2]
    result.stdout.fnmatch_lines(["other consumers of the metrics (will they get data?):",
                                 "  NO DATA              alert   vllm-alerts :: VLLMKVCacheHigh",
                                 "  OK                   alert   vllm-alerts :: VLLMKVCacheUsageHigh",
                                 "  LABEL MISMATCH       alert   vllm-alerts :: VLLMQueueBuildsUp",
                                 "  NO DATA              record  vllm-prefix-cache :: "
                                 "namespace:vllm_gpu_prefix_cache_hits:rate1m"])
    assert "Traceback" not in result.stdout.str()


def test_rules_are_judged_against_the_direct_scrape_without_prometheus(
    pytester: pytest.Pytester, sim_host: SimHost
) -> None:
    sim = sim_host.start(get_profile("x86_64"))
    run_rules(pytester, f"--vllm-url={sim.url}", "--html=report.html", "--self-contained-html")
    assert_reasons(outcomes(pytester))
    html = (pytester.path / "report.html").read_text()
    assert "Other consumers of the metrics: will they get data?" in html
    assert "data-consumer='alert: VLLMKVCacheHigh' data-verdict='no data' data-outcome='failed'" in html
    # listed, not drawn as a Grafana dashboard
    assert 'data-dashboard="vllm-alerts"' not in html and "Grafana panels: will they show data?" not in html


def test_every_rule_file_the_tests_use_passes_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    files = prometheus_rule_files((RULES,), tmp_path)
    assert len(files) == 3  # the plain file and the two PrometheusRule documents' groups
    for file in files:
        checked = subprocess.run([promtool, "check", "rules", str(file)], capture_output=True, text=True, timeout=60)
        assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_rule_name_used_twice_gets_two_tests(pytester: pytest.Pytester, sim_host: SimHost) -> None:
    # Recording rules often share one name, with different label sets (Prometheus allows it).
    pytester.makefile(".yaml", twice="groups:\n- name: g\n  rules:\n"
                                     "  - record: job:vllm_running:sum\n    expr: sum(vllm:num_requests_running)\n"
                                     "  - record: job:vllm_running:sum\n    expr: sum(vllm:num_requests_runing)\n")
    sim = sim_host.start(get_profile("x86_64"))
    pytester.runpytest("-p", "no:cacheprovider", "--prometheus-rules=twice.yaml", f"--vllm-url={sim.url}",
                       "--vllm-report=report.json", "-k", "test_consumer")
    found = outcomes(pytester)
    assert {k: v[0] for k, v in found.items()} == {"record:twice::job:vllm_running:sum": "passed",
                                                   "record:twice::job:vllm_running:sum (2)": "failed"}
    assert "queries vllm:num_requests_runing, which none of the 1 server(s) exposes" in \
        found["record:twice::job:vllm_running:sum (2)"][2]


@pytest.mark.parametrize(("content", "expected"), [
    ("groups:\n- name: g\n  rules:\n  - alert: A\n    expr: [unclosed\n",
     "ERROR: rule file bad.yaml is not valid YAML (*); fix it (promtool check rules bad.yaml shows where)*"),
    ("rules:\n- alert: A\n  expr: vllm:x > 1\n",
     "ERROR: rule file bad.yaml: document 1 has no 'groups:' (its top-level keys: rules) and is not a "
     "PrometheusRule*"),
    ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
     "ERROR: rule file bad.yaml holds no alerting or recording rule*kubectl get prometheusrule NAME -o yaml*"),
    ("groups:\n- name: g\n  rules:\n  - alert: A\n",
     "ERROR: file bad.yaml: rule 1 of group g needs 'alert' or 'record' and 'expr'; check it with promtool*"),
    ("apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\nmetadata: {name: r, namespace: n}\n"
     "spec:\n  groups: {name: g}\n",
     "ERROR: PrometheusRule n/r in bad.yaml: 'groups' must be a list of rule groups*found dict*"),
])
def test_a_bad_rule_file_is_one_usage_error_naming_the_file_and_the_fix(
    pytester: pytest.Pytester, content: str, expected: str
) -> None:
    pytester.makefile(".yaml", bad=content)
    result = pytester.runpytest("-p", "no:cacheprovider", "--prometheus-rules=bad.yaml", "--vllm-sim=x86_64")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([expected])
    assert len([line for line in result.stderr.lines if line.strip()]) == 1  # one paragraph, no traceback


def test_a_directory_without_rule_files_is_a_usage_error(pytester: pytest.Pytester) -> None:
    empty = pytester.mkdir("rules")
    (empty / "README.txt").write_text("nothing here")
    result = pytester.runpytest("-p", "no:cacheprovider", f"--prometheus-rules={empty}", "--vllm-sim=x86_64")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: rule directory {empty} holds no rule file (*.yaml, *.yml, *.json)*"])
