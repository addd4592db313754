"""Settings: option > environment > ini > default, one resolver, clear usage errors, sources in the header."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from pytest_vllm_metrics.engines import Engine
from pytest_vllm_metrics.settings import OPTIONS
from pytest_vllm_metrics.sim.profiles import profile_names


def header(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    pytester.makepyfile(test_noop="def test_noop():\n    pass\n")
    return pytester.runpytest(*args, "test_noop.py")


def test_option_beats_environment_beats_ini_and_the_header_names_the_source(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeini("[pytest]\nvllm_requests = 3\nvllm_timeout = 4\nvllm_max_tokens = 5\n")
    monkeypatch.setenv("PYTEST_VLLM_TIMEOUT", "6")
    result = header(pytester, "--vllm-sim=x86_64", "--vllm-max-tokens=7")
    result.stdout.fnmatch_lines([
        "*--vllm-sim: x86_64 (from option)",
        "*--vllm-timeout: 6.0 (from env)",
        "*--vllm-requests: 3 (from ini)",
        "*--vllm-max-tokens: 7 (from option)",
    ])


def test_the_engine_of_url_targets_comes_from_option_environment_or_ini(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    result = header(pytester, "--vllm-url=http://10.0.0.7:8000", "--vllm-engine=SGLang", "--collect-only")
    result.stdout.fnmatch_lines(["*--vllm-engine: sglang (from option)"])
    monkeypatch.setenv("PYTEST_VLLM_ENGINE", "trtllm-serve")
    pytester.makeini("[pytest]\nvllm_engine = sglang\n")
    header(pytester, "--vllm-url=http://10.0.0.7:8000", "--collect-only").stdout.fnmatch_lines([
        "*--vllm-engine: trtllm-serve (from env)"])


def test_list_options_come_from_environment_and_ini(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_VLLM_URL", "http://10.0.0.7:8200, http://10.0.0.8:8200")
    pytester.makeini("[pytest]\nvllm_sim =\n    arm64-cpu\n    x86_64\n")
    result = header(pytester, "--collect-only")
    result.stdout.fnmatch_lines([
        "vllm-metrics: targets: 10.0.0.7:8200, 10.0.0.8:8200, sim-arm64-cpu, sim-x86_64;*",
        "*--vllm-url: http://10.0.0.7:8200, http://10.0.0.8:8200 (from env)",
        "*--vllm-sim: arm64-cpu, x86_64 (from ini)",
    ])


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--vllm-requests=500"], {}, "--vllm-requests: 500 is out of range*bounded to 1..64*"),
        (["--vllm-requests=many"], {}, "--vllm-requests: 'many' is not a whole number*1..64*"),
        ([], {"PYTEST_VLLM_MAX_TOKENS": "1"}, "PYTEST_VLLM_MAX_TOKENS: 1 is out of range*2..256*"),
        (["--vllm-timeout=-1"], {}, "--vllm-timeout: -1.0 seconds is out of range*"),
        (["--vllm-arch=sparc"], {}, "--vllm-arch: 'sparc' is not valid; valid values are amd64, arm64, ppc64le, "
                                    "s390x, riscv64, unknown."),
        (["--vllm-engine=tgi"], {}, "--vllm-engine: 'tgi' is not valid; valid values are vllm, sglang, trtllm-serve, "
                                    "triton-tensorrt-llm."),
        (["--vllm-sim=arm"], {}, "--vllm-sim: unknown simulator profile 'arm'; valid profiles are x86_64, *"),
        (["--vllm-url=10.0.0.7:8200"], {}, "--vllm-url: '10.0.0.7:8200' is not an http(s) URL*"),
        (["--vllm-metrics-path=metrics"], {}, "--vllm-metrics-path: 'metrics' must be a URL path starting with '/'*"),
        (["--vllm-require-feature=lora", "--vllm-exempt-feature=lora"], {},
         "feature(s) lora are both required and exempted*"),
        (["--vllm-exempt-feature=prefix"], {}, "--vllm-exempt-feature: 'prefix' is not valid; valid values are core, "
                                               "prefix_caching, *"),
        (["--vllm-catalog=nope.toml"], {}, "--vllm-catalog: nope.toml is not a readable file; check the path."),
    ],
)
def test_invalid_values_are_one_usage_error_listing_valid_values(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, args: list[str], env: dict[str, str], message: str
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    result = header(pytester, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])
    assert "Traceback" not in result.stderr.str()


def test_catalog_typo_is_a_usage_error_naming_the_field(pytester: pytest.Pytester) -> None:
    pytester.makefile(".toml", mine='[[metric]]\nname = "vllm:x"\ntype = "gauge"\nlevle = "MUST"\n'
                                    'feature = "core"\nversions = ">=0.9"\n')
    result = header(pytester, "--vllm-sim=x86_64", "--vllm-catalog=mine.toml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: catalog file mine.toml, entry 1 (vllm:x) has unknown field(s) levle; "
                                 "valid fields are name, type, level, *"])


def test_catalog_value_of_the_wrong_type_is_a_usage_error_naming_key_value_and_type(
        pytester: pytest.Pytester) -> None:
    pytester.makefile(".toml", mine='[[metric]]\nname = "vllm:x"\ntype = "gauge"\nlevel = "MUST"\n'
                                    'feature = "core"\nversions = ">=0.9"\nlabels = "engine"\n')
    result = header(pytester, "--vllm-sim=x86_64", "--vllm-catalog=mine.toml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: catalog file mine.toml, entry 1 (vllm:x): labels = 'engine' is a string, "
                                 'not a list of label names, like ["engine", "model_name"].'])
    assert "Traceback" not in result.stderr.str()


def test_user_catalog_entry_becomes_a_test(pytester: pytest.Pytester) -> None:
    pytester.makefile(".toml", mine='[[metric]]\nname = "vllm:team_metric_total"\ntype = "counter"\n'
                                    'level = "MUST"\nfeature = "core"\nversions = ">=0.9"\n')
    result = pytester.runpytest("--vllm-sim=x86_64", "--vllm-catalog=mine.toml", "-k", "team_metric", "-rf")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*sim-x86_64 (vLLM 0.32.0): vllm:team_metric_total is missing from /metrics before "
                                 "any traffic.*"])


def test_api_key_has_no_ini_key(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(["*--vllm-api-key=KEY*[env VLLM_API_KEY]*"])
    assert "ini vllm_api_key" not in result.stdout.str()


def test_api_key_with_a_newline_is_refused_without_echoing_it(pytester: pytest.Pytester,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLLM_API_KEY", "sk-line one\n")
    result = header(pytester, "--vllm-sim=x86_64")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: VLLM_API_KEY: the key is empty or contains spaces, control or non-ASCII "
                                 "characters*(the value is not shown)."])
    assert "sk-line" not in result.stderr.str() + result.stdout.str()


def test_trailing_newline_of_a_key_from_a_secret_file_is_stripped() -> None:
    from pytest_vllm_metrics.settings import Settings, _secret

    assert _secret("sk-abc\n", "VLLM_API_KEY") == "sk-abc"
    assert "sk-abc" not in repr(Settings(vllm_api_key="sk-abc"))  # tracebacks print fixtures' reprs


def test_credentials_in_urls_never_reach_names_or_header(pytester: pytest.Pytester) -> None:
    result = header(pytester, "--vllm-url=http://user:hunter2@127.0.0.1:9", "--collect-only")
    output = result.stdout.str()
    assert "hunter2" not in output
    result.stdout.fnmatch_lines(["*--vllm-url: http://***@127.0.0.1:9 (from option)"])
    pytester.makepyfile(test_each="def test_each(vllm_target):\n    pass\n")
    collected = pytester.runpytest("--vllm-url=http://user:hunter2@127.0.0.1:9", "--collect-only", "-q",
                                   "test_each.py")
    assert "hunter2" not in collected.stdout.str()
    collected.stdout.fnmatch_lines(["*test_each[[]127.0.0.1:9[]]*"])
    # nor the message of a server that cannot be reached
    failed = pytester.runpytest("--vllm-url=http://user:hunter2@127.0.0.1:9", "-k", "test_reachable")
    failed.stdout.fnmatch_lines(["*127.0.0.1:9: cannot connect to http://***@127.0.0.1:9*"])
    assert "hunter2" not in failed.stdout.str() + failed.stderr.str()


def test_url_with_a_bad_port_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = header(pytester, "--vllm-url=http://host:abc")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --vllm-url: 'http://host:abc' is not an http(s) URL*"])


# -- each option's parser, called as the resolver calls it: the value, or one paragraph naming the fix --------------

PARSERS = {option.flag: option.parse for option in OPTIONS}


def parsed(flag: str, raw: str) -> Any:
    return PARSERS[flag](raw, flag)


def refused(flag: str, raw: str) -> str:
    with pytest.raises(pytest.UsageError) as caught:
        parsed(flag, raw)
    return str(caught.value)


@pytest.mark.parametrize(("flag", "low", "high"), [
    ("--vllm-requests", 1, 64), ("--vllm-max-tokens", 2, 256), ("--vllm-concurrency", 1, 256)])
def test_a_bounded_number_takes_both_ends_and_refuses_one_beyond(flag: str, low: int, high: int) -> None:
    assert (parsed(flag, str(low)), parsed(flag, str(high))) == (low, high)
    for beyond in (low - 1, high + 1):
        assert refused(flag, str(beyond)) == (
            f"{flag}: {beyond} is out of range; {flag} is bounded to {low}..{high} so a run against a production "
            f"server stays small. Pass a value in that range.")
    assert refused(flag, "many") == f"{flag}: 'many' is not a whole number; give {flag} as {low}..{high}."


@pytest.mark.parametrize("flag", ["--vllm-timeout", "--vllm-phase-timeout"])
def test_seconds_are_above_0_and_at_most_600(flag: str) -> None:
    assert (parsed(flag, "0.001"), parsed(flag, "600"), parsed(flag, "2.5")) == (0.001, 600.0, 2.5)
    for beyond in ("0", "600.5", "-1"):
        assert refused(flag, beyond) == (f"{flag}: {float(beyond)} seconds is out of range; pass a timeout in 0..600 "
                                         f"seconds.")
    assert refused(flag, "10s") == f"{flag}: '10s' is not a number of seconds; pass e.g. 10 or 2.5."


@pytest.mark.parametrize("flag", ["--vllm-url", "--vllm-gateway-url", "--vllm-epp-url", "--prometheus-url"])
def test_a_url_is_http_or_https_with_a_host_and_loses_its_trailing_slash(flag: str) -> None:
    assert parsed(flag, "http://10.0.0.7:8000/") == "http://10.0.0.7:8000"
    assert parsed(flag, "https://vllm.example/base") == "https://vllm.example/base"
    for bad in ("ftp://10.0.0.7", "http://", "10.0.0.7:8000"):
        assert refused(flag, bad) == (f"{flag}: {bad!r} is not an http(s) URL; pass the server's base URL, e.g. "
                                      f"http://10.0.0.7:8000 (without /metrics or /v1).")
    # a refused URL's password is not repeated
    assert "hunter2" not in refused(flag, "ftp://user:hunter2@10.0.0.7")


def test_the_metrics_path_starts_with_a_slash() -> None:
    assert parsed("--vllm-metrics-path", "/vllm/metrics") == "/vllm/metrics"
    assert refused("--vllm-metrics-path", "metrics") == (
        "--vllm-metrics-path: 'metrics' must be a URL path starting with '/', e.g. /metrics.")


@pytest.mark.parametrize(("raw", "arch"), [
    ("arm64", "arm64"), (" AMD64 ", "amd64"), ("x86_64", "amd64"), ("aarch64", "arm64"), ("ARM", "arm64"),
    ("ppc64", "ppc64le"), ("riscv", "riscv64"), ("s390x", "s390x")])
def test_an_architecture_takes_its_uname_spellings_in_any_case(raw: str, arch: str) -> None:
    assert parsed("--vllm-arch", raw) == arch


def test_a_choice_names_every_valid_value() -> None:
    assert refused("--vllm-transport", "tunnel") == (
        "--vllm-transport: 'tunnel' is not valid; valid values are proxy, direct.")
    assert (parsed("--vllm-transport", " Direct"), parsed("--vllm-fail-on", "SHOULD")) == ("direct", "should")
    assert parsed("--vllm-engine", "SGLang") is Engine.SGLANG


@pytest.mark.parametrize(("raw", "value"), [
    ("true", True), (" TRUE ", True), ("1", True), ("yes", True), ("false", False), ("0", False), ("No", False)])
def test_a_switch_from_the_environment_or_ini_reads_true_and_false_spellings(raw: str, value: bool) -> None:
    assert parsed("--vllm-exclusive", raw) is value


def test_a_switch_refuses_other_words() -> None:
    assert refused("--prometheus-insecure", "maybe") == (
        "--prometheus-insecure: 'maybe' is not valid; valid values are true, false.")


@pytest.mark.parametrize(("raw", "release"), [
    ("0.13", "0.13.0"), ("v0.13.0", "0.13.0"), (" 0.13.1 ", "0.13.1"), ("0.13.0rc1+cpu", "0.13.0"),
    ("1.2.3.4", "1.2.3.4")])
def test_the_upgrade_target_is_a_release_with_at_least_a_minor(raw: str, release: str) -> None:
    assert parsed("--vllm-upgrade-to", raw) == release


@pytest.mark.parametrize("raw", ["1", "latest", ""])
def test_the_upgrade_target_without_a_minor_is_refused(raw: str) -> None:
    assert refused("--vllm-upgrade-to", raw) == (
        f"--vllm-upgrade-to: {raw!r} is not a vLLM release; pass the version the fleet moves to as a PEP 440 release "
        f"with at least major and minor, e.g. --vllm-upgrade-to=0.13.0.")


def test_an_unknown_simulator_profile_lists_the_profiles_and_spots_a_test_path(tmp_path: Path,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    names = ", ".join(profile_names())
    assert parsed("--vllm-sim", "arm64-cpu") == "arm64-cpu"
    assert refused("--vllm-sim", "arm") == f"--vllm-sim: unknown simulator profile 'arm'; valid profiles are {names}."
    monkeypatch.chdir(tmp_path)
    (tmp_path / "test_mine.py").write_text("")
    assert refused("--vllm-sim", "test_mine.py::test_a") == (
        f"--vllm-sim: unknown simulator profile 'test_mine.py::test_a'; valid profiles are {names}. "
        f"'test_mine.py::test_a' is a test path that argparse took as the profile: write --vllm-sim=PROFILE (with "
        f"'=') before test paths.")


@pytest.mark.parametrize(("flag", "what"), [("--grafana-dashboard", "a dashboard JSON file"),
                                            ("--prometheus-rules", "a rule file (YAML)")])
def test_a_dashboard_or_rule_path_must_exist(tmp_path: Path, flag: str, what: str) -> None:
    assert parsed(flag, str(tmp_path)) == tmp_path
    missing = tmp_path / "nope"
    assert refused(flag, str(missing)) == f"{flag}: {missing} does not exist; pass {what} or a directory of them."


@pytest.mark.parametrize("flag", ["--vllm-catalog", "--vllm-epp-config", "--prometheus-ca"])
def test_a_file_option_takes_a_file_not_a_directory(tmp_path: Path, flag: str) -> None:
    (tmp_path / "f.toml").write_text("")
    assert parsed(flag, str(tmp_path / "f.toml")) == tmp_path / "f.toml"
    assert refused(flag, str(tmp_path)) == f"{flag}: {tmp_path} is not a readable file; check the path."


@pytest.mark.parametrize(("raw", "key"), [("sk-abc", "sk-abc"), ("  sk-abc\n", "sk-abc")])
def test_an_api_key_loses_the_spaces_around_it(raw: str, key: str) -> None:
    assert parsed("--vllm-api-key", raw) == key


@pytest.mark.parametrize("raw", ["", "  \n", "sk abc", "sk-\x07bc", "sk-äbc"])
def test_an_api_key_that_cannot_go_into_a_header_is_refused_unseen(raw: str) -> None:
    said = refused("--vllm-api-key", raw)
    assert said == ("--vllm-api-key: the key is empty or contains spaces, control or non-ASCII characters, which "
                    "cannot go into an HTTP header; check how it is stored (the value is not shown).")


@pytest.mark.parametrize("name", ["r.json", "r.yaml", "r.yml", "r.md", "r.markdown", "new/dir/r.json"])
def test_a_report_is_named_by_its_format_and_may_be_in_a_new_directory(tmp_path: Path, name: str) -> None:
    assert parsed("--vllm-report", str(tmp_path / name)) == str(tmp_path / name)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into any directory")
@pytest.mark.parametrize("mode", [0o500, 0o600])  # not writable; writable but not searchable
def test_a_report_in_a_directory_that_cannot_be_written_is_refused_before_the_run(tmp_path: Path, mode: int) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(mode)
    try:
        for flag, raw in (("--vllm-report", locked / "r.json"), ("--vllm-gaie-report", locked / "gaie")):
            assert refused(flag, str(raw)) == f"{flag}: cannot write {raw}: {locked} is not writable."
    finally:
        locked.chmod(0o700)


def test_a_report_of_another_format_or_in_the_way_of_a_file_is_refused(tmp_path: Path) -> None:
    assert refused("--vllm-report", str(tmp_path / "r.html")) == (
        f"--vllm-report: {str(tmp_path / 'r.html')!r} does not end in a report format; name the file .json, .yaml or "
        f".yml (the machine-readable report), or .md or .markdown (a Markdown summary).")
    (tmp_path / "d.json").mkdir()
    assert refused("--vllm-report", str(tmp_path / "d.json")) == (
        f"--vllm-report: {tmp_path / 'd.json'} is a directory; name the report file, e.g. "
        f"{tmp_path / 'd.json'}/report.json.")
    (tmp_path / "file").write_text("")
    assert refused("--vllm-report", str(tmp_path / "file" / "r.json")) == (
        f"--vllm-report: cannot write {tmp_path / 'file' / 'r.json'}: {tmp_path / 'file'} is a file, not a directory.")


def test_the_inference_extension_reports_go_into_a_directory(tmp_path: Path) -> None:
    assert parsed("--vllm-gaie-report", str(tmp_path / "new")) == str(tmp_path / "new")
    assert parsed("--vllm-gaie-report", str(tmp_path)) == str(tmp_path)
    (tmp_path / "file").write_text("")
    assert refused("--vllm-gaie-report", str(tmp_path / "file")) == (
        f"--vllm-gaie-report: {tmp_path / 'file'} is a file; name a directory (created if missing) for the reports.")
    assert refused("--vllm-gaie-report", str(tmp_path / "file" / "sub")) == (
        f"--vllm-gaie-report: cannot write {tmp_path / 'file' / 'sub'}: {tmp_path / 'file'} is a file, not a "
        f"directory.")
