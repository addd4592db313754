"""Per catalog family, over every target: present before traffic, and moved by the workload.

One test per family, not one per family and target: each test judges every target and its message names
the ones that fail (the reports list each target's own verdict). A fleet of 100 pods would otherwise make
8,000 tests here, and pytest's own cost per test would outweigh the whole observation of the fleet.
"""

from __future__ import annotations

from collections.abc import Callable

from pytest_vllm_metrics.catalog import Entry
from pytest_vllm_metrics.evaluate import across, movement, presence
from pytest_vllm_metrics.observe import Observation
from pytest_vllm_metrics.outcome import Level, Verdict
from pytest_vllm_metrics.settings import Policy


def test_present(vllm_entry: Entry, vllm_observations: dict[str, Observation], vllm_policy: Policy,
                 vllm_level: Level, vllm_enforce: Callable[[Verdict], None]) -> None:
    vllm_enforce(across(vllm_observations.values(), lambda obs: presence(vllm_entry, obs, vllm_policy), vllm_level))


def test_moves(vllm_moving_entry: Entry, vllm_observations: dict[str, Observation], vllm_policy: Policy,
               vllm_level: Level, vllm_enforce: Callable[[Verdict], None]) -> None:
    vllm_enforce(across(vllm_observations.values(), lambda obs: movement(vllm_moving_entry, obs, vllm_policy),
                        vllm_level))
