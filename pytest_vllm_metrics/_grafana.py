"""Grafana as it reads a dashboard: the shapes a dashboard file comes in (its variables: _grafana_vars.py).

Loading accepts the dashboard model, the HTTP API's `{"dashboard": ..., "meta": ...}` envelope, the pre-5.0
model with top-level `rows`, Kubernetes ConfigMaps (the kube-prometheus-stack sidecar convention: each `data` key
ending in `.json` is one dashboard) and Grafana Operator `GrafanaDashboard` resources (grafana.integreatly.org/v1beta1,
and the older integreatly.org/v1alpha1: the model in `spec.json`, `spec.gzipJson`, a ConfigMap named by
`spec.configMapRef`, or the copy the operator fetched from `spec.url`/`spec.grafanaCom`), alone, in a `kind: List`,
or as multi-document YAML. Other Kubernetes objects beside them (the `Grafana` instance, RBAC) are skipped.

"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import re
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
        if isinstance(document, dict):
            found = f"top-level keys {', '.join(sorted(map(str, document)))}" if document else "an empty object"
        else:
            found = f"a {type(document).__name__}"
        raise DashboardError(
            f"dashboard {file} has no panels: found {found}, "
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
