"""The relations of optional features' counters (relations.py, conformance/relations.toml), through pytester.

The simulator's x86_64-lora and x86_64-spec-decode profiles keep the relations as vLLM does, and the suite run on
them detects the feature and passes. To break a relation, the other servers are the plain simulator with the
families of a real vLLM 0.32 appended to its /metrics: the lines of tests/data/captures/spec-decode.after.prom
and lora.after.prom (see its README), their values scaled by the completions served so far, and changed only
where a case breaks a relation.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web

from conftest import said, verdicts
from pytest_vllm_metrics.sim import SimHost, build_app, get_profile

CAPTURES = Path(__file__).parent / "data" / "captures"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SAMPLE = re.compile(r'^(?P<name>[^{ ]+)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$')
ACCEPTED = "test_relation[spec_decode-accepted-at-most-drafted]"
PER_POSITION = "test_relation[spec_decode-acceptance-per-position]"
REFRESHED = "test_relation[lora-info-refreshed]"


def _lines(capture: str, prefix: str) -> list[str]:
    """The lines of one capture (HELP, TYPE, samples) of the families whose names start with `prefix`."""
    text = (CAPTURES / capture).read_text(encoding="utf-8")
    return [line for line in text.splitlines()
            if (line.split(" ")[2] if line.startswith("# ") else line).startswith(prefix)]


SPEC = _lines("spec-decode.after.prom", "vllm:spec_decode_")
LORA = _lines("lora.after.prom", "vllm:lora_requests_info")


def _rewrite(lines: list[str], value: Callable[[str, str, float], float]) -> str:
    out = []
    for line in lines:
        match = SAMPLE.match(line)
        if line.startswith("#") or not match or match["name"].endswith("_created"):
            out.append(line)
        else:
            new = value(match["name"], match["labels"], float(match["value"]))
            out.append(f"{match['name']}{{{match['labels']}}} {new}")
    return "\n".join(out) + "\n"


def _serve(host: SimHost, extra: Callable[[int], str]) -> str:
    """The x86_64 simulator with `extra(completions served)` appended to every /metrics answer."""
    app = build_app(get_profile("x86_64"))
    served = 0

    @web.middleware
    async def append(request: web.Request, handler: Handler) -> web.StreamResponse:
        nonlocal served
        response = await handler(request)
        if request.method == "POST" and response.status == 200:
            served += 1
        if request.path == "/metrics" and isinstance(response, web.Response) and response.body is not None:
            assert isinstance(response.body, bytes)
            response.body = response.body + extra(served).encode()
        return response

    app.middlewares.append(append)
    return host.start_app(app)


# per served request: what the real request of the capture drafted and accepted, or a broken variant
REAL = {"num_drafts_total": 6, "num_draft_tokens_total": 11, "num_accepted_tokens_total": 9, "pos0": 5, "pos1": 4}


def _spec(counts: dict[str, float]) -> Callable[[int], str]:
    def value(name: str, labels: str, _: float) -> float:
        key = name.removeprefix("vllm:spec_decode_")
        position = re.search(r'position="(\d+)"', labels)
        return counts[f"pos{position[1]}" if position else key]

    return lambda served: _rewrite(SPEC, lambda n, labels, v: value(n, labels, v) * served)


def run(pytester: pytest.Pytester, url: str, *args: str) -> tuple[pytest.RunResult, dict[str, str]]:
    result = pytester.runpytest("-rA", "-p", "no:cacheprovider", f"--vllm-url={url}", "--vllm-report=report.json",
                                "-k", "test_relation", *args)
    target = url.removeprefix("http://")
    return result, {test: outcome for (test, name), outcome in verdicts(pytester).items() if name == target}


@pytest.mark.parametrize(
    ("counts", "accepted", "per_position", "message"),
    [
        (REAL, "passed", "passed", None),
        # one more accepted than drafted; per position still falling and summing up
        ({**REAL, "num_accepted_tokens_total": 12, "pos0": 6, "pos1": 6}, "failed", "passed",
         "*vllm:spec_decode_num_accepted_tokens_total grew by 96 during the workload, more than "
         "vllm:spec_decode_num_draft_tokens_total (+88)*can never exceed 100%*"),
        # position 1 accepts one more than position 0 (the sum still equal to the accepted tokens)
        ({**REAL, "pos0": 4, "pos1": 5}, "passed", "failed",
         "*vllm:spec_decode_num_accepted_tokens_per_pos_total grew more at position 1 (+40) than at position 0 "
         "(+32) during the workload; a draft token is accepted only if every token before it was*"),
        # per position one short of the accepted tokens, still falling
        ({**REAL, "pos1": 3}, "passed", "failed",
         "*vllm:spec_decode_num_accepted_tokens_per_pos_total grew by 64 over all positions while "
         "vllm:spec_decode_num_accepted_tokens_total grew by 72*"),
        # equal at both positions: not growing, a pass (the boundary)
        ({**REAL, "num_accepted_tokens_total": 10, "pos0": 5, "pos1": 5}, "passed", "passed", None),
        # accepted exactly the drafted tokens: the boundary of at_most
        ({**REAL, "num_accepted_tokens_total": 11, "pos0": 6, "pos1": 5}, "passed", "passed", None),
        # nothing drafted: neither relation can be judged
        (dict.fromkeys(REAL, 0), "inconclusive", "inconclusive",
         "*could not judge spec_decode-accepted-at-most-drafted: vllm:spec_decode_num_drafts_total did not move "
         "during the workload, so nothing was drafted*--vllm-max-tokens*"),
    ],
    ids=["real", "accepts-more-than-drafted", "later-position-accepts-more", "positions-miss-accepted",
         "equal-positions", "accepts-all-drafted", "no-drafts"],
)
def test_spec_decode_relations(pytester: pytest.Pytester, sim_host: SimHost, counts: dict[str, float],
                               accepted: str, per_position: str, message: str | None) -> None:
    url = _serve(sim_host, _spec(counts))
    result, outcomes = run(pytester, url)
    assert outcomes[ACCEPTED] == accepted, result.stdout.str()
    assert outcomes[PER_POSITION] == per_position, result.stdout.str()
    assert outcomes[REFRESHED] == "skipped"  # no LoRA on this server
    if message:
        assert said(result, message), result.stdout.str()


def test_spec_decode_relations_skip_without_the_feature(pytester: pytest.Pytester, sim_host: SimHost) -> None:
    result, outcomes = run(pytester, sim_host.start(get_profile("x86_64")).url)
    assert set(outcomes.values()) == {"skipped"}, result.stdout.str()
    assert said(result, "feature spec_decode is not enabled on this server")


def _lora(refreshed: bool) -> Callable[[int], str]:
    """The two series of the capture: the adapter's first in page order and older, the empty set newest."""
    started = time.time()

    def value(_: str, labels: str, __: float) -> float:
        if 'running_lora_adapters="e2e-adapter"' in labels:
            return started - 60
        return started + (served_now if refreshed else 0)

    served_now = 0

    def page(served: int) -> str:
        nonlocal served_now
        served_now = served
        # the adapter's series first, as when an adapter request preceded the base model's
        comments = [line for line in LORA if line.startswith("#")]
        samples = sorted((line for line in LORA if not line.startswith("#")), key=lambda s: "e2e-adapter" not in s)
        return _rewrite(comments + samples, value)

    return page


