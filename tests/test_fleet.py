"""A reader's verdict over the fleet it really reads, judged in-process against simulated servers.

- Aggregates over pods (sum, avg, ... without a per-pod label) are judged on the whole fleet, as Prometheus
  evaluates them: one pod that moves the family is enough, and the pods that contribute nothing are named with
  their own root cause. A line per pod keeps per-pod verdicts.
- A mixed-version fleet gets one message per reader saying which versions serve which name.
- Matchers on labels only the scrape adds are judged where discovery knows them (Kubernetes: pod, namespace,
  container), else the reader is inconclusive, naming the label: never "ok" on a matcher that was not judged.
- What the suite's own workload could not move is not a deployment fault.
- Names of other readers (the production-stack router) and other forms of vLLM's names (underscores, KServe's and
  Ray's prefixes) are named as such.
"""

from __future__ import annotations

import dataclasses

import pytest

from conftest import PrometheusAPI, exposition, judge, observation, observed, sample, summary, vector
from pytest_vllm_metrics.observe import Observation
from pytest_vllm_metrics.outcome import Outcome
from pytest_vllm_metrics.prometheus import Prometheus
from pytest_vllm_metrics.sim import SimHost, get_profile

WHERE = 'panel "T" (vLLM)'
HITS, QUERIES = "vllm:prefix_cache_hits_total", "vllm:prefix_cache_queries_total"
FLEET_RATE = f"sum({HITS}) / sum({QUERIES})"  # llm-d's "KV Cache Hit Rate"
PER_POD_RATE = f"{HITS} / {QUERIES}"  # llm-d's "Per-Pod Cache Hit Rates"
FLAG = '--no-enable-prefix-caching'
ARM = "vLLM 0.11.2 disables prefix caching on arm64 CPUs"


@pytest.fixture(scope="module")
def on(host: SimHost) -> list[Observation]:
    return observed(host, "x86_64", "decode-0")


@pytest.fixture(scope="module")
def off(host: SimHost) -> list[Observation]:
    return observed(host, "x86_64-no-prefix-caching", "decode-1")


@pytest.fixture(scope="module")
def off2(host: SimHost) -> list[Observation]:
    return observed(host, "x86_64-no-prefix-caching", "decode-2")


@pytest.fixture(scope="module")
def arm(host: SimHost) -> list[Observation]:
    return observed(host, "arm64-cpu", "decode-arm", arch="arm64")


@pytest.fixture(scope="module")
def old(host: SimHost) -> list[Observation]:
    return observed(host, "x86_64-0.10", "decode-old")


# -- the fleet behind an aggregate ----------------------------------------------------------------------------


def test_a_fleet_aggregate_shows_data_when_one_pod_moves_it_and_names_the_silent_pod(
        on: list[Observation], off: list[Observation]) -> None:
    verdict = judge(on + off, FLEET_RATE)
    assert summary(verdict)[:3] == ("passed", "MUST", "ok")
    assert verdict.message.startswith(
        f"it aggregates {HITS} and {QUERIES} over the fleet: decode-0 moved them, while decode-1 contributes nothing "
        f'(vLLM reports enable_prefix_caching="False" in vllm:cache_config_info on a node of architecture amd64')
    assert FLAG in verdict.message and verdict.evidence["notes"] == [verdict.message]


def test_a_line_per_pod_keeps_the_per_pod_verdict(on: list[Observation], off: list[Observation]) -> None:
    verdict = judge(on + off, PER_POD_RATE)
    assert summary(verdict)[:3] == ("failed", "MUST", "always zero / NaN")
    assert verdict.message.startswith(f"{WHERE} will be always zero / NaN on decode-1: {HITS} exists but did not move")


def test_a_documented_limitation_on_one_pod_xfails_the_per_pod_panel_only(
        on: list[Observation], arm: list[Observation]) -> None:
    assert judge(on + arm, PER_POD_RATE).outcome == Outcome.XFAILED
    fleet = judge(on + arm, FLEET_RATE)
    assert fleet.outcome == Outcome.PASSED and f"decode-arm contributes nothing ({ARM}" in fleet.message


