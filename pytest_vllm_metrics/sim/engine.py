"""The simulated engine: vLLM's /metrics families for a version, and counters that move as vLLM's do.

The family list, types, help texts, label names and histogram buckets come from a real vLLM 0.32.0
exposition (data/*.prom); the catalog's version ranges drop families a version does not emit and
families.toml adds the ones it no longer has. Values move through a real prefix cache: prompt tokens are
hashed in blocks of `block_size`, and queries and hits are counted in tokens as vLLM 0.9+ does.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re
import time
import tomllib
from collections import OrderedDict
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    Summary,
)
from prometheus_client.parser import text_string_to_metric_families

from ..catalog import load_catalog
from ..versions import VersionRange
from .profiles import Profile

_TOKEN = re.compile(r"\S+")
_PIDS = ("101", "102")  # the API server processes of the `pid-label` fault; the first one serves
_WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel")


@dataclass(frozen=True)
class FamilySpec:
    name: str  # parser family name: counters without _total
    type: str
    help: str
    label_names: tuple[str, ...]
    buckets: tuple[float, ...]
    startup_series: tuple[tuple[tuple[str, str], ...], ...]  # label sets present before traffic
    startup_values: tuple[float, ...]


def _parse_spec(before: str, after: str) -> dict[str, FamilySpec]:
    after_families = {m.name: m for m in text_string_to_metric_families(after)}
    specs: dict[str, FamilySpec] = {}
    for metric in text_string_to_metric_families(before):
        if metric.name.endswith("_created") or metric.name.startswith(("python_", "process_")):
            continue  # prometheus_client adds _created itself; the collectors add python_* / process_*
        full = after_families.get(metric.name, metric)
        label_names: list[str] = []
        buckets: list[float] = []
        for sample in full.samples:
            for key in sample.labels:
                if key not in ("le", "quantile") and key not in label_names:
                    label_names.append(key)
            if sample.name.endswith("_bucket") and sample.labels.get("le") not in (None, "+Inf"):
                bound = float(sample.labels["le"])
                if bound not in buckets:
                    buckets.append(bound)
        startup = [
            (tuple(sorted((k, v) for k, v in s.labels.items() if k not in ("le", "quantile"))), float(s.value))
            for s in metric.samples
            if metric.type in ("counter", "gauge") or s.name.endswith("_count")
        ]
        specs[metric.name] = FamilySpec(
            name=metric.name,
            type=metric.type,
            help=metric.documentation,
            label_names=tuple(label_names),
            buckets=tuple(buckets),
            startup_series=tuple(labels for labels, _ in startup),
            startup_values=tuple(value for _, value in startup),
        )
    return specs


@cache
def _template() -> dict[str, FamilySpec]:
    data = resources.files(__package__).joinpath("data")
    return _parse_spec(
        data.joinpath("vllm-0.32.0.before.prom").read_text(encoding="utf-8"),
        data.joinpath("vllm-0.32.0.after.prom").read_text(encoding="utf-8"),
    )


@cache
def _extras() -> dict[str, Any]:
    return tomllib.loads(resources.files(__package__).joinpath("families.toml").read_text(encoding="utf-8"))


def families_for(version: str) -> list[FamilySpec]:
    """The families a default-configured vLLM of this version exposes, in exposition order."""
    catalog = {entry.name: entry for entry in load_catalog()}
    template = _template()

    def emitted(parser_name: str, type_: str) -> bool:
        # python_*, process_* and http_* are not vLLM's own and are not versioned by the catalog
        entry = catalog.get(parser_name + "_total" if type_ == "counter" else parser_name)
        return entry is None or entry.applies_to(version)

    specs = [spec for spec in template.values() if emitted(spec.name, spec.type)]
    for extra in _extras().get("family", []):
        like = template[extra["like"]]
        spec = FamilySpec(extra["name"], like.type, extra["help"], like.label_names, like.buckets,
                          like.startup_series, like.startup_values)
        if emitted(spec.name, spec.type):
            specs.append(spec)
    return specs


def _label_value_allowed(family: str, labels: dict[str, str], version: str) -> bool:
    for rule in _extras().get("label_value", []):
        if rule["family"] == family and labels.get(rule["label"]) == rule["value"]:
            return VersionRange(rule["versions"]).contains(version)
    return True


class Engine:
    """Counters, gauges and histograms of one simulated vLLM server, and the prefix cache behind them."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.metrics: dict[str, Any] = {}
        self.requests = 0
        self.started = time.time()
        self._base = {"engine": "0", "model_name": profile.model}
        self._blocks: OrderedDict[bytes, None] = OrderedDict()
        self._running = 0
        self._held_blocks = 0
        for spec in families_for(profile.version):
            self._register(spec)

    # -- registry --------------------------------------------------------------------------------

    def _register(self, spec: FamilySpec) -> None:
        startup = list(zip(spec.startup_series, spec.startup_values, strict=True))
        fault = self.profile.fault
        if fault == "info-labels-45" and spec.name == "vllm:cache_config_info":
            # a newer CacheConfig with 8 more fields: 45 labels of its own
            extra = tuple((f"simulated_field_{i}", "None") for i in range(1, 9))
            spec = dataclasses.replace(spec, label_names=spec.label_names + tuple(k for k, _ in extra))
            startup = [(labels + extra, value) for labels, value in startup]
        if fault == "pid-label" and spec.name == "vllm:kv_cache_usage_perc":
            # vLLM before 0.11.1 with two API server processes: one series per process (the `pid` label)
            spec = dataclasses.replace(spec, label_names=(*spec.label_names, "pid"))
            startup = [((*labels, ("pid", pid)), value) for labels, value in startup for pid in _PIDS]
        kwargs: dict[str, Any] = {"labelnames": spec.label_names, "registry": self.registry}
        metric: Any
        if spec.type == "counter":
            metric = Counter(spec.name, spec.help, **kwargs)
        elif spec.type == "gauge":
            metric = Gauge(spec.name, spec.help, **kwargs)
        elif spec.type == "histogram":
            metric = Histogram(spec.name, spec.help, buckets=spec.buckets, **kwargs)
        elif spec.type == "summary":
            metric = Summary(spec.name, spec.help, **kwargs)
        else:
            return
        self.metrics[spec.name] = metric
        for labels, value in startup:
            values = dict(labels)
            values.update({k: v for k, v in self._overrides().items() if k in values})
            if not _label_value_allowed(spec.name, values, self.profile.version):
                continue
            child = metric.labels(**values) if spec.label_names else metric
            if spec.type == "gauge":
                child.set(value)

    def _overrides(self) -> dict[str, str]:
        profile = self.profile
        return {
            "model_name": profile.model,
            "enable_prefix_caching": str(profile.enable_prefix_caching),
            "block_size": str(profile.block_size),
            "num_gpu_blocks": str(profile.num_gpu_blocks),
        }

    def _inc(self, family: str, amount: float = 1.0, **labels: str) -> None:
        metric = self.metrics.get(family)
        if metric is not None:
            metric.labels(**self._base, **labels).inc(amount)

    def _observe(self, family: str, value: float, **labels: str) -> None:
        metric = self.metrics.get(family)
        if metric is not None:
            metric.labels(**self._base, **labels).observe(value)

    # -- the model of vLLM -------------------------------------------------------------------------

    @staticmethod
    def tokenize(text: str) -> list[str]:
        return _TOKEN.findall(text)

    def lookup_prefix(self, tokens: list[str]) -> int:
        """Count a prefix-cache lookup as vLLM does and return the cached tokens (block-aligned)."""
        if not self.profile.enable_prefix_caching:
            return 0
        size = self.profile.block_size
        hashes: list[bytes] = []
        digest = b""
        for start in range(0, len(tokens) - size + 1, size):
            digest = hashlib.sha256(digest + "\x00".join(tokens[start : start + size]).encode()).digest()
            hashes.append(digest)
        hit_blocks = 0
        for digest in hashes:
            if digest not in self._blocks:
                break
            hit_blocks += 1
        # vLLM always recomputes the last prompt token, so a hit covers at most len-1 tokens.
        hit_blocks = min(hit_blocks, (len(tokens) - 1) // size)
        for digest in hashes:
            self._blocks[digest] = None
            self._blocks.move_to_end(digest)
        while len(self._blocks) > self.profile.num_gpu_blocks:
            self._blocks.popitem(last=False)
        return hit_blocks * size

    def generate(self, prompt_tokens: list[str], max_tokens: int, n: int = 1) -> tuple[list[str], int, float]:
        """Run one request of `n` choices through the metrics; return (generated words of each choice, cached
        tokens of the first, ttft). As in vLLM, each choice is an engine request of its own (counted in the
        request and token counters and the per-request histograms); `n` and the longest choice are observed once
        per request."""
        words, cached, ttft = self._child(prompt_tokens, max_tokens)
        for _ in range(n - 1):
            self._child(prompt_tokens, max_tokens)
        if n > 1 and self.profile.fault == "counts-n-twice":
            self._inc("vllm:generation_tokens", n * max_tokens)  # every choice's tokens counted a second time
        self._observe("vllm:request_max_num_generation_tokens", max_tokens)
        self._observe("vllm:request_params_n", n)
        return words, cached, ttft

    # -- gauges of requests in flight (streaming requests hold them while they stream) ----------------

    def request_started(self, tokens: int) -> None:
        self._running += 1
        self._held_blocks += math.ceil(tokens / self.profile.block_size)
        self._set_gauges()

    def request_ended(self, tokens: int, aborted: bool) -> None:
        if aborted and self.profile.fault == "gauges-stuck":
            return  # no scheduler step after the abort, so nothing refreshes the gauges
        self._running -= 1
        self._held_blocks -= math.ceil(tokens / self.profile.block_size)
        self._set_gauges()

    def _set_gauges(self) -> None:
        pid = {"pid": _PIDS[0]} if self.profile.fault == "pid-label" else {}
        for family, value in (("vllm:num_requests_running", float(self._running)),
                              ("vllm:kv_cache_usage_perc", self._held_blocks / self.profile.num_gpu_blocks)):
            metric = self.metrics.get(family)
            if metric is not None:
                metric.labels(**self._base, **(pid if family == "vllm:kv_cache_usage_perc" else {})).set(value)

    def _child(self, prompt_tokens: list[str], max_tokens: int) -> tuple[list[str], int, float]:
        started = time.monotonic()
        n = len(prompt_tokens)
        cached = self.lookup_prefix(prompt_tokens)
        if self.profile.enable_prefix_caching:
            self._inc("vllm:prefix_cache_queries", n)
            self._inc("vllm:prefix_cache_hits", cached)
            self._inc("vllm:gpu_prefix_cache_queries", n)
            self._inc("vllm:gpu_prefix_cache_hits", cached)
        out = [_WORDS[(n + i) % len(_WORDS)] for i in range(max_tokens)]
        # Plausible durations, proportional to the work, so latency histograms land in real buckets.
        prefill = 0.0005 * (n - cached) + 0.002
        decode = 0.004 * (max_tokens - 1)
        self._inc("vllm:prompt_tokens", n)
        self._inc("vllm:generation_tokens", max_tokens)
        self._inc("vllm:prompt_tokens_by_source", n - cached, source="local_compute")
        self._inc("vllm:prompt_tokens_by_source", cached, source="local_cache_hit")
        self._inc("vllm:prompt_tokens_cached", cached)
        self._inc("vllm:prompt_tokens_cached_by_source", cached, source="device")
        self._inc("vllm:request_success", 1, finished_reason="length")
        self._observe("vllm:iteration_tokens_total", n - cached + 1)
        for _ in range(max_tokens - 1):
            self._observe("vllm:iteration_tokens_total", 1)
            self._observe("vllm:inter_token_latency_seconds", 0.004)
            self._observe("vllm:time_per_output_token_seconds", 0.004)
        self._observe("vllm:request_prompt_tokens", n)
        self._observe("vllm:request_generation_tokens", max_tokens)
        self._observe("vllm:request_params_max_tokens", max_tokens)
        self._observe("vllm:request_prefill_kv_computed_tokens", n - cached)
        self._observe("vllm:request_num_preemptions", 0)
        self._observe("vllm:time_to_first_token_seconds", prefill)
        self._observe("vllm:request_time_per_output_token_seconds", decode / max(max_tokens - 1, 1))
        self._observe("vllm:e2e_request_latency_seconds", prefill + decode)
        self._observe("vllm:request_queue_time_seconds", 0.0001)
        self._observe("vllm:request_inference_time_seconds", prefill + decode)
        self._observe("vllm:request_prefill_time_seconds", prefill)
        self._observe("vllm:request_decode_time_seconds", decode)
        return out, cached, time.monotonic() - started + prefill

    def record_http(self, handler: str, method: str, status: int, request_bytes: int, response_bytes: int,
                    seconds: float) -> None:
        """What prometheus-fastapi-instrumentator records for a non-excluded handler."""
        group = f"{status // 100}xx"
        if "http_requests" in self.metrics:
            self.metrics["http_requests"].labels(handler=handler, method=method, status=group).inc()
        if "http_request_size_bytes" in self.metrics:
            self.metrics["http_request_size_bytes"].labels(handler=handler).observe(request_bytes)
        if "http_response_size_bytes" in self.metrics:
            self.metrics["http_response_size_bytes"].labels(handler=handler).observe(response_bytes)
        if "http_request_duration_highr_seconds" in self.metrics:
            self.metrics["http_request_duration_highr_seconds"].observe(seconds)
        if "http_request_duration_seconds" in self.metrics:
            self.metrics["http_request_duration_seconds"].labels(handler=handler, method=method).observe(seconds)
