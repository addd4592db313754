"""Grafana as it reads a dashboard: the shapes a dashboard file comes in, and its variables as it fills them.

Loading accepts the dashboard model, the HTTP API's `{"dashboard": ..., "meta": ...}` envelope, the pre-5.0
model with top-level `rows`, Kubernetes ConfigMaps (the kube-prometheus-stack sidecar convention: each `data` key
ending in `.json` is one dashboard) and Grafana Operator `GrafanaDashboard` resources (grafana.integreatly.org/v1beta1,
and the older integreatly.org/v1alpha1: the model in `spec.json`, `spec.gzipJson`, a ConfigMap named by
`spec.configMapRef`, or the copy the operator fetched from `spec.url`/`spec.grafanaCom`), alone, in a `kind: List`,
or as multi-document YAML. Other Kubernetes objects beside them (the `Grafana` instance, RBAC) are skipped.

Variables are resolved the way Grafana resolves them when the dashboard loads: a saved `current` value is
kept, a query variable without one takes its first option (after its `regex` and `sort`), and a value is
written into a query as Grafana's dashboards (@grafana/scenes' sceneInterpolator) write it: by the Prometheus data
source's `interpolateQueryExpr` when the query names no format (raw for a single-value variable, regex-escaped and
joined as `(a|b)` for a multi-value or include-all one, `allValue` verbatim for All), else by the named format.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import re
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

ALL = "$__all"
# The value written for a variable whose options this run cannot know (a target label without Prometheus):
# what the check did before it resolved variables, and harmless in a `=~` matcher.
UNKNOWN = ".*"

# Grafana's own variable pattern (templateSrv): $var, [[var]], [[var:fmt]], ${var}, ${var.field}, ${var:fmt}.
_VARIABLE = re.compile(r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^}]+))?(?::([^}]+))?\}")
_DASHBOARD_SUFFIXES = (".json", ".yaml", ".yml")
# The Grafana Operator's API groups for GrafanaDashboard: v5 (v1beta1), and v4 (v1alpha1) before it.
OPERATOR_GROUPS = ("grafana.integreatly.org", "integreatly.org")


class DashboardError(Exception):
    """A dashboard file that cannot be used; one paragraph naming the file and the fix."""


# -- loading -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dashboard:
    name: str  # short, for test ids: the file's stem, a ConfigMap key's, or a GrafanaDashboard's name
    where: str  # for messages: the file, and the ConfigMap key or GrafanaDashboard it came from
    model: dict[str, Any] = field(hash=False, compare=False)

    @property
    def title(self) -> str:
        return str(self.model.get("title") or self.name)


def load(paths: Iterable[Path]) -> list[Dashboard]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in _DASHBOARD_SUFFIXES)
            if not found:
                raise DashboardError(
                    f"dashboard directory {path} holds no dashboard file (*.json, *.yaml, *.yml); export the "
                    f"dashboards from Grafana (Share > Export > Save to file) into it, or pass the files themselves "
                    f"to --grafana-dashboard.")
            files.extend(found)
        else:
            files.append(path)
    parsed = [(file, _objects(file)) for file in files]
    # A GrafanaDashboard may take its model from a ConfigMap of another file given (the operator's examples put
    # both in one file): those ConfigMaps are its source, not sidecar dashboards of their own.
    pool = [(file, document) for file, documents in parsed for document in documents if _is_configmap(document)]
    sources: dict[int, Source] = {}
    for file, documents in parsed:
        for document in documents:
            if is_operator_dashboard(document):
                sources[id(document)] = operator_source(document, str(file), pool, from_files=True)
    taken = {id(s.configmap) for s in sources.values() if s.configmap is not None}
    dashboards: list[Dashboard] = []
    for file, documents in parsed:
        dashboards.extend(_from_documents(file, documents, sources, taken))
    return dashboards


def _objects(file: Path) -> list[Any]:
    """The file's documents, the items of a `kind: List` in their place."""
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DashboardError(f"dashboard {file} cannot be read ({exc}); check --grafana-dashboard.") from None
    if file.suffix.lower() in (".yaml", ".yml"):
        documents = _yaml_documents(file, text)
    else:
        try:
            documents = [json.loads(text)]
        except json.JSONDecodeError as exc:
            raise DashboardError(
                f"dashboard {file} is not valid JSON ({exc}); export it again from Grafana (Share > Export > "
                f"Save to file) and pass that file to --grafana-dashboard.") from None

    def flat(document: Any) -> list[Any]:
        if isinstance(document, dict) and document.get("kind") == "List":
            return [o for item in document.get("items") or [] for o in flat(item)]
        return [document]

    return [o for document in documents for o in flat(document)]


