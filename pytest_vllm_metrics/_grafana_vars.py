"""Grafana's dashboard variables as it fills them: resolved the way Grafana resolves them when the dashboard loads
(a saved `current` value is kept, a query variable without one takes its first option, after its `regex` and
`sort`), and written into a query as Grafana's dashboards (@grafana/scenes' sceneInterpolator) write it: by the
Prometheus data source's `interpolateQueryExpr` when the query names no format (raw for a single-value variable,
regex-escaped and joined as `(a|b)` for a multi-value or include-all one, `allValue` verbatim for All), else by the
named format.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

ALL = "$__all"
# The value written for a variable whose options this run cannot know (a target label without Prometheus):
# what the check did before it resolved variables, and harmless in a `=~` matcher.
UNKNOWN = ".*"

# Grafana's own variable pattern (templateSrv): $var, [[var]], [[var:fmt]], ${var}, ${var.field}, ${var:fmt}.
_VARIABLE = re.compile(r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^}]+))?(?::([^}]+))?\}")


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
