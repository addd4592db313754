"""Report: one row per check (target, check, level, outcome, reason, evidence), rendered three ways:
the machine-readable conformance report (--vllm-report), the terminal summary and the pytest-html report.

Overall result, in the spirit of the Gateway API ConformanceReport (and Sonobuoy's failed/unknown split):
  failure       a MUST check failed (or a test errored): the deployment breaks the contract;
  inconclusive  no MUST failure, but some check could not observe what it needs (unreachable, auth refused,
                unknown model, overloaded, restarted between the scrapes, a cap reached): rerun or fix the setup;
  partial       neither, but a SHOULD or MAY check failed, or a check XFAILed on a documented limitation;
  success       everything that ran passed (skips for features a server does not have are fine).
"""

from __future__ import annotations

import html
import json
import platform
import textwrap
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from .outcome import Outcome, Verdict

ROWS_KEY = pytest.StashKey[list["Row"]]()
SCHEMA_VERSION = "1"


@dataclass
class Row:
    id: str
    target: str  # "" for a check of several targets: see `targets`
    check: str
    level: str
    outcome: str  # passed | failed | skipped | xfailed | xpassed | error | inconclusive
    reason: str = ""
    diagnosis: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)
    # A check across targets (a catalog family): each target's outcome, reason and diagnosis, by name.
    targets: dict[str, dict[str, str]] = field(default_factory=dict)

    def per_target(self) -> list[tuple[str, str, str]]:
        """(target, outcome, the reason a reader needs first) for each target this row judged."""
        if not self.targets:
            return [(self.target, self.outcome, _without_target(self.diagnosis or self.reason, self.target))]
        return [(name, t["outcome"], _without_target(t["diagnosis"] or t["reason"], name))
                for name, t in self.targets.items()]

    def shown_target(self) -> str:
        """The target column: the target, or for a check of several, the ones that did not pass."""
        if self.target or not self.targets:
            return self.target
        names = [name for name, t in self.targets.items() if t["outcome"] != "passed"]
        if not names or self.outcome == "passed":
            return f"all {len(self.targets)} targets"
        joined = ", ".join(names)
        return joined if len(joined) <= 32 else f"{len(names)} of {len(self.targets)} targets"


def row_for(item: pytest.Item, report: pytest.TestReport, verdict: Verdict | None) -> Row | None:
    """The row of a finished test, from the report of its deciding phase; None for other phases."""
    if report.when == "call" or (report.when == "setup" and not report.passed):
        outcome = _outcome(report)
    elif report.when == "teardown" and report.failed:
        outcome = "error"
    else:
        return None
    params = getattr(item, "callspec", None)
    values = params.params if params else {}
    target = values.get("vllm_target") or ""
    entry = values.get("vllm_entry") or values.get("vllm_moving_entry")
    panel = values.get("vllm_panel")
    name = str(getattr(item, "originalname", item.name)).removeprefix("test_")
    if panel is not None:
        target, check = panel.dashboard, f"panel: {panel.title}"
    elif entry is not None:
        check = f"{name}: {entry.name}"
    else:
        # other parameters than the target: keep their part of the id, e.g. "cached" in "[sim-x86_64-cached]"
        rest = params.id.removeprefix(str(target)).lstrip("-") if params else ""
        check = f"{name}[{rest}]" if rest else name
    reason = _reason(report)
    if verdict is not None and verdict.outcome == Outcome.INCONCLUSIVE and report.skipped:
        outcome, reason = str(Outcome.INCONCLUSIVE), verdict.message
    targets = {name: {"outcome": str(v.outcome), "reason": v.message, "diagnosis": v.diagnosis or ""}
               for name, v in verdict.targets.items()} if verdict else {}
    if verdict is not None and verdict.target and not targets:
        target = verdict.target
    if len(targets) == 1:
        target = next(iter(targets))
    return Row(
        id=item.nodeid, target=str(target), check=str(check),
        level=verdict.level if verdict else "MUST", outcome=outcome, reason=reason,
        diagnosis=(verdict.diagnosis or "") if verdict else "", evidence=_jsonable(verdict.evidence) if verdict else {},
        targets=targets,
    )


def _outcome(report: pytest.TestReport) -> str:
    if hasattr(report, "wasxfail"):
        return "xpassed" if report.passed else "xfailed"
    if report.when != "call" and report.failed:
        return "error"
    return str(report.outcome)


def _reason(report: pytest.TestReport) -> str:
    if hasattr(report, "wasxfail"):
        return str(report.wasxfail)
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    if report.failed:
        crash = getattr(report.longrepr, "reprcrash", None)
        text = crash.message if crash is not None else str(report.longrepr)
        return text.removeprefix("Failed: ")
    return ""


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


# -- the machine-readable conformance report -------------------------------------------------------------


