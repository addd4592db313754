"""The workload (traffic.py): what it sends to a server, over real HTTP to the bundled simulator, and what it records
of the answers: kinds, counts, usage, finish reasons, and why no (or only part of the) workload was served."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from aiohttp import web

from conftest import SUMMARY, record, workload
from pytest_vllm_metrics.scrape import scrape
from pytest_vllm_metrics.sim import Profile, SimHost, build_app, get_profile
from pytest_vllm_metrics.targets import Target, TargetSource
from pytest_vllm_metrics.traffic import (
    KINDS,
    MAX_ANSWER_BYTES,
    STOP_FROM_REQUESTS,
    Aborts,
    RequestRecord,
    TrafficResult,
    Workload,
    _error_text,
    _stop_string,
    _take_usage,
)

Middleware = Callable[[web.Request, Any], Any]


def served(sim_host: SimHost, profile: Profile | None = None,
           answer: Callable[[web.Request], web.Response | None] | None = None,
           slow: str | None = None) -> tuple[str, list[dict[str, Any]]]:
    """A simulated server (x86_64 unless told) and the POST bodies it received, in order; `answer` may answer a
    request itself (None: the simulator answers); requests for the path `slow` are answered after 2 s."""
    bodies: list[dict[str, Any]] = []
    app = build_app(profile or get_profile("x86_64"))

    @web.middleware
    async def recorded(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.method == "POST":
            bodies.append({"path": request.path, **await request.json()})
        if request.path == slow:
            await asyncio.sleep(2.0)  # a slow server, past the client's short timeout
        own = answer(request) if answer else None
        return own if own is not None else await handler(request)

    app.middlewares.append(recorded)
    return sim_host.start_app(app), bodies


def send(url: str, *, requests: int = 4, model: str | None = None, api_key: str | None = None, max_tokens: int = 5,
         exclusive: bool = False, block_size: int = 16, source: TargetSource = TargetSource.URL,
         timeout: float = 30) -> TrafficResult:
    async def go() -> TrafficResult:
        async with httpx.AsyncClient() as client:
            return await Workload(client, Target("sim", url, source=source), model=model, api_key=api_key,
                                  requests=requests, max_tokens=max_tokens, timeout=timeout,
                                  exclusive=exclusive).run(block_size)

    return asyncio.run(go())


def abort(url: str, *, count: int = 2, api_key: str | None = None,
          timeout: float = 30) -> tuple[Aborts, list[float | None]]:
    """The abort probe's streams (900 tokens each, 1.8 s at the least) against a server: what it recorded, and the
    server's vllm:num_requests_running as read while the streams were open (once, or never)."""
    aborts = Aborts()
    running: list[float | None] = []

    async def go() -> None:
        async with httpx.AsyncClient() as client:
            target = Target("sim", url)

            async def while_open() -> None:
                running.append((await scrape(client, target, "/metrics", 10)).value("vllm:num_requests_running"))

            await Workload(client, target, model="tiny", api_key=api_key, requests=1, max_tokens=5,
                           timeout=timeout).abort_streams(aborts, count, 900, while_open)

    asyncio.run(go())
    return aborts, running


def kinds(bodies: list[dict[str, Any]]) -> list[str]:
    return [("chat" if b["path"].endswith("chat/completions") else "completion") + ("-stream" if b["stream"] else "")
            for b in bodies]


# -- what is sent -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("requests", "sent"), [
    (1, ["completion"]),  # the calibration alone
    (2, ["completion", "completion"]),
    (5, ["completion", *KINDS]),  # one below STOP_FROM_REQUESTS: no stop request
    (8, ["completion", *KINDS, "completion", "completion-stream", "completion"]),
])
def test_n_requests_send_the_calibration_then_every_kind_in_turn(sim_host: SimHost, requests: int,
                                                                  sent: list[str]) -> None:
    url, bodies = served(sim_host)
    traffic = send(url, requests=requests)
    assert kinds(bodies) == sent
    assert [r.kind for r in traffic.records] == sent
    assert traffic.requests == len(traffic.records) == requests
    assert all(b["model"] == "tiny" and b["max_tokens"] == 5 for b in bodies)  # the first model /v1/models lists


