"""Dashboard check: for each Grafana panel, will it show data, and if not, exactly why.

Panels are read as Grafana reads them (_grafana.py: file shapes, variables). At evaluation the variables are
resolved against Prometheus when given, else against the direct scrapes, and each query (target) is judged as
a whole PromQL expression: `A or B` shows data when either side does, `absent(x)` when x has none. A panel
gets one verdict: ok, partial (some of its queries are empty), no data, label mismatch, always zero / NaN,
not a vLLM metric, feature not enabled, unparsable, not checkable (a library panel) or inconclusive.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any

import promql_parser

from . import _grafana as grafana
from . import evaluate, promql
from ._grafana import DashboardError, Value
from .catalog import Catalog, Entry, conformance_data
from .observe import Observation
from .outcome import WORST_FIRST, Outcome, Verdict
from .prometheus import TARGET_LABELS, Prometheus, PrometheusError, scrape_interval
from .promql import Selector, selectors
from .settings import Policy

__all__ = ["DashboardError", "Panel", "Query", "configmap_panels", "evaluate_panel", "family_of", "load_panels",
           "selectors", "substitute"]

_HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")


@dataclass(frozen=True)
class Query:
    ref_id: str
    expr: str  # as written, variables and all


@dataclass(frozen=True)
class Panel:
    dashboard: str  # the file's (or ConfigMap key's) stem: short, for test ids
    title: str
    queries: tuple[Query, ...]
    variables: tuple[grafana.Variable, ...] = ()  # resolved at evaluation: query variables need the data
    dashboard_title: str = ""
    repeat: str | None = None  # the variable the panel is repeated for
    library: str | None = None  # a library panel whose model lives in Grafana, not in the file
    # Where the dashboard draws it, for the report's picture of the dashboard (not part of any verdict).
    grid: grafana.Grid | None = field(default=None, compare=False)  # x, y, w, h; None: the file says nothing
    row: str = field(default="", compare=False)  # the title of the row holding it
    # What reads these queries: a Grafana "panel", or another consumer of the metrics ("alert", "record",
    # "keda", "adapter", "epp"): those are judged with the same vocabulary but are not drawn as dashboards.
    kind: str = "panel"
    # The series the run's recording rules make (consumers.py): Prometheus makes them, not vLLM, so a direct
    # scrape cannot show them; each recording rule is judged on its own.
    recorded: frozenset[str] = field(default=frozenset(), compare=False)

    @property
    def id(self) -> str:
        return f"{self.dashboard}::{self.title}"

    @property
    def exprs(self) -> tuple[str, ...]:
        return tuple(q.expr for q in self.queries)


@cache
def _data() -> dict[str, Any]:
    return conformance_data("dashboards.toml")


# -- loading -----------------------------------------------------------------------------------------------


def load_panels(paths: Iterable[Path]) -> list[Panel]:
    panels: list[Panel] = []
    ids: set[str] = set()
    for dashboard in grafana.load(paths):
        found = _panels(dashboard)
        if not found:
            raise DashboardError(
                f"dashboard {dashboard.where} ({dashboard.title}) has no panel with a Prometheus query: its panels' "
                f"targets carry no 'expr' (text panels, or another data source such as Loki), so there is nothing "
                f"to check. Pass the dashboards that chart vLLM's Prometheus metrics to --grafana-dashboard.")
        for panel in found:
            title, n = panel.title, 1
            while f"{panel.dashboard}::{title}" in ids:  # test ids must be unique across every file
                n += 1
                title = f"{panel.title} ({n})"
            ids.add(f"{panel.dashboard}::{title}")
            panels.append(Panel(panel.dashboard, title, panel.queries, panel.variables, panel.dashboard_title,
                                panel.repeat, panel.library, panel.grid, panel.row))
    return panels


def configmap_panels(configmap: dict[str, Any], where: str) -> list[Panel]:
    """The panels of a dashboard ConfigMap read from the cluster (the Grafana sidecar's shape: each data key one
    dashboard JSON); `where` names it in messages. DashboardError when it holds no usable dashboard."""
    return [panel for dashboard in grafana.from_configmap(where, configmap) for panel in _panels(dashboard)]


def _panels(dashboard: grafana.Dashboard) -> list[Panel]:
    variables = grafana.variables(dashboard.model)
    out: list[Panel] = []
    for placed in grafana.walk_panels(dashboard.model):
        raw = placed.panel
        if raw.get("type") == "row":
            continue
        title = str(raw.get("title") or f"panel {raw.get('id', '?')}")
        repeat = str(raw["repeat"]) if raw.get("repeat") else None
        queries = tuple(Query(str(t.get("refId") or chr(ord("A") + i)), str(t["expr"]))
                        for i, t in enumerate(raw.get("targets") or [])
                        if isinstance(t, dict) and t.get("expr") and not t.get("hide")
                        and _prometheus(t.get("datasource"), raw.get("datasource")))
        library = raw.get("libraryPanel")
        if not queries and isinstance(library, dict):
            name = str(library.get("name") or library.get("uid") or "?")
            out.append(Panel(dashboard.name, str(raw.get("title") or name), (), variables, dashboard.title,
                             repeat, name, placed.grid, placed.row))
        elif queries:
            out.append(Panel(dashboard.name, title, queries, variables, dashboard.title, repeat,
                             grid=placed.grid, row=placed.row))
    return out


def _prometheus(*datasources: Any) -> bool:
    """A target queries Prometheus unless its (or its panel's) data source says another type."""
    for datasource in datasources:
        if isinstance(datasource, dict) and datasource.get("type") not in (None, "", "datasource"):
            return str(datasource["type"]) == "prometheus"
    return True


def substitute(expr: str, variables: dict[str, str], namespace: str | None) -> str:
    """Plain substitution of single values (and the built-in durations); evaluate_panel resolves as Grafana."""
    values = {name: Value(grafana.Variable(name, "constant"), (value,)) for name, value in variables.items()}
    if namespace:
        values["namespace"] = Value(grafana.Variable("namespace", "constant"), (namespace,))
    return grafana.interpolate(expr, values, _data()["durations"])


# -- where the data comes from -----------------------------------------------------------------------------

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


def _accepts_any(label: str, op: str, value: str) -> bool:
    """A matcher on a scrape label that every series passes whatever the label's value: `=~".*"`, and for the
    labels Prometheus always sets (job, instance) any matcher that accepts every non-empty value (`!=""`)."""
    values = _ANY_VALUES if label in _data()["scrape_labels"]["always_set"] else ("", *_ANY_VALUES)
    return all(_hit(op, value, have) for have in values)


def _matches(matchers: Iterable[Matcher], labels: dict[str, str], wildcard: bool,
             unknown: frozenset[str] = frozenset()) -> bool:
    """A series' labels against a selector's matchers. Matchers on `unknown` labels (scrape labels whose value
    the run cannot know) are not judged here: the caller says so (Scrapes.unjudged), or Prometheus judges them."""
    for label, op, value in matchers:
        if label in unknown or (wildcard and value == grafana.UNKNOWN):
            continue
        if _hit(op, value, labels.get(label, "")) is False:
            return False
    return True


class _Scrapes:
    """The direct scrapes as Grafana's variable queries and the panel's selectors see them: each server's series
    with the labels a Prometheus Operator scrape would add, where discovery knows them."""

    def __init__(self, seen: list[Observation], policy: Policy) -> None:
        self.seen = seen
        self.policy = policy
        self.wildcard = False  # set when a variable could not be known (written as .*)
        self.synthesized = set(_data()["prometheus"]["synthesized"])
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
            if obs.target.source == "kubernetes":
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
                if _matches(matchers, labels, self.wildcard, unknown):
                    out.append(labels)
        return out

    def has(self, selector: Selector) -> bool:
        if _component(selector.metric):
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
                if matcher[0] in unknown and not _accepts_any(*matcher) and not (
                        self.wildcard and matcher[2] == grafana.UNKNOWN):
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
            if not _matches(judged, target, self.wildcard):
                continue
            found = True
            for matcher in selector.matchers:
                if matcher[0] not in target and not _accepts_any(*matcher) and not (
                        self.wildcard and matcher[2] == grafana.UNKNOWN):
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
                if _matches(selector.matchers, {**own, **t}, True, frozenset(TARGET_LABELS) - set(t)))

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
                if _matches(selector.matchers, {**own, **t}, True, frozenset(TARGET_LABELS) - set(t))]


