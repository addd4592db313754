"""The rows of the reports: one per check, made from pytest's own report of its deciding phase (real items and
reports of an in-process run), with the words, the target column, the JUnit properties and the reader every report
shows it under."""

from __future__ import annotations

import json
from enum import IntEnum, StrEnum
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_vllm_metrics.outcome import Level, Outcome, Verdict
from pytest_vllm_metrics.rows import (
    READERS,
    Reader,
    Row,
    RowOutcome,
    TargetResult,
    check_group,
    consumer_kind,
    jsonable,
    named,
    reader_of,
    row_for,
    skipped_reason,
    without_target,
    worse,
)

# Checks as the bundled suite parametrizes them (plugin.py): by target, by catalog entry, by panel or consumer.
CHECKS = """
import pytest
from pytest_vllm_metrics.catalog import load_catalog
from pytest_vllm_metrics.readers import Reader

ENTRY = load_catalog().entries[0]
PANEL = Reader("vllm-dash", "KV usage", (), dashboard_title="vLLM", kind="panel")
ALERT = Reader("vllm-rules", "VLLMKVCacheHigh", (), kind="alert")


@pytest.fixture
def broken():
    raise RuntimeError("the fixture broke")


@pytest.fixture
def broken_teardown():
    yield
    raise RuntimeError("the teardown broke")


@pytest.mark.parametrize("vllm_target", ["decode-0"])
def test_reachable(vllm_target):
    pass


@pytest.mark.parametrize("mode", ["cached", "XL"])
@pytest.mark.parametrize("vllm_target", ["decode-0"])
def test_prefix(vllm_target, mode):
    pass


@pytest.mark.parametrize("vllm_entry", [ENTRY], ids=[ENTRY.id])
def test_present(vllm_entry):
    pass


@pytest.mark.parametrize("vllm_moving_entry", [ENTRY], ids=[ENTRY.id])
def test_moves(vllm_moving_entry):
    pass


@pytest.mark.parametrize("vllm_panel", [PANEL], ids=["panel"])
def test_panel(vllm_panel):
    pass


@pytest.mark.parametrize("vllm_consumer", [ALERT], ids=["alert"])
def test_consumer(vllm_consumer):
    pass


def test_plain():
    pass


def test_fails():
    pytest.fail("the counter did not move")


def test_asserts():
    assert 1 == 2, "one is not two"


def test_skips():
    pytest.skip("no prefix caching on this server")


def test_setup_skips():
    pass


@pytest.mark.xfail(reason="vLLM documents it", strict=False)
def test_xfails():
    assert False


@pytest.mark.xfail(reason="vLLM documents it", strict=False)
def test_xpasses():
    pass


def test_errs(broken):
    pass


def test_errs_after(broken_teardown):
    pass
"""


Phases = dict[str, pytest.TestReport]


@pytest.fixture
def finished(pytester: pytest.Pytester) -> dict[str, tuple[pytest.Item, Phases]]:
    """Test name -> (its item, its report of each phase), from an in-process run without this plugin."""
    pytester.makepyfile(test_checks=CHECKS)
    pytester.makeconftest("import pytest\n\n"
                          "def pytest_runtest_setup(item):\n"
                          "    if item.name == 'test_setup_skips':\n"
                          "        pytest.skip('the setup skipped it')\n")
    recorder = pytester.inline_run("-p", "no:vllm_metrics", "-p", "no:cacheprovider")
    items = {call.item.nodeid: call.item for call in recorder.getcalls("pytest_itemcollected")}
    out: dict[str, tuple[pytest.Item, Phases]] = {}
    for report in recorder.getreports("pytest_runtest_logreport"):
        item = items[report.nodeid]
        out.setdefault(item.name, (item, {}))[1][report.when] = report
    return out


def made(finished: dict[str, tuple[pytest.Item, Phases]], name: str, when: str = "call",
         verdict: Verdict | None = None, level: Level | None = None) -> Row | None:
    item, phases = finished[name]
    return row_for(item, phases[when], verdict, level)


