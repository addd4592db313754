"""The model-server protocol's results as GAIE conformance reports (--vllm-gaie-report=DIR): the shape of GAIE's own
reports, the statistics of every outcome (inconclusive never reads as passed), one file per model server and version,
the features, the implementation fields."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import json_report, run_suite, said
from pytest_vllm_metrics import gaie, report, report_gaie
from pytest_vllm_metrics.engines import Engine
from pytest_vllm_metrics.outcome import Level
from pytest_vllm_metrics.rows import Row, RowOutcome, TargetResult

# GAIE's own report, as submitted (its header says where from)
EXAMPLE_PATH = Path(__file__).parent / "data" / "gaie" / "1.30.1-default-gateway-report.yaml"
EXAMPLE: dict[str, Any] = yaml.safe_load(EXAMPLE_PATH.read_text())
VLLM_FILE = Path("vllm-project-vllm", "0.32.0-default-model-server-report.yaml")

# The bundled protocol checks, as the run's rows name them, with their levels (the run below checks that it has
# exactly these).
CHECKS = {"reachable": Level.MUST, "workload_served": Level.MUST,
          "protocol_metric[queued]": Level.MUST, "protocol_metric[running]": Level.MUST,
          "protocol_metric[kv_usage]": Level.MUST, "protocol_series_the_picker_reads": Level.SHOULD,
          "protocol_gauges_rise_under_load": Level.MUST, "protocol_gauges_return_to_idle": Level.MUST,
          "protocol_kv_cache_shape": Level.MAY, "protocol_model_named": Level.SHOULD}
SERVER = ("reachable", "workload_served")  # test_server.py's checks of every engine that the protocol asks for
PROTOCOL = "protocol or reachable or workload_served"  # -k: the profile's checks
NAMES = {"protocol_metric[queued]": "ProtocolMetricQueued", "protocol_metric[kv_usage]": "ProtocolMetricKvUsage",
         "protocol_gauges_rise_under_load": "ProtocolGaugesRiseUnderLoad",
         "protocol_kv_cache_shape": "ProtocolKvCacheShape"}


def protocol_row(check: str, outcomes: dict[str, RowOutcome | str]) -> Row:
    """A protocol check's row as the run makes it: one per check, each target's own outcome in `targets`."""
    base, bracket, param = check.partition("[")
    module = "test_server.py" if check in SERVER else "test_model_server.py"
    return Row(id=f"{module}::test_{base}{bracket}{param}", target="", check=check, level=CHECKS[check],
               outcome=RowOutcome.PASSED, targets={name: TargetResult(RowOutcome(o), "why") for name, o in
                                                     outcomes.items()})


def target(name: str, engine: Engine = Engine.VLLM, version: str | None = "0.32.0",
           features: tuple[str, ...] = ("core",)) -> dict[str, Any]:
    """A target as the report model's implementations hold it."""
    return {"target": name, "modelServer": engine.value, "vllmVersion": version if engine is Engine.VLLM else None,
            "features": list(features)}


def built(rows: list[Row], targets: list[dict[str, Any]]) -> report.Report:
    return report.build(rows, implementations=targets, started=datetime(2026, 12, 7, 3, 4, 5, tzinfo=UTC))


def every_check(outcome: RowOutcome | str = "passed", **overrides: RowOutcome | str) -> list[Row]:
    """Every protocol check with one target, "a", at `outcome`; `overrides`: check name (its test function's) ->
    outcome."""
    return [protocol_row(check, {"a": overrides.get(check.split("[")[0], outcome)}) for check in CHECKS]


def profile_of(document: dict[str, Any]) -> dict[str, Any]:
    [profile] = document["profiles"]
    return dict(profile)


def keys(value: Any) -> Any:
    """The nesting of a document's keys (lists by their first element), without the values."""
    if isinstance(value, dict):
        return {k: keys(v) for k, v in value.items()}
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return [keys(value[0])]
    return type(value).__name__


# -- a real run ---------------------------------------------------------------------------------------------


