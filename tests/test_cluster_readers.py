"""The metrics' other readers read from the cluster (cluster_readers.py) by the real kubernetes client from the
API-server double: PrometheusRules, dashboard ConfigMaps, the Grafana Operator's GrafanaDashboards (v5 and v4),
prometheus-adapter's config, KEDA ScaledObjects and the endpoint picker's Deployment; a refused or slow read is a
note and the others are read."""

from __future__ import annotations

import asyncio
import collections
import fnmatch
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from conftest import (
    CLUSTER_VERDICTS,
    MONITORING,
    NS,
    ROLE,
    configmap,
    write_kubeconfig,
)
from pytest_vllm_metrics.cluster_readers import ConsumerObjects, read_consumers
from pytest_vllm_metrics.consumers import (
    from_cluster,
)
from pytest_vllm_metrics.kube import discover
from pytest_vllm_metrics.sim import SimHost
from pytest_vllm_metrics.sim.kubeapi import Cluster, KubeDouble, build_app

# -- the Grafana Operator's resources, read by the kubernetes client from the API-server double ---------------

def _read_dashboards(double: KubeDouble, tmp_path: Path) -> tuple[list[str], list[str]]:
    """(panel ids, notes about GrafanaDashboards) of a cluster read, as the run makes it (the admin token)."""
    info, _ = discover(namespace=NS, selector=None, container=None, port=None, timeout=30.0, context=None,
                       kubeconfig=str(write_kubeconfig(tmp_path / "kubeconfig", double, "admin")), transport="proxy")
    panels, _, notes = from_cluster(read_consumers(info, MONITORING, 30.0), NS)
    return [p.id for p in panels], [n for n in info.notes + notes if "grafanadashboard" in n.lower()]


# grafana/grafana-operator deploy/examples/dashboards (v4): SimpleDashboard.yaml and DashboardFromConfigMap.yaml
V4_MODEL = json.dumps({"title": "vLLM", "panels": [{"title": "Running",
                                                    "targets": [{"expr": "vllm:num_requests_running"}]}]})
V4 = [{"apiVersion": "integreatly.org/v1alpha1", "kind": "GrafanaDashboard",
       "metadata": {"name": "simple-dashboard", "namespace": MONITORING, "labels": {"app": "grafana"}},
       "spec": {"name": "simple-dashboard.json", "json": V4_MODEL}},
      {"apiVersion": "integreatly.org/v1alpha1", "kind": "GrafanaDashboard",
       "metadata": {"name": "grafana-dashboard-from-config-map", "namespace": MONITORING, "labels": {"app": "grafana"}},
       "spec": {"json": "", "configMapRef": {"name": "simple-dashboard-from-cm", "key": "foo"}}}]


def test_where_only_the_operators_v4_runs_its_resources_are_read(
    cluster: Cluster, sim_host: SimHost, tmp_path: Path
) -> None:
    cluster.uninstalled = {"grafanadashboards"}
    cluster.objects = {"grafanadashboards.integreatly.org": {MONITORING: V4},
                       "configmaps": {MONITORING: [configmap("simple-dashboard-from-cm", MONITORING,
                                                              {"foo": V4_MODEL})]}}
    panels, notes = _read_dashboards(KubeDouble(sim_host, cluster), tmp_path)
    assert panels == ["simple-dashboard::Running", "grafana-dashboard-from-config-map::Running"] and notes == []


def test_without_the_operator_one_quiet_note(cluster: Cluster, sim_host: SimHost, tmp_path: Path) -> None:
    cluster.uninstalled = {"grafanadashboards", "grafanadashboards.integreatly.org"}
    panels, notes = _read_dashboards(KubeDouble(sim_host, cluster), tmp_path)
    assert panels == []
    assert notes == ["grafanadashboards.grafana.integreatly.org not installed in the cluster (no such API): "
                     "nothing to check"]


