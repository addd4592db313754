"""The plugin's hooks (plugin.py), as users run pytest: collection of their own tests and the bundled suite, the
test ids of the targets, nothing on the network before tests run, and the hint when there is nothing to run."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from conftest import dashboard_file, panel_json, run_suite
from pytest_vllm_metrics import plugin
from pytest_vllm_metrics.catalog import load_catalog
from pytest_vllm_metrics.run import conformance_dir

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
    pytester.makepyfile(test_each="""
        def test_each(vllm_target):
            assert vllm_target.name in ("sim-x86_64", "sim-x86_64-2")
    """)
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
    result = run_suite(pytester, "-v", "test_each.py")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["test_each.py::test_each[[]no-target[]] SKIPPED*",
                                 "SKIPPED * no vLLM target: pass --vllm-url, --vllm-sim or --vllm-namespace"])


@pytest.mark.parametrize(("args", "reason"), [
    (("--vllm-sim=x86_64", "--vllm-shard=1/2"),
     "no vLLM target in shard 1 of 2: the fleet has 1 target, in another shard"),
    (("--vllm-sim=x86_64", "--vllm-sim=x86_64", "--vllm-shard=2/3"),
     "no vLLM target in shard 2 of 3: the fleet has 2 targets, all in other shards"),
    (("--vllm-shard=1/2",), "no vLLM target: pass --vllm-url, --vllm-sim or --vllm-namespace"),
], ids=["one-target-in-another-shard", "fleet-in-other-shards", "no-fleet"])
def test_a_shard_without_a_target_of_its_own_skips_saying_whether_the_fleet_has_any(
        pytester: pytest.Pytester, args: tuple[str, ...], reason: str) -> None:
    pytester.makepyfile(test_each="def test_each(vllm_target):\n    pass\n")
    result = run_suite(pytester, *args, "test_each.py")
    result.assert_outcomes(skipped=1)
    assert f"SKIPPED [1] test_each.py: {reason}" in result.outlines


@pytest.mark.parametrize("args", [("--vllm-sim=x86_64", "--vllm-sim=arm64-cpu"), ()], ids=["two-targets", "none"])
def test_a_users_tests_of_a_target_are_collected_target_by_target(
        pytester: pytest.Pytester, args: tuple[str, ...]) -> None:
    pytester.makepyfile(test_order="""
        def test_a(vllm_target):
            pass

        def test_b():
            pass

        def test_c(vllm_target):
            pass
    """)
    result = pytester.runpytest("-p", "no:cacheprovider", "--collect-only", "-q", *args, "test_order.py")
    ids = [f"[{name}]" for name in ("sim-x86_64", "sim-arm64-cpu")] if args else ["[no-target]"]
    assert result.outlines[:len(ids) * 2 + 1] == [
        *(f"test_order.py::test_{test}{id}" for id in ids for test in "ac"), "test_order.py::test_b"]


def test_a_users_test_of_a_panel_or_consumer_runs_once_per_reader_as_a_must(pytester: pytest.Pytester) -> None:
    dashboard_file(pytester.path / "dash.json", [panel_json("Running", "vllm:num_requests_running")])
    pytester.makefile(".yaml", rules="""
        groups:
          - name: g
            rules:
              - alert: VLLMQueueLong
                expr: sum(vllm:num_requests_waiting) > 10
    """)
    pytester.makepyfile(test_reader="""
        def test_panel(vllm_panel, vllm_level):
            assert (vllm_panel.title, vllm_level) == ("Running", "MUST")

        def test_consumer(vllm_consumer, vllm_level):
            assert (vllm_consumer.kind, vllm_consumer.title, vllm_level) == ("alert", "VLLMQueueLong", "MUST")
    """)
    result = run_suite(pytester, "--grafana-dashboard=dash.json", "--prometheus-rules=rules.yaml", "test_reader.py")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["PASSED test_reader.py::test_panel[[]dash::Running[]]",
                                 "PASSED test_reader.py::test_consumer[[]alert:rules::VLLMQueueLong[]]"])


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


# -- the report header ---------------------------------------------------------------------------------------


def header(pytester: pytest.Pytester, *args: str) -> list[str]:
    """The lines the plugin adds to pytest's header for these options."""
    return plugin.pytest_report_header(pytester.parseconfigure(*args))