def test_an_aggregate_no_pod_moves_is_always_zero_over_the_fleet(off: list[Observation],
                                                                  off2: list[Observation]) -> None:
    verdict = judge(off + off2, FLEET_RATE)
    assert summary(verdict)[:3] == ("failed", "MUST", "always zero / NaN")
    assert verdict.message.startswith(
        f"{WHERE} will be always zero / NaN: it aggregates {HITS} over the fleet, and {HITS} moved on none of its "
        f"servers (decode-1, decode-2) during the workload. A ratio of two such lifetime counters is 0/0 = NaN. Root "
        f'cause: vLLM reports enable_prefix_caching="False"')


def test_each_silent_pod_keeps_its_own_root_cause(off: list[Observation], arm: list[Observation]) -> None:
    verdict = judge(off + arm, FLEET_RATE)
    # one cause is a documented limitation, the other a flag: a failure, naming both
    assert verdict.outcome == Outcome.FAILED
    assert "Root causes: decode-1: vLLM reports" in verdict.message and f"; decode-arm: {ARM}" in verdict.message


def test_only_documented_limitations_xfail_the_fleet(arm: list[Observation], host: SimHost) -> None:
    other = observed(host, "arm64-cpu", "decode-arm-2", arch="arm64")
    verdict = judge(arm + other, FLEET_RATE)
    assert verdict.outcome == Outcome.XFAILED and "Root cause: " + ARM in verdict.message


@pytest.mark.parametrize(("expr", "fleet"), [
    (f"sum({HITS})", True),
    (f"avg by (model_name) ({HITS})", True),  # a label that is not per pod
    (f"max without (pod, instance) ({HITS})", True),
    (f"sum by (pod) ({HITS})", False),
    (f"sum by (instance, model_name) ({HITS})", False),
    (f"sum without (pod) ({HITS})", False),  # instance still tells the pods apart
    (f"topk(1, {HITS})", False),  # picks series, keeps their labels
    (f"sum(rate({HITS}[5m])) / on() group_left sum(rate({QUERIES}[5m]))", True),
    (f"scalar(sum({HITS}))", True),
    (f"{HITS} / ignoring(pod) group_left sum({QUERIES})", False),
])
def test_which_expressions_aggregate_the_fleet(on: list[Observation], off: list[Observation], expr: str,
                                               fleet: bool) -> None:
    verdict = judge(on + off, expr)
    assert verdict.outcome == (Outcome.PASSED if fleet else Outcome.FAILED), verdict.message


def test_a_line_per_model_is_always_zero_for_the_model_no_pod_moves(on: list[Observation],
                                                                     off: list[Observation]) -> None:
    # both simulated pods serve "tiny": grouped by model, the one line moves (decode-0)
    assert judge(on + off, f"sum by (model_name) (rate({HITS}[5m]))").outcome == Outcome.PASSED


# -- a mixed-version fleet --------------------------------------------------------------------------------------


def test_a_renamed_family_on_a_mixed_fleet_is_one_message_naming_which_versions_serve_which_name(
        on: list[Observation], old: list[Observation]) -> None:
    verdict = judge(on + old, "vllm:gpu_cache_usage_perc > 0.9", kind="alert")
    assert summary(verdict) == (
        "failed", "MUST", "part of the fleet",
        'alert "T" (vLLM) reads vllm:gpu_cache_usage_perc, which only the vLLM 0.10.1 server (decode-old) exposes; '
        "the vLLM 0.32.0 server (decode-0) exposes vllm:kv_cache_usage_perc instead (vLLM renamed "
        "vllm:gpu_cache_usage_perc to vllm:kv_cache_usage_perc), so the alert does not see it. While the fleet runs "
        "both versions, read both names: vllm:kv_cache_usage_perc or vllm:gpu_cache_usage_perc.")