def _result_text(name: str, labels: dict[str, str], value: Any) -> str:
    """A series as Grafana's query_result() writes it for a variable's regex: name{a="b", ...} value ts."""
    inner = ", ".join(f'{k}="{v}"' for k, v in labels.items() if k != "__name__")
    tail = f" {value[1]} {int(float(value[0]) * 1000)}" if value else ""
    return f"{name}{{{inner}}}{tail}"


class _PromLookup:
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


def _values(prom: Prometheus, expr: str) -> list[float]:
    """An instant query's values; a scalar is one value (Prometheus' query() helper keeps vectors only)."""
    data = prom.get("/api/v1/query", query=expr)
    if data["resultType"] in ("scalar", "string"):
        return [float(data["result"][1])] if data["resultType"] == "scalar" else [0.0]
    if data["resultType"] == "matrix":
        return [float(s["values"][-1][1]) for s in data["result"] if s["values"]]
    return [float(s["value"][1]) for s in data["result"]]


# -- verdicts ----------------------------------------------------------------------------------------------


def _noun(kind: str) -> str:
    """What a verdict speaks of: a panel, an alert, a KEDA scaler... (dashboards.toml [kinds])."""
    return str(_data()["kinds"].get(kind, kind))


@dataclass
class _Context:
    panel: Panel
    where: str
    seen: list[Observation]
    catalog: Catalog
    policy: Policy
    prom: Prometheus | None
    wait: float | None
    scrapes: _Scrapes
    exprs: list[str] = field(default_factory=list)
    shown: dict[str, str] = field(default_factory=dict)  # variable -> the value the verdict was judged with

    @property
    def noun(self) -> str:
        return _noun(self.panel.kind)

    def verdict(self, outcome: Outcome, kind: str, message: str, diagnosis: str | None = None,
                level: str = "MUST", **evidence: Any) -> Verdict:
        never = _data()["never"].get(self.panel.kind)  # what an empty result means for a consumer
        if never and outcome == Outcome.FAILED and kind in ("no data", "label mismatch"):
            message = f"{never} {message}"
        evidence = {"panel_verdict": kind, "exprs": self.exprs, "variables": self.shown, **evidence}
        return Verdict(outcome, message, level, evidence, diagnosis=diagnosis, target=self.panel.dashboard)


def evaluate_panel(panel: Panel, observations: list[Observation], catalog: Catalog, policy: Policy,
                   prom: Prometheus | None = None, wait: float | None = None) -> Verdict:
    """The panel's verdict. `wait` bounds how long an empty Prometheus query is polled while the data it
    needs are arriving (default: two scrape intervals and 5 s)."""
    seen = [o for o in observations if o.after is not None]
    where = f"{_noun(panel.kind)} \"{panel.title}\" ({panel.dashboard_title or panel.dashboard})"
    ctx = _Context(panel, where, seen, catalog, policy, prom, wait, _Scrapes(seen, policy), list(panel.exprs))
    ctx.scrapes.synthesized |= panel.recorded
    if panel.library is not None:
        return ctx.verdict(Outcome.INCONCLUSIVE, "not checkable", _data()["messages"]["library"].format(
            where=where, name=panel.library))
    try:
        lookup: grafana.Lookup = _PromLookup(prom) if prom is not None else ctx.scrapes
        values = grafana.resolve(panel.variables, lookup, policy.namespace, _data()["durations"])
    except PrometheusError as exc:
        return ctx.verdict(Outcome.INCONCLUSIVE, "inconclusive",
                           f"{where}: its variables could not be resolved: {exc}")
    ctx.scrapes.wildcard = any(not v.known for v in values.values())
    repeated = values.get(panel.repeat) if panel.repeat else None
    if repeated is None or not repeated.each:
        return _evaluate(ctx, values)
    verdicts = []
    for each in repeated.each:  # Grafana draws one copy per selected value (every value for All)
        one = _evaluate(ctx, {**values, repeated.variable.name: repeated.single(each)})
        one.message = f"{one.message} (the copy repeated for ${repeated.variable.name}={each})" if one.message \
            else one.message
        verdicts.append(one)
    return next(v for o in WORST_FIRST for v in verdicts if v.outcome == o)


