"""The Prometheus and dashboard checks against a real Prometheus scraping simulated vLLM servers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import verdicts
from pytest_vllm_metrics import prometheus
from pytest_vllm_metrics.observe import Observation
from pytest_vllm_metrics.outcome import Outcome
from pytest_vllm_metrics.sim import SimHost, get_profile
from pytest_vllm_metrics.snapshot import Snapshot
from pytest_vllm_metrics.targets import Target

DASHBOARDS = Path(__file__).parent / "data" / "dashboards"


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-rA", "-p", "no:cacheprovider", *args)


def test_every_target_scraped_complete_and_in_agreement(
    pytester: pytest.Pytester, sim_host: SimHost, prometheus_server: Callable[..., str]
) -> None:
    amd = sim_host.start(get_profile("x86_64"))
    arm = sim_host.start(get_profile("arm64-cpu"))
    prom = prometheus_server({"decode-0": amd.url, "decode-1": arm.url})
    result = run(pytester, f"--vllm-url={amd.url}", f"--vllm-url={arm.url}", f"--prometheus-url={prom}",
                 "-k", "prometheus", "--vllm-report=report.json")
    result.assert_outcomes(passed=3)
    assert set(verdicts(pytester).values()) == {"passed"} and len(verdicts(pytester)) == 6
    result.stdout.fnmatch_lines(["PASSED *test_values_agree_with_direct_scrape*"])


def test_target_missing_from_the_scrape_config_is_named_with_the_likely_cause(
    pytester: pytest.Pytester, sim_host: SimHost, prometheus_server: Callable[..., str]
) -> None:
    scraped = sim_host.start(get_profile("x86_64"))
    forgotten = sim_host.start(get_profile("x86_64"))
    prom = prometheus_server({"decode-0": scraped.url})
    result = run(pytester, f"--vllm-url={scraped.url}", f"--vllm-url={forgotten.url}", f"--prometheus-url={prom}",
                 "-k", "test_scraped_by_prometheus", "--vllm-report=report.json")
    result.assert_outcomes(failed=1)
    name = forgotten.url.removeprefix("http://")
    assert verdicts(pytester) == {("test_scraped_by_prometheus", scraped.url.removeprefix("http://")): "passed",
                                  ("test_scraped_by_prometheus", name): "failed"}
    result.stdout.fnmatch_lines([f"{name}: Prometheus does not scrape it (no up series for instance {name}): no "
                                 f"PodMonitor or ServiceMonitor selects it*"])


@pytest.mark.parametrize(("profile", "outcome"), [("x86_64", "PASSED"), ("arm64-cpu", "XFAIL")])
def test_hit_rate_panels_against_prometheus(
    pytester: pytest.Pytester, sim_host: SimHost, prometheus_server: Callable[..., str], profile: str, outcome: str
) -> None:
    sim = sim_host.start(get_profile(profile))
    prom = prometheus_server({"decode-0": sim.url})
    arch = ["--vllm-arch=arm64"] if profile.startswith("arm64") else []
    result = run(pytester, f"--vllm-url={sim.url}", *arch, f"--prometheus-url={prom}",
                 f"--grafana-dashboard={DASHBOARDS / 'llm-d-performance.json'}", "-k", "test_panel")
    for panel in ("KV Cache Hit Rate", "Per-Pod Cache Hit Rates"):
        result.stdout.fnmatch_lines([f"{outcome} *test_panel[[]llm-d-performance::{panel}[]]*"])
    # every other vLLM panel of the current dashboard shows data on either server
    for panel in ("Time to First Token (TTFT)", "Request Throughput", "KV Cache Usage %"):
        result.stdout.fnmatch_lines([f"PASSED *test_panel[[]llm-d-performance::{panel}[]]"])
    assert result.parseoutcomes().get("failed", 0) == 0, result.stdout.str()


def test_prometheus_down_is_one_clear_message(pytester: pytest.Pytester, sim_host: SimHost) -> None:
    sim = sim_host.start(get_profile("x86_64"))
    result = run(pytester, f"--vllm-url={sim.url}", "--prometheus-url=http://127.0.0.1:9", "-k", "prometheus")
    # Prometheus out of reach says nothing of the deployment: inconclusive, with its cause stated once
    assert result.parseoutcomes()["inconclusive"] == 3 and "failed" not in result.parseoutcomes()
    text = " ".join(result.stdout.str().split())
    assert text.count("Prometheus at http://127.0.0.1:9 cannot be reached") == 1
    assert "Check --prometheus-url" in text
    assert "Traceback" not in result.stdout.str()


# -- values_agree: a lagging Prometheus is inconclusive, a Prometheus that scraped and disagrees fails ----------


def _observed(before: float, after: float, taken_at: float) -> Observation:
    first, second = (Snapshot.parse(f"# TYPE vllm:prompt_tokens_total counter\nvllm:prompt_tokens_total {value!r}\n")
                     for value in (before, after))
    second.taken_at = taken_at
    return Observation(Target("decode-0", "http://127.0.0.1:1"), before=first, after=second)


def test_prometheus_whose_newest_sample_predates_the_suites_scrape_is_inconclusive() -> None:
    obs = _observed(10.0, 50.0, taken_at=1000.0)
    verdict = prometheus.values_agree(None, obs, prometheus.Held(10.0, 999.5), waited=3.0)  # type: ignore[arg-type]
    assert verdict.outcome == Outcome.INCONCLUSIVE
    assert "has not scraped this target since the workload" in verdict.message and "3 s" in verdict.message


def test_prometheus_that_scraped_at_the_same_instant_and_disagrees_fails() -> None:
    # the boundary: a sample taken exactly when the suite scraped is a sample after the workload
    obs = _observed(10.0, 50.0, taken_at=1000.0)
    verdict = prometheus.values_agree(None, obs, prometheus.Held(10.0, 1000.0), waited=3.0)  # type: ignore[arg-type]
    assert verdict.outcome == Outcome.FAILED
    assert "scrapes another process or port" in verdict.message


@pytest.mark.parametrize(("held", "outcome"), [(50.0, Outcome.PASSED), (51.0, Outcome.PASSED),
                                               (49.0, Outcome.FAILED)])
def test_prometheus_value_equal_or_above_the_direct_scrape_passes(held: float, outcome: Outcome) -> None:
    obs = _observed(10.0, 50.0, taken_at=1000.0)
    verdict = prometheus.values_agree(None, obs, prometheus.Held(held, 1001.0), waited=3.0)  # type: ignore[arg-type]
    assert verdict.outcome == outcome