def test_reading_both_names_covers_a_mixed_fleet(on: list[Observation], old: list[Observation]) -> None:
    assert judge(on + old, "vllm:kv_cache_usage_perc or vllm:gpu_cache_usage_perc").outcome == Outcome.PASSED
    # the same family on every server: nothing to say
    assert judge(on + old, "vllm:num_requests_running").outcome == Outcome.PASSED


def test_an_old_histogram_on_a_mixed_fleet_is_not_called_always_zero(on: list[Observation],
                                                                      old: list[Observation]) -> None:
    verdict = judge(on + old, "histogram_quantile(0.9, rate(vllm:time_per_output_token_seconds_bucket[5m]))")
    assert verdict.evidence["panel_verdict"] == "part of the fleet"
    assert "always zero" not in verdict.message and "exposes vllm:inter_token_latency_seconds_bucket instead" in \
        verdict.message


def test_the_new_name_on_a_fleet_with_old_servers_names_the_old_one(on: list[Observation],
                                                                     old: list[Observation]) -> None:
    itl = "vllm:inter_token_latency_seconds_bucket"
    verdict = judge(on + old, f"histogram_quantile(0.9, sum by (le) (rate({itl}[5m])))")
    assert verdict.outcome == Outcome.FAILED
    assert verdict.message.startswith(
        f"{WHERE} reads vllm:inter_token_latency_seconds_bucket, which only the vLLM 0.32.0 server (decode-0) "
        f"exposes; the vLLM 0.10.1 server (decode-old) exposes vllm:time_per_output_token_seconds_bucket instead")
    # vLLM 0.10.1 already exposes both KV-cache names: nothing to say
    assert judge(on + old, "avg(vllm:kv_cache_usage_perc)").outcome == Outcome.PASSED


# -- labels only the scrape adds ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pods(host: SimHost) -> list[Observation]:
    """Two decode pods as Kubernetes discovery finds them: pod, namespace and container known."""
    return [o for name in ("llm-d-decode-0", "llm-d-decode-1")
            for o in observed(host, "x86_64", name, source="kubernetes",
                              detail={"namespace": "llm-d", "container": "vllm", "transport": "direct"})]


@pytest.mark.parametrize(("selector", "verdict"), [
    ('pod=~".*decode.*"', "ok"),
    ('pod=~".*prefill.*"', "label mismatch"),  # no prefill pod: llm-d's alerts on prefill pods stay empty
    ('namespace="llm-d"', "ok"),
    ('namespace=~".*llm.*"', "ok"),
    ('namespace="monitoring"', "label mismatch"),
    ('container="vllm"', "ok"),
    ('container=~"vllm|epp|routing-proxy"', "ok"),
    ('container="main"', "label mismatch"),
    ('job=~".*vllm.*"', "inconclusive"),  # only Prometheus knows the job
    ('job!=""', "ok"),  # Prometheus always sets job
    ('instance=~".+"', "ok"),
    ('service=~".*"', "ok"),
    ('endpoint="metrics"', "inconclusive"),
])
def test_scrape_labels_are_judged_where_kubernetes_discovery_knows_them(pods: list[Observation], selector: str,
                                                                        verdict: str) -> None:
    judged = judge(pods, f"sum by (pod) (vllm:num_requests_running{{{selector}}})")
    assert judged.evidence["panel_verdict"] == verdict, judged.message


def test_a_scrape_label_mismatch_names_the_pods_it_sees(pods: list[Observation]) -> None:
    verdict = judge(pods, 'vllm:num_requests_waiting{pod=~".*prefill.*"}', kind="alert")
    assert verdict.message == (
        'This alert can never fire: its expression returns no series. alert "T" (vLLM) selects '
        'vllm:num_requests_waiting with pod=~".*prefill.*", which none of its series matches (they carry pod = '
        "llm-d-decode-0, llm-d-decode-1), so the alert stays empty.")


