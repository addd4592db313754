"""Every target with an optional feature: its counters keep the relations vLLM keeps (relations.toml).

Speculative decoding accepts at most what it drafted, and never more at a later draft position than at an
earlier one; LoRA's adapter list (the newest vllm:lora_requests_info series) is refreshed while requests run.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pytest_vllm_metrics.catalog import Catalog
from pytest_vllm_metrics.evaluate import across
from pytest_vllm_metrics.observe import Observation
from pytest_vllm_metrics.outcome import Verdict
from pytest_vllm_metrics.relations import judge, relations
from pytest_vllm_metrics.schemas import Relation
from pytest_vllm_metrics.settings import Policy


@pytest.mark.parametrize("relation", relations(), ids=lambda relation: relation.id)
def test_relation(relation: Relation, vllm_catalog: Catalog, vllm_observations: dict[str, Observation],
                  vllm_policy: Policy, vllm_enforce: Callable[[Verdict], None]) -> None:
    entry = vllm_catalog.get(relation.entry)
    assert entry is not None, f"relations.toml names {relation.entry}, which the catalog does not have"
    vllm_enforce(across(vllm_observations.values(), lambda obs: judge(relation, vllm_catalog, obs, vllm_policy),
                        entry.level))
