"""epp_config.py: the endpoint picker's EndpointPickerConfig, read as the EPP reads it and judged per engine.

The configurations are the real documents of tests/data/epp-config (each file's header gives its source); the
pages are real ones (tests/data/captures: vLLM 0.32; tests/data/engines: SGLang). The cluster path runs over the
API-server double with the real kubernetes client, and the suite as users run it."""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import NS, capture_text, configmap, k8s_deployment, run_kube, said, write_kubeconfig
from pytest_vllm_metrics import epp_config
from pytest_vllm_metrics.engines import Engine
from pytest_vllm_metrics.epp_config import CheckKind, EppConfig, Spec, from_deployment, from_file, judge, readers
from pytest_vllm_metrics.observe import Observation, Stage
from pytest_vllm_metrics.outcome import Level, Outcome, Problem, Verdict
from pytest_vllm_metrics.sim import SimHost
from pytest_vllm_metrics.sim.kubeapi import Cluster, KubeDouble
from pytest_vllm_metrics.snapshot import Snapshot
from pytest_vllm_metrics.targets import Target, TargetSource

DOCS = Path(__file__).parent / "data" / "epp-config"
ENGINES = Path(__file__).parent / "data" / "engines"
VLLM_PAGE = capture_text("prefix-caching-on.after")
SGLANG_PAGE = (ENGINES / "sglang-current.prom").read_text()  # sglang:page_size / sglang:num_pages, no cache_config_info
GAIE_KEY = "inference.networking.k8s.io/engine-type"
ROUTER = "ghcr.io/llm-d/llm-d-router:v0.10.0"


def pod(name: str, text: str, labels: dict[str, str] | None = None, engine: Engine = Engine.VLLM) -> Observation:
    """A Kubernetes pod's observation (its labels name its engine to the EPP) on a real page."""
    page = Snapshot.parse(text)
    target = Target(name, "http://10.0.0.1:8000", source=TargetSource.KUBERNETES, labels=labels or {}, engine=engine)
    return Observation(target, before=page, after=page)


def config_of(text: str) -> EppConfig:
    return epp_config.parse(text, "epp", "file epp.yaml")


def judged(config: EppConfig, *observations: Observation) -> Verdict:
    return judge(epp_config.EppCheck(config, CheckKind.SPECS), list(observations))


# -- the real documents, read as the EPP reads them -------------------------------------------------------------


def test_an_entry_replaces_its_engines_built_in_specs_whole() -> None:
    config = from_file(DOCS / "vllm-disable-lora.yaml")
    vllm, sglang = config.engine("vllm"), config.engine("sglang")
    assert vllm is not None and sglang is not None
    assert (vllm.origin, vllm.specs[Spec.LORA], vllm.specs[Spec.CACHE_INFO]) == (
        "engineConfigs", "", "vllm:cache_config_info")
    # an engine without an entry keeps its built-ins: the newest SGLang's gauges for the KV cache's shape
    assert (sglang.origin, sglang.specs[Spec.QUEUED], sglang.specs[Spec.BLOCK_SIZE]) == (
        "built-in", "sglang:num_queue_reqs", "sglang:page_size")
    assert (config.default_engine, config.label_key, config.problem) == ("vllm", "llm-d.ai/engine-type", "")


def test_the_documents_shapes_and_parameters() -> None:
    gaie = from_file(DOCS / "parameters-reference-gaie.yaml")  # a bare parameters block
    sglang = gaie.engine("sglang")
    assert gaie.label_key == GAIE_KEY and sglang is not None and sglang.origin == "engineConfigs"
    assert {s: t for s, t in sglang.specs.items() if t} == {
        Spec.QUEUED: "sglang:num_queue_reqs", Spec.RUNNING: "sglang:num_running_reqs",
        Spec.KV_USAGE: "sglang:token_usage"}
    chart = from_file(DOCS / "llm-d-router-chart-default-plugins-sglang.yaml")  # a whole EndpointPickerConfig
    assert (chart.default_engine, [e.origin for e in chart.engines]) == ("sglang", ["built-in"] * 4)
    admitter = from_file(DOCS / "sglang-engineconfig-pd-capacity-admitter.yaml")  # a list of plugin entries
    entry = admitter.engine("sglang")
    assert admitter.default_engine == "sglang" and entry is not None
    assert (entry.specs[Spec.CACHE_INFO], entry.specs[Spec.NUM_BLOCKS], entry.specs[Spec.LORA]) == (
        "", "sglang:num_pages", "")
    custom = from_file(DOCS / "custom-engine-readme.yaml")  # one plugin entry, an unquoted label value
    mine = custom.engine("my-custom-engine")
    assert mine is not None and mine.specs[Spec.QUEUED] == "custom_queue_size{status=waiting}"
    with pytest.raises(epp_config.ConfigError, match="is not an EndpointPickerConfig"):
        from_file(DOCS / "metrics-data-source-readme.yaml")  # the scrape's plugin alone says nothing of the specs


