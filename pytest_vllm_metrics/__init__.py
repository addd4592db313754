"""pytest-vllm-metrics: a pytest plugin and conformance suite for the Prometheus metrics of vLLM servers.

PYTEST_DONT_REWRITE: the plugin's own asserts are internal invariants, not test assertions; pytest need not
rewrite them (and cannot, where the package is imported before a session starts, as under pytester)."""

from __future__ import annotations

from .snapshot import Change, Delta, Snapshot
from .versions import __version__

__all__ = ["Change", "Delta", "Snapshot", "__version__"]
