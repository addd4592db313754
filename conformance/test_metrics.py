"""Per catalog family, over every target: present before traffic, and moved by the workload.

One test per family, not one per family and target: each test judges every target and its message names
the ones that fail (the reports list each target's own verdict). A fleet of 100 pods would otherwise make
8,000 tests here, and pytest's own cost per test would outweigh the whole observation of the fleet.
"""

from __future__ import annotations

from pytest_vllm_metrics.evaluate import across, movement, presence


def test_present(vllm_entry, vllm_observations, vllm_policy, vllm_enforce):
    vllm_enforce(across(vllm_observations.values(), lambda obs: presence(vllm_entry, obs, vllm_policy),
                        vllm_entry.level))


def test_moves(vllm_moving_entry, vllm_observations, vllm_policy, vllm_enforce):
    vllm_enforce(across(vllm_observations.values(), lambda obs: movement(vllm_moving_entry, obs, vllm_policy),
                        vllm_moving_entry.level))
