"""Every target: the prefix cache serves a shared-prefix workload, and every counter of it agrees.

Prefix caching is expected by default (vLLM's default; the llm-d hit-rate panels depend on it). Where vLLM
documents that it disables prefix caching itself (ARM/POWER/s390x/RISC-V CPUs in some versions, see
limitations.toml) and the server reports it off, these checks XFAIL with that documented reason.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from pytest_vllm_metrics.catalog import Catalog
from pytest_vllm_metrics.evaluate import across, prefix_hits_per_repeat, prefix_sources_agree
from pytest_vllm_metrics.observe import Observation
from pytest_vllm_metrics.outcome import Level, Verdict
from pytest_vllm_metrics.settings import Policy

pytestmark = pytest.mark.prefix_cache


@pytest.mark.must
def test_every_repeated_prefix_hits_a_block(vllm_catalog: Catalog, vllm_observations: dict[str, Observation],
                                            vllm_policy: Policy, vllm_level: Level,
                                            vllm_enforce: Callable[[Verdict], None]) -> None:
    entry = vllm_catalog.get("vllm:prefix_cache_hits_total")
    assert entry is not None  # bundled: a user's catalog can replace the entry, never remove it
    vllm_enforce(across(vllm_observations.values(), lambda obs: prefix_hits_per_repeat(entry, obs, vllm_policy),
                        vllm_level))


@pytest.mark.should
@pytest.mark.parametrize(
    ("name", "labels"),
    [
        ("vllm:prompt_tokens_by_source_total", {"source": "local_cache_hit"}),
        ("vllm:prompt_tokens_cached_total", {}),
        ("vllm:prompt_tokens_cached_by_source_total", {"source": "device"}),
    ],
    ids=["by_source-local_cache_hit", "cached", "cached_by_source-device"],
)
def test_cached_token_counters_agree_with_hits(
    name: str, labels: dict[str, str], vllm_catalog: Catalog, vllm_observations: dict[str, Observation],
    vllm_policy: Policy, vllm_level: Level, vllm_enforce: Callable[[Verdict], None]
) -> None:
    # These counters re-count local hits, so they belong to the prefix-caching feature here; they exist
    # only in the versions the catalog gives (0.16+, 0.32+).
    listed = vllm_catalog.get(name)
    assert listed is not None  # bundled: a user's catalog can replace the entry, never remove it
    entry = dataclasses.replace(listed, feature="prefix_caching")
    vllm_enforce(across(vllm_observations.values(),
                        lambda obs: prefix_sources_agree(entry, obs, vllm_policy, labels), vllm_level))