def _evaluate(ctx: _Context, values: dict[str, Value]) -> Verdict:
    durations = _data()["durations"]
    ctx.shown = {name: value.shown for name, value in values.items()}
    ctx.exprs = [grafana.interpolate(q.expr, values, durations) for q in ctx.panel.queries]
    ctx.scrapes.unjudged = {}
    where = ctx.where
    parsed = []
    for query, expr in zip(ctx.panel.queries, ctx.exprs, strict=True):
        try:
            parsed.append((query.ref_id, expr, promql.parse(expr)))
        except (ValueError, RuntimeError) as exc:
            return ctx.verdict(Outcome.FAILED, "unparsable",
                               f"{where}: its query does not parse as PromQL ({exc}): {expr}. Grafana shows an "
                               f"error instead of data; fix the expression.")
    every = [s for _, expr, _ in parsed for s in promql.selectors(expr)]
    vllm = [s for s in every if not _component(s.metric)]
    if every and not vllm:  # every selector is another component's
        components = {str((_component(s.metric) or {})["name"]): _component(s.metric) or {} for s in every}
        component = next(iter(components.values()))
        names = ", ".join(sorted({s.metric for s in every}))
        return ctx.verdict(Outcome.SKIPPED, "not a vLLM metric", f"{where} is built on {names}, metrics of "
                                                                 f"{component['name']}, not of vLLM: "
                                                                 f"{component['fix']}.")
    if not ctx.seen:
        return ctx.verdict(Outcome.INCONCLUSIVE, "inconclusive", f"{where}: no target was scraped after the "
                                                                 f"workload, so nothing can be said of the {ctx.noun}; "
                                                                 f"see the targets' own failures.")
    try:
        return _judge_queries(ctx, parsed)
    except PrometheusError as exc:
        return ctx.verdict(Outcome.INCONCLUSIVE, "inconclusive", f"{where}: Prometheus could not answer, so the "
                                                                 f"panel could not be judged: {exc}")


def _judge_queries(ctx: _Context, parsed: list[tuple[str, str, Any]]) -> Verdict:
    where, prom = ctx.where, ctx.prom
    present: dict[str, bool] = {}

    def has(selector: Selector) -> bool:  # one question per distinct selector
        if selector.shown not in present:
            if prom is None:
                present[selector.shown] = ctx.scrapes.has(selector)
            else:
                present[selector.shown] = bool(prom.query(f"count({selector.shown})"))
                if not present[selector.shown] and selector.metric in ctx.panel.recorded:
                    # a recorded series appears at the rule's next evaluation after its inputs have samples
                    present[selector.shown] = bool(_poll(ctx, f"count({selector.shown})"))
        return present[selector.shown]

    empty: list[tuple[str, str, Verdict]] = []  # (refId, expr, why it is empty)
    notes: list[str] = []
    returned: list[float] = []
    alert = ctx.panel.kind == "alert"
    for ref_id, expr, ast in parsed:
        judged = promql.judge(ast, has)
        notes += [f"{s.metric} (in query {ref_id}) is missing, but the other side of its 'or' has data"
                  for s in judged.notes]
        if alert and not judged.data and not judged.empty and judged.absent:
            # an absence alert is quiet while what it watches has series: that is what it is for
            notes.append(f"it fires when {', '.join(s.shown for s in judged.absent)} has no series; it has now")
            continue
        if prom is None:
            if not judged.data:
                empty.append((ref_id, expr, _why_empty(ctx, judged)))
            continue
        got = _values(prom, expr)
        if not got and judged.data and alert:  # an alert's expression is empty while its condition is false
            quiet = _quiet_alert(ctx, ast)
            if isinstance(quiet, Verdict):
                empty.append((ref_id, expr, quiet))
            else:
                returned += quiet
                notes.append("not firing now: its condition is false, and the series it compares have data")
            continue
        if not got and judged.data:  # every selector has series: the query may be waiting for samples
            got = _poll(ctx, expr)
            if not got:
                empty.append((ref_id, expr, _after_wait(ctx, ast, expr)))
                continue
        if not got:
            empty.append((ref_id, expr, _why_empty(ctx, judged)))
        returned += got
    if empty and len(empty) == len(parsed):  # nothing shows: the most telling query's reason, in full
        return next(why for o in WORST_FIRST for _, _, why in empty if why.outcome == o)
    if empty:
        parts = [f"query {ref_id} ({expr}) returns nothing: {why.message}" for ref_id, expr, why in empty]
        outcomes = {why.outcome for _, _, why in empty}
        if Outcome.INCONCLUSIVE in outcomes and Outcome.FAILED not in outcomes:  # a form only Prometheus can tell
            return ctx.verdict(Outcome.INCONCLUSIVE, "inconclusive", f"{where} shows data from some of its queries, "
                               f"and the others could not be judged; " + " ".join(parts), notes=notes)
        return ctx.verdict(Outcome.FAILED, "partial", f"{where} shows data, but only from some of its queries; "
                                                      + " ".join(parts), level="SHOULD", notes=notes)
    live = [(s, keep) for _, _, ast in parsed for s, keep in promql.kept_labels(ast)
            if not _component(s.metric) and has(s)]
    for selector, _ in live:
        feature = _optional_feature(selector.metric)
        if feature and not any(feature in o.features for o in ctx.seen) and feature not in ctx.policy.require:
            return ctx.verdict(Outcome.SKIPPED, "feature not enabled",
                               f"{where} charts {selector.metric}, which only moves with feature {feature}; the "
                               f"feature is not enabled on these servers (pass --vllm-require-feature={feature} "
                               f"to require it).")
    covered = _coverage(ctx, parsed)
    if isinstance(covered, Verdict):
        return _unless_unjudged(ctx, covered)
    notes += covered
    moved = _movement(ctx, live)
    if moved.verdict is not None:
        return _unless_unjudged(ctx, moved.verdict, certain=moved.certain)
    notes += moved.notes
    entries = [entry for s, _ in live if (entry := family_of(s.metric, ctx.catalog)) is not None]
    moving = any(entry.moves for entry in entries)
    if (prom is not None and moving and not moved.unexercised and returned
            and all(v == 0 or v != v for v in returned)):
        return ctx.verdict(Outcome.FAILED, "always zero / NaN", f"{where}: Prometheus returns only 0 or NaN for "
                                                                f"its queries.")
    ok = ctx.verdict(Outcome.PASSED, "ok", " ".join(notes + moved.unexercised), notes=notes + moved.unexercised)
    return _unless_unjudged(ctx, ok)