@pytest.mark.parametrize(("refreshed", "outcome"), [(True, "passed"), (False, "failed")])
def test_lora_info_refreshed_reads_the_newest_series(pytester: pytest.Pytester, sim_host: SimHost,
                                                     refreshed: bool, outcome: str) -> None:
    result, outcomes = run(pytester, _serve(sim_host, _lora(refreshed)))
    assert outcomes[REFRESHED] == outcome, result.stdout.str()
    assert outcomes[ACCEPTED] == "skipped"
    if not refreshed:
        assert said(result, "the newest series of vllm:lora_requests_info kept the value *through the workload "
                            "(an update time, the highest read as current)*endpoint picker*"), result.stdout.str()


def test_required_spec_decode_without_its_counters_fails_not_inconclusive(pytester: pytest.Pytester,
                                                                         sim_host: SimHost) -> None:
    url = sim_host.start(get_profile("x86_64")).url
    result, outcomes = run(pytester, url, "--vllm-require-feature=spec_decode")
    assert (outcomes[ACCEPTED], outcomes[PER_POSITION]) == ("failed", "failed"), result.stdout.str()
    assert said(result, "vllm:spec_decode_num_accepted_tokens_total, vllm:spec_decode_num_draft_tokens_total, "
                        "vllm:spec_decode_num_drafts_total missing from /metrics after the workload, so "
                        "spec_decode-accepted-at-most-drafted does not hold"), result.stdout.str()


@pytest.mark.parametrize(("profile", "feature", "judged"), [
    ("x86_64-lora", "lora", {REFRESHED}),
    ("x86_64-spec-decode", "spec_decode", {ACCEPTED, PER_POSITION}),
])
def test_feature_profile_is_detected_and_keeps_its_relations(pytester: pytest.Pytester, profile: str,
                                                             feature: str, judged: set[str]) -> None:
    # the suite's default workload (8 tokens a request, greedy): the simulated model repeats itself within it,
    # so the ngram method drafts, as a real tiny model's does (tests/e2e/test_real_features.py)
    result = pytester.runpytest("-rA", "-p", "no:cacheprovider", f"--vllm-sim={profile}", "--vllm-report=report.json",
                                "-k", "test_relation or lora or spec_decode")
    assert result.parseoutcomes().get("failed", 0) == 0, result.stdout.str()
    report = json.loads((pytester.path / "report.json").read_text())
    assert [set(i["features"]) & {"lora", "spec_decode"} for i in report["implementations"]] == [{feature}]
    outcomes = {test: outcome for (test, _), outcome in verdicts(pytester).items() if test.startswith("test_relation[")}
    assert outcomes == {relation: "passed" if relation in judged else "skipped"
                        for relation in (ACCEPTED, PER_POSITION, REFRESHED)}, result.stdout.str()
    own = {"lora": ["vllm:lora_requests_info"],
           "spec_decode": [f"vllm:spec_decode_num_{n}_total" for n in ("drafts", "draft_tokens", "accepted_tokens",
                                                                        "accepted_tokens_per_pos")]}[feature]
    for name in own:  # the feature's families are checked, not skipped as absent
        assert verdicts(pytester)[f"test_present[{name}]", f"sim-{profile}"] == "passed", result.stdout.str()


def test_required_lora_passes_on_the_lora_profile(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("-rA", "-p", "no:cacheprovider", "--vllm-sim=x86_64-lora",
                                "--vllm-require-feature=lora", "--vllm-report=report.json",
                                "-k", "test_relation or lora")
    assert result.parseoutcomes().get("failed", 0) == 0, result.stdout.str()
    outcomes = {test: outcome for (test, _), outcome in verdicts(pytester).items()
                if test in (REFRESHED, "test_present[vllm:lora_requests_info]")}
    assert outcomes == {REFRESHED: "passed", "test_present[vllm:lora_requests_info]": "passed"}, result.stdout.str()
