"""Unit tests of the bundled simulator (pytest_vllm_metrics.sim), served for real on loopback.

Fidelity is checked family by family against the real vLLM 0.32.0 captures in tests/data/captures:
names, types, label names and histogram buckets must match; values are ignored.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import capture_text, run_suite
from pytest_vllm_metrics import engines, promql
from pytest_vllm_metrics.engines import Metric
from pytest_vllm_metrics.sim import Profile, RunningSim, SimHost, build_app, get_profile, profile_names
from pytest_vllm_metrics.sim.engine import Step, ngram_steps
from pytest_vllm_metrics.snapshot import Series, Snapshot

MODEL = "tiny"
BLOCK = 128
HITS = "vllm:prefix_cache_hits"  # parser names: counters without _total
QUERIES = "vllm:prefix_cache_queries"


@dataclass(frozen=True)
class Shape:
    """What a family looks like on /metrics, values aside."""

    type: str
    label_names: frozenset[str]
    buckets: tuple[str, ...]  # the `le` bounds, in exposition order


def shapes(text: str) -> dict[str, Shape]:
    out: dict[str, Shape] = {}
    for family in text_string_to_metric_families(text):
        labels: set[str] = set()
        buckets: list[str] = []
        for sample in family.samples:
            labels.update(k for k in sample.labels if k not in ("le", "quantile"))
            le = sample.labels.get("le")
            if le is not None and le not in buckets:
                buckets.append(le)
        out[family.name] = Shape(family.type, frozenset(labels), tuple(buckets))
    return out


def samples(text: str, family_name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The counted samples of a family (a counter's _total, a gauge's value) by sorted labels."""
    for family in text_string_to_metric_families(text):
        if family.name == family_name:
            return {
                tuple(sorted(s.labels.items())): s.value
                for s in family.samples
                if not s.name.endswith(("_created", "_bucket", "_sum"))
            }
    raise AssertionError(f"{family_name} is not on the page")


def total(text: str, family_name: str) -> float:
    return sum(samples(text, family_name).values())


def count(text: str, family_name: str) -> float:
    """A histogram's observations, over its series."""
    for family in text_string_to_metric_families(text):
        if family.name == family_name:
            return sum(s.value for s in family.samples if s.name.endswith("_count"))
    raise AssertionError(f"{family_name} is not on the page")


def capture_shapes(name: str) -> dict[str, Shape]:
    return shapes(capture_text(name))


def words(count: int, stem: str = "word") -> str:
    return " ".join(f"{stem}{i}" for i in range(count))


def complete(client: httpx.Client, prompt: str, max_tokens: int = 8, **extra: Any) -> httpx.Response:
    body = {"model": MODEL, "prompt": prompt, "max_tokens": max_tokens, **extra}
    return client.post("/v1/completions", json=body)


def sse_events(body: str) -> list[str]:
    """The `data:` payloads of a server-sent-event stream, in order."""
    events = [block for block in body.split("\n\n") if block.strip()]
    assert all(event.startswith("data: ") for event in events), events
    return [event[len("data: "):] for event in events]


# -- servers ---------------------------------------------------------------------------------------


StartSim = Callable[[Profile], RunningSim]


@pytest.fixture
def start_sim(host: SimHost) -> Iterator[StartSim]:
    """Start fresh simulated servers (an empty prefix cache, zeroed counters); stopped after the test."""
    started: list[RunningSim] = []

    def start(profile: Profile) -> RunningSim:
        sim = host.start(profile)
        started.append(sim)
        return sim

    yield start
    for sim in started:
        host.stop(sim)


def plain_http(url: str) -> httpx.Client:
    """A client for a loopback simulator, with no CA bundle to parse: httpx parses one for each client it
    builds unless given a context (~20 ms of CPU, for each of the hundreds of tests here)."""
    return httpx.Client(base_url=url, timeout=10, verify=False)


@pytest.fixture
def x86(start_sim: StartSim) -> Iterator[httpx.Client]:
    with plain_http(start_sim(get_profile("x86_64")).url) as client:
        yield client


@pytest.fixture
def arm(start_sim: StartSim) -> Iterator[httpx.Client]:
    with plain_http(start_sim(get_profile("arm64-cpu")).url) as client:
        yield client


@dataclass(frozen=True)
class Pages:
    before: dict[str, Shape]
    after: dict[str, Shape]


@pytest.fixture(scope="module")
def x86_pages(host: SimHost) -> Iterator[Pages]:
    """The x86_64 profile's /metrics at startup and after one completion request."""
    sim = host.start(get_profile("x86_64"))
    try:
        with httpx.Client(base_url=sim.url, timeout=10) as client:
            before = client.get("/metrics").text
            assert complete(client, words(40)).status_code == 200
            after = client.get("/metrics").text
    finally:
        host.stop(sim)
    yield Pages(shapes(before), shapes(after))


CAPTURE_BEFORE = capture_shapes("prefix-caching-on.before")
CAPTURE_AFTER = capture_shapes("prefix-caching-on.after")
HTTP_FAMILIES = sorted(name for name in CAPTURE_AFTER if name.startswith("http_"))


# -- profiles --------------------------------------------------------------------------------------


def test_profiles_include_the_seed_incident_and_the_reference() -> None:
    assert {"x86_64", "arm64-cpu", "arm64-0.12", "ppc64le-cpu", "riscv64-cpu"} <= set(profile_names())


