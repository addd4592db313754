"""Every target: reachable, reports its version, describes its KV cache, and served the workload.

Like every bundled check, each test judges all targets at once and names the ones that fail.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pytest_vllm_metrics.engines import Engine
from pytest_vllm_metrics.evaluate import across, cache_config, reachable, served_workload, version
from pytest_vllm_metrics.observe import Observation
from pytest_vllm_metrics.outcome import Level, Verdict

Observations = dict[str, Observation]
Enforce = Callable[[Verdict], None]


@pytest.mark.must
def test_reachable(vllm_observations: Observations, vllm_level: Level, vllm_enforce: Enforce) -> None:
    vllm_enforce(across(vllm_observations.values(), reachable, vllm_level, engines=tuple(Engine)))


@pytest.mark.should
def test_version(vllm_observations: Observations, vllm_level: Level, vllm_enforce: Enforce) -> None:
    vllm_enforce(across(vllm_observations.values(), version, vllm_level))


@pytest.mark.must
def test_cache_config_info(vllm_observations: Observations, vllm_level: Level, vllm_enforce: Enforce) -> None:
    vllm_enforce(across(vllm_observations.values(), cache_config, vllm_level))


@pytest.mark.must
def test_workload_served(vllm_observations: Observations, vllm_level: Level, vllm_enforce: Enforce) -> None:
    vllm_enforce(across(vllm_observations.values(), served_workload, vllm_level, engines=tuple(Engine)))
