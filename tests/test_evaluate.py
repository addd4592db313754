"""The per-target and per-check verdicts of evaluate.py: the "must move" comparison and its amounts, the prefix-cache
arithmetic, cache_config, presence of a family, the per-target checks, and one check folded over many targets
(evaluate.across). Many tests pin a threshold or a branch that a mutation run showed unguarded; their docstrings
name the mutant they kill (mutmut 3, `tox -e mutants`).

Observations are built from small text pages and workload records, as `observe` builds them (the builders of
tests/conftest.py), and judged by the functions the bundled suite calls; the assertions are on what a user reads:
outcome and message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pytest

from conftest import (
    HITS,
    LABELS,
    QUERIES,
    SUCCESS,
    SUMMARY,
    WHERE,
    counter,
    moved,
    observation,
    page,
    record,
    workload,
)
from pytest_vllm_metrics import evaluate
from pytest_vllm_metrics.catalog import Entry
from pytest_vllm_metrics.engines import Engine
from pytest_vllm_metrics.observe import Check, Observation
from pytest_vllm_metrics.outcome import Level, Outcome, Problem, Verdict
from pytest_vllm_metrics.settings import Policy
from pytest_vllm_metrics.snapshot import Snapshot
from pytest_vllm_metrics.targets import Target
from pytest_vllm_metrics.traffic import TrafficResult
from pytest_vllm_metrics.versions import VersionRange

# -- the "must move" comparison and its at_least amounts (evaluate.movement) ------------------------------------


def test_counter_that_moved_one_less_than_requests_fails() -> None:
    """kills `and` -> `or` and `need` -> `need - 1` in evaluate.movement: 3 of 4 requests is a failure."""
    verdict = moved(10, 13)
    assert verdict.outcome == Outcome.FAILED
    assert verdict.message == (f"{WHERE}: {SUCCESS} went from 10 to 13 (+3) during a workload of {SUMMARY}; "
                               f"expected at least 4 (requests).")


def test_counter_that_moved_exactly_requests_passes() -> None:
    """kills `>=` -> `>` in evaluate.movement (`increase >= need`), and the evidence keys of the JSON report."""
    verdict = moved(10, 14)
    assert verdict.outcome == Outcome.PASSED
    assert verdict.level == "SHOULD"
    assert verdict.evidence == {"before": 10.0, "after": 14.0, "increase": 4.0, "needed": 4, "workload": SUMMARY}


def test_counter_that_moved_more_than_requests_passes() -> None:
    """kills `increase >= need` -> `increase == need` in evaluate.movement."""
    assert moved(10, 25).outcome == Outcome.PASSED


def test_counter_without_an_amount_that_moved_by_one_passes() -> None:
    """kills `else 1` -> `else 2` and `increase > 0` -> `increase > 1` in evaluate.movement."""
    verdict = moved(10, 11, counter())
    assert verdict.outcome == Outcome.PASSED
    assert verdict.evidence["needed"] == 1


def test_counter_without_an_amount_that_stayed_fails_asking_for_an_increase() -> None:
    """kills the `wanted` text ("an increase") and the meaning appended for a core counter."""
    verdict = moved(10, 10, counter(meaning="requests that finished"))
    assert verdict.outcome == Outcome.FAILED
    assert verdict.message == (f"{WHERE}: {SUCCESS} went from 10 to 10 (+0) during a workload of {SUMMARY}; "
                               f"expected an increase. What it means: requests that finished.")


def test_amount_the_workload_did_not_produce_still_needs_one_count() -> None:
    """kills `max(quantity, 1)` -> `max(quantity, 0)` / `max(quantity, 2)` in evaluate.movement: a workload
    that repeated no prefix asks for block_size = 0, and the counter must still move by one."""
    entry = counter(at_least="block_size")
    still = moved(10, 10, entry)
    assert still.outcome == Outcome.FAILED
    assert still.message.endswith("; expected at least 1 (block_size).")
    assert moved(10, 11, entry).outcome == Outcome.PASSED


@pytest.mark.parametrize(("amount", "need"), [("requests", 4), ("prompt_tokens", 100), ("generation_tokens", 8)])
def test_counter_that_moved_one_less_than_its_amount_fails_and_exactly_it_passes(amount: str, need: int) -> None:
    """kills `quantity(entry.at_least)` -> `quantity(None)` and the quantity names in TrafficResult.quantity."""
    entry = counter(at_least=amount)
    short = moved(1000, 1000 + need - 1, entry)
    assert short.outcome == Outcome.FAILED
    assert short.message.endswith(f"; expected at least {need} ({amount}).")
    assert moved(1000, 1000 + need, entry).outcome == Outcome.PASSED


def test_block_size_amount_of_a_workload_that_repeated_its_prefix_is_one_block() -> None:
    """kills `block_size if repeated_prefix_requests else 0` -> `... else block_size` (TrafficResult.quantity)."""
    traffic = workload(*[record(shares=True) for _ in range(3)], prefix_tokens=40)
    entry = counter(at_least="block_size")
    assert moved(0, 15, entry, traffic).message.endswith("; expected at least 16 (block_size).")
    assert moved(0, 16, entry, traffic).outcome == Outcome.PASSED


def test_counter_that_did_not_move_through_the_gateway_says_the_picker_sent_nothing_here() -> None:
    """kills `policy.via_gateway and not increase` -> `or` / `and increase` in evaluate.movement."""
    nothing = moved(10, 10, policy=Policy(via_gateway=True))
    assert nothing.message.endswith("expected at least 4 (requests). The workload went through the gateway "
                                    "(--vllm-gateway-url); its endpoint picker sent none of it to this pod.")
    some = moved(10, 12, policy=Policy(via_gateway=True))
    assert some.message.endswith("expected at least 4 (requests).")
    assert moved(10, 10).message.endswith("expected at least 4 (requests).")


def test_counter_missing_after_the_workload_fails_with_the_old_name_it_exposes() -> None:
    """kills `change.after is None` -> `is not None` and the rename hint of a family missing after the workload."""
    entry = counter("vllm:kv_hits_total", replaces="vllm:old_hits_total")
    obs = observation(page({"vllm:kv_hits_total": 1}), page({"vllm:old_hits_total": 5}))
    verdict = evaluate.movement(entry, obs, Policy())
    assert verdict.outcome == Outcome.FAILED
    assert verdict.message == (f"{WHERE}: vllm:kv_hits_total is missing from /metrics after the workload. The "
                               f"server exposes the old name vllm:old_hits_total: it runs a vLLM older than this "
                               f"family (>=0.9.2); dashboards must use the name the running version exposes.")


def test_counter_that_went_backwards_names_the_series_and_both_values() -> None:
    """kills the decrease branch of evaluate.movement (`if change.decreases`) and its message."""
    verdict = moved(10, 7)
    assert verdict.outcome == Outcome.FAILED
    assert verdict.message.startswith(f"{WHERE}: {SUCCESS}{LABELS} went backwards from 10 to 7 while "
                                      f"process_start_time_seconds and its _created stayed the same")
    assert "(and" not in verdict.message
    assert verdict.evidence["decreased"] == [{"labels": {"engine": "0", "model_name": "tiny"}, "before": 10.0,
                                              "after": 7.0}]


def test_restart_with_enough_counted_since_passes_and_says_so() -> None:
    """kills `if change.reset` -> `if not change.reset` (the evidence note) in evaluate.movement."""
    entry = counter(at_least="requests")
    obs = observation(page({SUCCESS: 50}, start=1000), page({SUCCESS: 4}, start=2000))
    verdict = evaluate.movement(entry, obs, Policy())
    assert verdict.outcome == Outcome.PASSED
    assert verdict.evidence["reset"].startswith("the server restarted between the scrapes")


def test_restart_with_too_little_counted_since_is_inconclusive() -> None:
    """kills `change.reset or delta.restart_seen` -> `and` in evaluate.movement."""
    obs = observation(page({SUCCESS: 50}, start=1000), page({SUCCESS: 3}, start=2000))
    verdict = evaluate.movement(counter(at_least="requests"), obs, Policy())
    assert verdict.outcome == Outcome.INCONCLUSIVE
    assert verdict.message == ("decode-0: could not judge movement: the server restarted between the scrapes (its "
                               "counters started again from 0); find why it restarted, then rerun.")


def test_another_series_recreated_makes_a_counter_that_did_not_move_inconclusive() -> None:
    """kills `delta.restart_seen` dropped from `change.reset or delta.restart_seen` in evaluate.movement."""
    before = page({SUCCESS: 10, "vllm:prompt_tokens_total": 5, "vllm:prompt_tokens_created": 1.0})
    after = page({SUCCESS: 10, "vllm:prompt_tokens_total": 5, "vllm:prompt_tokens_created": 2.0})
    verdict = evaluate.movement(counter(at_least="requests"), observation(before, after), Policy())
    assert verdict.outcome == Outcome.INCONCLUSIVE


@pytest.mark.parametrize(("source", "advice"), [
    ("url", "target the pods themselves (--vllm-namespace, or one --vllm-url per pod), not a load-balanced URL"),
    ("kubernetes", "rerun"),
])
def test_scrapes_of_two_processes_are_inconclusive_with_the_advice_for_the_source(source: str, advice: str) -> None:
    """kills `delta.process != OTHER_PROCESS` -> `==` and `source == "url"` -> `!=` in evaluate._moved_gate."""
    obs = observation(page({SUCCESS: 10}, start=2000), page({SUCCESS: 20}, start=1000), source=source)
    verdict = evaluate.movement(counter(), obs, Policy())
    assert verdict.outcome == Outcome.INCONCLUSIVE
    assert verdict.message == (f"decode-0: could not judge movement: the two scrapes reached two different server "
                               f"processes (process_start_time_seconds 2000 then 1000, the second already running "
                               f"before the first scrape); {advice}.")


def test_failed_workload_makes_movement_inconclusive_pointing_at_the_workload_check() -> None:
    """The workload check alone fails a server that failed the workload; movement cannot be judged and names it."""
    obs = observation(page({SUCCESS: 10}), page({SUCCESS: 10}))
    obs.errors["traffic"] = Problem("decode-0: every workload request failed: 8 requests, 8 answered HTTP 500",
                                    inconclusive=False, check=Check.WORKLOAD_SERVED,
                                    cause="every workload request failed")
    verdict = evaluate.movement(counter(), obs, Policy())
    assert (verdict.outcome, verdict.message, verdict.level) == (
        Outcome.INCONCLUSIVE, "decode-0: see test_workload_served: every workload request failed", "SHOULD")
    served = evaluate.served_workload(obs)
    assert (served.outcome, served.message) == (
        Outcome.FAILED, "decode-0: every workload request failed: 8 requests, 8 answered HTTP 500")


# A scrape of /metrics that answered wrongly or not at all: test_reachable reports it, once per target.
_UNREACHED = Problem("decode-0: GET /metrics answered HTTP 404. Check --vllm-metrics-path and the port.",
                     inconclusive=False, check=Check.REACHABLE, cause="GET /metrics answered HTTP 404")


@pytest.mark.parametrize("stage", ["before", "after"])
def test_a_scrape_failure_fails_reachability_alone_and_every_other_check_points_at_it(stage: str) -> None:
    obs = observation(page({SUCCESS: 1}), page({SUCCESS: 9}))
    obs.errors[stage] = _UNREACHED
    if stage == "before":
        obs.errors["traffic"] = obs.errors["after"] = _UNREACHED  # as observe records it
    reachable = evaluate.reachable(obs)
    assert (reachable.outcome, reachable.message) == (Outcome.FAILED, _UNREACHED.message)
    pointer = Verdict(Outcome.INCONCLUSIVE, "decode-0: see test_reachable: GET /metrics answered HTTP 404", "SHOULD")
    assert evaluate.movement(counter(), obs, Policy()) == pointer
    others = [evaluate.served_workload(obs), evaluate.version(obs), evaluate.cache_config(obs),
              evaluate.presence(counter(), obs, Policy())] if stage == "before" else []
    for verdict in others:
        assert (verdict.outcome, verdict.message) == (Outcome.INCONCLUSIVE, pointer.message)


def test_a_server_without_a_version_fails_the_version_check_itself() -> None:
    """kills `reporter=Check.VERSION` -> None / dropped in evaluate.version (its own failure would point at itself)."""
    obs = observation(page({SUCCESS: 1}), page({SUCCESS: 9}), version=None)
    obs.errors["version"] = Problem("decode-0: GET /version answered HTTP 404 without a version", inconclusive=False,
                                    check=Check.VERSION, cause="GET /version answered HTTP 404 without a version")
    assert evaluate.version(obs) == Verdict(Outcome.FAILED, "decode-0: GET /version answered HTTP 404 without a "
                                                            "version", "SHOULD")


def test_a_problem_the_run_could_not_observe_is_every_checks_own() -> None:
    """Inconclusive problems are not a failure of any check: each check says the same cause, in full."""
    obs = observation(page({SUCCESS: 1}), None)
    obs.errors["after"] = Problem("decode-0: GET /metrics did not finish within 2 s", check=Check.REACHABLE,
                                  cause="GET /metrics did not finish")
    for verdict in (evaluate.reachable(obs), evaluate.movement(counter(), obs, Policy())):
        assert (verdict.outcome, verdict.message) == (Outcome.INCONCLUSIVE,
                                                      "decode-0: GET /metrics did not finish within 2 s")


def test_unreachable_target_makes_movement_inconclusive_with_its_problem() -> None:
    """kills `problem = obs.failure("before")` gate of evaluate._gate."""
    obs = observation(page({}), None)
    obs.errors["before"] = Problem("decode-0: connection refused")
    verdict = evaluate.movement(counter(), obs, Policy())
    assert (verdict.outcome, verdict.message, verdict.level) == (Outcome.INCONCLUSIVE, "decode-0: connection refused",
                                                                 "SHOULD")


def test_counter_of_another_vllm_version_is_skipped_naming_both_versions() -> None:
    """kills `not entry.applies_to(obs.version)` -> `entry.applies_to(...)` in evaluate._gate."""
    obs = observation(page({SUCCESS: 1}), page({SUCCESS: 9}), version="0.8.0")
    verdict = evaluate.movement(counter(), obs, Policy())
    assert verdict.outcome == Outcome.SKIPPED
    assert verdict.message == f"{SUCCESS} is emitted by vLLM >=0.9.2; this server reports vLLM 0.8.0"


def test_a_fleet_of_another_version_shares_one_reason_for_the_skip() -> None:
    # 1,000 servers of one version: one reason naming the first few, not 1,000 reasons each naming its server
    fleet = [replace(observation(page({SUCCESS: 1}), page({SUCCESS: 9}), version="0.8.0"),
                     target=Target(f"decode-{n}", f"http://10.0.0.{n}:8200")) for n in range(1000)]
    verdict = evaluate.across(fleet, lambda obs: evaluate.movement(counter(), obs, Policy()), Level.MUST)
    assert verdict.outcome == Outcome.SKIPPED
    assert verdict.message == (f"1000 of 1000 targets: decode-0, decode-1, decode-2, decode-3, decode-4 and 995 "
                               f"more: {SUCCESS} is emitted by vLLM >=0.9.2; this server reports vLLM 0.8.0")


def test_exempted_feature_is_skipped_with_the_option_that_exempted_it() -> None:
    """kills `if not status.run` -> `if status.run` in evaluate._gate."""
    obs = observation(page({HITS: 1}), page({HITS: 1}))
    verdict = evaluate.movement(counter(HITS, feature="prefix_caching"), obs, Policy(exempt=("prefix_caching",)))
    assert verdict.outcome == Outcome.SKIPPED
    assert verdict.message == "feature prefix_caching exempted by --vllm-exempt-feature=prefix_caching"


# -- prefix-cache arithmetic: hits needed per repeated request, in blocks (evaluate.prefix_hits_per_repeat) ---


def repeated(completions: int, chats: int) -> TrafficResult:
    """A workload whose completions and chats (streaming or not) share the prefix of 40 tokens."""
    records = [record("completion" if i % 2 else "completion-stream", shares=True) for i in range(completions)]
    records += [record("chat" if i % 2 else "chat-stream", shares=True) for i in range(chats)]
    return workload(*records, record(), prefix_tokens=40)


def hits_verdict(hits: float, traffic: TrafficResult, *, block_size: int = 16) -> Verdict:
    entry = counter(HITS, "block_size", feature="prefix_caching")
    obs = observation(page({HITS: 0, QUERIES: 0}, block_size=block_size),
                   page({HITS: hits, QUERIES: 500}, block_size=block_size), traffic)
    return evaluate.prefix_hits_per_repeat(entry, obs, Policy())


def test_repeated_prefix_requests_count_each_family_after_its_first() -> None:
    """kills `completions - 1` -> `completions + 1`, `max(.., 0)` -> `max(.., 1)` and the kind prefixes in
    TrafficResult.repeated_prefix_requests: 3 completions and 2 chats repeat the prefix 2 + 1 times."""
    assert repeated(3, 2).repeated_prefix_requests == 3
    assert repeated(1, 0).repeated_prefix_requests == 0
    assert repeated(0, 1).repeated_prefix_requests == 0
    assert workload(record(shares=True), record(shares=True, status=500)).repeated_prefix_requests == 0


def test_prefix_hits_one_token_short_of_a_block_per_repeat_fails() -> None:
    """kills `got >= need` -> `got > need` (with the next test) and `repeats * block_size` -> `repeats +
    block_size` in evaluate.prefix_hits_per_repeat: 3 repeats of a 16-token block need 48 tokens of hits."""
    verdict = hits_verdict(47, repeated(3, 2))
    assert verdict.outcome == Outcome.FAILED
    assert verdict.message.startswith(
        f"{WHERE}: {HITS} grew by 47 tokens for 3 request(s) that repeated a shared prefix of 40 tokens; expected "
        f"at least one block (16 tokens) each, 48 in all.")
    assert verdict.evidence["needed"] == 48 and verdict.evidence["repeated_prefix_requests"] == 3


def test_prefix_hits_of_exactly_one_block_per_repeat_pass() -> None:
    """kills `got >= need` -> `got > need` in evaluate.prefix_hits_per_repeat."""
    verdict = hits_verdict(48, repeated(3, 2))
    assert verdict.outcome == Outcome.PASSED
    assert verdict.evidence == {"hits": 48.0, "repeated_prefix_requests": 3, "block_size": 16, "needed": 48}


def test_prefix_hits_are_counted_in_blocks_of_the_servers_own_size() -> None:
    """kills `obs.block_size` -> the traffic's or the default block size in evaluate.prefix_hits_per_repeat."""
    assert hits_verdict(3 * 128 - 1, repeated(3, 2), block_size=128).outcome == Outcome.FAILED
    assert hits_verdict(3 * 128, repeated(3, 2), block_size=128).outcome == Outcome.PASSED