@pytest.mark.parametrize("requests", [STOP_FROM_REQUESTS - 1, STOP_FROM_REQUESTS])
def test_from_six_requests_the_last_one_stops_on_its_stop_string(sim_host: SimHost, requests: int) -> None:
    url, bodies = served(sim_host)
    traffic = send(url, requests=requests)
    stopping = [b for b in bodies if "stop" in b]
    if requests < STOP_FROM_REQUESTS:
        assert not stopping
        assert traffic.finish_reasons() == {"length": requests}
        return
    assert stopping == [bodies[-1]]
    assert [r.shares_prefix for r in traffic.records] == [False, True, True, True, True, False]
    assert bodies[-1]["prompt"] == bodies[0]["prompt"]  # the calibration's prompt, answered greedily again
    assert traffic.records[-1].stop == bodies[-1]["stop"][0] == _stop_string(traffic.records[0].text)
    assert traffic.finish_reasons() == {"length": requests - 1, "stop": 1}


def test_requests_share_one_prefix_of_two_blocks_and_sixteen_tokens(sim_host: SimHost) -> None:
    url, bodies = served(sim_host)
    traffic = send(url, requests=5, block_size=16)
    calibration, *shared = traffic.records
    assert not calibration.shares_prefix and all(r.shares_prefix for r in shared)
    assert traffic.prefix_tokens == 2 * 16 + 16
    prefix = bodies[1]["prompt"].split(" request 1 ")[0]
    chat = next(b for b in bodies if "messages" in b)
    # the chat's prefix is its system message, the rest its user message
    assert chat["messages"] == [{"role": "system", "content": prefix},
                                {"role": "user", "content": " request 3 every and prefix the"}]
    assert all(b.get("prompt", prefix).startswith(prefix) for b in bodies[1:])
    assert traffic.repeated_prefix_requests == (2 - 1) + (2 - 1)  # per family: all but the first


def prefix_words(bodies: list[dict[str, Any]]) -> int:
    """How many words the shared prefix has (the first request after the calibration carries it)."""
    return len(bodies[1]["prompt"].split(" request 1 ")[0].split())


@pytest.mark.parametrize(("calibration", "words"), [
    ({"prompt_tokens": 64, "completion_tokens": 5}, 24),  # 2 tokens a word: 48 tokens are 24 words
    ({"prompt_tokens": 16, "completion_tokens": 5}, 96),  # half a token a word
    ({}, 48),  # no usage: a token a word
    (None, 48),  # the calibration failed: a token a word
])
def test_the_prefix_is_sized_by_the_tokens_a_word_costs_in_the_calibration(
        sim_host: SimHost, calibration: dict[str, int] | None, words: int) -> None:
    answered: list[bool] = []

    def first(request: web.Request) -> web.Response | None:
        if request.method != "POST" or answered:
            return None
        answered.append(True)
        if calibration is None:
            return web.json_response({"message": "boom"}, status=500)
        return web.json_response({"choices": [{"index": 0, "text": "a b", "finish_reason": "length"}],
                                  "usage": calibration})

    url, bodies = served(sim_host, answer=first)
    traffic = send(url, requests=2, model="tiny", block_size=16)
    assert (prefix_words(bodies), traffic.prefix_tokens) == (words, 2 * 16 + 16)


@pytest.mark.parametrize(("max_model_len", "words", "tokens"), [
    (48 + 5 + 64, 48, 48),  # room for the whole prefix, the max_tokens and 64 tokens to spare
    (40 + 5 + 64, 40, 40),
    (1 + 5 + 64, 1, 1),
    (5 + 64, 1, 0),  # no room at all: still one word
])
def test_the_prefix_fits_the_context_length_the_models_list_gives(sim_host: SimHost, max_model_len: int, words: int,
                                                                  tokens: int) -> None:
    url, bodies = served(sim_host, get_profile("x86_64").replace(max_model_len=max_model_len))
    traffic = send(url, requests=2, max_tokens=5, block_size=16)
    assert (prefix_words(bodies), traffic.prefix_tokens) == (words, tokens)


