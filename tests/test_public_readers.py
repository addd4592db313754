"""Public dashboards and rule files the suite was not built from (tests/data/public, each file's source in its
SOURCES.md), judged over one mixed fleet twice: behind a real Prometheus that scrapes it with the labels a
Prometheus Operator scrape adds, and without Prometheus (Kubernetes discovery of the same pods).

- Behind Prometheus every verdict agrees with what Prometheus itself returns for the reader's queries: a reader
  judged "no data" returns nothing there, one judged "ok" returns data from each of its queries.
- Without Prometheus no reader is "ok" that Prometheus finds empty, and none is "no data" (or "label mismatch")
  that Prometheus finds data for: what the direct scrape cannot decide is inconclusive.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import NS, write_kubeconfig
from pytest_vllm_metrics.sim.kubeapi import KubeDouble

PUBLIC = Path(__file__).parent / "data" / "public"
EMPTY = ("no data", "label mismatch")
NOT_JUDGED = ("not a vLLM metric", "feature not enabled", "not checkable")


def _rows(pytester: pytest.Pytester, report: str) -> dict[str, dict[str, Any]]:
    rows = json.loads((pytester.path / report).read_text())["tests"]
    return {f"{row['target']}::{row['check']}": row for row in rows
            if "test_panel[" in row["id"] or "test_consumer[" in row["id"]}


def _returns(prom: str, exprs: list[str]) -> list[bool]:
    """Whether Prometheus answers each expression with data (an instant query, as the reader runs it now)."""
    out = []
    with httpx.Client(base_url=prom, timeout=10) as client:
        for expr in exprs:
            data = client.get("/api/v1/query", params={"query": expr}).json()["data"]
            out.append(data["resultType"] == "scalar" or bool(data["result"]))
    return out


@pytest.fixture
def judged(pytester: pytest.Pytester, double: KubeDouble, cluster: Any,
           prometheus_server: Callable[..., str]) -> tuple[str, dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """The public readers judged over the double's two pods (vLLM 0.32 on amd64, vLLM 0.11.2 on arm64), with and
    without the Prometheus that scrapes those very pods."""
    backends = {pod.name: pod.backend for pod in cluster.namespaces[NS]
                if pod.backend and pod.name.startswith("decode")}
    prom = prometheus_server(backends, namespace=NS)
    kubeconfig = write_kubeconfig(pytester.path / "kubeconfig", double, "admin")
    common = ("-p", "no:cacheprovider", f"--kubeconfig={kubeconfig}", f"--vllm-namespace={NS}",
              f"--grafana-dashboard={PUBLIC / 'dashboards'}", f"--prometheus-rules={PUBLIC / 'rules'}",
              "-k", "test_panel or test_consumer")
    pytester.runpytest(*common, "--vllm-report=direct.json")
    pytester.runpytest(*common, f"--prometheus-url={prom}", "--vllm-report=prometheus.json")
    return prom, _rows(pytester, "prometheus.json"), _rows(pytester, "direct.json")


def test_public_readers_are_judged_right_with_and_without_prometheus(
        judged: tuple[str, dict[str, dict[str, Any]], dict[str, dict[str, Any]]]) -> None:
    prom, behind, direct = judged
    assert len(behind) == len(direct) > 80  # every panel and rule of the corpus that reads vLLM's metrics
    wrong = []
    for reader, row in behind.items():
        kind, outcome = row["evidence"].get("panel_verdict", ""), row["outcome"]
        if kind in NOT_JUDGED:
            continue
        returns = _returns(prom, row["evidence"]["exprs"])
        quiet_alert = "not firing now" in row["reason"] or "it fires when" in row["reason"]
        if kind in EMPTY and any(returns):
            wrong.append(f"{reader}: {kind} behind Prometheus, which returns data ({row['reason']})")
        elif kind == "ok" and not all(returns) and not quiet_alert:
            wrong.append(f"{reader}: ok behind Prometheus, which returns nothing for a query")
        elif kind == "partial" and (all(returns) or not any(returns)):
            wrong.append(f"{reader}: partial, while Prometheus answers {returns}")
        elif outcome == "inconclusive" and "fewer than two samples" not in row["reason"]:
            wrong.append(f"{reader}: inconclusive behind Prometheus ({row['reason']})")
        seen = direct[reader]["evidence"].get("panel_verdict", "")
        if seen == "ok" and kind in EMPTY:
            wrong.append(f"{reader}: a false ok without Prometheus (behind it: {kind}: {row['reason']})")
        if seen in EMPTY and kind not in EMPTY:
            wrong.append(f"{reader}: a false {seen} without Prometheus ({direct[reader]['reason']}), behind it {kind}")
    assert not wrong, "\n".join(wrong)


def test_the_corpus_exercises_every_kind_of_finding(
        judged: tuple[str, dict[str, dict[str, Any]], dict[str, dict[str, Any]]]) -> None:
    _, behind, direct = judged
    kinds = {row["evidence"].get("panel_verdict") for row in behind.values()}
    assert {"ok", "no data", "part of the fleet", "not a vLLM metric"} <= kinds, kinds
    assert {"inconclusive", "ok", "no data"} <= {row["evidence"].get("panel_verdict") for row in direct.values()}
    # the production-stack router's own gauges, and llm-d's alert on prefill pods of a fleet that has none
    router = behind["production-stack-vllm-dashboard::panel: Current QPS"]
    assert "production-stack router" in router["reason"]
    prefill = direct["llm-d-alerting-rules::alert: LLMDPrefillQueueSaturation"]
    assert prefill["evidence"]["panel_verdict"] == "label mismatch" and 'pod=~".*prefill.*"' in prefill["reason"]
