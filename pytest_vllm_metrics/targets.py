"""Targets: the servers a run checks, whatever found them (a URL, the simulator, Kubernetes discovery)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import partial
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from . import engines
from .engines import Engine


class Role(StrEnum):
    """What a pod of a multi-node vLLM deployment runs (read from its container's command line)."""

    SERVER = "server"  # an API server: /metrics and /v1, whatever else it runs
    HEADLESS = "headless"  # vllm serve --headless: data-parallel engines without an API server
    RAY_WORKER = "ray worker"  # joins a leader's Ray cluster (ray start --address=...): engines, no API server

    @property
    def worker(self) -> bool:
        return self is not Role.SERVER


class Balancing(StrEnum):
    """How a data-parallel vLLM spreads requests over its engines (docs/serving/data_parallel_deployment.md)."""

    INTERNAL = "internal"  # one API server (the head) balances over every rank, local and remote
    HYBRID = "hybrid"  # --data-parallel-hybrid-lb: each node's API server over its local ranks only
    EXTERNAL = "external"  # --data-parallel-external-lb / --data-parallel-rank: one rank per API server


@dataclass(frozen=True)
class DataParallel:
    """A server's data-parallel flags, as its command line gives them (None: not given). `unreadable` names the
    flags present with a value the run could not resolve (a variable set from a Secret, say)."""

    size: int | None = None  # --data-parallel-size
    size_local: int | None = None  # --data-parallel-size-local
    start_rank: int | None = None  # --data-parallel-start-rank
    rank: int | None = None  # --data-parallel-rank (external load balancing)
    balancing: Balancing = Balancing.INTERNAL
    backend: str = "mp"  # --data-parallel-backend
    address: str | None = None  # --data-parallel-address
    unreadable: tuple[str, ...] = ()

    def expected_engines(self) -> tuple[int | None, int | None, str]:
        """(how many engines the API server manages, the first one's rank, why the count is unknown). As vLLM's
        engine core client: hybrid and external balancing manage the local ranks from the start rank (the rank
        of an external one), internal balancing every rank from 0; its metrics carry one `engine` label each."""
        unreadable = ", ".join(self.unreadable)
        if self.balancing is Balancing.INTERNAL:
            if "--data-parallel-size" in self.unreadable:
                return None, 0, f"--data-parallel-size has a value the run cannot resolve ({unreadable})"
            return self.size or 1, 0, ""
        first = self.rank if self.rank is not None else self.start_rank
        if first is None and not {"--data-parallel-rank", "--data-parallel-start-rank"} & set(self.unreadable):
            first = 0  # vLLM's default start rank
        if self.size_local is not None:
            count: int | None = self.size_local
        elif self.rank is not None and "--data-parallel-size-local" not in self.unreadable:
            count = 1  # an externally balanced rank runs its own engine
        else:
            count = None
        if count is not None and self.backend == "ray":
            # vLLM's Ray backend may place the local ranks itself (VLLM_RAY_DP_PACK_STRATEGY=span)
            return None, first, "with --data-parallel-backend=ray, vLLM may place the local ranks itself"
        if count is None:
            why = (f"its value cannot be resolved ({unreadable})" if "--data-parallel-size-local" in self.unreadable
                   else "it is not given")
            return None, first, f"{self.balancing} load balancing runs --data-parallel-size-local engines, and {why}"
        return count, first, ""

    def flags(self) -> str:
        """The flags as a reader of the pod's manifest would quote them."""
        shown = [f"--data-parallel-{name} {value}" for name, value in (
            ("size", self.size), ("size-local", self.size_local), ("start-rank", self.start_rank),
            ("rank", self.rank)) if value is not None]
        shown += [f"{flag} (unresolved)" for flag in self.unreadable]
        if self.balancing is Balancing.HYBRID:
            shown.insert(0, "--data-parallel-hybrid-lb")
        elif self.balancing is Balancing.EXTERNAL and self.rank is None:
            shown.insert(0, "--data-parallel-external-lb")
        if self.backend != "mp":
            shown.append(f"--data-parallel-backend {self.backend}")
        return " ".join(shown)

    def as_dict(self) -> dict[str, Any]:
        count, first, _ = self.expected_engines()
        return {"size": self.size, "sizeLocal": self.size_local, "startRank": self.start_rank, "rank": self.rank,
                "balancing": str(self.balancing), "backend": self.backend, "address": self.address,
                "unresolved": list(self.unreadable), "expectedEngines": count,
                "firstEngine": first if count is not None else None}


def ranks(numbers: Iterable[int | str]) -> str:
    """Engine ranks in short: '8-15', '0, 2, 5-7' (labels that are not numbers as they are)."""
    values = sorted({str(n) for n in numbers}, key=lambda v: (not v.isdigit(), int(v) if v.isdigit() else 0, v))
    parts: list[str] = []
    run: list[int] = []
    for value in [*values, ""]:
        if value.isdigit() and (not run or int(value) == run[-1] + 1):
            run.append(int(value))
            continue
        if run:
            parts.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
        run = [int(value)] if value.isdigit() else []
        if value and not value.isdigit():
            parts.append(value)
    return ", ".join(parts)


class TargetSource(StrEnum):
    """What found a target: a URL given, the bundled simulator, or Kubernetes discovery."""

    URL = "url"
    SIM = "sim"
    KUBERNETES = "kubernetes"


@dataclass(frozen=True)
class Target:
    """One vLLM server. Nothing downstream of discovery knows which source made it."""

    name: str
    base_url: str
    arch: str = "unknown"
    source: TargetSource = TargetSource.URL
    node: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    # Extra httpx.AsyncClient arguments to reach the server (TLS, data-plane credentials). Kept out of
    # repr so that credentials never reach an assertion message or a log line.
    client_options: Mapping[str, Any] = field(default_factory=dict, repr=False)
    # Why the target cannot be checked (a pod that is not Ready, say); its checks are inconclusive with this reason.
    unavailable: str | None = None
    detail: Mapping[str, str] = field(default_factory=dict)  # shown in reports: profile, version, ...
    # The data-parallel flags of the server's command line, when the run knows it (a pod's container, a simulator
    # profile): which `engine` labels its page must carry.
    data_parallel: DataParallel | None = None
    # The model server it runs (a pod's engine label, --vllm-engine), and where that engine serves its page when
    # not at the configured path of the API port (trtllm-serve's /prometheus/metrics, Triton's port 8002).
    engine: Engine = Engine.VLLM
    metrics_path: str | None = None
    metrics_base_url: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "source", TargetSource(self.source))  # a plain "kubernetes" is accepted, and checked
        object.__setattr__(self, "engine", Engine(self.engine))

    def url(self, path: str) -> str:
        return self.base_url.rstrip("/") + path

    def page_target(self) -> Target:
        """The target as its metrics page is reached: the engine's own port, when it serves the page apart."""
        return self if self.metrics_base_url is None else replace(self, base_url=self.metrics_base_url)

    @property
    def shown_url(self) -> str:
        """The base URL for messages and reports, without credentials."""
        return redact_url(self.base_url)


