"""Scraping /metrics (scrape.py) over HTTP: a server (or a proxy) that answers OpenMetrics 1.0 whatever the suite
asks for gives the same Snapshot, and the same verdicts, as one that answers Prometheus text 0.0.4; a page that
cannot be read is one clear error."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from conftest import comparable, verdicts
from pytest_vllm_metrics.engines import Engine
from pytest_vllm_metrics.scrape import ACCEPT, FetchError, scrape
from pytest_vllm_metrics.sim import SimHost, build_app, get_profile
from pytest_vllm_metrics.sim._openmetrics import CONTENT_TYPE, to_openmetrics
from pytest_vllm_metrics.snapshot import TEXT_FORMAT, Snapshot
from pytest_vllm_metrics.targets import Target, url_targets

# -- over HTTP: the simulator and scrape() ------------------------------------------------------------


def _scrape(url: str) -> Snapshot:
    async def run() -> Snapshot:
        async with httpx.AsyncClient() as client:
            return await scrape(client, Target("sim", url), "/metrics", 30.0)

    return asyncio.run(run())


def test_simulator_answers_openmetrics_whatever_the_accept_header(sim_host: SimHost) -> None:
    sim = sim_host.start(get_profile("x86_64").replace(exposition="openmetrics"))
    answer = httpx.get(sim.url + "/metrics", headers={"Accept": ACCEPT})
    assert answer.headers["content-type"] == CONTENT_TYPE == (
        "application/openmetrics-text; version=1.0.0; charset=utf-8")
    assert answer.text.endswith("\n# EOF\n")
    assert "# TYPE vllm:prompt_tokens counter\n" in answer.text and "vllm_" not in answer.text
    snapshot = _scrape(sim.url)
    assert snapshot.format == "openmetrics/1.0.0"
    assert snapshot.families["vllm:prompt_tokens_total"].type == "counter"
    assert snapshot.created["vllm:prompt_tokens"]


def test_simulator_pages_give_the_same_snapshot_in_both_formats(sim_host: SimHost) -> None:
    sim = sim_host.start(get_profile("x86_64"))
    httpx.post(sim.url + "/v1/completions", json={"model": "tiny", "prompt": "a b c", "max_tokens": 3})
    text = httpx.get(sim.url + "/metrics").text
    assert comparable(Snapshot.parse_openmetrics(to_openmetrics(text))) == comparable(Snapshot.parse(text))
    assert _scrape(sim.url).format == TEXT_FORMAT


def test_truncated_openmetrics_page_is_a_fetch_error_naming_openmetrics(sim_host: SimHost) -> None:
    sim = sim_host.start(get_profile("x86_64").replace(exposition="openmetrics", fault="metrics-truncated"))
    with pytest.raises(FetchError, match=r"sim: GET /metrics is not OpenMetrics text format, as its Content-Type "
                                         r"says \(.*\); first bytes: .*Check that the URL is vLLM's /metrics") as error:
        _scrape(sim.url)
    assert not error.value.inconclusive  # the server answered, with a broken page: a finding


def test_empty_openmetrics_page_is_an_empty_page(sim_host: SimHost) -> None:
    sim = sim_host.start(get_profile("x86_64").replace(exposition="openmetrics", fault="metrics-empty"))
    with pytest.raises(FetchError, match="answered an empty metrics page"):
        _scrape(sim.url)


def test_unknown_exposition_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown exposition 'protobuf'"):
        build_app(get_profile("x86_64").replace(exposition="protobuf"))


def test_bundled_suite_gives_the_same_verdicts_against_openmetrics(pytester: pytest.Pytester,
                                                                    sim_host: SimHost) -> None:
    """As a user runs it: the whole bundled suite, once against a text server, once against an OpenMetrics one."""
    outcomes = {}
    for exposition in ("text", "openmetrics"):
        sim = sim_host.start(get_profile("x86_64").replace(exposition=exposition))
        result = pytester.runpytest("-p", "no:cacheprovider", f"--vllm-url={sim.url}", "--vllm-report=report.json")
        assert result.parseoutcomes().get("failed", 0) == 0, result.stdout.str()
        assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
        # the target is named by its URL: compare per test
        outcomes[exposition] = {test: outcome for (test, _), outcome in verdicts(pytester).items()}
        # the evidence says which format the server answered in
        report = json.loads((pytester.path / "report.json").read_text())
        assert [i["exposition"] for i in report["implementations"]] == [
            "openmetrics/1.0.0" if exposition == "openmetrics" else TEXT_FORMAT]
    assert outcomes["openmetrics"] == outcomes["text"]
    assert len(outcomes["text"]) > 50 and "passed" in outcomes["text"].values()


@pytest.mark.parametrize(("engine", "said"), [
    (Engine.SGLANG, "sglang serves its metrics at /metrics on its API port, and only when started with "
                    "--enable-metrics; check the pod's llm-d.ai/engine-type label (or --vllm-engine) and the port."),
    (Engine.TRTLLM_SERVE, "trtllm-serve serves its metrics at /prometheus/metrics on its API port; check the pod's "
                          "llm-d.ai/engine-type label (or --vllm-engine) and the port."),
])
def test_a_missing_page_of_another_engine_says_where_that_engine_serves_it(
        sim_host: SimHost, engine: Engine, said: str) -> None:
    # a server answering 404 at the engine's path: SGLang started without --enable-metrics, or a pod whose engine
    # label names another engine (the vLLM simulator has no /prometheus/metrics, and answers /metrics 404 here)
    sim = sim_host.start(get_profile("x86_64").replace(fault="metrics-404"))
    target, = url_targets((sim.url,), "amd64", engine)

    async def run() -> Snapshot:
        async with httpx.AsyncClient() as client:
            return await scrape(client, target, "/metrics", 30.0)

    with pytest.raises(FetchError) as excinfo:
        asyncio.run(run())
    assert str(excinfo.value).endswith(said)
    assert f"GET {target.metrics_path} answered HTTP 404" in str(excinfo.value)