def test_a_data_parallel_server_that_spread_the_workload_over_its_engines_cannot_fail_its_prefix_hits() -> None:
    """Each engine of a data-parallel server has a prefix cache of its own: with the requests on two engines, a
    repeat may not have met the engine that cached its prefix (inconclusive, naming them); on one engine of two,
    a miss is the server's (failed)."""
    entry = counter(HITS, "block_size", feature="prefix_caching")

    def engines(hits: float, served: dict[str, float]) -> Verdict:
        def at(done: dict[str, float], hit: float) -> Snapshot:
            extra = "# TYPE vllm:request_success counter\n" + "".join(
                f'vllm:request_success_total{{engine="{e}",finished_reason="length"}} {n}\n' for e, n in done.items())
            return page({HITS: hit, QUERIES: 500}, extra=extra)
        obs = observation(at(dict.fromkeys(served, 0.0), 0), at(served, hits), repeated(3, 2))
        return evaluate.prefix_hits_per_repeat(entry, obs, Policy())

    spread = engines(0, {"0": 3, "1": 3})
    assert spread.outcome == Outcome.INCONCLUSIVE and spread.evidence["engines_served"] == ["0", "1"]
    assert "The workload went to 2 engines of this data-parallel server (engine 0, 1)" in spread.message
    assert engines(0, {"0": 6, "1": 0}).outcome == Outcome.FAILED
    assert engines(48, {"0": 3, "1": 3}).outcome == Outcome.PASSED
    # an engine that finished a single request of the workload was served too
    assert engines(0, {"0": 5, "1": 1}).evidence["engines_served"] == ["0", "1"]