def test_a_scrape_label_the_run_cannot_know_is_inconclusive_naming_it(pods: list[Observation],
                                                                      on: list[Observation]) -> None:
    verdict = judge(pods, 'vllm:num_requests_running{job="vllm"}')
    assert summary(verdict) == (
        "inconclusive", "MUST", "inconclusive",
        f'{WHERE} selects its series with job="vllm": job is added by Prometheus when it scrapes, and without '
        f"--prometheus-url the run cannot know its value on llm-d-decode-0, llm-d-decode-1 (Kubernetes discovery "
        f"knows pod, namespace and container, not job), so it cannot tell whether the panel shows data. Pass "
        f"--prometheus-url to judge it against the series Prometheus holds.")
    url = judge(on, 'vllm:num_requests_running{pod=~".*decode.*"}')
    assert url.outcome == Outcome.INCONCLUSIVE and "(URL targets carry none of them)" in url.message


def test_a_certain_failure_stands_whatever_the_unjudged_label(off: list[Observation]) -> None:
    # every server's counter stayed at 0: so do those a job matcher would select
    verdict = judge(off, f'sum(rate({HITS}{{job="vllm"}}[5m]))')
    assert verdict.outcome == Outcome.FAILED and "always zero" in verdict.message


def test_behind_prometheus_scrape_labels_are_prometheus_to_judge(api: PrometheusAPI, prom: Prometheus,
                                                                 on: list[Observation]) -> None:
    selector = 'vllm:num_requests_running{job="vllm"}'
    api.answer(f"count({selector})", vector(sample(1)))
    api.answer(selector, vector(sample(0, job="vllm")))
    assert summary(judge(on, selector, prom=prom, wait=0.0))[:3] == ("passed", "MUST", "ok")


# -- what the workload could not move ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stopped(host: SimHost) -> list[Observation]:
    """A server given the default workload: its last request stops on a piece of an earlier answer."""
    return observed(host, "x86_64", "decode-s", requests=8)


def test_the_workload_ends_requests_both_ways(stopped: list[Observation], on: list[Observation]) -> None:
    traffic = stopped[0].traffic
    assert traffic is not None and traffic.finish_reasons() == {"length": 7, "stop": 1}
    assert on[0].traffic is not None and on[0].traffic.finish_reasons() == {"length": 4}  # too few to spare one


def test_a_label_value_the_workload_produced_moves(stopped: list[Observation]) -> None:
    assert summary(judge(stopped, 'rate(vllm:request_success_total{finished_reason="stop"}[5m])')) == (
        "passed", "MUST", "ok", "")


@pytest.mark.parametrize(("reason", "did"), [
    ("stop", 'finished_reason "length"'), ("abort", 'finished_reason "length" or "stop"')])
def test_a_label_value_the_workload_could_not_produce_is_not_a_failure(
        on: list[Observation], stopped: list[Observation], reason: str, did: str) -> None:
    seen = on if reason == "stop" else stopped
    selector = f'vllm:request_success_total{{finished_reason="{reason}"}}'
    verdict = judge(seen, f"sum(rate({selector}[5m]))")
    assert summary(verdict) == (
        "passed", "MUST", "ok",
        f"this run could not exercise {selector}: its series exist, but the workload moved "
        f"vllm:request_success_total only for {did}, so the run cannot show that the panel moves")


def test_behind_prometheus_a_zero_the_workload_explains_is_not_always_zero(
        api: PrometheusAPI, prom: Prometheus, stopped: list[Observation]) -> None:
    selector = 'vllm:request_success_total{finished_reason="abort"}'
    api.answer(f"count({selector})", vector(sample(1)))
    api.answer(f"sum(rate({selector}[5m]))", vector(sample(0)))
    verdict = judge(stopped, f"sum(rate({selector}[5m]))", prom=prom, wait=0.0)
    assert verdict.outcome == Outcome.PASSED and "could not exercise" in verdict.message


# -- readers that are not vLLM's, other forms of vLLM's names, and complete advice ------------------------------


