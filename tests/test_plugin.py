"""The plugin's hooks (plugin.py), as users run pytest: collection of their own tests and the bundled suite, the
test ids of the targets, nothing on the network before tests run, and the hint when there is nothing to run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import run_suite
from pytest_vllm_metrics.catalog import load_catalog

ROOT = Path(__file__).parent.parent


# -- collection -------------------------------------------------------------------------------------------------


def test_explicit_test_paths_run_as_usual(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_mine="def test_alone():\n    pass\n")
    result = run_suite(pytester, "--vllm-sim=x86_64", "test_mine.py")
    result.assert_outcomes(passed=1)



def test_nothing_touches_the_network_before_tests_run(pytester: pytest.Pytester) -> None:
    # Port 9 refuses connections: help and collection must not try it.
    assert pytester.runpytest("--vllm-url=http://127.0.0.1:9", "--help").ret == 0
    collected = pytester.runpytest("--vllm-url=http://127.0.0.1:9", "--collect-only", "-q")
    assert collected.ret == 0
    collected.stdout.fnmatch_lines(["*test_present[[]vllm:num_requests_running[]]*"])
    assert "cannot connect" not in collected.stdout.str()


def test_several_simulators_get_distinct_names(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_each="def test_each(vllm_target):\n    pass\n")
    result = run_suite(pytester, "--vllm-sim=x86_64", "--vllm-sim=x86_64", "test_each.py")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*test_each[[]sim-x86_64[]]*", "*test_each[[]sim-x86_64-2[]]*"])



def test_the_bundled_suite_has_as_many_tests_for_three_servers_as_for_one(pytester: pytest.Pytester) -> None:
    def collected(*args: str) -> int:
        result = pytester.runpytest("--collect-only", "-q", *args)
        return int(result.outlines[-1].split()[0])  # "84 tests collected in 0.7s"

    one = collected("--vllm-sim=x86_64")
    assert one > 60
    assert collected("--vllm-sim=x86_64", "--vllm-sim=arm64-cpu", "--vllm-sim=x86_64") == one


def test_a_users_test_of_a_target_without_any_target_is_skipped_saying_how_to_give_one(
        pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_each="def test_each(vllm_target):\n    pass\n")
    result = run_suite(pytester, "test_each.py")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED * no vLLM target: pass --vllm-url, --vllm-sim or --vllm-namespace"])


def test_a_users_test_of_catalog_entries_runs_once_per_entry_with_its_level_and_feature_marks(
        pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_entries="""
        def test_entry(vllm_entry, vllm_level):
            assert vllm_level == vllm_entry.level

        def test_moving(vllm_moving_entry):
            assert vllm_moving_entry.moves
    """)
    catalog = load_catalog()
    result = run_suite(pytester, "test_entries.py")
    result.assert_outcomes(passed=len(catalog.entries) + len(catalog.moving()))
    prefix = [e for e in catalog.entries if e.feature == "prefix_caching"]
    assert prefix  # the mark below would select nothing otherwise
    marked = run_suite(pytester, "test_entries.py::test_entry", "-m", "prefix_cache")
    marked.assert_outcomes(passed=len(prefix))
    assert run_suite(pytester, "test_entries.py::test_entry", "-m", "should").parseoutcomes()["passed"] == len(
        [e for e in catalog.entries if e.level == "SHOULD"])


# -- `pytest` where there is nothing to run ------------------------------------------------------------------

HINT = ("vllm-metrics: no test here and no vLLM target given; to run the bundled conformance suite pass "
        "--vllm-namespace=NAMESPACE, --vllm-url=URL or --vllm-sim, e.g. pytest --vllm-sim=x86_64 --vllm-sim=arm64-cpu "
        "--html=report.html --self-contained-html")


def test_pytest_with_no_tests_and_no_target_says_how_to_run_the_suite(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    assert HINT in result.outlines
    # the README's first example is the one named
    assert "pytest --vllm-sim=x86_64 --vllm-sim=arm64-cpu --html=report.html --self-contained-html" in (
        ROOT / "README.md").read_text()


@pytest.mark.parametrize("args", [(), ("-k", "nothing_matches"),
                                  pytest.param(("-n", "1", "-k", "nothing_matches"), marks=pytest.mark.spawns)],
                         ids=["run", "deselected", "deselected-by-xdist-workers"])
def test_a_run_of_the_users_own_tests_is_unchanged(pytester: pytest.Pytester, args: tuple[str, ...]) -> None:
    pytester.makepyfile(test_mine="def test_alone():\n    pass\n")
    mine = pytester.runpytest("-p", "no:cacheprovider", *args)
    without = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:vllm_metrics", *args)
    assert mine.ret == without.ret
    assert _unclocked(mine) == _unclocked(without)
    assert HINT not in mine.outlines


def _unclocked(result: pytest.RunResult) -> list[str]:
    """The output without what differs between two runs of the same tests: times, the plugin list, xdist's
    worker lines."""
    return [re.sub(r" in [\d.]+s.*", "", line) for line in result.outlines
            if not line.startswith(("plugins:", "created:", "[gw", "bringing up")) and line.strip()]