def test_streamed_requests_ask_for_their_usage_and_greedy_ones_for_temperature_0(sim_host: SimHost) -> None:
    url, bodies = served(sim_host)
    send(url, requests=5)
    for body in bodies:
        assert body["temperature"] == 0.0 and "n" not in body
        assert ("stream_options" in body) is body["stream"]


def test_requests_of_two_choices_sample_at_temperature_1_with_a_fixed_seed(sim_host: SimHost) -> None:
    url, bodies = served(sim_host)
    send(url, requests=4, exclusive=True)
    sampling = [{key: b.get(key) for key in ("temperature", "seed", "n")} for b in bodies]
    assert sampling == 4 * [{"temperature": 0.0, "seed": None, "n": None}] + 2 * [{"temperature": 1.0, "seed": 7,
                                                                                   "n": 2}]
    prefix = bodies[1]["prompt"].split(" request 1 ")[0]
    assert bodies[4]["prompt"] == prefix + " request 4 server bounded so metrics"  # numbered on from the others
    assert bodies[5]["messages"] == [{"role": "system", "content": prefix},
                                     {"role": "user", "content": " request 5 are workload cache of"}]


def test_a_workload_is_not_exclusive_unless_told(sim_host: SimHost) -> None:
    url, bodies = served(sim_host)

    async def go() -> TrafficResult:
        async with httpx.AsyncClient() as client:
            workload = Workload(client, Target("sim", url), model="tiny", api_key=None, requests=4, max_tokens=5,
                                timeout=30)
            # before it runs: nothing sent, for the model given and vLLM's default block size
            assert (workload.partial.model, workload.partial.block_size, workload.partial.records) == ("tiny", 16, [])
            return await workload.run(16)

    traffic = asyncio.run(go())
    assert kinds(bodies) == ["completion", *KINDS[:3]] and all("n" not in b for b in bodies)
    assert traffic.model == "tiny"


def test_every_answer_records_its_usage_and_finish_reason(sim_host: SimHost) -> None:
    url, _ = served(sim_host)
    traffic = send(url, requests=5, max_tokens=5)
    assert all(r.ok and r.prompt_tokens > 0 and r.completion_tokens == 5 for r in traffic.records)
    assert all(r.finish_reasons == {0: "length"} for r in traffic.records)
    assert traffic.usage_reported and traffic.error is None
    assert traffic.generation_tokens == 25 and traffic.decode_steps == 20


def test_the_exclusive_workload_records_usage_and_finish_reasons_per_request(sim_host: SimHost) -> None:
    sim = sim_host.start(get_profile("x86_64"))

    async def go() -> TrafficResult:
        async with httpx.AsyncClient() as client:
            workload = Workload(client, Target("sim", sim.url), model=None, api_key=None, requests=4, max_tokens=5,
                                timeout=10, exclusive=True)
            return await workload.run(128)

    traffic = asyncio.run(go())
    shape = [(r.kind, r.n, r.completion_tokens, sorted(r.finish_reasons.items())) for r in traffic.records]
    assert shape == [
        ("completion", 1, 5, [(0, "length")]),
        ("completion", 1, 5, [(0, "length")]),
        ("completion-stream", 1, 5, [(0, "length")]),
        ("chat", 1, 5, [(0, "length")]),
        ("completion", 2, 10, [(0, "length"), (1, "length")]),
        ("chat-stream", 2, 10, [(0, "length"), (1, "length")]),
    ]
    assert (traffic.requests, traffic.choices, traffic.decode_steps) == (6, 8, 40 - 8)
    assert traffic.engine_max_tokens == 4 * 5 + 2 * 2 * 5  # each choice may run to max_tokens
    assert [r.shares_prefix for r in traffic.records] == [False, True, True, True, True, True]
    assert traffic.engine_prompt_tokens == sum(r.prompt_tokens * r.n for r in traffic.records)


def test_an_api_key_is_sent_as_a_bearer_token(sim_host: SimHost) -> None:
    sim = sim_host.start(get_profile("x86_64").replace(api_key="sk-right-0000"))
    assert send(sim.url, requests=2, api_key="sk-right-0000").requests == 2


