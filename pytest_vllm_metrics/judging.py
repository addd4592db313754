"""The verdict of a reader: will it show data, and if not, exactly why.

Its Grafana variables are resolved against Prometheus when given, else against the direct scrapes, and each query is
judged as a whole PromQL expression: `A or B` shows data when either side does, `absent(x)` when x has none; over the
fleet as Prometheus evaluates it (fleet.py). A reader gets one verdict: ok, partial (some of its queries are empty),
no data, label mismatch, always zero / NaN, part of the fleet, not a vLLM metric, feature not enabled, unparsable,
not checkable (a library panel) or inconclusive.
"""

from __future__ import annotations

from typing import Any

import promql_parser

from . import promql
from .catalog import Catalog
from .fleet import coverage, movement
from .observe import Observation
from .outcome import WORST_FIRST, Level, Outcome, Verdict
from .prometheus import Prometheus, PrometheusError
from .promql import Selector
from .readers import (
    Lookup,
    Reader,
    ReaderKind,
    Value,
    component_of,
    data,
    family_of,
    interpolate,
    noun,
    optional_feature,
    resolve_variables,
)
from .series import Context, PromLookup, Scrapes, named, poll, query_values
from .settings import Policy
from .shard import SLICE_ONLY
from .targets import TargetSource
from .why_empty import why_empty

__all__ = ["compared", "judge_reader"]


def judge_reader(reader: Reader, observations: list[Observation], catalog: Catalog, policy: Policy,
                 prom: Prometheus | None = None, wait: float | None = None) -> Verdict:
    """The reader's verdict. `wait` bounds how long an empty Prometheus query is polled while the data it
    needs are arriving (default: two scrape intervals and 5 s)."""
    seen = [o for o in observations if o.after is not None]
    where = f"{noun(reader.kind)} \"{reader.title}\" ({reader.dashboard_title or reader.dashboard})"
    ctx = Context(reader, where, seen, catalog, policy, prom, wait, Scrapes(seen, policy), list(reader.exprs))
    ctx.scrapes.synthesized |= reader.recorded
    if reader.library is not None:
        return ctx.verdict(Outcome.INCONCLUSIVE, "not checkable", data().messages.library.format(
            where=where, name=reader.library))
    try:
        lookup: Lookup = PromLookup(prom) if prom is not None else ctx.scrapes
        values = resolve_variables(reader, lookup, policy.namespace)
    except PrometheusError as exc:
        return ctx.verdict(Outcome.INCONCLUSIVE, "inconclusive",
                           f"{where}: its variables could not be resolved: {exc}")
    ctx.scrapes.wildcard = any(not v.known for v in values.values())
    repeated = values.get(reader.repeat) if reader.repeat else None
    if repeated is None or not repeated.each:
        return _evaluate(ctx, values)
    verdicts = []
    for each in repeated.each:  # Grafana draws one copy per selected value (every value for All)
        one = _evaluate(ctx, {**values, repeated.variable.name: repeated.single(each)})
        copy = f" (the copy repeated for ${repeated.variable.name}={each})"
        verdicts.append(one.but(message=one.message + copy) if one.message else one)
    return next(v for o in WORST_FIRST for v in verdicts if v.outcome == o)


