"""PromQL analysis by the real parser (promql.py): the selectors of an expression, with their matchers."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pytest_vllm_metrics import promql
from pytest_vllm_metrics.promql import Judged, Keep, Selector, judge, kept_labels, parse, selector_of, selectors


def test_selectors_keep_matchers_and_the_name_matcher() -> None:
    (named, by_name) = selectors('vllm:a{model_name=~"t.*", engine!="1"} + {__name__="vllm:b", pod="p"}')
    assert (named.metric, named.matchers) == ("vllm:a", (("model_name", "Re", "t.*"), ("engine", "NotEqual", "1")))
    assert named.shown == 'vllm:a{engine!="1",model_name=~"t.*"}'
    assert (by_name.metric, by_name.matchers) == ("vllm:b", (("pod", "Equal", "p"),))


def test_selectors_come_from_the_parser() -> None:
    found = selectors('sum by (pod) (rate(vllm:a_total{x="1", y=~"2"}[5m])) / on(pod) {__name__="vllm:b"}')
    assert [(s.metric, s.matchers) for s in found] == [
        ("vllm:a_total", (("x", "Equal", "1"), ("y", "Re", "2"))), ("vllm:b", ())]


# -- whether an expression returns data, given which selectors have series ----------------------------------------


def _judge(expr: str, *with_data: str) -> Judged:
    return judge(parse(expr), lambda s: s.metric in with_data)


def S(metric: str, *matchers: tuple[str, str, str]) -> Selector:
    return Selector(metric, matchers)


@pytest.mark.parametrize(("expr", "with_data", "judged"), [
    ("a", ("a",), Judged(True)),
    ('a{x="1"}', (), Judged(False, [S("a", ("x", "Equal", "1"))])),
    ("rate(a[5m])", (), Judged(False, [S("a")])),  # a range: its selector's series
    ("sum by (pod) (rate(a[5m]))", ("a",), Judged(True)),
    ("-a", (), Judged(False, [S("a")])), ("(a)", (), Judged(False, [S("a")])),
    ("max_over_time(a[5m:1m])", (), Judged(False, [S("a")])),  # a subquery
    ("a / b", ("a",), Judged(False, [S("b")])),  # both sides needed
    ("a / b", (), Judged(False, [S("a"), S("b")])),
    ("a or b", ("a",), Judged(True, notes=[S("b")])),  # the missing side of an `or` is only a note
    ("a or b", ("b",), Judged(True, notes=[S("a")])),
    ("a or b", (), Judged(False, [S("a"), S("b")])),
    ("a unless b", ("a",), Judged(True)),  # `unless` returns its left side whatever the right has
    ("a unless b", ("b",), Judged(False, [S("a")])),
    ("a unless (b or c)", ("a", "b"), Judged(True, notes=[S("c")])),
    ("absent(a)", (), Judged(True)),  # absent() of nothing returns 1
    ("absent(a)", ("a",), Judged(False, absent=[S("a")])),
    ("absent(a or b)", (), Judged(True)),
    ("absent(a or b)", ("a",), Judged(False, absent=[S("a"), S("b")])),
    ("absent_over_time(a[5m]) or b", ("a",), Judged(False, [S("b")], absent=[S("a")])),  # neither side returns
    ("absent(a) * b", ("a", "b"), Judged(False, absent=[S("a")])),
    ("(absent(a) or b) unless c", ("b",), Judged(True)),  # an empty right side of `unless` takes nothing away
    ("(a or b) / c", ("a", "c"), Judged(True, notes=[S("b")])),
    ("1", (), Judged(True)), ("vector(1)", (), Judged(True)), ("time() - 5", (), Judged(True)),
    ('label_replace(a, "x", "$1", "y", "(.*)")', (), Judged(False, [S("a")])),  # a string argument has no selector
])
def test_an_expression_returns_data_as_prometheus_would(expr: str, with_data: tuple[str, ...],
                                                        judged: Judged) -> None:
    assert _judge(expr, *with_data) == judged


# -- which labels of each selector's series reach the result ------------------------------------------------------


def _kept(expr: str) -> list[tuple[str, Keep]]:
    return [(s.metric, keep) for s, keep in kept_labels(parse(expr))]


P, M = frozenset({"pod"}), frozenset({"model_name"})


@pytest.mark.parametrize(("expr", "kept"), [
    ("rate(a[5m])", [("a", Keep())]),  # no aggregation: every label
    ("sum by (pod) (rate(a[5m]))", [("a", Keep(only=P))]),
    ("sum(a)", [("a", Keep(only=frozenset()))]),  # sum with no `by`: no label at all
    ("sum without (pod) (a)", [("a", Keep(dropped=P))]),
    ("sum by (pod, model_name) (sum by (pod) (a))", [("a", Keep(only=P))]),  # the inner one keeps less
    ("sum without (pod) (sum without (model_name) (a))", [("a", Keep(dropped=P | M))]),
    ("sum by (pod) (sum without (pod) (a))", [("a", Keep(only=P, dropped=P))]),
    ("sum without (pod) (sum by (pod, model_name) (a))", [("a", Keep(only=P | M, dropped=P))]),
    ("sum by (pod) (sum by (model_name) (a))", [("a", Keep(only=frozenset()))]),  # nothing both keep
    ("topk(3, sum by (pod) (a))", [("a", Keep(only=P))]),  # topk picks series: their labels stay
    ("bottomk(1, a)", [("a", Keep())]), ("limitk(2, a)", [("a", Keep())]), ("limit_ratio(0.5, a)", [("a", Keep())]),
    ("max by (pod) (a)", [("a", Keep(only=P))]),
    ("scalar(a)", [("a", Keep(only=frozenset()))]), ("absent(a)", [("a", Keep(only=frozenset()))]),
    ("vector(scalar(a))", [("a", Keep(only=frozenset()))]),
    ("rate(a[5m]) / on (pod) rate(b[5m])", [("a", Keep(only=P)), ("b", Keep(only=P))]),
    ("a / ignoring (model_name) b", [("a", Keep(dropped=M)), ("b", Keep(dropped=M))]),
    ("a / on (pod) group_left b", [("a", Keep()), ("b", Keep())]),  # many-to-one keeps the many side's labels
    ("a / b", [("a", Keep()), ("b", Keep())]),
    ("sum(a) / on (pod) b", [("a", Keep(only=frozenset())), ("b", Keep(only=P))]),
    ("-(a)", [("a", Keep())]), ("max_over_time(sum by (pod) (a)[5m:1m])", [("a", Keep(only=P))]),
])
def test_the_labels_that_reach_the_result(expr: str, kept: list[tuple[str, Keep]]) -> None:
    assert _kept(expr) == kept


def test_a_label_is_kept_only_where_no_aggregation_leaves_it_out() -> None:
    assert Keep().keeps("pod") and Keep(only=P).keeps("pod") and not Keep(only=M).keeps("pod")
    assert not Keep(dropped=P).keeps("pod") and Keep(dropped=M).keeps("pod")
    assert not Keep(only=P, dropped=P).keeps("pod")


@pytest.mark.parametrize(("delta", "text"), [
    (timedelta(hours=2), "2h"), (timedelta(minutes=90), "90m"), (timedelta(seconds=150), "150s"),
    (timedelta(minutes=1), "1m"), (timedelta(seconds=1), "1s"), (timedelta(milliseconds=1500), "1500ms"),
])
def test_a_duration_in_its_largest_whole_unit(delta: timedelta, text: str) -> None:
    assert promql.duration(delta) == text


def test_range_selectors_and_vector_selectors_are_found_in_a_whole_expression() -> None:
    node = parse("sum(rate(a[5m])) / sum(b) + rate(c[1m])")
    assert [selector_of(n.vector_selector).metric for n in promql.matrices(node)] == ["a", "c"]
    assert [selector_of(n).metric for n in promql.vector_selectors(node)] == ["a", "b", "c"]
    assert selector_of(parse('{__name__="vllm:b", pod="p"}')).shown == '{__name__="vllm:b",pod="p"}'
    assert S("vllm:a").shown == "vllm:a"  # a selector built without its text shows its name