@pytest.mark.parametrize(("parameters", "problem"), [
    ("defaultEngine: tgi", "defaultEngine 'tgi' not found in engineConfigs or the built-in engines (vllm, sglang, "
                           "trtllm-serve, triton-tensorrt-llm)"),
    ("engineConfigs: [{queuedRequestsSpec: q}]", "engineConfigs entry 1 has no name"),
    ("engineConfigs: [{name: vllm, kvUsageSpec: 'vllm:kv{'}]", "engine vllm, kvUsageSpec: 'vllm:kv{' is not a metric "
                                                               "selector"),
    ("engineConfigs: {name: vllm}", "engineConfigs is not a list of engine entries"),
])
def test_a_configuration_the_epp_refuses_fails(parameters: str, problem: str) -> None:
    config = config_of(f"plugins:\n- type: core-metrics-extractor\n  parameters: {{{parameters}}}\n")
    assert config.problem.startswith(problem)
    verdict = judged(config, pod("decode-0", VLLM_PAGE))
    assert (verdict.outcome, verdict.level) == (Outcome.FAILED, Level.MUST)
    assert verdict.message.startswith("the endpoint picker (file epp.yaml): the endpoint picker refuses this "
                                      f"configuration: {problem}")


# -- judged per engine, on real pages ---------------------------------------------------------------------------


def test_each_engines_pods_are_read_with_that_engines_specs() -> None:
    config = from_file(DOCS / "parameters-reference-gaie.yaml")
    verdict = judged(config, pod("decode-0", VLLM_PAGE), pod("sgl-0", SGLANG_PAGE, {GAIE_KEY: "sglang"}))
    assert verdict.outcome == Outcome.PASSED, verdict.message
    assert verdict.evidence["engines"]["sglang"]["pods"] == ["sgl-0"]
    assert verdict.evidence["engines"]["vllm"]["origin"] == "engineConfigs"
    # the engines no pod runs are said, not judged
    assert verdict.evidence["notJudged"] == {"trtllm-serve": "no pod of this run runs this engine",
                                             "triton-tensorrt-llm": "no pod of this run runs this engine"}


def test_unlabelled_vllm_pods_under_an_sglang_default_engine_fail() -> None:
    # the chart's config for modelServers.type sglang, on a pool whose unlabelled pods run vLLM
    config = from_file(DOCS / "llm-d-router-chart-default-plugins-sglang.yaml")
    verdict = judged(config, pod("decode-0", VLLM_PAGE))
    assert (verdict.outcome, verdict.level) == (Outcome.FAILED, Level.MUST)
    assert "decode-0 (sglang, as its defaultEngine: it has no llm-d.ai/engine-type label): sglang:num_queue_reqs " \
           "is not on its page; sglang:num_running_reqs is not on its page; " in verdict.message
    assert verdict.message.endswith("The endpoint picker's reading of those pods fails (its extract-error counter "
                                    "rises), so its scorers lack these values.")
    # labelled, the same pod is read as vLLM
    assert judged(config, pod("decode-0", VLLM_PAGE, {"llm-d.ai/engine-type": "vllm"})).outcome == Outcome.PASSED


FULL_VLLM = {"queuedRequestsSpec": "vllm:num_requests_waiting", "runningRequestsSpec": "vllm:num_requests_running",
             "kvUsageSpec": "vllm:kv_cache_usage_perc"}


@pytest.mark.parametrize(("changes", "off"), [
    ({"kvUsageSpec": ""}, "kvUsageSpec is"),  # turned off
    ({"kvUsageSpec": None}, "kvUsageSpec is"),  # left out of the entry: not read either
    ({"queuedRequestsSpec": "", "kvUsageSpec": ""}, "queuedRequestsSpec, kvUsageSpec are"),
])
def test_a_required_spec_turned_off_fails(changes: dict[str, str | None], off: str) -> None:
    entry = {"name": "vllm", **{k: v for k, v in {**FULL_VLLM, **changes}.items() if v is not None}}
    config = config_of(yaml.safe_dump({"parameters": {"engineConfigs": [entry]}}))
    verdict = judged(config, pod("decode-0", VLLM_PAGE))
    assert (verdict.outcome, verdict.level) == (Outcome.FAILED, Level.MUST)
    assert f"for vllm (engineConfigs) {off} \"\" or left out, so it reads nothing there and schedules blind on " \
           in verdict.message
    # one below: the full entry passes
    full = config_of(yaml.safe_dump({"parameters": {"engineConfigs": [{"name": "vllm", **FULL_VLLM}]}}))
    assert judged(full, pod("decode-0", VLLM_PAGE)).outcome == Outcome.PASSED


def test_the_full_vllm_entry_with_lora_off_passes() -> None:
    assert judged(from_file(DOCS / "vllm-disable-lora.yaml"), pod("decode-0", VLLM_PAGE)).outcome == Outcome.PASSED