def _unless_unjudged(ctx: _Context, verdict: Verdict, certain: bool = False) -> Verdict:
    """Without Prometheus, a verdict that rests on a matcher the run could not judge (a scrape label whose value
    discovery does not know) is inconclusive, naming the label: never "ok" on a matcher that was not judged."""
    unjudged = ctx.scrapes.unjudged if ctx.prom is None else {}
    if not unjudged or certain:  # e.g. every server's series stayed at 0: so do those the matcher selects
        return verdict
    sign = {"Equal": "=", "NotEqual": "!=", "Re": "=~", "NotRe": "!~"}
    shown = ", ".join(f'{label}{sign[op]}"{value}"' for label, op, value in unjudged)
    labels = sorted({label for label, _, _ in unjudged})
    servers = sorted({name for names in unjudged.values() for name in names})
    known = ("URL targets carry none of them" if all(o.target.source != "kubernetes" for o in ctx.seen)
             else "Kubernetes discovery knows pod, namespace and container, not " + ", ".join(labels))
    return ctx.verdict(Outcome.INCONCLUSIVE, "inconclusive", _data()["messages"]["unjudged"].format(
        where=ctx.where, matchers=shown, labels=", ".join(labels), known=known, noun=ctx.noun,
        servers=_names(servers)), unjudged=shown)


def _names(names: list[str], shown: int = 5) -> str:
    if len(names) <= shown:
        return ", ".join(names)
    return f"{', '.join(names[:shown])} and {len(names) - shown} more"


def default_wait(interval: float) -> float:
    """How long an empty query is polled when the run sets no wait: two scrape intervals (one scrape may have
    just been missed) and 5 s for Prometheus to answer."""
    return 2 * interval + 5


def _poll(ctx: _Context, expr: str) -> list[float]:
    """Ask again until the query returns data, bounded by the wait: Prometheus scrapes on its own schedule."""
    assert ctx.prom is not None
    if ctx.wait is None:
        ctx.wait = default_wait(scrape_interval(ctx.prom))
    deadline = time.monotonic() + ctx.wait
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(0.25, left))
        got = _values(ctx.prom, expr)
        if got:
            return got
    return []


_FILTERS = ("==", "!=", ">", "<", ">=", "<=")


def _compared(node: Any) -> list[Any]:
    """What an alert's condition compares: the operands of its filtering comparisons and of 'and'/'unless',
    without number literals (`a / b > 0.9 and c` compares a / b and c)."""
    if isinstance(node, promql_parser.ParenExpr):
        return _compared(node.expr)
    if isinstance(node, promql_parser.BinaryExpr):
        op = str(node.op).lower()
        if op in _FILTERS and not (node.modifier is not None and node.modifier.return_bool):
            return _compared(node.lhs) + _compared(node.rhs)
        if op in ("and", "unless"):
            return _compared(node.lhs) + (_compared(node.rhs) if op == "and" else [])
    if isinstance(node, (promql_parser.NumberLiteral, promql_parser.StringLiteral)):
        return []
    return [node]


def _quiet_alert(ctx: _Context, ast: Any) -> list[float] | Verdict:
    """An alert whose expression returns nothing in Prometheus: the values of what it compares when each has
    data (it is not firing now), else why one of them stays empty."""
    assert ctx.prom is not None
    values: list[float] = []
    for node in _compared(ast):
        expr = node.prettify()
        got = _values(ctx.prom, expr) or _poll(ctx, expr)
        if not got:
            return _after_wait(ctx, node, expr)
        values += got
    return values


def _after_wait(ctx: _Context, ast: Any, expr: str) -> Verdict:
    """Every selector has series, yet the query stayed empty for the whole wait: too few samples in a range
    window is the run's timing (inconclusive); otherwise the expression itself returns nothing."""
    assert ctx.prom is not None
    for matrix in promql.matrices(ast):
        window = promql.duration(matrix.range)
        counts = _values(ctx.prom, f"count_over_time({matrix.prettify()})")
        if max(counts, default=0) < 2:
            selector = promql.selector_of(matrix.vector_selector)
            return ctx.verdict(Outcome.INCONCLUSIVE, "inconclusive", _data()["messages"]["few_samples"].format(
                where=ctx.where, selector=selector.shown, window=window, wait=f"{ctx.wait:g}"))
    return ctx.verdict(Outcome.FAILED, "no data", f"{ctx.where}: Prometheus returns nothing for {expr} although "
                                                  f"each of its selectors has series there: the series do not "
                                                  f"match across its operators (the labels of one side differ from "
                                                  f"the other's), or a filter removes them all.")


# -- why a reader stays empty --------------------------------------------------------------------------------


