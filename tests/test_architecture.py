"""The package's naming rule, checked on its imports: a module whose name starts with an underscore is a helper
private to exactly one other module; every other module is a box of the data flow and has its row in
docs/architecture.md. Users' public surface is the package root (`pytest_vllm_metrics.__all__`), the fixtures
and the simulator."""

from __future__ import annotations

import ast
import importlib.util
import tomllib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "pytest_vllm_metrics"
DOC = Path(__file__).parent.parent / "docs" / "architecture.md"


def _module(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)


def _imports(path: Path) -> set[str]:
    """The package modules `path` imports (relative and absolute imports, `from . import x` included)."""
    here = _module(path).rsplit(".", 1)[0] if path.name != "__init__.py" else _module(path.parent)
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = here.split(".")[: len(here.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("pytest_vllm_metrics")}


MODULES = {_module(p): p for p in PACKAGE.rglob("*.py")}
PRIVATE = sorted(m for m in MODULES if m.rsplit(".", 1)[-1].startswith("_") and not m.endswith("__init__")
                 and not m.endswith("__main__"))


@pytest.mark.parametrize("private", PRIVATE)
def test_an_underscored_module_is_the_helper_of_exactly_one_module(private: str) -> None:
    users = sorted(m for m, path in MODULES.items() if m != private and private in _imports(path))
    assert len(users) == 1, f"{private} is imported by {users or 'nothing'}: underscore it only as one module's helper"


def test_every_public_module_has_its_row_in_the_architecture_doc() -> None:
    doc = DOC.read_text(encoding="utf-8")
    public = [m for m in MODULES if m not in PRIVATE and not m.endswith(("__init__", "__main__"))]
    missing = [m for m in public if f"`{m.removeprefix('pytest_vllm_metrics.').replace('.', '/')}.py`" not in doc
               and not m.startswith("pytest_vllm_metrics.sim.")]
    assert not missing, f"docs/architecture.md has no row for {missing}"


def test_the_rule_sees_the_known_helpers() -> None:
    # a rule that finds nothing would pass whatever the code does
    known = {"pytest_vllm_metrics._fastparse", "pytest_vllm_metrics._grafana", "pytest_vllm_metrics._hooks_report",
             "pytest_vllm_metrics._html", "pytest_vllm_metrics._markdown"}
    assert known <= set(PRIVATE)


def test_every_module_has_its_test_module() -> None:
    # tests/test_<name>.py for pytest_vllm_metrics/<name>.py (a helper's leading underscore dropped): a new module
    # comes with its tests. The simulator (sim/) is tested as a whole, in tests/test_sim.py.
    tests = PACKAGE.parent / "tests"
    top = sorted(p for p in PACKAGE.glob("*.py") if p.name != "__init__.py")
    assert len(top) > 40 and PACKAGE / "_markdown.py" in top  # a rule that sees no module would pass whatever
    missing = [p.name for p in top if not (tests / f"test_{p.stem.lstrip('_')}.py").is_file()]
    assert not missing, f"modules without tests/test_<name>.py: {missing}"


def test_every_module_is_scored_by_mutation_testing() -> None:
    # the whole-package run (pyproject's [tool.mutmut]) or tools/mutants_one.py, one pytest-facing module at a time;
    # tools/mutants_report.py's table names them all
    root = PACKAGE.parent
    whole = {Path(name).stem for name in tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
             ["tool"]["mutmut"]["only_mutate"]}
    one_at_a_time = {"settings", "run", "plugin", "fixtures", "merge"}
    spec = importlib.util.spec_from_file_location("mutants_report", root / "tools" / "mutants_report.py")
    assert spec is not None and spec.loader is not None
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)
    top = {p.stem for p in PACKAGE.glob("*.py") if p.name != "__init__.py"}
    assert len(top) > 40 and not whole & one_at_a_time
    assert whole | one_at_a_time == top == set(report.SCORED), "score every module, and name it in the report"


def test_no_module_is_over_500_lines() -> None:
    long = {name: n for name, path in MODULES.items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > 500}
    assert not long, f"split by concern: {long}"


