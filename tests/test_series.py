"""Where a reader's series come from (series.py): the label matchers, the direct scrapes as Grafana and a panel's
selectors see them (Scrapes), Prometheus' answers (query_values, PromLookup over the Prometheus API double), and
the helpers of a reader's verdict."""

from __future__ import annotations

import pytest

from conftest import PrometheusAPI, page, sample, vector
from pytest_vllm_metrics.catalog import load_catalog
from pytest_vllm_metrics.observe import Observation
from pytest_vllm_metrics.outcome import Outcome
from pytest_vllm_metrics.prometheus import Prometheus
from pytest_vllm_metrics.promql import Selector, selectors
from pytest_vllm_metrics.readers import UNKNOWN, Query, Reader
from pytest_vllm_metrics.series import (
    Context,
    PromLookup,
    Scrapes,
    accepts_any,
    default_wait,
    matches,
    named,
    query_values,
)
from pytest_vllm_metrics.settings import Policy
from pytest_vllm_metrics.targets import Target, TargetSource

RUNNING = "vllm:num_requests_running"

# -- matchers -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("matcher", "labels", "expected"), [
    (("pod", "Equal", "a"), {"pod": "a"}, True),
    (("pod", "Equal", "a"), {"pod": "ab"}, False),
    (("pod", "NotEqual", "a"), {"pod": "a"}, False),
    (("pod", "NotEqual", "a"), {}, True),  # a missing label is the empty string, as in Prometheus
    (("pod", "Re", "vllm-.*"), {"pod": "vllm-decode-0"}, True),
    (("pod", "Re", "vllm"), {"pod": "vllm-decode-0"}, False),  # anchored at both ends, as Prometheus anchors it
    (("pod", "NotRe", "vllm-.*"), {"pod": "vllm-decode-0"}, False),
    (("pod", "NotRe", "vllm"), {"pod": "vllm-decode-0"}, True),
    (("pod", "Re", ""), {}, True),
    (("pod", "Re", "("), {"pod": "x"}, True),  # a regex Prometheus refuses too is not judged here
])
def test_a_series_labels_against_one_matcher(matcher: tuple[str, str, str], labels: dict[str, str],
                                             expected: bool) -> None:
    assert matches([matcher], labels, wildcard=False) is expected


def test_matchers_on_unknown_labels_and_unknown_variables_are_not_judged() -> None:
    on_job = [("job", "Equal", "vllm"), ("pod", "Equal", "a")]
    assert not matches(on_job, {"pod": "a"}, wildcard=False)
    assert matches(on_job, {"pod": "a"}, wildcard=False, unknown=frozenset({"job"}))
    assert not matches(on_job, {"pod": "b"}, wildcard=False, unknown=frozenset({"job"}))  # the others still are
    variable = [("pod", "Equal", UNKNOWN)]
    assert matches(variable, {"pod": "a"}, wildcard=True)
    assert not matches(variable, {"pod": "a"}, wildcard=False)


@pytest.mark.parametrize(("matcher", "expected"), [
    (("namespace", "Re", ".*"), True),  # every value, the empty one too
    (("job", "NotEqual", ""), True),  # Prometheus always sets job: any non-empty value passes
    (("instance", "Re", ".+"), True),
    (("namespace", "NotEqual", ""), False),  # a namespace may be missing
    (("job", "Equal", "vllm"), False),
    (("job", "Re", "vllm-.*"), False),
    (("job", "Re", "("), False),
])
def test_a_matcher_that_accepts_any_value_of_a_scrape_label(matcher: tuple[str, str, str], expected: bool) -> None:
    assert accepts_any(*matcher) is expected


# -- the direct scrapes -----------------------------------------------------------------------------------------


def seen(name: str, source: TargetSource = TargetSource.URL, **detail: str) -> Observation:
    after = page({}, extra=f'# TYPE {RUNNING} gauge\n{RUNNING}{{engine="0",model_name="tiny"}} 0\n')
    return Observation(Target(name, "http://x", source=source, detail=detail), after=after)


def only(expr: str) -> Selector:
    (selector,) = selectors(expr)
    return selector