def _why_empty(ctx: _Context, judged: promql.Judged) -> Verdict:
    """Why an expression returns nothing: every problem of the selectors that empty it, in one verdict (a
    renamed family and a label the scrape never adds are both named), the most telling first."""
    if not judged.empty and judged.absent:
        names = ", ".join(s.shown for s in judged.absent)
        return ctx.verdict(Outcome.FAILED, "no data", f"{ctx.where}: absent() returns nothing while {names} has "
                                                      f"series: the query shows data only when the metric is "
                                                      f"missing.")
    empty = list({s.shown: s for s in judged.empty}.values())
    problems: list[Verdict] = []
    explained = set()
    reported: set[str] = set()  # labels already named: one selector's missing label is every selector's
    for selector in empty:
        missing = _missing(ctx, selector.metric)
        if missing:
            explained.add(selector.shown)
            problems.append(missing)
            if missing.outcome != Outcome.INCONCLUSIVE:  # another form's path may add labels of its own (KServe's)
                problems += filter(None, [_label_mismatch(ctx, selector, reported, names_only=True)])
    for selector in empty:
        if selector.shown not in explained:
            problems += filter(None, [_label_mismatch(ctx, selector, reported) or _stored_elsewhere(ctx, selector)])
    if not problems:
        names = ", ".join(s.shown for s in empty)
        source = "Prometheus holds" if ctx.prom is not None else "the servers expose"
        return ctx.verdict(Outcome.FAILED, "no data", f"{ctx.where}: {source} no series for {names} although the "
                                                      f"metrics exist (see the Prometheus checks).")
    return _together(ctx, problems)


def _together(ctx: _Context, problems: list[Verdict]) -> Verdict:
    """Several problems of one reader as one verdict: the first problem in full, each other one after it (its
    subject is the same reader: "it"); failed if any of them fails."""
    unique = list({p.message: p for p in problems}.values())
    first = next((p for o in WORST_FIRST for p in unique if p.outcome == o), unique[0])
    if len(unique) == 1:
        return first
    never = _data()["never"].get(ctx.panel.kind)
    rest = []
    for problem in unique:
        if problem is first:
            continue
        text = problem.message.removeprefix(f"{never} " if never else "").removeprefix(ctx.where).lstrip(": ")
        rest.append(f"Also, it {text}" if not text.startswith("it ") else f"Also, {text}")
    return Verdict(first.outcome, f"{first.message} {' '.join(rest)}", first.level,
                   {**first.evidence, "problems": len(unique)}, diagnosis=first.diagnosis, target=first.target)


def _component(metric: str) -> dict[str, Any] | None:
    """The other component whose metric this is, in any form a collection path stores it (kserve_inference_pool_*
    is the endpoint picker's)."""
    forms = [metric] + [metric[len(p):] for rule in _data()["collection_prefix"] for p in rule["prefixes"]
                        if metric.startswith(p)]
    for component in _data()["component"]:
        for form in forms:
            if form in component.get("names", ()) or form.startswith(tuple(component.get("prefixes", ()))):
                return dict(component)
    return None


def _optional_feature(metric: str) -> str | None:
    for row in _data()["feature_metric"]:
        if metric.startswith(tuple(row["prefixes"])):
            return str(row["feature"])
    return None


def family_of(metric: str, catalog: Catalog) -> Entry | None:
    """The catalog family a selected name belongs to (a histogram's _bucket, _count or _sum included)."""
    entry = catalog.get(metric)
    if entry is None and metric.endswith(_HISTOGRAM_SUFFIXES):
        entry = catalog.get(metric.rsplit("_", 1)[0])
    return entry


def _exposed(ctx: _Context) -> set[str]:
    return {name for o in ctx.seen if o.after for name in o.after.samples}


def _missing(ctx: _Context, metric: str) -> Verdict | None:
    where, seen = ctx.where, ctx.seen
    if metric in ctx.scrapes.synthesized or any(metric in o.after.samples for o in seen if o.after):
        return None
    names = _exposed(ctx)

    def no_data(message: str) -> Verdict:
        return ctx.verdict(Outcome.FAILED, "no data", message)

    if metric + "_total" in names:
        return no_data(f"{where} queries {metric}, which no server exposes: the counter is {metric}_total "
                       f"(counters carry _total). Query {metric}_total.")
    renamed = _renamed_form(ctx, metric, names)
    if renamed:
        return renamed
    entry = family_of(metric, ctx.catalog)
    if entry is not None and entry.replaced_by:
        return no_data(f"{where} queries {metric}, which vLLM renamed: the servers expose {entry.replaced_by} (the "
                       f"old name exists only in vLLM {entry.versions.text}). Query {entry.replaced_by}.")
    removed = _data()["removed"].get(metric)
    if removed:
        return no_data(f"{where} queries {metric}, which vLLM removed: {removed['why']}. {removed['fix']}.")
    feature = _optional_feature(metric) or (entry.feature if entry and entry.feature != "core" else None)
    if feature and not any(feature in o.features for o in seen):
        return ctx.verdict(Outcome.SKIPPED, "feature not enabled", f"{where} charts {metric}, a metric of feature "
                                                                   f"{feature}, which is not enabled on these "
                                                                   f"servers.")
    if metric.count(":") >= 2:  # level:metric:operations, the naming of recording rules
        return no_data(f"{where} queries {metric}, a recording rule's series by its name, which none of the "
                       f"{len(seen)} server(s) exposes and no rule of this run records; the {ctx.noun} stays empty "
                       f"unless that rule is deployed. Pass its rule file to --prometheus-rules, or check the name.")
    return no_data(f"{where} queries {metric}, which none of the {len(seen)} server(s) exposes; the {ctx.noun} "
                   f"stays empty. Check the metric name against vLLM's /metrics.")


