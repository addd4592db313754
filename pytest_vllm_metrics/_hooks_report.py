"""Report hooks: rows per check, the JSON/YAML conformance report, terminal summary, pytest-html, exit code."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Generator
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from . import kube, report, upgrade
from .fixtures import VERDICT_KEY
from .outcome import EXIT_INCONCLUSIVE, Outcome
from .report import ROWS_KEY as ROWS
from .report import Row, skipped_reason
from .run import RUN_KEY, Run
from .targets import redact_url
from .versions import __version__

STARTED_KEY = pytest.StashKey[datetime]()
# A test is a check (a row of the reports) when it judges a target or a panel, or enforces a verdict.
_CHECKS = {"vllm_target", "vllm_panel", "vllm_consumer", "vllm_enforce"}
_LEVEL_ORDER = {"must": ("MUST",), "should": ("MUST", "SHOULD"), "may": ("MUST", "SHOULD", "MAY")}


class ReportHooks:
    """Registered by the plugin at configure time; holds no state of its own (all in config.stash)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        config.stash[report.ROWS_KEY] = []
        config.stash[STARTED_KEY] = datetime.now(UTC)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]
                                  ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        test_report = yield
        if not _CHECKS & set(getattr(item, "fixturenames", ())):
            return test_report  # not a check: no row
        verdict = item.stash.get(VERDICT_KEY, None)
        row = report.row_for(item, test_report, verdict)
        if row is None:
            return test_report
        # junitxml writes the teardown report's properties, which pytest takes from the item
        item.user_properties.extend([("vllm_target", row.target or "every target"), ("vllm_check", row.check),
                                     ("vllm_level", row.level), ("vllm_outcome", row.outcome)])
        # each target's own outcome, so that a CI tool reading JUnit sees which pod failed a check of several
        item.user_properties.extend((f"vllm_target_outcome:{name}", outcome)
                                    for name, outcome, _ in row.per_target() if name)
        # Plain data on the report: pytest-xdist sends reports from its workers to the controller, which
        # collects the rows in pytest_runtest_logreport (as a serial run does).
        test_report.vllm_row = asdict(row)  # type: ignore[attr-defined]
        if item.config.pluginmanager.hasplugin("html"):
            import pytest_html

            extras = list(getattr(test_report, "extras", []))
            if row.evidence:
                extras.append(pytest_html.extras.json(_html_evidence(row), name="evidence"))
            if row.reason and row.outcome != "passed":
                extras.append(pytest_html.extras.text(row.reason, name="reason"))
            test_report.extras = extras  # type: ignore[attr-defined]
        return test_report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        row = getattr(report, "vllm_row", None)
        if row is not None:
            self.config.stash[ROWS].append(Row(**row))

    @pytest.hookimpl(tryfirst=True)
    def pytest_report_teststatus(self, report: pytest.TestReport, config: pytest.Config) -> Any:
        row = getattr(report, "vllm_row", None)
        if row is not None and row["outcome"] == Outcome.INCONCLUSIVE:
            return "inconclusive", "I", ("INCONCLUSIVE", {"yellow": True})
        return None

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        # pytest-xdist's controller: the workers observed the servers; keep what they report of them.
        found = getattr(node, "workeroutput", {}).get("vllm_implementations")
        run = self.config.stash[RUN_KEY]
        if found and not run.worker_implementations:
            run.worker_implementations = json.loads(found)

    def pytest_terminal_summary(self, terminalreporter: Any, config: pytest.Config) -> None:
        rows = config.stash[report.ROWS_KEY]
        if not rows:
            return
        terminalreporter.section("vLLM metrics conformance")
        for line in report.terminal_lines(rows, width=terminalreporter._tw.fullwidth):
            terminalreporter.line(line)
        run = config.stash[RUN_KEY]
        forecast = upgrade.section(rows)
        if forecast is not None:
            for line in upgrade.terminal_lines(forecast):
                terminalreporter.line(line)
        cluster = run.cluster() if run.settings.vllm_namespace else None
        for note in cluster.notes if cluster is not None else ():  # informational calls that failed
            terminalreporter.line(f"note: {note}")
        engines = kube.engines_note(run.implementations())
        if engines:
            terminalreporter.line(f"note: {engines}")
        looked = [i["target"] for i in run.implementations() if (i.get("measured") or {}).get("looksExclusive")]
        if looked and not run.settings.vllm_exclusive:
            terminalreporter.line(f"note: on {report.named(looked)} the finished requests and prompt tokens moved by "
                                  f"exactly the workload, as if no other traffic reached them: if that holds, "
                                  f"--vllm-exclusive checks their counters exactly")
        path = run.settings.vllm_report
        if path:
            terminalreporter.line(f"conformance report: {path}")

    @pytest.hookimpl(tryfirst=True)  # as the plugin's: release what the reports no longer need
    def pytest_unconfigure(self, config: pytest.Config) -> None:
        config.stash[report.ROWS_KEY] = []

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        config = session.config
        run = config.stash[RUN_KEY]
        rows = config.stash[report.ROWS_KEY]
        worker = getattr(config, "workeroutput", None)
        if worker is not None:  # a pytest-xdist worker: the controller writes the reports and sets the exit code
            worker["vllm_implementations"] = json.dumps(run.implementations())
            return
        _fill_metadata(config, run)
        if run.settings.vllm_report:
            document = report.conformance_report(
                rows, environment=_environment(run), implementations=run.implementations(),
                features={"required": list(run.settings.vllm_require_feature),
                          "exempt": list(run.settings.vllm_exempt_feature)},
                started=config.stash[STARTED_KEY],
            )
            forecast = upgrade.section(rows)
            if forecast is not None:
                document["upgrade"] = forecast
            path = Path(run.settings.vllm_report).expanduser()
            path.parent.mkdir(parents=True, exist_ok=True)  # as --junitxml and --html do
            report.write(path, document)
        # The exit-code contract: failures below --vllm-fail-on (default: MUST) do not fail the run; with no
        # failure that counts, a check that could not observe makes it EXIT_INCONCLUSIVE (never 0, never 1).
        if exitstatus == pytest.ExitCode.TESTS_FAILED and rows:
            failing = _LEVEL_ORDER[run.settings.vllm_fail_on]
            counted = [r for r in rows if r.outcome == "error" or (r.outcome == "failed" and r.level in failing)]
            failed_items = sum(1 for r in rows if r.outcome in ("failed", "error"))
            if not counted and failed_items == session.testsfailed:
                session.exitstatus = pytest.ExitCode.OK
        if session.exitstatus == pytest.ExitCode.OK and any(r.outcome == Outcome.INCONCLUSIVE for r in rows):
            session.exitstatus = EXIT_INCONCLUSIVE


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
        data = getattr(report, "vllm_row", None)
        row = Row(**data) if data else None
        cells.insert(2, f'<td class="col-target">{_esc(row.shown_target() if row else "")}</td>')
        cells.insert(3, f'<td class="col-level">{_esc(row.level if row else "")}</td>')
        cells.insert(4, f'<td class="col-outcome">{_esc(row.outcome if row else "")}</td>')

    def pytest_html_results_table_html(self, report: pytest.TestReport, data: list[str]) -> None:
        # A skip's log is pytest's (path, line, "Skipped: why") tuple as text: show the reason only.
        reason = skipped_reason(report)
        if reason is not None and not hasattr(report, "wasxfail"):
            row = getattr(report, "vllm_row", None)
            data[:] = [_esc(row["reason"] if row and row["reason"] else reason)]

    def pytest_html_results_summary(self, prefix: list[str], summary: list[str], postfix: list[str],
                                    session: pytest.Session) -> None:
        config = session.config
        rows = config.stash[report.ROWS_KEY]
        if rows:
            run = config.stash[RUN_KEY]
            forecast = upgrade.section(rows)
            prefix.append(report.summary_html(rows, run.implementations(), panels=_layout(run),
                                              tally=_tally(session), upgrade=forecast,
                                              upgrade_html=upgrade.html(forecast) if forecast is not None else ""))


