"""The fleet behind a reader: which servers serve the families it reads (a mixed-version fleet serves a renamed
family under two names), and whether what it reads moved during the workload, line by line as the reader draws it
(a line per pod, or one aggregate over the fleet, as Prometheus evaluates it).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from . import evaluate, promql
from .catalog import Entry
from .observe import Observation
from .outcome import Outcome, Verdict
from .prometheus import TARGET_LABELS
from .promql import Selector
from .readers import component_of, data, family_of, optional_feature
from .series import Context, named

__all__ = ["coverage", "movement"]


def coverage(ctx: Context, parsed: list[tuple[str, str, Any]]) -> Verdict | list[str]:
    """Servers a reader cannot see because a family it reads is missing from their pages while other servers
    expose it: a mixed-version fleet serves a renamed family under two names. One verdict per reader, naming
    which versions serve which name; notes for absences no version explains (the presence checks judge them)."""
    read = {s.metric for _, expr, _ in parsed for s in promql.selectors(expr)}
    always = {m for m in read if m in ctx.scrapes.synthesized or component_of(m)}
    blinding: dict[frozenset[str], set[str]] = {}  # names a server has -> the metrics whose absence blinds
    blind: dict[str, list[Observation]] = {}
    for obs in ctx.seen:
        assert obs.after is not None
        names = frozenset(m for m in read if m in obs.after.samples) | always
        if names not in blinding:  # servers of one version have the same names: judged once
            blinding[names] = _blinding(parsed, names)
        for metric in sorted(blinding[names]):  # a set: its order differs from process to process
            if not _absent_by_feature(ctx, metric, obs) and _alternative(ctx, metric, obs, read) is None:
                blind.setdefault(metric, []).append(obs)
    parts, notes = [], []
    for metric, lacking in blind.items():
        serving = [o for o in ctx.seen if o.after and metric in o.after.samples]
        if not serving:
            continue  # no server has it: the reader's own verdict said why
        entry = family_of(metric, ctx.catalog)
        explained = [o for o in lacking if entry is not None and (
            not entry.versions.contains(o.version) or _alternative(ctx, metric, o, set()) is not None)]
        if not explained:
            one = len(lacking) == 1
            notes.append(f"{named([o.target.name for o in lacking])} expose{'s' if one else ''} no {metric}, so the "
                         f"{ctx.noun} does not see {'that server' if one else 'them'} ({'its' if one else 'their'} "
                         f"presence checks say why)")
            continue
        assert entry is not None
        parts.append(_versions_apart(ctx, metric, entry, serving, explained))
    if not parts:
        return notes
    return ctx.verdict(Outcome.FAILED, "part of the fleet", " ".join(parts))


def _blinding(parsed: list[tuple[str, str, Any]], names: frozenset[str]) -> set[str]:
    """The metrics whose absence empties one of the queries on a server that has only `names`."""

    def has(selector: Selector) -> bool:
        return selector.metric in names

    return {s.metric for _, _, ast in parsed for s in promql.judge(ast, has).empty}


def _absent_by_feature(ctx: Context, metric: str, obs: Observation) -> bool:
    entry = family_of(metric, ctx.catalog)
    feature = optional_feature(metric) or (entry.feature if entry and entry.feature != "core" else None)
    return feature is not None and feature not in obs.features


def _alternative(ctx: Context, metric: str, obs: Observation, read: set[str]) -> str | None:
    """The other name of a renamed family (older or newer) that this server exposes; with `read`, only when
    the reader reads that name too (`new or old` covers both versions)."""
    entry = family_of(metric, ctx.catalog)
    if entry is None:
        return None
    suffix = metric[len(entry.name):] if metric.startswith(entry.name) else ""
    others: list[str | None] = [entry.replaced_by, entry.replaces,
                                *(e.name for e in ctx.catalog.entries if e.replaced_by == entry.name)]
    assert obs.after is not None
    for other in filter(None, others):
        name = other + suffix
        if name in obs.after.samples and (not read or name in read):
            return name
    return None


def _versions(observations: list[Observation]) -> str:
    """Servers grouped by vLLM version: 'the vLLM 0.32.0 server (decode-0)'."""
    by_version: dict[str, list[str]] = {}
    for obs in observations:
        by_version.setdefault(obs.version or "of unknown version", []).append(obs.target.name)
    parts = [f"the vLLM {version} server{'s' if len(names) > 1 else ''} ({named(names)})"
             for version, names in by_version.items()]
    return " and ".join(parts)


def _versions_apart(ctx: Context, metric: str, entry: Entry, serving: list[Observation],
                    lacking: list[Observation]) -> str:
    alternative = next((a for o in lacking if (a := _alternative(ctx, metric, o, set()))), None)
    verb = "exposes" if len(serving) == 1 else "expose"
    head = f"{ctx.where} reads {metric}, which only {_versions(serving)} {verb}"
    if alternative is None:
        return (f"{head}; vLLM emits it in {entry.versions.text} only, so {_versions(lacking)} "
                f"{'does' if len(lacking) == 1 else 'do'} not, and the {ctx.noun} does not see "
                f"{'it' if len(lacking) == 1 else 'them'}.")
    old, new = (metric, alternative) if entry.replaced_by else (alternative, metric)
    renamed = (entry.name, entry.replaced_by) if entry.replaced_by else (entry.replaces, entry.name)
    return (f"{head}; {_versions(lacking)} {'exposes' if len(lacking) == 1 else 'expose'} {alternative} instead "
            f"(vLLM renamed {renamed[0]} to {renamed[1]}), so the {ctx.noun} does not see "
            f"{'it' if len(lacking) == 1 else 'them'}. While the fleet runs both versions, read both names: "
            f"{new} or {old}.")


class _State(StrEnum):
    """What the workload did to the series a reader selects on one server."""

    MOVED = "moved"
    SILENT = "silent"  # the family did not move on this server at all: the server's own fault or limitation
    UNEXERCISED = "unexercised"  # the family moved, but not the selected series: the workload could not


@dataclass
class _Moved:
    verdict: Verdict | None = None
    certain: bool = False  # every server's series stayed at 0: true of whichever servers a matcher selects
    notes: list[str] = field(default_factory=list)
    unexercised: list[str] = field(default_factory=list)


def movement(ctx: Context, live: list[tuple[Selector, promql.Keep]]) -> _Moved:
    """Whether what the reader reads moved during the workload, line by line as the reader draws it."""
    out = _Moved()
    within = tuple(data().fleet.within_line)
    quiet: dict[tuple[tuple[str, ...], tuple[str, ...], str], list[str]] = defaultdict(list)
    done = set()
    for selector, keep in live:
        entry = family_of(selector.metric, ctx.catalog)
        if entry is None or not entry.moves or (selector.shown, keep) in done:
            continue  # gauges and counters that legitimately stay at 0 (preemptions) chart fine
        done.add((selector.shown, keep))
        per_pod = _per_pod(keep)
        counted = entry.name + "_count" if entry.type in ("histogram", "summary") else entry.name
        lines: dict[tuple[tuple[str, str], ...], list[tuple[Observation, _State]]] = {}
        moved_with: dict[str, set[str]] = {}  # matcher label -> its values on the series that moved
        for index, obs in enumerate(ctx.seen):
            delta = obs.delta
            if delta is None:
                continue
            family_moved = delta.increase(entry.name) > 0
            for labels in ctx.scrapes.selected(obs, selector, counted, skip=within):
                own = {k: v for k, v in labels.items() if k not in TARGET_LABELS}
                state = (_State.MOVED if delta.increase(entry.name, own) > 0
                         else _State.UNEXERCISED if family_moved else _State.SILENT)
                key = ((("pod", obs.target.name), ("#", str(index))) if per_pod else
                       tuple(sorted((k, v) for k, v in labels.items() if keep.keeps(k) and k not in within)))
                lines.setdefault(key, []).append((obs, state))
            if family_moved:
                for series in obs.after.samples.get(counted, []) if obs.after else []:
                    labels = dict(series.labels)
                    if delta.increase(entry.name, labels) > 0:
                        for label, _, _ in selector.matchers:
                            moved_with.setdefault(label, set()).add(labels.get(label, ""))
        if not lines:
            continue  # no server has series this selector selects (a LoRA adapter not loaded, say)
        states = {key: {state for _, state in members} for key, members in lines.items()}
        broken = [key for key, s in states.items() if s == {_State.SILENT}]
        if broken:
            out.verdict = _always_zero(ctx, entry, per_pod, broken, lines, len(broken) == len(lines))
            out.certain = len(broken) == len(lines)
            return out
        if not any(_State.MOVED in s for s in states.values()):
            out.unexercised.append(_unexercised(selector, entry, moved_with, ctx.noun))
            continue
        silent = sorted({obs.target.name: obs for members in lines.values() for obs, state in members
                         if state == _State.SILENT}.values(), key=lambda o: o.target.name)
        if silent and not per_pod:
            movers = tuple(sorted({obs.target.name for members in lines.values() for obs, state in members
                                   if state == _State.MOVED}))
            quiet[(movers, tuple(o.target.name for o in silent), _cause_text(_causes(ctx, entry, silent)))] \
                .append(entry.name)
    for (movers, silent_names, causes), families in quiet.items():  # a ratio's two counters: one note
        them = "them" if len(families) > 1 else "it"
        out.notes.append(f"it aggregates {' and '.join(families)} over the fleet: {named(list(movers))} moved "
                         f"{them}, while {named(list(silent_names))} contribute"
                         f"{'s' if len(silent_names) == 1 else ''} nothing ({causes})")
    return out


def _per_pod(keep: promql.Keep) -> bool:
    """Whether the reader draws a line per pod: it keeps a per-pod label (by one of them, or without dropping
    both of the per-pod labels every Prometheus scrape of a pod carries, pod and instance)."""
    fleet = data().fleet
    if keep.only is not None:
        return any(keep.keeps(label) for label in fleet.per_pod)
    return not set(fleet.scraped_per_pod) <= keep.dropped


def _causes(ctx: Context, entry: Entry, silent: list[Observation]) -> dict[str, Verdict]:
    """Each silent server's own root cause, as its movement check states it (a documented limitation: xfailed)."""
    return {obs.target.name: evaluate.movement(entry, obs, ctx.policy) for obs in silent}


