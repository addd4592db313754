"""The relations of optional features' counters (relations.py, conformance/relations.toml).

In-process, observations are built from the real vLLM 0.32 captures (tests/data/captures/spec-decode.*.prom,
lora.*.prom): the values a real server counted, changed only where a case breaks a relation or sits at its
boundary. Each verdict is asserted whole (outcome, level, message): the messages are what users read.

Through pytester, the simulator's x86_64-lora and x86_64-spec-decode profiles keep the relations as vLLM does, and
the suite run on them detects the feature and passes. To break a relation, the other servers are the plain
simulator with the families of a real vLLM 0.32 appended to its /metrics: the lines of
tests/data/captures/spec-decode.after.prom and lora.after.prom (see its README), their values scaled by the
completions served so far, and changed only where a case breaks a relation."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace

import pytest
from aiohttp import web

from conftest import CAPTURE_DIR, said, verdicts
from pytest_vllm_metrics import relations
from pytest_vllm_metrics.catalog import Catalog, load_catalog
from pytest_vllm_metrics.observe import Check, Observation
from pytest_vllm_metrics.outcome import Outcome, Problem, Verdict
from pytest_vllm_metrics.settings import Policy
from pytest_vllm_metrics.sim import SimHost, build_app, get_profile
from pytest_vllm_metrics.snapshot import Snapshot
from pytest_vllm_metrics.targets import Target
from pytest_vllm_metrics.traffic import RequestRecord, TrafficResult

WHERE = "decode-0 (vLLM 0.32.0, x86_64)"
DRAFTS, DRAFT_TOKENS = "vllm:spec_decode_num_drafts_total", "vllm:spec_decode_num_draft_tokens_total"
ACCEPTED, PER_POS = "vllm:spec_decode_num_accepted_tokens_total", "vllm:spec_decode_num_accepted_tokens_per_pos_total"
LORA_INFO = "vllm:lora_requests_info"
SERIES = '{engine="0",model_name="tiny"}'


def relation(rid: str) -> relations.Relation:
    return next(r for r in relations.relations() if r.id == rid)


AT_MOST = relation("spec_decode-accepted-at-most-drafted")
PER_POSITION = relation("spec_decode-acceptance-per-position")
REFRESHED = relation("lora-info-refreshed")


# The relations' entries at SHOULD, not the catalog's MUST: a verdict that fell back to Verdict's default level
# (MUST) instead of its entry's would pass unnoticed otherwise.
CATALOG = Catalog(tuple(replace(e, level="SHOULD") if e.name in {r.entry for r in relations.relations()} else e
                        for e in load_catalog().entries))


def capture(name: str, values: dict[str, float | None] | None = None, extra: str = "") -> str:
    """A real capture, each sample named in `values` (`name{labels}` as written) set to its value, or dropped
    when None; `extra` lines appended."""
    text = (CAPTURE_DIR / name).read_text(encoding="utf-8")
    for sample, value in (values or {}).items():
        line = re.compile("^" + re.escape(sample) + r" \S+\n", re.MULTILINE)
        assert line.search(text), f"{sample} is not in {name}"
        text = line.sub("" if value is None else f"{sample} {value}\n", text)
    return text + extra


def observe(before: str, after: str | None, errors: dict[str, Problem] | None = None) -> Observation:
    served = TrafficResult(model="tiny", block_size=16, records=[
        RequestRecord("completion", 200, 0.1, prompt_tokens=10, completion_tokens=8, n=1, max_tokens=8,
                      finish_reasons={0: "length"})])
    return Observation(Target("decode-0", "http://10.0.0.1:8200", arch="x86_64"), version="0.32.0",
                       before=Snapshot.parse(before), traffic=served,
                       after=Snapshot.parse(after) if after is not None else None, errors=errors or {})


def judge(rel: relations.Relation, obs: Observation) -> Verdict:
    return relations.judge(rel, CATALOG, obs, Policy())


def spec(after: dict[str, float | None] | None = None, extra: str = "", before: dict[str, float | None] | None = None
         ) -> Observation:
    return observe(capture("spec-decode.before.prom", before), capture("spec-decode.after.prom", after, extra))


def level(rel: relations.Relation) -> str:
    entry = CATALOG.get(rel.entry)
    assert entry is not None and entry.level == "SHOULD"
    return entry.level


def assert_verdict(verdict: Verdict, outcome: Outcome, message: str, rel: relations.Relation) -> None:
    assert (verdict.outcome, verdict.message, verdict.level) == (outcome, message, level(rel))


# -- accepted tokens never exceed drafted ones ------------------------------------------------------------------


def test_the_real_servers_spec_decode_counters_keep_accepted_at_most_drafted() -> None:
    verdict = judge(AT_MOST, spec())  # the capture: 6 drafts, 11 draft tokens, 9 accepted
    assert_verdict(verdict, Outcome.PASSED, "", AT_MOST)
    assert verdict.evidence == {ACCEPTED: 9.0, DRAFT_TOKENS: 11.0, DRAFTS: 6.0}


def test_every_drafted_token_accepted_is_the_boundary_and_passes() -> None:
    verdict = judge(AT_MOST, spec({ACCEPTED + SERIES: 11.0}))
    assert_verdict(verdict, Outcome.PASSED, "", AT_MOST)


def test_one_accepted_token_more_than_drafted_fails_with_both_increases() -> None:
    verdict = judge(AT_MOST, spec({ACCEPTED + SERIES: 12.0}))
    assert_verdict(verdict, Outcome.FAILED, f"{WHERE}: {ACCEPTED} grew by 12 during the workload, more than "
                                            f"{DRAFT_TOKENS} (+11); {AT_MOST.why}.", AT_MOST)
    assert verdict.evidence == {ACCEPTED: 12.0, DRAFT_TOKENS: 11.0, DRAFTS: 6.0}


def test_no_draft_during_the_workload_is_inconclusive_and_says_how_to_get_drafts() -> None:
    verdict = judge(AT_MOST, spec({DRAFTS + SERIES: 0.0}))
    assert_verdict(verdict, Outcome.INCONCLUSIVE,
                   f"decode-0: could not judge {AT_MOST.id}: {DRAFTS} did not move during the workload, so nothing "
                   f"was drafted. The ngram method drafts only when the last tokens recur earlier in the prompt or "
                   f"output; a longer output (--vllm-max-tokens) gives it more chances.", AT_MOST)
    assert verdict.evidence == {DRAFTS: 0.0}


def test_one_draft_is_enough_to_judge() -> None:
    verdict = judge(AT_MOST, spec({DRAFTS + SERIES: 1.0}))
    assert_verdict(verdict, Outcome.PASSED, "", AT_MOST)


def test_a_restart_that_zeroed_the_drafts_is_a_restart_not_an_idle_drafter() -> None:
    restarted = capture("spec-decode.after.prom", {"process_start_time_seconds": 1.8e9, DRAFTS + SERIES: 0.0})
    verdict = judge(AT_MOST, observe(capture("spec-decode.before.prom"), restarted))
    assert (verdict.outcome, verdict.level) == (Outcome.INCONCLUSIVE, "SHOULD")
    assert "restarted" in verdict.message and "did not move during the workload" not in verdict.message
    assert verdict.evidence == {DRAFTS: 0.0}


def test_two_scrapes_of_two_processes_cannot_judge_the_relation() -> None:
    # the second scrape reached a process that started before the first one's: a load-balanced URL
    older = capture("spec-decode.after.prom", {"process_start_time_seconds": 1.7e9})
    verdict = judge(AT_MOST, observe(capture("spec-decode.before.prom"), older))
    assert (verdict.outcome, verdict.level) == (Outcome.INCONCLUSIVE, "SHOULD")
    assert "the two scrapes reached two different server processes" in verdict.message


def test_a_workload_the_server_failed_leaves_the_relation_undecided() -> None:
    failed = {"traffic": Problem("decode-0: every workload request failed: 8 requests, 8 answered HTTP 500",
                                 inconclusive=False, check=Check.WORKLOAD_SERVED,
                                 cause="every workload request failed")}
    verdict = judge(AT_MOST, observe(capture("spec-decode.before.prom"), capture("spec-decode.after.prom"), failed))
    assert_verdict(verdict, Outcome.INCONCLUSIVE, "decode-0: see test_workload_served: every workload request "
                                                  "failed", AT_MOST)


def test_no_second_scrape_is_the_scrapes_own_verdict() -> None:
    lost = {"after": Problem("decode-0: /metrics timed out after 10 s", inconclusive=True)}
    verdict = judge(AT_MOST, observe(capture("spec-decode.before.prom"), None, lost))
    assert_verdict(verdict, Outcome.INCONCLUSIVE, "decode-0: /metrics timed out after 10 s", AT_MOST)


def test_two_families_gone_after_the_workload_are_both_named() -> None:
    after = "".join(line for line in capture("spec-decode.after.prom").splitlines(keepends=True)
                    if DRAFT_TOKENS not in line and DRAFTS not in line)
    verdict = judge(AT_MOST, observe(capture("spec-decode.before.prom"), after))
    assert verdict.message.startswith(f"{WHERE}: {DRAFT_TOKENS}, {DRAFTS} missing from /metrics after the workload")


def test_a_family_gone_after_the_workload_fails_the_relation_naming_it() -> None:
    after = "".join(line for line in capture("spec-decode.after.prom").splitlines(keepends=True)
                    if DRAFT_TOKENS not in line)  # its HELP, TYPE and sample lines
    verdict = judge(AT_MOST, observe(capture("spec-decode.before.prom"), after))
    assert_verdict(verdict, Outcome.FAILED, f"{WHERE}: {DRAFT_TOKENS} missing from /metrics after the workload, so "
                                            f"{AT_MOST.id} does not hold; {AT_MOST.why}.", AT_MOST)


def test_a_server_without_speculative_decoding_is_skipped() -> None:
    plain = capture("prefix-caching-on.before.prom")
    verdict = judge(AT_MOST, observe(plain, capture("prefix-caching-on.after.prom")))
    assert verdict.outcome == Outcome.SKIPPED
    assert "spec_decode" in verdict.message


# -- acceptance never grows with the draft position, and sums to the accepted tokens ----------------------------


def positions(*values: float) -> dict[str, float | None]:
    return {f'{PER_POS}{{engine="0",model_name="tiny",position="{p}"}}': v for p, v in enumerate(values)}


def test_the_real_servers_acceptance_per_position_never_grows_and_sums_to_the_accepted() -> None:
    verdict = judge(PER_POSITION, spec())  # the capture: 5 at position 0, 4 at position 1, 9 accepted
    assert_verdict(verdict, Outcome.PASSED, "", PER_POSITION)
    assert verdict.evidence == {"position=0": 5.0, "position=1": 4.0, ACCEPTED: 9.0}


def test_equal_acceptance_at_two_positions_is_the_boundary_and_passes() -> None:
    verdict = judge(PER_POSITION, spec({**positions(5.0, 5.0), ACCEPTED + SERIES: 10.0}))
    assert_verdict(verdict, Outcome.PASSED, "", PER_POSITION)


def test_more_acceptance_at_a_later_position_fails_naming_both() -> None:
    verdict = judge(PER_POSITION, spec({**positions(5.0, 6.0), ACCEPTED + SERIES: 11.0}))
    assert_verdict(verdict, Outcome.FAILED, f"{WHERE}: {PER_POS} grew more at position 1 (+6) than at position 0 "
                                            f"(+5) during the workload; {PER_POSITION.why}.", PER_POSITION)


def test_the_third_position_is_compared_with_the_second_not_only_the_first() -> None:
    third = f'{PER_POS}{{engine="0",model_name="tiny",position="2"}} 5.0\n'
    before = f'{PER_POS}{{engine="0",model_name="tiny",position="2"}} 0.0\n'
    obs = observe(capture("spec-decode.before.prom", extra=before),
                  capture("spec-decode.after.prom", {ACCEPTED + SERIES: 14.0}, third))
    verdict = judge(PER_POSITION, obs)
    assert_verdict(verdict, Outcome.FAILED, f"{WHERE}: {PER_POS} grew more at position 2 (+5) than at position 1 "
                                            f"(+4) during the workload; {PER_POSITION.why}.", PER_POSITION)
    assert verdict.evidence == {"position=0": 5.0, "position=1": 4.0, "position=2": 5.0}


def test_positions_that_do_not_add_up_to_the_accepted_tokens_fail_with_both_sums() -> None:
    verdict = judge(PER_POSITION, spec({ACCEPTED + SERIES: 10.0}))
    assert_verdict(verdict, Outcome.FAILED, f"{WHERE}: {PER_POS} grew by 9 over all positions while {ACCEPTED} grew "
                                            f"by 10; {PER_POSITION.why}.", PER_POSITION)
    assert verdict.evidence == {"position=0": 5.0, "position=1": 4.0, ACCEPTED: 10.0}


def test_no_position_series_fails_saying_the_per_position_panels_show_nothing() -> None:
    verdict = judge(PER_POSITION, spec(positions(None, None)))
    assert_verdict(verdict, Outcome.FAILED, f"{WHERE}: {PER_POS} has no series with a position label after the "
                                            f"workload; per-position panels show nothing.", PER_POSITION)
    assert verdict.evidence == {}


def test_a_series_whose_position_is_not_a_number_is_not_a_position() -> None:
    odd = (f'{PER_POS}{{engine="0",model_name="tiny",position="all"}} 100.0\n'
           f'{PER_POS}{{engine="0",model_name="tiny"}} 100.0\n')  # and one without the label
    verdict = judge(PER_POSITION, spec(extra=odd))
    assert_verdict(verdict, Outcome.PASSED, "", PER_POSITION)
    assert "position=all" not in verdict.evidence


# -- the newest LoRA info series is refreshed during the workload -------------------------------------------------


def lora_series(value: float, running: str = "") -> str:
    return (f'{LORA_INFO}{{max_lora="1",running_lora_adapters="{running}",waiting_lora_adapters=""}} '
            f"{value}\n")


def lora(before: str, after: str) -> Observation:
    """The real LoRA captures with the info series replaced by the given lines."""
    def only(name: str, lines: str) -> str:
        text = (CAPTURE_DIR / name).read_text(encoding="utf-8")
        kept = [line for line in text.splitlines(keepends=True) if not line.startswith(LORA_INFO)]
        return "".join(kept) + lines
    return observe(only("lora.before.prom", before), only("lora.after.prom", after))


def test_the_real_servers_info_series_appears_during_the_workload() -> None:
    # the capture: no series before the first request, two after (the newest lists the adapter)
    verdict = judge(REFRESHED, observe(capture("lora.before.prom"), capture("lora.after.prom")))
    assert_verdict(verdict, Outcome.PASSED, "", REFRESHED)
    assert verdict.evidence["before"] is None
    assert verdict.evidence["after"]["value"] == 1.79616837854057e9


def test_a_newer_update_time_passes() -> None:
    verdict = judge(REFRESHED, lora(lora_series(100.0), lora_series(100.5)))
    assert_verdict(verdict, Outcome.PASSED, "", REFRESHED)
    assert verdict.evidence["before"] == {"max_lora": "1", "running_lora_adapters": "", "waiting_lora_adapters": "",
                                          "value": 100.0}


def test_the_same_update_time_through_the_workload_fails_naming_it() -> None:
    verdict = judge(REFRESHED, lora(lora_series(100.0), lora_series(100.0)))
    assert_verdict(verdict, Outcome.FAILED, f"{WHERE}: the newest series of {LORA_INFO} kept the value 100 through "
                                            f"the workload (an update time, the highest read as current); "
                                            f"{REFRESHED.why}.", REFRESHED)


def test_the_newest_series_is_the_one_with_the_highest_value() -> None:
    # before: 100 is the newest; after: still 100 (the adapter's series moved from 10 to 50, an older update)
    before = lora_series(100.0) + lora_series(10.0, running="a")
    after = lora_series(100.0) + lora_series(50.0, running="a")
    verdict = judge(REFRESHED, lora(before, after))
    assert verdict.outcome == Outcome.FAILED
    assert verdict.evidence["after"] == {"max_lora": "1", "running_lora_adapters": "", "waiting_lora_adapters": "",
                                         "value": 100.0}


def test_no_info_series_after_the_workload_fails() -> None:
    verdict = judge(REFRESHED, lora(lora_series(100.0), ""))
    assert_verdict(verdict, Outcome.FAILED, f"{WHERE}: {LORA_INFO} has no series after the workload; "
                                            f"{REFRESHED.why}.", REFRESHED)
    assert verdict.evidence["after"] is None


@pytest.mark.parametrize("rel", [AT_MOST, PER_POSITION, REFRESHED], ids=lambda r: r.id)
def test_every_relation_names_an_entry_of_the_catalog(rel: relations.Relation) -> None:
    assert load_catalog().get(rel.entry) is not None


# -- through pytester: the simulator's feature profiles, and real vLLM 0.32 families appended to its page -------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SAMPLE = re.compile(r'^(?P<name>[^{ ]+)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$')
ACCEPTED_TEST = "test_relation[spec_decode-accepted-at-most-drafted]"
PER_POSITION_TEST = "test_relation[spec_decode-acceptance-per-position]"
REFRESHED_TEST = "test_relation[lora-info-refreshed]"


def _lines(capture: str, prefix: str) -> list[str]:
    """The lines of one capture (HELP, TYPE, samples) of the families whose names start with `prefix`."""
    text = (CAPTURE_DIR / capture).read_text(encoding="utf-8")
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
    assert outcomes[ACCEPTED_TEST] == accepted, result.stdout.str()
    assert outcomes[PER_POSITION_TEST] == per_position, result.stdout.str()
    assert outcomes[REFRESHED_TEST] == "skipped"  # no LoRA on this server
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
    assert outcomes[REFRESHED_TEST] == outcome, result.stdout.str()
    assert outcomes[ACCEPTED_TEST] == "skipped"
    if not refreshed:
        assert said(result, "the newest series of vllm:lora_requests_info kept the value *through the workload "
                            "(an update time, the highest read as current)*endpoint picker*"), result.stdout.str()


def test_required_spec_decode_without_its_counters_fails_not_inconclusive(pytester: pytest.Pytester,
                                                                         sim_host: SimHost) -> None:
    url = sim_host.start(get_profile("x86_64")).url
    result, outcomes = run(pytester, url, "--vllm-require-feature=spec_decode")
    assert (outcomes[ACCEPTED_TEST], outcomes[PER_POSITION_TEST]) == ("failed", "failed"), result.stdout.str()
    assert said(result, "vllm:spec_decode_num_accepted_tokens_total, vllm:spec_decode_num_draft_tokens_total, "
                        "vllm:spec_decode_num_drafts_total missing from /metrics after the workload, so "
                        "spec_decode-accepted-at-most-drafted does not hold"), result.stdout.str()


@pytest.mark.parametrize(("profile", "feature", "judged"), [
    ("x86_64-lora", "lora", {REFRESHED_TEST}),
    ("x86_64-spec-decode", "spec_decode", {ACCEPTED_TEST, PER_POSITION_TEST}),
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
                        for relation in (ACCEPTED_TEST, PER_POSITION_TEST, REFRESHED_TEST)}, result.stdout.str()
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
                if test in (REFRESHED_TEST, "test_present[vllm:lora_requests_info]")}
    assert outcomes == {REFRESHED_TEST: "passed", "test_present[vllm:lora_requests_info]": "passed"}, \
        result.stdout.str()