def test_an_untyped_gauge_reads_zero_and_fails() -> None:
    untyped = VLLM_PAGE.replace("# TYPE vllm:num_requests_waiting gauge\n", "")
    verdict = judged(config_of(""), pod("decode-0", untyped))
    assert verdict.outcome == Outcome.FAILED
    assert "decode-0 (vllm, as its defaultEngine: it has no llm-d.ai/engine-type label): " \
           "vllm:num_requests_waiting is untyped, which the endpoint picker reads as 0" \
           in verdict.message


def test_a_label_matcher_no_series_matches_fails() -> None:
    config = config_of("parameters:\n  engineConfigs:\n  - name: vllm\n    queuedRequestsSpec: "
                       "vllm:num_requests_waiting{engine=7}\n    runningRequestsSpec: vllm:num_requests_running\n"
                       "    kvUsageSpec: vllm:kv_cache_usage_perc\n")
    verdict = judged(config, pod("decode-0", VLLM_PAGE))
    assert "no series of vllm:num_requests_waiting matches vllm:num_requests_waiting{engine=7}" in verdict.message


# An SGLang entry in the form of an older llm-d-router's built-in (factories.go, engines-facts §4 form A): the KV
# cache's shape from the info gauge's page_size / num_pages labels.
OLD_SGLANG = """parameters:
  defaultEngine: sglang
  engineConfigs:
  - name: sglang
    queuedRequestsSpec: sglang:num_queue_reqs
    runningRequestsSpec: sglang:num_running_reqs
    kvUsageSpec: sglang:token_usage
    cacheInfoSpec: sglang:cache_config_info
    cacheBlockSizeLabelName: page_size
    cacheNumBlocksLabelName: num_pages
"""


def test_the_info_gauge_newer_sglang_no_longer_serves_is_flagged_with_the_fix() -> None:
    verdict = judged(config_of(OLD_SGLANG), pod("sgl-0", SGLANG_PAGE))
    assert (verdict.outcome, verdict.level) == (Outcome.FAILED, Level.SHOULD)
    assert verdict.message == (
        "the endpoint picker (file epp.yaml): sgl-0 (sglang, as its defaultEngine: it has no llm-d.ai/engine-type "
        "label): sglang:cache_config_info is not on its page, which "
        "serves the KV cache's shape as the gauges sglang:page_size and sglang:num_pages (newer SGLang) instead: "
        "restate the sglang entry with cacheInfoSpec: \"\", cacheBlockSizeSpec: sglang:page_size and "
        "cacheNumBlocksSpec: sglang:num_pages (a newer llm-d-router reads those by default).")
    # the entry that reads the gauges passes on the same page
    admitter = from_file(DOCS / "sglang-engineconfig-pd-capacity-admitter.yaml")
    assert judged(admitter, pod("sgl-0", SGLANG_PAGE)).outcome == Outcome.PASSED


def test_the_info_gauge_of_an_older_sglang_is_read_by_its_labels() -> None:
    older = (ENGINES / "sglang-before-0.5.12.prom").read_text()  # the info gauge, no plain gauges
    required = "\n".join(line for line in SGLANG_PAGE.splitlines() if "page_size" not in line
                         and "num_pages" not in line)
    assert judged(config_of(OLD_SGLANG), pod("sgl-0", older + required)).outcome == Outcome.PASSED
    bad = older.replace('page_size="1"', 'page_size="one"')
    verdict = judged(config_of(OLD_SGLANG), pod("sgl-0", bad + required))
    assert verdict.level == Level.SHOULD and "has no whole-number label page_size" in verdict.message


def test_pods_of_an_engine_the_suite_cannot_read_are_inconclusive() -> None:
    custom = from_file(DOCS / "custom-engine-readme.yaml")
    labels = {"llm-d.ai/engine-type": "my-custom-engine"}
    target = Target("custom-0", "", source=TargetSource.KUBERNETES, labels=labels,
                    unavailable="custom-0: the pod label llm-d.ai/engine-type is 'my-custom-engine', which names no "
                                "model server this suite knows")
    verdict = judged(custom, Observation(target), pod("decode-0", VLLM_PAGE))
    assert verdict.outcome == Outcome.INCONCLUSIVE
    assert "custom-0 (my-custom-engine): custom-0: the pod label llm-d.ai/engine-type" in verdict.message


# -- from the EPP's Deployment: --config-text, --config-file through its ConfigMap, the old flags --------------


def istio() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    documents = [d for d in yaml.safe_load_all((DOCS / "epp-deployment-configmap.yaml").read_text()) if d]
    deployment = next(d for d in documents if d["kind"] == "Deployment")
    return deployment, [d for d in documents if d["kind"] == "ConfigMap"]