def test_a_configmap_ref_is_resolved_in_the_resources_own_namespace_only(
    cluster: Cluster, sim_host: SimHost, tmp_path: Path
) -> None:
    # the operator reads the ConfigMap of the GrafanaDashboard's namespace: one of the same name elsewhere is not it
    cluster.uninstalled = {"grafanadashboards"}
    cluster.objects = {"grafanadashboards.integreatly.org": {MONITORING: V4[1:]},
                       "configmaps": {NS: [configmap("simple-dashboard-from-cm", NS, {"foo": V4_MODEL})]}}
    panels, notes = _read_dashboards(KubeDouble(sim_host, cluster), tmp_path)
    assert panels == []
    assert notes == [f"not checked: dashboard namespace {MONITORING} (GrafanaDashboard {MONITORING}/"
                     f"grafana-dashboard-from-config-map) takes its model from key foo of ConfigMap "
                     f"simple-dashboard-from-cm, which cannot be read: it is not among the ConfigMaps this run could "
                     f"read in namespace {MONITORING}."]


# -- the cluster read in-process: cluster_readers.read_consumers through the kubernetes client, from_cluster ------


def _read(double: KubeDouble, tmp_path: Path, token: str = "admin", grafana_namespace: str | None = MONITORING,
          timeout: float = 30.0) -> tuple[list[str], ConsumerObjects, tuple[list[Any], list[Any], list[str]]]:
    """(the notes of the read, what was read, from_cluster of it) as a run reads the cluster with `token`."""
    info, _ = discover(namespace=NS, selector=None, container=None, port=None, timeout=30.0, context=None,
                       kubeconfig=str(write_kubeconfig(tmp_path / "kubeconfig", double, token)), transport="proxy")
    discovered = len(info.notes)  # discovery's own (the nodes a token may not read)
    objects = read_consumers(info, grafana_namespace, timeout)
    return info.notes[discovered:], objects, from_cluster(objects, NS)


def test_the_cluster_read_finds_every_consumer_with_its_queries_and_where_it_is(
    consumers_cluster: Cluster, sim_host: SimHost, tmp_path: Path
) -> None:
    notes, objects, (panels, consumers, more) = _read(KubeDouble(sim_host, consumers_cluster), tmp_path)
    assert notes == []
    # both namespaces' rules and ConfigMaps; the sidecar's dashboards are the labelled ConfigMaps of Grafana's
    assert [r["metadata"]["name"] for r in objects.prometheus_rules] == ["vllm-prefix-cache", "vllm-latency",
                                                                         "node-exporter"]
    assert [c["metadata"]["name"] for c in objects.dashboards] == ["llm-d-dashboards", "node-dashboards"]
    assert len(objects.configmaps) == 4 and len(objects.grafana_dashboards) == 4
    assert [s["metadata"]["name"] for s in objects.scaled_objects] == ["vllm-queue", "vllm-kv"]
    assert [d["metadata"]["name"] for d in objects.deployments] == ["llm-d-infpool-epp", "vllm-decode"]
    # the rules, then the adapter's, KEDA's and the endpoint picker's: the verdicts' order in the reports
    rules = [test for test in CLUSTER_VERDICTS if test.startswith(("record:", "alert:"))]
    assert [f"{c.kind}:{c.id}" for c in consumers] == rules + [
        test for kind in ("adapter:", "keda:", "epp:") for test in CLUSTER_VERDICTS if test.startswith(kind)]
    where = {f"{c.kind}:{c.id}": (c.exprs, c.dashboard_title) for c in consumers}
    assert where["alert:vllm-latency::VLLMSlowDecode"][1] == f"PrometheusRule {NS}/vllm-latency"
    assert where["adapter:prometheus-adapter::vllm_kv_cache_usage"] == (
        ('vllm:gpu_cache_usage_perc{namespace!=""}', f'max(vllm:gpu_cache_usage_perc{{namespace="{NS}"}})'),
        f"ConfigMap {MONITORING}/prometheus-adapter, key config.yaml")
    assert where["keda:vllm-kv::vllm:num_requests_waiting"] == (
        ("max(vllm:gpu_cache_usage_perc)",),
        f"ScaledObject {NS}/vllm-kv, Prometheus http://prometheus-operated.monitoring.svc:9090")
    assert where["epp:llm-d-infpool-epp::total-queued-requests-metric"] == (
        ("vllm:num_requests_waiting",), f"Deployment {NS}/llm-d-infpool-epp")
    # a dashboard is kept whole when it reads vLLM; the node dashboard and the node rule are left out
    assert collections.Counter(p.dashboard for p in panels) == {
        "llm-d-failure-saturation": 4, "vllm-performance-gzipped": 12, "vllm-performance-old-from-configmap": 5}
    assert [n.split(" (")[0] for n in more] == [
        f"not checked: dashboard namespace {MONITORING}",
        f'ConfigMap {MONITORING}/prometheus-adapter, key config.yaml, rule externalRules[2]: its seriesQuery '
        f'{{__name__=~"^vllm:.*_total$"}} selects series by a name pattern, not one metric; not checked']


