"""model_server.py: the model-server protocol's checks, judged on real pages of each engine (tests/data/engines: SGLang
v0.5.9 and v0.5.16 captures from llm-d-router's test fixtures, a trtllm-serve v1.3.0rc23 capture, the Triton
TensorRT-LLM backend's documented output) and on those pages changed the way real servers go wrong."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pytest_vllm_metrics import engines, model_server
from pytest_vllm_metrics.engines import Engine, Metric
from pytest_vllm_metrics.observe import Observation
from pytest_vllm_metrics.outcome import Outcome, Verdict
from pytest_vllm_metrics.settings import Policy
from pytest_vllm_metrics.snapshot import Snapshot
from pytest_vllm_metrics.targets import Target
from pytest_vllm_metrics.traffic import Aborts, TrafficResult

ENGINES = Path(__file__).parent / "data" / "engines"
PAGES = {Engine.SGLANG: "sglang-current", Engine.TRTLLM_SERVE: "trtllm-serve",
         Engine.TRITON_TENSORRT_LLM: "triton-tensorrt-llm"}
MODELS = {Engine.SGLANG: "Qwen/Qwen3-0.6B", Engine.TRTLLM_SERVE: "Qwen/Qwen3-0.6B",
          Engine.TRITON_TENSORRT_LLM: "tensorrt_llm"}


def page(name: str) -> str:
    return (ENGINES / f"{name}.prom").read_text(encoding="utf-8")


def observed(engine: Engine, text: str, version: str | None = None, model: str | None = None,
             aborts: Aborts | None = None) -> Observation:
    snapshot = Snapshot.parse(text)
    traffic = TrafficResult(model=model or MODELS.get(engine), block_size=16)
    return Observation(Target("pod-0", "http://10.0.0.1:8000", engine=engine), version=version, before=snapshot,
                       after=snapshot, traffic=traffic, aborts=aborts)


@pytest.mark.parametrize("engine", list(PAGES))
@pytest.mark.parametrize("metric", [Metric.QUEUED, Metric.RUNNING, Metric.KV_USAGE])
def test_each_engines_real_page_serves_what_the_picker_reads(engine: Engine, metric: Metric) -> None:
    verdict = model_server.required_metric(observed(engine, page(PAGES[engine])), metric)
    assert (verdict.outcome, verdict.message) == (Outcome.PASSED, "")


def test_the_value_the_picker_reads_is_the_first_matching_series() -> None:
    triton = Snapshot.parse(page("triton-tensorrt-llm"))
    selectors = engines.profile(Engine.TRITON_TENSORRT_LLM).selectors()
    assert model_server.read(triton, selectors[Metric.KV_USAGE]).value == 0.4875  # README: fraction 0.4875
    assert model_server.read(triton, selectors[Metric.QUEUED]).value == 1  # request_type="waiting"


def test_sglang_without_enable_metrics_names_the_flag() -> None:
    text = "\n".join(line for line in page("sglang-current").splitlines() if "sglang:num_queue_reqs" not in line)
    verdict = model_server.required_metric(observed(Engine.SGLANG, text + "\n"), Metric.QUEUED)
    assert verdict.outcome == Outcome.FAILED
    assert verdict.message == (
        "pod-0 (sglang): sglang:num_queue_reqs is missing from /metrics before the workload (sglang serves it only "
        "when started with --enable-metrics). The endpoint picker reads it for queued requests (its queue scorer and "
        "its admission), and fails to read this pod's metrics without it.")


def test_an_untyped_required_family_reads_as_0_to_the_picker() -> None:
    text = page("trtllm-serve").replace("# TYPE trtllm_num_requests_running gauge\n", "")
    verdict = model_server.required_metric(observed(Engine.TRTLLM_SERVE, text), Metric.RUNNING)
    assert verdict.outcome == Outcome.FAILED
    assert verdict.message.startswith(
        "pod-0 (trtllm-serve): trtllm_num_requests_running is untyped (no # TYPE line) before the workload; the "
        "endpoint picker reads an untyped family as 0, so this pod looks idle to it.")
    assert model_server.read(Snapshot.parse(text), engines.selector(
        "trtllm_num_requests_running")).value == 0.0


@pytest.mark.parametrize(("value", "outcome", "hint"), [
    ("1.0", Outcome.PASSED, ""),  # exactly full: still a fraction
    ("0.0", Outcome.PASSED, ""),
    ("28.0", Outcome.FAILED, "It looks like a percentage;"),  # SGLang docs: 0.28 under load; 28 as a percentage
    ("1.01", Outcome.FAILED, "It looks like a percentage;"),
    ("-0.1", Outcome.FAILED, "from 0 to 1. the endpoint picker"),
    ("NaN", Outcome.FAILED, "from 0 to 1. the endpoint picker"),
])
def test_kv_cache_utilization_is_a_fraction(value: str, outcome: Outcome, hint: str) -> None:
    text = re.sub(r"(sglang:token_usage\{[^}]*\}) \S+", rf"\g<1> {value}", page("sglang-current"))
    verdict = model_server.required_metric(observed(Engine.SGLANG, text), Metric.KV_USAGE)
    assert verdict.outcome == outcome
    assert hint in verdict.message


@pytest.mark.parametrize(("value", "outcome"), [("0.0", Outcome.PASSED), ("3.0", Outcome.PASSED),
                                                ("-1.0", Outcome.FAILED), ("2.5", Outcome.FAILED)])
def test_a_request_count_is_a_whole_number_at_least_0(value: str, outcome: Outcome) -> None:
    text = re.sub(r"(trtllm_num_requests_waiting\{[^}]*\}) \S+", rf"\g<1> {value}", page("trtllm-serve"))
    verdict = model_server.required_metric(observed(Engine.TRTLLM_SERVE, text), Metric.QUEUED)
    assert verdict.outcome == outcome
    if outcome == Outcome.FAILED:
        assert verdict.message.endswith("a count of requests is a whole number, 0 or more; the endpoint picker's "
                                        "queue and load scores go wrong.")


def test_triton_before_its_waiting_series_has_nothing_the_picker_matches() -> None:
    # the backend README @39ba55a7: request_type context|scheduled|max|active, no waiting
    verdict = model_server.required_metric(observed(Engine.TRITON_TENSORRT_LLM, page(
        "triton-tensorrt-llm-pre-waiting")), Metric.QUEUED)
    assert verdict.outcome == Outcome.FAILED
    assert "no series of nv_trt_llm_request_metrics matches " in verdict.message
    assert "(its labels: model, request_type, version)" in verdict.message


def per_rank(text: str, family: str, first: str, second: str) -> str:
    """Every series of `family` once per tensor-parallel rank: rank 0 reads `first`, rank 1 `second` (SGLang with
    --enable-metrics-for-all-schedulers)."""
    def two(match: re.Match[str]) -> str:
        labels = match.group(1)
        rank1 = labels.replace('tp_rank="0"', 'tp_rank="1"')
        return f"{family}{{{labels}}} {first}\n{family}{{{rank1}}} {second}"
    return re.sub(rf"^{re.escape(family)}\{{([^}}]*)\}} \S+$", two, text, flags=re.MULTILINE)


def test_per_rank_series_that_disagree_with_their_sum_are_named() -> None:
    text = per_rank(page("sglang-current"), "sglang:num_running_reqs", "0.0", "3.0")
    verdict = model_server.series_read(observed(Engine.SGLANG, text))
    assert verdict.outcome == Outcome.FAILED
    assert verdict.message.startswith(
        "pod-0 (sglang): sglang:num_running_reqs has 2 series; the endpoint picker reads the first "
        "(engine_type=unified, model_name=Qwen/Qwen3-0.6B, moe_ep_rank=0, pp_rank=0, tp_rank=0: 0) while sum by (pod) "
        "shows 3.")
    assert verdict.evidence == {"sglang:num_running_reqs": {"series": 2, "epp_reads": 0.0, "sum": 3.0}}


def test_per_rank_series_that_agree_or_one_series_pass() -> None:
    agree = per_rank(page("sglang-current"), "sglang:num_running_reqs", "0.0", "0.0")
    assert model_server.series_read(observed(Engine.SGLANG, agree)).outcome == Outcome.PASSED
    # KV-cache utilization per rank is a fraction each: not summed
    kv = per_rank(page("sglang-current"), "sglang:token_usage", "0.1", "0.3")
    assert model_server.series_read(observed(Engine.SGLANG, kv)).outcome == Outcome.PASSED
    one = model_server.series_read(observed(Engine.SGLANG, page("sglang-current")))
    assert (one.outcome, one.evidence) == (Outcome.PASSED, {})


@pytest.mark.parametrize(("name", "version", "outcome", "form"), [
    ("sglang-before-0.5.12", "0.5.9", Outcome.PASSED, "sglang:cache_config_info label page_size"),
    ("sglang-current", "0.5.16", Outcome.PASSED, "sglang:page_size"),
    ("sglang-current", None, Outcome.PASSED, "sglang:page_size"),  # version unknown: either form
    ("sglang-before-0.5.12", None, Outcome.PASSED, "sglang:cache_config_info label page_size"),
    ("sglang-current", "0.5.9", Outcome.SKIPPED, ""),  # the gauges are not what 0.5.9 serves
])
def test_the_kv_cache_shape_in_the_form_of_the_engines_version(name: str, version: str | None, outcome: Outcome,
                                                                form: str) -> None:
    verdict = model_server.kv_cache_shape(observed(Engine.SGLANG, page(name), version=version))
    assert verdict.outcome == outcome
    assert str(verdict.evidence.get("form", "")).startswith(form)


def test_the_kv_cache_shape_of_trtllm_serve_and_triton() -> None:
    trt = model_server.kv_cache_shape(observed(Engine.TRTLLM_SERVE, page("trtllm-serve")))
    assert (trt.outcome, trt.evidence["block_size"], trt.evidence["num_blocks"]) == (Outcome.PASSED, "32", "19960")
    triton = model_server.kv_cache_shape(observed(Engine.TRITON_TENSORRT_LLM, page("triton-tensorrt-llm")))
    assert (triton.evidence["block_size"], triton.evidence["num_blocks"]) == ("64", "6239")


def test_a_block_size_the_picker_cannot_parse_as_a_whole_number_fails() -> None:
    text = page("sglang-before-0.5.12").replace('page_size="1"', 'page_size="auto"')
    verdict = model_server.kv_cache_shape(observed(Engine.SGLANG, text, version="0.5.9"))
    assert verdict.outcome == Outcome.FAILED
    assert "block_size reads 'auto'" in verdict.message


def test_the_metrics_name_the_served_model_in_the_engines_label() -> None:
    assert model_server.model_named(observed(Engine.TRITON_TENSORRT_LLM, page("triton-tensorrt-llm"))).outcome \
        == Outcome.PASSED  # Triton's label is `model`
    verdict = model_server.model_named(observed(Engine.SGLANG, page("sglang-current"), model="qwen3"))
    assert verdict.outcome == Outcome.FAILED
    assert verdict.message.startswith("pod-0 (sglang) serves model 'qwen3', but sglang:num_queue_reqs names "
                                      "'Qwen/Qwen3-0.6B'")


SHARED = Policy()  # a run that is not exclusive, the workload sent to each pod


def under_load(obs: Observation, policy: Policy = SHARED) -> Verdict:
    return model_server.under_load(obs, policy)


def back_to_idle(obs: Observation, policy: Policy = SHARED) -> Verdict:
    return model_server.back_to_idle(obs, policy)


def probe(during: dict[str, float | None], after: dict[str, float | None], settled: float | None) -> Aborts:
    return Aborts(opened=3, aborted=3, during=during, after=after, settled_after=settled, waited=35.0, polls=4)


SG = {"queued": "sglang:num_queue_reqs", "running": "sglang:num_running_reqs", "kv": "sglang:token_usage"}


def test_gauges_under_load_and_back_at_idle() -> None:
    busy = {SG["queued"]: 0.0, SG["running"]: 3.0, SG["kv"]: 0.01}
    idle = {SG["queued"]: 0.0, SG["running"]: 0.0, SG["kv"]: 0.0}
    obs = observed(Engine.SGLANG, page("sglang-current"), aborts=probe(busy, idle, 0.4))
    assert (under_load(obs).outcome, back_to_idle(obs).outcome) == (Outcome.PASSED,
                                                                                             Outcome.PASSED)
    queued_only = {SG["queued"]: 3.0, SG["running"]: 0.0, SG["kv"]: 0.01}  # a busy engine may queue them all
    assert under_load(observed(Engine.SGLANG, page("sglang-current"), aborts=probe(
        queued_only, idle, 0.4))).outcome == Outcome.PASSED


def test_a_pod_that_looks_idle_while_it_serves_fails() -> None:
    flat = {SG["queued"]: 0.0, SG["running"]: 0.0, SG["kv"]: 0.0}
    verdict = under_load(observed(Engine.SGLANG, page("sglang-current"), aborts=probe(flat, flat, 0.1)))
    assert verdict.outcome == Outcome.FAILED
    assert verdict.message.startswith("pod-0 (sglang): while 3 streaming requests were open, sglang:num_running_reqs "
                                      "and sglang:num_queue_reqs read 0")
    no_kv = {SG["queued"]: 0.0, SG["running"]: 2.0, SG["kv"]: 0.0}
    assert "sglang:token_usage read 0" in under_load(observed(
        Engine.SGLANG, page("sglang-current"), aborts=probe(no_kv, flat, 0.1))).message


def test_gauges_stuck_after_the_requests_fail_with_the_bound() -> None:
    busy = {SG["queued"]: 0.0, SG["running"]: 3.0, SG["kv"]: 0.01}
    stuck = {SG["queued"]: 0.0, SG["running"]: 3.0, SG["kv"]: 0.0}
    verdict = back_to_idle(observed(Engine.SGLANG, page("sglang-current"),
                                                 aborts=probe(busy, stuck, None)))
    assert verdict.outcome == Outcome.FAILED
    assert verdict.message.startswith("pod-0 (sglang): 35 s after its requests were closed, sglang:num_running_reqs "
                                      "3: the endpoint picker keeps routing around a pod that is idle.")


def test_without_a_probe_the_load_checks_say_why() -> None:
    vllm = observed(Engine.VLLM, page("sglang-current"))
    assert under_load(vllm).outcome == Outcome.SKIPPED  # vLLM: probed with --vllm-exclusive
    assert under_load(vllm, Policy(exclusive=True)).message == "pod-0: the load probe did not run"
    gateway = under_load(observed(Engine.SGLANG, page("sglang-current")), Policy(via_gateway=True))
    assert (gateway.outcome, gateway.message) == (Outcome.SKIPPED, (
        "the workload went through the inference gateway: the load probe needs each pod's own streams (run without "
        "--vllm-gateway-url)"))
    failed = observed(Engine.SGLANG, page("sglang-current"), aborts=Aborts(error="GET /metrics timed out"))
    verdict = back_to_idle(failed)
    assert (verdict.outcome, verdict.message) == (
        Outcome.INCONCLUSIVE, "pod-0: the load probe could not run: GET /metrics timed out")
