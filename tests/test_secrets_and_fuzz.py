"""Secrets never leak into any artifact; random and mutated expositions never crash the scrape path."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import NS, ROLE, capture_text
from pytest_vllm_metrics.catalog import load_catalog
from pytest_vllm_metrics.evaluate import movement, presence
from pytest_vllm_metrics.observe import Observation
from pytest_vllm_metrics.settings import Policy
from pytest_vllm_metrics.sim import SimHost, get_profile
from pytest_vllm_metrics.sim.kubeapi import Cluster, KubeDouble
from pytest_vllm_metrics.snapshot import ExpositionError, Snapshot
from pytest_vllm_metrics.targets import Target
from pytest_vllm_metrics.traffic import RequestRecord, TrafficResult


def test_seeded_secrets_appear_in_no_artifact(pytester: pytest.Pytester, sim_host: SimHost, cluster: Cluster,
                                              double: KubeDouble, monkeypatch: pytest.MonkeyPatch) -> None:
    api_key, kube_token, prom_token = "sk-seed-a1b2c3d4e5", "kube-seed-f6a7b8c9d0", "prom-seed-0e9d8c7b6a"
    cluster.tokens[kube_token] = ROLE | {("get", "nodes")}
    # The workload goes through a gateway that requires the API key (the pod proxy cannot carry it).
    gateway = sim_host.start(get_profile("x86_64").replace(api_key=api_key))
    kubeconfig = pytester.path / "kubeconfig"
    kubeconfig.write_text(json.dumps(KubeDouble.kubeconfig(double.url, kube_token, namespace=NS)))
    monkeypatch.setenv("PROMETHEUS_TOKEN", prom_token)
    monkeypatch.setenv("VLLM_API_KEY", api_key)
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "-rA", "-v", "-l", f"--kubeconfig={kubeconfig}", f"--vllm-namespace={NS}",
        "--prometheus-url=http://127.0.0.1:9", f"--vllm-gateway-url={gateway.url}", "--html=report.html",
        "--self-contained-html", "--junitxml=junit.xml", "--vllm-report=report.json", "--log-file=run.log",
        "--log-file-level=DEBUG",
    )
    # the token worked (discovery, scrapes) and so did the key (the workload through the gateway)
    result.stdout.fnmatch_lines(["*test_workload_served PASSED*"])
    assert result.parseoutcomes()["passed"] > 40
    artifacts = {name: (pytester.path / name).read_text() for name in
                 ("report.html", "junit.xml", "report.json", "run.log")}
    artifacts["terminal"] = result.stdout.str() + result.stderr.str()
    for secret in (api_key, kube_token, prom_token):
        encoded = base64.b64encode(secret.encode()).decode()[:12]  # self-contained HTML inlines base64
        for name, text in artifacts.items():
            assert secret not in text, f"{secret} leaked into {name}"
            assert encoded not in text, f"{secret} leaked base64-encoded into {name}"


# -- fuzzing the scrape path ---------------------------------------------------------------------------------

REAL = capture_text("prefix-caching-on.after")
REAL_BEFORE = capture_text("prefix-caching-on.before")
LINES = REAL.splitlines()


@st.composite
def mutated(draw: st.DrawFn) -> str:
    lines = list(LINES)
    for _ in range(draw(st.integers(1, 6))):
        index = draw(st.integers(0, len(lines) - 1))
        action = draw(st.sampled_from(["drop", "cut", "dup", "garble", "swap"]))
        line = lines[index]
        if action == "drop":
            del lines[index]
        elif action == "cut":
            lines[index] = line[: draw(st.integers(0, len(line)))]
        elif action == "dup":
            lines.insert(index, line)
        elif action == "garble":
            lines[index] = line[:5] + draw(st.text(max_size=20)) + line[5:]
        else:
            other = draw(st.integers(0, len(lines) - 1))
            lines[index], lines[other] = lines[other], lines[index]
    return "\n".join(lines) + "\n"


def observation(after: Snapshot, before: Snapshot) -> Observation:
    traffic = TrafficResult(model="tiny", block_size=128, prefix_tokens=272,
                            records=[RequestRecord("completion", 200, 0.1, 300, 8, None, True) for _ in range(4)])
    return Observation(Target("fuzz", "http://127.0.0.1:1"), version="0.32.0", before=before, traffic=traffic,
                       after=after)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(mutated(), st.text(max_size=400), st.binary(max_size=400).map(lambda b: b.decode("latin-1"))))
def test_any_exposition_gives_a_snapshot_or_a_clear_error_and_always_a_verdict(text: str) -> None:
    try:
        after = Snapshot.parse(text)
    except ExpositionError as exc:
        assert str(exc)  # a reason, shown in the scrape's one-paragraph message
        return
    before = Snapshot.parse(REAL_BEFORE)
    obs = observation(after, before)
    for entry in load_catalog():
        for verdict in (presence(entry, obs, Policy()), movement(entry, obs, Policy())):
            assert verdict.outcome in ("passed", "failed", "skipped", "xfailed", "inconclusive")
            assert verdict.outcome == "passed" or verdict.message