def test_the_production_stack_routers_vllm_names_are_the_routers(on: list[Observation]) -> None:
    # production-stack helm/dashboards/vllm-dashboard.json, "Available vLLM instances"
    verdict = judge(on, "sum(max by (server) (vllm:healthy_pods_total))")
    assert summary(verdict) == (
        "skipped", "MUST", "not a vLLM metric",
        f"{WHERE} is built on vllm:healthy_pods_total, metrics of the vLLM production-stack router, not of vLLM: "
        f"this is the production-stack router's metric, not vLLM's, though its name starts with vllm: (the router "
        f"publishes it at its own /metrics): check the router's scrape, not the engines'.")


@pytest.mark.parametrize(("metric", "family", "how"), [
    ("vllm_request_success_total", "vllm:request_success_total", "the underscore form of a colon name"),
    ("kserve_vllm:num_requests_running", "vllm:num_requests_running", "the form KServe stores"),
    ("ray_vllm_num_requests_running", "vllm:num_requests_running", "the form Ray Serve exports"),
    ("ray_vllm:time_to_first_token_seconds_bucket", "vllm:time_to_first_token_seconds_bucket",
     "the form Ray Serve exports"),
])
def test_another_form_of_an_exposed_name_is_named_not_no_data(on: list[Observation], metric: str, family: str,
                                                              how: str) -> None:
    verdict = judge(on, f"sum(rate({metric}[5m]))")
    assert verdict.outcome == Outcome.INCONCLUSIVE  # only the store knows which form it holds
    assert verdict.message.startswith(f"{WHERE} reads {metric}, which no server exposes; the servers expose "
                                      f"{family}, and {metric} is {how}")
    assert verdict.message.endswith("Which of the two forms your store holds only Prometheus can tell: pass "
                                    "--prometheus-url to judge the panel.")


def test_behind_prometheus_the_form_the_store_holds_decides(api: PrometheusAPI, prom: Prometheus,
                                                            on: list[Observation]) -> None:
    # the store holds the underscore form: a query on vLLM's colon name stays empty, and the message names the form
    api.label_values["__name__"] = ["up", "vllm_num_requests_running"]
    verdict = judge(on, "vllm:num_requests_running", prom=prom, wait=0.0)
    assert summary(verdict)[:3] == ("failed", "MUST", "no data")
    assert verdict.message.startswith(f"{WHERE} reads vllm:num_requests_running, which the servers expose, but "
                                      f"Prometheus holds it as vllm_num_requests_running: the underscore form")
    # ... and a query on the underscore form there is judged on what Prometheus holds
    api.answer("count(vllm_num_requests_running)", vector(sample(1)))
    api.answer("vllm_num_requests_running", vector(sample(0)))
    assert judge(on, "vllm_num_requests_running", prom=prom, wait=0.0).outcome == Outcome.PASSED


def test_every_problem_of_a_query_is_in_its_one_message(on: list[Observation]) -> None:
    verdict = judge(on, 'vllm:gpu_cache_usage_perc{kubernetes_namespace="llm-d"}')
    assert summary(verdict)[:3] == ("failed", "MUST", "no data")
    first, also = verdict.message.split(" Also, ")
    assert first.startswith(f"{WHERE} queries vllm:gpu_cache_usage_perc, which vLLM renamed")
    assert also.startswith("it selects vllm:gpu_cache_usage_perc by label kubernetes_namespace, which no series "
                           "carries (the target labels Prometheus Operator adds are container, endpoint, instance, "
                           "job, namespace, pod, service), so the panel stays empty.")


def test_a_query_only_prometheus_can_judge_beside_one_with_data_is_inconclusive_not_partial(
        on: list[Observation]) -> None:
    # mouachan/rhoai-maas's "KV Cache Utilization" reads KServe's stored form beside a query with data
    verdict = judge(on, "kserve_vllm:kv_cache_usage_perc", "vllm:num_requests_running")
    assert summary(verdict)[:3] == ("inconclusive", "MUST", "inconclusive")
    assert verdict.message.startswith(f"{WHERE} shows data from some of its queries, and the others could not be "
                                      f"judged; query A (kserve_vllm:kv_cache_usage_perc) returns nothing: ")
    # ... while a query that certainly returns nothing still makes the panel partial
    assert judge(on, "vllm:no_such_metric", "vllm:num_requests_running").evidence["panel_verdict"] == "partial"


