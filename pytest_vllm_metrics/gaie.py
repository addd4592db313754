"""What the Gateway API Inference Extension (GAIE) conformance reports of the model-server protocol name besides the
results: the GAIE version, the profile, and each model server's `implementation` (organization, project, url,
version, contact), from the engine's defaults and what the user gives (--vllm-gaie-implementation=[ENGINE:]FIELD=VALUE).
The report itself is report_gaie's."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import pytest

from .engines import Engine

# GAIE's release when this was written (kubernetes-sigs/gateway-api-inference-extension v1.6.2, 2026-09); GAIE accepts
# reports for its current minor release and the two before it.
VERSION = "v1.6.2"
PROFILE = "ModelServer"  # the profile name GAIE's conformance/reports/README.md reserves
FOLDER = "model-server"  # its folder under conformance/reports/<version>/, and the profile's part of a file name
MODE = "default"
FIELDS = ("organization", "project", "url", "version", "contact")
UNKNOWN = "unknown"  # the version of a model server that does not say it (only vLLM's is read from its page)


@dataclass(frozen=True)
class Field:
    """One field of the reports' `implementation`, for every model server (engine None) or one."""

    engine: Engine | None
    key: str
    value: str

    def __str__(self) -> str:  # as given, for the report header
        return f"{self.engine + ':' if self.engine else ''}{self.key}={self.value}"


def field(raw: str, where: str) -> Field:
    """--vllm-gaie-implementation's value; pytest.UsageError naming the form when it is not one."""
    scoped = re.match(r"([\w-]+):(\w+)=", raw)  # "sglang:version=..." (a url's own ':' comes after its '=')
    scope, rest = (scoped.group(1), raw[scoped.end(1) + 1:]) if scoped else ("", raw)
    key, _, value = rest.partition("=")
    if key not in FIELDS or not value.strip() or scope not in ("", *(e.value for e in Engine)):
        raise pytest.UsageError(
            f"{where}: {raw!r} is not [ENGINE:]FIELD=VALUE with FIELD one of {', '.join(FIELDS)} and ENGINE one of "
            f"{', '.join(e.value for e in Engine)}; e.g. organization=my-org, or sglang:version=v0.5.4.")
    return Field(Engine(scope) if scope else None, key, value.strip())


def version(raw: str, where: str) -> str:
    """--vllm-gaie-version: a GAIE release tag (v1.6.2; "1.6.2" is taken as it)."""
    if not re.fullmatch(r"v?\d+\.\d+\.\d+(-[\w.]+)?", raw.strip()):
        raise pytest.UsageError(f"{where}: {raw!r} is not a Gateway API Inference Extension release; pass its tag, "
                                f"e.g. --vllm-gaie-version={VERSION}.")
    return "v" + raw.strip().removeprefix("v")


@dataclass(frozen=True)
class Implementation:
    """A report's `implementation` (gateway-api conformance/apis/v1 Implementation)."""

    organization: str
    project: str
    url: str
    version: str
    contact: tuple[str, ...]

    def as_dict(self) -> dict[str, object]:
        return {"contact": list(self.contact), "organization": self.organization, "project": self.project,
                "url": self.url, "version": self.version}

    @property
    def folder(self) -> str:
        """Its folder in GAIE's layout (conformance/reports/<version>/model-server/<folder>/): the project, after its
        organization when they differ (as nginx-nginx-gateway-fabric), in lower case."""
        name = self.project if self.organization.lower() == self.project.lower() else \
            f"{self.organization}-{self.project}"
        return _slug(name)

    @property
    def file_name(self) -> str:
        """<Implementation Version>-<Mode>-<Profile>-report.yaml, the profile spelled as its folder (GAIE's Gateway
        reports are named 1.30.1-default-gateway-report.yaml)."""
        return f"{_slug(self.version, lower=False)}-{MODE}-{FOLDER}-report.yaml"


def _slug(text: str, lower: bool = True) -> str:
    # a path part: no separator, no space
    cleaned = re.sub(r"[^\w.+-]+", "-", text.strip()).strip("-.") or UNKNOWN
    return cleaned.lower() if lower else cleaned


# Each model server's project, by default (the user's fields replace any of these).
DEFAULTS: dict[Engine, Implementation] = {
    Engine.VLLM: Implementation("vllm-project", "vllm", "https://github.com/vllm-project/vllm", UNKNOWN,
                                ("https://github.com/vllm-project/vllm/issues",)),
    Engine.SGLANG: Implementation("sgl-project", "sglang", "https://github.com/sgl-project/sglang", UNKNOWN,
                                  ("https://github.com/sgl-project/sglang/issues",)),
    Engine.TRTLLM_SERVE: Implementation("NVIDIA", "TensorRT-LLM", "https://github.com/NVIDIA/TensorRT-LLM", UNKNOWN,
                                        ("https://github.com/NVIDIA/TensorRT-LLM/issues",)),
    Engine.TRITON_TENSORRT_LLM: Implementation(
        "triton-inference-server", "tensorrtllm_backend", "https://github.com/triton-inference-server/tensorrtllm_backend",
        UNKNOWN, ("https://github.com/triton-inference-server/tensorrtllm_backend/issues",)),
}


def implementation(engine: Engine, found_version: str | None, given: Iterable[Field]) -> Implementation:
    """A model server's `implementation`: the engine's defaults, the version its targets report, then the user's
    fields for every engine, then those for this one (contacts given in a scope replace the defaults, and add up
    within it)."""
    found = list(given)
    fields: dict[str, str] = {}
    for scope in (None, engine):  # every engine's, then this one's, which win
        fields.update((item.key, item.value) for item in found if item.engine == scope and item.key != "contact")
    contacts = [[item.value for item in found if item.engine == scope and item.key == "contact"]
                for scope in (engine, None)]
    default = DEFAULTS[engine]
    return Implementation(
        organization=fields.get("organization", default.organization), project=fields.get("project", default.project),
        url=fields.get("url", default.url), version=fields.get("version", found_version or default.version),
        contact=tuple(contacts[0] or contacts[1] or default.contact))