def test_the_config_file_is_read_from_the_configmap_mounted_at_its_path() -> None:
    deployment, configmaps = istio()
    config = from_deployment(deployment, configmaps)
    assert config.where == ("Deployment inference-model-server/inference-endpoint-picker, ConfigMap "
                            "inference-model-server/plugins-config, key default-plugins.yaml")
    assert (config.unread, config.problem, config.default_engine) == ("", "", "vllm")  # no extractor: built-ins
    assert from_file(DOCS / "epp-deployment-configmap.yaml").where == config.where  # the same, as a file
    missing = from_deployment(deployment, [])
    assert missing.unread.startswith("ConfigMap inference-model-server/plugins-config is not among the ConfigMaps "
                                     "this run could list")
    assert judged(missing).outcome == Outcome.INCONCLUSIVE


def test_subpath_and_items_mounts_and_inline_text() -> None:
    deployment, configmaps = istio()
    spec = deployment["spec"]["template"]["spec"]
    spec["containers"][0]["volumeMounts"] = [{"name": "plugins-config-volume", "mountPath": "/etc/epp/epp.yaml",
                                              "subPath": "default-plugins.yaml"}]
    spec["containers"][0]["args"][-1] = "/etc/epp/epp.yaml"
    assert from_deployment(deployment, configmaps).where.endswith("key default-plugins.yaml")
    spec["containers"][0]["volumeMounts"] = [{"name": "plugins-config-volume", "mountPath": "/etc/epp"}]
    spec["volumes"][0]["configMap"]["items"] = [{"key": "default-plugins.yaml", "path": "epp.yaml"}]
    assert from_deployment(deployment, configmaps).where.endswith("key default-plugins.yaml")
    spec["containers"][0]["args"][-2:] = ["--config-text", (DOCS / "vllm-disable-lora.yaml").read_text()]
    inline = from_deployment(deployment, configmaps)
    assert inline.where.endswith("--config-text") and inline.engine("vllm").origin == "engineConfigs"  # type: ignore[union-attr]


@pytest.mark.parametrize(("image", "refused"), [
    (ROUTER, True), ("ghcr.io/llm-d/llm-d-inference-scheduler:v0.7.0", True),
    ("ghcr.io/llm-d/llm-d-inference-scheduler:v0.6.9", False), ("ghcr.io/llm-d/llm-d-inference-scheduler:latest", True),
    ("registry.k8s.io/gateway-api-inference-extension/epp:v1.0.1", False),
])
def test_an_epp_that_refuses_the_old_flags_fails_once(image: str, refused: bool) -> None:
    deployment = k8s_deployment("router-epp", image, ["--pool-name", "p", "--kv-cache-usage-percentage-metric",
                                                      "vllm:gpu_cache_usage_perc"], {"app": "router"})
    found = readers(from_deployment(deployment, []))
    assert [r.title for r in found] == ["engineConfigs", "metric flags"][:2 if refused else 1]
    if refused:
        # it never starts, so the flags never count over its built-in vLLM specs
        assert found[0].epp is not None and found[0].epp.config.engines[0].origin == "built-in"
        verdict = judge(found[1].epp, [])  # type: ignore[arg-type]
        assert verdict.message == (
            f"the endpoint picker (Deployment {NS}/router-epp (no --config-file or --config-text: the built-in specs)) "
            f"runs {image}, which refuses to start with --kv-cache-usage-percentage-metric: \"flag "
            f"'kv-cache-usage-percentage-metric' is deprecated and cannot be used; configure metrics via "
            f"engineConfigs\". Remove the flags and restate their specs in the core-metrics-extractor plugin's "
            f"engineConfigs.")
    else:  # an older EPP reads its vLLM specs from the flags
        verdict = judge(found[0].epp, [pod("decode-0", VLLM_PAGE)])  # type: ignore[arg-type]
        assert "decode-0 (vllm, as its defaultEngine: it has no llm-d.ai/engine-type label): " \
               "vllm:gpu_cache_usage_perc is not on its page." in verdict.message


# -- as users run it: over the Kubernetes API double, and with --vllm-epp-config -----------------------------


