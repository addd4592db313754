"""The README and the documentation pages, as a user meets them: every command block runs as written (or says
why it cannot here), every path named exists, every option passed is one the plugin registers, and the options
reference lists every option the plugin registers.

A command block is an indented code block or a ``sh``/``bash``/``shell``/``console`` fence (other fences,
``python``, ``ini``, ``text``, are not commands). The HTML comment right before a block says how to treat it:

    <!-- doc-test: skip, REASON -->   it needs a cluster, a real server, Prometheus, minutes...: skipped by name
    <!-- doc-test: exit N -->         run, and it must exit N (an example that finds mistakes on purpose)

An unmarked block must run here and exit 0; one that names a cluster, a URL or Prometheus without a mark fails
this test, which asks for the mark. Each distinct block runs once (the README and a page may show the same).
The README's main job runs without its install prefix (this environment has the package installed already;
CI runs the whole line from a copy of the repository, .ci/run), and the README's test command is marked: this
file is part of it.
"""

from __future__ import annotations

import functools
import glob
import importlib.util
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest
from markdown_it import MarkdownIt

ROOT = Path(__file__).parent.parent
README = ROOT / "README.md"
PAGES = [README, ROOT / "examples" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARK = re.compile(r"<!--\s*doc-test:\s*(?:skip\s*,\s*(?P<reason>.+?)|exit\s+(?P<exit>\d+))\s*-->", re.S)
COMMAND_FENCES = {"", "sh", "bash", "shell", "console"}
# What cannot run on a machine with only this repository: a block naming one of these needs a mark.
NEEDS_OUTSIDE = re.compile(r"--vllm-url|--vllm-namespace|--prometheus-url|--vllm-epp-url|--vllm-gateway-url"
                           r"|--kubeconfig|kubectl|\btox\b|\bmkdocs\b|\bpip install\b|bench/|\bmypy\b")
# The README's main job starts by installing the package into a new virtual environment (the checker's rule).
INSTALL = re.compile(r"^python3 -m venv (?P<venv>\S+) && \. (?P=venv)/bin/activate && pip install \S+ && ")
REPO_PATH = re.compile(
    r"(?<![\w./-])((?:examples|deploy|conformance|docs|tests|tools|bench|pytest_vllm_metrics|\.ci)/[\w./*{},-]*"
    r"|(?:README|CONTRIBUTING|CHANGELOG)\.md|mkdocs\.yml|pyproject\.toml|tox\.ini|mutants-equivalent\.toml"
    r"|\.pre-commit-config\.yaml)")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # 1-based, of the block's first line
    text: str
    skip: str | None  # the mark's reason, when the block is not run here
    exit: int  # the exit code a run must give

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def _blocks(page: Path) -> list[Block]:
    tokens = MarkdownIt("commonmark").parse(page.read_text(encoding="utf-8"))
    found = []
    for i, token in enumerate(tokens):
        if token.type == "code_block" or (token.type == "fence" and token.info.strip() in COMMAND_FENCES):
            previous = tokens[i - 1] if i else None
            mark = MARK.search(previous.content) if previous is not None and previous.type == "html_block" else None
            line = (token.map or [0])[0] + 1
            found.append(Block(page, line, token.content.strip(), mark["reason"] if mark else None,
                               int(mark["exit"]) if mark and mark["exit"] else 0))
    return found


BLOCKS = [block for page in PAGES for block in _blocks(page)]
# each block once (the README and a page may show the same command), at its first place
DISTINCT = list({(b.text, b.skip, b.exit): b for b in reversed(BLOCKS)}.values())[::-1]


def _main_job() -> str:
    """The first indented line of the README's section "The two commands", as the checker reads it."""
    section = README.read_text(encoding="utf-8").split("\n## The two commands\n", 1)[1].split("\n## ", 1)[0]
    return next(line[4:] for line in section.splitlines() if line.startswith("    ") and line.strip())


def _environment(tmp_path: Path) -> dict[str, str]:
    """A user's shell: this environment's executables first on PATH, none of the test run's own settings."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_", "VLLM_", "COV_")) and k not in ("PROMETHEUS_TOKEN", "EPP_TOKEN")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    (tmp_path / "tmp").mkdir()
    env["TMPDIR"] = str(tmp_path / "tmp")  # mktemp -d lands under the test's own directory
    return env


@functools.cache
def _help() -> str:
    result = subprocess.run([sys.executable, "-m", "pytest", "--help", "-p", "no:cacheprovider"], cwd="/",
                            capture_output=True, text=True, timeout=60,
                            env={k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")})
    assert result.returncode == 0, result.stderr
    return result.stdout


def _plugin_help() -> str:
    """The "vLLM metrics conformance" group of `pytest --help`: what the plugin registered."""
    section = _help().split("\nvLLM metrics conformance:\n", 1)[1]
    return re.split(r"\n(?=\S)", section, maxsplit=1)[0]


def _hook() -> ModuleType:
    path = ROOT / "docs" / "hooks" / "options_reference.py"
    spec = importlib.util.spec_from_file_location("options_reference", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_main_job_is_one_line_that_makes_its_own_venv_and_says_where_the_report_is() -> None:
    command = _main_job()
    assert "pip install" in command and "venv" in command, (
        "Debian's and Ubuntu's system Python refuses `pip install` outside a virtual environment (PEP 668)")
    assert INSTALL.match(command), f"the main job should start with the venv and the install: {command}"
    assert command.endswith('&& echo "report: $PWD/report.html (open it in a browser)"'), command
    assert "\\" not in command, "one line, to copy and paste"


def test_every_page_that_shows_the_main_job_shows_the_readmes() -> None:
    copies = [b for b in BLOCKS if INSTALL.match(b.text) and "--vllm-sim" in b.text]
    assert len(copies) >= 2
    for block in copies:
        assert block.text == _main_job(), f"{block.where} differs from the README's main job"


@pytest.mark.parametrize("block", DISTINCT, ids=[b.where for b in DISTINCT])
def test_every_command_block_runs_or_says_why_not(block: Block, tmp_path: Path) -> None:
    if block.skip:
        pytest.skip(f"{block.where}: {block.skip}")
    if block.text == "pytest --help":  # the run every other check of this file reads
        assert "vLLM metrics conformance:" in _help()
        return
    main_job = block.text == _main_job()
    command = INSTALL.sub("", block.text) if main_job else block.text
    outside = NEEDS_OUTSIDE.search(command)
    assert not outside, (
        f"{block.where} uses {outside[0]!r}, which cannot run here: mark it <!-- doc-test: skip, REASON --> "
        f"(a cluster, a real server, Prometheus...) or make it run against the simulator")
    work = tmp_path / "work"
    work.mkdir()
    (work / "examples").symlink_to(ROOT / "examples")  # the commands run from the repository's root
    result = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", command], cwd=work, env=_environment(tmp_path),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == block.exit, (
        f"{block.where} exited {result.returncode}, not {block.exit}:\n{command}\n"
        f"{result.stdout[-3000:]}\n{result.stderr[-2000:]}")
    if main_job:
        said = re.search(r"^report: (\S+/report\.html) \(open it in a browser\)$", result.stdout, re.M)
        assert said, result.stdout[-2000:]
        report = Path(said[1])
        assert report.is_relative_to(tmp_path) and "vLLM metrics conformance" in report.read_text()


@pytest.mark.parametrize("page", [*PAGES, ROOT / "CONTRIBUTING.md", ROOT / "CHANGELOG.md"],
                         ids=[*(str(p.relative_to(ROOT)) for p in PAGES), "CONTRIBUTING.md", "CHANGELOG.md"])
def test_every_path_a_page_names_exists(page: Path) -> None:
    missing = []
    for found in REPO_PATH.findall(page.read_text(encoding="utf-8")):
        path = found.rstrip(".,:;")
        braces = re.fullmatch(r"(.*)\{(.+)\}(.*)", path)
        options = [braces[1] + alt + braces[3] for alt in braces[2].split(",")] if braces else [path]
        missing += [p for p in options if not glob.glob(str(ROOT / p))]
    assert not missing, f"{page.relative_to(ROOT)} names paths that do not exist: {sorted(set(missing))}"


def _spelling(flag: str) -> str:
    """pytest's help shows one spelling of an option with aliases (`--junit-xml` for `--junitxml` too)."""
    return flag.split("=")[0].replace("-", "").replace("_", "")


def test_every_option_a_command_passes_is_one_pytest_knows() -> None:
    known = {_spelling(flag) for flag in re.findall(r"(?<![\w-])(--[a-z][\w-]*)", _help())}
    unknown = []
    for block in BLOCKS:
        text = block.text.replace("\\\n", " ")
        for invocation in re.findall(r"\bpytest\b(?![\w.-])([^\n;&|]*)", text):
            unknown += [f"{block.where}: {flag}" for flag in re.findall(r"(?<![\w-])(--[a-z][\w-]*)", invocation)
                        if _spelling(flag) not in known]
    assert not unknown, f"options pytest does not register: {unknown}"


def test_the_options_reference_lists_every_option_the_plugin_registers() -> None:
    group = _plugin_help()
    flags = re.findall(r"^  (--[\w-]+)", group, re.M)
    envs = re.findall(r"\[env\s+(\w+)", group)
    inis = re.findall(r"ini\s+(\w+)\]", group)
    assert len(flags) > 30 and len(envs) == len(flags) and len(inis) == len(flags) - 1  # the API key has no ini key
    table = _hook().options_markdown()
    missing = [f for f in flags if f"`{f}" not in table] + [e for e in envs if f"`{e}`" not in table] + [
        i for i in inis if f"`{i}`" not in table]
    assert not missing, f"docs/options.md's table lacks {missing}"
    page = (ROOT / "docs" / "options.md").read_text(encoding="utf-8")
    assert _hook().MARKER in page, "docs/options.md lost the marker the table replaces"
