"""The Markdown CI summary (--vllm-report=summary.md): parsed as GitHub renders tables, and under GitHub's
1 MiB job-summary limit at a fleet's size."""

from __future__ import annotations

import html

import pytest
from markdown_it import MarkdownIt

from conftest import REPORT_TARGETS, report_rows, upgrade_rows
from pytest_vllm_metrics.outcome import Level
from pytest_vllm_metrics.report import Report, build
from pytest_vllm_metrics.report_markdown import MARKDOWN_LIMIT, upgrade_markdown
from pytest_vllm_metrics.report_markdown import summary as markdown_summary
from pytest_vllm_metrics.rows import Row, RowOutcome, TargetResult


def tables(text: str) -> list[list[list[str]]]:
    """Each table of a Markdown text as rows of cell texts (header first), by a CommonMark parser with GFM tables."""
    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    found: list[list[list[str]]] = []
    row: list[str] | None = None  # the cells of the table row being read
    for token in tokens:
        if token.type == "table_open":
            found.append([])
        elif token.type == "tr_open":
            row = []
        elif token.type == "inline" and row is not None:
            row.append(token.content)
        elif token.type == "tr_close" and row is not None:
            found[-1].append(row)
            row = None
    return found


def unescape(cell: str) -> str:
    """A cell's text as a reader sees it (rendered, then the HTML entities read back)."""
    return html.unescape(MarkdownIt("commonmark").renderInline(cell))


def test_a_run_writes_a_markdown_summary_that_renders_as_tables(pytester: pytest.Pytester) -> None:
    pytester.runpytest("-p", "no:cacheprovider", "--vllm-sim=arm64-cpu", "--vllm-sim=x86_64-no-prefix-caching",
                       "--vllm-report=summary.md")
    text = (pytester.path / "summary.md").read_text()
    assert text.startswith("## ❌ vLLM metrics conformance: FAILURE\n\n**What failed:** 1 of 2 targets failed.\n")
    found = tables(text)
    targets = found[0]
    assert targets[0][:3] == ["target", "architecture", "vLLM"]
    assert [unescape(r[0]) for r in targets[1:]] == ["sim-arm64-cpu", "sim-x86_64-no-prefix-caching"]
    failing = found[1]
    assert failing[0] == ["outcome", "level", "targets", "check", "why"]
    hits = [r for r in failing if unescape(r[3]) == "moves: vllm:prefix_cache_hits_total"]
    assert hits and unescape(hits[0][2]) == "sim-x86_64-no-prefix-caching"
    assert 'enable_prefix_caching="False"' in unescape(hits[0][4])  # quotes and underscores survive as text
    # the documented limitation: once for its target, in full, with its fix
    assert text.count("**sim-arm64-cpu**") == 1 and "upgrade to vLLM 0.12.0" in text


def _fleet(pods: int, alike: bool) -> Report:
    names = [f"decode-{i:03d}" for i in range(pods)]
    rows = []
    for c in range(84):
        reason = "the counter did not move during the workload; " * 8  # about 400 characters
        targets = {n: {"outcome": "failed" if c % 3 == 0 else "passed",
                       "reason": reason if alike else f"{reason}seen on {n}", "diagnosis": ""} for n in names}
        rows.append(Row(id=f"test_metrics.py::test_moves[m{c}]", target="", check=f"moves: vllm:m{c}_total",
                        level="MUST", outcome="failed" if c % 3 == 0 else "passed", reason="", targets=targets))
    implementations = [{"target": n, "vllmVersion": "0.32.0", "model": "m", "architecture": "arm64",
                        "source": "kubernetes"} for n in names]
    return build(rows, implementations=implementations)


def test_a_hundred_pods_failing_alike_make_one_line_per_check() -> None:
    text = markdown_summary(_fleet(100, alike=True))
    found = tables(text)
    assert len(found[0]) == 101  # a row per pod
    assert len(found[1]) == 1 + 28  # one line per failing check: the 100 pods share its reason
    assert "and 92 more (100 targets)" in found[1][1][2]
    assert len(text.encode()) < 100_000 and "Truncated" not in text


