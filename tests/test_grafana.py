"""Grafana's reading of a dashboard: the shapes a file comes in, and variables as Grafana fills them."""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_vllm_metrics._grafana import DashboardError, operator_source, walk_panels
from pytest_vllm_metrics._grafana import load as grafana_load
from pytest_vllm_metrics._grafana_vars import Value, Variable, interpolate, resolve, variables
from pytest_vllm_metrics.readers import load_dashboards

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
    assert [p.id for p in load_dashboards((tmp_path,))] == ["vllm::Running", "other::Running", "listed::Running"]


def test_pre_5_rows_collapsed_rows_and_the_api_envelope(tmp_path: Path) -> None:
    old = {"title": "Old", "rows": [{"title": "r", "panels": [{"title": "A", "targets": [{"expr": "vllm:a"}]}]}]}
    collapsed = {"title": "C", "panels": [{"type": "row", "title": "Row", "collapsed": True, "panels": [
        {"title": "B", "targets": [{"expr": "vllm:b", "refId": "Q"}, {"expr": "vllm:hidden", "hide": True}]}]}]}
    envelope = {"dashboard": MODEL, "meta": {"slug": "vllm"}}
    loki = {"title": "L", "panels": [MODEL["panels"][0], {"title": "Logs", "datasource": {"type": "loki"},
                                                          "targets": [{"expr": '{app="vllm"}'}]}]}
    for name, model in (("old", old), ("collapsed", collapsed), ("envelope", envelope), ("loki", loki)):
        (tmp_path / f"{name}.json").write_text(json.dumps(model))
    panels = {p.id: p for p in load_dashboards((tmp_path,))}
    assert sorted(panels) == ["collapsed::B", "envelope::Running", "loki::Running", "old::A"]
    assert [(q.ref_id, q.expr) for q in panels["collapsed::B"].queries] == [("Q", "vllm:b")]


def test_library_panel_and_repeat_are_kept_for_evaluation(tmp_path: Path) -> None:
    model = {"title": "D", "templating": {"list": [{"name": "model", "type": "custom", "query": "a,b"}]}, "panels": [
        {"title": "Lib", "libraryPanel": {"uid": "u1", "name": "vLLM latency"}},
        {"title": "Per $model", "repeat": "model", "targets": [{"expr": 'vllm:x{model_name="$model"}'}]}]}
    (tmp_path / "d.json").write_text(json.dumps(model))
    lib, repeated = load_dashboards((tmp_path / "d.json",))
    assert lib.library == "vLLM latency" and lib.queries == ()
    assert repeated.repeat == "model" and repeated.id == "d::Per $model"
    assert [v.name for v in repeated.variables] == ["model"]


# -- Grafana Operator GrafanaDashboard resources --------------------------------------------------------------

OPERATOR = Path(__file__).parent / "data" / "grafana-operator"
DASHBOARDS = Path(__file__).parent / "data" / "dashboards"
# The panels of tests/data/grafana-operator/vllm-dashboards.yaml, by the GrafanaDashboard they come from: the same
# as the llm-d dashboards of tests/data/dashboards the resources hold.
OPERATOR_PANELS = {
    "vllm-failure-saturation": "llm-d-failure-saturation",
    "vllm-performance-gzipped": "llm-d-performance",
    "vllm-performance-old-from-configmap": "llm-d-performance-old",
}


