"""One parsed /metrics page (`Snapshot`) and the change between two of them (`Delta`).

Names are the exposed ones PromQL sees: counters with `_total`, histograms by their base name
(`vllm:e2e_request_latency_seconds`, whose count is `..._count`). `*_created` series are kept aside: they
only serve to recognise a restarted server.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple, cast

from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import parser as _openmetrics
from prometheus_client.parser import text_string_to_metric_families

from . import _fastparse

Labels = Mapping[str, str]


class ExpositionError(ValueError):
    """The text is not Prometheus exposition format."""


TEXT_FORMAT = "text/0.0.4"
# prometheus_client's OpenMetrics parser carries no annotations
_openmetrics_families = cast(Callable[[str], Iterator[Metric]], _openmetrics.text_string_to_metric_families)
# Samples of these OpenMetrics types carry their `_created` inside the family; text format has them apart.
_CREATED_INSIDE = ("counter", "histogram", "summary")


@dataclass(frozen=True)
class Family:
    name: str  # exposed name: counter with _total, histogram base name
    type: str  # counter | gauge | histogram | summary | unknown
    help: str
    label_names: frozenset[str]


class Series(NamedTuple):
    # A tuple rather than a dataclass: a fleet's snapshots hold hundreds of thousands, built at parse time.
    labels: tuple[tuple[str, str], ...]
    value: float

    def matches(self, selector: Labels) -> bool:
        own = dict(self.labels)
        return all(own.get(k) == v for k, v in selector.items())


@dataclass
class Snapshot:
    families: dict[str, Family] = field(default_factory=dict)
    # sample name (e.g. vllm:e2e_request_latency_seconds_count) -> series
    samples: dict[str, list[Series]] = field(default_factory=dict)
    # sample name of the counted series -> labels -> creation timestamp
    created: dict[str, dict[tuple[tuple[str, str], ...], float]] = field(default_factory=dict)
    taken_at: float | None = None  # wall-clock time of the scrape (seconds since the epoch), when known
    # the exposition format the server answered in: TEXT_FORMAT, or "openmetrics/<version>"
    format: str = TEXT_FORMAT
    size: int | None = None  # bytes of the page as served, when scraped

    @classmethod
    def parse(cls, text: str) -> Snapshot:
        """Parse a page; the fast path first, prometheus_client's parser for anything it does not prove."""
        # A page is ~600 new objects that all live on: collecting garbage while building them only scans
        # them again and again (about 10% of a fleet's parse). One collection after the page does it once.
        collecting = gc.isenabled()
        gc.disable()
        try:
            snapshot = cls()
            for name, type_, help_, samples in _fastparse.families(text):
                snapshot._add(name, type_, help_, samples)  # labels already sorted and shared
            return snapshot
        except _fastparse.Unrecognised:
            return cls.parse_reference(text)
        finally:
            if collecting:
                gc.enable()

    @classmethod
    def parse_reference(cls, text: str) -> Snapshot:
        """Parse with prometheus_client's text parser only."""
        snapshot = cls()
        try:
            for metric in text_string_to_metric_families(text):
                snapshot._add(metric.name, metric.type, metric.documentation,
                              [(s.name, _shared(s.labels), float(s.value)) for s in metric.samples])
        except (ValueError, TypeError, IndexError, KeyError) as exc:
            raise ExpositionError(str(exc) or type(exc).__name__) from None
        return snapshot

    @classmethod
    def parse_openmetrics(cls, text: str, version: str = "1.0.0") -> Snapshot:
        """Parse an OpenMetrics page (prometheus_client's OpenMetrics parser) into the Snapshot its text-format
        twin gives: the same names as PromQL sees them, `_created` samples in `created`, exemplars and
        timestamps dropped."""
        snapshot = cls(format=f"openmetrics/{version}")
        try:
            for metric in _openmetrics_families(text):
                name, type_ = metric.name, metric.type
                created: list[tuple[str, tuple[tuple[str, str], ...], float]] = []
                samples: list[tuple[str, tuple[tuple[str, str], ...], float]] = []
                for s in metric.samples:
                    if s.value is None:
                        continue  # a native histogram (OpenMetrics 2.0): text format has no such sample
                    sample = (s.name, _shared(s.labels), float(s.value))
                    inside = type_ in _CREATED_INSIDE and s.name == name + "_created"
                    (created if inside else samples).append(sample)
                # Text format's names for the types it lacks, as prometheus_client's text exposition writes
                # them: an info metric is the gauge `x_info`, a stateset the gauge `x`, a gauge histogram a
                # histogram (whose _gcount/_gsum samples keep their names).
                if type_ == "info":
                    name, type_ = name + "_info", "gauge"
                elif type_ == "stateset":
                    type_ = "gauge"
                elif type_ == "gaugehistogram":
                    type_ = "histogram"
                snapshot._add(name, type_, metric.documentation, samples)
                if created:
                    snapshot._add_created(metric.name, created)
        except (ValueError, TypeError, IndexError, KeyError, AttributeError, UnboundLocalError) as exc:
            # the parser's checks raise ValueError; a few malformed lines trip it up in other ways
            raise ExpositionError(str(exc) or type(exc).__name__) from None
        return snapshot

    def _add_created(self, base: str, samples: Iterable[tuple[str, tuple[tuple[str, str], ...], float]]) -> None:
        for _, labels, value in samples:
            # the created timestamp belongs to every sample of the base family's series
            key = tuple((k, v) for k, v in labels if k not in ("le", "quantile"))
            self.created.setdefault(base, {})[key] = float(value)

    def _add(self, name: str, type_: str, help_: str,
             samples: Iterable[tuple[str, tuple[tuple[str, str], ...], float]]) -> None:
        if name.endswith("_created") and type_ in ("gauge", "unknown"):
            # text format: `x_created` is a gauge family of its own, dating the series of `x`
            self._add_created(name[: -len("_created")], samples)
            return
        exposed = name + "_total" if type_ == "counter" else name
        # The hot loop of a fleet's parse: label sets are shared objects (deduplicated by identity), samples
        # of one name come in runs, and a Series is built without NamedTuple's Python-level __new__.
        label_sets: dict[int, tuple[tuple[str, str], ...]] = {}
        by_name = self.samples
        make = tuple.__new__
        current_name, current = "", []
        for sample_name, labels, value in samples:
            label_sets[id(labels)] = labels
            if sample_name != current_name:
                current_name, current = sample_name, by_name.setdefault(sample_name, [])
            current.append(make(Series, (labels, value)))
        label_names = {key for labels in label_sets.values() for key, _ in labels} - {"le", "quantile"}
        previous = self.families.get(exposed)
        if previous is not None:
            label_names |= previous.label_names
        self.families[exposed] = Family(exposed, type_, help_, frozenset(label_names))

    # -- questions a test asks ------------------------------------------------------------------

    def names(self) -> set[str]:
        """Exposed family names on the page."""
        return set(self.families)

    def family(self, name: str) -> Family | None:
        """The family by exposed name; a counter may also be asked for without `_total`."""
        return self.families.get(name) or self.families.get(name + "_total")

    def series(self, name: str, labels: Labels | None = None) -> list[Series]:
        """Series of a sample name, or of a family (a histogram's `_count`), matching `labels`."""
        series = self.samples.get(self._counted_sample(name), [])
        return [s for s in series if s.matches(labels)] if labels else list(series)

    def value(self, name: str, labels: Labels | None = None) -> float | None:
        """Sum over the matching series (a histogram: its count), or None when none matches."""
        series = self.series(name, labels)
        if not series:
            return None
        return math.fsum(s.value for s in series)

    def info(self, name: str) -> dict[str, str] | None:
        """Labels of an info metric (its first series), e.g. `vllm:cache_config_info`."""
        series = self.samples.get(name)
        if not series:
            return None
        return dict(series[0].labels)

    def _counted_sample(self, name: str) -> str:
        family = self.family(name)
        if family is not None and family.type in ("histogram", "summary"):
            return family.name + "_count"
        if family is not None:
            return family.name
        return name