def test_another_components_metric_in_a_collection_paths_form_is_that_components(on: list[Observation]) -> None:
    verdict = judge(on, "sum(kserve_inference_pool_ready_pods)")
    assert verdict.evidence["panel_verdict"] == "not a vLLM metric" and "endpoint picker" in verdict.message


def test_the_scrape_series_up_is_judged_on_the_labels_discovery_knows(on: list[Observation],
                                                                      pods: list[Observation]) -> None:
    # llm-d's LLMDNoHealthyBackends: sum(up{job=~".*vllm.*"}) == 0: only Prometheus knows the job
    assert judge(on, 'sum(up{job=~".*vllm.*"}) == 0', kind="alert").outcome == Outcome.INCONCLUSIVE
    assert judge(pods, 'up{pod=~".*decode.*"}').outcome == Outcome.PASSED
    assert judge(pods, 'up{pod=~".*prefill.*"}').outcome == Outcome.FAILED
    assert judge(on, "up").outcome == Outcome.PASSED


# -- a mixed-version fleet of several servers per version ------------------------------------------------------


@pytest.fixture(scope="module")
def new2(host: SimHost) -> list[Observation]:
    return observed(host, "x86_64", "decode-1")


@pytest.fixture(scope="module")
def old2(host: SimHost) -> list[Observation]:
    return observed(host, "x86_64-0.10", "decode-old2")


def test_several_servers_of_each_version_are_named_together(on: list[Observation], new2: list[Observation],
                                                             old: list[Observation], old2: list[Observation]) -> None:
    verdict = judge(on + new2 + old + old2, "vllm:gpu_cache_usage_perc > 0.9", kind="alert")
    assert summary(verdict) == (
        "failed", "MUST", "part of the fleet",
        'alert "T" (vLLM) reads vllm:gpu_cache_usage_perc, which only the vLLM 0.10.1 servers (decode-old, '
        "decode-old2) expose; the vLLM 0.32.0 servers (decode-0, decode-1) expose vllm:kv_cache_usage_perc instead "
        "(vLLM renamed vllm:gpu_cache_usage_perc to vllm:kv_cache_usage_perc), so the alert does not see them. While "
        "the fleet runs both versions, read both names: vllm:kv_cache_usage_perc or vllm:gpu_cache_usage_perc.")


def test_the_new_name_names_the_old_one_and_a_server_of_unknown_version_apart(
        on: list[Observation], old: list[Observation], host: SimHost) -> None:
    unknown = observed(host, "x86_64-0.10", "decode-x")
    unknown[0].version = None  # its /version did not answer
    itl = "vllm:inter_token_latency_seconds_bucket"
    verdict = judge(on + old + unknown, f"histogram_quantile(0.9, sum by (le) (rate({itl}[5m])))")
    assert verdict.message == (
        f"{WHERE} reads {itl}, which only the vLLM 0.32.0 server (decode-0) exposes; the vLLM 0.10.1 server "
        "(decode-old) and the vLLM of unknown version server (decode-x) expose "
        "vllm:time_per_output_token_seconds_bucket instead (vLLM renamed vllm:time_per_output_token_seconds to "
        "vllm:inter_token_latency_seconds), so the panel does not see them. While the fleet runs both versions, "
        f"read both names: {itl} or vllm:time_per_output_token_seconds_bucket.")


@pytest.mark.parametrize("lacking", [1, 2])
def test_a_family_older_servers_never_had_names_its_first_release(on: list[Observation], new2: list[Observation],
                                                                  old: list[Observation], old2: list[Observation],
                                                                  lacking: int) -> None:
    # vllm:engine_sleep_state: catalog versions >=0.11.1, no older name
    verdict = judge(on + new2 + (old + old2)[:lacking], "vllm:engine_sleep_state")
    them = ("the vLLM 0.10.1 server (decode-old) does not, and the panel does not see it." if lacking == 1 else
            "the vLLM 0.10.1 servers (decode-old, decode-old2) do not, and the panel does not see them.")
    assert summary(verdict) == (
        "failed", "MUST", "part of the fleet",
        f"{WHERE} reads vllm:engine_sleep_state, which only the vLLM 0.32.0 servers (decode-0, decode-1) expose; vLLM "
        f"emits it in >=0.11.1 only, so {them}")