def _ids(panels: list[Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for panel in panels:
        out.setdefault(panel.dashboard, []).append(panel.title)
    return out


def _operator_documents() -> list[dict[str, Any]]:
    import yaml

    return [d for d in yaml.safe_load_all((OPERATOR / "vllm-dashboards.yaml").read_text()) if d]


def test_grafana_dashboards_in_the_operators_shapes_are_read_as_the_dashboards_they_hold() -> None:
    # spec.json (a folded block), spec.gzipJson, spec.configMapRef to a ConfigMap of the same file; the Grafana
    # instance beside them is skipped and the referenced ConfigMap is no sidecar dashboard of its own
    found = _ids(load_dashboards((OPERATOR,)))
    held = _ids(load_dashboards(tuple(DASHBOARDS / f"{name}.json" for name in OPERATOR_PANELS.values())))
    assert found == {resource: held[stem] for resource, stem in OPERATOR_PANELS.items()}
    dashboards = {d.name: d for d in grafana_load((OPERATOR,))}
    # spec.datasources fills the ${DS_PROMETHEUS} input in, as the operator's resolver does; the other two set none
    assert dashboards["vllm-failure-saturation"].model["panels"][0]["datasource"] == {"type": "prometheus",
                                                                                      "uid": "prometheus"}
    assert dashboards["vllm-performance-gzipped"].model["panels"][0]["datasource"]["uid"] == "${DS_PROMETHEUS}"
    assert dashboards["vllm-performance-old-from-configmap"].where == (
        f"{OPERATOR / 'vllm-dashboards.yaml'} (GrafanaDashboard vllm-performance-old-from-configmap, from ConfigMap "
        f"vllm-performance-old-definition key json)")


@pytest.mark.parametrize("shape", ["json-list", "json-single", "yaml-list"])
def test_grafana_dashboards_as_a_list_or_one_document_per_file(tmp_path: Path, shape: str) -> None:
    # kubectl get grafanadashboards -o json|yaml prints a List; kubectl get grafanadashboard NAME -o json one object
    documents = _operator_documents()
    if shape == "json-single":  # (the Grafana instance alone would be a file with no dashboard)
        for index, document in enumerate(d for d in documents if d["kind"] != "Grafana"):
            (tmp_path / f"{index}.json").write_text(json.dumps(document))
    elif shape == "json-list":
        (tmp_path / "all.json").write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": documents}))
    else:
        import yaml

        (tmp_path / "all.yaml").write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": documents}))
    assert _ids(load_dashboards((tmp_path,))) == _ids(load_dashboards((OPERATOR,)))


def test_a_configmap_ref_is_resolved_from_another_file_given(tmp_path: Path) -> None:
    configmap, resource = _operator_documents()[3:5]
    (tmp_path / "a-dashboard.json").write_text(json.dumps(resource))
    (tmp_path / "b-configmap.json").write_text(json.dumps(configmap))
    (found,) = grafana_load((tmp_path,))
    assert found.name == "vllm-performance-old-from-configmap"
    assert found.where.endswith(f"from ConfigMap vllm-performance-old-definition key json of "
                                f"{tmp_path / 'b-configmap.json'})")


# grafana/grafana-operator deploy/examples/dashboards (operator v4, integreatly.org/v1alpha1): SimpleDashboard.yaml
# (spec.json folded), DashboardFromConfigMap.yaml (json: "" beside configMapRef, the model under key foo) and
# DashboardFromCompressedConfigMap.yaml (gzipConfigMapRef to the ConfigMap's binaryData), with a vLLM panel.
VLLM_MODEL = {"title": "vLLM", "panels": [{"title": "Running", "targets": [{"expr": "vllm:num_requests_running"}]}]}


def _v1alpha1(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "integreatly.org/v1alpha1", "kind": "GrafanaDashboard",
            "metadata": {"name": name, "labels": {"app": "grafana"}}, "spec": spec}


def _gzipped(model: dict[str, Any]) -> str:
    import base64
    import gzip

    return base64.b64encode(gzip.compress(json.dumps(model).encode())).decode()


def test_the_operators_v4_resources(tmp_path: Path) -> None:
    documents = [
        _v1alpha1("simple-dashboard", {"name": "simple-dashboard.json", "json": json.dumps(VLLM_MODEL, indent=2)}),
        _v1alpha1("grafana-dashboard-from-config-map", {"json": "", "configMapRef": {"name": "cm", "key": "foo"}}),
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"foo": json.dumps(VLLM_MODEL)}},
        _v1alpha1("grafana-dashboard-from-compressed-config-map",
                  {"json": "", "gzipConfigMapRef": {"name": "compressed", "key": "foo"}}),
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "compressed"},
         "binaryData": {"foo": _gzipped(VLLM_MODEL)}},
    ]
    import yaml

    (tmp_path / "v4.yaml").write_text(yaml.safe_dump_all(documents))
    assert [p.id for p in load_dashboards((tmp_path,))] == [
        "simple-dashboard::Running", "grafana-dashboard-from-config-map::Running",
        "grafana-dashboard-from-compressed-config-map::Running"]


