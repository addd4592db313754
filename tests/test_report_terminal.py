"""The terminal's "vLLM metrics conformance" section, line by line, as a CI log shows it: the result and what failed
by reader, each reader's counts, the panels' and consumers' verdicts, the table of what did not pass with each
reason whole, what could not be observed and the documented limitations once per cause, the upgrade forecast."""

from __future__ import annotations

from typing import Any

from conftest import REPORT_TARGETS, report_rows, upgrade_rows
from pytest_vllm_metrics.outcome import Level
from pytest_vllm_metrics.report import build
from pytest_vllm_metrics.report_terminal import lines, terminal_lines, upgrade_lines
from pytest_vllm_metrics.rows import Row, RowOutcome, TargetResult
from pytest_vllm_metrics.settings import Settings


def test_a_run_on_pods_panels_and_consumers_line_by_line() -> None:
    model = build(report_rows(), Settings(vllm_report="out/report.json"), implementations=REPORT_TARGETS)
    assert lines(model) == [
        "result: FAILURE  (2 failed, 2 inconclusive, 4 passed, 1 xfailed)",
        "  1 of 3 targets failed; 1 of 2 panels failed; 1 of 3 targets could not be judged; 1 of 1 rule could not be "
        "judged",
        "  vLLM servers                                             3 targets: 1 failed, 1 inconclusive, 1 xfailed",
        "  Grafana panels                                           2 panels: 1 failed, 1 passed",
        "  Alerting and recording rules                             1 rule: 1 inconclusive",
        "  Autoscalers and adapters (KEDA, prometheus-adapter)      1 reader: 1 passed",
        "panels (will it show data?):",
        "  NO DATA              vllm-dash :: KV Cache Usage",
        "  OK                   vllm-dash :: Throughput",
        "other consumers of the metrics (will they get data?):",
        "  INCONCLUSIVE         alert   vllm-rules :: VLLMKVCacheHigh",
        "  OK                   keda    keda-ns :: vllm-scaler",
        "    its query sums 2 of the 3 pods (decode-2: no data)",
        "OUTCOME  LEVEL  TARGET             CHECK",
        "FAILED   MUST   decode-1, decode-2 moves: vllm:prefix_cache_hits_total",
        '    decode-1: vLLM reports enable_prefix_caching="False": start it with --enable-prefix-caching',
        "XFAILED  SHOULD decode-0           present: vllm:lora_requests_info",
        "FAILED   MUST   vllm-dash          panel: KV Cache Usage",
        "    Query A: vllm:gpu_cache_usage_perc is on no target: vLLM 0.11 renamed it",
        "could not observe (neither passed nor failed; rerun or fix the setup):",
        "  decode-2: the second scrape timed out after 10 s: rerun [2 checks]",
        '  vllm-rules: alert "VLLMKVCacheHigh" (vllm-rules): its $namespace matches no target [1 check]',
        "documented limitations (XFAIL), as vLLM states them:",
        "  decode-0: vLLM 0.11.2 does not emit it on arm64 (upgrade to vLLM 0.12.0) [1 check]",
        "conformance report: out/report.json"]


def test_long_reasons_wrap_within_the_width_never_at_a_hyphen() -> None:
    model = build(report_rows())
    narrow = terminal_lines(model, width=70)
    assert narrow[1:4] == ["  1 of 3 targets failed; 1 of 2 panels failed; 1 of 3 targets could",
                           "    not be judged; 1 of 1 rule could not be judged",
                           "  vLLM servers                                             3 targets: 1 failed, 1 "
                           "inconclusive, 1 xfailed"]
    assert '    decode-1: vLLM reports enable_prefix_caching="False": start it' in narrow
    # the option stays whole on the next line, where a break at its hyphens would fit "--enable-" on this one
    wide = terminal_lines(model, width=81)
    assert wide[wide.index("FAILED   MUST   decode-1, decode-2 moves: vllm:prefix_cache_hits_total") + 1:][:2] == [
        '    decode-1: vLLM reports enable_prefix_caching="False": start it with', "      --enable-prefix-caching"]
    assert terminal_lines(model, width=20) == terminal_lines(model, width=60)  # never narrower than 60
    assert terminal_lines(model, width=60) != terminal_lines(model, width=61)


def _across(check: str, outcome: str, **targets: tuple[str, str]) -> Row:
    return Row(id=f"conformance/test_metrics.py::test_x[{check}]", target="", check=check, level=Level.MUST,
               outcome=RowOutcome(outcome), targets={name: TargetResult(RowOutcome(o), f"{name}: {reason}")
                                                     for name, (o, reason) in targets.items()})


