"""The suite's data files (conformance/*.toml, sim/*.toml, users' --vllm-catalog files), decoded into typed,
frozen structures and checked as they load.

Each file has a schema here (`msgspec.Struct`s: unknown keys refused, values typed); `decode` turns TOML text into
it, and a file of the wrong shape raises `DataError`, one paragraph naming the file, the entry (its index and
name), the key, the value, the expected type and what to write instead. The bundled files are decoded once per
process (the accessors below); their readers use attributes, never dictionary keys.
"""

from __future__ import annotations

import re
import types
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

import msgspec
import msgspec.toml

from .schemas import (
    AccountingFile,
    CatalogFile,
    DashboardsFile,
    DiagnosisFile,
    EnginesFile,
    EppFile,
    FamiliesFile,
    FeaturesFile,
    HygieneFile,
    LimitationsFile,
    MultinodeFile,
    ProfilesFile,
    RelationsFile,
    UpgradeFile,
)
from .versions import VersionRange

S = TypeVar("S", bound=msgspec.Struct)


class DataError(Exception):
    """A data file that does not have the shape its schema says; the message names the file, the entry, the key,
    the expected type and the fix."""


# -- loading ---------------------------------------------------------------------------------------------------

CONFORMANCE = "pytest_vllm_metrics.conformance"
SIMULATOR = "pytest_vllm_metrics.sim"
# Every bundled data file and its schema (tests/test_data.py loads each one).
BUNDLED: dict[tuple[str, str], type[msgspec.Struct]] = {
    (CONFORMANCE, "catalog.toml"): CatalogFile,
    (CONFORMANCE, "features.toml"): FeaturesFile,
    (CONFORMANCE, "limitations.toml"): LimitationsFile,
    (CONFORMANCE, "diagnosis.toml"): DiagnosisFile,
    (CONFORMANCE, "accounting.toml"): AccountingFile,
    (CONFORMANCE, "relations.toml"): RelationsFile,
    (CONFORMANCE, "hygiene.toml"): HygieneFile,
    (CONFORMANCE, "epp.toml"): EppFile,
    (CONFORMANCE, "upgrade.toml"): UpgradeFile,
    (CONFORMANCE, "multinode.toml"): MultinodeFile,
    (CONFORMANCE, "dashboards.toml"): DashboardsFile,
    (CONFORMANCE, "engines.toml"): EnginesFile,
    (SIMULATOR, "profiles.toml"): ProfilesFile,
    (SIMULATOR, "families.toml"): FamiliesFile,
}


def bundled_path(package: str, name: str) -> Path:
    return Path(str(resources.files(package).joinpath(name)))


def decode(text: str, schema: type[S], file: str, guide: str = "") -> S:
    """`text`, the TOML of `file` (a phrase naming it: "catalog file user.toml"), as `schema`. DataError when it
    is not TOML or not of that shape; `guide` ends the syntax error's message (where the format is shown)."""
    try:
        return msgspec.toml.decode(text, type=schema, dec_hook=_dec_hook)
    except msgspec.ValidationError as exc:  # a subclass of DecodeError: first
        raise DataError(explain(str(exc), msgspec.toml.decode(text), schema, file)) from None
    except msgspec.DecodeError as exc:
        raise DataError(f"{file} is not valid TOML: {exc}; fix the syntax{guide}.") from None


def read(path: Path, schema: type[S]) -> S:
    """The data file at `path` as `schema` (DataError when it has another shape)."""
    return decode(path.read_text(encoding="utf-8"), schema, f"data file {path}")


@cache
def bundled(package: str, name: str) -> msgspec.Struct:
    """A bundled data file, decoded with its schema (once per process)."""
    return read(bundled_path(package, name), BUNDLED[package, name])


def _typed(package: str, name: str, schema: type[S]) -> S:
    found = bundled(package, name)
    assert isinstance(found, schema)
    return found


def catalog() -> CatalogFile:
    return _typed(CONFORMANCE, "catalog.toml", CatalogFile)


def features() -> FeaturesFile:
    return _typed(CONFORMANCE, "features.toml", FeaturesFile)


def limitations() -> LimitationsFile:
    return _typed(CONFORMANCE, "limitations.toml", LimitationsFile)