def test_what_the_workload_moved_is_named_for_each_label_the_selector_matches(stopped: list[Observation]) -> None:
    selector = 'vllm:request_success_total{finished_reason="abort",model_name!="x"}'
    verdict = judge(stopped, 'sum(rate(vllm:request_success_total{finished_reason="abort", model_name!="x"}[5m]))')
    assert summary(verdict) == (
        "passed", "MUST", "ok",
        f"this run could not exercise {selector}: its series exist, but the workload moved vllm:request_success_total "
        f'only for finished_reason "length" or "stop"; model_name "tiny", so the run cannot show that the panel moves')


@pytest.mark.parametrize("models", [("big",), ("big", "huge")])
def test_a_line_per_model_names_each_model_no_server_moved(on: list[Observation], host: SimHost,
                                                            models: tuple[str, ...]) -> None:
    others = [obs for i, model in enumerate(models) for obs in observed(
        host, dataclasses.replace(get_profile("x86_64-no-prefix-caching"), model=model), f"decode-{i + 1}")]
    verdict = judge(on + others, f"sum by (model_name) (rate({HITS}[5m]))")
    lines = ", ".join(f'{{model_name="{m}"}}' for m in models)
    behind = "it (decode-1)" if len(models) == 1 else "them (decode-1, decode-2)"
    assert summary(verdict)[:3] == ("failed", "MUST", "always zero / NaN")
    assert verdict.message.startswith(
        f"{WHERE} will be always zero / NaN for {lines}: {HITS} did not move during the workload on the servers "
        f"behind {behind}. A ratio of two such lifetime counters is 0/0 = NaN. Root cause: vLLM reports "
        f'enable_prefix_caching="False"')


# -- a family only some servers' features expose -------------------------------------------------------------


@pytest.fixture(scope="module")
def spec(host: SimHost) -> list[Observation]:
    return observed(host, "x86_64-spec-decode", "decode-spec")


@pytest.mark.parametrize("expr", [
    "sum(rate(vllm:spec_decode_num_drafts_total[5m]))",  # a counter of the feature (llm-d's "Speculative Decoding")
    "rate(vllm:spec_decode_num_draft_tokens_total[5m])",
])
def test_a_feature_only_some_servers_run_does_not_blind_the_reader_to_the_others(
        on: list[Observation], spec: list[Observation], expr: str) -> None:
    # a server without speculative decoding has no such family by design: the reader is not "blind" to it
    verdict = judge(on + spec, expr)
    assert verdict.outcome == Outcome.PASSED, verdict.message
    assert "decode-0" not in verdict.message and "no vllm:spec_decode" not in verdict.message


def test_each_renamed_family_a_reader_reads_is_one_sentence_in_the_same_order_in_every_run(
        on: list[Observation], old: list[Observation]) -> None:
    # two queries, each reading a family vLLM renamed: one message, a sentence each, by name (not by a set's order,
    # which changes from process to process: shards and xdist workers must word it alike)
    verdict = judge(on + old, "rate(vllm:time_per_output_token_seconds_bucket[5m])", "vllm:gpu_cache_usage_perc")
    first = f"{WHERE} reads vllm:gpu_cache_usage_perc, which only"
    second = (f". {WHERE} reads vllm:time_per_output_token_seconds_bucket, which only the vLLM 0.10.1 server "
              "(decode-old) exposes")
    assert summary(verdict)[:3] == ("failed", "MUST", "part of the fleet")
    assert verdict.message.startswith(first) and second in verdict.message
    assert verdict.message.endswith("read both names: vllm:inter_token_latency_seconds_bucket or "
                                    "vllm:time_per_output_token_seconds_bucket.")


