"""Every target with an optional feature: its counters keep the relations vLLM keeps (relations.toml).

Speculative decoding accepts at most what it drafted, and never more at a later draft position than at an
earlier one; LoRA's adapter list (the newest vllm:lora_requests_info series) is refreshed while requests run.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pytest_vllm_metrics.catalog import Catalog
from pytest_vllm_metrics.evaluate import across
from pytest_vllm_metrics.gate import mark
from pytest_vllm_metrics.observe import Observation
from pytest_vllm_metrics.outcome import Level, Verdict
from pytest_vllm_metrics.relations import judge, relations
from pytest_vllm_metrics.run import RUN_KEY
from pytest_vllm_metrics.schemas import Relation
from pytest_vllm_metrics.settings import Policy


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # each relation takes its level from its catalog entry (the run's catalog: a user's file may replace the entry)
    if "relation" not in metafunc.fixturenames:
        return
    catalog = metafunc.config.stash[RUN_KEY].catalog
    params = []
    for relation in relations():
        entry = catalog.get(relation.entry)
        assert entry is not None, f"relations.toml names {relation.entry}, which the catalog does not have"
        params.append(pytest.param(relation, id=relation.id, marks=mark(entry.level)))
    metafunc.parametrize("relation", params)


def test_relation(relation: Relation, vllm_catalog: Catalog, vllm_observations: dict[str, Observation],
                  vllm_policy: Policy, vllm_level: Level, vllm_enforce: Callable[[Verdict], None]) -> None:
    vllm_enforce(across(vllm_observations.values(), lambda obs: judge(relation, vllm_catalog, obs, vllm_policy),
                        vllm_level))