def test_unknown_profile_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown simulator profile 'sparc'.*x86_64.*arm64-cpu"):
        get_profile("sparc")


def test_profile_replace_changes_one_field() -> None:
    keyed = get_profile("x86_64").replace(api_key="k")

    assert keyed.api_key == "k"
    assert keyed.version == get_profile("x86_64").version
    assert get_profile("x86_64").api_key is None


def test_x86_64_profile_is_the_captured_server() -> None:
    profile = get_profile("x86_64")

    assert (profile.arch, profile.version, profile.enable_prefix_caching) == ("amd64", "0.32.0", True)
    assert (profile.model, profile.block_size) == (MODEL, BLOCK)


# -- fidelity to the real vLLM 0.32.0 captures -------------------------------------------------------


def test_startup_page_has_exactly_the_captured_families(x86_pages: Pages) -> None:
    assert sorted(x86_pages.before) == sorted(CAPTURE_BEFORE)


@pytest.mark.parametrize("name", sorted(CAPTURE_BEFORE))
def test_startup_family_matches_the_capture(x86_pages: Pages, name: str) -> None:
    assert x86_pages.before.get(name) == CAPTURE_BEFORE[name]


def test_page_after_a_request_has_exactly_the_captured_families(x86_pages: Pages) -> None:
    assert sorted(x86_pages.after) == sorted(CAPTURE_AFTER)


@pytest.mark.parametrize("name", sorted(CAPTURE_AFTER))
def test_family_after_a_request_matches_the_capture(x86_pages: Pages, name: str) -> None:
    assert x86_pages.after.get(name) == CAPTURE_AFTER[name]


@pytest.mark.parametrize("name", HTTP_FAMILIES)
def test_http_family_gets_the_captured_labels_with_traffic(x86_pages: Pages, name: str) -> None:
    assert x86_pages.after[name].label_names == CAPTURE_AFTER[name].label_names


def test_http_requests_carry_handler_method_and_status_after_traffic(x86_pages: Pages) -> None:
    assert x86_pages.before["http_requests"].label_names == frozenset()
    assert x86_pages.after["http_requests"].label_names == frozenset({"handler", "method", "status"})


def test_latency_histogram_has_the_captured_buckets(x86_pages: Pages) -> None:
    buckets = x86_pages.before["vllm:e2e_request_latency_seconds"].buckets

    assert buckets == CAPTURE_BEFORE["vllm:e2e_request_latency_seconds"].buckets
    assert buckets[-1] == "+Inf"
    assert len(buckets) > 10


# -- the x86_64 prefix cache -----------------------------------------------------------------------


def test_same_long_prompt_twice_hits_two_blocks_on_the_second(x86: httpx.Client) -> None:
    prompt = words(300)

    first = complete(x86, prompt)
    second = complete(x86, prompt)

    assert first.status_code == second.status_code == 200
    assert first.json()["usage"]["prompt_tokens"] == 300
    assert first.json()["usage"]["prompt_tokens_details"]["cached_tokens"] == 0
    assert second.json()["usage"]["prompt_tokens_details"]["cached_tokens"] == 2 * BLOCK


def test_prefix_cache_counters_report_the_hit_in_tokens(x86: httpx.Client) -> None:
    prompt = words(300)
    complete(x86, prompt)
    complete(x86, prompt)

    page = x86.get("/metrics").text

    assert total(page, HITS) == 256.0
    assert total(page, QUERIES) == 600.0
    assert total(page, "vllm:prompt_tokens") == 600.0


def test_prompt_shorter_than_a_block_never_hits(x86: httpx.Client) -> None:
    prompt = words(BLOCK - 1)
    complete(x86, prompt)

    second = complete(x86, prompt)

    assert second.json()["usage"]["prompt_tokens_details"]["cached_tokens"] == 0
    assert total(x86.get("/metrics").text, HITS) == 0.0


def test_completion_answer_is_openai_shaped(x86: httpx.Client) -> None:
    body = complete(x86, words(10), max_tokens=4).json()

    assert body["object"] == "text_completion"
    assert body["model"] == MODEL
    assert body["choices"][0]["finish_reason"] == "length"
    assert len(body["choices"][0]["text"].split()) == 4
    assert body["usage"]["completion_tokens"] == 4
    assert body["usage"]["total_tokens"] == 14


def test_requests_count_in_success_and_http_counters(x86: httpx.Client) -> None:
    complete(x86, words(10))
    complete(x86, words(10))

    page = x86.get("/metrics").text
    success = samples(page, "vllm:request_success")
    http = samples(page, "http_requests")

    assert success[(("engine", "0"), ("finished_reason", "length"), ("model_name", MODEL))] == 2.0
    assert http[(("handler", "/v1/completions"), ("method", "POST"), ("status", "2xx"))] == 2.0


def test_metrics_scrapes_are_not_counted_as_http_requests(x86: httpx.Client) -> None:
    x86.get("/metrics")
    x86.get("/health")
    x86.get("/version")

    assert samples(x86.get("/metrics").text, "http_requests") == {}


# -- the HTTP API ----------------------------------------------------------------------------------


