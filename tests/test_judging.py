"""Every verdict a panel can get (judging.py), with the words the user reads, judged in-process and fast.

tests/test_dashboards.py runs the check as users do (pytester, real Prometheus, the llm-d dashboards); this file
pins each verdict's outcome, level, kind and message against the direct scrape of simulated servers and against
a Prometheus HTTP API on loopback, so that a changed threshold, a dropped clause or a verdict of the wrong kind
fails here (these tests are the mutation run's runner for the judging of readers).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import NOW, PrometheusAPI, dashboard_file, gaps, judge, observation, observed, sample, summary, vector
from pytest_vllm_metrics._grafana import DashboardError
from pytest_vllm_metrics._grafana_vars import Variable
from pytest_vllm_metrics.catalog import load_catalog
from pytest_vllm_metrics.judging import judge_reader
from pytest_vllm_metrics.observe import Observation
from pytest_vllm_metrics.outcome import Outcome
from pytest_vllm_metrics.prometheus import Prometheus
from pytest_vllm_metrics.readers import Query, Reader, load_dashboards, object_dashboards
from pytest_vllm_metrics.settings import Policy
from pytest_vllm_metrics.sim import SimHost
from pytest_vllm_metrics.snapshot import Snapshot
from pytest_vllm_metrics.targets import Target

WHERE = 'panel "T" (vLLM)'
NO_SUCH = (f"{WHERE} queries vllm:no_such_metric, which none of the 1 server(s) exposes; the panel stays empty. "
           f"Check the metric name against vLLM's /metrics.")


@pytest.fixture(scope="module")
def x86(host: SimHost) -> list[Observation]:
    """One simulated vLLM 0.32 (prefix caching on), observed around a small workload as a run does."""
    return observed(host, "x86_64")


@pytest.fixture(scope="module")
def no_caching(host: SimHost) -> list[Observation]:
    return observed(host, "x86_64-no-prefix-caching")


# -- against the direct scrape: each verdict in full ---------------------------------------------------------

DIRECT = [
    pytest.param(["sum(rate(vllm:prompt_tokens_total[5m])"], (
        "failed", "MUST", "unparsable",
        f"{WHERE}: its query does not parse as PromQL (unclosed left parenthesis): "
        f"sum(rate(vllm:prompt_tokens_total[5m]). Grafana shows an error instead of data; fix the expression."),
        id="unparsable"),
    pytest.param(["llm_d_epp_ready_endpoints", "sum(inference_pool_ready_pods)"], (
        "skipped", "MUST", "not a vLLM metric",
        f"{WHERE} is built on inference_pool_ready_pods, llm_d_epp_ready_endpoints, metrics of the endpoint picker "
        f"(EPP), not of vLLM: point the check at the EPP's /metrics (port 9090), not at vLLM."),
        id="another-component"),
    pytest.param(["vllm:num_preemptions"], (
        "failed", "MUST", "no data",
        f"{WHERE} queries vllm:num_preemptions, which no server exposes: the counter is vllm:num_preemptions_total "
        f"(counters carry _total). Query vllm:num_preemptions_total."), id="missing-total"),
    pytest.param(["vllm:gpu_cache_usage_perc"], (
        "failed", "MUST", "no data",
        f"{WHERE} queries vllm:gpu_cache_usage_perc, which vLLM renamed: the servers expose vllm:kv_cache_usage_perc "
        f"(the old name exists only in vLLM >=0.7.3,<0.11.0). Query vllm:kv_cache_usage_perc."), id="renamed"),
    pytest.param(["vllm:num_requests_swapped"], (
        "failed", "MUST", "no data",
        f"{WHERE} queries vllm:num_requests_swapped, which vLLM removed: the V0 engine swapped preempted requests "
        f"to CPU memory; vLLM V1 does not swap, and no V1 server exposes it. Drop the query, or chart "
        f"vllm:num_preemptions_total, what V1 does instead."), id="removed"),
    pytest.param(["vllm:spec_decode_num_drafts_total"], (
        "skipped", "MUST", "feature not enabled",
        f"{WHERE} charts vllm:spec_decode_num_drafts_total, a metric of feature spec_decode, which is not enabled "
        f"on these servers."), id="feature-metric-missing"),
    pytest.param(["vllm:no_such_metric"], ("failed", "MUST", "no data", NO_SUCH), id="unknown-metric"),
    pytest.param(['vllm:num_requests_running{kubernetes_namespace="x"}'], (
        "failed", "MUST", "label mismatch",
        f"{WHERE} selects vllm:num_requests_running by label kubernetes_namespace, which no series carries (vLLM's "
        f"labels plus the target labels Prometheus Operator adds are container, endpoint, engine, instance, job, "
        f"model_name, namespace, pod, service), so the panel stays empty. Prometheus Operator adds namespace and "
        f"pod, not kubernetes_namespace or kubernetes_pod_name: select on the label the scrape adds."),
        id="label-name"),
    pytest.param(['vllm:num_requests_running{model_name="other"}'], (
        "failed", "MUST", "label mismatch",
        f'{WHERE} selects vllm:num_requests_running with model_name="other", which none of its series matches '
        f"(they carry model_name = tiny), so the panel stays empty."), id="label-value"),
    pytest.param(['vllm:num_requests_running{model_name=".*"}'], (
        "failed", "MUST", "label mismatch",
        f'{WHERE} selects vllm:num_requests_running with model_name=".*", which none of its series matches (they '
        f"carry model_name = tiny), so the panel stays empty. An '=' matcher compares the text exactly: a regex (a "
        f"Grafana All value or a multi-value variable) needs '=~'."), id="regex-under-equal"),
    pytest.param(['vllm:num_requests_running{model_name!="tiny"}'], (
        "failed", "MUST", "label mismatch",
        f'{WHERE} selects vllm:num_requests_running with model_name!="tiny", which none of its series matches '
        f"(they carry model_name = tiny), so the panel stays empty."), id="not-equal"),
    pytest.param(['vllm:num_requests_running{model_name!~"ti.*"}'], (
        "failed", "MUST", "label mismatch",
        f'{WHERE} selects vllm:num_requests_running with model_name!~"ti.*", which none of its series matches '
        f"(they carry model_name = tiny), so the panel stays empty."), id="not-regex"),
    pytest.param(["absent(vllm:num_requests_running)"], (
        "failed", "MUST", "no data",
        f"{WHERE}: absent() returns nothing while vllm:num_requests_running has series: the query shows data only "
        f"when the metric is missing."), id="absent-of-present"),
    pytest.param(["vllm:num_requests_running", "vllm:no_such_metric"], (
        "failed", "SHOULD", "partial",
        f"{WHERE} shows data, but only from some of its queries; query B (vllm:no_such_metric) returns nothing: "
        f"{NO_SUCH}"), id="partial"),
    pytest.param(["vllm:no_such_metric or vllm:num_requests_running"], (
        "passed", "MUST", "ok", "vllm:no_such_metric (in query A) is missing, but the other side of its 'or' has "
                                "data"), id="or-one-side"),
    pytest.param(["vllm:no_such_metric or vllm:other_missing"], (
        "failed", "MUST", "no data",
        f"{NO_SUCH} Also, it queries vllm:other_missing, which none of the 1 server(s) exposes; the panel stays "
        f"empty. Check the metric name against vLLM's /metrics."), id="or-both-sides-empty"),
    # scalar() of nothing is NaN: the panel shows no data, whatever the function
    pytest.param(["scalar(vllm:no_such_metric)"], ("failed", "MUST", "no data", NO_SUCH), id="scalar-of-nothing"),
    pytest.param(["vector(1)", "time() - 60"], ("passed", "MUST", "ok", ""), id="literals"),
    pytest.param(["vllm:num_requests_running unless vllm:no_such_metric"], ("passed", "MUST", "ok", ""),
                 id="unless-empty-right"),
    pytest.param(["vllm:no_such_metric unless vllm:num_requests_running"], ("failed", "MUST", "no data", NO_SUCH),
                 id="unless-empty-left"),
    pytest.param(["vllm:num_requests_running and vllm:no_such_metric"], ("failed", "MUST", "no data", NO_SUCH),
                 id="and"),
    pytest.param(["up", "scrape_duration_seconds"], ("passed", "MUST", "ok", ""), id="made-by-prometheus"),
    pytest.param(['-(sum by (model_name) (vllm:num_requests_running{model_name=~"ti.*"}))'],
                 ("passed", "MUST", "ok", ""), id="unary-aggregate-regex"),
    pytest.param(["histogram_quantile(0.9, sum by (le) (rate(vllm:e2e_request_latency_seconds_bucket[5m])))",
                  "rate(vllm:e2e_request_latency_seconds_sum[5m]) / rate(vllm:e2e_request_latency_seconds_count"
                  "[5m])"], ("passed", "MUST", "ok", ""), id="histogram-series"),
    pytest.param(["max_over_time(vllm:num_requests_running[10m:1m])"], ("passed", "MUST", "ok", ""),
                 id="subquery"),
]


@pytest.mark.parametrize(("exprs", "expected"), DIRECT)
def test_direct_scrape_verdict(x86: list[Observation], exprs: list[str], expected: tuple[str, ...]) -> None:
    verdict = judge(x86, *exprs)
    assert summary(verdict) == expected
    assert verdict.target == "d"
    assert verdict.evidence["exprs"] == exprs


def test_counter_that_never_moved_is_always_zero_with_the_root_cause(no_caching: list[Observation]) -> None:
    verdict = judge(no_caching, "rate(vllm:prefix_cache_hits_total[5m]) / rate(vllm:prefix_cache_queries_total[5m])")
    assert summary(verdict)[:3] == ("failed", "MUST", "always zero / NaN")
    assert verdict.message.startswith(
        f"{WHERE} will be always zero / NaN on decode-0: vllm:prefix_cache_hits_total exists but did not move during "
        f"the workload. A ratio of two such lifetime counters is 0/0 = NaN. Root cause: vLLM reports "
        f'enable_prefix_caching="False" in vllm:cache_config_info')
    assert verdict.diagnosis is not None and verdict.message.endswith(verdict.diagnosis)
    assert "--no-enable-prefix-caching" in verdict.diagnosis


def test_a_gauge_that_stays_at_zero_charts_fine(no_caching: list[Observation]) -> None:
    # vllm:num_requests_waiting is 0 before and after: not a counter that must move, so not "always zero"
    assert summary(judge(no_caching, "vllm:num_requests_waiting")) == ("passed", "MUST", "ok", "")


def test_counter_that_moved_charts_fine(x86: list[Observation]) -> None:
    assert summary(judge(x86, "rate(vllm:prefix_cache_hits_total[5m])")) == ("passed", "MUST", "ok", "")


def test_always_zero_names_every_pod_that_did_not_move(host: SimHost, no_caching: list[Observation],
                                                       x86: list[Observation]) -> None:
    other = observed(host, "x86_64-no-prefix-caching", name="decode-1")
    verdict = judge(x86 + no_caching + other, "vllm:prefix_cache_hits_total")
    assert verdict.message.startswith(f"{WHERE} will be always zero / NaN on decode-0, decode-1: ")


def test_ratio_sentence_only_for_counters(x86: list[Observation], no_caching: list[Observation]) -> None:
    verdict = judge(no_caching, "vllm:prefix_cache_hits_total")
    assert "A ratio of two such lifetime counters is 0/0 = NaN." in verdict.message


def test_feature_metric_present_but_feature_off_is_skipped_unless_required(host: SimHost) -> None:
    # The ngram speculative-decoding families exist on a page whose server runs without the feature in no real
    # capture; a required feature turns the same panel into a judged one.
    seen = observed(host, "x86_64")
    verdict = judge(seen, "vllm:spec_decode_num_drafts_total", policy=Policy(require=("spec_decode",)))
    assert summary(verdict)[:3] == ("skipped", "MUST", "feature not enabled")


def test_no_target_scraped_is_inconclusive(x86: list[Observation]) -> None:
    unreachable = [dataclasses.replace(o, after=None) for o in x86]
    assert summary(judge(unreachable, "vllm:num_requests_running")) == (
        "inconclusive", "MUST", "inconclusive",
        f"{WHERE}: no target was scraped after the workload, so nothing can be said of the panel; see the targets' "
        f"own failures.")


def test_one_scraped_target_is_enough_to_judge(x86: list[Observation]) -> None:
    unreachable = [dataclasses.replace(o, after=None) for o in x86]
    assert judge(unreachable + x86, "vllm:num_requests_running").outcome == Outcome.PASSED


# -- target labels of the direct scrape ---------------------------------------------------------------------


def _as_pod(obs: Observation, namespace: str) -> Observation:
    target = Target(name="vllm-decode-7f9c", base_url=obs.target.base_url, source="kubernetes",
                    detail={"namespace": namespace})
    return dataclasses.replace(obs, target=target)


def test_kubernetes_targets_carry_namespace_and_pod(x86: list[Observation]) -> None:
    pods = [_as_pod(o, "llm-d") for o in x86]
    values = Reader("d", "T", (Query("A", 'vllm:num_requests_running{pod="$pod"}'),),
                   (Variable("pod", "query", query="label_values(vllm:num_requests_running, pod)"),),
                   dashboard_title="vLLM")
    verdict = judge_reader(values, pods, load_catalog(), Policy())
    assert verdict.evidence["exprs"] == ['vllm:num_requests_running{pod="vllm-decode-7f9c"}']
    assert verdict.outcome == Outcome.PASSED


def test_url_targets_carry_the_policy_namespace_and_no_scrape_label(x86: list[Observation]) -> None:
    # Which instance Prometheus gives a URL target depends on its own scrape config: the run cannot know it.
    panel = Reader("d", "T", (Query("A", 'vllm:num_requests_running{instance="$instance"}'),),
                  (Variable("instance", "query", query="label_values(vllm:num_requests_running, instance)"),
                   Variable("ns", "query", query="label_values(vllm:num_requests_running, namespace)")),
                  dashboard_title="vLLM")
    verdict = judge_reader(panel, x86, load_catalog(), Policy(namespace="llm-d"))
    assert verdict.evidence["variables"]["instance"] == ".*"
    assert verdict.evidence["variables"]["ns"] == "llm-d"
    without = judge_reader(panel, x86, load_catalog(), Policy())
    assert without.evidence["variables"]["ns"] != "llm-d"


# -- variables resolved against the direct scrape -------------------------------------------------------------


def variable_panel(expr: str, *variables: Variable) -> Reader:
    return Reader("d", "T", (Query("A", expr),), variables, dashboard_title="vLLM")


@pytest.mark.parametrize(("variable", "shown"), [
    (Variable("v", "query", query="label_values(model_name)"), "tiny"),
    (Variable("v", "query", query="label_values(vllm:num_requests_running, model_name)"), "tiny"),
    (Variable("v", "query", query='label_values(vllm:num_requests_running{model_name="nope"}, model_name)'), None),
    (Variable("v", "query", query="label_values(vllm:num_requests_running{, model_name)"), None),
    (Variable("v", "query", query='query_result(vllm:num_requests_running{model_name=~"t.*"})',
              regex='/model_name="([^"]+)"/'), "tiny"),
    (Variable("v", "query", query="query_result(sum(vllm:num_requests_running))"), None),
    (Variable("v", "query", query="metrics(vllm:num_requests_run.*)"), "vllm:num_requests_running"),
])
def test_query_variables_read_the_scrape_as_grafana_reads_prometheus(
        x86: list[Observation], variable: Variable, shown: str | None) -> None:
    verdict = judge_reader(variable_panel("vllm:num_requests_running", variable), x86, load_catalog(), Policy())
    # None: nothing the scrape can show; the variable is unknown and written as a match-anything regex
    assert verdict.evidence["variables"]["v"] == (shown if shown is not None else ".*")


def test_label_names_variable_lists_labels_with_the_target_labels(x86: list[Observation]) -> None:
    panel = variable_panel("vllm:num_requests_running",
                           Variable("v", "query", query="label_names(vllm:num_requests_running)", regex="/^mo.*/"))
    assert judge_reader(panel, x86, load_catalog(), Policy()).evidence["variables"]["v"] == "model_name"
    panel = variable_panel("vllm:num_requests_running",
                           Variable("v", "query", query="label_names()", regex="/^name.*/"))
    assert judge_reader(panel, x86, load_catalog(), Policy(namespace="llm-d")).evidence["variables"]["v"] == \
        "namespace"
    panel = variable_panel("vllm:num_requests_running",
                           Variable("v", "query", query="label_names()", regex="/^inst.*/"))
    assert judge_reader(panel, x86, load_catalog(), Policy()).evidence["variables"]["v"] == ""


def test_unknown_variable_value_matches_anything_on_the_scrape(x86: list[Observation]) -> None:
    # A variable the scrape cannot resolve (a label Prometheus adds) is written .*: its matchers are not judged.
    panel = variable_panel('vllm:num_requests_running{model_name="$v"}',
                           Variable("v", "query", query="label_values(vllm:num_requests_running, job)"))
    assert judge_reader(panel, x86, load_catalog(), Policy()).outcome == Outcome.PASSED


# -- loading ---------------------------------------------------------------------------------------------------


def test_library_panel_keeps_its_name_and_title(tmp_path: Path, x86: list[Observation]) -> None:
    (untitled, titled) = load_dashboards([dashboard_file(tmp_path / "lib.json", [
        {"libraryPanel": {"uid": "u1", "name": "vLLM latency"}},
        {"title": "Shown", "libraryPanel": {"uid": "u2"}, "repeat": "model"},
    ])])
    assert (untitled.title, untitled.library, untitled.repeat) == ("vLLM latency", "vLLM latency", None)
    assert (titled.title, titled.library, titled.repeat) == ("Shown", "u2", "model")
    verdict = judge_reader(untitled, x86, load_catalog(), Policy())
    assert summary(verdict)[:3] == ("inconclusive", "MUST", "not checkable")
    assert verdict.message.startswith('panel "vLLM latency" (vLLM) is a library panel ("vLLM latency")')


def test_panel_name_falls_back_to_the_dashboard_file_name(x86: list[Observation]) -> None:
    panel = Reader("file-stem", "T", (Query("A", "vllm:no_such_metric"),))
    assert judge_message(panel, x86).startswith('panel "T" (file-stem) queries vllm:no_such_metric')


def judge_message(panel: Reader, observations: list[Observation]) -> str:
    return judge_reader(panel, observations, load_catalog(), Policy()).message


# -- against a Prometheus HTTP API ------------------------------------------------------------------------------


RUNNING = "vllm:num_requests_running"


def has_series(api: PrometheusAPI, *selectors_: str) -> None:
    for shown in selectors_:
        api.answer(f"count({shown})", vector(sample(1)))


def test_prometheus_panel_with_data_is_ok_and_asks_one_count_per_selector(
        api: PrometheusAPI, prom: Prometheus, x86: list[Observation]) -> None:
    has_series(api, RUNNING)
    api.answer(f"{RUNNING} + {RUNNING}", vector(sample(2, model_name="tiny")))
    verdict = judge(x86, f"{RUNNING} + {RUNNING}", prom=prom, wait=0.0)
    assert summary(verdict) == ("passed", "MUST", "ok", "")
    assert api.queries().count(f"count({RUNNING})") == 1


@pytest.mark.parametrize(("data", "outcome"), [
    ({"resultType": "scalar", "result": [NOW, "3"]}, Outcome.PASSED),
    ({"resultType": "string", "result": [NOW, "x"]}, Outcome.PASSED),
    ({"resultType": "matrix", "result": [{"metric": {}, "values": [[NOW, "0"], [NOW + 1, "4"]]}]}, Outcome.PASSED),
    ({"resultType": "matrix", "result": [{"metric": {}, "values": []}]}, Outcome.INCONCLUSIVE),
])
def test_every_result_type_counts_as_data(api: PrometheusAPI, prom: Prometheus, x86: list[Observation],
                                          data: dict[str, Any], outcome: Outcome) -> None:
    has_series(api, RUNNING)
    api.answer(f"max_over_time({RUNNING}[1m])", data)
    api.answer(f"count_over_time({RUNNING}[1m])", vector(sample(1)))
    assert judge(x86, f"max_over_time({RUNNING}[1m])", prom=prom, wait=0.0).outcome == outcome


def test_prometheus_returning_only_zero_for_a_moving_counter_fails(
        api: PrometheusAPI, prom: Prometheus, x86: list[Observation]) -> None:
    expr = "rate(vllm:prompt_tokens_total[5m])"
    has_series(api, "vllm:prompt_tokens_total")
    api.answer(expr, vector(sample(0), sample("NaN")))
    assert summary(judge(x86, expr, prom=prom, wait=0.0)) == (
        "failed", "MUST", "always zero / NaN", f"{WHERE}: Prometheus returns only 0 or NaN for its queries.")
    api.answer(expr, vector(sample(0), sample("0.5")))
    assert judge(x86, expr, prom=prom, wait=0.0).outcome == Outcome.PASSED


def test_a_gauge_at_zero_in_prometheus_is_fine(api: PrometheusAPI, prom: Prometheus, x86: list[Observation]) -> None:
    has_series(api, RUNNING)
    api.answer(RUNNING, vector(sample(0)))
    assert judge(x86, RUNNING, prom=prom, wait=0.0).outcome == Outcome.PASSED


def test_empty_query_whose_selectors_have_series_names_the_join(
        api: PrometheusAPI, prom: Prometheus, x86: list[Observation]) -> None:
    expr = f"{RUNNING} / on(pod) vllm:num_requests_waiting"
    has_series(api, RUNNING, "vllm:num_requests_waiting")
    assert summary(judge(x86, expr, prom=prom, wait=0.0)) == (
        "failed", "MUST", "no data",
        f"{WHERE}: Prometheus returns nothing for {expr} although each of its selectors has series there: the series "
        f"do not match across its operators (the labels of one side differ from the other's), or a filter removes "
        f"them all.")


@pytest.mark.parametrize(("samples", "outcome"), [(1, Outcome.INCONCLUSIVE), (2, Outcome.FAILED)])
def test_fewer_than_two_samples_in_the_window_is_the_runs_timing(
        api: PrometheusAPI, prom: Prometheus, x86: list[Observation], samples: int, outcome: Outcome) -> None:
    expr = "rate(vllm:prompt_tokens_total[90s])"
    has_series(api, "vllm:prompt_tokens_total")
    api.answer("count_over_time(vllm:prompt_tokens_total[1m30s])", vector(sample(samples)))
    verdict = judge(x86, expr, prom=prom, wait=0.0)
    assert verdict.outcome == outcome
    if outcome == Outcome.INCONCLUSIVE:
        assert verdict.message.startswith(
            f"{WHERE}: Prometheus holds fewer than two samples of vllm:prompt_tokens_total within the panel's 90s "
            f"window")
        assert "(this panel waited 0 s of the wait all panels share" in verdict.message


def test_empty_query_is_polled_until_the_wait_ends(api: PrometheusAPI, prom: Prometheus,
                                                   x86: list[Observation]) -> None:
    has_series(api, RUNNING)
    api.answer(RUNNING, vector(), vector(), vector(), vector(sample(1)))  # the fourth answer has data
    assert judge(x86, RUNNING, prom=prom, wait=60.0).outcome == Outcome.PASSED
    assert api.queries().count(RUNNING) == 4
    # asked every 0.25 s, not once a second: as Prometheus saw them come, never sooner, and (the best of three,
    # so that one slow answer on a loaded machine does not decide) well before a second
    polls = gaps([s for s in api.seen if s.params.get("query") == RUNNING])
    assert min(polls) >= 0.25 and min(polls) < 1.0, polls


def test_missing_series_in_prometheus_is_no_data_naming_prometheus(
        api: PrometheusAPI, prom: Prometheus, x86: list[Observation]) -> None:
    # vLLM exposes it, Prometheus holds none of it (and no series of it to compare labels with)
    assert summary(judge(x86, RUNNING, prom=prom, wait=0.0)) == (
        "failed", "MUST", "no data",
        f"{WHERE}: Prometheus holds no series for {RUNNING} although the metrics exist (see the Prometheus checks).")


def test_label_mismatch_in_prometheus_reads_its_series(api: PrometheusAPI, prom: Prometheus,
                                                       x86: list[Observation]) -> None:
    api.series[RUNNING] = [{"__name__": RUNNING, "model_name": "tiny", "pod": "p1", "namespace": "llm-d"},
                           {"__name__": RUNNING, "model_name": "tiny", "pod": "p2", "namespace": "llm-d"}]
    before = time.time()
    by_name = judge(x86, f'{RUNNING}{{kubernetes_pod_name="p1"}}', prom=prom, wait=0.0)
    assert by_name.message.startswith(
        f"{WHERE} selects {RUNNING} by label kubernetes_pod_name, which no series carries (Prometheus stores only "
        f"model_name, namespace, pod), so the panel stays empty.")
    by_value = judge(x86, f'{RUNNING}{{namespace="prod"}}', prom=prom, wait=0.0)
    assert by_value.message == (f'{WHERE} selects {RUNNING} with namespace="prod", which none of its series matches '
                                f"(they carry namespace = llm-d), so the panel stays empty.")
    asked = next(s.params for s in api.seen if s.path == "/api/v1/series")
    assert asked["match[]"] == RUNNING and asked["limit"] == "50"
    assert round(before - 600) <= float(asked["start"]) <= round(time.time() - 600)  # ten minutes back


def test_variables_resolved_in_prometheus(api: PrometheusAPI, prom: Prometheus, x86: list[Observation]) -> None:
    api.label_values["model_name"] = ["tiny", "big"]
    api.label_values["__name__"] = ["vllm:num_requests_running", "vllm:num_requests_waiting"]
    api.label_names = ["__name__", "model_name", "pod"]
    api.answer('vllm:num_requests_running{pod=~"p.*"}', vector(sample(1, __name__=RUNNING, pod="p1")))
    api.answer("sum(vllm:num_requests_running)", {"resultType": "scalar", "result": [NOW, "3"]})
    panel = variable_panel(f'{RUNNING}{{model_name="$m"}}',
                           Variable("m", "query", query="label_values(vllm:num_requests_running, model_name)"),
                           Variable("n", "query", query="metrics(waiting)"),
                           Variable("l", "query", query="label_names()", regex="/^p.*/"),
                           Variable("p", "query", query='query_result(vllm:num_requests_running{pod=~"p.*"})',
                                    regex='/pod="([^"]+)"/'),
                           Variable("s", "query", query="query_result(sum(vllm:num_requests_running))",
                                    regex="/scalar (\\d+)/"))
    before = time.time()
    verdict = judge_reader(panel, x86, load_catalog(), Policy(), prom, 0.0)
    after = time.time()
    assert verdict.evidence["variables"] == {"m": "tiny", "n": "vllm:num_requests_waiting", "l": "pod", "p": "p1",
                                             "s": "3"}
    an_hour_back = (round(before - 3600), round(after - 3600))  # the dashboard's range, from when it was judged
    values = next(s for s in api.seen if s.path == "/api/v1/label/model_name/values")
    assert values.params["match[]"] == "vllm:num_requests_running"
    assert an_hour_back[0] <= float(values.params["start"]) <= an_hour_back[1]
    names = next(s for s in api.seen if s.path == "/api/v1/labels")
    assert "match[]" not in names.params and an_hour_back[0] <= float(names.params["start"]) <= an_hour_back[1]


# -- what loading keeps, what variables see -----------------------------------------------------------------


def test_absent_of_an_aggregate_names_its_selector(x86: list[Observation]) -> None:
    verdict = judge(x86, 'absent(sum by (model_name) (vllm:num_requests_running{model_name="tiny"}))')
    assert verdict.message == (f"{WHERE}: absent() returns nothing while "
                               f'vllm:num_requests_running{{model_name="tiny"}} has series: the query shows data '
                               f"only when the metric is missing.")


@pytest.mark.parametrize(("query", "regex", "shown"), [
    # another metric's label (histograms carry le) is not this metric's: unknown
    ("label_values(vllm:num_requests_running, le)", "", ".*"),
    # a chained variable that is unknown (.*) still selects: its matcher is not judged
    ('label_values(vllm:num_requests_running{model_name=".*"}, engine)', "", "0"),
    ("label_names(vllm:num_requests_running)", "/^le$/", ""),  # known, and no label matches: no option
    ("label_names(vllm:num_requests_running{)", "", ".*"),
    ('query_result(vllm:num_requests_running{model_name=".*"})', "", None),
])
def test_variable_lookups_on_the_scrape_select_by_metric_and_matchers(
        x86: list[Observation], query: str, regex: str, shown: str | None) -> None:
    panel = variable_panel("vllm:num_requests_running", Variable("v", "query", query=query, regex=regex))
    value = judge_reader(panel, x86, load_catalog(), Policy()).evidence["variables"]["v"]
    # query_result() writes each series as Grafana does: name{label="value", ...} (no value on the scrape)
    assert value == (shown if shown is not None else 'vllm:num_requests_running{engine="0", model_name="tiny"}')


def test_query_result_in_prometheus_is_written_as_grafana_writes_it(
        api: PrometheusAPI, prom: Prometheus, x86: list[Observation]) -> None:
    api.answer("vllm:num_requests_running", vector(sample("2", __name__=RUNNING, model_name="tiny", pod="p1")))
    api.answer("time()", {"resultType": "scalar", "result": [NOW, "3"]})
    api.answer("up", vector(sample("1", job="vllm")))  # no __name__ in the result: an empty name
    api.label_names = ["__name__", "model_name"]
    panel = variable_panel("vllm:num_requests_running",
                           Variable("s", "query", query="query_result(vllm:num_requests_running)"),
                           Variable("t", "query", query="query_result(time())"),
                           Variable("u", "query", query="query_result(up)"),
                           Variable("l", "query", query="label_names(vllm:num_requests_running)", regex="/^m.*/"),
                           Variable("v", "query", query="label_values(model_name)"))
    api.label_values["model_name"] = ["tiny"]
    shown = judge_reader(panel, x86, load_catalog(), Policy(), prom, 0.0).evidence["variables"]
    ms = int(NOW * 1000)
    assert shown["s"] == f'{RUNNING}{{model_name="tiny", pod="p1"}} 2 {ms}'
    assert shown["t"] == f"scalar 3 {ms}"
    assert shown["u"] == f'{{job="vllm"}} 1 {ms}'
    assert shown["l"] == "model_name"
    names = next(s for s in api.seen if s.path == "/api/v1/labels")
    assert names.params["match[]"] == RUNNING
    values = next(s for s in api.seen if s.path == "/api/v1/label/model_name/values")
    assert "match[]" not in values.params


@pytest.mark.parametrize(("expr", "outcome", "kind", "says"), [
    # a target label is not on the direct scrape: skipped, and the matchers after it still judged
    ('vllm:num_requests_running{pod="p", model_name="other"}', "failed", "label mismatch", 'model_name="other"'),
    ('vllm:num_requests_running{engine="0", model_name="other"}', "failed", "label mismatch", 'model_name="other"'),
    # Prometheus: an empty matcher selects the series without the label; != compares text, not a regex
    ('vllm:num_requests_running{lora_name=""}', "passed", "ok", ""),
    ('vllm:num_requests_running{model_name!="t.ny"}', "passed", "ok", ""),
    ('vllm:num_requests_running{model_name=~".*", lora_name=~".*"}', "passed", "ok", ""),
    # RE2 syntax Python's re lacks is not judged; the next matcher is
    ('vllm:num_requests_running{model_name=~"\\\\p{L}+", engine="9"}', "failed", "label mismatch", 'engine="9"'),
])
def test_matchers_are_read_as_prometheus_reads_them(x86: list[Observation], expr: str, outcome: str, kind: str,
                                                   says: str) -> None:
    verdict = judge(x86, expr)
    assert (verdict.outcome.value, verdict.evidence["panel_verdict"]) == (outcome, kind), verdict.message
    assert says in verdict.message


def test_an_unknown_variable_is_not_the_mismatch_named(x86: list[Observation]) -> None:
    panel = variable_panel('vllm:num_requests_running{model_name="$v", engine="9"}',
                           Variable("v", "query", query="label_values(vllm:num_requests_running, job)"))
    verdict = judge_reader(panel, x86, load_catalog(), Policy())
    assert verdict.evidence["panel_verdict"] == "label mismatch"
    assert 'with engine="9", which none of its series matches (they carry engine = 0)' in verdict.message


def test_label_mismatch_lists_at_most_eight_values(api: PrometheusAPI, prom: Prometheus,
                                                  x86: list[Observation]) -> None:
    api.series[RUNNING] = [{"__name__": RUNNING, "pod": f"vllm-{i}"} for i in range(9)]
    verdict = judge(x86, f'{RUNNING}{{pod="vllm-9"}}', prom=prom, wait=0.0)
    assert "(they carry pod = vllm-0, vllm-1, vllm-2, vllm-3, vllm-4, vllm-5, vllm-6, vllm-7), so" in verdict.message


@pytest.mark.parametrize(("detail", "namespace", "shown"), [
    ({"namespace": "llm-d"}, None, "llm-d"),
    ({"namespace": "llm-d"}, "other", "llm-d"),  # the pod's own namespace wins over the run's
    ({}, None, ".*"),  # nothing tells: unknown
])
def test_pods_carry_their_namespace_for_variables(x86: list[Observation], detail: dict[str, str],
                                                  namespace: str | None, shown: str) -> None:
    pods = [dataclasses.replace(o, target=Target(name="vllm-decode-7f9c", base_url=o.target.base_url,
                                                 source="kubernetes", detail=detail)) for o in x86]
    panel = variable_panel("vllm:num_requests_running",
                           Variable("n", "query", query="label_values(vllm:num_requests_running, namespace)"),
                           Variable("i", "query", query="label_values(vllm:num_requests_running, instance)"))
    found = judge_reader(panel, pods, load_catalog(), Policy(namespace=namespace)).evidence["variables"]
    assert (found["n"], found["i"]) == (shown, ".*")  # a pod is named by pod, not by instance


# -- the rest of the whole-expression rules, and Prometheus' answers -------------------------------------------


@pytest.mark.parametrize(("expr", "outcome", "message"), [
    ("-vllm:no_such_metric", "failed", NO_SUCH),
    ("vllm:no_such_metric or vllm:num_requests_running", "passed",
     "vllm:no_such_metric (in query A) is missing, but the other side of its 'or' has data"),
    # absent() of an expression with data through an 'or' keeps the note of the missing side
    ("absent((vllm:no_such_metric or vllm:num_requests_running) and vllm:other_missing)", "passed",
     "vllm:no_such_metric (in query A) is missing, but the other side of its 'or' has data"),
    ("absent(vllm:num_requests_running) unless vllm:no_such_metric", "failed",
     f"{WHERE}: absent() returns nothing while vllm:num_requests_running has series: the query shows data only "
     f"when the metric is missing."),
    # a missing feature's metric beside data: the note, not "feature not enabled"
    ("vllm:lora_requests_info or vllm:num_requests_running", "passed",
     "vllm:lora_requests_info (in query A) is missing, but the other side of its 'or' has data"),
])
def test_whole_expressions(x86: list[Observation], expr: str, outcome: str, message: str) -> None:
    verdict = judge(x86, expr)
    assert (verdict.outcome.value, verdict.message) == (outcome, message)


def test_notes_of_every_query_are_kept(x86: list[Observation]) -> None:
    verdict = judge(x86, "vllm:a_missing or vllm:num_requests_running", "vllm:b_missing or vllm:num_requests_waiting")
    assert verdict.message == ("vllm:a_missing (in query A) is missing, but the other side of its 'or' has data "
                               "vllm:b_missing (in query B) is missing, but the other side of its 'or' has data")
    assert verdict.evidence["notes"] == verdict.message.replace(" vllm:b", "\nvllm:b").split("\n")


def test_partial_names_every_empty_query_and_keeps_the_notes(x86: list[Observation]) -> None:
    verdict = judge(x86, "vllm:a_missing or vllm:num_requests_running", "vllm:no_such_metric", "vllm:no_such_metric")
    assert verdict.evidence["panel_verdict"] == "partial"
    assert f"returns nothing: {NO_SUCH} query C (vllm:no_such_metric) returns nothing: {NO_SUCH}" in verdict.message
    assert verdict.evidence["notes"] == ["vllm:a_missing (in query A) is missing, but the other side of its 'or' "
                                         "has data"]


def test_selectors_that_match_no_series_together_are_no_data_naming_them(x86: list[Observation]) -> None:
    page = ("# HELP vllm:num_requests_running Requests running.\n# TYPE vllm:num_requests_running gauge\n"
            'vllm:num_requests_running{engine="0",model_name="a"} 0.0\n'
            'vllm:num_requests_running{engine="1",model_name="b"} 0.0\n')
    seen = [dataclasses.replace(o, before=Snapshot.parse(page), after=Snapshot.parse(page)) for o in x86]
    verdict = judge(seen, 'vllm:num_requests_running{engine="0", model_name="b"} + '
                          'vllm:num_requests_running{engine="1", model_name="a"}')
    assert summary(verdict) == (
        "failed", "MUST", "no data",
        f'{WHERE}: the servers expose no series for vllm:num_requests_running{{engine="0",model_name="b"}}, '
        f'vllm:num_requests_running{{engine="1",model_name="a"}} although the metrics exist (see the Prometheus '
        f"checks).")


def test_a_documented_limitation_makes_the_panel_xfail(host: SimHost) -> None:
    arm = observed(host, "arm64-cpu", arch="arm64")
    verdict = judge(arm, "rate(vllm:prefix_cache_hits_total[5m])")
    assert (verdict.outcome, verdict.evidence["panel_verdict"]) == (Outcome.XFAILED, "always zero / NaN")
    assert "disables prefix caching on arm64 CPUs" in verdict.message


def test_a_histogram_that_never_moved_is_always_zero_without_the_ratio_sentence(x86: list[Observation]) -> None:
    idle = [dataclasses.replace(o, before=o.after) for o in x86]  # two identical scrapes: nothing moved
    verdict = judge(idle, "histogram_quantile(0.9, rate(vllm:e2e_request_latency_seconds_bucket[5m]))")
    assert verdict.evidence["panel_verdict"] == "always zero / NaN"
    assert verdict.message.startswith(f"{WHERE} will be always zero / NaN on decode-0: "
                                      f"vllm:e2e_request_latency_seconds exists but did not move during the "
                                      f"workload. Root cause: ")


def test_feature_metric_with_series_but_feature_off_is_skipped_unless_required(
        api: PrometheusAPI, prom: Prometheus, x86: list[Observation]) -> None:
    has_series(api, "vllm:lora_requests_info")
    api.answer("vllm:lora_requests_info", vector(sample(NOW, max_lora="1", running_lora_adapters="")))
    verdict = judge(x86, "vllm:lora_requests_info", prom=prom, wait=0.0)
    assert summary(verdict) == (
        "skipped", "MUST", "feature not enabled",
        f"{WHERE} charts vllm:lora_requests_info, which only moves with feature lora; the feature is not enabled on "
        f"these servers (pass --vllm-require-feature=lora to require it).")
    assert judge(x86, "vllm:lora_requests_info", prom=prom, wait=0.0,
                 policy=Policy(require=("lora",))).outcome == Outcome.PASSED


def test_zero_from_one_query_and_data_from_another_is_data(api: PrometheusAPI, prom: Prometheus,
                                                           x86: list[Observation]) -> None:
    has_series(api, "vllm:prompt_tokens_total", "vllm:generation_tokens_total")
    api.answer("rate(vllm:prompt_tokens_total[5m])", vector(sample("0.5")))
    api.answer("rate(vllm:generation_tokens_total[5m])", vector(sample("0")))
    verdict = judge(x86, "rate(vllm:prompt_tokens_total[5m])", "rate(vllm:generation_tokens_total[5m])", prom=prom,
                    wait=0.0)
    assert verdict.outcome == Outcome.PASSED


def test_a_range_vector_answer_is_read_at_its_last_sample(api: PrometheusAPI, prom: Prometheus,
                                                          x86: list[Observation]) -> None:
    has_series(api, "vllm:prompt_tokens_total")
    api.answer("vllm:prompt_tokens_total[1m]", {"resultType": "matrix", "result": [
        {"metric": {}, "values": [[NOW - 2, "0"], [NOW - 1, "0"], [NOW, "3"]]}]})
    assert judge(x86, "vllm:prompt_tokens_total[1m]", prom=prom, wait=0.0).outcome == Outcome.PASSED


def test_every_empty_query_after_the_wait_gives_the_first_reason(api: PrometheusAPI, prom: Prometheus,
                                                                 x86: list[Observation]) -> None:
    has_series(api, RUNNING, "vllm:num_requests_waiting")
    verdict = judge(x86, f"{RUNNING} / on(pod) vllm:num_requests_waiting", f"{RUNNING} * on(pod) vllm:kv_cache_"
                    "usage_perc", prom=prom, wait=0.0)
    assert verdict.evidence["panel_verdict"] == "no data"
    assert verdict.message.startswith(f"{WHERE}: Prometheus returns nothing for {RUNNING} / on(pod) ")


@pytest.mark.parametrize(("window", "shown"), [("2h", "2h"), ("90s", "90s"), ("1500ms", "1500ms")])
def test_few_samples_names_the_window_as_written(api: PrometheusAPI, prom: Prometheus, x86: list[Observation],
                                                 window: str, shown: str) -> None:
    has_series(api, "vllm:prompt_tokens_total")  # count_over_time answers nothing: no sample at all
    verdict = judge(x86, f"rate(vllm:prompt_tokens_total[{window}])", prom=prom, wait=0.0)
    assert summary(verdict)[:3] == ("inconclusive", "MUST", "inconclusive")
    assert f"within the panel's {shown} window" in verdict.message


# -- the metrics' other consumers, judged as panels -----------------------------------------------------------


def consumer(kind: str, *exprs: str, recorded: frozenset[str] = frozenset()) -> Reader:
    return Reader("vllm-alerts", "R", tuple(Query(chr(ord("A") + i), e) for i, e in enumerate(exprs)), kind=kind,
                 recorded=recorded)


@pytest.mark.parametrize(("kind", "noun", "never"), [
    ("alert", "alert", "This alert can never fire: its expression returns no series. "),
    ("record", "recording rule", "This recording rule records nothing: its expression returns no series, so alerts "
                                 "and panels over it stay empty too. "),
    ("keda", "KEDA scaler", "This scaler gets no value: KEDA takes an empty result as 0 (ignoreNullValues, its "
                            "default) or fails, so it never scales out on it. "),
    ("adapter", "prometheus-adapter rule", "This rule gives no value: an HPA naming the metric it exposes cannot "
                                           "scale on it. "),
    ("epp", "endpoint picker flag", "The endpoint picker finds no such metric on the pods: it routes without it. "),
    ("panel", "panel", ""),
])
def test_each_consumer_says_what_an_empty_result_means_for_it(x86: list[Observation], kind: str, noun: str,
                                                              never: str) -> None:
    missing = judge_reader(consumer(kind, "vllm:no_such_metric > 0"), x86, load_catalog(), Policy())
    assert missing.message == (f'{never}{noun} "R" (vllm-alerts) queries vllm:no_such_metric, which none of the 1 '
                               f"server(s) exposes; the {noun} stays empty. Check the metric name against vLLM's "
                               f"/metrics.")
    mismatch = judge_reader(consumer(kind, 'vllm:num_requests_running{model_name="x"}'), x86, load_catalog(),
                              Policy())
    assert mismatch.message.startswith(f'{never}{noun} "R" (vllm-alerts) selects vllm:num_requests_running with ')
    assert mismatch.message.endswith(f"so the {noun} stays empty.")
    # other verdicts keep their own first sentence
    renamed = judge_reader(consumer(kind, "sum(rate(vllm:prompt_tokens_total[5m"), x86, load_catalog(), Policy())
    assert renamed.message.startswith(f'{noun} "R" (vllm-alerts): its query does not parse')
    unreachable = [dataclasses.replace(o, after=None) for o in x86]
    assert judge_reader(consumer(kind, "vllm:num_requests_running"), unreachable, load_catalog(),
                          Policy()).message.endswith(f"so nothing can be said of the {noun}; see the targets' own "
                                                     f"failures.")


def test_a_recording_rules_series_counts_as_present_and_an_unrecorded_one_is_named(x86: list[Observation]) -> None:
    recorded = frozenset({"namespace:vllm_waiting:sum"})
    ok = judge_reader(consumer("alert", "namespace:vllm_waiting:sum > 10", recorded=recorded), x86, load_catalog(),
                        Policy())
    assert ok.outcome == Outcome.PASSED
    unrecorded = judge_reader(consumer("alert", "cluster:vllm_waiting:sum > 10", recorded=recorded), x86,
                                load_catalog(), Policy())
    assert unrecorded.message == (
        'This alert can never fire: its expression returns no series. alert "R" (vllm-alerts) queries '
        "cluster:vllm_waiting:sum, a recording rule's series by its name, which none of the 1 server(s) exposes and "
        "no rule of this run records; the alert stays empty unless that rule is deployed. Pass its rule file to "
        "--prometheus-rules, or check the name.")
    # one colon is vLLM's own naming: the ordinary message
    assert "a recording rule's series" not in judge_reader(consumer("alert", "vllm:gone > 1"), x86, load_catalog(),
                                                             Policy()).message


def test_an_absence_alert_is_quiet_while_its_metric_has_series(x86: list[Observation]) -> None:
    verdict = judge_reader(consumer("alert", "absent(vllm:num_requests_running)"), x86, load_catalog(), Policy())
    assert (verdict.outcome, verdict.message) == (
        Outcome.PASSED, "it fires when vllm:num_requests_running has no series; it has now")
    panel = judge_reader(consumer("panel", "absent(vllm:num_requests_running)"), x86, load_catalog(), Policy())
    assert panel.outcome == Outcome.FAILED  # a panel of absent() shows nothing while the metric is there


def test_a_quiet_alert_in_prometheus_passes_when_what_it_compares_has_data(
        api: PrometheusAPI, prom: Prometheus, x86: list[Observation]) -> None:
    expr = "vllm:num_requests_waiting / vllm:num_requests_running > 0.9 and vllm:kv_cache_usage_perc >= 0.5"
    has_series(api, "vllm:num_requests_waiting", RUNNING, "vllm:kv_cache_usage_perc")
    api.answer("vllm:num_requests_waiting / vllm:num_requests_running", vector(sample("0.1")))
    api.answer("vllm:kv_cache_usage_perc", vector(sample("0.2")))
    verdict = judge_reader(consumer("alert", expr), x86, load_catalog(), Policy(), prom, 0.0)
    assert (verdict.outcome, verdict.message) == (
        Outcome.PASSED, "not firing now: its condition is false, and the series it compares have data")
    asked = api.queries()
    assert "vllm:num_requests_waiting / vllm:num_requests_running" in asked and "0.9" not in asked
    # a panel of the same expression is empty: judged as a query that stays empty
    assert judge_reader(consumer("panel", expr), x86, load_catalog(), Policy(), prom, 0.0).outcome == Outcome.FAILED


def test_a_quiet_alert_whose_compared_side_is_empty_can_never_fire(
        api: PrometheusAPI, prom: Prometheus, x86: list[Observation]) -> None:
    expr = "vllm:num_requests_waiting / on(pod) vllm:num_requests_running > 0.9"
    has_series(api, "vllm:num_requests_waiting", RUNNING)
    verdict = judge_reader(consumer("alert", expr), x86, load_catalog(), Policy(), prom, 0.0)
    assert verdict.message.startswith(
        'This alert can never fire: its expression returns no series. alert "R" (vllm-alerts): Prometheus returns '
        "nothing for vllm:num_requests_waiting / on (pod) vllm:num_requests_running although")


@pytest.mark.parametrize(("expr", "operands"), [
    ("vllm:a > 1", ["vllm:a"]),
    ("(vllm:a > 1)", ["vllm:a"]),
    ("vllm:a > bool 1", ["vllm:a > bool 1"]),  # a bool comparison filters nothing: the whole is compared
    ("vllm:a > 1 and vllm:b", ["vllm:a", "vllm:b"]),
    ("vllm:a > 1 unless vllm:b", ["vllm:a"]),  # unless: the right side may be empty, that is its point
    ("vllm:a == vllm:b", ["vllm:a", "vllm:b"]),
    ("vllm:a + 1", ["vllm:a + 1"]),
])
def test_what_an_alert_compares(expr: str, operands: list[str]) -> None:
    import promql_parser

    from pytest_vllm_metrics.judging import compared

    assert [n.prettify() for n in compared(promql_parser.parse(expr))] == operands


def test_without_a_set_wait_prometheus_is_polled_for_two_of_its_scrape_intervals(
        api: PrometheusAPI, prom: Prometheus, x86: list[Observation]) -> None:
    api.active = [{"scrapeInterval": "1s", "health": "up", "labels": {}}]
    has_series(api, RUNNING)
    api.answer(RUNNING, vector(), vector(sample(1)))  # data from the second answer on
    assert judge(x86, RUNNING, prom=prom).outcome == Outcome.PASSED
    assert any(s.path == "/api/v1/targets" for s in api.seen)  # the interval was asked for


def test_a_dashboard_without_a_prometheus_query_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(DashboardError) as raised:
        load_dashboards([dashboard_file(tmp_path / "notes.json", [{"title": "Notes", "type": "text"}])])
    assert str(raised.value) == (
        f"dashboard {tmp_path / 'notes.json'} (vLLM) has no panel with a Prometheus query: its panels' targets carry "
        f"no 'expr' (text panels, or another data source such as Loki), so there is nothing to check. Pass the "
        f"dashboards that chart vLLM's Prometheus metrics to --grafana-dashboard.")


def test_a_library_panel_without_name_or_uid_is_named_by_a_question_mark(tmp_path: Path) -> None:
    (panel,) = load_dashboards([dashboard_file(tmp_path / "lib.json", [{"libraryPanel": {"model": {}}}])])
    assert (panel.title, panel.library) == ("?", "?")


def test_a_dashboard_configmap_from_the_cluster_gives_its_panels() -> None:
    # kube-prometheus-stack's Grafana sidecar: label grafana_dashboard, each data key ending in .json one dashboard
    configmap = {"metadata": {"name": "vllm-dashboards", "labels": {"grafana_dashboard": "1"}}, "data": {
        "vllm.json": json.dumps({"title": "vLLM", "panels": [{"title": "Queue", "gridPos": {"x": 0, "y": 0, "w": 8,
                                                                                            "h": 4},
                                                             "targets": [{"expr": "vllm:num_requests_waiting"}]}]}),
        "README": "not a dashboard"}}
    (panel,) = object_dashboards(configmap, "monitoring/vllm-dashboards")
    assert (panel.id, panel.dashboard_title, panel.queries, panel.grid) == (
        "vllm::Queue", "vLLM", (Query("A", "vllm:num_requests_waiting"),), (0, 0, 8, 4))
    assert panel.kind == "panel"


def test_prometheus_failing_mid_judgement_is_inconclusive(x86: list[Observation]) -> None:
    down = Prometheus("http://127.0.0.1:9", timeout=2)
    verdict = judge(x86, RUNNING, prom=down, wait=0.0)
    assert summary(verdict)[:3] == ("inconclusive", "MUST", "inconclusive")
    assert verdict.message.startswith(f"{WHERE}: Prometheus could not answer, so the panel could not be judged: "
                                      f"Prometheus at http://127.0.0.1:9 cannot be reached")


def test_a_variable_prometheus_cannot_resolve_keeps_the_queries_as_written(x86: list[Observation]) -> None:
    panel = variable_panel(f'{RUNNING}{{model_name="$m"}}',
                           Variable("m", "query", query="label_values(vllm:num_requests_running, model_name)"))
    verdict = judge_reader(panel, x86, load_catalog(), Policy(), Prometheus("http://127.0.0.1:9", timeout=2), 0.0)
    assert verdict.evidence["exprs"] == [f'{RUNNING}{{model_name="$m"}}']
    assert verdict.message.startswith(f"{WHERE}: its variables could not be resolved: ")


def test_a_selector_without_a_metric_name_selects_by_its_labels(x86: list[Observation]) -> None:
    assert summary(judge(x86, 'sum({model_name="tiny"})')) == ("passed", "MUST", "ok", "")


def test_the_namespace_variable_is_the_runs_namespace(x86: list[Observation]) -> None:
    pods = [_as_pod(o, "other") for o in x86]
    panel = variable_panel(RUNNING, Variable("namespace", "query",
                                             query="label_values(vllm:num_requests_running, namespace)"))
    verdict = judge_reader(panel, pods, load_catalog(), Policy(namespace="llm-d"))
    assert verdict.evidence["variables"]["namespace"] == "llm-d"


def test_a_variables_query_gets_the_built_in_durations(api: PrometheusAPI, prom: Prometheus,
                                                       x86: list[Observation]) -> None:
    panel = variable_panel(RUNNING, Variable("s", "query",
                                             query="query_result(max_over_time(vllm:num_requests_running[$__range]))"))
    judge_reader(panel, x86, load_catalog(), Policy(), prom, 0.0)
    assert "max_over_time(vllm:num_requests_running[1h])" in api.queries()


def test_a_repeated_panel_that_shows_data_everywhere_says_nothing(x86: list[Observation]) -> None:
    panel = Reader("d", "T", (Query("A", f'{RUNNING}{{model_name=~"$m"}}'),),
                  (Variable("m", "custom", query="tiny", include_all=True, current=("$__all",)),),
                  dashboard_title="vLLM", repeat="m")
    verdict = judge_reader(panel, x86, load_catalog(), Policy())
    assert (verdict.outcome, verdict.message) == (Outcome.PASSED, "")


def test_a_recording_rules_series_is_polled_until_the_rule_has_run(api: PrometheusAPI, prom: Prometheus,
                                                                   x86: list[Observation]) -> None:
    series = "namespace:vllm_waiting:sum"
    api.answer(f"count({series})", vector(), vector(sample(1)))  # the rule's next evaluation makes it
    api.answer(f"{series} > 10", vector(sample(12)))
    panel = consumer("alert", f"{series} > 10", recorded=frozenset({series}))
    assert judge_reader(panel, x86, load_catalog(), Policy(), prom, 5.0).outcome == Outcome.PASSED
    assert api.queries().count(f"count({series})") == 2


def test_an_absence_alert_over_two_metrics_names_both_and_its_other_queries_count(x86: list[Observation]) -> None:
    both = judge_reader(consumer("alert", f"absent({RUNNING}) and absent(vllm:num_requests_waiting)"), x86,
                          load_catalog(), Policy())
    assert both.message == f"it fires when {RUNNING}, vllm:num_requests_waiting has no series; it has now"
    second = judge_reader(consumer("alert", f"absent({RUNNING})", "vllm:no_such_metric > 1"), x86, load_catalog(),
                            Policy())
    assert second.evidence["panel_verdict"] == "partial"


def test_a_quiet_alert_adds_up_what_it_compares_over_its_queries(api: PrometheusAPI, prom: Prometheus,
                                                                 x86: list[Observation]) -> None:
    prompt, generation = "rate(vllm:prompt_tokens_total[5m])", "rate(vllm:generation_tokens_total[5m])"
    has_series(api, "vllm:prompt_tokens_total", "vllm:generation_tokens_total")
    api.answer(prompt, vector(), vector(sample("0.5")))  # polled: data on the second answer
    api.answer(generation, vector(sample("0")))
    one = judge_reader(consumer("alert", f"{prompt} > 100 and {generation} > 100"), x86, load_catalog(), Policy(),
                         prom, 5.0)
    assert one.outcome == Outcome.PASSED  # 0.5 and 0: not only zeros
    two = judge_reader(consumer("alert", f"{prompt} > 100", f"{generation} > 100"), x86, load_catalog(), Policy(),
                         prom, 5.0)
    assert two.outcome == Outcome.PASSED
    assert judge_reader(consumer("alert", f"{prompt} > 100", "vllm:no_such_metric > 1"), x86, load_catalog(),
                          Policy(), prom, 0.0).evidence["panel_verdict"] == "partial"


def test_a_kind_of_your_own_is_named_as_written(x86: list[Observation]) -> None:
    # vllm_judge_panel judges users' own Panels: a kind the suite does not know keeps its own name
    verdict = judge_reader(consumer("recording-job", "vllm:no_such_metric"), x86, load_catalog(), Policy())
    assert verdict.message.startswith('recording-job "R" (vllm-alerts) queries vllm:no_such_metric')


def test_one_selector_of_another_component_is_named(x86: list[Observation]) -> None:
    assert summary(judge(x86, "llm_d_epp_ready_endpoints")) == (
        "skipped", "MUST", "not a vLLM metric",
        f"{WHERE} is built on llm_d_epp_ready_endpoints, metrics of the endpoint picker (EPP), not of vLLM: point "
        f"the check at the EPP's /metrics (port 9090), not at vLLM.")


# -- a matcher on a label the scrape adds, which the run cannot know without Prometheus ------------------------

GAUGES = Snapshot.parse('# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{model_name="tiny"} 1\n')


def test_every_unjudged_matcher_and_label_is_named_with_its_operator() -> None:
    pod = [observation(GAUGES, GAUGES, source="kubernetes")]
    verdict = judge(pod, 'vllm:num_requests_running{job!="x",instance=~"a|b"}')
    assert summary(verdict) == (
        "inconclusive", "MUST", "inconclusive",
        'panel "T" (vLLM) selects its series with job!="x", instance=~"a|b": instance, job is added by Prometheus '
        "when it scrapes, and without --prometheus-url the run cannot know its value on decode-0 (Kubernetes "
        "discovery knows pod, namespace and container, not instance, job), so it cannot tell whether the panel "
        "shows data. Pass --prometheus-url to judge it against the series Prometheus holds.")
    assert verdict.evidence["unjudged"] == 'job!="x", instance=~"a|b"'
    assert judge(pod, 'vllm:num_requests_running{job!~"vllm|x"}').evidence["unjudged"] == 'job!~"vllm|x"'


def test_behind_prometheus_a_scrape_label_is_judged_there(api: PrometheusAPI, prom: Prometheus) -> None:
    api.answer('count(vllm:num_requests_running{job="vllm"})', vector(sample(1)))
    api.answer('vllm:num_requests_running{job="vllm"}', vector(sample(1)))
    verdict = judge([observation(GAUGES, GAUGES, source="kubernetes")], 'vllm:num_requests_running{job="vllm"}',
                    prom=prom, wait=3.0)
    assert verdict.outcome == Outcome.PASSED, verdict.message


def test_a_panel_all_of_whose_queries_are_empty_says_its_worst_reason() -> None:
    verdict = judge([observation(GAUGES, GAUGES)], "vllm:spec_decode_num_drafts_total", "vllm:made_up")
    assert (verdict.outcome, verdict.evidence["panel_verdict"]) == (Outcome.FAILED, "no data")
    assert "vllm:made_up" in verdict.message


def test_a_query_of_a_feature_not_enabled_beside_one_with_data_is_a_partial_panel() -> None:
    verdict = judge([observation(GAUGES, GAUGES)], "vllm:num_requests_running", "vllm:spec_decode_num_drafts_total")
    assert summary(verdict)[:3] == ("failed", "SHOULD", "partial")


def test_a_shard_without_prometheus_cannot_judge_a_reader_of_the_whole_fleet(api: PrometheusAPI,
                                                                             prom: Prometheus) -> None:
    shard = Policy(sliced=True)  # --vllm-shard=1/2: this run observes half of the fleet
    verdict = judge([observation(GAUGES, GAUGES)], "vllm:num_requests_running", policy=shard)
    assert summary(verdict) == (
        "inconclusive", "MUST", "inconclusive",
        'panel "T" (vLLM) is evaluated over the whole fleet, and a shard sees only its slice of the fleet; give '
        "--prometheus-url, or run unsharded.")
    api.answer("count(vllm:num_requests_running)", vector(sample(1)))
    api.answer("vllm:num_requests_running", vector(sample(1)))
    assert judge([observation(GAUGES, GAUGES)], "vllm:num_requests_running", policy=shard, prom=prom,
                 wait=3.0).outcome == Outcome.PASSED  # Prometheus holds the whole fleet
