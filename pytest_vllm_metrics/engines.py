"""The model servers an inference gateway's endpoint picker schedules onto (vLLM, SGLang, trtllm-serve, Triton
TensorRT-LLM), and what each serves it under the model-server protocol (conformance/engines.toml): where its page is,
which metric answers for queued and running requests and KV-cache utilization, and how a pod names its engine."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import cache

import promql_parser

from . import data
from .schemas import CacheSpec
from .versions import VersionRange


class Engine(StrEnum):
    """A model server, by the name the endpoint picker's engine label gives it."""

    VLLM = "vllm"
    SGLANG = "sglang"
    TRTLLM_SERVE = "trtllm-serve"
    TRITON_TENSORRT_LLM = "triton-tensorrt-llm"


class Metric(StrEnum):
    """The model-server protocol's metrics: three required gauges, and the KV cache's shape (optional)."""

    QUEUED = "queued"  # TotalQueuedRequests
    RUNNING = "running"  # TotalRunningRequests
    KV_USAGE = "kv_usage"  # KVCacheUtilization: a fraction
    BLOCK_SIZE = "block_size"  # [optional] tokens per KV-cache block (page)
    NUM_BLOCKS = "num_blocks"  # [optional] KV-cache blocks

    @property
    def required(self) -> bool:
        return self in (Metric.QUEUED, Metric.RUNNING, Metric.KV_USAGE)


REQUIRED = tuple(m for m in Metric if m.required)


@dataclass(frozen=True)
class Selector:
    """A metric the endpoint picker reads: a name and the `label="value"` matchers it keeps (it ignores others)."""

    text: str  # as written in the EPP's configuration
    name: str
    labels: Mapping[str, str]


# The EPP quotes bare label values before parsing (spec.go addQuotesToLabelValues): {request_type=waiting}.
_UNQUOTED = re.compile(r"""([{,]\s*[A-Za-z_]\w*\s*(?:=|!=|=~|!~)\s*)([^"'\s,}]+)""")


def selector(text: str) -> Selector:
    """A spec as the endpoint picker parses it (a PromQL instant-vector selector); ValueError when it is not one."""
    try:
        node = promql_parser.parse(_UNQUOTED.sub(r'\g<1>"\g<2>"', text))
    except (ValueError, RuntimeError):
        node = None
    if not isinstance(node, promql_parser.VectorSelector) or not node.name:
        raise ValueError(f"{text!r} is not a metric selector such as name{{label=\"value\"}}")
    return Selector(text, node.name, {m.name: m.value for m in node.matchers.matchers
                                      if m.op == promql_parser.MatchOp.Equal})


@dataclass(frozen=True)
class CacheForm:
    versions: VersionRange
    block_size: CacheSpec
    num_blocks: CacheSpec


@dataclass(frozen=True)
class Profile:
    """One engine's side of the protocol."""

    engine: Engine
    metrics_path: str
    metrics_port: int  # 0: the API port
    enable: str  # the flag that turns its metrics on ("" when they are always on)
    lora: str  # the metric the EPP reads LoRA adapters from ("": the protocol maps none for this engine)
    model_label: str  # the label carrying the served model's name
    source: str
    required: Mapping[Metric, str]  # queued, running, kv_usage -> the selector the EPP reads
    cache: tuple[CacheForm, ...]
    settle_seconds: float  # how long its gauges may take to read 0 again once idle

    def selectors(self) -> Mapping[Metric, Selector]:
        """The required metrics' selectors (parsed once: every check of every target asks)."""
        return _selectors(self.engine)

    def cache_forms(self, version: str | None) -> tuple[CacheForm, ...]:
        """The forms of the optional block metrics this version serves; every form when the version is unknown."""
        if version is None:
            return self.cache
        return tuple(form for form in self.cache if form.versions.contains(version))


@cache
def profiles() -> dict[Engine, Profile]:
    return {Engine(e.name): Profile(
        engine=Engine(e.name), metrics_path=e.metrics_path, metrics_port=e.metrics_port, enable=e.enable,
        lora=e.lora, model_label=e.model_label, source=e.source,
        required={Metric.QUEUED: e.queued, Metric.RUNNING: e.running, Metric.KV_USAGE: e.kv_usage},
        cache=tuple(CacheForm(f.versions, f.block_size, f.num_blocks) for f in e.cache),
        settle_seconds=e.settle_seconds)
        for e in data.engines().engine}


@cache
def _selectors(engine: Engine) -> Mapping[Metric, Selector]:
    return {metric: selector(text) for metric, text in profile(engine).required.items()}


def profile(engine: Engine) -> Profile:
    return profiles()[engine]


def label_keys() -> tuple[str, ...]:
    """The pod labels that name a pod's engine, the current one first."""
    return data.engines().label_keys


def default_engine() -> Engine:
    """The engine of a pod that no label names (the endpoint picker's defaultEngine)."""
    return Engine(data.engines().default_engine)


class UnknownEngine(ValueError):
    """A label or option names no engine the suite knows."""


def parse(name: str, where: str) -> Engine:
    """An engine by its name (`where` says where the name was written, for the message)."""
    try:
        return Engine(name.strip().lower())
    except ValueError:
        known = ", ".join(e.value for e in Engine)
        raise UnknownEngine(f"{where} is {name!r}, which names no model server this suite knows ({known}); its "
                            f"metrics are not checked.") from None


def of_labels(labels: Mapping[str, str]) -> tuple[Engine, str]:
    """A pod's engine as the endpoint picker finds it: the first engine label present, else the default; and the
    label that named it ("" for the default). UnknownEngine when the label names none the suite knows."""
    for key in label_keys():
        if key in labels:
            return parse(labels[key], f"the pod label {key}"), key
    return default_engine(), ""
