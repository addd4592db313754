"""One parsed /metrics page (`Snapshot`) and the change between two of them (`Delta`).

Names are the exposed ones PromQL sees: counters with `_total`, histograms by their base name
(`vllm:e2e_request_latency_seconds`, whose count is `..._count`). `*_created` series are kept aside: they
only serve to recognise a restarted server.
"""

from __future__ import annotations

import gc
import math
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple, TypeVar, cast

from . import _fastparse

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

Labels = Mapping[str, str]
LabelSet = tuple[tuple[str, str], ...]  # sorted by name
T = TypeVar("T")


class ExpositionError(ValueError):
    """The text is not Prometheus exposition format."""


TEXT_FORMAT = "text/0.0.4"
# prometheus_client's OpenMetrics parser carries no annotations
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


class _Samples(Mapping[str, list[Series]]):
    """A page's series by sample name, built from its layout and values when asked for."""

    __slots__ = ("_layout", "_values")

    def __init__(self, layout: _Layout, values: Sequence[float]) -> None:
        self._layout, self._values = layout, values

    def __getitem__(self, name: str) -> list[Series]:
        labels, values, make = self._layout.labels, self._values, tuple.__new__
        return [make(Series, (labels[position], values[position])) for position in self._layout.index[name]]

    def __contains__(self, name: object) -> bool:
        return name in self._layout.index

    def __iter__(self) -> Iterator[str]:
        return iter(self._layout.index)

    def __len__(self) -> int:
        return len(self._layout.index)


class _Layout:
    """What a page is made of apart from its values: families, sample names, label sets, `_created` series.
    A fleet's pages differ only in their values, so one layout serves them all and a snapshot keeps just its
    values (8 bytes each): 1,000 pods' two scrapes hold ~15 MB instead of ~230 MB."""

    __slots__ = ("created", "families", "index", "labels", "memo")

    def __init__(self, families: dict[str, Family], index: dict[str, tuple[int, ...]],
                 labels: tuple[LabelSet, ...], created: dict[str, dict[LabelSet, int]]) -> None:
        self.families = families  # exposed name -> family
        self.index = index  # sample name -> the positions of its series among the values, in page order
        self.labels = labels  # position -> the labels of the series there
        self.created = created  # base name -> labels -> position of its `_created` stamp
        self.memo: dict[Callable[..., object], object] = {}  # what Snapshot.per_structure computed of it

    def __getstate__(self) -> tuple[object, ...]:
        return self.families, self.index, self.labels, self.created  # the memo is computed again where needed

    def __setstate__(self, state: tuple[object, ...]) -> None:
        self.families, self.index, self.labels, self.created = state  # type: ignore[assignment]
        self.memo = {}


_EMPTY = _Layout({}, {}, (), {})
# page structure -> its layout; keyed by the label sets' identities, which the layout keeps alive (so an identity
# is never reused while its key is here); bounded for a fleet whose pages all differ
_LAYOUTS: dict[tuple[object, ...], _Layout] = {}
_LAYOUTS_BOUND = 256


class _Builder:
    """Collects a page's families and samples in order, then shares the layout of an identical page."""

    def __init__(self) -> None:
        self.families: list[tuple[str, str, str, int]] = []  # exposed name, type, help, end position
        self.names: list[str] = []
        self.labels: list[LabelSet] = []
        self.values: list[float] = []
        self.created: list[tuple[str, LabelSet]] = []
        self.stamps: list[float] = []

    def add(self, name: str, type_: str, help_: str, samples: Iterable[tuple[str, LabelSet, float]]) -> None:
        if name.endswith("_created") and type_ in ("gauge", "unknown"):
            # text format: `x_created` is a gauge family of its own, dating the series of `x`
            self.add_created(name[: -len("_created")], samples)
            return
        names, labels, values = self.names, self.labels, self.values
        for sample_name, sample_labels, value in samples:  # the hot loop of a fleet's parse
            names.append(sample_name)
            labels.append(sample_labels)
            values.append(value)
        self.families.append((name + "_total" if type_ == "counter" else name, type_, help_, len(values)))

    def add_created(self, base: str, samples: Iterable[tuple[str, LabelSet, float]]) -> None:
        for _, labels, value in samples:
            # the created timestamp belongs to every sample of the base family's series
            key = _fastparse.shared(tuple((k, v) for k, v in labels if k not in ("le", "quantile")))
            self.created.append((base, key))
            self.stamps.append(float(value))

    def snapshot(self, format: str) -> Snapshot:
        key = (tuple(self.families), tuple(self.names), tuple(map(id, self.labels)),
               tuple((base, id(labels)) for base, labels in self.created))
        layout = _LAYOUTS.get(key)
        if layout is None:
            layout = self._layout()
            if len(_LAYOUTS) < _LAYOUTS_BOUND:
                _LAYOUTS[key] = layout
        return Snapshot(layout, array("d", self.values + self.stamps), format=format)

    def _layout(self) -> _Layout:
        families: dict[str, Family] = {}
        index: dict[str, list[int]] = {}
        start = 0
        for exposed, type_, help_, end in self.families:
            label_names = {key for labels in self.labels[start:end] for key, _ in labels} - {"le", "quantile"}
            previous = families.get(exposed)
            if previous is not None:
                label_names |= previous.label_names
            families[exposed] = Family(exposed, type_, help_, frozenset(label_names))
            for position in range(start, end):
                index.setdefault(self.names[position], []).append(position)
            start = end
        created: dict[str, dict[LabelSet, int]] = {}
        for position, (base, labels) in enumerate(self.created, start=len(self.values)):
            created.setdefault(base, {})[labels] = position
        return _Layout(families, {name: tuple(positions) for name, positions in index.items()}, tuple(self.labels),
                       created)