def test_without_a_grafana_namespace_only_the_vllm_namespace_is_read(
    consumers_cluster: Cluster, sim_host: SimHost, tmp_path: Path
) -> None:
    # the Grafana Operator's resources are looked for in the vLLM namespace then, where there are none
    notes, objects, _ = _read(KubeDouble(sim_host, consumers_cluster), tmp_path, grafana_namespace=None)
    assert notes == []
    assert [r["metadata"]["name"] for r in objects.prometheus_rules] == ["vllm-prefix-cache", "vllm-latency"]
    assert (objects.configmaps, objects.dashboards, objects.grafana_dashboards) == ([], [], [])
    assert len(objects.scaled_objects) == 2 and len(objects.deployments) == 2


def test_a_grafana_namespace_that_is_the_vllm_namespace_is_read_once(
    consumers_cluster: Cluster, sim_host: SimHost, tmp_path: Path
) -> None:
    notes, objects, _ = _read(KubeDouble(sim_host, consumers_cluster), tmp_path, grafana_namespace=NS)
    assert notes == []
    assert [r["metadata"]["name"] for r in objects.prometheus_rules] == ["vllm-prefix-cache", "vllm-latency"]


def test_each_refused_read_is_a_note_naming_the_grant_and_the_run_goes_on(
    consumers_cluster: Cluster, sim_host: SimHost, tmp_path: Path
) -> None:
    # the suite's least grants (deploy/rbac.yaml) and nothing of deploy/rbac-consumers.yaml; KEDA not installed
    consumers_cluster.uninstalled = {"scaledobjects"}
    notes, objects, (panels, consumers, _) = _read(KubeDouble(sim_host, consumers_cluster), tmp_path, "suite")
    assert notes == [
        f"prometheusrules.monitoring.coreos.com in namespace {NS} not checked: grant list on "
        f"prometheusrules.monitoring.coreos.com (deploy/rbac-consumers.yaml)",
        f"configmaps in namespace {NS} not checked: grant list on configmaps (deploy/rbac-consumers.yaml)",
        f"prometheusrules.monitoring.coreos.com in namespace {MONITORING} not checked: grant list on "
        f"prometheusrules.monitoring.coreos.com (deploy/rbac-consumers.yaml)",
        f"configmaps in namespace {MONITORING} not checked: grant list on configmaps (deploy/rbac-consumers.yaml)",
        f"grafanadashboards.grafana.integreatly.org in namespace {MONITORING} not checked: grant list on "
        f"grafanadashboards.grafana.integreatly.org (deploy/rbac-consumers.yaml)",
        "scaledobjects.keda.sh not installed in the cluster (no such API): nothing to check",
        f"deployments.apps in namespace {NS} not checked: grant list on deployments.apps "
        f"(deploy/rbac-consumers.yaml)"]
    assert objects == ConsumerObjects() and (panels, consumers) == ([], [])


def test_an_unknown_token_is_a_note_naming_the_grant_too(
    consumers_cluster: Cluster, sim_host: SimHost, tmp_path: Path
) -> None:
    # 401: the API server no longer knows the identity (its token expired after discovery)
    double = KubeDouble(sim_host, consumers_cluster)
    info, _ = discover(namespace=NS, selector=None, container=None, port=None, timeout=30.0, context=None,
                       kubeconfig=str(write_kubeconfig(tmp_path / "kubeconfig", double, "admin")), transport="proxy")
    del consumers_cluster.tokens["admin"]
    assert read_consumers(info, MONITORING, 30.0) == ConsumerObjects()
    assert info.notes[0] == (f"prometheusrules.monitoring.coreos.com in namespace {NS} not checked: grant list on "
                             f"prometheusrules.monitoring.coreos.com (deploy/rbac-consumers.yaml)")
    assert len(info.notes) == 7 and all("grant list on" in note for note in info.notes)


