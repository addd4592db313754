"""Per target and per catalog family: present before traffic, and moved by the workload."""

from __future__ import annotations

from pytest_vllm_metrics.evaluate import movement, presence


def test_present(vllm_entry, vllm_observation, vllm_settings, vllm_enforce):
    vllm_enforce(presence(vllm_entry, vllm_observation, vllm_settings))


def test_moves(vllm_moving_entry, vllm_observation, vllm_settings, vllm_enforce):
    vllm_enforce(movement(vllm_moving_entry, vllm_observation, vllm_settings))