@pytest.mark.quick_run
def test_a_row_names_its_target_and_its_check_as_the_reports_show_them(
        finished: dict[str, tuple[pytest.Item, Phases]]) -> None:
    from pytest_vllm_metrics.catalog import load_catalog

    entry = load_catalog().entries[0].name
    shown = {name: (row.target, row.check) for name in finished
             if (row := made(finished, name, "call" if "call" in finished[name][1] else "setup")) is not None}
    assert shown["test_reachable[decode-0]"] == ("decode-0", "reachable")
    assert shown["test_prefix[decode-0-cached]"] == ("decode-0", "prefix[cached]")
    assert shown["test_prefix[decode-0-XL]"] == ("decode-0", "prefix[XL]")
    assert shown[f"test_present[{entry}]"] == ("", f"present: {entry}")
    assert shown[f"test_moves[{entry}]"] == ("", f"moves: {entry}")
    assert shown["test_panel[panel]"] == ("vllm-dash", "panel: KV usage")
    assert shown["test_consumer[alert]"] == ("vllm-rules", "alert: VLLMKVCacheHigh")
    assert shown["test_plain"] == ("", "plain")


@pytest.mark.quick_run
def test_a_rows_outcome_and_reason_come_from_its_deciding_phase(
        finished: dict[str, tuple[pytest.Item, Phases]]) -> None:
    def said(name: str, when: str = "call") -> tuple[str, str] | None:
        row = made(finished, name, when)
        return None if row is None else (row.outcome.value, row.reason)

    assert said("test_plain") == ("passed", "")
    assert said("test_fails") == ("failed", "the counter did not move")  # pytest's "Failed: " is dropped
    assert said("test_asserts") == ("failed", "AssertionError: one is not two\nassert 1 == 2")
    assert said("test_skips") == ("skipped", "no prefix caching on this server")
    assert said("test_setup_skips", "setup") == ("skipped", "the setup skipped it")
    assert said("test_xfails") == ("xfailed", "vLLM documents it")
    assert said("test_xpasses") == ("xpassed", "vLLM documents it")
    assert said("test_errs", "setup") == ("error", "RuntimeError: the fixture broke")
    assert said("test_errs_after", "teardown") == ("error", "RuntimeError: the teardown broke")
    # the phases that decide nothing make no row: a setup or teardown that passed
    assert said("test_plain", "setup") is None and said("test_plain", "teardown") is None
    assert said("test_errs_after", "setup") is None


@pytest.mark.quick_run
def test_a_verdict_gives_the_row_its_words_its_targets_and_its_level(
        finished: dict[str, tuple[pytest.Item, Phases]]) -> None:
    row = made(finished, "test_plain")
    assert row is not None and (row.level, row.diagnosis, row.evidence, row.targets) == (Level.MUST, "", {}, {})
    assert row.id == "test_checks.py::test_plain"
    row = made(finished, "test_plain", level=Level.MAY)
    assert row is not None and row.level == Level.MAY
    # a pass still says what it did not see; its evidence made plain JSON data (a set becomes its text)
    passed = Verdict(Outcome.PASSED, "2 pods are not in the aggregate", Level.SHOULD, evidence={"seen": {1}},
                     diagnosis="a hint", target="decode-0")
    row = made(finished, "test_plain", verdict=passed, level=Level.SHOULD)
    assert row is not None
    assert (row.target, row.reason, row.diagnosis, row.evidence) == (
        "decode-0", "2 pods are not in the aggregate", "a hint", {"seen": "{1}"})
    # a verdict's message does not replace the reason of what did not pass
    row = made(finished, "test_fails", verdict=passed)
    assert row is not None and row.reason == "the counter did not move"
    # an inconclusive verdict: the check was skipped by the plugin, the row says inconclusive and why
    unsure = Verdict(Outcome.INCONCLUSIVE, "decode-0: the second scrape failed")
    row = made(finished, "test_skips", verdict=unsure)
    assert row is not None and (row.outcome, row.reason) == (RowOutcome.INCONCLUSIVE,
                                                           "decode-0: the second scrape failed")
    assert row.diagnosis == "" and row.id == "test_checks.py::test_skips"  # a verdict without a diagnosis
    row = made(finished, "test_plain", verdict=unsure)  # not skipped: its own outcome stands
    assert row is not None and (row.outcome, row.reason) == (RowOutcome.PASSED, "decode-0: the second scrape failed")
    # a check across targets: each target's own outcome; a single one is the row's target
    across = Verdict(Outcome.FAILED, "fails on b", targets={
        "a": Verdict(Outcome.PASSED, "a: fine"), "b": Verdict(Outcome.FAILED, "b: stuck", diagnosis="set the flag")})
    row = made(finished, "test_fails", verdict=across)
    assert row is not None and row.target == "" and row.targets == {
        "a": TargetResult(RowOutcome.PASSED, "a: fine", ""), "b": TargetResult(RowOutcome.FAILED, "b: stuck",
                                                                              "set the flag")}
    one = Verdict(Outcome.FAILED, "fails on b", target="ignored", targets={"b": Verdict(Outcome.FAILED, "b: stuck")})
    row = made(finished, "test_fails", verdict=one)
    assert row is not None and row.target == "b"