def _renamed_form(ctx: _Context, metric: str, names: set[str]) -> Verdict | None:
    """A name the servers expose in another form: colons written as underscores (a store or collector that
    rewrites them), or a prefix a collection path puts before vLLM's names (KServe, Ray Serve). Only the store
    can tell which form it holds: without Prometheus this is inconclusive; behind it, Prometheus lacks this form."""
    family, how = _exposed_as(metric, names)
    if family is None:
        return None
    messages = _data()["messages"]
    if ctx.prom is None:
        return ctx.verdict(Outcome.INCONCLUSIVE, "inconclusive", messages["other_form"].format(
            where=ctx.where, metric=metric, family=family, how=how, noun=ctx.noun))
    return ctx.verdict(Outcome.FAILED, "no data", messages["other_form_missing"].format(
        where=ctx.where, metric=metric, family=family, how=how, noun=ctx.noun))


def _exposed_as(metric: str, names: Iterable[str]) -> tuple[str | None, str]:
    """The exposed family that `metric` is another form of, and how the forms differ."""
    names = set(names)
    for rule in _data()["collection_prefix"]:
        for prefix in rule["prefixes"]:
            if metric.startswith(prefix):
                bare = metric[len(prefix):]
                for family in sorted(names):
                    if bare in (family, family.replace(":", "_")):
                        return family, str(rule["how"])
    underscored = [n for n in sorted(names) if ":" in n and n.replace(":", "_") == metric]
    if underscored:
        return underscored[0], str(_data()["messages"]["underscores"])
    return None, ""


def _stored_names(ctx: _Context) -> list[str]:
    assert ctx.prom is not None
    return [str(v) for v in ctx.prom.get("/api/v1/label/__name__/values")]


def _stored_elsewhere(ctx: _Context, selector: Selector) -> Verdict | None:
    """Behind Prometheus: the servers expose the family, but the store holds it under another form (underscores,
    a collection path's prefix): name the form it holds."""
    if ctx.prom is None or not any(selector.metric in o.after.samples for o in ctx.seen if o.after):
        return None
    for stored in _stored_names(ctx):
        family, how = _exposed_as(stored, [selector.metric])
        if family is not None:
            return ctx.verdict(Outcome.FAILED, "no data", _data()["messages"]["stored_as"].format(
                where=ctx.where, metric=selector.metric, stored=stored, how=how, noun=ctx.noun))
    return None


def _label_mismatch(ctx: _Context, selector: Selector, reported: set[str] | None = None,
                    names_only: bool = False) -> Verdict | None:
    """A selector whose matchers select none of its metric's series: by label name (a label no series carries:
    for a metric no server has, no series of any metric), then by value. Scrape labels are judged where the run
    knows them (Kubernetes discovery: pod, namespace, container), else left to Prometheus."""
    if ctx.prom is not None:
        if names_only:
            have = set(map(str, ctx.prom.get("/api/v1/labels", start=f"{time.time() - 600:.0f}")))
            labelled: list[dict[str, str]] = []
        else:
            series = ctx.prom.get("/api/v1/series", **{"match[]": selector.metric, "limit": 50,
                                                        "start": f"{time.time() - 600:.0f}"})
            labelled = [{k: str(v) for k, v in s.items() if k != "__name__"} for s in series]
            have = {key for s in labelled for key in s}
        source = "Prometheus stores only"
    else:
        labelled = [{**own, **t} for _, own, t in ctx.scrapes.series(None if names_only else selector.metric)]
        have = {key for s in labelled for key in s} | set(TARGET_LABELS)
        source = "vLLM's labels plus the target labels Prometheus Operator adds are"
    reported = set() if reported is None else reported
    for label, _, _ in selector.matchers:
        if label not in have and label in reported:
            return None  # said once for the reader, whichever selector carries it
        if label not in have:
            reported.add(label)
            carried = (f"({source} {', '.join(sorted(have))})" if not names_only else
                       f"(the target labels Prometheus Operator adds are {', '.join(sorted(TARGET_LABELS))})")
            return ctx.verdict(Outcome.FAILED, "label mismatch", (
                f"{ctx.where} selects {selector.metric} by label {label}, which no series carries {carried}, so the "
                f"{ctx.noun} stays empty. Prometheus Operator adds namespace and pod, not kubernetes_namespace or "
                f"kubernetes_pod_name: select on the label the scrape adds."))
    if names_only:
        return None
    for label, op, value in selector.matchers:
        judged = [s for s in labelled if ctx.prom is not None or label not in TARGET_LABELS or label in s]
        if not judged or any(_matches([(label, op, value)], s, ctx.scrapes.wildcard) for s in judged):
            continue  # a scrape label the run does not know is Prometheus' to judge (Scrapes.unjudged)
        held = sorted({s[label] for s in judged if label in s})
        sign = {"Equal": "=", "NotEqual": "!=", "Re": "=~", "NotRe": "!~"}[op]
        hint = (" An '=' matcher compares the text exactly: a regex (a Grafana All value or a multi-value "
                "variable) needs '=~'." if sign == "=" and re.search(r"[.*+|()\[\]\\]", value) else "")
        return ctx.verdict(Outcome.FAILED, "label mismatch", (
            f"{ctx.where} selects {selector.metric} with {label}{sign}\"{value}\", which none of its series "
            f"matches (they carry {label} = {', '.join(held[:8])}), so the {ctx.noun} stays empty."
            f"{hint}"))
    return None


# -- the fleet behind a reader ---------------------------------------------------------------------------------
# A reader reads every server's series: one that draws a line per pod shows a dead line for a server whose
# family did not move, while one that aggregates over the fleet (sum, avg, ... without a per-pod label) shows
# data as long as one server moves it, as Prometheus evaluates it. Both are judged here on the direct scrapes.


