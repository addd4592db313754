"""Multi-node deployments on Kubernetes: which pods serve vLLM's API and which run engines without one (headless
engines, Ray workers of a LeaderWorkerSet), each worker's leader, and whether a data-parallel server's page carries
every engine its command line runs. The pods' command lines are read by `_launch`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import _launch
from .observe import Observation, Stage
from .outcome import Outcome, Verdict
from .snapshot import Family, LabelSet, Snapshot
from .targets import Role, TargetSource, ranks

__all__ = ["Worker", "data_parallel_engines", "engines_note", "engines_on_page", "engines_shown", "launch_of",
           "lws_name", "lws_worker_hint", "worker_of", "workers_note"]

_ROLE_SHOWN = {Role.HEADLESS: "headless engines", Role.RAY_WORKER: "Ray worker"}
_WORKERS_NAMED = 8  # workers named in the one note; the JSON report lists every one


@dataclass(frozen=True)
class Worker:
    """A pod of a multi-node deployment that runs engines without an API server (`vllm serve --headless`, a Ray
    worker node): it has no /metrics and takes no request, so it is reported, not checked. Its engines' metrics
    are on its leader's page."""

    pod: str
    role: Role
    how: str  # what its command line shows: "vllm serve --headless", "ray start --address=vllm-0.vllm.ns:6379"
    node: str | None = None
    leader: str | None = None  # the leader's pod, when known
    leader_from: str = ""  # how: "LeaderWorkerSet vllm, group 0", "--data-parallel-address 10.0.0.5"
    checked: bool = False  # the leader is a server the run checks
    engines: str = ""  # a headless worker's data-parallel ranks: "2-3"

    @property
    def role_shown(self) -> str:
        return _ROLE_SHOWN[self.role]

    def text(self) -> str:
        engines = f", data-parallel engines {self.engines}" if self.engines else ""
        if self.leader:
            leader = f"leader {self.leader}" + (f" ({self.leader_from})" if self.leader_from else "")
            leader += "" if self.checked else ", not among the checked pods"
        else:
            leader = "leader unknown" + (f" ({self.leader_from} names no pod of the run)" if self.leader_from else "")
        return f"{self.pod} ({_ROLE_SHOWN[self.role]}: {self.how}{engines}; {leader})"

    def as_dict(self) -> dict[str, Any]:
        return {"pod": self.pod, "role": str(self.role), "command": self.how, "node": self.node,
                "leader": self.leader, "leaderFrom": self.leader_from or None, "leaderChecked": self.checked,
                "engines": self.engines or None}


def workers_note(workers: list[Worker]) -> str:
    """One note for every report: which pods were left out as multi-node workers, and why."""
    named = "; ".join(worker.text() for worker in workers[:_WORKERS_NAMED])
    more = len(workers) - _WORKERS_NAMED
    if more > 0:
        named += f"; and {more} more (the JSON report's environment.kubernetes.multiNodeWorkers lists every one)"
    return f"multi-node workers (not scraped: no API server): {named}"


def launch_of(pod: Any, chosen: Any) -> _launch.Launch:
    """What the pod's vLLM container (`chosen`, None when it has none) starts, read from its command line and
    environment."""
    if chosen is None:
        return _launch.Launch(Role.SERVER)
    env = {e.name: e.value for e in chosen.env or [] if e.value is not None}  # valueFrom is resolved at runtime
    worker_index = (pod.metadata.labels or {}).get(_launch.rules().lws.worker_index)
    return _launch.read(list(chosen.command or []), list(chosen.args or []), env, worker_index)


def worker_of(pod: Any, launch: _launch.Launch, pods: list[Any], servers: set[str]) -> Worker:
    leader, leader_from = _leader(pod, launch, pods)
    engines = ""
    dp = launch.data_parallel
    if dp is not None and dp.size_local is not None and dp.start_rank is not None and dp.size_local > 0:
        engines = ranks(range(dp.start_rank, dp.start_rank + dp.size_local))
    return Worker(pod.metadata.name, launch.role, launch.how, pod.spec.node_name, leader, leader_from,
                  leader in servers, engines)


def _leader(pod: Any, launch: _launch.Launch, pods: list[Any]) -> tuple[str | None, str]:
    """A worker's leader (its pod's name, or None) and how the run knows: the pod of worker index 0 in its
    LeaderWorkerSet group (else the group's leader-name annotation), or the address its command line joins (a
    pod's IP, or a pod's DNS name <pod>.<service>.<namespace>)."""
    lws = _launch.rules().lws
    labels = pod.metadata.labels or {}
    name = labels.get(lws.name)
    if name is not None:
        group, key = labels.get(lws.group_index), labels.get(lws.group_key)
        where = f"LeaderWorkerSet {name}" + (f", group {group}" if group is not None else "")
        for other in pods:
            theirs = other.metadata.labels or {}
            same_group = (theirs.get(lws.group_key) == key) if key else (
                group is not None and theirs.get(lws.group_index) == group)
            if theirs.get(lws.name) == name and theirs.get(lws.worker_index) == "0" and same_group:
                return other.metadata.name, where
        named = (pod.metadata.annotations or {}).get(lws.leader_name)
        if named:
            return named, where
    address = launch.leader_address
    if not address:
        return None, ""
    flag = "--data-parallel-address" if launch.role is Role.HEADLESS else "the Ray head address"
    by_ip = [p.metadata.name for p in pods if p.status.pod_ip == address]
    by_name = [p.metadata.name for p in pods if p.metadata.name == address.split(".")[0]]
    found = by_ip if len(by_ip) == 1 else by_name
    return (found[0] if found else None), f"{flag} {address}"



