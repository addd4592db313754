"""Evaluate: (catalog entry, observation of one target) -> Verdict, with evidence and a diagnosis.

The conformance tests stay thin: they evaluate, then enforce the verdict (pass, fail, skip or xfail).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from typing import Any

from . import diagnose, features
from .catalog import Entry
from .engines import Engine
from .observe import Check, Observation, Stage
from .outcome import WORST_FIRST, Level, Outcome, Verdict
from .settings import Policy
from .snapshot import OTHER_PROCESS, Change
from .targets import TargetSource

__all__ = ["across", "described", "gate", "moved_gate", "movement", "num", "presence", "restarted"]

_TYPE_SHOWN_AS = {"info": "gauge"}  # the text format has no info type: `*_info` families are gauges
_SHOWN = 5  # targets quoted in full in one message; the reports carry every one
_WORD = {Outcome.FAILED: "fails", Outcome.XFAILED: "fails, as documented,",
         Outcome.INCONCLUSIVE: "could not be judged"}


def across(observations: Iterable[Observation], check: Callable[[Observation], Verdict], level: Level,
           engines: Collection[Engine] = (Engine.VLLM,)) -> Verdict:
    """One verdict for a check over every target, keeping each target's own.

    The outcome is the worst that happened: a failure anywhere fails it; otherwise a target that could not be
    observed makes it inconclusive; otherwise a documented limitation anywhere makes it XFAIL; a check skipped
    everywhere is skipped. The message quotes the targets that did not pass, so a fleet's failing pod is named
    without a test per pod. A target whose engine is not among `engines` (a check of vLLM's own metrics, by
    default) is skipped: a fleet that mixes model servers is checked engine by engine.
    """
    return combine({obs.target.name: (check(obs) if obs.target.engine in engines else _other_engine(obs, level))
                    .of_target(obs.target.name) for obs in observations}, level)


def _other_engine(obs: Observation, level: Level) -> Verdict:
    # Without the target's name (the reports name it): a fleet's servers of one engine share one reason.
    return Verdict(Outcome.SKIPPED, f"this server runs {obs.target.engine}, not vLLM: the checks of vLLM's own metrics "
                                    f"do not apply to it (test_model_server.py checks what it serves the endpoint "
                                    f"picker)", level)


def combine(verdicts: dict[str, Verdict], level: Level) -> Verdict:
    """One verdict from each target's own, by target name in the run's order (`across`; the merge of sharded runs
    combines the shards' verdicts of a check with it, as one run over the whole fleet would)."""
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


def gate(entry: Entry, obs: Observation, policy: Policy, *stages: Stage) -> Verdict | None:
    """The verdict that stops a check before it looks at metrics: not observed, feature off, wrong version."""
    problem = obs.failure(Stage.BEFORE)
    if problem:
        return problem.verdict(entry.level)
    status = features.status(entry.feature, obs.features, policy.require, policy.exempt)
    if not status.run:
        return Verdict(Outcome.SKIPPED, status.reason, entry.level)
    if not entry.applies_to(obs.version):
        # Without the target's name (the reports name it): a fleet of one version shares one reason.
        return Verdict(Outcome.SKIPPED, f"{entry.name} is emitted by vLLM {entry.versions.text}; this server "
                                        f"reports vLLM {obs.version}", entry.level)
    problem = obs.failure(*stages)
    if problem:
        return problem.verdict(entry.level)
    return None


def moved_gate(entry: Entry, obs: Observation) -> Verdict | None:
    """Movement cannot be judged when the two scrapes reached two different processes (a load balancer)."""
    delta = obs.delta
    if delta is None or delta.process != OTHER_PROCESS:
        return None
    start = "process_start_time_seconds"
    advice = ("target the pods themselves (--vllm-namespace, or one --vllm-url per pod), not a load-balanced URL"
              if obs.target.source is TargetSource.URL else "rerun")
    return Verdict(Outcome.INCONCLUSIVE, f"{obs.target.name}: could not judge movement: the two scrapes reached two "
                                         f"different server processes ({start} {num(delta.before.value(start))} "
                                         f"then {num(delta.after.value(start))}, the second already running before "
                                         f"the first scrape); {advice}.", entry.level)


def presence(entry: Entry, obs: Observation, policy: Policy) -> Verdict:
    stages = (Stage.TRAFFIC, Stage.AFTER) if entry.present == "traffic" else ()  # present once a workload was served
    gated = gate(entry, obs, policy, *stages)
    if gated:
        return gated
    snapshot = obs.after if entry.present == "traffic" else obs.before
    assert snapshot is not None
    when = "after the workload" if entry.present == "traffic" else "before any traffic"
    where = described(obs, arch=False)
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
    if not snapshot.has_series(entry.name):
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
    gated = gate(entry, obs, policy, Stage.TRAFFIC, Stage.AFTER) or moved_gate(entry, obs)
    if gated:
        return gated
    delta, traffic = obs.delta, obs.traffic
    assert delta is not None and traffic is not None
    where = described(obs)
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
        return restarted(entry, obs, evidence)
    wanted = f"at least {need:g} ({entry.at_least})" if entry.at_least else "an increase"
    message = (f"{where}: {entry.name} went from {num(change.before)} to {num(change.after)} "
               f"(+{increase:g}) during a workload of {traffic.summary()}; expected {wanted}.")
    if policy.via_gateway and not increase:
        message += (" The workload went through the gateway (--vllm-gateway-url); its endpoint picker sent none of "
                    "it to this pod.")
    return _fail_or_explain(entry, obs, message, evidence)


def restarted(entry: Entry, obs: Observation, evidence: dict[str, Any]) -> Verdict:
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
    return Verdict(Outcome.FAILED, f"{described(obs)}: {entry.name}{labels} went backwards from {first.before:g} to "
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


def described(obs: Observation, arch: bool = True) -> str:
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


def num(value: float | None) -> str:
    return "absent" if value is None else f"{value:g}"


# -- per-target checks -------------------------------------------------------------------------------


def reachable(obs: Observation) -> Verdict:
    problem = obs.failure(Stage.BEFORE, Stage.AFTER, reporter=Check.REACHABLE)
    if problem:
        return problem.verdict()
    assert obs.before is not None
    return Verdict(Outcome.PASSED, evidence={"families": len(obs.before.families)})


def version(obs: Observation) -> Verdict:
    problem = obs.failure(Stage.BEFORE, Stage.VERSION, reporter=Check.VERSION)
    if problem:
        return problem.verdict(Level.SHOULD)
    return Verdict(Outcome.PASSED, level=Level.SHOULD, evidence={"version": obs.version})


def cache_config(obs: Observation) -> Verdict:
    problem = obs.failure(Stage.BEFORE)
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
    problem = obs.failure(Stage.BEFORE, Stage.TRAFFIC, reporter=Check.WORKLOAD_SERVED)
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
    gated = gate(hits, obs, policy, Stage.TRAFFIC, Stage.AFTER) or moved_gate(hits, obs)
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
        return restarted(hits, obs, evidence)
    where = described(obs)
    message = (f"{where}: {_HITS} grew by {got:g} tokens for {repeats} request(s) that repeated a shared prefix of "
               f"{obs.traffic.prefix_tokens} tokens; expected at least one block ({obs.block_size} tokens) each, "
               f"{need} in all.")
    return _fail_or_explain(hits, obs, message, evidence)


def prefix_sources_agree(entry: Entry, obs: Observation, policy: Policy, labels: dict[str, str]) -> Verdict:
    """A counter that re-counts local prefix hits (by source, cached tokens) moved exactly as the hits did."""
    gated = gate(entry, obs, policy, Stage.TRAFFIC, Stage.AFTER) or moved_gate(entry, obs)
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
        return restarted(entry, obs, evidence)
    where = described(obs)
    message = (f"{where}: {selector} grew by {num(got.increase)} while {_HITS} grew by {hits:g}; vLLM counts the "
               f"same local prefix hits in both, so they must move together.")
    return _fail_or_explain(entry, obs, message, evidence)
