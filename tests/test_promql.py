"""PromQL analysis by the real parser (promql.py): the selectors of an expression, with their matchers."""

from __future__ import annotations

from pytest_vllm_metrics.promql import selectors


def test_selectors_keep_matchers_and_the_name_matcher() -> None:
    (named, by_name) = selectors('vllm:a{model_name=~"t.*", engine!="1"} + {__name__="vllm:b", pod="p"}')
    assert (named.metric, named.matchers) == ("vllm:a", (("model_name", "Re", "t.*"), ("engine", "NotEqual", "1")))
    assert named.shown == 'vllm:a{engine!="1",model_name=~"t.*"}'
    assert (by_name.metric, by_name.matchers) == ("vllm:b", (("pod", "Equal", "p"),))


def test_selectors_come_from_the_parser() -> None:
    found = selectors('sum by (pod) (rate(vllm:a_total{x="1", y=~"2"}[5m])) / on(pod) {__name__="vllm:b"}')
    assert [(s.metric, s.matchers) for s in found] == [
        ("vllm:a_total", (("x", "Equal", "1"), ("y", "Re", "2"))), ("vllm:b", ())]