class Snapshot:
    """One parsed page: its layout (shared with every page of the same structure) and its own values."""

    __slots__ = ("_layout", "_values", "format", "size", "taken_at")

    def __init__(self, layout: _Layout = _EMPTY, values: Sequence[float] = (), *, format: str = TEXT_FORMAT) -> None:
        self._layout = layout
        self._values = values
        self.taken_at: float | None = None  # wall-clock time of the scrape (seconds since the epoch), when known
        # the exposition format the server answered in: TEXT_FORMAT, or "openmetrics/<version>"
        self.format = format
        self.size: int | None = None  # bytes of the page as served, when scraped

    @property
    def families(self) -> Mapping[str, Family]:
        """Exposed name -> family."""
        return self._layout.families

    @property
    def samples(self) -> Mapping[str, list[Series]]:
        """Sample name (e.g. vllm:e2e_request_latency_seconds_count) -> its series, in page order."""
        return _Samples(self._layout, self._values)

    @property
    def created(self) -> Mapping[str, Mapping[LabelSet, float]]:
        """Base name of a counted family -> labels -> the series' creation timestamp."""
        return {base: {labels: self._values[position] for labels, position in stamps.items()}
                for base, stamps in self._layout.created.items()}

    def per_structure(self, compute: Callable[[Mapping[str, Family], Mapping[str, list[LabelSet]]], T]) -> T:
        """compute(families, sample name -> its series' label sets): what depends on a page's names and labels and
        not on its values, computed once for every page of the same structure (a fleet's pages share one).
        `compute` keys the memo: pass a module-level function."""
        memo = self._layout.memo
        if compute not in memo:
            labels = self._layout.labels
            memo[compute] = compute(self._layout.families, {
                name: [labels[position] for position in positions] for name, positions in self._layout.index.items()})
        return cast(T, memo[compute])

    def created_at(self, base: str, labels: LabelSet) -> float | None:
        """The creation timestamp of one series of `base`, if the page dates it."""
        position = self._layout.created.get(base, {}).get(labels)
        return None if position is None else self._values[position]

    def __getstate__(self) -> tuple[object, ...]:
        return self._layout, self._values, self.taken_at, self.format, self.size

    def __setstate__(self, state: tuple[object, ...]) -> None:
        self._layout, self._values, self.taken_at, self.format, self.size = state  # type: ignore[assignment]

    @classmethod
    def parse(cls, text: str) -> Snapshot:
        """Parse a page; the fast path first, prometheus_client's parser for anything it does not prove."""
        # A page is many new objects: collecting garbage while building them only scans them again and again
        # (about 10% of a fleet's parse). One collection after the page does it once.
        collecting = gc.isenabled()
        gc.disable()
        try:
            page = _Builder()
            for name, type_, help_, samples in _fastparse.families(text):
                page.add(name, type_, help_, samples)  # labels already sorted and shared
            return page.snapshot(TEXT_FORMAT)
        except _fastparse.Unrecognised:
            return cls.parse_reference(text)
        finally:
            if collecting:
                gc.enable()

    @classmethod
    def parse_reference(cls, text: str) -> Snapshot:
        """Parse with prometheus_client's text parser only."""
        # prometheus_client's parsers load only when a page needs them (~30 ms of every process' start otherwise)
        from prometheus_client.parser import text_string_to_metric_families

        page = _Builder()
        try:
            for metric in text_string_to_metric_families(text):
                page.add(metric.name, metric.type, metric.documentation,
                         [(s.name, _shared(s.labels), float(s.value)) for s in metric.samples])
        except (ValueError, TypeError, IndexError, KeyError) as exc:
            raise ExpositionError(str(exc) or type(exc).__name__) from None
        return page.snapshot(TEXT_FORMAT)

    @classmethod
    def parse_openmetrics(cls, text: str, version: str = "1.0.0") -> Snapshot:
        """Parse an OpenMetrics page (prometheus_client's OpenMetrics parser) into the Snapshot its text-format
        twin gives: the same names as PromQL sees them, `_created` samples in `created`, exemplars and
        timestamps dropped."""
        from prometheus_client.openmetrics import parser  # as parse_reference's: loaded when needed

        openmetrics_families = cast(Callable[[str], Iterator["Metric"]], parser.text_string_to_metric_families)
        page = _Builder()
        try:
            for metric in openmetrics_families(text):
                name, type_ = metric.name, metric.type
                created: list[tuple[str, LabelSet, float]] = []
                samples: list[tuple[str, LabelSet, float]] = []
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
                page.add(name, type_, metric.documentation, samples)
                if created:
                    page.add_created(metric.name, created)
        except (ValueError, TypeError, IndexError, KeyError, AttributeError, UnboundLocalError) as exc:
            # the parser's checks raise ValueError; a few malformed lines trip it up in other ways
            raise ExpositionError(str(exc) or type(exc).__name__) from None
        return page.snapshot(f"openmetrics/{version}")

    # -- questions a test asks ------------------------------------------------------------------

    def names(self) -> set[str]:
        """Exposed family names on the page."""
        return set(self.families)

    def family(self, name: str) -> Family | None:
        """The family by exposed name; a counter may also be asked for without `_total`."""
        return self.families.get(name) or self.families.get(name + "_total")

    def series(self, name: str, labels: Labels | None = None) -> list[Series]:
        """Series of a sample name, or of a family (a histogram's `_count`), matching `labels`."""
        name = self._counted_sample(name)
        series = self.samples[name] if name in self._layout.index else []
        return [s for s in series if s.matches(labels)] if labels else series

    def has_series(self, name: str) -> bool:
        """Whether `series(name)` has any: asked of every server for every family, without making them."""
        return bool(self._layout.index.get(self._counted_sample(name)))

    def value(self, name: str, labels: Labels | None = None) -> float | None:
        """Sum over the matching series (a histogram: its count), or None when none matches."""
        series = self.series(name, labels)
        if not series:
            return None
        return math.fsum(s.value for s in series)

    def info(self, name: str) -> dict[str, str] | None:
        """Labels of an info metric (its first series), e.g. `vllm:cache_config_info`."""
        positions = self._layout.index.get(name)
        return dict(self._layout.labels[positions[0]]) if positions else None

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
            stamp != _or(before.created_at(base, labels), stamp)
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
        increase = 0.0
        any_reset = False
        decreases: list[Decrease] = []
        for series, grew, reset in self._grown(name, before_series, after_series):
            if grew is None:
                decreases.append(Decrease(series.labels, before_series.get(series.labels, 0.0), series.value))
                continue  # no increase to count: the contract is broken, the check says so
            any_reset = any_reset or reset
            increase += grew
        return Change(before_total, after_total, increase, any_reset, tuple(decreases))

    def increase(self, name: str, labels: Labels | None = None) -> float:
        """How much a counter (or a histogram's count) grew; 0.0 when the series does not exist."""
        return self.change(name, labels).increase or 0.0

    def increases_by(self, name: str, label: str) -> dict[str, float]:
        """`increase(name, {label: value})` for every value of `label` on the second page, in one pass over the
        series (a histogram's buckets by `le`: one pass, not one per bucket)."""
        before_series = {s.labels: s.value for s in self.before.series(name)}
        out: dict[str, float] = {}
        for series, grew, _ in self._grown(name, before_series, self.after.series(name)):
            value = dict(series.labels).get(label)
            if value is not None:
                out[value] = out.get(value, 0.0) + (grew or 0.0)
        return out

    def _grown(self, name: str, before_series: dict[tuple[tuple[str, str], ...], float], after_series: list[Series]
               ) -> Iterator[tuple[Series, float | None, bool]]:
        """Per series of the second page: how much it grew (None: it went down, with no sign of a restart), and
        whether it was reset (after a reset the counter restarted from 0, so everything it shows is new)."""
        base = _created_base(self.after._counted_sample(name))
        for series in after_series:
            previous = before_series.get(series.labels, 0.0)
            created_before = self.before.created_at(base, series.labels)
            created_after = self.after.created_at(base, series.labels)
            reset = self.restarted or (
                created_before is not None and created_after is not None and created_after != created_before
            )
            if not reset and series.value < previous:
                yield series, None, reset
            else:
                yield series, series.value if reset else series.value - previous, reset


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


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def _created_base(sample_name: str) -> str:
    """The `_created` family that dates a sample: counters and histograms drop their suffix."""
    for suffix in ("_total", "_count", "_sum", "_bucket"):
        if sample_name.endswith(suffix):
            return sample_name[: -len(suffix)]
    return sample_name


def _shared(labels: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return _fastparse.shared(tuple(sorted(labels.items())))
