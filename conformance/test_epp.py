"""The endpoint picker's (EPP's) own view of the pods against theirs (--vllm-epp-url): per-pod queue, ready pods
and the pool's average KV-cache utilization, compared at a quiet moment; and its own count of the pods it could
not read, flat over the run."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from pytest_vllm_metrics.epp import Compared, average_kv_cache, compare, epp_target, queue_per_pod, ready_pods
from pytest_vllm_metrics.epp_errors import cover_span, flat_errors
from pytest_vllm_metrics.outcome import Verdict
from pytest_vllm_metrics.settings import Settings
from pytest_vllm_metrics.targets import Target


@pytest.fixture(scope="module")
def epp_view(vllm_settings: Settings, vllm_targets: list[Target]) -> Compared:
    epp = epp_target(vllm_settings)
    if epp is None:
        pytest.skip("no endpoint picker: pass --vllm-epp-url=http://<EPP service>:9090 to compare its view of the "
                    "pods with theirs")
    return asyncio.run(compare(epp, vllm_targets, vllm_settings))


@pytest.mark.must
def test_epp_queue_per_pod(epp_view: Compared, vllm_enforce: Callable[[Verdict], None]) -> None:
    vllm_enforce(queue_per_pod(epp_view))


@pytest.mark.must
def test_epp_ready_pods(epp_view: Compared, vllm_enforce: Callable[[Verdict], None]) -> None:
    vllm_enforce(ready_pods(epp_view))


@pytest.mark.must
def test_epp_kv_cache_average(epp_view: Compared, vllm_enforce: Callable[[Verdict], None]) -> None:
    vllm_enforce(average_kv_cache(epp_view))


@pytest.mark.must
def test_epp_reads_every_pod(epp_view: Compared, vllm_settings: Settings,
                             vllm_enforce: Callable[[Verdict], None]) -> None:
    epp = epp_target(vllm_settings)
    assert epp is not None  # epp_view skips without --vllm-epp-url
    asyncio.run(cover_span(epp_view, epp, vllm_settings))
    vllm_enforce(flat_errors(epp_view))
