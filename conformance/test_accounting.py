"""With --vllm-exclusive (no other traffic reaches the targets): exact accounting, and gauges back to zero.

The checks vLLM makes of itself after a known workload: each counter, histogram count and sum moves by exactly
what the answers' usage says (n > 1 and streamed requests included), finished requests by reason, and the
running/waiting/KV-cache gauges read 0 again after clients abort streaming requests. Without the switch this file
is not collected (other clients' requests would move the counters too); the at-least rule of test_metrics.py
applies.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pytest_vllm_metrics.accounting import Exact, exact, exact_rules, finish_reasons, gauges_return_to_zero
from pytest_vllm_metrics.catalog import Catalog
from pytest_vllm_metrics.evaluate import across
from pytest_vllm_metrics.observe import Observation
from pytest_vllm_metrics.outcome import Level, Verdict
from pytest_vllm_metrics.settings import Policy


@pytest.mark.must
@pytest.mark.parametrize("rule", exact_rules(), ids=lambda rule: rule.id)
def test_counts_exactly(rule: Exact, vllm_observations: dict[str, Observation], vllm_policy: Policy,
                        vllm_catalog: Catalog, vllm_level: Level, vllm_enforce: Callable[[Verdict], None]) -> None:
    vllm_enforce(across(vllm_observations.values(), lambda obs: exact(rule, obs, vllm_policy, vllm_catalog, vllm_level),
                        vllm_level))


@pytest.mark.must
def test_finish_reasons_exactly(vllm_observations: dict[str, Observation], vllm_policy: Policy, vllm_level: Level,
                                vllm_enforce: Callable[[Verdict], None]) -> None:
    vllm_enforce(across(vllm_observations.values(), lambda obs: finish_reasons(obs, vllm_policy, vllm_level),
                        vllm_level))


@pytest.mark.must
def test_gauges_return_to_zero_after_aborts(vllm_observations: dict[str, Observation], vllm_policy: Policy,
                                            vllm_level: Level, vllm_enforce: Callable[[Verdict], None]) -> None:
    vllm_enforce(across(vllm_observations.values(), lambda obs: gauges_return_to_zero(obs, vllm_policy, vllm_level),
                        vllm_level))
