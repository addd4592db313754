"""Where a reader's series come from: the direct scrapes of the fleet (each server's series with the labels a
Prometheus Operator scrape would add, where discovery knows them), or Prometheus; and the context one reader is
judged in (what it is, the fleet it reads, Prometheus, the wait).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import promql_parser

from . import promql
from .catalog import Catalog
from .observe import Observation
from .outcome import Level, Outcome, Verdict
from .prometheus import TARGET_LABELS, Prometheus, scrape_interval
from .promql import Selector
from .readers import UNKNOWN, Reader, component_of, data, noun
from .settings import Policy
from .targets import TargetSource

__all__ = ["Context", "Matcher", "PromLookup", "Scrapes", "accepts_any", "default_wait", "matches", "named", "poll",
           "query_values"]

Matcher = tuple[str, str, str]  # (label, op, value)
# Values a matcher is tried on to tell whether it accepts any value of a label (`=~".*"`, `!=""` on job).
_ANY_VALUES = ("x", "vllm-decode-0", "10.0.0.7:8000", "llm-d/vllm")


def _hit(op: str, value: str, have: str) -> bool | None:
    """Whether a label's value passes a matcher; None for a regex Prometheus would refuse too."""
    try:
        hit = have == value if op in ("Equal", "NotEqual") else re.fullmatch(value, have) is not None
    except re.error:
        return None
    return hit != op.startswith("Not")


def accepts_any(label: str, op: str, value: str) -> bool:
    """A matcher on a scrape label that every series passes whatever the label's value: `=~".*"`, and for the
    labels Prometheus always sets (job, instance) any matcher that accepts every non-empty value (`!=""`)."""
    values = _ANY_VALUES if label in data().scrape_labels.always_set else ("", *_ANY_VALUES)
    return all(_hit(op, value, have) for have in values)


def matches(matchers: Iterable[Matcher], labels: dict[str, str], wildcard: bool,
             unknown: frozenset[str] = frozenset()) -> bool:
    """A series' labels against a selector's matchers. Matchers on `unknown` labels (scrape labels whose value
    the run cannot know) are not judged here: the caller says so (Scrapes.unjudged), or Prometheus judges them."""
    for label, op, value in matchers:
        if label in unknown or (wildcard and value == UNKNOWN):
            continue
        if _hit(op, value, labels.get(label, "")) is False:
            return False
    return True


