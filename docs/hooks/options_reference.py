"""mkdocs hook: the options reference, rendered at build time from the options' single definition.

`pytest_vllm_metrics.settings.OPTIONS` registers every command-line option, environment variable and ini key
of the plugin; this hook renders them as the table of docs/options.md (in place of its marker), so the page
cannot drift from what the plugin accepts. tests/test_readme.py checks the rendered table against the options
pytest actually registers.
"""

from __future__ import annotations

from dataclasses import MISSING, fields
from typing import Any

from pytest_vllm_metrics.settings import OPTIONS, Option, Settings

MARKER = "<!-- options-reference -->"
PAGE = "options.md"

_DEFAULTS = {f.name: f.default for f in fields(Settings) if f.default is not MISSING}


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _flag(option: Option) -> str:
    if option.switch:
        return f"`{option.flag}`"
    if option.nargs_optional_const is not None:
        return f"`{option.flag}[={option.metavar}]`"
    return f"`{option.flag} {option.metavar or 'VALUE'}`"


def _env(option: Option) -> str:
    return f"`{option.env_var}`" + (" (comma-separated)" if option.multiple else "")


def _ini(option: Option) -> str:
    if not option.ini:
        return "none: secrets do not belong in committed ini files" if option.secret else "none"
    return f"`{option.ini_key}`" + (" (one per line)" if option.multiple else "")


def _default(option: Option) -> str:
    if option.nargs_optional_const is not None:
        return f"`{option.nargs_optional_const}` when given bare"
    value: Any = _DEFAULTS.get(option.name)
    if value is None or value == () or value is False:
        return "off" if option.switch else ""
    if isinstance(value, float):
        return f"`{value:g}`"
    return f"`{value}`"


def options_markdown() -> str:
    """The reference table: one row per option, in the order the plugin registers them."""
    lines = ["| option | environment variable | ini key | default | what it does |", "|---|---|---|---|---|"]
    for option in OPTIONS:
        lines.append(f"| {_flag(option)} | {_env(option)} | {_ini(option)} | {_cell(_default(option))} "
                     f"| {_cell(option.help)} |")
    return "\n".join(lines) + "\n"


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if page.file.src_uri != PAGE:
        return markdown
    if MARKER not in markdown:
        raise ValueError(f"docs/{PAGE} lost its marker {MARKER}: the options table has nowhere to go")
    return markdown.replace(MARKER, options_markdown())
