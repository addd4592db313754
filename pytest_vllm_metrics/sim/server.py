"""The simulator's OpenAI-compatible HTTP API (aiohttp), and a host running many of them on one event loop."""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from .. import engines
from . import _openmetrics as openmetrics
from .engine import Engine
from .other_engines import PER_RANK, PERCENT, STUCK, UNTYPED, engine_for
from .profiles import Profile

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# The app's engine sits in a one-element list, so a simulated restart can swap it on a running app.
ENGINE = web.AppKey("engine", list)
# The same handlers vLLM's instrumentator leaves out of http_* metrics.
_UNMETERED = ("/metrics", "/health", "/version", "/load", "/ping")
NO_METRICS = "no-metrics"


EXPOSITIONS = ("text", "openmetrics")

# Fault name -> what the simulator does instead of answering normally.
FAULTS = {
    "metrics-500": "/metrics answers HTTP 500",
    "metrics-404": "/metrics answers HTTP 404",
    "metrics-html": "/metrics answers an HTML error page",
    "metrics-garbage": "/metrics answers text that is not Prometheus exposition",
    "metrics-truncated": "/metrics answers a page cut off in the middle of a line",
    "metrics-huge": "/metrics answers a 20 MB body",
    "metrics-slowloris": "/metrics sends a byte every 0.2 s and never finishes",
    "metrics-empty": "/metrics answers 200 with an empty body",
    "completions-429": "/v1 completions answer 429 Too Many Requests",
    "completions-500": "/v1 completions answer 500",
    "completions-slow": "/v1 completions take 0.5 s each",
    "completions-huge": "/v1 completions answer a 5 MB body",
    "version-missing": "/version answers 404",
    "counts-n-twice": "requests with n > 1 count their generated tokens twice in vllm:generation_tokens_total",
    "gauges-stuck": "running requests and KV-cache usage stay up after a client aborts a streaming request",
    "info-labels-45": "vllm:cache_config_info carries 45 labels (8 more fields than vLLM 0.32)",
    "pid-label": "vllm:kv_cache_usage_perc has a pid label: one series per API server process",
    # another engine's page (a profile with `engine` other than vllm)
    UNTYPED: "the protocol's queued, running and KV-utilization families have no # TYPE line (untyped)",
    PERCENT: "KV-cache utilization is written as a percentage, 0..100, not a fraction",
    PER_RANK: "every series of the protocol's three gauges twice, tp_rank 0 reading 0 and tp_rank 1 the value",
    STUCK: "running requests stay at their highest value after the requests end",
    NO_METRICS: "the metrics path answers 404 (SGLang started without --enable-metrics)",
}
# The faults of another engine's page, and those of vLLM's alone
_OTHER_ENGINES_ONLY = (UNTYPED, PERCENT, PER_RANK, STUCK, NO_METRICS)
_VLLM_ONLY = ("version-missing", "counts-n-twice", "gauges-stuck", "info-labels-45", "pid-label")
# Seconds between streamed tokens: a stream is a stream, so a client can close it half-way (an abort).
_TOKEN_SECONDS = 0.002


def build_app(profile: Profile) -> web.Application:
    if profile.fault is not None and profile.fault not in FAULTS:
        raise ValueError(f"unknown simulator fault {profile.fault!r}; valid faults are {', '.join(FAULTS)}")
    if profile.exposition not in EXPOSITIONS:
        raise ValueError(f"unknown exposition {profile.exposition!r}; valid ones are {', '.join(EXPOSITIONS)}")
    if profile.speculative_method not in (None, "ngram"):
        raise ValueError(f"unknown speculative_method {profile.speculative_method!r}; the simulator drafts with "
                         f"\"ngram\" only")
    if profile.speculative_method and not (
            profile.num_speculative_tokens >= 1 and 1 <= profile.prompt_lookup_min <= profile.prompt_lookup_max):
        raise ValueError("ngram speculative decoding needs num_speculative_tokens >= 1 and "
                         "1 <= prompt_lookup_min <= prompt_lookup_max")
    if profile.data_parallel_size_local < 1 or profile.data_parallel_start_rank < 0:
        raise ValueError("a data-parallel server manages data_parallel_size_local >= 1 engines from "
                         "data_parallel_start_rank >= 0")
    vllm = profile.engine == engines.Engine.VLLM
    if profile.fault in (_OTHER_ENGINES_ONLY if vllm else _VLLM_ONLY):
        raise ValueError(f"the simulator fault {profile.fault!r} is not one of a simulated {profile.engine}")
    engine = engine_for(profile)
    path = metrics_path(profile)
    app = web.Application(middlewares=[_hangups, _faults(profile), _auth(profile), _metered()])
    app[ENGINE] = [engine]
    app.router.add_get("/health", _health)
    if vllm:  # the other engines have no /version
        app.router.add_get("/version", _version)
    app.router.add_get(path, _metrics)
    app.router.add_get("/v1/models", _models)
    app.router.add_post("/v1/completions", _completions)
    app.router.add_post("/v1/chat/completions", _chat)
    return app


