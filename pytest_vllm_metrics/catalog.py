"""The metric catalog: expectations as data (conformance/catalog.toml), loaded and validated once."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

from . import data, schemas
from .outcome import Level
from .versions import VersionRange

LEVELS: tuple[str, ...] = get_args(schemas.Level)
TYPES: tuple[str, ...] = get_args(schemas.MetricType)
FEATURES: tuple[str, ...] = get_args(schemas.Feature)
PRESENT: tuple[str, ...] = get_args(schemas.Present)
MOVES: tuple[str, ...] = get_args(schemas.Move)
QUANTITIES: tuple[str, ...] = get_args(schemas.Quantity)


class CatalogError(Exception):
    """A catalog file that cannot be used; the message names the file, the entry and the fix."""


@dataclass(frozen=True)
class Entry:
    name: str
    type: str
    level: Level
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
    return data.bundled_path(data.CONFORMANCE, "catalog.toml")


def load_catalog(extra: Sequence[Path] = ()) -> Catalog:
    """The bundled catalog, then each user file in order; a user entry replaces a bundled one of the same name."""
    by_name: dict[str, Entry] = {}
    files = [(data.catalog(), "bundled"), *((_read(path), str(path)) for path in extra)]
    for table, source in files:
        for entry in _entries(table, source):
            by_name[entry.name] = entry
    return Catalog(tuple(by_name.values()))


def _read(path: Path) -> schemas.CatalogFile:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CatalogError(
            f"catalog file {path} does not exist; check the path given to --vllm-catalog "
            f"(it is resolved from the directory pytest runs in)."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError(f"catalog file {path} cannot be read ({exc}); make it a readable UTF-8 file.") from None
    try:
        return data.decode(text, schemas.CatalogFile, f"catalog file {path}",
                           " (see conformance/catalog.toml in the plugin for the format)")
    except data.DataError as exc:
        raise CatalogError(str(exc)) from None


def _entries(table: schemas.CatalogFile, source: str) -> Iterable[Entry]:
    return [
        Entry(name=row.name, type=row.type, level=Level(row.level), feature=row.feature, versions=row.versions,
              labels=row.labels, present=row.present, moves=row.moves, at_least=row.at_least,
              info_labels=row.info_labels, replaced_by=row.replaced_by, replaces=row.replaces, meaning=row.meaning,
              source=source)
        for row in table.metric
    ]