def test_targets_that_gave_the_same_reason_share_its_line_and_the_rest_are_counted() -> None:
    row = _across("moves: x", "failed", a=("failed", "stuck at 0"), b=("failed", "stuck at 0"), c=("error", "broke"),
                  d=("failed", "went down"), e=("failed", "went  down\n twice"), f=("failed", "reset"),
                  g=("failed", "reset again"), h=("xpassed", "passed"), i=("passed", "fine"))
    assert terminal_lines(build([row]))[-5:] == [
        "FAILED   MUST   a, b, c, d, e, f, g, h moves: x",
        "    a, b: stuck at 0",
        "    c (error): broke",
        "    d: went down",
        "    ... and 4 more targets with other reasons (see the report)"]
    row = _across("moves: x", "failed", a=("failed", "one"), b=("failed", "two"), c=("failed", "three"),
                  d=("failed", "four"))
    assert terminal_lines(build([row]))[-1] == "    ... and 1 more target with other reasons (see the report)"
    row = _across("moves: x", "failed", a=("failed", "one"), b=("failed", "two"), c=("failed", "three"))
    assert terminal_lines(build([row]))[-1] == "    c: three"


def test_the_table_header_and_target_column_fit_the_names_up_to_32_characters() -> None:
    long = "decode-" + "x" * 40
    row = Row(id="t::test_reachable[x]", target=long, check="reachable", level=Level.MAY, outcome=RowOutcome.ERROR,
              reason=f"{long}: refused")
    found = terminal_lines(build([row]))
    assert found[-3:] == [f"OUTCOME  LEVEL  {'TARGET':32} CHECK", f"ERROR    MAY    {long} reachable", "    refused"]
    short = Row(id="t::test_reachable[ab]", target="ab", check="reachable", level=Level.MUST,
                outcome=RowOutcome.XPASSED, reason="ab: passed while vLLM documents it fails")
    assert terminal_lines(build([short]))[-3:] == ["OUTCOME  LEVEL  TARGET CHECK", "XPASSED  MUST   ab reachable",
                                                   "    passed while vLLM documents it fails"]
    # nothing notable: no table at all
    fine = Row(id="t::test_reachable[ab]", target="ab", check="reachable", level=Level.MUST, outcome=RowOutcome.PASSED)
    assert terminal_lines(build([fine])) == ["result: SUCCESS  (1 passed)", "  nothing failed",
                                             "  vLLM servers      1 target: 1 passed"]


def test_a_panels_reason_without_the_lead_its_line_already_shows() -> None:
    def panel(reason: str, check: str = "panel: T") -> list[str]:
        row = Row(id="t::test_panel[d::T]", target="d", check=check, level=Level.MUST, outcome=RowOutcome.FAILED,
                  reason=reason)
        return terminal_lines(build([row]))[-1:]

    assert panel('panel "T" (vLLM (prod) (eu)) Query A: no data') == ["    Query A: no data"]
    assert panel('panel "T" (vLLM) Query A: no data') == ["    Query A: no data"]
    assert panel('panel "T" Query A: no data') == ["    Query A: no data"]
    assert panel('panel "T" (unclosed Query A: no data') == ["    (unclosed Query A: no data"]
    assert panel('panel "U" (vLLM) Query A: no data') == ['    panel "U" (vLLM) Query A: no data']
    assert panel('panel "T" (vLLM) Query A', check="alert: T") == ['    panel "T" (vLLM) Query A']


def test_causes_of_many_alike_targets_make_one_paragraph() -> None:
    names = ["decode-0", "decode-1", "decode-2", "decode-3"]
    unsure = _across("moves: x", "inconclusive", **{n.replace("-", "_"): ("inconclusive", "timed out") for n in names})
    other = _across("present: x", "inconclusive", decode_0=("inconclusive", "timed out"),
                    decode_9=("inconclusive", "refused"))
    found = terminal_lines(build([unsure, other]))
    at = found.index("could not observe (neither passed nor failed; rerun or fix the setup):")
    assert found[at + 1:] == ["  decode_0, decode_1, decode_2 and 1 more (4 targets): timed out [1-2 checks each]",
                              "  decode_9: refused [1 check]"]
    three = _across("moves: x", "xfailed", a=("xfailed", "documented  \n limit"), b=("xfailed", "documented limit"),
                    c=("xfailed", "documented limit"))
    found = terminal_lines(build([three]))
    at = found.index("documented limitations (XFAIL), as vLLM states them:")
    assert found[at + 1:] == ["  a: documented limit [1 check]", "  b: documented limit [1 check]",
                              "  c: documented limit [1 check]"]