def _coverage(ctx: _Context, parsed: list[tuple[str, str, Any]]) -> Verdict | list[str]:
    """Servers a reader cannot see because a family it reads is missing from their pages while other servers
    expose it: a mixed-version fleet serves a renamed family under two names. One verdict per reader, naming
    which versions serve which name; notes for absences no version explains (the presence checks judge them)."""
    read = {s.metric for _, expr, _ in parsed for s in promql.selectors(expr)}
    always = {m for m in read if m in ctx.scrapes.synthesized or _component(m)}
    blinding: dict[frozenset[str], set[str]] = {}  # names a server has -> the metrics whose absence blinds
    blind: dict[str, list[Observation]] = {}
    for obs in ctx.seen:
        assert obs.after is not None
        names = frozenset(m for m in read if m in obs.after.samples) | always
        if names not in blinding:  # servers of one version have the same names: judged once
            blinding[names] = _blinding(parsed, names)
        for metric in blinding[names]:
            if not _absent_by_feature(ctx, metric, obs) and _alternative(ctx, metric, obs, read) is None:
                blind.setdefault(metric, []).append(obs)
    parts, notes = [], []
    for metric, lacking in blind.items():
        serving = [o for o in ctx.seen if o.after and metric in o.after.samples]
        if not serving:
            continue  # no server has it: the reader's own verdict said why
        entry = family_of(metric, ctx.catalog)
        explained = [o for o in lacking if entry is not None and (
            not entry.versions.contains(o.version) or _alternative(ctx, metric, o, set()) is not None)]
        if not explained:
            notes.append(f"{_names([o.target.name for o in lacking])} expose no {metric}, so the {ctx.noun} "
                         f"does not see them (their presence checks say why)")
            continue
        assert entry is not None
        parts.append(_versions_apart(ctx, metric, entry, serving, explained))
    if not parts:
        return notes
    return ctx.verdict(Outcome.FAILED, "part of the fleet", " ".join(parts))


def _blinding(parsed: list[tuple[str, str, Any]], names: frozenset[str]) -> set[str]:
    """The metrics whose absence empties one of the queries on a server that has only `names`."""

    def has(selector: Selector) -> bool:
        return selector.metric in names

    return {s.metric for _, _, ast in parsed for s in promql.judge(ast, has).empty}


def _absent_by_feature(ctx: _Context, metric: str, obs: Observation) -> bool:
    entry = family_of(metric, ctx.catalog)
    feature = _optional_feature(metric) or (entry.feature if entry and entry.feature != "core" else None)
    return feature is not None and feature not in obs.features


def _alternative(ctx: _Context, metric: str, obs: Observation, read: set[str]) -> str | None:
    """The other name of a renamed family (older or newer) that this server exposes; with `read`, only when
    the reader reads that name too (`new or old` covers both versions)."""
    entry = family_of(metric, ctx.catalog)
    if entry is None:
        return None
    suffix = metric[len(entry.name):] if metric.startswith(entry.name) else ""
    others: list[str | None] = [entry.replaced_by, entry.replaces,
                                *(e.name for e in ctx.catalog.entries if e.replaced_by == entry.name)]
    assert obs.after is not None
    for other in filter(None, others):
        name = other + suffix
        if name in obs.after.samples and (not read or name in read):
            return name
    return None


def _versions(observations: list[Observation]) -> str:
    """Servers grouped by vLLM version: 'the vLLM 0.32.0 server (decode-0)'."""
    by_version: dict[str, list[str]] = {}
    for obs in observations:
        by_version.setdefault(obs.version or "of unknown version", []).append(obs.target.name)
    parts = [f"the vLLM {version} server{'s' if len(names) > 1 else ''} ({_names(names)})"
             for version, names in by_version.items()]
    return " and ".join(parts)


def _versions_apart(ctx: _Context, metric: str, entry: Entry, serving: list[Observation],
                    lacking: list[Observation]) -> str:
    alternative = next((a for o in lacking if (a := _alternative(ctx, metric, o, set()))), None)
    verb = "exposes" if len(serving) == 1 else "expose"
    head = f"{ctx.where} reads {metric}, which only {_versions(serving)} {verb}"
    if alternative is None:
        return (f"{head}; vLLM emits it in {entry.versions.text} only, so {_versions(lacking)} "
                f"{'does' if len(lacking) == 1 else 'do'} not, and the {ctx.noun} does not see "
                f"{'it' if len(lacking) == 1 else 'them'}.")
    old, new = (metric, alternative) if entry.replaced_by else (alternative, metric)
    renamed = (entry.name, entry.replaced_by) if entry.replaced_by else (entry.replaces, entry.name)
    return (f"{head}; {_versions(lacking)} {'exposes' if len(lacking) == 1 else 'expose'} {alternative} instead "
            f"(vLLM renamed {renamed[0]} to {renamed[1]}), so the {ctx.noun} does not see "
            f"{'it' if len(lacking) == 1 else 'them'}. While the fleet runs both versions, read both names: "
            f"{new} or {old}.")


class _State(StrEnum):
    """What the workload did to the series a reader selects on one server."""

    MOVED = "moved"
    SILENT = "silent"  # the family did not move on this server at all: the server's own fault or limitation
    UNEXERCISED = "unexercised"  # the family moved, but not the selected series: the workload could not


@dataclass
class _Moved:
    verdict: Verdict | None = None
    certain: bool = False  # every server's series stayed at 0: true of whichever servers a matcher selects
    notes: list[str] = field(default_factory=list)
    unexercised: list[str] = field(default_factory=list)


