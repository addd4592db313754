"""Report hooks: a row per check from pytest's reports; at the session's end the report model, built once from the
rows and the run (cached in config.stash), its exit code set; then each writer renders the model: the conformance
report file, the terminal summary, pytest-html's summary and environment table. JUnit properties and pytest-html's
results table render each row as it is made."""

from __future__ import annotations

import json
from collections.abc import Generator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from . import gate, report, report_gaie, report_html, report_markdown, report_terminal
from .fixtures import VERDICT_KEY
from .report import ROWS_KEY, Report
from .rows import Row, RowOutcome, row_for, skipped_reason
from .run import RUN_KEY, Run

REPORT_KEY = pytest.StashKey[Report]()
STARTED_KEY = pytest.StashKey[datetime]()
MARKS_KEY = pytest.StashKey[dict[str, str]]()  # under --vllm-shard: each check's level mark, by test id
GAIE_KEY = pytest.StashKey[list[str]]()  # what --vllm-gaie-report wrote, or why nothing, for the terminal
# A test is a check (a row of the reports) when it judges a target or a panel, or enforces a verdict.
_CHECKS = {"vllm_target", "vllm_panel", "vllm_consumer", "vllm_enforce"}
# pytest's outcome words (the terminal's "73 passed, 9 skipped, 2 inconclusive"; its own and the one this plugin
# gives an inconclusive check): the rows' words, in their order
_TALLIED = tuple(outcome.value for outcome in RowOutcome)


class ReportHooks:
    """Registered by the plugin at configure time; holds no state of its own (all in config.stash)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        config.stash[ROWS_KEY] = []
        config.stash[MARKS_KEY] = {}
        config.stash[STARTED_KEY] = datetime.now(UTC)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]
                                  ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        test_report = yield
        if not _CHECKS & set(getattr(item, "fixturenames", ())):
            return test_report  # not a check: no row
        verdict = item.stash.get(VERDICT_KEY, None)
        row = row_for(item, test_report, verdict, gate.row_level(item, verdict.level if verdict else None))
        if row is None:
            return test_report
        # junitxml writes the teardown report's properties, which pytest takes from the item
        item.user_properties.extend(row.junit_properties())
        # On the report: pytest-xdist sends reports from its workers to the controller, which collects the rows
        # in pytest_runtest_logreport (as a serial run does, from the row itself). As JSON text: execnet's own
        # serializer is pure Python, and a fleet's row holds a result per server.
        worker = hasattr(item.config, "workeroutput")
        test_report.vllm_row = row.to_wire() if worker else row  # type: ignore[attr-defined]
        if worker:  # pytest asks for the outcome at every report, the row is needed once: not decoded for it
            test_report.vllm_outcome = row.outcome.value  # type: ignore[attr-defined]
        if item.config.stash[RUN_KEY].settings.vllm_shard is not None:
            # the check's own level (its mark), which the merge gives the check of several shards' targets
            try:
                mark = gate.marked_level(item)
            except gate.LevelError:
                mark = None
            test_report.vllm_mark = mark.value if mark else None  # type: ignore[attr-defined]
        if item.config.pluginmanager.hasplugin("html"):
            import pytest_html  # its extras, only when its plugin is active

            extras = list(getattr(test_report, "extras", []))
            if row.evidence:
                extras.append(pytest_html.extras.json(report_html.evidence(row), name="evidence"))
            reason = report_html.shown_reason(row)
            if reason:
                extras.append(pytest_html.extras.text(reason, name="reason"))
            test_report.extras = extras  # type: ignore[attr-defined]
        return test_report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if hasattr(self.config, "workeroutput"):
            return  # a pytest-xdist worker: the controller collects the rows (and writes the reports)
        row = row_of(report)
        if row is not None:
            self.config.stash[ROWS_KEY].append(row)
            self.config.stash[RUN_KEY].keep()
            mark = getattr(report, "vllm_mark", None)
            if mark:
                self.config.stash[MARKS_KEY][row.id] = mark

    @pytest.hookimpl(tryfirst=True)
    def pytest_report_teststatus(self, report: pytest.TestReport, config: pytest.Config) -> Any:
        if _outcome_of(report) == RowOutcome.INCONCLUSIVE:
            return RowOutcome.INCONCLUSIVE.value, "I", ("INCONCLUSIVE", {"yellow": True})
        return None

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        # pytest-xdist's controller: the workers observed the servers; keep what they report of them.
        found = getattr(node, "workeroutput", {}).get("vllm_implementations")
        if found:
            self.config.stash[RUN_KEY].add_worker_implementations(json.loads(found))

    def pytest_terminal_summary(self, terminalreporter: Any, config: pytest.Config) -> None:
        model = config.stash.get(REPORT_KEY, None)
        if model is None or not model.rows:
            return
        terminalreporter.section("vLLM metrics conformance")
        for line in report_terminal.lines(model, width=terminalreporter._tw.fullwidth):
            terminalreporter.line(line)
        for line in config.stash.get(GAIE_KEY, []):
            terminalreporter.line(line)

    @pytest.hookimpl(tryfirst=True)  # as the plugin's: release what the reports no longer need
    def pytest_unconfigure(self, config: pytest.Config) -> None:
        config.stash[ROWS_KEY] = []
        if REPORT_KEY in config.stash:
            del config.stash[REPORT_KEY]

    @pytest.hookimpl(tryfirst=True)  # before pytest-html writes its report, and the terminal its summary
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        config = session.config
        run = config.stash[RUN_KEY]
        worker = getattr(config, "workeroutput", None)
        if worker is not None:  # a pytest-xdist worker: the controller writes the reports and sets the exit code
            worker["vllm_implementations"] = json.dumps(run.implementations_observed_here())
            return
        model = config.stash[REPORT_KEY] = _build(session, run)
        _fill_metadata(config, run, model)
        if model.path:
            path = Path(model.path).expanduser()
            path.parent.mkdir(parents=True, exist_ok=True)  # as --junitxml and --html do
            if path.suffix in (".md", ".markdown"):
                report.write_text(path, report_markdown.summary(model))
            else:
                report.write_data(path, model)
        if run.settings.vllm_gaie_report:
            config.stash[GAIE_KEY] = _write_gaie(model, run)
        if model.exit_code != session.exitstatus:
            session.exitstatus = model.exit_code


def _write_gaie(model: Report, run: Run) -> list[str]:
    """--vllm-gaie-report: the GAIE reports written, as the terminal names them."""
    settings = run.settings
    assert settings.vllm_gaie_report is not None
    written = report_gaie.write(model, Path(settings.vllm_gaie_report).expanduser(), settings.vllm_gaie_version,
                                settings.vllm_gaie_implementation)
    if not written:
        return ["GAIE report: none written: no model-server protocol check judged a target (test_model_server.py "
                "was not selected, or no target was observed)"]
    return [f"GAIE report: {path}" for path in written]


def _outcome_of(report: pytest.TestReport) -> RowOutcome | None:
    """The outcome of the row a report carries, without making the row (pytest asks for it at every phase)."""
    row = getattr(report, "vllm_row", None)
    if row is None or isinstance(row, Row):
        return row.outcome if row else None
    return RowOutcome(report.vllm_outcome)


def row_of(report: pytest.TestReport) -> Row | None:
    """The row a check's report carries: the row itself, or its plain data from a pytest-xdist worker."""
    row = getattr(report, "vllm_row", None)
    return row if row is None or isinstance(row, Row) else Row.from_wire(row)


