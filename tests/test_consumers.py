"""The metrics' other consumers, judged as panels: Prometheus rules (files and PrometheusRule YAML), and from the
cluster the PrometheusRules, dashboard ConfigMaps, KEDA scalers, prometheus-adapter rules and the endpoint
picker's flags."""

from __future__ import annotations

import base64
import collections
import fnmatch
import gzip
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from conftest import (
    CLUSTER_VERDICTS,
    MONITORING,
    NS,
    ROLE,
    RULES,
    URL_DASHBOARD,
    configmap,
    k8s_deployment,
    observed,
    prometheus_rule_files,
    said,
    scaled_object,
    write_kubeconfig,
    yaml_documents,
)
from pytest_vllm_metrics.catalog import load_catalog
from pytest_vllm_metrics.cluster_readers import ConsumerObjects
from pytest_vllm_metrics.consumers import (
    ConsumerError,
    about_vllm,
    adapter_consumers,
    consumer_id,
    epp_consumers,
    epp_flags,
    from_cluster,
    is_epp,
    keda_consumers,
    load_rules,
    unique,
    with_recorded,
)
from pytest_vllm_metrics.judging import judge_reader
from pytest_vllm_metrics.readers import Query, Reader, ReaderKind
from pytest_vllm_metrics.report import schema
from pytest_vllm_metrics.settings import Policy
from pytest_vllm_metrics.sim import SimHost, get_profile
from pytest_vllm_metrics.sim.kubeapi import Cluster, KubeDouble

PROMETHEUS_ONLY = Path(__file__).parent / "data" / "rules-prometheus"  # what only Prometheus can judge
EPP_DOCS = Path(__file__).parent / "data" / "epp-config"


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
    "record:vllm-recorded::namespace:vllm_requests_waiting:sum": ("passed", "ok"),
    "alert:vllm-recorded::VLLMQueueLong": ("passed", "ok"),  # over the series the rule above records
    "alert:vllm-recorded::VLLMRunningNone": ("failed", "no data"),  # no rule records its series
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
    assert record.startswith('This recording rule records nothing: its expression returns no series, so alerts '
                             'and panels over it stay empty too. recording rule '
                             '"namespace:vllm_gpu_prefix_cache_hits:rate1m" (PrometheusRule '
                             'llm-d-cpu-inference/vllm-prefix-cache in '), record
    assert "vllm:gpu_prefix_cache_hits_total, which vLLM renamed" in record and "never fire" not in record
    assert "vllm:time_per_output_token_seconds_bucket, which vLLM renamed: the servers expose " \
           "vllm:inter_token_latency_seconds" in found["alert:vllm-latency::VLLMSlowDecode"][2]
    assert "can never fire" in found["alert:vllm-recorded::VLLMRunningNone"][2]
    assert "queries namespace:vllm_requests_running:sum, a recording rule's series by its name, which none of " \
           "the 1 server(s) exposes and no rule of this run records" in found["alert:vllm-recorded::VLLMRunningNone"][2]


def test_every_rule_gets_its_verdict_against_a_real_prometheus_loaded_with_the_rules(
    pytester: pytest.Pytester, sim_host: SimHost, prometheus_server: Callable[..., str]
) -> None:
    sim = sim_host.start(get_profile("x86_64"))
    prom = prometheus_server({"decode-0": sim.url}, rules=(RULES, PROMETHEUS_ONLY))
    result = run_rules(pytester, f"--vllm-url={sim.url}", f"--prometheus-url={prom}",
                       f"--prometheus-rules={PROMETHEUS_ONLY}")
    found = outcomes(pytester)
    mismatched = found.pop("alert:vllm-mismatch::VLLMQueueOverRunningMismatched")
    assert mismatched[:2] == ("failed", "no data")
    assert mismatched[2].startswith("This alert can never fire: its expression returns no series. alert "
                                    '"VLLMQueueOverRunningMismatched"'), mismatched
    assert "the series do not match across its operators" in mismatched[2]
    assert found.pop("alert:vllm-mismatch::VLLMQueueOverRunning")[:2] == ("passed", "ok")
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
        if os.environ.get("CI"):
            pytest.fail("promtool is not installed: .ci/run installs the Debian package prometheus")
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    files = prometheus_rule_files((RULES, PROMETHEUS_ONLY), tmp_path)
    assert len(files) == 5  # the three plain files and the two PrometheusRule documents' groups
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


# -- from the cluster: what reads the metrics in the namespace (and Grafana's), through the API-server double --


def run_cluster(pytester: pytest.Pytester, double: KubeDouble, token: str, *args: str) -> pytest.RunResult:
    kubeconfig = write_kubeconfig(pytester.path / "kubeconfig", double, token)
    return pytester.runpytest("-rA", "-p", "no:cacheprovider", f"--kubeconfig={kubeconfig}",
                              f"--vllm-namespace={NS}", f"--grafana-namespace={MONITORING}",
                              "--vllm-report=report.json", "--html=report.html", "--self-contained-html",
                              "-k", "test_consumer or test_panel", *args)


