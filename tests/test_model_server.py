"""model_server.py: the model-server protocol's checks, judged on real pages of each engine (tests/data/engines: SGLang
v0.5.9 and v0.5.16 captures from llm-d-router's test fixtures, a trtllm-serve v1.3.0rc23 capture, the Triton
TensorRT-LLM backend's documented output) and on those pages changed the way real servers go wrong."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pytest_vllm_metrics import engines, model_server
from pytest_vllm_metrics.engines import Engine, Metric
from pytest_vllm_metrics.observe import Observation, Stage
from pytest_vllm_metrics.outcome import Level, Outcome, Problem, Verdict
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


# -- each check's whole verdict: its level as the run gives it, its evidence in the report ---------------------------

PROBLEM = Problem("pod-0: GET /metrics did not finish within 2 s", check="test_reachable", cause="timed out")
CHECKS = {  # check -> the stages it needs, and a level other than its default
    "required_metric": ((Stage.BEFORE,), Level.SHOULD), "series_read": ((Stage.BEFORE,), Level.MUST),
    "under_load": ((Stage.BEFORE, Stage.TRAFFIC, Stage.AFTER), Level.SHOULD),
    "back_to_idle": ((Stage.BEFORE, Stage.TRAFFIC, Stage.AFTER), Level.SHOULD),
    "kv_cache_shape": ((Stage.BEFORE,), Level.MUST), "model_named": ((Stage.BEFORE, Stage.TRAFFIC), Level.MAY)}


def run(check: str, obs: Observation, level: Level, policy: Policy = SHARED) -> Verdict:
    if check == "required_metric":
        return model_server.required_metric(obs, Metric.QUEUED, level)
    if check in ("under_load", "back_to_idle"):
        return getattr(model_server, check)(obs, policy, level)  # type: ignore[no-any-return]
    return getattr(model_server, check)(obs, level)  # type: ignore[no-any-return]


@pytest.mark.parametrize(("check", "stage"), [(c, s) for c, (stages, _) in CHECKS.items() for s in stages])
def test_a_stage_the_check_needs_that_was_not_observed_makes_it_inconclusive_at_its_level(check: str,
                                                                                          stage: Stage) -> None:
    obs = observed(Engine.SGLANG, page("sglang-current"), aborts=probe({SG["running"]: 1.0}, {}, 0.1))
    obs.errors[stage] = PROBLEM
    level = CHECKS[check][1]
    assert run(check, obs, level) == Verdict(Outcome.INCONCLUSIVE, PROBLEM.message, level)


def test_a_required_metric_that_passes_shows_what_the_picker_read_before_and_after() -> None:
    after = re.sub(r"(trtllm_num_requests_waiting\{[^}]*\}) \S+", r"\g<1> 4.0", page("trtllm-serve"))
    obs = observed(Engine.TRTLLM_SERVE, page("trtllm-serve"))
    obs.after = Snapshot.parse(after)
    assert model_server.required_metric(obs, Metric.QUEUED, Level.SHOULD) == Verdict(
        Outcome.PASSED, level=Level.SHOULD, evidence={"selector": "trtllm_num_requests_waiting",
                                                       "before the workload": 0.0, "after it": 4.0})


def test_a_required_metric_gone_after_the_workload_says_when() -> None:
    # trtllm-serve has no flag that turns its metrics on: the message names none
    obs = observed(Engine.TRTLLM_SERVE, page("trtllm-serve"))
    obs.after = Snapshot.parse("\n".join(line for line in page("trtllm-serve").splitlines()
                                         if "trtllm_num_requests_waiting" not in line) + "\n")
    assert model_server.required_metric(obs, Metric.QUEUED, Level.SHOULD) == Verdict(
        Outcome.FAILED, "pod-0 (trtllm-serve): trtllm_num_requests_waiting is missing from /metrics after it. The "
                        "endpoint picker reads it for queued requests (its queue scorer and its admission), and fails "
                        "to read this pod's metrics without it.", Level.SHOULD,
        {"selector": "trtllm_num_requests_waiting", "before the workload": 0.0, "after it": None})


def test_a_required_metric_typed_as_a_counter_is_not_the_protocols_gauge() -> None:
    text = page("trtllm-serve").replace("# TYPE trtllm_num_requests_running gauge",
                                        "# TYPE trtllm_num_requests_running counter")
    verdict = model_server.required_metric(observed(Engine.TRTLLM_SERVE, text), Metric.RUNNING, Level.SHOULD)
    assert verdict == Verdict(
        Outcome.FAILED, "pod-0 (trtllm-serve): trtllm_num_requests_running is a counter before the workload; the "
                        "protocol makes it a gauge. Declare it # TYPE trtllm_num_requests_running gauge.", Level.SHOULD,
        {"selector": "trtllm_num_requests_running", "before the workload": 0.0})


def test_a_required_metric_without_labels_matches_no_selector_that_names_one() -> None:
    # one series, with no label at all, in place of the family's labelled ones
    text = re.sub(r"^(nv_trt_llm_request_metrics\{.*\n)+", "nv_trt_llm_request_metrics 1\n",
                  page("triton-tensorrt-llm"), flags=re.MULTILINE)
    verdict = model_server.required_metric(observed(Engine.TRITON_TENSORRT_LLM, text), Metric.QUEUED, Level.SHOULD)
    assert verdict == Verdict(
        Outcome.FAILED, "pod-0 (triton-tensorrt-llm): no series of nv_trt_llm_request_metrics matches "
                        "nv_trt_llm_request_metrics{request_type=\"waiting\"} before the workload (its labels: none); "
                        "the endpoint picker finds nothing to read.", Level.SHOULD,
        {"selector": 'nv_trt_llm_request_metrics{request_type="waiting"}', "before the workload": None})


@pytest.mark.parametrize(("value", "hint"), [
    ("100.0", " It looks like a percentage; "),  # exactly 100 %
    ("100.5", " "),  # beyond any percentage
])
def test_kv_cache_utilization_of_100_reads_as_a_percentage_and_beyond_it_does_not(value: str, hint: str) -> None:
    text = re.sub(r"(sglang:token_usage\{[^}]*\}) \S+", rf"\g<1> {value}", page("sglang-current"))
    verdict = model_server.required_metric(observed(Engine.SGLANG, text), Metric.KV_USAGE, Level.SHOULD)
    assert verdict == Verdict(
        Outcome.FAILED, f"pod-0 (sglang): sglang:token_usage reads {float(value):g} before the workload: the "
                        f"protocol's KV-cache utilization is a fraction from 0 to 1.{hint}the endpoint picker would "
                        f"take the pod as full beyond 1 and stop sending it requests.", Level.SHOULD,
        {"selector": "sglang:token_usage", "before the workload": float(value)})


def test_per_rank_series_of_two_gauges_are_both_named_and_the_page_after_the_workload_is_the_one_read() -> None:
    text = per_rank(per_rank(page("sglang-current"), "sglang:num_running_reqs", "1.0", "2.0"),
                    "sglang:num_queue_reqs", "0.0", "5.0")
    obs = observed(Engine.SGLANG, page("sglang-current"))
    obs.after = Snapshot.parse(text)
    verdict = model_server.series_read(obs, Level.MUST)
    assert (verdict.outcome, verdict.level) == (Outcome.FAILED, Level.MUST)
    assert "sglang:num_queue_reqs has 2 series; the endpoint picker reads the first (" in verdict.message
    assert "while sum by (pod) shows 5; sglang:num_running_reqs has 2 series;" in verdict.message
    assert model_server.series_read(observed(Engine.SGLANG, page("sglang-current")), Level.MAY) == Verdict(
        Outcome.PASSED, level=Level.MAY, evidence={})


@pytest.mark.parametrize(("version", "message"), [
    ("0.5.9", "serves neither sglang:cache_config_info label page_size and sglang:cache_config_info label num_pages "
              "(optional in the protocol: the endpoint picker's prefix-cache scoring then assumes its configured "
              "block size)"),
    (None, "serves neither sglang:cache_config_info label page_size and sglang:cache_config_info label num_pages nor "
           "sglang:page_size and sglang:num_pages (optional in the protocol: the endpoint picker's prefix-cache "
           "scoring then assumes its configured block size)"),
])
def test_a_kv_cache_shape_served_in_no_form_names_each_form_looked_for(version: str | None, message: str) -> None:
    text = "\n".join(line for line in page("sglang-current").splitlines()
                     if "sglang:page_size" not in line and "sglang:num_pages" not in line) + "\n"
    assert model_server.kv_cache_shape(observed(Engine.SGLANG, text, version=version), Level.SHOULD) == Verdict(
        Outcome.SKIPPED, message, Level.SHOULD)


def test_a_kv_cache_shape_of_fractional_gauges_names_each_value_the_picker_cannot_parse() -> None:
    text = re.sub(r"(trtllm_kv_cache_tokens_per_block\{[^}]*\}) \S+", r"\g<1> 32.5", page("trtllm-serve"))
    text = re.sub(r"(trtllm_kv_cache_max_blocks\{[^}]*\}) \S+", r"\g<1> NaN", text)
    verdict = model_server.kv_cache_shape(observed(Engine.TRTLLM_SERVE, text), Level.MUST)
    form = "trtllm_kv_cache_tokens_per_block and trtllm_kv_cache_max_blocks"
    assert verdict == Verdict(
        Outcome.FAILED, f"pod-0 (trtllm-serve): {form}: block_size reads '32.5', num_blocks reads 'nan'; the endpoint "
                        f"picker parses each as a whole number and fails to read the pod's KV cache shape.", Level.MUST,
        {"form": form, "block_size": "32.5", "num_blocks": "nan"})
    whole = model_server.kv_cache_shape(observed(Engine.TRTLLM_SERVE, page("trtllm-serve")), Level.SHOULD)
    assert whole == Verdict(Outcome.PASSED, level=Level.SHOULD,
                            evidence={"form": form, "block_size": "32", "num_blocks": "19960"})


def test_the_model_named_check_shows_what_each_metric_names() -> None:
    served = "Qwen/Qwen3-0.6B"
    named = {"sglang:num_queue_reqs": served, "sglang:num_running_reqs": served, "sglang:token_usage": served}
    assert model_server.model_named(observed(Engine.SGLANG, page("sglang-current")), Level.MAY) == Verdict(
        Outcome.PASSED, level=Level.MAY, evidence={"served": served, "label": "model_name", "named": named})
    # a page whose gauges carry no model label (an engine started without --served-model-name's label)
    text = re.sub(r'model_name="[^"]*",?', "", page("sglang-current"))
    text = re.sub(r'^(sglang:token_usage\{)', r'\g<1>model_name="other",', text, flags=re.MULTILINE)
    verdict = model_server.model_named(observed(Engine.SGLANG, text), Level.MAY)
    assert verdict == Verdict(
        Outcome.FAILED, "pod-0 (sglang) serves model 'Qwen/Qwen3-0.6B', but sglang:num_queue_reqs has no model_name "
                        "label; sglang:num_running_reqs has no model_name label; sglang:token_usage names 'other': a "
                        "dashboard or an alert that selects model_name='Qwen/Qwen3-0.6B' sees nothing of this pod.",
        Level.MAY, {"served": served, "label": "model_name", "named": {
            "sglang:num_queue_reqs": None, "sglang:num_running_reqs": None, "sglang:token_usage": "other"}})


def test_without_a_workload_result_the_model_cannot_be_compared() -> None:
    obs = observed(Engine.SGLANG, page("sglang-current"))
    obs.traffic = None  # the workload went through the gateway: no pod's own answer
    assert model_server.model_named(obs, Level.MAY) == Verdict(
        Outcome.INCONCLUSIVE, "pod-0: the workload found no model to compare with", Level.MAY)


def test_the_load_checks_verdicts_carry_their_level_and_what_the_probe_read() -> None:
    busy = {SG["queued"]: 0.0, SG["running"]: 3.0, SG["kv"]: 0.01}
    idle = {SG["queued"]: 0.0, SG["running"]: 0.0, SG["kv"]: 0.0}
    obs = observed(Engine.SGLANG, page("sglang-current"), aborts=probe(busy, idle, 0.4))
    assert model_server.under_load(obs, SHARED, Level.SHOULD) == Verdict(
        Outcome.PASSED, level=Level.SHOULD, evidence={"during": busy})
    assert model_server.back_to_idle(obs, SHARED, Level.SHOULD) == Verdict(
        Outcome.PASSED, level=Level.SHOULD, evidence={"after": idle, "waited": 35.0, "settled_after": 0.4})
    flat = observed(Engine.SGLANG, page("sglang-current"), aborts=probe(idle, idle, 0.1))
    assert model_server.under_load(flat, SHARED, Level.SHOULD) == Verdict(
        Outcome.FAILED, "pod-0 (sglang): while 3 streaming requests were open, sglang:num_running_reqs and "
                        "sglang:num_queue_reqs read 0: the endpoint picker takes this pod as idle while it serves, "
                        "and sends it more.", Level.SHOULD, {"during": idle})
    no_kv = {SG["queued"]: 0.0, SG["running"]: 2.0, SG["kv"]: 0.0}
    assert model_server.under_load(observed(Engine.SGLANG, page("sglang-current"), aborts=probe(no_kv, idle, 0.1)),
                                   SHARED, Level.SHOULD).evidence == {"during": no_kv}
    stuck = {SG["queued"]: 1.0, SG["running"]: 3.0, SG["kv"]: 0.0}
    assert model_server.back_to_idle(observed(Engine.SGLANG, page("sglang-current"), aborts=probe(
        busy, stuck, None)), SHARED, Level.SHOULD) == Verdict(
        Outcome.FAILED, "pod-0 (sglang): 35 s after its requests were closed, sglang:num_queue_reqs 1, "
                        "sglang:num_running_reqs 3: the endpoint picker keeps routing around a pod that is idle. "
                        "(SGLang before its idle-metrics fix kept its gauges up to ~30 s.)", Level.SHOULD,
        {"after": stuck, "waited": 35.0, "settled_after": None})


def test_without_a_probe_reading_the_load_checks_say_why_at_their_level() -> None:
    vllm = observed(Engine.VLLM, page("sglang-current"))
    assert model_server.under_load(vllm, SHARED, Level.SHOULD) == Verdict(
        Outcome.SKIPPED, "vLLM's gauges under load are probed with --vllm-exclusive (test_accounting.py judges them "
                         "then)", Level.SHOULD)
    assert model_server.under_load(vllm, Policy(exclusive=True), Level.SHOULD) == Verdict(
        Outcome.INCONCLUSIVE, "pod-0: the load probe did not run", Level.SHOULD)
    sglang = observed(Engine.SGLANG, page("sglang-current"))
    assert model_server.under_load(sglang, Policy(via_gateway=True), Level.SHOULD).level == Level.SHOULD
    failed = observed(Engine.SGLANG, page("sglang-current"), aborts=Aborts(error="GET /metrics timed out"))
    assert model_server.back_to_idle(failed, SHARED, Level.SHOULD).level == Level.SHOULD
    ended = observed(Engine.SGLANG, page("sglang-current"), aborts=Aborts(opened=3, finished=3))
    assert model_server.back_to_idle(ended, SHARED, Level.SHOULD) == Verdict(
        Outcome.INCONCLUSIVE, "pod-0: the load probe's streams ended before the gauges could be read", Level.SHOULD)


def test_per_rank_series_that_agree_pass_showing_what_the_picker_reads() -> None:
    agree = per_rank(page("sglang-current"), "sglang:num_running_reqs", "2.0", "0.0")
    agree = per_rank(agree, "sglang:num_queue_reqs", "0.0", "0.0")
    assert model_server.series_read(observed(Engine.SGLANG, agree), Level.MUST) == Verdict(
        Outcome.PASSED, level=Level.MUST,
        evidence={"sglang:num_queue_reqs": {"series": 2, "epp_reads": 0.0, "sum": 0.0},
                  "sglang:num_running_reqs": {"series": 2, "epp_reads": 2.0, "sum": 2.0}})
