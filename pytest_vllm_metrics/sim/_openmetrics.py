"""Prometheus text 0.0.4 → OpenMetrics 1.0, with metric names kept as they are.

What some vLLM frontends and proxies answer whatever the Accept header asks. Not prometheus_client's own
OpenMetrics exposition: since 0.23 it rewrites `vllm:` to `vllm_` in sample names (client_python issue
#1177), which real vLLM pages never do. Here a page's families are read with prometheus_client's text parser
and written again: counter families named without `_total`, each `x_created` gauge family folded into `x`
(each series' `_created` right after that series' samples, as OpenMetrics groups them), `# EOF` at the end.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from prometheus_client import utils
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

# prometheus_client's number formatting (the shortest text that reads back as the same float); unannotated
_number = cast(Callable[[float], str], utils.floatToGoString)

CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"
_WITH_CREATED = ("counter", "histogram", "summary")


def to_openmetrics(text: str) -> str:
    """The OpenMetrics page with the same families, series and values as a text-format page."""
    families = list(text_string_to_metric_families(text))
    by_name = {family.name: family for family in families}
    created: dict[str, Metric] = {}
    for family in families:
        dating = by_name.get(family.name + "_created")
        if family.type in _WITH_CREATED and dating is not None and dating.type in ("gauge", "unknown"):
            created[family.name] = dating
    folded = {id(dating) for dating in created.values()}
    lines: list[str] = []
    for family in families:
        if id(family) in folded:
            continue
        if family.documentation:  # OpenMetrics has no empty HELP line
            lines.append(f"# HELP {family.name} {_escape(family.documentation)}")
        lines.append(f"# TYPE {family.name} {family.type}")  # the parser already says "unknown" for untyped
        lines.extend(_sample(sample) for sample in _grouped(family, created.get(family.name)))
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def _grouped(family: Metric, dating: Metric | None) -> list[Sample]:
    """The family's samples, each series' (label set without le/quantile) together, its `_created` last:
    OpenMetrics refuses a series whose samples are interleaved with another's."""
    groups: dict[tuple[tuple[str, str], ...], list[Sample]] = {}
    for sample in family.samples:
        groups.setdefault(_series(sample), []).append(sample)
    for sample in dating.samples if dating else ():
        groups.setdefault(_series(sample), []).append(sample)
    return [sample for group in groups.values() for sample in group]


def _series(sample: Sample) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in sample.labels.items() if k not in ("le", "quantile")))


def _sample(sample: Sample) -> str:
    labels = ",".join(f'{k}="{_escape(v, quote=True)}"' for k, v in sample.labels.items())
    line = f"{sample.name}{{{labels}}}" if labels else sample.name
    line += f" {_number(sample.value)}"
    if sample.timestamp is not None:
        line += f" {sample.timestamp}"  # seconds in both: the text parser already divided milliseconds
    return line


def _escape(text: str, quote: bool = False) -> str:
    text = text.replace("\\", "\\\\").replace("\n", "\\n")
    return text.replace('"', '\\"') if quote else text
