"""Per consumer of the metrics besides Grafana panels (--prometheus-rules, and with --vllm-namespace the cluster's
PrometheusRules, KEDA scalers, prometheus-adapter rules and the endpoint picker's flags): will it get data, and if
not, exactly why. Judged as a panel is, with the same vocabulary."""

from __future__ import annotations

from pytest_vllm_metrics.dashboards import evaluate_panel


def test_consumer(vllm_consumer, vllm_observations, vllm_catalog, vllm_settings, vllm_enforce, request):
    prom, wait = None, None
    if vllm_settings.prometheus_url:
        state = request.getfixturevalue("vllm_prometheus")
        if not state.error:
            prom, wait = state.prom, state.panel_wait()
    observations = list(vllm_observations.values())
    vllm_enforce(evaluate_panel(vllm_consumer, observations, vllm_catalog, vllm_settings.policy, prom, wait))
