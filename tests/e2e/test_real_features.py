"""LoRA and speculative decoding on a real vLLM 0.32 (CPU build): detected, judged, and compared with the simulator."""

from __future__ import annotations

import json
import re
import threading
import time

import httpx
import pytest

from pytest_vllm_metrics.relations import newest
from pytest_vllm_metrics.sim import SimHost, get_profile
from pytest_vllm_metrics.snapshot import Snapshot

from .conftest import LORA_ADAPTER, RealServer
from .test_real_vllm import _exercise, _families, suite

pytestmark = pytest.mark.e2e
INFO = "vllm:lora_requests_info"
SPEC = "vllm:spec_decode_num_"
RELATIONS = ("spec_decode-accepted-at-most-drafted", "spec_decode-acceptance-per-position", "lora-info-refreshed")


def test_suite_detects_each_feature_and_judges_its_relations(
    pytester: pytest.Pytester, real_vllm: tuple[RealServer, RealServer], lora_vllm: RealServer,
    spec_vllm: RealServer
) -> None:
    on, _ = real_vllm
    result = suite(pytester, f"--vllm-url={on.url}", f"--vllm-url={lora_vllm.url}", f"--vllm-url={spec_vllm.url}",
                   "--vllm-report=report.json", "-k", "test_relation or spec_decode or lora")
    assert result.parseoutcomes().get("failed", 0) == 0, result.stdout.str()
    report = json.loads((pytester.path / "report.json").read_text())
    detected = {i["target"]: set(i["features"]) & {"lora", "spec_decode"} for i in report["implementations"]}
    name = {server.url.removeprefix("http://"): label for server, label in
            ((on, "plain"), (lora_vllm, "lora"), (spec_vllm, "spec_decode"))}
    assert {name[target]: found for target, found in detected.items()} == {
        "plain": set(), "lora": {"lora"}, "spec_decode": {"spec_decode"}}
    outcomes = {(row["id"].split("[")[-1].rstrip("]"), name[target]): t["outcome"]
                for row in report["tests"] if "test_relation[" in row["id"] for target, t in row["targets"].items()}
    # each relation passed where its feature is, and was skipped elsewhere; the suite's own greedy workload drafts
    for relation in RELATIONS:
        feature = relation.split("-")[0]
        for server in ("plain", "lora", "spec_decode"):
            assert outcomes[relation, server] == ("passed" if server == feature else "skipped"), (relation, server)
    assert any("test_present[vllm:spec_decode_num_accepted_tokens_per_pos_total]" in line
               for line in result.outlines if line.startswith("PASSED"))


def test_adapter_is_in_the_lora_info_series_while_its_request_runs(lora_vllm: RealServer) -> None:
    """While a request to the adapter runs, a lora_requests_info series lists it as running; once it finished, the
    newest series (the one readers take) lists none, and is newer than the adapter's. Which series is the newest
    *during* the request is vLLM's race: it sets each series at its own stats steps, and the empty set of the
    request before may be refreshed after the adapter's (measured: 5 ms after, in one run of three)."""
    with httpx.Client(base_url=lora_vllm.url, timeout=60) as client:
        assert LORA_ADAPTER in [m["id"] for m in client.get("/v1/models").json()["data"]]
        # a base-model request first, so the empty adapter set is a series of its own, first on the page
        client.post("/v1/completions", json={"model": "tiny", "prompt": "the metrics", "max_tokens": 4}
                    ).raise_for_status()
        body = {"model": LORA_ADAPTER, "prompt": "the metrics of every server", "max_tokens": 900,
                "temperature": 0, "ignore_eos": True, "stream": True}
        # the page is read from another thread all the while the request runs (its first read done before the
        # request is sent), until a read lists the adapter
        reading, done, shown, reads = threading.Event(), threading.Event(), [], [0]

        def watch() -> None:
            with httpx.Client(base_url=lora_vllm.url, timeout=60) as pages:
                while not done.is_set() and not shown:
                    page = Snapshot.parse(pages.get("/metrics").text)
                    reads[0] += 1
                    reading.set()
                    if any(dict(s.labels)["running_lora_adapters"] == LORA_ADAPTER for s in page.series(INFO)):
                        shown.append(page)

        watcher = threading.Thread(target=watch)
        watcher.start()
        lines, started = 0, time.monotonic()
        try:
            assert reading.wait(60), "the page could not be read"
            with client.stream("POST", "/v1/completions", json=body) as response:
                response.raise_for_status()
                for _ in response.iter_lines():  # bounded: 900 tokens, 60 s per read
                    lines += 1
        finally:
            done.set()
            watcher.join(60)
        took = time.monotonic() - started
        after = Snapshot.parse(client.get("/metrics").text)
    assert shown, (f"none of the {reads[0]} reads taken while the adapter's request ran ({lines} lines in "
                   f"{took:.2f} s) listed it")
    running = next(s for s in shown[0].series(INFO) if dict(s.labels)["running_lora_adapters"] == LORA_ADAPTER)
    assert dict(running.labels)["max_lora"] == "1"  # --max-loras' default
    assert dict(shown[0].series(INFO)[0].labels)["running_lora_adapters"] == ""  # the base model's, first
    finished = newest(after, INFO)
    assert finished is not None and dict(finished.labels)["running_lora_adapters"] == "", after.series(INFO)
    assert finished.value > running.value  # the value is the update time


