"""Traffic: a small, bounded OpenAI-compatible workload whose prompts share a prefix of whole KV blocks.

Per target, requests go one after another (a prefix is cached only once its first request finished);
targets run concurrently. The first request is short and calibrates tokens per word, so the shared
prefix is sized to at least two KV blocks of the server's own tokenizer, within its context length.
"""

from __future__ import annotations

import functools
import json
import math
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import httpx

from .scrape import TooLarge, describe_http_error, parsed_url, read_capped, shown_path
from .targets import Target, TargetSource

KINDS = ("completion", "completion-stream", "chat", "chat-stream")
_VOCAB = (
    "the", "metrics", "of", "every", "server", "are", "checked", "by", "a", "small", "and", "bounded",
    "workload", "that", "shares", "one", "long", "prefix", "so", "cache", "hits", "can", "be", "seen",
)
_CALIBRATION_WORDS = 32
# From this many requests on, the last one asks to stop on a piece of the calibration's greedy answer, so that the
# workload ends requests both ways (finished_reason "length" and "stop") and every kind is still sent at least once.
STOP_FROM_REQUESTS = 6


@dataclass
class RequestRecord:
    kind: str
    status: int | None
    seconds: float
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int | None = None
    shares_prefix: bool = False
    error: str | None = None
    n: int = 1  # choices asked for; vLLM runs each as an engine request of its own
    max_tokens: int = 0
    finish_reasons: dict[int, str] = field(default_factory=dict)  # choice index -> the answer's finish_reason
    text: str = ""  # the first choice's text (a later request stops on a piece of it)
    stop: str | None = None  # the stop string the request was sent with

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.error is None


@dataclass
class TrafficResult:
    model: str | None
    block_size: int
    records: list[RequestRecord] = field(default_factory=list)
    prefix_tokens: int = 0
    error: str | None = None  # why no workload (or only part of it) was sent
    # The server itself answered wrongly (its /v1/models failed), as opposed to the run being kept from it
    # (credentials, overload, a cap): a failure of the server, not an inconclusive run.
    server_failed: bool = False
    # `ok` as last computed, and of how many records: every check of every target asks, and records are only added
    _ok: tuple[int, list[RequestRecord]] = field(default=(-1, []), init=False, repr=False, compare=False)

    @property
    def ok(self) -> list[RequestRecord]:
        count, ok = self._ok
        if count != len(self.records):
            ok = [r for r in self.records if r.ok]
            self._ok = (len(self.records), ok)
        return list(ok)

    @property
    def requests(self) -> int:
        return len(self.ok)

    @property
    def prompt_tokens(self) -> int:
        return sum(r.prompt_tokens for r in self.ok)

    @property
    def generation_tokens(self) -> int:
        return sum(r.completion_tokens for r in self.ok)

    @property
    def choices(self) -> int:
        """Engine requests: one per choice (a request with n=2 is two)."""
        return sum(r.n for r in self.ok)

    @property
    def engine_prompt_tokens(self) -> int:
        """Prompt tokens as the engine prefills them: usage.prompt_tokens once per choice."""
        return sum(r.prompt_tokens * r.n for r in self.ok)

    @property
    def decode_steps(self) -> int:
        """Tokens after each choice's first (inter-token latency observations without speculative decoding)."""
        return self.generation_tokens - self.choices

    @property
    def engine_max_tokens(self) -> int:
        return sum(r.max_tokens * r.n for r in self.ok)

    def finish_reasons(self) -> Counter[str]:
        """Choices by the finish_reason the answers gave."""
        return Counter(reason for r in self.ok for reason in r.finish_reasons.values())

    @property
    def usage_reported(self) -> bool:
        """Every successful answer carried its usage (the exact checks count with it)."""
        return all(r.prompt_tokens > 0 and r.completion_tokens > 0 for r in self.ok)

    @property
    def repeated_prefix_requests(self) -> int:
        """Successful requests whose prefix an earlier request of the same kind family had already sent."""
        completions = sum(1 for r in self.ok if r.shares_prefix and r.kind.startswith("completion"))
        chats = sum(1 for r in self.ok if r.shares_prefix and r.kind.startswith("chat"))
        return max(completions - 1, 0) + max(chats - 1, 0)

    def quantity(self, name: str) -> int:
        """A workload quantity named by the catalog's `at_least` (only that one is computed: every movement
        check of every target asks)."""
        if name == "block_size":
            return self.block_size if self.repeated_prefix_requests else 0
        if name in ("requests", "prompt_tokens", "generation_tokens"):
            return int(getattr(self, name))  # the property of that name
        raise KeyError(name)

    def summary(self) -> str:
        failed = [r for r in self.records if not r.ok]
        text = (f"{self.requests}/{len(self.records)} requests succeeded, {self.prompt_tokens} prompt tokens "
                f"(shared prefix {self.prefix_tokens} tokens, block size {self.block_size}), "
                f"{self.generation_tokens} generated tokens")
        if failed:
            first = failed[0]
            text += f"; first failure: {first.kind} -> {first.status}: {first.error}"
        return text