def test_the_plugins_version_has_one_source() -> None:
    # pyproject.toml reads it from versions.py, the package root re-exports it: the installed metadata agrees
    from importlib.metadata import version

    import pytest_vllm_metrics
    from pytest_vllm_metrics import versions

    assert version("pytest-vllm-metrics") == versions.__version__ == pytest_vllm_metrics.__version__
    assert 'dynamic = ["version"]' in (PACKAGE.parent / "pyproject.toml").read_text(encoding="utf-8")


# -- a check's level: exactly one must/should/may mark on every bundled check ------------------------------------

DATA = PACKAGE.parent / "tests" / "data"
LEVEL_MARKS = {"must", "should", "may"}
# every optional part of the bundled suite asked for (collection only: nothing is contacted)
EVERY_PART = ("--vllm-sim=x86_64", f"--grafana-dashboard={DATA / 'dashboards'}", f"--prometheus-rules={DATA / 'rules'}",
              "--prometheus-url=http://127.0.0.1:9", "--vllm-exclusive", "--vllm-epp-url=http://127.0.0.1:9")


def _levels(items: list[pytest.Item]) -> dict[str, list[str]]:
    return {item.nodeid: [m.name for m in item.iter_markers() if m.name in LEVEL_MARKS] for item in items}


@pytest.mark.parametrize("args", [EVERY_PART, ("--vllm-sim=x86_64", f"--grafana-dashboard={DATA / 'upgrade'}",
                                               "--vllm-upgrade-to=0.13.0")], ids=["suite", "upgrade"])
def test_every_bundled_check_has_exactly_one_level_mark(pytester: pytest.Pytester, args: tuple[str, ...]) -> None:
    items, _ = pytester.inline_genitems(*args)
    modules = {item.nodeid.split("::")[0].rsplit("/", 1)[-1] for item in items}
    # the rule sees every part of the suite (a rule that collects nothing would pass whatever the marks)
    expected = {p.name for p in (PACKAGE.parent / "conformance").glob("test_*.py")} - {"test_upgrade.py"}
    assert modules == (expected if args is EVERY_PART else {"test_upgrade.py"})
    wrong = {nodeid: marks for nodeid, marks in _levels(items).items() if len(marks) != 1}
    assert not wrong, f"checks without exactly one of @pytest.mark.must/should/may: {wrong}"


def test_selecting_by_level_keeps_each_relation_at_its_catalog_level(pytester: pytest.Pytester) -> None:
    # relations.toml: spec-decode accepted <= drafted and LoRA's info refreshed are MUST (their entries' level),
    # acceptance per position SHOULD
    def selected(level: str) -> list[str]:
        items, recorder = pytester.inline_genitems("--vllm-sim=x86_64", "-m", level, "-k", "test_relation")
        dropped = {item.nodeid for call in recorder.getcalls("pytest_deselected") for item in call.items}
        return sorted(item.name for item in items if item.nodeid not in dropped)

    assert selected("must") == ["test_relation[lora-info-refreshed]",
                                "test_relation[spec_decode-accepted-at-most-drafted]"]
    assert selected("should") == ["test_relation[spec_decode-acceptance-per-position]"]


# -- layers ---------------------------------------------------------------------------------------------------
# From the ground up; a module imports only from its own layer or below, never up (docs/architecture.md).

LAYERS: dict[int, tuple[str, ...]] = {
    1: ("outcome", "versions", "engines", "gaie", "targets", "shard", "settings", "catalog", "data", "schemas",
        "sim.profiles"),
    2: ("_fastparse", "snapshot", "scrape", "traffic", "features", "observe", "kube", "multinode", "_launch",
        "cluster_readers", "prometheus"),
    3: ("diagnose", "evaluate", "accounting", "relations", "hygiene", "promql", "readers", "_grafana", "_grafana_vars",
        "series", "why_empty", "fleet", "judging", "consumers", "upgrade", "epp", "model_server",
        "epp_config", "epp_errors",
        "sim", "sim.engine", "sim.server", "sim._openmetrics", "sim.epp", "sim.kubeapi", "sim.__main__",
        "sim.other_engines"),
    4: ("rows", "gate", "implementations", "report", "report_terminal", "report_html", "report_markdown", "report_gaie",
        "_html", "_markdown", "merge"),
    5: ("plugin", "fixtures", "_hooks_report", "run"),
}
LAYER_OF = {f"pytest_vllm_metrics.{name}": layer for layer, names in LAYERS.items() for name in names}
ROOT = "pytest_vllm_metrics"  # the package's public surface: re-exports only, imported by none of its modules
PACKAGES = {m.removesuffix(".__init__"): path for m, path in MODULES.items()}  # a package by its own name


