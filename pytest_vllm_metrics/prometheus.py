"""Prometheus check: through the HTTP API, is every target scraped (`up`), are the MUST families there with
the labels dashboards select on, and do values agree with the direct scrape (allowing for the interval)?"""

from __future__ import annotations

import math
import os
import re
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from .catalog import Catalog
from .observe import Observation
from .outcome import Outcome, Verdict
from .scrape import default_tls
from .targets import TargetSource, host_port

# Labels Prometheus Operator puts on every series of a PodMonitor/ServiceMonitor target (not the older
# kubernetes_namespace / kubernetes_pod_name of hand-written kubernetes_sd relabelings).
TARGET_LABELS = ("namespace", "pod", "container", "endpoint", "job", "instance", "service")
# The labels the llm-d dashboards select and group on.
DASHBOARD_LABELS = ("namespace", "pod", "model_name")
SYNC_COUNTER = "vllm:prompt_tokens_total"  # moved by every workload on every vLLM version


class PrometheusError(Exception):
    """The Prometheus API cannot answer; one paragraph with the cause and the fix."""


@dataclass
class Prometheus:
    url: str
    token: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    insecure: bool = False
    timeout: float = 10.0

    def __post_init__(self) -> None:
        self._http: httpx.Client | None = None

    def _client(self) -> httpx.Client:
        if self._http is None:
            self._http = self._new_client()
        return self._http

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def _new_client(self) -> httpx.Client:
        verify: ssl.SSLContext | bool = default_tls()
        if self.insecure:
            verify = False
        elif self.ca_file:
            verify = ssl.create_default_context(cafile=self.ca_file)
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return httpx.Client(base_url=self.url, headers=headers, verify=verify, timeout=self.timeout,
                            trust_env=False)

    def get(self, path: str, **params: Any) -> Any:
        try:
            response = self._client().get(path, params=params)
        except httpx.HTTPError as exc:
            raise PrometheusError(
                f"Prometheus at {self.url} cannot be reached ({type(exc).__name__}: {exc}). Check --prometheus-url "
                f"(kube-prometheus-stack: port-forward svc/llmd-kube-prometheus-stack-prometheus 9090)."
            ) from None
        if response.status_code in (401, 403):
            raise PrometheusError(
                f"Prometheus at {self.url} refused the request (HTTP {response.status_code}); set the bearer token "
                f"in the environment variable named by --prometheus-token-env."
            )
        try:
            body = response.json()
        except ValueError:
            raise PrometheusError(
                f"Prometheus at {self.url} answered {path} with HTTP {response.status_code} and no JSON; "
                f"--prometheus-url must be the Prometheus server itself (its /api/v1 API)."
            ) from None
        if body.get("status") != "success":
            raise PrometheusError(f"Prometheus at {self.url} answered {path} with an error: "
                                  f"{body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.get("/api/v1/query", query=expr)
        result: list[dict[str, Any]] = data["result"] if data["resultType"] == "vector" else []
        return result

    def targets(self, state: str = "any") -> dict[str, Any]:
        result: dict[str, Any] = self.get("/api/v1/targets", state=state)
        return result


def from_settings(url: str, token_env: str, ca_file: str | None, insecure: bool, timeout: float) -> Prometheus:
    return Prometheus(url.rstrip("/"), os.environ.get(token_env) or None, ca_file, insecure, timeout)


def selector_for(obs: Observation) -> dict[str, str]:
    """How a target's series are found in Prometheus: by pod for Kubernetes, by instance otherwise."""
    target = obs.target
    if target.source is TargetSource.KUBERNETES:
        return {"namespace": target.detail.get("namespace", ""), "pod": target.name}
    return {"instance": host_port(target.base_url)}


def _matchers(selector: dict[str, str]) -> str:
    return ",".join(f'{key}="{value}"' for key, value in selector.items())


@dataclass(frozen=True)
class Held:
    """What Prometheus holds of a target's SYNC_COUNTER: the value and the time of its newest sample."""

    value: float | None
    sampled_at: float | None


def wait_until_synced(prom: Prometheus, observations: list[Observation], bound: float) -> dict[str, Held]:
    """Poll (bounded) until Prometheus holds each target's post-workload value of SYNC_COUNTER; return what it
    holds per target. Prometheus scrapes on its own schedule, so its value may lag one scrape interval."""
    deadline = time.monotonic() + bound
    last: dict[str, Held] = {}
    # A target Prometheus does not scrape at all will not catch up: no wait for it (its check says why).
    active = prom.targets("active").get("activeTargets", [])
    observations = [obs for obs in observations if _find_target(active, selector_for(obs)) is not None]
    while True:
        pending = False
        for obs in observations:
            if obs.after is None:
                continue
            wanted = obs.after.value(SYNC_COUNTER)
            selector = f"{SYNC_COUNTER}{{{_matchers(selector_for(obs))}}}"
            series = prom.query(f"sum({selector})")
            value = float(series[0]["value"][1]) if series else None
            stamp = prom.query(f"max(timestamp({selector}))") if series else []
            last[obs.target.name] = Held(value, float(stamp[0]["value"][1]) if stamp else None)
            if wanted is not None and (value is None or value < wanted):
                pending = True
        if not pending or time.monotonic() >= deadline:
            return last
        time.sleep(0.25)  # polling an external system, bounded by `deadline`


def scrape_interval(prom: Prometheus) -> float:
    """The longest scrape interval of the active targets, capped at 60 s: the wait for a sync is bounded."""
    intervals = [_seconds(t.get("scrapeInterval", "30s")) for t in prom.targets("active").get("activeTargets", [])]
    return min(max(intervals, default=30.0), 60.0)


# A Prometheus duration: units from the largest down, each at most once ("1m30s" is how it prints 90 s).
_DURATION = re.compile(r"(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?")
_UNIT_SECONDS = (365 * 86400, 7 * 86400, 86400, 3600, 60, 1, 0.001)


def _seconds(text: str) -> float:
    """A duration as Prometheus writes it, in seconds; 30 (its default interval) for anything unreadable."""
    match = _DURATION.fullmatch(text)
    if not text or match is None:
        return 30.0
    return sum(int(n) * unit for n, unit in zip(match.groups(), _UNIT_SECONDS, strict=True) if n)


def scraped(prom: Prometheus, obs: Observation) -> Verdict:
    """`up == 1` for the target, or the likely reason it is not scraped."""
    selector = selector_for(obs)
    series = prom.query(f"up{{{_matchers(selector)}}}")
    evidence: dict[str, Any] = {"selector": selector, "up": [s["value"][1] for s in series]}
    if series and all(float(s["value"][1]) == 1 for s in series):
        return Verdict(Outcome.PASSED, evidence=evidence)
    name = obs.target.name
    if series:
        active = _find_target(prom.targets().get("activeTargets", []), selector)
        error = active.get("lastError") if active else ""
        return Verdict(Outcome.FAILED, f"{name}: Prometheus scrapes it but the target is down (up=0)"
                                 f"{': ' + error if error else ''}. The pod does not answer on the scraped port "
                                 f"or path; compare the PodMonitor's port and path with vLLM's.", evidence=evidence)
    targets = prom.targets()
    dropped = _find_target(targets.get("droppedTargets", []), selector)
    if dropped:
        return Verdict(Outcome.FAILED, f"{name}: Prometheus discovers it but relabeling drops it: the PodMonitor's "
                                 f"selector or its port name does not match this pod (llm-d scrapes the port named "
                                 f"metrics).", evidence=evidence)
    where = f"namespace {selector['namespace']}" if "namespace" in selector else f"instance {selector['instance']}"
    return Verdict(Outcome.FAILED, f"{name}: Prometheus does not scrape it (no up series for {where}): no "
                                   f"PodMonitor or ServiceMonitor selects it, or Prometheus' namespace selector "
                                   f"excludes its namespace. Add a PodMonitor for the vLLM pods (llm-d: "
                                   f"podMetricsEndpoints port metrics).",
                   evidence=evidence)


def _find_target(targets: list[dict[str, Any]], selector: dict[str, str]) -> dict[str, Any] | None:
    for target in targets:
        labels = {**target.get("discoveredLabels", {}), **target.get("labels", {})}
        if "instance" in selector and selector["instance"] in (labels.get("instance"), labels.get("__address__")):
            return target
        if "pod" in selector and labels.get("pod", labels.get("__meta_kubernetes_pod_name")) == selector["pod"]:
            return target
    return None


def families_there(prom: Prometheus, obs: Observation, catalog: Catalog) -> Verdict:
    """The target's MUST families exist in Prometheus with the labels dashboards select on."""
    selector = selector_for(obs)
    missing, unlabeled = [], []
    for entry in catalog:
        if entry.level != "MUST" or entry.type == "info" or not entry.applies_to(obs.version):
            continue
        if obs.before is None or obs.before.family(entry.name) is None:
            continue  # absent at the source: the direct-scrape checks report it
        name = entry.name + ("_count" if entry.type == "histogram" else "")
        series = prom.query(f"{name}{{{_matchers(selector)}}}")
        if not series:
            missing.append(entry.name)
            continue
        wanted = [label for label in DASHBOARD_LABELS if label in ("namespace", "pod") or label in entry.labels]
        if obs.target.source is not TargetSource.KUBERNETES:
            wanted = [label for label in wanted if label == "model_name" or label in series[0]["metric"]]
        lacking = [label for label in wanted if label not in series[0]["metric"]]
        if lacking:
            unlabeled.append(f"{entry.name} (no {', '.join(lacking)})")
    evidence = {"selector": selector, "missing": missing, "unlabeled": unlabeled}
    if missing or unlabeled:
        parts = []
        if missing:
            parts.append(f"missing in Prometheus although the pod exposes them: {', '.join(missing[:8])}")
        if unlabeled:
            parts.append(f"without the labels dashboards select on: {', '.join(unlabeled[:8])}")
        return Verdict(Outcome.FAILED, f"{obs.target.name}: " + "; ".join(parts) + ". Check metric_relabel_configs "
                                 "that drop series or labels.", evidence=evidence)
    return Verdict(Outcome.PASSED, evidence=evidence)


def values_agree(prom: Prometheus, obs: Observation, held: Held | None, waited: float) -> Verdict:
    """Prometheus holds the value the direct scrape saw after the workload (it may lag one interval)."""
    assert obs.before is not None and obs.after is not None
    before, after = obs.before.value(SYNC_COUNTER), obs.after.value(SYNC_COUNTER)
    value = held.value if held else None
    evidence = {"metric": SYNC_COUNTER, "direct_before": before, "direct_after": after, "prometheus": value,
                "prometheus_sampled_at": held.sampled_at if held else None}
    # Equal, or more where other users' traffic kept the counter moving after the suite's scrape.
    if value is not None and after is not None and (math.isclose(value, after) or value > after):
        return Verdict(Outcome.PASSED, evidence=evidence)
    scraped_at = obs.after.taken_at
    if held is not None and held.sampled_at is not None and scraped_at is not None and held.sampled_at < scraped_at:
        # Prometheus has not scraped the target since the suite did: nothing can be compared yet.
        return Verdict(Outcome.INCONCLUSIVE, f"{obs.target.name}: Prometheus has not scraped this target since the "
                                             f"workload (its newest sample of {SYNC_COUNTER} is "
                                             f"{scraped_at - held.sampled_at:.0f} s older than the suite's scrape) "
                                             f"within the {waited:g} s the suite waits (two scrape intervals, capped "
                                             f"by --vllm-phase-timeout); rerun, or raise --vllm-phase-timeout.",
                       evidence=evidence)
    return Verdict(Outcome.FAILED, f"{obs.target.name}: Prometheus holds {SYNC_COUNTER} = {value} while the direct "
                                   f"scrape saw {after} after the workload (and {before} before), even after waiting "
                                   f"for its scrape interval: Prometheus scrapes another process or port than the "
                                   f"suite, or its scrapes fail.", evidence=evidence)