def metrics_path(profile: Profile) -> str:
    """Where the profile's engine serves its page (on the simulator's one port)."""
    return engines.profile(engines.Engine(profile.engine)).metrics_path


@web.middleware
async def _hangups(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ConnectionResetError:
        # The client hung up (its deadline or cap, a cancelled workload): expected, not a server error to log.
        return web.Response(status=499)  # nginx's "client closed request"; nobody reads it


def _faults(profile: Profile) -> Any:
    scrapes = 0
    path = metrics_path(profile)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        nonlocal scrapes
        limit = profile.stop_answering_after_scrapes
        if limit is not None and scrapes >= limit:
            # A dead server: the connection closes without an answer.
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=503)  # never reaches the client: the transport is closed
        if request.path == path:
            scrapes += 1
        fault = profile.fault or ""
        if request.path == path and fault.startswith("metrics-"):
            return await _bad_metrics(request, fault)
        if request.path == path and fault == NO_METRICS:
            return web.json_response({"detail": "Not Found"}, status=404)  # FastAPI's answer to a route it lacks
        if request.path.endswith("completions") and fault == "completions-huge":
            return web.Response(body=b'{"padding": "' + b"x" * (5 * 2**20) + b'"}', content_type="application/json")
        if request.path.endswith("completions") and fault == "completions-slow":
            await asyncio.sleep(0.5)  # a slow server, bounded by the suite's phase cap
            return await handler(request)
        if request.path.startswith("/v1/") and request.path.endswith("completions") and fault.startswith(
                "completions-"):
            status = int(fault.rsplit("-", 1)[1])
            return web.json_response({"object": "error", "message": f"simulated {status}", "code": status},
                                     status=status)
        if request.path == "/version" and fault == "version-missing":
            return web.Response(status=404, text="Not Found")
        return await handler(request)

    return middleware


async def _bad_metrics(request: web.Request, fault: str) -> web.StreamResponse:
    engine: Engine = request.app[ENGINE][0]
    page, content_type = _page(engine)
    if fault in ("metrics-500", "metrics-404"):
        return web.Response(status=int(fault[-3:]), text="Internal Server Error" if fault.endswith("500") else
                            "Not Found")
    if fault == "metrics-html":
        return web.Response(text="<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1></body></html>",
                            content_type="text/html")
    if fault == "metrics-garbage":
        return web.Response(text='{"this": "is json, not metrics"} \x00\x01 vllm:{{{{', content_type="text/plain")
    if fault == "metrics-truncated":
        return web.Response(body=page[: len(page) // 2] + b'vllm:num_requests_running{engine="0",model_na',
                            headers={"Content-Type": content_type})
    if fault == "metrics-empty":
        return web.Response(body=b"", headers={"Content-Type": content_type})
    response = web.StreamResponse(headers={"Content-Type": CONTENT_TYPE_LATEST})
    line = b"# " + b"x" * 1022 + b"\n"
    if fault == "metrics-huge":
        response.content_length = 20 * 1024 * len(line)  # declared, as a proxy or a file server would
    await response.prepare(request)
    try:
        if fault == "metrics-huge":
            for _ in range(20 * 1024):  # 20 MB of comment lines
                await response.write(line)
        else:  # slow loris: bounded by the server's shutdown, never by itself finishing
            while True:
                await response.write(b"#")
                await asyncio.sleep(0.2)
        await response.write_eof()
    except ConnectionResetError:
        pass  # the client hung up at its cap or deadline, as it should: not a server error worth a traceback
    return response


def _auth(profile: Profile) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        # vLLM guards /v1 only; /metrics, /health and /version stay open.
        guarded = profile.api_key and request.path.startswith("/v1")
        if guarded and request.headers.get("Authorization") != f"Bearer {profile.api_key}":
            return web.json_response({"error": "Unauthorized"}, status=401)
        return await handler(request)

    return middleware


def _metered() -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.monotonic()
        response = await handler(request)
        if request.path not in _UNMETERED:
            request.app[ENGINE][0].record_http(
                request.path, request.method, response.status, request.content_length or 0,
                response.content_length or 0, time.monotonic() - started,
            )
        return response

    return middleware


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status)