def test_a_pods_scrape_labels_are_its_namespace_name_and_container_and_the_rest_unknown() -> None:
    pod = seen("vllm-decode-0", TargetSource.KUBERNETES, namespace="llm-d", container="vllm")
    labels, unknown = Scrapes([pod], Policy(namespace="other")).target_labels(pod)
    assert labels == {"namespace": "llm-d", "pod": "vllm-decode-0", "container": "vllm"}
    assert unknown == frozenset({"endpoint", "job", "instance", "service"})


@pytest.mark.parametrize(("namespace", "labels"), [("llm-d", {"namespace": "llm-d"}), (None, {})])
def test_a_url_targets_only_scrape_label_is_the_policys_namespace(namespace: str | None,
                                                                   labels: dict[str, str]) -> None:
    url = seen("10.0.0.7:8000")
    known, unknown = Scrapes([url], Policy(namespace=namespace)).target_labels(url)
    assert known == labels and "pod" in unknown and ("namespace" in unknown) is (namespace is None)


def test_a_selector_selects_a_pods_series_with_its_scrape_labels() -> None:
    pod = seen("vllm-decode-0", TargetSource.KUBERNETES, namespace="llm-d", container="vllm")
    scrapes = Scrapes([pod], Policy())
    assert scrapes.selected(pod, only(f'{RUNNING}{{namespace="llm-d"}}')) == [
        {"engine": "0", "model_name": "tiny", "namespace": "llm-d", "pod": "vllm-decode-0", "container": "vllm"}]
    assert scrapes.selected(pod, only(f'{RUNNING}{{namespace="other"}}')) == []
    assert scrapes.has(only(f'{RUNNING}{{pod=~"vllm-.*"}}')) is True
    assert scrapes.has(only(f'{RUNNING}{{pod="vllm-decode-9"}}')) is False


def test_a_scrape_label_overrides_the_pages_own() -> None:
    # a page whose series carry a pod label of their own: Prometheus (honor_labels off) keeps the target's
    after = page({}, extra=f'# TYPE {RUNNING} gauge\n{RUNNING}{{engine="0",pod="from-page"}} 0\n')
    pod = Observation(Target("vllm-decode-0", "http://x", source=TargetSource.KUBERNETES,
                             detail={"namespace": "llm-d"}), after=after)
    scrapes = Scrapes([pod], Policy())
    assert scrapes.selected(pod, only(f'{RUNNING}{{pod="vllm-decode-0"}}')) == [
        {"engine": "0", "pod": "vllm-decode-0", "namespace": "llm-d"}]
    assert scrapes.selected(pod, only(f'{RUNNING}{{pod="from-page"}}')) == []


def test_a_matcher_on_a_label_only_prometheus_knows_is_left_unjudged_naming_the_servers() -> None:
    pods = [seen("a", TargetSource.KUBERNETES, namespace="n"), seen("b", TargetSource.KUBERNETES, namespace="n")]
    scrapes = Scrapes(pods, Policy())
    assert scrapes.has(only(f'{RUNNING}{{job="vllm"}}')) is True
    assert scrapes.unjudged == {("job", "Equal", "vllm"): ["a", "b"]}
    assert scrapes.has(only(f'{RUNNING}{{job!=""}}')) is True
    assert list(scrapes.unjudged) == [("job", "Equal", "vllm")]  # job is always set: any non-empty value passes


def test_a_series_prometheus_makes_is_judged_on_the_labels_discovery_knows() -> None:
    pod = seen("a", TargetSource.KUBERNETES, namespace="n")
    scrapes = Scrapes([pod], Policy())
    assert scrapes.has(only("up")) is True
    assert scrapes.has(only('up{namespace="n"}')) is True
    assert scrapes.has(only('up{namespace="other"}')) is False
    assert scrapes.unjudged == {}
    assert scrapes.has(only('up{job="vllm"}')) is True
    assert scrapes.unjudged == {("job", "Equal", "vllm"): ["a"]}


def test_another_components_metric_is_not_judged_on_vllms_pages() -> None:
    assert Scrapes([seen("a")], Policy()).has(only("inference_pool_ready_pods")) is True


