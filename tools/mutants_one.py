"""Score one module against its own unit tests, in a scratch copy of the working tree.

    python tools/mutants_one.py MODULE [TEST_FILE ...] [--keep DIR]

The pytest-facing modules (settings, run, plugin, fixtures, merge) are used through pytest runs, so their unit
tests include in-process pytester runs, which the whole-package run (`tox -e mutants`) leaves out for their cost.
This scores one module with the tests of its own test module (tests/test_MODULE.py unless TEST_FILE is given),
pytester runs included, in two passes. The first lets mutmut learn which tests reach which function, running
only one mutant per function; the second runs every mutant from a fresh process. With pytester runs in the
pass that learns the mapping, mutmut 3.8 judged mutants as surviving that their tests kill when run alone:
what that pass leaves in the process answers for the mutants forked from it.

The scratch copy holds the tracked and untracked (not ignored) files, with [tool.mutmut] narrowed to the module
and its tests; it is removed at the end unless --keep names it. The table is tools/mutants_report.py's.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def toml_list(values: list[str]) -> str:
    return "[" + ", ".join(f'"{value}"' for value in values) + "]"


def narrowed(pyproject: str, module: str, tests: list[str]) -> str:
    """pyproject.toml with [tool.mutmut] mutating the one module and running the given tests."""
    for key, values in (("only_mutate", [f"pytest_vllm_metrics/{module}.py"]),
                        ("pytest_add_cli_args_test_selection", tests)):
        pyproject, count = re.subn(rf"^{key} = \[.*?\]$", f"{key} = {toml_list(values)}", pyproject,
                                   flags=re.DOTALL | re.MULTILINE)
        if count != 1:
            raise SystemExit(f"pyproject.toml: no single `{key} = [...]` in [tool.mutmut] to narrow")
    return pyproject


def copy_tree(into: Path) -> None:
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                            capture_output=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, into / name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("module", help="a module of pytest_vllm_metrics, e.g. settings")
    parser.add_argument("tests", nargs="*", help="test files (default: tests/test_MODULE.py)")
    parser.add_argument("--keep", type=Path, help="build the scratch copy here and keep it")
    args = parser.parse_args(argv)
    if not (ROOT / "pytest_vllm_metrics" / f"{args.module}.py").is_file():
        parser.error(f"no module pytest_vllm_metrics/{args.module}.py")
    tests = args.tests or [f"tests/test_{args.module}.py"]
    work = args.keep or Path(tempfile.mkdtemp(prefix=f"mutants-{args.module}-"))
    if work.exists() and any(work.iterdir()):
        parser.error(f"{work} is not empty: name a new directory")
    work.mkdir(parents=True, exist_ok=True)
    try:
        copy_tree(work)
        pyproject = work / "pyproject.toml"
        pyproject.write_text(narrowed(pyproject.read_text(), args.module, tests))
        git = ["git", "-c", "user.name=mutants", "-c", "user.email=mutants@localhost"]
        for step in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "scratch copy"]):
            subprocess.run([*git, *step], cwd=work, check=True)
        mutmut = [sys.executable, "-m", "mutmut", "run", "--max-children", str(os.cpu_count() or 2)]
        env = {**os.environ, "MUTANTS_WITH_PYTESTER": "1"}
        functions = f"pytest_vllm_metrics.{args.module}.*"
        subprocess.run([*mutmut, f"{functions}__mutmut_1"], cwd=work, env=env, check=True,
                       stdout=subprocess.DEVNULL)
        subprocess.run([*mutmut, functions], cwd=work, env=env, check=True, stdout=subprocess.DEVNULL)
        return subprocess.run([sys.executable, str(ROOT / "tools" / "mutants_report.py"), "--mutants",
                               str(work / "mutants"), "--equivalent", str(ROOT / "mutants-equivalent.toml")],
                              check=False).returncode
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
