"""Multi-node and data-parallel servers: every data-parallel engine a server runs is on its /metrics page.

vLLM labels each engine's series with its rank (`engine`). A data-parallel API server manages the engines its
command line gives (--data-parallel-size-local of a hybrid- or externally-balanced server from its start rank,
every rank on the head of an internally balanced one); an engine missing from the page is one whose requests,
tokens, queue and KV cache nothing reading the pod counts. Pods that run engines without an API server (headless
workers, Ray workers) are not targets: the reports list them with their leader.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pytest_vllm_metrics.evaluate import across
from pytest_vllm_metrics.multinode import data_parallel_engines
from pytest_vllm_metrics.observe import Observation
from pytest_vllm_metrics.outcome import Level, Verdict


@pytest.mark.must
def test_data_parallel_engines(vllm_observations: dict[str, Observation], vllm_level: Level,
                               vllm_enforce: Callable[[Verdict], None]) -> None:
    vllm_enforce(across(vllm_observations.values(), data_parallel_engines, vllm_level))