@functools.lru_cache(maxsize=256)  # the same prompts go to every server of a fleet
def _words(count: int, salt: int = 0) -> str:
    return " ".join(_VOCAB[(i * 7 + salt) % len(_VOCAB)] for i in range(count))


class Workload:
    def __init__(self, client: httpx.AsyncClient, target: Target, *, model: str | None, api_key: str | None,
                 requests: int, max_tokens: int, timeout: float, exclusive: bool = False) -> None:
        self.exclusive = exclusive
        self.client = client
        self.target = target
        self.model = model
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.requests = requests
        self.max_tokens = max_tokens
        self.timeout = timeout
        self.partial = TrafficResult(model=model, block_size=16)  # what was sent, if the run is cut short

    async def run(self, block_size: int) -> TrafficResult:
        result = self.partial = TrafficResult(model=self.model, block_size=block_size)
        max_model_len: int | None = None
        if self.model is None:
            try:
                self.model, max_model_len = await self._first_model()
            except _WorkloadError as exc:
                result.error, result.server_failed = str(exc), exc.server_failed
                return result
            result.model = self.model
        # 1. calibration: a short prompt tells how many tokens a word of our vocabulary costs here
        record = await self._send("completion", _words(_CALIBRATION_WORDS, salt=1), shares_prefix=False)
        result.records.append(record)
        tokens_per_word = (record.prompt_tokens / _CALIBRATION_WORDS) if record.ok and record.prompt_tokens else 1.0
        target_tokens = 2 * block_size + 16
        if max_model_len:
            target_tokens = min(target_tokens, max_model_len - self.max_tokens - 64)
        prefix = _words(max(math.ceil(target_tokens / tokens_per_word), 1))
        stop = _stop_string(record.text) if record.ok and self.requests >= STOP_FROM_REQUESTS else None
        # 2. the workload proper: every kind, sharing one prefix
        for index in range(1, self.requests):
            if stop is not None and index == self.requests - 1:
                # 3. greedy sampling answers the calibration's prompt with the same tokens again: asked to stop on
                # a piece of that answer, the server ends the request by its stop string, not by max_tokens
                result.records.append(await self._send("completion", _words(_CALIBRATION_WORDS, salt=1),
                                                       shares_prefix=False, stop=stop))
                continue
            kind = KINDS[(index - 1) % len(KINDS)]
            record = await self._send(kind, prefix + f" request {index} " + _words(4, salt=index),
                                      shares_prefix=True, system=prefix)
            result.records.append(record)
            if record.ok and kind == "completion" and not result.prefix_tokens:
                result.prefix_tokens = int(target_tokens)
        if self.exclusive:
            # Counted exactly, so the cases vLLM counts per choice are in: n=2, streamed and not.
            for index, kind in enumerate(("completion", "chat-stream"), start=self.requests):
                result.records.append(await self._send(kind, prefix + f" request {index} " + _words(4, salt=index),
                                                       shares_prefix=True, system=prefix, n=2))
        if not result.ok:
            result.error = await self._why_none_served(result.records)
        return result

    async def _first_model(self) -> tuple[str, int | None]:
        path = shown_path(self.target, "/v1/models")  # in messages: the path that went on the wire
        try:
            response = await self.client.get(self.target.url("/v1/models"), headers=self.headers,
                                             timeout=self.timeout)
        except httpx.HTTPError as exc:
            message = describe_http_error(self.target, f"GET {path}", exc, self.timeout)
            raise _WorkloadError(message.removeprefix(f"{self.target.name}: ") + " No workload was sent.") from None
        if response.status_code == 401:
            raise _WorkloadError(self._unauthorized(f"GET {path}"))
        if response.status_code in _OVERLOADED:
            raise _WorkloadError(_overloaded(f"GET {path}", response.status_code))
        if response.status_code == 403:  # the suite's identity is refused (a proxy's or the API server's RBAC)
            raise _WorkloadError(f"GET {path} was refused (403 Forbidden): grant the suite's identity access "
                                 f"(through the API server's pod proxy: get on pods/proxy, deploy/rbac.yaml).")
        if response.status_code != 200:
            raise _WorkloadError(f"GET {path} answered HTTP {response.status_code}; no workload was sent. "
                                 f"Pass the model with --vllm-model to skip this lookup.", server_failed=True)
        try:
            data = response.json()["data"]
            return str(data[0]["id"]), data[0].get("max_model_len")
        except (ValueError, KeyError, IndexError, TypeError):
            raise _WorkloadError(f"GET {path} did not list any model; pass one with --vllm-model.",
                                 server_failed=True) from None

    def _unauthorized(self, what: str) -> str:
        """401: whether a key was given decides the fix (the key itself is never shown)."""
        if self.headers:
            return (f"{what} answered 401 Unauthorized although an API key was given (--vllm-api-key or "
                    f"VLLM_API_KEY): the server refused it. Pass the key the server was started with (--api-key).")
        return (f"{what} answered 401 Unauthorized: the server was started with --api-key and no key was given. "
                f"Pass the key with --vllm-api-key or the VLLM_API_KEY environment variable.")

    async def _served_models(self) -> list[str]:
        """The models the server lists (empty when it does not say): for the message on an unknown model."""
        try:
            response = await self.client.get(self.target.url("/v1/models"), headers=self.headers,
                                             timeout=self.timeout)
            return [str(m["id"]) for m in response.json()["data"]]
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return []

    async def _why_none_served(self, records: list[RequestRecord]) -> str | None:
        """When no request succeeded for a reason of the run's own (auth, model, overload), that reason; None
        when the server itself failed them (a failure of the server, judged as such)."""
        statuses = {r.status or 0 for r in records}
        if statuses == {401}:
            return self._unauthorized("every workload request")
        if statuses <= set(_OVERLOADED) and statuses:
            return _overloaded("every workload request", min(statuses))
        if statuses == {404} and all("does not exist" in (r.error or "") for r in records):
            served = await self._served_models()
            listed = f"it serves {', '.join(served)}" if served else "its /v1/models lists none"
            return (f"the server does not serve the model {self.model!r} given with --vllm-model ({listed}); pass "
                    f"one of the served models, or leave --vllm-model out to use the first one.")
        return None

    def _body(self, kind: str, text: str, system: str | None, n: int, max_tokens: int,
              stop: str | None = None) -> tuple[str, dict[str, Any]]:
        chat = kind.startswith("chat")
        stream = kind.endswith("stream")
        # vLLM refuses n > 1 with greedy sampling; a fixed seed keeps the answers reproducible
        sampling: dict[str, Any] = {"temperature": 0.0} if n == 1 else {"temperature": 1.0, "seed": 7, "n": n}
        body: dict[str, Any] = {"model": self.model, "max_tokens": max_tokens, **sampling, "stream": stream}
        if stop is not None:
            body["stop"] = [stop]
        if stream:
            body["stream_options"] = {"include_usage": True}
        if chat:
            body["messages"] = (
                [{"role": "system", "content": system}, {"role": "user", "content": text[len(system):]}]
                if system else [{"role": "user", "content": text}]
            )
            path = "/v1/chat/completions"
        else:
            body["prompt"] = text
            path = "/v1/completions"
        return path, body

    async def _send(self, kind: str, text: str, *, shares_prefix: bool, system: str | None = None,
                    n: int = 1, stop: str | None = None) -> RequestRecord:
        stream = kind.endswith("stream")
        path, body = self._body(kind, text, system, n, self.max_tokens, stop)
        started = time.monotonic()
        record = RequestRecord(kind=kind, status=None, seconds=0.0, shares_prefix=shares_prefix, n=n,
                               max_tokens=self.max_tokens, stop=stop)
        try:
            async with self.client.stream("POST", parsed_url(self.target.url(path)), json=body, headers=self.headers,
                                          timeout=self.timeout) as response:
                record.status = response.status_code
                if response.status_code == 403 and self.target.source is TargetSource.KUBERNETES:
                    record.error = (
                        f"POST {path} through the API server's pod proxy was refused (403): grant create on "
                        f"pods/proxy (Kubernetes authorizes a proxied POST as create; deploy/rbac.yaml), or send "
                        f"the workload through --vllm-gateway-url"
                    )
                elif response.status_code != 200:
                    record.error = _error_text(await read_capped(response, MAX_ANSWER_BYTES))
                elif stream:
                    size = 0
                    async for line in response.aiter_lines():
                        size += len(line)
                        if size > MAX_ANSWER_BYTES:
                            raise TooLarge
                        if line.startswith("data: ") and line != "data: [DONE]":
                            _take_usage(record, json.loads(line[6:]))
                else:
                    _take_usage(record, json.loads(await read_capped(response, MAX_ANSWER_BYTES)))
        except httpx.HTTPError as exc:
            record.error = describe_http_error(self.target, f"POST {shown_path(self.target, path)}", exc,
                                               self.timeout)
        except (ValueError, UnicodeDecodeError) as exc:
            record.error = f"the answer is not OpenAI-compatible JSON ({exc})"
        except TooLarge:
            record.error = (f"the answer exceeded {MAX_ANSWER_BYTES // 2**20} MiB for a request of "
                            f"{self.max_tokens} tokens; this is not a vLLM completion")
        record.seconds = time.monotonic() - started
        return record

    async def abort_streams(self, aborts: Aborts, count: int, max_tokens: int,
                            while_open: Callable[[], Awaitable[None]]) -> None:
        """Open `count` streaming completions that would run long, read each one's first chunk, call `while_open`,
        then close them all before they finish: the client aborts that vLLM's own metrics test makes."""
        path, body = self._body("completion-stream", _words(12, salt=3), None, 1, max_tokens)
        body["ignore_eos"] = True  # vLLM's extension: no early stop, so each stream is still running when closed
        reading: list[AsyncIterator[str]] = []
        async with AsyncExitStack() as streams:
            for _ in range(count):
                try:
                    response = await streams.enter_async_context(self.client.stream(
                        "POST", parsed_url(self.target.url(path)), json=body, headers=self.headers,
                        timeout=self.timeout))
                    if response.status_code != 200:
                        try:
                            said = _error_text(await read_capped(response, MAX_ANSWER_BYTES))
                        except TooLarge:
                            said = f"an answer over {MAX_ANSWER_BYTES // 2**20} MiB"
                        aborts.error = (f"a streaming request of the abort probe answered HTTP "
                                        f"{response.status_code}: {said}")
                        return
                    aborts.opened += 1
                    # Kept referenced until the streams close: a line iterator dropped half-way is finalized,
                    # and finalizing it closes its connection, an abort before the gauges were read.
                    lines = response.aiter_lines()
                    reading.append(lines)
                    async for line in lines:
                        if line == "data: [DONE]":
                            aborts.finished += 1  # done before the suite could close it: not an abort
                            break
                        if line.startswith("data: "):
                            break  # the first token is out: the request is running
                except httpx.HTTPError as exc:
                    aborts.error = describe_http_error(self.target, f"POST {shown_path(self.target, path)} (abort "
                                                       f"probe)", exc, self.timeout)
                    return
            await while_open()
        aborts.aborted = aborts.opened - aborts.finished  # closed with the stack, mid-stream


