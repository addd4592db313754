"""Versions: the plugin's own, and vLLM version ranges. Pre-releases and local builds count as their release:
0.11.1rc7+cpu is 0.11.1."""

from __future__ import annotations

from functools import lru_cache

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

# The plugin's version: the one source (pyproject.toml reads it, the package root re-exports it, the reports state it).
__version__ = "0.1.0"


def release_of(version: str) -> Version | None:
    """The release a version string belongs to, or None when it is not a PEP 440 version."""
    try:
        parsed = Version(version)  # PEP 440 allows the surrounding spaces and the leading "v" of "v0.32.0"
    except InvalidVersion:
        return None
    return Version(".".join(str(part) for part in parsed.release))


class VersionRange:
    """A PEP 440 specifier such as ">=0.11.1,<0.12.0", matched against a version's release."""

    def __init__(self, spec: str) -> None:
        try:
            self._spec = SpecifierSet(spec)
        except InvalidSpecifier:
            raise ValueError(
                f"versions = {spec!r} is not a PEP 440 version specifier; write it like '>=0.11.1,<0.12.0'."
            ) from None
        self.text = spec

    @lru_cache(maxsize=1024)  # noqa: B019  (ranges live as long as the catalog; a fleet asks the same few)
    def contains(self, version: str | None) -> bool:
        """Whether `version` is in the range. An unknown or unreadable version (a git describe string, say)
        counts as the newest vLLM: it matches open-ended ranges only."""
        release = release_of(version) if version is not None else None
        if release is None:
            return all(spec.operator in (">=", ">", "!=") for spec in self._spec)
        return self._spec.contains(release, prereleases=True)

    def __repr__(self) -> str:
        return f"VersionRange({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VersionRange) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)
