"""The model-server protocol, per target: what an inference gateway's endpoint picker (EPP) reads from the target's
engine (engines.py) is on its page, typed and in range as the EPP needs it, rises while the engine serves and reads
0 again once it is idle; which series the EPP reads when several match; the KV cache's shape in the engine's form;
the model the metrics name.

The EPP reads a metric as spec.go does: the family by name, only gauges and counters (an untyped family reads as
0), and of the series matching the spec's labels the first (no sum across ranks)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from typing import Any

from . import engines
from .engines import REQUIRED, Engine, Metric, Selector
from .observe import Observation, Stage
from .outcome import Level, Outcome, Verdict
from .schemas import CacheSpec
from .settings import Policy
from .snapshot import Series, Snapshot

# What each required metric tells the endpoint picker, for messages.
MEANING = {Metric.QUEUED: "queued requests (its queue scorer and its admission)",
           Metric.RUNNING: "running requests (its load scorers)",
           Metric.KV_USAGE: "KV-cache utilization (its KV-cache scorer and its saturation filter)"}
_READABLE = ("gauge", "counter")  # the types the EPP reads a value from


@dataclass(frozen=True)
class Reading:
    """A page read the EPP's way for one spec: the family's type, every matching series, and the one it keeps."""

    family_type: str | None  # None: no family of that name
    series: list[Series]

    @property
    def value(self) -> float | None:
        """The value the EPP takes: the first matching series', 0 for an untyped family, None when none matches."""
        if not self.series:
            return None
        return self.series[0].value if self.family_type in _READABLE else 0.0


def read(page: Snapshot, spec: Selector) -> Reading:
    family = page.family(spec.name)
    return Reading(family.type if family else None, page.series(spec.name, spec.labels or None) if family else [])


def _where(obs: Observation) -> str:
    return f"{obs.target.name} ({obs.target.engine})"


def _page_path(obs: Observation) -> str:
    return obs.target.metrics_path or "/metrics"


def required_metric(obs: Observation, metric: Metric, level: Level = Level.MUST) -> Verdict:
    """A required metric of the protocol is on the page before and after the workload: a typed gauge, a series the
    EPP's selector matches, and a value it can use (a count of requests: a whole number >= 0; KV-cache utilization:
    a fraction from 0 to 1)."""
    problem = obs.failure(Stage.BEFORE)
    if problem:
        return problem.verdict(level)
    profile = engines.profile(obs.target.engine)
    spec = profile.selectors()[metric]
    evidence: dict[str, Any] = {"selector": spec.text}
    for when, page in (("before the workload", obs.before), ("after it", obs.after)):
        if page is None:
            continue
        reading = read(page, spec)
        evidence[when] = reading.value
        if reading.family_type is None:
            enable = (f" ({obs.target.engine} serves it only when started with {profile.enable})"
                      if profile.enable else "")
            return Verdict(Outcome.FAILED, f"{_where(obs)}: {spec.name} is missing from {_page_path(obs)} {when}"
                                           f"{enable}. The endpoint picker reads it for {MEANING[metric]}, and fails "
                                           f"to read this pod's metrics without it.", level, evidence)
        if reading.family_type != "gauge":
            kind = "untyped (no # TYPE line)" if reading.family_type in ("unknown", "untyped") else \
                f"a {reading.family_type}"
            effect = ("the endpoint picker reads an untyped family as 0, so this pod looks idle to it"
                      if reading.family_type not in _READABLE else "the protocol makes it a gauge")
            return Verdict(Outcome.FAILED, f"{_where(obs)}: {spec.name} is {kind} {when}; {effect}. Declare it "
                                           f"# TYPE {spec.name} gauge.", level, evidence)
        value = reading.value
        if value is None:
            found = sorted({k for s in page.series(spec.name) for k, _ in s.labels})
            return Verdict(Outcome.FAILED, f"{_where(obs)}: no series of {spec.name} matches {spec.text} {when} "
                                           f"(its labels: {', '.join(found) or 'none'}); the endpoint picker finds "
                                           f"nothing to read.", level, evidence)
        wrong = _out_of_range(metric, value)
        if wrong:
            return Verdict(Outcome.FAILED, f"{_where(obs)}: {spec.text} reads {value:g} {when}: {wrong}", level,
                           evidence)
    return Verdict(Outcome.PASSED, level=level, evidence=evidence)


def _out_of_range(metric: Metric, value: float) -> str:
    if metric is Metric.KV_USAGE:
        if math.isnan(value) or not 0.0 <= value <= 1.0:
            percent = " It looks like a percentage; " if 1.0 < value <= 100.0 else " "
            return (f"the protocol's KV-cache utilization is a fraction from 0 to 1.{percent}the endpoint picker "
                    f"would take the pod as full beyond 1 and stop sending it requests.")
        return ""
    if math.isnan(value) or value < 0 or value != int(value):
        return "a count of requests is a whole number, 0 or more; the endpoint picker's queue and load scores go wrong."
    return ""


