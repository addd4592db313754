"""Exact accounting (--vllm-exclusive): when no other traffic reaches a target, its counters move by exactly what
the workload sent (the relations of conformance/accounting.toml: token counters equal the answers' usage, finished
requests by finish reason, each histogram's count by requests, choices or decode steps), and its gauges of requests
in flight return to 0 after requests are aborted.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from . import data
from .catalog import Catalog
from .evaluate import described
from .observe import Observation, Stage
from .outcome import Level, Outcome, Verdict
from .settings import Policy

__all__ = ["Exact", "exact", "exact_rules", "finish_reasons", "gauges_return_to_zero", "looks_exclusive"]


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
    problem = obs.failure(Stage.BEFORE, Stage.TRAFFIC, Stage.AFTER)
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
                                        f"this server reports vLLM {obs.version}", level)
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
        return Verdict(Outcome.FAILED, f"{described(obs)}: {rule.name} went backwards from {first.before:g} to "
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
    return Verdict(Outcome.FAILED, f"{described(obs)}: {rule.name} moved by {got:g}, expected exactly {expected} "
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
    return Verdict(Outcome.FAILED, f"{described(obs)}: {name}: {parts} (the answers' finish_reason of each choice). "
                                   f"Panels of errors and truncations by reason read these series.", level, evidence)


def gauges_return_to_zero(obs: Observation, policy: Policy, level: Level = Level.MUST) -> Verdict:
    """After the suite closes streaming requests mid-way, running, waiting and KV-cache usage read 0 again."""
    name = obs.target.name
    if not policy.exclusive:
        return Verdict(Outcome.SKIPPED, f"{name}: needs --vllm-exclusive: on a shared server other clients' "
                                        f"requests keep these gauges up.", level)
    problem = obs.failure(Stage.BEFORE, Stage.TRAFFIC, Stage.AFTER)
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
        f"{described(obs)}: after the suite closed {aborts.aborted} streaming requests mid-way, the gauges still read "
        f"{stuck} {aborts.waited:g} s later ({aborts.polls} polls). Dashboards and autoscalers then see load that "
        f"is gone: vLLM refreshes these gauges at a scheduler step, and a server that takes no step after aborted "
        f"requests keeps the last values (fixed in vLLM 0.10.2)."),
        level, evidence)
