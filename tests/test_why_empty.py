"""Why a panel stays empty (why_empty.py), judged against the direct scrape: the most telling reason, and the
label a selector names that none of the series carries."""

from __future__ import annotations

import pytest

from conftest import (
    observation,
)
from pytest_vllm_metrics.outcome import Outcome, Verdict
from pytest_vllm_metrics.settings import Policy
from pytest_vllm_metrics.snapshot import Snapshot

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