def test_the_header_names_every_target_and_the_catalogs_size(pytester: pytest.Pytester) -> None:
    lines = header(pytester, "--vllm-url=http://10.0.0.7:8200", "--vllm-url=http://10.0.0.8:8200",
                   "--vllm-sim=x86_64", "--vllm-namespace=llm-d")
    assert lines[0] == (f"vllm-metrics: targets: 10.0.0.7:8200, 10.0.0.8:8200, sim-x86_64, the vLLM pods of namespace "
                        f"llm-d; catalog of {len(load_catalog())} families")
    assert not any("shard" in line for line in lines)  # unsharded: no word of shards
    assert all(line.startswith("  ") for line in lines[1:])


@pytest.mark.parametrize(("shard", "line"), [
    ("0/3", "  shard 0 of 3: checks the targets at positions 0, 3, 6, ... of their (namespace, name) order; judges "
            "the fleet's readers (panels, rules, scalers, the endpoint picker)"),
    ("1/3", "  shard 1 of 3: checks the targets at positions 1, 4, 7, ... of their (namespace, name) order; leaves "
            "the fleet's readers to shard 0"),
])
def test_a_shards_header_says_which_positions_it_checks_and_who_judges_the_readers(
        pytester: pytest.Pytester, shard: str, line: str) -> None:
    lines = header(pytester, "--vllm-sim=x86_64", f"--vllm-shard={shard}")
    assert lines[0].startswith("vllm-metrics: targets: sim-x86_64; catalog of ")
    assert lines[1] == line


def test_without_a_target_the_header_says_nothing(pytester: pytest.Pytester) -> None:
    assert header(pytester) == []


# -- which of the bundled suite's files are collected -------------------------------------------------------


@pytest.mark.parametrize(("args", "collected"), [
    ((), {"test_server.py"}),
    ((f"--grafana-dashboard={ROOT / 'tests/data/dashboards/llm-d-performance.json'}",),
     {"test_server.py", "test_dashboards.py"}),
    ((f"--prometheus-rules={ROOT / 'tests/data/rules/vllm-alerts.yaml'}",), {"test_server.py", "test_consumers.py"}),
], ids=["plain", "dashboard", "rules"])
def test_the_bundled_dashboard_and_consumer_checks_are_collected_only_when_asked_for(
        pytester: pytest.Pytester, args: tuple[str, ...], collected: set[str]) -> None:
    config = pytester.parseconfigure("--vllm-sim=x86_64", *args)
    names = ("test_server.py", "test_dashboards.py", "test_consumers.py")
    assert {name for name in names if not plugin.pytest_ignore_collect(conformance_dir() / name, config)} == collected
    # a user's own files of the same names are theirs: always collected
    assert {plugin.pytest_ignore_collect(pytester.path / name, config) for name in names} == {None}


# -- the hint where there is nothing to run, as pytest's end of run gives it ---------------------------------


@pytest.mark.parametrize(("args", "status", "hinted"), [
    ((), pytest.ExitCode.NO_TESTS_COLLECTED, True),
    # a module that failed to import (under --continue-on-collection-errors, a failure): its error is the news
    ((), pytest.ExitCode.INTERRUPTED, False), ((), pytest.ExitCode.TESTS_FAILED, False),
    (("--vllm-sim=x86_64",), pytest.ExitCode.NO_TESTS_COLLECTED, False),  # the target's tests were deselected
], ids=["nothing-collected", "interrupted", "failed", "with-a-target"])
def test_the_hint_is_given_only_when_nothing_was_collected_and_no_target_given(
        pytester: pytest.Pytester, args: tuple[str, ...], status: pytest.ExitCode, hinted: bool) -> None:
    config = pytester.parseconfigure(*args)
    out = io.StringIO()
    plugin.pytest_terminal_summary(pytest.TerminalReporter(config, out), status, config)
    assert out.getvalue() == (f"{HINT}\n" if hinted else "")
