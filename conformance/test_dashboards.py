"""Per Grafana panel (--grafana-dashboard): will it show data, and if not, exactly why."""

from __future__ import annotations

from pytest_vllm_metrics.dashboards import evaluate_panel


def test_panel(vllm_panel, vllm_observations, vllm_catalog, vllm_settings, vllm_enforce, request):
    prom, wait = None, None
    if vllm_settings.prometheus_url:
        state = request.getfixturevalue("vllm_prometheus")
        if not state.error:
            prom, wait = state.prom, state.panel_wait()
    observations = list(vllm_observations.values())
    vllm_enforce(evaluate_panel(vllm_panel, observations, vllm_catalog, vllm_settings.policy, prom, wait))
