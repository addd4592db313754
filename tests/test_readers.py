"""Readers of the metrics loaded from a dashboard (readers.py): which targets of which panels are kept, in which
order and under which names, where Grafana draws each panel, and Grafana's variables written into a query."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import dashboard_file
from pytest_vllm_metrics.promql import selectors
from pytest_vllm_metrics.readers import Query, load_dashboards, substitute


def test_loading_keeps_prometheus_targets_in_order_and_names_them(tmp_path: Path) -> None:
    loaded = load_dashboards([dashboard_file(tmp_path / "dash.json", [
        {"title": "Mixed", "datasource": {"type": "prometheus", "uid": "p"}, "targets": [
            {"expr": "vllm:a"},  # no refId: Grafana names them A, B, ... by position
            {"refId": "Q", "expr": "vllm:b", "hide": True},
            {"refId": "L", "expr": '{app="vllm"}', "datasource": {"type": "loki"}},
            {"refId": "M", "expr": "vllm:c", "datasource": {"type": "datasource", "uid": "-- Mixed --"}},
            {"refId": "E", "expr": ""},
            "not a target",
        ]},
        {"title": "Logs", "datasource": {"type": "loki"}, "targets": [{"expr": "vllm:d"}]},
        {"id": 7, "targets": [{"expr": "vllm:e"}]},
        {"title": "Mixed", "targets": [{"expr": "vllm:f"}]},
        {"title": "Mixed", "targets": [{"expr": "vllm:g"}]},
        {"type": "row", "title": "Row", "targets": [{"expr": "vllm:h"}]},
    ])])
    assert [(p.id, p.queries) for p in loaded] == [
        ("dash::Mixed", (Query("A", "vllm:a"), Query("M", "vllm:c"))),
        ("dash::panel 7", (Query("A", "vllm:e"),)),
        ("dash::Mixed (2)", (Query("A", "vllm:f"),)),
        ("dash::Mixed (3)", (Query("A", "vllm:g"),)),
    ]
    assert {p.dashboard_title for p in loaded} == {"vLLM"} and {p.kind for p in loaded} == {"panel"}


@pytest.mark.parametrize(("expr", "variables", "namespace", "expected"), [
    ('vllm:x{namespace="$namespace", model_name="$m"}', {"m": "tiny"}, "llm-d",
     'vllm:x{namespace="llm-d", model_name="tiny"}'),
    ('vllm:x{namespace="$namespace"}', {}, None, 'vllm:x{namespace="$namespace"}'),
    ("rate(vllm:x[$__rate_interval])", {}, None, "rate(vllm:x[5m])"),
])
def test_substitute(expr: str, variables: dict[str, str], namespace: str | None, expected: str) -> None:
    assert substitute(expr, variables, namespace) == expected


def test_loading_keeps_where_grafana_draws_each_panel(tmp_path: Path) -> None:
    loaded = load_dashboards([dashboard_file(tmp_path / "grid.json", [
        {"type": "row", "title": "Latency", "collapsed": True, "gridPos": {"x": 0, "y": 0, "w": 24, "h": 1},
         "panels": [{"title": "E2E", "gridPos": {"x": 0, "y": 1, "w": 12, "h": 8}, "targets": [{"expr": "vllm:a"}]},
                    {"title": "Lib", "gridPos": {"x": 12, "y": 1, "w": 12, "h": 8},
                     "libraryPanel": {"uid": "only-uid"}}]},
        {"targets": [{"refId": "A", "expr": "vllm:b"}, {"expr": "vllm:c", "datasource": {"type": ""}}]},
    ])])
    assert [(p.title, p.grid, p.row, p.library) for p in loaded] == [
        ("E2E", (0, 1, 12, 8), "Latency", None), ("Lib", (12, 1, 12, 8), "Latency", "only-uid"),
        ("panel ?", None, "Latency", None)]  # after a row, in it (Grafana: until the next row)
    # a target without refId is named by its position; an empty data source type is the panel's (Prometheus)
    assert loaded[2].queries == (Query("A", "vllm:b"), Query("B", "vllm:c"))


def test_library_panel_keeps_the_dashboards_variables(tmp_path: Path) -> None:
    path = tmp_path / "lib.json"
    path.write_text(json.dumps({"title": "vLLM", "templating": {"list": [{"name": "m", "type": "custom",
                                                                          "query": "tiny"}]},
                                "panels": [{"libraryPanel": {"name": "L"}}]}))
    (loaded,) = load_dashboards([path])
    assert [v.name for v in loaded.variables] == ["m"]


def test_substitute_names_the_variables_it_writes() -> None:
    assert substitute("${m:queryparam}&${namespace:queryparam}", {"m": "tiny"}, "llm-d") == \
        "var-m=tiny&var-namespace=llm-d"


def test_rows_and_nested_panels_are_walked(tmp_path: Path) -> None:
    (tmp_path / "rows.json").write_text(
        '{"title": "R", "panels": [{"type": "row", "title": "Row", "panels": [{"title": "Inner", "targets": '
        '[{"expr": "vllm:num_requests_running"}]}]}, {"title": "Top", "targets": [{"expr": "up"}]}]}')
    assert [p.title for p in load_dashboards((tmp_path,))] == ["Inner", "Top"]


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ('rate(x{ns=~"$namespace"}[$__rate_interval])', 'rate(x{ns=~"prod"}[5m])'),
        ('x{m=~"${model}"} / y{m=~"[[model]]"}', 'x{m=~".*"} / y{m=~".*"}'),
        ("increase(x[$__range])", "increase(x[1h])"),
    ],
)
def test_grafana_variables_are_substituted(expr: str, expected: str) -> None:
    assert substitute(expr, {"model": ".*"}, "prod") == expected
    assert selectors(expected)  # and the result parses