def _cause_text(causes: dict[str, Verdict]) -> str:
    """One root cause as it is; several, each after the servers it concerns."""
    by_reason: dict[str, list[str]] = {}
    for name, cause in causes.items():
        by_reason.setdefault(cause.diagnosis or cause.message, []).append(name)
    if len(by_reason) == 1:
        return next(iter(by_reason))
    return "; ".join(f"{named(names)}: {reason}" for reason, names in by_reason.items())


def _always_zero(ctx: Context, entry: Entry, per_pod: bool, broken: list[tuple[tuple[str, str], ...]],
                 lines: dict[tuple[tuple[str, str], ...], list[tuple[Observation, _State]]], every: bool) -> Verdict:
    silent = list({id(obs): obs for key in broken for obs, _ in lines[key]}.values())
    causes = _causes(ctx, entry, silent)
    reason = _cause_text(causes)
    outcome = (Outcome.XFAILED if all(c.outcome == Outcome.XFAILED for c in causes.values()) else Outcome.FAILED)
    ratio = " A ratio of two such lifetime counters is 0/0 = NaN." if entry.type == "counter" else ""
    pods = ", ".join(o.target.name for o in silent)
    root = "Root cause" if len({c.diagnosis or c.message for c in causes.values()}) == 1 else "Root causes"
    if per_pod:
        message = (f"{ctx.where} will be always zero / NaN on {pods}: {entry.name} exists but did not move during "
                   f"the workload.{ratio} {root}: {reason}")
    elif every and broken == [()]:
        message = (f"{ctx.where} will be always zero / NaN: it aggregates {entry.name} over the fleet, and "
                   f"{entry.name} moved on none of its servers ({pods}) during the workload.{ratio} {root}: {reason}")
    else:
        shown = ", ".join("{" + ", ".join(f'{k}="{v}"' for k, v in key) + "}" for key in broken)
        message = (f"{ctx.where} will be always zero / NaN for {shown}: {entry.name} did not move during the "
                   f"workload on the servers behind {'it' if len(broken) == 1 else 'them'} ({pods}).{ratio} "
                   f"{root}: {reason}")
    return ctx.verdict(outcome, "always zero / NaN", message, diagnosis=reason)


def _unexercised(selector: Selector, entry: Entry, moved_with: dict[str, set[str]], noun: str) -> str:
    """What the workload could not move: the selected series exist, but its requests produced other label values
    (every request ended by max_tokens, so finished_reason="stop" stays 0)."""
    did = [f'{label} {" or ".join(chr(34) + v + chr(34) for v in sorted(values))}'
           for label, values in moved_with.items() if values]
    moved = f" only for {'; '.join(did)}" if did else " only in series this selector does not select"
    return (f"this run could not exercise {selector.shown}: its series exist, but the workload moved "
            f"{entry.name}{moved}, so the run cannot show that the {noun} moves")
