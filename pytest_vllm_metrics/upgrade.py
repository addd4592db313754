"""Upgrade: what goes dark among the metrics' consumers when the fleet moves to another vLLM version.

For each consumer (a Grafana panel, an alerting or recording rule, a scaler, the endpoint picker's flags) the
families it reads are taken from its PromQL; for each family the catalog says until when vLLM emits it by
default, and vLLM's deprecation policy (conformance/upgrade.toml) says when it is hidden behind
`--show-hidden-metrics-for-version` and when it is removed. What the fleet provides today is read from the
targets: the families on their page (so a family kept by the flag counts), else their version (/version).
No workload is needed: with --vllm-upgrade-to the run only scrapes. The forecast's section of the reports is the
report layer's (report.upgrade_section, drawn by each writer), from the evidence `judge` leaves.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from packaging.version import InvalidVersion, Version

from . import data
from .catalog import Catalog, Entry
from .observe import Check, Observation, Stage
from .outcome import Level, Outcome, Verdict
from .promql import selectors
from .readers import Reader, ReaderKind, family_of, substitute

_NAME = re.compile(r"vllm:[A-Za-z0-9_:]+")  # a query that does not parse: its vLLM names, read plainly


def policy() -> dict[str, str]:
    """vLLM's deprecation policy as the reports state it: its text and the flag that buys time."""
    stated = data.upgrade().policy
    return {"text": stated.text, "flag": stated.flag}


@dataclass(frozen=True)
class Fate:
    """What becomes of one family at the version the fleet moves to."""

    metric: str
    state: str  # "hidden": behind the flag; "removed": gone; "not yet": the target version predates it
    emitted: str  # the versions that emit it by default (the catalog's range)
    hidden_from: str | None = None  # the first release that no longer emits it by default
    removed_in: str | None = None  # the first release without it at all (policy, or what vLLM did)
    flag: str | None = None  # what keeps it on the target version while it is hidden
    replaced_by: str | None = None

    def describe(self, to: str) -> str:
        if self.state == "not yet":
            return f"{self.metric} does not exist yet in vLLM {to} (vLLM {self.emitted} emits it)"
        text = f"{self.metric} is hidden from vLLM {self.hidden_from}"
        if self.state == "hidden":
            again = f"on {to}, {self.flag} shows it again" if self.flag else "vLLM can show it again"
            text += f" ({again}) and removed in {self.removed_in}"
        else:
            text += f" and removed in {self.removed_in}, so {to} does not have it"
        if self.replaced_by:
            text += f"; read {self.replaced_by} instead"
        return text


def fate(entry: Entry, to: str) -> Fate | None:
    """None while vLLM `to` still emits the family by default; else whether it is hidden or removed there."""
    if entry.applies_to(to):
        return None
    target = Version(to)
    end = _upper_bound(entry)
    if end is None or target < end:
        return Fate(entry.name, "not yet", entry.versions.text, replaced_by=entry.replaced_by)
    table = data.upgrade()
    known = table.removed_in.get(entry.name)
    hidden_minors = table.policy.hidden_minors
    removed = Version(known) if known else Version(f"{end.major}.{end.minor + hidden_minors}.0")
    state = "hidden" if target < removed else "removed"
    # the flag takes the previous minor of the *running* release (vLLM compares "major.minor-1" exactly)
    flag = (f"{table.policy.flag}={target.major}.{target.minor - 1}"
            if state == "hidden" and target.minor > 0 else None)
    return Fate(entry.name, state, entry.versions.text, str(end), str(removed), flag, entry.replaced_by)


def _upper_bound(entry: Entry) -> Version | None:
    """The release from which the catalog no longer has the family emitted by default (`<X` in its range)."""
    from packaging.specifiers import SpecifierSet

    bounds = [Version(s.version) for s in SpecifierSet(entry.versions.text) if s.operator == "<"]
    return min(bounds) if bounds else None


def metrics_read(consumer: Reader) -> list[str]:
    """The vLLM metric names a consumer's queries select, in order (a query that does not parse as PromQL
    after Grafana's substitution is read for vLLM names plainly)."""
    found: list[str] = []
    for expr in consumer.exprs:
        try:
            names = [s.metric for s in selectors(substitute(expr, {}, None))]
        except (ValueError, RuntimeError):
            names = _NAME.findall(expr)
        found += [name for name in names if name.startswith("vllm:") and name not in found]
    return found


def _provides(obs: Observation, entry: Entry) -> bool | None:
    """Whether a target provides the family today: its page says (the flag may keep a hidden family), else its
    version; None when the run learned neither."""
    if obs.before is not None:
        return obs.before.family(entry.name) is not None
    if obs.version is not None:
        return entry.applies_to(obs.version)
    return None


