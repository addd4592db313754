"""pytest hooks, and nothing else: options, configuration, test generation, report header."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from . import epp_config, gate
from . import settings as _settings
from .catalog import CatalogError, load_catalog
from .consumers import ConsumerError, consumer_id, load_rules, with_recorded
from .fixtures import (  # noqa: F401  (fixtures are registered by being importable from the plugin)
    vllm_catalog,
    vllm_cluster,
    vllm_delta,
    vllm_enforce,
    vllm_judge_panel,
    vllm_level,
    vllm_observation,
    vllm_observations,
    vllm_pods,
    vllm_policy,
    vllm_prometheus,
    vllm_scraper,
    vllm_settings,
    vllm_target,
    vllm_targets,
    vllm_workload,
)
from .outcome import Level
from .readers import DashboardError, load_dashboards
from .run import RUN_KEY, Run, conformance_dir
from .shard import judges_fleet
from .targets import sim_target_names, url_targets

_MARKERS = ("prefix_cache: checks of vLLM's prefix cache (select out with -m 'not prefix_cache')", *gate.MARKERS)


def pytest_addoption(parser: pytest.Parser) -> None:
    _settings.add_options(parser)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    for marker in _MARKERS:
        config.addinivalue_line("markers", marker)
    if config.option.help or config.option.version:
        return
    resolved = _settings.resolve(config)
    try:
        catalog = load_catalog(resolved.vllm_catalog)
        panels = load_dashboards(resolved.grafana_dashboard)
        rules = load_rules(resolved.prometheus_rules)
        if resolved.vllm_epp_config is not None:
            rules += epp_config.readers(epp_config.from_file(resolved.vllm_epp_config))
        panels, consumers = with_recorded(panels, rules)
    except (CatalogError, DashboardError, ConsumerError, epp_config.ConfigError) as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[RUN_KEY] = Run(resolved, catalog, panels, consumers)
    from ._hooks_report import HtmlHooks, ReportHooks  # the report layer loads for a run only (~20 ms; not --help)

    config.pluginmanager.register(ReportHooks(config), "vllm-metrics-report")
    if config.pluginmanager.hasplugin("html"):
        config.pluginmanager.register(HtmlHooks(config), "vllm-metrics-html")
    # With a target and no test paths, run the bundled suite (explicit paths behave as usual).
    if resolved.has_targets and config.args_source != pytest.Config.ArgsSource.ARGS:
        config.args = [str(conformance_dir())]


@pytest.hookimpl(tryfirst=True)  # before pytest's own end-of-run garbage collections, which then scan less
def pytest_unconfigure(config: pytest.Config) -> None:
    run = config.stash.get(RUN_KEY, None)
    if run is not None:
        run.close(process_ends=hasattr(config, "workerinput"))  # a pytest-xdist worker's process ends with it


def pytest_report_header(config: pytest.Config) -> list[str]:
    run = config.stash.get(RUN_KEY, None)
    if run is None or not run.settings.has_targets:
        return []
    settings = run.settings
    # Pods are discovered at collection, after this header: name the namespace, not its pods.
    names = [t.name for t in url_targets(settings.vllm_url, settings.vllm_arch)] + sim_target_names(settings.vllm_sim)
    if settings.vllm_namespace:
        names.append(f"the vLLM pods of namespace {settings.vllm_namespace}")
    shard = settings.vllm_shard
    readers = ("judges the fleet's readers (panels, rules, scalers, the endpoint picker)" if judges_fleet(shard)
               else "leaves the fleet's readers to shard 0")
    sharded = [] if shard is None else [
        f"  {shard}: checks the targets at positions {shard.index}, {shard.index + shard.count}, "
        f"{shard.index + 2 * shard.count}, ... of their (namespace, name) order; {readers}"]
    return [f"vllm-metrics: targets: {', '.join(names)}; catalog of {len(run.catalog)} families", *sharded,
            f"  {settings.bounds()}", *(f"  {line}" for line in settings.header_lines()),
            *(f"  note: {note}" for note in settings.notes)]


# The README's first example: what to type when pytest found nothing to run and no target was given.
FIRST_EXAMPLE = "pytest --vllm-sim=x86_64 --vllm-sim=arm64-cpu --html=report.html --self-contained-html"
# How many tests the run collected before -k and -m deselected any (under pytest-xdist, as its workers say).
_COLLECTED_KEY = pytest.StashKey[int]()


@pytest.hookimpl(tryfirst=True)  # before -k and -m deselect
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    config.stash[_COLLECTED_KEY] = len(items)
    output = getattr(config, "workeroutput", None)  # a pytest-xdist worker: tell the controller
    if output is not None:
        output["vllm_collected"] = len(items)
    run = config.stash.get(RUN_KEY, None)
    if run is not None and not judges_fleet(run.settings.vllm_shard):
        # The fleet's readers are shard 0's: a user's own test of a panel or consumer is not run on the other shards
        # (the bundled suite's files for them are not even collected: gate.FLEET_LEVEL).
        readers = [item for item in items if {"vllm_panel", "vllm_consumer"} & set(getattr(item, "fixturenames", ()))]
        if readers:
            config.hook.pytest_deselected(items=readers)
            items[:] = [item for item in items if item not in readers]


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's controller: a worker finished
def pytest_testnodedown(node: Any, error: Any) -> None:
    collected = getattr(node, "workeroutput", {}).get("vllm_collected", 0)
    node.config.stash[_COLLECTED_KEY] = max(node.config.stash.get(_COLLECTED_KEY, 0), collected)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int,
                            config: pytest.Config) -> None:
    # Installed, typed `pytest` where there are no tests and gave no target: say how to run the bundled suite.
    # Only then: a run that collected tests of its own (and perhaps deselected them all) is left as it is.
    run = config.stash.get(RUN_KEY, None)
    if (run is None or run.settings.has_targets or exitstatus != pytest.ExitCode.NO_TESTS_COLLECTED
            or config.stash.get(_COLLECTED_KEY, 0)):
        return
    terminalreporter.line(f"vllm-metrics: no test here and no vLLM target given; to run the bundled conformance "
                          f"suite pass --vllm-namespace=NAMESPACE, --vllm-url=URL or --vllm-sim, e.g. "
                          f"{FIRST_EXAMPLE}")


@pytest.hookimpl(tryfirst=True)
def pytest_collection(session: pytest.Session) -> None:
    # Discover pods before any module is collected, so that a discovery error is one usage error
    # (exit code 4) rather than a collection error per test module.
    run = session.config.stash.get(RUN_KEY, None)
    if run is not None:
        run.target_names()
        if judges_fleet(run.settings.vllm_shard):  # another shard leaves the fleet's readers to shard 0
            run.read_cluster_consumers()  # rules, dashboards, scalers of the namespace: test ids, so now


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    # The bundled suite's optional parts are collected only when asked for (gate.collects).
    run = config.stash.get(RUN_KEY, None)
    if run is None or collection_path.parent != conformance_dir():
        return None
    return None if gate.collects(collection_path.name, run.settings, bool(run.panels), bool(run.consumers)) else True


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    run = metafunc.config.stash.get(RUN_KEY, None)
    if run is None:
        return
    if "vllm_target" in metafunc.fixturenames:
        names = run.target_names()
        if names:
            metafunc.parametrize("vllm_target", names, indirect=True, scope="session")
        else:
            shard, fleet = run.settings.vllm_shard, len(run.fleet_names())
            where = "1 target, in another shard" if fleet == 1 else f"{fleet} targets, all in other shards"
            reason = (f"no vLLM target in {shard}: the fleet has {where}" if shard is not None and fleet
                      else "no vLLM target: pass --vllm-url, --vllm-sim or --vllm-namespace")
            metafunc.parametrize("vllm_target", [pytest.param(None, marks=pytest.mark.skip(reason=reason))],
                                 indirect=True, ids=["no-target"])
    # every reader of the metrics must get its data: a MUST check (its verdict may lower it, a partial panel)
    if "vllm_panel" in metafunc.fixturenames:
        metafunc.parametrize("vllm_panel", [pytest.param(p, id=p.id, marks=gate.mark(Level.MUST))
                                            for p in run.panels])
    if "vllm_consumer" in metafunc.fixturenames:
        metafunc.parametrize("vllm_consumer", [pytest.param(c, id=consumer_id(c), marks=gate.mark(Level.MUST))
                                               for c in run.consumers])
    for argname, entries in (("vllm_entry", run.catalog.entries), ("vllm_moving_entry", run.catalog.moving())):
        if argname in metafunc.fixturenames:
            metafunc.parametrize(argname, [
                pytest.param(entry, id=entry.id, marks=_marks(entry.feature, entry.level)) for entry in entries
            ])


def _marks(feature: str, level: Level) -> list[pytest.MarkDecorator]:
    marks = [gate.mark(level)]
    if feature == "prefix_caching":
        marks.append(pytest.mark.prefix_cache)
    return marks