# The gzipped models of the operator's own examples, verbatim: examples/dashboard/gzip_json/resources.yaml (v5) and
# deploy/examples/dashboards/DashboardFromCompressedConfigMap.yaml (v4, the ConfigMap's binaryData, wrapped at 76).
GZIP_EXAMPLE = ("H4sIAAAAAAAAA4WQQU/DMAyF7/0VVc9MggMgcYV/AOKC0OQubmM1jSPH28Sm/XfSNJ1WcaA3f+/l+dXnqk5fQ6Z5qf3eubt5V"
                "lKHCTXvNAaH9RtE2zKI2fQnCgFNsxihj8n39V3mqD/zQwMyXE004ol95q3wMaIsEhpSaPMTlT0WasngK3sVdlN6By4uUi8Q7AezUw"
                "pJeig4gEe3ajItTfM5T5l0wuNUwfNx82RLg9nLhTeZXW4iAu2GVHcVNPEtByX2tyuzJtgJRrslrygHKJ3WsZhuCkq+X8c6ivrXDd6z"
                "wrLrX3vZP/3PY1yuHHcWR/hEiSlmutpzEQ5XdF+IIz+Uzpeq+gWtMMT1HwIAAA==")
GZIP_CONFIGMAP_EXAMPLE = """\
H4sIAAAAAAAAA3VQPU/EMAzd71dEnUGCAZBYYWXixILQyb24jdU0jhLfneB0/x0nLS0MbH7P78Py
eWNMQ7Z5NOHg/VVBQuJRieaVxujRPEN2LUOypks8miceY8Kc0eoYOurNC8RmckKf1fj+UVGWzynH
QhpmAY34xaGybeJTxjQt0JJAW+WSDlg5Rxa1QRL7ktqBz9OiTxDdltkLRV3cVjJCQP+rvVQpOuus
qFxeSgOfru9d7SwanrlG8WWxRdoPethiLtyOoxCHtUD5hJ0+wu0oCKYjzO1rFOr7QCj0a5SnLH9V
EAIL/GT/K5u7yr13efpZ3jsc4Q1TVnP5w0OljwtxU7GnMMyXXTbf/Wift+8BAAA=
"""


def test_the_operators_own_gzipped_examples_decode() -> None:
    # Both hold an empty "Simple Dashboard": decoded, it is judged as any dashboard without panels is
    v5 = {"apiVersion": "grafana.integreatly.org/v1beta1", "kind": "GrafanaDashboard",
          "metadata": {"name": "grafanadashboard-gzipped"}, "spec": {"gzipJson": GZIP_EXAMPLE}}
    v4 = _v1alpha1("grafana-dashboard-from-compressed-config-map",
                   {"json": "", "gzipConfigMapRef": {"name": "simple-dashboard-from-compressed-cm", "key": "foo"}})
    configmap = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "simple-dashboard-from-compressed-cm"},
                 "binaryData": {"foo": GZIP_CONFIGMAP_EXAMPLE}}
    assert json.loads(operator_source(v5, "f.yaml", [], from_files=True).text)["title"] == "Simple Dashboard-gzipped"
    assert json.loads(operator_source(v4, "f.yaml", [("f.yaml", configmap)], from_files=True).text)["title"] == \
        "Simple Dashboard from Compressed Config Map"


def _v1beta1(spec: dict[str, Any], status: dict[str, Any] | None = None, name: str = "grafanadashboard-from-url"
             ) -> dict[str, Any]:
    return {"apiVersion": "grafana.integreatly.org/v1beta1", "kind": "GrafanaDashboard",
            "metadata": {"name": name, "namespace": "monitoring"},
            "spec": {"instanceSelector": {"matchLabels": {"dashboards": "grafana"}}, **spec}, **(
                {"status": status} if status else {})}


EXAMPLE_URL = ("https://raw.githubusercontent.com/grafana-operator/grafana-operator/master/examples/"
               "dashboard_from_url/dashboard.json")


def test_a_url_or_grafana_com_dashboard_is_read_from_the_copy_the_operator_fetched(tmp_path: Path) -> None:
    # kubectl get grafanadashboard -o yaml shows status.contentCache: the model the operator fetched from
    # status.contentUrl, gzipped (controllers/content/fetchers/url_fetcher.go), as it gave it to Grafana
    com_url = "https://grafana.com/api/dashboards/1860/revisions/30/download"
    resources = [
        _v1beta1({"url": EXAMPLE_URL}, {"contentCache": _gzipped(VLLM_MODEL), "contentUrl": EXAMPLE_URL,
                                        "contentTimestamp": "2025-01-01T00:00:00Z"}),
        _v1beta1({"grafanaCom": {"id": 1860}}, {"contentCache": _gzipped(VLLM_MODEL), "contentUrl": com_url},
                 name="node-exporter-latest"),
    ]
    (tmp_path / "fetched.json").write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": resources}))
    found = grafana_load((tmp_path,))
    assert [d.name for d in found] == ["grafanadashboard-from-url", "node-exporter-latest"]
    assert found[0].where.endswith(f"(GrafanaDashboard monitoring/grafanadashboard-from-url, the copy the operator "
                                   f"fetched from {EXAMPLE_URL})")
    assert found[1].where.endswith(f"the copy the operator fetched from {com_url})")


