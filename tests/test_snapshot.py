"""Unit tests of pytest_vllm_metrics.snapshot against real vLLM 0.32.0 captures (tests/data/captures)."""

from __future__ import annotations

import re

import pytest

from conftest import capture, capture_text
from pytest_vllm_metrics.snapshot import OTHER_PROCESS, RESTARTED, Decrease, Delta, ExpositionError, Snapshot

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