def _module_imports(path: Path) -> list[tuple[str, bool, int, str]]:
    """(imported module, inside a function, line, the line's comment) for each import of a package module."""
    here = _module(path).rsplit(".", 1)[0] if path.name != "__init__.py" else _module(path.parent)
    lines = path.read_text(encoding="utf-8").splitlines()
    found = []
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nested = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
              for n in ast.walk(f) if isinstance(n, (ast.Import, ast.ImportFrom))}
    checking = {id(n) for i in ast.walk(tree) if isinstance(i, ast.If) and "TYPE_CHECKING" in ast.unparse(i.test)
                for n in ast.walk(i) if isinstance(n, (ast.Import, ast.ImportFrom))}
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom) or not node.level:
            continue
        parts = here.split(".")[: len(here.split(".")) - node.level + 1]
        base = ".".join(parts + ([node.module] if node.module else []))
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in PACKAGES else base for a in node.names]
        comment = lines[node.lineno - 1].partition("#")[2]
        for name in dict.fromkeys(names):
            if name in PACKAGES:
                found.append((name, id(node) in nested or id(node) in checking, node.lineno, comment))
    return found


def test_every_module_has_its_layer() -> None:
    missing = sorted(m for m in PACKAGES if m not in LAYER_OF and m != ROOT)
    assert not missing, f"add {missing} to LAYERS in tests/test_architecture.py (and its row to docs/architecture.md)"


@pytest.mark.parametrize("module", sorted(m for m in PACKAGES if m in LAYER_OF))
def test_no_import_runs_back_up_the_layers(module: str) -> None:
    upward = [f"{name} (layer {LAYER_OF.get(name, 0)}, line {line})" for name, _, line, _ in
              _module_imports(PACKAGES[module]) if name == ROOT or LAYER_OF[name] > LAYER_OF[module]]
    assert not upward, f"{module} (layer {LAYER_OF[module]}) imports {upward}: depend downward only"


@pytest.mark.parametrize("module", sorted(m for m in PACKAGES if m in LAYER_OF))
def test_an_import_inside_a_function_says_it_saves_start_up_cost(module: str) -> None:
    # deferring an import is for start-up cost only (the kubernetes client, the simulator's server stack), and
    # says so; an import deferred to dodge a circle is a layering mistake
    silent = [f"{name} (line {line})" for name, inner, line, comment in _module_imports(PACKAGES[module])
              if inner and not comment.strip()]
    assert not silent, f"{module} imports {silent} inside a function without a comment saying why"


def test_the_layer_rule_sees_an_upward_import() -> None:
    # a rule that finds nothing would pass whatever the code does: report (4) is above evaluate (3)
    assert LAYER_OF["pytest_vllm_metrics.report"] > LAYER_OF["pytest_vllm_metrics.evaluate"]
    assert any(name == "pytest_vllm_metrics.readers" for name, *_ in
               _module_imports(PACKAGES["pytest_vllm_metrics.judging"]))


@pytest.mark.parametrize("module", sorted(PACKAGES))
def test_no_private_name_is_imported_across_modules(module: str) -> None:
    # public seams between modules: a name with an underscore is its module's own (a private helper module, imported
    # whole by its one owner, is the other rule's)
    borrowed = []
    for node in ast.walk(ast.parse(PACKAGES[module].read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            borrowed += [f"{node.module}.{a.name} (line {node.lineno})" for a in node.names
                         if a.name.startswith("_") and not a.name.endswith("__") and node.module is not None]
    assert not borrowed, f"{module} imports private names {borrowed}: make them public where they are shared"