# -- answers that are not a served workload -----------------------------------------------------------------


@pytest.mark.parametrize(("key", "said"), [
    ("sk-wrong-1111", "GET /v1/models answered 401 Unauthorized although an API key was given (--vllm-api-key or "
                      "VLLM_API_KEY): the server refused it. Pass the key the server was started with (--api-key)."),
    (None, "GET /v1/models answered 401 Unauthorized: the server was started with --api-key and no key was given. "
           "Pass the key with --vllm-api-key or the VLLM_API_KEY environment variable."),
])
def test_a_refused_key_sends_no_workload_and_says_whether_one_was_given(sim_host: SimHost, key: str | None,
                                                                        said: str) -> None:
    sim = sim_host.start(get_profile("x86_64").replace(api_key="sk-right-0000"))
    traffic = send(sim.url, api_key=key)
    assert (traffic.error, traffic.server_failed, traffic.records) == (said, False, [])


def test_a_refused_key_with_the_model_given_is_said_of_every_request(sim_host: SimHost) -> None:
    sim = sim_host.start(get_profile("x86_64").replace(api_key="sk-right-0000"))
    traffic = send(sim.url, requests=2, model="tiny", api_key="sk-wrong-1111")
    assert [r.status for r in traffic.records] == [401, 401]
    assert traffic.error is not None and traffic.error.startswith("every workload request answered 401 Unauthorized "
                                                                  "although an API key was given")


def test_an_unknown_model_names_the_served_ones(sim_host: SimHost) -> None:
    url, _ = served(sim_host)
    traffic = send(url, requests=2, model="nope")
    assert traffic.error == ("the server does not serve the model 'nope' given with --vllm-model (it serves tiny); "
                             "pass one of the served models, or leave --vllm-model out to use the first one.")
    assert not traffic.server_failed


def test_an_unknown_model_behind_an_api_key_names_every_served_one(sim_host: SimHost) -> None:
    sim = sim_host.start(get_profile("x86_64-lora").replace(api_key="sk-right-0000"))
    traffic = send(sim.url, requests=2, model="nope", api_key="sk-right-0000")
    assert traffic.error == ("the server does not serve the model 'nope' given with --vllm-model (it serves tiny, "
                             "sim-adapter); pass one of the served models, or leave --vllm-model out to use the first "
                             "one.")


def test_an_unknown_model_with_a_models_list_too_slow_to_come_is_said_to_list_none(sim_host: SimHost) -> None:
    url, _ = served(sim_host, slow="/v1/models")
    traffic = send(url, requests=1, model="nope", timeout=0.5)
    assert traffic.error == ("the server does not serve the model 'nope' given with --vllm-model (its /v1/models "
                             "lists none); pass one of the served models, or leave --vllm-model out to use the first "
                             "one.")


def test_a_404_that_does_not_name_the_model_is_the_servers_failure(sim_host: SimHost) -> None:
    url, _ = served(sim_host, answer=lambda r: web.Response(status=404, text="Not Found")
                    if r.method == "POST" else None)
    traffic = send(url, requests=2, model="tiny")
    assert [(r.status, r.error) for r in traffic.records] == [(404, "Not Found"), (404, "Not Found")]
    assert (traffic.error, traffic.server_failed) == (None, False)


@pytest.mark.parametrize("status", [429, 503])
def test_an_overloaded_server_is_the_runs_problem(sim_host: SimHost, status: int) -> None:
    url, _ = served(sim_host, answer=lambda r: web.Response(status=status, text="busy"))
    traffic = send(url)
    assert traffic.error == (f"GET /v1/models answered HTTP {status}: the server is overloaded or rate-limited (or not "
                             f"ready), so the workload could not be observed. Rerun when it has capacity, or send "
                             f"fewer requests (--vllm-requests).")
    assert not traffic.server_failed