def test_spec_decode_counters_on_a_greedy_repetitive_request(spec_vllm: RealServer) -> None:
    """The ngram proposer drafts when the last 1-3 tokens recur earlier in the context; greedy output of the tiny
    random model repeats itself, so it drafts and accepts."""
    with httpx.Client(base_url=spec_vllm.url, timeout=60) as client:
        before = Snapshot.parse(client.get("/metrics").text)
        client.post("/v1/completions", json={"model": "tiny", "prompt": "the metrics of every server the metrics",
                                             "max_tokens": 32, "temperature": 0}).raise_for_status()
        after = Snapshot.parse(client.get("/metrics").text)

    def grew(name: str, position: str | None = None) -> float:
        labels = {"position": position} if position else None
        return (after.value(SPEC + name, labels) or 0.0) - (before.value(SPEC + name, labels) or 0.0)

    drafts, drafted, accepted = grew("drafts_total"), grew("draft_tokens_total"), grew("accepted_tokens_total")
    per_position = [grew("accepted_tokens_per_pos_total", p) for p in ("0", "1")]
    assert drafts > 0 and 0 < accepted <= drafted <= 2 * drafts, (drafts, drafted, accepted)
    assert per_position[0] >= per_position[1] and sum(per_position) == accepted, per_position


@pytest.mark.parametrize("feature", ["lora", "spec_decode"])
def test_simulator_feature_profile_matches_a_fresh_feature_server_family_by_family(
    feature: str, request: pytest.FixtureRequest
) -> None:
    server: RealServer = request.getfixturevalue({"lora": "lora_vllm", "spec_decode": "spec_vllm"}[feature])
    profile = get_profile({"lora": "x86_64-lora", "spec_decode": "x86_64-spec-decode"}[feature])
    real = {k: v for k, v in _families(_exercise(server.url)).items() if re.match(r"^(vllm:|http_)", k)}
    with SimHost() as host:
        sim_url = host.start(profile).url
        sim = {k: v for k, v in _families(_exercise(sim_url)).items() if re.match(r"^(vllm:|http_)", k)}
        sim_models = httpx.get(sim_url + "/v1/models", timeout=30).json()["data"]
    # the profile serves this server's families: names, types, label names and buckets, the feature's included
    assert sorted(sim) == sorted(real)
    for name, shape in real.items():
        assert sim[name] == shape, name
    if feature == "lora":  # the adapter's /v1/models card, as vLLM lists it (its own id, root and created)
        real_models = httpx.get(server.url + "/v1/models", timeout=60).json()["data"]

        def card(models: list[dict[str, object]], name: str) -> dict[str, object]:
            found = next(m for m in models if m["id"] == name)
            return {k: v for k, v in found.items() if k not in ("id", "root", "created", "permission")}

        assert [m["parent"] for m in sim_models] == [m["parent"] for m in real_models]
        assert card(sim_models, profile.lora_modules[0]) == card(real_models, LORA_ADAPTER)
