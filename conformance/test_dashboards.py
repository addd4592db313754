"""Per Grafana panel (--grafana-dashboard): will it show data, and if not, exactly why."""

from __future__ import annotations

from collections.abc import Callable

from pytest_vllm_metrics.outcome import Verdict
from pytest_vllm_metrics.readers import Reader


def test_panel(vllm_panel: Reader, vllm_judge_panel: Callable[[Reader], Verdict],
               vllm_enforce: Callable[[Verdict], None]) -> None:
    vllm_enforce(vllm_judge_panel(vllm_panel))
