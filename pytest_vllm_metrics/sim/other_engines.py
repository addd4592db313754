"""The other model servers of the model-server protocol: SGLang, trtllm-serve and Triton TensorRT-LLM.

A simulated one answers requests as the vLLM simulator does (the same tokens, prefix cache and answers), and serves
its own engine's page: a real capture (data/<data>.prom, chosen by sim/families.toml [[capture]] for the engine and
version), with the model label set to the profile's model and the series of the protocol's metrics (where
conformance/engines.toml says the endpoint picker reads them) moving with the requests in flight. No real SGLang or
TensorRT-LLM runs: both need a GPU.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

from .. import data, engines, promql, schemas
from .engine import Engine, Generated
from .profiles import Profile

# Faults of another engine's page (see FAULTS in server.py)
UNTYPED = "untyped-gauges"
PERCENT = "percent-kv"
PER_RANK = "per-rank"
STUCK = "stuck-running"

_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')
_SAMPLE = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_RANK = "tp_rank"  # the tensor-parallel rank label of SGLang's scheduler gauges


@dataclass
class _Series:
    labels: dict[str, str]
    value: float


@dataclass
class _Family:
    name: str
    type: str  # "" when the page gives it no # TYPE line
    help: str | None
    series: list[_Series]


def _parse(text: str) -> list[_Family]:
    """A captured text-format page: its families in order, each with its HELP, TYPE and samples as written."""
    families: dict[str, _Family] = {}

    def family(name: str) -> _Family:
        return families.setdefault(name, _Family(name, "", None, []))

    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, help_ = line[7:].partition(" ")
            family(name).help = help_.replace("\\n", "\n").replace("\\\\", "\\")
        elif line.startswith("# TYPE "):
            name, _, type_ = line[7:].partition(" ")
            family(name).type = type_.strip()
        elif line.strip() and not line.startswith("#"):
            match = _SAMPLE.fullmatch(line.strip())
            if match is None:
                raise ValueError(f"a line of a captured page is not a sample: {line!r}")
            labels = {k: v.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
                      for k, v in _LABEL.findall(match.group(2) or "")}
            family(match.group(1)).series.append(_Series(labels, float(match.group(3))))
    return list(families.values())


@cache
def _capture_text(name: str) -> str:
    return resources.files(__package__).joinpath("data", f"{name}.prom").read_text(encoding="utf-8")


def capture_for(engine: engines.Engine, version: str) -> schemas.EngineCapture:
    """The captured page the simulator serves for this engine and version."""
    for capture in data.sim_families().capture:
        if capture.engine == engine.value and capture.versions.contains(version):
            return capture
    raise ValueError(f"the simulator has no page of {engine} {version}; sim/families.toml lists the captures")


def _number(value: float, numbers: str) -> str:
    """A sample's value as the engine's client library writes it: prometheus_client (Python) as Go's shortest
    form with a decimal point ("1.0", "0.25"), prometheus-cpp (Triton) without one for whole numbers ("1")."""
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value)) if numbers == "prometheus-cpp" else f"{value:.1f}"
    return repr(value)


def _escape(text: str, quote: bool = False) -> str:
    text = text.replace("\\", "\\\\").replace("\n", "\\n")
    return text.replace('"', '\\"') if quote else text


@dataclass(frozen=True)
class _Place:
    """A series of the page that reads a live value (as a sample value, or as the label `label` of an info series)."""

    family: int
    series: int
    label: str = ""


class OtherEngine(Engine):
    """A simulated SGLang, trtllm-serve or Triton TensorRT-LLM: the vLLM simulator's request handling, this page."""

    def __init__(self, profile: Profile) -> None:
        super().__init__(profile)  # the model of requests; its vLLM registry is not served
        self.kind = engines.Engine(profile.engine)
        self.protocol = engines.profile(self.kind)
        self.capture = capture_for(self.kind, profile.version)
        self.owned_by = self.capture.owned_by
        self._families = _parse(_capture_text(self.capture.data))
        for family in self._families:
            for series in family.series:
                if self.protocol.model_label in series.labels:
                    series.labels[self.protocol.model_label] = profile.model
        specs: list[tuple[str, str, schemas.Live]] = [(s, "", m.value) for m, s in self.protocol.required.items()]
        for form in self.protocol.cache_forms(profile.version):
            specs += [(form.block_size.name, form.block_size.label, "block_size"),
                      (form.num_blocks.name, form.num_blocks.label, "num_blocks")]
        specs += [(selector, "", live) for selector, live in self.capture.live.items()]
        self._places: dict[schemas.Live, list[_Place]] = {}
        for selector, label, live in specs:
            self._places.setdefault(live, []).extend(self._find(selector, label))
        # the series the endpoint picker reads (not the page's other series that read the same values)
        self._required = {place for metric in engines.REQUIRED
                          for place in self._find(self.protocol.required[metric], "")}
        self._required_families = {self._families[p.family].name for p in self._required}
        self._served = 0  # requests answered
        self._shown_running = 0  # running as last shown (the stuck-running fault never lowers it)
        self._set_gauges()

    def _find(self, selector: str, label: str) -> list[_Place]:
        """The page's series a selector picks (every matcher an equality, as the endpoint picker keeps them)."""
        parsed = promql.selectors(selector)[0]
        return [_Place(f, s, label) for f, family in enumerate(self._families) if family.name == parsed.metric
                for s, series in enumerate(family.series)
                if all(series.labels.get(name) == value for name, _, value in parsed.matchers)]

    # -- values ----------------------------------------------------------------------------------------------

    def _values(self) -> dict[schemas.Live, float]:
        profile = self.profile
        blocks = profile.num_gpu_blocks
        used = min(self._held_blocks, blocks)
        return {"running": float(self._shown_running), "queued": 0.0, "kv_usage": used / blocks,
                "block_size": float(profile.block_size), "num_blocks": float(blocks), "used_blocks": float(used),
                "free_blocks": float(blocks - used), "total_tokens": float(profile.block_size * blocks),
                "requests": float(self._served), "zero": 0.0}

    def _set_gauges(self) -> None:
        if not (self.profile.fault == STUCK and self._running < self._shown_running):
            self._shown_running = self._running
        for live, value in self._values().items():
            for place in self._places.get(live, ()):
                series = self._families[place.family].series[place.series]
                if place.label:
                    series.labels[place.label] = str(int(value))
                else:
                    series.value = value

    def generate(self, prompt_tokens: list[str], max_tokens: int, n: int = 1,
                 stop: tuple[str, ...] = ()) -> Generated:
        generated = super().generate(prompt_tokens, max_tokens, n, stop)
        self._served += 1
        self._set_gauges()
        return generated

    # -- the page --------------------------------------------------------------------------------------------

    def exposition(self) -> bytes:
        """The engine's page in the text format, with the profile's fault."""
        fault = self.profile.fault
        kv = {(p.family, p.series) for p in self._places["kv_usage"]}
        required = {(p.family, p.series) for p in self._required}
        lines: list[str] = []
        for f, family in enumerate(self._families):
            if family.help is not None:
                lines.append(f"# HELP {family.name} {_escape(family.help)}")
            if family.type and not (fault == UNTYPED and family.name in self._required_families):
                lines.append(f"# TYPE {family.name} {family.type}")
            for s, series in enumerate(family.series):
                value = series.value * 100 if fault == PERCENT and (f, s) in kv else series.value
                if fault == PER_RANK and (f, s) in required:
                    # one series per rank: the endpoint picker keeps the first, the idle rank 0
                    lines.append(self._sample(family.name, {**series.labels, _RANK: "0"}, 0.0))
                    lines.append(self._sample(family.name, {**series.labels, _RANK: "1"}, value))
                else:
                    lines.append(self._sample(family.name, series.labels, value))
        return ("\n".join(lines) + "\n").encode()

    def _sample(self, name: str, labels: dict[str, str], value: float) -> str:
        text = ",".join(f'{k}="{_escape(v, quote=True)}"' for k, v in labels.items())
        return f"{name}{{{text}}} {_number(value, self.capture.numbers)}" if text else (
            f"{name} {_number(value, self.capture.numbers)}")

    def record_http(self, handler: str, method: str, status: int, request_bytes: int, response_bytes: int,
                    seconds: float) -> None:
        """Nothing: the captured pages have no HTTP metrics."""


def engine_for(profile: Profile) -> Engine:
    """The simulated server of the profile's engine."""
    return Engine(profile) if profile.engine == engines.Engine.VLLM else OtherEngine(profile)
