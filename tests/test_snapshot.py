"""Unit tests of pytest_vllm_metrics.snapshot against real vLLM 0.32.0 captures (tests/data/captures), in
Prometheus text 0.0.4 and converted to OpenMetrics 1.0 (the same Snapshot whichever format a server answers)."""

from __future__ import annotations

import contextlib
import pickle
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import CAPTURES, capture, capture_text, comparable
from pytest_vllm_metrics.sim._openmetrics import to_openmetrics
from pytest_vllm_metrics.snapshot import (
    OTHER_PROCESS,
    RESTARTED,
    TEXT_FORMAT,
    Decrease,
    Delta,
    ExpositionError,
    Snapshot,
)

HITS = "vllm:prefix_cache_hits_total"
QUERIES = "vllm:prefix_cache_queries_total"
PROMPT_TOKENS = "vllm:prompt_tokens_total"
E2E = "vllm:e2e_request_latency_seconds"
ENGINE = {"engine": "0", "model_name": "tiny"}


def delta(caching: str) -> Delta:
    """The change across the 7-request workload of one capture pair ("on" or "off")."""
    return Delta(capture(f"prefix-caching-{caching}.before"), capture(f"prefix-caching-{caching}.after"))


def replace_line(text: str, pattern: str, new_line: str) -> str:
    """`text` with the single line matching `pattern` (a regex anchored at line start) replaced."""
    updated, count = re.subn(rf"^{pattern}.*$", new_line, text, flags=re.MULTILINE)
    assert count == 1, f"expected exactly one line matching {pattern!r}, found {count}"
    return updated


def restarted_text(base: str, *, prompt_tokens: float, created: float | None = None) -> str:
    """`base` with vllm:prompt_tokens_total set to `prompt_tokens` and, if given, a new `_created` stamp."""
    labels = '{engine="0",model_name="tiny"}'
    text = replace_line(base, re.escape(f"vllm:prompt_tokens_total{labels}"),
                        f"vllm:prompt_tokens_total{labels} {prompt_tokens}")
    if created is not None:
        text = replace_line(text, re.escape(f"vllm:prompt_tokens_created{labels}"),
                            f"vllm:prompt_tokens_created{labels} {created}")
    return text


# -- parsing the real captures -------------------------------------------------------------------


@pytest.mark.parametrize("name", [
    "prefix-caching-on.before", "prefix-caching-on.after",
    "prefix-caching-off.before", "prefix-caching-off.after",
])
def test_every_capture_parses_with_the_vllm_core_families(name: str) -> None:
    names = capture(name).names()

    assert {HITS, QUERIES, PROMPT_TOKENS, E2E, "vllm:cache_config_info", "vllm:num_requests_running"} <= names


def test_counters_are_named_with_their_total_suffix() -> None:
    family = capture("prefix-caching-on.before").family(PROMPT_TOKENS)

    assert family is not None
    assert family.name == PROMPT_TOKENS
    assert family.type == "counter"
    assert family.label_names == frozenset({"engine", "model_name"})
    assert family.help == "Number of prefill tokens processed."


def test_counter_can_be_asked_for_without_total() -> None:
    before = capture("prefix-caching-on.before")
    after = capture("prefix-caching-on.after")

    assert before.family("vllm:prompt_tokens") == before.family(PROMPT_TOKENS)
    assert after.value("vllm:prompt_tokens") == 3450.0
    assert delta("on").increase("vllm:prompt_tokens") == 3450.0


def test_histogram_is_named_by_its_base_name_with_its_labels_but_not_le() -> None:
    family = capture("prefix-caching-on.before").family(E2E)

    assert family is not None
    assert family.type == "histogram"
    assert family.label_names == frozenset({"engine", "model_name"})
    assert capture("prefix-caching-on.before").family(E2E + "_bucket") is None


def test_histogram_value_is_its_count() -> None:
    after = capture("prefix-caching-on.after")

    assert after.value(E2E) == 7.0
    assert after.value(E2E + "_count") == 7.0
    assert after.value(E2E + "_sum") == pytest.approx(0.4306156635284424)