def _yaml_documents(file: Path, text: str) -> list[Any]:
    import yaml  # only for YAML inputs (a dependency of the kubernetes client)

    try:
        return [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise DashboardError(f"dashboard {file} is not valid YAML ({exc}); pass the ConfigMap as kubectl prints "
                             f"it (kubectl get configmap NAME -o yaml) or the dashboard JSON itself.") from None


def _is_configmap(document: Any) -> bool:
    return isinstance(document, dict) and document.get("kind") == "ConfigMap"


def _kind(document: Any) -> str | None:
    """The kind of a Kubernetes object (apiVersion and kind at the top), None for anything else."""
    if isinstance(document, dict) and document.get("kind") and document.get("apiVersion"):
        return str(document["kind"])
    return None


def _from_documents(file: Path, documents: list[Any], sources: dict[int, Source], taken: set[int]
                    ) -> list[Dashboard]:
    out: list[Dashboard] = []
    skipped: list[str] = []  # other Kubernetes objects in the file (a Grafana instance, RBAC, ...)
    unused: list[dict[str, Any]] = []  # ConfigMaps holding no dashboard (a provisioning config, ...)
    for document in documents:
        kind = _kind(document)
        if id(document) in sources:
            out.extend(sources[id(document)].dashboards(str(file)))
        elif _is_configmap(document) and id(document) in taken:
            continue
        elif _is_configmap(document):
            if _sidecar_keys(document) or "grafana_dashboard" in _labels(document):
                out.extend(_from_configmap(file, document))
            else:
                unused.append(document)
        elif kind is not None and not _is_model(document):
            skipped.append(kind)
        else:
            out.extend(_from_document(file, document))
    if not out and unused:
        _from_configmap(file, unused[0])  # raises: the sidecar would load nothing from it
    if not out and skipped:
        raise DashboardError(
            f"dashboard {file} holds no dashboard: its Kubernetes objects are of kind "
            f"{', '.join(dict.fromkeys(skipped))}. Pass the dashboard JSON exported from Grafana, a ConfigMap whose "
            f"data keys ending in .json hold dashboards (the Grafana sidecar's), or a GrafanaDashboard "
            f"(grafana.integreatly.org) as kubectl prints it (kubectl get grafanadashboard NAME -o yaml).")
    return out


def _is_model(document: Any) -> bool:
    return isinstance(document, dict) and (bool(_list(document, "panels") or _list(document, "rows"))
                                           or isinstance(document.get("dashboard"), dict))


def _labels(document: dict[str, Any]) -> dict[str, Any]:
    labels = (document.get("metadata") or {}).get("labels")
    return labels if isinstance(labels, dict) else {}


def _from_document(file: Path, document: Any) -> list[Dashboard]:
    if isinstance(document, dict) and document.get("kind") == "List":
        return [d for item in document.get("items") or [] for d in _from_document(file, item)]
    if isinstance(document, dict) and document.get("kind") == "ConfigMap":
        return _from_configmap(file, document)
    if isinstance(document, dict) and isinstance(document.get("dashboard"), dict):
        document = document["dashboard"]  # the HTTP API's {"dashboard": ..., "meta": ...} envelope
    if not isinstance(document, dict) or not (_list(document, "panels") or _list(document, "rows")):
        keys = ", ".join(sorted(map(str, document))) if isinstance(document, dict) else type(document).__name__
        raise DashboardError(
            f"dashboard {file} has no panels: found {'top-level keys ' + keys if keys else 'an empty object'}, "
            f"expected a Grafana dashboard model (with 'panels', or 'rows' before Grafana 5), the API's "
            f"{{\"dashboard\": ...}} envelope, or a ConfigMap whose data keys ending in .json hold dashboards. Export "
            f"the dashboard from Grafana (Share > Export > Save to file) and pass that file to --grafana-dashboard.")
    return [Dashboard(file.stem, str(file), document)]


def from_configmap(where: str, configmap: dict[str, Any]) -> list[Dashboard]:
    """The dashboards of an object read from a cluster rather than a file (`where` names it in messages): a
    ConfigMap of the Grafana sidecar's, or a GrafanaDashboard, alone or in a `List` with the ConfigMap its
    configMapRef names (which is then its source, not a dashboard of its own)."""
    if configmap.get("kind") != "List" and not is_operator_dashboard(configmap):
        return _from_configmap(Path(where), configmap)  # the sidecar's
    documents = list(configmap.get("items") or []) if configmap.get("kind") == "List" else [configmap]
    pool = [(where, d) for d in documents if _is_configmap(d)]
    sources = {id(d): operator_source(d, where, pool, from_files=False) for d in documents
               if is_operator_dashboard(d)}
    taken = {id(s.configmap) for s in sources.values() if s.configmap is not None}
    return _from_documents(Path(where), documents, sources, taken)


def _sidecar_keys(configmap: dict[str, Any]) -> list[str]:
    data = configmap.get("data") or {}
    return [str(key) for key in data if str(key).endswith(".json")] if isinstance(data, dict) else []


def _from_configmap(file: Path, configmap: dict[str, Any]) -> list[Dashboard]:
    name = str((configmap.get("metadata") or {}).get("name") or "?")
    data = configmap.get("data") or {}
    keys = _sidecar_keys(configmap)
    if not keys:
        raise DashboardError(
            f"dashboard {file}: ConfigMap {name} has no data key ending in .json (keys: "
            f"{', '.join(map(str, data)) or 'none'}); Grafana's dashboard sidecar loads each such key as one "
            f"dashboard. Name the key after the dashboard, e.g. vllm.json.")
    out: list[Dashboard] = []
    for key in keys:
        where = f"{file} (ConfigMap {name}, key {key})"
        try:
            model = json.loads(str(data[key]))
        except json.JSONDecodeError as exc:
            raise DashboardError(f"dashboard {where} is not valid JSON ({exc}); the sidecar would not load it "
                                 f"either. Put the dashboard JSON exported from Grafana under the key.") from None
        for found in _from_document(Path(where), model):
            out.append(Dashboard(Path(str(key)).stem, where, found.model))
    return out


# -- Grafana Operator GrafanaDashboard resources -----------------------------------------------------------

# The operator's sources of a dashboard model (api/v1beta1/content.go, GrafanaContentSpec), in the order read here.
_INLINE = ("json", "gzipJson")
_REFERENCES = ("configMapRef", "gzipConfigMapRef")  # gzipConfigMapRef: v4 (v1alpha1) only, from binaryData
_REMOTE = ("url", "grafanaCom")
_BUILT = ("jsonnet", "jsonnetLib", "oci")


def is_operator_dashboard(document: Any) -> bool:
    """A Grafana Operator GrafanaDashboard (v1beta1, or v4's v1alpha1)."""
    return (isinstance(document, dict) and document.get("kind") == "GrafanaDashboard"
            and str(document.get("apiVersion") or OPERATOR_GROUPS[0]).partition("/")[0] in OPERATOR_GROUPS)


@dataclass(frozen=True)
class Source:
    """Where a GrafanaDashboard's model comes from, and the model's text as the operator hands it to Grafana."""

    name: str  # the resource's name: the dashboard's name in test ids
    label: str  # "GrafanaDashboard NS/NAME", for messages
    text: str  # the model's JSON, the data source inputs (spec.datasources) filled in
    origin: str = ""  # ", from ConfigMap X key K" and the like, for messages
    configmap: dict[str, Any] | None = field(default=None, hash=False, compare=False)  # the ConfigMap it read

    def dashboards(self, where: str) -> list[Dashboard]:
        place = f"{where} ({self.label}{self.origin})"
        try:
            model = json.loads(self.text)
        except json.JSONDecodeError as exc:
            raise DashboardError(f"dashboard {place}: the model is not valid JSON ({exc}); the operator cannot "
                                 f"load it either. Put the dashboard JSON exported from Grafana there.") from None
        return [Dashboard(self.name, place, found.model) for found in _from_document(Path(place), model)]


def operator_source(resource: dict[str, Any], where: str, configmaps: Sequence[tuple[Any, dict[str, Any]]],
                    from_files: bool) -> Source:
    """The model a GrafanaDashboard gives Grafana, as the operator's content resolver reads it
    (controllers/content/resolver.go): inline JSON, gzipped JSON, a key of a ConfigMap of its namespace among
    `configmaps` ((where it was found, ConfigMap) pairs), or the copy the operator cached in its status after
    fetching spec.url or spec.grafanaCom. DashboardError naming the resource and what to pass instead when it
    cannot be read here (`from_files`: the advice for --grafana-dashboard files, else for a cluster read)."""
    metadata = resource.get("metadata") or {}
    name, namespace = str(metadata.get("name") or "?"), str(metadata.get("namespace") or "")
    label = f"GrafanaDashboard {namespace + '/' if namespace else ''}{name}"
    spec: dict[str, Any] = resource["spec"] if isinstance(resource.get("spec"), dict) else {}
    place = f"dashboard {where} ({label})"
    present = [key for key in (*_INLINE, *_REFERENCES, *_REMOTE, *_BUILT) if spec.get(key) not in (None, "", {}, [])]
    v1beta1 = str(resource.get("apiVersion") or "").startswith(OPERATOR_GROUPS[0] + "/")
    if len(present) > 1 and v1beta1:
        raise DashboardError(
            f"{place} sets more than one source of its model ({', '.join(present)}): the operator refuses it "
            f"(\"more than one source types found\"), so Grafana does not show it. Keep one of them.")
    if not present:
        raise DashboardError(
            f"{place} sets no source of its model (spec.json, gzipJson, configMapRef, url, grafanaCom, jsonnet); "
            f"the operator has nothing to give Grafana. Put the dashboard JSON exported from Grafana in spec.json.")
    source = present[0]

    def found(text: str, origin: str = "", configmap: dict[str, Any] | None = None) -> Source:
        for item in spec.get("datasources") or []:  # ${DS_PROMETHEUS} and the like, as the resolver maps them
            if isinstance(item, dict) and item.get("inputName") and item.get("datasourceName"):
                text = text.replace("${" + str(item["inputName"]) + "}", str(item["datasourceName"]))
        return Source(name, label, text, origin, configmap)

    if source == "json":
        return found(str(spec["json"]))
    if source == "gzipJson":
        return found(_gunzip(str(spec["gzipJson"]), f"{place}: spec.gzipJson"))
    if source in _REFERENCES:
        ref = spec[source] if isinstance(spec[source], dict) else {}
        cm_name, key = str(ref.get("name") or "?"), str(ref.get("key") or "?")
        for origin, configmap in configmaps:
            cm_meta = configmap.get("metadata") or {}
            if cm_meta.get("name") != cm_name or (namespace and cm_meta.get("namespace") not in (None, "", namespace)):
                continue
            of = f", from ConfigMap {cm_name} key {key}" + (f" of {origin}" if str(origin) != where else "")
            if source == "configMapRef" and key in (configmap.get("data") or {}):
                return found(str(configmap["data"][key]), of, configmap)
            if source == "gzipConfigMapRef" and key in (configmap.get("binaryData") or {}):
                return found(_gunzip(str(configmap["binaryData"][key]), f"{place}: ConfigMap {cm_name} key {key}"),
                             of, configmap)
            keys = ", ".join(map(str, {**(configmap.get("data") or {}), **(configmap.get("binaryData") or {})}))
            raise DashboardError(
                f"{place} takes its model from key {key} of ConfigMap {cm_name}, which has no such key (keys: "
                f"{keys or 'none'}); the operator cannot load it either. Fix spec.{source}.key.")
        advice = (f"pass that ConfigMap's file to --grafana-dashboard as well (kubectl get configmap {cm_name}"
                  f"{' -n ' + namespace if namespace else ''} -o yaml), or run with --vllm-namespace (and "
                  f"--grafana-namespace) so the suite reads both from the cluster" if from_files else
                  f"it is not among the ConfigMaps this run could read in namespace {namespace or '?'}")
        raise DashboardError(f"{place} takes its model from key {key} of ConfigMap {cm_name}, which "
                             f"{'none of the files given holds' if from_files else 'cannot be read'}: {advice}.")
    if source in _REMOTE:
        cached = _cached(resource, spec, source)
        if cached is not None:
            return found(_gunzip(cached[0], f"{place}: status.contentCache"),
                         f", the copy the operator fetched from {cached[1]}")
        url = (str(spec["url"]) if source == "url" else
               f"https://grafana.com/api/dashboards/{(spec['grafanaCom'] or {}).get('id', '?')}/revisions/"
               f"{(spec['grafanaCom'] or {}).get('revision', 'latest')}/download")
        raise DashboardError(
            f"{place} takes its model from {url} (spec.{source}), which this run does not download, and holds no "
            f"copy the operator fetched (status.contentCache): download it (curl -fsSL -o {name}.json '{url}') and "
            f"pass that file to --grafana-dashboard"
            + (", or pass the GrafanaDashboard as the cluster holds it (kubectl get grafanadashboard "
               f"{name}{' -n ' + namespace if namespace else ''} -o yaml), whose status keeps the operator's copy."
               if from_files else "."))
    built = {"jsonnet": "evaluates from spec.jsonnet", "jsonnetLib": "builds from the Jsonnet project of "
             "spec.jsonnetLib", "oci": f"pulls from the OCI artifact {(spec.get('oci') or {}).get('reference', '?')}"}
    raise DashboardError(
        f"{place} takes the model the operator {built[source]}, which this run does not build: build or fetch the "
        f"dashboard JSON and pass that file to --grafana-dashboard.")


def _cached(resource: dict[str, Any], spec: dict[str, Any], source: str) -> tuple[str, str] | None:
    """The operator's cache of a fetched model (controllers/content/cache): status.contentCache, gzipped, for
    status.contentUrl; kept only while it is the URL the spec names (grafanaCom: that dashboard's download)."""
    status: dict[str, Any] = resource["status"] if isinstance(resource.get("status"), dict) else {}
    content, url = status.get("contentCache"), str(status.get("contentUrl") or "")
    if not content or not url:
        return None
    if source == "url" and url != str(spec.get("url")):
        return None
    com = spec.get("grafanaCom") or {}
    if source == "grafanaCom" and not re.search(
            rf"/dashboards/{re.escape(str(com.get('id')))}/revisions/"
            rf"{re.escape(str(com['revision'])) if com.get('revision') is not None else '[0-9]+'}/download$", url):
        return None
    return str(content), url


def _gunzip(encoded: str, what: str) -> str:
    """Base64 of gzipped JSON, as Kubernetes writes a []byte field (`cat dashboard.json | gzip | base64 -w0`)."""
    try:
        return gzip.decompress(base64.b64decode("".join(encoded.split()), validate=True)).decode("utf-8")
    except (binascii.Error, OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
        raise DashboardError(f"{what} is not base64 of gzipped JSON ({exc}); write it as "
                             f"cat dashboard.json | gzip | base64 -w0.") from None


def _list(model: dict[str, Any], key: str) -> list[Any]:
    value = model.get(key)
    return value if isinstance(value, list) else []


Grid = tuple[int, int, int, int]  # x, y, w, h on Grafana's 24-column grid (one unit of h is about 30 px)
_GRID_COLUMNS = 24
_ROW_HEIGHT = 250  # px: Grafana's default height of a pre-5.0 row


@dataclass(frozen=True)
class Placed:
    """A panel as the dashboard lays it out: for the report's drawing of the dashboard."""

    panel: dict[str, Any]
    row: str = ""  # the title of the row holding it ("" outside any row)
    grid: Grid | None = None  # None when the file says nothing of where it goes


def walk_panels(model: dict[str, Any]) -> list[Placed]:
    """Every panel of a dashboard with its place: of the pre-5.0 `rows`, and inside rows (collapsed or not).

    Pre-5.0 rows have no gridPos: each panel's `span` (of 12) and the row's `height` become one, as Grafana's
    own migration to the grid (schema 16) does; panels flow left to right and wrap at the grid's width."""
    out: list[Placed] = []

    def visit(panels: list[Any], row: str) -> None:
        for panel in panels:
            if not isinstance(panel, dict):
                continue
            out.append(Placed(panel, row, _grid(panel.get("gridPos"))))
            if panel.get("type") == "row":
                title = str(panel.get("title") or "")
                visit(_list(panel, "panels"), title)  # a collapsed row holds its panels
                row = title  # an expanded row's panels follow it in the list
            else:
                visit(_list(panel, "panels"), row)

    y = 0
    for old_row in _list(model, "rows"):
        if not isinstance(old_row, dict):
            continue
        title = str(old_row.get("title") or "") if old_row.get("showTitle", True) else ""
        height = _grid_height(old_row.get("height"))
        x = row_h = 0
        for panel in _list(old_row, "panels"):
            if not isinstance(panel, dict):
                continue
            w = min(max(int(_number(panel.get("span")) or 12) * 2, 1), _GRID_COLUMNS)
            h = _grid_height(panel.get("height")) if panel.get("height") else height
            if x + w > _GRID_COLUMNS:  # wrap, as Grafana's migration does
                x, y, row_h = 0, y + row_h, 0
            out.append(Placed(panel, title, (x, y, w, h)))
            x, row_h = x + w, max(row_h, h)
        y += row_h
    visit(_list(model, "panels"), "")
    return out


def _grid(value: Any) -> Grid | None:
    if not isinstance(value, dict):
        return None
    numbers = [_number(value.get(key)) for key in ("x", "y", "w", "h")]
    if any(n is None for n in numbers):
        return None
    x, y, w, h = (int(n or 0) for n in numbers)
    return max(x, 0), max(y, 0), min(max(w, 1), _GRID_COLUMNS), max(h, 1)


def _grid_height(height: Any) -> int:
    """A pre-5.0 height in pixels ("250px" or 250) in grid units (Grafana: 30 px a unit plus an 8 px margin)."""
    pixels = _number(str(height).removesuffix("px")) if height not in (None, "") else None
    return max(-(-int(pixels or _ROW_HEIGHT) // 38), 1)


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


# -- variables ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variable:
    name: str
    type: str
    query: str = ""  # a query variable's query, a custom/interval variable's options, a constant's value
    regex: str = ""
    sort: int = 0
    refresh: int = 0
    multi: bool = False
    include_all: bool = False
    all_value: str | None = None
    current: tuple[str, ...] | None = None  # the saved value(s); None when nothing is saved
    current_text: tuple[str, ...] = ()
    options: tuple[tuple[str, str], ...] = ()  # saved options (text, value), All excluded


def variables(model: dict[str, Any]) -> tuple[Variable, ...]:
    out = []
    for raw in (model.get("templating") or {}).get("list") or []:
        if not isinstance(raw, dict) or not raw.get("name"):
            continue
        query = raw.get("query", "")
        if isinstance(query, dict):  # newer Grafana stores {"query": "...", "refId": ...}
            query = query.get("query", "")
        current = raw.get("current") or {}
        value, text = current.get("value"), current.get("text")
        options = tuple((str(o.get("text", o.get("value"))), str(o.get("value", o.get("text"))))
                        for o in raw.get("options") or [] if isinstance(o, dict)
                        and o.get("value") != ALL)
        out.append(Variable(
            name=str(raw["name"]), type=str(raw.get("type") or "query"), query=str(query or ""),
            regex=str(raw.get("regex") or ""), sort=int(raw.get("sort") or 0), refresh=int(raw.get("refresh") or 0),
            multi=bool(raw.get("multi")), include_all=bool(raw.get("includeAll")),
            all_value=str(raw["allValue"]) if raw.get("allValue") not in (None, "") else None,
            current=_strings(value) if value not in (None, "", []) else None, current_text=_strings(text) or (),
            options=options,
        ))
    return tuple(out)


def _strings(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    return tuple(str(v) for v in value) if isinstance(value, list) else (str(value),)


class Lookup(Protocol):
    """Where a query variable's options come from (Prometheus, or the direct scrapes). None: cannot tell."""

    def label_values(self, label: str, match: str | None) -> list[str] | None: ...

    def label_names(self, match: str | None) -> list[str] | None: ...

    def metric_names(self) -> list[str] | None: ...

    def query_result(self, query: str) -> list[str] | None: ...


@dataclass(frozen=True)
class Value:
    """A variable as the dashboard shows it: the selected values, or All with every option."""

    variable: Variable
    values: tuple[str, ...]
    all: bool = False
    options: tuple[str, ...] = ()  # every option's value: what All stands for, what a repeat iterates
    known: bool = True  # False: the run cannot know the options (written as UNKNOWN)
    texts: tuple[str, ...] = ()  # the selected values' texts, as the picker shows them (the values when empty)
    option_texts: tuple[str, ...] = ()  # each option's text, in the order of `options` (the values when empty)
    local: bool = False  # one copy of a repeated panel: one value, not a list (scenes' LocalValueVariable)

    def single(self, value: str) -> Value:
        """The value one copy of a repeated panel sees: Grafana gives each copy a LocalValueVariable, which
        formats as a multi-value, include-all variable holding one value."""
        return Value(self.variable, (value,), options=self.options, texts=(self._text_of(value),),
                     option_texts=self.option_texts, local=True)

    def _text_of(self, value: str) -> str:
        texts = dict(zip(self.options, self.option_texts, strict=False))
        return texts.get(value, value)

    @property
    def shown(self) -> str:
        return "All" if self.all else ",".join(self.values)

    @property
    def each(self) -> tuple[str, ...]:
        """The values a repeated panel is copied for (every option when All)."""
        return self.options if self.all else self.values

    @property
    def text(self) -> str:
        """The value's text (`${var:text}`): scenes' getValueText, "All" for All and "a + b" for several."""
        if self.all and not self.local:
            return "All"
        texts = self.texts or self.values
        return " + ".join(texts) if self.variable.multi and not self.local else (texts[0] if texts else "")

    def raw(self, field_path: str | None = None) -> str | list[str]:
        """The value Grafana's formatters receive (getValue): one string, or a list for a multi-value variable
        and for All (every option); `${var.N}` takes the Nth of a list."""
        value: str | list[str]
        if self.local or not (self.all or (self.variable.multi and self.variable.type in _MULTI_VALUE_TYPES)):
            value = self.values[0] if self.values else ""
        else:
            value = list(self.options if self.all else self.values)
        index = re.match(r"\d+", field_path or "")
        if isinstance(value, list) and index is not None and int(index.group(0)) < len(value):
            return value[int(index.group(0))]
        return value


# The variable types Grafana draws as a picker of options (scenes' MultiValueVariable): only those are multi-value
# or include-all when formatted; a constant, a textbox or an interval is always one value.
_MULTI_VALUE_TYPES = frozenset({"query", "custom", "datasource"})


# Grafana's patterns for the Prometheus data source's variable queries (metric_find_query).
_LABEL_NAMES = re.compile(r"^label_names\((.*)\)\s*$", re.S)
_LABEL_VALUES = re.compile(r"^label_values\((?:(.+),\s*)?([a-zA-Z_$][a-zA-Z0-9_]*)\)\s*$", re.S)
_METRICS = re.compile(r"^metrics\((.+)\)\s*$", re.S)
_QUERY_RESULT = re.compile(r"^query_result\((.+)\)\s*$", re.S)


def resolve(defined: Iterable[Variable], lookup: Lookup, namespace: str | None,
            durations: Mapping[str, str]) -> dict[str, Value]:
    """Each variable's value when the dashboard loads; a variable's query may use the ones before it."""
    resolved: dict[str, Value] = {}
    for var in defined:
        if var.type == "adhoc":
            continue  # ad hoc filters are added to queries only when a user sets some
        if var.name == "namespace" and namespace:
            resolved[var.name] = Value(var, (namespace,), options=(namespace,))
            continue
        resolved[var.name] = _value(var, lookup, resolved, durations)
    return resolved


def _value(var: Variable, lookup: Lookup, resolved: dict[str, Value], durations: Mapping[str, str]) -> Value:
    if var.type == "constant":
        return Value(var, (var.query,), options=(var.query,))
    if var.type in ("textbox", "datasource"):
        value = var.current or (var.query,)
        return Value(var, value, options=value, texts=var.current_text if var.current else ())
    if var.type == "interval":
        if var.current and var.current[0].startswith("$__auto"):
            # "auto" is a step computed from the time range and the panel's width: a duration that keeps the
            # query valid, as for the built-in intervals
            return Value(var, (durations.get("__interval", "1m"),), texts=("auto",))
        found = [(o.strip(), o.strip()) for o in var.query.split(",") if o.strip()]
    elif var.type == "custom":
        found = _custom_options(interpolate(var.query, resolved, durations, fmt="glob"))
    else:
        query = interpolate(var.query, resolved, durations)
        got = _query_options(query.strip(), lookup)
        if got is None:  # this run cannot know: a saved value if there is one, else what the check did before
            options = tuple(v for _, v in var.options)
            option_texts = tuple(t for t, _ in var.options)
            if var.current is not None and not _is_all(var) and ALL not in var.current:
                return Value(var, var.current, options=options, known=True, texts=var.current_text,
                             option_texts=option_texts)
            return Value(var, (UNKNOWN,), all=var.include_all, options=options, known=False,
                         option_texts=option_texts)
        # the variable's regex is itself interpolated, with the regex format (scenes' QueryVariable)
        regex = interpolate(var.regex, resolved, durations, fmt="regex")
        found = _sorted(_filtered(got, regex), var.sort)
    found = list({value: (text, value) for text, value in reversed(found)}.values())[::-1]  # Grafana drops
    options = tuple(value for _, value in found)  # duplicate values, keeping the first
    option_texts = tuple(text for text, _ in found)
    text_of = {value: text for text, value in found}
    values_of = {text: value for text, value in reversed(found)}

    def chosen(values: tuple[str, ...], texts: tuple[str, ...] = ()) -> Value:
        texts = tuple(text_of.get(v, t) for v, t in zip(values, texts or values, strict=False))
        return Value(var, values, options=options, texts=texts, option_texts=option_texts)

    if var.current is not None:
        if _is_all(var):
            return Value(var, (ALL,), all=True, options=options, option_texts=option_texts)
        if ALL not in var.current:  # $__all of a variable without All: its first option (scenes)
            kept = tuple(values_of.get(v, v) for v in var.current if v in text_of or v in values_of)
            # A saved value is kept unless the variable refreshes on load and the value is no longer an option.
            if kept or (var.type == "query" and var.refresh not in (1, 2)) or not options:
                return chosen(kept) if kept else chosen(var.current, var.current_text)
    if var.include_all:  # Grafana lists All first: a variable without a saved value takes it
        return Value(var, (ALL,), all=True, options=options, option_texts=option_texts)
    return chosen(options[:1] or ("",))


def _is_all(var: Variable) -> bool:
    return var.include_all and (ALL in (var.current or ()) or var.current_text in (("All",),)
                                or var.current == ("All",))


def _custom_options(query: str) -> list[tuple[str, str]]:
    out = []
    for item in re.findall(r"(?:\\,|[^,])+", query):
        item = item.replace("\\,", ",")
        pair = re.match(r"^\s*(.+)\s:\s(.+)$", item)
        out.append((pair.group(1).strip(), pair.group(2).strip()) if pair else (item.strip(), item.strip()))
    return out


def _query_options(query: str, lookup: Lookup) -> list[str] | None:
    if match := _LABEL_NAMES.match(query):
        return lookup.label_names(match.group(1).strip() or None)
    if match := _LABEL_VALUES.match(query):
        return lookup.label_values(match.group(2), (match.group(1) or "").strip() or None)
    if match := _METRICS.match(query):
        names = lookup.metric_names()
        pattern = _python_regex(match.group(1).strip())
        return None if names is None or pattern is None else [n for n in names if pattern.search(n)]
    if match := _QUERY_RESULT.match(query):
        return lookup.query_result(match.group(1))
    return None


def _python_regex(text: str, flags: int = 0) -> re.Pattern[str] | None:
    text = re.sub(r"\(\?<(?=[A-Za-z])", "(?P<", text)  # JavaScript's named groups
    try:
        return re.compile(text, flags)
    except re.error:
        return None


def _filtered(values: list[str], regex: str) -> list[tuple[str, str]]:
    """A variable's `regex` as Grafana applies it (metricNamesToVariableValues): `/pattern/flags`, or a bare
    pattern that must match the whole value; keeps the values it matches, or what its `value`/`text` groups or
    its first group capture (with the `g` flag, one option per match)."""
    if not regex:
        return [(v, v) for v in values]
    body, flags, every = f"^{regex}$", 0, False  # stringToJsRegex anchors a bare pattern
    if (slashed := re.fullmatch(r"/(.*?)/(g?i?m?y?s?)", regex, re.S)) is not None:
        body, every = slashed.group(1), "g" in slashed.group(2)
        for letter, flag in (("i", re.I), ("m", re.M), ("s", re.S)):
            flags |= flag if letter in slashed.group(2) else 0
    pattern = _python_regex(body, flags)
    if pattern is None:
        return [(v, v) for v in values]
    out = []
    for value in values:
        matches = list(pattern.finditer(value)) if every else [m for m in [pattern.search(value)] if m]
        if not matches:
            continue
        value_group = next((m.groupdict()["value"] for m in matches if m.groupdict().get("value")), None)
        text_group = next((m.groupdict()["text"] for m in matches if m.groupdict().get("text")), None)
        grouped = [m for m in matches if m.groups()]
        if value_group or text_group:
            out.append((text_group or value_group or "", value_group or text_group or ""))
        elif len(matches) > 1 and grouped:
            out.extend((m.group(1) or "", m.group(1) or "") for m in matches)
        elif grouped and grouped[0].group(1) is not None:
            out.append((grouped[0].group(1), grouped[0].group(1)))
        else:
            out.append((value, value))
    return out


def _sorted(options: list[tuple[str, str]], order: int) -> list[tuple[str, str]]:
    """Grafana's variable sort: 1/2 alphabetical, 3/4 numerical, 5/6 case-insensitive, 7/8 natural; even is
    descending."""
    if order <= 0:
        return options
    def number(option: tuple[str, str]) -> Any:
        found = re.search(r"(\d+)", option[0])
        return int(found.group(1)) if found else -1

    def natural(option: tuple[str, str]) -> Any:
        return [int(p) if p.isdigit() else p.lower() for p in re.split(r"(\d+)", option[0])]

    keys: dict[int, Callable[[tuple[str, str]], Any]] = {1: lambda o: o[0], 2: number, 3: lambda o: o[0].lower(),
                                                         4: natural}
    return sorted(options, key=keys.get((order + 1) // 2, keys[1]), reverse=order % 2 == 0)


# -- interpolation -----------------------------------------------------------------------------------------
#
# As Grafana's dashboards write a variable into a query (@grafana/scenes: sceneInterpolator and formatRegistry,
# the MultiValueVariable's getValue/getValueText, CustomAllValue, LocalValueVariable), with the Prometheus data
# source's own function when the query names no format (packages/grafana-prometheus: interpolateQueryExpr,
# prometheusRegularEscape, prometheusSpecialRegexEscape; their classic behaviour, the feature toggle
# prometheusSpecialCharsInLabelValues being experimental and off by default).

Raw = str | list[str]  # a value as Grafana's formatters receive it: one string, or a list
Formatter = Callable[[Raw, Value, list[str]], str]


def interpolate(text: str, values: Mapping[str, Value], durations: Mapping[str, str], fmt: str | None = None) -> str:
    """Write the variables into `text` as Grafana does. `fmt` is the format when a reference names none: None for
    a query of the Prometheus data source (its interpolateQueryExpr), "glob" for Grafana's own default (a custom
    variable's options, an allValue's variables), "regex" for a query variable's regex. Names Grafana does not
    know stay as written."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(4)
        if name in durations:
            return str(durations[name])
        value = values.get(name)
        if value is None:
            return match.group(0)
        if not value.known:
            return UNKNOWN
        named = match.group(3) or match.group(6) or fmt  # a format the reference names wins over the default
        if value.all and not value.local and value.variable.all_value is not None:
            return _custom_all(value, named, values, durations)
        return _format(value.raw(match.group(5)), value, named)

    return _VARIABLE.sub(replace, text)


def _custom_all(value: Value, fmt: str | None, values: Mapping[str, Value], durations: Mapping[str, str]) -> str:
    """All with an allValue (scenes' CustomAllValue): the allValue verbatim, its own variables then written with
    Grafana's default format; only the text, percentencode and queryparam formats change it."""
    all_value = value.variable.all_value or ""
    if fmt == "text":
        return "All"
    if fmt == "percentencode":
        return _strict_uri_component(all_value)
    if fmt == "queryparam":
        return _FORMATS["queryparam"](ALL, value, [])
    return interpolate(all_value, values, durations, fmt="glob")


def _format(raw: Raw, value: Value, fmt: str | None) -> str:
    if fmt is None:
        multi_value = value.local or value.variable.type in _MULTI_VALUE_TYPES
        return _interpolate_query_expr(raw, value.local or (multi_value and value.variable.multi),
                                       value.local or (multi_value and value.variable.include_all))
    name, *args = fmt.split(":")
    formatter = _FORMATS.get(name) or _FORMATS["glob"]  # Grafana falls back to glob for a format it does not know
    return formatter(raw, value, args)


def _interpolate_query_expr(raw: Raw, multi: bool, include_all: bool) -> str:
    """The Prometheus data source's interpolateQueryExpr: a single-value variable as it is (backslashes and single
    quotes escaped), a multi-value or include-all one regex-escaped, several values as (a|b)."""
    if not multi and not include_all:
        return _regular_escape(raw) if isinstance(raw, str) else ",".join(raw)
    if isinstance(raw, str):
        return _special_regex_escape(raw)
    escaped = [_special_regex_escape(v) for v in raw]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def _regular_escape(value: str) -> str:
    """prometheusRegularEscape: \\ -> \\\\, ' -> \\\\'."""
    return value.replace("\\", "\\\\").replace("'", "\\\\'")


def _special_regex_escape(value: str) -> str:
    """prometheusSpecialRegexEscape: a backslash becomes four, a regex metacharacter gets two before it (one for
    the PromQL string, one for the regex)."""
    return re.sub(r"[$^*{}\[\]+?.()|]", lambda m: "\\\\" + m.group(0), value.replace("\\", "\\\\\\\\"))


def _string(raw: Raw) -> str:
    return ",".join(raw) if isinstance(raw, list) else raw  # JavaScript's String() of an array


def _each(raw: Raw, one: Callable[[str], str], separator: str) -> str:
    return separator.join(one(v) for v in raw) if isinstance(raw, list) else one(raw)


def _strict_uri_component(value: str) -> str:
    """encodeURIComponentStrict: encodeURIComponent, and !'()* too."""
    return quote(value, safe="")


def _angular_uri_component(value: str) -> str:
    """encodeURIComponentAsAngularJS (urlUtil.toUrlParams), spaces as %20."""
    encoded = _strict_uri_component(value)
    for code, char in (("%40", "@"), ("%3A", ":"), ("%24", "$"), ("%2C", ","), ("%3B", ";")):
        encoded = encoded.replace(code, char)
    return encoded


def _lucene_escape(value: str) -> str:
    if re.fullmatch(r"\s*([+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|0[xX][0-9a-fA-F]+|[+-]?Infinity)?\s*", value):
        return value  # a number, as JavaScript's +value reads one, is left as it is
    return re.sub(r"([!*+\-=<>\s&|()\[\]{}^~?:\\/\"])", r"\\\1", value)


def _regex_escape(value: str) -> str:
    """@grafana/data's escapeRegex (the regex format): one backslash before each metacharacter."""
    return re.sub(r"[\\^$*+?.()|\[\]{}/]", lambda m: "\\" + m.group(0), value)


def _html(value: str) -> str:
    for char, entity in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("'", "&#39;"), ('"', "&quot;")):
        value = value.replace(char, entity)
    return value


def _query_param(raw: Raw, value: Value, args: list[str]) -> str:
    name = value.variable.name
    if value.local:  # no URL state of its own: formatQueryParameter
        return _each(raw, lambda v: f"var-{name}={_strict_uri_component(v)}", "&")
    # the variable's URL state (its value, $__all for All), as urlUtil.toUrlParams writes it
    state = [ALL] if value.all else (list(value.values) if value.variable.multi else value.values[:1] or [""])
    return "&".join(f"{_angular_uri_component('var-' + name)}={_angular_uri_component(v)}" for v in state)


def _custom_query_param(raw: Raw, value: Value, args: list[str]) -> str:
    name = _strict_uri_component(args[0] if args and args[0] else value.variable.name)
    prefix = _strict_uri_component(args[1] if len(args) > 1 else "")
    return _each(raw, lambda v: f"{name}={prefix}{_strict_uri_component(v)}", "&")


def _distributed(raw: Raw, value: Value, args: list[str]) -> str:
    if isinstance(raw, str):
        return raw
    return ",".join(v if i == 0 else f"{value.variable.name}={v}" for i, v in enumerate(raw))


def _lucene(raw: Raw, value: Value, args: list[str]) -> str:
    if isinstance(raw, str):
        return _lucene_escape(raw)
    return "(" + " OR ".join(f'"{_lucene_escape(v)}"' for v in raw) + ")" if raw else "__empty__"


def _regex(raw: Raw, value: Value, args: list[str]) -> str:
    if isinstance(raw, str):
        return _regex_escape(raw)
    escaped = [_regex_escape(v) for v in raw]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


# scenes' formatRegistry, by format id (the `fmt` of ${var:fmt}); `date` is for time values, not Prometheus labels
_FORMATS: dict[str, Formatter] = {
    "lucene": _lucene,
    "raw": lambda raw, value, args: _string(raw),
    "regex": _regex,
    "pipe": lambda raw, value, args: _each(raw, str, "|"),
    "distributed": _distributed,
    "csv": lambda raw, value, args: _each(raw, str, ","),
    "html": lambda raw, value, args: _html(", ".join(raw) if isinstance(raw, list) else raw),
    "json": lambda raw, value, args: raw if isinstance(raw, str) else json.dumps(raw, separators=(",", ":"),
                                                                                   ensure_ascii=False),
    "percentencode": lambda raw, value, args: _strict_uri_component(
        "{" + ",".join(raw) + "}" if isinstance(raw, list) else raw),
    "singlequote": lambda raw, value, args: _each(raw, lambda v: "'" + v.replace("'", "\\'") + "'", ","),
    "doublequote": lambda raw, value, args: _each(raw, lambda v: '"' + v.replace('"', '\\"') + '"', ","),
    "sqlstring": lambda raw, value, args: _each(
        raw, lambda v: "'" + v.replace("'", "''").replace('"', '\\"') + "'", ","),
    "join": lambda raw, value, args: _each(raw, str, args[0] if args else ","),
    "glob": lambda raw, value, args: "{" + ",".join(raw) + "}" if isinstance(raw, list) and len(raw) > 1
    else _string(raw),
    "text": lambda raw, value, args: value.text,
    "queryparam": _query_param,
    "customqueryparam": _custom_query_param,
    "uriencode": lambda raw, value, args: quote("{" + ",".join(raw) + "}" if isinstance(raw, list) else raw,
                                                safe=";,/?:@&=+$#"),
}
