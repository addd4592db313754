"""Per consumer of the metrics besides Grafana panels (--prometheus-rules, and with --vllm-namespace the cluster's
PrometheusRules, KEDA scalers, prometheus-adapter rules and the endpoint picker's flags): will it get data, and if
not, exactly why. Judged as a panel is, with the same vocabulary."""

from __future__ import annotations

from collections.abc import Callable

from pytest_vllm_metrics.outcome import Verdict
from pytest_vllm_metrics.readers import Reader


def test_consumer(vllm_consumer: Reader, vllm_judge_panel: Callable[[Reader], Verdict],
                  vllm_enforce: Callable[[Verdict], None]) -> None:
    vllm_enforce(vllm_judge_panel(vllm_consumer))