@dataclass
class Aborts:
    """Streaming requests the suite closed mid-way, and what the gauges did afterwards (filled by observe)."""

    opened: int = 0
    finished: int = 0  # streams the server ended before the suite closed them
    aborted: int = 0
    during: dict[str, float | None] = field(default_factory=dict)  # gauges while the streams were open
    after: dict[str, float | None] = field(default_factory=dict)  # gauges at the last poll
    settled_after: float | None = None  # seconds from the close until every gauge read 0; None if never
    waited: float = 0.0  # the bound of the poll
    polls: int = 0
    error: str | None = None


class _WorkloadError(Exception):
    def __init__(self, message: str, server_failed: bool = False) -> None:
        super().__init__(message)
        self.server_failed = server_failed


_OVERLOADED = (429, 503)


def _overloaded(what: str, status: int) -> str:
    return (f"{what} answered HTTP {status}: the server is overloaded or rate-limited (or not ready), so the workload "
            f"could not be observed. Rerun when it has capacity, or send fewer requests (--vllm-requests).")


MAX_ANSWER_BYTES = 4 * 1024 * 1024  # a completion of at most 256 tokens is a few KB


def _stop_string(text: str) -> str | None:
    """A piece of a greedy answer to stop on: its first visible character from the middle on (it occurs before the
    answer's end, so the request stops on it rather than by max_tokens); None for an empty answer."""
    visible = text.strip()
    middle = len(visible) // 2
    return next((c for c in visible[middle:] if not c.isspace()), None)


