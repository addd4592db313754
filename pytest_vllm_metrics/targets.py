"""Targets: the servers a run checks, whatever found them (a URL, the simulator, Kubernetes discovery)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Target:
    """One vLLM server. Nothing downstream of discovery knows which source made it."""

    name: str
    base_url: str
    arch: str = "unknown"
    source: str = "url"  # url | sim | kubernetes
    node: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    # Extra httpx.AsyncClient arguments to reach the server (TLS, data-plane credentials). Kept out of
    # repr so that credentials never reach an assertion message or a log line.
    client_options: Mapping[str, Any] = field(default_factory=dict, repr=False)
    # Why the target cannot be checked (a pod that is not Ready, say); its checks are inconclusive with this reason.
    unavailable: str | None = None
    detail: Mapping[str, str] = field(default_factory=dict)  # shown in reports: profile, version, ...

    def url(self, path: str) -> str:
        return self.base_url.rstrip("/") + path

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


def url_targets(urls: tuple[str, ...], arch: str) -> list[Target]:
    names = _unique([host_port(url) for url in urls])
    return [Target(name=name, base_url=url, arch=arch, source="url") for name, url in zip(names, urls, strict=True)]


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