def _one_error(tmp_path: Path, documents: list[dict[str, Any]]) -> str:
    import yaml

    (tmp_path / "crs.yaml").write_text(yaml.safe_dump_all(documents))
    with pytest.raises(DashboardError) as raised:
        grafana_load((tmp_path,))
    return " ".join(str(raised.value).split())


@pytest.mark.parametrize(("spec", "status", "expected"), [
    # examples/dashboard/url/resources.yaml: no copy fetched yet, or one of another URL (the spec changed since)
    ({"url": EXAMPLE_URL}, None,
     f"GrafanaDashboard monitoring/grafanadashboard-from-url) takes its model from {EXAMPLE_URL} (spec.url), which "
     f"this run does not download, and holds no copy the operator fetched (status.contentCache): download it (curl "
     f"-fsSL -o grafanadashboard-from-url.json '{EXAMPLE_URL}') and pass that file to --grafana-dashboard, or pass "
     f"the GrafanaDashboard as the cluster holds it (kubectl get grafanadashboard grafanadashboard-from-url -n "
     f"monitoring -o yaml), whose status keeps the operator's copy."),
    ({"url": EXAMPLE_URL}, {"contentCache": "H4sI", "contentUrl": "https://example.com/other.json"},
     "takes its model from https://raw.githubusercontent.com/"),
    # examples/dashboard_from_grafana_com/resources.yaml
    ({"grafanaCom": {"id": 7645, "revision": 161}}, None,
     "takes its model from https://grafana.com/api/dashboards/7645/revisions/161/download (spec.grafanaCom)"),
    ({"grafanaCom": {"id": 1860}}, None,
     "takes its model from https://grafana.com/api/dashboards/1860/revisions/latest/download (spec.grafanaCom)"),
    # examples/dashboard/_index.md, "Jsonnet" and "OCI"
    ({"jsonnet": "local grafana = import 'grafonnet/grafana.libsonnet';"}, None,
     "takes the model the operator evaluates from spec.jsonnet, which this run does not build: build or fetch the "
     "dashboard JSON and pass that file to --grafana-dashboard."),
    ({"oci": {"reference": "ghcr.io/team-a/dashboards:v1.4.7", "path": "board.json"}}, None,
     "pulls from the OCI artifact ghcr.io/team-a/dashboards:v1.4.7"),
    # examples/dashboard/_index.md, "ConfigMap", without the ConfigMap's file
    ({"configMapRef": {"name": "dashboard-definition", "key": "json"}}, None,
     "takes its model from key json of ConfigMap dashboard-definition, which none of the files given holds: pass "
     "that ConfigMap's file to --grafana-dashboard as well (kubectl get configmap dashboard-definition -n monitoring "
     "-o yaml), or run with --vllm-namespace (and --grafana-namespace) so the suite reads both from the cluster."),
    ({"json": json.dumps(VLLM_MODEL), "url": EXAMPLE_URL}, None,
     "sets more than one source of its model (json, url): the operator refuses it (\"more than one source types "
     "found\"), so Grafana does not show it. Keep one of them."),
    ({}, None, "sets no source of its model (spec.json, gzipJson, configMapRef, url, grafanaCom, jsonnet)"),
    ({"gzipJson": "not base64!"}, None,
     "GrafanaDashboard monitoring/grafanadashboard-from-url): spec.gzipJson is not base64 of gzipped JSON"),
    ({"json": "{\"title\": \"x\", \"panels\": [}"}, None, "the model is not valid JSON"),
])
def test_a_grafana_dashboard_that_cannot_be_read_here_names_itself_and_what_to_pass(
    tmp_path: Path, spec: dict[str, Any], status: dict[str, Any] | None, expected: str
) -> None:
    message = _one_error(tmp_path, [_v1beta1(spec, status)])
    assert message.startswith(f"dashboard {tmp_path / 'crs.yaml'} (GrafanaDashboard monitoring/"
                              f"grafanadashboard-from-url)"), message
    assert expected in message, message


