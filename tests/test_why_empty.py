"""Why a panel stays empty (why_empty.py), judged against the direct scrape: the most telling reason, and the
label a selector names that none of the series carries."""

from __future__ import annotations

import time

import pytest

from conftest import (
    PrometheusAPI,
    judge,
    observation,
)
from pytest_vllm_metrics.observe import Observation
from pytest_vllm_metrics.outcome import Outcome, Verdict
from pytest_vllm_metrics.prometheus import Prometheus
from pytest_vllm_metrics.settings import Policy
from pytest_vllm_metrics.snapshot import Snapshot
from pytest_vllm_metrics.targets import Target

# -- dashboards: why a panel stays empty, judged against the direct scrape (why_empty._missing, why_empty) ------


def panel_verdict(expr: str) -> Verdict:
    """The verdict of a one-query panel "T" of dashboard d, against one server exposing the running-requests
    gauge and the preemption counter (no Prometheus: the direct scrape decides)."""
    from pytest_vllm_metrics import judging, readers
    from pytest_vllm_metrics.catalog import load_catalog
    snapshot = Snapshot.parse('# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{model_name="tiny"} 0\n'
                              '# TYPE vllm:num_preemptions counter\nvllm:num_preemptions_total{model_name="tiny"} 0\n')
    panel = readers.Reader("d", "T", (readers.Query("A", expr),))
    return judging.judge_reader(panel, [observation(snapshot, snapshot)], load_catalog(), Policy())


@pytest.mark.parametrize(("expr", "outcome", "kind", "message"), [
    ("vllm:num_preemptions", Outcome.FAILED, "no data",
     'panel "T" (d) queries vllm:num_preemptions, which no server exposes: the counter is vllm:num_preemptions_total '
     "(counters carry _total). Query vllm:num_preemptions_total."),
    ("vllm:gpu_cache_usage_perc", Outcome.FAILED, "no data",
     'panel "T" (d) queries vllm:gpu_cache_usage_perc, which vLLM renamed: the servers expose '
     "vllm:kv_cache_usage_perc (the old name exists only in vLLM >=0.7.3,<0.11.0). Query vllm:kv_cache_usage_perc."),
    ("vllm:num_requests_swapped", Outcome.FAILED, "no data",
     'panel "T" (d) queries vllm:num_requests_swapped, which vLLM removed: the V0 engine swapped preempted requests '
     "to CPU memory; vLLM V1 does not swap, and no V1 server exposes it. Drop the query, or chart "
     "vllm:num_preemptions_total, what V1 does instead."),
    ("vllm:spec_decode_num_drafts_total", Outcome.SKIPPED, "feature not enabled",
     'panel "T" (d) charts vllm:spec_decode_num_drafts_total, a metric of feature spec_decode, which is not enabled '
     "on these servers."),
    ("vllm:made_up", Outcome.FAILED, "no data",
     'panel "T" (d) queries vllm:made_up, which none of the 1 server(s) exposes; the panel stays empty. Check the '
     "metric name against vLLM's /metrics."),
    ("absent(vllm:num_requests_running)", Outcome.FAILED, "no data",
     'panel "T" (d): absent() returns nothing while vllm:num_requests_running has series: the query shows data '
     "only when the metric is missing."),
    # the feature of a catalog entry whose name no feature prefix covers (kv_connector's NIXL histogram)
    ("vllm:nixl_xfer_time_seconds_count", Outcome.SKIPPED, "feature not enabled",
     'panel "T" (d) charts vllm:nixl_xfer_time_seconds_count, a metric of feature kv_connector, which is not '
     "enabled on these servers."),
    # a missing selector beside an absent() that has series: the missing metric is the more telling reason
    ("absent(vllm:num_requests_running) and vllm:made_up", Outcome.FAILED, "no data",
     'panel "T" (d) queries vllm:made_up, which none of the 1 server(s) exposes; the panel stays empty. Check the '
     "metric name against vLLM's /metrics."),
    ("absent(vllm:num_requests_running) and absent(vllm:num_preemptions_total)", Outcome.FAILED, "no data",
     'panel "T" (d): absent() returns nothing while vllm:num_requests_running, vllm:num_preemptions_total has '
     "series: the query shows data only when the metric is missing."),
])
def test_empty_panel_says_why_by_the_most_telling_reason(expr: str, outcome: Outcome, kind: str,
                                                         message: str) -> None:
    """kills the outcome, kind and message arguments of each verdict of why_empty._missing (the `_total` hint,
    the rename, the removal, the feature not enabled, the unknown name), the catalog-entry feature of _missing
    (`or` -> `and`, `!= "core"` -> `== "core"`), and the absent() verdict of why_empty.why_empty
    (`not judged.empty and judged.absent` -> `or` / `judged.empty`, its `", ".join`)."""
    verdict = panel_verdict(expr)
    assert (verdict.outcome, verdict.level, verdict.evidence["panel_verdict"]) == (outcome, "MUST", kind)
    assert verdict.message == message


