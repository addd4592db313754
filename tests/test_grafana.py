"""Grafana's reading of a dashboard (_grafana.py): the shapes a file comes in, the Grafana Operator's resources."""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import DASHBOARDS, OPERATOR, yaml_documents
from pytest_vllm_metrics._grafana import DashboardError, operator_source, walk_panels
from pytest_vllm_metrics._grafana import load as grafana_load
from pytest_vllm_metrics.readers import load_dashboards

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
    documents = yaml_documents(OPERATOR / "vllm-dashboards.yaml")
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
    configmap, resource = yaml_documents(OPERATOR / "vllm-dashboards.yaml")[3:5]
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
