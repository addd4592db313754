"""Unit tests of pytest_vllm_metrics.diagnose and its data (conformance/limitations.toml, diagnosis.toml)."""

from __future__ import annotations

import re
import string
from typing import Any

import pytest

from pytest_vllm_metrics.diagnose import Limitation, diagnose, known_limitation, limitations, rules

# The exact lines vLLM logs when it turns prefix caching off on a CPU (vllm/engine/arg_utils.py).
ARM_MESSAGE = ("Prefix caching is not supported for ARM and POWER, S390X and RISC-V CPUs; "
               "disabling it for V1 backend.")
POWER_MESSAGE = ("Prefix caching is not supported for POWER, S390X and RISC-V CPUs; "
                 "disabling it for V1 backend.")
RISCV_MESSAGE = "Prefix caching is not supported for RISC-V CPUs; disabling it for V1 backend."
VLLM_LOG_LINES = {ARM_MESSAGE, POWER_MESSAGE, RISCV_MESSAGE}

RULE_ORDER = [
    "renamed-before-0.9.2",
    "family-missing",
    "off-arch-unknown",
    "off",
    "v0-engine",
    "no-repeated-prefix",
    "prompt-shorter-than-block",
    "queries-without-hits",
    "lookups-skipped",
]


def prefix_off(arch: str, version: str | None, reported_off: bool = True) -> Limitation | None:
    return known_limitation("prefix_caching", arch, version, reported_off)


def facts(**overrides: Any) -> dict[str, Any]:
    """Facts, as evaluate gathers them, about a prefix-cache counter that did not move on a healthy server."""
    base: dict[str, Any] = {
        "family_missing": False,
        "old_name_present": False,
        "old_name": None,
        "prefix_caching": "True",
        "arch_known": True,
        "arch": "amd64",
        "version": "0.32.0",
        "repeated_prefix": True,
        "prefix_shorter_than_block": False,
        "prefix_tokens": 300,
        "block_size": 128,
        "queries_moved": True,
    }
    base.update(overrides)
    return base


def rule_id(found: tuple[str, str] | None) -> str | None:
    return found[0] if found else None


# -- known_limitation --------------------------------------------------------------------------------


def test_arm64_on_0_11_2_reported_off_is_the_arm_limitation() -> None:
    row = prefix_off("arm64", "0.11.2")

    assert row is not None
    assert row.message == ARM_MESSAGE
    assert row.arch == ("arm64",)
    assert "0.12.0" in row.fix


def test_arm64_release_candidate_counts_as_its_release() -> None:
    row = prefix_off("arm64", "0.11.1rc7")

    assert row is not None
    assert row.message == ARM_MESSAGE


def test_arm64_local_build_counts_as_its_release() -> None:
    assert prefix_off("arm64", "0.11.2+cpu") is not None


@pytest.mark.parametrize("version", ["0.11.0", "0.12.0", "0.12.0rc1", "0.32.0"])
def test_arm64_outside_0_11_1_to_0_11_x_has_no_limitation(version: str) -> None:
    assert prefix_off("arm64", version) is None


def test_arm64_with_caching_reported_on_is_never_a_limitation() -> None:
    assert prefix_off("arm64", "0.11.2", reported_off=False) is None


@pytest.mark.parametrize("arch", ["arm64", "ppc64le", "s390x", "riscv64"])
def test_never_a_limitation_on_architecture_alone(arch: str) -> None:
    for version in ("0.11.1", "0.11.2", "0.14.0", "0.16.0", "0.32.0"):
        assert prefix_off(arch, version, reported_off=False) is None


def test_unknown_version_is_no_limitation() -> None:
    assert prefix_off("arm64", None) is None


def test_ppc64le_on_0_16_is_the_power_limitation() -> None:
    row = prefix_off("ppc64le", "0.16.0")

    assert row is not None
    assert row.message == POWER_MESSAGE
    assert "0.17.0" in row.fix


def test_ppc64le_from_0_17_has_no_limitation() -> None:
    assert prefix_off("ppc64le", "0.17.0") is None
    assert prefix_off("s390x", "0.17.0") is None


