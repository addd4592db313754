"""--vllm-epp-url: the endpoint picker's own count of the pods it could not read stays flat over the run.

The page is the one in tests/data/engines/llm-d-epp.prom (llm-d-router's two data-layer counters, exactly as
client_golang renders them; its header gives the source); the run is over the simulated EPP's real HTTP."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path

import pytest

from conftest import closed_url, flat, said
from pytest_vllm_metrics.epp import Compared
from pytest_vllm_metrics.epp_errors import COUNTERS, cover_span, flat_errors, span
from pytest_vllm_metrics.outcome import Level, Outcome, Problem, Verdict
from pytest_vllm_metrics.settings import Settings
from pytest_vllm_metrics.sim import SimHost, get_profile
from pytest_vllm_metrics.sim.epp import start_epp
from pytest_vllm_metrics.snapshot import Snapshot
from pytest_vllm_metrics.targets import Target, host_port

EPP_PAGE = (Path(__file__).parent / "data" / "engines" / "llm-d-epp.prom").read_text()
POLL = 'llm_d_epp_datalayer_poll_errors_total{source_type="metrics-data-source"}'
EXTRACT = ('llm_d_epp_datalayer_extract_errors_total{extractor_type="core-metrics-extractor",'
           'source_type="metrics-data-source"}')


def _over(first: str, last: str, seconds: float = 3.0) -> Compared:
    return Compared(pages=[(100.0, Snapshot.parse(first)), (100.0 + seconds, Snapshot.parse(last))])


def test_counters_that_stay_flat_pass_with_what_they_held() -> None:
    verdict = flat_errors(_over(EPP_PAGE, EPP_PAGE))
    assert verdict.outcome == Outcome.PASSED
    assert set(COUNTERS) <= set(verdict.evidence)
    assert verdict.evidence["llm_d_epp_datalayer_poll_errors_total"] == {
        "source_type=metrics-data-source": {"first": 3.0, "last": 3.0}}


@pytest.mark.parametrize(("counter", "by"), [(EXTRACT, 1), (POLL, 1), (EXTRACT, 40)])
def test_a_counter_that_rises_fails_naming_its_labels(counter: str, by: int) -> None:
    before = {EXTRACT: 17, POLL: 3}[counter]
    last = EPP_PAGE.replace(f"{counter} {before}", f"{counter} {before + by}")
    verdict = flat_errors(_over(EPP_PAGE, last, 4.25))
    assert verdict.outcome == Outcome.FAILED
    assert verdict.message.startswith(f"over 4.2 s of the run the endpoint picker counted errors reading the pods it "
                                      f"routes to: {counter} rose by {by}: ")
    assert ("scrape of a pod's metrics fails" in verdict.message) is (counter == POLL)


def test_a_series_that_appears_during_the_run_rose_from_zero() -> None:
    # client_golang shows a labelled counter from its first increment: absent at the start is 0
    first = "# TYPE llm_d_epp_ready_endpoints gauge\nllm_d_epp_ready_endpoints{name=\"p\"} 2\n"
    verdict = flat_errors(_over(first, EPP_PAGE))
    assert verdict.outcome == Outcome.FAILED
    assert f"{EXTRACT} rose by 17" in verdict.message and f"{POLL} rose by 3" in verdict.message


def test_an_epp_without_the_counters_is_skipped_with_the_reason() -> None:
    page = "# TYPE inference_pool_ready_pods gauge\ninference_pool_ready_pods{name=\"p\"} 2\n"
    verdict = flat_errors(_over(page, page))
    assert verdict.outcome == Outcome.SKIPPED
    assert "an EPP older than llm-d-router's data layer" in verdict.message


def test_a_counter_that_went_down_means_a_restart_and_is_inconclusive() -> None:
    verdict = flat_errors(_over(EPP_PAGE, EPP_PAGE.replace(f"{POLL} 3", f"{POLL} 0")))
    assert verdict.outcome == Outcome.INCONCLUSIVE and "it restarted during the run" in verdict.message


def test_one_read_or_an_unreadable_epp_cannot_tell() -> None:
    once = Compared(pages=[(1.0, Snapshot.parse(EPP_PAGE))])
    assert flat_errors(once).outcome == Outcome.INCONCLUSIVE
    refused = Compared(error=Problem("the endpoint picker at http://e:9090 refused /metrics (HTTP 401)"))
    assert flat_errors(refused).outcome == Outcome.INCONCLUSIVE


# -- as a user runs it, over the simulated EPP ---------------------------------------------------------------


def _run(pytester: pytest.Pytester, sim_host: SimHost, **options: object) -> tuple[pytest.RunResult, dict[str, str]]:
    a, b = sim_host.start(get_profile("x86_64")), sim_host.start(get_profile("x86_64"))
    pods = {host_port(a.url): a.url, host_port(b.url): b.url}
    extra = options.pop("extra", {})
    assert isinstance(extra, dict)
    epp = start_epp(sim_host, {**pods, **extra}, naming=("llm_d_epp",), **options)
    result = pytester.runpytest("-p", "no:cacheprovider", "-rA", f"--vllm-url={a.url}", f"--vllm-url={b.url}",
                                f"--vllm-epp-url={epp}", "-k", "test_epp_reads_every_pod",
                                "--vllm-report=report.json")
    rows = json.loads((pytester.path / "report.json").read_text())["tests"]
    (row,) = rows
    return result, row


def test_the_simulated_epp_reads_every_pod_over_several_seconds(pytester: pytest.Pytester,
                                                                sim_host: SimHost) -> None:
    result, row = _run(pytester, sim_host)
    assert result.ret == pytest.ExitCode.OK, flat(result)
    assert row["outcome"] == "passed"
    # read at least `span` apart, even though the pool agreed at once
    assert row["evidence"]["seconds"] >= span()


def test_an_epp_that_cannot_reach_a_pod_it_routes_to_fails_naming_the_source(pytester: pytest.Pytester,
                                                                             sim_host: SimHost) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        gone = f"http://127.0.0.1:{sock.getsockname()[1]}"
    result, row = _run(pytester, sim_host, extra={"decode-gone": gone})
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert row["outcome"] == "failed"
    assert said(result, f"{POLL} rose by ")


def test_an_epp_that_cannot_extract_a_metric_fails_naming_the_extractor(pytester: pytest.Pytester,
                                                                       sim_host: SimHost) -> None:
    result, row = _run(pytester, sim_host, fault="extract-errors")
    assert row["outcome"] == "failed" and result.ret == pytest.ExitCode.TESTS_FAILED
    assert said(result, f"{EXTRACT} rose by ") and not said(result, "poll_errors_total{")
    assert said(result, "see the endpoint picker's engineConfigs check")


# -- watching long enough: cover_span reads the EPP once more over its own HTTP ----------------------------------


@pytest.fixture
def live_epp(sim_host: SimHost) -> str:
    """A simulated EPP that answers: a further read of it would replace the reads after the first."""
    sim = sim_host.start(get_profile("x86_64"))
    return start_epp(sim_host, {host_port(sim.url): sim.url}, naming=("llm_d_epp",))


def _pages_over(seconds: float, count: int = 2) -> Compared:
    """`count` reads of the bundled page, the last one now, `seconds` after the first."""
    now = time.monotonic()
    page = Snapshot.parse(EPP_PAGE)
    return Compared(pages=[(now - seconds + seconds * i / (count - 1), page) for i in range(count)])


def _cover(found: Compared, url: str) -> Compared:
    asyncio.run(cover_span(found, Target("epp", url), Settings(vllm_timeout=5.0)))
    return found


def test_reads_closer_than_the_span_are_followed_by_one_more_read_at_the_span(live_epp: str) -> None:
    found = _cover(_pages_over(span() - 0.5, count=3), live_epp)
    assert len(found.pages) == 2  # the first read, then the new one in place of the rest
    (start, first), (end, last) = found.pages
    assert end - start >= span()
    assert last is not first and last.family("llm_d_epp_datalayer_poll_errors_total") is not None  # the EPP's page


@pytest.mark.parametrize("seconds", [2.5, 3.0])  # exactly the span (conformance/epp.toml per_pod_seconds), beyond it
def test_reads_already_a_span_apart_are_kept(live_epp: str, seconds: float) -> None:
    assert span() == 2.5
    page = Snapshot.parse(EPP_PAGE)
    found = Compared(pages=[(100.0, page), (100.0 + seconds / 2, page), (100.0 + seconds, page)])
    pages = list(found.pages)
    assert _cover(found, live_epp).pages == pages  # no further read


def test_a_failed_or_empty_comparison_is_not_read_again(live_epp: str) -> None:
    refused = Compared(pages=_pages_over(0.0).pages, error=Problem("the endpoint picker refused /metrics"))
    pages = list(refused.pages)
    assert _cover(refused, live_epp).pages == pages
    assert _cover(Compared(), live_epp).pages == []


def test_a_further_read_that_fails_leaves_the_reads_as_they_were() -> None:
    found = _pages_over(span() - 0.2)
    pages = list(found.pages)
    assert _cover(found, closed_url()).pages == pages


def test_both_counters_rising_are_named_in_one_failure_with_what_each_held() -> None:
    last = EPP_PAGE.replace(f"{POLL} 3", f"{POLL} 5").replace(f"{EXTRACT} 17", f"{EXTRACT} 18")
    verdict = flat_errors(_over(EPP_PAGE, last, 4.25))
    assert verdict == Verdict(
        Outcome.FAILED, f"over 4.2 s of the run the endpoint picker counted errors reading the pods it routes to: "
                        f"{POLL} rose by 2: {COUNTERS['llm_d_epp_datalayer_poll_errors_total']}; {EXTRACT} rose by 1: "
                        f"{COUNTERS['llm_d_epp_datalayer_extract_errors_total']}. It schedules on stale or missing "
                        f"metrics for those pods; its log names them.", Level.MUST,
        {"seconds": 4.25,
         "llm_d_epp_datalayer_poll_errors_total": {"source_type=metrics-data-source": {"first": 3.0, "last": 5.0}},
         "llm_d_epp_datalayer_extract_errors_total": {
             "extractor_type=core-metrics-extractor,source_type=metrics-data-source": {"first": 17.0, "last": 18.0}}})
    assert flat_errors(_over(EPP_PAGE, EPP_PAGE, 3.004)) == Verdict(Outcome.PASSED, "", Level.MUST, {
        "seconds": 3.0,
        "llm_d_epp_datalayer_poll_errors_total": {"source_type=metrics-data-source": {"first": 3.0, "last": 3.0}},
        "llm_d_epp_datalayer_extract_errors_total": {
            "extractor_type=core-metrics-extractor,source_type=metrics-data-source": {"first": 17.0, "last": 17.0}}})


def test_a_counter_without_labels_is_shown_by_its_name() -> None:
    first = "# TYPE llm_d_epp_datalayer_poll_errors_total counter\nllm_d_epp_datalayer_poll_errors_total 2\n"
    verdict = flat_errors(_over(first, first.replace(" 2\n", " 3\n")))
    assert verdict.message.startswith("over 3.0 s of the run the endpoint picker counted errors reading the pods it "
                                      "routes to: llm_d_epp_datalayer_poll_errors_total{} rose by 1: ")
    assert verdict.evidence["llm_d_epp_datalayer_poll_errors_total"] == {"-": {"first": 2.0, "last": 3.0}}


def test_what_cannot_be_compared_says_why_in_full() -> None:
    went_down = flat_errors(_over(EPP_PAGE, EPP_PAGE.replace(f"{POLL} 3", f"{POLL} 0")))
    assert (went_down.outcome, went_down.message, went_down.level) == (
        Outcome.INCONCLUSIVE, "the endpoint picker's llm_d_epp_datalayer_poll_errors_total went down (3 to 0): it "
                              "restarted during the run; rerun.", Level.MUST)
    assert went_down.evidence["llm_d_epp_datalayer_poll_errors_total"] == {
        "source_type=metrics-data-source": {"first": 3.0, "last": 0.0}}
    page = "# TYPE inference_pool_ready_pods gauge\ninference_pool_ready_pods{name=\"p\"} 2\n"
    assert flat_errors(_over(page, page)) == Verdict(
        Outcome.SKIPPED, "the endpoint picker serves neither llm_d_epp_datalayer_poll_errors_total nor "
                         "llm_d_epp_datalayer_extract_errors_total: an EPP older than llm-d-router's data layer, or "
                         "one that has not failed to read a pod since it started (it exposes each series from its "
                         "first error).", Level.MUST)
    assert flat_errors(Compared(pages=[(1.0, Snapshot.parse(EPP_PAGE))])) == Verdict(
        Outcome.INCONCLUSIVE, "the endpoint picker was read only once, so its error counters could not be compared "
                              "over time; rerun.", Level.MUST)
    refused = Problem("the endpoint picker at http://e:9090 refused /metrics (HTTP 401)", inconclusive=False)
    assert flat_errors(Compared(error=refused)) == Verdict(Outcome.FAILED, refused.message, Level.MUST)


def test_the_first_and_last_reads_are_compared_whatever_came_between() -> None:
    risen = EPP_PAGE.replace(f"{POLL} 3", f"{POLL} 4")
    found = Compared(pages=[(100.0, Snapshot.parse(EPP_PAGE)), (101.0, Snapshot.parse(EPP_PAGE)),
                            (103.0, Snapshot.parse(risen))])
    verdict = flat_errors(found)
    assert (verdict.outcome, verdict.evidence["seconds"]) == (Outcome.FAILED, 3.0)
    assert f"{POLL} rose by 1: " in verdict.message


def test_a_series_that_appears_during_the_run_was_0_at_the_first_read() -> None:
    first = "# TYPE llm_d_epp_ready_endpoints gauge\nllm_d_epp_ready_endpoints{name=\"p\"} 2\n"
    evidence = flat_errors(_over(first, EPP_PAGE)).evidence
    assert evidence["llm_d_epp_datalayer_poll_errors_total"] == {
        "source_type=metrics-data-source": {"first": 0.0, "last": 3.0}}