def series_read(obs: Observation, level: Level = Level.SHOULD) -> Verdict:
    """Where several series match a required metric's selector (one per rank, say), the EPP reads the first while a
    `sum by (pod)` panel adds them all: they must agree, or the EPP schedules on a part of the pod's load."""
    problem = obs.failure(Stage.BEFORE)
    if problem:
        return problem.verdict(level)
    page = obs.after or obs.before
    assert page is not None
    parts = []
    evidence: dict[str, Any] = {}
    for metric, spec in engines.profile(obs.target.engine).selectors().items():
        reading = read(page, spec)
        if len(reading.series) < 2 or reading.value is None:
            continue
        total = math.fsum(s.value for s in reading.series)
        first = dict(reading.series[0].labels)
        evidence[spec.text] = {"series": len(reading.series), "epp_reads": reading.value, "sum": total}
        if metric is not Metric.KV_USAGE and total != reading.value:
            split = ", ".join(f"{k}={v}" for k, v in first.items() if k not in spec.labels)
            parts.append(f"{spec.text} has {len(reading.series)} series; the endpoint picker reads the first "
                         f"({split}: {reading.value:g}) while sum by (pod) shows {total:g}")
    if not parts:
        return Verdict(Outcome.PASSED, level=level, evidence=evidence)
    return Verdict(Outcome.FAILED, f"{_where(obs)}: {'; '.join(parts)}. The endpoint picker then scores this pod "
                                   f"on one rank's load. Expose one series per pod for these gauges (SGLang logs them "
                                   f"from every rank only with --enable-metrics-for-all-schedulers).", level, evidence)


def under_load(obs: Observation, policy: Policy, level: Level = Level.MUST) -> Verdict:
    """While the engine serves streaming requests, the EPP sees them (running or queued above 0) and the KV cache in
    use (above 0)."""
    probe = _probe(obs, policy, level)
    if isinstance(probe, Verdict):
        return probe
    during, texts = probe
    busy = [during.get(texts[m]) or 0.0 for m in (Metric.RUNNING, Metric.QUEUED)]
    kv = during.get(texts[Metric.KV_USAGE]) or 0.0
    evidence = {"during": during}
    if not any(busy):
        opened = obs.aborts.opened if obs.aborts else 0
        return Verdict(Outcome.FAILED, f"{_where(obs)}: while {opened} streaming requests were open, "
                                       f"{texts[Metric.RUNNING]} and {texts[Metric.QUEUED]} read 0: the endpoint "
                                       f"picker takes this pod as idle while it serves, and sends it more.", level,
                       evidence)
    if not kv:
        return Verdict(Outcome.FAILED, f"{_where(obs)}: while requests were running, {texts[Metric.KV_USAGE]} read 0: "
                                       f"the endpoint picker's KV-cache scorer takes this pod as empty.", level,
                       evidence)
    return Verdict(Outcome.PASSED, level=level, evidence=evidence)


def back_to_idle(obs: Observation, policy: Policy, level: Level = Level.MUST) -> Verdict:
    """Once the requests are closed, running, queued and KV-cache utilization read 0 again within the engine's bound
    (conformance/engines.toml settle_seconds)."""
    probe = _probe(obs, policy, level)
    if isinstance(probe, Verdict):
        return probe
    aborts = obs.aborts
    assert aborts is not None
    evidence = {"after": aborts.after, "waited": aborts.waited, "settled_after": aborts.settled_after}
    if aborts.settled_after is not None:
        return Verdict(Outcome.PASSED, level=level, evidence=evidence)
    still = ", ".join(f"{name} {value:g}" for name, value in aborts.after.items() if value)
    return Verdict(Outcome.FAILED, f"{_where(obs)}: {aborts.waited:g} s after its requests were closed, {still}: the "
                                   f"endpoint picker keeps routing around a pod that is idle. (SGLang before its "
                                   f"idle-metrics fix kept its gauges up to ~30 s.)", level, evidence)