_EVIDENCE_TARGETS = 20  # targets whose evidence the HTML report carries per check (the JSON report: every one)


def _html_evidence(row: Row) -> dict[str, Any]:
    """A check's evidence for the HTML report: of a fleet, the targets that did not pass first, up to
    _EVIDENCE_TARGETS (1,000 pods' evidence on every check would make a report too large to open)."""
    if len(row.targets) <= _EVIDENCE_TARGETS or set(row.evidence) != set(row.targets):
        return row.evidence
    kept = sorted(row.targets, key=lambda name: row.targets[name]["outcome"] == "passed")[:_EVIDENCE_TARGETS]
    return {name: row.evidence[name] for name in kept} | {
        "more targets": f"{len(row.targets) - len(kept)} more, not shown here: every target's evidence is in the "
                        f"JSON report (--vllm-report=report.json)"}


def _layout(run: Run) -> list[dict[str, Any]]:
    """The dashboards' panels in their order, with where Grafana draws them: for the report's picture."""
    return [{"dashboard": p.dashboard, "dashboardTitle": p.dashboard_title, "title": p.title, "row": p.row,
             "grid": list(p.grid) if p.grid else None} for p in run.panels]


# pytest's outcome words (the terminal's "73 passed, 9 skipped, 2 inconclusive"), in the report's order
_TALLIED = ("passed", "failed", "error", "xfailed", "xpassed", "inconclusive", "skipped")