MISMATCH = 'panel "T" (d) selects vllm:num_requests_running with model_name{}, which none of its series matches ' \
           "(they carry model_name = tiny), so the panel stays empty."


@pytest.mark.parametrize(("matcher", "message"), [
    ('{kubernetes_namespace="x"}',
     'panel "T" (d) selects vllm:num_requests_running by label kubernetes_namespace, which no series carries '
     "(vLLM's labels plus the target labels Prometheus Operator adds are container, endpoint, instance, job, "
     "model_name, namespace, pod, service), so the panel stays empty. Prometheus Operator adds namespace and pod, "
     "not kubernetes_namespace or kubernetes_pod_name: select on the label the scrape adds."),
    ('{model_name="other"}', MISMATCH.format('="other"')),
    ('{model_name!="tiny"}', MISMATCH.format('!="tiny"')),
    ('{model_name=~"a|b"}', MISMATCH.format('=~"a|b"')),
    ('{model_name!~"t.*"}', MISMATCH.format('!~"t.*"')),
    ('{model_name="tin.*"}', MISMATCH.format('="tin.*"') + " An '=' matcher compares the text exactly: a regex "
                                                           "(a Grafana All value or a multi-value variable) needs "
                                                           "'=~'."),
])
def test_panel_selecting_no_series_names_the_label_and_what_the_series_carry(matcher: str, message: str) -> None:
    """kills the outcome, kind, source text and message of both verdicts of why_empty._label_mismatch (a label
    no series carries; a value none matches, with each operator's sign and the '=~' hint for a regex)."""
    verdict = panel_verdict(f"vllm:num_requests_running{matcher}")
    assert (verdict.outcome, verdict.evidence["panel_verdict"]) == (Outcome.FAILED, "label mismatch")
    assert verdict.message == message


# -- several problems of one reader, in one verdict (why_empty._together) ----------------------------------------

PAGE = Snapshot.parse('# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{model_name="tiny"} 0\n'
                      '# TYPE vllm:num_preemptions counter\nvllm:num_preemptions_total{model_name="tiny"} 0\n')
MADE_UP = ("queries vllm:made_up, which none of the 1 server(s) exposes; the {noun} stays empty. Check the metric "
           "name against vLLM's /metrics.")
NAMESPACE = ("selects {metric} by label kubernetes_namespace, which no series carries ({carried}), so the panel stays "
             "empty. Prometheus Operator adds namespace and pod, not kubernetes_namespace or kubernetes_pod_name: "
             "select on the label the scrape adds.")
TARGET_ONLY = ("the target labels Prometheus Operator adds are container, endpoint, instance, job, namespace, pod, "
               "service")


def test_three_problems_are_one_verdict_the_first_in_full_each_other_after_it() -> None:
    verdict = judge([observation(PAGE, PAGE)], 'vllm:made_up + vllm:other_made_up + vllm:num_requests_running'
                                               '{model_name="x"}')
    assert (verdict.outcome, verdict.evidence["panel_verdict"], verdict.evidence["problems"]) == (
        Outcome.FAILED, "no data", 3)
    assert verdict.message == (
        f'panel "T" (vLLM) {MADE_UP.format(noun="panel")} Also, it '
        f"{MADE_UP.format(noun='panel').replace('vllm:made_up', 'vllm:other_made_up')} Also, it selects "
        'vllm:num_requests_running with model_name="x", which none of its series matches (they carry model_name = '
        "tiny), so the panel stays empty.")