@pytest.mark.quick_run
def test_a_failure_reported_as_plain_text_keeps_its_text(finished: dict[str, tuple[pytest.Item, Phases]]) -> None:
    # a report whose longrepr is text, not pytest's own repr (as a plugin or a remote worker may send it)
    item, _ = finished["test_plain"]
    report = _report("failed", "Failed: the scrape broke\nat line 3")
    row = row_for(item, report, None, None)
    assert row is not None and (row.outcome, row.reason) == (RowOutcome.FAILED, "the scrape broke\nat line 3")


def _report(outcome: str, longrepr: Any, when: str = "call") -> pytest.TestReport:
    return pytest.TestReport("t.py::test_x", ("t.py", 0, "test_x"), {}, outcome, longrepr, when)


def test_a_skips_reason_is_read_from_pytests_tuple_only() -> None:
    assert skipped_reason(_report("skipped", ("t.py", 3, "Skipped: no LoRA"))) == "no LoRA"
    assert skipped_reason(_report("skipped", ("t.py", 3, "no LoRA"))) == "no LoRA"
    assert skipped_reason(_report("skipped", ("t.py", "Skipped: no LoRA"))) is None  # not pytest's tuple
    assert skipped_reason(_report("skipped", "Skipped: no LoRA")) is None
    assert skipped_reason(_report("passed", ("t.py", 3, "Skipped: no LoRA"))) is None


def test_plain_json_words_are_accepted_and_checked() -> None:
    row = Row(id="t.py::test_x", target="", check="moves: x", level="SHOULD", outcome="xfailed",  # type: ignore[arg-type]
              targets={"a": {"outcome": "failed", "reason": "a: r", "diagnosis": "d"}})  # type: ignore[dict-item]
    assert (row.level, row.outcome, row.targets["a"]) == (Level.SHOULD, RowOutcome.XFAILED,
                                                          TargetResult(RowOutcome.FAILED, "a: r", "d"))
    assert TargetResult("passed").outcome is RowOutcome.PASSED  # type: ignore[arg-type]
    for bad in ({"level": "must"}, {"outcome": "broken"}):
        with pytest.raises(ValueError):
            Row(**{"id": "x", "target": "", "check": "c", "level": "MUST", "outcome": "passed", **bad})
    with pytest.raises(ValueError):
        TargetResult("fine")  # type: ignore[arg-type]
    assert RowOutcome.of(Outcome.INCONCLUSIVE) is RowOutcome.INCONCLUSIVE


def _fleet(outcomes: dict[str, str], outcome: str = "failed", target: str = "") -> Row:
    return Row(id="conformance/test_metrics.py::test_moves[x]", target=target, check="moves: vllm:x_total",
               level=Level.MUST, outcome=outcome,  # type: ignore[arg-type]
               reason="fails on some", diagnosis="",
               evidence={name: {"seen": 1} for name in outcomes},
               targets={name: TargetResult(o, f"{name}: said {o}", "the fix" if o == "failed" else "")  # type: ignore[arg-type]
                        for name, o in outcomes.items()})


def test_a_row_as_plain_data_is_the_json_reports_and_comes_back_whole() -> None:
    row = _fleet({"a": "passed", "b": "failed"})
    data = row.as_json()
    assert data == {
        "id": "conformance/test_metrics.py::test_moves[x]", "target": "", "check": "moves: vllm:x_total",
        "level": "MUST", "outcome": "failed", "reason": "fails on some", "diagnosis": "",
        "evidence": {"a": {"seen": 1}, "b": {"seen": 1}},
        "targets": {"a": {"outcome": "passed", "reason": "a: said passed", "diagnosis": ""},
                    "b": {"outcome": "failed", "reason": "b: said failed", "diagnosis": "the fix"}}}
    assert Row.from_json(json.loads(json.dumps(data))) == row


def _wired(targets: dict[str, TargetResult], evidence: dict[str, Any]) -> Row:
    return Row(id="conformance/test_metrics.py::test_moves[x]", target="", check="moves: vllm:x_total",
               level=Level.SHOULD, outcome=RowOutcome.FAILED, reason="fails on some", diagnosis="the fix",
               evidence=evidence, targets=targets)


