"""Every target: the prefix cache serves a shared-prefix workload, and every counter of it agrees.

Prefix caching is expected by default (vLLM's default; the llm-d hit-rate panels depend on it). Where vLLM
documents that it disables prefix caching itself (ARM/POWER/s390x/RISC-V CPUs in some versions, see
limitations.toml) and the server reports it off, these checks XFAIL with that documented reason.
"""

from __future__ import annotations

import dataclasses

import pytest

from pytest_vllm_metrics.evaluate import across, prefix_hits_per_repeat, prefix_sources_agree

pytestmark = pytest.mark.prefix_cache


@pytest.mark.must
def test_every_repeated_prefix_hits_a_block(vllm_catalog, vllm_observations, vllm_policy, vllm_enforce):
    entry = vllm_catalog.get("vllm:prefix_cache_hits_total")
    vllm_enforce(across(vllm_observations.values(), lambda obs: prefix_hits_per_repeat(entry, obs, vllm_policy),
                        entry.level))


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
    name, labels, vllm_catalog, vllm_observations, vllm_policy, vllm_enforce
):
    # These counters re-count local hits, so they belong to the prefix-caching feature here; they exist
    # only in the versions the catalog gives (0.16+, 0.32+).
    entry = dataclasses.replace(vllm_catalog.get(name), feature="prefix_caching")
    vllm_enforce(across(vllm_observations.values(),
                        lambda obs: prefix_sources_agree(entry, obs, vllm_policy, labels), entry.level))