def test_a_server_of_the_same_version_missing_a_family_is_a_note_its_presence_check_explains() -> None:
    # no version or feature explains the absence: the reader still works on the rest, and says which servers it
    # does not see (their own presence checks fail and say why)
    full = exposition({"vllm:num_requests_waiting": 0, "vllm:num_requests_running": 0})
    lacking = exposition({"vllm:num_requests_running": 0})
    first = observation(full, full)
    second = dataclasses.replace(observation(lacking, lacking),
                                 target=dataclasses.replace(first.target, name="decode-1"))
    verdict = judge([first, second], "sum(vllm:num_requests_waiting)")
    assert summary(verdict) == (
        "passed", "MUST", "ok", "decode-1 exposes no vllm:num_requests_waiting, so the panel does not see that server "
        "(its presence checks say why)")
    third = dataclasses.replace(second, target=dataclasses.replace(first.target, name="decode-2"))
    assert judge([first, second, third], "sum(vllm:num_requests_waiting)").message == (
        "decode-1, decode-2 expose no vllm:num_requests_waiting, so the panel does not see them (their presence "
        "checks say why)")


def test_a_line_per_model_that_no_server_moves_is_named_by_its_labels(off: list[Observation],
                                                                      off2: list[Observation]) -> None:
    # every line is broken, and the lines have labels: named by them, not as the fleet's one aggregate
    verdict = judge(off + off2, f"sum by (model_name) (rate({HITS}[5m]))")
    assert summary(verdict)[:3] == ("failed", "MUST", "always zero / NaN")
    assert verdict.message.startswith(
        f'{WHERE} will be always zero / NaN for {{model_name="tiny"}}: {HITS} did not move during the workload on '
        f"the servers behind it (decode-1, decode-2). A ratio of two such lifetime counters is 0/0 = NaN. Root cause:")
    two = judge(off + off2, f"sum by (model_name, engine) (rate({HITS}[5m]))")
    assert two.message.startswith(f'{WHERE} will be always zero / NaN for {{engine="0", model_name="tiny"}}: ')


def test_one_family_two_silent_servers_named_in_order(on: list[Observation], off: list[Observation],
                                                      off2: list[Observation]) -> None:
    # one family ("it"), two servers that contribute nothing ("contribute"), named by name whatever their order
    verdict = judge(on + off2 + off, f"sum(rate({HITS}[5m]))")
    assert summary(verdict)[:3] == ("passed", "MUST", "ok")
    assert verdict.message.startswith(
        f"it aggregates {HITS} over the fleet: decode-0 moved it, while decode-1, decode-2 contribute nothing "
        f'(vLLM reports enable_prefix_caching="False"')


def test_every_query_of_a_reader_is_judged_whatever_comes_before_it(on: list[Observation], off: list[Observation],
                                                                     off2: list[Observation]) -> None:
    # a gauge first (it may stay at 0), a series the workload cannot move first, the same series twice: the
    # counter after them is still judged, and named once
    aborted = 'sum(rate(vllm:request_success_total{finished_reason="abort"}[5m]))'
    for first in ("sum(vllm:num_requests_running)", aborted):
        verdict = judge(off + off2, f"{first} + sum(rate({HITS}[5m]))")
        assert summary(verdict)[:3] == ("failed", "MUST", "always zero / NaN"), first
    twice = judge(on + off, f"sum(rate({HITS}[5m])) / sum(rate({HITS}[5m]))")
    assert twice.message.startswith(f"it aggregates {HITS} over the fleet: decode-0 moved it, while decode-1 ")


def test_a_family_the_workload_moved_by_one_shows_the_workload_ran(host: SimHost) -> None:
    # one request: the family moved by exactly 1, so a series it did not move is one the workload could not move
    one = observed(host, "x86_64", "decode-one", requests=1)
    verdict = judge(one, 'sum(rate(vllm:request_success_total{finished_reason="abort"}[5m]))')
    assert summary(verdict)[:3] == ("passed", "MUST", "ok")
    assert "this run could not exercise" in verdict.message