@pytest.mark.parametrize(("answer", "said"), [  # a new answer per run: aiohttp sends a response object once
    (lambda: web.Response(status=500, text="Internal Server Error"),
     "GET /v1/models answered HTTP 500; no workload was sent. Pass the model with --vllm-model to skip this lookup."),
    (lambda: web.json_response({"object": "list", "data": []}),
     "GET /v1/models did not list any model; pass one with --vllm-model."),
    (lambda: web.Response(text="<html>not json</html>"),
     "GET /v1/models did not list any model; pass one with --vllm-model."),
])
def test_a_models_endpoint_that_answers_wrongly_is_the_servers_failure(
        sim_host: SimHost, answer: Callable[[], web.Response], said: str) -> None:
    url, bodies = served(sim_host, answer=lambda r: answer() if r.path == "/v1/models" else None)
    traffic = send(url)
    assert (traffic.error, traffic.server_failed, bodies) == (said, True, [])


def test_a_forbidden_models_endpoint_names_the_permission(sim_host: SimHost) -> None:
    url, _ = served(sim_host, answer=lambda r: web.Response(status=403) if r.path == "/v1/models" else None)
    traffic = send(url)
    assert traffic.error is not None and "grant the suite's identity access" in traffic.error
    assert not traffic.server_failed


@pytest.mark.parametrize(("source", "said"), [
    (TargetSource.KUBERNETES, "POST /v1/completions through the API server's pod proxy was refused (403): grant create "
                              "on pods/proxy (Kubernetes authorizes a proxied POST as create; deploy/rbac.yaml), or "
                              "send the workload through --vllm-gateway-url"),
    (TargetSource.URL, "denied by policy"),  # no pod proxy: the server's (or its proxy's) own answer
])
def test_a_forbidden_post_names_the_verb_through_the_pod_proxy_only(sim_host: SimHost, source: TargetSource,
                                                                    said: str) -> None:
    url, _ = served(sim_host, answer=lambda r: web.Response(status=403, text="denied by policy")
                    if r.method == "POST" else None)
    (only,) = send(url, requests=1, source=source).records
    assert (only.status, only.error) == (403, said)


def test_every_request_overloaded_is_the_runs_problem_named_by_the_lowest_status(sim_host: SimHost) -> None:
    statuses = iter([503, 429])
    url, _ = served(sim_host, answer=lambda r: web.Response(status=next(statuses), text="busy")
                    if r.method == "POST" else None)
    traffic = send(url, requests=2, model="tiny")  # the model given: no /v1/models first
    assert [r.status for r in traffic.records] == [503, 429]
    assert traffic.error is not None and traffic.error.startswith("every workload request answered HTTP 429: the "
                                                                  "server is overloaded")


def test_a_server_answering_500_records_each_error_and_leaves_the_verdict_to_the_checks(sim_host: SimHost) -> None:
    sim = sim_host.start(get_profile("x86_64").replace(fault="completions-500"))
    traffic = send(sim.url, requests=2)
    assert [(r.status, r.error) for r in traffic.records] == [(500, "simulated 500"), (500, "simulated 500")]
    # the server failed them: no reason of the run's own, so test_workload_served fails it
    assert (traffic.requests, traffic.error, traffic.server_failed) == (0, None, False)
    assert traffic.summary().endswith("; first failure: completion -> 500: simulated 500")


def test_one_failed_request_leaves_the_others_counted(sim_host: SimHost) -> None:
    failed = iter([False, True])

    def second_fails(request: web.Request) -> web.Response | None:
        if request.method == "POST" and next(failed, False):
            return web.json_response({"message": "boom"}, status=500)
        return None

    url, _ = served(sim_host, answer=second_fails)
    traffic = send(url, requests=3)
    assert [r.ok for r in traffic.records] == [True, False, True]
    assert traffic.requests == 2 and traffic.error is None
    assert traffic.prompt_tokens == sum(r.prompt_tokens for r in traffic.records if r.ok)
    assert traffic.prefix_tokens == 0  # the shared prefix counts as sent once a plain completion of it was served


def test_an_answer_that_is_not_json_is_recorded_as_not_openai_compatible(sim_host: SimHost) -> None:
    url, _ = served(sim_host, answer=lambda r: web.Response(text="<html>ok</html>") if r.method == "POST" else None)
    traffic = send(url, requests=1)
    (only,) = traffic.records
    assert only.status == 200 and not only.ok
    assert only.error is not None and only.error.startswith("the answer is not OpenAI-compatible JSON (")


