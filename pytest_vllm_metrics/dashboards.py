"""Dashboard check: for each Grafana panel, will it show data, and if not, exactly why.

Panels are read from dashboard JSON (rows and nested panels included); every target expression is parsed
with a real PromQL parser (promql-parser) after Grafana variables are substituted. A panel gets one verdict:
ok, no data, label mismatch, always zero / NaN, not a vLLM metric, feature not enabled, or unparsable.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from . import evaluate
from .catalog import Catalog, Entry, conformance_data
from .evaluate import Verdict
from .observe import Observation
from .prometheus import TARGET_LABELS, Prometheus, PrometheusError
from .settings import Settings

_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)")
_HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")


class DashboardError(Exception):
    """A dashboard file that cannot be used; one paragraph naming the file and the fix."""


@dataclass(frozen=True)
class Panel:
    dashboard: str  # the file's stem: short, for test ids
    title: str
    exprs: tuple[str, ...]
    variables: tuple[tuple[str, str], ...]  # name -> current value (Grafana's "All" becomes .*)
    dashboard_title: str = ""

    @property
    def id(self) -> str:
        return f"{self.dashboard}::{self.title}"


@cache
def _data() -> dict[str, Any]:
    return conformance_data("dashboards.toml")


def load_panels(paths: tuple[Path, ...]) -> list[Panel]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(path.glob("*.json")))
        else:
            files.append(path)
    panels: list[Panel] = []
    for file in files:
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise DashboardError(f"dashboard {file} cannot be read ({exc}); check --grafana-dashboard.") from None
        except json.JSONDecodeError as exc:
            raise DashboardError(
                f"dashboard {file} is not valid JSON ({exc}); export it again from Grafana (Share > Export > "
                f"Save to file) and pass that file to --grafana-dashboard."
            ) from None
        if isinstance(data, dict) and isinstance(data.get("dashboard"), dict):
            data = data["dashboard"]  # the API's {"dashboard": ..., "meta": ...} envelope
        if not isinstance(data, dict) or not isinstance(data.get("panels", []), list):
            raise DashboardError(f"dashboard {file} has no 'panels' list; it is not a Grafana dashboard JSON.")
        dashboard_title = str(data.get("title") or file.stem)
        variables = tuple(_variables(data))
        seen: dict[str, int] = {}
        for panel in _walk(data.get("panels", [])):
            exprs = tuple(str(t["expr"]) for t in panel.get("targets", []) if isinstance(t, dict) and t.get("expr"))
            if not exprs:
                continue
            title = str(panel.get("title") or f"panel {panel.get('id', '?')}")
            seen[title] = seen.get(title, 0) + 1
            if seen[title] > 1:
                title = f"{title} ({seen[title]})"
            panels.append(Panel(file.stem, title, exprs, variables, dashboard_title))
    return panels


def _walk(panels: list[Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for panel in panels:
        if isinstance(panel, dict):
            out.append(panel)
            out.extend(_walk(panel.get("panels", [])))  # rows (collapsed or not) nest their panels
    return out


def _variables(data: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for var in (data.get("templating") or {}).get("list", []):
        current = (var.get("current") or {}).get("value")
        if isinstance(current, list):
            current = "|".join(str(v) for v in current)
        if current in (None, "", "All", "$__all"):
            current = var.get("allValue") or ".*"
        out.append((str(var.get("name")), str(current)))
    return out


def substitute(expr: str, variables: dict[str, str], namespace: str | None) -> str:
    durations = _data()["durations"]

    def value(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        if name in durations:
            return str(durations[name])
        if name == "namespace" and namespace:
            return namespace
        return variables.get(name, ".*")

    return _VARIABLE.sub(value, expr)


@dataclass(frozen=True)
class Selector:
    metric: str
    matchers: tuple[tuple[str, str, str], ...]  # (label, op, value)


def selectors(expr: str) -> list[Selector]:
    """Every vector selector of an expression, by the PromQL parser (ValueError when it does not parse)."""
    import promql_parser

    ast = promql_parser.parse(expr)
    found: list[Selector] = []

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            matchers = tuple((m.name, str(m.op).rsplit(".", 1)[-1], m.value) for m in node.matchers.matchers)
            name = node.name or next((v for label, _, v in matchers if label == "__name__"), "")
            found.append(Selector(name, tuple(m for m in matchers if m[0] != "__name__")))

    promql_parser.walk(ast, visit)
    return found


# -- verdicts --------------------------------------------------------------------------------------------


def evaluate_panel(panel: Panel, observations: list[Observation], catalog: Catalog, settings: Settings,
                   prom: Prometheus | None = None) -> Verdict:
    variables = dict(panel.variables)
    exprs = [substitute(e, variables, settings.vllm_namespace) for e in panel.exprs]
    where = f"panel \"{panel.title}\" ({panel.dashboard_title or panel.dashboard})"
    parsed: list[Selector] = []
    for expr in exprs:
        try:
            parsed.extend(selectors(expr))
        except (ValueError, RuntimeError) as exc:
            return _verdict("failed", "unparsable", f"{where}: its query does not parse as PromQL ({exc}): {expr}. "
                                                    f"Grafana shows an error instead of data; fix the expression.",
                            exprs)
    seen = [o for o in observations if o.after is not None]
    components = [(s, c) for s in parsed if (c := _component(s.metric))]
    vllm = [s for s in parsed if not _component(s.metric)]
    if not vllm:
        component = components[0][1] if components else {"name": "another component", "fix": ""}
        names = ", ".join(sorted({s.metric for s, _ in components}))
        return _verdict("skipped", "not a vLLM metric", f"{where} is built on {names}, metrics of "
                                                        f"{component['name']}, not of vLLM: {component['fix']}.", exprs)
    if not seen:
        return _verdict("failed", "no data", f"{where}: no target was scraped after the workload, so nothing can "
                                             f"be said of the panel; see the targets' own failures.", exprs)
    for selector in vllm:
        missing = _missing(selector.metric, seen, catalog, where, exprs)
        if missing:
            return missing
    try:
        prom_labels = _prometheus_labels(prom, vllm) if prom else None
    except PrometheusError as exc:
        return _verdict("failed", "no data", f"{where}: Prometheus could not be asked for its series: {exc}", exprs)
    for selector in vllm:
        mismatch = _label_mismatch(selector, seen, where, prom_labels)
        if mismatch:
            return _verdict("failed", "label mismatch", mismatch, exprs)
    for selector in vllm:
        feature = _optional_feature(selector.metric)
        if feature and not any(feature in o.features for o in seen) and feature not in settings.vllm_require_feature:
            return _verdict("skipped", "feature not enabled",
                            f"{where} charts {selector.metric}, which only moves with feature {feature}; the feature "
                            f"is not enabled on these servers (pass --vllm-require-feature={feature} to require it).",
                            exprs)
    for selector in vllm:
        zero = _always_zero(selector.metric, seen, catalog, settings, where, exprs)
        if zero:
            return zero
    if prom is not None:
        moving = any((entry := _family_of(s.metric, catalog)) is not None and entry.moves for s in vllm)
        return _against_prometheus(prom, exprs, where, moving)
    return _verdict("passed", "ok", "", exprs)


def _verdict(outcome: str, kind: str, message: str, exprs: list[str], diagnosis: str | None = None) -> Verdict:
    return Verdict(outcome, message, "MUST", {"panel_verdict": kind, "exprs": exprs}, diagnosis=diagnosis)


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


def _family_of(metric: str, catalog: Catalog) -> Entry | None:
    entry = catalog.get(metric)
    if entry is None and metric.endswith(_HISTOGRAM_SUFFIXES):
        entry = catalog.get(metric.rsplit("_", 1)[0])
    return entry


def _missing(metric: str, seen: list[Observation], catalog: Catalog, where: str, exprs: list[str]
             ) -> Verdict | None:
    if any(metric in o.after.samples for o in seen if o.after):
        return None
    names = {name for o in seen if o.after for name in o.after.samples}
    if metric + "_total" in names:
        return _verdict("failed", "no data", f"{where} queries {metric}, which no server exposes: the counter is "
                                             f"{metric}_total (counters carry _total). Query {metric}_total.", exprs)
    entry = _family_of(metric, catalog)
    if entry is not None and entry.replaced_by:
        return _verdict("failed", "no data", f"{where} queries {metric}, which vLLM renamed: the servers expose "
                                             f"{entry.replaced_by} (the old name exists only in vLLM "
                                             f"{entry.versions.text}). Query {entry.replaced_by}.", exprs)
    feature = _optional_feature(metric) or (entry.feature if entry and entry.feature != "core" else None)
    if feature and not any(feature in o.features for o in seen):
        return _verdict("skipped", "feature not enabled", f"{where} charts {metric}, a metric of feature {feature}, "
                                                          f"which is not enabled on these servers.", exprs)
    return _verdict("failed", "no data", f"{where} queries {metric}, which none of the {len(seen)} server(s) "
                                         f"exposes; the panel stays empty. Check the metric name against "
                                         f"vLLM's /metrics.", exprs)


def _prometheus_labels(prom: Prometheus, vllm: list[Selector]) -> dict[str, set[str]]:
    labels: dict[str, set[str]] = {}
    for selector in vllm:
        series = prom.get("/api/v1/series", **{"match[]": selector.metric, "limit": 20,
                                                "start": f"{time.time() - 600:.0f}"})
        labels[selector.metric] = {key for item in series for key in item if key != "__name__"}
    return labels


def _label_mismatch(selector: Selector, seen: list[Observation], where: str,
                    prom_labels: dict[str, set[str]] | None) -> str | None:
    if prom_labels is not None:
        have = prom_labels.get(selector.metric, set())
        source = "Prometheus stores only"
    else:
        have = {key for o in seen if o.after for s in o.after.samples.get(selector.metric, []) for key, _ in s.labels}
        have |= set(TARGET_LABELS)
        source = "vLLM's labels plus the target labels Prometheus Operator adds are"
    for label, _, _ in selector.matchers:
        if label not in have:
            return (f"{where} selects {selector.metric} by label {label}, which no series carries ({source} "
                    f"{', '.join(sorted(have))}), so the panel stays empty. Prometheus Operator adds namespace and "
                    f"pod, not kubernetes_namespace or kubernetes_pod_name: select on the label the scrape adds.")
    return None


def _always_zero(metric: str, seen: list[Observation], catalog: Catalog, settings: Settings,
                 where: str, exprs: list[str]) -> Verdict | None:
    entry = _family_of(metric, catalog)
    if entry is None or not entry.moves:
        return None  # gauges and counters that legitimately stay at 0 (preemptions) chart fine
    still = [o for o in seen if o.delta is not None and not o.delta.increase(entry.name)]
    if not still:
        return None
    pods = ", ".join(o.target.name for o in still)
    cause = evaluate.movement(entry, still[0], settings)
    reason = cause.diagnosis or cause.message
    outcome = "xfailed" if cause.outcome == "xfailed" else "failed"
    ratio = " A ratio of two such lifetime counters is 0/0 = NaN." if entry.type == "counter" else ""
    message = (f"{where} will be always zero / NaN on {pods}: {entry.name} exists but did not move during the "
               f"workload.{ratio} Root cause: {reason}")
    return _verdict(outcome, "always zero / NaN", message, exprs, diagnosis=reason)


def _against_prometheus(prom: Prometheus, exprs: list[str], where: str, moving: bool) -> Verdict:
    """Run the panel's queries. Zero or NaN is a finding only for counters the workload must move; a gauge
    at rest (queue length, KV usage after the workload) is legitimately 0."""
    try:
        results = [prom.query(expr) for expr in exprs]
    except PrometheusError as exc:
        return _verdict("failed", "no data", f"{where}: Prometheus could not run its query: {exc}", exprs)
    values = [float(s["value"][1]) for result in results for s in result]
    if not values:
        return _verdict("failed", "no data", f"{where}: Prometheus returns no series for its queries although the "
                                             f"servers expose the metrics: the series are not scraped with the "
                                             f"labels the panel selects (see the Prometheus checks).", exprs)
    if moving and all(v == 0 or v != v for v in values):
        return _verdict("failed", "always zero / NaN", f"{where}: Prometheus returns only 0 or NaN for its queries.",
                        exprs)
    return _verdict("passed", "ok", "", exprs)