def test_histogram_buckets_are_readable_by_sample_name() -> None:
    after = capture("prefix-caching-on.after")

    inf_bucket = after.series(E2E + "_bucket", {"le": "+Inf"})

    assert len(inf_bucket) == 1
    assert inf_bucket[0].value == 7.0


def test_created_families_are_kept_out_of_names() -> None:
    for name in ("prefix-caching-on.before", "prefix-caching-on.after"):
        names = capture(name).names()

        assert not [n for n in names if n.endswith("_created")]
        assert "vllm:prefix_cache_hits_created" not in names
        assert "http_requests_created" not in names


def test_created_timestamps_are_kept_per_series() -> None:
    before = capture("prefix-caching-on.before")

    stamps = before.created["vllm:prefix_cache_hits"]
    assert stamps[(("engine", "0"), ("model_name", "tiny"))] == pytest.approx(1.795881239889341e09)
    assert len(before.created["vllm:request_success"]) == 5


def test_info_of_cache_config_with_prefix_caching_on() -> None:
    info = capture("prefix-caching-on.before").info("vllm:cache_config_info")

    assert info is not None
    assert info["block_size"] == "128"
    assert info["enable_prefix_caching"] == "True"
    assert info["num_gpu_blocks"] == "4096"


def test_info_of_cache_config_with_prefix_caching_off() -> None:
    info = capture("prefix-caching-off.before").info("vllm:cache_config_info")

    assert info is not None
    assert info["block_size"] == "128"
    assert info["enable_prefix_caching"] == "False"


def test_info_of_an_absent_family_is_none() -> None:
    assert capture("prefix-caching-on.before").info("vllm:lora_requests_info") is None


def test_info_family_is_exposed_as_a_gauge() -> None:
    family = capture("prefix-caching-on.before").family("vllm:cache_config_info")

    assert family is not None
    assert family.type == "gauge"
    assert {"block_size", "enable_prefix_caching", "engine"} <= family.label_names


def test_value_sums_matching_series_and_filters_by_labels() -> None:
    after = capture("prefix-caching-on.after")

    assert after.value("vllm:request_success_total") == 7.0
    assert after.value("vllm:request_success_total", {"finished_reason": "length"}) == 7.0
    assert after.value("vllm:request_success_total", {"finished_reason": "stop"}) == 0.0
    assert after.value("vllm:prompt_tokens_by_source_total", {"source": "local_cache_hit"}) == 1920.0


def test_value_of_an_unknown_family_or_label_is_none() -> None:
    after = capture("prefix-caching-on.after")

    assert after.value("vllm:no_such_family") is None
    assert after.value("vllm:request_success_total", {"finished_reason": "nonsense"}) is None
    assert after.family("vllm:no_such_family") is None


def test_series_carry_sorted_labels() -> None:
    series = capture("prefix-caching-on.before").series("vllm:request_success_total")

    reasons = [dict(s.labels)["finished_reason"] for s in series]
    assert reasons == ["stop", "length", "abort", "error", "repetition"]
    assert [key for key, _ in series[0].labels] == ["engine", "finished_reason", "model_name"]


def test_http_requests_has_no_series_before_traffic_and_seven_after() -> None:
    before = capture("prefix-caching-on.before")
    after = capture("prefix-caching-on.after")

    assert before.series("http_requests_total") == []
    assert before.value("http_requests_total") is None
    assert after.value("http_requests_total") == 7.0
    assert after.value("http_requests_total", {"handler": "/v1/completions"}) == 6.0
    after_family = after.family("http_requests_total")
    assert after_family is not None
    assert after_family.label_names == frozenset({"handler", "method", "status"})


@pytest.mark.parametrize("name", ["http_requests_total", "http_requests", "vllm:e2e_request_latency_seconds",
                                  "vllm:num_requests_running", "vllm:cache_config_info", "vllm:no_such_family", ""])
def test_has_series_says_whether_series_has_any(name: str) -> None:
    # declared without series before traffic (http_requests_total), a counter without _total, a histogram by its
    # family name (its _count), a gauge, an info metric, nothing of that name
    for page in (capture("prefix-caching-on.before"), capture("prefix-caching-on.after")):
        assert page.has_series(name) is bool(page.series(name))
    assert capture("prefix-caching-on.after").has_series("http_requests") is True
    assert capture("prefix-caching-on.before").has_series("http_requests") is False
    assert capture("prefix-caching-on.before").has_series("vllm:e2e_request_latency_seconds") is True


