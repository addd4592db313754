"""The model-server protocol: what an inference gateway's endpoint picker reads from every server, whatever its engine
(vLLM, SGLang, trtllm-serve, Triton TensorRT-LLM; a pod's llm-d.ai/engine-type label, --vllm-engine for URLs).

The protocol (Gateway API Inference Extension, 003-model-server-protocol) requires three gauges: queued requests,
running requests and KV-cache utilization (a fraction); block size and number of blocks are optional. Each engine
names them its own way (conformance/engines.toml). The picker reads only typed gauges, and the first series a selector
matches.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pytest_vllm_metrics import model_server
from pytest_vllm_metrics.engines import REQUIRED, Engine, Metric
from pytest_vllm_metrics.evaluate import across
from pytest_vllm_metrics.observe import Observation
from pytest_vllm_metrics.outcome import Level, Verdict
from pytest_vllm_metrics.settings import Policy

Observations = dict[str, Observation]
Enforce = Callable[[Verdict], None]
EVERY_ENGINE = tuple(Engine)


@pytest.mark.must
@pytest.mark.parametrize("metric", REQUIRED, ids=[m.value for m in REQUIRED])
def test_protocol_metric(metric: Metric, vllm_observations: Observations, vllm_level: Level,
                         vllm_enforce: Enforce) -> None:
    vllm_enforce(across(vllm_observations.values(), lambda obs: model_server.required_metric(obs, metric, vllm_level),
                        vllm_level, EVERY_ENGINE))


@pytest.mark.should
def test_protocol_series_the_picker_reads(vllm_observations: Observations, vllm_level: Level,
                                          vllm_enforce: Enforce) -> None:
    vllm_enforce(across(vllm_observations.values(), lambda obs: model_server.series_read(obs, vllm_level),
                        vllm_level, EVERY_ENGINE))


@pytest.mark.must
def test_protocol_gauges_rise_under_load(vllm_observations: Observations, vllm_policy: Policy, vllm_level: Level,
                                         vllm_enforce: Enforce) -> None:
    vllm_enforce(across(vllm_observations.values(), lambda obs: model_server.under_load(obs, vllm_policy, vllm_level),
                        vllm_level, EVERY_ENGINE))


@pytest.mark.must
def test_protocol_gauges_return_to_idle(vllm_observations: Observations, vllm_policy: Policy, vllm_level: Level,
                                        vllm_enforce: Enforce) -> None:
    vllm_enforce(across(vllm_observations.values(), lambda obs: model_server.back_to_idle(obs, vllm_policy, vllm_level),
                        vllm_level, EVERY_ENGINE))


@pytest.mark.may
def test_protocol_kv_cache_shape(vllm_observations: Observations, vllm_level: Level, vllm_enforce: Enforce) -> None:
    vllm_enforce(across(vllm_observations.values(), lambda obs: model_server.kv_cache_shape(obs, vllm_level),
                        vllm_level, EVERY_ENGINE))


@pytest.mark.should
def test_protocol_model_named(vllm_observations: Observations, vllm_level: Level, vllm_enforce: Enforce) -> None:
    vllm_enforce(across(vllm_observations.values(), lambda obs: model_server.model_named(obs, vllm_level),
                        vllm_level, EVERY_ENGINE))