def test_every_consumer_in_the_cluster_gets_its_verdict(
    pytester: pytest.Pytester, consumers_cluster: Cluster, sim_host: SimHost
) -> None:
    double = KubeDouble(sim_host, consumers_cluster)
    result = run_cluster(pytester, double, "admin")
    found = {test: (o, v) for test, (o, v, _) in outcomes(pytester).items()}
    # The double's fleet is mixed: decode-arm64 runs the older vLLM of the arm64 profile, where prefix caching is
    # off (vLLM documents it) and the time-per-output-token histogram still exists (the 0.32 pod serves its
    # successor): the verdicts a panel over the same queries gets.
    assert found == CLUSTER_VERDICTS, found
    reasons = outcomes(pytester)
    assert reasons["epp:llm-d-infpool-epp::kv-cache-usage-percentage-metric"][2].startswith(
        "The endpoint picker finds no such metric on the pods: it routes without it. endpoint picker flag "
        f'"kv-cache-usage-percentage-metric" (Deployment {NS}/llm-d-infpool-epp) queries '
        f"vllm:gpu_cache_usage_perc, which vLLM renamed: the servers expose vllm:kv_cache_usage_perc")
    assert reasons["keda:vllm-kv::vllm:num_requests_waiting"][2].startswith(
        "This scaler gets no value: KEDA takes an empty result as 0 (ignoreNullValues, its default) or fails, so "
        f'it never scales out on it. KEDA scaler "vllm:num_requests_waiting" (ScaledObject {NS}/vllm-kv, '
        f"Prometheus http://prometheus-operated.monitoring.svc:9090) queries vllm:gpu_cache_usage_perc, which vLLM "
        f"renamed")
    assert reasons["adapter:prometheus-adapter::vllm_kv_cache_usage"][2].startswith(
        "This rule gives no value: an HPA naming the metric it exposes cannot scale on it. prometheus-adapter rule "
        f'"vllm_kv_cache_usage" (ConfigMap {MONITORING}/prometheus-adapter, key config.yaml) '
        f"queries vllm:gpu_cache_usage_perc, which vLLM renamed")
    # one message that says which version serves which name (not "always zero" on the pod that lacks it)
    assert reasons["alert:vllm-latency::VLLMSlowDecode"][2] == (
        f'alert "VLLMSlowDecode" (PrometheusRule {NS}/vllm-latency) reads vllm:time_per_output_token_seconds_bucket, '
        f"which only the vLLM 0.11.2 server (decode-arm64) exposes; the vLLM 0.32.0 server (decode-amd64) exposes "
        f"vllm:inter_token_latency_seconds_bucket instead (vLLM renamed vllm:time_per_output_token_seconds to "
        f"vllm:inter_token_latency_seconds), so the alert does not see it. While the fleet runs both versions, "
        f"read both names: vllm:inter_token_latency_seconds_bucket or vllm:time_per_output_token_seconds_bucket.")
    # the fleet-wide rule names the pod that contributes nothing, with its documented reason
    hits = reasons["record:vllm-prefix-cache::namespace:vllm_prefix_cache_hits:rate1m"][2]
    assert hits.startswith("it aggregates vllm:prefix_cache_hits_total over the fleet: decode-amd64 moved it, "
                           "while decode-arm64 contributes nothing (vLLM 0.11.2 disables prefix caching on arm64 "
                           "CPUs"), hits
    # the Grafana sidecar's dashboards and the operator's GrafanaDashboards are panels (drawn as dashboards); a
    # dashboard of no vLLM metric is left out
    panels = {row["id"].split("[", 1)[1].rstrip("]"): (row["outcome"], row["reason"])
              for row in json.loads((pytester.path / "report.json").read_text())["tests"] if "test_panel[" in row["id"]}
    assert panels["llm-d-failure-saturation::Request Preemptions"][0] == "failed"
    by_dashboard = collections.Counter(p.split("::")[0] for p in panels)
    assert by_dashboard == {"llm-d-failure-saturation": 4, "vllm-performance-gzipped": 12,
                            "vllm-performance-old-from-configmap": 5}
    assert panels["vllm-performance-gzipped::Request Queue Status"][0] == "passed"
    old = panels["vllm-performance-old-from-configmap::KV Cache Usage %"]
    assert old[0] == "failed" and "by label kubernetes_namespace, which no series carries" in old[1]
    # the GrafanaDashboard whose model is at a URL the operator has not fetched yet: a note naming it
    assert said(result, f"note: not checked: dashboard namespace {MONITORING} (GrafanaDashboard {MONITORING}/"
                        f"grafanadashboard-from-url) takes its model from {URL_DASHBOARD} (spec.url), which this run "
                        f"does not download")
    # the rule over no vLLM metric in the monitoring namespace is not a consumer; the name-pattern rule is a note
    assert not any("NodeDown" in test for test in reasons)
    assert said(result, "selects series by a name pattern, not one metric; not checked")
    jsonschema.validate(json.loads((pytester.path / "report.json").read_text()), schema())
    html = (pytester.path / "report.html").read_text()
    assert 'data-dashboard="llm-d-failure-saturation"' in html and 'data-dashboard="vllm-performance-gzipped"' in html
    assert "data-consumer='epp: kv-cache-usage-percentage-metric' data-verdict='no data'" in html


def test_a_refused_or_uninstalled_read_is_a_note_not_a_stop(
    pytester: pytest.Pytester, consumers_cluster: Cluster, sim_host: SimHost
) -> None:
    # The suite's least grants (deploy/rbac.yaml) and nothing of deploy/rbac-consumers.yaml; KEDA not installed.
    consumers_cluster.uninstalled = {"scaledobjects"}
    double = KubeDouble(sim_host, consumers_cluster)
    result = run_cluster(pytester, double, "suite", "-k", "test_consumer or test_panel or present")
    assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)  # the run went on
    assert outcomes(pytester) == {}
    expected = [f"prometheusrules.monitoring.coreos.com in namespace {NS} not checked: grant list on "
                f"prometheusrules.monitoring.coreos.com (deploy/rbac-consumers.yaml)",
                f"configmaps in namespace {NS} not checked: grant list on configmaps (deploy/rbac-consumers.yaml)",
                f"prometheusrules.monitoring.coreos.com in namespace {MONITORING} not checked: grant list on "
                f"prometheusrules.monitoring.coreos.com (deploy/rbac-consumers.yaml)",
                f"configmaps in namespace {MONITORING} not checked: grant list on configmaps "
                f"(deploy/rbac-consumers.yaml)",
                f"grafanadashboards.grafana.integreatly.org in namespace {MONITORING} not checked: grant list on "
                f"grafanadashboards.grafana.integreatly.org (deploy/rbac-consumers.yaml)",
                "scaledobjects.keda.sh not installed in the cluster (no such API): nothing to check",
                f"deployments.apps in namespace {NS} not checked: grant list on deployments.apps "
                f"(deploy/rbac-consumers.yaml)"]
    for note in expected:
        assert said(result, f"note: {note}"), note
    notes = json.loads((pytester.path / "report.json").read_text())["environment"]["kubernetes"]["notes"]
    assert [n for n in notes if "not checked" in n or "not installed" in n] == expected
    html = (pytester.path / "report.html").read_text()
    assert "grant list on deployments.apps (deploy/rbac-consumers.yaml)" in html
    rows = json.loads((pytester.path / "report.json").read_text())["tests"]
    present = [row["outcome"] for row in rows if "test_present" in row["id"]]
    assert present and "error" not in present and "passed" in present  # the pods' own checks ran as usual


@pytest.mark.parametrize("resource", ["prometheusrules", "configmaps", "scaledobjects", "deployments"])
def test_each_read_refused_alone_leaves_the_others_checked(
    pytester: pytest.Pytester, consumers_cluster: Cluster, sim_host: SimHost, resource: str
) -> None:
    grants = ROLE | {("list", r) for r in ("prometheusrules", "configmaps", "scaledobjects", "deployments")}
    consumers_cluster.tokens["partial"] = grants - {("list", resource)}
    double = KubeDouble(sim_host, consumers_cluster)
    result = run_cluster(pytester, double, "partial")
    kinds = {test.split(":", 1)[0] for test in outcomes(pytester)}
    lost = {"prometheusrules": {"alert", "record"}, "configmaps": {"adapter"}, "scaledobjects": {"keda"},
            "deployments": {"epp"}}[resource]
    assert kinds == {"alert", "record", "adapter", "keda", "epp"} - lost
    assert said(result, f"not checked: grant list on {resource}")


def test_the_documented_grants_are_enough(pytester: pytest.Pytester, consumers_cluster: Cluster,
                                          sim_host: SimHost) -> None:
    # deploy/rbac-consumers.yaml on top of deploy/rbac.yaml: every read is made, no "not checked" note.
    # (The double grants per token, not per namespace; both Roles grant the same resources or fewer.)
    roles = [d for d in yaml_documents(Path(__file__).parent.parent / "deploy" / "rbac-consumers.yaml")
             if d["kind"] == "Role"]
    assert {r["metadata"]["namespace"] for r in roles} == {NS, MONITORING}
    grants = {(verb, resource) for role in roles for rule in role["rules"] for resource in rule["resources"]
              for verb in rule["verbs"]}
    # the Grafana Operator's resources live in the Grafana namespace: its Role grants them, in both API groups
    (monitoring,) = [role for role in roles if role["metadata"]["namespace"] == MONITORING]
    assert {"apiGroups": ["grafana.integreatly.org", "integreatly.org"], "resources": ["grafanadashboards"],
            "verbs": ["list"]} in monitoring["rules"]
    consumers_cluster.tokens["documented"] = ROLE | frozenset(grants)
    result = run_cluster(pytester, KubeDouble(sim_host, consumers_cluster), "documented")
    assert not said(result, "not checked: grant")
    assert {test.split(":", 1)[0] for test in outcomes(pytester)} == {"alert", "record", "adapter", "keda", "epp"}
    rows = json.loads((pytester.path / "report.json").read_text())["tests"]
    assert any("test_panel[vllm-performance-old-from-configmap::" in row["id"] for row in rows)


