"""Grafana's variables (_grafana_vars.py) as Grafana fills them: resolution against what a Prometheus answers,
and interpolation into a query, rule by rule."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_vllm_metrics._grafana_vars import Value, Variable, interpolate, resolve, variables

DURATIONS = {"__rate_interval": "5m", "__range": "1h"}


class FakeLookup:
    """What a Prometheus answers for the variable queries, recorded so a test can check what was asked."""

    def __init__(self, values: dict[str, list[str]]) -> None:
        self.values = values
        self.asked: list[tuple[str, str | None]] = []

    def label_values(self, label: str, match: str | None) -> list[str] | None:
        self.asked.append((label, match))
        return self.values.get(label)

    def label_names(self, match: str | None) -> list[str] | None:
        return sorted(self.values)

    def metric_names(self) -> list[str] | None:
        return ["vllm:num_requests_running", "vllm:prompt_tokens_total", "up"]

    def query_result(self, query: str) -> list[str] | None:
        return [f'vllm:num_requests_running{{model_name="{m}", pod="p"}} 0 1700000000000'
                for m in self.values.get("model_name", [])]


def var(**raw: Any) -> Variable:
    (found,) = variables({"templating": {"list": [{"name": "v", "type": "query", **raw}]}})
    return found


def one(raw: dict[str, Any], lookup: FakeLookup, namespace: str | None = None) -> Value:
    return resolve([var(**raw)], lookup, namespace, DURATIONS)["v"]


LOOKUP = {"model_name": ["tiny", "llama-3.1-8b", "Qwen"], "namespace": ["ns-b", "ns-a"]}


# -- resolution ---------------------------------------------------------------------------------------------


def test_query_variable_without_saved_value_takes_its_first_option() -> None:
    # vLLM's example dashboard: label_values(vllm:..., model_name), no current, panels select model_name="$v".
    lookup = FakeLookup(LOOKUP)
    value = one({"query": "label_values(vllm:num_requests_running, model_name)"}, lookup)
    assert value.values == ("tiny",) and not value.all
    assert lookup.asked == [("model_name", "vllm:num_requests_running")]


def test_query_as_object_regex_capture_and_sort() -> None:
    value = one({"query": {"query": "query_result(vllm:num_requests_running)", "refId": "X"},
                 "regex": '/model_name="([^"]+)"/', "sort": 1}, FakeLookup(LOOKUP))
    assert value.options == ("Qwen", "llama-3.1-8b", "tiny") and value.values == ("Qwen",)
    filtered = one({"query": "label_values(model_name)", "regex": "/^l.*/"}, FakeLookup(LOOKUP))
    assert filtered.options == ("llama-3.1-8b",)
    named = one({"query": "metrics(^vllm:)", "regex": "/vllm:(?<value>[a-z_]+)/", "sort": 2}, FakeLookup(LOOKUP))
    assert named.options == ("prompt_tokens_total", "num_requests_running")


def test_include_all_without_saved_value_is_all() -> None:
    value = one({"query": "label_values(model_name)", "includeAll": True}, FakeLookup(LOOKUP))
    assert value.all and value.each == ("tiny", "llama-3.1-8b", "Qwen")


@pytest.mark.parametrize(("current", "expected"), [
    ({"text": "Qwen", "value": "Qwen"}, ("Qwen",)),
    ({"text": ["Qwen", "tiny"], "value": ["Qwen", "tiny"]}, ("Qwen", "tiny")),
    ({"text": "gone", "value": "gone"}, ("gone",)),  # refresh never: Grafana keeps what was saved
])
def test_saved_current_values_are_kept(current: dict[str, Any], expected: tuple[str, ...]) -> None:
    assert one({"query": "label_values(model_name)", "current": current, "multi": True},
               FakeLookup(LOOKUP)).values == expected


def test_saved_value_no_longer_an_option_falls_to_the_first_when_refreshed_on_load() -> None:
    assert one({"query": "label_values(model_name)", "refresh": 1, "current": {"text": "gone", "value": "gone"}},
               FakeLookup(LOOKUP)).values == ("tiny",)


def test_saved_all_is_all() -> None:
    for current in ({"text": "All", "value": "$__all"}, {"text": ["All"], "value": ["$__all"]}):
        assert one({"query": "label_values(model_name)", "includeAll": True, "current": current},
                   FakeLookup(LOOKUP)).all


def test_other_variable_types() -> None:
    lookup = FakeLookup({})
    assert one({"type": "custom", "query": "Tiny : tiny, big : llama\\,8b"}, lookup).values == ("tiny",)
    assert one({"type": "custom", "query": "a, b", "current": {"value": "b"}}, lookup).values == ("b",)
    assert one({"type": "constant", "query": "vllm"}, lookup).values == ("vllm",)
    assert one({"type": "textbox", "query": "default", "current": {"value": "typed"}}, lookup).values == ("typed",)
    assert one({"type": "interval", "query": "1m,5m,10m"}, lookup).values == ("1m",)
    assert resolve([var(type="adhoc")], lookup, None, DURATIONS) == {}


def test_namespace_comes_from_the_run_when_given() -> None:
    defined = [Variable(name="namespace", type="query", query="label_values(namespace)")]
    values = resolve(defined, FakeLookup(LOOKUP), "prod", DURATIONS)
    assert values["namespace"].values == ("prod",)


def test_chained_variable_query_uses_the_earlier_value() -> None:
    lookup = FakeLookup(LOOKUP)
    defined = variables({"templating": {"list": [
        {"name": "namespace", "type": "query", "query": "label_values(namespace)", "sort": 1},
        {"name": "model", "type": "query", "query": 'label_values(vllm:x{namespace="$namespace"}, model_name)'},
    ]}})
    resolve(defined, lookup, None, DURATIONS)
    assert lookup.asked[-1] == ("model_name", 'vllm:x{namespace="ns-a"}')


# -- interpolation ------------------------------------------------------------------------------------------


def value_of(values: tuple[str, ...], *, multi: bool = False, include_all: bool = False, all_value: str | None = None,
             all: bool = False) -> dict[str, Value]:
    variable = Variable("m", "query", multi=multi, include_all=include_all, all_value=all_value)
    return {"m": Value(variable, values, all=all, options=("a.b", "c"))}


@pytest.mark.parametrize(("expr", "values", "expected"), [
    # single-value: inserted raw (an '=' matcher works)
    ('x{m="$m"}', value_of(("a.b",)), 'x{m="a.b"}'),
    ('x{m="${m}"} + y{m="[[m]]"}', value_of(("a.b",)), 'x{m="a.b"} + y{m="a.b"}'),
    # multi-value: regex-escaped, several as (a|b), for '=~'
    ('x{m=~"$m"}', value_of(("a.b", "c"), multi=True), r'x{m=~"(a\\.b|c)"}'),
    ('x{m=~"$m"}', value_of(("a.b",), multi=True), r'x{m=~"a\\.b"}'),
    # All: allValue verbatim, else every option
    ('x{m=~"$m"}', value_of(("$__all",), include_all=True, all_value=".*", all=True), 'x{m=~".*"}'),
    ('x{m=~"$m"}', value_of(("$__all",), include_all=True, all=True), r'x{m=~"(a\\.b|c)"}'),
    # explicit formats
    ('x{m=~"${m:pipe}"}', value_of(("a.b", "c"), multi=True), 'x{m=~"a.b|c"}'),
    ('x{m=~"${m:csv}"}', value_of(("a.b", "c"), multi=True), 'x{m=~"a.b,c"}'),
    ('x{m=~"${m:raw}"}', value_of(("a.b",), multi=True), 'x{m=~"a.b"}'),
    ('x{m=~"${m:regex}"}', value_of(("a", "c"), multi=True), 'x{m=~"(a|c)"}'),
    # built-in durations, and names Grafana does not know stay as written
    ("rate(x[$__rate_interval]) + $nothing", value_of(("a",)), "rate(x[5m]) + $nothing"),
])
def test_interpolation_follows_the_prometheus_data_source(expr: str, values: dict[str, Value], expected: str) -> None:
    assert interpolate(expr, values, DURATIONS) == expected


# -- interpolation, rule by rule, as Grafana writes a variable into a query ------------------------------------
# Sources (the rules pinned below):
#  [P] grafana/grafana packages/grafana-prometheus/src/escaping.ts (datasource.ts before): interpolateQueryExpr,
#      prometheusRegularEscape, prometheusSpecialRegexEscape (their classic branch: the feature toggle
#      prometheusSpecialCharsInLabelValues is experimental, off by default).
#  [F] grafana/scenes packages/scenes/src/variables/interpolation/formatRegistry.ts: the named formats.
#  [S] grafana/scenes .../interpolation/sceneInterpolator.ts: a format named in the query wins over the data
#      source's function; an unknown format falls back to glob; a CustomVariableValue formats itself.
#  [M] grafana/scenes .../variants/MultiValueVariable.ts: getValue (All without allValue = every option's value;
#      ${var.N}), getValueText ("All", texts joined " + "), CustomAllValue (allValue verbatim, its variables then
#      interpolated with no format, i.e. glob; text -> "All", percentencode encodes it).
#  [L] grafana/scenes .../variants/LocalValueVariable.ts: a repeated panel's copy is isMulti and includeAll.
#  [D] grafana/grafana packages/grafana-data/src/text/string.ts escapeRegex; text/sanitize.ts escapeHtml.


def _var(name: str = "m", *, multi: bool = False, include_all: bool = False, all_value: str | None = None,
         type: str = "query") -> Variable:
    return Variable(name, type, multi=multi, include_all=include_all, all_value=all_value)


def _values(*selected: str, texts: tuple[str, ...] = (), all: bool = False, **flags: Any) -> dict[str, Value]:
    options = ("a.b", "c")
    return {"m": Value(_var(**flags), selected, all=all, options=options, texts=texts,
                       option_texts=("A.B", "C")),
            "other": Value(_var("other", multi=True), ("x.y", "z"), options=("x.y", "z"))}


MULTI = {"multi": True, "include_all": True}


@pytest.mark.parametrize(("expr", "values", "expected"), [
    # [P] a single-value variable: as it is, only backslashes and single quotes escaped (a '=' matcher works;
    #     under '=~' its regex characters stay regex)
    ('x{m="$m"}', _values("a.b"), 'x{m="a.b"}'),
    ('x{m=~"$m"}', _values("vllm-.*"), 'x{m=~"vllm-.*"}'),
    ('x{m="$m"}', _values("a\\b'c"), 'x{m="a\\\\b\\\\\'c"}'),
    ('x{m="$m"}', _values('a"b'), 'x{m="a"b"}'),  # double quotes are not escaped (the query breaks, in Grafana too)
    # [P] multi-value or include-all: every value regex-escaped for a PromQL string (two backslashes), several
    #     joined as (a|b): only '=~' matches them
    ('x{m=~"$m"}', _values("a.b", multi=True), 'x{m=~"a\\\\.b"}'),
    ('x{m=~"$m"}', _values("a.b", "c", multi=True), 'x{m=~"(a\\\\.b|c)"}'),
    ('x{m="$m"}', _values("a.b", "c", multi=True), 'x{m="(a\\\\.b|c)"}'),
    ('x{m=~"$m"}', _values("a.b", include_all=True), 'x{m=~"a\\\\.b"}'),
    ('x{m=~"$m"}', _values("a\\b", multi=True), 'x{m=~"a\\\\\\\\b"}'),  # a backslash becomes four
    ('x{m=~"$m"}', _values("a|b'c", multi=True), 'x{m=~"a\\\\|b\'c"}'),  # | escaped, ' not
    # [M][P] All: every option, regex-escaped; an allValue verbatim, its own variables written with glob
    ('x{m=~"$m"}', _values("$__all", all=True, include_all=True), 'x{m=~"(a\\\\.b|c)"}'),
    ('x{m=~"$m"}', _values("$__all", all=True, include_all=True, all_value=".*"), 'x{m=~".*"}'),
    ('x{m=~"$m"}', _values("$__all", all=True, include_all=True, all_value="$other.*"), 'x{m=~"{x.y,z}.*"}'),
    # [S][F] a named format wins over the data source's function
    ('x{m=~"${m:regex}"}', _values("a.b", "c", multi=True), 'x{m=~"(a\\.b|c)"}'),  # [D] one backslash
    ('x{m=~"${m:regex}"}', _values("a/b"), 'x{m=~"a\\/b"}'),
    ('x{m=~"${m:regex}"}', _values("$__all", all=True, include_all=True, all_value=".*"), 'x{m=~".*"}'),
    ('x{m=~"${m:pipe}"}', _values("a.b", "c", multi=True), 'x{m=~"a.b|c"}'),
    ('x{m=~"${m:csv}"}', _values("a.b", "c", multi=True), 'x{m=~"a.b,c"}'),
    ('x{m=~"${m:raw}"}', _values("a.b", "c", multi=True), 'x{m=~"a.b,c"}'),
    ('x{m="${m:raw}"}', _values("a.b"), 'x{m="a.b"}'),
    ('x{m=~"[[m:pipe]]"}', _values("$__all", all=True, include_all=True), 'x{m=~"a.b|c"}'),
    ("${m:glob}", _values("a.b", "c", multi=True), "{a.b,c}"),
    ("${m:glob}", _values("a.b", multi=True), "a.b"),
    ("${m:nonesuch}", _values("a.b", "c", multi=True), "{a.b,c}"),  # [S] unknown: glob
    ("${m:json}", _values("a.b", "c", multi=True), '["a.b","c"]'),
    ("${m:json}", _values("a.b"), "a.b"),  # a string as it is
    ("${m:text}", _values("a.b", "c", texts=("A.B", "C"), multi=True), "A.B + C"),
    ("${m:text}", _values("$__all", all=True, include_all=True), "All"),
    ("${m:text}", _values("$__all", all=True, include_all=True, all_value=".*"), "All"),
    ("${m:singlequote}", _values("a'b", "c", multi=True), "'a\\'b','c'"),
    ("${m:doublequote}", _values('a"b', "c", multi=True), '"a\\"b","c"'),
    ("${m:sqlstring}", _values("a'b", 'c"', multi=True), "'a''b','c\\\"'"),
    ("${m:percentencode}", _values("a.b", "c", multi=True), "%7Ba.b%2Cc%7D"),
    ("${m:percentencode}", _values("a b/c(d)"), "a%20b%2Fc%28d%29"),
    ("${m:percentencode}", _values("$__all", all=True, include_all=True, all_value=".*"), ".%2A"),
    ("${m:uriencode}", _values("a b/c"), "a%20b/c"),
    ("${m:queryparam}", _values("a.b", "c", multi=True), "var-m=a.b&var-m=c"),
    ("${m:queryparam}", _values("$__all", all=True, include_all=True), "var-m=$__all"),
    ("${m:customqueryparam:p:x-}", _values("a.b", "c", multi=True), "p=x-a.b&p=x-c"),
    ("${m:distributed}", _values("a.b", "c", multi=True), "a.b,m=c"),
    ("${m:lucene}", _values("a.b", "c", multi=True), '("a.b" OR "c")'),
    ("${m:lucene}", _values("a:b"), "a\\:b"),
    ("${m:join: or }", _values("a.b", "c", multi=True), "a.b or c"),
    ("${m:html}", _values("a<b", "c", multi=True), "a&lt;b, c"),
    # [M] ${var.N}: the Nth value, then formatted
    ('x{m=~"${m.1}"}', _values("a", "c.d", multi=True), 'x{m=~"c\\\\.d"}'),
])
def test_a_variable_is_written_as_grafana_writes_it(expr: str, values: dict[str, Value], expected: str) -> None:
    assert interpolate(expr, values, DURATIONS) == expected


@pytest.mark.parametrize(("variable", "expected"), [
    # [L] each copy of a repeated panel formats its one value as multi-value, include-all
    (_var(multi=True), 'x{m=~"a\\\\.b"}'),
    (_var(include_all=True), 'x{m=~"a\\\\.b"}'),
])
def test_a_repeated_panels_copy_sees_one_value_regex_escaped(variable: Variable, expected: str) -> None:
    value = Value(variable, ("$__all",), all=True, options=("a.b", "c"), option_texts=("A.B", "C"))
    copy = value.single("a.b")
    assert interpolate('x{m=~"$m"}', {"m": copy}, DURATIONS) == expected
    assert interpolate("${m:text} ${m:json}", {"m": copy}, DURATIONS) == "A.B a.b"


@pytest.mark.parametrize(("raw", "expected"), [
    # a constant, a textbox and an interval are one value, whatever the saved model says of multi (scenes' types
    # for them are not MultiValueVariables)
    ({"name": "m", "type": "constant", "query": "a.b", "multi": True}, 'x{m=~"a.b"}'),
    ({"name": "m", "type": "textbox", "query": "a.b", "includeAll": True}, 'x{m=~"a.b"}'),
])
def test_single_value_types_are_never_regex_escaped(raw: dict[str, Any], expected: str) -> None:
    values = resolve(variables({"templating": {"list": [raw]}}), FakeLookup({}), None, DURATIONS)
    assert interpolate('x{m=~"$m"}', values, DURATIONS) == expected


# -- resolution details Grafana's scenes follow (grafana/scenes .../variants/query/QueryVariable.tsx,
# .../query/utils.ts metricNamesToVariableValues, @grafana/data stringToJsRegex, .../CustomOptionsProviders.ts,
# .../MultiValueVariable.ts getStateUpdateGivenNewOptions)


def test_a_query_variables_regex_is_interpolated_with_the_regex_format_and_a_bare_one_is_anchored() -> None:
    lookup = FakeLookup({"model_name": ["llama-3.1-8b", "tiny-llama", "Qwen"], "prefix": ["llama-3.1"]})
    defined = variables({"templating": {"list": [
        {"name": "prefix", "type": "custom", "query": "llama-3.1"},
        # the '.' of llama-3.1 is escaped by the regex format: it matches only a dot
        {"name": "v", "type": "query", "query": "label_values(model_name)", "regex": "/^${prefix}/"},
        # a bare pattern must match the whole value (stringToJsRegex wraps it in ^...$)
        {"name": "bare", "type": "query", "query": "label_values(model_name)", "regex": "llama"},
        {"name": "whole", "type": "query", "query": "label_values(model_name)", "regex": ".*llama"},
        # the g flag: one option per match
        {"name": "each", "type": "query", "query": "label_values(model_name)", "regex": "/([a-z]+)-/g"},
    ]}})
    values = resolve(defined, lookup, None, DURATIONS)
    assert values["v"].options == ("llama-3.1-8b",)
    assert values["bare"].options == () and values["whole"].options == ("tiny-llama",)
    assert values["each"].options == ("llama", "tiny")
    lookup.values["model_name"] = ["llama-301-8b"]  # would match an unescaped 3.1
    assert resolve(defined, lookup, None, DURATIONS)["v"].options == ()


def test_a_custom_variables_options_are_interpolated_and_keep_their_texts() -> None:
    defined = variables({"templating": {"list": [
        {"name": "ns", "type": "constant", "query": "prod"},
        {"name": "v", "type": "custom", "query": "Tiny : tiny-$ns, Big : big-$ns", "multi": True,
         "current": {"text": ["Big"], "value": ["big-prod"]}},
    ]}})
    value = resolve(defined, FakeLookup({}), None, DURATIONS)["v"]
    assert value.options == ("tiny-prod", "big-prod") and value.values == ("big-prod",)
    assert interpolate("${v:text}|${v:raw}", {"v": value}, DURATIONS) == "Big|big-prod"


def test_all_saved_on_a_variable_without_all_takes_the_first_option() -> None:
    # MultiValueVariable: hasAllValue and not includeAll -> the first option, not a literal $__all in the query
    assert one({"query": "label_values(model_name)", "current": {"text": "All", "value": "$__all"}},
               FakeLookup(LOOKUP)).values == ("tiny",)


def test_an_interval_variable_on_auto_is_a_valid_duration() -> None:
    # the step Grafana computes from the time range and the panel's width: the run's $__interval stands for it
    durations = {**DURATIONS, "__interval": "30s"}
    (raw,) = variables({"templating": {"list": [{"name": "v", "type": "interval", "query": "1m,10m", "auto": True,
                                                 "current": {"text": "auto", "value": "$__auto_interval_v"}}]}})
    value = resolve([raw], FakeLookup({}), None, durations)["v"]
    assert interpolate("rate(x[$v]) ${v:text}", {"v": value}, durations) == "rate(x[30s]) auto"


@pytest.mark.parametrize(("values", "regex", "options", "texts"), [
    # stringToJsRegex's flags: i ignores case, s lets . match a newline, m lets ^ and $ match at each line
    (["llama", "Qwen"], "/L/i", ("llama",), ("llama",)),
    (["llama", "Qwen"], "/L/", (), ()),
    (["a\nb", "ab"], "/a.b/s", ("a\nb",), ("a\nb",)),
    (["x\nb", "ab"], "/^b$/m", ("x\nb",), ("x\nb",)),
    # the g flag: one option per match; without it, the first match's group
    (["ab"], "/([a-z])/g", ("a", "b"), ("a", "b")),
    (["ab"], "/([a-z])/", ("a",), ("a",)),
    # a bare pattern is anchored: it must match the whole value, and it matches once
    (["ab", "ba"], "a.", ("ab",), ("ab",)),
    (["ab"], "([a-z])", (), ()),
    # named groups: the value and the text, either alone standing for both
    (["tiny-1", "big-2"], "/(?<text>[a-z]+)-(?<value>\\d+)/", ("1", "2"), ("tiny", "big")),
    (["tiny-1"], "/(?<value>\\d+)/", ("1",), ("1",)),
    (["tiny-1"], "/(?<text>[a-z]+)/", ("tiny",), ("tiny",)),
    (["tiny-1"], "/(?<text>[a-z]+)-(?<value>\\d+)/g", ("1",), ("tiny",)),
    # a group that took part in no match: the value itself; a regex Python cannot read: every value
    (["y"], "/(x)?y/", ("y",), ("y",)),
    (["tiny", "big"], "/(/", ("tiny", "big"), ("tiny", "big")),
])
def test_a_query_variables_regex_filters_and_captures_as_grafana_does(
        values: list[str], regex: str, options: tuple[str, ...], texts: tuple[str, ...]) -> None:
    value = one({"query": "label_values(model_name)", "regex": regex}, FakeLookup({"model_name": values}))
    assert (value.options, value.option_texts or value.options) == (options, texts)


@pytest.mark.parametrize(("expr", "values", "expected"), [
    # scenes' formatRegistry, on the characters each format escapes
    ("${m:html}", _values("&<>'\""), "&amp;&lt;&gt;&#39;&quot;"),
    ("${m:percentencode}", _values("!'()*"), "%21%27%28%29%2A"),
    ("${m:queryparam}", _values("a@b:c$d,e;f g/h"), "var-m=a@b:c$d,e;f%20g%2Fh"),
    ("${m:queryparam}", _values("a.b"), "var-m=a.b"),
    ("${m:queryparam}", _values(), "var-m="),
    ("${m:queryparam}", _values("$__all", all=True, include_all=True, all_value=".*"), "var-m=$__all"),
    ("${m:customqueryparam}", _values("a b", "c", multi=True), "m=a%20b&m=c"),
    ("${m:customqueryparam:p}", _values("a.b", "c", multi=True), "p=a.b&p=c"),
    ("${m:lucene}", _values("a b(c)"), "a\\ b\\(c\\)"),
    ("${m:lucene}", {"m": Value(_var(), ("1e3",))}, "1e3"),  # a number, as JavaScript reads one: as it is
    ("${m:lucene}", {"m": Value(_var(), ("-2.5",))}, "-2.5"),
    ("${m:lucene}", {"m": Value(_var(), ("0x1F",))}, "0x1F"),
    ("${m:lucene}", {"m": Value(_var(), ("Infinity",))}, "Infinity"),
    ("${m:lucene}", {"m": Value(_var(multi=True), ())}, "__empty__"),
    ("${m:distributed}", _values("a.b"), "a.b"),
    ("${m:regex}", _values("a.b"), "a\\.b"),
    # an allValue with the glob default, whatever the name of the format Grafana does not know
    ("${m:csv}", _values("$__all", all=True, include_all=True, all_value="$other"), "{x.y,z}"),
])
def test_each_format_escapes_what_grafana_escapes(expr: str, values: dict[str, Value], expected: str) -> None:
    assert interpolate(expr, values, DURATIONS) == expected


def test_a_repeated_panels_copy_as_a_query_parameter_is_its_own_value() -> None:
    value = Value(_var(multi=True), ("$__all",), all=True, options=("a b", "c"), option_texts=("A B", "C"))
    assert interpolate("${m:queryparam}", {"m": value.single("a b")}, DURATIONS) == "var-m=a%20b"
    assert interpolate("${m:text}", {"m": value.single("c")}, DURATIONS) == "C"


@pytest.mark.parametrize(("current", "is_all"), [
    ({"text": "All", "value": "$__all"}, True),
    ({"text": ["All"], "value": ["x"]}, True),  # the picker's text says All
    ({"text": "x", "value": ["All"]}, True),  # an old model saved the text as the value
    ({"text": "Qwen", "value": "Qwen"}, False),
    ({"text": "all", "value": "all"}, False),
])
def test_a_saved_all_is_recognised_by_its_value_or_its_text(current: dict[str, Any], is_all: bool) -> None:
    assert one({"query": "label_values(model_name)", "includeAll": True, "current": current},
               FakeLookup(LOOKUP)).all is is_all


@pytest.mark.parametrize(("sort", "expected"), [
    # Grafana's variable sort (its `sort` field): 1/2 alphabetical, 3/4 numerical (by the first number),
    # 5/6 alphabetical ignoring case, 7/8 natural; even numbers descending; 0 keeps the data source's order
    (0, ["b10", "a2", "B1", "a10", "x"]),
    (1, ["B1", "a10", "a2", "b10", "x"]),
    (2, ["x", "b10", "a2", "a10", "B1"]),
    (3, ["x", "B1", "a2", "b10", "a10"]),
    (4, ["b10", "a10", "a2", "B1", "x"]),
    (5, ["a10", "a2", "B1", "b10", "x"]),
    (6, ["x", "b10", "B1", "a2", "a10"]),
    (7, ["a2", "a10", "B1", "b10", "x"]),
    (8, ["x", "b10", "B1", "a10", "a2"]),
])
def test_a_query_variables_options_are_sorted_as_grafana_sorts_them(sort: int, expected: list[str]) -> None:
    value = one({"query": "label_values(model_name)", "sort": sort},
                FakeLookup({"model_name": ["b10", "a2", "B1", "a10", "x"]}))
    assert list(value.options) == expected


def test_a_dashboards_variables_are_read_as_grafana_saves_them() -> None:
    model = {"templating": {"list": [
        "not a variable", {"type": "query"},  # no name: not a variable Grafana can show
        {"name": "m", "query": {"query": "label_values(model_name)", "refId": "V"}, "sort": "2", "refresh": "1",
         "multi": 1, "includeAll": True, "allValue": "", "current": {"text": ["A", "B"], "value": ["a", "b"]},
         "options": [{"text": "All", "value": "$__all"}, {"text": "A", "value": "a"}, {"value": "b"}, {"text": "c"},
                     "not an option"]},
        {"name": "n", "type": "custom", "query": None, "allValue": ".*", "current": {"value": []}},
    ]}}
    m, n = variables(model)
    assert m == Variable("m", "query", query="label_values(model_name)", sort=2, refresh=1, multi=True,
                         include_all=True, all_value=None, current=("a", "b"), current_text=("A", "B"),
                         options=(("A", "a"), ("b", "b"), ("c", "c")))
    assert n == Variable("n", "custom", all_value=".*", current=None, current_text=())


def test_each_kind_of_variable_resolves_to_its_values_options_and_texts() -> None:
    model = {"templating": {"list": [
        {"name": "c", "type": "constant", "query": "prod"},
        {"name": "t", "type": "textbox", "query": "def", "current": {"text": "X", "value": "x"}},
        {"name": "d", "type": "datasource", "query": "prometheus"},
        # an interval on auto: the run's own $__interval (1m when the run has none)
        {"name": "i", "type": "interval", "query": "1m,5m", "current": {"text": "auto", "value": "$__auto_interval_i"}},
        {"name": "j", "type": "interval", "query": "1m, 5m ,", "current": {"text": "5m", "value": "5m"}},
        {"name": "cu", "type": "custom", "query": "Tiny : tiny, Big : big", "current": {"text": "Big", "value": "big"}},
        # a query this run cannot answer: the saved value and options, or, saved on All, unknown
        {"name": "u", "type": "query", "query": "unknown_function()", "current": {"text": "Saved", "value": "saved"},
         "options": [{"text": "Saved", "value": "saved"}, {"text": "Other", "value": "other"}]},
        {"name": "ua", "type": "query", "query": "unknown_function()", "includeAll": True,
         "current": {"text": "All", "value": "$__all"}, "options": [{"text": "O", "value": "o"}]},
        {"name": "q", "type": "query", "query": "label_values(model_name)", "includeAll": True,
         "current": {"text": "All", "value": "$__all"}},
    ]}}
    found = {name: (v.values, v.all, v.options, v.known, v.texts, v.option_texts)
             for name, v in resolve(variables(model), FakeLookup(LOOKUP), None, DURATIONS).items()}
    models = ("tiny", "llama-3.1-8b", "Qwen")
    assert found == {
        "c": (("prod",), False, ("prod",), True, (), ()),
        "t": (("x",), False, ("x",), True, ("X",), ()),
        "d": (("prometheus",), False, ("prometheus",), True, (), ()),
        "i": (("1m",), False, (), True, ("auto",), ()),
        "j": (("5m",), False, ("1m", "5m"), True, ("5m",), ("1m", "5m")),
        "cu": (("big",), False, ("tiny", "big"), True, ("Big",), ("Tiny", "Big")),
        "u": (("saved",), False, ("saved", "other"), True, ("Saved",), ("Saved", "Other")),
        "ua": ((".*",), True, ("o",), False, (), ("O",)),
        "q": (("$__all",), True, models, True, (), models)}


def test_ad_hoc_filters_and_the_namespace_variable_leave_the_variables_after_them_resolved() -> None:
    defined = variables({"templating": {"list": [
        {"name": "filters", "type": "adhoc"},
        {"name": "namespace", "type": "query", "query": "label_values(namespace)"},
        {"name": "m", "type": "query", "query": "label_values(model_name)"}]}})
    values = resolve(defined, FakeLookup(LOOKUP), "llm-d", DURATIONS)
    assert list(values) == ["namespace", "m"]
    # the run's namespace is the namespace variable's one value and option
    assert (values["namespace"].variable.name, values["namespace"].values, values["namespace"].options) == (
        "namespace", ("llm-d",), ("llm-d",))
    assert values["m"].values == ("tiny",)
