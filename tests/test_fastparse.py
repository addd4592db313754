"""The fast exposition path gives exactly what prometheus_client's parser gives, or hands over to it."""

from __future__ import annotations

import math
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_vllm_metrics import _fastparse
from pytest_vllm_metrics.sim import SimHost, get_profile, profile_names
from pytest_vllm_metrics.snapshot import ExpositionError, Snapshot

CAPTURES = sorted((Path(__file__).parent / "data" / "captures").glob("*.prom"))


def comparable(snapshot: Snapshot) -> tuple[object, ...]:
    samples = {name: [(s.labels, "nan" if math.isnan(s.value) else s.value) for s in series]
               for name, series in snapshot.samples.items()}
    return snapshot.families, samples, snapshot.created


@pytest.mark.parametrize("capture", CAPTURES, ids=[c.name for c in CAPTURES])
def test_real_captures_parse_identically_and_on_the_fast_path(capture: Path) -> None:
    text = capture.read_text()
    assert list(_fastparse.families(text))  # no hand-over: the fast path proves every line of a vLLM page
    assert comparable(Snapshot.parse(text)) == comparable(Snapshot.parse_reference(text))


@pytest.mark.parametrize("profile", profile_names())
def test_simulator_pages_parse_identically(profile: str) -> None:
    with SimHost() as host:
        sim = host.start(get_profile(profile))
        httpx.post(sim.url + "/v1/completions", json={"model": "tiny", "prompt": "a b c", "max_tokens": 3})
        text = httpx.get(sim.url + "/metrics").text
    assert comparable(Snapshot.parse(text)) == comparable(Snapshot.parse_reference(text))


LINES = CAPTURES[0].read_text().splitlines()


@st.composite
def edited(draw: st.DrawFn) -> str:
    lines = list(LINES[draw(st.integers(0, 400)):][: draw(st.integers(1, 60))])
    for _ in range(draw(st.integers(0, 4))):
        index = draw(st.integers(0, len(lines) - 1))
        junk = draw(st.sampled_from(['\\"', "\\n", " ", "\t", ",", "{", "}", "#", " # ", "=", '"', "_total",
                                     "le", "NaN", "+Inf", "1e3", "-", "\\\\", "x"]))
        cut = draw(st.integers(0, len(lines[index])))
        lines[index] = lines[index][:cut] + junk + lines[index][cut:]
    return "\n".join(lines)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(edited(), st.text(alphabet='vlm:_ab{}="#\n\t ,.0123456789eEINnaf+-\\HELPTYPEcountergauge',
                                   max_size=200)))
def test_any_text_parses_identically_or_fails_in_both(text: str) -> None:
    try:
        reference = comparable(Snapshot.parse_reference(text))
    except ExpositionError:
        with pytest.raises(ExpositionError):
            Snapshot.parse(text)
        return
    assert comparable(Snapshot.parse(text)) == reference