def engines_on_page(snapshot: Snapshot) -> list[str]:
    """The `engine` labels of vLLM's series on a page: one per data-parallel engine the API server manages."""
    return list(snapshot.per_structure(_engines))  # labels only: once for a fleet's pages of one structure


def _engines(families: Mapping[str, Family], series: Mapping[str, list[LabelSet]]) -> tuple[str, ...]:
    found = {value for name, label_sets in series.items() if name.startswith("vllm:")
             for labels in label_sets for key, value in labels if key == "engine"}
    return tuple(sorted(found, key=lambda v: (not v.isdigit(), int(v) if v.isdigit() else 0, v)))


def engines_shown(implementation: Mapping[str, Any]) -> str:
    """A report's word on a target's data-parallel engines ("engines 8-15 (8 of the 8 its command line runs)"),
    from its implementation entry; "" for a server of one engine."""
    engines = implementation.get("engines") or []
    dp = implementation.get("dataParallel") or {}
    if not dp and len(engines) <= 1:
        return ""
    text = f"engines {ranks(engines) or 'none'}"
    expected = dp.get("expectedEngines")
    if expected is not None:
        text += f" ({len(engines)} of the {expected} its command line runs)"
    return text


def engines_note(implementations: list[dict[str, Any]]) -> str | None:
    """The terminal's one line on the data-parallel targets' pages, or None when there is none."""
    shown = [(str(i["target"]), text) for i in implementations if (text := engines_shown(i))]
    if not shown:
        return None
    named = "; ".join(f"{target}: {text}" for target, text in shown[:_WORKERS_NAMED])
    more = len(shown) - _WORKERS_NAMED
    return "data-parallel engines on each page: " + named + (f"; and {more} more (see the report)" if more > 0 else "")


_NOT_DATA_PARALLEL = {
    TargetSource.KUBERNETES: "not a data-parallel server (no --data-parallel-* flag on its command line)",
    TargetSource.SIM: "not a data-parallel server (its simulator profile runs one engine)",
    TargetSource.URL: "the run does not know its command line (it reads those of pods found with --vllm-namespace), "
                      "so not whether it is data-parallel",
}


def data_parallel_engines(obs: Observation) -> Verdict:
    """Whether a data-parallel server's page carries every engine its command line runs. vLLM's API server labels
    each engine's series with its rank (`engine`); a rank missing from the page is an engine whose requests,
    tokens, queue and KV cache no dashboard, alert or autoscaler reading the pod counts."""
    target = obs.target
    dp = target.data_parallel
    problem = obs.failure(Stage.BEFORE)
    if problem:
        return problem.verdict()
    if dp is None:
        return Verdict(Outcome.SKIPPED, _NOT_DATA_PARALLEL[target.source])
    assert obs.before is not None
    count, first, unknown = dp.expected_engines()
    seen = engines_on_page(obs.before)
    shown = ranks(seen) or "none"
    evidence: dict[str, Any] = {"engines": seen, "flags": dp.flags(), "balancing": str(dp.balancing),
                                "expected": count, "firstEngine": first}
    if count is None:
        return Verdict(Outcome.INCONCLUSIVE, f"{target.name}: cannot tell how many engines its page must carry: "
                                             f"{unknown}. The page carries engines {shown}.", evidence=evidence)
    if not seen:
        return Verdict(Outcome.INCONCLUSIVE, f"{target.name}: its vLLM series carry no engine label, so the run "
                                             f"cannot tell its data-parallel engines apart ({dp.flags()}).",
                       evidence=evidence)
    runs = f"the {count} engine{'s' * (count != 1)} its command line runs ({dp.flags()}, {dp.balancing} load balancing)"
    if first is not None:
        wanted = [str(rank) for rank in range(first, first + count)]
        missing = [rank for rank in wanted if rank not in seen]
        evidence["missing"] = missing
    else:
        missing = [] if len(seen) >= count else ["?"] * (count - len(seen))
        evidence["missing"] = len(missing)
    if not missing:
        return Verdict(Outcome.PASSED, f"{target.name}: engines {shown} on its page: {runs}", evidence=evidence)
    verb = "are" if len(missing) != 1 else "is"
    named = (f"engine{'s' * (len(missing) != 1)} {ranks(missing)} {verb}" if first is not None
             else f"{len(missing)} of them {verb}")
    return Verdict(Outcome.FAILED, (
        f"{target.name}: its /metrics carries engines {shown}, not all of {runs}: {named} missing. Their requests, "
        f"tokens, queue and KV cache are counted nowhere: every panel, alert and autoscaler reading this pod "
        f"undercounts. Check that the port scraped is this pod's own vLLM API server (--vllm-port), and the "
        f"server's --data-parallel-* flags."), evidence=evidence)


def lws_name(labels: Mapping[str, str]) -> str | None:
    """The LeaderWorkerSet a pod belongs to, by its labels."""
    return labels.get(_launch.rules().lws.name)


def lws_worker_hint(labels: Mapping[str, str]) -> str:
    """What a LeaderWorkerSet worker whose command line the run could not read as a worker's is likely to be ("" for
    any other pod): said beside its "declares no port" message."""
    lws = _launch.rules().lws
    index = labels.get(lws.worker_index)
    if index in (None, "0"):
        return ""
    return (f" It is worker {index} of LeaderWorkerSet {labels.get(lws.name, '?')}: if it runs engines without an API "
            f"server (a multi-node worker), their metrics are on its leader's page; select the leaders only (e.g. "
            f"{lws.worker_index}=0).")
