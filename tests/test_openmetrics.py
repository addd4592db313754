"""OpenMetrics answers: a server (or a proxy) that answers OpenMetrics 1.0 whatever the suite asks for gives the
same Snapshot, and the same verdicts, as one that answers Prometheus text 0.0.4."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import CAPTURES, comparable, verdicts
from pytest_vllm_metrics.scrape import ACCEPT, FetchError, scrape
from pytest_vllm_metrics.sim import SimHost, build_app, get_profile
from pytest_vllm_metrics.sim._openmetrics import CONTENT_TYPE, to_openmetrics
from pytest_vllm_metrics.snapshot import TEXT_FORMAT, Delta, ExpositionError, Snapshot
from pytest_vllm_metrics.targets import Target

# -- the real vLLM 0.32 captures, converted -------------------------------------------------------------


@pytest.mark.parametrize("capture", CAPTURES, ids=[c.name for c in CAPTURES])
def test_captures_as_openmetrics_give_the_text_snapshot(capture: Path) -> None:
    text = capture.read_text()
    page = to_openmetrics(text)
    assert page.endswith("\n# EOF\n")
    # the converter keeps vLLM's names (prometheus_client's own exposition would write vllm_, issue #1177)
    assert "# TYPE vllm:prompt_tokens counter\n" in page and "\nvllm:prompt_tokens_total{" in page
    assert "vllm_" not in page
    expected, parsed = Snapshot.parse(text), Snapshot.parse_openmetrics(page)
    assert parsed.format == "openmetrics/1.0.0" and expected.format == TEXT_FORMAT
    # family by family (name, type, help, label names), then series by series, then created timestamps
    assert parsed.families == expected.families
    assert {f.type for f in parsed.families.values()} == {"counter", "gauge", "histogram", "summary"}
    assert comparable(parsed)[1] == comparable(expected)[1]
    assert parsed.created == expected.created
    # the comparison covers real _created timestamps: counters' and histograms', and once there was HTTP
    # traffic, summaries' (http_request_size_bytes)
    dated = {expected.families[name + ("_total" if name + "_total" in expected.families else "")].type
             for name in expected.created}
    traffic = "after" in capture.name or "during" in capture.name
    assert dated == {"counter", "histogram"} | ({"summary"} if traffic else set())


@pytest.mark.parametrize("caching", ["on", "off"])
def test_deltas_between_openmetrics_captures_equal_the_text_ones(caching: str) -> None:
    """What the checks compute (increases, resets by `_created`) is the same whichever format was scraped."""
    pages = [(CAPTURES[0].parent / f"prefix-caching-{caching}.{when}.prom").read_text() for when in ("before", "after")]
    text = Delta(*(Snapshot.parse(page) for page in pages))
    openmetrics = Delta(*(Snapshot.parse_openmetrics(to_openmetrics(page)) for page in pages))
    counted = [name for name, family in text.after.families.items() if family.type in ("counter", "histogram")]
    assert len(counted) > 30
    for name in counted:
        assert openmetrics.change(name) == text.change(name), name
    # Delta finds the OpenMetrics _created where it looks: a series whose _created moved reads as a reset
    after = Snapshot.parse_openmetrics(to_openmetrics(pages[1]))
    assert not Delta(openmetrics.before, after).change("vllm:prompt_tokens_total").reset
    stamp = re.compile(r"^(vllm:prompt_tokens_created\{[^}]*\} )(\S+)$", re.M)
    assert stamp.search(pages[1])
    moved = stamp.sub(lambda m: m.group(1) + repr(float(m.group(2)) + 1), pages[1])
    after = Snapshot.parse_openmetrics(to_openmetrics(moved))
    assert Delta(openmetrics.before, after).change("vllm:prompt_tokens_total").reset


# -- small fixed examples -----------------------------------------------------------------------------

OPENMETRICS = """\
# HELP vllm:prompt_tokens Number of prefill tokens processed.
# TYPE vllm:prompt_tokens counter
vllm:prompt_tokens_total{engine="0",model_name="tiny"} 42.0 # {trace_id="4bf92f3577b34da6"} 7.0 1795881240.5
vllm:prompt_tokens_created{engine="0",model_name="tiny"} 1.7958812e+09
vllm:prompt_tokens_total{engine="1",model_name="tiny"} 8
vllm:prompt_tokens_created{engine="1",model_name="tiny"} 1.7958813e+09
# HELP vllm:e2e_request_latency_seconds Histogram of e2e request latency in seconds.
# TYPE vllm:e2e_request_latency_seconds histogram
# UNIT vllm:e2e_request_latency_seconds seconds
vllm:e2e_request_latency_seconds_bucket{le="0.5",model_name="tiny"} 3 # {trace_id="a"} 0.25
vllm:e2e_request_latency_seconds_bucket{le="+Inf",model_name="tiny"} 4
vllm:e2e_request_latency_seconds_count{model_name="tiny"} 4
vllm:e2e_request_latency_seconds_sum{model_name="tiny"} 2.5
vllm:e2e_request_latency_seconds_created{model_name="tiny"} 1.7958812e+09
# HELP vllm:build A build info metric.
# TYPE vllm:build info
vllm:build_info{version="0.32.0",revision="abc"} 1
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="tiny"} 2 1795881240.123
process_untyped 3
# EOF
"""

TEXT = """\
# HELP vllm:prompt_tokens_total Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{engine="0",model_name="tiny"} 42.0
vllm:prompt_tokens_total{engine="1",model_name="tiny"} 8.0
# HELP vllm:prompt_tokens_created Number of prefill tokens processed.
# TYPE vllm:prompt_tokens_created gauge
vllm:prompt_tokens_created{engine="0",model_name="tiny"} 1.7958812e+09
vllm:prompt_tokens_created{engine="1",model_name="tiny"} 1.7958813e+09
# HELP vllm:e2e_request_latency_seconds Histogram of e2e request latency in seconds.
# TYPE vllm:e2e_request_latency_seconds histogram
vllm:e2e_request_latency_seconds_bucket{le="0.5",model_name="tiny"} 3.0
vllm:e2e_request_latency_seconds_bucket{le="+Inf",model_name="tiny"} 4.0
vllm:e2e_request_latency_seconds_count{model_name="tiny"} 4.0
vllm:e2e_request_latency_seconds_sum{model_name="tiny"} 2.5
# HELP vllm:e2e_request_latency_seconds_created Histogram of e2e request latency in seconds.
# TYPE vllm:e2e_request_latency_seconds_created gauge
vllm:e2e_request_latency_seconds_created{model_name="tiny"} 1.7958812e+09
# HELP vllm:build_info A build info metric.
# TYPE vllm:build_info gauge
vllm:build_info{revision="abc",version="0.32.0"} 1.0
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="tiny"} 2.0
process_untyped 3.0
"""


def test_fixed_page_counter_histogram_info_exemplars_timestamps_and_eof() -> None:
    parsed = Snapshot.parse_openmetrics(OPENMETRICS)
    assert comparable(parsed) == comparable(Snapshot.parse(TEXT))
    assert parsed.family("vllm:prompt_tokens_total") is not None
    assert parsed.families["vllm:prompt_tokens_total"].type == "counter"  # not "unknown": the reported bug
    assert parsed.value("vllm:prompt_tokens_total") == 50.0  # exemplar values are not samples
    assert parsed.value("vllm:e2e_request_latency_seconds") == 4.0  # a histogram counts by _count
    assert parsed.families["vllm:build_info"].type == "gauge"  # an info metric, as text format shows it
    assert parsed.info("vllm:build_info") == {"revision": "abc", "version": "0.32.0"}
    assert parsed.value("vllm:num_requests_running") == 2.0  # the timestamp is not the value
    assert parsed.families["process_untyped"].type == "unknown"
    assert parsed.created == {
        "vllm:prompt_tokens": {(("engine", "0"), ("model_name", "tiny")): 1.7958812e9,
                               (("engine", "1"), ("model_name", "tiny")): 1.7958813e9},
        "vllm:e2e_request_latency_seconds": {(("model_name", "tiny"),): 1.7958812e9},
    }
    assert "vllm:prompt_tokens_created" not in parsed.samples  # kept aside, as from text format
    assert to_openmetrics(TEXT).endswith("# EOF\n")
    assert comparable(Snapshot.parse_openmetrics(to_openmetrics(TEXT))) == comparable(parsed)


def test_openmetrics_version_is_recorded() -> None:
    assert Snapshot.parse_openmetrics("# EOF\n", "0.0.1").format == "openmetrics/0.0.1"


@pytest.mark.parametrize(("page", "says"), [
    (OPENMETRICS.removesuffix("# EOF\n"), "Missing # EOF"),
    (OPENMETRICS.replace("# TYPE vllm:num_requests_running gauge\n", "\n"), "blank line"),
    (OPENMETRICS + "vllm:late 1\n", "after # EOF"),
    (OPENMETRICS.replace('_count{model_name="tiny"} 4', '_count{model_name="tiny"} 5'), "Count does not match"),
    (TEXT, "Clashing name"),  # text format sent as OpenMetrics: a counter's TYPE names its _total
])
def test_pages_that_are_not_openmetrics_raise_exposition_error(page: str, says: str) -> None:
    with pytest.raises(ExpositionError, match=says):
        Snapshot.parse_openmetrics(page)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(
    st.builds(lambda lines, cut, junk: "\n".join(lines[:cut]) + junk + "\n".join(lines[cut:]),
              st.just(OPENMETRICS.splitlines()), st.integers(0, 25),
              st.sampled_from(["", " ", "#", "{", "}", '"', "\\", "_total", " # {", "NaN", "\n", "le"])),
    st.text(alphabet='vlm:_ab{}="#\n\t ,.0123456789eEINnaf+-\\HELPTYPEUNITcountergaugeinfo', max_size=200),
))
def test_any_text_is_a_snapshot_or_an_exposition_error(text: str) -> None:
    with contextlib.suppress(ExpositionError):  # anything else (a TypeError, an IndexError) fails the test
        Snapshot.parse_openmetrics(text)


# -- over HTTP: the simulator and scrape() ------------------------------------------------------------


def _scrape(url: str) -> Snapshot:
    async def run() -> Snapshot:
        async with httpx.AsyncClient() as client:
            return await scrape(client, Target("sim", url), "/metrics", 30.0)

    return asyncio.run(run())


def test_simulator_answers_openmetrics_whatever_the_accept_header(sim_host: SimHost) -> None:
    sim = sim_host.start(get_profile("x86_64").replace(exposition="openmetrics"))
    answer = httpx.get(sim.url + "/metrics", headers={"Accept": ACCEPT})
    assert answer.headers["content-type"] == CONTENT_TYPE == (
        "application/openmetrics-text; version=1.0.0; charset=utf-8")
    assert answer.text.endswith("\n# EOF\n")
    assert "# TYPE vllm:prompt_tokens counter\n" in answer.text and "vllm_" not in answer.text
    snapshot = _scrape(sim.url)
    assert snapshot.format == "openmetrics/1.0.0"
    assert snapshot.families["vllm:prompt_tokens_total"].type == "counter"
    assert snapshot.created["vllm:prompt_tokens"]


def test_simulator_pages_give_the_same_snapshot_in_both_formats(sim_host: SimHost) -> None:
    sim = sim_host.start(get_profile("x86_64"))
    httpx.post(sim.url + "/v1/completions", json={"model": "tiny", "prompt": "a b c", "max_tokens": 3})
    text = httpx.get(sim.url + "/metrics").text
    assert comparable(Snapshot.parse_openmetrics(to_openmetrics(text))) == comparable(Snapshot.parse(text))
    assert _scrape(sim.url).format == TEXT_FORMAT


def test_truncated_openmetrics_page_is_a_fetch_error_naming_openmetrics(sim_host: SimHost) -> None:
    sim = sim_host.start(get_profile("x86_64").replace(exposition="openmetrics", fault="metrics-truncated"))
    with pytest.raises(FetchError, match=r"sim: GET /metrics is not OpenMetrics text format, as its Content-Type "
                                         r"says \(.*\); first bytes: .*Check that the URL is vLLM's /metrics") as error:
        _scrape(sim.url)
    assert not error.value.inconclusive  # the server answered, with a broken page: a finding


def test_empty_openmetrics_page_is_an_empty_page(sim_host: SimHost) -> None:
    sim = sim_host.start(get_profile("x86_64").replace(exposition="openmetrics", fault="metrics-empty"))
    with pytest.raises(FetchError, match="answered an empty metrics page"):
        _scrape(sim.url)


def test_unknown_exposition_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown exposition 'protobuf'"):
        build_app(get_profile("x86_64").replace(exposition="protobuf"))


def test_bundled_suite_gives_the_same_verdicts_against_openmetrics(pytester: pytest.Pytester,
                                                                    sim_host: SimHost) -> None:
    """As a user runs it: the whole bundled suite, once against a text server, once against an OpenMetrics one."""
    outcomes = {}
    for exposition in ("text", "openmetrics"):
        sim = sim_host.start(get_profile("x86_64").replace(exposition=exposition))
        result = pytester.runpytest("-p", "no:cacheprovider", f"--vllm-url={sim.url}", "--vllm-report=report.json")
        assert result.parseoutcomes().get("failed", 0) == 0, result.stdout.str()
        assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
        # the target is named by its URL: compare per test
        outcomes[exposition] = {test: outcome for (test, _), outcome in verdicts(pytester).items()}
        # the evidence says which format the server answered in
        report = json.loads((pytester.path / "report.json").read_text())
        assert [i["exposition"] for i in report["implementations"]] == [
            "openmetrics/1.0.0" if exposition == "openmetrics" else TEXT_FORMAT]
    assert outcomes["openmetrics"] == outcomes["text"]
    assert len(outcomes["text"]) > 50 and "passed" in outcomes["text"].values()
