"""What the GAIE reports name besides the results: --vllm-gaie-report's directory, --vllm-gaie-version and
--vllm-gaie-implementation=[ENGINE:]FIELD=VALUE (option, environment, ini; one usage error per bad value), and each
model server's implementation: the engine's defaults, the user's fields, the file's place in GAIE's layout."""

from __future__ import annotations

import pytest

from conftest import said
from pytest_vllm_metrics import gaie
from pytest_vllm_metrics.engines import Engine


def header(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    pytester.makepyfile(test_noop="def test_noop():\n    pass\n")
    return pytester.runpytest(*args, "test_noop.py")


@pytest.mark.parametrize(("args", "message"), [
    (["--vllm-gaie-implementation=organisation=acme"], "--vllm-gaie-implementation: 'organisation=acme' is not "
     "[ENGINE:]FIELD=VALUE with FIELD one of organization, project, url, version, contact and ENGINE one of vllm, "
     "sglang, trtllm-serve, triton-tensorrt-llm; e.g. organization=my-org, or sglang:version=v0.5.4."),
    (["--vllm-gaie-implementation=tgi:version=3.0"], "--vllm-gaie-implementation: 'tgi:version=3.0' is not *"),
    (["--vllm-gaie-implementation=version="], "--vllm-gaie-implementation: 'version=' is not *"),
    (["--vllm-gaie-version=1.6"], "--vllm-gaie-version: '1.6' is not a Gateway API Inference Extension release; "
     "pass its tag, e.g. --vllm-gaie-version=v1.6.2."),
    (["--vllm-gaie-report=test_noop.py"], "--vllm-gaie-report: test_noop.py is a file; name a directory (created if "
     "missing) for the reports."),
    (["--vllm-gaie-report=test_noop.py/reports"], "--vllm-gaie-report: cannot write test_noop.py/reports: "
     "*test_noop.py is a file, not a directory."),
    (["--vllm-gaie-report=out", "--vllm-shard=1/2"], "--vllm-gaie-report writes one report per model server over "
     "all its pods, and --vllm-shard sees only a slice of them *: write it from an unsharded run."),
])
def test_a_bad_value_is_one_usage_error_naming_the_form(pytester: pytest.Pytester, args: list[str],
                                                        message: str) -> None:
    result = header(pytester, "--vllm-sim=x86_64", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])
    assert "Traceback" not in result.stderr.str()