def _probe(obs: Observation, policy: Policy, level: Level
           ) -> tuple[dict[str, float | None], dict[Metric, str]] | Verdict:
    """What the load probe of observe read (streams opened, gauges while open and after), or why it is missing."""
    problem = obs.failure(Stage.BEFORE, Stage.TRAFFIC, Stage.AFTER)  # a server not observed: nothing can be told
    if problem:
        return problem.verdict(level)
    if obs.target.engine is Engine.VLLM and not policy.exclusive:
        # vLLM's gauges are probed in exclusive runs only: its streams would enter the counters other checks read
        return Verdict(Outcome.SKIPPED, "vLLM's gauges under load are probed with --vllm-exclusive (test_accounting.py "
                                        "judges them then)", level)
    if policy.via_gateway:
        return Verdict(Outcome.SKIPPED, "the workload went through the inference gateway: the load probe needs each "
                                        "pod's own streams (run without --vllm-gateway-url)", level)
    aborts = obs.aborts
    if aborts is None:
        return Verdict(Outcome.INCONCLUSIVE, f"{obs.target.name}: the load probe did not run", level)
    if aborts.error:
        return Verdict(Outcome.INCONCLUSIVE, f"{obs.target.name}: the load probe could not run: {aborts.error}", level)
    if not aborts.during:
        return Verdict(Outcome.INCONCLUSIVE, f"{obs.target.name}: the load probe's streams ended before the gauges "
                                             f"could be read", level)
    # observe records each gauge under its selector's text (vLLM's abort probe: accounting.toml's names, the same)
    return aborts.during, dict(engines.profile(obs.target.engine).required)


def kv_cache_shape(obs: Observation, level: Level = Level.MAY) -> Verdict:
    """The optional block size and number of blocks, in the form the engine's version serves them, as whole
    numbers (the EPP parses a label value with strconv.Atoi)."""
    problem = obs.failure(Stage.BEFORE)
    if problem:
        return problem.verdict(level)
    page = obs.before
    assert page is not None
    forms = engines.profile(obs.target.engine).cache_forms(obs.version)
    tried = []
    for form in forms:
        values = {"block_size": _cache_value(page, form.block_size), "num_blocks": _cache_value(page, form.num_blocks)}
        shown = f"{_spec_text(form.block_size)} and {_spec_text(form.num_blocks)}"
        if all(v is None for v in values.values()):
            tried.append(shown)
            continue
        wrong = {k: v for k, v in values.items() if v is None or not str(v).isdigit()}
        if wrong:
            return Verdict(Outcome.FAILED, f"{_where(obs)}: {shown}: "
                                           + ", ".join(f"{k} reads {v!r}" for k, v in wrong.items())
                           + "; the endpoint picker parses each as a whole number and fails to read the pod's KV "
                             "cache shape.", level, {"form": shown, **values})
        return Verdict(Outcome.PASSED, level=level, evidence={"form": shown, **values})
    return Verdict(Outcome.SKIPPED, f"serves neither {' nor '.join(tried)} (optional in the protocol: the endpoint "
                                    f"picker's prefix-cache scoring then assumes its configured block size)", level)


@cache
def _cache_selector(text: str) -> Selector:
    return engines.selector(text)


def _spec_text(spec: CacheSpec) -> str:
    return f"{spec.name} label {spec.label}" if spec.label else spec.name


def _cache_value(page: Snapshot, spec: CacheSpec) -> str | None:
    reading = read(page, _cache_selector(spec.name))
    if not reading.series:
        return None
    if spec.label:
        return dict(reading.series[0].labels).get(spec.label)
    value = reading.value
    return str(int(value)) if value is not None and not math.isnan(value) and value == int(value) else str(value)


def model_named(obs: Observation, level: Level = Level.SHOULD) -> Verdict:
    """The required metrics name the model the server serves (its /v1/models, the workload's `model`) in the engine's
    model label: what dashboards and the EPP's per-model views group by."""
    problem = obs.failure(Stage.BEFORE, Stage.TRAFFIC)
    if problem:
        return problem.verdict(level)
    served = obs.traffic.model if obs.traffic else None
    if not served:
        return Verdict(Outcome.INCONCLUSIVE, f"{obs.target.name}: the workload found no model to compare with", level)
    profile = engines.profile(obs.target.engine)
    page = obs.before
    assert page is not None
    named = {}
    for metric in REQUIRED:
        spec = profile.selectors()[metric]
        for s in read(page, spec).series:
            named[spec.name] = dict(s.labels).get(profile.model_label)
    wrong = {name: label for name, label in named.items() if label != served}
    evidence = {"served": served, "label": profile.model_label, "named": named}
    if not wrong:
        return Verdict(Outcome.PASSED, level=level, evidence=evidence)
    parts = [f"{name} {'has no ' + profile.model_label + ' label' if label is None else f'names {label!r}'}"
             for name, label in wrong.items()]
    return Verdict(Outcome.FAILED, f"{_where(obs)} serves model {served!r}, but {'; '.join(parts)}: a dashboard or "
                                   f"an alert that selects {profile.model_label}={served!r} sees nothing of this pod.",
                   level, evidence)