def test_the_cluster_epps_are_judged_from_their_configmaps(pytester: pytest.Pytester, cluster: Cluster,
                                                          sim_host: SimHost) -> None:
    chart = (DOCS / "llm-d-router-chart-default-plugins-sglang.yaml").read_text()
    router = k8s_deployment("sglang-router-epp", ROUTER, ["--pool-name", "p", "--config-file",
                                                          "/config/default-plugins.yaml"], {"app": "router"})
    spec = router["spec"]["template"]["spec"]
    spec["containers"][0]["volumeMounts"] = [{"name": "plugins-config-volume", "mountPath": "/config"}]
    spec["volumes"] = [{"name": "plugins-config-volume", "configMap": {"name": "sglang-router-epp"}}]
    flags = k8s_deployment("flags-epp", ROUTER, ["--pool-name", "p", "--total-queued-requests-metric",
                                                 "vllm:num_requests_waiting"], {"app": "flags"})
    cluster.objects = {"deployments": {NS: [router, flags]},
                       "configmaps": {NS: [configmap("sglang-router-epp", NS, {"default-plugins.yaml": chart})]}}
    kubeconfig = write_kubeconfig(pytester.path / "kubeconfig", KubeDouble(sim_host, cluster), "admin")
    result = run_kube(pytester, kubeconfig, "-k", "test_consumer")
    rows = {row["id"].split("[", 1)[1].rstrip("]"): row
            for row in json.loads((pytester.path / "report.json").read_text())["tests"]}
    assert {test: row["outcome"] for test, row in rows.items()} == {
        "epp:sglang-router-epp::engineConfigs": "failed", "epp:flags-epp::engineConfigs": "passed",
        "epp:flags-epp::metric flags": "failed"}
    # both pods have the same problems: named together
    assert said(result, "decode-amd64, decode-arm64 (sglang, as its defaultEngine: it has no llm-d.ai/engine-type "
                        "label): sglang:num_queue_reqs is not on its page")
    assert rows["epp:sglang-router-epp::engineConfigs"]["evidence"]["panel_verdict"] == "no data"
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_a_configuration_file_is_judged_without_a_cluster(pytester: pytest.Pytester, tmp_path: Path) -> None:
    result = pytester.runpytest("-p", "no:cacheprovider", "--vllm-sim",
                                f"--vllm-epp-config={DOCS / 'vllm-disable-lora.yaml'}", "-k", "test_consumer",
                                "--vllm-report=report.json")
    (row,) = json.loads((pytester.path / "report.json").read_text())["tests"]
    assert (row["id"].split("[")[1], row["outcome"]) == ("epp:vllm-disable-lora::engineConfigs]", "passed")
    assert result.ret == pytest.ExitCode.OK
    wrong = tmp_path / "source.yaml"
    wrong.write_text((DOCS / "metrics-data-source-readme.yaml").read_text())
    refused = pytester.runpytest("-p", "no:cacheprovider", "--vllm-sim", f"--vllm-epp-config={wrong}")
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    assert said(refused, f"--vllm-epp-config {wrong} is not an EndpointPickerConfig")



@pytest.mark.parametrize(("image", "old"), [
    ("ghcr.io/llm-d/llm-d-router:v0.10.0", True), ("ghcr.io/llm-d/llm-d-router:v0.11.0", False),
    ("ghcr.io/llm-d/llm-d-router:latest", False), ("ghcr.io/llm-d/llm-d-inference-scheduler:v0.7.1", True),
    ("registry.k8s.io/gateway-api-inference-extension/epp:v1.0.1", True),
])
def test_the_built_in_sglang_entry_of_an_older_epp_reads_the_info_gauge(image: str, old: bool) -> None:
    config = from_deployment(k8s_deployment("epp", image, ["--pool-name", "p"], {"app": "epp"}), [])
    verdict = judged(config, pod("sgl-0", SGLANG_PAGE, {"llm-d.ai/engine-type": "sglang"}))
    assert verdict.outcome == (Outcome.FAILED if old else Outcome.PASSED)
    assert ("sgl-0 (sglang): sglang:cache_config_info is not on its page, which serves the KV cache's shape as the "
            "gauges sglang:page_size and sglang:num_pages" in verdict.message) is old


# -- why the run could not read a --config-file, each cause in full -----------------------------------------------

WHERE_ISTIO = "Deployment inference-model-server/inference-endpoint-picker"


def _unread(deployment: dict[str, Any], configmaps: list[dict[str, Any]]) -> str:
    config = from_deployment(deployment, configmaps)
    assert judged(config) == Verdict(
        Outcome.INCONCLUSIVE, f"the endpoint picker ({config.where}): its configuration could not be read: "
                              f"{config.unread}.", Level.MUST,
        {"panel_verdict": "inconclusive", "exprs": []}, target="inference-endpoint-picker")
    return config.unread


def test_a_config_file_on_a_volume_that_is_not_a_configmap_cannot_be_read() -> None:
    deployment, configmaps = istio()
    deployment["spec"]["template"]["spec"]["volumes"] = [{"name": "plugins-config-volume", "emptyDir": {}}]
    assert _unread(deployment, configmaps) == (
        "/config/default-plugins.yaml is on volume plugins-config-volume, which is not a ConfigMap; pass the "
        "configuration with --vllm-epp-config=FILE to check it")


def test_a_config_file_no_mount_holds_cannot_be_read() -> None:
    deployment, configmaps = istio()
    deployment["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] = [
        {"name": "plugins-config-volume", "mountPath": "/conf"}]  # /config is not under /conf
    assert _unread(deployment, configmaps) == (
        "no volumeMount of the container holds /config/default-plugins.yaml; pass the configuration with "
        "--vllm-epp-config=FILE to check it")