def test_a_run_writes_a_report_in_the_shape_of_gaies_own(pytester: pytest.Pytester) -> None:
    result = run_suite(pytester, "--vllm-sim=x86_64", "--vllm-exclusive", "-k", PROTOCOL,
                       "--vllm-gaie-report=reports")
    assert said(result, f"GAIE report: reports/{VLLM_FILE}")
    [written] = [p.relative_to(pytester.path / "reports") for p in (pytester.path / "reports").rglob("*.yaml")]
    assert written == VLLM_FILE
    text = (pytester.path / "reports" / written).read_text()
    document = yaml.safe_load(text)
    # every field of GAIE's report, spelled, cased and nested as there; the profile adds its extended part, whose
    # fields are the core's plus the features (gateway-api profilereport.go)
    expected = keys(EXAMPLE)
    expected["profiles"][0]["extended"] = {**expected["profiles"][0]["core"], "supportedFeatures": "list",
                                           "unsupportedFeatures": "list"}
    assert keys(document) == expected
    # in GAIE's order (sigs.k8s.io/yaml writes keys sorted): the top-level keys as the example has them
    order = [line.split(":")[0] for line in text.splitlines() if re.match(r"^\w", line)]
    assert order == [k for k in EXAMPLE]
    assert (document["apiVersion"], document["kind"], document["mode"]) == (
        EXAMPLE["apiVersion"], EXAMPLE["kind"], EXAMPLE["mode"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", document["date"])
    assert document["GatewayAPIInferenceExtensionVersion"] == gaie.VERSION
    assert document["implementation"] == {"contact": ["https://github.com/vllm-project/vllm/issues"],
                                          "organization": "vllm-project", "project": "vllm",
                                          "url": "https://github.com/vllm-project/vllm", "version": "0.32.0"}
    profile = profile_of(document)
    assert profile["name"] == "ModelServer"
    assert profile["core"] == {"result": "success", "statistics": {"Failed": 0, "Passed": 9, "Skipped": 0}}
    assert profile["extended"] == {"result": "success", "statistics": {"Failed": 0, "Passed": 1, "Skipped": 0},
                                   "supportedFeatures": ["BlockSizeInfo"], "unsupportedFeatures": ["LoRA"]}
    assert profile["summary"] == "Core tests succeeded. Extended tests succeeded."


def test_the_run_has_exactly_the_protocol_checks_these_tests_build(pytester: pytest.Pytester) -> None:
    run_suite(pytester, "--vllm-sim=x86_64", "-k", PROTOCOL, "--vllm-report=report.json")
    tests = json_report(pytester)["tests"]
    assert {t["check"]: Level(t["level"]) for t in tests} == CHECKS
    assert all(report_gaie.is_protocol(Row.from_json(t)) for t in tests)


def test_without_the_exclusive_probe_vllms_load_checks_are_skipped_and_named(pytester: pytest.Pytester) -> None:
    # vLLM's gauges under load are probed only with --vllm-exclusive: a partial result, never a success
    run_suite(pytester, "--vllm-sim=x86_64", "--vllm-sim=x86_64-lora", "-k", PROTOCOL, "--vllm-gaie-report=out")
    profile = profile_of(yaml.safe_load((pytester.path / "out" / VLLM_FILE).read_text()))
    assert profile["core"] == {"result": "partial", "statistics": {"Failed": 0, "Passed": 7, "Skipped": 2},
                               "skippedTests": ["ProtocolGaugesRiseUnderLoad", "ProtocolGaugesReturnToIdle"]}
    assert profile["extended"]["supportedFeatures"] == ["BlockSizeInfo", "LoRA"]  # the LoRA pod serves its info
    assert "unsupportedFeatures" not in profile["extended"]
    assert profile["summary"] == "Core tests partially succeeded with 2 test skips. Extended tests succeeded."


def test_two_vllm_versions_write_a_report_each(pytester: pytest.Pytester) -> None:
    result = run_suite(pytester, "--vllm-sim=x86_64", "--vllm-sim=x86_64-0.10", "-k", PROTOCOL,
                       "--vllm-gaie-report=out", "--vllm-gaie-implementation=contact=@me")
    found = sorted(p.name for p in (pytester.path / "out" / "vllm-project-vllm").iterdir())
    assert found == ["0.10.1-default-model-server-report.yaml", "0.32.0-default-model-server-report.yaml"]
    older = yaml.safe_load((pytester.path / "out" / "vllm-project-vllm" / found[0]).read_text())
    assert older["implementation"]["version"] == "0.10.1" and older["implementation"]["contact"] == ["@me"]
    assert said(result, "GAIE report: out/vllm-project-vllm/0.10.1-default-model-server-report.yaml")


def test_another_engines_simulated_server_reports_its_version_and_passes_the_profile(
        pytester: pytest.Pytester) -> None:
    # the profile's version (a pod: its image's tag), since SGLang has no /version the suite reads
    run_suite(pytester, "--vllm-sim=sglang-0.5.9", "-k", PROTOCOL, "--vllm-gaie-report=out")
    document = yaml.safe_load((pytester.path / "out/sgl-project-sglang/0.5.9-default-model-server-report.yaml")
                              .read_text())
    assert document["implementation"]["version"] == "0.5.9"
    profile = profile_of(document)
    assert (profile["core"]["result"], profile["core"]["statistics"]) == (
        "success", {"Failed": 0, "Passed": 9, "Skipped": 0})
    # its KV cache's shape in 0.5.9's form (sglang:cache_config_info), judged for that version
    assert profile["extended"]["supportedFeatures"] == ["BlockSizeInfo"]


def test_a_server_whose_page_does_not_answer_fails_the_profile_once_and_the_rest_is_not_judged(
        pytester: pytest.Pytester) -> None:
    # test_reachable fails; the checks that need the page are inconclusive (skips, never passes)
    run_suite(pytester, "--vllm-url=http://127.0.0.1:9", "-k", PROTOCOL, "--vllm-gaie-report=out")
    document = yaml.safe_load((pytester.path / "out/vllm-project-vllm/unknown-default-model-server-report.yaml")
                              .read_text())
    assert document["implementation"]["version"] == "unknown"  # the page did not say it
    core = profile_of(document)["core"]
    assert (core["result"], core["failedTests"]) == ("failure", ["Reachable"])
    assert core["statistics"] == {"Failed": 1, "Passed": 0, "Skipped": 8}
    assert "could not be judged" in profile_of(document)["summary"]


def test_a_run_without_protocol_checks_writes_none_and_says_why(pytester: pytest.Pytester) -> None:
    result = run_suite(pytester, "--vllm-sim=x86_64", "-k", "version", "--vllm-gaie-report=out")
    assert not (pytester.path / "out").exists()
    assert said(result, "GAIE report: none written: no model-server protocol check judged a target")


# -- the statistics of every outcome ---------------------------------------------------------------------------


@pytest.mark.parametrize(("outcomes", "result", "statistics"), [
    ({}, "success", (9, 0, 0)),
    ({"protocol_model_named": "inconclusive"}, "partial", (8, 0, 1)),  # one below success: never a pass
    ({"protocol_model_named": "skipped"}, "partial", (8, 0, 1)),
    ({"protocol_model_named": "xfailed"}, "partial", (8, 0, 1)),  # a documented limitation is not a pass either
    ({"protocol_model_named": "xpassed"}, "success", (9, 0, 0)),
    ({"protocol_model_named": "error"}, "failure", (8, 1, 0)),
    ({"protocol_model_named": "failed", "protocol_series_the_picker_reads": "inconclusive"}, "failure", (7, 1, 1)),
])
def test_core_statistics_count_each_outcome(outcomes: dict[str, str], result: str,
                                            statistics: tuple[int, int, int]) -> None:
    [document] = report_gaie.documents(built(every_check(**outcomes), [target("a")])).values()
    core = profile_of(document)["core"]
    assert core["result"] == result
    assert (core["statistics"]["Passed"], core["statistics"]["Failed"], core["statistics"]["Skipped"]) == statistics
    named = {"failed": "failedTests", "error": "failedTests", "inconclusive": "skippedTests",
             "skipped": "skippedTests", "xfailed": "skippedTests"}
    for check, outcome in outcomes.items():
        if outcome in named:
            assert report_gaie.test_name(check) in core[named[outcome]]


def test_an_inconclusive_check_is_a_skip_the_summary_says_could_not_be_judged() -> None:
    [document] = report_gaie.documents(built(every_check(protocol_metric="inconclusive"), [target("a")])).values()
    profile = profile_of(document)
    assert profile["core"]["skippedTests"] == ["ProtocolMetricQueued", "ProtocolMetricRunning", "ProtocolMetricKvUsage"]
    assert profile["summary"] == (
        "Core tests partially succeeded with 3 test skips. Extended tests succeeded. 3 of the skipped tests could not "
        "be judged (inconclusive: the run could not observe what they need); rerun once the cause is fixed.")


def test_gaie_test_names_are_the_checks_in_camel_case() -> None:
    assert {check: report_gaie.test_name(check) for check in NAMES} == NAMES


# -- one report per model server and version; each target's own outcome -------------------------------------


def test_a_fleet_of_mixed_engines_writes_one_report_each_from_its_own_targets_outcomes() -> None:
    targets = [target("v1"), target("v2"), target("s1", Engine.SGLANG), target("old", version="0.10.1")]
    rows = [protocol_row(check, {"v1": "passed", "v2": "passed", "s1": "passed", "old": "passed"}) for check in CHECKS]
    # the SGLang pod fails a check the vLLM pods pass; one vLLM 0.32 pod could not be judged on another
    rows[0] = protocol_row("protocol_metric[queued]", {"v1": "passed", "v2": "passed", "s1": "failed", "old": "passed"})
    rows[3] = protocol_row("protocol_series_the_picker_reads",
                           {"v1": "inconclusive", "v2": "passed", "s1": "passed", "old": "passed"})
    documents = report_gaie.documents(built(rows, targets))
    assert sorted(map(str, documents)) == ["sgl-project-sglang/unknown-default-model-server-report.yaml",
                                           "vllm-project-vllm/0.10.1-default-model-server-report.yaml",
                                           str(VLLM_FILE)]
    sglang = profile_of(documents[Path("sgl-project-sglang/unknown-default-model-server-report.yaml")])
    assert sglang["core"]["failedTests"] == ["ProtocolMetricQueued"] and sglang["core"]["result"] == "failure"
    assert sglang["extended"]["unsupportedFeatures"] == ["LoRA"]  # SGLang's protocol maps no LoRA metric
    vllm = profile_of(documents[VLLM_FILE])
    # the worst of its two pods: one could not be judged, so the check is a skip, not a pass
    assert vllm["core"]["statistics"] == {"Failed": 0, "Passed": 8, "Skipped": 1}
    assert vllm["core"]["skippedTests"] == ["ProtocolSeriesThePickerReads"]
    old = profile_of(documents[Path("vllm-project-vllm/0.10.1-default-model-server-report.yaml")])
    assert old["core"]["result"] == "success"


def test_a_model_server_no_protocol_check_judged_gets_no_report() -> None:
    # a report of nothing would read as a success
    rows = [protocol_row(check, {"a": "passed"}) for check in CHECKS]
    documents = report_gaie.documents(built(rows, [target("a"), target("s", Engine.SGLANG)]))
    assert list(documents) == [VLLM_FILE]
    assert report_gaie.documents(built([], [target("a")])) == {}


# -- the extended part: the KV cache's shape (BlockSizeInfo) and LoRA ----------------------------------------


@pytest.mark.parametrize(("outcome", "statistics", "supported", "unsupported"), [
    ("passed", (1, 0, 0), ["BlockSizeInfo"], ["LoRA"]),
    ("failed", (0, 1, 0), ["BlockSizeInfo"], ["LoRA"]),  # served, wrongly: its test failed
    ("skipped", (0, 0, 0), None, ["BlockSizeInfo", "LoRA"]),  # not served: GAIE runs no test of a feature not supported
    ("inconclusive", (0, 0, 1), None, ["LoRA"]),  # not judged: neither claimed nor denied
])
def test_block_size_info_follows_the_kv_cache_shape_check(outcome: str, statistics: tuple[int, int, int],
                                                          supported: list[str] | None,
                                                          unsupported: list[str]) -> None:
    [document] = report_gaie.documents(built(every_check(protocol_kv_cache_shape=outcome), [target("a")])).values()
    extended = profile_of(document)["extended"]
    assert (extended["statistics"]["Passed"], extended["statistics"]["Failed"],
            extended["statistics"]["Skipped"]) == statistics
    assert extended.get("supportedFeatures") == supported
    assert extended["unsupportedFeatures"] == unsupported
    assert profile_of(document)["core"]["result"] == "success"  # the optional part never fails the core
    # GAIE's summary speaks of the extended tests only when some ran
    assert profile_of(document)["summary"].startswith("Core tests succeeded.")
    assert ("Extended tests" in profile_of(document)["summary"]) == (outcome != "skipped")


def test_lora_is_supported_only_where_the_engine_maps_it_and_a_pod_serves_it() -> None:
    targets = [target("a", features=("core", "lora")), target("s", Engine.SGLANG, features=("core", "lora"))]
    rows = [protocol_row(check, {"a": "passed", "s": "passed"}) for check in CHECKS]
    documents = report_gaie.documents(built(rows, targets))
    assert profile_of(documents[VLLM_FILE])["extended"]["supportedFeatures"] == ["BlockSizeInfo", "LoRA"]
    sglang = profile_of(documents[Path("sgl-project-sglang/unknown-default-model-server-report.yaml")])
    assert sglang["extended"]["unsupportedFeatures"] == ["LoRA"]


# -- the implementation: the engine's defaults, the user's fields -------------------------------------------


def test_the_users_fields_apply_to_every_engine_and_an_engines_own_win() -> None:
    given = [gaie.field(raw, "test") for raw in (
        "organization=acme", "contact=@acme/serving", "contact=serving@acme.example", "sglang:version=v0.5.4",
        "sglang:contact=@acme/sglang", "url=https://acme.example/serving")]
    rows = [protocol_row(check, {"a": "passed", "s": "passed"}) for check in CHECKS]
    documents = report_gaie.documents(built(rows, [target("a"), target("s", Engine.SGLANG)]), "v1.5.0", given)
    assert sorted(map(str, documents)) == ["acme-sglang/v0.5.4-default-model-server-report.yaml",
                                           "acme-vllm/0.32.0-default-model-server-report.yaml"]
    vllm = documents[Path("acme-vllm/0.32.0-default-model-server-report.yaml")]
    assert vllm["GatewayAPIInferenceExtensionVersion"] == "v1.5.0"
    assert vllm["implementation"] == {"contact": ["@acme/serving", "serving@acme.example"], "organization": "acme",
                                      "project": "vllm", "url": "https://acme.example/serving", "version": "0.32.0"}
    sglang = documents[Path("acme-sglang/v0.5.4-default-model-server-report.yaml")]["implementation"]
    assert (sglang["contact"], sglang["version"]) == (["@acme/sglang"], "v0.5.4")


def test_a_given_version_gathers_the_engines_targets_in_one_report() -> None:
    rows = [protocol_row(check, {"b": "failed", "a": "passed"}) for check in CHECKS]
    given = [gaie.field("vllm:version=v0.32.0-acme.1", "test")]
    documents = report_gaie.documents(built(rows, [target("a"), target("b", version="0.10.1")]), given=given)
    [(path, document)] = documents.items()
    assert path == Path("vllm-project-vllm/v0.32.0-acme.1-default-model-server-report.yaml")
    assert profile_of(document)["core"]["result"] == "failure"


def test_the_file_renders_as_gaies_yaml_and_is_written_whole(tmp_path: Path) -> None:
    model = built(every_check(), [target("a")])
    [written] = report_gaie.write(model, tmp_path / "new" / "dir")
    assert written == tmp_path / "new" / "dir" / VLLM_FILE
    text = written.read_text()
    assert text.startswith("GatewayAPIInferenceExtensionVersion: v1.6.2\napiVersion: gateway.networking.k8s.io/v1\n"
                           "date: '2026-12-07T03:04:05Z'\n")
    assert "  contact:\n  - https://github.com/vllm-project/vllm/issues\n" in text  # block style, as GAIE's
    assert yaml.safe_load(text) == report_gaie.documents(model)[VLLM_FILE]
    assert not list(written.parent.glob(".*part"))


# -- in process: the header, another engine's version, the written files ------------------------------------------


def test_the_reports_header_is_gaies_and_names_no_gateway_api_resource() -> None:
    [document] = report_gaie.documents(built(every_check(), [target("a")]), "v1.5.0").values()
    header = {k: v for k, v in document.items() if k not in ("implementation", "profiles")}
    assert header == {"GatewayAPIInferenceExtensionVersion": "v1.5.0", "apiVersion": "gateway.networking.k8s.io/v1",
                      "date": "2026-12-07T03:04:05Z", "gatewayAPIChannel": "", "gatewayAPIVersion": "",
                      "kind": "ConformanceReport", "mode": "default"}
    assert profile_of(document)["name"] == "ModelServer"


def test_another_engines_version_is_its_own_and_a_vllm_version_names_only_vllm() -> None:
    sglang = {**target("s", Engine.SGLANG), "modelServerVersion": "0.5.9", "vllmVersion": "0.32.0"}
    unknown = {**target("t", Engine.TRTLLM_SERVE), "vllmVersion": "0.32.0"}  # a version field of vLLM's only
    rows = [protocol_row(check, {"s": "passed", "t": "passed"}) for check in CHECKS]
    assert sorted(report_gaie.documents(built(rows, [sglang, unknown]))) == [
        Path("nvidia-tensorrt-llm", "unknown-default-model-server-report.yaml"),
        Path("sgl-project-sglang", "0.5.9-default-model-server-report.yaml")]


def test_a_report_follows_one_of_a_model_server_nothing_judged() -> None:
    rows = [protocol_row(check, {"s": "passed"}) for check in CHECKS]
    documents = report_gaie.documents(built(rows, [target("a"), target("s", Engine.SGLANG, None)]))
    assert list(documents) == [Path("sgl-project-sglang", "unknown-default-model-server-report.yaml")]


@pytest.mark.parametrize(("row_id", "protocol"), [
    ("/site/conformance/test_model_server.py::test_protocol_metric[queued]", True),  # from an installed package
    ("conformance/test_model_server.py::test_other", False),  # the module's other tests are not the protocol's
    ("conformance/test_server.py::test_protocol_like", False),
    ("conformance/test_server.py::test_reachable", True), ("test_server.py::test_version", False),
])
def test_which_rows_are_the_protocols(row_id: str, protocol: bool) -> None:
    row = Row(id=row_id, target="", check="x", level=Level.MUST, outcome=RowOutcome.PASSED)
    assert report_gaie.is_protocol(row) is protocol


def test_the_yaml_has_sorted_keys_in_block_style_and_keeps_unicode() -> None:
    assert report_gaie.render({"b": 1, "a": "Zoë", "c": [1, {"e": 2, "d": 3}]}) == (
        "a: Zoë\nb: 1\nc:\n- 1\n- d: 3\n  e: 2\n")


def test_two_versions_write_two_files_in_one_folder_with_the_users_fields(tmp_path: Path) -> None:
    newer, older = target("a"), target("b", version="0.10.1")
    rows = [protocol_row(check, {"a": "passed", "b": "passed"}) for check in CHECKS]
    written = report_gaie.write(built(rows, [newer, older]), tmp_path, given=[gaie.Field(None, "organization", "acme")])
    assert sorted(p.relative_to(tmp_path) for p in written) == [
        Path("acme-vllm", "0.10.1-default-model-server-report.yaml"),
        Path("acme-vllm", "0.32.0-default-model-server-report.yaml")]


def test_inconclusive_checks_of_both_parts_are_counted_and_an_extended_failure_is_named() -> None:
    [document] = report_gaie.documents(built(every_check(protocol_model_named="inconclusive",
                                                         protocol_kv_cache_shape="inconclusive"),
                                             [target("a")])).values()
    assert "2 of the skipped tests could not be judged" in profile_of(document)["summary"]
    [failed] = report_gaie.documents(built(every_check(protocol_kv_cache_shape="failed"), [target("a")])).values()
    assert profile_of(failed)["extended"]["failedTests"] == ["ProtocolKvCacheShape"]