def overall(rows: list[Row]) -> str:
    if any(r.outcome == "error" or (r.outcome == "failed" and r.level == "MUST") for r in rows):
        return "failure"
    if any(r.outcome == Outcome.INCONCLUSIVE for r in rows):
        return "inconclusive"
    if any(r.outcome in ("failed", "xfailed") for r in rows):
        return "partial"
    return "success"


def unobserved(rows: list[Row]) -> list[dict[str, Any]]:
    """Each target's observation problem once, with how many checks it left undecided: the "could not observe"
    section (a cause is stated per target, not per check)."""
    return _once(rows, Outcome.INCONCLUSIVE)


def documented(rows: list[Row]) -> list[dict[str, Any]]:
    """Each documented limitation once per target, in full: the reason vLLM gives, with its fix."""
    return _once(rows, Outcome.XFAILED)


def _once(rows: list[Row], outcome: str) -> list[dict[str, Any]]:
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        if row.outcome != outcome and not any(t["outcome"] == outcome for t in row.targets.values()):
            continue
        for name, its_outcome, reason in row.per_target():
            if its_outcome == outcome:
                entry = found.setdefault((name, reason), {"target": name or "every target", "reason": reason,
                                                          "checks": []})
                entry["checks"].append(row.check)
    return list(found.values())


def conformance_report(rows: list[Row], environment: dict[str, Any], implementations: list[dict[str, Any]],
                       features: dict[str, Any], started: datetime) -> dict[str, Any]:
    from . import __version__

    by_level: dict[str, Counter[str]] = {}
    for row in rows:
        by_level.setdefault(row.level, Counter())[row.outcome] += 1
    return {
        "apiVersion": f"pytest-vllm-metrics/v{SCHEMA_VERSION}",
        "kind": "ConformanceReport",
        "suiteVersion": __version__,
        "date": started.isoformat(timespec="seconds"),
        "implementations": implementations,
        "environment": environment,
        "features": features,
        "result": overall(rows),
        "resultRule": "failure: a MUST check failed or a test errored; inconclusive: otherwise, a check could not "
                      "observe what it needs (see couldNotObserve); partial: otherwise, a SHOULD/MAY check failed or "
                      "a check xfailed on a documented limitation; success: none of these",
        "couldNotObserve": unobserved(rows),
        "documentedLimitations": documented(rows),
        "counts": dict(Counter(r.outcome for r in rows)),
        "countsByLevel": {level: dict(counter) for level, counter in sorted(by_level.items())},
        "tests": [asdict(row) for row in rows],
    }


def schema() -> dict[str, Any]:
    text = resources.files(__package__).joinpath("report.schema.json").read_text(encoding="utf-8")
    result: dict[str, Any] = json.loads(text)
    return result


def write(path: Path, report: dict[str, Any]) -> None:
    if path.suffix in (".yaml", ".yml"):
        import yaml  # optional: YAML only when asked for

        path.write_text(yaml.safe_dump(report, sort_keys=False), encoding="utf-8")
    else:
        path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


def python_environment() -> dict[str, str]:
    return {"python": platform.python_version(), "pytest": pytest.__version__,
            "generated": datetime.now(UTC).isoformat(timespec="seconds")}


# -- terminal --------------------------------------------------------------------------------------------


_TERMINAL_TARGETS = 3  # targets quoted per check in a CI log


def panel_verdict(row: Row) -> str:
    return str(row.evidence.get("panel_verdict") or ("ok" if row.outcome == "passed" else row.outcome))


def terminal_lines(rows: list[Row], width: int = 120) -> list[str]:
    """A compact table of what did not pass, then every panel's verdict, what could not be observed and the
    documented limitations (each once per target, in full); readable in a CI log."""
    width = max(width, 60)
    notable = [r for r in rows if r.outcome in ("failed", "error", "xfailed", "xpassed")]
    lines = [f"result: {overall(rows).upper()}  ({_counts(rows)})"]
    panels = [r for r in rows if r.check.startswith("panel: ")]
    if panels:
        lines.append("panels (will it show data?):")
        for row in panels:
            lines.append(f"  {panel_verdict(row).upper():20} {row.target} :: {row.check.removeprefix('panel: ')}")
    if notable:
        target_w = min(max(len(r.shown_target()) for r in notable), 32)
        lines.append(f"{'OUTCOME':8} {'LEVEL':6} {'TARGET':{target_w}} CHECK")
    for row in notable:
        lines.append(f"{row.outcome.upper():8} {row.level:6} {row.shown_target()[:target_w]:{target_w}} {row.check}")
        if row.outcome == Outcome.XFAILED:
            continue  # its documented reason is printed once per target, below
        # the diagnosis is what a reader of a CI log needs first
        judged = [(name, outcome, reason) for name, outcome, reason in row.per_target()
                  if outcome in ("failed", "error", "xpassed")]
        for name, outcome, reason in judged[:_TERMINAL_TARGETS]:
            text = " ".join(reason.split())
            if row.targets:  # name the target, and its outcome where it differs from the check's
                text = f"{name}{'' if outcome == row.outcome else f' ({outcome})'}: {text}"
            lines.extend(_wrap(text, width, "    ", "      ", max_lines=6 if len(judged) == 1 else 3,
                               placeholder=" …"))
        if len(judged) > _TERMINAL_TARGETS:
            lines.append(f"    ... and {len(judged) - _TERMINAL_TARGETS} more targets (see the report)")
    for title, found in (("could not observe (neither passed nor failed; rerun or fix the setup):", unobserved(rows)),
                         ("documented limitations (XFAIL), as vLLM states them:", documented(rows))):
        if found:
            lines.append(title)
        for item in found:
            checks = len(item["checks"])
            text = f"{item['target']}: {' '.join(item['reason'].split())} [{checks} check{'s' * (checks != 1)}]"
            lines.extend(_wrap(text, width, "  ", "    "))
    return lines