# -- the shapes, one by one ----------------------------------------------------------------------------------


def _epp(args: list[str], labels: dict[str, str] | None = None, image: str = "example.com/router:1") -> dict[str, Any]:
    return k8s_deployment("pool-epp", image, args, labels or {"app": "router"})


@pytest.mark.parametrize(("deployment", "expected"), [
    # the inferencepool chart: labels, and "--name=value" from inferenceExtension.flags
    (_epp(["--pool-name", "p"], {"inferencepool": "p-epp"}), True),
    (_epp([], {"app.kubernetes.io/name": "p-epp"}), True),
    # a Deployment of one's own: recognized by a metric flag, by --pool-name, or by the image
    (_epp(["-kv-cache-usage-percentage-metric", "vllm:kv_cache_usage_perc"]), True),
    (_epp(["--pool-name=p"]), True),
    (_epp([], image="registry.k8s.io/gateway-api-inference-extension/epp:v1.0.1"), True),
    (_epp([], image="ghcr.io/llm-d/llm-d-inference-scheduler:v0.3.0"), True),
    (_epp(["--model", "x"], {"llm-d.ai/inference-serving": "true"}, "vllm/vllm-openai:v0.11.0"), False),
])
def test_the_endpoint_picker_is_found_by_its_labels_args_or_image(deployment: dict[str, Any], expected: bool) -> None:
    assert is_epp(deployment) is expected


def test_the_endpoint_pickers_metric_flags_as_go_reads_them() -> None:
    # "--flag value", "--flag=value", "-flag=value"; the chart's Triton shape writes label matchers unquoted
    # and turns the LoRA reading off with an empty value.
    args = ["--pool-name", "p", "--total-queued-requests-metric", "nv_trt_llm_request_metrics{request_type=waiting}",
            "-kv-cache-usage-percentage-metric=vllm:kv_cache_usage_perc", "--lora-info-metric", ""]
    assert epp_flags(args) == {"--total-queued-requests-metric": "nv_trt_llm_request_metrics{request_type=waiting}",
                               "--kv-cache-usage-percentage-metric": "vllm:kv_cache_usage_perc",
                               "--lora-info-metric": ""}
    panels = epp_consumers(_epp(args))
    assert [(p.title, p.exprs) for p in panels] == [
        ("total-queued-requests-metric", ('nv_trt_llm_request_metrics{request_type="waiting"}',)),
        ("kv-cache-usage-percentage-metric", ("vllm:kv_cache_usage_perc",))]
    assert {p.kind for p in panels} == {"epp"} and {p.dashboard for p in panels} == {"pool-epp"}


def test_an_epp_without_metric_flags_is_checked_with_its_built_in_specs() -> None:
    objects = ConsumerObjects(deployments=[_epp(["--pool-name", "p"], {"inferencepool": "p-epp"})])
    panels, consumers, notes = from_cluster(objects, NS)
    assert (panels, notes) == ([], [])
    assert [(c.kind, c.id, c.dashboard_title) for c in consumers] == [
        ("epp", "pool-epp::engineConfigs",
         f"Deployment {NS}/pool-epp (no --config-file or --config-text: the built-in specs)")]
    assert ("vllm queuedRequestsSpec", "vllm:num_requests_waiting") in [(q.ref_id, q.expr) for q in
                                                                        consumers[0].queries]


@pytest.mark.parametrize(("template", "expected"), [
    ("sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)",
     f'sum(rate(vllm:x_total{{namespace="{NS}"}}[2m])) by (namespace, pod)'),
    ("sum(<<.Series>>{<<.LabelMatchers>>,model_name!=\"\"}) by (<<.GroupBy>>)",
     f'sum(vllm:x_total{{namespace="{NS}",model_name!=\"\"}}) by (namespace, pod)'),
])
def test_the_adapters_template_is_filled_as_the_adapter_fills_it(template: str, expected: str) -> None:
    config = {"rules": [{"seriesQuery": "vllm:x_total", "metricsQuery": template, "name": {"as": "x"}}]}
    (panel,), notes = adapter_consumers(config, "adapter", "ConfigMap m/adapter", NS)
    assert panel.exprs == ("vllm:x_total", expected) and notes == []


def test_what_cannot_be_judged_in_the_cluster_is_a_note_and_the_rest_is_kept() -> None:
    no_query = scaled_object("no-query", "")
    broken = configmap("broken-dashboards", MONITORING, {"vllm.json": "{not json"}, {"grafana_dashboard": "1"})
    bad_rule = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
                "metadata": {"name": "half", "namespace": NS}, "spec": {"groups": [{"name": "g"}]}}
    adapter = configmap("prometheus-adapter", MONITORING, {"config.yaml": "rules: [unclosed"})
    objects = ConsumerObjects(
        prometheus_rules=[bad_rule, *yaml_documents(RULES / "vllm-prefix-cache.yaml")], dashboards=[broken],
        configmaps=[broken, adapter], scaled_objects=[no_query, scaled_object("q", "sum(vllm:num_requests_waiting)")])
    panels, consumers, notes = from_cluster(objects, NS)
    assert panels == []
    assert {p.kind for p in consumers} == {"alert", "record", "keda"} and len(consumers) == 5
    assert notes[0] == (f"not checked: PrometheusRule {NS}/half: group g has no list of 'rules'; each group holds "
                        f"'name' and 'rules'. Check it with promtool check rules.")
    assert notes[1].startswith(f"not checked: dashboard namespace {MONITORING} (ConfigMap broken-dashboards, key "
                               f"vllm.json) is not valid JSON")
    assert notes[2].startswith(f"ConfigMap {MONITORING}/prometheus-adapter, key config.yaml not "
                               f"checked: not valid YAML")
    assert notes[3] == (f"ScaledObject {NS}/no-query, trigger vllm:num_requests_waiting: no metadata.query (KEDA "
                        f"would reject it); not checked")
    assert len(notes) == 4