def diagnosis() -> DiagnosisFile:
    return _typed(CONFORMANCE, "diagnosis.toml", DiagnosisFile)


def accounting() -> AccountingFile:
    return _typed(CONFORMANCE, "accounting.toml", AccountingFile)


def relations() -> RelationsFile:
    return _typed(CONFORMANCE, "relations.toml", RelationsFile)


def hygiene() -> HygieneFile:
    return _typed(CONFORMANCE, "hygiene.toml", HygieneFile)


def epp() -> EppFile:
    return _typed(CONFORMANCE, "epp.toml", EppFile)


def upgrade() -> UpgradeFile:
    return _typed(CONFORMANCE, "upgrade.toml", UpgradeFile)


def multinode() -> MultinodeFile:
    return _typed(CONFORMANCE, "multinode.toml", MultinodeFile)


def dashboards() -> DashboardsFile:
    return _typed(CONFORMANCE, "dashboards.toml", DashboardsFile)


def engines() -> EnginesFile:
    return _typed(CONFORMANCE, "engines.toml", EnginesFile)


def sim_profiles() -> ProfilesFile:
    return _typed(SIMULATOR, "profiles.toml", ProfilesFile)


def sim_families() -> FamiliesFile:
    return _typed(SIMULATOR, "families.toml", FamiliesFile)


def _dec_hook(type_: type[Any], value: Any) -> Any:
    """The types TOML does not have: a version range is written as a PEP 440 specifier string."""
    if type_ is VersionRange:
        if not isinstance(value, str):
            # worded as msgspec words its own type errors, so that the message reads like any other
            raise TypeError(f"Expected `str`, got `{type(value).__name__}`")
        if not value.strip():
            raise ValueError("versions is empty; write a specifier like '>=0.9.2' (any version: '>=0')")
        return VersionRange(value)
    raise NotImplementedError(type_)


# -- what a wrong file's message says --------------------------------------------------------------------------
# msgspec reports the first problem with its place (`$.metric[0].labels`, `[...]` for a table's key); the message
# is rebuilt from that place, the file's own tables and the schema: the entry by index and name, the key, the
# value, the expected type. A table's unknown and missing keys are all listed, before any value of it.

_AT = re.compile(r"^(?P<problem>.*?)(?: - at (?P<key>`key` in )?`(?P<path>\$[^`]*)`)?$", re.DOTALL)
_SEGMENT = re.compile(r"\.(?P<field>[^.\[]+)|\[(?P<index>\d+)\]|(?P<key>\[\.\.\.\])")
_EXPECTED = re.compile(r"^Expected `[^`]+`[^,]*, got \S+$")
_ENUM = re.compile(r"^Invalid enum value ")
_NAMED_BY = ("name", "id", "family")  # the field that names an entry, if its table has one

_PLURAL = {str: "strings", int: "integers", float: "numbers", bool: "booleans"}


class _Node:
    """One step of the path into the file: the key (field, index or table key), its value and its type."""

    def __init__(self, step: str | int | None, value: Any, type_: Any) -> None:
        self.step, self.value, self.declared, self.type = step, value, type_, _bare(type_)

    @property
    def struct(self) -> type[msgspec.Struct] | None:
        return self.type if isinstance(self.type, type) and issubclass(self.type, msgspec.Struct) else None

    @property
    def is_table(self) -> bool:
        return self.struct is not None or get_origin(self.type) is dict


def explain(error: str, raw: dict[str, Any], schema: type[msgspec.Struct], file: str) -> str:
    """The message for msgspec's `error` about `raw` (the file's TOML tables) decoded as `schema`."""
    try:
        return _explain(error, raw, schema, file)
    except Exception:  # a message must come out whatever the file holds: msgspec's own, with the file
        return f"{file}: {error}."


