"""Per target: reachable, reports its version, describes its KV cache, and served the workload."""

from __future__ import annotations

import pytest

from pytest_vllm_metrics.evaluate import cache_config, reachable, served_workload, version


@pytest.mark.must
def test_reachable(vllm_observation, vllm_enforce):
    vllm_enforce(reachable(vllm_observation))


@pytest.mark.should
def test_version(vllm_observation, vllm_enforce):
    vllm_enforce(version(vllm_observation))


@pytest.mark.must
def test_cache_config_info(vllm_observation, vllm_enforce):
    vllm_enforce(cache_config(vllm_observation))


@pytest.mark.must
def test_workload_served(vllm_observation, vllm_enforce):
    vllm_enforce(served_workload(vllm_observation))
