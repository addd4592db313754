"""Settings: option > environment > ini > default, one resolver, clear usage errors, sources in the header."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from pytest_vllm_metrics.engines import Engine
from pytest_vllm_metrics.settings import OPTIONS, Settings, resolve
from pytest_vllm_metrics.shard import Shard
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
    assert parsed(flag, "https://vllm.example/models/X//") == "https://vllm.example/models/X"
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


def test_an_existing_report_file_is_overwritten(tmp_path: Path) -> None:
    (tmp_path / "r.json").write_text("{}")  # the last run's report, not executable
    assert parsed("--vllm-report", str(tmp_path / "r.json")) == str(tmp_path / "r.json")


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


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any directory")
def test_an_input_file_in_a_directory_that_cannot_be_searched_is_refused_not_a_traceback(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "in.json").write_text("{}")
    locked.chmod(0o600)  # readable but not searchable: the file's status cannot be read
    try:
        raw = str(locked / "in.json")
        assert refused("--grafana-dashboard", raw) == (
            f"--grafana-dashboard: {raw} does not exist; pass a dashboard JSON file or a directory of them.")
        assert refused("--vllm-catalog", raw) == f"--vllm-catalog: {raw} is not a readable file; check the path."
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


# -- the resolver, given a parsed command line, an environment and an ini file ---------------------------------------

def resolved(pytester: pytest.Pytester, *args: str, env: dict[str, str] | None = None) -> Settings:
    """The settings of a command line (and the pytester directory's ini file), without running anything."""
    return resolve(pytester.parseconfig(*args), {} if env is None else env)


def usage_error(pytester: pytest.Pytester, *args: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(pytest.UsageError) as caught:
        resolved(pytester, *args, env=env)
    return str(caught.value)


def test_nothing_given_is_the_defaults_from_nowhere(pytester: pytest.Pytester) -> None:
    settings = resolved(pytester)
    assert settings == Settings()
    assert (settings.sources, settings.notes, settings.header_lines()) == ({}, (), [])
    assert not settings.has_targets


def test_each_value_names_where_it_came_from(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makeini("[pytest]\nvllm_requests = 3\nvllm_timeout = 4\nvllm_max_tokens = 5\nvllm_sim =\n    x86_64\n")
    for option in OPTIONS:
        monkeypatch.delenv(option.env_var, raising=False)
    monkeypatch.setenv("PYTEST_VLLM_TIMEOUT", "6")
    monkeypatch.setenv("VLLM_API_KEY", "sk-abc")
    settings = resolve(pytester.parseconfig("--vllm-max-tokens=7"))  # the process's own environment
    assert (settings.vllm_requests, settings.vllm_timeout, settings.vllm_max_tokens, settings.vllm_sim,
            settings.vllm_api_key) == (3, 6.0, 7, ("x86_64",), "sk-abc")
    assert settings.sources == {"vllm_sim": "ini", "vllm_api_key": "env", "vllm_timeout": "env",
                                "vllm_requests": "ini", "vllm_max_tokens": "option"}


def test_an_empty_environment_variable_or_ini_value_is_not_given(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nvllm_requests = 3\nvllm_model =\n")
    settings = resolved(pytester, env={"PYTEST_VLLM_REQUESTS": "", "PYTEST_VLLM_MODEL": ""})
    assert (settings.vllm_requests, settings.vllm_model) == (3, None)
    assert settings.sources == {"vllm_requests": "ini"}


def test_a_bad_value_is_refused_naming_the_environment_variable_or_ini_key_it_came_from(
        pytester: pytest.Pytester) -> None:
    assert usage_error(pytester, env={"PYTEST_VLLM_CONCURRENCY": "0"}) == (
        "PYTEST_VLLM_CONCURRENCY: 0 is out of range; --vllm-concurrency is bounded to 1..256 so a run against a "
        "production server stays small. Pass a value in that range.")
    pytester.makeini("[pytest]\nvllm_transport = tunnel\n")
    assert usage_error(pytester) == "ini vllm_transport: 'tunnel' is not valid; valid values are proxy, direct."
    assert usage_error(pytester, "--vllm-transport=nope") == (
        "--vllm-transport: 'nope' is not valid; valid values are proxy, direct.")


def test_the_api_key_is_read_from_vllm_api_key_and_never_from_the_ini_file(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nvllm_api_key = sk-committed\n")
    assert resolved(pytester).vllm_api_key is None
    settings = resolved(pytester, env={"VLLM_API_KEY": "sk-abc\n", "PYTEST_VLLM_API_KEY": "sk-other"})
    assert (settings.vllm_api_key, settings.sources) == ("sk-abc", {"vllm_api_key": "env"})
    assert resolved(pytester, "--vllm-api-key=sk-given", env={"VLLM_API_KEY": "sk-abc"}).vllm_api_key == "sk-given"


def test_a_list_option_is_repeated_on_the_command_line_or_separated_by_commas_or_spaces_elsewhere(
        pytester: pytest.Pytester) -> None:
    given = resolved(pytester, "--vllm-url=http://10.0.0.7:8000", "--vllm-url=http://10.0.0.8:8000/",
                     "--vllm-require-feature=lora", "--vllm-url=")
    assert (given.vllm_url, given.vllm_require_feature) == (("http://10.0.0.7:8000", "http://10.0.0.8:8000"),
                                                            ("lora",))
    from_env = resolved(pytester, env={"PYTEST_VLLM_SIM": " x86_64,arm64-cpu  x86_64,\n",
                                       "PYTEST_VLLM_EXEMPT_FEATURE": "lora"})
    assert (from_env.vllm_sim, from_env.vllm_exempt_feature) == (("x86_64", "arm64-cpu", "x86_64"), ("lora",))
    pytester.makeini("[pytest]\nvllm_require_feature =\n    lora\n    spec_decode\n")
    assert resolved(pytester).vllm_require_feature == ("lora", "spec_decode")


def test_a_switch_is_true_when_given_alone_and_read_from_the_environment_or_ini_otherwise(
        pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nprometheus_insecure = yes\n")
    settings = resolved(pytester, "--vllm-exclusive")
    assert (settings.vllm_exclusive, settings.prometheus_insecure) == (True, True)
    assert settings.sources == {"vllm_exclusive": "option", "prometheus_insecure": "ini"}
    assert resolved(pytester, env={"PYTEST_VLLM_EXCLUSIVE": "false"}).vllm_exclusive is False


def test_the_simulator_option_alone_starts_the_default_profile(pytester: pytest.Pytester) -> None:
    assert resolved(pytester, "--vllm-sim", "--vllm-sim=arm64-cpu").vllm_sim == ("x86_64", "arm64-cpu")


@pytest.mark.parametrize(("args", "flag"), [(["--vllm-upgrade-to=0.13"], "--vllm-upgrade-to"),
                                            (["--vllm-epp-url=http://epp:9090"], "--vllm-epp-url")])
def test_an_option_that_judges_the_fleet_needs_a_target(pytester: pytest.Pytester, args: list[str],
                                                        flag: str) -> None:
    assert usage_error(pytester, *args) == (
        f"{flag} judges the running fleet, and no vLLM target is given: pass --vllm-namespace (or --vllm-url, "
        f"--vllm-sim) so that the run knows which pods and versions it compares with.")
    for target in ("--vllm-namespace=llm-d", "--vllm-url=http://10.0.0.7:8000", "--vllm-sim"):
        assert resolved(pytester, *args, target).has_targets


def test_the_upgrade_forecast_and_the_inference_extension_reports_refuse_a_slice_of_the_fleet(
        pytester: pytest.Pytester, tmp_path: Path) -> None:
    assert usage_error(pytester, "--vllm-sim", "--vllm-upgrade-to=0.13", "--vllm-shard=1/3") == (
        "--vllm-upgrade-to forecasts over the versions of the whole fleet, and --vllm-shard=1/3 sees only a slice of "
        "it: run the forecast unsharded (it only scrapes each server once, with no workload, so one run covers a "
        "large fleet).")
    assert usage_error(pytester, "--vllm-sim", f"--vllm-gaie-report={tmp_path}", "--vllm-shard=0/2") == (
        "--vllm-gaie-report writes one report per model server over all its pods, and --vllm-shard sees only a "
        "slice of them (the shards would overwrite each other's files): write it from an unsharded run.")
    one = resolved(pytester, "--vllm-sim", "--vllm-upgrade-to=0.13", f"--vllm-gaie-report={tmp_path}",
                   "--vllm-shard=0/1")
    assert (one.vllm_upgrade_to, one.vllm_gaie_report, one.vllm_shard) == ("0.13.0", str(tmp_path), Shard(0, 1))
    sliced = resolved(pytester, "--vllm-sim", "--vllm-shard=1/3")
    assert sliced.policy.sliced and not one.policy.sliced


def test_features_both_required_and_exempted_are_named_in_order(pytester: pytest.Pytester) -> None:
    assert usage_error(pytester, "--vllm-require-feature=lora", "--vllm-require-feature=core",
                       "--vllm-exempt-feature=lora", env={"PYTEST_VLLM_EXEMPT_FEATURE": "core"}) == (
        "feature(s) lora are both required and exempted; pass each feature to only one of --vllm-require-feature "
        "and --vllm-exempt-feature.")
    assert usage_error(pytester, "--vllm-require-feature=lora", "--vllm-require-feature=core",
                       "--vllm-exempt-feature=lora", "--vllm-exempt-feature=core") == (
        "feature(s) core, lora are both required and exempted; pass each feature to only one of "
        "--vllm-require-feature and --vllm-exempt-feature.")


def test_a_url_given_with_the_metrics_path_is_checked_at_its_base_url_and_said_once(
        pytester: pytest.Pytester) -> None:
    settings = resolved(pytester, "--vllm-url=http://10.0.0.7:8000/metrics", "--vllm-url=http://10.0.0.8:8000",
                        "--vllm-url=http://user:hunter2@10.0.0.9:8000/metrics/",
                        "--vllm-url=http://10.0.0.6:8000/?next=/metrics")  # its path is /
    assert settings.vllm_url == ("http://10.0.0.7:8000", "http://10.0.0.8:8000", "http://user:hunter2@10.0.0.9:8000",
                                 "http://10.0.0.6:8000/?next=/metrics")
    assert settings.notes == (
        "--vllm-url http://10.0.0.7:8000/metrics, http://***@10.0.0.9:8000/metrics ends in the metrics path "
        "/metrics: checking http://10.0.0.7:8000, http://***@10.0.0.9:8000 (the suite requests /metrics, /v1 and "
        "/version under the base URL itself)",)
    assert settings.header_lines() == [
        "--vllm-url: http://10.0.0.7:8000, http://10.0.0.8:8000, http://***@10.0.0.9:8000, "
        "http://10.0.0.6:8000/?next=/metrics (from option)"]


def test_a_url_ending_in_another_metrics_path_is_cut_at_that_path(pytester: pytest.Pytester) -> None:
    settings = resolved(pytester, "--vllm-url=http://10.0.0.7:8000/vllm/metrics", "--vllm-metrics-path=/vllm/metrics")
    assert settings.vllm_url == ("http://10.0.0.7:8000",)
    assert settings.notes == (
        "--vllm-url http://10.0.0.7:8000/vllm/metrics ends in the metrics path /vllm/metrics: checking "
        "http://10.0.0.7:8000 (the suite requests /vllm/metrics, /v1 and /version under the base URL itself)",)
    kept = resolved(pytester, "--vllm-url=http://10.0.0.7:8000/metrics", "--vllm-metrics-path=/vllm/metrics")
    assert (kept.vllm_url, kept.notes) == (("http://10.0.0.7:8000/metrics",), ())
    at_root = resolved(pytester, "--vllm-url=http://10.0.0.7:8000/", "--vllm-metrics-path=/")
    assert (at_root.vllm_url, at_root.notes) == (("http://10.0.0.7:8000",), ())


@pytest.mark.parametrize("url", ["http://10.0.0.7:8000/metrics?x=1", "http://10.0.0.7:8000/?next=/metrics",
                                 "http://10.0.0.7:8000/vllm-metrics", "http://10.0.0.7:8000"])
def test_a_url_whose_path_does_not_end_in_the_metrics_path_is_kept(pytester: pytest.Pytester, url: str) -> None:
    settings = resolved(pytester, f"--vllm-url={url}", f"--vllm-epp-url={url}")
    assert (settings.vllm_url, settings.vllm_epp_url, settings.notes) == ((url,), url, ())


def test_the_endpoint_pickers_url_given_with_metrics_is_cut_whatever_the_vllm_metrics_path(
        pytester: pytest.Pytester) -> None:
    settings = resolved(pytester, "--vllm-url=http://10.0.0.7:8000/metrics", "--vllm-metrics-path=/vllm/metrics",
                        "--vllm-epp-url=http://user:pw@epp:9090/metrics")
    assert (settings.vllm_url, settings.vllm_epp_url) == (("http://10.0.0.7:8000/metrics",), "http://user:pw@epp:9090")
    assert settings.notes == (
        "--vllm-epp-url http://***@epp:9090/metrics ends in the metrics path /metrics: checking http://***@epp:9090 "
        "(the suite requests /metrics under the base URL itself)",)
    both = resolved(pytester, "--vllm-url=http://10.0.0.7:8000/metrics", "--vllm-epp-url=http://epp:9090/metrics")
    assert (both.vllm_url, both.vllm_epp_url, len(both.notes)) == (("http://10.0.0.7:8000",), "http://epp:9090", 2)
    assert both.header_lines() == ["--vllm-url: http://10.0.0.7:8000 (from option)",
                                   "--vllm-epp-url: http://epp:9090 (from option)"]


# -- what the report header says about the settings ------------------------------------------------------------------

def test_the_header_shows_each_value_given_with_its_source_secrets_hidden_and_credentials_redacted(
        pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makeini("[pytest]\nvllm_fail_on = should\ngrafana_dashboard =\n    " + str(tmp_path) + "\n")
    settings = resolved(pytester, "--vllm-shard=1/4", "--vllm-gateway-url=https://user:pw@gateway.example/",
                        "--vllm-exempt-feature=lora", "--vllm-exempt-feature=core", "--vllm-engine=SGLang",
                        env={"VLLM_API_KEY": "sk-abc", "PYTEST_VLLM_NAMESPACE": "llm-d", "PYTEST_VLLM_TIMEOUT": "2.5",
                             "PYTEST_VLLM_EXCLUSIVE": "1"})
    assert settings.header_lines() == [
        "--vllm-api-key: set (hidden) (from env)",
        "--vllm-timeout: 2.5 (from env)",
        "--vllm-engine: sglang (from option)",
        "--vllm-exempt-feature: lora, core (from option)",
        "--vllm-namespace: llm-d (from env)",
        "--vllm-gateway-url: https://***@gateway.example (from option)",
        f"--grafana-dashboard: {tmp_path} (from ini)",
        "--vllm-exclusive: True (from env)",
        "--vllm-fail-on: should (from ini)",
        "--vllm-shard: 1/4 (shard 1 of 4) (from option)",
    ]


def test_a_value_equal_to_its_default_is_shown_when_given(pytester: pytest.Pytester) -> None:
    assert resolved(pytester, "--vllm-requests=8").header_lines() == ["--vllm-requests: 8 (from option)"]


def test_the_bounds_line_names_every_cap_of_the_run() -> None:
    assert Settings().bounds() == ("bounds: 8 requests per server of at most 8 tokens, 16 servers at once, 10 s per "
                                   "request, 120 s per phase, bodies up to 16 MiB")
    assert Settings(vllm_requests=1, vllm_max_tokens=256, vllm_concurrency=2, vllm_timeout=2.5,
                    vllm_phase_timeout=0.5).bounds() == (
        "bounds: 1 requests per server of at most 256 tokens, 2 servers at once, 2.5 s per request, 0.5 s per "
        "phase, bodies up to 16 MiB")


def test_the_help_lists_each_option_with_its_environment_variable_and_ini_key_and_the_api_key_has_no_ini_key(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "300")  # one line per option
    lines = pytester.runpytest("--help").outlines
    for line in [
        "vLLM metrics conformance:",
        "  --vllm-url=URL        base URL of a vLLM server to check (repeatable) [env PYTEST_VLLM_URL, ini vllm_url]",
        "  --vllm-sim=[PROFILE]  start the bundled vLLM simulator with PROFILE (default x86_64; repeatable) "
        "[env PYTEST_VLLM_SIM, ini vllm_sim]",
        "  --vllm-api-key=KEY    API key sent as 'Authorization: Bearer' to /v1 (never printed) [env VLLM_API_KEY]",
        "  --vllm-exclusive      no other traffic reaches the targets during the run: counters must move by exactly "
        "the workload [env PYTEST_VLLM_EXCLUSIVE, ini vllm_exclusive]",
        "  --prometheus-url=URL  Prometheus server to check: is every target scraped, will every panel show data "
        "[env PYTEST_PROMETHEUS_URL, ini prometheus_url]",
        "  vllm_url (linelist):  base URL of a vLLM server to check (repeatable)",
        "  vllm_sim (linelist):  start the bundled vLLM simulator with PROFILE (default x86_64; repeatable)",
        "  vllm_model (string):  model to send the workload to (default: the first of /v1/models)",
    ]:
        assert line in lines, line
    assert not [line for line in lines if "vllm_api_key" in line]