def test_warnings_are_counted_with_the_targets_they_concern() -> None:
    def warned(*names: str) -> Row:
        return Row(id="t::test_x[labels]", target="", check="labels", level=Level.SHOULD, outcome=RowOutcome.PASSED,
                   # as evaluate.across makes it: per target, or one target's own
                   evidence={n: {"warning": "StoreWarning"} for n in names} if len(names) > 1 else {
                       "warning": "StoreWarning"},
                   targets={n: TargetResult(RowOutcome.PASSED, f"{n}: 37 labels") for n in names})

    assert terminal_lines(build([warned("a", "b")]))[-2:] == [
        "warnings: 1 (checks that passed, but a common store or scraper drops or splits part of the page) on 2 "
        "targets; each once", "  in the warnings summary"]
    one = Row(id="t::test_x[a]", target="a", check="size", level=Level.SHOULD, outcome=RowOutcome.PASSED,
              reason="a: 37 labels", evidence={"warning": "StoreWarning"})
    assert " ".join(terminal_lines(build([one, warned("a")]))[-2:]) == (
        "warnings: 2 (checks that passed, but a common store or scraper drops or splits part of the page) on 1 "
        "target; each once   in the warnings summary")


def test_notes_follow_the_section() -> None:
    targets = [{"target": "a", "measured": {"looksExclusive": True}}]
    row = Row(id="t::test_x[a]", target="a", check="x", level=Level.MUST, outcome=RowOutcome.PASSED)
    assert lines(build([row], implementations=targets))[-1] == (
        "note: on a the finished requests and prompt tokens moved by exactly the workload, as if no other traffic "
        "reached them: if that holds, --vllm-exclusive checks their counters exactly")
    assert lines(build([row]))[-1] == "  vLLM servers      1 target: 1 passed"


def test_the_upgrade_forecast_as_a_table_of_what_goes_dark() -> None:
    model = build(upgrade_rows("0.11.0"), implementations=REPORT_TARGETS)
    assert model.upgrade is not None
    assert lines(model)[:2] == ["result: FAILURE  (2 failed, 1 passed)", "  2 of 3 consumers go dark"]
    policy = ("  policy: A metric deprecated in vLLM X.Y is hidden in X.Y+1, where "
              "--show-hidden-metrics-for-version=X.Y shows it again for one more minor release, and removed in X.Y+2.")
    assert lines(model)[-7:] == [
        "upgrade to vLLM 0.11.0: 2 of 3 consumers go dark (the fleet runs 0.10.1 on 2 targets, unknown on 1 target)",
        "    METRIC                     ON 0.11.0            BUYS TIME                               REMOVED  "
        "RENAMED TO",
        "  panel vllm-dash :: KV Cache Usage",
        "    vllm:gpu_cache_usage_perc  hidden since 0.11.0  --show-hidden-metrics-for-version=0.10  0.12.0   "
        "vllm:kv_cache_usage_perc",
        "  alert vllm-dash :: VLLMKVCacheHigh",
        "    vllm:gpu_cache_usage_perc  hidden since 0.11.0  --show-hidden-metrics-for-version=0.10  0.12.0   "
        "vllm:kv_cache_usage_perc",
        policy]
    forecast = build(upgrade_rows("0.13.0")).upgrade
    assert forecast is not None
    assert upgrade_lines(forecast) == [
        "upgrade to vLLM 0.13.0: 2 of 3 consumers go dark (the fleet runs 0.10.1 on 2 targets, unknown on 1 target)",
        "    METRIC                     ON 0.13.0                      BUYS TIME  REMOVED  RENAMED TO",
        "  panel vllm-dash :: KV Cache Usage",
        "    vllm:gpu_cache_usage_perc  removed (hidden since 0.11.0)  -          0.12.0   vllm:kv_cache_usage_perc",
        "  alert vllm-dash :: VLLMKVCacheHigh",
        "    vllm:gpu_cache_usage_perc  removed (hidden since 0.11.0)  -          0.12.0   vllm:kv_cache_usage_perc",
        policy]