def test_a_failure_leads_the_verdict_before_a_feature_not_enabled() -> None:
    verdict = judge([observation(PAGE, PAGE)], "vllm:spec_decode_num_drafts_total + vllm:made_up")
    assert (verdict.outcome, verdict.evidence["problems"]) == (Outcome.FAILED, 2)
    assert verdict.message == (f'panel "T" (vLLM) {MADE_UP.format(noun="panel")} Also, it charts '
                               "vllm:spec_decode_num_drafts_total, a metric of feature spec_decode, which is not "
                               "enabled on these servers.")


def test_an_alert_says_once_that_it_can_never_fire_before_all_its_problems() -> None:
    verdict = judge([observation(PAGE, PAGE)], 'vllm:made_up + vllm:num_requests_running{model_name="x"}',
                    kind="alert")
    assert verdict.message == (
        f'This alert can never fire: its expression returns no series. alert "T" (vLLM) {MADE_UP.format(noun="alert")} '
        'Also, it selects vllm:num_requests_running with model_name="x", which none of its series matches (they carry '
        "model_name = tiny), so the alert stays empty.")


def test_a_label_no_series_carries_is_named_once_for_all_the_selectors_that_use_it() -> None:
    # two gauges of a Grafana panel filtered on a label of another scrape config (kubernetes_sd's relabelling)
    verdict = judge([observation(PAGE, PAGE)], 'vllm:num_requests_running{kubernetes_namespace="x"} + '
                                               'vllm:num_preemptions_total{kubernetes_namespace="x"}')
    carried = ("vLLM's labels plus the target labels Prometheus Operator adds are container, endpoint, instance, job, "
               "model_name, namespace, pod, service")
    assert verdict.message == 'panel "T" (vLLM) ' + NAMESPACE.format(metric="vllm:num_requests_running",
                                                                     carried=carried)
    assert "problems" not in verdict.evidence


def test_a_missing_metrics_label_is_not_named_again_for_an_exposed_one() -> None:
    verdict = judge([observation(PAGE, PAGE)], 'vllm:made_up{kubernetes_namespace="x"} + '
                                               'vllm:num_requests_running{kubernetes_namespace="x"}')
    assert verdict.evidence["problems"] == 2
    assert verdict.message == (f'panel "T" (vLLM) {MADE_UP.format(noun="panel")} Also, it '
                               + NAMESPACE.format(metric="vllm:made_up", carried=TARGET_ONLY))


def test_a_missing_metric_selected_by_a_label_other_series_carry_is_only_missing() -> None:
    """A label of vLLM's series (model_name) on a metric no server has: the metric is the problem, not the label."""
    verdict = judge([observation(PAGE, PAGE)], 'vllm:made_up{model_name="tiny"}')
    assert verdict.message == f'panel "T" (vLLM) {MADE_UP.format(noun="panel")}'
    assert "problems" not in verdict.evidence


def test_a_series_without_the_label_matches_a_not_equal_matcher() -> None:
    """A fleet mid-upgrade: the older server's series lack the engine label that vLLM V1 adds (engine="0"), so
    engine!="0" selects them; the value no series has is model_name's."""
    old = Snapshot.parse('# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{model_name="tiny"} 0\n')
    new = Snapshot.parse('# TYPE vllm:num_requests_running gauge\n'
                         'vllm:num_requests_running{engine="0",model_name="tiny"} 0\n')
    second = Observation(Target("decode-1", "http://10.0.0.2:8200"), version="0.32.0", before=new, after=new)
    verdict = judge([observation(old, old, version="0.8.5"), second],
                    'vllm:num_requests_running{engine!="0",model_name="other"}')
    assert verdict.message == ('panel "T" (vLLM) selects vllm:num_requests_running with model_name="other", which '
                               "none of its series matches (they carry model_name = tiny), so the panel stays empty.")


