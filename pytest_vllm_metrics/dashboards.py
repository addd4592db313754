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
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any

from . import _grafana as grafana
from . import evaluate
from ._grafana import DashboardError, Value
from .catalog import Catalog, Entry, conformance_data
from .observe import Observation
from .outcome import WORST_FIRST, Outcome, Verdict
from .prometheus import TARGET_LABELS, Prometheus, PrometheusError, scrape_interval
from .settings import Policy
from .targets import host_port

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


# -- PromQL ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Selector:
    metric: str
    matchers: tuple[tuple[str, str, str], ...]  # (label, op, value)
    text: str = field(default="", compare=False)  # the selector as PromQL, matchers included

    @property
    def shown(self) -> str:
        return self.text or self.metric


def _selector(node: Any) -> Selector:
    matchers = tuple((m.name, str(m.op).rsplit(".", 1)[-1], m.value) for m in node.matchers.matchers)
    name = node.name or next((v for label, _, v in matchers if label == "__name__"), "")
    return Selector(name, tuple(m for m in matchers if m[0] != "__name__"), node.prettify())


def selectors(expr: str) -> list[Selector]:
    """Every vector selector of an expression, by the PromQL parser (ValueError when it does not parse)."""
    import promql_parser

    found: list[Selector] = []

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.append(_selector(node))

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


@dataclass
class _Judged:
    """What an expression returns: data or not, the selectors that empty it, and the empty ones that do not
    matter (the missing side of an `or` whose other side has data)."""

    data: bool
    empty: list[Selector] = field(default_factory=list)
    notes: list[Selector] = field(default_factory=list)
    absent: list[Selector] = field(default_factory=list)  # absent(x) is empty because x has data


_ABSENT = ("absent", "absent_over_time")


def _judge(node: Any, has: Callable[[Selector], bool]) -> _Judged:
    import promql_parser as p

    if isinstance(node, p.VectorSelector):
        selector = _selector(node)
        return _Judged(True) if has(selector) else _Judged(False, [selector])
    if isinstance(node, p.MatrixSelector):
        return _judge(node.vector_selector, has)
    if isinstance(node, p.Call):
        name = node.func.name
        args = [_judge(a, has) for a in node.args]
        if name in _ABSENT:
            inner = args[0]  # the parser takes absent() with exactly one argument
            found = [_selector(n) for n in _vector_selectors(node.args[0])]
            return _Judged(True, notes=inner.notes) if not inner.data else _Judged(False, absent=found)
        # scalar(), vector(scalar(...)) and the like return NaN when their argument is empty: a panel of NaN
        # shows no data either, so every function is judged by its arguments (time(), vector(1): no selector).
        return _both(args)
    if isinstance(node, p.AggregateExpr):
        return _judge(node.expr, has)
    if isinstance(node, p.BinaryExpr):
        lhs, rhs = _judge(node.lhs, has), _judge(node.rhs, has)
        op = str(node.op).lower()
        if op == "or":
            if lhs.data or rhs.data:
                empty = [s for side in (lhs, rhs) if not side.data for s in side.empty]
                return _Judged(True, notes=lhs.notes + rhs.notes + empty)
            return _both([lhs, rhs])
        if op == "unless":
            return _Judged(lhs.data, lhs.empty, lhs.notes + rhs.notes, lhs.absent)
        return _both([lhs, rhs])
    if isinstance(node, (p.ParenExpr, p.UnaryExpr, p.SubqueryExpr)):
        return _judge(node.expr, has)
    return _Judged(True)  # number and string literals


def _both(parts: list[_Judged]) -> _Judged:
    return _Judged(all(p.data for p in parts), [s for p in parts for s in p.empty],
                   [s for p in parts for s in p.notes], [s for p in parts for s in p.absent])


def _vector_selectors(node: Any) -> list[Any]:
    import promql_parser

    found: list[Any] = []
    promql_parser.walk(node, lambda n: found.append(n) if isinstance(n, promql_parser.VectorSelector) else None)
    return found


def _matrices(node: Any) -> list[Any]:
    import promql_parser

    found: list[Any] = []
    promql_parser.walk(node, lambda n: found.append(n) if isinstance(n, promql_parser.MatrixSelector) else None)
    return found


def _duration(delta: timedelta) -> str:
    ms = int(delta.total_seconds() * 1000)
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


# -- where the data comes from -----------------------------------------------------------------------------