def test_process_start_time_is_read_as_a_plain_gauge() -> None:
    start = capture("prefix-caching-on.before").value("process_start_time_seconds")

    assert start == pytest.approx(1.79588120026e09)


# -- Delta over the real workload ------------------------------------------------------------------


def test_prefix_cache_hits_increase_with_caching_on() -> None:
    change = delta("on").change(HITS)

    assert change.before == 0.0
    assert change.after == 1920.0
    assert change.increase == 1920.0
    assert change.reset is False


def test_prefix_cache_hits_do_not_move_with_caching_off() -> None:
    d = delta("off")

    assert d.increase(HITS) == 0.0
    assert d.increase(QUERIES) == 0.0
    assert d.change(HITS).after == 0.0  # present, just not moving


def test_prefix_cache_queries_count_every_prompt_token_with_caching_on() -> None:
    assert delta("on").increase(QUERIES) == 3450.0


@pytest.mark.parametrize("caching", ["on", "off"])
def test_prompt_tokens_increase_by_the_workload_prompt_size(caching: str) -> None:
    assert delta(caching).increase(PROMPT_TOKENS) == 3450.0


@pytest.mark.parametrize("caching", ["on", "off"])
def test_histogram_increase_uses_its_count(caching: str) -> None:
    assert delta(caching).increase(E2E) == 7.0


def test_increase_with_a_label_selector() -> None:
    d = delta("on")

    assert d.increase("vllm:request_success_total", {"finished_reason": "length"}) == 7.0
    assert d.increase("vllm:request_success_total", {"finished_reason": "abort"}) == 0.0
    assert d.increase("vllm:prompt_tokens_by_source_total", {"source": "local_compute"}) == 1530.0


def test_series_that_appears_with_traffic_counts_from_zero() -> None:
    change = delta("on").change("http_requests_total")

    assert change.before is None
    assert change.after == 7.0
    assert change.increase == 7.0
    assert change.reset is False


def test_missing_family_has_no_change() -> None:
    change = delta("on").change("vllm:no_such_family_total")

    assert (change.before, change.after, change.increase, change.reset) == (None, None, None, False)
    assert delta("on").increase("vllm:no_such_family_total") == 0.0


def test_series_gone_after_reports_no_increase() -> None:
    before = capture("prefix-caching-on.after")
    after = capture("prefix-caching-on.before")

    change = Delta(before, after).change("http_requests_total")

    assert change.before == 7.0
    assert change.after is None
    assert change.increase is None


def test_real_workload_is_not_a_restart() -> None:
    assert delta("on").restarted is False
    assert delta("off").restarted is False


# -- counter resets --------------------------------------------------------------------------------


def test_counter_lower_with_new_created_is_a_reset_counting_from_zero() -> None:
    earlier_text = capture_text("prefix-caching-on.after")  # prompt_tokens_total 3450
    later = Snapshot.parse(restarted_text(earlier_text, prompt_tokens=100.0, created=1.8e9))

    change = Delta(Snapshot.parse(earlier_text), later).change(PROMPT_TOKENS)

    assert change.reset is True
    assert change.before == 3450.0
    assert change.after == 100.0
    assert change.increase == 100.0


def test_changed_created_timestamp_alone_is_a_reset_even_when_the_value_grew() -> None:
    earlier_text = capture_text("prefix-caching-on.after")
    later = Snapshot.parse(restarted_text(earlier_text, prompt_tokens=5000.0, created=1.8e9))

    change = Delta(Snapshot.parse(earlier_text), later).change(PROMPT_TOKENS)

    assert change.reset is True
    assert change.increase == 5000.0  # not 5000 - 3450: the restarted counter began at 0