def test_a_hundred_pods_failing_each_their_own_way_stay_under_the_limit() -> None:
    text = markdown_summary(_fleet(100, alike=False))
    assert len(text.encode()) <= MARKDOWN_LIMIT
    assert "**Truncated**" in text and "did not fit in 1,048,576 bytes" in text
    assert text.endswith("; the full report is in the HTML report or --vllm-report=report.json.\n")
    found = tables(text)
    assert len(found[0]) == 101  # what comes first is whole
    assert all(len(r) == 5 for r in found[1])  # a table cut between rows is still a table
    small = markdown_summary(_fleet(100, alike=False), limit=65_536)  # a GitHub comment's size
    assert len(small.encode()) <= 65_536 and tables(small)[0][0][0] == "target"


# -- in-process: the summary of a run, line by line, and the Markdown helpers -----------------------------------


def test_the_summary_of_a_run_on_pods_panels_and_consumers() -> None:
    text = markdown_summary(build(report_rows(), implementations=REPORT_TARGETS[:2]))
    assert text == (
        "## ❌ vLLM metrics conformance: FAILURE\n\n"
        "**What failed:** 1 of 3 targets failed; 1 of 2 panels failed; 1 of 3 targets could not be judged; 1 of 1 "
        "rule could not be judged.\n\n"
        "9 checks: 2 failed, 2 inconclusive, 4 passed, 1 xfailed. Symbols: ✓ passed, ✗ failed, ! xfailed (documented "
        "limitation), ? inconclusive (could not observe), – skipped.\n\n"
        "### Targets\n\n"
        "| target | architecture | vLLM | ✓ passed | ✗ failed | ! xfailed | ? inconclusive | – skipped |\n"
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |\n"
        "| decode-0 | arm64 | 0.11.2 | 2 | 0 | 1 | 0 | 0 |\n"
        "| decode-1 | amd64 | 0.32.0 | 2 | 1 | 0 | 0 | 0 |\n"
        "| decode-2 |  | ? | 1 | 0 | 0 | 2 | 0 |\n\n"  # not observed, named by its checks
        "### Failing checks\n\n"
        "| outcome | level | targets | check | why |\n"
        "| --- | --- | --- | --- | --- |\n"
        '| failed | MUST | decode-1 | moves: vllm:prefix\\_cache\\_hits\\_total | vLLM reports '
        'enable\\_prefix\\_caching="False": start it with --enable-prefix-caching |\n\n'
        "### Grafana panels that will not show data\n\n"
        "| dashboard | panel | verdict | outcome | why |\n"
        "| --- | --- | --- | --- | --- |\n"
        '| vllm-dash | KV Cache Usage | no data | failed | panel "KV Cache Usage" (vLLM) Query A: '
        "vllm:gpu\\_cache\\_usage\\_perc is on no target: vLLM 0.11 renamed it |\n\n"
        "### Could not observe (neither passed nor failed)\n\n"
        "- **decode-2** (2 checks): the second scrape timed out after 10 s: rerun\n"
        '- **vllm-rules** (1 check): alert "VLLMKVCacheHigh" (vllm-rules): its $namespace matches no target\n\n'
        "### Documented limitations (XFAIL)\n\n"
        "- **decode-0** (1 check): vLLM 0.11.2 does not emit it on arm64 (upgrade to vLLM 0.12.0)\n")


@pytest.mark.parametrize(("rows", "heading"), [
    ([], "## ✅ vLLM metrics conformance: SUCCESS"),
    ([Row(id="t::test_x", target="a", check="x", level="SHOULD", outcome="failed")],  # type: ignore[arg-type]
     "## ⚠️ vLLM metrics conformance: PARTIAL"),
    ([Row(id="t::test_x", target="a", check="x", level="MUST", outcome="inconclusive")],  # type: ignore[arg-type]
     "## ❔ vLLM metrics conformance: INCONCLUSIVE"),
])
def test_the_heading_marks_the_result(rows: list[Row], heading: str) -> None:
    assert markdown_summary(build(rows)).split("\n")[0] == heading