def _matches(matchers: Iterable[tuple[str, str, str]], labels: dict[str, str], wildcard: bool) -> bool:
    """A series' own labels against a selector's matchers. Target labels are not on the direct scrape:
    their matchers are not judged here (Prometheus judges them)."""
    for label, op, value in matchers:
        if (label in TARGET_LABELS and label not in labels) or (wildcard and value == grafana.UNKNOWN):
            continue
        have = labels.get(label, "")
        try:
            hit = have == value if op in ("Equal", "NotEqual") else re.fullmatch(value, have) is not None
        except re.error:
            continue
        if hit == op.startswith("Not"):
            return False
    return True


class _Scrapes:
    """The direct scrapes as Grafana's variable queries and the panel's selectors see them."""

    def __init__(self, seen: list[Observation], policy: Policy) -> None:
        self.seen = seen
        self.policy = policy
        self.wildcard = False  # set when a variable could not be known (written as .*)
        self.synthesized = set(_data()["prometheus"]["synthesized"])

    def _target_labels(self, obs: Observation) -> dict[str, str]:
        labels = {"namespace": self.policy.namespace} if self.policy.namespace else {}
        if obs.target.source == "kubernetes":
            labels.update(namespace=obs.target.detail.get("namespace", ""), pod=obs.target.name)
        else:
            labels["instance"] = host_port(obs.target.base_url)
        return {k: v for k, v in labels.items() if v}

    def series(self, metric: str | None) -> Iterable[tuple[str, dict[str, str], dict[str, str]]]:
        for obs in self.seen:
            assert obs.after is not None
            names = [metric] if metric else list(obs.after.samples)
            for name in names:
                for series in obs.after.samples.get(name, []):
                    yield name, dict(series.labels), self._target_labels(obs)

    def has(self, selector: Selector) -> bool:
        if selector.metric in self.synthesized or _component(selector.metric):
            return True  # made by Prometheus, or another component's: not judged on vLLM's pages
        return any(_matches(selector.matchers, own, self.wildcard) for _, own, _ in self.series(selector.metric))

    def _selected(self, match: str | None) -> Iterable[dict[str, str]] | None:
        if not match:
            return ({**t, **own} for _, own, t in self.series(None))
        try:
            (selector,) = selectors(match)
        except ValueError:
            return None
        return ({**t, **own} for _, own, t in self.series(selector.metric or None)
                if _matches(selector.matchers, own, True))

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
        import promql_parser

        try:
            ast = promql_parser.parse(query)
        except ValueError:
            return None
        if not isinstance(ast, promql_parser.VectorSelector):
            return None  # an expression (sum, rate, ...) only Prometheus can evaluate: unknown
        selector = _selector(ast)
        return [_result_text(name, {**t, **own}, None) for name, own, t in self.series(selector.metric)
                if _matches(selector.matchers, own, True)]


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
    import promql_parser

    durations = _data()["durations"]
    ctx.shown = {name: value.shown for name, value in values.items()}
    ctx.exprs = [grafana.interpolate(q.expr, values, durations) for q in ctx.panel.queries]
    where = ctx.where
    parsed = []
    for query, expr in zip(ctx.panel.queries, ctx.exprs, strict=True):
        try:
            parsed.append((query.ref_id, expr, promql_parser.parse(expr)))
        except (ValueError, RuntimeError) as exc:
            return ctx.verdict(Outcome.FAILED, "unparsable",
                               f"{where}: its query does not parse as PromQL ({exc}): {expr}. Grafana shows an "
                               f"error instead of data; fix the expression.")
    every = [s for _, expr, _ in parsed for s in selectors(expr)]
    vllm = [s for s in every if not _component(s.metric)]
    if every and not vllm:  # every selector is another component's
        component = _component(every[0].metric) or {}
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
        judged = _judge(ast, has)
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
    if empty and len(empty) == len(parsed):
        return empty[0][2]  # nothing shows: the first query's reason, in full
    if empty:
        parts = [f"query {ref_id} ({expr}) returns nothing: {why.message}" for ref_id, expr, why in empty]
        return ctx.verdict(Outcome.FAILED, "partial", f"{where} shows data, but only from some of its queries; "
                                                      + " ".join(parts), level="SHOULD", notes=notes)
    live = [s for _, expr, _ in parsed for s in selectors(expr) if not _component(s.metric) and has(s)]
    for selector in live:
        feature = _optional_feature(selector.metric)
        if feature and not any(feature in o.features for o in ctx.seen) and feature not in ctx.policy.require:
            return ctx.verdict(Outcome.SKIPPED, "feature not enabled",
                               f"{where} charts {selector.metric}, which only moves with feature {feature}; the "
                               f"feature is not enabled on these servers (pass --vllm-require-feature={feature} "
                               f"to require it).")
    for selector in live:
        zero = _always_zero(ctx, selector.metric)
        if zero:
            return zero
    moving = any((entry := family_of(s.metric, ctx.catalog)) is not None and entry.moves for s in live)
    if prom is not None and moving and returned and all(v == 0 or v != v for v in returned):
        return ctx.verdict(Outcome.FAILED, "always zero / NaN", f"{where}: Prometheus returns only 0 or NaN for "
                                                                f"its queries.")
    return ctx.verdict(Outcome.PASSED, "ok", " ".join(notes), notes=notes)


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
    import promql_parser as p

    if isinstance(node, p.ParenExpr):
        return _compared(node.expr)
    if isinstance(node, p.BinaryExpr):
        op = str(node.op).lower()
        if op in _FILTERS and not (node.modifier is not None and node.modifier.return_bool):
            return _compared(node.lhs) + _compared(node.rhs)
        if op in ("and", "unless"):
            return _compared(node.lhs) + (_compared(node.rhs) if op == "and" else [])
    if isinstance(node, (p.NumberLiteral, p.StringLiteral)):
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
    for matrix in _matrices(ast):
        window = _duration(matrix.range)
        counts = _values(ctx.prom, f"count_over_time({matrix.prettify()})")
        if max(counts, default=0) < 2:
            selector = _selector(matrix.vector_selector)
            return ctx.verdict(Outcome.INCONCLUSIVE, "inconclusive", _data()["messages"]["few_samples"].format(
                where=ctx.where, selector=selector.shown, window=window, wait=f"{ctx.wait:g}"))
    return ctx.verdict(Outcome.FAILED, "no data", f"{ctx.where}: Prometheus returns nothing for {expr} although "
                                                  f"each of its selectors has series there: the series do not "
                                                  f"match across its operators (the labels of one side differ from "
                                                  f"the other's), or a filter removes them all.")


