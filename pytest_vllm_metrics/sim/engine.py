"""The simulated engine: vLLM's /metrics families for a version, and counters that move as vLLM's do.

The family list, types, help texts, label names and histogram buckets come from a real vLLM 0.32.0
exposition (data/*.prom); the catalog's version ranges drop families a version does not emit and
families.toml adds the ones it no longer has, and the families of the profile's optional features (LoRA,
speculative decoding) from real pages of servers with them. Values move through a real prefix cache: prompt
tokens are hashed in blocks of `block_size`, and queries and hits are counted in tokens as vLLM 0.9+ does.
Speculative decoding runs vLLM's ngram proposer on the generated words, which repeat as a tiny greedy model's do.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re
import time
from collections import OrderedDict
from collections.abc import Callable
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
    generate_latest,
)
from prometheus_client.parser import text_string_to_metric_families

from .. import data, schemas
from ..catalog import load_catalog
from .profiles import Profile

_TOKEN = re.compile(r"\S+")
_PIDS = ("101", "102")  # the API server processes of the `pid-label` fault; the first one serves
_WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel")
_POSITION = "position"  # the draft-position label of vllm:spec_decode_num_accepted_tokens_per_pos_total


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
def _feature_template(data: str) -> dict[str, FamilySpec]:
    """The families a feature adds, from data/<data>.{before,after}.prom (lines of a real server's pages)."""
    files = resources.files(__package__).joinpath("data")
    return _parse_spec(files.joinpath(f"{data}.before.prom").read_text(encoding="utf-8"),
                       files.joinpath(f"{data}.after.prom").read_text(encoding="utf-8"))


def _extras() -> schemas.FamiliesFile:
    return data.sim_families()


def families_for(version: str, features: tuple[str, ...] = ()) -> list[FamilySpec]:
    """The families a vLLM of this version exposes with these optional features on, in exposition order."""
    catalog = {entry.name: entry for entry in load_catalog()}
    template = _template()

    def emitted(parser_name: str, type_: str) -> bool:
        # python_*, process_* and http_* are not vLLM's own and are not versioned by the catalog
        entry = catalog.get(parser_name + "_total" if type_ == "counter" else parser_name)
        return entry is None or entry.applies_to(version)

    specs = [spec for spec in template.values() if emitted(spec.name, spec.type)]
    for extra in _extras().family:
        like = template[extra.like]
        spec = FamilySpec(extra.name, like.type, extra.help, like.label_names, like.buckets,
                          like.startup_series, like.startup_values)
        if emitted(spec.name, spec.type):
            specs.append(spec)
    for feature in _extras().feature:
        if feature.name in features:
            added = [spec for spec in _feature_template(feature.data).values() if emitted(spec.name, spec.type)]
            at = next((i for i, spec in enumerate(specs) if spec.name == feature.before), len(specs))
            specs[at:at] = added
    return specs


def _label_value_allowed(family: str, labels: dict[str, str], version: str) -> bool:
    for rule in _extras().label_value:
        if rule.family == family and labels.get(rule.label) == rule.value:
            return rule.versions.contains(version)
    return True


def _word(prompt_length: int, index: int) -> str:
    """The index-th generated word. A tiny greedy model repeats short phrases with varying continuations: the
    ruler sequence (alpha bravo alpha charlie alpha bravo alpha delta ...), shifted by the prompt's length."""
    position = prompt_length + index + 1
    return _WORDS[((position & -position).bit_length() - 1) % len(_WORDS)]


@dataclass(frozen=True)
class Step:
    """One decode step of a request: the tokens it emitted, drafted and accepted."""

    emitted: int
    drafted: int = 0
    accepted: int = 0


@dataclass(frozen=True)
class Generated:
    """One choice as the server answers it."""

    words: list[str]  # the answer's text, word by word
    cached: int  # prompt tokens the prefix cache served
    ttft: float
    reason: str  # finish_reason: "length", or "stop" on a stop string
    tokens: int  # tokens generated (the one that completed a stop string included)


def _stopped(words: list[str], stop: tuple[str, ...]) -> tuple[list[str], int, str]:
    """The words a choice answers, the tokens it generated and its finish reason: generation ends at the first
    token whose text completes a stop string, and the answer keeps the text before that string."""
    for index in range(len(words)):
        text = " ".join(words[: index + 1])
        found = [text.find(s) for s in stop if s and s in text]
        if found:
            kept = text[: min(found)].split()
            return kept, index + 1, "stop"
    return words, len(words), "length"


def ngram_steps(prompt: list[str], word: Callable[[int], str], max_tokens: int, k: int, lookup_min: int,
                lookup_max: int, max_model_len: int) -> list[Step]:
    """The decode steps of one request under vLLM's ngram proposer (v1/spec_decode/ngram_proposer.py): after
    each step, the longest suffix of the context (prompt_lookup_min..max tokens) that occurred earlier in it, at
    its earliest occurrence, proposes the up to k tokens that followed it there; the model (`word`: the index-th
    generated token) accepts the drafted tokens up to the first wrong one and samples one more."""
    context = list(prompt)
    first: dict[tuple[str, ...], int] = {}  # n-gram -> where it first starts in the context

    def index(end: int) -> None:
        for start in range(max(end - lookup_max, 0), end):
            first.setdefault(tuple(context[start:end]), start)

    def propose() -> list[str]:
        total = len(context)
        limit = min(k, max_model_len - total)
        if limit <= 0:
            return []
        for size in range(min(lookup_max, total - 1), lookup_min - 1, -1):
            start = first.get(tuple(context[total - size:]), total)
            if start < total - size:  # an occurrence before the suffix itself
                return context[start + size: start + size + limit]
        return []

    for end in range(1, len(context) + 1):
        index(end)
    context.append(word(0))  # the prefill's token
    index(len(context))
    generated = 1
    steps: list[Step] = []
    while generated < max_tokens:
        draft = propose()
        accepted = 0
        while accepted < len(draft) and draft[accepted] == word(generated + accepted):
            accepted += 1
        # accepted tokens past max_tokens are counted as accepted, not emitted
        emitted = min(accepted + 1, max_tokens - generated)
        for offset in range(emitted):
            context.append(word(generated + offset))
            index(len(context))
        generated += emitted
        steps.append(Step(emitted, len(draft), accepted))
    return steps


class Engine:
    """Counters, gauges and histograms of one simulated vLLM server, and the prefix cache behind them."""

    owned_by = "vllm"  # /v1/models' owned_by

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.metrics: dict[str, Any] = {}
        self.requests = 0
        self.started = time.time()
        self._base = {"engine": profile.engines[0], "model_name": profile.model}
        self._blocks: OrderedDict[bytes, None] = OrderedDict()
        self._running = 0
        self._held_blocks = 0
        self._adapters: dict[str, int] = {}  # LoRA adapters with requests in flight, in order of arrival
        self._lora_clock = 0.0
        for spec in families_for(profile.version, profile.features):
            self._register(spec)

    def exposition(self) -> bytes:
        """The metrics page, in the text format (0.0.4)."""
        return generate_latest(self.registry)

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
        if _POSITION in spec.label_names and startup:
            # one series per draft position, 0 .. num_speculative_tokens-1 (the captured server drafted 2)
            common = tuple(pair for pair in startup[0][0] if pair[0] != _POSITION)
            startup = [((*common, (_POSITION, str(i))), 0.0) for i in range(self.profile.num_speculative_tokens)]
        if "engine" in spec.label_names:
            # the captured server ran engine 0; a data-parallel API server has every series once per engine it manages
            startup = [(tuple((k, engine if k == "engine" else v) for k, v in labels), value)
                       for engine in self.profile.engines for labels, value in startup]
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

    def generate(self, prompt_tokens: list[str], max_tokens: int, n: int = 1,
                 stop: tuple[str, ...] = ()) -> Generated:
        """Run one request of `n` choices through the metrics; return what each choice generated. As in vLLM, each
        choice is an engine request of its own (counted in the request and token counters and the per-request
        histograms); `n` and the longest choice are observed once per request. A stop string ends a choice at the
        token that completes it (its text is left out of the answer, as vLLM does), with finish reason "stop";
        else the choice runs to max_tokens ("length")."""
        generated = self._child(prompt_tokens, max_tokens, stop)
        for _ in range(n - 1):
            self._child(prompt_tokens, max_tokens, stop)
        if n > 1 and self.profile.fault == "counts-n-twice":
            self._inc("vllm:generation_tokens", n * max_tokens)  # every choice's tokens counted a second time
        self._observe("vllm:request_max_num_generation_tokens", generated.tokens)
        self._observe("vllm:request_params_n", n)
        return generated

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

    def _child(self, prompt_tokens: list[str], max_tokens: int, stop: tuple[str, ...] = ()) -> Generated:
        started = time.monotonic()
        n = len(prompt_tokens)
        cached = self.lookup_prefix(prompt_tokens)
        if self.profile.enable_prefix_caching:
            self._inc("vllm:prefix_cache_queries", n)
            self._inc("vllm:prefix_cache_hits", cached)
            self._inc("vllm:gpu_prefix_cache_queries", n)
            self._inc("vllm:gpu_prefix_cache_hits", cached)
        out = [_word(n, i) for i in range(max_tokens)]
        out, produced, reason = _stopped(out, stop)
        steps = self._decode_steps(prompt_tokens, produced)
        # Plausible durations, proportional to the work, so latency histograms land in real buckets.
        prefill = 0.0005 * (n - cached) + 0.002
        decode = 0.004 * len(steps)
        self._inc("vllm:prompt_tokens", n)
        self._inc("vllm:generation_tokens", produced)
        self._inc("vllm:prompt_tokens_by_source", n - cached, source="local_compute")
        self._inc("vllm:prompt_tokens_by_source", cached, source="local_cache_hit")
        self._inc("vllm:prompt_tokens_cached", cached)
        self._inc("vllm:prompt_tokens_cached_by_source", cached, source="device")
        self._inc("vllm:request_success", 1, finished_reason=reason)
        self._observe("vllm:iteration_tokens_total", n - cached + 1)
        for step in steps:  # vLLM observes these once per scheduler step, whatever the step emits
            self._observe("vllm:iteration_tokens_total", step.emitted)
            self._observe("vllm:inter_token_latency_seconds", 0.004)
            self._observe("vllm:time_per_output_token_seconds", 0.004)
            if step.drafted:  # vLLM's SpecDecodingStats.observe_draft
                self._inc("vllm:spec_decode_num_drafts")
                self._inc("vllm:spec_decode_num_draft_tokens", step.drafted)
                self._inc("vllm:spec_decode_num_accepted_tokens", step.accepted)
                for position in range(step.accepted):
                    self._inc("vllm:spec_decode_num_accepted_tokens_per_pos", 1, **{_POSITION: str(position)})
        self._observe("vllm:request_prompt_tokens", n)
        self._observe("vllm:request_generation_tokens", produced)
        self._observe("vllm:request_params_max_tokens", max_tokens)
        self._observe("vllm:request_prefill_kv_computed_tokens", n - cached)
        self._observe("vllm:request_num_preemptions", 0)
        self._observe("vllm:time_to_first_token_seconds", prefill)
        self._observe("vllm:request_time_per_output_token_seconds", decode / max(produced - 1, 1))
        self._observe("vllm:e2e_request_latency_seconds", prefill + decode)
        self._observe("vllm:request_queue_time_seconds", 0.0001)
        self._observe("vllm:request_inference_time_seconds", prefill + decode)
        self._observe("vllm:request_prefill_time_seconds", prefill)
        self._observe("vllm:request_decode_time_seconds", decode)
        return Generated(out, cached, time.monotonic() - started + prefill, reason, produced)

    def _decode_steps(self, prompt_tokens: list[str], max_tokens: int) -> list[Step]:
        """The decode steps after the prefill's first token: one token each, or with ngram speculative decoding
        the accepted drafted tokens plus the one the model samples."""
        profile = self.profile
        if profile.speculative_method != "ngram":
            return [Step(1)] * (max_tokens - 1)
        return ngram_steps(prompt_tokens, lambda i: _word(len(prompt_tokens), i), max_tokens,
                           profile.num_speculative_tokens, profile.prompt_lookup_min, profile.prompt_lookup_max,
                           profile.max_model_len)

    # -- LoRA ----------------------------------------------------------------------------------------

    def lora_started(self, adapter: str | None) -> None:
        if adapter is not None:
            self._adapters[adapter] = self._adapters.get(adapter, 0) + 1
        self._lora_refresh()

    def lora_ended(self, adapter: str | None) -> None:
        if adapter is not None:
            self._adapters[adapter] -= 1
            if not self._adapters[adapter]:
                del self._adapters[adapter]
        self._lora_refresh()

    def _lora_refresh(self) -> None:
        """What vLLM's scheduler does at every step: set the series of the adapters now in flight to the current
        time (set_to_current_time), keeping the series of earlier adapter sets with their older times."""
        metric = self.metrics.get("vllm:lora_requests_info")
        if metric is None:
            return
        # vLLM fills both labels from one per-adapter table of waiting and running requests, so an adapter with
        # a request in flight shows in both (as the captured page has it)
        adapters = ",".join(self._adapters)
        # strictly later than the last update: readers take the highest value as the current set
        self._lora_clock = max(time.time(), self._lora_clock + 1e-6)
        metric.labels(max_lora=str(self.profile.max_loras), running_lora_adapters=adapters,
                      waiting_lora_adapters=adapters).set(self._lora_clock)

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