def test_an_answer_over_the_cap_is_refused(sim_host: SimHost) -> None:
    sim = sim_host.start(get_profile("x86_64").replace(fault="completions-huge"))
    (only,) = send(sim.url, requests=1, model="tiny").records
    assert only.error == (f"the answer exceeded {MAX_ANSWER_BYTES // 2**20} MiB for a request of 5 tokens; this is "
                          f"not a vLLM completion")


@pytest.mark.parametrize(("size", "error"), [
    (MAX_ANSWER_BYTES, None),
    (MAX_ANSWER_BYTES + 1, f"the answer exceeded {MAX_ANSWER_BYTES // 2**20} MiB for a request of 5 tokens; this is "
                           f"not a vLLM completion"),
])
def test_a_stream_is_read_up_to_the_cap_and_refused_past_it(sim_host: SimHost, size: int, error: str | None) -> None:
    # one chunk of valid JSON, padded so that the stream's lines, [DONE] included, come to `size` bytes
    head, tail, done = b'data: {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 5}, "pad": "', \
        b'"}', b"data: [DONE]"
    chunk = head + b"x" * (size - len(head) - len(tail) - len(done)) + tail
    received: list[list[dict[str, Any]]] = []  # the bodies `served` records, the request's own last

    def padded(request: web.Request) -> web.Response | None:
        if request.method == "POST" and received[0][-1]["stream"]:
            return web.Response(body=chunk + b"\n\n" + done + b"\n\n", content_type="text/event-stream")
        return None

    url, bodies = served(sim_host, answer=padded)
    received.append(bodies)
    traffic = send(url, requests=3, model="tiny")
    streamed = traffic.records[2]
    assert streamed.kind == "completion-stream"
    assert (streamed.ok, streamed.error) == (error is None, error)


def test_a_models_list_not_answered_in_time_is_the_runs_problem(sim_host: SimHost) -> None:
    url, bodies = served(sim_host, slow="/v1/models")
    traffic = send(url, timeout=0.5)
    assert traffic.error == ("GET /v1/models did not complete within 0.5 s. The server is overloaded, hung, or the "
                             "address answers but is not vLLM; check the target, or raise --vllm-timeout if it is "
                             "only slow. No workload was sent.")
    assert (traffic.server_failed, bodies) == (False, [])


def test_a_request_records_how_long_it_took(sim_host: SimHost) -> None:
    sim = sim_host.start(get_profile("x86_64").replace(fault="completions-slow"))  # 0.5 s a request
    (only,) = send(sim.url, requests=1, model="tiny").records
    assert only.ok and 0.5 <= only.seconds < 5


def test_a_request_not_answered_in_time_names_the_request_and_the_timeout(sim_host: SimHost) -> None:
    sim = sim_host.start(get_profile("x86_64").replace(fault="completions-slow"))
    (only,) = send(sim.url, requests=1, model="tiny", timeout=0.2).records
    assert (only.status, only.error) == (None, "sim: POST /v1/completions did not complete within 0.2 s. The server "
                                               "is overloaded, hung, or the address answers but is not vLLM; check "
                                               "the target, or raise --vllm-timeout if it is only slow.")


def test_an_unreachable_server_is_said_to_get_no_workload() -> None:
    traffic = send("http://127.0.0.1:9")  # the discard port: nothing listens on loopback
    assert traffic.error is not None and traffic.error.endswith(" No workload was sent.")
    assert not traffic.server_failed and traffic.records == []


# -- the abort probe: streams closed while they run --------------------------------------------------------------

PROBE = {"path": "/v1/completions", "model": "tiny", "max_tokens": 900, "temperature": 0.0, "stream": True,
         "stream_options": {"include_usage": True},
         "prompt": "every and prefix the by shares can server bounded so metrics a", "ignore_eos": True}


def test_the_abort_probe_closes_its_streams_while_they_run(sim_host: SimHost) -> None:
    url, bodies = served(sim_host)
    aborts, running = abort(url, count=2)
    assert (aborts.opened, aborts.finished, aborts.aborted, aborts.error) == (2, 0, 2, None)
    assert running == [2.0]  # both running on the server while the suite read its gauges
    assert bodies == [PROBE, PROBE]  # vLLM's ignore_eos: no early stop before the suite closes them