def test_prefix_hits_without_a_repeated_request_still_need_one_token() -> None:
    """kills `max(repeats * block_size, 1)` -> `max(.., 0)` / `max(.., 2)` in evaluate.prefix_hits_per_repeat."""
    none = hits_verdict(0, repeated(1, 1))
    assert none.outcome == Outcome.FAILED and none.evidence["needed"] == 1
    assert "expected at least one block (16 tokens) each, 1 in all." in none.message
    assert hits_verdict(1, repeated(1, 1)).outcome == Outcome.PASSED


def test_prefix_hits_short_after_a_restart_are_inconclusive() -> None:
    """kills `if obs.delta.restart_seen` -> `if not ...` in evaluate.prefix_hits_per_repeat."""
    entry = counter(HITS, "block_size", feature="prefix_caching")
    obs = observation(page({HITS: 500}, start=1000), page({HITS: 10}, start=2000), repeated(3, 2))
    verdict = evaluate.prefix_hits_per_repeat(entry, obs, Policy())
    assert verdict.outcome == Outcome.INCONCLUSIVE
    assert verdict.evidence == {"hits": 10.0, "repeated_prefix_requests": 3, "block_size": 16, "needed": 48}


@pytest.mark.parametrize(("other", "outcome"), [(48, Outcome.PASSED), (47, Outcome.FAILED), (49, Outcome.FAILED)])
def test_counter_that_recounts_local_hits_must_move_exactly_as_the_hits(other: float, outcome: Outcome) -> None:
    """kills `got.increase == hits` -> `>=` / `<=` in evaluate.prefix_sources_agree."""
    name = "vllm:prefix_cache_hits_by_source_total"
    entry = counter(name, feature="prefix_caching")
    obs = observation(page({HITS: 0, name: 0}), page({HITS: 48, name: other}), repeated(3, 2))
    verdict = evaluate.prefix_sources_agree(entry, obs, Policy(), {})
    assert verdict.outcome == outcome
    if outcome == Outcome.FAILED:
        assert verdict.message.startswith(f"{WHERE}: {name} grew by {other:g} while {HITS} grew by 48; vLLM counts "
                                          f"the same local prefix hits in both, so they must move together.")