def _evaluate(ctx: Context, values: dict[str, Value]) -> Verdict:
    ctx.shown = {name: value.shown for name, value in values.items()}
    ctx.exprs = [interpolate(q.expr, values) for q in ctx.reader.queries]
    ctx.scrapes.unjudged = {}
    where = ctx.where
    parsed = []
    for query, expr in zip(ctx.reader.queries, ctx.exprs, strict=True):
        try:
            parsed.append((query.ref_id, expr, promql.parse(expr)))
        except (ValueError, RuntimeError) as exc:
            return ctx.verdict(Outcome.FAILED, "unparsable",
                               f"{where}: its query does not parse as PromQL ({exc}): {expr}. Grafana shows an "
                               f"error instead of data; fix the expression.")
    every = [s for _, expr, _ in parsed for s in promql.selectors(expr)]
    vllm = [s for s in every if not component_of(s.metric)]
    if every and not vllm:  # every selector is another component's
        component = component_of(every[0].metric)
        assert component is not None
        names = ", ".join(sorted({s.metric for s in every}))
        return ctx.verdict(Outcome.SKIPPED, "not a vLLM metric", f"{where} is built on {names}, metrics of "
                                                                 f"{component.name}, not of vLLM: "
                                                                 f"{component.fix}.")
    if not ctx.seen:
        return ctx.verdict(Outcome.INCONCLUSIVE, "inconclusive", f"{where}: no target was scraped after the "
                                                                 f"workload, so nothing can be said of the {ctx.noun}; "
                                                                 f"see the targets' own failures.")
    if ctx.policy.sliced and ctx.prom is None:
        # Without Prometheus, a reader's queries are evaluated over the observed pages: a shard's are its slice only
        return ctx.verdict(Outcome.INCONCLUSIVE, "inconclusive", f"{where} is evaluated over the whole fleet, and "
                                                                 f"{SLICE_ONLY}.")
    try:
        return _judge_queries(ctx, parsed)
    except PrometheusError as exc:
        return ctx.verdict(Outcome.INCONCLUSIVE, "inconclusive", f"{where}: Prometheus could not answer, so the "
                                                                 f"panel could not be judged: {exc}")


def _judge_queries(ctx: Context, parsed: list[tuple[str, str, Any]]) -> Verdict:
    where, prom = ctx.where, ctx.prom
    present: dict[str, bool] = {}

    def has(selector: Selector) -> bool:  # one question per distinct selector
        if selector.shown not in present:
            if prom is None:
                present[selector.shown] = ctx.scrapes.has(selector)
            else:
                present[selector.shown] = bool(prom.query(f"count({selector.shown})"))
                if not present[selector.shown] and selector.metric in ctx.reader.recorded:
                    # a recorded series appears at the rule's next evaluation after its inputs have samples
                    present[selector.shown] = bool(poll(ctx, f"count({selector.shown})"))
        return present[selector.shown]

    empty: list[tuple[str, str, Verdict]] = []  # (refId, expr, why it is empty)
    notes: list[str] = []
    returned: list[float] = []
    alert = ctx.reader.kind == ReaderKind.ALERT
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
                empty.append((ref_id, expr, why_empty(ctx, judged)))
            continue
        got = query_values(prom, expr)
        if not got and judged.data and alert:  # an alert's expression is empty while its condition is false
            quiet = _quiet_alert(ctx, ast)
            if isinstance(quiet, Verdict):
                empty.append((ref_id, expr, quiet))
            else:
                returned += quiet
                notes.append("not firing now: its condition is false, and the series it compares have data")
            continue
        if not got and judged.data:  # every selector has series: the query may be waiting for samples
            got = poll(ctx, expr)
            if not got:
                empty.append((ref_id, expr, _after_wait(ctx, ast, expr)))
                continue
        if not got:
            empty.append((ref_id, expr, why_empty(ctx, judged)))
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
                                                      + " ".join(parts), level=Level.SHOULD, notes=notes)
    live = [(s, keep) for _, _, ast in parsed for s, keep in promql.kept_labels(ast)
            if not component_of(s.metric) and has(s)]
    for selector, _ in live:
        feature = optional_feature(selector.metric)
        if feature and not any(feature in o.features for o in ctx.seen) and feature not in ctx.policy.require:
            return ctx.verdict(Outcome.SKIPPED, "feature not enabled",
                               f"{where} charts {selector.metric}, which only moves with feature {feature}; the "
                               f"feature is not enabled on these servers (pass --vllm-require-feature={feature} "
                               f"to require it).")
    covered = coverage(ctx, parsed)
    if isinstance(covered, Verdict):
        return _unless_unjudged(ctx, covered)
    notes += covered
    moved = movement(ctx, live)
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


