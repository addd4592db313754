"""The metric catalog: expectations as data (conformance/catalog.toml), loaded and validated once."""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .versions import VersionRange

LEVELS = ("MUST", "SHOULD", "MAY")
TYPES = ("counter", "gauge", "histogram", "summary", "info")
FEATURES = (
    "core",
    "prefix_caching",
    "lora",
    "spec_decode",
    "kv_connector",
    "kv_offload",
    "multimodal",
    "mfu",
    "http",
)
PRESENT = ("startup", "traffic")
MOVES = ("increases",)
QUANTITIES = ("requests", "prompt_tokens", "generation_tokens", "block_size")

_REQUIRED = ("name", "type", "level", "feature", "versions")
_OPTIONAL = ("labels", "present", "moves", "at_least", "info_labels", "replaced_by", "replaces", "meaning")


class CatalogError(Exception):
    """A catalog file that cannot be used; the message names the file, the entry and the fix."""


@dataclass(frozen=True)
class Entry:
    name: str
    type: str
    level: str
    feature: str
    versions: VersionRange
    labels: tuple[str, ...] = ()
    present: str = "startup"
    moves: str | None = None
    at_least: str | None = None
    info_labels: tuple[str, ...] = ()
    replaced_by: str | None = None
    replaces: str | None = None
    meaning: str = ""
    source: str = field(default="bundled", compare=False)

    @property
    def id(self) -> str:
        """The pytest id of this entry: the exposed name."""
        return self.name

    def applies_to(self, version: str | None) -> bool:
        """Whether a server of this vLLM version emits the family by default (unknown: the newest vLLM)."""
        return self.versions.contains(version)


@dataclass(frozen=True)
class Catalog:
    entries: tuple[Entry, ...]

    def __iter__(self) -> Any:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, name: str) -> Entry | None:
        for entry in self.entries:
            if entry.name == name:
                return entry
        return None

    def moving(self) -> tuple[Entry, ...]:
        return tuple(e for e in self.entries if e.moves)


def bundled_catalog_path() -> Path:
    return Path(str(resources.files("pytest_vllm_metrics.conformance").joinpath("catalog.toml")))


def conformance_data(name: str) -> dict[str, Any]:
    """One of the bundled suite's TOML data files (features, limitations, diagnosis, dashboards)."""
    text = resources.files("pytest_vllm_metrics.conformance").joinpath(name).read_text(encoding="utf-8")
    return tomllib.loads(text)


def load_catalog(extra: Sequence[Path] = ()) -> Catalog:
    """The bundled catalog, then each user file in order; a user entry replaces a bundled one of the same name."""
    by_name: dict[str, Entry] = {}
    files = [(bundled_catalog_path(), "bundled"), *((path, str(path)) for path in extra)]
    for path, source in files:
        for entry in _load_file(path, source):
            by_name[entry.name] = entry
    return Catalog(tuple(by_name.values()))


def _load_file(path: Path, source: str) -> Iterable[Entry]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CatalogError(
            f"catalog file {path} does not exist; check the path given to --vllm-catalog "
            f"(it is resolved from the directory pytest runs in)."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError(f"catalog file {path} cannot be read ({exc}); make it a readable UTF-8 file.") from None
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(
            f"catalog file {path} is not valid TOML: {exc}; fix the syntax (see conformance/catalog.toml "
            f"in the plugin for the format)."
        ) from None
    unknown_tables = sorted(set(data) - {"metric"})
    if unknown_tables:
        raise CatalogError(
            f"catalog file {path} has unknown top-level key(s) {', '.join(unknown_tables)}; "
            f"entries go in [[metric]] tables."
        )
    raw_entries = data.get("metric", [])
    if not isinstance(raw_entries, list):
        raise CatalogError(f"catalog file {path}: 'metric' must be an array of tables, written [[metric]].")
    for index, raw in enumerate(raw_entries, start=1):
        if not isinstance(raw, dict):
            raise CatalogError(f"catalog file {path}: entry {index} is {raw!r}, not a table; write each entry as "
                               f"a [[metric]] table.")
    return [_entry(raw, path, index, source) for index, raw in enumerate(raw_entries, start=1)]


def _entry(raw: dict[str, Any], path: Path, index: int, source: str) -> Entry:
    where = f"catalog file {path}, entry {index} ({raw.get('name', 'no name')})"
    unknown = sorted(set(raw) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise CatalogError(
            f"{where} has unknown field(s) {', '.join(unknown)}; valid fields are "
            f"{', '.join(_REQUIRED + _OPTIONAL)}."
        )
    missing = [key for key in _REQUIRED if key not in raw]
    if missing:
        raise CatalogError(f"{where} lacks the required field(s) {', '.join(missing)}.")
    _choice(where, raw, "type", TYPES)
    _choice(where, raw, "level", LEVELS)
    _choice(where, raw, "feature", FEATURES)
    _choice(where, raw, "present", PRESENT)
    _choice(where, raw, "moves", MOVES)
    _choice(where, raw, "at_least", QUANTITIES)
    for key in ("labels", "info_labels"):
        value = raw.get(key, [])
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise CatalogError(f"{where}: {key} must be a list of label names, like [\"engine\", \"model_name\"].")
    if not str(raw["versions"]).strip():
        raise CatalogError(f"{where}: versions is empty; write a specifier like '>=0.9.2' (any version: '>=0').")
    try:
        versions = VersionRange(str(raw["versions"]))
    except ValueError as exc:
        raise CatalogError(f"{where}: {exc}") from None
    return Entry(
        name=str(raw["name"]),
        type=raw["type"],
        level=raw["level"],
        feature=raw["feature"],
        versions=versions,
        labels=tuple(raw.get("labels", ())),
        present=raw.get("present", "startup"),
        moves=raw.get("moves"),
        at_least=raw.get("at_least"),
        info_labels=tuple(raw.get("info_labels", ())),
        replaced_by=raw.get("replaced_by"),
        replaces=raw.get("replaces"),
        meaning=raw.get("meaning", ""),
        source=source,
    )


def _choice(where: str, raw: dict[str, Any], key: str, valid: tuple[str, ...]) -> None:
    if key in raw and raw[key] not in valid:
        raise CatalogError(f"{where}: {key} = {raw[key]!r} is not one of {', '.join(valid)}.")
