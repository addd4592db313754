"""Simulator profiles (profiles.toml): an architecture, a vLLM version and a few switches."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from .. import data


@dataclass(frozen=True)
class Profile:
    name: str
    arch: str
    version: str
    enable_prefix_caching: bool
    description: str = ""
    model: str = "tiny"
    block_size: int = 128
    max_model_len: int = 1024
    num_gpu_blocks: int = 4096
    api_key: str | None = field(default=None, repr=False)
    # LoRA (vllm serve --enable-lora --lora-modules NAME=PATH ... --max-loras N): the adapters served
    lora_modules: tuple[str, ...] = ()
    max_loras: int = 1
    # speculative decoding (--speculative-config): "ngram", drafting num_speculative_tokens per step from the
    # earliest earlier occurrence of the request's last prompt_lookup_min..prompt_lookup_max tokens
    speculative_method: str | None = None
    num_speculative_tokens: int = 0
    prompt_lookup_min: int = 1
    prompt_lookup_max: int = 3
    # Data parallelism: the engines this server's API server manages, each with its own `engine` label (its rank):
    # --data-parallel-size-local of a server with --data-parallel-hybrid-lb, from --data-parallel-start-rank. The
    # workload's requests are all served by the first one.
    data_parallel_size_local: int = 1
    data_parallel_start_rank: int = 0
    # Faults, for tests (see FAULTS in server.py): how /metrics or /v1 misbehave.
    fault: str | None = None
    # the server stops answering (closes every connection) after this many scrapes
    stop_answering_after_scrapes: int | None = None
    # the server restarts (counters reset, new _created) after this many completions
    restart_after_requests: int | None = None
    # /metrics answers "text" (0.0.4), or "openmetrics" (1.0) whatever the Accept header asks, as some vLLM
    # frontends and proxies do
    exposition: str = "text"
    # the model server simulated: vLLM, or another engine of the model-server protocol (conformance/engines.toml)
    engine: str = "vllm"

    def replace(self, **changes: Any) -> Profile:
        return dataclasses.replace(self, **changes)

    @property
    def engines(self) -> tuple[str, ...]:
        """The `engine` labels of the page: one per data-parallel rank."""
        start = self.data_parallel_start_rank
        return tuple(str(rank) for rank in range(start, start + self.data_parallel_size_local))

    @property
    def features(self) -> tuple[str, ...]:
        """The optional features (as conformance/features.toml names them) this server is started with."""
        return (("lora",) if self.lora_modules else ()) + (("spec_decode",) if self.speculative_method else ())


@cache
def _profiles() -> dict[str, Profile]:
    return {name: Profile(name=name, **row.given()) for name, row in data.sim_profiles().profile.items()}


def profile_names() -> list[str]:
    return list(_profiles())


def get_profile(name: str) -> Profile:
    try:
        return _profiles()[name]
    except KeyError:
        raise ValueError(f"unknown simulator profile {name!r}; valid profiles are {', '.join(_profiles())}") from None