def test_failing_checks_group_targets_by_reason_and_leave_out_panels_and_what_passed() -> None:
    def across(outcome: str, **targets: tuple[str, str]) -> Row:
        return Row(id="t::test_x[m]", target="", check="moves: m", level=Level.MAY, outcome=RowOutcome(outcome),
                   targets={n: TargetResult(RowOutcome(o), f"{n}: {r}") for n, (o, r) in targets.items()})

    rows = [across("failed", a=("failed", "stuck"), b=("error", "stuck"), c=("failed", "reset"), d=("passed", "ok"),
                   e=("xpassed", "stuck"), f=("inconclusive", "stuck")),
            across("xpassed", g=("xpassed", "it passed")), across("xfailed", h=("xfailed", "documented")),
            across("passed", i=("passed", "fine")),
            Row(id="t::test_y", target="", check="y", level=Level.MUST, outcome=RowOutcome.ERROR, reason="broke"),
            Row(id="t::test_p[d::P]", target="d", check="panel: P", level=Level.MUST, outcome=RowOutcome.PASSED),
            Row(id="t::test_p[d::S]", target="d", check="panel: S", level=Level.MUST, outcome=RowOutcome.SKIPPED),
            Row(id="t::test_p[d::X]", target="d", check="panel: X", level=Level.MUST, outcome=RowOutcome.XFAILED,
                reason="d: documented", evidence={"panel_verdict": "limitation"})]
    found = tables(markdown_summary(build(rows)))
    assert found[1] == [["outcome", "level", "targets", "check", "why"],
                        ["failed", "MAY", "a, b, e", "moves: m", "stuck"], ["failed", "MAY", "c", "moves: m", "reset"],
                        ["xpassed", "MAY", "g", "moves: m", "it passed"],
                        ["error", "MUST", "every target", "y", "broke"]]
    assert found[2] == [["dashboard", "panel", "verdict", "outcome", "why"],
                        ["d", "X", "limitation", "xfailed", "documented"]]
    names = [f"pod-{i}" for i in range(9)]
    many = across("failed", **{n: ("failed", "stuck") for n in names})
    assert tables(markdown_summary(build([many])))[1][1][2] == (
        "pod-0, pod-1, pod-2, pod-3, pod-4, pod-5, pod-6, pod-7 and 1 more (9 targets)")
    eight = across("failed", **{n: ("failed", "stuck") for n in names[:8]})
    assert tables(markdown_summary(build([eight])))[1][1][2] == ", ".join(names[:8])


def test_the_upgrade_forecast_in_markdown() -> None:
    text = markdown_summary(build(upgrade_rows("0.11.0"), implementations=REPORT_TARGETS))
    section = text[text.index("### Upgrade"):]
    assert section == (
        "### Upgrade to vLLM 0.11.0: 2 of 3 consumers go dark\n\n"
        "The fleet runs 0.10.1 (2), unknown (1). A metric deprecated in vLLM X.Y is hidden in X.Y+1, where "
        "--show-hidden-metrics-for-version=X.Y shows it again for one more minor release, and removed in X.Y+2.\n\n"
        "| kind | consumer | metric | on 0.11.0 | buys time | removed in | renamed to |\n"
        "|---|---|---|---|---|---|---|\n"
        "| panel | vllm-dash :: KV Cache Usage | `vllm:gpu_cache_usage_perc` | hidden since 0.11.0 | "
        "`--show-hidden-metrics-for-version=0.10` | 0.12.0 | `vllm:kv_cache_usage_perc` |\n"
        "| alert | vllm-dash :: VLLMKVCacheHigh | `vllm:gpu_cache_usage_perc` | hidden since 0.11.0 | "
        "`--show-hidden-metrics-for-version=0.10` | 0.12.0 | `vllm:kv_cache_usage_perc` |\n")
    forecast = {"to": "0.12.0", "fleet": {}, "policy": {"text": "The policy."}, "consumers": [
        {"kind": "panel", "dashboard": "a|b", "title": "line\nbreak", "dark": [
            {"metric": "vllm:x", "state": "not yet", "emitted": ">=0.13.0", "flag": None, "removed_in": None,
             "replaced_by": None}]},
        {"kind": "keda", "dashboard": "d", "title": "t", "dark": []}]}
    assert upgrade_markdown(forecast) == (
        "### Upgrade to vLLM 0.12.0: 1 of 2 consumers go dark\n\nThe fleet runs unknown. The policy.\n\n"
        "| kind | consumer | metric | on 0.12.0 | buys time | removed in | renamed to |\n"
        "|---|---|---|---|---|---|---|\n"
        "| panel | a\\|b :: line break | `vllm:x` | not there yet (>=0.13.0) | - | - | - |\n")
    assert tables(upgrade_markdown(forecast))[0][1][1:3] == ["a|b :: line break", "`vllm:x`"]  # the bar escaped
    forecast["consumers"] = forecast["consumers"][1:]
    assert upgrade_markdown(forecast) == ("### Upgrade to vLLM 0.12.0: 0 of 1 consumers go dark\n\n"
                                          "The fleet runs unknown. The policy.\n")
