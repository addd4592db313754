"""Per target, through the Prometheus HTTP API (--prometheus-url): scraped, complete, and in agreement."""

from __future__ import annotations

import pytest

from pytest_vllm_metrics import prometheus
from pytest_vllm_metrics.evaluate import Verdict

pytestmark = pytest.mark.must


def _gate(state, obs, *stages):
    if state.error:
        return Verdict("failed", state.error)
    failure = obs.failure(*stages)
    return Verdict("failed", failure) if failure else None


def _asking(check, *args):
    try:
        return check(*args)
    except prometheus.PrometheusError as exc:  # Prometheus failing mid-run: a verdict, not a traceback
        return Verdict("failed", str(exc))


def test_scraped_by_prometheus(vllm_prometheus, vllm_observation, vllm_enforce):
    gated = _gate(vllm_prometheus, vllm_observation)
    vllm_enforce(gated or _asking(prometheus.scraped, vllm_prometheus.prom, vllm_observation))


def test_must_families_in_prometheus(vllm_prometheus, vllm_observation, vllm_catalog, vllm_enforce):
    gated = _gate(vllm_prometheus, vllm_observation, "before")
    vllm_enforce(gated or _asking(prometheus.families_there, vllm_prometheus.prom, vllm_observation, vllm_catalog))


def test_values_agree_with_direct_scrape(vllm_prometheus, vllm_observation, vllm_enforce):
    gated = _gate(vllm_prometheus, vllm_observation, "before", "after")
    held = vllm_prometheus.held.get(vllm_observation.target.name)
    vllm_enforce(gated or prometheus.values_agree(vllm_prometheus.prom, vllm_observation, held))