def test_hits_and_their_recount_that_both_stayed_at_zero_do_not_agree() -> None:
    """kills `and hits > 0` -> `or` / `hits >= 0` in evaluate.prefix_sources_agree."""
    name = "vllm:prefix_cache_hits_by_source_total"
    obs = observation(page({HITS: 0, name: 0}), page({HITS: 0, name: 0}), repeated(3, 2))
    verdict = evaluate.prefix_sources_agree(counter(name, feature="prefix_caching"), obs, Policy(), {})
    assert verdict.outcome == Outcome.FAILED


# -- cache_config: the server's own report (evaluate.cache_config) --------------------------------------------


@pytest.mark.parametrize(("labels", "outcome", "said"), [
    ('block_size="16",enable_prefix_caching="True"', Outcome.PASSED, ""),
    ('block_size="0",enable_prefix_caching="True"', Outcome.FAILED, "has block_size=0."),
    ('block_size="1",enable_prefix_caching="None"', Outcome.PASSED, ""),
    ('block_size="16",enable_prefix_caching="yes"', Outcome.FAILED, "has enable_prefix_caching='yes'"),
    ('block_size="x",enable_prefix_caching="True"', Outcome.FAILED, "has block_size='x', not a whole number"),
])
def test_cache_config_block_size_must_be_a_positive_whole_number(labels: str, outcome: Outcome, said: str) -> None:
    """kills `block_size <= 0` -> `< 0` / `<= 1` and the accepted words of enable_prefix_caching."""
    snapshot = Snapshot.parse(f"# TYPE vllm:cache_config_info gauge\nvllm:cache_config_info{{{labels}}} 1.0\n")
    verdict = evaluate.cache_config(observation(snapshot, snapshot))
    assert verdict.outcome == outcome
    assert said in verdict.message


# -- whole verdicts: level, evidence and targets travel to the reports (evaluate) -----------------------------


def test_restart_verdict_keeps_the_entrys_level_and_the_evidence() -> None:
    """kills `entry.level` -> None and `evidence` -> None in evaluate._restarted (the JSON report's fields)."""
    entry = Entry(name=SUCCESS, type="counter", level="SHOULD", feature="core", versions=VersionRange(">=0"),
                  moves="increases", at_least="requests")
    obs = observation(page({SUCCESS: 50}, start=1000), page({SUCCESS: 3}, start=2000))
    verdict = evaluate.movement(entry, obs, Policy())
    assert (verdict.outcome, verdict.level) == (Outcome.INCONCLUSIVE, "SHOULD")
    assert verdict.evidence["increase"] == 3.0 and verdict.evidence["needed"] == 4


def several_series(values: Sequence[tuple[float, float]]) -> tuple[Snapshot, Snapshot]:
    pages = []
    for side in (0, 1):
        lines = [f"# TYPE {SUCCESS} counter"]
        lines += [f'{SUCCESS}{{engine="{i}"}} {pair[side]}' for i, pair in enumerate(values)]
        pages.append(Snapshot.parse("\n".join(lines) + "\n"))
    return pages[0], pages[1]


@pytest.mark.parametrize(("count", "more"), [(2, " (and 1 more series)"), (3, " (and 2 more series)")])
def test_counter_that_went_backwards_on_several_series_counts_the_others(count: int, more: str) -> None:
    """kills `len(decreases) > 1` -> `> 2` and `len - 1` -> `len + 1` / `len - 2` in evaluate._went_backwards."""
    before, after = several_series([(10, 7)] * count + [(1, 5)])
    verdict = evaluate.movement(counter(), observation(before, after), Policy())
    assert verdict.message.startswith(f'{WHERE}: {SUCCESS}{{engine="0"}} went backwards from 10 to 7{more} while')
    assert verdict.level == "SHOULD" and len(verdict.evidence["decreased"]) == count


def fleet_of(size: int) -> list[Observation]:
    """`size` targets decode-0, decode-1, ..."""
    return [Observation(Target(f"decode-{i}", f"http://10.0.0.{i}:8200")) for i in range(size)]


def across(*verdicts: Verdict, level: str = "SHOULD") -> Verdict:
    by_name = {f"decode-{i}": v for i, v in enumerate(verdicts)}
    return evaluate.across(fleet_of(len(verdicts)), lambda obs: by_name[obs.target.name], level)


def test_check_of_one_target_is_that_targets_verdict_whole() -> None:
    """kills every argument of the one-target Verdict in evaluate.across (level, evidence, diagnosis, targets,
    target) and the target given to each target's own verdict."""
    own = Verdict(Outcome.FAILED, "decode-0: broke", "MAY", {"seen": 1}, diagnosis="why")
    verdict = across(own)
    assert verdict == Verdict(Outcome.FAILED, "decode-0: broke", "MAY", {"seen": 1}, "why",
                              {"decode-0": own.but(target="decode-0")}, "decode-0")
    assert own.target == ""  # a verdict is a value: the check's own is left as it was


def test_check_with_no_target_is_skipped_at_its_level() -> None:
    """kills the level and the message of the no-target verdict of evaluate.across."""
    verdict = evaluate.across([], lambda obs: Verdict(Outcome.PASSED), "SHOULD")
    assert verdict == Verdict(Outcome.SKIPPED, "no vLLM target: pass --vllm-url, --vllm-sim or --vllm-namespace",
                              "SHOULD")


def test_check_passed_everywhere_keeps_every_targets_evidence() -> None:
    """kills the message, level, evidence and targets of the all-passed verdict of evaluate.across."""
    a, b = Verdict(Outcome.PASSED, evidence={"n": 1}), Verdict(Outcome.PASSED, evidence={"n": 2})
    assert across(a, b) == Verdict(Outcome.PASSED, "", "SHOULD", {"decode-0": {"n": 1}, "decode-1": {"n": 2}},
                                   targets={f"decode-{i}": v.but(target=f"decode-{i}") for i, v in enumerate((a, b))})


