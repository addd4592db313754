"""One observation per target (observe.py): the stages (scrape before, version, workload, scrape after) against
simulated servers over real HTTP, the Problem each stage records when it has no result, and which check a
recorded problem is reported by."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiohttp import web

from conftest import page
from pytest_vllm_metrics.engines import Engine
from pytest_vllm_metrics.observe import DEFAULT_BLOCK_SIZE, Check, Observation, Stage, observe
from pytest_vllm_metrics.outcome import Problem
from pytest_vllm_metrics.settings import MAX_BODY_BYTES, Settings
from pytest_vllm_metrics.sim import Profile, SimHost, build_app, get_profile
from pytest_vllm_metrics.targets import Target, TargetSource
from pytest_vllm_metrics.traffic import Aborts

UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing listens there on loopback


def counted(sim_host: SimHost, profile: Profile | None = None, *middlewares: Any) -> tuple[str, list[str]]:
    """A simulated server (x86_64 unless told, `middlewares` innermost) and the "METHOD path" of every request it
    received."""
    seen: list[str] = []
    app = build_app(profile or get_profile("x86_64"))

    @web.middleware
    async def recorded(request: web.Request, handler: Any) -> web.StreamResponse:
        seen.append(f"{request.method} {request.path}")
        return await handler(request)  # type: ignore[no-any-return]

    app.middlewares.insert(0, recorded)  # outermost: sees what the faults answer too
    app.middlewares.extend(middlewares)
    return sim_host.start_app(app), seen


def observed(*targets: Target, within: float = 60.0, **settings: Any) -> dict[str, Observation]:
    """The observations of a run, which must end within `within` seconds."""
    run = observe(list(targets), Settings(**{"vllm_requests": 2, "vllm_timeout": 30.0, **settings}))
    return asyncio.run(asyncio.wait_for(run, within))


HUNG = 0  # in `scripted`: an answer that never finishes


def scripted(path: str, answers: dict[int, int]) -> Any:
    """A middleware for the requests of `path`, numbered from 1: request n answers as request answers[n] did (an
    engine whose gauges lag behind its requests), or never finishes for HUNG (a hung server that trickles)."""
    pages: list[tuple[bytes, str]] = []

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path != path:
            return await handler(request)  # type: ignore[no-any-return]
        earlier = answers.get(len(pages) + 1)
        if earlier == HUNG:
            pages.append((b"", ""))
            response = web.StreamResponse(headers={"Content-Type": "text/plain"})
            await response.prepare(request)
            while True:  # until the client gives up: writing to its closed connection fails (the sim's _hangups)
                await response.write(b"#")
                await asyncio.sleep(0.05)
        answer = await handler(request)
        assert isinstance(answer, web.Response) and isinstance(answer.body, bytes)
        pages.append((answer.body, answer.headers["Content-Type"]))
        if earlier is None:
            return answer
        body, content_type = pages[earlier - 1]
        return web.Response(body=body, headers={"Content-Type": content_type})

    return middleware


# -- the stages ----------------------------------------------------------------------------------------------------


def test_a_target_is_scraped_asked_its_version_sent_the_workload_and_scraped_again(sim_host: SimHost) -> None:
    url, seen = counted(sim_host)
    obs = observed(Target("a", url))["a"]
    assert seen == ["GET /metrics", "GET /version", "GET /v1/models", "POST /v1/completions",
                    "POST /v1/completions", "GET /metrics"]
    assert obs.errors == {}
    assert obs.version == get_profile("x86_64").version
    assert obs.before is not None and obs.after is not None and obs.traffic is not None
    assert obs.traffic.requests == 2 and obs.traffic.block_size == obs.block_size == 128  # the page's own
    assert obs.delta is not None and obs.delta.increase("vllm:request_success_total") == 2
    assert obs.aborts is None  # vLLM's abort probe needs --vllm-exclusive


@pytest.mark.parametrize(("url", "failure"), [
    (UNREACHABLE, True),  # connection refused: not reachable, a failure
    ("metrics-404", True),
])
def test_a_first_scrape_that_fails_is_one_problem_shared_by_every_later_stage(sim_host: SimHost, url: str,
                                                                              failure: bool) -> None:
    seen: list[str] = []
    if url != UNREACHABLE:
        url, seen = counted(sim_host, get_profile("x86_64").replace(fault=url))
    obs = observed(Target("a", url))["a"]
    problem = obs.errors[Stage.BEFORE]
    assert obs.errors == {Stage.BEFORE: problem, Stage.TRAFFIC: problem, Stage.AFTER: problem}
    assert obs.errors[Stage.TRAFFIC] is problem is obs.errors[Stage.AFTER]  # stated once per target in reports
    assert (problem.inconclusive, problem.check) == (not failure, Check.REACHABLE)
    assert problem.message.startswith("a: ") and problem.cause
    assert (obs.version, obs.traffic, obs.after) == (None, None, None)
    assert seen in ([], ["GET /metrics"])  # nothing more is asked of it


_HUNG = ("a: GET {} did not finish within 1 s: the server kept the answer open without completing it (a hung or "
         "overloaded server, or a proxy that buffers). Check the target, or raise --vllm-timeout if it is only slow.")


@pytest.mark.parametrize(("path", "answers", "exclusive", "stages"), [
    ("/metrics", {1: HUNG}, False, (Stage.BEFORE, Stage.TRAFFIC, Stage.AFTER)),
    ("/version", {1: HUNG}, False, (Stage.VERSION,)),
    ("/metrics", {2: HUNG}, False, (Stage.AFTER,)),
    # --vllm-exclusive: the counts are not on the second page yet (it repeats the first), and the next one hangs
    ("/metrics", {2: 1, 3: HUNG}, True, (Stage.AFTER,)),
])
def test_a_request_that_never_finishes_is_cut_at_the_timeout_and_recorded_for_its_stage(
        sim_host: SimHost, path: str, answers: dict[int, int], exclusive: bool, stages: tuple[Stage, ...]) -> None:
    url, _ = counted(sim_host, None, scripted(path, answers))
    obs = observed(Target("a", url), vllm_timeout=1.0, vllm_exclusive=exclusive, within=15)["a"]
    message = _HUNG.format(path)
    check = Check.VERSION if path == "/version" else Check.REACHABLE
    assert obs.errors == dict.fromkeys(stages, Problem(message, inconclusive=True, check=check, cause=message))


def test_upgrade_mode_only_scrapes_and_says_why_there_is_no_workload(sim_host: SimHost) -> None:
    url, seen = counted(sim_host)
    obs = observed(Target("a", url), vllm_upgrade_to="0.11.0")["a"]
    assert seen == ["GET /metrics", "GET /version"]
    problem = obs.errors[Stage.TRAFFIC]
    assert obs.errors == {Stage.TRAFFIC: problem, Stage.AFTER: problem}
    assert problem == Problem("a: no workload is sent with --vllm-upgrade-to (the run only scrapes); run without it "
                              "for the checks that need the workload.")
    assert obs.before is not None and obs.version is not None and obs.traffic is None and obs.after is None


def test_a_workload_that_partly_fails_is_no_problem_of_the_stage(sim_host: SimHost) -> None:
    failed = iter([False, True])
    app = build_app(get_profile("x86_64"))

    @web.middleware
    async def second_fails(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.method == "POST" and next(failed, False):
            return web.json_response({"message": "boom"}, status=500)
        return await handler(request)  # type: ignore[no-any-return]

    app.middlewares.append(second_fails)
    obs = observed(Target("a", sim_host.start_app(app)), vllm_requests=3)["a"]
    assert obs.errors == {}  # the checks count what was served (and the exact ones refuse to count)
    assert obs.traffic is not None and [r.ok for r in obs.traffic.records] == [True, False, True]


def test_a_workload_the_server_failed_entirely_is_reported_by_the_workload_check(sim_host: SimHost) -> None:
    sim = sim_host.start(get_profile("x86_64").replace(fault="completions-500"))
    obs = observed(Target("a", sim.url))["a"]
    problem = obs.errors[Stage.TRAFFIC]
    assert (problem.inconclusive, problem.check, problem.cause) == (False, Check.WORKLOAD_SERVED,
                                                                    "every workload request failed")
    assert problem.message.startswith("a: every workload request failed: 0/2 requests succeeded")
    assert obs.after is not None and Stage.AFTER not in obs.errors  # the second scrape still happens


@pytest.mark.parametrize(("status", "body", "message", "cause"), [
    (500, "Internal Server Error", "GET /v1/models answered HTTP 500; no workload was sent. Pass the model with "
                                   "--vllm-model to skip this lookup.",
     "GET /v1/models answered HTTP 500; no workload was sent"),
    # one sentence: its closing period is not part of the cause
    (200, '{"object": "list", "data": []}', "GET /v1/models did not list any model; pass one with --vllm-model.",
     "GET /v1/models did not list any model; pass one with --vllm-model"),
])
def test_a_models_endpoint_that_fails_is_the_servers_failure_named_by_its_first_sentence(
        sim_host: SimHost, status: int, body: str, message: str, cause: str) -> None:
    app = build_app(get_profile("x86_64"))

    @web.middleware
    async def broken_models(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path == "/v1/models":
            return web.Response(status=status, text=body)
        return await handler(request)  # type: ignore[no-any-return]

    app.middlewares.append(broken_models)
    problem = observed(Target("a", sim_host.start_app(app)))["a"].errors[Stage.TRAFFIC]
    assert problem == Problem(f"a: {message}", inconclusive=False, check=Check.WORKLOAD_SERVED, cause=cause)


def test_a_refused_key_is_the_runs_problem(sim_host: SimHost) -> None:
    sim = sim_host.start(get_profile("x86_64").replace(api_key="sk-right-0000"))
    problem = observed(Target("a", sim.url), vllm_api_key="sk-wrong-1111")["a"].errors[Stage.TRAFFIC]
    assert problem.inconclusive and problem.check == Check.WORKLOAD_SERVED
    assert "sk-" not in problem.message


def test_each_workload_request_is_cut_at_the_timeout(sim_host: SimHost) -> None:
    # each completion takes 0.5 s
    sim = sim_host.start(get_profile("x86_64").replace(fault="completions-slow"))
    problem = observed(Target("a", sim.url), vllm_timeout=0.3, within=15)["a"].errors[Stage.TRAFFIC]
    assert problem.message == (
        "a: every workload request failed: 0/2 requests succeeded, 0 prompt tokens (shared prefix 0 tokens, block "
        "size 128), 0 generated tokens; first failure: completion -> None: a: POST /v1/completions did not complete "
        "within 0.3 s. The server is overloaded, hung, or the address answers but is not vLLM; check the target, or "
        "raise --vllm-timeout if it is only slow.")


def test_the_workload_phase_cap_keeps_what_was_sent_and_says_so(sim_host: SimHost) -> None:
    # each completion takes 0.5 s: a cap of 0.2 s is reached before the first answer, however fast the machine
    url, seen = counted(sim_host, get_profile("x86_64").replace(fault="completions-slow"))
    obs = observed(Target("a", url), vllm_requests=4, vllm_phase_timeout=0.2)["a"]
    problem = obs.errors[Stage.TRAFFIC]
    assert problem.message == ("a: the workload phase reached its cap of 0.2 s (--vllm-phase-timeout) after 0 of 4 "
                               "requests; raise the cap or send fewer requests")
    assert problem.inconclusive and problem.cause == problem.message.removeprefix("a: ")
    assert obs.traffic is not None and obs.traffic.records == []
    assert obs.after is not None and seen[-1] == "GET /metrics"


def test_a_server_without_a_version_fails_the_version_check_and_is_still_observed(sim_host: SimHost) -> None:
    sim = sim_host.start(get_profile("x86_64").replace(fault="version-missing"))
    obs = observed(Target("a", sim.url))["a"]
    assert list(obs.errors) == [Stage.VERSION]
    problem = obs.errors[Stage.VERSION]
    assert problem == Problem('a: GET /version answered HTTP 404 without a version; every vLLM serves {"version": '
                              '"..."} there. Version-dependent checks assume the newest vLLM.', inconclusive=False,
                              check=Check.VERSION, cause="GET /version answered HTTP 404 without a version")
    assert obs.version is None and obs.traffic is not None and obs.traffic.requests == 2


@pytest.mark.parametrize(("status", "body"), [
    (200, {"version": 32}), (200, {"vllm": "0.32.0"}), (200, "0.32.0"),
    (404, {"version": "0.32.0"}),  # an error's body is no answer, whatever it says
])
def test_a_version_answer_without_a_version_string_is_the_servers_failure(sim_host: SimHost, status: int,
                                                                          body: object) -> None:
    app = build_app(get_profile("x86_64"))

    @web.middleware
    async def odd_version(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path == "/version":
            return web.json_response(body, status=status)
        return await handler(request)  # type: ignore[no-any-return]

    app.middlewares.append(odd_version)
    obs = observed(Target("a", sim_host.start_app(app)))["a"]
    assert obs.version is None
    assert obs.errors[Stage.VERSION].cause == f"GET /version answered HTTP {status} without a version"


def test_a_version_answer_far_too_large_is_the_servers_failure(sim_host: SimHost) -> None:
    @web.middleware
    async def huge_version(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path != "/version":
            return await handler(request)  # type: ignore[no-any-return]
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.content_length = MAX_BODY_BYTES + 1  # declared: the suite refuses it before reading
        await response.prepare(request)
        await response.write(b'{"version": "')
        return response

    url, _ = counted(sim_host, None, huge_version)
    obs = observed(Target("a", url))["a"]
    cause = "GET /version returned more than 16 MiB"
    assert obs.errors == {Stage.VERSION: Problem(
        f"a: {cause}, far more than a vLLM metrics page (about 50 KB); the URL probably points at something else. "
        f"Check the target URL and --vllm-metrics-path.", inconclusive=False, check=Check.VERSION, cause=cause)}
    assert obs.version is None and obs.traffic is not None and obs.traffic.requests == 2


def test_an_api_key_cannot_go_through_the_pod_proxy(sim_host: SimHost) -> None:
    url, seen = counted(sim_host)
    pod = Target("pod-a", url, source=TargetSource.KUBERNETES, detail={"transport": "proxy"})
    obs = observed(pod, vllm_api_key="sk-1")["pod-a"]
    assert "--vllm-gateway-url" in obs.errors[Stage.TRAFFIC].message and obs.errors[Stage.TRAFFIC].inconclusive
    assert not [s for s in seen if s.startswith("POST")] and seen[-1] == "GET /metrics"  # scraped again all the same


def test_an_api_key_goes_with_the_workload_to_a_pod_reached_directly(sim_host: SimHost) -> None:
    url, seen = counted(sim_host, get_profile("x86_64").replace(api_key="sk-1"))
    pod = Target("pod-a", url, source=TargetSource.KUBERNETES, detail={"transport": "direct"})
    obs = observed(pod, vllm_api_key="sk-1", vllm_model="tiny")["pod-a"]
    assert obs.errors == {} and obs.traffic is not None and obs.traffic.requests == 2
    assert seen == ["GET /metrics", "GET /version", "POST /v1/completions", "POST /v1/completions", "GET /metrics"]


def test_an_unavailable_target_is_not_asked_anything(sim_host: SimHost) -> None:
    url, seen = counted(sim_host)
    obs = observed(Target("a", url, unavailable="a: pod a is not Ready (phase Pending)"))["a"]
    assert seen == [] and obs.errors == {} and obs.before is None
    assert obs.failure(Stage.BEFORE) == Problem("a: pod a is not Ready (phase Pending)")


def test_one_broken_target_never_stops_the_others(sim_host: SimHost) -> None:
    good = sim_host.start(get_profile("x86_64"))
    seen = observed(Target("broken", UNREACHABLE), Target("good", good.url), vllm_concurrency=1)
    assert list(seen) == ["broken", "good"]
    assert seen["good"].errors == {} and seen["good"].traffic is not None
    assert Stage.BEFORE in seen["broken"].errors


@pytest.mark.parametrize(("base_url", "gateway", "stage"), [
    ("http://127.0.0.1:8000\t", None, Stage.BEFORE),  # a URL httpx refuses: a tab pasted into it
    (None, "http://127.0.0.1:8000\t", Stage.TRAFFIC),  # the same in the gateway's: after the first scrape
])
def test_an_unexpected_error_is_recorded_for_the_stage_it_stopped(sim_host: SimHost, base_url: str | None,
                                                                    gateway: str | None, stage: Stage) -> None:
    obs = observed(Target("a", base_url or sim_host.start(get_profile("x86_64")).url), vllm_gateway_url=gateway)["a"]
    assert obs.errors == {stage: Problem("a: unexpected InvalidURL while checking this server, so the checks that "
                                         "need it could not observe it. Please report it with the server's /metrics "
                                         "page.")}


# -- through an inference gateway (--vllm-gateway-url) -------------------------------------------------------------


def test_through_a_gateway_the_workload_goes_to_the_gateway_and_the_pod_is_only_scraped(sim_host: SimHost) -> None:
    pod, at_pod = counted(sim_host)
    gateway, at_gateway = counted(sim_host)
    obs = observed(Target("a", pod), vllm_gateway_url=gateway)["a"]
    assert at_pod == ["GET /metrics", "GET /version", "GET /metrics"]
    assert at_gateway == ["GET /v1/models", "POST /v1/completions", "POST /v1/completions"]
    assert obs.errors == {} and obs.traffic is not None and obs.traffic.requests == 2
    assert obs.delta is not None and obs.delta.increase("vllm:request_success_total") == 0  # served elsewhere


@pytest.mark.parametrize(("model", "problem"), [
    (None, Problem("a: cannot connect to http://127.0.0.1:9 (All connection attempts failed). Check that the server "
                   "is running and that the host and port are right. No workload was sent.",
                   check=Check.WORKLOAD_SERVED,
                   cause="cannot connect to http://127.0.0.1:9 (All connection attempts failed)")),
    ("tiny", Problem("a: every workload request failed: 0/2 requests succeeded, 0 prompt tokens (shared prefix 0 "
                     "tokens, block size 128), 0 generated tokens; first failure: completion -> None: a via gateway: "
                     "cannot connect to http://127.0.0.1:9 (All connection attempts failed). Check that the server is "
                     "running and that the host and port are right.", inconclusive=False,
                     check=Check.WORKLOAD_SERVED, cause="every workload request failed")),
])
def test_a_gateway_that_cannot_be_reached_is_the_workloads_problem(sim_host: SimHost, model: str | None,
                                                                   problem: Problem) -> None:
    obs = observed(Target("a", sim_host.start(get_profile("x86_64")).url), vllm_gateway_url=UNREACHABLE,
                   vllm_model=model)["a"]
    assert obs.errors == {Stage.TRAFFIC: problem}
    assert obs.after is not None


def test_an_exclusive_run_waits_a_bounded_time_for_counts_that_never_reach_the_page(sim_host: SimHost) -> None:
    # through a gateway to another server: the pod's own page never counts the workload
    pod, at_pod = counted(sim_host)
    started = time.monotonic()
    obs = observed(Target("a", pod), vllm_gateway_url=sim_host.start(get_profile("x86_64")).url,
                   vllm_exclusive=True, within=30)["a"]
    assert time.monotonic() - started >= 3.0  # observe._SETTLE_SECONDS
    assert obs.errors == {} and obs.traffic is not None and obs.traffic.choices == 6  # the exclusive workload
    assert at_pod[:3] == ["GET /metrics", "GET /version", "GET /metrics"] and set(at_pod[3:]) == {"GET /metrics"}
    assert 3 < len(at_pod) < 60  # polled every 0.1 s
    assert obs.aborts is None  # no abort probe through a gateway: it cannot pick the pod


# -- the abort probe: streams closed mid-way, then the gauges polled until they read 0 again -------------------------

SGLANG = ("sglang:num_queue_reqs", "sglang:num_running_reqs", "sglang:token_usage")
WORKLOAD = ["GET /metrics", "GET /v1/models", "POST /v1/completions", "POST /v1/completions", "GET /metrics"]
PROBE = ["POST /v1/completions"] * 3  # accounting.toml [gauges] streams


def test_vllm_is_probed_with_exclusive_and_its_gauges_read_0_again(sim_host: SimHost) -> None:
    url, seen = counted(sim_host)
    obs = observed(Target("a", url), vllm_exclusive=True)["a"]
    aborts = obs.aborts
    assert aborts is not None and (aborts.opened, aborts.finished, aborts.aborted, aborts.error) == (3, 0, 3, None)
    gauges = ("vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc")  # accounting.toml
    assert tuple(aborts.during) == gauges and aborts.during["vllm:num_requests_running"] == 3
    assert aborts.after == dict.fromkeys(gauges, 0.0)
    assert aborts.waited == 10.0 and aborts.settled_after is not None and 0 <= aborts.settled_after < 10.0
    # the exclusive workload, one second scrape (its counts are there at once), the probe: one read while open
    assert seen == ["GET /metrics", "GET /version", "GET /v1/models", *["POST /v1/completions"] * 3,
                    "POST /v1/chat/completions", "GET /metrics", *PROBE, "GET /metrics",
                    *["GET /metrics"] * aborts.polls]


@pytest.mark.parametrize(("profile", "gauges", "waited"), [
    ("sglang-0.5.16", SGLANG, 35.0),  # engines.toml settle_seconds
    # gauges told apart by their labels
    ("triton-tensorrt-llm", ('nv_trt_llm_request_metrics{request_type="waiting"}',
                             'nv_trt_llm_request_metrics{request_type="scheduled"}',
                             'nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="fraction"}'), 10.0),
])
def test_another_engine_is_probed_and_its_protocols_gauges_polled_while_they_lag(
        sim_host: SimHost, profile: str, gauges: tuple[str, str, str], waited: float) -> None:
    # scrape 3, the first with the streams open, shows the page before them; 5 and 6, after the close, the open ones
    engine = get_profile(profile)
    url, seen = counted(sim_host, engine, scripted("/metrics", {3: 2, 5: 4, 6: 4}))
    obs = observed(Target("a", url, engine=Engine(engine.engine), engine_version=engine.version))["a"]
    assert obs.errors == {} and obs.version == engine.version  # as discovery knows it: these engines have no /version
    assert seen == [*WORKLOAD, *PROBE, *["GET /metrics"] * 5]
    aborts = obs.aborts
    assert aborts is not None and (aborts.opened, aborts.aborted, aborts.error) == (3, 3, None)
    assert tuple(aborts.during) == gauges and aborts.during[gauges[1]] == 3
    assert aborts.after == dict.fromkeys(gauges, 0.0) and aborts.polls == 3 and aborts.waited == waited
    assert aborts.settled_after is not None and 0.4 <= aborts.settled_after < waited  # two polls 0.2 s apart


def test_gauges_that_never_read_0_again_are_polled_until_the_phase_cap(sim_host: SimHost) -> None:
    sim = sim_host.start(get_profile("sglang-0.5.16").replace(fault="stuck-running"))
    started = time.monotonic()
    aborts = observed(Target("a", sim.url, engine=Engine.SGLANG), vllm_phase_timeout=1.0)["a"].aborts
    assert time.monotonic() - started >= 1.0
    assert aborts is not None and aborts.waited == 1.0  # below SGLang's 35 s
    assert aborts.settled_after is None and aborts.after["sglang:num_running_reqs"] == 3 and aborts.polls >= 3


def test_streams_the_server_ended_before_the_close_are_no_abort_and_nothing_is_polled(sim_host: SimHost) -> None:
    @web.middleware
    async def done_at_once(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.method == "POST" and (await request.json()).get("stream"):
            return web.Response(text="data: [DONE]\n\n", content_type="text/event-stream")
        return await handler(request)  # type: ignore[no-any-return]

    url, _ = counted(sim_host, get_profile("sglang-0.5.16"), done_at_once)
    aborts = observed(Target("a", url, engine=Engine.SGLANG))["a"].aborts
    # read while "open" until accounting.toml's during_seconds, then no poll afterwards
    assert aborts == Aborts(opened=3, finished=3, during=dict.fromkeys(SGLANG, 0.0))


def test_a_scrape_of_the_probe_that_fails_is_the_probes_error_not_a_stages(sim_host: SimHost) -> None:
    url, seen = counted(sim_host, get_profile("sglang-0.5.16"), scripted("/metrics", {3: HUNG}))
    obs = observed(Target("a", url, engine=Engine.SGLANG), vllm_timeout=1.0, within=15)["a"]
    assert obs.errors == {}
    assert obs.aborts == Aborts(opened=3, error=_HUNG.format("/metrics"))
    assert seen == [*WORKLOAD, *PROBE, "GET /metrics"]


@pytest.mark.parametrize(("fault", "answers", "stages"), [
    ("completions-500", {}, [Stage.TRAFFIC]),
    (None, {2: HUNG}, [Stage.AFTER]),
])
def test_no_abort_probe_after_a_workload_or_a_second_scrape_that_failed(
        sim_host: SimHost, fault: str | None, answers: dict[int, int], stages: list[Stage]) -> None:
    url, seen = counted(sim_host, get_profile("sglang-0.5.16").replace(fault=fault), scripted("/metrics", answers))
    obs = observed(Target("a", url, engine=Engine.SGLANG), vllm_timeout=1.0, within=15)["a"]
    assert list(obs.errors) == stages and obs.aborts is None
    assert seen[-1] == "GET /metrics"


# -- an observation -------------------------------------------------------------------------------------------------


_REFUSED = Problem("a: GET /metrics answered HTTP 404.", inconclusive=False, check=Check.REACHABLE,
                   cause="GET /metrics answered HTTP 404")


def test_a_failure_is_the_problem_itself_for_its_reporter_and_a_pointer_for_every_other_check() -> None:
    obs = Observation(Target("a", "http://x"), errors={Stage.BEFORE: _REFUSED})
    assert obs.failure(Stage.BEFORE, reporter=Check.REACHABLE) is _REFUSED
    assert obs.failure(Stage.BEFORE) == obs.failure(Stage.BEFORE, reporter=Check.VERSION) == Problem(
        "a: see test_reachable: GET /metrics answered HTTP 404")


def test_an_inconclusive_problem_is_every_checks_own() -> None:
    timed_out = Problem("a: GET /metrics did not finish within 2 s", check=Check.REACHABLE, cause="timed out")
    obs = Observation(Target("a", "http://x"), errors={Stage.AFTER: timed_out})
    assert obs.failure(Stage.AFTER, reporter=Check.VERSION) is timed_out


def test_the_first_stage_asked_for_with_a_problem_is_the_one_given() -> None:
    version = Problem("a: no version", inconclusive=False)  # no reporter: the problem itself, for every check
    obs = Observation(Target("a", "http://x"), errors={Stage.VERSION: version, Stage.AFTER: _REFUSED})
    assert obs.failure(Stage.BEFORE, Stage.VERSION, Stage.AFTER) is version
    assert obs.failure(Stage.BEFORE, Stage.TRAFFIC) is None


@pytest.mark.parametrize(("size", "expected"), [("32", 32), ("", DEFAULT_BLOCK_SIZE), ("sixteen", DEFAULT_BLOCK_SIZE)])
def test_the_block_size_is_the_pages_own_or_vllms_default(size: str, expected: int) -> None:
    obs = Observation(Target("a", "http://x"), before=page({}, block_size=size))  # type: ignore[arg-type]
    assert obs.block_size == expected


def test_without_a_page_the_block_size_is_the_default_and_prefix_caching_unknown() -> None:
    obs = Observation(Target("a", "http://x"))
    assert (obs.block_size, obs.prefix_caching, obs.cache_config, obs.features, obs.delta) == (
        DEFAULT_BLOCK_SIZE, None, {}, set(), None)


def test_the_config_is_read_from_the_second_page_when_the_first_is_missing() -> None:
    obs = Observation(Target("a", "http://x"), after=page({}, block_size=64, caching="False"))
    assert (obs.block_size, obs.prefix_caching) == (64, "False")


def test_the_delta_is_computed_once_per_pair_of_pages() -> None:
    first, second, third = page({"vllm:request_success_total": 1}), page({"vllm:request_success_total": 3}), page(
        {"vllm:request_success_total": 7})
    obs = Observation(Target("a", "http://x"), before=first, after=second)
    delta = obs.delta
    assert delta is obs.delta and delta is not None and delta.increase("vllm:request_success_total") == 2
    obs.after = third
    assert obs.delta is not delta and obs.delta is not None and obs.delta.increase("vllm:request_success_total") == 6
    obs.before = second
    assert obs.delta is not None and obs.delta.increase("vllm:request_success_total") == 4