@pytest.mark.parametrize(("arch", "version", "message"), [
    ("ppc64le", "0.11.1", ARM_MESSAGE),
    ("s390x", "0.12.0", ARM_MESSAGE),
    ("s390x", "0.15.1", ARM_MESSAGE),
    ("s390x", "0.16.1", POWER_MESSAGE),
    ("riscv64", "0.11.2", ARM_MESSAGE),
    ("riscv64", "0.16.0", POWER_MESSAGE),
    ("riscv64", "0.17.0", RISCV_MESSAGE),
])
def test_the_message_follows_the_version_that_logs_it(arch: str, version: str, message: str) -> None:
    row = prefix_off(arch, version)

    assert row is not None
    assert row.message == message


def test_riscv64_on_0_32_is_still_the_riscv_limitation() -> None:
    row = prefix_off("riscv64", "0.32.0")

    assert row is not None
    assert row.message == RISCV_MESSAGE
    assert "--vllm-exempt-feature=prefix_caching" in row.fix


@pytest.mark.parametrize("version", ["0.11.1rc7", "0.11.2", "0.12.0", "0.16.0", "0.17.0", "0.32.0", "9.9.9"])
def test_amd64_never_has_a_limitation(version: str) -> None:
    assert prefix_off("amd64", version) is None


def test_other_features_have_no_limitation() -> None:
    assert known_limitation("lora", "arm64", "0.11.2", True) is None


def test_reason_quotes_the_log_line_its_source_and_fix() -> None:
    row = prefix_off("arm64", "0.11.2")
    assert row is not None

    reason = row.reason("arm64", "0.11.2")

    assert reason.startswith("vLLM 0.11.2 disables prefix caching on arm64 CPUs: ")
    assert f'"{ARM_MESSAGE}"' in reason
    assert row.source in reason
    assert reason.endswith(f"fix: {row.fix}")


# -- limitations.toml --------------------------------------------------------------------------------


def test_every_limitation_message_is_a_line_vllm_logs() -> None:
    assert limitations()
    for row in limitations():
        assert row.message in VLLM_LOG_LINES, row.message


def test_every_limitation_names_a_source_in_vllm_and_a_fix() -> None:
    for row in limitations():
        assert row.source.startswith("vllm/"), row.source
        assert row.fix.strip(), row
        assert row.feature == "prefix_caching"
        assert row.device == "cpu"


def test_limitation_windows_do_not_overlap_for_an_architecture() -> None:
    versions = [f"0.{minor}.{patch}" for minor in range(9, 35) for patch in range(3)]
    for arch in ("arm64", "ppc64le", "s390x", "riscv64"):
        for version in versions:
            matching = [row for row in limitations() if arch in row.arch and row.versions.contains(version)]
            assert len(matching) <= 1, (arch, version, matching)


# -- diagnose: the rule order of diagnosis.toml -------------------------------------------------------


def test_rules_are_in_the_documented_order() -> None:
    assert [rule.id for rule in rules()] == RULE_ORDER


def test_every_rule_placeholder_is_a_fact_evaluate_provides() -> None:
    provided = set(facts())
    for rule in rules():
        placeholders = {field for _, field, _, _ in string.Formatter().parse(rule.message) if field}
        assert placeholders <= provided, (rule.id, placeholders - provided)
        assert set(rule.when) <= provided, rule.id


@pytest.mark.parametrize(("overrides", "expected"), [
    ({"family_missing": True, "old_name_present": True, "old_name": "vllm:gpu_prefix_cache_hits_total"},
     "renamed-before-0.9.2"),
    ({"family_missing": True}, "family-missing"),
    ({"prefix_caching": "False", "arch_known": False, "arch": "unknown"}, "off-arch-unknown"),
    ({"prefix_caching": "False"}, "off"),
    ({"prefix_caching": "None"}, "v0-engine"),
    ({"repeated_prefix": False}, "no-repeated-prefix"),
    ({"prefix_shorter_than_block": True, "prefix_tokens": 40}, "prompt-shorter-than-block"),
    ({}, "queries-without-hits"),
    ({"queries_moved": False}, "lookups-skipped"),
])
def test_diagnose_picks_the_rule(overrides: dict[str, Any], expected: str) -> None:
    assert rule_id(diagnose(facts(**overrides))) == expected


