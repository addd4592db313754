"""The metrics' other readers, read from the cluster (read-only `list`): PrometheusRules, the Grafana sidecar's
dashboard ConfigMaps, the Grafana Operator's GrafanaDashboards, prometheus-adapter ConfigMaps, KEDA ScaledObjects
and the endpoint picker's Deployment. consumers.py turns them into readers; a refused read is a note, never a stop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .kube import ClusterInfo, failure

__all__ = ["CONSUMERS_RBAC", "ConsumerObjects", "read_consumers"]

CONSUMERS_RBAC = "deploy/rbac-consumers.yaml"


@dataclass
class ConsumerObjects:
    """What reads vLLM's metrics in the cluster, as plain objects (the API's JSON shape)."""

    prometheus_rules: list[dict[str, Any]] = field(default_factory=list)
    dashboards: list[dict[str, Any]] = field(default_factory=list)  # ConfigMaps labelled grafana_dashboard
    grafana_dashboards: list[dict[str, Any]] = field(default_factory=list)  # the Grafana Operator's resources
    configmaps: list[dict[str, Any]] = field(default_factory=list)  # every ConfigMap: prometheus-adapter configs
    scaled_objects: list[dict[str, Any]] = field(default_factory=list)
    deployments: list[dict[str, Any]] = field(default_factory=list)


def read_consumers(info: ClusterInfo, grafana_namespace: str | None, timeout: float) -> ConsumerObjects:
    """PrometheusRules, dashboard ConfigMaps, ConfigMaps (prometheus-adapter), KEDA ScaledObjects and Deployments
    (the endpoint picker) of the vLLM namespace and of the Grafana namespace, and the Grafana Operator's
    GrafanaDashboards of the Grafana namespace. A read the identity may not make is a note naming the grant
    ("not checked"), a kind whose CRD is not installed a quiet note; never a stop."""
    from kubernetes import client

    api = info.api_client
    core, apps, custom = client.CoreV1Api(api), client.AppsV1Api(api), client.CustomObjectsApi(api)
    monitoring = grafana_namespace or info.namespace
    namespaces = list(dict.fromkeys((info.namespace, monitoring)))
    found = ConsumerObjects()

    def listed(verb_resource: tuple[str, str], namespace: str, fn: Any, *args: Any,
               missing: list[str] | None = None, **kwargs: Any) -> list[Any]:
        """The objects `fn` lists; `missing` collects a resource whose API is not installed instead of a note."""
        verb, resource = verb_resource
        try:
            answer = fn(*args, _request_timeout=timeout, **kwargs)
        except Exception as exc:  # an HTTP error, a timeout, an answer the model rejects: a note, never a stop
            from kubernetes.client.exceptions import ApiException

            if isinstance(exc, ApiException) and exc.status in (401, 403):
                info.notes.append(f"{resource} in namespace {namespace} not checked: grant {verb} on {resource} "
                                  f"({CONSUMERS_RBAC})")
            elif isinstance(exc, ApiException) and exc.status == 404 and missing is not None:
                missing.append(resource)
            elif isinstance(exc, ApiException) and exc.status == 404:
                info.notes.append(f"{resource} not installed in the cluster (no such API): nothing to check")
            else:
                info.notes.append(f"{resource} in namespace {namespace} not checked: listing them {failure(exc)}")
            return []
        items = answer.get("items") if isinstance(answer, dict) else api.sanitize_for_serialization(answer)["items"]
        return [item for item in items or [] if isinstance(item, dict)]

    for namespace in namespaces:
        found.prometheus_rules += listed(("list", "prometheusrules.monitoring.coreos.com"), namespace,
                                         custom.list_namespaced_custom_object, "monitoring.coreos.com", "v1",
                                         namespace, "prometheusrules")
        found.configmaps += listed(("list", "configmaps"), namespace, core.list_namespaced_config_map, namespace)
    # The Grafana sidecar's convention (kube-prometheus-stack's sidecar.dashboards.label, default grafana_dashboard)
    found.dashboards = [c for c in found.configmaps if c.get("metadata", {}).get("namespace", monitoring) == monitoring
                        and "grafana_dashboard" in (c.get("metadata", {}).get("labels") or {})]
    # The Grafana Operator's dashboards, in the Grafana namespace as the sidecar's ConfigMaps: v5's API
    # (grafana.integreatly.org/v1beta1), else v4's (integreatly.org/v1alpha1) where v5's is not installed
    gone: list[str] = []
    found.grafana_dashboards = listed(("list", "grafanadashboards.grafana.integreatly.org"), monitoring,
                                      custom.list_namespaced_custom_object, "grafana.integreatly.org", "v1beta1",
                                      monitoring, "grafanadashboards", missing=gone)
    if gone:
        found.grafana_dashboards = listed(("list", "grafanadashboards.integreatly.org"), monitoring,
                                          custom.list_namespaced_custom_object, "integreatly.org", "v1alpha1",
                                          monitoring, "grafanadashboards", missing=gone)
        if len(gone) == 2:
            info.notes.append(f"{gone[0]} not installed in the cluster (no such API): nothing to check")
    found.scaled_objects = listed(("list", "scaledobjects.keda.sh"), info.namespace,
                                  custom.list_namespaced_custom_object, "keda.sh", "v1alpha1", info.namespace,
                                  "scaledobjects")
    found.deployments = listed(("list", "deployments.apps"), info.namespace, apps.list_namespaced_deployment,
                               info.namespace)
    return found