def _wrap(text: str, width: int, first: str, rest: str, **options: Any) -> list[str]:
    # never at a hyphen: option names (--vllm-model) must stay whole to be copied or searched
    return textwrap.wrap(text, width=width, initial_indent=first, subsequent_indent=rest, break_on_hyphens=False,
                         **options)


def _without_target(reason: str, target: str) -> str:
    """Messages start with the target's name; where the row already shows it, drop it."""
    if target and reason.startswith(target) and ": " in reason:
        return reason.split(": ", 1)[1]
    return reason


def _shorter(reason: str, limit: int = 400) -> str:
    return reason if len(reason) <= limit else reason[: limit - 1] + "…"


def _counts(rows: list[Row]) -> str:
    counts = Counter(r.outcome for r in rows)
    return ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items())) or "no checks"


# -- pytest-html -----------------------------------------------------------------------------------------


def summary_html(rows: list[Row], targets: list[dict[str, Any]]) -> str:
    """The top-of-report summary: per target, what works and what does not, and why."""
    esc = html.escape
    parts = ['<div id="vllm-summary"><h2>vLLM metrics conformance</h2>',
             f"<p>Result: <strong>{esc(overall(rows).upper())}</strong> ({esc(_counts(rows))})</p>",
             "<table class='vllm-summary'><tr><th>Target</th><th>Architecture</th><th>vLLM</th>"
             "<th>Passed</th><th>Not working, and why</th></tr>"]
    by_target: dict[str, list[tuple[str, str, str]]] = {}
    for row in rows:
        for name, outcome, reason in row.per_target():
            by_target.setdefault(name, []).append((row.check, outcome, reason))
    for target in targets:
        mine = by_target.get(target["target"], [])
        if not mine:
            continue
        passed = sum(1 for _, outcome, _ in mine if outcome == "passed")
        broken = [(check, outcome, reason) for check, outcome, reason in mine
                  if outcome in ("failed", "error")]
        items = "".join(f"<li><b>{esc(outcome.upper())}</b> {esc(check)}: {esc(_shorter(reason))}</li>"
                        for check, outcome, reason in broken)
        # documented limitations and observation problems: stated once per target, in full, below the table
        for outcome, where in ((Outcome.XFAILED, "documented limitation"), (Outcome.INCONCLUSIVE, "could not observe")):
            count = sum(1 for _, its, _ in mine if its == outcome)
            if count:
                items += f"<li><b>{esc(outcome.upper())}</b> {count} check{'s' * (count != 1)}: {where} (below)</li>"
        items = items or "<li>everything checked works</li>"
        parts.append(f"<tr><td>{esc(target['target'])}</td><td>{esc(str(target['architecture']))}</td>"
                     f"<td>{esc(str(target['vllmVersion']))}</td><td>{passed}</td><td><ul>{items}</ul></td></tr>")
    parts.append("</table>")
    panels = [r for r in rows if r.check.startswith("panel: ")]
    if panels:
        parts.append("<h3>Grafana panels: will they show data?</h3><table class='vllm-panels'><tr><th>Dashboard</th>"
                     "<th>Panel</th><th>Verdict</th><th>Why</th></tr>")
        for row in panels:
            parts.append(f"<tr><td>{esc(row.target)}</td><td>{esc(row.check.removeprefix('panel: '))}</td>"
                         f"<td><b>{esc(panel_verdict(row))}</b></td><td>{esc(_shorter(row.reason))}</td></tr>")
        parts.append("</table>")
    for title, found in (("Could not observe (neither passed nor failed)", unobserved(rows)),
                         ("Documented limitations (XFAIL)", documented(rows))):
        if found:
            parts.append(f"<h3>{esc(title)}</h3><ul class='vllm-once'>")
            parts.extend(f"<li><b>{esc(item['target'])}</b>: {esc(item['reason'])} ({len(item['checks'])} "
                         f"check{'s' * (len(item['checks']) != 1)})</li>" for item in found)
            parts.append("</ul>")
    parts.append("</div>")
    return "".join(parts)