def test_counter_going_down_without_any_restart_sign_is_a_decrease_not_a_reset() -> None:
    # process_start_time_seconds and _created unchanged: nothing says the server restarted, so the counter
    # broke its monotonic contract (before, this was taken for a restart and counted as an increase of 10)
    earlier_text = capture_text("prefix-caching-on.after")
    later = Snapshot.parse(restarted_text(earlier_text, prompt_tokens=10.0))

    change = Delta(Snapshot.parse(earlier_text), later).change(PROMPT_TOKENS)

    assert change.reset is False
    assert change.increase == 0.0
    assert change.decreases == (Decrease((("engine", "0"), ("model_name", "tiny")), 3450.0, 10.0),)


def test_counter_one_below_its_previous_value_is_a_decrease_and_equal_is_not() -> None:
    earlier_text = capture_text("prefix-caching-on.after")
    earlier = Snapshot.parse(earlier_text)
    one_below = Delta(earlier, Snapshot.parse(restarted_text(earlier_text, prompt_tokens=3449.0))).change(PROMPT_TOKENS)
    equal = Delta(earlier, Snapshot.parse(restarted_text(earlier_text, prompt_tokens=3450.0))).change(PROMPT_TOKENS)

    assert [d.after for d in one_below.decreases] == [3449.0]
    assert equal.decreases == () and equal.increase == 0.0


def _with_start_time(text: str, start: float) -> Snapshot:
    return Snapshot.parse(replace_line(text, "process_start_time_seconds ", f"process_start_time_seconds {start}"))


def test_a_later_start_time_after_the_first_scrape_is_a_restart() -> None:
    text = capture_text("prefix-caching-on.after")
    before = _with_start_time(text, 1000.0)
    before.taken_at = 2000.0
    after = _with_start_time(text, 2001.0)  # started after the first scrape: this process restarted

    assert Delta(before, after).process == RESTARTED


@pytest.mark.parametrize("start", [999.0, 1500.0], ids=["older-process", "already-running-at-first-scrape"])
def test_a_start_time_that_predates_the_first_scrape_is_another_process(start: float) -> None:
    # a URL load-balanced over several servers: the second scrape reached a process that already ran
    text = capture_text("prefix-caching-on.after")
    before = _with_start_time(text, 1000.0)
    before.taken_at = 2000.0

    assert Delta(before, _with_start_time(text, start)).process == OTHER_PROCESS


def test_a_start_time_within_the_clock_slack_of_the_first_scrape_is_a_restart() -> None:
    text = capture_text("prefix-caching-on.after")
    before = _with_start_time(text, 1000.0)
    before.taken_at = 2000.0

    assert Delta(before, _with_start_time(text, 1995.0)).process == RESTARTED
    assert Delta(before, _with_start_time(text, 1994.0)).process == OTHER_PROCESS


def test_reset_of_one_counter_leaves_others_untouched() -> None:
    earlier_text = capture_text("prefix-caching-on.before")
    later_text = restarted_text(capture_text("prefix-caching-on.after"), prompt_tokens=3450.0, created=1.8e9)

    d = Delta(Snapshot.parse(earlier_text), Snapshot.parse(later_text))

    assert d.restarted is False
    assert d.change(PROMPT_TOKENS).reset is True
    assert d.change(HITS).reset is False
    assert d.increase(HITS) == 1920.0


def test_histogram_reset_is_detected_from_its_created_timestamp() -> None:
    earlier_text = capture_text("prefix-caching-on.after")
    later_text = replace_line(
        earlier_text,
        re.escape('vllm:e2e_request_latency_seconds_created{engine="0",model_name="tiny"}'),
        'vllm:e2e_request_latency_seconds_created{engine="0",model_name="tiny"} 1.8e9',
    )

    change = Delta(Snapshot.parse(earlier_text), Snapshot.parse(later_text)).change(E2E)

    assert change.reset is True
    assert change.increase == 7.0


def test_changed_process_start_time_is_a_restart_for_every_counter() -> None:
    earlier_text = capture_text("prefix-caching-on.after")
    later_text = replace_line(earlier_text, re.escape("process_start_time_seconds "),
                              "process_start_time_seconds 1.8e+09")

    d = Delta(Snapshot.parse(earlier_text), Snapshot.parse(later_text))

    assert d.restarted is True
    for name, shown in ((HITS, 1920.0), (PROMPT_TOKENS, 3450.0), (E2E, 7.0)):
        change = d.change(name)
        assert change.reset is True
        assert change.increase == shown  # everything the restarted server shows is new