def test_a_row_sent_by_a_worker_comes_back_whole_with_alike_things_sent_once() -> None:
    passed, failed = TargetResult(RowOutcome.PASSED), TargetResult(RowOutcome.FAILED, "c: no", "fix c")
    evidence = {"a": {"seen": 1, "labels": ["x"]}, "b": {"seen": 1, "labels": ["x"]}, "c": {"seen": 2},
                "d": 1, "e": 1.0, "f": True, "g": "1", "h": None}
    row = _wired({"a": passed, "b": TargetResult(RowOutcome.PASSED), "c": failed, "d": passed}, evidence)
    wire = row.to_wire()
    back = Row.from_wire(wire)
    assert back == row and list(back.targets) == ["a", "b", "c", "d"] and list(back.evidence) == list(evidence)
    assert back.targets["a"] is back.targets["b"] is back.targets["d"]  # alike results: one object
    assert back.evidence["a"] is back.evidence["b"] and back.evidence["c"] is not back.evidence["a"]
    # alike as JSON only: 1, 1.0, true and "1" stay what they were
    assert [(type(back.evidence[k]), back.evidence[k]) for k in "defgh"] == [
        (int, 1), (float, 1.0), (bool, True), (str, "1"), (type(None), None)]
    sent = json.loads(wire)
    assert len(sent["cells"]) == 2 and len(sent["values"]) == 7  # a and b's evidence once, each result once
    assert len(wire) < len(json.dumps(row.as_json()))


def test_a_row_with_nothing_per_target_and_odd_numbers_comes_back_whole() -> None:
    row = _wired({}, {"ratio": float("nan"), "cap": float("inf"), "name": "caf\u00e9 \"q\"\n"})
    back = Row.from_wire(row.to_wire())
    assert json.dumps(back.as_json()) == json.dumps(row.as_json())  # NaN is never equal to itself: compared as JSON
    assert Row.from_wire(_wired({}, {}).to_wire()) == _wired({}, {})


_PLAIN = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=8)


@given(st.dictionaries(st.sampled_from("abcdef"), _PLAIN, max_size=6),
       st.dictionaries(st.sampled_from("abcdef"), st.sampled_from(list(RowOutcome)), max_size=6))
@settings(max_examples=150, deadline=None)
def test_every_row_a_worker_sends_comes_back_as_it_was(evidence: dict[str, Any],
                                                       outcomes: dict[str, RowOutcome]) -> None:
    row = _wired({name: TargetResult(o, f"{name if o == RowOutcome.FAILED else ''}") for name, o in outcomes.items()},
                 evidence)
    back = Row.from_wire(row.to_wire())
    assert back == row and json.dumps(back.as_json()) == json.dumps(row.as_json())


def test_junit_names_the_target_check_level_outcome_and_each_targets_outcome() -> None:
    assert _fleet({"a": "passed", "b": "failed"}).junit_properties() == [
        ("vllm_target", "every target"), ("vllm_check", "moves: vllm:x_total"), ("vllm_level", "MUST"),
        ("vllm_outcome", "failed"), ("vllm_target_outcome:a", "passed"), ("vllm_target_outcome:b", "failed")]
    one = Row(id="t::test_reachable[d]", target="d", check="reachable", level=Level.SHOULD,
              outcome=RowOutcome.PASSED)
    assert one.junit_properties() == [("vllm_target", "d"), ("vllm_check", "reachable"), ("vllm_level", "SHOULD"),
                                      ("vllm_outcome", "passed"), ("vllm_target_outcome:d", "passed")]
    anonymous = Row(id="t::test_x", target="", check="x", level=Level.MAY, outcome=RowOutcome.FAILED)
    assert anonymous.junit_properties()[-1] == ("vllm_outcome", "failed")  # no target of its own: none named


def test_per_target_gives_the_diagnosis_first_without_the_targets_own_name() -> None:
    assert _fleet({"a": "passed", "b": "failed"}).per_target() == [
        ("a", RowOutcome.PASSED, "said passed"), ("b", RowOutcome.FAILED, "the fix")]
    one = Row(id="t", target="d", check="reachable", level=Level.MUST, outcome=RowOutcome.FAILED,
              reason="d: 404 on /metrics", diagnosis="")
    assert one.per_target() == [("d", RowOutcome.FAILED, "404 on /metrics")]
    assert Row(id="t", target="d", check="c", level=Level.MUST, outcome=RowOutcome.FAILED, reason="d: r",
               diagnosis="d: set the flag").per_target() == [("d", RowOutcome.FAILED, "set the flag")]