def test_cluster_consumers_are_also_judged_in_a_real_prometheus(
    pytester: pytest.Pytester, consumers_cluster: Cluster, sim_host: SimHost, prometheus_server: Callable[..., str]
) -> None:
    # Prometheus scrapes the same simulated pods, labelled namespace and pod as Prometheus Operator labels them:
    # the adapter's metricsQuery (namespace="<the vLLM namespace>"), the KEDA query and the EPP's metrics are
    # evaluated there as well.
    prom = prometheus_server({p.name: p.backend for p in consumers_cluster.namespaces[NS] if p.backend}, NS)
    run_cluster(pytester, KubeDouble(sim_host, consumers_cluster), "admin", f"--prometheus-url={prom}",
                "-k", "test_consumer and (keda or adapter or infpool)")  # not "epp": a directory may say it
    found = {test: (o, v) for test, (o, v, _) in outcomes(pytester).items()}
    # in Prometheus as on the direct scrapes: the verdicts the serial test pins
    assert found == {test: verdict for test, verdict in CLUSTER_VERDICTS.items()
                     if test.startswith(("keda:", "adapter:", "epp:"))}
    assert len(found) == 9
    evidence = {row["check"]: row["evidence"]["exprs"]
                for row in json.loads((pytester.path / "report.json").read_text())["tests"]}
    assert evidence["adapter: vllm_queue_length"] == [
        'vllm:num_requests_waiting{namespace!="",pod!=""}',
        f'sum(vllm:num_requests_waiting{{namespace="{NS}"}}) by (namespace, pod)']


def test_under_xdist_the_cluster_consumers_get_the_serial_verdicts_and_notes(
    pytester: pytest.Pytester, consumers_cluster: Cluster, sim_host: SimHost
) -> None:
    # The workers read the cluster for their test ids; the controller writes the reports with the same notes.
    grants = ROLE | {("get", "nodes")} | {("list", r) for r in ("prometheusrules", "configmaps", "scaledobjects")}
    consumers_cluster.tokens["no-deployments"] = grants
    double = KubeDouble(sim_host, consumers_cluster)
    parallel = run_cluster(pytester, double, "no-deployments", "-n", "2")
    assert "INTERNALERROR" not in parallel.stdout.str() + parallel.stderr.str()
    # the serial verdicts (test_every_consumer_in_the_cluster_gets_its_verdict), less the EPP's: its Deployment
    # cannot be read with this token
    serial = {test: verdict for test, verdict in CLUSTER_VERDICTS.items() if not test.startswith("epp:")}
    assert {test: (o, v) for test, (o, v, _) in outcomes(pytester).items()} == serial
    notes = json.loads((pytester.path / "report.json").read_text())["environment"]["kubernetes"]["notes"]
    assert f"deployments.apps in namespace {NS} not checked: grant list on deployments.apps " \
           f"(deploy/rbac-consumers.yaml)" in notes
    assert parallel.ret == pytest.ExitCode.TESTS_FAILED


def test_rules_about_other_things_are_left_out_and_a_file_of_only_those_is_a_usage_error(
    pytester: pytest.Pytester, sim_host: SimHost
) -> None:
    # kube-prometheus-stack's rules sit next to vLLM's in a monitoring setup; vLLM's pages cannot judge them.
    pytester.makefile(".yaml", mixed="""\
groups:
- name: mixed
  rules:
  - alert: NodeLoadHigh
    expr: node_load1 > 8
  - alert: VLLMTargetDown
    expr: up{job="vllm"} == 0
  - record: namespace:vllm_waiting:sum
    expr: sum by (namespace) (vllm:num_requests_waiting)
  - record: cluster:vllm_waiting:sum
    expr: sum(namespace:vllm_waiting:sum)
  - alert: VLLMWaitingHigh
    expr: cluster:vllm_waiting:sum > 100
""")
    pytester.makefile(".yaml", nodes="groups:\n- name: n\n  rules:\n  - alert: NodeDown\n    expr: node_load1 > 8\n")
    sim = sim_host.start(get_profile("x86_64"))
    pytester.runpytest("-p", "no:cacheprovider", "--prometheus-rules=mixed.yaml", f"--vllm-url={sim.url}",
                       "--vllm-report=report.json", "-k", "test_consumer")
    # the job of vLLM's scrape is Prometheus' to tell: without it, the alert on up{job="vllm"} is not judged
    assert {k: v[0] for k, v in outcomes(pytester).items()} == {
        "alert:mixed::VLLMTargetDown": "inconclusive", "record:mixed::namespace:vllm_waiting:sum": "passed",
        "record:mixed::cluster:vllm_waiting:sum": "passed", "alert:mixed::VLLMWaitingHigh": "passed"}
    result = pytester.runpytest("-p", "no:cacheprovider", "--prometheus-rules=nodes.yaml", f"--vllm-url={sim.url}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: none of the 1 rules in nodes.yaml reads a vLLM metric*Pass the rule "
                                 "files of your vLLM deployment to --prometheus-rules."])


# -- rule files read in-process: what each rule becomes, and each mistake's one message --------------------------


def test_rule_files_become_one_reader_per_rule_about_vllm(tmp_path: Path) -> None:
    readers = load_rules([RULES])
    assert [consumer_id(r) for r in readers] == list(EXPECTED)
    by_id = {consumer_id(r): r for r in readers}
    alert = by_id["alert:vllm-alerts::VLLMKVCacheHigh"]
    assert (alert.exprs, alert.dashboard_title) == (("vllm:gpu_cache_usage_perc > 0.9",),
                                                    f"file {RULES / 'vllm-alerts.yaml'}")
    record = by_id["record:vllm-prefix-cache::namespace:vllm_prefix_cache_hits:rate1m"]
    assert record.dashboard_title == f"PrometheusRule {NS}/vllm-prefix-cache in {RULES / 'vllm-prefix-cache.yaml'}"
    # a file named directly, its suffix in capitals; a PrometheusRule without namespace or name
    (tmp_path / "R.YML").write_text("kind: PrometheusRule\nspec:\n  groups:\n  - rules:\n    - record: "
                                    "x:vllm_running:sum\n      expr: '  sum(vllm:num_requests_running)  '\n")
    (tmp_path / "notes.txt").write_text("not a rule file")
    (reader,) = load_rules([tmp_path])
    assert (consumer_id(reader), reader.exprs, reader.dashboard_title) == (
        "record:R::x:vllm_running:sum", ("sum(vllm:num_requests_running)",),
        f"PrometheusRule R in {tmp_path / 'R.YML'}")
    assert [consumer_id(r) for r in load_rules([tmp_path / "R.YML", RULES / "vllm-recorded.yaml"])] == [
        "record:R::x:vllm_running:sum", "record:vllm-recorded::namespace:vllm_requests_waiting:sum",
        "alert:vllm-recorded::VLLMQueueLong", "alert:vllm-recorded::VLLMRunningNone"]


def test_a_list_of_rules_and_other_objects_beside_them(tmp_path: Path) -> None:
    # kubectl get prometheusrule -o yaml prints a List; a Helm chart's output puts other objects beside the rules
    rule = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
            "metadata": {"name": "r", "namespace": "n"},
            "spec": {"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "vllm:num_requests_waiting > 1"}]}]}}
    (tmp_path / "list.yaml").write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": [rule]})
                                        + "---\n---\napiVersion: v1\nkind: Service\nmetadata: {name: s}\n")
    (reader,) = load_rules([tmp_path / "list.yaml"])
    assert (consumer_id(reader), reader.dashboard_title) == ("alert:r::A",
                                                             f"PrometheusRule n/r in {tmp_path / 'list.yaml'}")


