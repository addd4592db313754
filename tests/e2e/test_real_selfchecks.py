"""--vllm-exclusive, gauges back to zero and label hygiene against the real vLLM 0.32 (CPU build).

The servers are the e2e tier's two (prefix caching on; off with an API key); nothing else sends them traffic
while this module runs, so the run is exclusive in truth and every exact check must hold as vLLM counts."""

from __future__ import annotations

import json

import pytest

from conftest import said, verdicts
from pytest_vllm_metrics.accounting import exact_rules

from .conftest import API_KEY, RealServer

pytestmark = pytest.mark.e2e
ACCOUNTING = {f"test_counts_exactly[{rule.name}]" for rule in exact_rules()} | {
    "test_finish_reasons_exactly", "test_gauges_return_to_zero_after_aborts"}


def test_exact_accounting_gauges_and_hygiene_hold_on_real_vllm(
    pytester: pytest.Pytester, real_vllm: tuple[RealServer, RealServer]
) -> None:
    on, off = real_vllm
    result = pytester.runpytest("-p", "no:cacheprovider", "--vllm-timeout=30", "--vllm-exclusive",
                                f"--vllm-url={on.url}", f"--vllm-url={off.url}", f"--vllm-api-key={API_KEY}",
                                "--vllm-report=report.json", "-k", "accounting or hygiene or workload_served")
    output = result.stdout.str()
    assert API_KEY not in output
    outcomes = verdicts(pytester)
    for server in (on, off):
        name = server.url.removeprefix("http://")
        mine = {test: outcome for (test, target), outcome in outcomes.items() if target == name}
        assert mine["test_workload_served"] == "passed", output
        # the abort probe may find the tiny model done before its streams are closed: then it says so (below)
        wrong = {test: outcome for test, outcome in mine.items() if test in ACCOUNTING and outcome != "passed"
                 and not (test == "test_gauges_return_to_zero_after_aborts" and outcome == "inconclusive")}
        assert not wrong, output
        assert set(mine) >= ACCOUNTING
        # hygiene: one series per engine; the 37-label info metric passes with the store warning
        assert mine["test_one_series_per_engine_and_model"] == "passed"
        assert mine["test_labels_per_series_fit_the_stores"] == "passed"
    assert said(result, "StoreWarning: * vllm:cache_config_info (37 labels) with the 7 labels a Prometheus Operator "
                        "ServiceMonitor scrape adds * reach 44 labels per series")
    report = json.loads((pytester.path / "report.json").read_text())
    rows = {row["check"]: row for row in report["tests"]}
    evidence = rows["gauges_return_to_zero_after_aborts"]["evidence"]
    assert set(evidence) == {on.url.removeprefix("http://"), off.url.removeprefix("http://")}
    for name, aborts in evidence.items():
        print(f"{name}: abort probe {aborts}")
        if not any(aborts["during"].values()):
            # on an idle machine the tiny model generates the probe's tokens in full before the suite closes the
            # streams: nothing is aborted on the server, and the check is inconclusive, saying so (not a pass)
            assert outcomes["test_gauges_return_to_zero_after_aborts", name] == "inconclusive"
            assert said(result, f"{name}: the server no longer counted the abort probe's 3 streaming requests")
            continue
        # as vLLM's test_abort_metrics_reset: running and holding KV blocks while streaming, 0 after the aborts
        assert outcomes["test_gauges_return_to_zero_after_aborts", name] == "passed"
        assert aborts["aborted"] == 3 and aborts["during"]["vllm:num_requests_running"] >= 1, aborts
        assert aborts["during"]["vllm:kv_cache_usage_perc"] > 0 and aborts["settled_after"] is not None, aborts
    for check in ("counts_exactly[vllm:inter_token_latency_seconds]", "counts_exactly[vllm:prompt_tokens_total]",
                  "counts_exactly[vllm:request_success_total]", "finish_reasons_exactly"):
        print(f"{check}: {rows[check]['evidence']}")
    assert all(implementation["measured"]["looksExclusive"] for implementation in report["implementations"])


def test_without_the_switch_a_quiet_real_server_is_noted_as_exclusive(
    pytester: pytest.Pytester, real_vllm: tuple[RealServer, RealServer]
) -> None:
    on, _ = real_vllm
    result = pytester.runpytest("-p", "no:cacheprovider", "--vllm-timeout=30", f"--vllm-url={on.url}",
                                "--vllm-report=report.json", "-k", "workload_served")
    assert result.ret == 0, result.stdout.str()
    report = json.loads((pytester.path / "report.json").read_text())
    assert report["implementations"][0]["measured"]["looksExclusive"] is True