def test_an_upgrade_that_darkens_nothing_is_one_line() -> None:
    forecast: dict[str, Any] = {"to": "0.12.0", "fleet": {}, "policy": {"text": "p"},
                                "consumers": [{"kind": "keda", "dashboard": "d", "title": "t", "dark": []}]}
    assert upgrade_lines(forecast) == [
        "upgrade to vLLM 0.12.0: 0 of 1 consumers go dark (the fleet runs an unknown version)"]
    forecast["consumers"].append({"kind": "panel", "dashboard": "d", "title": "u", "dark": [
        {"metric": "vllm:x", "state": "not yet", "emitted": ">=0.13.0", "flag": None, "removed_in": None,
         "replaced_by": None}]})
    forecast["fleet"] = {"0.11.0": ["a"]}
    forecast["policy"]["text"] = "a  policy\n  in words"
    assert upgrade_lines(forecast) == [
        "upgrade to vLLM 0.12.0: 1 of 2 consumers go dark (the fleet runs 0.11.0 on 1 target)",
        "    METRIC  ON 0.12.0                 BUYS TIME  REMOVED  RENAMED TO",
        "  panel d :: u",
        "    vllm:x  not there yet (>=0.13.0)  -          -        -",
        "  policy: a policy in words"]


def test_the_default_width_is_120_columns() -> None:
    reason = "x" * 50 + " " + "y" * 66  # 117 characters: with its 4 spaces of indent, 121 columns
    row = Row(id="t::test_x[a]", target="a", check="x", level=Level.MUST, outcome=RowOutcome.FAILED,
              reason=f"a: {reason}")
    model = build([row])
    assert terminal_lines(model)[-2:] == ["    " + "x" * 50, "      " + "y" * 66]
    assert lines(model)[-2:] == ["    " + "x" * 50, "      " + "y" * 66]
    assert lines(model, width=121)[-1] == "    " + reason
    assert terminal_lines(build([])) == ["result: SUCCESS  (no checks)", "  nothing failed"]


def test_notes_of_readers_that_work_wrap_under_their_line() -> None:
    note = "its query sums 2 of the 3 pods (decode-2: no data) because the scaler selects on pod, and " * 2
    panel = Row(id="t::test_panel[d::P]", target="d", check="panel: P", level=Level.MUST, outcome=RowOutcome.PASSED,
                reason=note.strip(), evidence={"panel_verdict": "ok"})
    scaler = Row(id="t::test_c[keda]", target="ns", check="keda: scaler: decode", level=Level.MUST,
                 outcome=RowOutcome.PASSED, reason=note.strip(), evidence={"panel_verdict": "ok"})
    found = terminal_lines(build([panel, scaler]), width=80)
    wrapped = ["    its query sums 2 of the 3 pods (decode-2: no data) because the scaler",
               "      selects on pod, and its query sums 2 of the 3 pods (decode-2: no data)",
               "      because the scaler selects on pod, and"]
    assert found[found.index("panels (will it show data?):") + 1:][:4] == ["  OK                   d :: P", *wrapped]
    at = found.index("other consumers of the metrics (will they get data?):")
    # a title holding ": " stays whole
    assert found[at + 1:] == ["  OK                   keda    ns :: scaler: decode", *wrapped]


def test_long_causes_wrap_under_their_target() -> None:
    cause = "the second scrape timed out after 10 s: check the pod's readiness, or raise --vllm-timeout " * 2
    rows = [_across("moves: x", "inconclusive", **{f"pod_{i}": ("inconclusive", cause.strip()) for i in range(n)})
            for n in (1, 4)]
    for row, first in zip(rows, ("  pod_0: the second scrape timed out after 10 s: check the pod's readiness, or",
                                 "  pod_0, pod_1, pod_2 and 1 more (4 targets): the second scrape timed out after"),
                          strict=True):
        found = terminal_lines(build([row]), width=80)
        at = found.index("could not observe (neither passed nor failed; rerun or fix the setup):")
        assert found[at + 1] == first
        assert all(line.startswith("    ") and not line.startswith("     ") for line in found[at + 2:])
        assert len(found) > at + 2


def test_a_panels_lead_is_dropped_only_before_its_reason() -> None:
    row = Row(id="t::test_panel[d::T]", target="d", check="panel: T", level=Level.MUST, outcome=RowOutcome.FAILED,
              reason='panel "T" (D): no data')
    assert terminal_lines(build([row]))[-1] == "    (D): no data"  # no ") " after the title: kept as it is
