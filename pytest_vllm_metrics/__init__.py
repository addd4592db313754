"""pytest-vllm-metrics: a pytest plugin and conformance suite for the Prometheus metrics of vLLM servers."""

from __future__ import annotations

from .snapshot import Change, Delta, Snapshot

__version__ = "0.1.0"

__all__ = ["Change", "Delta", "Snapshot", "__version__"]
