"""Per Grafana panel (--grafana-dashboard): will it show data, and if not, exactly why."""

from __future__ import annotations

from collections.abc import Callable

from pytest_vllm_metrics.dashboards import Panel
from pytest_vllm_metrics.outcome import Verdict


def test_panel(vllm_panel: Panel, vllm_judge_panel: Callable[[Panel], Verdict],
               vllm_enforce: Callable[[Verdict], None]) -> None:
    vllm_enforce(vllm_judge_panel(vllm_panel))