def test_streaming_chat_ends_with_usage_then_done(x86: httpx.Client) -> None:
    request = {
        "model": MODEL, "max_tokens": 3, "stream": True, "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": "hello there"}],
    }
    with x86.stream("POST", "/v1/chat/completions", json=request) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        body = response.read().decode()

    events = sse_events(body)
    assert body.endswith("data: [DONE]\n\n")
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    content = [chunk for chunk in chunks if chunk["choices"]]
    assert len(content) == 3
    assert content[-1]["choices"][0]["finish_reason"] == "length"
    usage_chunk = chunks[-1]
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["completion_tokens"] == 3
    assert usage_chunk["usage"]["prompt_tokens"] > 0


def test_streaming_without_include_usage_sends_no_usage_chunk(x86: httpx.Client) -> None:
    request = {"model": MODEL, "prompt": words(5), "max_tokens": 2, "stream": True}
    with x86.stream("POST", "/v1/completions", json=request) as response:
        body = response.read().decode()

    events = sse_events(body)
    assert events[-1] == "[DONE]"
    assert all("usage" not in json.loads(event) for event in events[:-1])


def test_wrong_model_is_404_with_an_error_object(x86: httpx.Client) -> None:
    response = x86.post("/v1/completions", json={"model": "gpt-4", "prompt": "hi", "max_tokens": 2})

    assert response.status_code == 404
    body = response.json()
    assert body["object"] == "error"
    assert body["code"] == 404
    assert "gpt-4" in body["message"]


def test_wrong_model_in_chat_is_404(x86: httpx.Client) -> None:
    response = x86.post("/v1/chat/completions",
                        json={"model": "other", "messages": [{"role": "user", "content": "hi"}]})

    assert response.status_code == 404
    assert response.json()["object"] == "error"


def test_prompt_over_the_context_length_is_400(x86: httpx.Client) -> None:
    response = complete(x86, words(1020), max_tokens=8)

    assert response.status_code == 400
    assert "maximum context length is 1024 tokens" in response.json()["message"]


def test_models_lists_the_served_model(x86: httpx.Client) -> None:
    body = x86.get("/v1/models").json()

    assert [model["id"] for model in body["data"]] == [MODEL]
    assert body["data"][0]["max_model_len"] == 1024


def test_version_of_x86_64_is_0_32_0(x86: httpx.Client) -> None:
    assert x86.get("/version").json() == {"version": "0.32.0"}


@pytest.fixture
def keyed(start_sim: StartSim) -> Iterator[httpx.Client]:
    sim = start_sim(get_profile("x86_64").replace(api_key="k"))
    with plain_http(sim.url) as client:
        yield client