def test_grafana_lookups_on_the_scrapes() -> None:
    pods = [seen("a", TargetSource.KUBERNETES, namespace="n"), seen("b", TargetSource.KUBERNETES, namespace="n")]
    scrapes = Scrapes(pods, Policy())
    assert scrapes.label_values("pod", RUNNING) == ["a", "b"]
    assert scrapes.label_values("pod", f'{RUNNING}{{pod="b"}}') == ["b"]
    assert scrapes.label_values("job", RUNNING) is None  # only Prometheus knows it
    assert scrapes.label_values("pod", "sum(") is None  # a match[] that does not parse: unknown
    assert scrapes.label_names(f'{RUNNING}{{pod="a"}}') == ["engine", "model_name", "namespace", "pod"]
    names = scrapes.metric_names()
    assert names is not None and RUNNING in names and "vllm:cache_config_info" in names
    assert scrapes.query_result(f'{RUNNING}{{pod="a"}}') == [
        f'{RUNNING}{{engine="0", model_name="tiny", namespace="n", pod="a"}}']
    assert scrapes.query_result(f"sum({RUNNING})") is None  # an expression only Prometheus evaluates


def test_grafanas_lookups_leave_the_labels_only_prometheus_knows_unjudged() -> None:
    # a variable's query filtering on job (set by Prometheus, not on the page) still finds the pods' series
    pods = [seen("a", TargetSource.KUBERNETES, namespace="n"), seen("b", TargetSource.KUBERNETES, namespace="n")]
    scrapes = Scrapes(pods, Policy())
    assert scrapes.label_values("pod", f'{RUNNING}{{job="vllm"}}') == ["a", "b"]
    assert scrapes.query_result(f'{RUNNING}{{job="vllm", pod="a"}}') == [
        f'{RUNNING}{{engine="0", model_name="tiny", namespace="n", pod="a"}}']


def test_a_literal_dot_star_is_judged_until_a_variable_is_unknown() -> None:
    # `.*` stands for a variable the run could not know only once one is unknown (judging sets wildcard)
    pod = seen("a", TargetSource.KUBERNETES, namespace="n")
    scrapes = Scrapes([pod], Policy())
    assert scrapes.has(only(f'{RUNNING}{{pod=".*"}}')) is False
    assert scrapes.has(only('up{namespace=".*"}')) is False
    scrapes.wildcard = True
    assert scrapes.has(only(f'{RUNNING}{{pod=".*"}}')) is True
    assert scrapes.has(only('up{namespace=".*"}')) is True


@pytest.mark.parametrize("expr", [f'{RUNNING}{{job="vllm"}}', 'up{job="vllm"}'])
def test_an_unknown_variable_on_a_label_only_prometheus_knows_is_not_unjudged(expr: str) -> None:
    # {job="$job"} with $job unknown is written job=".*": nothing to judge; a literal job still is unjudged
    pod = seen("a", TargetSource.KUBERNETES, namespace="n")
    scrapes = Scrapes([pod], Policy())
    scrapes.wildcard = True
    assert scrapes.has(only(expr.replace('"vllm"', '".*"'))) is True
    assert scrapes.unjudged == {}
    assert scrapes.has(only(expr)) is True
    assert scrapes.unjudged == {("job", "Equal", "vllm"): ["a"]}


def test_a_series_prometheus_makes_is_found_on_any_server() -> None:
    pods = [seen("a", TargetSource.KUBERNETES, namespace="n"), seen("b", TargetSource.KUBERNETES, namespace="n")]
    assert Scrapes(pods, Policy()).has(only('up{pod="b"}')) is True  # the first server's up does not match


def test_the_skipped_matchers_are_left_out_of_the_selection() -> None:
    # a histogram's _count read with the bucket selector's matchers: its le matcher is left out
    histogram = "vllm:e2e_request_latency_seconds"
    after = page({}, extra=f'# TYPE {histogram} histogram\n{histogram}_bucket{{le="+Inf"}} 2\n'
                           f'{histogram}_count 2\n{histogram}_sum 0.5\n')
    pod = Observation(Target("a", "http://x"), after=after)
    scrapes = Scrapes([pod], Policy())
    bucket = only(f'{histogram}_bucket{{le="+Inf"}}')
    assert scrapes.selected(pod, bucket, f"{histogram}_count", skip=("le",)) == [{}]
    assert scrapes.selected(pod, bucket, f"{histogram}_count") == []