def test_check_skipped_everywhere_groups_the_targets_by_reason() -> None:
    """kills the `"; "` join of evaluate._grouped and the skipped verdict's fields in evaluate.across."""
    a, b, c = (Verdict(Outcome.SKIPPED, "no LoRA"), Verdict(Outcome.SKIPPED, "old vLLM"),
               Verdict(Outcome.SKIPPED, "no LoRA"))
    assert across(a, b, c) == Verdict(Outcome.SKIPPED, "3 of 3 targets: decode-0, decode-2: no LoRA; decode-1: "
                                                       "old vLLM", "SHOULD", {f"decode-{i}": {} for i in range(3)},
                                      targets={f"decode-{i}": v.but(target=f"decode-{i}")
                                               for i, v in enumerate((a, b, c))})


def test_five_failing_targets_are_all_quoted_and_named() -> None:
    """kills `len(mine) > _SHOWN` -> `>=` in evaluate.across and `len(names) > _SHOWN` -> `>=` in _names."""
    failing = [Verdict(Outcome.FAILED, f"decode-{i}: broke") for i in range(5)]
    verdict = across(*failing)
    first, *quoted = verdict.message.splitlines()
    assert first == "fails on decode-0, decode-1, decode-2, decode-3, decode-4 (5 of 5 targets)."
    assert quoted == [f"decode-{i}: broke" for i in range(5)]
    assert verdict.diagnosis is None  # kills `any(v.diagnosis ...) or True`
    assert (verdict.level, verdict.evidence) == ("SHOULD", {f"decode-{i}": {} for i in range(5)})


# -- presence of a family (evaluate.presence) -----------------------------------------------------------------


def present(entry: Entry, text: str, policy: Policy | None = None) -> Verdict:
    snapshot = Snapshot.parse(text)
    return evaluate.presence(entry, observation(snapshot, snapshot), policy or Policy())


def family(name: str, type_: str = "counter", *, feature: str = "core", labels: tuple[str, ...] = ("model_name",),
           **fields: Any) -> Entry:
    return Entry(name=name, type=type_, level="SHOULD", feature=feature, versions=VersionRange(">=0.9.2"),
                 labels=labels, **fields)


def test_family_present_with_its_labels_passes_with_its_type_and_labels() -> None:
    """kills `family.type != expected_type` -> `==` and the evidence of evaluate.presence."""
    verdict = present(family(SUCCESS), f'# TYPE {SUCCESS} counter\n{SUCCESS}{{model_name="t",x="1"}} 1\n')
    assert verdict == Verdict(Outcome.PASSED, level="SHOULD", evidence={"type": "counter",
                                                                         "labels": ["model_name", "x"]})


def test_family_missing_before_traffic_fails_with_what_it_means() -> None:
    """kills the message of a missing family in evaluate.presence ("before any traffic", the meaning)."""
    verdict = present(family("vllm:gone_total", meaning="it counts things"), "# TYPE vllm:other gauge\nvllm:other 1\n")
    assert verdict == Verdict(Outcome.FAILED, "decode-0 (vLLM 0.32.0): vllm:gone_total is missing from /metrics "
                                              "before any traffic. Why it matters: it counts things.", "SHOULD",
                              {"families_on_page": 1})


def test_family_present_after_traffic_is_judged_on_the_second_scrape() -> None:
    """kills `entry.present == "traffic"` -> `!=` (which scrape, and which words) in evaluate.presence."""
    entry = family("vllm:late_total", present="traffic")
    before = Snapshot.parse("# TYPE vllm:other gauge\nvllm:other 1\n")
    after = Snapshot.parse('# TYPE vllm:late_total counter\nvllm:late_total{model_name="t"} 1\n')
    assert evaluate.presence(entry, observation(before, after), Policy()).outcome == Outcome.PASSED
    startup = evaluate.presence(family("vllm:late_total"), observation(after, before), Policy())
    assert startup.outcome == Outcome.PASSED  # a startup family is judged on the first scrape
    missing = evaluate.presence(entry, observation(after, before), Policy())
    assert missing.message == "decode-0 (vLLM 0.32.0): vllm:late_total is missing from /metrics after the workload."


def test_family_of_a_feature_the_server_does_not_show_says_how_to_exempt_it() -> None:
    """kills `entry.feature != "core" and entry.feature not in obs.features` in evaluate.presence."""
    verdict = present(family("vllm:lora_requests_info", "info", feature="lora"), "# TYPE vllm:other gauge\n",
                      Policy(require=("lora",)))
    assert verdict.message.endswith("is missing from /metrics before any traffic. The server does not show feature "
                                    "lora; enable it, or stop requiring it (--vllm-exempt-feature=lora).")
    core = present(family("vllm:gone_total"), "# TYPE vllm:other gauge\n")
    assert core.message.endswith("is missing from /metrics before any traffic.")
    shown = present(family("vllm:prefix_cache_hits_total", feature="prefix_caching"),
                    '# TYPE vllm:cache_config_info gauge\nvllm:cache_config_info{enable_prefix_caching="True"} 1\n')
    assert shown.message.endswith("vllm:prefix_cache_hits_total is missing from /metrics before any traffic.")


def test_renamed_family_names_the_new_name_and_a_counter_without_total_says_so() -> None:
    """kills the `replaced_by` and `_total` hints of evaluate._rename_hint."""
    renamed = present(family("vllm:old_total", replaced_by="vllm:new_total"),
                      '# TYPE vllm:new_total counter\nvllm:new_total{model_name="t"} 1\n')
    assert renamed.message == ("decode-0 (vLLM 0.32.0): vllm:old_total is missing from /metrics before any traffic. "
                               "It was renamed: the server exposes vllm:new_total; query that instead.")
    bare = present(family("vllm:plain_total"), '# TYPE vllm:plain gauge\nvllm:plain{model_name="t"} 1\n')
    assert bare.message.endswith("The server exposes vllm:plain without _total.")


def test_family_declared_without_series_fails() -> None:
    """kills `not snapshot.series(...)` -> `snapshot.series(...)` in evaluate.presence."""
    verdict = present(family(SUCCESS), f"# HELP {SUCCESS} counted\n# TYPE {SUCCESS} counter\n")
    assert verdict == Verdict(Outcome.FAILED, f"decode-0 (vLLM 0.32.0): {SUCCESS} is declared (# TYPE) but has no "
                                              f"series before any traffic; panels and alerts on it see nothing.",
                              "SHOULD", {"type": "counter", "labels": []})


def test_family_of_another_type_fails_naming_both() -> None:
    """kills the type comparison and `_TYPE_SHOWN_AS` (an info family is a gauge) in evaluate.presence."""
    verdict = present(family("vllm:x"), '# TYPE vllm:x gauge\nvllm:x{model_name="t"} 1\n')
    assert verdict.message == ("decode-0 (vLLM 0.32.0): vllm:x is a gauge, the catalog expects a counter; "
                               "dashboards built for one type break on the other.")
    info = family("vllm:cache_config_info", "info", labels=(), info_labels=("block_size",))
    shown = present(info, '# TYPE vllm:cache_config_info gauge\nvllm:cache_config_info{block_size="16"} 1\n')
    assert shown.outcome == Outcome.PASSED and shown.evidence["info"] == {"block_size": "16"}