def test_same_process_start_time_is_not_a_restart() -> None:
    text = capture_text("prefix-caching-on.after")

    assert Delta(Snapshot.parse(text), Snapshot.parse(text)).restarted is False
    assert Delta(Snapshot.parse(text), Snapshot.parse(text)).increase(HITS) == 0.0


# -- not exposition text ---------------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    "<html><body>502 Bad Gateway</body></html>",
    "<!DOCTYPE html>\n<html><head><title>Login</title></head></html>",
    "foo{",
    'foo{a="b" 1',
    "foo{a=b} 1",
    '{"error": "Unauthorized"}',
    "Not Found",
    "# TYPE foo bogus\nfoo 1",
    "# TYPE foo counter\nfoo_total abc",
])
def test_garbage_is_an_exposition_error(text: str) -> None:
    with pytest.raises(ExpositionError):
        Snapshot.parse(text)


def test_exposition_error_is_a_value_error_with_a_message() -> None:
    with pytest.raises(ValueError, match=r"\S"):
        Snapshot.parse("<html>")


def test_parsing_leaves_garbage_collection_as_it_found_it() -> None:
    import gc

    # The parser pauses collection while it builds a page; it must always switch it back on, and not switch
    # it on when the caller had it off.
    Snapshot.parse(capture_text("prefix-caching-on.after"))
    assert gc.isenabled()
    with pytest.raises(ExpositionError):
        Snapshot.parse("vllm:x{a=\"1\"} not-a-number\n")
    assert gc.isenabled()
    gc.disable()
    try:
        Snapshot.parse(capture_text("prefix-caching-on.after"))
        assert not gc.isenabled()
    finally:
        gc.enable()


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
    pages = [capture_text(f"prefix-caching-{caching}.{when}") for when in ("before", "after")]
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


def test_bucket_increases_in_one_pass_are_each_buckets_increase() -> None:
    # Two models' buckets: one series went down with no sign of a restart (not counted), a bucket only the second
    # page has; a name no page has.
    def page(rows: str) -> Snapshot:
        return Snapshot.parse("# TYPE vllm:e2e_request_latency_seconds histogram\n" + rows)

    before = page('vllm:e2e_request_latency_seconds_bucket{le="0.5",model_name="a"} 3\n'
                  'vllm:e2e_request_latency_seconds_bucket{le="+Inf",model_name="a"} 5\n'
                  'vllm:e2e_request_latency_seconds_bucket{le="0.5",model_name="b"} 9\n'
                  'vllm:e2e_request_latency_seconds_bucket{le="+Inf",model_name="b"} 9\n'
                  'vllm:e2e_request_latency_seconds_count{model_name="a"} 5\n')
    after = page('vllm:e2e_request_latency_seconds_bucket{le="0.5",model_name="a"} 4\n'
                 'vllm:e2e_request_latency_seconds_bucket{le="+Inf",model_name="a"} 8\n'
                 'vllm:e2e_request_latency_seconds_bucket{le="0.5",model_name="b"} 2\n'
                 'vllm:e2e_request_latency_seconds_bucket{le="+Inf",model_name="b"} 12\n'
                 'vllm:e2e_request_latency_seconds_bucket{le="1.0",model_name="b"} 1.5\n'
                 'vllm:e2e_request_latency_seconds_count{model_name="a"} 8\n')
    delta = Delta(before, after)
    name = "vllm:e2e_request_latency_seconds_bucket"
    by_bound = delta.increases_by(name, "le")
    assert by_bound == {le: delta.increase(name, {"le": le}) for le in ("0.5", "+Inf", "1.0")}
    assert by_bound == {"0.5": 1.0, "+Inf": 6.0, "1.0": 1.5}  # b's 0.5 went down: not counted
    assert delta.increases_by("vllm:nothing_bucket", "le") == {}


# -- what depends on a page's structure only -----------------------------------------------------------------

