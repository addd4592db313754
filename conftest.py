"""The repository's own pytest configuration: shared fixtures for the project's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pytest_vllm_metrics.sim import SimHost


@pytest.fixture
def sim_host() -> Iterator[SimHost]:
    """Simulated vLLM servers on loopback that a test configures itself (faults, API keys)."""
    with SimHost() as host:
        yield host