def _explain(error: str, raw: dict[str, Any], schema: type[msgspec.Struct], file: str) -> str:
    match = _AT.match(error)
    assert match is not None
    problem, on_key = match["problem"], bool(match["key"])
    nodes = _walk(raw, schema, match["path"] or "$")
    single = len(msgspec.structs.fields(schema)) == 1
    if on_key:  # a table's key that is not one the schema allows
        table = nodes[-1]
        key_type = get_args(table.type)[0]
        bad = next(k for k in table.value if not _fits(k, key_type))
        return f"{_where(file, nodes, single)}: the key {bad!r} is not {_describe(key_type)}."
    # the innermost table holding the problem: the last node for a problem of a table, else the one before its key
    at_table = nodes[-1].is_table and not (_EXPECTED.match(problem) or _ENUM.match(problem))
    table_at = len(nodes) - 1 if at_table else max(i for i, n in enumerate(nodes[:-1]) if n.is_table)
    table = nodes[table_at]
    where = _where(file, nodes[: table_at + 1], single)
    shape = _shape(table, where, top=table_at == 0, single=single)
    if shape:
        return shape
    if at_table:
        return f"{where}: {_sentence(problem)}"
    key, rest = nodes[table_at + 1], nodes[table_at + 2:]
    shown = _key(key.step)
    if _EXPECTED.match(problem) or _ENUM.match(problem):
        if not rest:
            if _ENUM.match(problem):
                return f"{where}: {shown} = {key.value!r} is not {_describe(key.declared, shown)}."
            return (f"{where}: {shown} = {_value(key.value)} is {_kind(key.value)}, not "
                    f"{_describe(key.declared, shown)}.")
        inner = rest[-1]
        if len(rest) == 1 and isinstance(inner.step, int) and inner.struct is not None:
            return (f"{where}: entry {inner.step + 1} is {inner.value!r}, not a table; write each entry as a "
                    f"[[{_dotted(nodes[1: table_at + 2])}]] table.")
        path = shown + "".join(f"[{n.step}]" if isinstance(n.step, int) else f".{_key(n.step)}" for n in rest)
        got = "not " if _ENUM.match(problem) else f"{_kind(inner.value)}, not "
        return (f"{where}: {path} = {_value(inner.value)} is {got}{_describe(inner.declared)} ({shown} must be "
                f"{_describe(key.declared, shown)}).")
    return f"{where}: {_sentence(problem)}"  # a check of our own (a version specifier, a rule between keys)


def _walk(raw: dict[str, Any], schema: type[msgspec.Struct], path: str) -> list[_Node]:
    nodes = [_Node(None, raw, schema)]
    for match in _SEGMENT.finditer(path):
        parent = nodes[-1]
        if match["field"] is not None:
            field = next(f for f in msgspec.structs.fields(parent.struct or schema) if f.encode_name == match["field"])
            nodes.append(_Node(field.encode_name, parent.value.get(field.encode_name), field.type))
        elif match["index"] is not None:
            index = int(match["index"])
            nodes.append(_Node(index, parent.value[index], _element(parent.type, index)))
        else:
            key_type, value_type = get_args(parent.type)
            key = next(k for k, v in parent.value.items() if not (_fits(k, key_type) and _fits(v, value_type)))
            nodes.append(_Node(key, parent.value[key], value_type))
    return nodes


def _shape(table: _Node, where: str, top: bool, single: bool) -> str:
    """The unknown, then the missing keys of a table of the schema, if it has any."""
    struct = table.struct
    if struct is None or not isinstance(table.value, dict):
        return ""
    fields = msgspec.structs.fields(struct)
    names = [f.encode_name for f in fields]
    unknown = sorted(set(table.value) - set(names))
    if unknown:
        if not top:
            return f"{where} has unknown field(s) {', '.join(unknown)}; valid fields are {', '.join(names)}."
        only = fields[0]
        hint = (f"entries go in [[{only.encode_name}]] tables." if single and _is_tables(only.type)
                else f"valid top-level keys are {', '.join(names)}.")
        return f"{where} has unknown top-level key(s) {', '.join(unknown)}; {hint}"
    missing = [f for f in fields if f.required and f.encode_name not in table.value]
    if missing:
        listed = ", ".join(f"{f.encode_name} ({_describe(f.type, f.encode_name)})" for f in missing)
        return f"{where} lacks the required {'top-level key(s)' if top else 'field(s)'} {listed}."
    return ""


