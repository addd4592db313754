"""The Markdown CI summary (--vllm-report=summary.md): parsed as GitHub renders tables, and under GitHub's
1 MiB job-summary limit at a fleet's size."""

from __future__ import annotations

import html

import pytest
from markdown_it import MarkdownIt

from pytest_vllm_metrics.report import Report, build
from pytest_vllm_metrics.report_markdown import MARKDOWN_LIMIT
from pytest_vllm_metrics.report_markdown import summary as markdown_summary
from pytest_vllm_metrics.rows import Row


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
    found = tables(text)
    assert len(found[0]) == 101  # what comes first is whole
    assert all(len(r) == 5 for r in found[1])  # a table cut between rows is still a table
    small = markdown_summary(_fleet(100, alike=False), limit=65_536)  # a GitHub comment's size
    assert len(small.encode()) <= 65_536 and tables(small)[0][0][0] == "target"
