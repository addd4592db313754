"""PromQL analysis of a reader's expression, by the real parser (promql-parser): its selectors, whether it
returns data given which selectors have series, and which labels of each selector's series survive to the
result (whether the reader draws a line per pod or aggregates the fleet).

Nothing here knows about observations or Prometheus: the callers say which selectors have series.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import promql_parser as p

__all__ = ["Judged", "Keep", "Selector", "duration", "judge", "kept_labels", "matrices", "parse", "selector_of",
           "selectors", "vector_selectors"]

_ABSENT = ("absent", "absent_over_time")
# Aggregations that pick series rather than combine them: their result keeps each picked series' labels.
_PICKING = ("topk", "bottomk", "limitk", "limit_ratio")
# Functions whose result has no labels at all (a scalar, or a vector built from one).
_LABELLESS = ("scalar", "vector", "time", "absent", "absent_over_time")


def parse(expr: str) -> Any:
    """The expression's syntax tree (ValueError or RuntimeError when it does not parse)."""
    return p.parse(expr)


@dataclass(frozen=True)
class Selector:
    metric: str
    matchers: tuple[tuple[str, str, str], ...]  # (label, op, value); op is Equal, NotEqual, Re or NotRe
    text: str = field(default="", compare=False)  # the selector as PromQL, matchers included

    @property
    def shown(self) -> str:
        return self.text or self.metric


def selector_of(node: Any) -> Selector:
    matchers = tuple((m.name, str(m.op).rsplit(".", 1)[-1], m.value) for m in node.matchers.matchers)
    name = node.name or next((v for label, _, v in matchers if label == "__name__"), "")
    return Selector(name, tuple(m for m in matchers if m[0] != "__name__"), node.prettify())


def selectors(expr: str) -> list[Selector]:
    """Every vector selector of an expression, by the PromQL parser (ValueError when it does not parse)."""
    return [selector_of(node) for node in vector_selectors(p.parse(expr))]


def vector_selectors(node: Any) -> list[Any]:
    found: list[Any] = []
    p.walk(node, lambda n: found.append(n) if isinstance(n, p.VectorSelector) else None)
    return found


def matrices(node: Any) -> list[Any]:
    found: list[Any] = []
    p.walk(node, lambda n: found.append(n) if isinstance(n, p.MatrixSelector) else None)
    return found


def duration(delta: timedelta) -> str:
    ms = int(delta.total_seconds() * 1000)
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


# -- does it return data ------------------------------------------------------------------------------------


@dataclass
class Judged:
    """What an expression returns: data or not, the selectors that empty it, and the empty ones that do not
    matter (the missing side of an `or` whose other side has data)."""

    data: bool
    empty: list[Selector] = field(default_factory=list)
    notes: list[Selector] = field(default_factory=list)
    absent: list[Selector] = field(default_factory=list)  # absent(x) is empty because x has data


def judge(node: Any, has: Callable[[Selector], bool]) -> Judged:
    """Whether the expression returns data when the selectors for which `has` is true have series."""
    if isinstance(node, p.VectorSelector):
        selector = selector_of(node)
        return Judged(True) if has(selector) else Judged(False, [selector])
    if isinstance(node, p.MatrixSelector):
        return judge(node.vector_selector, has)
    if isinstance(node, p.Call):
        name = node.func.name
        args = [judge(a, has) for a in node.args]
        if name in _ABSENT:
            inner = args[0]  # the parser takes absent() with exactly one argument
            found = [selector_of(n) for n in vector_selectors(node.args[0])]
            return Judged(True, notes=inner.notes) if not inner.data else Judged(False, absent=found)
        # scalar(), vector(scalar(...)) and the like return NaN when their argument is empty: a panel of NaN
        # shows no data either, so every function is judged by its arguments (time(), vector(1): no selector).
        return _both(args)
    if isinstance(node, p.AggregateExpr):
        return judge(node.expr, has)
    if isinstance(node, p.BinaryExpr):
        lhs, rhs = judge(node.lhs, has), judge(node.rhs, has)
        op = str(node.op).lower()
        if op == "or":
            if lhs.data or rhs.data:
                empty = [s for side in (lhs, rhs) if not side.data for s in side.empty]
                return Judged(True, notes=lhs.notes + rhs.notes + empty)
            return _both([lhs, rhs])
        if op == "unless":
            return Judged(lhs.data, lhs.empty, lhs.notes + rhs.notes, lhs.absent)
        return _both([lhs, rhs])
    if isinstance(node, (p.ParenExpr, p.UnaryExpr, p.SubqueryExpr)):
        return judge(node.expr, has)
    return Judged(True)  # number and string literals


def _both(parts: list[Judged]) -> Judged:
    return Judged(all(j.data for j in parts), [s for j in parts for s in j.empty],
                  [s for j in parts for s in j.notes], [s for j in parts for s in j.absent])


# -- which labels reach the result --------------------------------------------------------------------------


@dataclass(frozen=True)
class Keep:
    """The labels of a selector's series that survive to the expression's result: every label (no aggregation
    above the selector), at most `only` (`sum by (...)`, or `sum(...)` with none), never those `dropped`
    (`sum without (...)`, `ignoring (...)`)."""

    only: frozenset[str] | None = None
    dropped: frozenset[str] = frozenset()

    def keeps(self, label: str) -> bool:
        return (self.only is None or label in self.only) and label not in self.dropped

    def by(self, labels: frozenset[str]) -> Keep:
        return Keep(labels if self.only is None else self.only & labels, self.dropped)

    def without(self, labels: frozenset[str]) -> Keep:
        return Keep(self.only, self.dropped | labels)


def kept_labels(node: Any) -> list[tuple[Selector, Keep]]:
    """Each selector of the expression with the labels of its series that reach the result. An aggregation
    without `by` a label (or `without` it), and a one-to-one match `on` labels without it, drop the label; a
    selection (`topk`) keeps every label of the series it picks."""
    found: list[tuple[Selector, Keep]] = []
    _walk_kept(node, Keep(), found)
    return found


def _walk_kept(node: Any, keep: Keep, found: list[tuple[Selector, Keep]]) -> None:
    if isinstance(node, p.VectorSelector):
        found.append((selector_of(node), keep))
    elif isinstance(node, p.MatrixSelector):
        _walk_kept(node.vector_selector, keep, found)
    elif isinstance(node, p.AggregateExpr):
        op = str(node.op).lower()
        if op not in _PICKING:
            grouping = node.modifier
            labels = frozenset(grouping.labels) if grouping is not None else frozenset()
            without = grouping is not None and str(grouping.type).endswith("Without")
            keep = keep.without(labels) if without else keep.by(labels)
        _walk_kept(node.expr, keep, found)
    elif isinstance(node, p.Call):
        inner = keep.by(frozenset()) if node.func.name in _LABELLESS else keep
        for arg in node.args:
            _walk_kept(arg, inner, found)
    elif isinstance(node, p.BinaryExpr):
        side = keep
        binary = node.modifier
        matching = binary.matching if binary is not None else None
        if binary is not None and matching is not None and str(binary.card).endswith("OneToOne"):
            labels = frozenset(matching.labels)
            side = keep.without(labels) if str(matching.type).endswith("Exclude") else keep.by(labels)
        _walk_kept(node.lhs, side, found)
        _walk_kept(node.rhs, side, found)
    elif isinstance(node, (p.ParenExpr, p.UnaryExpr, p.SubqueryExpr)):
        _walk_kept(node.expr, keep, found)
