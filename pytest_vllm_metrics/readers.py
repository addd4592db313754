"""Readers of vLLM's metrics: a Grafana panel, an alerting or recording rule, a KEDA trigger, a prometheus-adapter rule,
an endpoint picker flag. Each is a `Reader`: PromQL queries (or a bare metric name) and where they came from, judged
with one vocabulary (judging.py). This module reads Grafana dashboards into readers (consumers.py reads the others),
and holds what the judging knows of names beyond the catalog (conformance/dashboards.toml): other components'
metrics, features' metrics, the other forms a collection path gives vLLM's names.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import _grafana as grafana
from . import _grafana_vars as variables_of
from . import data as datafiles
from . import schemas
from ._grafana import DashboardError
from ._grafana_vars import Value
from .catalog import Catalog, Entry

if TYPE_CHECKING:
    from .epp_config import EppCheck  # for the annotation only: epp_config builds Readers, a Reader carries its check

__all__ = ["UNKNOWN", "DashboardError", "Lookup", "Query", "Reader", "ReaderKind", "Value", "component_of", "data",
           "exposed_as", "family_of", "interpolate", "load_dashboards", "noun", "object_dashboards",
           "optional_feature", "resolve_variables", "substitute"]

UNKNOWN = variables_of.UNKNOWN  # a variable's value the run cannot know, written as a regex that matches anything
Lookup = variables_of.Lookup  # what answers a dashboard's variable queries: Prometheus, or the direct scrapes

_HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")


class ReaderKind(StrEnum):
    """What reads the queries: a Grafana panel, or another consumer of the metrics, judged with the same
    vocabulary (a kind of a user's own keeps its own name)."""

    PANEL = "panel"
    ALERT = "alert"
    RECORD = "record"  # a recording rule
    KEDA = "keda"  # a KEDA ScaledObject's Prometheus trigger
    ADAPTER = "adapter"  # a prometheus-adapter rule
    EPP = "epp"  # an endpoint picker flag naming a metric, or its EndpointPickerConfig's specs


@dataclass(frozen=True)
class Query:
    ref_id: str
    expr: str  # as written, variables and all


@dataclass(frozen=True)
class Reader:
    dashboard: str  # the file's (or ConfigMap key's) stem: short, for test ids
    title: str
    queries: tuple[Query, ...]
    variables: tuple[variables_of.Variable, ...] = ()  # resolved at evaluation: query variables need the data
    dashboard_title: str = ""
    repeat: str | None = None  # the variable the panel is repeated for
    library: str | None = None  # a library panel whose model lives in Grafana, not in the file
    # Where the dashboard draws it, for the report's picture of the dashboard (not part of any verdict).
    grid: grafana.Grid | None = field(default=None, compare=False)  # x, y, w, h; None: the file says nothing
    row: str = field(default="", compare=False)  # the title of the row holding it
    # What reads these queries: a Grafana "panel", or another consumer of the metrics ("alert", "record",
    # "keda", "adapter", "epp"): those are judged with the same vocabulary but are not drawn as dashboards.
    kind: str = ReaderKind.PANEL
    # The series the run's recording rules make (consumers.py): Prometheus makes them, not vLLM, so a direct
    # scrape cannot show them; each recording rule is judged on its own.
    recorded: frozenset[str] = field(default=frozenset(), compare=False)
    # An endpoint picker's configuration check (epp_config.py): judged by the engine of each pod, not as PromQL.
    epp: EppCheck | None = field(default=None, compare=False)

    @property
    def id(self) -> str:
        return f"{self.dashboard}::{self.title}"

    @property
    def exprs(self) -> tuple[str, ...]:
        return tuple(q.expr for q in self.queries)


def data() -> schemas.DashboardsFile:
    """What the judging of readers knows beyond the catalog (conformance/dashboards.toml), decoded and checked."""
    return datafiles.dashboards()


# -- loading -----------------------------------------------------------------------------------------------


def load_dashboards(paths: Iterable[Path]) -> list[Reader]:
    panels: list[Reader] = []
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
            panels.append(Reader(panel.dashboard, title, panel.queries, panel.variables, panel.dashboard_title,
                                panel.repeat, panel.library, panel.grid, panel.row))
    return panels


def object_dashboards(configmap: dict[str, Any], where: str) -> list[Reader]:
    """The panels of a dashboard ConfigMap read from the cluster (the Grafana sidecar's shape: each data key one
    dashboard JSON); `where` names it in messages. DashboardError when it holds no usable dashboard."""
    return [panel for dashboard in grafana.from_configmap(where, configmap) for panel in _panels(dashboard)]


def _panels(dashboard: grafana.Dashboard) -> list[Reader]:
    variables = variables_of.variables(dashboard.model)
    out: list[Reader] = []
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
            out.append(Reader(dashboard.name, str(raw.get("title") or name), (), variables, dashboard.title,
                             repeat, name, placed.grid, placed.row))
        elif queries:
            out.append(Reader(dashboard.name, title, queries, variables, dashboard.title, repeat,
                             grid=placed.grid, row=placed.row))
    return out


def _prometheus(*datasources: Any) -> bool:
    """A target queries Prometheus unless its (or its panel's) data source says another type."""
    for datasource in datasources:
        if isinstance(datasource, dict) and datasource.get("type") not in (None, "", "datasource"):
            return str(datasource["type"]) == "prometheus"
    return True


def substitute(expr: str, variables: dict[str, str], namespace: str | None) -> str:
    """Plain substitution of single values (and the built-in durations); judge_reader resolves as Grafana."""
    values = {name: Value(variables_of.Variable(name, "constant"), (value,)) for name, value in variables.items()}
    if namespace:
        values["namespace"] = Value(variables_of.Variable("namespace", "constant"), (namespace,))
    return interpolate(expr, values)


def noun(kind: str) -> str:
    """What a verdict speaks of: a panel, an alert, a KEDA scaler... (dashboards.toml [kinds])."""
    return str(data().kinds.get(kind, kind))


def component_of(metric: str) -> schemas.Component | None:
    """The other component whose metric this is, in any form a collection path stores it (kserve_inference_pool_*
    is the endpoint picker's)."""
    forms = [metric] + [metric[len(p):] for rule in data().collection_prefix for p in rule.prefixes
                        if metric.startswith(p)]
    for component in data().component:
        for form in forms:
            if form in component.names or form.startswith(tuple(component.prefixes)):
                return component
    return None


def optional_feature(metric: str) -> str | None:
    for row in data().feature_metric:
        if metric.startswith(tuple(row.prefixes)):
            return str(row.feature)
    return None


def family_of(metric: str, catalog: Catalog) -> Entry | None:
    """The catalog family a selected name belongs to (a histogram's _bucket, _count or _sum included)."""
    entry = catalog.get(metric)
    if entry is None and metric.endswith(_HISTOGRAM_SUFFIXES):
        entry = catalog.get(metric.rsplit("_", 1)[0])
    return entry


def exposed_as(metric: str, names: Iterable[str]) -> tuple[str | None, str]:
    """The exposed family that `metric` is another form of, and how the forms differ."""
    names = set(names)
    for rule in data().collection_prefix:
        for prefix in rule.prefixes:
            if metric.startswith(prefix):
                bare = metric[len(prefix):]
                for family in sorted(names):
                    if bare in (family, family.replace(":", "_")):
                        return family, str(rule.how)
    underscored = [n for n in sorted(names) if ":" in n and n.replace(":", "_") == metric]
    if underscored:
        return underscored[0], str(data().messages.underscores)
    return None, ""


def resolve_variables(reader: Reader, lookup: Lookup, namespace: str | None) -> dict[str, Value]:
    """A reader's Grafana variables, resolved as Grafana resolves them (against `lookup`)."""
    return variables_of.resolve(reader.variables, lookup, namespace, data().durations)


def interpolate(expr: str, values: dict[str, Value]) -> str:
    """A query with its variables written as Grafana writes them (and the built-in intervals)."""
    return variables_of.interpolate(expr, values, data().durations)
