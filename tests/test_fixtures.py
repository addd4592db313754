"""The fixtures users call in their own tests (fixtures.py), run through pytester as users run pytest: the session's
observation and its delta, the scraper and the workload on demand, and vllm_enforce turning a Verdict into pytest's
outcome."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from aiohttp import web

from conftest import run_suite
from pytest_vllm_metrics.sim import SimHost

# -- the session's observation, and sending again ---------------------------------------------------------------


def test_users_own_test_uses_the_session_snapshots(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_team="""
        def test_prompt_tokens_moved(vllm_delta, vllm_observation):
            assert vllm_delta.increase("vllm:prompt_tokens_total") >= vllm_observation.traffic.prompt_tokens

        def test_scraper_on_demand(vllm_scraper, vllm_target):
            assert "vllm:num_requests_running" in vllm_scraper.scrape(vllm_target).names()
    """)
    result = run_suite(pytester, "--vllm-sim=x86_64", "--vllm-sim=arm64-cpu", "test_team.py")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["PASSED test_team.py::test_prompt_tokens_moved[[]sim-arm64-cpu[]]"])



def test_users_can_send_the_workload_again(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_again="""
        def test_workload_again(vllm_workload, vllm_target, vllm_scraper):
            before = vllm_scraper.scrape(vllm_target).value("vllm:prefix_cache_hits_total")
            result = vllm_workload(vllm_target, requests=4)
            assert result.requests == 4 and result.block_size == 128
            assert vllm_scraper.scrape(vllm_target).value("vllm:prefix_cache_hits_total") > before
    """)
    run_suite(pytester, "--vllm-sim=x86_64", "test_again.py").assert_outcomes(passed=1)


def test_a_scrape_on_demand_that_fails_fails_the_users_test_with_the_reason_alone(
        pytester: pytest.Pytester, sim_host: SimHost) -> None:
    released = threading.Event()

    async def stalled(request: web.Request) -> web.Response:
        # held until the test ends, far beyond --vllm-timeout: the scraper's own timeout must end the wait
        await asyncio.get_running_loop().run_in_executor(None, released.wait, 60.0)
        return web.Response(text="")

    app = web.Application()
    app.router.add_get("/metrics", stalled)
    slow = sim_host.start_app(app)
    pytester.makepyfile(test_on_demand=f"""
        from pytest_vllm_metrics.targets import Target

        def test_unreachable(vllm_scraper):
            vllm_scraper.scrape(Target("gone", "http://127.0.0.1:9"))

        def test_stalled(vllm_scraper):
            vllm_scraper.scrape(Target("slow", "{slow}"))
    """)
    started = time.monotonic()
    try:
        result = run_suite(pytester, "--vllm-timeout=1", "test_on_demand.py")
    finally:
        released.set()
    assert time.monotonic() - started < 25
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["gone: cannot connect to http://127.0.0.1:9 (*). Check that the server is running *",
                                 "slow: GET /metrics did not finish within 1 s: *",
                                 "FAILED test_on_demand.py::test_unreachable - Failed: gone: cannot connect to *",
                                 "FAILED test_on_demand.py::test_stalled - Failed: slow: *"])
    output = result.stdout.str()
    assert "Traceback" not in output and "pytest.fail(" not in output and "another exception occurred" not in output
    # the cause once in its failure, not again "during handling" of it (the summary is cut to the terminal width)
    failures = output.split("short test summary info")[0]
    assert failures.count("Check that the server is running") == 1


# -- turning a verdict into an outcome, and a server that could not be observed ------------------------------


def test_vllm_enforce_turns_each_verdict_into_pytests_outcome(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_checks="""
        import pytest
        from pytest_vllm_metrics.outcome import Outcome, Verdict

        @pytest.mark.parametrize("outcome", list(Outcome))
        @pytest.mark.must
        def test_check(outcome, vllm_enforce):
            diagnosis = "vLLM documents it" if outcome == Outcome.XFAILED else None
            vllm_enforce(Verdict(outcome, f"the {outcome} reason\\nsecond line", diagnosis=diagnosis))
    """)
    result = run_suite(pytester)
    # an inconclusive verdict is pytest's skip, counted apart by the report hooks
    assert result.parseoutcomes() == {"passed": 1, "failed": 1, "xfailed": 1, "skipped": 1, "inconclusive": 1}
    result.stdout.fnmatch_lines([
        "could not observe (neither passed nor failed; rerun or fix the setup):",
        "  every target: the inconclusive reason second line [[]1 check[]]",
        "PASSED test_checks.py::test_check[[]passed[]]",
        "SKIPPED * the skipped reason",
        "XFAIL test_checks.py::test_check[[]xfailed[]] - vLLM documents it",  # the diagnosis is the reason
        "FAILED test_checks.py::test_check[[]failed[]] - Failed: the failed reason",
    ])
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert "Traceback" not in result.stdout.str() and "vllm_enforce(Verdict" not in result.stdout.str()


def test_vllm_delta_of_a_server_that_could_not_be_scraped_fails_with_the_cause_in_full(
        pytester: pytest.Pytester) -> None:
    # a user's own test states the scrape's problem itself: test_reachable may not be in the run
    pytester.makepyfile(test_team="def test_mine(vllm_delta):\n    assert vllm_delta\n")
    result = run_suite(pytester, "--vllm-url=http://127.0.0.1:9", "test_team.py")
    result.assert_outcomes(errors=1)  # at the fixture's setup, with the cause and its fix, no traceback
    result.stdout.fnmatch_lines(["*ERROR at setup of test_mine[[]127.0.0.1:9[]]*",
                                 "127.0.0.1:9: cannot connect to http://127.0.0.1:9 (*). Check that the server is "
                                 "running and that the host and port are right."])
    assert "see test_reachable" not in result.stdout.str() and "Traceback" not in result.stdout.str()


def test_the_session_fixtures_give_the_runs_settings_and_targets(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_team="""
        def test_fleet(vllm_targets, vllm_pods, vllm_settings, vllm_catalog):
            assert [t.name for t in vllm_targets] == ["sim-x86_64", "sim-arm64-cpu"]
            assert vllm_pods == []  # no Kubernetes discovery in this run
            assert vllm_settings.vllm_requests == 3 and vllm_catalog.entries
    """)
    run_suite(pytester, "--vllm-sim=x86_64", "--vllm-sim=arm64-cpu", "--vllm-requests=3",
              "test_team.py").assert_outcomes(passed=1)