def test_what_depends_on_names_and_labels_only_is_computed_once_per_page_structure() -> None:
    calls: list[int] = []

    def series_of_hits(families: object, label_sets: dict[str, list[tuple[tuple[str, str], ...]]]) -> int:
        calls.append(1)
        return len(label_sets.get(HITS, []))

    text = capture_text("prefix-caching-on.before")
    line = next(x for x in text.splitlines() if x.startswith(HITS + "{"))
    same_shape = Snapshot.parse(text.replace(line, line.rsplit(" ", 1)[0] + " 7.0"))
    widened = line.replace("engine=", 'x="1",engine=')
    other_shape = Snapshot.parse(text.replace(line, f"{line}\n{widened}"))
    first = Snapshot.parse(text)
    assert first.value(HITS) != same_shape.value(HITS)  # the values differ, the structure does not
    assert [first.per_structure(series_of_hits), same_shape.per_structure(series_of_hits)] == [1, 1]
    assert len(calls) == 1
    assert other_shape.per_structure(series_of_hits) == 2 and len(calls) == 2
    # a snapshot sent to another process (pytest-xdist) computes it again there, from its own structure
    copy = pickle.loads(pickle.dumps(other_shape))
    assert copy.per_structure(series_of_hits) == 2 and len(calls) == 3


# -- OpenMetrics' types text format lacks, the reference parser, a counter's change by labels --------------------

# The OpenMetrics 1.0 specification's own examples of a stateset and a gauge histogram
# (github.com/OpenObservability/OpenMetrics, specification/OpenMetrics.md, "StateSet" and "GaugeHistogram").
STATESET_AND_GAUGEHISTOGRAM = """\
# TYPE foo stateset
foo{entity="controller",foo="a"} 1.0
foo{entity="controller",foo="bb"} 0.0
# TYPE bar gaugehistogram
bar_bucket{le="0.01"} 0
bar_bucket{le="0.1"} 8
bar_bucket{le="1.0"} 18
bar_bucket{le="10.0"} 31
bar_bucket{le="+Inf"} 32
bar_gcount 32
bar_gsum 1.2e2
# EOF
"""


def test_a_stateset_is_a_gauge_and_a_gauge_histogram_a_histogram_as_text_format_writes_them() -> None:
    parsed = Snapshot.parse_openmetrics(STATESET_AND_GAUGEHISTOGRAM)
    assert (parsed.families["foo"].type, parsed.families["bar"].type) == ("gauge", "histogram")
    assert parsed.value("foo", {"foo": "a"}) == 1.0
    assert parsed.value("bar_gcount") == 32.0  # its own names kept


def test_a_native_histograms_sample_is_dropped_and_its_classic_buckets_kept() -> None:
    # a histogram with both forms, as prometheus_client's own parser tests write one (tests/openmetrics/
    # test_parser.py, native histogram with classic buckets)
    parsed = Snapshot.parse_openmetrics(
        "# TYPE foo histogram\nfoo {count:24,sum:100,schema:0,zero_threshold:0.001,zero_count:4,"
        "positive_spans:[0:2],positive_deltas:[2,1]}\nfoo_bucket{le=\"1.0\"} 10\nfoo_bucket{le=\"+Inf\"} 24\n"
        "foo_count 24\nfoo_sum 100\n# EOF\n")
    assert [s.value for s in parsed.series("foo_bucket")] == [10.0, 24.0]
    assert parsed.value("foo") == 24.0  # counted by its _count


def test_a_summary_is_counted_by_its_count() -> None:
    # the Prometheus text format documentation's summary example (prometheus.io, "Exposition formats")
    page = Snapshot.parse('# TYPE rpc_duration_seconds summary\nrpc_duration_seconds{quantile="0.5"} 4773\n'
                          'rpc_duration_seconds{quantile="0.9"} 9001\nrpc_duration_seconds_sum 1.7560473e+07\n'
                          "rpc_duration_seconds_count 2693\n")
    assert [s.value for s in page.series("rpc_duration_seconds")] == [2693.0]


@pytest.mark.parametrize(("text", "says"), [
    ('foo{="b"} 1\n', "Invalid labels: =\"b\""),
    ("{} 1\n", "ValueError"),  # the parser's error has no words: its kind is said
])
def test_the_reference_parser_raises_exposition_error_with_the_parsers_words(text: str, says: str) -> None:
    with pytest.raises(ExpositionError) as excinfo:
        Snapshot.parse_reference(text)
    assert str(excinfo.value) == says