# -- behind Prometheus: the form it holds, the labels it stores (the API double of conftest) ---------------------


def test_the_underscore_form_of_a_name_is_inconclusive_without_prometheus() -> None:
    verdict = judge([observation(PAGE, PAGE)], "vllm_num_requests_running")
    assert (verdict.outcome, verdict.evidence["panel_verdict"]) == (Outcome.INCONCLUSIVE, "inconclusive")
    assert verdict.message.startswith('panel "T" (vLLM) reads vllm_num_requests_running, which no server exposes; '
                                      "the servers expose vllm:num_requests_running, and vllm_num_requests_running "
                                      "is the underscore form of a colon name")
    assert verdict.message.endswith("pass --prometheus-url to judge the panel.")


def test_the_underscore_form_prometheus_does_not_hold_fails(api: PrometheusAPI, prom: Prometheus) -> None:
    api.label_values["__name__"] = ["vllm:num_requests_running"]
    verdict = judge([observation(PAGE, PAGE)], "vllm_num_requests_running", prom=prom, wait=3.0)
    assert (verdict.outcome, verdict.evidence["panel_verdict"]) == (Outcome.FAILED, "no data")
    assert verdict.message == (
        'panel "T" (vLLM) reads vllm_num_requests_running, which Prometheus does not hold; the servers expose '
        "vllm:num_requests_running, and vllm_num_requests_running is the underscore form of a colon name: a store or "
        "collector rewrote the colons (prometheus_client answers a scrape that asks for OpenMetrics with "
        "escaping=underscores by default, and OpenTelemetry pipelines translate names the same way), which this "
        "Prometheus does not store. Query the form it holds.")


def test_a_name_prometheus_holds_in_its_underscore_form_names_that_form(api: PrometheusAPI,
                                                                        prom: Prometheus) -> None:
    # what an OpenTelemetry collector in the scrape path stores (see dashboards.toml's underscores message)
    api.label_values["__name__"] = ["vllm_num_requests_running", "vllm:num_preemptions_total"]
    verdict = judge([observation(PAGE, PAGE)], "vllm:num_requests_running", prom=prom, wait=3.0, kind="keda")
    assert (verdict.outcome, verdict.evidence["panel_verdict"]) == (Outcome.FAILED, "no data")
    assert verdict.message.startswith('This scaler gets no value: KEDA takes an empty result as 0')
    assert verdict.message.endswith(
        'scaler "T" (vLLM) reads vllm:num_requests_running, which the servers expose, but Prometheus holds it as '
        "vllm_num_requests_running: the underscore form of a colon name: a store or collector rewrote the colons "
        "(prometheus_client answers a scrape that asks for OpenMetrics with escaping=underscores by default, and "
        "OpenTelemetry pipelines translate names the same way). Query vllm_num_requests_running, or make the "
        "collection path keep vLLM's names.")


def test_a_missing_metrics_label_is_looked_up_among_the_labels_prometheus_stored_lately(
        api: PrometheusAPI, prom: Prometheus) -> None:
    api.label_names = ["__name__", "instance", "job", "model_name", "namespace", "pod"]
    before = time.time()
    verdict = judge([observation(PAGE, PAGE)], 'vllm:made_up{kubernetes_namespace="x"}', prom=prom, wait=3.0)
    after = time.time()
    assert verdict.message == (f'panel "T" (vLLM) {MADE_UP.format(noun="panel")} Also, it '
                               + NAMESPACE.format(metric="vllm:made_up", carried=TARGET_ONLY))
    asked = [s.params for s in api.seen if s.path == "/api/v1/labels"]
    assert len(asked) == 1
    assert round(before - 600) <= float(asked[0]["start"]) <= round(after - 600)  # ten minutes before it asked
    # a label Prometheus stores is no mismatch, though the metric is missing
    assert judge([observation(PAGE, PAGE)], 'vllm:made_up{namespace="x"}', prom=prom, wait=3.0).message == (
        f'panel "T" (vLLM) {MADE_UP.format(noun="panel")}')