@pytest.mark.parametrize(("data", "keys"), [({"other.yaml": "x", "a.yaml": "y"}, "a.yaml, other.yaml"), ({}, "none")])
def test_a_configmap_without_the_key_names_the_keys_it_has(data: dict[str, str], keys: str) -> None:
    deployment, configmaps = istio()
    configmaps[0]["data"] = data
    assert _unread(deployment, configmaps) == (
        f"ConfigMap inference-model-server/plugins-config, key default-plugins.yaml does not exist (its keys: {keys})")


def test_a_configmap_of_the_same_name_in_another_namespace_is_not_the_one_mounted() -> None:
    deployment, configmaps = istio()
    configmaps[0]["metadata"]["namespace"] = "elsewhere"
    assert _unread(deployment, configmaps) == (
        "ConfigMap inference-model-server/plugins-config is not among the ConfigMaps this run could list in namespace "
        "inference-model-server; grant list on configmaps there, or pass the configuration with "
        "--vllm-epp-config=FILE")
    del configmaps[0]["metadata"]["namespace"]  # a ConfigMap written without its namespace: the Deployment's
    assert from_deployment(deployment, configmaps).unread == ""


def test_the_deepest_mount_holding_the_path_is_the_one_read() -> None:
    deployment, configmaps = istio()
    spec = deployment["spec"]["template"]["spec"]
    spec["containers"][0]["volumeMounts"] = [{"name": "scratch", "mountPath": "/"},
                                             {"name": "plugins-config-volume", "mountPath": "/config/"},
                                             {"name": "scratch", "mountPath": "/conf"}]
    spec["volumes"].append({"name": "scratch", "emptyDir": {}})
    config = from_deployment(deployment, configmaps)
    assert (config.unread, config.where) == ("", f"{WHERE_ISTIO}, ConfigMap inference-model-server/plugins-config, "
                                                 f"key default-plugins.yaml")


def test_a_configuration_that_is_not_yaml_is_refused_and_keeps_its_flags() -> None:
    flags = {"--kv-cache-usage-percentage-metric": "vllm:kv_cache_usage_perc"}
    config = epp_config.parse("plugins: [", "epp", "file epp.yaml", flags=flags, refuses_flags="", old=False)
    assert (config.name, config.where, config.flags, config.engines) == ("epp", "file epp.yaml", flags, ())
    assert config.problem == ("not valid YAML (while parsing a flow node expected the node content, but found "
                              "'<stream end>' in \"<unicode string>\", line 1, column 11: plugins: [ ^)")  # one line
    assert judged(config).message == (f"the endpoint picker (file epp.yaml): the endpoint picker refuses this "
                                      f"configuration: {config.problem}. Fix its core-metrics-extractor plugin's "
                                      f"parameters.")


def test_refused_flags_are_a_failure_whose_evidence_names_them() -> None:
    flags = ["--kv-cache-usage-percentage-metric", "vllm:gpu_cache_usage_perc", "--lora-info-metric=vllm:lora"]
    found = readers(from_deployment(k8s_deployment("router-epp", ROUTER, flags, {"app": "router"}), []))
    verdict = judge(found[1].epp, [])  # type: ignore[arg-type]
    assert (verdict.outcome, verdict.level, verdict.target) == (Outcome.FAILED, Level.MUST, "router-epp")
    assert verdict.evidence["panel_verdict"] == "refused"
    assert verdict.evidence["flags"] == {"--kv-cache-usage-percentage-metric": "vllm:gpu_cache_usage_perc",
                                         "--lora-info-metric": "vllm:lora"}
    assert "refuses to start with --kv-cache-usage-percentage-metric, --lora-info-metric: \"flag " \
           "'kv-cache-usage-percentage-metric' is deprecated" in verdict.message


def test_a_file_of_kind_endpointpickerconfig_without_plugins_reads_the_built_ins(tmp_path: Path) -> None:
    path = tmp_path / "epp.yaml"
    path.write_text("apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: EndpointPickerConfig\n",
                    encoding="utf-8")
    config = from_file(path)
    assert (config.name, config.where, config.problem) == ("epp", f"file {path}", "")
    assert [e.origin for e in config.engines] == ["built-in"] * 4