def test_streams_the_server_ends_at_once_are_finished_not_aborted(sim_host: SimHost) -> None:
    url, _ = served(sim_host, answer=lambda r: web.Response(body=b"data: [DONE]\n\n", content_type="text/event-stream")
                    if r.method == "POST" else None)
    aborts, running = abort(url, count=2)
    assert (aborts.opened, aborts.finished, aborts.aborted, aborts.error) == (2, 2, 0, None)
    assert running == [0.0]


@pytest.mark.parametrize(("key", "opened", "error"), [
    ("sk-right-0000", 2, None),
    ("sk-wrong-1111", 0, "a streaming request of the abort probe answered HTTP 401: Unauthorized"),
])
def test_the_abort_probe_sends_the_api_key_and_says_a_refusal(sim_host: SimHost, key: str, opened: int,
                                                              error: str | None) -> None:
    url, _ = served(sim_host, get_profile("x86_64").replace(api_key="sk-right-0000"))
    aborts, running = abort(url, api_key=key)
    assert (aborts.opened, aborts.aborted, aborts.error) == (opened, opened, error)
    assert len(running) == (1 if opened else 0)  # refused: no gauges read, nothing to close


def test_an_abort_probe_refused_with_a_huge_answer_says_so_without_reading_it(sim_host: SimHost) -> None:
    url, _ = served(sim_host, answer=lambda r: web.Response(status=502, body=b"x" * (MAX_ANSWER_BYTES + 1))
                    if r.method == "POST" else None)
    aborts, running = abort(url)
    assert (aborts.opened, running) == (0, [])
    assert aborts.error == (f"a streaming request of the abort probe answered HTTP 502: an answer over "
                            f"{MAX_ANSWER_BYTES // 2**20} MiB")


def test_an_abort_probe_not_answered_in_time_names_it_and_the_timeout(sim_host: SimHost) -> None:
    sim = sim_host.start(get_profile("x86_64").replace(fault="completions-slow"))
    aborts, running = abort(sim.url, timeout=0.2)
    assert (aborts.opened, running) == (0, [])
    assert aborts.error == ("sim: POST /v1/completions (abort probe) did not complete within 0.2 s. The server is "
                            "overloaded, hung, or the address answers but is not vLLM; check the target, or raise "
                            "--vllm-timeout if it is only slow.")


# -- what a record and a result make of the answers ---------------------------------------------------------


def test_usage_finish_reasons_and_text_are_taken_from_an_answer_and_from_chunks() -> None:
    answer = RequestRecord("completion", 200, 0.0)
    _take_usage(answer, {"choices": [{"index": 0, "text": "a b", "finish_reason": "length"},
                                     {"index": 1, "text": "zz", "finish_reason": "stop"}],
                         "usage": {"prompt_tokens": 7, "completion_tokens": 4,
                                   "prompt_tokens_details": {"cached_tokens": 0}}})
    assert (answer.text, answer.finish_reasons, answer.prompt_tokens, answer.completion_tokens,
            answer.cached_tokens) == ("a b", {0: "length", 1: "stop"}, 7, 4, 0)
    streamed = RequestRecord("chat-stream", 200, 0.0)
    for chunk in ({"choices": [{"index": 0, "delta": {"content": "x"}, "finish_reason": None}]},
                  {"choices": [{"index": 0, "delta": {"content": "y"}, "finish_reason": "stop"}]},
                  {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}):
        _take_usage(streamed, chunk)
    assert (streamed.text, streamed.finish_reasons, streamed.completion_tokens, streamed.cached_tokens) == (
        "xy", {0: "stop"}, 2, None)