def _unless_unjudged(ctx: Context, verdict: Verdict, certain: bool = False) -> Verdict:
    """Without Prometheus, a verdict that rests on a matcher the run could not judge (a scrape label whose value
    discovery does not know) is inconclusive, naming the label: never "ok" on a matcher that was not judged."""
    unjudged = ctx.scrapes.unjudged if ctx.prom is None else {}
    if not unjudged or certain:  # e.g. every server's series stayed at 0: so do those the matcher selects
        return verdict
    sign = {"Equal": "=", "NotEqual": "!=", "Re": "=~", "NotRe": "!~"}
    shown = ", ".join(f'{label}{sign[op]}"{value}"' for label, op, value in unjudged)
    labels = sorted({label for label, _, _ in unjudged})
    servers = sorted({name for names in unjudged.values() for name in names})
    known = ("URL targets carry none of them" if all(o.target.source is not TargetSource.KUBERNETES for o in ctx.seen)
             else "Kubernetes discovery knows pod, namespace and container, not " + ", ".join(labels))
    return ctx.verdict(Outcome.INCONCLUSIVE, "inconclusive", data().messages.unjudged.format(
        where=ctx.where, matchers=shown, labels=", ".join(labels), known=known, noun=ctx.noun,
        servers=named(servers)), unjudged=shown)


_FILTERS = ("==", "!=", ">", "<", ">=", "<=")


def compared(node: Any) -> list[Any]:
    """What an alert's condition compares: the operands of its filtering comparisons and of 'and'/'unless',
    without number literals (`a / b > 0.9 and c` compares a / b and c)."""
    if isinstance(node, promql_parser.ParenExpr):
        return compared(node.expr)
    if isinstance(node, promql_parser.BinaryExpr):
        op = str(node.op).lower()
        if op in _FILTERS and not (node.modifier is not None and node.modifier.return_bool):
            return compared(node.lhs) + compared(node.rhs)
        if op in ("and", "unless"):
            return compared(node.lhs) + (compared(node.rhs) if op == "and" else [])
    if isinstance(node, (promql_parser.NumberLiteral, promql_parser.StringLiteral)):
        return []
    return [node]


def _quiet_alert(ctx: Context, ast: Any) -> list[float] | Verdict:
    """An alert whose expression returns nothing in Prometheus: the values of what it compares when each has
    data (it is not firing now), else why one of them stays empty."""
    assert ctx.prom is not None
    values: list[float] = []
    for node in compared(ast):
        expr = node.prettify()
        got = query_values(ctx.prom, expr) or poll(ctx, expr)
        if not got:
            return _after_wait(ctx, node, expr)
        values += got
    return values


def _after_wait(ctx: Context, ast: Any, expr: str) -> Verdict:
    """Every selector has series, yet the query stayed empty for the whole wait: too few samples in a range
    window is the run's timing (inconclusive); otherwise the expression itself returns nothing."""
    assert ctx.prom is not None
    for matrix in promql.matrices(ast):
        window = promql.duration(matrix.range)
        counts = query_values(ctx.prom, f"count_over_time({matrix.prettify()})")
        if max(counts, default=0) < 2:
            selector = promql.selector_of(matrix.vector_selector)
            return ctx.verdict(Outcome.INCONCLUSIVE, "inconclusive", data().messages.few_samples.format(
                where=ctx.where, selector=selector.shown, window=window, wait=f"{ctx.wait:g}"))
    return ctx.verdict(Outcome.FAILED, "no data", f"{ctx.where}: Prometheus returns nothing for {expr} although "
                                                  f"each of its selectors has series there: the series do not "
                                                  f"match across its operators (the labels of one side differ from "
                                                  f"the other's), or a filter removes them all.")
