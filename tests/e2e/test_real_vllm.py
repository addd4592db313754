"""The bundled suite against a real vLLM 0.32 (CPU build): the catalog and the simulator must match it."""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pytest_vllm_metrics import features
from pytest_vllm_metrics.catalog import load_catalog
from pytest_vllm_metrics.outcome import EXIT_INCONCLUSIVE
from pytest_vllm_metrics.sim import SimHost, get_profile
from pytest_vllm_metrics.snapshot import Snapshot
from pytest_vllm_metrics.targets import host_port

from .conftest import API_KEY, RealServer

pytestmark = pytest.mark.e2e
DASHBOARD = Path(__file__).parent.parent / "data" / "dashboards" / "llm-d-performance.json"


def suite(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-rA", "-p", "no:cacheprovider", "--vllm-timeout=30", *args)


def ids(result: pytest.RunResult, status: str) -> list[str]:
    return [line.split(" ", 1)[1] for line in result.outlines if line.startswith(status + " ")]


def test_prefix_caching_on_every_must_entry_and_prefix_check_passes(
    pytester: pytest.Pytester, real_vllm: tuple[RealServer, RealServer]
) -> None:
    on, _ = real_vllm
    result = suite(pytester, f"--vllm-url={on.url}")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0 and outcomes.get("xfailed", 0) == 0, result.stdout.str()
    passed = ids(result, "PASSED")
    for entry in load_catalog():
        if entry.level == "MUST" and entry.feature in ("core", "prefix_caching") and entry.applies_to("0.32.0"):
            assert any(f"test_present[{entry.name}]" in p for p in passed), entry.name
    assert any(p.endswith("::test_every_repeated_prefix_hits_a_block") for p in passed)
    assert any("test_moves[vllm:prefix_cache_hits_total]" in p for p in passed)


@pytest.mark.parametrize(
    ("arch", "outcome", "message"),
    [
        ("arm64", "FAILED", "*Diagnosis: vLLM reports enable_prefix_caching=\"False\"*node of architecture arm64, "
                            "where vLLM 0.32.0 does not disable it by itself*"),
        ("unknown", "FAILED", "*enable_prefix_caching=\"False\"*architecture is unknown*--vllm-arch=ARCH*"),
        ("riscv64", "XFAIL", "*vLLM 0.32.0 disables prefix caching on riscv64 CPUs: \"Prefix caching is not "
                             "supported for RISC-V CPUs; disabling it for V1 backend.\"*"),
    ],
)
def test_prefix_caching_off_follows_the_limitation_table(
    pytester: pytest.Pytester, real_vllm: tuple[RealServer, RealServer], arch: str, outcome: str, message: str
) -> None:
    _, off = real_vllm
    result = suite(pytester, f"--vllm-url={off.url}", f"--vllm-arch={arch}", f"--vllm-api-key={API_KEY}",
                   "-m", "prefix_cache")
    hits = [line for line in result.outlines if "test_moves[" in line and "prefix_cache_hits_total]" in line
            and line.startswith(outcome)]
    assert hits, result.stdout.str()
    result.stdout.fnmatch_lines([message])
    if outcome == "XFAIL":  # every prefix-cache movement check is the documented limitation, nothing fails
        assert result.parseoutcomes().get("failed", 0) == 0, result.stdout.str()


def test_api_key_is_honoured_and_never_printed(
    pytester: pytest.Pytester, real_vllm: tuple[RealServer, RealServer]
) -> None:
    _, off = real_vllm
    without = suite(pytester, f"--vllm-url={off.url}", "-k", "workload_served")
    # the cause is stated once, in the summary's "could not observe" section (wrapped to the terminal)
    assert fnmatch.fnmatch(" ".join(without.stdout.str().split()),
                           "*GET /v1/models answered 401 Unauthorized: the server was started with --api-key and no "
                           "key was given*--vllm-api-key*")
    assert without.ret == EXIT_INCONCLUSIVE
    with_key = suite(pytester, f"--vllm-url={off.url}", f"--vllm-api-key={API_KEY}", "-k", "workload_served",
                     "--vllm-report=report.json", "--junitxml=junit.xml")
    with_key.assert_outcomes(passed=1)
    text = with_key.stdout.str() + with_key.stderr.str() + without.stdout.str()
    text += (pytester.path / "report.json").read_text() + (pytester.path / "junit.xml").read_text()
    assert API_KEY not in text


def test_prometheus_and_dashboard_against_real_servers(
    pytester: pytest.Pytester, real_vllm: tuple[RealServer, RealServer], prometheus_server: Callable[..., str]
) -> None:
    on, off = real_vllm
    prom = prometheus_server({"decode-0": on.url, "decode-1": off.url})
    result = suite(pytester, f"--vllm-url={on.url}", f"--vllm-url={off.url}", f"--vllm-api-key={API_KEY}",
                   f"--prometheus-url={prom}", "-k", "prometheus")
    assert result.parseoutcomes().get("failed", 0) == 0, result.stdout.str()
    assert result.parseoutcomes()["passed"] == 3  # each check judges both servers
    # llm-d's hit-rate panels over the pair, as Prometheus evaluates them: the fleet's rate is a number (decode-0's
    # hits), and the one pod that contributes nothing is named with its own cause; the per-pod panel has a dead line
    panels = suite(pytester, f"--vllm-url={on.url}", f"--vllm-url={off.url}", f"--vllm-api-key={API_KEY}",
                   f"--prometheus-url={prom}", f"--grafana-dashboard={DASHBOARD}", "-k", "test_panel and Hit",
                   "--vllm-report=report.json")
    rows = {row["check"]: row for row in json.loads((pytester.path / "report.json").read_text())["tests"]}
    on_name, off_name = host_port(on.url), host_port(off.url)
    fleet = rows["panel: KV Cache Hit Rate"]
    assert fleet["outcome"] == "passed", panels.stdout.str()
    assert fleet["reason"].startswith(
        f"it aggregates vllm:prefix_cache_hits_total and vllm:prefix_cache_queries_total over the fleet: {on_name} "
        f'moved them, while {off_name} contributes nothing (vLLM reports enable_prefix_caching="False"')
    assert "--no-enable-prefix-caching" in fleet["reason"]
    per_pod = rows["panel: Per-Pod Cache Hit Rates"]
    assert per_pod["outcome"] == "failed" and f"will be always zero / NaN on {off_name}:" in per_pod["reason"]
    # ... and Prometheus itself has a non-zero fleet rate for that very query
    with httpx.Client(base_url=prom, timeout=10) as client:
        answer = client.get("/api/v1/query", params={
            "query": "sum(vllm:prefix_cache_hits_total) / sum(vllm:prefix_cache_queries_total)"}).json()
    assert float(answer["data"]["result"][0]["value"][1]) > 0


def _families(text: str) -> dict[str, tuple[str, frozenset[str], tuple[str, ...]]]:
    """name -> (type, label names, bucket bounds) of a page, ignoring _created and values."""
    out = {}
    for metric in text_string_to_metric_families(text):
        if metric.name.endswith("_created"):
            continue
        labels = frozenset(k for s in metric.samples for k in s.labels if k != "le")
        buckets = tuple(sorted({s.labels["le"] for s in metric.samples if "le" in s.labels}))
        out[metric.name] = (metric.type, labels, buckets)
    return out


def _exercise(url: str, headers: dict[str, str] | None = None) -> str:
    """One completion (so http_* families appear), then the page."""
    with httpx.Client(base_url=url, headers=headers or {}, timeout=60) as client:
        client.post("/v1/completions", json={"model": "tiny", "prompt": "the metrics", "max_tokens": 4})
        return client.get("/metrics").text


def test_drift_catalog_and_real_server_agree(real_vllm: tuple[RealServer, RealServer]) -> None:
    on, _ = real_vllm
    page = _exercise(on.url)
    snapshot = Snapshot.parse(page)
    catalog = load_catalog()
    exposed = {name for name in snapshot.names() if name.startswith("vllm:")}
    unknown = sorted(name for name in exposed if catalog.get(name) is None)
    assert not unknown, f"vLLM 0.32 exposes families the catalog does not know: {unknown}"
    present = features.detect(snapshot)
    missing = sorted(
        entry.name for entry in catalog
        if entry.applies_to("0.32.0") and entry.present == "startup" and entry.feature in present | {"core"}
        and snapshot.family(entry.name) is None
    )
    assert not missing, f"the catalog claims these for vLLM 0.32 but the server does not expose them: {missing}"


def test_simulator_matches_a_fresh_capture_family_by_family(real_vllm: tuple[RealServer, RealServer]) -> None:
    on, _ = real_vllm
    real = _families(_exercise(on.url))
    with SimHost() as host:
        sim = _families(_exercise(host.start(get_profile("x86_64")).url))
    vllm_only = re.compile(r"^(vllm:|http_)")
    real = {k: v for k, v in real.items() if vllm_only.match(k)}
    sim = {k: v for k, v in sim.items() if vllm_only.match(k)}
    assert sorted(real) == sorted(sim)
    for name, (type_, labels, buckets) in real.items():
        assert sim[name][0] == type_, name
        assert sim[name][1] == labels, name
        assert sim[name][2] == buckets, name


def test_the_workload_ends_one_request_by_its_stop_string_on_a_real_server(
    pytester: pytest.Pytester, real_vllm: tuple[RealServer, RealServer]
) -> None:
    # greedy sampling answers the calibration's prompt with the same tokens again: vLLM stops on the piece of that
    # answer the workload asks for, so a panel on finished_reason="stop" is exercised (not "could not exercise")
    on, _ = real_vllm
    rate = 'sum(rate(vllm:request_success_total{{finished_reason="{}"}}[5m]))'
    pytester.makefile(".json", stop=json.dumps({"title": "Finish", "panels": [
        {"title": "Stopped", "targets": [{"expr": rate.format("stop")}]},
        {"title": "Length", "targets": [{"expr": rate.format("length")}]},
    ]}))
    result = suite(pytester, f"--vllm-url={on.url}", "--grafana-dashboard=stop.json", "-k", "test_panel",
                   "--vllm-report=report.json")
    rows = {row["check"]: row for row in json.loads((pytester.path / "report.json").read_text())["tests"]}
    assert {check: (row["outcome"], row["reason"]) for check, row in rows.items()} == {
        "panel: Stopped": ("passed", ""), "panel: Length": ("passed", "")}, result.stdout.str()