def fleet(observations: list[Observation]) -> dict[str, list[str]]:
    """The versions the fleet runs: version -> the targets running it ("unknown" when /version did not say)."""
    found: dict[str, list[str]] = {}
    for obs in observations:
        if obs.before is not None or obs.version is not None:
            found.setdefault(obs.version or "unknown", []).append(obs.target.name)
    return found


def judge(consumer: Reader, observations: list[Observation], catalog: Catalog, to: str) -> Verdict:
    """Does the consumer keep its data when the fleet moves to vLLM `to`? Failed when a family it reads goes
    dark there (hidden or removed), naming when, the flag that buys time and the successor."""
    where = _where(consumer)
    names = metrics_read(consumer)
    evidence: dict[str, Any] = {"upgrade": {"to": to, "kind": consumer.kind, "dashboard": consumer.dashboard,
                                            "title": consumer.title, "reads": names, "dark": []}}
    # one family per histogram, whichever of its _bucket, _sum and _count the queries select
    entries = {entry.name: entry for name in names if (entry := family_of(name, catalog)) is not None}
    if not entries:
        unknown = f" ({', '.join(names)}: not vLLM's names; the dashboard check says why)" if names else ""
        return Verdict(Outcome.SKIPPED, f"{where} reads no vLLM metric the catalog knows{unknown}, so a vLLM upgrade "
                                        f"does not change what it shows.", Level.MUST, evidence)
    known = [o for o in observations if o.before is not None or o.version is not None]
    if not known:
        # in full: an upgrade run has no test_reachable to point at
        causes = "; ".join(p.message for o in observations
                           if (p := o.failure(Stage.BEFORE, reporter=Check.REACHABLE)) is not None)
        return Verdict(Outcome.INCONCLUSIVE, f"{where}: no target could be scraped nor told its version, so what "
                                             f"the fleet runs today is unknown: {causes or 'no target'}", Level.MUST,
                       evidence)
    versions = fleet(known)
    evidence["upgrade"]["fleet"] = versions
    dark: list[tuple[Fate, list[str]]] = []
    kept: list[str] = []
    for name, entry in entries.items():
        gone = fate(entry, to)
        if gone is None:
            continue
        providers = [o for o in known if _provides(o, entry)]
        if not providers:
            continue  # dark today already: the dashboard and rule checks say why, not the upgrade
        successor = family_of(entry.replaced_by, catalog) if entry.replaced_by else None
        if successor is not None and successor.applies_to(to) and any(
                family_of(n, catalog) is successor for n in names):
            kept.append(f"{name} goes dark in vLLM {to}, but it also reads {successor.name}")
            continue
        if _kept_by_flag(gone, providers, to):
            kept.append(f"{name} is hidden in vLLM {to}, but the fleet already shows it with {gone.flag}")
            continue
        dark.append((gone, sorted({o.version or "unknown" for o in providers})))
    evidence["upgrade"]["dark"] = [{**asdict(f), "from": sources} for f, sources in dark]
    evidence["upgrade"]["kept"] = kept
    if not dark:
        note = f" ({'; '.join(kept)})" if kept else ""
        return Verdict(Outcome.PASSED, f"{where} keeps its data on vLLM {to}{note}.", Level.MUST, evidence)
    reasons = "; ".join(f.describe(to) for f, _ in dark)
    sources = ", ".join(sorted({v for _, found in dark for v in found}))
    return Verdict(Outcome.FAILED, f"{where} goes dark when the fleet moves from vLLM {sources} to {to}: {reasons}.",
                   Level.MUST, evidence)


def _kept_by_flag(gone: Fate, providers: list[Observation], to: str) -> bool:
    """Every target showing the family already runs the same minor as `to` with it hidden: the flag is set."""
    target = Version(to)
    if gone.state != "hidden" or gone.hidden_from is None:
        return False
    for obs in providers:
        running = Version(obs.version) if obs.version and _is_version(obs.version) else None
        if running is None or (running.major, running.minor) != (target.major, target.minor):
            return False
    return True


def _is_version(text: str) -> bool:
    try:
        Version(text)
    except InvalidVersion:
        return False
    return True


def _where(consumer: Reader) -> str:
    if consumer.kind == ReaderKind.PANEL:
        return f"panel \"{consumer.title}\" ({consumer.dashboard_title or consumer.dashboard})"
    return f"{consumer.kind} \"{consumer.title}\" ({consumer.dashboard})"
