"""Settings: option > environment > ini > default, one resolver, clear usage errors, sources in the header."""

from __future__ import annotations

import pytest


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