def _build(session: pytest.Session, run: Run) -> Report:
    """The one report model of the run."""
    config = session.config
    cluster = run.cluster()
    layout = [{"dashboard": p.dashboard, "dashboardTitle": p.dashboard_title, "title": p.title, "row": p.row,
               "grid": list(p.grid) if p.grid else None} for p in run.panels]
    rows: list[Row] = config.stash[ROWS_KEY]
    return report.build(rows, run.settings, implementations=run.implementations(),
                        cluster=cluster if run.settings.vllm_namespace else None, layout=layout,
                        started=config.stash[STARTED_KEY], pytest_status=session.exitstatus,
                        tests_failed=session.testsfailed, tally=_tally(session),
                        marks=config.stash[MARKS_KEY], **_shard_targets(run))


def _shard_targets(run: Run) -> dict[str, list[str]]:
    """Under --vllm-shard: the fleet every shard saw, and this shard's part of it (discovered at collection)."""
    if run.settings.vllm_shard is None:
        return {}
    try:
        return {"fleet": run.fleet_names(), "checked": run.target_names()}
    except pytest.UsageError:  # discovery failed: the run said so already
        return {}


def _tally(session: pytest.Session) -> report.Tally | None:
    """What pytest itself counted, for a summary whose numbers match the terminal's and the collection (None
    without the terminal, `-p no:terminal`: pytest counted nothing, the summary counts the checks)."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return None
    stats: dict[str, list[Any]] = reporter.stats
    return report.Tally(session.testscollected, {name: len(stats.get(name, [])) for name in _TALLIED})


def _fill_metadata(config: pytest.Config, run: Run, model: Report) -> None:
    if not config.pluginmanager.hasplugin("metadata"):
        return
    from pytest_metadata.plugin import metadata_key  # only with pytest-metadata active

    config.stash[metadata_key].update(report_html.metadata(model, run.settings))


class HtmlHooks:
    """pytest-html 4 hooks; registered only when pytest-html is active."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_html_report_title(self, report: Any) -> None:
        report.title = "vLLM metrics conformance"

    def pytest_html_results_table_header(self, cells: list[str]) -> None:
        cells.insert(2, '<th class="sortable" data-column-type="target">Target</th>')
        cells.insert(3, '<th class="sortable" data-column-type="level">Level</th>')
        # pytest-html's Result says "Skipped" for an inconclusive check (its filters know pytest's outcomes only)
        cells.insert(4, '<th class="sortable" data-column-type="outcome">Outcome</th>')

    def pytest_html_results_table_row(self, report: pytest.TestReport, cells: list[str]) -> None:
        # Every row gets exactly the header's cells, collection errors included (pytest-html #728).
        cells[2:2] = report_html.table_cells(row_of(report))

    def pytest_html_results_table_html(self, report: pytest.TestReport, data: list[str]) -> None:
        # A skip's log is pytest's (path, line, "Skipped: why") tuple as text: show the reason only.
        reason = skipped_reason(report)
        if reason is not None and not hasattr(report, "wasxfail"):
            row = row_of(report)
            data[:] = [report_html.escaped(row.reason if row and row.reason else reason)]

    def pytest_html_results_summary(self, prefix: list[str], summary: list[str], postfix: list[str],
                                    session: pytest.Session) -> None:
        model = session.config.stash.get(REPORT_KEY, None)
        if model is not None and model.rows:
            prefix.append(report_html.summary(model))