def _movement(ctx: _Context, live: list[tuple[Selector, promql.Keep]]) -> _Moved:
    """Whether what the reader reads moved during the workload, line by line as the reader draws it."""
    out = _Moved()
    within = tuple(_data()["fleet"]["within_line"])
    quiet: dict[tuple[tuple[str, ...], tuple[str, ...], str], list[str]] = defaultdict(list)
    done = set()
    for selector, keep in live:
        entry = family_of(selector.metric, ctx.catalog)
        if entry is None or not entry.moves or (selector.shown, keep) in done:
            continue  # gauges and counters that legitimately stay at 0 (preemptions) chart fine
        done.add((selector.shown, keep))
        per_pod = _per_pod(keep)
        counted = entry.name + "_count" if entry.type in ("histogram", "summary") else entry.name
        lines: dict[tuple[tuple[str, str], ...], list[tuple[Observation, _State]]] = {}
        moved_with: dict[str, set[str]] = {}  # matcher label -> its values on the series that moved
        for index, obs in enumerate(ctx.seen):
            delta = obs.delta
            if delta is None:
                continue
            family_moved = delta.increase(entry.name) > 0
            for labels in ctx.scrapes.selected(obs, selector, counted, skip=within):
                own = {k: v for k, v in labels.items() if k not in TARGET_LABELS}
                state = (_State.MOVED if delta.increase(entry.name, own) > 0
                         else _State.UNEXERCISED if family_moved else _State.SILENT)
                key = ((("pod", obs.target.name), ("#", str(index))) if per_pod else
                       tuple(sorted((k, v) for k, v in labels.items() if keep.keeps(k) and k not in within)))
                lines.setdefault(key, []).append((obs, state))
            if family_moved:
                for series in obs.after.samples.get(counted, []) if obs.after else []:
                    labels = dict(series.labels)
                    if delta.increase(entry.name, labels) > 0:
                        for label, _, _ in selector.matchers:
                            moved_with.setdefault(label, set()).add(labels.get(label, ""))
        if not lines:
            continue  # no server has series this selector selects (a LoRA adapter not loaded, say)
        states = {key: {state for _, state in members} for key, members in lines.items()}
        broken = [key for key, s in states.items() if s == {_State.SILENT}]
        if broken:
            out.verdict = _always_zero(ctx, entry, per_pod, broken, lines, len(broken) == len(lines))
            out.certain = len(broken) == len(lines)
            return out
        if not any(_State.MOVED in s for s in states.values()):
            out.unexercised.append(_unexercised(selector, entry, moved_with, ctx.noun))
            continue
        silent = sorted({obs.target.name: obs for members in lines.values() for obs, state in members
                         if state == _State.SILENT}.values(), key=lambda o: o.target.name)
        if silent and not per_pod:
            movers = tuple(sorted({obs.target.name for members in lines.values() for obs, state in members
                                   if state == _State.MOVED}))
            quiet[(movers, tuple(o.target.name for o in silent), _cause_text(_causes(ctx, entry, silent)))] \
                .append(entry.name)
    for (movers, silent_names, causes), families in quiet.items():  # a ratio's two counters: one note
        them = "them" if len(families) > 1 else "it"
        out.notes.append(f"it aggregates {' and '.join(families)} over the fleet: {_names(list(movers))} moved "
                         f"{them}, while {_names(list(silent_names))} contribute"
                         f"{'s' if len(silent_names) == 1 else ''} nothing ({causes})")
    return out


def _per_pod(keep: promql.Keep) -> bool:
    """Whether the reader draws a line per pod: it keeps a per-pod label (by one of them, or without dropping
    both of the per-pod labels every Prometheus scrape of a pod carries, pod and instance)."""
    fleet = _data()["fleet"]
    if keep.only is not None:
        return any(keep.keeps(label) for label in fleet["per_pod"])
    return not set(fleet["scraped_per_pod"]) <= keep.dropped


def _causes(ctx: _Context, entry: Entry, silent: list[Observation]) -> dict[str, Verdict]:
    """Each silent server's own root cause, as its movement check states it (a documented limitation: xfailed)."""
    return {obs.target.name: evaluate.movement(entry, obs, ctx.policy) for obs in silent}


def _cause_text(causes: dict[str, Verdict]) -> str:
    """One root cause as it is; several, each after the servers it concerns."""
    by_reason: dict[str, list[str]] = {}
    for name, cause in causes.items():
        by_reason.setdefault(cause.diagnosis or cause.message, []).append(name)
    if len(by_reason) == 1:
        return next(iter(by_reason))
    return "; ".join(f"{_names(names)}: {reason}" for reason, names in by_reason.items())


def _always_zero(ctx: _Context, entry: Entry, per_pod: bool, broken: list[tuple[tuple[str, str], ...]],
                 lines: dict[tuple[tuple[str, str], ...], list[tuple[Observation, _State]]], every: bool) -> Verdict:
    silent = list({id(obs): obs for key in broken for obs, _ in lines[key]}.values())
    causes = _causes(ctx, entry, silent)
    reason = _cause_text(causes)
    outcome = (Outcome.XFAILED if all(c.outcome == Outcome.XFAILED for c in causes.values()) else Outcome.FAILED)
    ratio = " A ratio of two such lifetime counters is 0/0 = NaN." if entry.type == "counter" else ""
    pods = ", ".join(o.target.name for o in silent)
    root = "Root cause" if len({c.diagnosis or c.message for c in causes.values()}) == 1 else "Root causes"
    if per_pod:
        message = (f"{ctx.where} will be always zero / NaN on {pods}: {entry.name} exists but did not move during "
                   f"the workload.{ratio} {root}: {reason}")
    elif every and broken == [()]:
        message = (f"{ctx.where} will be always zero / NaN: it aggregates {entry.name} over the fleet, and "
                   f"{entry.name} moved on none of its servers ({pods}) during the workload.{ratio} {root}: {reason}")
    else:
        shown = ", ".join("{" + ", ".join(f'{k}="{v}"' for k, v in key) + "}" for key in broken)
        message = (f"{ctx.where} will be always zero / NaN for {shown}: {entry.name} did not move during the "
                   f"workload on the servers behind {'it' if len(broken) == 1 else 'them'} ({pods}).{ratio} "
                   f"{root}: {reason}")
    return ctx.verdict(outcome, "always zero / NaN", message, diagnosis=reason)


def _unexercised(selector: Selector, entry: Entry, moved_with: dict[str, set[str]], noun: str) -> str:
    """What the workload could not move: the selected series exist, but its requests produced other label values
    (every request ended by max_tokens, so finished_reason="stop" stays 0)."""
    did = [f'{label} {" or ".join(chr(34) + v + chr(34) for v in sorted(values))}'
           for label, values in moved_with.items() if values]
    moved = f" only for {'; '.join(did)}" if did else " only in series this selector does not select"
    return (f"this run could not exercise {selector.shown}: its series exist, but the workload moved "
            f"{entry.name}{moved}, so the run cannot show that the {noun} moves")