def test_family_without_a_label_dashboards_select_on_fails_naming_it() -> None:
    """kills `set(entry.labels) - family.label_names` and its message in evaluate.presence."""
    verdict = present(family("vllm:x", "gauge", labels=("engine", "model_name")), "# TYPE vllm:x gauge\nvllm:x 1\n")
    assert verdict.message == ("decode-0 (vLLM 0.32.0): vllm:x lacks label(s) engine, model_name (it has none); "
                               "dashboards that select or group by them show nothing.")


def test_info_family_with_an_empty_label_fails_naming_it() -> None:
    """kills `not info.get(label)` -> `info.get(label)` in evaluate.presence."""
    info = family("vllm:cache_config_info", "info", labels=(), info_labels=("block_size", "num_gpu_blocks"))
    verdict = present(info, '# TYPE vllm:cache_config_info gauge\nvllm:cache_config_info{block_size="16",'
                            'num_gpu_blocks=""} 1\n')
    assert verdict.outcome == Outcome.FAILED
    assert verdict.message == "decode-0 (vLLM 0.32.0): vllm:cache_config_info has no value for num_gpu_blocks."


# -- per-target checks (evaluate.reachable, version, served_workload) ----------------------------------------


def test_reachable_version_and_workload_pass_with_their_evidence() -> None:
    """kills the evidence and levels of evaluate.reachable, version and served_workload."""
    obs = observation(page({SUCCESS: 1}), page({SUCCESS: 5}), workload(record(), record("chat")))
    assert evaluate.reachable(obs) == Verdict(Outcome.PASSED, evidence={"families": 3})
    assert evaluate.version(obs) == Verdict(Outcome.PASSED, level="SHOULD", evidence={"version": "0.32.0"})
    served = evaluate.served_workload(obs)
    assert served.outcome == Outcome.PASSED and served.evidence["model"] == "tiny"
    assert [r["kind"] for r in served.evidence["requests"]] == ["completion", "chat"]


def test_workload_with_failed_requests_fails_naming_kinds_and_statuses() -> None:
    """kills `not r.ok` -> `r.ok` and the message of evaluate.served_workload."""
    traffic = workload(record(), record("chat", status=500), record("chat-stream", status=429))
    verdict = evaluate.served_workload(observation(page({}), page({}), traffic))
    assert verdict.outcome == Outcome.FAILED
    assert verdict.evidence["model"] == "tiny" and len(verdict.evidence["requests"]) == 3
    assert verdict.message.startswith("decode-0: 2 of 3 workload requests failed (chat -> 500, chat-stream -> 429); "
                                      "1/3 requests succeeded")


def test_per_target_checks_report_the_stage_that_failed() -> None:
    """kills the stages each per-target check needs ("before", "after", "version", "traffic")."""
    for stage, check, level in (("after", evaluate.reachable, "MUST"), ("version", evaluate.version, "SHOULD"),
                                ("traffic", evaluate.served_workload, "MUST")):
        obs = observation(page({}), page({}))
        obs.errors[stage] = Problem(f"decode-0: no {stage}", inconclusive=False)
        assert check(obs) == Verdict(Outcome.FAILED, f"decode-0: no {stage}", level)
        assert evaluate.cache_config(obs).outcome == Outcome.PASSED  # it needs the first scrape only


def test_prefix_hits_cannot_be_judged_without_the_workload_or_across_two_processes() -> None:
    """kills the stages and `or _moved_gate` of evaluate.prefix_hits_per_repeat and prefix_sources_agree."""
    entry = counter(HITS, "block_size", feature="prefix_caching")
    def sources(obs: Observation) -> Verdict:
        return evaluate.prefix_sources_agree(entry, obs, Policy(), {"source": "local"})

    def hits(obs: Observation) -> Verdict:
        return evaluate.prefix_hits_per_repeat(entry, obs, Policy())

    for check in (hits, sources):
        failed = observation(page({HITS: 0}), page({HITS: 0}), repeated(3, 2))
        failed.errors["traffic"] = Problem("decode-0: overloaded")
        assert check(failed) == Verdict(Outcome.INCONCLUSIVE, "decode-0: overloaded", "SHOULD")
        gone = observation(page({HITS: 0}), page({HITS: 0}), repeated(3, 2))
        gone.errors["after"] = Problem("decode-0: second scrape refused")
        assert check(gone).message == "decode-0: second scrape refused"
        other = observation(page({HITS: 0}, start=2000), page({HITS: 99}, start=1000), repeated(3, 2))
        assert check(other).outcome == Outcome.INCONCLUSIVE
        assert "two different server processes" in check(other).message


def test_every_verdict_of_a_should_counter_stays_should() -> None:
    """kills `entry.level` -> None / dropped in evaluate._gate, _moved_gate, _fail_or_explain and the passed
    verdicts of movement and prefix_hits_per_repeat (a SHOULD check must never fail as MUST)."""
    entry = counter(HITS, "block_size", feature="prefix_caching")
    cases = [
        observation(page({HITS: 0}), page({HITS: 0}), version="0.8.0"),  # another vLLM version: skipped
        observation(page({HITS: 0}, start=2000), page({HITS: 9}, start=1000)),  # two processes: inconclusive
        observation(page({HITS: 0}, caching="False"), page({HITS: 0}, caching="False")),  # diagnosed failure
        observation(page({HITS: 0}, caching="False"), page({HITS: 0}, caching="False"), arch="arm64",
                 version="0.11.2"),  # documented limitation
        observation(page({HITS: 0}), page({HITS: 500}), repeated(3, 2)),  # passed
    ]
    for obs in cases:
        assert evaluate.movement(entry, obs, Policy()).level == "SHOULD"
        assert evaluate.prefix_hits_per_repeat(entry, obs, Policy()).level == "SHOULD"
    skipped = evaluate.movement(entry, observation(page({HITS: 0}), page({HITS: 0})),
                                Policy(exempt=("prefix_caching",)))
    assert skipped.level == "SHOULD"
    failed = observation(page({SUCCESS: 0}), page({SUCCESS: 0}))
    failed.errors["traffic"] = Problem("decode-0: refused", inconclusive=False)
    assert evaluate.movement(counter(), failed, Policy()).level == "SHOULD"
    unreached = observation(page({}), None)
    unreached.errors["after"] = Problem("decode-0: gone")
    assert evaluate.movement(counter(), unreached, Policy()) == Verdict(Outcome.INCONCLUSIVE, "decode-0: gone",
                                                                         "SHOULD")
    plain = evaluate.movement(counter(), observation(page({SUCCESS: 0}), page({SUCCESS: 0})), Policy())
    assert (plain.level, plain.evidence["needed"]) == ("SHOULD", 1)


