"""The bundled conformance suite, run through pytester as a user runs it."""

from __future__ import annotations

import json
import re

import pytest

from conftest import flat, run_suite
from pytest_vllm_metrics.sim import SimHost, get_profile


def outcomes_of(result: pytest.RunResult, status: str) -> list[str]:
    """Node ids reported with `status` (PASSED, FAILED, XFAIL, SKIPPED) in -rA output."""
    pattern = re.compile(rf"^{status} (\S+)")
    return [m.group(1) for line in result.outlines if (m := pattern.match(line))]


def test_x86_64_every_must_entry_passes(pytester: pytest.Pytester) -> None:
    result = run_suite(pytester, "--vllm-sim=x86_64", "-m", "must")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == outcomes.get("errors", 0) == outcomes.get("xfailed", 0) == 0
    passed = outcomes_of(result, "PASSED")
    # every MUST family, present and moving, checked on the simulator
    for name in ("vllm:prompt_tokens_total", "vllm:prefix_cache_hits_total", "vllm:e2e_request_latency_seconds",
                 "vllm:cache_config_info", "vllm:kv_cache_usage_perc"):
        assert any(f"test_present[{name}]" in nodeid for nodeid in passed), name
    assert any("test_moves[vllm:prefix_cache_hits_total]" in nodeid for nodeid in passed)
    assert result.ret == 0


def test_x86_64_whole_suite_passes(pytester: pytest.Pytester) -> None:
    result = run_suite(pytester, "--vllm-sim")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0 and outcomes.get("xfailed", 0) == 0, result.stdout.str()
    assert outcomes["passed"] > 60
    # skips are feature-gated families, each with its reason, the EPP's checks without an EPP, and the
    # data-parallel check of a server of one engine
    for line in result.outlines:
        if line.startswith("SKIPPED"):
            assert ("not enabled on this server" in line or "is emitted by vLLM" in line
                    or "no endpoint picker: pass --vllm-epp-url" in line
                    or "not a data-parallel server (its simulator profile runs one engine)" in line
                    or "vLLM's gauges under load are probed with --vllm-exclusive" in line), line


def test_arm64_seed_incident_core_passes_prefix_cache_xfails(pytester: pytest.Pytester) -> None:
    result = run_suite(pytester, "--vllm-sim=arm64-cpu")
    assert result.parseoutcomes().get("failed", 0) == 0, result.stdout.str()
    xfailed = outcomes_of(result, "XFAIL")
    assert sorted(x.split("::")[1] for x in xfailed) == [
        "test_every_repeated_prefix_hits_a_block",
        "test_moves[vllm:prefix_cache_hits_total]",
        "test_moves[vllm:prefix_cache_queries_total]",
    ]
    result.stdout.fnmatch_lines([
        "XFAIL *prefix_cache_hits_total* - vLLM 0.11.2 disables prefix caching on arm64 CPUs: \"Prefix caching "
        "is not supported for ARM and POWER, S390X and RISC-V CPUs; disabling it for V1 backend.\"*"
        "the server confirms it: vllm:cache_config_info has enable_prefix_caching=\"False\"*",
    ])
    passed = outcomes_of(result, "PASSED")
    assert any("test_moves[vllm:prompt_tokens_total]" in p for p in passed)
    # 0.11.2 still has the per-step TPOT histogram and not the 0.16+ families
    assert any("test_present[vllm:time_per_output_token_seconds]" in p for p in passed)
    result.stdout.fnmatch_lines(["SKIPPED *vllm:prompt_tokens_by_source_total is emitted by vLLM >=0.16.0*0.11.2*"])
    assert result.ret == 0


def test_no_prefix_caching_on_amd64_fails_with_the_flag_diagnosis(pytester: pytest.Pytester) -> None:
    result = run_suite(pytester, "--vllm-sim=x86_64-no-prefix-caching")
    failed = outcomes_of(result, "FAILED")
    assert sorted(f.split("::")[1] for f in failed) == [
        "test_cached_token_counters_agree_with_hits[by_source-local_cache_hit]",
        "test_cached_token_counters_agree_with_hits[cached]",
        "test_cached_token_counters_agree_with_hits[cached_by_source-device]",
        "test_every_repeated_prefix_hits_a_block",
        "test_moves[vllm:prefix_cache_hits_total]",
        "test_moves[vllm:prefix_cache_queries_total]",
        "test_moves[vllm:prompt_tokens_cached_total]",
    ]
    result.stdout.fnmatch_lines([
        "*vllm:prefix_cache_hits_total went from 0 to 0 (+0)*Diagnosis: vLLM reports "
        "enable_prefix_caching=\"False\"*--no-enable-prefix-caching*",
    ])
    assert "Traceback" not in result.stdout.str()
    assert result.ret == 1