# -- Prometheus' answers --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("data", "values"), [
    (vector(sample(1, pod="a"), sample("2.5", pod="b")), [1.0, 2.5]),
    (vector(), []),
    ({"resultType": "scalar", "result": [1700000000, "3"]}, [3.0]),
    ({"resultType": "string", "result": [1700000000, "text"]}, [0.0]),
    ({"resultType": "matrix", "result": [{"metric": {}, "values": [[1, "1"], [2, "4"]]},
                                         {"metric": {}, "values": []}]}, [4.0]),  # the newest value of each series
])
def test_query_values_reads_each_result_type(api: PrometheusAPI, prom: Prometheus, data: dict[str, object],
                                             values: list[float]) -> None:
    api.answer("q", data)
    assert query_values(prom, "q") == values


def test_prometheus_lookups_for_grafanas_variables(api: PrometheusAPI, prom: Prometheus) -> None:
    api.label_values = {"pod": ["a", "b"], "__name__": [RUNNING]}
    api.label_names = ["job", "pod"]
    api.answer("up", vector(sample(1, __name__="up", job="vllm")))
    api.answer("time()", {"resultType": "scalar", "result": [1700000000.5, "1700000000.5"]})
    lookup = PromLookup(prom)
    assert lookup.label_values("pod", RUNNING) == ["a", "b"]
    assert lookup.label_names(None) == ["job", "pod"]
    assert lookup.metric_names() == [RUNNING]
    assert api.seen[0].params == {"start": lookup.start, "match[]": RUNNING}  # within the dashboard's last hour
    assert "match[]" not in api.seen[1].params
    up = lookup.query_result("up")
    # as Grafana's query_result() writes it for a variable's regex
    assert up is not None and len(up) == 1 and up[0].startswith('up{job="vllm"} 1 ')
    assert lookup.query_result("time()") == ["scalar 1700000000.5 1700000000500"]


# -- a reader's verdict ----------------------------------------------------------------------------------------


def test_default_wait_is_two_scrape_intervals_and_five_seconds() -> None:
    assert default_wait(15.0) == 35.0
    assert default_wait(1.0) == 7.0


@pytest.mark.parametrize(("names", "shown", "text"), [
    (["a", "b", "c", "d", "e"], 5, "a, b, c, d, e"),  # exactly as many as shown
    (["a", "b", "c", "d", "e", "f"], 5, "a, b, c, d, e and 1 more"),
    (["a", "b"], 1, "a and 1 more"),
    ([], 5, ""),
])
def test_named(names: list[str], shown: int, text: str) -> None:
    assert named(names, shown) == text


def test_named_shows_five_names_by_default() -> None:
    assert named(["a", "b", "c", "d", "e", "f"]) == "a, b, c, d, e and 1 more"
    assert named(["a", "b", "c", "d", "e"]) == "a, b, c, d, e"


@pytest.mark.parametrize(("kind", "outcome", "panel_verdict", "message"), [
    ("alert", Outcome.FAILED, "no data", "This alert can never fire: its expression returns no series. m"),
    ("alert", Outcome.FAILED, "label mismatch", "This alert can never fire: its expression returns no series. m"),
    ("alert", Outcome.FAILED, "zero", "m"),  # only an empty result means never
    ("alert", Outcome.INCONCLUSIVE, "no data", "m"),
    ("panel", Outcome.FAILED, "no data", "m"),  # an empty panel is just empty
])
def test_a_readers_verdict_says_what_an_empty_result_means_for_it(kind: str, outcome: Outcome, panel_verdict: str,
                                                                   message: str) -> None:
    reader = Reader("rules", "HighLoad", (Query("A", RUNNING),), kind=kind)
    ctx = Context(reader, "here", [], load_catalog(), Policy(), None, None, Scrapes([], Policy()), exprs=[RUNNING],
                  shown={"pod": "a"})
    verdict = ctx.verdict(outcome, panel_verdict, "m", k=1)
    assert (verdict.outcome, verdict.message, verdict.target) == (outcome, message, "rules")
    assert verdict.evidence == {"panel_verdict": panel_verdict, "exprs": [RUNNING], "variables": {"pod": "a"}, "k": 1}