def test_counter_missing_after_the_workload_without_an_old_name_says_only_that() -> None:
    """kills `f" {hint}" if hint else ""` -> `else "XXXX"` and `if family_missing` -> `or True` in movement."""
    obs = observation(page({SUCCESS: 3}), page({"vllm:other_total": 1}))
    verdict = evaluate.movement(counter(), obs, Policy())
    assert verdict.message == f"{WHERE}: {SUCCESS} is missing from /metrics after the workload."
    declared = Snapshot.parse(f"# HELP {SUCCESS} x\n# TYPE {SUCCESS} counter\n# TYPE vllm:new_total counter\n"
                              f"vllm:new_total 1\n")
    entry = Entry(name=SUCCESS, type="counter", level="SHOULD", feature="core", versions=VersionRange(">=0"),
                  moves="increases", replaced_by="vllm:new_total")
    no_series = evaluate.movement(entry, observation(page({SUCCESS: 3}), declared), Policy())
    assert no_series.message == f"{WHERE}: {SUCCESS} is missing from /metrics after the workload."


def test_counter_that_appeared_with_the_workload_reads_absent_before() -> None:
    """kills "absent" in evaluate._num: a series first exposed after the workload went from absent."""
    verdict = evaluate.movement(counter(), observation(page({}), page({SUCCESS: 0})), Policy())
    assert verdict.message.startswith(f"{WHERE}: {SUCCESS} went from absent to 0 (+0) during a workload")


def test_server_that_does_not_say_its_version_reads_version_unknown() -> None:
    """kills 'version unknown' in evaluate._where."""
    verdict = evaluate.movement(counter(), observation(page({SUCCESS: 0}), page({SUCCESS: 0}), version=None), Policy())
    assert verdict.message.startswith(f"decode-0 (vLLM version unknown, amd64): {SUCCESS} went from 0 to 0")


def test_first_scrape_failure_alone_is_reported_by_every_per_target_check() -> None:
    """kills the "before" stage of evaluate.reachable, version, cache_config and served_workload."""
    for check in (evaluate.reachable, evaluate.version, evaluate.cache_config, evaluate.served_workload):
        obs = observation(page({}), page({}))
        obs.errors["before"] = Problem("decode-0: refused", inconclusive=False)
        assert check(obs).message == "decode-0: refused"


def test_prefix_of_exactly_one_block_is_not_shorter_than_a_block() -> None:
    """kills `prefix_tokens < block_size` -> `<=` in evaluate._prefix_facts: a 16-token prefix can hit one
    16-token block; 15 tokens cannot."""
    entry = counter(HITS, "block_size", feature="prefix_caching")
    for tokens, rule in ((15, "prompt-shorter-than-block"), (16, "lookups-skipped")):
        traffic = workload(*[record(shares=True) for _ in range(3)], prefix_tokens=tokens)
        verdict = evaluate.movement(entry, observation(page({HITS: 0, QUERIES: 0}), page({HITS: 0, QUERIES: 0}),
                                                    traffic), Policy())
        assert verdict.evidence["diagnosis_rule"] == rule


def test_queries_that_moved_by_one_token_count_as_moved() -> None:
    """kills `queries > 0` -> `queries > 1` in evaluate._prefix_facts."""
    entry = counter(HITS, "block_size", feature="prefix_caching")
    obs = observation(page({HITS: 0, QUERIES: 0}), page({HITS: 0, QUERIES: 1}), repeated(3, 2))
    assert evaluate.movement(entry, obs, Policy()).evidence["diagnosis_rule"] == "queries-without-hits"


def test_family_whose_old_or_new_name_is_not_exposed_gets_no_rename_hint() -> None:
    """kills `entry.replaces and entry.replaces in names` -> `or` (and the same for replaced_by) in
    evaluate._rename_hint."""
    for entry in (family("vllm:x_total", replaces="vllm:old_total"), family("vllm:x_total", replaced_by="vllm:y")):
        verdict = present(entry, "# TYPE vllm:other gauge\nvllm:other 1\n")
        assert verdict.message == "decode-0 (vLLM 0.32.0): vllm:x_total is missing from /metrics before any traffic."


def test_family_present_after_traffic_needs_the_workload_but_a_startup_family_does_not() -> None:
    """kills the stages of evaluate.presence (`("traffic", "after") if present == "traffic" else ()`)."""
    text = f'# TYPE {SUCCESS} counter\n{SUCCESS}{{model_name="t"}} 1\n'
    for stage in ("traffic", "after"):
        obs = observation(Snapshot.parse(text), Snapshot.parse(text))
        obs.errors[stage] = Problem(f"decode-0: no {stage}")
        late = evaluate.presence(family(SUCCESS, present="traffic"), obs, Policy())
        assert (late.outcome, late.message, late.level) == (Outcome.INCONCLUSIVE, f"decode-0: no {stage}", "SHOULD")
        assert evaluate.presence(family(SUCCESS), obs, Policy()).outcome == Outcome.PASSED


def test_family_lacking_labels_lists_those_it_has_and_info_lists_every_empty_label() -> None:
    """kills the `", "` joins and the levels and evidence of the failed verdicts of evaluate.presence."""
    verdict = present(family("vllm:x", "gauge", labels=("engine", "model_name")),
                      '# TYPE vllm:x gauge\nvllm:x{a="1",b="2",model_name="t"} 1\n')
    assert verdict == Verdict(Outcome.FAILED, "decode-0 (vLLM 0.32.0): vllm:x lacks label(s) engine (it has a, b, "
                                              "model_name); dashboards that select or group by them show nothing.",
                              "SHOULD", {"type": "gauge", "labels": ["a", "b", "model_name"]})
    info = family("vllm:cache_config_info", "info", labels=(), info_labels=("block_size", "num_gpu_blocks"))
    empty = present(info, '# TYPE vllm:cache_config_info gauge\nvllm:cache_config_info{block_size=""} 1\n')
    assert empty == Verdict(Outcome.FAILED, "decode-0 (vLLM 0.32.0): vllm:cache_config_info has no value for "
                                            "block_size, num_gpu_blocks.", "SHOULD",
                            {"type": "gauge", "labels": ["block_size"]})
    other = present(family("vllm:x"), '# TYPE vllm:x gauge\nvllm:x{model_name="t"} 1\n')
    assert (other.level, other.evidence) == ("SHOULD", {"type": "gauge", "labels": ["model_name"]})


def test_cache_config_passes_with_what_the_server_reports_and_fails_when_missing() -> None:
    """kills the evidence of evaluate.cache_config and the message of a missing vllm:cache_config_info."""
    snapshot = Snapshot.parse('# TYPE vllm:cache_config_info gauge\nvllm:cache_config_info{block_size="32",'
                              'enable_prefix_caching="False",num_gpu_blocks="4096"} 1.0\n')
    assert evaluate.cache_config(observation(snapshot, snapshot)) == Verdict(Outcome.PASSED, evidence={
        "block_size": 32, "enable_prefix_caching": "False", "num_gpu_blocks": "4096"})
    bare = Snapshot.parse("# TYPE vllm:other gauge\nvllm:other 1\n")
    missing = evaluate.cache_config(observation(bare, bare))
    assert missing == Verdict(Outcome.FAILED, "decode-0: vllm:cache_config_info is missing, so block_size and "
                                              "enable_prefix_caching cannot be read (vLLM emits it from 0.8.0 on, "
                                              "and not with --disable-log-stats). The workload assumed a block of "
                                              "16 tokens.")
    unsized = Snapshot.parse('# TYPE vllm:cache_config_info gauge\nvllm:cache_config_info{engine="0"} 1.0\n')
    assert evaluate.cache_config(observation(unsized, unsized)).message == (
        "decode-0: vllm:cache_config_info has block_size=None, not a whole number of tokens.")
    for word in ("True", "False", "None"):
        ok = Snapshot.parse(f'# TYPE vllm:cache_config_info gauge\nvllm:cache_config_info{{block_size="16",'
                            f'enable_prefix_caching="{word}"}} 1.0\n')
        assert evaluate.cache_config(observation(ok, ok)).outcome == Outcome.PASSED


