"""Markdown for a CI job summary or a merge-request comment (the helper of report_markdown.py): GitHub-flavoured tables
whose cells cannot break the table, and truncation at a size limit that keeps what comes first whole."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

_SPECIAL = re.compile(r"([\\`*_\[\]<>|])")


def inline(text: str) -> str:
    """Text that Markdown shows as written: one line, its markup characters escaped (a reason quoting
    `enable_prefix_caching="False"` or a PromQL `a|b` stays itself)."""
    return _SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


def table(header: Sequence[str], rows: Iterable[Sequence[str]], right: Iterable[int] = ()) -> str:
    aligned = set(right)
    lines = ["| " + " | ".join(inline(h) for h in header) + " |",
             "|" + "|".join(" ---: " if i in aligned else " --- " for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(inline(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def names(found: Sequence[str], shown: int) -> str:
    """The first `shown` names, and how many more: a fleet's 100 pods failing alike make one line, not 100."""
    if len(found) <= shown:
        return ", ".join(found)
    return f"{', '.join(found[:shown])} and {len(found) - shown} more ({len(found)} targets)"


def fit(blocks: Sequence[str], limit: int, where: str) -> str:
    """The blocks joined by blank lines, at most `limit` bytes of UTF-8: when they do not fit, whole lines are
    kept in order (a table cut between rows is still a table) and a note says how much was left out."""
    text = "\n".join(blocks)
    if len(text.encode()) <= limit:
        return text
    lines = text.splitlines(keepends=True)
    room = limit - 400  # the note's own size
    kept: list[str] = []
    used = 0
    for line in lines:
        size = len(line.encode())
        if used + size > room:
            break
        kept.append(line)
        used += size
    left = len(lines) - len(kept)
    note = (f"\n> **Truncated**: {left} more line{'s' * (left != 1)} did not fit in {limit:,} bytes (the limit of a "
            f"CI job summary or comment); {where}.\n")
    return "".join(kept) + note