def _why_empty(ctx: _Context, judged: _Judged) -> Verdict:
    """Why an expression returns nothing: the first selector that empties it, by the most telling reason."""
    if not judged.empty and judged.absent:
        names = ", ".join(s.shown for s in judged.absent)
        return ctx.verdict(Outcome.FAILED, "no data", f"{ctx.where}: absent() returns nothing while {names} has "
                                                      f"series: the query shows data only when the metric is "
                                                      f"missing.")
    for selector in judged.empty:
        missing = _missing(ctx, selector.metric)
        if missing:
            return missing
    for selector in judged.empty:
        mismatch = _label_mismatch(ctx, selector)
        if mismatch:
            return mismatch
    names = ", ".join(s.shown for s in judged.empty)
    source = "Prometheus holds" if ctx.prom is not None else "the servers expose"
    return ctx.verdict(Outcome.FAILED, "no data", f"{ctx.where}: {source} no series for {names} although the "
                                                  f"metrics exist (see the Prometheus checks).")


def _component(metric: str) -> dict[str, Any] | None:
    for component in _data()["component"]:
        if metric.startswith(tuple(component["prefixes"])):
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


def _missing(ctx: _Context, metric: str) -> Verdict | None:
    where, seen = ctx.where, ctx.seen
    if metric in ctx.scrapes.synthesized or any(metric in o.after.samples for o in seen if o.after):
        return None
    names = {name for o in seen if o.after for name in o.after.samples}
    if metric + "_total" in names:
        return ctx.verdict(Outcome.FAILED, "no data", f"{where} queries {metric}, which no server exposes: the "
                                                      f"counter is {metric}_total (counters carry _total). Query "
                                                      f"{metric}_total.")
    entry = family_of(metric, ctx.catalog)
    if entry is not None and entry.replaced_by:
        return ctx.verdict(Outcome.FAILED, "no data", f"{where} queries {metric}, which vLLM renamed: the servers "
                                                      f"expose {entry.replaced_by} (the old name exists only in "
                                                      f"vLLM {entry.versions.text}). Query {entry.replaced_by}.")
    removed = _data()["removed"].get(metric)
    if removed:
        return ctx.verdict(Outcome.FAILED, "no data", f"{where} queries {metric}, which vLLM removed: "
                                                      f"{removed['why']}. {removed['fix']}.")
    feature = _optional_feature(metric) or (entry.feature if entry and entry.feature != "core" else None)
    if feature and not any(feature in o.features for o in seen):
        return ctx.verdict(Outcome.SKIPPED, "feature not enabled", f"{where} charts {metric}, a metric of feature "
                                                                   f"{feature}, which is not enabled on these "
                                                                   f"servers.")
    if metric.count(":") >= 2:  # level:metric:operations, the naming of recording rules
        return ctx.verdict(Outcome.FAILED, "no data", f"{where} queries {metric}, a recording rule's series by its "
                                                      f"name, which none of the {len(seen)} server(s) exposes and no "
                                                      f"rule of this run records; the {ctx.noun} stays empty unless "
                                                      f"that rule is deployed. Pass its rule file to "
                                                      f"--prometheus-rules, or check the name.")
    return ctx.verdict(Outcome.FAILED, "no data", f"{where} queries {metric}, which none of the {len(seen)} "
                                                  f"server(s) exposes; the {ctx.noun} stays empty. Check the metric "
                                                  f"name against vLLM's /metrics.")