def test_a_rule_name_used_twice_is_numbered_within_its_source() -> None:
    readers = [Reader("g", "job:x", (Query("expr", "vllm:a"),), kind=ReaderKind.RECORD) for _ in range(3)]
    readers.append(Reader("g", "job:x", (Query("expr", "vllm:a"),), kind=ReaderKind.ALERT))
    readers.append(Reader("h", "job:x", (Query("expr", "vllm:a"),), kind=ReaderKind.RECORD))
    assert [consumer_id(r) for r in unique(readers)] == [
        "record:g::job:x", "record:g::job:x (2)", "record:g::job:x (3)", "alert:g::job:x", "record:h::job:x"]


def _bad_rules(tmp_path: Path, content: str | bytes) -> str:
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(ConsumerError) as raised:
        load_rules([bad])
    return str(raised.value).replace(str(bad), "bad.yaml")


@pytest.mark.parametrize(("content", "message"), [
    ("groups:\n- name: g\n  rules:\n  - alert: A\n    expr: [unclosed\n",
     "rule file bad.yaml is not valid YAML (*); fix it (promtool check rules bad.yaml shows where) or pass the "
     "PrometheusRule as kubectl prints it (kubectl get prometheusrule NAME -o yaml)."),
    (b"groups: \xff\n", "rule file bad.yaml cannot be read (*codec can't decode*); check --prometheus-rules."),
    ("rules:\n- alert: A\n  expr: vllm:x > 1\n",
     "rule file bad.yaml: document 1 has no 'groups:' (its top-level keys: rules) and is not a PrometheusRule; a "
     "Prometheus rule file starts with 'groups:', a PrometheusRule has kind: PrometheusRule and spec.groups. Pass "
     "one of those to --prometheus-rules."),
    ("{}\n", "rule file bad.yaml: document 1 has no 'groups:' (its top-level keys: none) and is not a *"),
    ("groups: []\n---\n- a\n- b\n",
     "rule file bad.yaml: document 2 is a list, not a rule file ('groups:' at the top) or a PrometheusRule (kind: "
     "PrometheusRule with spec.groups); pass a rule file as Prometheus loads it or a PrometheusRule as kubectl "
     "prints it."),
    ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
     "rule file bad.yaml holds no alerting or recording rule: expected a Prometheus rule file ('groups:' at the "
     "top, each group with 'rules:') or a PrometheusRule (kind: PrometheusRule, apiVersion: monitoring.coreos.com/v1, "
     "with spec.groups). Pass the file Prometheus loads, or the PrometheusRule as kubectl prints it (kubectl get "
     "prometheusrule NAME -o yaml)."),
    ("groups:\n- name: g\n  rules:\n  - alert: A\n",
     "file bad.yaml: rule 1 of group g needs 'alert' or 'record' and 'expr'; check it with promtool check rules."),
    ("groups:\n- name: g\n  rules:\n  - alert: A\n    expr: vllm:x\n  - record: B\n    expr: '  '\n",
     "file bad.yaml: rule 2 of group g needs 'alert' or 'record' and 'expr'; *"),
    ("groups:\n- name: g\n  rules:\n  - expr: vllm:x\n", "file bad.yaml: rule 1 of group g needs 'alert' or *"),
    ("groups:\n- name: g\n  rules:\n  - just text\n", "file bad.yaml: rule 1 of group g needs 'alert' or *"),
    ("groups:\n- name: g\n  rules: []\n- rules: {}\n",
     "file bad.yaml: group 2 has no list of 'rules'; each group holds 'name' and 'rules'. Check it with promtool "
     "check rules."),
    ("groups:\n- a group\n", "file bad.yaml: group 1 has no list of 'rules'; *"),
    ("apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\nmetadata: {name: r, namespace: n}\n"
     "spec:\n  groups: {name: g}\n",
     "PrometheusRule n/r in bad.yaml: 'groups' must be a list of rule groups (each with 'name' and 'rules'), found "
     "dict; check it with promtool check rules."),
    ("groups:\n- name: g\n  rules:\n  - alert: NodeDown\n    expr: node_load1 > 8\n  - alert: Up\n    expr: up == 0\n",
     "none of the 2 rules in bad.yaml reads a vLLM metric (a vllm: series, up or another scrape series of a job "
     "named after vLLM, or a series such a rule records), so there is nothing to check. Pass the rule files of "
     "your vLLM deployment to --prometheus-rules."),
])
def test_each_mistake_in_a_rule_file_is_one_message_naming_the_file_and_the_fix(
    tmp_path: Path, content: str | bytes, message: str
) -> None:
    found = _bad_rules(tmp_path, content)
    assert fnmatch.fnmatchcase(found, message), found
    assert "\n" not in found


def test_a_rule_directory_without_rule_files_names_the_suffixes(tmp_path: Path) -> None:
    (tmp_path / "README.txt").write_text("nothing here")
    (tmp_path / "sub.yaml").mkdir()
    with pytest.raises(ConsumerError) as raised:
        load_rules([tmp_path])
    assert str(raised.value) == (
        f"rule directory {tmp_path} holds no rule file (*.yaml, *.yml, *.json); put the Prometheus rule files or "
        f"PrometheusRule objects (kubectl get prometheusrule NAME -o yaml) in it, or pass the files themselves to "
        f"--prometheus-rules.")


# -- KEDA, prometheus-adapter and the endpoint picker's shapes, one by one -------------------------------------


def test_keda_reads_the_prometheus_triggers_and_notes_one_without_a_query() -> None:
    scaled = scaled_object("vllm-queue", " sum(vllm:num_requests_waiting) ")
    triggers = scaled["spec"]["triggers"]
    triggers += [{"type": "prometheus", "name": "named", "metadata": {"query": "vllm:num_requests_running"}},
                 {"type": "prometheus", "metadata": {"query": "vllm:kv_cache_usage_perc"}},
                 {"type": "prometheus", "metadata": {"metricName": "empty"}}, "not a trigger"]
    panels, notes = keda_consumers(scaled)
    assert [(p.kind, p.dashboard, p.title, p.exprs, p.dashboard_title) for p in panels] == [
        ("keda", "vllm-queue", "vllm:num_requests_waiting", ("sum(vllm:num_requests_waiting)",),
         f"ScaledObject {NS}/vllm-queue, Prometheus http://prometheus-operated.monitoring.svc:9090"),
        ("keda", "vllm-queue", "named", ("vllm:num_requests_running",), f"ScaledObject {NS}/vllm-queue"),
        ("keda", "vllm-queue", "trigger 4", ("vllm:kv_cache_usage_perc",), f"ScaledObject {NS}/vllm-queue")]
    assert notes == [f"ScaledObject {NS}/vllm-queue, trigger empty: no metadata.query (KEDA would reject it); not "
                     f"checked"]
    # without a namespace or a name; triggers that are not a list
    assert keda_consumers({"spec": {"triggers": [{"type": "prometheus", "metadata": {}}]}}) == (
        [], ["ScaledObject ?, trigger trigger 1: no metadata.query (KEDA would reject it); not checked"])
    assert keda_consumers({"metadata": {"name": "s"}, "spec": {"triggers": {"type": "prometheus"}}}) == ([], [])


