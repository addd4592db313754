"""vLLM versions and version ranges (versions.py): a release read from a version string, and ranges half-open as
the catalog writes them."""

from __future__ import annotations

import pytest

from pytest_vllm_metrics.versions import VersionRange, release_of

# -- version ranges --------------------------------------------------------------------------------


@pytest.mark.parametrize(("version", "release"), [
    ("0.11.1rc7", "0.11.1"),
    ("0.32.0+cpu", "0.32.0"),
    ("0.11.1rc7+cpu", "0.11.1"),
    ("v0.11.2", "0.11.2"),
    (" 0.12.0 ", "0.12.0"),
])
def test_release_of_drops_prerelease_and_local_parts(version: str, release: str) -> None:
    assert str(release_of(version)) == release


def test_release_of_an_unreadable_version_is_none() -> None:
    assert release_of("main-abc123") is None


def test_prerelease_counts_as_its_release() -> None:
    arm_window = VersionRange(">=0.11.1,<0.12.0")

    assert arm_window.contains("0.11.1rc7") is True
    assert VersionRange(">=0.11.1").contains("0.11.1rc7") is True
    assert VersionRange("<0.11.1").contains("0.11.1rc7") is False


def test_local_build_counts_as_its_release() -> None:
    assert VersionRange(">=0.32.0").contains("0.32.0+cpu") is True
    assert VersionRange("==0.32.0").contains("0.32.0+cpu") is True
    assert VersionRange("<0.32.0").contains("0.32.0+cpu") is False


@pytest.mark.parametrize(("version", "inside"), [
    ("0.11.0", False), ("0.11.1", True), ("0.11.2", True), ("0.12.0", False), ("0.12.0rc1", False),
])
def test_half_open_range_bounds(version: str, inside: bool) -> None:
    assert VersionRange(">=0.11.1,<0.12.0").contains(version) is inside


def test_unreadable_version_matches_open_ended_ranges_only() -> None:
    assert VersionRange(">=0.9.2").contains("main-abc123") is True
    assert VersionRange(">=0.7.3,<0.11.0").contains("main-abc123") is False


def test_unknown_version_matches_open_ended_ranges_only() -> None:
    assert VersionRange(">=0.9.2").contains(None) is True
    assert VersionRange(">=0.11.1,<0.12.0").contains(None) is False


def test_bad_version_specifier_is_a_value_error_with_an_example() -> None:
    expected = r"'0\.11\.x' is not a PEP 440 version specifier.*>=0\.11\.1,<0\.12\.0"
    with pytest.raises(ValueError, match=expected):
        VersionRange("0.11.x")


def test_version_ranges_compare_by_text() -> None:
    assert VersionRange(">=0.9.2") == VersionRange(">=0.9.2")
    assert VersionRange(">=0.9.2") != VersionRange(">=0.9.3")
    assert len({VersionRange(">=0.9.2"), VersionRange(">=0.9.2")}) == 1
    assert repr(VersionRange(">=0.9.2")) == "VersionRange('>=0.9.2')"
