"""Cardinality and label hygiene: the real vLLM 0.32 pages, the simulator's faults, the caps' boundaries, and what
the real `promtool check metrics` says of the same pages (its lint rules are not ours: see below)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from conftest import BASE_CAPTURE, CAPTURES, said
from pytest_vllm_metrics import hygiene
from pytest_vllm_metrics.observe import Observation
from pytest_vllm_metrics.outcome import Outcome
from pytest_vllm_metrics.sim import SimHost, get_profile
from pytest_vllm_metrics.snapshot import Snapshot
from pytest_vllm_metrics.targets import Target

HYGIENE = ("-k", "labels_per_series or info_labels or series_per_family or page_size or one_series_per_engine")


def observed(text: str) -> Observation:
    page = Snapshot.parse(text)
    page.size = len(text.encode())
    return Observation(Target("decode-0", "http://10.0.0.1:8200"), version="0.32.0", before=page)


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