def test_the_target_column_names_what_did_not_pass_or_counts_it() -> None:
    assert _fleet({"a": "passed", "b": "failed"}).shown_target() == "b"
    assert _fleet({"a": "passed", "b": "failed"}, target="pinned").shown_target() == "pinned"
    assert _fleet({"a": "passed", "b": "passed"}, outcome="passed").shown_target() == "all 2 targets"
    assert _fleet({"a": "skipped", "b": "passed"}, outcome="passed").shown_target() == "all 2 targets"
    assert _fleet({"a": "passed"}, outcome="failed").shown_target() == "all 1 targets"  # none did not pass
    assert _fleet({"a": "xfailed", "b": "inconclusive", "c": "passed"}).shown_target() == "a, b"
    # up to 32 characters the names are listed, beyond it they are counted
    names = {"decode-0000000", "decode-1111111", "x"}  # "decode-0000000, decode-1111111, x": 33 characters
    assert _fleet(dict.fromkeys(sorted(names), "failed")).shown_target() == "3 of 3 targets"
    assert _fleet({"decode-0000000": "failed", "decode-111111": "failed", "x": "failed"}).shown_target() == (
        "decode-0000000, decode-111111, x")  # 32 characters
    assert Row(id="t", target="", check="c", level=Level.MUST, outcome=RowOutcome.FAILED).shown_target() == ""


def test_the_worse_of_two_outcomes_in_the_reports_order() -> None:
    assert worse(None, RowOutcome.PASSED) is RowOutcome.PASSED
    assert worse(RowOutcome.PASSED, RowOutcome.FAILED) is RowOutcome.FAILED
    assert worse(RowOutcome.FAILED, RowOutcome.PASSED) is RowOutcome.FAILED
    assert worse(RowOutcome.XFAILED, RowOutcome.INCONCLUSIVE) is RowOutcome.INCONCLUSIVE
    assert worse(RowOutcome.INCONCLUSIVE, RowOutcome.XFAILED) is RowOutcome.INCONCLUSIVE
    assert worse(RowOutcome.SKIPPED, RowOutcome.PASSED) is RowOutcome.PASSED


def test_a_reason_loses_a_leading_target_name_only() -> None:
    assert without_target("decode-0: the counter is stuck", "decode-0") == "the counter is stuck"
    assert without_target("decode-0: a: b", "decode-0") == "a: b"
    assert without_target("decode-0 is down", "decode-0") == "decode-0 is down"  # no ": "
    assert without_target("Query A: always 0", "decode-0") == "Query A: always 0"
    assert without_target("decode-0: stuck", "") == "decode-0: stuck"


def test_names_are_listed_up_to_three_then_counted() -> None:
    assert named([]) == ""
    assert named(["a", "b", "c"]) == "a, b, c"
    assert named(["a", "b", "c", "d"]) == "a, b, c and 1 more (4 targets)"
    assert named(["a", "b"], shown=1) == "a and 1 more (2 targets)"


def _row(check: str, module: str = "conformance/test_metrics.py", target: str = "decode-0") -> Row:
    return Row(id=f"{module}::test_x[y]", target=target, check=check, level=Level.MUST, outcome=RowOutcome.PASSED)


def test_each_row_speaks_for_one_reader() -> None:
    assert [consumer_kind(_row(c)) for c in ("alert: A", "record: R", "keda: K", "adapter: P", "epp: E")] == [
        "alert", "record", "keda", "adapter", "epp"]
    assert consumer_kind(_row("panel: KV")) is None and consumer_kind(_row("alert")) is None
    assert consumer_kind(_row("moves: alert: x")) is None
    assert consumer_kind(_row("alert: vLLM: KV cache high")) == "alert"  # a title holding ": "
    assert reader_of(_row("alert: A")) is Reader.RULES and reader_of(_row("record: R")) is Reader.RULES
    assert reader_of(_row("keda: K")) is Reader.SCALERS and reader_of(_row("adapter: P")) is Reader.SCALERS
    assert reader_of(_row("epp: E")) is Reader.EPP
    assert reader_of(_row("panel: KV", target="vllm-dash")) is Reader.DASHBOARDS
    assert reader_of(_row("panel: x", module="conformance/test_upgrade.py")) is Reader.DASHBOARDS
    assert reader_of(_row("panel x", module="conformance/test_upgrade.py")) is Reader.UPGRADE
    assert reader_of(_row("flags", module="test_epp.py", target="")) is Reader.EPP
    assert reader_of(_row("moves: x")) is Reader.TARGETS
    assert reader_of(_fleet({"a": "passed"})) is Reader.TARGETS
    assert reader_of(_row("mine", module="tests/test_mine.py", target="")) is Reader.OTHER
    assert reader_of(_row("mine", module="tests/upgrade_test.py", target="")) is Reader.OTHER