@pytest.mark.parametrize(
    ("profile", "outcome", "message"),
    [
        ("arm64-0.12", "passed", None),
        ("ppc64le-cpu", "xfailed",
         "vLLM 0.16.0 disables prefix caching on ppc64le CPUs: \"Prefix caching is not supported for POWER, "
         "S390X and RISC-V CPUs; disabling it for V1 backend.\"*"),
        ("riscv64-cpu", "xfailed", "vLLM 0.32.0 disables prefix caching on riscv64 CPUs: \"Prefix caching is "
                                   "not supported for RISC-V CPUs*"),
    ],
)
def test_prefix_cache_outcome_follows_the_limitation_table(
    pytester: pytest.Pytester, profile: str, outcome: str, message: str | None
) -> None:
    result = run_suite(pytester, f"--vllm-sim={profile}", "-m", "prefix_cache")
    outcomes = result.parseoutcomes()
    assert outcomes.get(outcome, 0) >= 3 and outcomes.get("failed", 0) == 0, result.stdout.str()
    if message:
        result.stdout.fnmatch_lines([f"XFAIL *prefix_cache_hits_total* - {message}"])


def test_exempting_prefix_caching_skips_its_checks_with_the_reason(pytester: pytest.Pytester) -> None:
    result = run_suite(pytester, "--vllm-sim=x86_64-no-prefix-caching", "--vllm-exempt-feature=prefix_caching",
                       "-m", "prefix_cache")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0 and outcomes["skipped"] >= 4, result.stdout.str()
    result.stdout.fnmatch_lines(["SKIPPED * feature prefix_caching exempted by --vllm-exempt-feature=prefix_caching"])


def test_url_target_architecture_comes_from_vllm_arch(pytester: pytest.Pytester, sim_host: SimHost) -> None:
    sim = sim_host.start(get_profile("arm64-cpu"))
    unknown = run_suite(pytester, f"--vllm-url={sim.url}", "-m", "prefix_cache")
    unknown.stdout.fnmatch_lines(["*architecture is unknown*pass --vllm-arch=ARCH*"])
    assert unknown.parseoutcomes().get("failed", 0) == 3
    marked = run_suite(pytester, f"--vllm-url={sim.url}", "--vllm-arch=aarch64", "-m", "prefix_cache")
    assert marked.parseoutcomes().get("xfailed", 0) == 3, marked.stdout.str()
    assert marked.parseoutcomes().get("failed", 0) == 0


def test_server_that_stops_answering_fails_reachability_and_leaves_its_other_checks_undecided(
        pytester: pytest.Pytester, sim_host: SimHost) -> None:
    healthy = sim_host.start(get_profile("x86_64"))
    dying = sim_host.start(get_profile("x86_64").replace(stop_answering_after_scrapes=1))
    # no short --vllm-timeout: the dying server closes its connections at once, and the healthy one must answer
    result = run_suite(pytester, f"--vllm-url={healthy.url}", f"--vllm-url={dying.url}", "--vllm-report=report.json")
    dying_name = dying.url.removeprefix("http://")
    healthy_name = healthy.url.removeprefix("http://")
    # It answered the first scrape, so its presence checks stand; then it closed every connection: not
    # reachable (one failure), and what needs the workload or the second scrape could not be observed, on it
    # alone. The healthy server passes.
    rows = json.loads((pytester.path / "report.json").read_text())["tests"]
    assert [(row["check"], row["targets"][dying_name]["outcome"]) for row in rows if row["outcome"] == "failed"] == [
        ("reachable", "failed")]
    assert row_reason(rows, "reachable").startswith(f"{dying_name}: {dying.url} closed the connection during GET "
                                                    f"/metrics")
    undecided = [row for row in rows if row["outcome"] == "inconclusive"]
    assert undecided and all(row["targets"][dying_name]["outcome"] == "inconclusive" for row in undecided)
    # the healthy one passes, but for the load probe's checks, which a vLLM gets with --vllm-exclusive only
    assert {row["check"]: row["targets"][healthy_name]["outcome"] for row in undecided
            if row["targets"][healthy_name]["outcome"] != "passed"} == {
        "protocol_gauges_rise_under_load": "skipped", "protocol_gauges_return_to_idle": "skipped"}
    assert all(row["reason"].startswith(f"could not be judged on {dying_name} (1 of 2 targets; 1 passed).")
               for row in undecided if not row["check"].startswith("protocol_gauges_"))
    assert all(row["reason"].startswith(f"could not be judged on {dying_name} (1 of 2 targets; 1 skipped).")
               for row in undecided if row["check"].startswith("protocol_gauges_"))
    assert {r["targets"][dying_name]["outcome"] for r in rows if r["id"].endswith("test_workload_served")} == {
        "inconclusive"}
    assert "test_metrics.py::test_present[vllm:num_requests_running]" in outcomes_of(result, "PASSED")
    assert f"{dying_name}: {dying.url} closed the connection during GET /v1/models" in flat(result)
    assert "server stopped answering" in flat(result) and "No workload was sent." in flat(result)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert "Traceback" not in result.stdout.str()