@pytest.mark.parametrize(("series_query", "expected"), [
    # prometheus-adapter's docs/config-walkthrough.md writes the name as an anchored __name__ regex
    ('{__name__=~"^vllm:num_requests_waiting$",namespace!="",pod!=""}',
     'vllm:num_requests_waiting{namespace!="",pod!=""}'),
    ('{__name__="vllm:num_requests_waiting"}', "vllm:num_requests_waiting"),
    ('{namespace!="", __name__ = "vllm:num_requests_waiting"}', 'vllm:num_requests_waiting{namespace!="", }'),
    ("  vllm:num_requests_waiting ", "vllm:num_requests_waiting"),
    ('vllm:num_requests_waiting{namespace!=""}', 'vllm:num_requests_waiting{namespace!=""}'),
])
def test_an_adapter_rule_names_its_metric_as_a_selector(series_query: str, expected: str) -> None:
    (panel,), notes = adapter_consumers({"rules": [{"seriesQuery": series_query}]}, "adapter", "here", None)
    assert (panel.exprs, panel.title, panel.kind, notes) == ((expected,), "rules[1]", "adapter", [])


def test_an_adapter_config_names_each_rule_and_notes_what_it_cannot_check() -> None:
    config = {"rules": [{"seriesQuery": "vllm:a", "name": {"matches": "^vllm:(.*)$"}},
                        {"metricsQuery": "sum(vllm:a)"}, "not a rule",
                        {"seriesQuery": 'vllm:b{namespace!=""}', "name": {"matches": "m", "as": "b"},
                         "metricsQuery": "sum(<< .Series >>{<<.LabelMatchers>>}) by (<<.GroupBy>>)"}],
              "externalRules": [{"seriesQuery": '{__name__=~"vllm:.*"}'}, {"seriesQuery": "vllm:c"}],
              "resourceRules": [{"seriesQuery": "vllm:d"}]}
    panels, notes = adapter_consumers(config, "adapter", "ConfigMap m/adapter, key config.yaml", None)
    assert [(p.dashboard, p.title, p.exprs, p.dashboard_title) for p in panels] == [
        ("adapter", "^vllm:(.*)$", ("vllm:a",), "ConfigMap m/adapter, key config.yaml"),
        ("adapter", "b", ('vllm:b{namespace!=""}', "sum(vllm:b{}) by (namespace, pod)"),
         "ConfigMap m/adapter, key config.yaml"),
        ("adapter", "externalRules[2]", ("vllm:c",), "ConfigMap m/adapter, key config.yaml")]
    assert notes == ['ConfigMap m/adapter, key config.yaml, rule externalRules[1]: its seriesQuery '
                     '{__name__=~"vllm:.*"} selects series by a name pattern, not one metric; not checked']
    assert adapter_consumers(["rules"], "a", "ConfigMap m/a, key config.yaml", None) == (
        [], ["ConfigMap m/a, key config.yaml: config.yaml is not a mapping of rules; not checked"])
    assert adapter_consumers({"rules": {"seriesQuery": "vllm:a"}}, "a", "w", None) == ([], [])


def test_the_endpoint_pickers_flags_of_every_container_and_their_label_matchers() -> None:
    deployment = _epp(["--lora-info-metric"])  # the last word: a flag without its value reads nothing
    deployment["metadata"] = {}
    deployment["spec"]["template"]["spec"]["containers"].append(
        {"name": "sidecar", "command": ["/epp", "---total-running-requests-metric=m{ a = b ,c=\"d\",}"]})
    (panel,) = epp_consumers(deployment)
    assert (panel.dashboard, panel.title, panel.exprs, panel.dashboard_title, panel.kind) == (
        "?", "total-running-requests-metric", ('m{a="b",c="d"}',), "Deployment ?", "epp")
    assert epp_flags(["--pool-name", "p", "total-queued-requests-metric", "x"]) == {}


@pytest.mark.parametrize(("deployment", "expected"), [
    ({"metadata": {"labels": {"inferencepool": "p"}}}, True),
    ({"spec": {"template": {"metadata": {"labels": {"app.kubernetes.io/name": "p-epp"}}}}}, True),
    ({"spec": {"template": {"metadata": {"labels": {"app.kubernetes.io/name": "p-epp-ui"}}}}}, False),
    (_epp(["--pool-name=p"], image="example.com/epp-ui:1"), True),
    (_epp([], image="example.com/router/epp:v1"), True),
    (_epp(["pool-name", "p"], image="example.com/eppx:v1"), False),
    ({"spec": {"template": {"spec": {"containers": [{"command": ["-total-running-requests-metric", "m"]}]}}}}, True),
    ({}, False),
])
def test_an_endpoint_picker_is_told_from_other_deployments(deployment: dict[str, Any], expected: bool) -> None:
    assert is_epp(deployment) is expected


# -- which readers read vLLM's metrics ---------------------------------------------------------------------------


@pytest.mark.parametrize(("expr", "reads"), [
    ("vllm:num_requests_waiting > 1", True),
    ("sum(namespace:VLLM_waiting:sum)", True),  # a recording rule's name for a vLLM series
    ('up{job="vllm-decode"} == 0', True), ('scrape_duration_seconds{job="VLLM"} > 1', True),
    ('scrape_samples_scraped{job="vllm"}', True), ('scrape_series_added{job="vllm"}', True),
    ('up{job="node"} == 0', False), ('node_load1{job="vllm"} > 8', False), ("up == 0", False),
    ("vllm:x >", True), ("node_load1 >", False),  # an expression that does not parse: by its words
])
def test_a_reader_is_about_vllm_by_its_series(expr: str, reads: bool) -> None:
    reader = Reader("f", "a", (Query("expr", "node_load1 > 1"), Query("expr", expr)), kind=ReaderKind.ALERT)
    assert about_vllm([reader]) == ([reader] if reads else [])


def test_rules_over_recorded_series_are_about_vllm_through_every_level() -> None:
    def rule(kind: ReaderKind, title: str, expr: str) -> Reader:
        return Reader("f", title, (Query("expr", expr),), kind=kind)

    # each level records what the one before recorded; listed last to first, so one pass is not enough
    alert = rule(ReaderKind.ALERT, "High", "level3:x > 1")
    level3 = rule(ReaderKind.RECORD, "level3:x", "sum(level2:x)")
    level2 = rule(ReaderKind.RECORD, "level2:x", "sum(level1:x)")
    level1 = rule(ReaderKind.RECORD, "level1:x", "sum(vllm:num_requests_waiting)")
    other = rule(ReaderKind.RECORD, "node:x", "sum(node_load1)")
    # a repeated name ("level0:x (2)" after unique()) records under its own name
    numbered = rule(ReaderKind.RECORD, "level0:y (2)", "sum(vllm:num_requests_running)")
    above = rule(ReaderKind.ALERT, "Running", "level0:y > 1")
    panels = [alert, level3, level2, level1, other, numbered, above]
    assert about_vllm(panels) == [alert, level3, level2, level1, numbered, above]
    assert about_vllm([alert], recorded=["level3:x"]) == [alert]
    # every panel and consumer knows what the recording rules record
    dashboards, consumers = with_recorded([rule(ReaderKind.PANEL, "p", "level1:x")], panels)
    assert dashboards[0].recorded == consumers[0].recorded == {"level3:x", "level2:x", "level1:x", "node:x",
                                                                "level0:y"}


