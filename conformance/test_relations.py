"""Every target with an optional feature: its counters keep the relations vLLM keeps (relations.toml).

Speculative decoding accepts at most what it drafted, and never more at a later draft position than at an
earlier one; LoRA's adapter list (the newest vllm:lora_requests_info series) is refreshed while requests run.
"""

from __future__ import annotations

import pytest

from pytest_vllm_metrics.evaluate import across
from pytest_vllm_metrics.relations import judge, relations


@pytest.mark.parametrize("relation", relations(), ids=lambda relation: relation.id)
def test_relation(relation, vllm_catalog, vllm_observations, vllm_policy, vllm_enforce):
    entry = vllm_catalog.get(relation.entry)
    vllm_enforce(across(vllm_observations.values(), lambda obs: judge(relation, vllm_catalog, obs, vllm_policy),
                        entry.level))