async def _health(request: web.Request) -> web.Response:
    return web.Response(status=200)


async def _version(request: web.Request) -> web.Response:
    return _json({"version": request.app[ENGINE][0].profile.version})


async def _metrics(request: web.Request) -> web.Response:
    page, content_type = _page(request.app[ENGINE][0])
    return web.Response(body=page, headers={"Content-Type": content_type})


def _page(engine: Engine) -> tuple[bytes, str]:
    """The metrics page in the profile's exposition, and its Content-Type (the Accept header is not read)."""
    page = engine.exposition()
    if engine.profile.exposition == "openmetrics":
        return openmetrics.to_openmetrics(page.decode()).encode(), openmetrics.CONTENT_TYPE
    return page, CONTENT_TYPE_LATEST


async def _models(request: web.Request) -> web.Response:
    engine: Engine = request.app[ENGINE][0]
    profile, owner = engine.profile, engine.owned_by
    # a LoRA adapter is listed after the base model, as vLLM's OpenAIServingModels.show_available_models does:
    # root is the adapter's path, parent the base model, and no max_model_len of its own
    adapters = [{"id": name, "object": "model", "created": 0, "owned_by": "vllm", "root": f"/adapters/{name}",
                 "parent": profile.model, "max_model_len": None} for name in profile.lora_modules]
    return _json({
        "object": "list",
        "data": [{
            "id": profile.model, "object": "model", "created": 0, "owned_by": owner,
            "root": f"/models/{profile.model}", "parent": None, "max_model_len": profile.max_model_len,
        }, *adapters],
    })


def _error(message: str, status: int = 400) -> web.Response:
    return _json({"object": "error", "message": message, "type": "BadRequestError", "code": status}, status)


async def _body(request: web.Request) -> dict[str, Any] | web.Response:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return _error("request body is not JSON")
    if not isinstance(body, dict):
        return _error("request body must be a JSON object")
    profile = request.app[ENGINE][0].profile
    if body.get("model") != profile.model and body.get("model") not in profile.lora_modules:
        return _error(f"The model `{body.get('model')}` does not exist.", 404)
    return body


async def _completions(request: web.Request) -> web.StreamResponse:
    body = await _body(request)
    if isinstance(body, web.Response):
        return body
    prompt = body.get("prompt")
    if not isinstance(prompt, str):
        return _error("prompt must be a string")
    return await _run(request, body, prompt, chat=False)


async def _chat(request: web.Request) -> web.StreamResponse:
    body = await _body(request)
    if isinstance(body, web.Response):
        return body
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return _error("messages must be a non-empty list")
    # A fixed chat template: the rendered prompt shares its prefix across requests, as a real template does.
    prompt = "".join(f"<|{m.get('role')}|> {m.get('content')} " for m in messages) + "<|assistant|>"
    return await _run(request, body, prompt, chat=True)


async def _run(request: web.Request, body: dict[str, Any], prompt: str, chat: bool) -> web.StreamResponse:
    engine: Engine = request.app[ENGINE][0]
    profile = engine.profile
    max_tokens = body.get("max_tokens", 16)
    if not isinstance(max_tokens, int) or max_tokens < 1:
        return _error("max_tokens must be a positive integer")
    n = body.get("n", 1)
    if not isinstance(n, int) or not 1 <= n <= 8:
        return _error("n must be a whole number from 1 to 8")
    if n > 1 and body.get("temperature", 1.0) == 0:
        return _error(f"n must be 1 when using greedy sampling, got {n}.")  # vLLM's own refusal
    tokens = engine.tokenize(prompt)
    if len(tokens) + max_tokens > profile.max_model_len:
        return _error(
            f"This model's maximum context length is {profile.max_model_len} tokens. However, you requested "
            f"{len(tokens) + max_tokens} tokens ({len(tokens)} in the messages, {max_tokens} in the completion)."
        )
    # a request to an adapter runs the base model with it, and answers in the adapter's name
    model = str(body["model"])
    adapter = model if model in profile.lora_modules else None
    engine.lora_started(adapter)
    try:
        return await _answer(request, engine, body, tokens, max_tokens, n, chat, model)
    finally:
        engine.lora_ended(adapter)