@pytest.mark.parametrize(("template", "expected"), [
    # without a namespace <<.LabelMatchers>> is empty: the comma it leaves before or after other matchers goes too
    ("sum(<<.Series>>{<<.LabelMatchers>>,model_name!=\"\"}) by (<<.GroupBy>>)",
     'sum(vllm:x_total{model_name!=""}) by (namespace, pod)'),
    ("sum(<<.Series>>{model_name!=\"\", <<.LabelMatchers>>})", 'sum(vllm:x_total{model_name!=""})'),
])
def test_the_adapters_template_without_a_namespace_drops_the_empty_matchers_comma(template: str,
                                                                                   expected: str) -> None:
    config = {"rules": [{"seriesQuery": "vllm:x_total", "metricsQuery": template, "name": {"as": "x"}}]}
    (panel,), notes = adapter_consumers(config, "adapter", "ConfigMap m/adapter", None)
    assert panel.exprs == ("vllm:x_total", expected) and notes == []


def test_an_adapter_rule_that_selects_no_series_names_its_queries(sim_host: SimHost) -> None:
    config = {"rules": [{"seriesQuery": 'vllm:num_requests_waiting{model_name="other"}', "name": {"as": "x"},
                         "metricsQuery": "sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)"}]}
    (panel,), _ = adapter_consumers(config, "adapter", "ConfigMap m/adapter", None)
    message = judge_reader(panel, observed(sim_host, "x86_64"), load_catalog(), Policy()).message
    assert 'query seriesQuery (vllm:num_requests_waiting{model_name="other"}) returns nothing' in message, message
    # the series exist, the metricsQuery over them selects none
    config = {"rules": [{"seriesQuery": "vllm:num_requests_waiting", "name": {"as": "x"},
                         "metricsQuery": 'sum(<<.Series>>{model_name="other"})'}]}
    (panel,), _ = adapter_consumers(config, "adapter", "ConfigMap m/adapter", None)
    message = judge_reader(panel, observed(sim_host, "x86_64"), load_catalog(), Policy()).message
    assert 'query metricsQuery (sum(vllm:num_requests_waiting{model_name="other"})) returns nothing' in message, message


def test_a_yaml_error_in_a_rule_file_says_where_on_one_line(tmp_path: Path) -> None:
    found = _bad_rules(tmp_path, "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: [unclosed\n")
    # PyYAML's own words, its line breaks and indentation folded into single spaces
    assert found.startswith(
        "rule file bad.yaml is not valid YAML (while parsing a flow sequence in \"<unicode string>\", line 5, "
        "column 11: expr: [unclosed ^ expected ',' or ']', but got '<stream end>' in \"<unicode string>\", line 6, "
        "column 1: ^); fix it"), found


def test_a_list_item_or_a_document_that_is_not_a_rule_file_is_named_with_every_key(tmp_path: Path) -> None:
    # kubectl get prometheusrule -o yaml prints a v1 List; its items are numbered as the document that holds them
    listed = "---\ngroups: []\n---\napiVersion: v1\nkind: List\nitems:\n- rules: []\n  name: r\n"
    assert _bad_rules(tmp_path, listed).startswith(
        "rule file bad.yaml: document 2 has no 'groups:' (its top-level keys: name, rules) and is not a ")


def test_an_epp_metric_flag_and_its_value_as_the_last_two_words() -> None:
    assert epp_flags(["--pool-name", "p", "--lora-info-metric", "vllm:lora_requests_info"]) == {
        "--lora-info-metric": "vllm:lora_requests_info"}


def test_a_scaler_or_a_rule_that_reads_a_missing_metric_beside_an_or_notes_it_by_its_query(
        sim_host: SimHost, tmp_path: Path) -> None:
    either = "sum(vllm:no_such_metric) or sum(vllm:num_requests_running)"
    # a trigger without a query is noted, and the triggers after it are still read
    scaler = {"metadata": {"name": "s"}, "spec": {"triggers": [
        {"type": "prometheus", "name": "empty", "metadata": {}},
        {"type": "prometheus", "name": "queue", "metadata": {"query": either}}]}}
    (keda,), notes = keda_consumers(scaler)
    assert keda.title == "queue" and notes == ["ScaledObject s, trigger empty: no metadata.query (KEDA would reject "
                                               "it); not checked"]
    rules = tmp_path / "rules.yaml"
    rules.write_text(f"groups:\n- name: g\n  rules:\n  - record: r\n    expr: {either}\n")
    (rule,) = load_rules([rules])
    seen = observed(sim_host, "x86_64")
    for reader, query in ((keda, "query"), (rule, "expr")):
        verdict = judge_reader(reader, seen, load_catalog(), Policy())
        assert verdict.evidence["notes"] == [
            f"vllm:no_such_metric (in query {query}) is missing, but the other side of its 'or' has data"]


@pytest.mark.parametrize("series_query", [
    # a GPU autoscaling rule of prometheus-adapter Helm values (dcgm-exporter's upper-case metric names)
    'DCGM_FI_DEV_GPU_UTIL{exported_namespace!="",exported_container!="",exported_pod!=""}',
    '{__name__="DCGM_FI_DEV_GPU_UTIL",exported_namespace!="",exported_container!="",exported_pod!=""}',
])
def test_an_adapter_rule_on_an_upper_case_metric_name_is_named_by_it(series_query: str) -> None:
    (panel,), notes = adapter_consumers({"rules": [{"seriesQuery": series_query}]}, "adapter", "here", None)
    assert panel.exprs == ('DCGM_FI_DEV_GPU_UTIL{exported_namespace!="",exported_container!="",exported_pod!=""}',)
    assert notes == []


def test_the_cluster_objects_each_kind_read_past_the_ones_that_are_not_consumers() -> None:
    rule = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule", "metadata": {},
            "spec": {"groups": [{"name": "g", "rules": [
                {"record": "llm:queue:sum", "expr": "sum(vllm:num_requests_waiting)"}]}]}}
    # a dashboard that reads only what the rule records is about vLLM too
    dashboard = configmap("queue-dashboard", MONITORING, {"queue.json": json.dumps(
        {"uid": "q", "title": "Queue", "panels": [{"type": "stat", "title": "Queued",
                                                   "targets": [{"refId": "A", "expr": "llm:queue:sum"}]}]})},
        {"grafana_dashboard": "1"})
    # another application's config.yaml, a broken adapter config, then an adapter whose rules are not on line 1
    other = configmap("other-app", MONITORING, {"config.yaml": "- a list of settings\n"})
    broken = configmap("broken-adapter", MONITORING, {"config.yaml": "rules: [unclosed"})
    adapter = configmap("adapter", MONITORING, {"config.yaml": "metricsRelistInterval: 1m\nexternalRules:\n"
                                                                "- seriesQuery: vllm:num_requests_waiting\n"})
    web = k8s_deployment("web", "nginx:1.27", [], {"app": "web"})
    router = _epp(["--pool-name", "p"], {"inferencepool": "p-epp"})
    router["metadata"] = {}
    objects = ConsumerObjects(prometheus_rules=[rule], dashboards=[dashboard],
                              configmaps=[dashboard, other, broken, adapter], deployments=[web, router])
    panels, consumers, notes = from_cluster(objects, NS)
    assert [(p.dashboard, p.title) for p in panels] == [("queue", "Queued")]
    assert [(c.kind, c.title, c.dashboard_title) for c in consumers] == [
        ("record", "llm:queue:sum", f"PrometheusRule {NS}/?"),
        ("adapter", "externalRules[1]", f"ConfigMap {MONITORING}/adapter, key config.yaml"),
        ("epp", "engineConfigs", "Deployment ? (no --config-file or --config-text: the built-in specs)")]
    assert notes[0].startswith(f"ConfigMap {MONITORING}/broken-adapter, key config.yaml not checked: not valid YAML "
                               f"(while parsing a flow sequence in \"<unicode string>\", line 1, column 8")
    assert notes[1:] == []