def test_a_checks_group_in_the_pods_by_checks_grid() -> None:
    assert check_group(_row("moves: vllm:prefix_cache_hits_total")) == ("moves", "prefix_cache_hits_total")
    assert check_group(_row("present: vllm:a: b")) == ("present", "a: b")
    assert check_group(_row("hits[cached]", module="conformance/test_prefix_cache.py")) == (
        "prefix cache", "hits[cached]")
    assert check_group(_row("mine", module="a/b/test_my_own.py")) == ("my own", "mine")


def test_each_reader_counts_in_its_own_words() -> None:
    assert [READERS[r].of(1) for r in Reader] == ["target", "panel", "rule", "reader", "check", "consumer", "check"]
    assert [READERS[r].of(n) for r, n in zip(Reader, (0, 2, 3, 4, 5, 6, 7), strict=True)] == [
        "targets", "panels", "rules", "readers", "checks", "consumers", "checks"]


# -- evidence made plain data, results shared across a fleet -------------------------------------------------------

class _Kind(StrEnum):
    STREAM = "completion-stream"


class _Rank(IntEnum):
    FIRST = 1


class _Ratio(float):
    """A float of another type (an evidence value a library computed)."""


_JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
_JSON_KEYS = st.text(max_size=4) | st.integers() | st.booleans() | st.none() | st.floats(allow_nan=False)
_EVIDENCE = st.recursive(_JSON_SCALARS | st.sets(st.integers(), max_size=2), lambda inner: (
    st.lists(inner, max_size=3) | st.tuples(inner, inner) | st.dictionaries(_JSON_KEYS, inner, max_size=3)),
    max_leaves=12)


def _round_trip(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def test_evidence_is_the_json_reports_data_fixed_examples() -> None:
    evidence = {"finish_reasons": {0: "length", 1: "stop"}, "kind": _Kind.STREAM, "rank": _Rank.FIRST,
                "buckets": [("0.1", 2.0), ("+Inf", 7.0)], "seen": {3}, "nan": float("nan"), "keys": {None: 1,
                True: 2, 1.5: 3}, "path": Path("/tmp/x"), "ratio": _Ratio(0.5)}
    plain = jsonable(evidence)
    assert json.dumps(plain) == json.dumps(_round_trip(evidence))
    assert plain["finish_reasons"] == {"0": "length", "1": "stop"} and plain["keys"] == {"null": 1, "true": 2,
                                                                                          "1.5": 3}
    assert type(plain["kind"]) is str and type(plain["rank"]) is int and plain["buckets"] == [["0.1", 2.0],
                                                                                              ["+Inf", 7.0]]
    assert (plain["seen"], plain["path"]) == ("{3}", "/tmp/x")
    assert type(plain["ratio"]) is float and plain["ratio"] == 0.5
    # a key JSON cannot spell (json.dumps refuses it): its text, as str() gives it
    assert jsonable({Path("/tmp/x"): 1, ("a", 1): 2}) == {"/tmp/x": 1, "('a', 1)": 2}


@given(_EVIDENCE)
@settings(max_examples=200, deadline=None)
def test_evidence_is_the_json_reports_data(value: Any) -> None:
    assert json.dumps(jsonable(value)) == json.dumps(_round_trip(value))


@pytest.mark.quick_run
def test_targets_alike_share_one_result(finished: dict[str, tuple[pytest.Item, Phases]]) -> None:
    # 1,000 pods that passed alike hold one result, not 1,000 copies; a pod with its own words has its own
    alike = {f"decode-{n}": Verdict(Outcome.PASSED, "moved by the workload") for n in range(3)}
    across = Verdict(Outcome.FAILED, "fails on b", targets={**alike, "b": Verdict(Outcome.FAILED, "b: stuck")})
    row = made(finished, "test_fails", verdict=across)
    assert row is not None
    results = [row.targets[f"decode-{n}"] for n in range(3)]
    assert results[0] is results[1] is results[2] and results[0] == TargetResult(RowOutcome.PASSED,
                                                                                 "moved by the workload")
    assert row.targets["b"] == TargetResult(RowOutcome.FAILED, "b: stuck")
