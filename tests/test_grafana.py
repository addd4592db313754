"""Grafana's reading of a dashboard: the shapes a file comes in, and variables as Grafana fills them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pytest_vllm_metrics._grafana import Value, Variable, interpolate, resolve, variables
from pytest_vllm_metrics.dashboards import load_panels

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


# -- dashboard inputs ---------------------------------------------------------------------------------------

MODEL = {"title": "vLLM", "panels": [{"title": "Running", "targets": [{"expr": "vllm:num_requests_running"}]}]}


def test_configmap_yaml_list_and_multi_document(tmp_path: Path) -> None:
    configmap = ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: vllm-dashboards\n  labels:\n"
                 "    grafana_dashboard: \"1\"\ndata:\n  vllm.json: |\n    " + json.dumps(MODEL) + "\n"
                 "  README.md: not a dashboard\n")
    (tmp_path / "one.yaml").write_text(configmap + "---\n" + configmap.replace("vllm.json", "other.json"))
    listed = {"apiVersion": "v1", "kind": "List", "items": [
        {"kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"listed.json": json.dumps(MODEL)}}]}
    (tmp_path / "two.json").write_text(json.dumps(listed))
    assert [p.id for p in load_panels((tmp_path,))] == ["vllm::Running", "other::Running", "listed::Running"]


def test_pre_5_rows_collapsed_rows_and_the_api_envelope(tmp_path: Path) -> None:
    old = {"title": "Old", "rows": [{"title": "r", "panels": [{"title": "A", "targets": [{"expr": "vllm:a"}]}]}]}
    collapsed = {"title": "C", "panels": [{"type": "row", "title": "Row", "collapsed": True, "panels": [
        {"title": "B", "targets": [{"expr": "vllm:b", "refId": "Q"}, {"expr": "vllm:hidden", "hide": True}]}]}]}
    envelope = {"dashboard": MODEL, "meta": {"slug": "vllm"}}
    loki = {"title": "L", "panels": [MODEL["panels"][0], {"title": "Logs", "datasource": {"type": "loki"},
                                                          "targets": [{"expr": '{app="vllm"}'}]}]}
    for name, model in (("old", old), ("collapsed", collapsed), ("envelope", envelope), ("loki", loki)):
        (tmp_path / f"{name}.json").write_text(json.dumps(model))
    panels = {p.id: p for p in load_panels((tmp_path,))}
    assert sorted(panels) == ["collapsed::B", "envelope::Running", "loki::Running", "old::A"]
    assert [(q.ref_id, q.expr) for q in panels["collapsed::B"].queries] == [("Q", "vllm:b")]


def test_library_panel_and_repeat_are_kept_for_evaluation(tmp_path: Path) -> None:
    model = {"title": "D", "templating": {"list": [{"name": "model", "type": "custom", "query": "a,b"}]}, "panels": [
        {"title": "Lib", "libraryPanel": {"uid": "u1", "name": "vLLM latency"}},
        {"title": "Per $model", "repeat": "model", "targets": [{"expr": 'vllm:x{model_name="$model"}'}]}]}
    (tmp_path / "d.json").write_text(json.dumps(model))
    lib, repeated = load_panels((tmp_path / "d.json",))
    assert lib.library == "vLLM latency" and lib.queries == ()
    assert repeated.repeat == "model" and repeated.id == "d::Per $model"
    assert [v.name for v in repeated.variables] == ["model"]