async def _answer(request: web.Request, engine: Engine, body: dict[str, Any], tokens: list[str], max_tokens: int,
                  n: int, chat: bool, model: str) -> web.StreamResponse:
    profile = engine.profile
    stop = body.get("stop") or ()
    generated = engine.generate(tokens, max_tokens, n, (stop,) if isinstance(stop, str) else tuple(stop))
    words, reason = generated.words, generated.reason
    engine.requests += 1
    if profile.restart_after_requests and engine.requests == profile.restart_after_requests:
        # A restarted server: a fresh engine, counters from zero, new _created timestamps.
        request.app[ENGINE][0] = engine_for(profile.replace(restart_after_requests=None))
    usage = {
        "prompt_tokens": len(tokens), "completion_tokens": n * generated.tokens,
        "total_tokens": len(tokens) + n * generated.tokens,
        "prompt_tokens_details": {"cached_tokens": generated.cached},
    }
    ident = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
    kind = "chat.completion" if chat else "text_completion"
    if not body.get("stream"):
        choices: list[dict[str, Any]] = []
        for index in range(n):
            choice: dict[str, Any] = {"index": index, "finish_reason": reason}
            if chat:
                choice["message"] = {"role": "assistant", "content": " ".join(words)}
            else:
                choice["text"] = " ".join(words)
            choices.append(choice)
        return _json({"id": ident, "object": kind, "created": int(time.time()), "model": model,
                      "choices": choices, "usage": usage})
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    chunk_kind = "chat.completion.chunk" if chat else "text_completion"
    held = n * (len(tokens) + max_tokens)
    engine.request_started(held)  # running until the stream ends, or the client closes it
    aborted = True
    try:
        pieces = [" " + word for word in words] or [""]  # a choice stopped at once still says why it ended
        for position, text in enumerate(pieces):
            last = position == len(pieces) - 1
            for index in range(n):
                piece: dict[str, Any] = {"index": index, "finish_reason": reason if last else None}
                if chat:
                    piece["delta"] = {"content": text}
                else:
                    piece["text"] = text
                await _sse(response, {"id": ident, "object": chunk_kind, "model": model, "choices": [piece]})
            await asyncio.sleep(_TOKEN_SECONDS)
        if (body.get("stream_options") or {}).get("include_usage"):
            await _sse(response, {"id": ident, "object": chunk_kind, "model": model, "choices": [],
                                  "usage": usage})
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        aborted = False
    finally:
        engine.request_ended(held, aborted)
    return response


async def _sse(response: web.StreamResponse, data: dict[str, Any]) -> None:
    await response.write(b"data: " + json.dumps(data).encode() + b"\n\n")


@dataclass
class RunningSim:
    profile: Profile
    url: str
    runner: web.AppRunner


class SimHost:
    """Many simulated servers on loopback, served by one event loop in a daemon thread."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="vllm-sim", daemon=True)
        self._thread.start()
        self.servers: list[RunningSim] = []
        self._apps: list[web.AppRunner] = []

    def _call(self, coro: Any, timeout: float = 30.0) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout)

    def start(self, profile: Profile, host: str = "127.0.0.1", port: int = 0) -> RunningSim:
        """Start one simulated server; port 0 picks a free one."""
        url, runner = self._call(self._start(build_app(profile), host, port, None))
        sim = RunningSim(profile, url, runner)
        self.servers.append(sim)
        return sim

    def start_app(self, app: web.Application, host: str = "127.0.0.1", port: int = 0,
                  ssl_context: ssl.SSLContext | None = None) -> str:
        """Serve another aiohttp application (the Kubernetes API double) on this loop; return its URL."""
        url, runner = self._call(self._start(app, host, port, ssl_context))
        self._apps.append(runner)
        return str(url)

    async def _start(self, app: web.Application, host: str, port: int,
                     ssl_context: ssl.SSLContext | None) -> tuple[str, web.AppRunner]:
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
        await site.start()
        sockets = site._server.sockets  # type: ignore[union-attr]
        bound_port = sockets[0].getsockname()[1]
        scheme = "https" if ssl_context else "http"
        return f"{scheme}://{host}:{bound_port}", runner

    def stop(self, sim: RunningSim) -> None:
        self._call(sim.runner.cleanup())
        self.servers.remove(sim)

    def close(self) -> None:
        for sim in list(self.servers):
            self.stop(sim)
        for runner in self._apps:
            self._call(runner.cleanup())
        self._apps.clear()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> SimHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
