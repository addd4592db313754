"""Evaluate: (catalog entry, observation of one target) -> Verdict, with evidence and a diagnosis.

The conformance tests stay thin: they evaluate, then enforce the verdict (pass, fail, skip or xfail).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

from . import data, diagnose, features
from .catalog import Catalog, Entry
from .observe import Check, Observation
from .outcome import WORST_FIRST, Level, Outcome, Verdict
from .settings import Policy
from .snapshot import OTHER_PROCESS, Change

__all__ = ["Verdict", "across", "movement", "presence"]

_TYPE_SHOWN_AS = {"info": "gauge"}  # the text format has no info type: `*_info` families are gauges
_SHOWN = 5  # targets quoted in full in one message; the reports carry every one
_WORD = {Outcome.FAILED: "fails", Outcome.XFAILED: "fails, as documented,",
         Outcome.INCONCLUSIVE: "could not be judged"}


def across(observations: Iterable[Observation], check: Callable[[Observation], Verdict], level: Level) -> Verdict:
    """One verdict for a check over every target, keeping each target's own.

    The outcome is the worst that happened: a failure anywhere fails it; otherwise a target that could not be
    observed makes it inconclusive; otherwise a documented limitation anywhere makes it XFAIL; a check skipped
    everywhere is skipped. The message quotes the targets that did not pass, so a fleet's failing pod is named
    without a test per pod.
    """
    verdicts: dict[str, Verdict] = {}
    for obs in observations:
        verdicts[obs.target.name] = check(obs).but(target=obs.target.name)
    if not verdicts:
        return Verdict(Outcome.SKIPPED, "no vLLM target: pass --vllm-url, --vllm-sim or --vllm-namespace", level)
    outcome = next(o for o in WORST_FIRST if any(v.outcome == o for v in verdicts.values()))
    evidence = {name: v.evidence for name, v in verdicts.items()}
    if len(verdicts) == 1:
        only = next(iter(verdicts.values()))
        return Verdict(only.outcome, only.message, only.level, only.evidence, only.diagnosis, verdicts, only.target)
    if outcome == Outcome.PASSED:
        return Verdict(Outcome.PASSED, "", level, evidence, targets=verdicts)
    mine = {name: v for name, v in verdicts.items() if v.outcome == outcome}
    count = f"{len(mine)} of {len(verdicts)} targets"
    if outcome == Outcome.SKIPPED:
        return Verdict(Outcome.SKIPPED, f"{count}: " + _grouped(mine, "message"), level, evidence, targets=verdicts)
    quoted = [v.message for v in list(mine.values())[:_SHOWN]]
    if len(mine) > _SHOWN:
        quoted.append(f"... and {len(mine) - _SHOWN} more: {', '.join(list(mine)[_SHOWN:])}.")
    diagnosis = _grouped(mine, "diagnosis") if any(v.diagnosis for v in mine.values()) else None
    # The first line names the targets: it is what pytest's short summary and a CI log show.
    message = (f"{_WORD[outcome]} on {_names(list(mine))} ({count}{_others(verdicts, outcome)}).\n"
               + "\n".join(quoted))
    return Verdict(outcome, message, level, evidence, diagnosis, verdicts)


def _others(verdicts: dict[str, Verdict], outcome: str) -> str:
    """How the targets other than the quoted ones came out: '; 3 passed, 1 skipped'."""
    rest = [v.outcome for v in verdicts.values() if v.outcome != outcome]
    counts = [f"{rest.count(o)} {o}" for o in WORST_FIRST if o in rest]
    return f"; {', '.join(counts)}" if counts else ""


def _grouped(verdicts: dict[str, Verdict], attribute: str) -> str:
    """Targets with the same reason under one reason: 'a, b: reason; c: other reason'."""
    names_by_reason: dict[str, list[str]] = {}
    for name, verdict in verdicts.items():
        text = str(getattr(verdict, attribute) or verdict.message)
        names_by_reason.setdefault(text, []).append(name)
    return "; ".join(f"{_names(names)}: {reason}" for reason, names in names_by_reason.items())


def _names(names: list[str]) -> str:
    return ", ".join(names[:_SHOWN]) + (f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")


def _gate(entry: Entry, obs: Observation, policy: Policy, *stages: str) -> Verdict | None:
    """The verdict that stops a check before it looks at metrics: not observed, feature off, wrong version."""
    problem = obs.failure("before")
    if problem:
        return problem.verdict(entry.level)
    status = features.status(entry.feature, obs.features, policy.require, policy.exempt)
    if not status.run:
        return Verdict(Outcome.SKIPPED, status.reason, entry.level)
    if not entry.applies_to(obs.version):
        return Verdict(Outcome.SKIPPED, f"{entry.name} is emitted by vLLM {entry.versions.text}; {obs.target.name} "
                                        f"reports vLLM {obs.version}", entry.level)
    problem = obs.failure(*stages)
    if problem:
        return problem.verdict(entry.level)
    return None


def _moved_gate(entry: Entry, obs: Observation) -> Verdict | None:
    """Movement cannot be judged when the two scrapes reached two different processes (a load balancer)."""
    delta = obs.delta
    if delta is None or delta.process != OTHER_PROCESS:
        return None
    start = "process_start_time_seconds"
    advice = ("target the pods themselves (--vllm-namespace, or one --vllm-url per pod), not a load-balanced URL"
              if obs.target.source == "url" else "rerun")
    return Verdict(Outcome.INCONCLUSIVE, f"{obs.target.name}: could not judge movement: the two scrapes reached two "
                                         f"different server processes ({start} {_num(delta.before.value(start))} "
                                         f"then {_num(delta.after.value(start))}, the second already running before "
                                         f"the first scrape); {advice}.", entry.level)


def presence(entry: Entry, obs: Observation, policy: Policy) -> Verdict:
    stages = ("traffic", "after") if entry.present == "traffic" else ()  # present once a workload was served
    gated = _gate(entry, obs, policy, *stages)
    if gated:
        return gated
    snapshot = obs.after if entry.present == "traffic" else obs.before
    assert snapshot is not None
    when = "after the workload" if entry.present == "traffic" else "before any traffic"
    where = _where(obs, arch=False)
    family = snapshot.family(entry.name)
    if family is None:
        message = f"{where}: {entry.name} is missing from /metrics {when}."
        hint = _rename_hint(entry, snapshot.names())
        if hint:
            message += " " + hint
        elif entry.feature != "core" and entry.feature not in obs.features:
            message += (f" The server does not show feature {entry.feature}; enable it, or stop requiring it "
                        f"(--vllm-exempt-feature={entry.feature}).")
        if entry.meaning:
            message += f" Why it matters: {entry.meaning}."
        return Verdict(Outcome.FAILED, message, entry.level, {"families_on_page": len(snapshot.families)})
    evidence: dict[str, Any] = {"type": family.type, "labels": sorted(family.label_names)}
    if not snapshot.series(entry.name):
        return Verdict(Outcome.FAILED, f"{where}: {entry.name} is declared (# TYPE) but has no series {when}; "
                                 f"panels and alerts on it see nothing.", entry.level, evidence)
    expected_type = _TYPE_SHOWN_AS.get(entry.type, entry.type)
    if family.type != expected_type:
        return Verdict(Outcome.FAILED, f"{where}: {entry.name} is a {family.type}, the catalog expects a "
                                 f"{expected_type}; dashboards built for one type break on the other.",
                       entry.level, evidence)
    missing = sorted(set(entry.labels) - family.label_names)
    if missing:
        return Verdict(Outcome.FAILED, f"{where}: {entry.name} lacks label(s) {', '.join(missing)} (it has "
                                 f"{', '.join(sorted(family.label_names)) or 'none'}); dashboards that select "
                                 f"or group by them show nothing.", entry.level, evidence)
    if entry.info_labels:
        info = snapshot.info(entry.name) or {}
        empty = [label for label in entry.info_labels if not info.get(label)]
        if empty:
            return Verdict(Outcome.FAILED, f"{where}: {entry.name} has no value for {', '.join(empty)}.",
                           entry.level, evidence)
        evidence["info"] = {label: info[label] for label in entry.info_labels}
    return Verdict(Outcome.PASSED, level=entry.level, evidence=evidence)


def movement(entry: Entry, obs: Observation, policy: Policy) -> Verdict:
    gated = _gate(entry, obs, policy, "traffic", "after") or _moved_gate(entry, obs)
    if gated:
        return gated
    delta, traffic = obs.delta, obs.traffic
    assert delta is not None and traffic is not None
    where = _where(obs)
    change = delta.change(entry.name)
    need = max(traffic.quantity(entry.at_least), 1) if entry.at_least else 1
    evidence: dict[str, Any] = {"before": change.before, "after": change.after, "increase": change.increase,
                                "needed": need, "workload": traffic.summary()}
    if change.decreases:
        return _went_backwards(entry, obs, change, evidence)
    if change.reset:
        evidence["reset"] = "the server restarted between the scrapes; the increase counts from the restart"
    if change.after is None:
        family_missing = delta.after.family(entry.name) is None
        message = f"{where}: {entry.name} is missing from /metrics after the workload."
        hint = _rename_hint(entry, delta.after.names()) if family_missing else None
        return _fail_or_explain(entry, obs, message + (f" {hint}" if hint else ""), evidence)
    increase = change.increase or 0.0
    if increase >= need and increase > 0:
        return Verdict(Outcome.PASSED, level=entry.level, evidence=evidence)
    if change.reset or delta.restart_seen:  # what the workload did before a restart is lost
        return _restarted(entry, obs, evidence)
    wanted = f"at least {need:g} ({entry.at_least})" if entry.at_least else "an increase"
    message = (f"{where}: {entry.name} went from {_num(change.before)} to {_num(change.after)} "
               f"(+{increase:g}) during a workload of {traffic.summary()}; expected {wanted}.")
    if policy.via_gateway and not increase:
        message += (" The workload went through the gateway (--vllm-gateway-url); its endpoint picker sent none of "
                    "it to this pod.")
    return _fail_or_explain(entry, obs, message, evidence)


def _restarted(entry: Entry, obs: Observation, evidence: dict[str, Any]) -> Verdict:
    """Too little movement after a restart is neither a pass nor a failure: the counts before it are lost."""
    return Verdict(Outcome.INCONCLUSIVE, f"{obs.target.name}: could not judge movement: the server restarted "
                                         f"between the scrapes (its counters started again from 0); find why it "
                                         f"restarted, then rerun.", entry.level, evidence)


def _went_backwards(entry: Entry, obs: Observation, change: Change, evidence: dict[str, Any]) -> Verdict:
    """A counter that decreased while nothing says the server restarted breaks the monotonic contract."""
    first = change.decreases[0]
    labels = "{" + ",".join(f'{k}="{v}"' for k, v in first.labels) + "}"
    more = f" (and {len(change.decreases) - 1} more series)" if len(change.decreases) > 1 else ""
    evidence["decreased"] = [{"labels": dict(d.labels), "before": d.before, "after": d.after}
                             for d in change.decreases]
    return Verdict(Outcome.FAILED, f"{_where(obs)}: {entry.name}{labels} went backwards from {first.before:g} to "
                                   f"{first.after:g}{more} while process_start_time_seconds and its _created stayed "
                                   f"the same: counters must never decrease without a restart. Prometheus' rate() "
                                   f"reads each decrease as a reset and charts a spike; find what rewrites the "
                                   f"counter (several processes behind one port, a proxy merging pages).",
                   entry.level, evidence)


def _fail_or_explain(entry: Entry, obs: Observation, message: str, evidence: dict[str, Any]) -> Verdict:
    """Add the known cause: a documented limitation (xfail) or a diagnosis rule (fail)."""
    if entry.feature == "prefix_caching":
        reported_off = obs.prefix_caching == "False"
        limitation = diagnose.known_limitation("prefix_caching", obs.target.arch, obs.version, reported_off)
        if limitation is not None:
            reason = limitation.reason(obs.target.arch, obs.version or "?")
            evidence["documented_limitation"] = reason
            return Verdict(Outcome.XFAILED, f"{message} {reason}", entry.level, evidence, diagnosis=reason)
        engines = _engines_served(obs)
        if not reported_off and len(engines) > 1:
            # each engine of a data-parallel server keeps its own prefix cache: a repeat sent to another engine
            # than the one that cached the prefix cannot hit, whatever the server does right
            evidence["engines_served"] = engines
            return Verdict(Outcome.INCONCLUSIVE, (
                f"{message} The workload went to {len(engines)} engines of this data-parallel server (engine "
                f"{', '.join(engines)}), each with a prefix cache of its own, so a repeated prefix may never have met "
                f"the engine that cached it: this run cannot tell whether prefix caching works. Send more requests "
                f"(--vllm-requests) so that each engine gets several."), entry.level, evidence)
        found = diagnose.diagnose(_prefix_facts(entry, obs))
        if found is not None:
            evidence["diagnosis_rule"] = found[0]
            return Verdict(Outcome.FAILED, f"{message} Diagnosis: {found[1]}", entry.level, evidence,
                           diagnosis=found[1])
    elif entry.meaning:
        message += f" What it means: {entry.meaning}."
    return Verdict(Outcome.FAILED, message, entry.level, evidence)


def _engines_served(obs: Observation) -> list[str]:
    """The engines (the `engine` label) whose finished requests moved during the workload: more than one on a
    data-parallel server that spread the workload over its engines."""
    delta = obs.delta
    if delta is None:
        return []
    engines = sorted({dict(s.labels).get("engine", "") for s in delta.after.series(_SUCCESS)} - {""})
    return [e for e in engines if delta.increase(_SUCCESS, {"engine": e}) > 0] if len(engines) > 1 else []


def _prefix_facts(entry: Entry, obs: Observation) -> dict[str, Any]:
    delta, traffic = obs.delta, obs.traffic
    names = delta.after.names() if delta else set()
    old_name = entry.replaces if entry.replaces in names else None
    queries = delta.increase("vllm:prefix_cache_queries_total") if delta else 0.0
    return {
        "family_missing": entry.name not in names,
        "old_name_present": old_name is not None,
        "old_name": old_name,
        "prefix_caching": obs.prefix_caching or "missing",
        "arch_known": obs.target.arch != "unknown",
        "arch": obs.target.arch,
        "version": obs.version or "unknown",
        "repeated_prefix": bool(traffic and traffic.repeated_prefix_requests),
        "prefix_shorter_than_block": bool(traffic and traffic.prefix_tokens < obs.block_size),
        "prefix_tokens": traffic.prefix_tokens if traffic else 0,
        "block_size": obs.block_size,
        "queries_moved": queries > 0,
    }


def _where(obs: Observation, arch: bool = True) -> str:
    """How messages name a target: name, vLLM version and (for movement) its architecture."""
    details = f"vLLM {obs.version or 'version unknown'}" + (f", {obs.target.arch}" if arch else "")
    return f"{obs.target.name} ({details})"


def _rename_hint(entry: Entry, names: set[str]) -> str | None:
    if entry.replaces and entry.replaces in names:
        return (f"The server exposes the old name {entry.replaces}: it runs a vLLM older than this family "
                f"({entry.versions.text}); dashboards must use the name the running version exposes.")
    if entry.replaced_by and entry.replaced_by in names:
        return f"It was renamed: the server exposes {entry.replaced_by}; query that instead."
    if entry.name.endswith("_total") and entry.name[: -len("_total")] in names:
        return f"The server exposes {entry.name[: -len('_total')]} without _total."
    return None


def _num(value: float | None) -> str:
    return "absent" if value is None else f"{value:g}"


# -- per-target checks -------------------------------------------------------------------------------


def reachable(obs: Observation) -> Verdict:
    problem = obs.failure("before", "after", reporter=Check.REACHABLE)
    if problem:
        return problem.verdict()
    assert obs.before is not None
    return Verdict(Outcome.PASSED, evidence={"families": len(obs.before.families)})


def version(obs: Observation) -> Verdict:
    problem = obs.failure("before", "version", reporter=Check.VERSION)
    if problem:
        return problem.verdict(Level.SHOULD)
    return Verdict(Outcome.PASSED, level=Level.SHOULD, evidence={"version": obs.version})


def cache_config(obs: Observation) -> Verdict:
    problem = obs.failure("before")
    if problem:
        return problem.verdict()
    info = obs.cache_config
    name = obs.target.name
    if not info:
        return Verdict(Outcome.FAILED, f"{name}: vllm:cache_config_info is missing, so block_size and "
                                       f"enable_prefix_caching cannot be read (vLLM emits it from 0.8.0 on, and not "
                                       f"with --disable-log-stats). The workload assumed a block of "
                                       f"{obs.block_size} tokens.")
    try:
        block_size = int(info.get("block_size", ""))
    except ValueError:
        return Verdict(Outcome.FAILED, f"{name}: vllm:cache_config_info has block_size="
                                       f"{info.get('block_size')!r}, not a whole number of tokens.")
    caching = info.get("enable_prefix_caching")
    if caching not in ("True", "False", "None"):
        return Verdict(Outcome.FAILED, f"{name}: vllm:cache_config_info has enable_prefix_caching={caching!r}; "
                                       f"vLLM writes \"True\", \"False\" (V1) or \"None\" (V0).")
    if block_size <= 0:
        return Verdict(Outcome.FAILED, f"{name}: vllm:cache_config_info has block_size={block_size}.")
    return Verdict(Outcome.PASSED, evidence={"block_size": block_size, "enable_prefix_caching": caching,
                                             "num_gpu_blocks": info.get("num_gpu_blocks")})


def served_workload(obs: Observation) -> Verdict:
    problem = obs.failure("before", "traffic", reporter=Check.WORKLOAD_SERVED)
    if problem:
        return problem.verdict()
    traffic = obs.traffic
    assert traffic is not None
    failed = [r for r in traffic.records if not r.ok]
    evidence = {"model": traffic.model, "requests": [vars(r) for r in traffic.records]}
    if failed:
        kinds = ", ".join(sorted({f"{r.kind} -> {r.status or r.error}" for r in failed}))
        return Verdict(Outcome.FAILED, f"{obs.target.name}: {len(failed)} of {len(traffic.records)} workload "
                                       f"requests failed ({kinds}); {traffic.summary()}.", evidence=evidence)
    return Verdict(Outcome.PASSED, evidence=evidence)


# -- prefix-cache relations (beyond each counter moving on its own) ----------------------------------

_HITS = "vllm:prefix_cache_hits_total"
_SUCCESS = "vllm:request_success_total"


def prefix_hits_per_repeat(hits: Entry, obs: Observation, policy: Policy) -> Verdict:
    """Every request that repeated the shared prefix hit at least one whole block."""
    gated = _gate(hits, obs, policy, "traffic", "after") or _moved_gate(hits, obs)
    if gated:
        return gated
    assert obs.delta is not None and obs.traffic is not None
    repeats = obs.traffic.repeated_prefix_requests
    need = max(repeats * obs.block_size, 1)
    got = obs.delta.increase(_HITS)
    evidence = {"hits": got, "repeated_prefix_requests": repeats, "block_size": obs.block_size, "needed": need}
    if got >= need:
        return Verdict(Outcome.PASSED, level=hits.level, evidence=evidence)
    if obs.delta.restart_seen:
        return _restarted(hits, obs, evidence)
    where = _where(obs)
    message = (f"{where}: {_HITS} grew by {got:g} tokens for {repeats} request(s) that repeated a shared prefix of "
               f"{obs.traffic.prefix_tokens} tokens; expected at least one block ({obs.block_size} tokens) each, "
               f"{need} in all.")
    return _fail_or_explain(hits, obs, message, evidence)


def prefix_sources_agree(entry: Entry, obs: Observation, policy: Policy, labels: dict[str, str]) -> Verdict:
    """A counter that re-counts local prefix hits (by source, cached tokens) moved exactly as the hits did."""
    gated = _gate(entry, obs, policy, "traffic", "after") or _moved_gate(entry, obs)
    if gated:
        return gated
    assert obs.delta is not None
    hits = obs.delta.increase(_HITS)
    got = obs.delta.change(entry.name, labels)
    selector = entry.name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else "")
    evidence = {"hits": hits, "other": got.increase, "selector": selector}
    if got.increase is not None and got.increase == hits and hits > 0:
        return Verdict(Outcome.PASSED, level=entry.level, evidence=evidence)
    if obs.delta.restart_seen:
        return _restarted(entry, obs, evidence)
    where = _where(obs)
    message = (f"{where}: {selector} grew by {_num(got.increase)} while {_HITS} grew by {hits:g}; vLLM counts the "
               f"same local prefix hits in both, so they must move together.")
    return _fail_or_explain(entry, obs, message, evidence)


# -- exact accounting (--vllm-exclusive) --------------------------------------------------------------


@dataclass(frozen=True)
class Exact:
    """One exact relation of accounting.toml: `name` moves by exactly the workload quantity `equals`."""

    name: str  # a counter, a histogram (its _count) or a histogram's `_sum` sample
    equals: str  # a TrafficResult quantity
    means: str  # how the quantity is counted, for messages
    not_with_feature: str = ""  # a feature under which the server counts this otherwise, and why
    not_with_why: str = ""

    @property
    def id(self) -> str:
        return self.name

    @property
    def family(self) -> str:
        return self.name.removesuffix("_sum")


@cache
def exact_rules() -> tuple[Exact, ...]:
    table = data.accounting()
    return tuple(Exact(row.name, row.equals, table.quantity[row.equals], row.not_with_feature or "", row.not_with_why)
                 for row in table.exact)


_NOT_EXCLUSIVE = ("needs --vllm-exclusive (no other traffic reaches the target during the run); without it, "
                  "counters are judged by the at-least rule of test_moves")


def looks_exclusive(obs: Observation) -> bool | None:
    """Whether the finished requests and the prompt tokens moved by exactly what the workload sent (a note for
    the report: such a run could have been judged with --vllm-exclusive). None when it cannot be told."""
    delta, traffic = obs.delta, obs.traffic
    if delta is None or traffic is None or not traffic.requests or delta.restart_seen or not traffic.usage_reported:
        return None
    return (delta.increase("vllm:request_success_total") == traffic.choices
            and delta.increase("vllm:prompt_tokens_total") == traffic.engine_prompt_tokens)


def _exact_gate(obs: Observation, policy: Policy, level: Level) -> Verdict | None:
    name = obs.target.name
    if not policy.exclusive:
        note = " This run looked exclusive: finished requests and prompt tokens moved by exactly the workload." \
            if looks_exclusive(obs) else ""
        return Verdict(Outcome.SKIPPED, f"{name}: {_NOT_EXCLUSIVE}.{note}", level)
    problem = obs.failure("before", "traffic", "after")
    if problem:
        return problem.verdict(level)
    if policy.via_gateway:
        return Verdict(Outcome.INCONCLUSIVE, f"{name}: the workload went through the gateway, which decides each "
                                             f"pod's share, so no pod's exact count is known; target the pods.", level)
    traffic, delta = obs.traffic, obs.delta
    assert traffic is not None and delta is not None
    failed = [r for r in traffic.records if not r.ok]
    if failed:
        return Verdict(Outcome.INCONCLUSIVE, f"{name}: {len(failed)} of {len(traffic.records)} workload requests "
                                             f"failed, and what the server counted of them cannot be known; "
                                             f"{traffic.summary()}.", level)
    if not traffic.usage_reported:
        return Verdict(Outcome.INCONCLUSIVE, f"{name}: an answer carried no usage (prompt and completion tokens), "
                                             f"so the workload's exact tokens are unknown.", level)
    if delta.restart_seen:
        return Verdict(Outcome.INCONCLUSIVE, f"{name}: the server restarted between the scrapes (or another process "
                                             f"answered the second): exact counts cannot be compared; rerun.", level)
    return None


def exact(rule: Exact, obs: Observation, policy: Policy, catalog: Catalog, level: Level = Level.MUST) -> Verdict:
    gated = _exact_gate(obs, policy, level)
    if gated:
        return gated
    traffic, delta = obs.traffic, obs.delta
    assert traffic is not None and delta is not None
    entry = catalog.get(rule.family)
    if entry is not None and not entry.applies_to(obs.version):
        return Verdict(Outcome.SKIPPED, f"{rule.family} is emitted by vLLM {entry.versions.text}; "
                                        f"{obs.target.name} reports vLLM {obs.version}", level)
    if rule.not_with_feature and rule.not_with_feature in obs.features:
        return Verdict(Outcome.SKIPPED, f"{obs.target.name}: {rule.name} is not counted exactly where "
                                        f"{rule.not_with_feature} is on: {rule.not_with_why}.", level)
    expected = int(getattr(traffic, rule.equals))
    change = delta.change(rule.name)
    evidence: dict[str, Any] = {"expected": expected, "got": change.increase, "before": change.before,
                                "after": change.after, "quantity": rule.equals, "workload": traffic.summary(),
                                "requests": traffic.requests, "choices": traffic.choices}
    if change.decreases:
        first = change.decreases[0]
        return Verdict(Outcome.FAILED, f"{_where(obs)}: {rule.name} went backwards from {first.before:g} to "
                                       f"{first.after:g} while the server did not restart.", level, evidence)
    if change.after is None:
        return Verdict(Outcome.SKIPPED, f"{obs.target.name}: {rule.name} is not on the page (test_present judges "
                                        f"that); nothing to count.", level, evidence)
    got = change.increase or 0.0
    if got == expected:
        return Verdict(Outcome.PASSED, level=level, evidence=evidence)
    why = ("more than the workload: the server counts some of it twice, or other clients used it during the run "
           "(then leave out --vllm-exclusive)" if got > expected else
           "less than the workload: the server did not count every request")
    return Verdict(Outcome.FAILED, f"{_where(obs)}: {rule.name} moved by {got:g}, expected exactly {expected} "
                                   f"({rule.means}; {traffic.requests} requests, {traffic.choices} choices): {why}.",
                   level, evidence)


def finish_reasons(obs: Observation, policy: Policy, level: Level = Level.MUST) -> Verdict:
    """vllm:request_success_total{finished_reason} moved per reason by the choices that finished so."""
    gated = _exact_gate(obs, policy, level)
    if gated:
        return gated
    traffic, delta = obs.traffic, obs.delta
    assert traffic is not None and delta is not None
    name = "vllm:request_success_total"
    wanted = traffic.finish_reasons()
    on_page = {dict(s.labels).get("finished_reason", "") for s in delta.after.series(name)} - {""}
    got = {reason: delta.increase(name, {"finished_reason": reason}) for reason in sorted(on_page | set(wanted))}
    evidence = {"expected": dict(wanted), "got": got}
    if sum(wanted.values()) != traffic.choices:
        return Verdict(Outcome.INCONCLUSIVE, f"{obs.target.name}: {traffic.choices - sum(wanted.values())} "
                                             f"choice(s) came back without a finish_reason.", level, evidence)
    wrong = [reason for reason in got if got[reason] != wanted.get(reason, 0)]
    if not wrong:
        return Verdict(Outcome.PASSED, level=level, evidence=evidence)
    parts = ", ".join(f'finished_reason="{r}" moved by {got[r]:g}, expected {wanted.get(r, 0)}' for r in wrong)
    return Verdict(Outcome.FAILED, f"{_where(obs)}: {name}: {parts} (the answers' finish_reason of each choice). "
                                   f"Panels of errors and truncations by reason read these series.", level, evidence)


def gauges_return_to_zero(obs: Observation, policy: Policy, level: Level = Level.MUST) -> Verdict:
    """After the suite closes streaming requests mid-way, running, waiting and KV-cache usage read 0 again."""
    name = obs.target.name
    if not policy.exclusive:
        return Verdict(Outcome.SKIPPED, f"{name}: needs --vllm-exclusive: on a shared server other clients' "
                                        f"requests keep these gauges up.", level)
    problem = obs.failure("before", "traffic", "after")
    if problem:
        return problem.verdict(level)
    aborts = obs.aborts
    if aborts is None:
        return Verdict(Outcome.INCONCLUSIVE, f"{name}: the abort probe did not run (the workload went through the "
                                             f"gateway); target the pods.", level)
    evidence = {key: value for key, value in vars(aborts).items()}
    if aborts.error:
        return Verdict(Outcome.INCONCLUSIVE, f"{name}: the abort probe could not run: {aborts.error}", level,
                       evidence)
    if not aborts.aborted:
        return Verdict(Outcome.INCONCLUSIVE, f"{name}: the server finished all {aborts.opened} streaming requests "
                                             f"of the abort probe before the suite could close them, so nothing "
                                             f"was aborted.", level, evidence)
    if aborts.during and not any(aborts.during.values()):
        # the requests were done on the server (a fast model) while the client still held their streams
        return Verdict(Outcome.INCONCLUSIVE, f"{name}: the server no longer counted the abort probe's "
                                             f"{aborts.aborted} streaming requests while they were open (the gauges "
                                             f"read 0): it had generated them in full, so the abort path was not "
                                             f"exercised.", level, evidence)
    if aborts.settled_after is not None:
        return Verdict(Outcome.PASSED, level=level, evidence=evidence)
    stuck = ", ".join(f"{gauge} {value:g}" for gauge, value in aborts.after.items() if value)
    return Verdict(Outcome.FAILED, (
        f"{_where(obs)}: after the suite closed {aborts.aborted} streaming requests mid-way, the gauges still read "
        f"{stuck} {aborts.waited:g} s later ({aborts.polls} polls). Dashboards and autoscalers then see load that "
        f"is gone: vLLM refreshes these gauges at a scheduler step, and a server that takes no step after aborted "
        f"requests keeps the last values (fixed in vLLM 0.10.2)."),
        level, evidence)
