"""Grafana as it reads a dashboard: the shapes a dashboard file comes in, and its variables as it fills them.

Loading accepts the dashboard model, the HTTP API's `{"dashboard": ..., "meta": ...}` envelope, the pre-5.0
model with top-level `rows`, and Kubernetes ConfigMaps (the kube-prometheus-stack sidecar convention: each
`data` key ending in `.json` is one dashboard), alone, in a `kind: List`, or as multi-document YAML.

Variables are resolved the way Grafana resolves them when the dashboard loads: a saved `current` value is
kept, a query variable without one takes its first option (after its `regex` and `sort`), and a value is
written into a query by the Prometheus data source's rules (`interpolateQueryExpr`): raw for a single-value
variable, regex-escaped and joined as `(a|b)` for a multi-value or include-all one, `allValue` verbatim for All.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

ALL = "$__all"
# The value written for a variable whose options this run cannot know (a target label without Prometheus):
# what the check did before it resolved variables, and harmless in a `=~` matcher.
UNKNOWN = ".*"

# Grafana's own variable pattern (templateSrv): $var, [[var]], [[var:fmt]], ${var}, ${var.field}, ${var:fmt}.
_VARIABLE = re.compile(r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^}]+))?(?::([^}]+))?\}")
_DASHBOARD_SUFFIXES = (".json", ".yaml", ".yml")


class DashboardError(Exception):
    """A dashboard file that cannot be used; one paragraph naming the file and the fix."""


# -- loading -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dashboard:
    name: str  # short, for test ids: the file's stem, or a ConfigMap key's
    where: str  # for messages: the file, and the ConfigMap key it came from
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
    dashboards: list[Dashboard] = []
    for file in files:
        dashboards.extend(_from_file(file))
    return dashboards


def _from_file(file: Path) -> list[Dashboard]:
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
    out: list[Dashboard] = []
    for document in documents:
        out.extend(_from_document(file, document))
    return out


def _yaml_documents(file: Path, text: str) -> list[Any]:
    import yaml  # only for YAML inputs (a dependency of the kubernetes client)

    try:
        return [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise DashboardError(f"dashboard {file} is not valid YAML ({exc}); pass the ConfigMap as kubectl prints "
                             f"it (kubectl get configmap NAME -o yaml) or the dashboard JSON itself.") from None


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
    """The dashboards of a ConfigMap read from a cluster rather than a file (`where` names it in messages)."""
    return _from_configmap(Path(where), configmap)


def _from_configmap(file: Path, configmap: dict[str, Any]) -> list[Dashboard]:
    name = str((configmap.get("metadata") or {}).get("name") or "?")
    data = configmap.get("data") or {}
    keys = [key for key in data if str(key).endswith(".json")]
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

    def single(self, value: str) -> Value:
        """The value one copy of a repeated panel sees."""
        return Value(self.variable, (value,), options=self.options)

    @property
    def shown(self) -> str:
        return "All" if self.all else ",".join(self.values)

    @property
    def each(self) -> tuple[str, ...]:
        """The values a repeated panel is copied for (every option when All)."""
        return self.options if self.all else self.values


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
        return Value(var, value, options=value)
    if var.type == "interval":
        found = [(o.strip(), o.strip()) for o in var.query.split(",") if o.strip()]
    elif var.type == "custom":
        found = _custom_options(var.query)
    else:
        query = interpolate(var.query, resolved, durations)
        got = _query_options(query.strip(), lookup)
        if got is None:  # this run cannot know: a saved value if there is one, else what the check did before
            options = tuple(v for _, v in var.options)
            if var.current is not None and not _is_all(var):
                return Value(var, var.current, options=options, known=True)
            return Value(var, (UNKNOWN,), all=var.include_all, options=options, known=False)
        found = _sorted(_filtered(got, var.regex), var.sort)
    options = tuple(dict.fromkeys(v for _, v in found))  # Grafana drops duplicate values
    texts = {text: value for text, value in found}
    if var.current is not None:
        if _is_all(var):
            return Value(var, (ALL,), all=True, options=options)
        kept = tuple(texts.get(v, v) for v in var.current if v in options or v in texts)
        # A saved value is kept unless the variable refreshes on load and the value is no longer an option.
        if kept or (var.type == "query" and var.refresh not in (1, 2)) or not options:
            return Value(var, kept or var.current, options=options)
    if var.include_all:  # Grafana lists All first: a variable without a saved value takes it
        return Value(var, (ALL,), all=True, options=options)
    return Value(var, options[:1] or ("",), options=options)


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
    """A variable's `regex` (`/pattern/flags`): keeps the values it matches, or what its group captures."""
    if not regex:
        return [(v, v) for v in values]
    body, flags = regex, 0
    if (slashed := re.fullmatch(r"/(.*)/([a-z]*)", regex, re.S)) is not None:
        body, flags = slashed.group(1), re.I if "i" in slashed.group(2) else 0
    pattern = _python_regex(body, flags)
    if pattern is None:
        return [(v, v) for v in values]
    out = []
    for value in values:
        match = pattern.search(value)
        if not match:
            continue
        named = match.groupdict()
        if named.get("value") or named.get("text"):
            out.append((named.get("text") or named["value"], named.get("value") or named["text"]))
        elif match.groups() and match.group(1):
            out.append((match.group(1), match.group(1)))
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


def interpolate(text: str, values: Mapping[str, Value], durations: Mapping[str, str]) -> str:
    """Write the variables into a query as Grafana's Prometheus data source does. Unknown names stay as
    written (Grafana leaves them too)."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(4)
        fmt = match.group(3) or match.group(6)
        if name in durations:
            return str(durations[name])
        value = values.get(name)
        if value is None:
            return match.group(0)
        if not value.known:
            return UNKNOWN
        if value.all:
            if value.variable.all_value is not None and fmt not in ("text", "percentencode"):
                return interpolate(value.variable.all_value, values, durations)  # verbatim (its own variables aside)
            return _format(list(value.options), value.variable, fmt)
        return _format(list(value.values), value.variable, fmt)

    return _VARIABLE.sub(replace, text)


def _format(values: list[str], var: Variable, fmt: str | None) -> str:
    single = len(values) == 1
    if fmt is None:
        if not var.multi and not var.include_all:
            return _regular_escape(",".join(values))
        escaped = [_special_regex_escape(v) for v in values]
        return escaped[0] if single else "(" + "|".join(escaped) + ")"
    if fmt == "regex":
        escaped = [re.sub(r"[\\^$*+?.()|[\]{}/]", r"\\\g<0>", v) for v in values]
        return escaped[0] if single else "(" + "|".join(escaped) + ")"
    if fmt == "pipe":
        return "|".join(values)
    if fmt in ("csv", "raw", "text"):
        return ",".join(values)
    if fmt == "json":
        return json.dumps(values[0] if single else values)
    if fmt == "singlequote":
        return ",".join("'" + v.replace("'", "\\'") + "'" for v in values)
    if fmt == "doublequote":
        return ",".join('"' + v.replace('"', '\\"') + '"' for v in values)
    if fmt == "queryparam":
        return "&".join(f"var-{var.name}={v}" for v in values)
    # glob, and Grafana's fallback for a format it does not know
    return values[0] if single else "{" + ",".join(values) + "}"


def _regular_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\\\'")


def _special_regex_escape(value: str) -> str:
    return re.sub(r"[$^*{}\[\]+?.()|]", lambda m: "\\\\" + m.group(0), value.replace("\\", "\\\\\\\\"))