def _tally(session: pytest.Session) -> dict[str, Any]:
    """What pytest itself counted, for a summary whose numbers match the terminal's and the collection."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    stats: dict[str, list[Any]] = getattr(reporter, "stats", {})
    return {"collected": session.testscollected, "outcomes": {name: len(stats.get(name, [])) for name in _TALLIED}}


def _esc(text: str) -> str:
    import html

    return html.escape(text)


def _environment(run: Run) -> dict[str, Any]:
    settings = run.settings
    env: dict[str, Any] = {**report.python_environment(), "settings": {
        k: v for k, v in (line.split(": ", 1) for line in settings.header_lines())}}
    cluster = run.cluster() if settings.vllm_namespace else None
    if cluster is not None:
        env["kubernetes"] = {"context": cluster.context, "server": cluster.server, "version": cluster.version,
                             "namespace": cluster.namespace, "selectors": list(cluster.selectors),
                             "notes": cluster.notes,
                             "multiNodeWorkers": [worker.as_dict() for worker in cluster.workers]}
    return env


def _fill_metadata(config: pytest.Config, run: Run) -> None:
    if not config.pluginmanager.hasplugin("metadata"):
        return
    from pytest_metadata.plugin import metadata_key

    metadata = config.stash[metadata_key]
    settings = run.settings
    metadata["pytest-vllm-metrics"] = __version__
    if settings.vllm_url:
        metadata["vLLM URLs"] = ", ".join(redact_url(url) for url in settings.vllm_url)
    if settings.vllm_sim:  # a fleet of one profile is named once, with how many
        metadata["Simulator profiles"] = ", ".join(
            profile if n == 1 else f"{profile} ({n} servers)" for profile, n in Counter(settings.vllm_sim).items())
    cluster = run.cluster() if settings.vllm_namespace else None
    if cluster is not None:
        metadata["Kubernetes"] = f"context {cluster.context}, server {cluster.server} ({cluster.version})"
        metadata["Namespace"] = cluster.namespace
        metadata["Selector"] = " or ".join(cluster.selectors)
        if cluster.notes:  # every note: a refused read says which grant is missing
            metadata["Notes"] = "; ".join(cluster.notes)
    # the targets: one row per description, naming its targets (a fleet's 1,000 alike pods are one row)
    alike: dict[str, list[dict[str, Any]]] = {}
    for impl in run.implementations():
        alike.setdefault(_described(impl, bool(settings.vllm_upgrade_to)), []).append(impl)
    for shown, (text, impls) in enumerate(alike.items()):
        if shown == _METADATA_ROWS:
            rest = sum(len(i) for i in list(alike.values())[shown:])
            metadata["Other targets"] = f"{rest} more, each in the summary's table of vLLM servers"
            break
        names = [str(i["target"]) for i in impls]
        nodes = sorted({str(i["node"]) for i in impls if i.get("node")})
        where = (f", node {nodes[0]}" if len(nodes) == 1 else f", nodes {report.named(nodes)}" if nodes else "")
        key = f"Target {names[0]}" if len(names) == 1 else f"Targets {report.named(names)}"
        metadata[key] = text + where


_METADATA_ROWS = 12  # rows of pytest-html's environment table given to the targets


def _described(impl: dict[str, Any], upgrade: bool) -> str:
    """One target as the environment table shows it, without what it does not know (no model was asked for
    when the run only scrapes)."""
    parts = [f"vLLM {impl.get('vllmVersion') or 'unknown'}"]
    if impl.get("model"):
        parts.append(f"model {impl['model']}")
    parts.append(f"arch {impl.get('architecture') or 'unknown'}")
    if impl.get("blockSize") is not None:
        parts.append(f"block size {impl['blockSize']}")
    if impl.get("prefixCaching") is not None:
        parts.append(f"prefix caching {impl['prefixCaching']}")
    parts.append(f"features {', '.join(impl.get('features') or []) or 'none detected'}")
    engines = kube.engines_shown(impl)  # a data-parallel server: the engines its page carries
    if engines:
        parts.append(engines)
    if upgrade:
        parts.append("scraped once for the upgrade forecast, no workload")
    return ", ".join(parts)