def _label_mismatch(ctx: _Context, selector: Selector) -> Verdict | None:
    """A selector whose metric is there but whose matchers select none of its series: by label name, then
    by value."""
    if ctx.prom is not None:
        series = ctx.prom.get("/api/v1/series", **{"match[]": selector.metric, "limit": 50,
                                                    "start": f"{time.time() - 600:.0f}"})
        labelled = [{k: str(v) for k, v in s.items() if k != "__name__"} for s in series]
        have = {key for s in labelled for key in s}
        source = "Prometheus stores only"
    else:
        labelled = [own for _, own, _ in ctx.scrapes.series(selector.metric)]
        have = {key for s in labelled for key in s} | set(TARGET_LABELS)
        source = "vLLM's labels plus the target labels Prometheus Operator adds are"
    for label, _, _ in selector.matchers:
        if label not in have:
            return ctx.verdict(Outcome.FAILED, "label mismatch", (
                f"{ctx.where} selects {selector.metric} by label {label}, which no series carries ({source} "
                f"{', '.join(sorted(have))}), so the {ctx.noun} stays empty. Prometheus Operator adds namespace and "
                f"pod, not kubernetes_namespace or kubernetes_pod_name: select on the label the scrape adds."))
    for label, op, value in selector.matchers:
        if ctx.prom is None and label in TARGET_LABELS:
            continue  # the direct scrape does not carry them: only Prometheus can tell their values
        if any(_matches([(label, op, value)], s, ctx.scrapes.wildcard) for s in labelled):
            continue
        held = sorted({s[label] for s in labelled if label in s})
        sign = {"Equal": "=", "NotEqual": "!=", "Re": "=~", "NotRe": "!~"}[op]
        hint = (" An '=' matcher compares the text exactly: a regex (a Grafana All value or a multi-value "
                "variable) needs '=~'." if sign == "=" and re.search(r"[.*+|()\[\]\\]", value) else "")
        return ctx.verdict(Outcome.FAILED, "label mismatch", (
            f"{ctx.where} selects {selector.metric} with {label}{sign}\"{value}\", which none of its series "
            f"matches (they carry {label} = {', '.join(held[:8])}), so the {ctx.noun} stays empty."
            f"{hint}"))
    return None


def _always_zero(ctx: _Context, metric: str) -> Verdict | None:
    entry = family_of(metric, ctx.catalog)
    if entry is None or not entry.moves:
        return None  # gauges and counters that legitimately stay at 0 (preemptions) chart fine
    still = [o for o in ctx.seen if o.delta is not None and not o.delta.increase(entry.name)]
    if not still:
        return None
    pods = ", ".join(o.target.name for o in still)
    cause = evaluate.movement(entry, still[0], ctx.policy)
    reason = cause.diagnosis or cause.message
    outcome = Outcome.XFAILED if cause.outcome == Outcome.XFAILED else Outcome.FAILED
    ratio = " A ratio of two such lifetime counters is 0/0 = NaN." if entry.type == "counter" else ""
    message = (f"{ctx.where} will be always zero / NaN on {pods}: {entry.name} exists but did not move during "
               f"the workload.{ratio} Root cause: {reason}")
    return ctx.verdict(outcome, "always zero / NaN", message, diagnosis=reason)