def row_reason(rows: list[dict], check: str) -> str:  # type: ignore[type-arg]
    return str(next(row for row in rows if row["check"] == check)["reason"]).split("\n")[-1]


def test_unreachable_server_fails_reachability_with_one_clear_message(pytester: pytest.Pytester) -> None:
    result = run_suite(pytester, "--vllm-url=http://127.0.0.1:9", "-k", "test_reachable or test_cache_config_info")
    assert "127.0.0.1:9: cannot connect to http://127.0.0.1:9 (All connection attempts failed). Check that the " \
           "server is running" in flat(result)
    assert result.parseoutcomes()["failed"] == result.parseoutcomes()["inconclusive"] == 1
    # the other check could not judge the server, and says why in a few words, once
    assert "127.0.0.1:9: see test_reachable: cannot connect to http://127.0.0.1:9 (All connection attempts failed) " \
           "[1 check]" in flat(result)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert "Traceback" not in result.stdout.str()


def test_api_key_is_sent_to_v1_and_never_printed(pytester: pytest.Pytester, sim_host: SimHost) -> None:
    secret = "sk-test-7d1f0c9e"
    sim = sim_host.start(get_profile("x86_64").replace(api_key=secret))
    without = run_suite(pytester, f"--vllm-url={sim.url}", "-k", "workload_served")
    assert "401 Unauthorized" in flat(without) and "--vllm-api-key or the VLLM_API_KEY" in flat(without)
    with_key = run_suite(pytester, f"--vllm-url={sim.url}", f"--vllm-api-key={secret}", "-k", "workload_served")
    with_key.assert_outcomes(passed=1)
    with_key.stdout.fnmatch_lines(["*--vllm-api-key: set (hidden) (from option)*"])
    assert secret not in without.stdout.str() + with_key.stdout.str()


def test_bare_vllm_sim_before_a_path_explains_the_equals_sign(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_mine="def test_alone():\n    pass\n")
    result = run_suite(pytester, "--vllm-sim", "test_mine.py")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown simulator profile 'test_mine.py'*write --vllm-sim=PROFILE (with '=')*"])


def test_required_feature_missing_fails_with_how_to_enable_it(pytester: pytest.Pytester) -> None:
    result = run_suite(pytester, "--vllm-sim=x86_64", "--vllm-require-feature=lora", "-k", "lora")
    result.assert_outcomes(failed=2)  # the family, and the relation of relations.toml that needs it
    result.stdout.fnmatch_lines(["*vllm:lora_requests_info is missing from /metrics after the workload. The server "
                                 "does not show feature lora; enable it, or stop requiring it*",
                                 "*vllm:lora_requests_info missing from /metrics after the workload, so "
                                 "lora-info-refreshed does not hold*"])


def test_prefix_cache_counters_agree_on_the_simulator(pytester: pytest.Pytester) -> None:
    result = run_suite(pytester, "--vllm-sim=x86_64", "-k", "test_prefix_cache")
    result.assert_outcomes(passed=4)