def test_an_openmetrics_error_without_words_says_its_kind() -> None:
    with pytest.raises(ExpositionError) as excinfo:
        Snapshot.parse_openmetrics("{} 1\n# EOF\n")
    assert str(excinfo.value) == "ValueError"


def test_the_reference_parser_records_text_format() -> None:
    assert Snapshot.parse_reference("# TYPE foo gauge\nfoo 1\n").format == TEXT_FORMAT


COUNTER = "# TYPE vllm:request_success counter\n"


def test_a_change_by_labels_totals_only_the_series_of_those_labels() -> None:
    before = Snapshot.parse(COUNTER + 'vllm:request_success_total{model_name="a"} 10\n'
                            'vllm:request_success_total{model_name="b"} 7\n')
    after = Snapshot.parse(COUNTER + 'vllm:request_success_total{model_name="a"} 14\n'
                           'vllm:request_success_total{model_name="b"} 7\n')
    change = Delta(before, after).change("vllm:request_success_total", {"model_name": "a"})
    assert (change.before, change.after, change.increase) == (10.0, 14.0, 4.0)


def test_a_counter_gone_from_the_second_page_has_no_reset() -> None:
    before = Snapshot.parse(COUNTER + 'vllm:request_success_total{model_name="a"} 10\n')
    change = Delta(before, Snapshot.parse("")).change("vllm:request_success_total")
    assert (change.before, change.after, change.increase, change.reset) == (10.0, None, None, False)


def test_a_series_new_on_the_second_page_below_zero_is_a_decrease_from_zero() -> None:
    before = Snapshot.parse(COUNTER + 'vllm:request_success_total{model_name="a"} 10\n')
    after = Snapshot.parse(COUNTER + 'vllm:request_success_total{model_name="a"} 10\n'
                           'vllm:request_success_total{model_name="b"} -1\n')
    change = Delta(before, after).change("vllm:request_success_total")
    assert change.decreases == (Decrease((("model_name", "b"),), 0.0, -1.0),)


def test_a_familys_label_names_leave_out_le_and_quantile_and_keep_its_help() -> None:
    page = Snapshot.parse(
        "# HELP vllm:e2e_request_latency_seconds Histogram of e2e request latency in seconds.\n"
        "# TYPE vllm:e2e_request_latency_seconds histogram\n"
        'vllm:e2e_request_latency_seconds_bucket{le="+Inf",model_name="tiny"} 4.0\n'
        'vllm:e2e_request_latency_seconds_count{model_name="tiny"} 4.0\n'
        'vllm:e2e_request_latency_seconds_sum{model_name="tiny"} 2.5\n'
        '# TYPE rpc_duration_seconds summary\nrpc_duration_seconds{quantile="0.5",service="a"} 4773\n'
        'rpc_duration_seconds_sum{service="a"} 1.7560473e+07\nrpc_duration_seconds_count{service="a"} 2693\n')
    latency = page.families["vllm:e2e_request_latency_seconds"]
    assert (latency.label_names, latency.help) == ({"model_name"}, "Histogram of e2e request latency in seconds.")
    assert page.families["rpc_duration_seconds"].label_names == {"service"}


def test_a_family_whose_block_comes_twice_has_the_labels_of_both() -> None:
    # two processes' pages served one after the other (a multiprocess exporter that does not merge them)
    page = Snapshot.parse('# TYPE foo gauge\nfoo{a="1"} 1\n# TYPE bar gauge\nbar 1\n# TYPE foo gauge\nfoo{b="2"} 2\n')
    assert page.families["foo"].label_names == {"a", "b"}
    assert [s.value for s in page.series("foo")] == [1.0, 2.0]


def test_an_untyped_created_sample_is_a_creation_time_not_a_family() -> None:
    page = Snapshot.parse("foo_total 3\nfoo_created 1.7e9\n")
    assert page.created == {"foo": {(): 1.7e9}}
    assert "foo_created" not in page.families


def test_a_parsed_page_has_no_size_until_a_scrape_measures_it() -> None:
    assert Snapshot.parse("foo 1\n").size is None
