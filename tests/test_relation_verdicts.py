"""The relations of optional features' counters (relations.py, conformance/relations.toml), judged in-process.

Observations are built from the real vLLM 0.32 captures (tests/data/captures/spec-decode.*.prom, lora.*.prom):
the values a real server counted, changed only where a case breaks a relation or sits at its boundary. Each
verdict is asserted whole (outcome, level, message): the messages are what users read. The pytester runs of
the same relations are in tests/test_relations.py."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from pytest_vllm_metrics import relations
from pytest_vllm_metrics.catalog import Catalog, load_catalog
from pytest_vllm_metrics.observe import Check, Observation
from pytest_vllm_metrics.outcome import Outcome, Problem, Verdict
from pytest_vllm_metrics.settings import Policy
from pytest_vllm_metrics.snapshot import Snapshot
from pytest_vllm_metrics.targets import Target
from pytest_vllm_metrics.traffic import RequestRecord, TrafficResult

CAPTURES = Path(__file__).parent / "data" / "captures"
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
    text = (CAPTURES / name).read_text(encoding="utf-8")
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
        text = (CAPTURES / name).read_text(encoding="utf-8")
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