def _where(file: str, nodes: list[_Node], single: bool) -> str:
    """The file, then the table: `entry 2 (name)` in a file of one array of tables (a catalog), else
    `[[store]] entry 2 (name)`, `[gauges]`, `[feature.lora]`; a table inside an entry: `entry 2 (name), in when`."""
    parts: list[str] = []
    dotted: list[_Node] = []
    for node in nodes[1:]:
        if isinstance(node.step, int):
            entry = f"entry {node.step + 1}{_entry_name(node)}"
            parts.append(entry if single and not parts and len(dotted) == 1 else f"[[{_dotted(dotted)}]] {entry}")
            dotted = []
        else:
            dotted.append(node)
    if dotted:
        parts.append(f"in {_dotted(dotted)}" if parts else f"[{_dotted(dotted)}]")
    return ", ".join([file, *parts])


def _entry_name(node: _Node) -> str:
    if node.struct is None or not isinstance(node.value, dict):
        return ""
    names = [f.encode_name for f in msgspec.structs.fields(node.struct)]
    field = next((name for name in _NAMED_BY if name in names), None)
    if field is None:
        return ""
    return f" ({node.value.get(field, 'no name')})"


def _dotted(nodes: list[_Node]) -> str:
    return ".".join(_key(n.step) for n in nodes if n.step is not None and not isinstance(n.step, int))


def _key(step: object) -> str:
    text = str(step)
    return text if re.fullmatch(r"[A-Za-z0-9_-]+", text) else f'"{text}"'


def _fits(value: Any, type_: Any) -> bool:
    try:
        msgspec.convert(value, type_, dec_hook=_dec_hook, str_keys=True)
    except (msgspec.ValidationError, TypeError, ValueError):
        return False
    return True


def _bare(type_: Any) -> Any:
    """The type without its annotations, and without None or UNSET (a default, never written in TOML)."""
    if get_origin(type_) is Annotated:
        return _bare(get_args(type_)[0])
    if get_origin(type_) in (Union, types.UnionType):
        kept = [t for t in get_args(type_) if t not in (type(None), msgspec.UnsetType)]
        if len(kept) == 1:
            return _bare(kept[0])
    return type_


def _element(type_: Any, index: int) -> Any:
    args = get_args(type_)
    return args[0] if len(args) == 2 and args[1] is Ellipsis else args[index]


def _is_tables(type_: Any) -> bool:
    bare = _bare(type_)
    if get_origin(bare) is not tuple:
        return False
    element = _bare(get_args(bare)[0])
    return isinstance(element, type) and issubclass(element, msgspec.Struct)


def _describe(type_: Any, key: str = "") -> str:
    """What a value of this type is, in the file's words."""
    if get_origin(type_) is Annotated:
        for meta in get_args(type_)[1:]:
            if isinstance(meta, msgspec.Meta) and meta.description:
                return meta.description
        return _describe(get_args(type_)[0], key)
    bare = _bare(type_)
    origin, args = get_origin(bare), get_args(bare)
    if bare is VersionRange:
        return "a PEP 440 version specifier, like '>=0.9.2'"
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in args if a is not msgspec.UnsetType)
    if origin is tuple:
        if _is_tables(bare):
            return f"an array of tables, written [[{key}]]" if key else "an array of tables"
        if len(args) == 2 and args[1] is Ellipsis:
            return f"an array of {_plural(args[0])}"
        return f"an array of {len(args)} {_plural(args[0])}"
    if origin is dict or (isinstance(bare, type) and issubclass(bare, msgspec.Struct)):
        return "a table"
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}.get(bare, str(bare))


def _plural(type_: Any) -> str:
    bare = _bare(type_)
    if get_origin(bare) is Literal:
        return "strings, each " + _describe(bare)
    if get_origin(bare) is tuple:
        return _describe(bare).replace("an array", "arrays", 1)
    if isinstance(bare, type) and issubclass(bare, msgspec.Struct):
        return "tables"
    return _PLURAL.get(bare, str(bare))


def _kind(value: Any) -> str:
    """What the file holds, in TOML's words."""
    for python, word in ((bool, "a boolean"), (int, "an integer"), (float, "a number"), (str, "a string"),
                         (dict, "a table")):
        if isinstance(value, python):
            return word
    if isinstance(value, list):
        return f"an array of {len(value)} item{'' if len(value) == 1 else 's'}"
    return "a date or time"


def _value(value: Any) -> str:
    """A value as the message shows it: Python's repr, as the catalog's messages always did, but TOML's booleans."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if not isinstance(value, dict) else "{...}"


def _sentence(text: str) -> str:
    return text if text.endswith(".") else text + "."
