"""Cardinality and label hygiene (hygiene.py): the checks' exact verdicts in process (outcome, level, the words of
the message and the evidence a report shows, at each cap of conformance/hygiene.toml and one either side, and when
there is no page to judge); the real vLLM 0.32 pages, the simulator's faults, and what the real
`promtool check metrics` says of the same pages (its lint rules are not ours: see below).

Pages are Prometheus text shaped like the real vLLM 0.32 pages of tests/data/captures (HELP and TYPE lines, then
series with `engine` and `model_name` labels, histograms as `_bucket` with `le`, then `_sum` and `_count`).
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import shutil
import subprocess
import warnings
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from conftest import BASE_CAPTURE, CAPTURES, said
from pytest_vllm_metrics import hygiene
from pytest_vllm_metrics.hygiene import StoreWarning
from pytest_vllm_metrics.observe import Observation
from pytest_vllm_metrics.outcome import Level, Outcome, Problem, Verdict
from pytest_vllm_metrics.sim import SimHost, get_profile
from pytest_vllm_metrics.snapshot import Snapshot
from pytest_vllm_metrics.targets import Target

CHECKS: dict[str, tuple[Callable[..., Verdict], str]] = {
    "labels_per_series": (hygiene.labels_per_series, "SHOULD"),
    "volatile_labels": (hygiene.volatile_labels, "MAY"),
    "series_per_family": (hygiene.series_per_family, "SHOULD"),
    "page_size": (hygiene.page_size, "SHOULD"),
    "duplicate_series": (hygiene.duplicate_series, "MUST"),
}
SCRAPE_ADDS = ["instance", "job", "namespace", "service", "pod", "container", "endpoint"]
VM_CLOUD = "VictoriaMetrics Cloud (every tier) and older VictoriaMetrics releases"
VM_NEWER = "VictoriaMetrics (default of newer releases)"
CAPS = {VM_CLOUD: 30, VM_NEWER: 40}
BOTH_STORES = f"{VM_CLOUD}: -maxLabelsPerTimeseries=30; {VM_NEWER}: -maxLabelsPerTimeseries=40"
LABELS_ADVICE = (
    "Such a store drops the series while the write still succeeds, so panels and alerts on it see nothing. Drop "
    "labels the dashboards do not use before the write (a metricRelabelings labeldrop on the ServiceMonitor), or "
    "raise the store's cap.")
VOLATILE_ADVICE = (
    "When a restart finds other free memory these values change: the info metric starts a new series, and a "
    "query that joins on these labels misses across the restart. Join on stable labels (engine, block_size, "
    "enable_prefix_caching) only.")
DUPLICATE_ADVICE = (
    "One engine's value then lives in several series: sum() counts it once per process and a reader that keeps "
    "one series (an endpoint picker, max()) may keep a stale one. vLLM exposed kv_cache_usage_perc this way with "
    "several API server processes before 0.11.1 (its gauges now use the most recent process' value); upgrade, or "
    "run one API server per engine.")
SERIES_ADVICE = (
    "a vLLM family has at most 25 per engine, so a label without bound (request or adapter ids) grows it, and "
    "the store with it. Find the label whose values keep changing and drop it before the write.")

# a collector's gauge without labels, as a real page starts (tests/data/captures/lora.after.prom)
OPEN_FDS = ("# HELP process_open_fds Number of open file descriptors.\n# TYPE process_open_fds gauge\n"
            "process_open_fds 35.0\n")


def page(text: str, size: int | None = -1) -> Snapshot:
    snapshot = Snapshot.parse(text)
    snapshot.size = len(text.encode()) if size == -1 else size
    return snapshot


def observed(text: str, size: int | None = -1) -> Observation:
    return Observation(Target("decode-0", "http://10.0.0.1:8200"), version="0.32.0", before=page(text, size))


def gauge(name: str, *series: str) -> str:
    """A gauge family as vLLM 0.32 writes it (tests/data/captures/lora.after.prom, vllm:kv_cache_usage_perc)."""
    return "".join([f"# HELP {name} a gauge\n", f"# TYPE {name} gauge\n", *(f"{name}{{{s}}} 0.0\n" for s in series)])


def info(name: str, labels: int) -> str:
    """An info gauge whose one series has `labels` labels, engine among them (like vllm:cache_config_info)."""
    own = ['engine="0"'] + [f'field_{i:02}="v"' for i in range(1, labels)]
    return gauge(name, ",".join(own))


def histogram(name: str, bounds: int, labels: str = 'engine="0",model_name="tiny"') -> str:
    """A histogram as vLLM 0.32 writes it (tests/data/captures/lora.after.prom, vllm:request_prompt_tokens):
    `bounds` finite buckets, +Inf, then _sum and _count."""
    lines = [f"# HELP {name} a histogram", f"# TYPE {name} histogram"]
    lines += [f'{name}_bucket{{{labels},le="{b}.0"}} 0.0' for b in range(1, bounds + 1)]
    lines += [f'{name}_bucket{{{labels},le="+Inf"}} 0.0', f"{name}_sum{{{labels}}} 0.0",
              f"{name}_count{{{labels}}} 0.0"]
    return "\n".join(lines) + "\n"


# -- no page to judge ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CHECKS)
@pytest.mark.parametrize(("inconclusive", "outcome"), [(True, Outcome.INCONCLUSIVE), (False, Outcome.FAILED)])
def test_a_page_that_was_not_scraped_is_judged_by_why_at_the_checks_own_level(
        name: str, inconclusive: bool, outcome: Outcome) -> None:
    check, level = CHECKS[name]
    obs = Observation(Target("decode-0", "http://10.0.0.1:8200"))
    obs.errors["before"] = Problem("decode-0: /metrics answered 503; check the server's log.", inconclusive)
    verdict = check(obs)
    assert (verdict.outcome, verdict.message, verdict.level, verdict.evidence) == (
        outcome, "decode-0: /metrics answered 503; check the server's log.", level, {})


@pytest.mark.parametrize("name", CHECKS)
def test_an_unavailable_target_is_inconclusive_with_its_reason(name: str) -> None:
    check, level = CHECKS[name]
    target = Target("decode-0", "http://10.0.0.1:8200", unavailable="decode-0: the pod is not Ready")
    verdict = check(Observation(target, before=page(BASE_CAPTURE.read_text())))
    assert (verdict.outcome, verdict.message, verdict.level) == (
        Outcome.INCONCLUSIVE, "decode-0: the pod is not Ready", level)


@pytest.mark.parametrize("name", CHECKS)
def test_every_check_passes_a_clean_page_at_its_own_level(name: str) -> None:
    check, level = CHECKS[name]
    verdict = check(observed(gauge("vllm:kv_cache_usage_perc", 'engine="0",model_name="tiny"')))
    assert (verdict.outcome, verdict.message, verdict.level) == (Outcome.PASSED, "", level)
    assert "warning" not in verdict.evidence


@pytest.mark.parametrize("name", CHECKS)
def test_the_level_asked_for_is_the_verdicts_whatever_the_outcome(name: str) -> None:
    check, _ = CHECKS[name]
    default = inspect.signature(check).parameters["level"].default
    for wanted in (level for level in Level if level != default):  # not the check's own default
        clean = observed(gauge("vllm:kv_cache_usage_perc", 'engine="0",model_name="tiny"'))
        assert check(clean, level=wanted).level == wanted
        assert check(observed(BASE_CAPTURE.read_text(), 5 * 2**20), level=wanted).level == wanted
        assert check(observed(PID_SPLIT + many("vllm:by_request", 1001)), level=wanted).level == wanted


def test_the_page_after_the_workload_is_judged_when_there_is_one() -> None:
    clean = gauge("vllm:kv_cache_usage_perc", 'engine="0",model_name="tiny"')
    split = gauge("vllm:kv_cache_usage_perc", 'engine="0",model_name="tiny",pid="101"',
                  'engine="0",model_name="tiny",pid="102"')
    obs = observed(clean)
    obs.after = page(split)
    assert hygiene.duplicate_series(obs).outcome == Outcome.FAILED
    obs = observed(split)
    obs.after = page(clean)
    assert hygiene.duplicate_series(obs).outcome == Outcome.PASSED


# -- labels per series ----------------------------------------------------------------------------------------


def test_a_series_with_23_labels_fits_both_caps_and_shows_what_was_counted() -> None:
    verdict = hygiene.labels_per_series(observed(info("vllm:wide_info", 23)))
    assert (verdict.outcome, verdict.message, verdict.level) == (Outcome.PASSED, "", "SHOULD")
    assert verdict.evidence == {"most_labels": 23, "scrape_adds": SCRAPE_ADDS, "caps": CAPS}


def test_a_series_with_exactly_30_labels_after_the_scrape_passes_and_31_warns_naming_victoriametrics() -> None:
    assert hygiene.labels_per_series(observed(info("vllm:wide_info", 23))).message == ""
    with pytest.warns(StoreWarning) as caught:
        verdict = hygiene.labels_per_series(observed(info("vllm:wide_info", 24)))
        hygiene.warn(verdict)
    assert verdict.outcome == Outcome.PASSED and verdict.level == "SHOULD"
    assert verdict.message == (
        "decode-0: vllm:wide_info (24 labels) with the 7 labels a Prometheus Operator ServiceMonitor scrape adds "
        "(instance, job, namespace, service, pod, container, endpoint) reach 31 labels per series, more than "
        f"{VM_CLOUD}: -maxLabelsPerTimeseries=30. {LABELS_ADVICE}")
    assert [str(w.message) for w in caught] == [verdict.message]
    assert verdict.evidence == {"most_labels": 24, "scrape_adds": SCRAPE_ADDS, "caps": CAPS,
                                "over": {"vllm:wide_info": 24}, "warning": True}


def test_a_series_with_exactly_40_labels_after_the_scrape_names_one_store_and_41_names_both() -> None:
    at_cap = hygiene.labels_per_series(observed(info("vllm:wide_info", 33)))
    assert "reach 40 labels per series, more than " + f"{VM_CLOUD}: -maxLabelsPerTimeseries=30. " in at_cap.message
    above = hygiene.labels_per_series(observed(info("vllm:wide_info", 34)))
    assert f"reach 41 labels per series, more than {BOTH_STORES}. " in above.message


def test_the_widest_families_are_named_first_three_of_them_and_the_rest_counted() -> None:
    text = (info("vllm:a_info", 25) + info("vllm:b_info", 34) + info("vllm:c_info", 23) + info("vllm:d_info", 26)
            + info("vllm:e_info", 24))
    verdict = hygiene.labels_per_series(observed(text))
    assert verdict.message.startswith(
        "decode-0: vllm:b_info (34 labels), vllm:d_info (26 labels), vllm:a_info (25 labels) and 1 more with the "
        f"7 labels a Prometheus Operator ServiceMonitor scrape adds (instance, job, namespace, service, pod, "
        f"container, endpoint) reach 41 labels per series, more than {BOTH_STORES}. ")
    # every family over the smallest cap is in the evidence, widest first; the one that fits is not
    assert list(verdict.evidence["over"].items()) == [
        ("vllm:b_info", 34), ("vllm:d_info", 26), ("vllm:a_info", 25), ("vllm:e_info", 24)]
    assert verdict.evidence["most_labels"] == 34


def test_three_families_over_the_cap_are_all_named_with_nothing_more() -> None:
    text = info("vllm:a_info", 25) + info("vllm:b_info", 24) + info("vllm:d_info", 26)
    verdict = hygiene.labels_per_series(observed(text))
    assert verdict.message.startswith(
        "decode-0: vllm:d_info (26 labels), vllm:a_info (25 labels), vllm:b_info (24 labels) with the 7 labels ")
    assert " more with the " not in verdict.message


def test_a_histogram_counts_its_widest_sample_le_included_under_the_familys_name() -> None:
    # 23 labels on every sample, 24 on the buckets (le): the buckets decide, reported as the family
    labels = ",".join(['engine="0"'] + [f'field_{i:02}="v"' for i in range(1, 23)])
    verdict = hygiene.labels_per_series(observed(histogram("vllm:wide_seconds", 2, labels)))
    assert verdict.evidence["over"] == {"vllm:wide_seconds": 24} and verdict.evidence["most_labels"] == 24
    assert verdict.message.startswith("decode-0: vllm:wide_seconds (24 labels) with the 7 labels ")
    assert "reach 31 labels per series" in verdict.message


def test_series_without_labels_count_none() -> None:
    # the collectors' gauges without labels (tests/data/captures: process_open_fds 35.0)
    verdict = hygiene.labels_per_series(observed(OPEN_FDS))
    assert (verdict.outcome, verdict.message, verdict.evidence["most_labels"]) == (Outcome.PASSED, "", 0)


def test_an_empty_page_has_no_label_to_count() -> None:
    verdict = hygiene.labels_per_series(observed(""))
    assert (verdict.outcome, verdict.message) == (Outcome.PASSED, "")
    assert verdict.evidence["most_labels"] == 0


# -- labels sized at startup ----------------------------------------------------------------------------------

# vllm:cache_config_info's sized labels as vLLM 0.32 writes them (tests/data/captures/lora.after.prom, line 553)
SIZED = ('engine="0",kv_cache_max_concurrency="512.0",kv_cache_memory_bytes="1073741824",'
         'kv_cache_size_tokens="524288",num_cpu_blocks="None",num_gpu_blocks="4096"')


def test_the_sized_labels_are_quoted_in_the_tables_order_and_none_is_not_a_value() -> None:
    with pytest.warns(StoreWarning) as caught:
        verdict = hygiene.volatile_labels(observed(gauge("vllm:cache_config_info", SIZED)))
        hygiene.warn(verdict)
    assert (verdict.outcome, verdict.level) == (Outcome.PASSED, "MAY")
    assert verdict.message == (
        "decode-0: vllm:cache_config_info carries num_gpu_blocks='4096', kv_cache_size_tokens='524288', "
        "kv_cache_max_concurrency='512.0', kv_cache_memory_bytes='1073741824' (sized at startup from the free "
        f"memory vLLM profiles). {VOLATILE_ADVICE}")
    assert [str(w.message) for w in caught] == [verdict.message]
    assert verdict.evidence == {"warning": True, "labels": {"vllm:cache_config_info": {
        "num_gpu_blocks": "4096", "kv_cache_size_tokens": "524288", "kv_cache_max_concurrency": "512.0",
        "kv_cache_memory_bytes": "1073741824"}}}


@pytest.mark.parametrize("value", ["None", ""])
def test_sized_labels_without_a_value_pass_without_a_warning(value: str) -> None:
    series = f'engine="0",num_cpu_blocks="{value}",num_gpu_blocks="{value}"'
    verdict = hygiene.volatile_labels(observed(gauge("vllm:cache_config_info", series)))
    assert (verdict.outcome, verdict.message, verdict.level, verdict.evidence) == (Outcome.PASSED, "", "MAY", {})


def test_one_sized_label_is_enough_to_be_named() -> None:
    series = 'engine="0",num_cpu_blocks="None",num_gpu_blocks="4096"'
    verdict = hygiene.volatile_labels(observed(gauge("vllm:cache_config_info", series)))
    assert verdict.message.startswith("decode-0: vllm:cache_config_info carries num_gpu_blocks='4096' (sized at ")
    assert verdict.evidence["labels"] == {"vllm:cache_config_info": {"num_gpu_blocks": "4096"}}


def test_sized_labels_on_another_family_are_not_this_checks_concern() -> None:
    verdict = hygiene.volatile_labels(observed(gauge("vllm:other_info", SIZED)))
    assert (verdict.outcome, verdict.message) == (Outcome.PASSED, "")


def test_every_family_the_table_names_is_quoted_with_its_own_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    # the table has one family today; a second entry (data, not code) is named after it, joined by "; "
    table = hygiene.rules()
    second = ("vllm:model_config_info", ("max_model_len",), "derived from the memory found")
    monkeypatch.setattr(hygiene, "rules", lambda: dataclasses.replace(table, volatile=(*table.volatile, second)))
    text = (gauge("vllm:cache_config_info", 'engine="0",num_gpu_blocks="4096"')
            + gauge("vllm:model_config_info", 'engine="0",max_model_len="2048"'))
    verdict = hygiene.volatile_labels(observed(text))
    assert verdict.message.startswith(
        "decode-0: vllm:cache_config_info carries num_gpu_blocks='4096' (sized at startup from the free memory "
        "vLLM profiles); vllm:model_config_info carries max_model_len='2048' (derived from the memory found). When ")


# -- series per family ----------------------------------------------------------------------------------------


def many(name: str, series: int) -> str:
    return gauge(name, *(f'engine="0",request_id="r{i}"' for i in range(series)))


def test_a_histogram_is_one_family_of_its_buckets_sum_and_count() -> None:
    # vLLM 0.32's TTFT histogram: 22 bounds, +Inf, sum, count (tests/data/captures)
    verdict = hygiene.series_per_family(observed(histogram("vllm:time_to_first_token_seconds", 22)
                                                 + gauge("vllm:num_requests_running", 'engine="0"')))
    assert (verdict.outcome, verdict.message, verdict.level) == (Outcome.PASSED, "", "SHOULD")
    assert verdict.evidence == {"largest": 25, "cap": 1000, "series_on_page": 26}


def test_a_family_with_exactly_1000_series_passes_and_1001_fails_naming_it() -> None:
    assert hygiene.series_per_family(observed(many("vllm:by_request", 1000))).outcome == Outcome.PASSED
    verdict = hygiene.series_per_family(observed(many("vllm:by_request", 1001) + many("vllm:small", 3)))
    assert (verdict.outcome, verdict.level) == (Outcome.FAILED, "SHOULD")
    assert verdict.message == (
        f"decode-0: vllm:by_request (1001 series) has more than 1000 series on one page; {SERIES_ADVICE}")
    assert verdict.evidence == {"largest": 1001, "cap": 1000, "series_on_page": 1004,
                                "over": {"vllm:by_request": 1001}}


def test_a_histogram_over_the_cap_is_named_as_its_family() -> None:
    # 998 bounds, +Inf, sum and count: 1001 series of one family
    verdict = hygiene.series_per_family(observed(histogram("vllm:wide_seconds", 998)))
    assert verdict.outcome == Outcome.FAILED
    assert verdict.message.startswith("decode-0: vllm:wide_seconds (1001 series) has more than 1000 series")
    assert verdict.evidence["over"] == {"vllm:wide_seconds": 1001}


def test_the_largest_families_are_named_first_three_of_them_and_the_rest_counted() -> None:
    text = (many("vllm:a", 1001) + many("vllm:b", 1004) + many("vllm:c", 1002) + many("vllm:d", 1003))
    verdict = hygiene.series_per_family(observed(text))
    assert verdict.message.startswith(
        "decode-0: vllm:b (1004 series), vllm:d (1003 series), vllm:c (1002 series) and 1 more have more than 1000 "
        "series on one page; ")
    assert list(verdict.evidence["over"].items()) == [
        ("vllm:b", 1004), ("vllm:d", 1003), ("vllm:c", 1002), ("vllm:a", 1001)]


def test_three_families_over_the_series_cap_are_all_named_with_nothing_more() -> None:
    verdict = hygiene.series_per_family(observed(many("vllm:a", 1001) + many("vllm:b", 1002) + many("vllm:c", 1003)))
    assert verdict.message.startswith(
        "decode-0: vllm:c (1003 series), vllm:b (1002 series), vllm:a (1001 series) have more than 1000 series on ")


def test_an_empty_page_has_no_family() -> None:
    verdict = hygiene.series_per_family(observed(""))
    assert verdict.evidence == {"largest": 0, "cap": 1000, "series_on_page": 0}


def test_a_gauge_named_like_a_count_without_its_family_is_its_own_family() -> None:
    # `vllm:x_count` with no family `vllm:x`: not a histogram's sample, counted as itself
    verdict = hygiene.series_per_family(observed(many("vllm:lora_count", 1001)))
    assert verdict.evidence["over"] == {"vllm:lora_count": 1001}


# -- page size ------------------------------------------------------------------------------------------------

MiB = 2**20


@pytest.mark.parametrize("size", [0, 4 * MiB - 1, 4 * MiB])
def test_a_page_of_at_most_4_mib_passes_without_a_warning(size: int) -> None:
    verdict = hygiene.page_size(observed("", size))
    assert (verdict.outcome, verdict.message, verdict.level) == (Outcome.PASSED, "", "SHOULD")
    assert verdict.evidence == {"bytes": size, "warn_bytes": 4 * MiB, "suite_cap_bytes": 16 * MiB}


def test_a_page_one_byte_over_4_mib_passes_with_a_warning_naming_body_size_limit() -> None:
    with pytest.warns(StoreWarning) as caught:
        verdict = hygiene.page_size(observed("", 4 * MiB + 1))
        hygiene.warn(verdict)
    assert (verdict.outcome, verdict.level) == (Outcome.PASSED, "SHOULD")
    assert verdict.message == (
        "decode-0: the /metrics page is 4,194,305 bytes, above 4 MiB (a vLLM page is about 50 KB). A scrape with "
        "body_size_limit (Prometheus Operator: enforcedBodySizeLimit) below the page's size fails whole, every "
        "series of the pod with it; this suite reads at most 16 MiB. Find the family that grows (series per "
        "family) and bound it.")
    assert [str(w.message) for w in caught] == [verdict.message]
    assert verdict.evidence == {"bytes": 4 * MiB + 1, "warn_bytes": 4 * MiB, "suite_cap_bytes": 16 * MiB,
                                "warning": True}


def test_a_page_whose_size_was_not_measured_is_skipped_saying_so() -> None:
    verdict = hygiene.page_size(observed("", None))
    assert (verdict.outcome, verdict.message, verdict.level) == (
        Outcome.SKIPPED, "decode-0: the page's size was not measured", "SHOULD")
    assert verdict.evidence == {"bytes": None, "warn_bytes": 4 * MiB, "suite_cap_bytes": 16 * MiB}


# -- one series per engine and model --------------------------------------------------------------------------

# vLLM before 0.11.1 with two API server processes: kv_cache_usage_perc once per process, told apart by `pid`
# (the simulator's pid-label fault writes the same shape)
PID_SPLIT = gauge("vllm:kv_cache_usage_perc", 'engine="0",model_name="tiny",pid="101"',
                  'engine="0",model_name="tiny",pid="102"')


def test_a_pid_label_splitting_a_gauge_fails_naming_the_label_and_the_copies() -> None:
    verdict = hygiene.duplicate_series(observed(PID_SPLIT))
    assert (verdict.outcome, verdict.level) == (Outcome.FAILED, "MUST")
    assert verdict.message == (
        "decode-0: vllm:kv_cache_usage_perc is split by its pid label into 2 series per engine and model. "
        f"{DUPLICATE_ADVICE}")
    assert verdict.evidence == {"process_label": {"vllm:kv_cache_usage_perc": "pid"},
                                "duplicated": {"vllm:kv_cache_usage_perc": 2}}


def test_pods_whose_pages_share_a_structure_are_each_named_in_their_own_verdict() -> None:
    # a fleet's pages share one structure, whose analysis is computed once: each verdict still names its pod
    pods = [Observation(Target(name, "http://10.0.0.1:8200"), version="0.32.0", before=page(PID_SPLIT))
            for name in ("decode-0", "decode-1")]
    verdicts = [hygiene.duplicate_series(obs) for obs in pods]
    assert [v.message.split(":")[0] for v in verdicts] == ["decode-0", "decode-1"]
    assert verdicts[0].evidence == verdicts[1].evidence == {"process_label": {"vllm:kv_cache_usage_perc": "pid"},
                                                            "duplicated": {"vllm:kv_cache_usage_perc": 2}}
    assert verdicts[0].evidence["duplicated"] is not verdicts[1].evidence["duplicated"]


def test_a_pid_label_on_one_process_fails_without_copies() -> None:
    text = gauge("vllm:kv_cache_usage_perc", 'engine="0",model_name="tiny",pid="101"')
    verdict = hygiene.duplicate_series(observed(text))
    assert verdict.outcome == Outcome.FAILED
    assert verdict.message.startswith("decode-0: vllm:kv_cache_usage_perc is split by its pid label. One engine's")
    assert verdict.evidence == {"process_label": {"vllm:kv_cache_usage_perc": "pid"}, "duplicated": {}}


def test_the_most_copies_among_a_familys_samples_are_reported() -> None:
    # three processes on the buckets, two on the sum: the family is split three ways
    pid3 = [f'engine="0",le="+Inf",model_name="tiny",pid="{p}"' for p in (101, 102, 103)]
    pid2 = [f'engine="0",model_name="tiny",pid="{p}"' for p in (101, 102)]
    text = ("# HELP vllm:e2e_seconds a histogram\n# TYPE vllm:e2e_seconds histogram\n"
            + "".join(f"vllm:e2e_seconds_bucket{{{s}}} 0.0\n" for s in pid3)
            + "".join(f"vllm:e2e_seconds_sum{{{s}}} 0.0\n" for s in pid2))
    verdict = hygiene.duplicate_series(observed(text))
    assert verdict.evidence["duplicated"] == {"vllm:e2e_seconds": 3}
    assert verdict.message.startswith("decode-0: vllm:e2e_seconds is split by its pid label into 3 series per ")
    text = ("# HELP vllm:e2e_seconds a histogram\n# TYPE vllm:e2e_seconds histogram\n"
            + "".join(f"vllm:e2e_seconds_bucket{{{s}}} 0.0\n" for s in pid3[:2])
            + "".join(f"vllm:e2e_seconds_sum{{{s}}} 0.0\n" for s in pid3[:1]))
    assert hygiene.duplicate_series(observed(text)).evidence["duplicated"] == {"vllm:e2e_seconds": 2}


def test_series_that_differ_in_a_label_other_than_pid_are_not_duplicates() -> None:
    text = gauge("vllm:kv_cache_usage_perc", 'engine="0",model_name="tiny"', 'engine="1",model_name="tiny"')
    verdict = hygiene.duplicate_series(observed(text))
    assert (verdict.outcome, verdict.message) == (Outcome.PASSED, "")
    assert verdict.evidence == {"process_label": {}, "duplicated": {}}


def test_the_collectors_families_are_one_per_process_by_design() -> None:
    # prometheus_client's own families on a vLLM page (tests/data/captures: python_gc_*, process_*)
    text = gauge("process_open_fds", 'pid="101"', 'pid="102"') + gauge("python_info", 'version="3.11.7"',
                                                                       'version="3.11.7"')
    verdict = hygiene.duplicate_series(observed(text))
    assert (verdict.outcome, verdict.message) == (Outcome.PASSED, "")


def test_a_split_vllm_family_after_the_collectors_families_is_still_found() -> None:
    # a real page starts with prometheus_client's families (tests/data/captures: python_gc_*, process_*)
    verdict = hygiene.duplicate_series(observed(OPEN_FDS + PID_SPLIT))
    assert verdict.outcome == Outcome.FAILED
    assert verdict.evidence["duplicated"] == {"vllm:kv_cache_usage_perc": 2}


def test_the_first_three_split_families_are_named_in_order_and_the_rest_counted() -> None:
    text = "".join(gauge(f"vllm:{n}", 'engine="0",pid="101"', 'engine="0",pid="102"') for n in "dcab")
    verdict = hygiene.duplicate_series(observed(text))
    assert verdict.message.startswith(
        "decode-0: vllm:a is split by its pid label into 2 series per engine and model; vllm:b is split by its pid "
        "label into 2 series per engine and model; vllm:c is split by its pid label into 2 series per engine and "
        "model (and 1 more families). One engine's")
    three = "".join(gauge(f"vllm:{n}", 'engine="0",pid="101"') for n in "cab")
    assert "more families" not in hygiene.duplicate_series(observed(three)).message


# -- warn -----------------------------------------------------------------------------------------------------


def test_warn_shows_each_targets_passed_warning_and_nothing_else() -> None:
    verdict = Verdict(Outcome.FAILED, "2 targets", "SHOULD", targets={
        "a": Verdict(Outcome.PASSED, "a: page too big", "SHOULD"),
        "b": Verdict(Outcome.FAILED, "b: split by pid", "SHOULD"),
        "c": Verdict(Outcome.PASSED, "", "SHOULD"),
        "d": Verdict(Outcome.PASSED, "d: 44 labels", "SHOULD"),
    })
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        hygiene.warn(verdict)
    assert [(w.category, str(w.message)) for w in caught] == [
        (StoreWarning, "a: page too big"), (StoreWarning, "d: 44 labels")]



@pytest.mark.parametrize(("pods", "shown"), [
    (3, "decode-0, decode-1, decode-2"),
    (4, "decode-0, decode-1, decode-2 and 1 more (4 targets)"),
])
def test_pods_warned_alike_are_one_warning_naming_three_and_counting_the_rest(pods: int, shown: str) -> None:
    """A fleet whose pages are alike: exactly three pods are all named, a fourth is counted."""
    verdict = Verdict(Outcome.PASSED, "", "SHOULD", targets={
        f"decode-{i}": Verdict(Outcome.PASSED, f"decode-{i}: page too big", "SHOULD") for i in range(pods)})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        hygiene.warn(verdict)
    assert [str(w.message) for w in caught] == [f"{shown}: page too big"]

def test_warn_on_a_single_verdict_warns_only_when_it_passed_with_a_message() -> None:
    with pytest.warns(StoreWarning, match="^decode-0: page too big$"):
        hygiene.warn(Verdict(Outcome.PASSED, "decode-0: page too big", "SHOULD"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        hygiene.warn(Verdict(Outcome.PASSED, "", "SHOULD"))
        hygiene.warn(Verdict(Outcome.FAILED, "decode-0: split", "MUST"))
    assert caught == []


@pytest.mark.skipif("MUTANT_UNDER_TEST" in os.environ, reason="mutmut's trampoline adds a frame before warn")
def test_warn_points_at_the_line_that_called_it() -> None:
    # pytest's warnings summary shows this file and line: the conformance test that judged the page
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        hygiene.warn(Verdict(Outcome.PASSED, "decode-0: page too big", "SHOULD"))
    assert [w.filename for w in caught] == [__file__]


# -- the real pages, the simulator's faults and promtool ---------------------------------------------------

HYGIENE = ("-k", "labels_per_series or info_labels or series_per_family or page_size or one_series_per_engine")


def wide_page(labels: int, series: int = 1) -> str:
    """One info gauge whose series carry `labels` labels each (engine among them)."""
    lines = ["# HELP vllm:wide_info a wide info metric", "# TYPE vllm:wide_info gauge"]
    for s in range(series):
        own = [f'engine="{s}"'] + [f'field_{i:02}="v"' for i in range(1, labels)]
        lines.append("vllm:wide_info{" + ",".join(own) + "} 1.0")
    return "\n".join(lines) + "\n"


# -- promtool's lint, on the real pages -------------------------------------------------------------------

# What promtool 2.42 says of a real vLLM 0.32 page, and why the suite does not make a rule of it:
# - "metric names should not contain ':'": colons are reserved by convention for recording rules, but the data
#   model allows them; every vLLM family is named `vllm:...` and every dashboard queries those names.
# - `vllm:iteration_tokens_total non-counter metrics should not have "_total" suffix`: a histogram named before the
#   convention existed in vLLM; renaming it would break every panel on it. The catalog keeps vLLM's name.
# It says nothing of label counts or duplicated series; the hygiene checks are ours.
_ACCEPTED_LINT = ("metric names should not contain ':'", 'non-counter metrics should not have "_total" suffix')


def promtool(page: str) -> tuple[int, list[str]]:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    done = subprocess.run([binary, "check", "metrics"], input=page, capture_output=True, text=True, timeout=30)
    return done.returncode, (done.stdout + done.stderr).splitlines()


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda p: p.name)
def test_promtool_lints_only_vllms_naming_on_the_real_pages(capture: Path) -> None:
    status, lines = promtool(capture.read_text())
    assert status == 3, lines  # 3: lint problems only; 1 would be a page promtool cannot parse
    assert all(line.startswith("vllm:") and line.endswith(_ACCEPTED_LINT) for line in lines), lines
    assert 'vllm:iteration_tokens_total non-counter metrics should not have "_total" suffix' in lines
    assert "vllm:cache_config_info metric names should not contain ':'" in lines


@pytest.mark.parametrize("fault", [None, "info-labels-45", "pid-label"])
def test_promtool_passes_the_simulators_pages_and_misses_their_faults(sim_host: SimHost, fault: str | None) -> None:
    sim = sim_host.start(get_profile("x86_64").replace(fault=fault))
    page = httpx.get(sim.url + "/metrics", timeout=10).text
    status, lines = promtool(page)
    assert status == 3 and all(line.endswith(_ACCEPTED_LINT) for line in lines), lines
    # the same lint as the real page: neither 45 labels nor a pid label is promtool's concern
    assert len(lines) == len(promtool(BASE_CAPTURE.read_text())[1])


# -- the checks on the real pages ---------------------------------------------------------------------------


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda p: p.name)
def test_real_cache_config_info_is_over_both_victoriametrics_caps(capture: Path) -> None:
    verdict = hygiene.labels_per_series(observed(capture.read_text()))
    # a warning, not a failure: vLLM's page is valid, the store is what drops it
    assert verdict.outcome == Outcome.PASSED and verdict.level == "SHOULD"
    assert verdict.evidence["most_labels"] == 37 and verdict.evidence["over"] == {"vllm:cache_config_info": 37}
    assert verdict.message.startswith(
        "decode-0: vllm:cache_config_info (37 labels) with the 7 labels a Prometheus Operator ServiceMonitor scrape "
        "adds (instance, job, namespace, service, pod, container, endpoint) reach 44 labels per series, more than "
        "VictoriaMetrics Cloud (every tier) and older VictoriaMetrics releases: -maxLabelsPerTimeseries=30; "
        "VictoriaMetrics (default of newer releases): -maxLabelsPerTimeseries=40.")


def test_real_pages_name_the_labels_sized_at_startup() -> None:
    verdict = hygiene.volatile_labels(observed(BASE_CAPTURE.read_text()))
    assert verdict.outcome == Outcome.PASSED and verdict.level == "MAY" and verdict.evidence["warning"]
    assert verdict.evidence["labels"] == {"vllm:cache_config_info": {
        "num_gpu_blocks": "4096", "kv_cache_size_tokens": "524288", "kv_cache_max_concurrency": "512.0",
        "kv_cache_memory_bytes": "1073741824"}}  # num_cpu_blocks="None" is not a value


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda p: p.name)
def test_real_pages_have_one_series_per_engine_bounded_families_and_a_small_page(capture: Path) -> None:
    obs = observed(capture.read_text())
    for check in (hygiene.duplicate_series, hygiene.series_per_family, hygiene.page_size):
        verdict = check(obs)
        assert (verdict.outcome, verdict.message) == (Outcome.PASSED, ""), check
    assert hygiene.series_per_family(obs).evidence["largest"] == 25  # the TTFT histogram: 22 bounds, +Inf, sum, count


# -- boundaries -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("labels", "stores"), [(23, 0), (24, 1), (33, 1), (34, 2)])
def test_label_caps_count_the_scrapes_labels_exactly(labels: int, stores: int) -> None:
    # 23 + 7 = 30 fits VictoriaMetrics Cloud; 33 + 7 = 40 fits newer VictoriaMetrics' default
    verdict = hygiene.labels_per_series(observed(wide_page(labels)))
    assert verdict.outcome == Outcome.PASSED
    assert verdict.message.count("-maxLabelsPerTimeseries=") == stores, verdict.message
    if stores:
        assert f"reach {labels + 7} labels per series" in verdict.message


@pytest.mark.parametrize(("series", "outcome"), [(1000, Outcome.PASSED), (1001, Outcome.FAILED)])
def test_series_per_family_cap(series: int, outcome: Outcome) -> None:
    verdict = hygiene.series_per_family(observed(wide_page(2, series)))
    assert verdict.outcome == outcome and verdict.level == "SHOULD"
    if outcome == Outcome.FAILED:
        assert verdict.message.startswith("decode-0: vllm:wide_info (1001 series) has more than 1000 series")


@pytest.mark.parametrize(("extra", "warned"), [(0, False), (1, True)])
def test_page_size_warning_threshold(extra: int, warned: bool) -> None:
    obs = observed(BASE_CAPTURE.read_text())
    assert obs.before is not None
    obs.before.size = hygiene.rules().warn_page_bytes + extra
    verdict = hygiene.page_size(obs)
    assert verdict.outcome == Outcome.PASSED and bool(verdict.message) == warned
    if warned:
        assert "4,194,305 bytes, above 4 MiB" in verdict.message and "body_size_limit" in verdict.message


def test_a_repeated_label_set_is_a_duplicate_even_without_pid() -> None:
    text = wide_page(2, 1)
    verdict = hygiene.duplicate_series(observed(text + text.splitlines()[-1].replace("1.0", "0.5") + "\n"))
    assert verdict.outcome == Outcome.FAILED and verdict.level == "MUST"
    assert verdict.message.startswith("decode-0: vllm:wide_info is split into 2 series per engine and model.")


# -- through pytest, as users run it --------------------------------------------------------------------------


def test_clean_simulator_passes_with_the_store_warnings(pytester: pytest.Pytester, sim_host: SimHost) -> None:
    sim = sim_host.start(get_profile("x86_64"))
    result = pytester.runpytest("-p", "no:cacheprovider", f"--vllm-url={sim.url}", *HYGIENE)
    outcomes = result.parseoutcomes()
    assert (outcomes["passed"], outcomes["warnings"], outcomes.get("failed", 0)) == (5, 2, 0), result.stdout.str()
    assert said(result, "StoreWarning: 127.0.0.1:* vllm:cache_config_info (37 labels) with the 7 labels")
    assert said(result, "StoreWarning: * vllm:cache_config_info carries num_gpu_blocks='4096'")


def test_faults_the_hygiene_checks_catch(pytester: pytest.Pytester, sim_host: SimHost) -> None:
    wide = sim_host.start(get_profile("x86_64").replace(fault="info-labels-45"))
    pid = sim_host.start(get_profile("x86_64").replace(fault="pid-label"))
    result = pytester.runpytest("-p", "no:cacheprovider", f"--vllm-url={wide.url}", f"--vllm-url={pid.url}",
                                *HYGIENE)
    outcomes = result.parseoutcomes()
    assert outcomes["failed"] == 1 and outcomes["passed"] == 4, result.stdout.str()
    name = pid.url.removeprefix("http://")
    assert said(result, f"FAILED MUST {name} one_series_per_engine_and_model {name}: vllm:kv_cache_usage_perc is "
                        f"split by its pid label into 2 series per engine and model.")
    assert said(result, "vllm:cache_config_info (45 labels) with the 7 labels * reach 52 labels per series")
