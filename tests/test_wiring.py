"""The wiring from evaluate into diagnose (and on into the dashboards' verdicts).

tests/test_diagnose.py checks the rules against a facts dict the test makes; these check what evaluate really
provides: every fact a rule of conformance/diagnosis.toml names (condition or placeholder) is one that
`evaluate._prefix_facts` computes, every rule is reachable from an observation, every documented limitation of
conformance/limitations.toml is reachable from what evaluate passes to `diagnose.known_limitation`, and a server
that reports prefix caching off gets that diagnosis in the verdict a user reads.
"""

from __future__ import annotations

import string
from typing import Any

import pytest

from conftest import HITS, LABELS, QUERIES, capture, observation, page
from pytest_vllm_metrics import diagnose, evaluate, judging, readers
from pytest_vllm_metrics.catalog import Entry, load_catalog
from pytest_vllm_metrics.observe import Observation
from pytest_vllm_metrics.outcome import Outcome, Verdict
from pytest_vllm_metrics.settings import ARCHITECTURES, Policy
from pytest_vllm_metrics.snapshot import Snapshot
from pytest_vllm_metrics.traffic import RequestRecord, TrafficResult

OLD_HITS = "vllm:gpu_prefix_cache_hits_total"


def hits_entry() -> Entry:
    entry = load_catalog().get(HITS)
    assert entry is not None and entry.feature == "prefix_caching" and entry.replaces == OLD_HITS
    return entry


def traffic(*, shares: bool = True, prefix_tokens: int = 40, block_size: int = 16) -> TrafficResult:
    records = [RequestRecord(kind, 200, 0.01, prompt_tokens=50, completion_tokens=2, shares_prefix=shares)
               for kind in ("completion", "completion-stream", "chat", "chat-stream")]
    return TrafficResult("tiny", block_size, records, prefix_tokens)


def did_not_move(caching: str = "True", *, arch: str = "amd64", version: str | None = "0.32.0",
                 after: dict[str, float] | None = None, queries: float = 0, workload: TrafficResult | None = None,
                 block_size: int = 16) -> Observation:
    """A server whose prefix-cache hits stayed at 0 across a workload of four requests."""
    before = page({HITS: 0, QUERIES: 0}, caching=caching, block_size=block_size)
    later = page(after if after is not None else {HITS: 0, QUERIES: queries}, caching=caching, block_size=block_size)
    return observation(before, later, workload or traffic(block_size=block_size), arch=arch, version=version)


def placeholders(text: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(text) if field}


# -- what evaluate provides against what diagnose declares ----------------------------------------------------


def test_every_fact_a_diagnosis_rule_names_is_one_evaluate_computes() -> None:
    provided = set(evaluate._prefix_facts(hits_entry(), did_not_move()))
    for rule in diagnose.rules():
        assert set(rule.when) <= provided, (rule.id, set(rule.when) - provided)
        assert placeholders(rule.message) <= provided, (rule.id, placeholders(rule.message) - provided)


def test_facts_evaluate_computes_for_a_server_that_reports_caching_off() -> None:
    facts = evaluate._prefix_facts(hits_entry(), did_not_move("False", arch="arm64", version="0.12.0",
                                                              workload=traffic(prefix_tokens=40)))
    assert facts == {
        "family_missing": False, "old_name_present": False, "old_name": None, "prefix_caching": "False",
        "arch_known": True, "arch": "arm64", "version": "0.12.0", "repeated_prefix": True,
        "prefix_shorter_than_block": False, "prefix_tokens": 40, "block_size": 16, "queries_moved": False,
    }


def test_a_server_that_does_not_report_caching_and_an_unknown_target_read_as_such() -> None:
    obs = did_not_move(arch="unknown", version=None)
    obs.before = obs.after = Snapshot.parse(f"# TYPE {HITS} counter\n{HITS}{LABELS} 0\n")
    facts = evaluate._prefix_facts(hits_entry(), obs)
    assert (facts["prefix_caching"], facts["arch_known"], facts["version"]) == ("missing", False, "unknown")


def test_every_limitation_is_for_a_feature_evaluate_explains_and_an_architecture_a_target_has() -> None:
    explained = {entry.feature for entry in load_catalog() if entry.feature == "prefix_caching"}
    for row in diagnose.limitations():
        assert row.feature in explained, row
        assert set(row.arch) <= set(ARCHITECTURES), row
        for text in (row.message, row.source, row.fix):
            assert not placeholders(text), (row, text)


CASES: list[tuple[str, dict[str, Any]]] = [
    ("renamed-before-0.9.2", {"after": {OLD_HITS: 30}}),
    ("family-missing", {"after": {QUERIES: 300}}),
    ("off-arch-unknown", {"caching": "False", "arch": "unknown"}),
    ("off", {"caching": "False"}),
    ("v0-engine", {"caching": "None"}),
    ("no-repeated-prefix", {"workload": traffic(shares=False)}),
    ("prompt-shorter-than-block", {"workload": traffic(prefix_tokens=10)}),
    ("queries-without-hits", {"queries": 200}),
    ("lookups-skipped", {}),
]


