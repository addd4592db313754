"""The Markdown helpers of the CI summary (_markdown.py): text that stays text, tables whose cells cannot break the
table, and truncation at a size limit that keeps whole lines."""

from __future__ import annotations

import pytest
from markdown_it import MarkdownIt

from pytest_vllm_metrics._markdown import fit, inline
from pytest_vllm_metrics._markdown import names as md_names
from pytest_vllm_metrics._markdown import table as md_table


def test_markdown_text_stays_text_and_tables_stay_tables() -> None:
    assert inline('a `b` *c* _d_ [e](f) <g> h|i \\ j') == (
        "a \\`b\\` \\*c\\* \\_d\\_ \\[e\\](f) \\<g\\> h\\|i \\\\ j")
    assert inline("two\n  lines\t here ") == "two lines here"
    assert inline(42) == "42"  # type: ignore[arg-type]
    assert md_table(["a", "b|c"], [["1", "2"]], right=[1]) == "| a | b\\|c |\n| --- | ---: |\n| 1 | 2 |\n"
    assert md_table(["a"], []) == "| a |\n| --- |\n"
    assert md_names(["a", "b"], 2) == "a, b" and md_names(["a", "b", "c"], 2) == "a, b and 1 more (3 targets)"


def test_a_summary_over_its_limit_keeps_whole_lines_and_says_how_many_were_left_out() -> None:
    blocks = ["x" * 99 + "\n" + "y" * 99 + "\n", "z" * 99 + "\n"]  # 100, 100 and (after the join's "\n") 101 bytes
    text = "\n".join(blocks)
    assert fit(blocks, len(text.encode()), "see the rest") == text  # exactly at the limit: whole
    truncated = fit(blocks, len(text.encode()) - 1, "see the rest")
    assert truncated.startswith("\n> **Truncated**: 4 more lines did not fit in 300 bytes")
    blocks = ["a" * 99 + "\n" + "b" * 99 + "\n", "c" * 500]  # lines of 100, 100, 1 and 500 bytes
    assert fit(blocks, 600, "the full report is elsewhere") == "a" * 99 + "\n" + "b" * 99 + "\n" + (
        "\n> **Truncated**: 2 more lines did not fit in 600 bytes (the limit of a CI job summary or comment); the "
        "full report is elsewhere.\n")  # 200 bytes of room: the first two lines fill it exactly
    assert fit(["a" * 99 + "\n" + "b" * 500], 500, "x") == "a" * 99 + "\n" + (
        "\n> **Truncated**: 1 more line did not fit in 500 bytes (the limit of a CI job summary or comment); x.\n")
    # bytes of UTF-8, not characters: 50 "é" and a newline are 101 bytes, over 100 bytes of room
    assert fit(["é" * 50 + "\n" + "b" * 500], 500, "x").startswith("\n> **Truncated**: 2 more lines")


def test_a_table_of_hostile_cells_renders_as_one_table_of_its_rows_and_columns() -> None:
    # cells as a fleet's reasons quote them: PromQL alternations, label values, line breaks, HTML
    rows = [["a|b", 'enable_prefix_caching="False"'], ["two\nlines", "<b>x</b>"]]
    tokens = MarkdownIt("commonmark").enable("table").parse(md_table(["check", "reason"], rows))
    cells = [t.content for t in tokens if t.type == "inline"]
    assert [t.type for t in tokens].count("table_open") == 1
    # the table parser takes the bar's escape off (it is the cell's text); the other escapes stay for the inline pass
    assert cells == ["check", "reason", "a|b", 'enable\\_prefix\\_caching="False"', "two lines",
                     "\\<b\\>x\\</b\\>"]


@pytest.mark.parametrize(("found", "shown", "text"), [
    (["a", "b", "c"], 3, "a, b, c"),  # exactly as many as shown
    (["a", "b", "c", "d"], 3, "a, b, c and 1 more (4 targets)"),  # one more
    ([], 3, ""),
])
def test_names_show_the_first_ones_and_how_many_more(found: list[str], shown: int, text: str) -> None:
    assert md_names(found, shown) == text