class Scrapes:
    """The direct scrapes as Grafana's variable queries and the panel's selectors see them: each server's series
    with the labels a Prometheus Operator scrape would add, where discovery knows them."""

    def __init__(self, seen: list[Observation], policy: Policy) -> None:
        self.seen = seen
        self.policy = policy
        self.wildcard = False  # set when a variable could not be known (written as .*)
        self.synthesized = set(data().prometheus.synthesized)
        # matchers on scrape labels the run cannot know (job, service, ..., or any of them for URL targets), with
        # the servers whose series they would have to judge: a reader that needs them cannot be judged "ok"
        self.unjudged: dict[Matcher, list[str]] = {}
        self._targets: dict[str, tuple[dict[str, str], frozenset[str]]] = {}

    def target_labels(self, obs: Observation) -> tuple[dict[str, str], frozenset[str]]:
        """The scrape labels known for a server (as Prometheus Operator sets them: pod, namespace, container), and
        the scrape labels whose value only Prometheus knows."""
        known = self._targets.get(obs.target.name)
        if known is None:
            labels = {"namespace": self.policy.namespace or ""}
            if obs.target.source is TargetSource.KUBERNETES:
                labels.update(namespace=obs.target.detail.get("namespace", ""), pod=obs.target.name,
                              container=obs.target.detail.get("container", ""))
            labels = {k: v for k, v in labels.items() if v}
            known = self._targets[obs.target.name] = (labels, frozenset(TARGET_LABELS) - set(labels))
        return known

    def series(self, metric: str | None) -> Iterable[tuple[str, dict[str, str], dict[str, str]]]:
        for obs in self.seen:
            assert obs.after is not None
            target, _ = self.target_labels(obs)
            names = [metric] if metric else list(obs.after.samples)
            for name in names:
                for series in obs.after.samples.get(name, []):
                    yield name, dict(series.labels), target

    def selected(self, obs: Observation, selector: Selector, name: str | None = None,
                 skip: tuple[str, ...] = ()) -> list[dict[str, str]]:
        """A server's series of `name` (default: the selector's own) that the selector's matchers select, with
        its scrape labels; matchers on the `skip` labels are left out (`le` when a histogram's count is read)."""
        assert obs.after is not None
        target, unknown = self.target_labels(obs)
        matchers = [m for m in selector.matchers if m[0] not in skip]
        wanted = name or selector.metric
        out = []
        for sample in [wanted] if wanted else list(obs.after.samples):  # {model_name="x"} selects by labels only
            for series in obs.after.samples.get(sample, []):
                labels = {**dict(series.labels), **target}  # a scrape label overrides the page's (honor_labels off)
                if matches(matchers, labels, self.wildcard, unknown):
                    out.append(labels)
        return out

    def has(self, selector: Selector) -> bool:
        if component_of(selector.metric):
            return True  # another component's: not judged on vLLM's pages
        if selector.metric in self.synthesized:
            return self._synthesized(selector)
        found = False
        for obs in self.seen:
            if not self.selected(obs, selector):
                continue
            found = True
            _, unknown = self.target_labels(obs)
            for matcher in selector.matchers:
                if matcher[0] in unknown and not accepts_any(*matcher) and not (
                        self.wildcard and matcher[2] == UNKNOWN):
                    self.unjudged.setdefault(matcher, []).append(obs.target.name)
        return found

    def _synthesized(self, selector: Selector) -> bool:
        """A series Prometheus makes per target it scrapes (`up`, or a recording rule's): it carries the target's
        labels only, so its matchers are judged on the labels discovery knows, and the others are Prometheus'
        (`up{job="vllm"}` says nothing without it)."""
        if not selector.matchers:
            return True
        found = False
        for obs in self.seen:
            target, _ = self.target_labels(obs)
            judged = [m for m in selector.matchers if m[0] in target]
            if not matches(judged, target, self.wildcard):
                continue
            found = True
            for matcher in selector.matchers:
                if matcher[0] not in target and not accepts_any(*matcher) and not (
                        self.wildcard and matcher[2] == UNKNOWN):
                    self.unjudged.setdefault(matcher, []).append(obs.target.name)
        return found

    def _selected(self, match: str | None) -> Iterable[dict[str, str]] | None:
        if not match:
            return ({**own, **t} for _, own, t in self.series(None))
        try:
            (selector,) = promql.selectors(match)
        except ValueError:
            return None
        return ({**own, **t} for _, own, t in self.series(selector.metric or None)
                if matches(selector.matchers, {**own, **t}, True, frozenset(TARGET_LABELS) - set(t)))

    def label_values(self, label: str, match: str | None) -> list[str] | None:
        found = self._selected(match)
        values = sorted({s[label] for s in found if label in s}) if found is not None else []
        return values or None  # a label the scrape cannot show (Prometheus may add it): unknown

    def label_names(self, match: str | None) -> list[str] | None:
        found = self._selected(match)
        return sorted({k for s in found for k in s}) if found is not None else None

    def metric_names(self) -> list[str] | None:
        return sorted({name for name, _, _ in self.series(None)})

    def query_result(self, query: str) -> list[str] | None:
        try:
            ast = promql.parse(query)
        except (ValueError, RuntimeError):
            return None
        if not isinstance(ast, promql_parser.VectorSelector):
            return None  # an expression (sum, rate, ...) only Prometheus can evaluate: unknown
        selector = promql.selector_of(ast)
        return [_result_text(name, {**own, **t}, None) for name, own, t in self.series(selector.metric)
                if matches(selector.matchers, {**own, **t}, True, frozenset(TARGET_LABELS) - set(t))]