def _take_usage(record: RequestRecord, data: dict[str, Any]) -> None:
    """Usage, each choice's finish_reason and the first choice's text, from an answer or a streamed chunk."""
    choices = data.get("choices") if isinstance(data, dict) else None
    for choice in choices if isinstance(choices, list) else []:
        if not isinstance(choice, dict):
            continue
        if choice.get("finish_reason"):
            record.finish_reasons[int(choice.get("index") or 0)] = str(choice["finish_reason"])
        if not choice.get("index"):
            message = choice.get("message") or choice.get("delta")
            content = choice.get("text") or (message.get("content") if isinstance(message, dict) else None)
            record.text += content if isinstance(content, str) else ""
    usage = data.get("usage") if isinstance(data, dict) else None
    if not isinstance(usage, dict):
        return
    record.prompt_tokens = int(usage.get("prompt_tokens") or 0)
    record.completion_tokens = int(usage.get("completion_tokens") or 0)
    details = usage.get("prompt_tokens_details")
    if isinstance(details, dict) and details.get("cached_tokens") is not None:
        record.cached_tokens = int(details["cached_tokens"])


def _error_text(body: bytes) -> str:
    try:
        data = json.loads(body)
        message = data.get("message") or data.get("error") or data
        if isinstance(message, dict):
            message = message.get("message", message)
        return str(message)[:300]
    except (ValueError, AttributeError):
        return body[:300].decode("utf-8", errors="replace")