def test_api_key_guards_v1_without_the_bearer(keyed: httpx.Client) -> None:
    assert keyed.get("/v1/models").status_code == 401
    assert keyed.get("/v1/models", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert keyed.post("/v1/completions", json={"model": MODEL, "prompt": "hi"}).status_code == 401


def test_api_key_admits_the_bearer(keyed: httpx.Client) -> None:
    headers = {"Authorization": "Bearer k"}

    assert keyed.get("/v1/models", headers=headers).status_code == 200
    assert keyed.post("/v1/completions", headers=headers,
                      json={"model": MODEL, "prompt": "hi", "max_tokens": 2}).status_code == 200


def test_api_key_leaves_metrics_health_and_version_open(keyed: httpx.Client) -> None:
    metrics = keyed.get("/metrics")

    assert metrics.status_code == 200
    assert "vllm:num_requests_running" in metrics.text
    assert keyed.get("/health").status_code == 200
    assert keyed.get("/version").status_code == 200


# -- the seed incident: arm64-cpu, vLLM 0.11.2 ---------------------------------------------------------


def test_arm64_cpu_reports_version_0_11_2(arm: httpx.Client) -> None:
    assert arm.get("/version").json() == {"version": "0.11.2"}


def test_arm64_cpu_reports_prefix_caching_off(arm: httpx.Client) -> None:
    info = samples(arm.get("/metrics").text, "vllm:cache_config_info")

    assert len(info) == 1
    labels = dict(next(iter(info)))
    assert labels["enable_prefix_caching"] == "False"
    assert labels["block_size"] == str(BLOCK)


def test_arm64_cpu_exposes_prefix_cache_counters_at_zero(arm: httpx.Client) -> None:
    page = arm.get("/metrics").text

    assert samples(page, HITS) == {(("engine", "0"), ("model_name", MODEL)): 0.0}
    assert samples(page, QUERIES) == {(("engine", "0"), ("model_name", MODEL)): 0.0}


def test_arm64_cpu_prefix_cache_counters_stay_zero_under_shared_prefixes(arm: httpx.Client) -> None:
    shared = words(400, "shared")
    answers = [complete(arm, f"{shared} question{i}", max_tokens=4) for i in range(4)]

    page = arm.get("/metrics").text

    assert [a.status_code for a in answers] == [200] * 4
    assert [a.json()["usage"]["prompt_tokens_details"]["cached_tokens"] for a in answers] == [0] * 4
    assert total(page, HITS) == 0.0
    assert total(page, QUERIES) == 0.0
    assert total(page, "vllm:prompt_tokens") == 4 * 401.0  # the requests did run


def test_arm64_cpu_has_no_prompt_tokens_by_source(arm: httpx.Client) -> None:
    complete(arm, words(10))

    names = set(shapes(arm.get("/metrics").text))

    assert "vllm:prompt_tokens_by_source" not in names
    assert "vllm:prompt_tokens_cached" not in names


def test_arm64_cpu_has_the_deprecated_time_per_output_token(arm: httpx.Client) -> None:
    page = shapes(arm.get("/metrics").text)

    assert page["vllm:time_per_output_token_seconds"].type == "histogram"
    assert page["vllm:time_per_output_token_seconds"].label_names == frozenset({"engine", "model_name"})
    assert "vllm:inter_token_latency_seconds" in page


def test_arm64_cpu_finished_reasons_are_only_stop_length_abort(arm: httpx.Client) -> None:
    def reasons() -> set[str]:
        return {dict(labels)["finished_reason"] for labels in samples(arm.get("/metrics").text,
                                                                       "vllm:request_success")}

    at_startup = reasons()
    complete(arm, words(10))

    assert at_startup == {"stop", "length", "abort"}
    assert reasons() == {"stop", "length", "abort"}


def test_x86_64_finished_reasons_include_error_and_repetition(x86: httpx.Client) -> None:
    reasons = {dict(labels)["finished_reason"] for labels in samples(x86.get("/metrics").text,
                                                                     "vllm:request_success")}

    assert reasons == {"stop", "length", "abort", "error", "repetition"}


# -- the host --------------------------------------------------------------------------------------


def test_host_serves_several_profiles_on_distinct_ports(start_sim: StartSim) -> None:
    sims = [start_sim(get_profile(name)) for name in ("x86_64", "arm64-cpu", "riscv64-cpu")]

    versions = [httpx.get(f"{sim.url}/version", timeout=10).json()["version"] for sim in sims]

    assert len({sim.url for sim in sims}) == 3
    assert versions == ["0.32.0", "0.11.2", "0.32.0"]


def test_stopped_sim_no_longer_answers(host: SimHost) -> None:
    sim = host.start(get_profile("x86_64"))
    assert httpx.get(f"{sim.url}/health", timeout=10).status_code == 200

    host.stop(sim)

    assert sim not in host.servers
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{sim.url}/health", timeout=10)


def test_sims_do_not_share_a_prefix_cache(start_sim: StartSim) -> None:
    prompt = words(300)
    first, second = (start_sim(get_profile("x86_64")) for _ in range(2))
    with httpx.Client(base_url=first.url, timeout=10) as client:
        complete(client, prompt)
    with httpx.Client(base_url=second.url, timeout=10) as client:
        answer = complete(client, prompt)

    assert answer.json()["usage"]["prompt_tokens_details"]["cached_tokens"] == 0


# -- LoRA (x86_64-lora) ------------------------------------------------------------------------------

LORA_INFO = "vllm:lora_requests_info"


def lora_series(text: str) -> dict[tuple[str, str], float]:
    """(running, waiting adapters) -> update time, of each vllm:lora_requests_info series."""
    return {(dict(labels)["running_lora_adapters"], dict(labels)["waiting_lora_adapters"]): value
            for labels, value in samples(text, LORA_INFO).items()}


def test_lora_models_lists_the_adapter_after_the_base_model(start_sim: StartSim) -> None:
    with httpx.Client(base_url=start_sim(get_profile("x86_64-lora")).url, timeout=10) as client:
        models = client.get("/v1/models").json()["data"]
    # vLLM's OpenAIServingModels.show_available_models: a ModelCard per adapter, root its path, parent the base
    assert [(m["id"], m["parent"]) for m in models] == [(MODEL, None), ("sim-adapter", MODEL)]
    assert models[1]["root"] == "/adapters/sim-adapter" and models[1]["max_model_len"] is None


def test_lora_request_to_the_adapter_answers_in_its_name(start_sim: StartSim) -> None:
    with httpx.Client(base_url=start_sim(get_profile("x86_64-lora")).url, timeout=10) as client:
        answer = client.post("/v1/completions", json={"model": "sim-adapter", "prompt": "a b", "max_tokens": 4})
        chat = client.post("/v1/chat/completions", json={
            "model": "sim-adapter", "messages": [{"role": "user", "content": "a b"}], "max_tokens": 4})
        unknown = client.post("/v1/completions", json={"model": "other-adapter", "prompt": "a b", "max_tokens": 4})
        page = client.get("/metrics").text

    assert (answer.status_code, answer.json()["model"]) == (200, "sim-adapter")
    assert (chat.status_code, chat.json()["model"]) == (200, "sim-adapter")
    assert unknown.status_code == 404
    # the engine's counters keep the base model's name, as vLLM's do
    assert {dict(labels)["model_name"] for labels in samples(page, "vllm:request_success")} == {MODEL}


def test_lora_info_has_no_series_before_a_request_and_one_per_adapter_set_after(start_sim: StartSim) -> None:
    with httpx.Client(base_url=start_sim(get_profile("x86_64-lora")).url, timeout=10) as client:
        before = client.get("/metrics").text
        complete(client, "a b")
        base_only = lora_series(client.get("/metrics").text)
        client.post("/v1/completions", json={"model": "sim-adapter", "prompt": "a b", "max_tokens": 4})
        after = lora_series(client.get("/metrics").text)

    assert f"# TYPE {LORA_INFO} gauge" in before and not samples(before, LORA_INFO)
    assert list(base_only) == [("", "")]
    assert list(after) == [("", ""), ("sim-adapter", "sim-adapter")]  # the older set kept, first on the page
    assert after[("", "")] > after[("sim-adapter", "sim-adapter")] > base_only[("", "")]  # ended with none running


def test_lora_info_newest_series_lists_every_adapter_in_flight(start_sim: StartSim) -> None:
    profile = get_profile("x86_64-lora").replace(lora_modules=("first", "second"), max_loras=2)
    with httpx.Client(base_url=start_sim(profile).url, timeout=30) as client:

        def stream(model: str) -> Any:  # at least 1 s of tokens, far longer than the page read below
            body = {"model": model, "prompt": "a b", "max_tokens": 500, "stream": True}
            return client.stream("POST", "/v1/completions", json=body)

        with stream("first") as one:
            first_lines = one.iter_lines()
            next(first_lines)  # the first adapter is generating
            with stream("second") as two:
                second_lines = two.iter_lines()
                next(second_lines)
                both = client.get("/metrics").text
                # read to the end (bounded: 500 tokens each): closing a stream early would be an abort
                assert [*filter(None, first_lines)][-1] == [*filter(None, second_lines)][-1] == "data: [DONE]"
        after = client.get("/metrics").text

    series = lora_series(both)
    assert max(series, key=lambda key: series[key]) == ("first,second", "first,second")
    assert ("first", "first") in series  # the set before the second arrived is kept, older
    assert {dict(labels)["max_lora"] for labels in samples(both, LORA_INFO)} == {"2"}
    finished = lora_series(after)
    assert max(finished, key=lambda key: finished[key]) == ("", "")


# -- speculative decoding (x86_64-spec-decode) -------------------------------------------------------


def vllm_ngram_proposal(tokens: list[str], min_n: int, max_n: int, max_model_len: int, k: int) -> list[str]:
    """vLLM 0.32's _find_longest_matched_ngram_and_propose_tokens (v1/spec_decode/ngram_proposer.py), line by
    line in Python: the oracle the simulator's proposer is compared with."""
    total = len(tokens)
    if total < min_n:
        return []
    k = min(k, max_model_len - total)
    if k <= 0:
        return []
    reversed_tokens = tokens[::-1]
    lps = [0] * max_n
    longest = position = prev = 0
    i = 1
    while i < total:
        if reversed_tokens[prev] == reversed_tokens[i]:
            prev += 1
            if prev >= longest:
                longest, position = prev, i
            if i < max_n:
                lps[i] = prev
            if prev == max_n:
                prev = lps[max_n - 1]
            i += 1
        elif prev != 0:
            prev = lps[prev - 1]
        else:
            i += 1
    if longest < min_n:
        return []
    start = total - 1 - position + longest
    return tokens[start: start + min(k, total - start)]


def oracle_steps(prompt: list[str], word: Callable[[int], str], max_tokens: int, k: int) -> list[Step]:
    context, generated, steps = [*prompt, word(0)], 1, []
    while generated < max_tokens:
        draft = vllm_ngram_proposal(context, 1, 3, 1024, k)
        accepted = 0
        while accepted < len(draft) and draft[accepted] == word(generated + accepted):
            accepted += 1
        emitted = min(accepted + 1, max_tokens - generated)
        context += [word(generated + i) for i in range(emitted)]
        generated += emitted
        steps.append(Step(emitted, len(draft), accepted))
    return steps


@pytest.mark.parametrize("seed", range(40))
def test_ngram_drafts_as_vllms_proposer(seed: int) -> None:
    # repetitive text over a small vocabulary, so every n-gram length and mismatch occurs
    rng = random.Random(seed)
    vocabulary = ["a", "b", "c", "d"][: 2 + seed % 3]
    prompt = [rng.choice(vocabulary) for _ in range(rng.randint(0, 12))]
    output = [rng.choice(vocabulary) for _ in range(80)]
    max_tokens, k = rng.randint(2, 60), 1 + seed % 3

    assert ngram_steps(prompt, output.__getitem__, max_tokens, k, 1, 3, 1024) == oracle_steps(
        prompt, output.__getitem__, max_tokens, k)


def test_ngram_does_not_draft_without_repetition() -> None:
    steps = ngram_steps(words(20), lambda i: f"new{i}", 16, 2, 1, 3, 1024)

    assert steps == [Step(1)] * 15


def test_ngram_does_not_draft_past_the_context_length() -> None:
    # 1023 tokens of context after the prefill: one draft token fits into max_model_len 1024, then none
    steps = ngram_steps(["a"] * 1022, lambda i: "a", 4, 2, 1, 3, 1024)

    assert steps == [Step(2, 1, 1), Step(1)]


@pytest.mark.parametrize("max_tokens", [2, 8, 9, 64, 256])
@pytest.mark.parametrize("prompt_words", [1, 7, 40])
def test_spec_decode_counters_keep_vllms_invariants(start_sim: StartSim, max_tokens: int, prompt_words: int) -> None:
    with httpx.Client(base_url=start_sim(get_profile("x86_64-spec-decode")).url, timeout=10) as client:
        answer = complete(client, words(prompt_words), max_tokens=max_tokens, temperature=0)
        page = client.get("/metrics").text

    drafts, drafted, accepted = (total(page, f"vllm:spec_decode_num_{name}")
                                 for name in ("drafts", "draft_tokens", "accepted_tokens"))
    per_position = [samples(page, "vllm:spec_decode_num_accepted_tokens_per_pos")[
        (("engine", "0"), ("model_name", MODEL), ("position", p))] for p in "01"]
    assert answer.json()["usage"]["completion_tokens"] == max_tokens
    assert accepted <= drafted <= 2 * drafts
    assert per_position[0] >= per_position[1] and sum(per_position) == accepted
    # one inter-token latency per decode step, which emits the accepted tokens and one more (vLLM: the capture's
    # 16 tokens took 6 steps)
    steps = count(page, "vllm:inter_token_latency_seconds")
    assert steps + accepted >= max_tokens - 1 >= steps
    if max_tokens >= 8:  # the generated words repeat within 8: the ngram method drafts
        assert drafts > 0


def test_spec_decode_position_series_follow_num_speculative_tokens(start_sim: StartSim) -> None:
    profile = get_profile("x86_64-spec-decode").replace(num_speculative_tokens=3)
    with httpx.Client(base_url=start_sim(profile).url, timeout=10) as client:
        page = client.get("/metrics").text

    positions = {dict(labels)["position"]: value
                 for labels, value in samples(page, "vllm:spec_decode_num_accepted_tokens_per_pos").items()}
    assert positions == {"0": 0.0, "1": 0.0, "2": 0.0}


@pytest.mark.parametrize(("changes", "message"), [
    ({"speculative_method": "eagle"}, "unknown speculative_method 'eagle'"),
    ({"num_speculative_tokens": 0}, "needs num_speculative_tokens >= 1"),
    ({"prompt_lookup_min": 4}, "1 <= prompt_lookup_min <= prompt_lookup_max"),
])
def test_spec_decode_profile_refuses_a_configuration_vllm_would_not_run(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        build_app(get_profile("x86_64-spec-decode").replace(**changes))


# -- the other model servers (SGLang, trtllm-serve, Triton TensorRT-LLM) -------------------------------------------


OTHER_PROFILES = ("sglang-0.5.9", "sglang-0.5.16", "trtllm-serve", "triton-tensorrt-llm")


def protocol_of(profile: Profile) -> engines.Profile:
    return engines.profile(engines.Engine(profile.engine))


def picked(page: Snapshot, selector: str) -> list[Series]:
    """The series the endpoint picker reads for a selector of conformance/engines.toml (equality matchers)."""
    parsed = promql.selectors(selector)[0]
    return page.series(parsed.metric, {label: value for label, _, value in parsed.matchers})


def read(page: Snapshot, profile: Profile, metric: Metric) -> float:
    """The one value the engine's page gives a required metric of the protocol."""
    series = picked(page, protocol_of(profile).required[metric])
    assert len(series) == 1, series
    return series[0].value


class EngineSim:
    """A running simulated engine: its client, and its page as a Snapshot."""

    def __init__(self, client: httpx.Client, profile: Profile) -> None:
        self.client, self.profile = client, profile
        self.path = protocol_of(profile).metrics_path

    def page(self) -> Snapshot:
        response = self.client.get(self.path)
        assert response.status_code == 200, response.text
        return Snapshot.parse(response.text)

    def model(self) -> str:
        model: str = self.client.get("/v1/models").json()["data"][0]["id"]
        return model

    def stream(self, max_tokens: int = 500) -> Any:
        """A streaming completion of at least max_tokens x 2 ms: open far longer than a page read."""
        body = {"model": self.model(), "prompt": words(10), "max_tokens": max_tokens, "stream": True}
        return self.client.stream("POST", "/v1/completions", json=body)

    def while_streaming(self) -> tuple[Snapshot, Snapshot]:
        """The page while one streaming request is generating, and after it ended (read to its end)."""
        with self.stream() as response:
            lines = response.iter_lines()
            next(lines)  # generating
            during = self.page()
            assert [*filter(None, lines)][-1] == "data: [DONE]"  # bounded: 500 tokens
        return during, self.page()


StartEngine = Callable[..., EngineSim]


@pytest.fixture
def engine_sim(start_sim: StartSim) -> Iterator[StartEngine]:
    clients: list[httpx.Client] = []

    def start(name: str, **changes: Any) -> EngineSim:
        profile = get_profile(name).replace(**changes)
        clients.append(plain_http(start_sim(profile).url))
        return EngineSim(clients[-1], profile)

    yield start
    for client in clients:
        client.close()


def test_every_engine_has_a_profile_and_each_profile_its_engines_capture() -> None:
    profiles = [get_profile(name) for name in OTHER_PROFILES]
    assert {p.engine for p in profiles} == {e.value for e in engines.Engine} - {"vllm"}
    assert [p.version for p in profiles] == ["0.5.9", "0.5.16", "1.3.0rc23", "25.12"]
    assert all(p.description for p in profiles)


@pytest.mark.parametrize("name", OTHER_PROFILES)
def test_engine_page_has_the_protocols_gauges_typed_and_labelled_with_the_served_model(
        engine_sim: StartEngine, name: str) -> None:
    sim = engine_sim(name, model="served/model-1")  # not the capture's model: the label is the served one
    page = sim.page()
    protocol = protocol_of(sim.profile)
    for metric in engines.REQUIRED:
        series = picked(page, protocol.required[metric])
        assert len(series) == 1, (metric, series)
        family = page.family(promql.selectors(protocol.required[metric])[0].metric)
        assert family is not None and family.type == "gauge", (metric, family)
        assert dict(series[0].labels)[protocol.model_label] == sim.model() == "served/model-1"
        assert series[0].value == 0.0  # idle


# the captures the profiles serve (tests/data/engines, each with its source): every family, typed and with its help
CAPTURED = {"sglang-0.5.9": "sglang-before-0.5.12", "sglang-0.5.16": "sglang-current",
            "trtllm-serve": "trtllm-serve", "triton-tensorrt-llm": "triton-tensorrt-llm"}


@pytest.mark.parametrize("name", OTHER_PROFILES)
def test_engine_page_has_exactly_the_families_of_its_capture(engine_sim: StartEngine, name: str) -> None:
    text = (Path(__file__).parent / "data" / "engines" / f"{CAPTURED[name]}.prom").read_text(encoding="utf-8")
    captured = Snapshot.parse(text)
    page = engine_sim(name).page()
    assert page.families == captured.families
    assert {n: len(s) for n, s in page.samples.items()} == {n: len(s) for n, s in captured.samples.items()}


@pytest.mark.parametrize(("name", "block_size", "num_blocks"), [
    ("sglang-0.5.9", ("sglang:cache_config_info", "page_size"), ("sglang:cache_config_info", "num_pages")),
    ("sglang-0.5.16", ("sglang:page_size", ""), ("sglang:num_pages", "")),
    ("trtllm-serve", ("trtllm_kv_cache_tokens_per_block", ""), ("trtllm_kv_cache_max_blocks", "")),
    ("triton-tensorrt-llm", ('nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="tokens_per"}', ""),
     ('nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="max"}', "")),
])
def test_engine_page_gives_the_profiles_kv_cache_in_its_versions_form(
        engine_sim: StartEngine, name: str, block_size: tuple[str, str], num_blocks: tuple[str, str]) -> None:
    page = engine_sim(name, block_size=16, num_gpu_blocks=1234).page()
    for (selector, label), expected in ((block_size, "16"), (num_blocks, "1234")):
        [series] = picked(page, selector)
        assert (dict(series.labels)[label] if label else str(int(series.value))) == expected, selector
    other = {"sglang-0.5.9": "sglang:page_size", "sglang-0.5.16": "sglang:cache_config_info"}.get(name)
    assert other is None or page.family(other) is None  # one form per version
    if other:  # the KV pool's size in tokens agrees
        assert page.value("sglang:max_total_num_tokens") == 16 * 1234


@pytest.mark.parametrize("name", OTHER_PROFILES)
def test_engine_gauges_rise_while_a_request_streams_and_fall_back_to_zero(engine_sim: StartEngine,
                                                                          name: str) -> None:
    sim = engine_sim(name)
    during, after = sim.while_streaming()
    held = math.ceil((10 + 500) / sim.profile.block_size)  # the prompt's 10 tokens and the 500 it may generate
    assert read(during, sim.profile, Metric.RUNNING) == 1.0
    assert read(during, sim.profile, Metric.QUEUED) == 0.0
    assert read(during, sim.profile, Metric.KV_USAGE) == held / sim.profile.num_gpu_blocks
    assert [read(after, sim.profile, m) for m in engines.REQUIRED] == [0.0, 0.0, 0.0]


def test_kv_utilization_is_a_fraction_that_stops_at_one(engine_sim: StartEngine) -> None:
    # 510 tokens in flight, 32 a block: 16 blocks. On 16 blocks exactly 1; on 15 still 1, never more.
    for blocks in (17, 16, 15):
        sim = engine_sim("trtllm-serve", num_gpu_blocks=blocks)
        during, _ = sim.while_streaming()
        assert read(during, sim.profile, Metric.KV_USAGE) == min(16 / blocks, 1.0)
        assert during.value("trtllm_kv_cache_free_blocks") == max(blocks - 16, 0)


def test_triton_counts_each_request_in_its_execution_counter(engine_sim: StartEngine) -> None:
    sim = engine_sim("triton-tensorrt-llm")
    for request in range(1, 4):
        answer = sim.client.post("/v1/chat/completions",
                                 json={"model": sim.model(), "messages": [{"role": "user", "content": "hi"}]})
        assert answer.status_code == 200
        assert sim.page().value("nv_inference_exec_count") == request


@pytest.mark.parametrize(("name", "owner"), [("sglang-0.5.16", "sglang"), ("trtllm-serve", "tensorrt_llm"),
                                             ("triton-tensorrt-llm", "Triton Inference Server")])
def test_engine_serves_the_openai_api_but_no_version(engine_sim: StartEngine, name: str, owner: str) -> None:
    sim = engine_sim(name)
    [model] = sim.client.get("/v1/models").json()["data"]
    assert (model["id"], model["owned_by"]) == (sim.profile.model, owner)
    assert sim.client.get("/health").status_code == 200
    assert sim.client.get("/version").status_code == 404
    request = {"model": model["id"], "max_tokens": 3, "stream": True, "stream_options": {"include_usage": True},
               "messages": [{"role": "user", "content": "hello there"}]}
    with sim.client.stream("POST", "/v1/chat/completions", json=request) as response:
        events = sse_events(response.read().decode())
    assert events[-1] == "[DONE]"
    assert json.loads(events[-2])["usage"]["completion_tokens"] == 3
    assert json.loads(events[0])["model"] == model["id"]


def test_trtllm_serve_page_is_at_prometheus_metrics_only(engine_sim: StartEngine) -> None:
    sim = engine_sim("trtllm-serve")
    assert sim.path == "/prometheus/metrics" and sim.page().family("trtllm_num_requests_running") is not None
    assert sim.client.get("/metrics").status_code == 404


# -- faults of another engine's page --------------------------------------------------------------------------


@pytest.mark.parametrize("name", OTHER_PROFILES)
def test_untyped_gauges_fault_drops_the_type_of_the_required_families_only(engine_sim: StartEngine,
                                                                         name: str) -> None:
    sim = engine_sim(name, fault="untyped-gauges")
    page = sim.page()
    required = {promql.selectors(s)[0].metric for s in protocol_of(sim.profile).required.values()}
    assert {n: f.type for n, f in page.families.items() if n in required} == dict.fromkeys(required, "unknown")
    assert {f.type for n, f in page.families.items() if n not in required} <= {"gauge", "counter"}
    assert read(page, sim.profile, Metric.RUNNING) == 0.0  # the series are still there


@pytest.mark.parametrize("name", OTHER_PROFILES)
def test_percent_kv_fault_writes_the_utilization_as_a_percentage(engine_sim: StartEngine, name: str) -> None:
    sim = engine_sim(name, fault="percent-kv", num_gpu_blocks=100)
    during, after = sim.while_streaming()
    held = math.ceil(510 / sim.profile.block_size)
    assert read(during, sim.profile, Metric.KV_USAGE) == pytest.approx(min(held, 100))  # held % of 100 blocks
    assert read(after, sim.profile, Metric.KV_USAGE) == 0.0


@pytest.mark.parametrize("name", OTHER_PROFILES)
def test_per_rank_fault_serves_each_required_series_per_rank_the_first_idle(engine_sim: StartEngine,
                                                                           name: str) -> None:
    sim = engine_sim(name, fault="per-rank")
    during, _ = sim.while_streaming()
    protocol = protocol_of(sim.profile)
    for metric in engines.REQUIRED:
        series = picked(during, protocol.required[metric])
        assert [dict(s.labels)["tp_rank"] for s in series] == ["0", "1"], metric
        assert series[0].value == 0.0
    assert [s.value for s in picked(during, protocol.required[Metric.RUNNING])] == [0.0, 1.0]
    assert picked(during, protocol.required[Metric.KV_USAGE])[1].value > 0


@pytest.mark.parametrize("name", OTHER_PROFILES)
def test_stuck_running_fault_keeps_running_up_after_the_request_ends(engine_sim: StartEngine, name: str) -> None:
    sim = engine_sim(name, fault="stuck-running")
    during, after = sim.while_streaming()
    assert read(during, sim.profile, Metric.RUNNING) == read(after, sim.profile, Metric.RUNNING) == 1.0
    assert read(after, sim.profile, Metric.KV_USAGE) == 0.0  # only running is stuck


@pytest.mark.parametrize("name", OTHER_PROFILES)
def test_no_metrics_fault_answers_404_at_the_metrics_path_and_serves_the_api(engine_sim: StartEngine,
                                                                            name: str) -> None:
    sim = engine_sim(name, fault="no-metrics")
    answer = sim.client.get(sim.path)
    assert (answer.status_code, answer.json()) == (404, {"detail": "Not Found"})
    assert complete(sim.client, "a b", model=sim.model()).status_code == 200


@pytest.mark.parametrize(("name", "fault"), [("x86_64", "per-rank"), ("x86_64", "no-metrics"),
                                             ("sglang-0.5.16", "gauges-stuck"), ("trtllm-serve", "version-missing")])
def test_a_fault_of_another_engine_is_refused(name: str, fault: str) -> None:
    with pytest.raises(ValueError, match=f"fault '{fault}' is not one of a simulated"):
        build_app(get_profile(name).replace(fault=fault))


def test_the_bundled_suite_runs_on_a_simulated_sglang_and_skips_vllms_own_checks(
        pytester: pytest.Pytester) -> None:
    result = run_suite(pytester, "--vllm-sim=sglang-0.5.16", "-n", "0")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == outcomes.get("errors", 0) == 0 and result.ret == 0, result.stdout.str()
    skipped = [line for line in result.outlines if line.startswith("SKIPPED")]
    assert any("this server runs sglang, not vLLM" in line for line in skipped), skipped
    assert outcomes["passed"] >= 2  # the server answers, and serves the workload


@pytest.mark.parametrize("name", ["sglang-0.5.9", "sglang-0.5.16", "trtllm-serve"])
def test_an_idle_engine_page_is_its_capture_line_for_line(engine_sim: StartEngine, name: str) -> None:
    # these captures are of idle servers with the profile's model and KV cache: nothing differs, not even a number
    text = (Path(__file__).parent / "data" / "engines" / f"{CAPTURED[name]}.prom").read_text(encoding="utf-8")
    captured = [line for line in text.splitlines() if line.startswith(("# HELP", "# TYPE")) or
                not line.startswith("#")]
    sim = engine_sim(name)
    assert sim.client.get(sim.path).text.splitlines() == captured


def test_triton_writes_whole_numbers_as_prometheus_cpp_does(engine_sim: StartEngine) -> None:
    sim = engine_sim("triton-tensorrt-llm")
    lines = sim.client.get(sim.path).text.splitlines()
    assert 'nv_trt_llm_request_metrics{model="tensorrt_llm",request_type="waiting",version="1"} 0' in lines
    assert 'nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="max",model="tensorrt_llm",version="1"} 6239' in lines