def test_a_configmap_key_that_is_not_there_is_named(tmp_path: Path) -> None:
    configmap = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dashboard-definition"},
                 "data": {"dashboard.json": "{}"}}
    message = _one_error(tmp_path, [_v1beta1({"configMapRef": {"name": "dashboard-definition", "key": "json"}}),
                                    configmap])
    assert "takes its model from key json of ConfigMap dashboard-definition, which has no such key (keys: " \
           "dashboard.json); the operator cannot load it either. Fix spec.configMapRef.key." in message


def test_other_kubernetes_objects_beside_the_dashboards_are_skipped(tmp_path: Path) -> None:
    # grafana/grafana-operator examples/dashboard-from-configmap/resources.yml: RBAC, a provisioning ConfigMap, the
    # sidecar's dashboard ConfigMap and the Grafana instance in one file (the dashboard a vLLM one here)
    import yaml

    documents = [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "sidecar-role"},
         "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "watch", "list"]}]},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "provisioning-config"},
         "data": {"provisioning.yaml": "apiVersion: 1\nproviders: []\n"}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "sample-configmap",
                                                               "labels": {"dashboard": "true"}},
         "data": {"dashboard.json": json.dumps(VLLM_MODEL)}},
        {"apiVersion": "grafana.integreatly.org/v1beta1", "kind": "Grafana", "metadata": {"name": "grafana"}},
    ]
    (tmp_path / "resources.yml").write_text(yaml.safe_dump_all(documents))
    assert [p.id for p in load_dashboards((tmp_path,))] == ["dashboard::Running"]
    # the same file without its dashboard: nothing to check, said once
    (tmp_path / "resources.yml").write_text(yaml.safe_dump_all([documents[0], documents[3]]))
    with pytest.raises(DashboardError, match=r"holds no dashboard: its Kubernetes objects are of kind ClusterRole, "
                                             r"Grafana\. Pass the dashboard JSON"):
        load_dashboards((tmp_path,))


def test_a_grafana_dashboard_that_cannot_be_read_is_one_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", crs=yaml_dump([_v1beta1({"grafanaCom": {"id": 1860}}, name="node-exporter-latest")]))
    result = pytester.runpytest("-p", "no:cacheprovider", "--grafana-dashboard=crs.yaml", "--vllm-sim=x86_64")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: dashboard crs.yaml (GrafanaDashboard monitoring/node-exporter-latest) takes "
                                 "its model from https://grafana.com/api/dashboards/1860/revisions/latest/download*"])
    assert len([line for line in result.stderr.lines if line.strip()]) == 1  # one paragraph, no traceback


def yaml_dump(documents: list[dict[str, Any]]) -> str:
    import yaml

    return yaml.safe_dump_all(documents)


