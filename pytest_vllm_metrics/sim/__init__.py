"""The bundled vLLM simulator: an OpenAI-compatible server whose /metrics is a real vLLM's.

    python -m pytest_vllm_metrics.sim --port 8000 --profile arm64-cpu

In tests, `SimHost` runs several on loopback in one background thread.
"""

from __future__ import annotations

from .profiles import Profile, get_profile, profile_names
from .server import RunningSim, SimHost, build_app

__all__ = ["Profile", "RunningSim", "SimHost", "build_app", "get_profile", "profile_names"]
