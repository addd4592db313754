"""The fast exposition path gives exactly what prometheus_client's parser gives, or hands over to it."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import BASE_CAPTURE, CAPTURES, comparable
from pytest_vllm_metrics import _fastparse
from pytest_vllm_metrics.sim import SimHost, get_profile, profile_names
from pytest_vllm_metrics.sim.server import metrics_path
from pytest_vllm_metrics.snapshot import ExpositionError, Snapshot


@pytest.mark.parametrize("capture", CAPTURES, ids=[c.name for c in CAPTURES])
def test_real_captures_parse_identically_and_on_the_fast_path(capture: Path) -> None:
    text = capture.read_text()
    assert list(_fastparse.families(text))  # no hand-over: the fast path proves every line of a vLLM page
    assert comparable(Snapshot.parse(text)) == comparable(Snapshot.parse_reference(text))


@pytest.mark.parametrize("profile", profile_names())
def test_simulator_pages_parse_identically(profile: str) -> None:
    with SimHost() as host:
        sim = host.start(get_profile(profile))
        model = sim.profile.model
        httpx.post(sim.url + "/v1/completions", json={"model": model, "prompt": "a b c", "max_tokens": 3})
        text = httpx.get(sim.url + metrics_path(sim.profile)).text  # another engine's page is where it serves it
    assert comparable(Snapshot.parse(text)) == comparable(Snapshot.parse_reference(text))


LINES = BASE_CAPTURE.read_text().splitlines()


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
    assert_parses_as_reference(text)


def test_a_created_stamp_of_nan_parses_as_the_reference_does() -> None:
    # found by the fuzzing above: NaN equals nothing, not even itself, so the comparison must say "nan"
    assert_parses_as_reference('# TYPE vllm:x_created gauge\nvllm:x_created{engine="0"}NaN 1.79e+09\n')


def assert_parses_as_reference(text: str) -> None:
    """The fast path gives prometheus_client's snapshot, or refuses the text exactly when it does."""
    try:
        reference = comparable(Snapshot.parse_reference(text))
    except ExpositionError:
        with pytest.raises(ExpositionError):
            Snapshot.parse(text)
        return
    assert comparable(Snapshot.parse(text)) == reference


# -- fixed examples next to the fuzzing: escapes the fuzzer reaches only by chance ----------------------------

ESCAPED = {
    "backslash": ('vllm:x_total{model_name="C:\\\\models\\\\tiny"} 3.0\n', {"model_name": "C:\\models\\tiny"}),
    "quote": ('vllm:x_total{model_name="say \\"hi\\""} 3.0\n', {"model_name": 'say "hi"'}),
    "newline": ('vllm:x_total{model_name="two\\nlines"} 3.0\n', {"model_name": "two\nlines"}),
    "all three": ('vllm:x_total{a="\\\\",b="\\"",c="\\n",model_name="tiny"} 3.0\n',
                  {"a": "\\", "b": '"', "c": "\n", "model_name": "tiny"}),
    "escape last": ('vllm:x_total{engine="0",model_name="tiny\\\\"} 3.0\n', {"engine": "0", "model_name": "tiny\\"}),
    "brace and comma": ('vllm:x_total{model_name="a,b}{c"} 3.0\n', {"model_name": "a,b}{c"}),
}


@pytest.mark.parametrize("text", [text for text, _ in ESCAPED.values()], ids=list(ESCAPED))
def test_escaped_label_values_are_handed_over_and_equal_prometheus_client(text: str) -> None:
    """kills the `\\\\` exclusions of _fastparse._LABEL / _LINE (an escape read as text on the fast path)."""
    page = f"# HELP vllm:x_total counted\n# TYPE vllm:x_total counter\n{text}"
    with pytest.raises(_fastparse.Unrecognised):
        list(_fastparse.families(page))
    assert comparable(Snapshot.parse(page)) == comparable(Snapshot.parse_reference(page))
    labels = dict(Snapshot.parse(page).series("vllm:x_total")[0].labels)
    assert labels == next(expected for raw, expected in ESCAPED.values() if raw == text)


@pytest.mark.parametrize("help_text", ["a \\\\ backslash", "a \\n newline", "ends with \\\\"])
def test_escaped_help_text_is_handed_over_and_equals_prometheus_client(help_text: str) -> None:
    """kills the `[^\\s\\\\]` exclusions of the HELP alternative of _fastparse._LINE."""
    page = f"# HELP vllm:x_total {help_text}\n# TYPE vllm:x_total counter\nvllm:x_total 1.0\n"
    with pytest.raises(_fastparse.Unrecognised):
        list(_fastparse.families(page))
    assert comparable(Snapshot.parse(page)) == comparable(Snapshot.parse_reference(page))


def test_plain_label_values_stay_on_the_fast_path_and_equal_prometheus_client() -> None:
    """The other side of the boundary: unescaped values (slashes, spaces, '=' and '#') are proved by the fast path."""
    page = ('# HELP vllm:x_total counted\n# TYPE vllm:x_total counter\n'
            'vllm:x_total{model_name="org/tiny model=1 #2",engine="0"} 3.0\n')
    assert list(_fastparse.families(page)) == [
        ("vllm:x", "counter", "counted", [("vllm:x_total", (("engine", "0"), ("model_name", "org/tiny model=1 #2")),
                                           3.0)])]
    assert comparable(Snapshot.parse(page)) == comparable(Snapshot.parse_reference(page))


@pytest.fixture(autouse=True)
def cold_label_cache() -> None:
    """Each test reads its label texts afresh: the fast path caches every `{...}` text it has read, so a test
    that reuses a text another test read would not reach the label reader at all."""
    _fastparse._LABEL_TEXTS.clear()


@pytest.mark.parametrize("body", ['{a="1",a="2"}', '{a="1",}', '{a="1",b="2",}', '{a="1" ,b="2"}', '{a="1"b="2"}',
                                  '{a="1",,b="2"}', "{}"])
def test_duplicate_labels_and_stray_commas_are_judged_as_prometheus_client_judges_them(body: str) -> None:
    """kills the duplicate and trailing-comma checks of _fastparse._labels (`in labels`, `== ","`, `end()`)."""
    assert_parses_as_reference(f"# HELP vllm:x_total counted\n# TYPE vllm:x_total counter\nvllm:x_total{body} 3.0\n")


@pytest.mark.parametrize("page", [
    "# HELP x help\n# TYPE x untyped\nx 1.0\n",
    "# HELP vllm:x counted\n# TYPE vllm:x counter\nvllm:x 2.0\n",
    "# a plain comment\n\n# HELP g gauge\n# TYPE g gauge\ng{a=\"1\",b=\"2\"} 1.0\n# another one\n",
], ids=["untyped", "counter without _total", "plain comments"])
def test_rarer_pages_prometheus_client_writes_stay_on_the_fast_path_and_equal_it(page: str) -> None:
    """kills `_ALLOWED.get(typ, ("",))` (an untyped family), the `_total` added to a counter declared without it
    (_fastparse._build), `other[0] != "#"` (plain comments are fine) and `position < len(body)` (_labels)."""
    assert list(_fastparse.families(page))  # no hand-over
    assert comparable(Snapshot.parse(page)) == comparable(Snapshot.parse_reference(page))