def test_panels_of_grafana_dashboards_are_judged_and_drawn_like_any_dashboards(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("-p", "no:cacheprovider", f"--grafana-dashboard={OPERATOR}", "--vllm-sim=x86_64",
                                "-k", "test_panel", "--vllm-report=report.json", "--html=report.html",
                                "--self-contained-html")
    rows = {row["id"].split("[", 1)[1].rstrip("]"): row
            for row in json.loads((pytester.path / "report.json").read_text())["tests"] if "test_panel[" in row["id"]}
    assert len(rows) == sum(len(titles) for titles in _ids(load_dashboards((OPERATOR,))).values()) == 21
    # the verdicts the same dashboards get as files (tests/test_dashboards.py)
    preemptions = rows["vllm-failure-saturation::Request Preemptions"]
    assert preemptions["outcome"] == "failed"
    assert "queries vllm:num_preemptions, which no server exposes: the counter is vllm:num_preemptions_total" in \
        preemptions["reason"]
    # its saved $namespace is a scrape label the simulator's series cannot carry: not judged, so not "ok"
    assert rows["vllm-performance-gzipped::KV Cache Hit Rate"]["outcome"] == "inconclusive"
    assert rows["vllm-performance-gzipped::Request Queue Status"]["outcome"] == "inconclusive"
    assert rows["vllm-performance-gzipped::EPP Pool Health & Load"]["outcome"] == "skipped"
    old = rows["vllm-performance-old-from-configmap::KV Cache Hit Rate"]
    assert old["outcome"] == "failed" and "by label kubernetes_namespace, which no series carries" in old["reason"]
    html = (pytester.path / "report.html").read_text()
    for name in OPERATOR_PANELS:
        assert f'data-dashboard="{name}"' in html
    assert "Traceback" not in result.stdout.str()


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


def test_pre_5_rows_are_placed_as_grafanas_migration_to_the_grid_places_them() -> None:
    # Grafana's schema-16 migration (DashboardMigrator): a panel's span of 12 is 2 columns each of the grid's 24;
    # a height in pixels ("250px" or 250) is ceil(px / 38) grid units (30 px a unit plus an 8 px margin);
    # a row without a height is Grafana's default 250 px
    old = {"rows": [
        {"title": "Queue", "height": "250px",
         "panels": [{"title": "A", "span": 6}, {"title": "B", "span": 6}, {"title": "C", "span": 12}]},
        {"title": "Cache", "height": 300, "panels": [{"title": "D", "span": 4, "height": "150px"}, {"title": "E"}]},
        {"title": "Hidden", "showTitle": False, "panels": [{"title": "F", "span": 12, "height": ""}]},
        {"title": "Tiny", "height": "20px", "panels": [{"title": "G", "span": 12}]},
    ]}
    assert [(p.panel["title"], p.row, p.grid) for p in walk_panels(old)] == [
        ("A", "Queue", (0, 0, 12, 7)), ("B", "Queue", (12, 0, 12, 7)), ("C", "Queue", (0, 7, 24, 7)),
        ("D", "Cache", (0, 14, 8, 4)), ("E", "Cache", (0, 18, 24, 8)),
        ("F", "", (0, 26, 24, 7)), ("G", "Tiny", (0, 33, 24, 1))]


def test_a_configmap_labelled_for_the_sidecar_without_a_json_key_is_named_beside_good_ones(tmp_path: Path) -> None:
    # kube-prometheus-stack's Grafana sidecar loads ConfigMaps labelled grafana_dashboard: "1" (its default
    # sidecar.dashboards.label), each data key ending in .json: a key named .yaml loads nothing
    good = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "good"},
            "data": {"vllm.json": json.dumps(VLLM_MODEL)}}
    wrong = {"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": "wrong", "labels": {"grafana_dashboard": "1"}},
             "data": {"vllm.yaml": json.dumps(VLLM_MODEL)}}
    (tmp_path / "cms.yaml").write_text(yaml.safe_dump_all([good, wrong]))
    with pytest.raises(DashboardError, match=r"ConfigMap wrong has no data key ending in \.json \(keys: vllm\.yaml\)"):
        load_dashboards((tmp_path,))
    # without the label it is some other ConfigMap beside the dashboard: left alone
    del wrong["metadata"]["labels"]
    (tmp_path / "cms.yaml").write_text(yaml.safe_dump_all([good, wrong]))
    assert [p.id for p in load_dashboards((tmp_path,))] == ["vllm::Running"]


@pytest.mark.parametrize(("name", "content", "message"), [
    ("latin1.json", b'{"title": "caf\xe9"}', "dashboard {file} cannot be read ('utf-8' codec can't decode byte 0xe9 in "
                                             "position 14: invalid continuation byte); check --grafana-dashboard."),
    ("broken.json", b'{"title": ', "dashboard {file} is not valid JSON (Expecting value: line 1 column 11 (char 10)); "
                                   "export it again from Grafana (Share > Export > Save to file) and pass that file to "
                                   "--grafana-dashboard."),
    ("broken.yaml", b"data: [unclosed\n",
     "dashboard {file} is not valid YAML (*); pass the ConfigMap as kubectl prints it (kubectl get configmap NAME -o "
     "yaml) or the dashboard JSON itself."),
    ("empty.yaml", b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: empty}\n",
     "dashboard {file}: ConfigMap empty has no data key ending in .json (keys: none); Grafana's dashboard sidecar "
     "loads each such key as one dashboard. Name the key after the dashboard, e.g. vllm.json."),
    ("two.yaml", b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: two}\ndata: {a.yaml: x, b.txt: y}\n",
     "dashboard {file}: ConfigMap two has no data key ending in .json (keys: a.yaml, b.txt); *"),
])
def test_a_dashboard_file_that_cannot_be_used_is_one_message_naming_it(tmp_path: Path, name: str, content: bytes,
                                                                        message: str) -> None:
    file = tmp_path / name
    file.write_bytes(content)
    with pytest.raises(DashboardError) as raised:
        load_dashboards((file,))
    assert fnmatch.fnmatchcase(str(raised.value), message.format(file=file)), str(raised.value)