@pytest.mark.parametrize(("resource", "kinds"), [
    ("prometheusrules", {"adapter", "keda", "epp"}), ("configmaps", {"alert", "record", "keda", "epp"}),
    ("scaledobjects", {"alert", "record", "adapter", "epp"}), ("deployments", {"alert", "record", "adapter", "keda"}),
])
def test_a_read_refused_alone_leaves_the_others_read(
    consumers_cluster: Cluster, sim_host: SimHost, tmp_path: Path, resource: str, kinds: set[str]
) -> None:
    grants = ROLE | {("list", r) for r in ("prometheusrules", "configmaps", "scaledobjects", "deployments",
                                           "grafanadashboards")}
    consumers_cluster.tokens["partial"] = grants - {("list", resource)}
    notes, _, (_, consumers, _) = _read(KubeDouble(sim_host, consumers_cluster), tmp_path, "partial")
    assert {c.kind for c in consumers} == kinds
    assert notes and all(f"not checked: grant list on {resource}" in note for note in notes)


def test_a_read_that_never_answers_is_a_note_after_the_timeout_and_the_others_are_read(
    consumers_cluster: Cluster, sim_host: SimHost, tmp_path: Path
) -> None:
    """KEDA's list holds its answer until the test ends: that read times out whatever the machine's speed (after
    the run's timeout, passed to each read), the other reads are made and answered."""
    app = build_app(consumers_cluster)
    released = threading.Event()

    @web.middleware
    async def stalled(request: web.Request, handler: Callable[..., Any]) -> web.StreamResponse:
        if request.path.endswith("/scaledobjects"):
            await asyncio.get_running_loop().run_in_executor(None, released.wait, 60.0)
        return await handler(request)  # type: ignore[no-any-return]

    app.middlewares.append(stalled)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps(KubeDouble.kubeconfig(sim_host.start_app(app), "admin", namespace=NS)))
    info, _ = discover(namespace=NS, selector=None, container=None, port=None, timeout=30.0, context=None,
                       kubeconfig=str(kubeconfig), transport="proxy")
    try:
        objects = read_consumers(info, MONITORING, 2.0)
    finally:
        released.set()
    assert objects.scaled_objects == [] and len(objects.deployments) == 2 and len(objects.prometheus_rules) == 3
    [note] = info.notes
    assert fnmatch.fnmatch(note, f"scaledobjects.keda.sh in namespace {NS} not checked: listing them failed (*timed "
                                 f"out*)"), note


def test_a_sidecar_labelled_configmap_outside_the_grafana_namespace_is_not_a_dashboard(
    consumers_cluster: Cluster, sim_host: SimHost, tmp_path: Path
) -> None:
    # Grafana's sidecar watches its own namespace: a labelled ConfigMap beside the vLLM pods is not one of its
    stray = configmap("stray-dashboards", NS, {"stray.json": json.dumps({"title": "S", "panels": []})},
                       {"grafana_dashboard": "1"})
    consumers_cluster.objects["configmaps"][NS] = [stray]
    _, objects, _ = _read(KubeDouble(sim_host, consumers_cluster), tmp_path)
    assert "stray-dashboards" in [c["metadata"]["name"] for c in objects.configmaps]
    assert [c["metadata"]["name"] for c in objects.dashboards] == ["llm-d-dashboards", "node-dashboards"]


def test_where_only_the_operators_v4_runs_a_refused_read_of_its_resources_names_them(
    consumers_cluster: Cluster, sim_host: SimHost, tmp_path: Path
) -> None:
    # v5's API is not installed, v4's is, and the identity may not list GrafanaDashboards: the note names v4's
    consumers_cluster.uninstalled = {"grafanadashboards"}
    consumers_cluster.tokens["partial"] = ROLE | {("list", r) for r in ("prometheusrules", "configmaps",
                                                                          "scaledobjects", "deployments")}
    notes, objects, _ = _read(KubeDouble(sim_host, consumers_cluster), tmp_path, "partial")
    assert notes == [f"grafanadashboards.integreatly.org in namespace {MONITORING} not checked: grant list on "
                     f"grafanadashboards.integreatly.org (deploy/rbac-consumers.yaml)"]
    assert objects.grafana_dashboards == [] and objects.prometheus_rules