def test_the_settings_come_from_option_environment_or_ini_and_the_header_names_them(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makeini("[pytest]\nvllm_gaie_report = gaie\nvllm_gaie_implementation =\n    organization=Acme Corp\n"
                     "    sglang:url=https://acme.example/sglang\n")
    monkeypatch.setenv("PYTEST_VLLM_GAIE_VERSION", "1.5.0")
    result = header(pytester, "--vllm-sim=x86_64", "--collect-only")
    result.stdout.fnmatch_lines(["*--vllm-gaie-report: gaie (from ini)", "*--vllm-gaie-version: v1.5.0 (from env)",
                                 "*--vllm-gaie-implementation: organization=Acme Corp, "
                                 "sglang:url=https://acme.example/sglang (from ini)"])
    result = header(pytester, "--vllm-sim=x86_64", "--collect-only", "--vllm-gaie-version=v1.6.0-rc.1")
    assert said(result, "--vllm-gaie-version: v1.6.0-rc.1 (from option)")


def test_a_url_keeps_its_colons_and_an_engines_scope_is_read() -> None:
    assert gaie.field("url=https://acme.example:8443/x", "w") == gaie.Field(None, "url", "https://acme.example:8443/x")
    assert gaie.field("trtllm-serve:url=https://a.example", "w") == gaie.Field(Engine.TRTLLM_SERVE, "url",
                                                                              "https://a.example")
    assert str(gaie.field("sglang:contact=@me", "w")) == "sglang:contact=@me"


def test_each_engine_has_its_projects_defaults() -> None:
    assert set(gaie.DEFAULTS) == set(Engine)
    sglang = gaie.implementation(Engine.SGLANG, None, ())
    assert (sglang.organization, sglang.project, sglang.version) == ("sgl-project", "sglang", "unknown")
    assert sglang.contact == ("https://github.com/sgl-project/sglang/issues",)
    assert gaie.implementation(Engine.VLLM, "0.32.0", ()).version == "0.32.0"


def test_the_files_place_follows_gaies_layout() -> None:
    # conformance/reports/<version>/<profile folder>/<implementation>/<version>-<mode>-<profile>-report.yaml; GAIE's
    # Gateway reports: v1.5.0/gateway/istio/1.30.1-default-gateway-report.yaml,
    # v1.5.0/gateway/nginx-nginx-gateway-fabric/... (the organization first when it differs from the project)
    nvidia = gaie.implementation(Engine.TRTLLM_SERVE, None, [gaie.Field(None, "version", "1.3.0rc1")])
    assert (nvidia.folder, nvidia.file_name) == ("nvidia-tensorrt-llm", "1.3.0rc1-default-model-server-report.yaml")
    same = gaie.implementation(Engine.VLLM, "0.32.0+cpu", [gaie.Field(None, "organization", "vLLM")])
    assert (same.folder, same.file_name) == ("vllm", "0.32.0+cpu-default-model-server-report.yaml")
    odd = gaie.implementation(Engine.VLLM, None, [gaie.Field(None, "version", "../my build"),
                                                  gaie.Field(Engine.VLLM, "project", "My Serving")])
    assert (odd.folder, odd.file_name) == ("vllm-project-my-serving", "my-build-default-model-server-report.yaml")


FORM = ("is not [ENGINE:]FIELD=VALUE with FIELD one of organization, project, url, version, contact and ENGINE one of "
        "vllm, sglang, trtllm-serve, triton-tensorrt-llm; e.g. organization=my-org, or sglang:version=v0.5.4.")


@pytest.mark.parametrize(("raw", "parsed"), [
    ("organization=Acme Corp", gaie.Field(None, "organization", "Acme Corp")),
    ("contact= @me ", gaie.Field(None, "contact", "@me")),  # the value's spaces are not part of it
    ("triton-tensorrt-llm:project=triton", gaie.Field(Engine.TRITON_TENSORRT_LLM, "project", "triton")),
    ("version=a=b", gaie.Field(None, "version", "a=b")),  # the first '=' ends the field's name
])
def test_an_implementation_field_is_read_with_its_scope(raw: str, parsed: gaie.Field) -> None:
    assert gaie.field(raw, "--vllm-gaie-implementation") == parsed


@pytest.mark.parametrize("raw", ["organisation=acme", "tgi:version=3.0", "version=", "version=  ", "version",
                                 ":version=1", "sglang:=1"])
def test_an_implementation_field_not_of_the_form_is_a_usage_error_naming_it(raw: str) -> None:
    with pytest.raises(pytest.UsageError) as excinfo:
        gaie.field(raw, "ini vllm_gaie_implementation")
    assert str(excinfo.value) == f"ini vllm_gaie_implementation: {raw!r} {FORM}"


def test_a_field_is_shown_as_given() -> None:
    assert str(gaie.Field(None, "organization", "acme")) == "organization=acme"
    assert str(gaie.Field(Engine.SGLANG, "version", "v0.5.4")) == "sglang:version=v0.5.4"


@pytest.mark.parametrize(("raw", "tag"), [("v1.6.2", "v1.6.2"), ("1.6.2", "v1.6.2"), (" 1.5.0 ", "v1.5.0"),
                                          ("v1.6.0-rc.1", "v1.6.0-rc.1")])
def test_a_gaie_release_is_its_tag(raw: str, tag: str) -> None:
    assert gaie.version(raw, "--vllm-gaie-version") == tag


@pytest.mark.parametrize("raw", ["1.6", "v1.6.2.1", "latest", "vv1.6.2", "1.6.2-"])
def test_anything_else_is_no_gaie_release(raw: str) -> None:
    with pytest.raises(pytest.UsageError) as excinfo:
        gaie.version(raw, "env PYTEST_VLLM_GAIE_VERSION")
    assert str(excinfo.value) == (f"env PYTEST_VLLM_GAIE_VERSION: {raw!r} is not a Gateway API Inference Extension "
                                  f"release; pass its tag, e.g. --vllm-gaie-version=v1.6.2.")


def test_the_users_fields_for_one_engine_win_over_those_for_every_engine() -> None:
    given = [gaie.Field(None, "organization", "acme"), gaie.Field(Engine.SGLANG, "organization", "acme-sglang"),
             gaie.Field(None, "url", "https://acme.example"), gaie.Field(None, "version", "v9"),
             gaie.Field(None, "contact", "@all"), gaie.Field(Engine.SGLANG, "contact", "@sg1"),
             gaie.Field(Engine.SGLANG, "contact", "@sg2"), gaie.Field(Engine.VLLM, "project", "my-vllm")]
    sglang = gaie.implementation(Engine.SGLANG, "0.5.9", given)
    assert sglang.as_dict() == {"contact": ["@sg1", "@sg2"], "organization": "acme-sglang", "project": "sglang",
                                "url": "https://acme.example", "version": "v9"}
    vllm = gaie.implementation(Engine.VLLM, "0.32.0", given)
    assert vllm.as_dict() == {"contact": ["@all"], "organization": "acme", "project": "my-vllm",
                              "url": "https://acme.example", "version": "v9"}
    assert gaie.implementation(Engine.TRITON_TENSORRT_LLM, None, ()).as_dict() == {
        "contact": ["https://github.com/triton-inference-server/tensorrtllm_backend/issues"],
        "organization": "triton-inference-server", "project": "tensorrtllm_backend",
        "url": "https://github.com/triton-inference-server/tensorrtllm_backend", "version": "unknown"}


@pytest.mark.parametrize(("organization", "project", "version", "folder", "file_name"), [
    ("Acme", "ACME", "1.0", "acme", "1.0-default-model-server-report.yaml"),  # the same name in another case
    ("acme", "Serve  Fast", "  ", "acme-serve-fast", "unknown-default-model-server-report.yaml"),
    ("-a-", ".b.", "V1_2+x", "a--.b", "V1_2+x-default-model-server-report.yaml"),  # the version keeps its case
    ("Xa", "bX", "1.0X", "xa-bx", "1.0X-default-model-server-report.yaml"),  # only dashes and dots are trimmed
])
def test_the_folder_and_file_name_are_path_parts(organization: str, project: str, version: str, folder: str,
                                                 file_name: str) -> None:
    found = gaie.Implementation(organization, project, "https://x", version, ())
    assert (found.folder, found.file_name) == (folder, file_name)