@pytest.mark.parametrize(("data", "taken"), [
    ([{"usage": {"prompt_tokens": 3}}], ("", {}, 0, 0)),  # not an object
    ({"usage": {"prompt_tokens": 3, "completion_tokens": 2}}, ("", {}, 3, 2)),  # a usage chunk without choices
    ({"usage": {"prompt_tokens": None, "completion_tokens": None}}, ("", {}, 0, 0)),
    ({"choices": ["junk", {"index": 0, "text": "a", "finish_reason": "stop"}]}, ("a", {0: "stop"}, 0, 0)),
    ({"choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}]},
     ("hi", {0: "stop"}, 0, 0)),  # a chat answer
    ({"choices": [{"index": 0, "delta": {"role": "assistant"}}]}, ("", {}, 0, 0)),  # a chat stream's first chunk
    ({"choices": [{"index": 0, "finish_reason": "length"}]}, ("", {0: "length"}, 0, 0)),  # no text at all
])
def test_what_an_answer_lacks_is_not_taken(data: Any, taken: tuple[str, dict[int, str], int, int]) -> None:
    answer = RequestRecord("completion", 200, 0.0)
    _take_usage(answer, data)
    assert (answer.text, answer.finish_reasons, answer.prompt_tokens, answer.completion_tokens) == taken


@pytest.mark.parametrize(("text", "stop"), [
    ("one two three", "o"), ("ab  cd", "c"), ("ab", "b"), ("x", "x"), ("  ", None), ("", None)])
def test_the_stop_string_is_a_visible_character_from_the_middle_on(text: str, stop: str | None) -> None:
    assert _stop_string(text) == stop


@pytest.mark.parametrize(("body", "said"), [
    (b'{"object": "error", "message": "simulated 500"}', "simulated 500"),
    (b'{"error": {"message": "nested"}}', "nested"),  # OpenAI's own shape
    (b"Bad Gateway", "Bad Gateway"),
    (b"x" * 400, "x" * 300),  # bounded
    (b'{"message": "' + b"y" * 400 + b'"}', "y" * 300),
    (b'{"error": "Not Found", "message": "No message available"}', "No message available"),  # Spring Boot's shape
    (b'{"error": {"code": 500}}', "{'code': 500}"),  # no message: the error as it is
    (b"Bad \xff Gateway", "Bad \ufffd Gateway"),  # not UTF-8
])
def test_an_error_answer_is_quoted_briefly(body: bytes, said: str) -> None:
    assert _error_text(body) == said


def test_a_results_quantities_count_the_successful_requests_only() -> None:
    traffic = workload(record(prompt=30, completion=3, shares=True), record("chat", shares=True),
                       record(status=500), block_size=32)
    assert (traffic.quantity("requests"), traffic.quantity("prompt_tokens"),
            traffic.quantity("generation_tokens")) == (2, 55, 5)
    # one completion and one chat share the prefix: neither repeats one its family sent before
    assert traffic.quantity("block_size") == 0
    with pytest.raises(KeyError, match="choices"):
        traffic.quantity("choices")


def test_the_block_size_counts_once_a_prefix_was_sent_again() -> None:
    traffic = workload(record(shares=True), record("completion-stream", shares=True), block_size=32)
    assert traffic.repeated_prefix_requests == 1 and traffic.quantity("block_size") == 32


def test_an_answer_without_usage_is_not_reported_usage() -> None:
    assert workload().usage_reported
    assert not workload(record(), record(completion=0)).usage_reported


def test_what_succeeded_follows_the_records_as_they_are_added() -> None:
    # asked while the workload runs (a run cut short reports what was sent) and again after: never a stale answer
    traffic = workload(record())
    assert (traffic.requests, traffic.prompt_tokens) == (1, 25)
    traffic.records.append(RequestRecord("chat", 503, 0.0, error="busy"))
    traffic.records.append(record(prompt=5))
    assert (traffic.requests, traffic.prompt_tokens) == (2, 30)
    traffic.ok.clear()  # a caller's copy: the result is unchanged
    assert [r.prompt_tokens for r in traffic.ok] == [25, 5]


def test_the_summary_names_counts_and_the_first_failure() -> None:
    assert workload().summary() == SUMMARY
    failing = workload(record(), RequestRecord("chat", 503, 0.0, error="busy"), RequestRecord("chat", None, 0.0,
                                                                                              error="later"))
    assert failing.summary().endswith("; first failure: chat -> 503: busy")
    assert json.dumps(failing.finish_reasons()) == "{}"