@pytest.mark.parametrize(("overrides", "expected"), [
    # a missing family explains everything else
    ({"family_missing": True, "prefix_caching": "False", "repeated_prefix": False}, "family-missing"),
    # the old name wins over a plain missing family
    ({"family_missing": True, "old_name_present": True, "old_name": "x", "prefix_caching": "missing"},
     "renamed-before-0.9.2"),
    # caching reported off wins over a workload problem
    ({"prefix_caching": "False", "repeated_prefix": False, "queries_moved": False}, "off"),
    ({"prefix_caching": "False", "arch_known": False, "prefix_shorter_than_block": True}, "off-arch-unknown"),
    # a workload that repeated nothing wins over a short prefix
    ({"repeated_prefix": False, "prefix_shorter_than_block": True}, "no-repeated-prefix"),
    # a short prefix wins over queries without hits
    ({"prefix_shorter_than_block": True, "queries_moved": False}, "prompt-shorter-than-block"),
])
def test_diagnose_takes_the_most_specific_rule_first(overrides: dict[str, Any], expected: str) -> None:
    assert rule_id(diagnose(facts(**overrides))) == expected


def test_arch_known_false_with_caching_on_is_not_off_arch_unknown() -> None:
    assert rule_id(diagnose(facts(arch_known=False, arch="unknown"))) == "queries-without-hits"


def test_no_rule_when_nothing_is_known_to_be_wrong() -> None:
    assert diagnose(facts(prefix_caching="missing", queries_moved=False)) is None
    assert diagnose({}) is None


def test_lookups_skipped_needs_caching_reported_on() -> None:
    assert diagnose(facts(prefix_caching="missing", queries_moved=False)) is None
    assert rule_id(diagnose(facts(prefix_caching="True", queries_moved=False))) == "lookups-skipped"


# -- diagnose: the messages --------------------------------------------------------------------------


def test_renamed_message_names_the_old_family() -> None:
    old_name = "vllm:gpu_prefix_cache_hits_total"
    found = diagnose(facts(family_missing=True, old_name_present=True, old_name=old_name))

    assert found is not None
    assert found[1].startswith("the server exposes vllm:gpu_prefix_cache_hits_total instead")


def test_family_missing_message_names_the_version() -> None:
    found = diagnose(facts(family_missing=True, version="0.9.1"))

    assert found is not None
    assert "(vLLM 0.9.1)" in found[1]


def test_off_message_names_the_arch_and_version() -> None:
    found = diagnose(facts(prefix_caching="False", arch="arm64", version="0.12.0"))

    assert found is not None
    assert "on a node of architecture arm64, where vLLM 0.12.0 does not disable it by itself" in found[1]
    assert "--no-enable-prefix-caching" in found[1]


def test_short_prefix_message_names_prefix_and_block_sizes() -> None:
    found = diagnose(facts(prefix_shorter_than_block=True, prefix_tokens=40, block_size=528))

    assert found is not None
    assert "shared prompt prefix (40 tokens) is shorter than one KV block of 528 tokens" in found[1]


def test_queries_without_hits_message_names_prefix_and_block() -> None:
    found = diagnose(facts(prefix_tokens=300, block_size=128))

    assert found is not None
    assert "a shared prefix of 300 tokens (block 128)" in found[1]


def test_missing_placeholder_facts_read_unknown() -> None:
    found = diagnose({"family_missing": True})

    assert found is not None
    assert "(vLLM unknown)" in found[1]


@pytest.mark.parametrize("overrides", [
    {"family_missing": True, "old_name_present": True, "old_name": "vllm:gpu_prefix_cache_hits_total"},
    {"family_missing": True},
    {"prefix_caching": "False", "arch_known": False},
    {"prefix_caching": "False"},
    {"prefix_caching": "None"},
    {"repeated_prefix": False},
    {"prefix_shorter_than_block": True},
    {},
    {"queries_moved": False},
])
def test_every_message_is_fully_filled(overrides: dict[str, Any]) -> None:
    found = diagnose(facts(**overrides))

    assert found is not None
    assert not re.search(r"\{\w+\}", found[1]), found[1]