def test_rule_files_of_which_none_reads_vllm_are_each_named(tmp_path: Path) -> None:
    files = []
    for name in ("node.yaml", "up.yaml"):
        files.append(tmp_path / name)
        files[-1].write_text("groups:\n- name: g\n  rules:\n  - alert: NodeDown\n    expr: node_load1 > 8\n")
    with pytest.raises(ConsumerError) as raised:
        load_rules(files)
    assert str(raised.value).startswith(f"none of the 2 rules in {files[0]}, {files[1]} reads a vLLM metric")


def test_a_dashboard_or_grafana_dashboard_that_cannot_be_read_leaves_the_next_one_read() -> None:
    model = json.dumps({"uid": "v", "title": "vLLM", "panels": [
        {"type": "stat", "title": "Running", "targets": [{"refId": "A", "expr": "vllm:num_requests_running"}]}]})
    broken = configmap("broken", MONITORING, {"vllm.json": "{not json"}, {"grafana_dashboard": "1"})
    good = configmap("good", MONITORING, {"vllm.json": model}, {"grafana_dashboard": "1"})
    # a GrafanaDashboard without a spec: a note, not a stop
    no_spec = {"apiVersion": "grafana.integreatly.org/v1beta1", "kind": "GrafanaDashboard",
               "metadata": {"name": "empty", "namespace": MONITORING}}
    objects = ConsumerObjects(dashboards=[broken, good], grafana_dashboards=[no_spec])
    panels, _, notes = from_cluster(objects, NS)
    assert [(p.dashboard, p.title) for p in panels] == [("vllm", "Running")]
    assert notes[0].startswith(f"not checked: dashboard namespace {MONITORING} (ConfigMap broken, key vllm.json) is "
                               f"not valid JSON")


def test_a_rule_of_the_grafana_namespace_is_named_in_its_own_namespace() -> None:
    rule = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
            "metadata": {"name": "vllm-rules", "namespace": MONITORING},
            "spec": {"groups": [{"name": "g", "rules": [
                {"record": "llm:queue:sum", "expr": "sum(vllm:num_requests_waiting)"}]}]}}
    _, consumers, notes = from_cluster(ConsumerObjects(prometheus_rules=[rule]), NS)
    assert [c.dashboard_title for c in consumers] == [f"PrometheusRule {MONITORING}/vllm-rules"] and notes == []


def test_a_v4_grafana_dashboard_of_the_cluster_takes_its_model_from_a_compressed_configmap() -> None:
    # grafana-operator deploy/examples/dashboards/DashboardFromCompressedConfigMap.yaml (v4): gzipConfigMapRef to
    # the ConfigMap's binaryData, here with a vLLM panel, both listed in the Grafana namespace
    resource = {"apiVersion": "integreatly.org/v1alpha1", "kind": "GrafanaDashboard",
                "metadata": {"name": "grafana-dashboard-from-compressed-config-map", "namespace": MONITORING},
                "spec": {"json": "", "gzipConfigMapRef": {"name": "compressed", "key": "foo"}}}
    compressed = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "compressed", "namespace": MONITORING},
                  "binaryData": {"foo": base64.b64encode(gzip.compress(json.dumps(
                      {"title": "vLLM", "panels": [{"title": "Running",
                                                     "targets": [{"expr": "vllm:num_requests_running"}]}]}
                  ).encode())).decode()}}
    panels, _, notes = from_cluster(ConsumerObjects(grafana_dashboards=[resource], configmaps=[compressed]), NS)
    assert [p.id for p in panels] == ["grafana-dashboard-from-compressed-config-map::Running"] and notes == []


def _istio_epp() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The EPP Deployment of the Istio/GAIE guide and the ConfigMap its --config-file is mounted from."""
    documents = [d for d in yaml.safe_load_all((EPP_DOCS / "epp-deployment-configmap.yaml").read_text()) if d]
    return (next(d for d in documents if d["kind"] == "Deployment"),
            [d for d in documents if d["kind"] == "ConfigMap"])


def test_each_epp_of_the_cluster_is_checked_with_the_configuration_it_mounts() -> None:
    deployment, configmaps = _istio_epp()
    objects = ConsumerObjects(deployments=[deployment, _epp(["--pool-name", "p"], {"inferencepool": "p-epp"})],
                              configmaps=configmaps)
    _, consumers, notes = from_cluster(objects, NS)
    assert [(c.kind, c.title, c.dashboard_title) for c in consumers] == [
        ("epp", "engineConfigs", "Deployment inference-model-server/inference-endpoint-picker, ConfigMap "
                                 "inference-model-server/plugins-config, key default-plugins.yaml"),
        ("epp", "engineConfigs", f"Deployment {NS}/pool-epp (no --config-file or --config-text: the built-in specs)")]
    assert notes == []


def test_an_epp_that_refuses_its_metric_flags_is_not_checked_as_reading_them() -> None:
    # llm-d-router refuses to start with the old --*-metric flags: its one failure says so, the flags are no reader
    router = k8s_deployment("router-epp", "ghcr.io/llm-d/llm-d-router:v0.10.0", [
        "--pool-name", "p", "--kv-cache-usage-percentage-metric", "vllm:kv_cache_usage_perc"], {"app": "router"})
    _, consumers, _ = from_cluster(ConsumerObjects(deployments=[router]), NS)
    assert [(c.kind, c.title) for c in consumers] == [("epp", "engineConfigs"), ("epp", "metric flags")]
    older = k8s_deployment("router-epp", "registry.k8s.io/gateway-api-inference-extension/epp:v1.0.1", [
        "--pool-name", "p", "--kv-cache-usage-percentage-metric", "vllm:kv_cache_usage_perc"], {"app": "router"})
    _, consumers, _ = from_cluster(ConsumerObjects(deployments=[older]), NS)
    assert [(c.kind, c.title) for c in consumers] == [("epp", "kv-cache-usage-percentage-metric"),
                                                      ("epp", "engineConfigs")]


@pytest.mark.usefixtures("ascii_locale")
def test_a_rule_file_is_read_as_utf8_whatever_the_locale(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("groups:\n- name: vllm\n  rules:\n  - alert: VLLMQueueHigh\n"
                     "    expr: vllm:num_requests_waiting > 10\n"
                     "    annotations:\n      summary: requests wait \u2265 10 s \u2014 add replicas\n",
                     encoding="utf-8")
    assert [c.title for c in load_rules([rules])] == ["VLLMQueueHigh"]
