"""Why a reader stays empty: every problem of the selectors that empty it, in one verdict, the most telling first
(a family that does not exist, under which name it does, another form a store holds, a label the scrape never adds,
a value no series carries).
"""

from __future__ import annotations

import re
import time

from . import promql
from .outcome import WORST_FIRST, Outcome, Verdict
from .prometheus import TARGET_LABELS
from .promql import Selector
from .readers import data, exposed_as, family_of, optional_feature
from .series import Context, matches

__all__ = ["why_empty"]

def why_empty(ctx: Context, judged: promql.Judged) -> Verdict:
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


def _together(ctx: Context, problems: list[Verdict]) -> Verdict:
    """Several problems of one reader as one verdict: the first problem in full, each other one after it (its
    subject is the same reader: "it"); failed if any of them fails."""
    unique = list({p.message: p for p in problems}.values())
    first = next((p for o in WORST_FIRST for p in unique if p.outcome == o), unique[0])
    if len(unique) == 1:
        return first
    never = data().never.get(ctx.reader.kind)
    rest = []
    for problem in unique:
        if problem is first:
            continue
        text = problem.message.removeprefix(f"{never} " if never else "").removeprefix(ctx.where).lstrip(": ")
        rest.append(f"Also, it {text}" if not text.startswith("it ") else f"Also, {text}")
    return Verdict(first.outcome, f"{first.message} {' '.join(rest)}", first.level,
                   {**first.evidence, "problems": len(unique)}, diagnosis=first.diagnosis, target=first.target)


def _exposed(ctx: Context) -> set[str]:
    return {name for o in ctx.seen if o.after for name in o.after.samples}


def _missing(ctx: Context, metric: str) -> Verdict | None:
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
    removed = data().removed.get(metric)
    if removed:
        return no_data(f"{where} queries {metric}, which vLLM removed: {removed.why}. {removed.fix}.")
    feature = optional_feature(metric) or (entry.feature if entry and entry.feature != "core" else None)
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


def _renamed_form(ctx: Context, metric: str, names: set[str]) -> Verdict | None:
    """A name the servers expose in another form: colons written as underscores (a store or collector that
    rewrites them), or a prefix a collection path puts before vLLM's names (KServe, Ray Serve). Only the store
    can tell which form it holds: without Prometheus this is inconclusive; behind it, Prometheus lacks this form."""
    family, how = exposed_as(metric, names)
    if family is None:
        return None
    messages = data().messages
    if ctx.prom is None:
        return ctx.verdict(Outcome.INCONCLUSIVE, "inconclusive", messages.other_form.format(
            where=ctx.where, metric=metric, family=family, how=how, noun=ctx.noun))
    return ctx.verdict(Outcome.FAILED, "no data", messages.other_form_missing.format(
        where=ctx.where, metric=metric, family=family, how=how, noun=ctx.noun))


def _stored_names(ctx: Context) -> list[str]:
    assert ctx.prom is not None
    return [str(v) for v in ctx.prom.get("/api/v1/label/__name__/values")]


def _stored_elsewhere(ctx: Context, selector: Selector) -> Verdict | None:
    """Behind Prometheus: the servers expose the family, but the store holds it under another form (underscores,
    a collection path's prefix): name the form it holds."""
    if ctx.prom is None or not any(selector.metric in o.after.samples for o in ctx.seen if o.after):
        return None
    for stored in _stored_names(ctx):
        family, how = exposed_as(stored, [selector.metric])
        if family is not None:
            return ctx.verdict(Outcome.FAILED, "no data", data().messages.stored_as.format(
                where=ctx.where, metric=selector.metric, stored=stored, how=how, noun=ctx.noun))
    return None


def _label_mismatch(ctx: Context, selector: Selector, reported: set[str] | None = None,
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
        if not judged or any(matches([(label, op, value)], s, ctx.scrapes.wildcard) for s in judged):
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