def redact_url(url: str) -> str:
    """A URL for display: any user:password@ part replaced."""
    return re.sub(r"(?<=://)[^/@\s]*@", "***@", url)


def host_port(url: str) -> str:
    """host:port of a URL, without any user:password@ (names and selectors are shown everywhere)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{parts.port}" if parts.port else host


def url_targets(urls: tuple[str, ...], arch: str, engine: Engine = Engine.VLLM) -> list[Target]:
    names = _unique([host_port(url) for url in urls])
    return [Target(name=name, base_url=url, arch=arch, source=TargetSource.URL,
                   **metrics_location(engine, partial(with_port, url)))
            for name, url in zip(names, urls, strict=True)]


def metrics_location(engine: Engine, at_port: Callable[[int], str]) -> dict[str, Any]:
    """The Target fields of a server of `engine`: the engine, and where its page is when not at the configured
    path of the API port (`at_port(port)`: the server's base URL on another port)."""
    profile = engines.profile(engine)
    return {"engine": engine, "metrics_path": profile.metrics_path if engine is not Engine.VLLM else None,
            "metrics_base_url": at_port(profile.metrics_port) if profile.metrics_port else None}


def with_port(url: str, port: int) -> str:
    """`url` on another port of the same host."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@{host}:{port}" if credentials else f"{host}:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


def sim_target_names(profiles: tuple[str, ...]) -> list[str]:
    return _unique([f"sim-{profile}" for profile in profiles])


def _unique(names: list[str]) -> list[str]:
    """Name twins apart (two simulators of one profile): sim-x86_64, sim-x86_64-2."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}-{seen[name]}")
    return out