class Decrease(NamedTuple):
    """A series of a counter (or a histogram's count) that went down with no sign of a restart."""

    labels: tuple[tuple[str, str], ...]
    before: float
    after: float


@dataclass(frozen=True)
class Change:
    before: float | None
    after: float | None
    increase: float | None  # None when the series is missing on either side
    reset: bool  # the server restarted between the snapshots (its start time or a series' _created changed)
    # Series that went down while nothing says the server restarted: counters are monotonic, so this breaks
    # the contract (rate() reads it as a reset).
    decreases: tuple[Decrease, ...] = ()


# How the two scrapes relate, from process_start_time_seconds and the time of the first scrape.
SAME_PROCESS, RESTARTED, OTHER_PROCESS = "same process", "restarted", "another process"
_CLOCK_SLACK = 5.0  # seconds of clock difference between the suite and the server that are not a finding


class Delta:
    """What changed between two snapshots of one server."""

    def __init__(self, before: Snapshot, after: Snapshot) -> None:
        self.before = before
        self.after = after
        self.process = _process(before, after)
        self.restarted = self.process != SAME_PROCESS
        # Any sign of a restart on the page: the start time, or a series whose _created changed. A counter
        # that then moved too little may have lost counts to the restart, so nothing can be concluded from it.
        self.restart_seen = self.restarted or any(
            stamp != before.created.get(base, {}).get(labels, stamp)
            for base, stamps in after.created.items() for labels, stamp in stamps.items()
        )

    def change(self, name: str, labels: Labels | None = None) -> Change:
        before_series = {s.labels: s.value for s in self.before.series(name, labels)}
        after_series = self.after.series(name, labels)
        if not before_series and not after_series:
            return Change(None, None, None, False)
        before_total = math.fsum(before_series.values()) if before_series else None
        after_total = math.fsum(s.value for s in after_series) if after_series else None
        if not after_series:
            return Change(before_total, None, None, False)
        sample = self.after._counted_sample(name)
        base = _created_base(sample)
        increase = 0.0
        any_reset = False
        decreases: list[Decrease] = []
        for series in after_series:
            previous = before_series.get(series.labels, 0.0)
            created_before = self.before.created.get(base, {}).get(series.labels)
            created_after = self.after.created.get(base, {}).get(series.labels)
            reset = self.restarted or (
                created_before is not None and created_after is not None and created_after != created_before
            )
            if not reset and series.value < previous:
                decreases.append(Decrease(series.labels, previous, series.value))
                continue  # no increase to count: the contract is broken, the check says so
            any_reset = any_reset or reset
            # After a reset the counter restarted from 0, so everything it shows is new.
            increase += series.value if reset else series.value - previous
        return Change(before_total, after_total, increase, any_reset, tuple(decreases))

    def increase(self, name: str, labels: Labels | None = None) -> float:
        """How much a counter (or a histogram's count) grew; 0.0 when the series does not exist."""
        return self.change(name, labels).increase or 0.0


def _process(before: Snapshot, after: Snapshot) -> str:
    """Whether the second scrape reached the same process, a restarted one, or another one altogether (a URL
    load-balanced over several servers: a process that already ran before the first scrape, or an older one)."""
    start_before = before.value("process_start_time_seconds")
    start_after = after.value("process_start_time_seconds")
    if start_before is None or start_after is None or start_before == start_after:
        return SAME_PROCESS
    if start_after < start_before:
        return OTHER_PROCESS
    if before.taken_at is not None and start_after < before.taken_at - _CLOCK_SLACK:
        return OTHER_PROCESS
    return RESTARTED


def _created_base(sample_name: str) -> str:
    """The `_created` family that dates a sample: counters and histograms drop their suffix."""
    for suffix in ("_total", "_count", "_sum", "_bucket"):
        if sample_name.endswith(suffix):
            return sample_name[: -len(suffix)]
    return sample_name


def _shared(labels: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return _fastparse.shared(tuple(sorted(labels.items())))