@pytest.mark.parametrize(("rule", "case"), CASES, ids=[rule for rule, _ in CASES])
def test_every_diagnosis_rule_is_reachable_from_an_observation(rule: str, case: dict[str, Any]) -> None:
    """The rule evaluate picks for a hits counter that did not move, with every placeholder filled from the
    observation (none read "unknown")."""
    verdict = evaluate.movement(hits_entry(), did_not_move(**case), Policy())
    assert verdict.outcome == Outcome.FAILED
    assert verdict.evidence["diagnosis_rule"] == rule
    assert verdict.diagnosis is not None and verdict.message.endswith(f" Diagnosis: {verdict.diagnosis}")
    assert "unknown" not in verdict.diagnosis.replace("architecture is unknown", "")
    assert sorted(rule for rule, _ in CASES) == sorted(r.id for r in diagnose.rules())


@pytest.mark.parametrize(("arch", "version"), [(row.arch[0], row.versions.text.split(",")[0].lstrip(">="))
                                               for row in diagnose.limitations()])
def test_every_documented_limitation_is_reachable_from_an_observation(arch: str, version: str) -> None:
    verdict = evaluate.movement(hits_entry(), did_not_move("False", arch=arch, version=version), Policy())
    assert verdict.outcome == Outcome.XFAILED, verdict.message
    assert verdict.evidence["documented_limitation"] == verdict.diagnosis


# -- end to end: the server's own "prefix caching off" reaches the text a user reads --------------------------


def test_no_prefix_caching_on_amd64_fails_with_the_flag_named_in_the_diagnosis() -> None:
    verdict = evaluate.movement(hits_entry(), did_not_move("False"), Policy())
    assert verdict.outcome == Outcome.FAILED
    assert verdict.message.startswith(f"decode-0 (vLLM 0.32.0, amd64): {HITS} went from 0 to 0 (+0)")
    found = diagnose.diagnose(evaluate._prefix_facts(hits_entry(), did_not_move("False")))
    assert found is not None and (verdict.evidence["diagnosis_rule"], verdict.diagnosis) == found
    assert ('vLLM reports enable_prefix_caching="False" in vllm:cache_config_info on a node of architecture amd64, '
            'where vLLM 0.32.0 does not disable it by itself: the server was started with --no-enable-prefix-caching'
            ) in verdict.message


def test_arm64_0_11_reporting_caching_off_is_the_documented_limitation_in_vllms_words() -> None:
    verdict = evaluate.movement(hits_entry(), did_not_move("False", arch="arm64", version="0.11.2"), Policy())
    assert verdict.outcome == Outcome.XFAILED
    assert verdict.diagnosis is not None
    assert verdict.diagnosis.startswith('vLLM 0.11.2 disables prefix caching on arm64 CPUs: "Prefix caching is not '
                                        'supported for ARM and POWER, S390X and RISC-V CPUs')
    assert verdict.message.endswith(verdict.diagnosis)


def test_arm64_0_11_reporting_caching_on_is_never_the_limitation() -> None:
    """The server's own word decides: a counter that did not move while caching is on is a failure."""
    verdict = evaluate.movement(hits_entry(), did_not_move("True", arch="arm64", version="0.11.2"), Policy())
    assert verdict.outcome == Outcome.FAILED
    assert verdict.evidence["diagnosis_rule"] == "lookups-skipped"


def test_prefix_hits_per_repeat_explains_with_the_same_diagnosis() -> None:
    verdict = evaluate.prefix_hits_per_repeat(hits_entry(), did_not_move("False", queries=0), Policy())
    assert verdict.outcome == Outcome.FAILED and verdict.evidence["diagnosis_rule"] == "off"


def test_real_capture_with_caching_off_reaches_the_hit_rate_panel_as_its_root_cause() -> None:
    before = capture("prefix-caching-off.before")
    after = capture("prefix-caching-off.after")
    obs = observation(before, after, traffic(block_size=128, prefix_tokens=300))
    movement = evaluate.movement(hits_entry(), obs, Policy())
    assert movement.evidence["diagnosis_rule"] == "off"
    panel = readers.Reader("perf", "KV Cache Hit Rate", (readers.Query(
        "A", f"sum(rate({HITS}[5m])) / sum(rate({QUERIES}[5m]))"),), dashboard_title="vLLM")
    verdict: Verdict = judging.judge_reader(panel, [obs], load_catalog(), Policy())
    assert verdict.outcome == Outcome.FAILED
    assert verdict.evidence["panel_verdict"] == "always zero / NaN"
    assert verdict.diagnosis == movement.diagnosis
    assert verdict.message.endswith(f"Root cause: {movement.diagnosis}")
