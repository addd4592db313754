"""Verdicts on inputs the suite was not built against: a FAIL means the deployment is wrong, a PASS that it is
right, and a run that could not observe says "inconclusive" with the cause, once per target.

Each test runs the bundled suite through pytester, as a user does, against simulated servers that misbehave
the way real ones were seen to: counters that go backwards, restarts, a load balancer, refused keys, an unknown
model, overload, an unreachable address.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest
from aiohttp import web

from conftest import flat, json_report, name_of, said, verdicts
from pytest_vllm_metrics.outcome import EXIT_INCONCLUSIVE
from pytest_vllm_metrics.sim import SimHost, build_app, get_profile

PROMPT = 'vllm:prompt_tokens_total{engine="0",model_name="tiny"}'


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    # a generous timeout: the simulated servers must answer in time on a loaded machine too
    return pytester.runpytest("-p", "no:cacheprovider", "--vllm-timeout=30", "--vllm-report=report.json", *args)


def outcomes_of(pytester: pytest.Pytester, target: str) -> dict[str, str]:
    return {test: outcome for (test, name), outcome in verdicts(pytester).items() if name == target}


def with_pages(sim_host: SimHost, rewrite: Callable[[int, str], str]) -> str:
    """A simulated x86_64 server whose n-th /metrics page (from 1) is rewritten; returns its URL."""
    app = build_app(get_profile("x86_64"))
    scrapes = 0

    @web.middleware
    async def pages(request: web.Request, handler: Callable[..., object]) -> web.StreamResponse:
        nonlocal scrapes
        response = await handler(request)  # type: ignore[misc]
        if request.path != "/metrics":
            return response  # type: ignore[no-any-return]
        scrapes += 1
        body = rewrite(scrapes, response.body.decode())  # type: ignore[attr-defined]
        return web.Response(body=body.encode(), headers={"Content-Type": response.headers["Content-Type"]})

    app.middlewares.append(pages)
    return sim_host.start_app(app)


def _set_sample(page: str, sample: str, value: Callable[[float], float]) -> str:
    pattern = re.compile(rf"^{re.escape(sample)} (\S+)$", re.MULTILINE)
    assert pattern.search(page), sample
    return pattern.sub(lambda m: f"{sample} {value(float(m.group(1)))}", page)


# -- counters that go backwards, restarts, load balancers -------------------------------------------------


def test_counter_that_decreases_without_a_restart_sign_fails_naming_series_and_values(
        pytester: pytest.Pytester, sim_host: SimHost) -> None:
    # The first page shows a million more prompt tokens than the second; the process start time and every
    # _created stay the same, so no restart explains it. Before, this was taken for a restart and passed.
    url = with_pages(sim_host, lambda n, page: _set_sample(page, PROMPT, lambda v: v + 1e6) if n == 1 else page)
    result = run(pytester, f"--vllm-url={url}")

    assert outcomes_of(pytester, name_of(url))["test_moves[vllm:prompt_tokens_total]"] == "failed"
    assert said(result, f"*{PROMPT} went backwards from 1e+06 to * while process_start_time_seconds "
                                 f"and its _created stayed the same*")
    assert json_report(pytester)["result"] == "failure"
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_counter_that_stays_equal_is_not_a_decrease(pytester: pytest.Pytester, sim_host: SimHost) -> None:
    # the boundary: the second page holds exactly the first page's value (no workload was counted)
    first: dict[str, float] = {}

    def rewrite(n: int, page: str) -> str:
        found = re.search(rf"^{re.escape(PROMPT)} (\S+)$", page, re.MULTILINE)
        assert found is not None
        first.setdefault("value", float(found.group(1)))
        return _set_sample(page, PROMPT, lambda v: first["value"])

    url = with_pages(sim_host, rewrite)
    result = run(pytester, f"--vllm-url={url}", "-k", "prompt_tokens_total")
    assert said(result, "*vllm:prompt_tokens_total went from 0 to 0 (+0)*expected at least*")
    assert "went backwards" not in result.stdout.str()


def test_restart_between_the_scrapes_is_inconclusive_not_a_wall_of_failures(
        pytester: pytest.Pytester, sim_host: SimHost) -> None:
    restarting = sim_host.start(get_profile("x86_64").replace(restart_after_requests=6))
    result = run(pytester, f"--vllm-url={restarting.url}")

    mine = outcomes_of(pytester, name_of(restarting.url))
    assert "failed" not in mine.values(), mine
    assert mine["test_moves[vllm:prompt_tokens_total]"] == "inconclusive"
    assert flat(result).count("could not judge movement: the server restarted between the scrapes") == 1
    assert json_report(pytester)["result"] == "inconclusive"
    assert result.ret == EXIT_INCONCLUSIVE


def test_url_behind_a_load_balancer_is_inconclusive_with_the_advice_to_target_pods(
        pytester: pytest.Pytester, sim_host: SimHost) -> None:
    # the second scrape reaches another, older server process
    start = "process_start_time_seconds"
    url = with_pages(sim_host, lambda n, page: _set_sample(page, start, lambda v: v - 1000) if n == 2 else page)
    result = run(pytester, f"--vllm-url={url}")

    mine = outcomes_of(pytester, name_of(url))
    assert mine["test_moves[vllm:prompt_tokens_total]"] == "inconclusive"
    assert "failed" not in mine.values(), mine
    assert said(result, "*two different server processes*target the pods themselves*")
    assert result.ret == EXIT_INCONCLUSIVE


# -- setup faults are not non-conformance ------------------------------------------------------------------


def test_api_key_given_and_refused_says_so_and_never_prints_the_key(
        pytester: pytest.Pytester, sim_host: SimHost) -> None:
    guarded = sim_host.start(get_profile("x86_64").replace(api_key="sk-right-0000"))
    result = run(pytester, f"--vllm-url={guarded.url}", "--vllm-api-key=sk-wrong-1111")

    output = result.stdout.str() + result.stderr.str() + (pytester.path / "report.json").read_text()
    assert "sk-wrong-1111" not in output and "sk-right-0000" not in output
    assert said(result, "*answered 401 Unauthorized although an API key was given*the server refused it*")
    assert "failed" not in outcomes_of(pytester, name_of(guarded.url)).values()
    assert result.ret == EXIT_INCONCLUSIVE


def test_api_key_missing_says_no_key_was_given(pytester: pytest.Pytester, sim_host: SimHost) -> None:
    guarded = sim_host.start(get_profile("x86_64").replace(api_key="sk-right-0000"))
    result = run(pytester, f"--vllm-url={guarded.url}")

    assert said(result, "*401 Unauthorized: the server was started with --api-key and no key was given*")
    assert "although an API key was given" not in result.stdout.str()


def test_unknown_model_lists_the_served_models_and_is_inconclusive(
        pytester: pytest.Pytester, sim_host: SimHost) -> None:
    sim = sim_host.start(get_profile("x86_64"))
    result = run(pytester, f"--vllm-url={sim.url}", "--vllm-model=nope")

    assert said(result, "*does not serve the model 'nope' given with --vllm-model (it serves tiny)*")
    mine = outcomes_of(pytester, name_of(sim.url))
    assert "failed" not in mine.values(), mine
    assert mine["test_workload_served"] == "inconclusive"
    assert mine["test_present[vllm:prompt_tokens_total]"] == "passed"  # what needs no workload is still judged
    assert result.ret == EXIT_INCONCLUSIVE


def test_server_answering_503_to_everything_is_inconclusive(pytester: pytest.Pytester, sim_host: SimHost) -> None:
    app = build_app(get_profile("x86_64"))

    @web.middleware
    async def overloaded(request: web.Request, handler: object) -> web.StreamResponse:
        return web.Response(status=503, text="Service Unavailable")

    app.middlewares.append(overloaded)
    url = sim_host.start_app(app)
    result = run(pytester, f"--vllm-url={url}")

    assert set(outcomes_of(pytester, name_of(url)).values()) == {"inconclusive"}
    assert flat(result).count("the server is overloaded or not ready yet") == 1
    assert json_report(pytester)["couldNotObserve"][0]["target"] == name_of(url)
    assert result.ret == EXIT_INCONCLUSIVE


def test_unreachable_target_fails_reachability_once_and_the_rest_points_at_it(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--vllm-url=http://127.0.0.1:9")

    # nothing listens there: reachability fails, with the cause and the fix; every other check could not judge
    result.stdout.fnmatch_lines(["FAILED   MUST   127.0.0.1:9 reachable",
                                 "    127.0.0.1:9: cannot connect to http://127.0.0.1:9 (All connection attempts",
                                 "could not observe*",
                                 "  127.0.0.1:9: see test_reachable: cannot connect to http://127.0.0.1:9 (All*"])
    # every check of the bundled suite, none other; the EPP's checks are skipped without --vllm-epp-url
    assert result.parseoutcomes()["failed"] == 1
    assert set(result.parseoutcomes()) == {"failed", "inconclusive", "skipped"}
    rows = json_report(pytester)["tests"]
    assert [row["check"] for row in rows if row["outcome"] == "failed"] == ["reachable"]
    assert "skipped" not in {row["outcome"] for row in rows if "epp" not in row["check"]}
    assert json_report(pytester)["result"] == "failure"
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_a_failure_outranks_an_inconclusive_target_in_the_exit_code(
        pytester: pytest.Pytester, sim_host: SimHost) -> None:
    broken = sim_host.start(get_profile("x86_64").replace(fault="metrics-500"))
    app = build_app(get_profile("x86_64"))

    @web.middleware
    async def overloaded(request: web.Request, handler: object) -> web.StreamResponse:
        return web.Response(status=503, text="Service Unavailable")

    app.middlewares.append(overloaded)
    result = run(pytester, f"--vllm-url={broken.url}", f"--vllm-url={sim_host.start_app(app)}")

    assert json_report(pytester)["result"] == "failure"
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_documented_reason_is_printed_once_per_target_and_in_full(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("-p", "no:cacheprovider", "--vllm-sim=arm64-cpu")

    text = " ".join(result.stdout.str().split())  # the terminal wraps it
    assert text.count("fix: upgrade to vLLM 0.12.0 or later, which lifted the restriction for ARM CPUs "
                      "(PR #29193) [3 checks]") == 1
    assert text.count("disables prefix caching on arm64 CPUs") == 1
    assert result.ret == 0


# -- timing against Prometheus --------------------------------------------------------------------------------


def test_rate_panel_prometheus_cannot_fill_yet_is_inconclusive_not_no_data(
        pytester: pytest.Pytester, sim_host: SimHost, prometheus_server: Callable[..., str]) -> None:
    # A 500ms window never holds two samples of a 1 s scrape: the state of a Prometheus that has not scraped
    # twice since the workload on a loaded machine, made deterministic. Before, this was "no data".
    sim = sim_host.start(get_profile("x86_64"))
    prom = prometheus_server({"decode-0": sim.url})
    dashboard = pytester.path / "rate.json"
    panels = [{"title": f"Rate {n}", "targets": [{"refId": "A", "expr": f"rate(vllm:{name}[500ms])"}]}
              for n, name in enumerate(("prompt_tokens_total", "generation_tokens_total"))]
    dashboard.write_text(json.dumps({"title": "vLLM", "panels": panels}))
    result = run(pytester, f"--vllm-url={sim.url}", f"--prometheus-url={prom}", f"--grafana-dashboard={dashboard}",
                 "-k", "test_panel")

    rows = json_report(pytester)["tests"]
    assert [(row["outcome"], row["evidence"]["panel_verdict"]) for row in rows] == [("inconclusive",) * 2] * 2
    assert said(result, "*fewer than two samples of vllm:prompt_tokens_total within the panel's 500ms window*")
    assert result.ret == EXIT_INCONCLUSIVE
    # the panels share one bounded wait (two 1 s scrape intervals + 5 s), not one each
    waits = [float(re.search(r"waited ([\d.]+) s", row["reason"]).group(1)) for row in rows]  # type: ignore[union-attr]
    assert sum(waits) <= 7.0, waits


def test_models_endpoint_answering_500_fails_the_workload_check_and_leaves_movement_undecided(
        pytester: pytest.Pytester, sim_host: SimHost) -> None:
    # The server answers, wrongly: that is the deployment's failure (not the run's), and what the workload
    # would have moved cannot be judged either way.
    app = build_app(get_profile("x86_64"))

    @web.middleware
    async def broken_models(request: web.Request, handler: Callable[..., object]) -> web.StreamResponse:
        if request.path == "/v1/models":
            return web.Response(status=500, text="Internal Server Error")
        return await handler(request)  # type: ignore[misc, no-any-return]

    app.middlewares.append(broken_models)
    url = sim_host.start_app(app)
    result = run(pytester, f"--vllm-url={url}")

    mine = outcomes_of(pytester, name_of(url))
    assert mine["test_workload_served"] == "failed"
    assert mine["test_moves[vllm:prompt_tokens_total]"] == "inconclusive"
    assert mine["test_present[vllm:num_requests_running]"] == "passed"
    assert said(result, "*GET /v1/models answered HTTP 500; no workload was sent*")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