@pytest.mark.parametrize(("spec", "namespace", "expected"), [
    # the operator's GrafanaDashboard spec (api/v1beta1/content.go): sources this run neither builds nor fetches
    ({"jsonnetLib": {"jsonnetProjectWithRuntimeRaw": "x"}}, "monitoring",
     "takes the model the operator builds from the Jsonnet project of spec.jsonnetLib, which this run does not "
     "build: build or fetch the dashboard JSON and pass that file to --grafana-dashboard."),
    ({"oci": {"path": "board.json"}}, "monitoring",
     "takes the model the operator pulls from the OCI artifact ?, which this run does not build"),
    ({"grafanaCom": {"revision": 3}}, "monitoring",
     "takes its model from https://grafana.com/api/dashboards/?/revisions/3/download (spec.grafanaCom), which this "
     "run does not download, and holds no copy the operator fetched (status.contentCache): download it (curl -fsSL -o "
     "grafanadashboard-from-url.json 'https://grafana.com/api/dashboards/?/revisions/3/download') and pass that file "
     "to --grafana-dashboard, or pass the GrafanaDashboard as the cluster holds it (kubectl get grafanadashboard "
     "grafanadashboard-from-url -n monitoring -o yaml), whose status keeps the operator's copy."),
    ({"grafanaCom": {"id": 1860}}, None, "(kubectl get grafanadashboard grafanadashboard-from-url -o yaml), whose"),
    ({"configMapRef": {"optional": False}}, "monitoring",
     "takes its model from key ? of ConfigMap ?, which none of the files given holds: pass that ConfigMap's file to "
     "--grafana-dashboard as well (kubectl get configmap ? -n monitoring -o yaml), or run with"),
    ({"configMapRef": {"name": "cm", "key": "json"}}, None, "as well (kubectl get configmap cm -o yaml), or run with"),
])
def test_a_grafana_dashboard_source_named_in_words_with_its_namespace_if_any(
        tmp_path: Path, spec: dict[str, Any], namespace: str | None, expected: str) -> None:
    resource = _v1beta1(spec)
    if namespace is None:
        del resource["metadata"]["namespace"]
    message = _one_error(tmp_path, [resource])
    shown = f"monitoring/{resource['metadata']['name']}" if namespace else resource["metadata"]["name"]
    assert message.startswith(f"dashboard {tmp_path / 'crs.yaml'} (GrafanaDashboard {shown}) "), message
    assert expected in message, message


def test_a_configmap_key_that_is_not_there_names_the_binary_keys_too(tmp_path: Path) -> None:
    configmap = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "namespace": "monitoring"},
                 "data": {"a.json": "{}"}, "binaryData": {"b.json.gz": "H4sI"}}
    message = _one_error(tmp_path, [_v1beta1({"configMapRef": {"name": "cm", "key": "json"}}), configmap])
    assert "which has no such key (keys: a.json, b.json.gz); the operator cannot load it either. Fix " \
           "spec.configMapRef.key." in message, message


def test_panels_inside_and_after_rows_are_placed_under_their_row() -> None:
    # Grafana 5+: a collapsed row holds its panels; an expanded row's panels follow it; an untitled row's have none
    model = {"panels": [
        "not a panel",
        {"type": "row", "title": "Cache", "collapsed": True, "gridPos": {"x": 0, "y": 0, "w": 24, "h": 1},
         "panels": [{"title": "X", "gridPos": {"x": 0, "y": 1, "w": 12, "h": 8}}]},
        {"type": "row", "collapsed": False, "gridPos": {"x": 0, "y": 1, "w": 24, "h": 1}, "panels": []},
        {"title": "Y", "gridPos": {"x": 0, "y": 2, "w": 12, "h": 8}}]}
    assert [(p.panel.get("title"), p.row, p.grid) for p in walk_panels(model)] == [
        ("Cache", "", (0, 0, 24, 1)), ("X", "Cache", (0, 1, 12, 8)), (None, "Cache", (0, 1, 24, 1)),
        ("Y", "", (0, 2, 12, 8))]