def test_recount_by_label_is_selected_by_those_labels_and_named_with_them() -> None:
    """kills the label selector (`change(entry.name, labels)`) and its text in evaluate.prefix_sources_agree, and
    `hits > 0` -> `hits > 1`."""
    name = "vllm:prefix_cache_hits_by_source_total"
    text = (f"# TYPE {HITS} counter\n{HITS} {{h}}\n# TYPE {name} counter\n"
            f'{name}{{source="local",tier="gpu"}} {{local}}\n{name}{{source="remote",tier="gpu"}} {{remote}}\n')
    before = Snapshot.parse(text.replace("{h}", "0").replace("{local}", "0").replace("{remote}", "7"))
    after = Snapshot.parse(text.replace("{h}", "1").replace("{local}", "1").replace("{remote}", "9"))
    entry = counter(name, feature="prefix_caching")
    obs = observation(before, after, repeated(3, 2))
    labels = {"source": "local", "tier": "gpu"}
    assert evaluate.prefix_sources_agree(entry, obs, Policy(), labels) == Verdict(
        Outcome.PASSED, level="SHOULD", evidence={"hits": 1.0, "other": 1.0,
                                                  "selector": f'{name}{{source="local",tier="gpu"}}'})
    wrong = Snapshot.parse(text.replace("{h}", "1").replace("{local}", "2").replace("{remote}", "7"))
    verdict = evaluate.prefix_sources_agree(entry, observation(before, wrong, repeated(3, 2)), Policy(), labels)
    assert verdict.message.startswith(f'{WHERE}: {name}{{source="local",tier="gpu"}} grew by 2 while {HITS} grew '
                                      f"by 1;")
    assert verdict.level == "SHOULD" and verdict.evidence["selector"] == f'{name}{{source="local",tier="gpu"}}'
    restarted = observation(page({HITS: 50}, start=1000), page({HITS: 1}, start=2000), repeated(3, 2))
    assert evaluate.prefix_sources_agree(entry, restarted, Policy(), {}) == Verdict(
        Outcome.INCONCLUSIVE, "decode-0: could not judge movement: the server restarted between the scrapes (its "
                              "counters started again from 0); find why it restarted, then rerun.", "SHOULD",
        {"hits": 1.0, "other": None, "selector": name})


# -- one check over many targets: the folded verdict and its message (evaluate.across) -----------------------


def fleet(*outcomes: str) -> tuple[list[Observation], dict[str, Verdict]]:
    observations = fleet_of(len(outcomes))
    verdicts = {
        f"decode-{i}": Verdict(outcome, f"decode-{i} (vLLM 0.32.0, amd64): {outcome} here" if outcome != "passed"
                               else "", diagnosis="vLLM 0.11.2 disables prefix caching" if outcome == "xfailed"
                               else None)
        for i, outcome in enumerate(outcomes)
    }
    return observations, verdicts


@pytest.mark.parametrize(
    ("outcomes", "expected"),
    [
        (("passed", "passed"), "passed"),
        (("passed", "skipped"), "passed"),
        (("skipped", "skipped"), "skipped"),
        (("passed", "xfailed"), "xfailed"),
        (("xfailed", "failed", "passed"), "failed"),
        (("skipped", "failed"), "failed"),
    ],
)
def test_the_worst_outcome_decides(outcomes: tuple[str, ...], expected: str) -> None:
    observations, verdicts = fleet(*outcomes)
    verdict = evaluate.across(observations, lambda obs: verdicts[obs.target.name], "MUST")
    assert verdict.outcome == expected
    assert {name: v.outcome for name, v in verdict.targets.items()} == dict(zip(verdicts, outcomes, strict=True))


def test_first_line_names_the_failing_targets_and_counts_the_rest() -> None:
    observations, verdicts = fleet("passed", "failed", "xfailed", "failed")
    verdict = evaluate.across(observations, lambda obs: verdicts[obs.target.name], "SHOULD")
    first, *quoted = verdict.message.splitlines()
    assert first == "fails on decode-1, decode-3 (2 of 4 targets; 1 xfailed, 1 passed)."
    assert quoted == ["decode-1 (vLLM 0.32.0, amd64): failed here", "decode-3 (vLLM 0.32.0, amd64): failed here"]
    assert verdict.level == "SHOULD"


def test_documented_limitation_groups_targets_under_one_reason() -> None:
    observations, verdicts = fleet("xfailed", "passed", "xfailed")
    verdict = evaluate.across(observations, lambda obs: verdicts[obs.target.name], "MUST")
    assert verdict.diagnosis == "decode-0, decode-2: vLLM 0.11.2 disables prefix caching"


def test_a_large_fleet_is_quoted_in_part_and_named_in_full() -> None:
    observations, verdicts = fleet(*["failed"] * 40)
    verdict = evaluate.across(observations, lambda obs: verdicts[obs.target.name], "MUST")
    first, *quoted = verdict.message.splitlines()
    assert first == "fails on decode-0, decode-1, decode-2, decode-3, decode-4 and 35 more (40 of 40 targets)."
    assert len(quoted) == 6 and quoted[-1].startswith("... and 35 more: decode-5, decode-6,")
    assert quoted[-1].endswith("decode-39.")


def test_one_target_keeps_its_own_message() -> None:
    observations, verdicts = fleet("failed")
    verdict = evaluate.across(observations, lambda obs: verdicts[obs.target.name], "MUST")
    assert verdict.message == "decode-0 (vLLM 0.32.0, amd64): failed here"


def test_no_target_is_a_skip_that_says_how_to_name_one() -> None:
    verdict = evaluate.across([], lambda obs: Verdict("passed"), "MUST")
    assert verdict.outcome == "skipped" and "--vllm-url" in verdict.message


def test_a_server_of_another_engine_is_skipped_by_vllms_own_checks_saying_what_it_runs() -> None:
    """A fleet mixing model servers (llm-d's engine label): an SGLang pod is not judged by a check of vLLM's
    metrics, at the check's level; the vLLM pod is."""
    fleet = [Observation(Target("decode-0", "http://10.0.0.0:8200")),
             Observation(Target("sglang-0", "http://10.0.0.1:30000", engine=Engine.SGLANG))]
    ok = Verdict(Outcome.PASSED, "", "SHOULD")
    verdict = evaluate.across(fleet, lambda obs: ok, Level.SHOULD)
    assert verdict.outcome == Outcome.PASSED
    assert verdict.targets["sglang-0"] == Verdict(
        Outcome.SKIPPED, "this server runs sglang, not vLLM: the checks of vLLM's own metrics do not apply to it "
        "(test_model_server.py checks what it serves the endpoint picker)", Level.SHOULD, target="sglang-0")
