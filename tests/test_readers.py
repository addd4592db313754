"""Readers of the metrics loaded from a dashboard (readers.py): which targets of which panels are kept, in which
order and under which names, where Grafana draws each panel, and Grafana's variables written into a query."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import dashboard_file
from pytest_vllm_metrics import readers
from pytest_vllm_metrics.catalog import load_catalog
from pytest_vllm_metrics.promql import selectors
from pytest_vllm_metrics.readers import Query, ReaderKind, load_dashboards, substitute


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


# -- what the judging knows of names beyond the catalog (conformance/dashboards.toml) ------------------------------

KSERVE = ("the form KServe stores for an LLMInferenceService: its PodMonitor relabels every scraped name to "
          "kserve_<name> (kserve pkg/controller/llmisvc/monitoring.go)")


@pytest.mark.parametrize(("metric", "component"), [
    ("inference_pool_ready_pods", "the endpoint picker (EPP)"),  # by prefix
    ("kserve_inference_pool_ready_pods", "the endpoint picker (EPP)"),  # in the form KServe stores
    ("vllm:current_qps", "the vLLM production-stack router"),  # by name: vllm: is not enough to be vLLM's
    ("kserve_vllm:current_qps", "the vLLM production-stack router"),
    ("vllm:num_requests_running", None), ("kserve_vllm:num_requests_running", None),
])
def test_another_components_metric_is_known_in_any_stored_form(metric: str, component: str | None) -> None:
    found = readers.component_of(metric)
    assert (found.name if found else None) == component


def test_a_features_metric_and_a_histograms_parts_find_their_family() -> None:
    assert readers.optional_feature("vllm:lora_requests_info") == "lora"
    assert readers.optional_feature("vllm:num_requests_running") is None
    catalog = load_catalog()
    for name in ("vllm:e2e_request_latency_seconds", "vllm:e2e_request_latency_seconds_bucket",
                 "vllm:e2e_request_latency_seconds_count", "vllm:e2e_request_latency_seconds_sum"):
        entry = readers.family_of(name, catalog)
        assert entry is not None and entry.name == "vllm:e2e_request_latency_seconds"
    assert readers.family_of("vllm:no_such_family_count", catalog) is None
    assert readers.family_of("vllm:num_requests_running_total", catalog) is None  # no such suffix of a histogram


@pytest.mark.parametrize(("metric", "family", "how"), [
    ("kserve_vllm:num_requests_running", "vllm:num_requests_running", KSERVE),
    ("ray_vllm_num_requests_running", "vllm:num_requests_running", "the form Ray Serve exports vLLM's metrics in: "
     "Ray's metrics agent prefixes ray_, and vLLM 0.11 and later write the colon as an underscore for Ray "
     "(vllm/v1/metrics/ray_wrappers.py)"),
    ("vllm_num_requests_running", "vllm:num_requests_running", "the underscore form of a colon name: a store or "
     "collector rewrote the colons (prometheus_client answers a scrape that asks for OpenMetrics with "
     "escaping=underscores by default, and OpenTelemetry pipelines translate names the same way)"),
    ("vllm_num_requests_waiting", None, ""), ("kserve_vllm:num_requests_waiting", None, ""),
])
def test_a_name_is_found_as_another_form_of_an_exposed_family(metric: str, family: str | None, how: str) -> None:
    assert readers.exposed_as(metric, ["vllm:num_requests_running", "vllm:kv_cache_usage_perc"]) == (family, how)


def test_each_kind_of_reader_has_its_noun_and_a_users_own_kind_keeps_its_name() -> None:
    assert [readers.noun(k) for k in ReaderKind] == ["panel", "alert", "recording rule", "KEDA scaler",
                                                     "prometheus-adapter rule", "endpoint picker flag"]
    assert readers.noun("flagger canary") == "flagger canary"