@pytest.mark.parametrize(("text", "message"), [
    ("a: [", "cannot be read as YAML (while parsing a flow node expected the node content, but found '<stream "
             "end>' in \"<unicode string>\", line 1, column 5: a: [ ^); pass the endpoint picker's "
             "EndpointPickerConfig file."),
    ("kind: ConfigMap\n---\nkind: Service\n", "is not an EndpointPickerConfig (kind: EndpointPickerConfig with "
     "plugins:, or a core-metrics-extractor plugin entry) nor the endpoint picker's Deployment; pass the file the "
     "EPP reads with --config-file, or kubectl get deployment,configmap -o yaml of it."),
    ("kind: endpointpickerconfig\n", "is not an EndpointPickerConfig *"),  # the kind's case counts
])
def test_a_file_that_is_no_configuration_says_what_to_pass(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "epp.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(epp_config.ConfigError) as excinfo:
        from_file(path)
    shown = f"--vllm-epp-config {path} {message}"
    assert fnmatch.fnmatch(str(excinfo.value), shown) if shown.endswith("*") else str(excinfo.value) == shown


# -- each verdict's short word and evidence, as the report shows the EPP's check -------------------------------


def test_a_passing_check_shows_each_engines_specs_and_pods() -> None:
    verdict = judged(config_of(""), pod("decode-0", VLLM_PAGE), pod("decode-1", VLLM_PAGE))
    assert (verdict.outcome, verdict.message, verdict.level, verdict.target) == (Outcome.PASSED, "", Level.MUST, "epp")
    assert verdict.evidence["panel_verdict"] == "ok"
    assert verdict.evidence["engines"]["vllm"] == {
        "origin": "built-in", "pods": ["decode-0", "decode-1"],
        "specs": {"queuedRequestsSpec": "vllm:num_requests_waiting", "runningRequestsSpec": "vllm:num_requests_running",
                  "kvUsageSpec": "vllm:kv_cache_usage_perc", "loraSpec": "vllm:lora_requests_info",
                  "cacheInfoSpec": "vllm:cache_config_info"}}
    assert verdict.evidence["exprs"][:3] == ["vllm:num_requests_waiting", "vllm:num_requests_running",
                                             "vllm:kv_cache_usage_perc"]


def test_the_short_word_of_each_kind_of_verdict() -> None:
    off = config_of(yaml.safe_dump({"parameters": {"engineConfigs": [{"name": "vllm", **FULL_VLLM,
                                                                      "kvUsageSpec": ""}]}}))
    failed = judged(off, pod("decode-0", VLLM_PAGE))
    assert failed.evidence["panel_verdict"] == "no data"
    assert failed.message == (
        "the endpoint picker (file epp.yaml): for vllm (engineConfigs) kvUsageSpec is \"\" or left out, so it reads "
        "nothing there and schedules blind on KV-cache utilization (its KV-cache scorer and its saturation filter). "
        "The endpoint picker's reading of those pods fails (its extract-error counter rises), so its scorers lack "
        "these values.")
    partial = judged(config_of(OLD_SGLANG), pod("sgl-0", SGLANG_PAGE), pod("sgl-1", SGLANG_PAGE))
    assert (partial.evidence["panel_verdict"], partial.level) == ("partial", Level.SHOULD)
    assert partial.message.startswith("the endpoint picker (file epp.yaml): sgl-0, sgl-1 (sglang, as its "
                                      "defaultEngine: it has no llm-d.ai/engine-type label): sglang:cache_config_info "
                                      "is not on its page")
    nothing = judged(config_of(""))
    assert (nothing.outcome, nothing.evidence["panel_verdict"], nothing.message) == (
        Outcome.INCONCLUSIVE, "inconclusive", "the endpoint picker (file epp.yaml): what it reads could not be judged: "
                                              "no pod of this run was read.")


def test_pods_the_run_could_not_read_are_each_named_with_why() -> None:
    gone = Observation(Target("decode-1", "http://10.0.0.2:8000", source=TargetSource.KUBERNETES),
                       errors={Stage.BEFORE: Problem("decode-1: GET /metrics timed out")})
    unread = Observation(Target("decode-2", "http://10.0.0.3:8000", source=TargetSource.KUBERNETES))
    verdict = judged(config_of(""), gone, unread)
    assert (verdict.outcome, verdict.message) == (
        Outcome.INCONCLUSIVE, "the endpoint picker (file epp.yaml): what it reads could not be judged: decode-1 "
                              "(vllm): decode-1: GET /metrics timed out; decode-2 (vllm): its page was not read.")
    assert verdict.evidence["engines"]["vllm"]["pods"] == ["decode-1", "decode-2"]


# vLLM's LoRA info gauge (vllm/v1/metrics/loggers.py: max_lora, waiting_lora_adapters, running_lora_adapters labels)
LORA_INFO = ('# TYPE vllm:lora_requests_info gauge\nvllm:lora_requests_info{max_lora="1",running_lora_adapters="",'
             'waiting_lora_adapters=""} 1.7e+09\n')
UNLABELLED = "decode-0 (vllm, as its defaultEngine: it has no llm-d.ai/engine-type label)"


@pytest.mark.parametrize(("extra", "problem"), [
    ({"loraSpec": 'vllm:lora_requests_info{max_lora="9"}'},
     'no series of its LoRA gauge matches vllm:lora_requests_info{max_lora="9"}'),
    ({"cacheBlockSizeSpec": "vllm:block_a"}, "vllm:block_a (the KV cache's shape) is not on its page"),
    ({"cacheBlockSizeSpec": "vllm:block_a", "cacheNumBlocksSpec": "vllm:block_b"},
     "vllm:block_a, vllm:block_b (the KV cache's shape) are not on its page"),
    ({"cacheInfoSpec": "vllm:no_info"}, "vllm:no_info (the KV cache's shape) is not on its page"),
    ({"cacheInfoSpec": "vllm:cache_config_info", "cacheBlockSizeLabelName": "page"},
     "vllm:cache_config_info has no whole-number label page: the endpoint picker fails to read the KV cache's shape"),
])
def test_an_optional_spec_the_page_does_not_serve_is_a_should_failure(extra: dict[str, str], problem: str) -> None:
    config = config_of(yaml.safe_dump({"parameters": {"engineConfigs": [{"name": "vllm", **FULL_VLLM, **extra}]}}))
    verdict = judged(config, pod("decode-0", VLLM_PAGE + LORA_INFO))
    assert (verdict.outcome, verdict.level, verdict.message) == (
        Outcome.FAILED, Level.SHOULD, f"the endpoint picker (file epp.yaml): {UNLABELLED}: {problem}.")


def test_a_lora_spec_that_matches_or_a_page_without_lora_passes() -> None:
    config = config_of(yaml.safe_dump({"parameters": {"engineConfigs": [
        {"name": "vllm", **FULL_VLLM, "loraSpec": 'vllm:lora_requests_info{max_lora="1"}'}]}}))
    assert judged(config, pod("decode-0", VLLM_PAGE + LORA_INFO)).outcome == Outcome.PASSED
    assert judged(config, pod("decode-0", VLLM_PAGE)).outcome == Outcome.PASSED  # no LoRA served: nothing to read


@pytest.mark.parametrize(("image", "refuses"), [
    ("llm-d-inference-scheduler:v0.6.9", False),  # a bare name, as `kind load docker-image` leaves it
    ("ghcr.io/llm-d/llm-d-inference-scheduler:v0.6.9@sha256:0123", False),  # a tag pinned by digest: the tag counts
    ("ghcr.io/llm-d/llm-d-inference-scheduler@sha256:0123", True),  # a digest alone: taken as the newest
    ("ghcr.io/llm-d/llm-d-inference-scheduler", True),
])
def test_which_epp_images_refuse_the_old_flags(image: str, refuses: bool) -> None:
    assert epp_config.refuses_flags(image) is refuses


@pytest.mark.parametrize(("queued", "problem"), [
    ('vllm:nope{engine="0"}', 'vllm:nope is not on its page (spec vllm:nope{engine="0"})'),  # the spec, as written
    ("vllm:request_success_total", "vllm:request_success_total is a counter, not a gauge"),
])
def test_a_required_spec_the_page_cannot_answer_says_why(queued: str, problem: str) -> None:
    config = config_of(yaml.safe_dump({"parameters": {"engineConfigs": [
        {"name": "vllm", **FULL_VLLM, "queuedRequestsSpec": queued}]}}))
    assert judged(config, pod("decode-0", VLLM_PAGE)).message == (
        f"the endpoint picker (file epp.yaml): {UNLABELLED}: {problem}. The endpoint picker's reading of those pods "
        f"fails (its extract-error counter rises), so its scorers lack these values.")


def test_a_pods_engine_is_read_from_the_configured_label_key_only() -> None:
    default = config_of("")
    older = pod("sgl-0", SGLANG_PAGE, {GAIE_KEY: "sglang"})
    assert epp_config.pod_engine(older, default) == ("sglang", True)  # llm-d-router's own key falls back to GAIE's
    custom = config_of("parameters:\n  engineLabelKey: example.com/engine\n")
    assert epp_config.pod_engine(older, custom) == ("vllm", False)  # another key: only that one is read
    assert epp_config.pod_engine(pod("sgl-0", SGLANG_PAGE, {"example.com/engine": "sglang"}), custom) == (
        "sglang", True)
    url = Observation(Target("u", "http://10.0.0.1:8000", engine=Engine.SGLANG))
    assert epp_config.pod_engine(url, custom) == ("sglang", True)  # --vllm-url: its --vllm-engine


def test_a_config_file_the_run_cannot_read_keeps_the_flags_it_refuses() -> None:
    deployment = k8s_deployment("router-epp", ROUTER, ["--config-file", "/config/epp.yaml",
                                                       "--lora-info-metric", "vllm:lora"], {"app": "router"})
    config = from_deployment(deployment, [])
    assert (config.name, config.where, config.flags, config.refuses_flags) == (
        "router-epp", f"Deployment {NS}/router-epp, --config-file /config/epp.yaml",
        {"--lora-info-metric": "vllm:lora"}, ROUTER)
    assert config.unread.startswith("no volumeMount of the container holds /config/epp.yaml")
    assert [r.title for r in readers(config)] == ["engineConfigs", "metric flags"]