@pytest.mark.parametrize(("com", "status", "used"), [
    ({"id": 1860, "revision": 30}, {"contentUrl": "https://grafana.com/api/dashboards/1860/revisions/30/download"},
     True),
    # the spec moved on to another revision, or names another dashboard: the copy is stale, not the model
    ({"id": 1860, "revision": 31}, {"contentUrl": "https://grafana.com/api/dashboards/1860/revisions/30/download"},
     False),
    ({"id": 186}, {"contentUrl": "https://grafana.com/api/dashboards/1860/revisions/30/download"}, False),
    # a copy without the URL it came from cannot be matched to the spec
    ({"id": 1860, "revision": 30}, {}, False),
])
def test_the_operators_copy_of_a_grafana_com_dashboard_is_used_only_for_the_revision_named(
        tmp_path: Path, com: dict[str, Any], status: dict[str, Any], used: bool) -> None:
    resource = _v1beta1({"grafanaCom": com}, {"contentCache": _gzipped(VLLM_MODEL), **status})
    (tmp_path / "crs.yaml").write_text(yaml.safe_dump(resource))
    if used:
        assert [d.name for d in grafana_load((tmp_path,))] == ["grafanadashboard-from-url"]
    else:
        assert "holds no copy the operator fetched (status.contentCache)" in _one_error(tmp_path, [resource])


def test_what_is_not_a_dashboard_is_named_by_what_it_holds(tmp_path: Path) -> None:
    for name, content, found in (("keys.json", {"title": "x", "uid": "u"}, "found top-level keys title, uid,"),
                                 ("empty.json", {}, "found an empty object,"), ("list.json", [1], "found a list,")):
        (tmp_path / name).write_text(json.dumps(content))
        with pytest.raises(DashboardError) as raised:
            load_dashboards((tmp_path / name,))
        assert str(raised.value) == (
            f"dashboard {tmp_path / name} has no panels: {found} expected a Grafana dashboard model (with 'panels', "
            f"or 'rows' before Grafana 5), the API's {{\"dashboard\": ...}} envelope, or a ConfigMap whose data keys "
            f"ending in .json hold dashboards. Export the dashboard from Grafana (Share > Export > Save to file) and "
            f"pass that file to --grafana-dashboard.")


def test_a_dashboard_directory_reads_its_dashboard_files_only(tmp_path: Path) -> None:
    (tmp_path / "vllm.json").write_text(json.dumps(VLLM_MODEL))
    (tmp_path / "old.json").mkdir()  # a directory named like a dashboard, and a file that is not one
    (tmp_path / "README.md").write_text("dashboards\\n")
    assert [p.id for p in load_dashboards((tmp_path,))] == ["vllm::Running"]
    (tmp_path / "vllm.json").unlink()
    with pytest.raises(DashboardError) as raised:
        load_dashboards((tmp_path,))
    assert str(raised.value) == (
        f"dashboard directory {tmp_path} holds no dashboard file (*.json, *.yaml, *.yml); export the dashboards from "
        f"Grafana (Share > Export > Save to file) into it, or pass the files themselves to --grafana-dashboard.")


def test_a_grid_position_is_kept_within_the_grid_and_at_least_one_unit() -> None:
    model = {"panels": [{"title": "dot", "gridPos": {"x": 0, "y": 0, "w": 1, "h": 1}},
                        {"title": "wide", "gridPos": {"x": -3, "y": 2, "w": 30, "h": 0}}]}
    assert [p.grid for p in walk_panels(model)] == [(0, 0, 1, 1), (0, 2, 24, 1)]


def test_a_grafana_dashboard_kind_of_another_api_group_is_not_the_operators(tmp_path: Path) -> None:
    foreign = _v1beta1({"json": json.dumps(VLLM_MODEL)})
    foreign["apiVersion"] = "dashboards.example.com/v1"
    (tmp_path / "crs.yaml").write_text(yaml.safe_dump(foreign))
    with pytest.raises(DashboardError, match=r"holds no dashboard: its Kubernetes objects are of kind "
                                             r"GrafanaDashboard\. Pass the dashboard JSON"):
        grafana_load((tmp_path,))


def test_pre_5_rows_skip_what_is_not_a_row_or_a_panel_and_round_a_height_up() -> None:
    old = {"rows": ["not a row", {"height": "350px", "panels": ["not a panel", {"title": "A", "span": 12}]},
                    {"title": "After", "height": 250, "panels": [{"title": "B", "span": 12}]}]}
    # 350 px is 9.2 units of 38 px: 10; an untitled row titles nothing
    assert [(p.panel["title"], p.row, p.grid) for p in walk_panels(old)] == [
        ("A", "", (0, 0, 24, 10)), ("B", "After", (0, 10, 24, 7))]


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