def _result_text(name: str, labels: dict[str, str], value: Any) -> str:
    """A series as Grafana's query_result() writes it for a variable's regex: name{a="b", ...} value ts."""
    inner = ", ".join(f'{k}="{v}"' for k, v in labels.items() if k != "__name__")
    tail = f" {value[1]} {int(float(value[0]) * 1000)}" if value else ""
    return f"{name}{{{inner}}}{tail}"


class PromLookup:
    def __init__(self, prom: Prometheus) -> None:
        self.prom = prom
        self.start = f"{time.time() - 3600:.0f}"  # Grafana asks within the dashboard's range (here: the last hour)

    def label_values(self, label: str, match: str | None) -> list[str] | None:
        params = {"match[]": match} if match else {}
        return [str(v) for v in self.prom.get(f"/api/v1/label/{label}/values", start=self.start, **params)]

    def label_names(self, match: str | None) -> list[str] | None:
        params = {"match[]": match} if match else {}
        return [str(v) for v in self.prom.get("/api/v1/labels", start=self.start, **params)]

    def metric_names(self) -> list[str] | None:
        return self.label_values("__name__", None)

    def query_result(self, query: str) -> list[str] | None:
        data = self.prom.get("/api/v1/query", query=query)
        if data["resultType"] != "vector":
            return [f"{data['resultType']} {data['result'][1]} {int(float(data['result'][0]) * 1000)}"]
        return [_result_text(s["metric"].get("__name__", ""), s["metric"], s["value"]) for s in data["result"]]


def query_values(prom: Prometheus, expr: str) -> list[float]:
    """An instant query's values; a scalar is one value (Prometheus' query() helper keeps vectors only)."""
    data = prom.get("/api/v1/query", query=expr)
    if data["resultType"] in ("scalar", "string"):
        return [float(data["result"][1])] if data["resultType"] == "scalar" else [0.0]
    if data["resultType"] == "matrix":
        return [float(s["values"][-1][1]) for s in data["result"] if s["values"]]
    return [float(s["value"][1]) for s in data["result"]]


@dataclass
class Context:
    reader: Reader
    where: str
    seen: list[Observation]
    catalog: Catalog
    policy: Policy
    prom: Prometheus | None
    wait: float | None
    scrapes: Scrapes
    exprs: list[str] = field(default_factory=list)
    shown: dict[str, str] = field(default_factory=dict)  # variable -> the value the verdict was judged with

    @property
    def noun(self) -> str:
        return noun(self.reader.kind)

    def verdict(self, outcome: Outcome, kind: str, message: str, diagnosis: str | None = None,
                level: Level = Level.MUST, **evidence: Any) -> Verdict:
        never = data().never.get(self.reader.kind)  # what an empty result means for a consumer
        if never and outcome == Outcome.FAILED and kind in ("no data", "label mismatch"):
            message = f"{never} {message}"
        evidence = {"panel_verdict": kind, "exprs": self.exprs, "variables": self.shown, **evidence}
        return Verdict(outcome, message, level, evidence, diagnosis=diagnosis, target=self.reader.dashboard)


def named(names: list[str], shown: int = 5) -> str:
    if len(names) <= shown:
        return ", ".join(names)
    return f"{', '.join(names[:shown])} and {len(names) - shown} more"


def default_wait(interval: float) -> float:
    """How long an empty query is polled when the run sets no wait: two scrape intervals (one scrape may have
    just been missed) and 5 s for Prometheus to answer."""
    return 2 * interval + 5


def poll(ctx: Context, expr: str) -> list[float]:
    """Ask again until the query returns data, bounded by the wait: Prometheus scrapes on its own schedule."""
    assert ctx.prom is not None
    if ctx.wait is None:
        ctx.wait = default_wait(scrape_interval(ctx.prom))
    deadline = time.monotonic() + ctx.wait
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(0.25, left))
        got = query_values(ctx.prom, expr)
        if got:
            return got
    return []
