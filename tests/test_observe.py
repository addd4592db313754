"""One observation per target (observe.py): the stages (scrape before, version, workload, scrape after) against
simulated servers over real HTTP, the Problem each stage records when it has no result, and which check a
recorded problem is reported by."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web

from conftest import page
from pytest_vllm_metrics.observe import DEFAULT_BLOCK_SIZE, Check, Observation, Stage, observe
from pytest_vllm_metrics.outcome import Problem
from pytest_vllm_metrics.settings import Settings
from pytest_vllm_metrics.sim import Profile, SimHost, build_app, get_profile
from pytest_vllm_metrics.targets import Target, TargetSource

UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing listens there on loopback


def counted(sim_host: SimHost, profile: Profile | None = None) -> tuple[str, list[str]]:
    """A simulated server (x86_64 unless told) and the "METHOD path" of every request it received."""
    seen: list[str] = []
    app = build_app(profile or get_profile("x86_64"))

    @web.middleware
    async def recorded(request: web.Request, handler: Any) -> web.StreamResponse:
        seen.append(f"{request.method} {request.path}")
        return await handler(request)  # type: ignore[no-any-return]

    app.middlewares.insert(0, recorded)  # outermost: sees what the faults answer too
    return sim_host.start_app(app), seen


def observed(*targets: Target, **settings: Any) -> dict[str, Observation]:
    return asyncio.run(observe(list(targets), Settings(**{"vllm_requests": 2, "vllm_timeout": 30.0, **settings})))


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


def test_a_models_endpoint_that_fails_is_the_servers_failure_named_by_its_first_sentence(sim_host: SimHost) -> None:
    app = build_app(get_profile("x86_64"))

    @web.middleware
    async def broken_models(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path == "/v1/models":
            return web.Response(status=500, text="Internal Server Error")
        return await handler(request)  # type: ignore[no-any-return]

    app.middlewares.append(broken_models)
    problem = observed(Target("a", sim_host.start_app(app)))["a"].errors[Stage.TRAFFIC]
    assert problem == Problem("a: GET /v1/models answered HTTP 500; no workload was sent. Pass the model with "
                              "--vllm-model to skip this lookup.", inconclusive=False, check=Check.WORKLOAD_SERVED,
                              cause="GET /v1/models answered HTTP 500; no workload was sent")


def test_a_refused_key_is_the_runs_problem(sim_host: SimHost) -> None:
    sim = sim_host.start(get_profile("x86_64").replace(api_key="sk-right-0000"))
    problem = observed(Target("a", sim.url), vllm_api_key="sk-wrong-1111")["a"].errors[Stage.TRAFFIC]
    assert problem.inconclusive and problem.check == Check.WORKLOAD_SERVED
    assert "sk-" not in problem.message


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


@pytest.mark.parametrize("body", [{"version": 32}, {"vllm": "0.32.0"}, "0.32.0"])
def test_a_version_answer_without_a_version_string_is_the_servers_failure(sim_host: SimHost, body: object) -> None:
    app = build_app(get_profile("x86_64"))

    @web.middleware
    async def odd_version(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path == "/version":
            return web.json_response(body)
        return await handler(request)  # type: ignore[no-any-return]

    app.middlewares.append(odd_version)
    obs = observed(Target("a", sim_host.start_app(app)))["a"]
    assert obs.version is None
    assert obs.errors[Stage.VERSION].cause == "GET /version answered HTTP 200 without a version"


def test_an_api_key_cannot_go_through_the_pod_proxy(sim_host: SimHost) -> None:
    url, seen = counted(sim_host)
    pod = Target("pod-a", url, source=TargetSource.KUBERNETES, detail={"transport": "proxy"})
    obs = observed(pod, vllm_api_key="sk-1")["pod-a"]
    assert "--vllm-gateway-url" in obs.errors[Stage.TRAFFIC].message and obs.errors[Stage.TRAFFIC].inconclusive
    assert not [s for s in seen if s.startswith("POST")] and seen[-1] == "GET /metrics"  # scraped again all the same


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
