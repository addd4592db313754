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

from .versions import VersionRange

S = TypeVar("S", bound=msgspec.Struct)


class DataError(Exception):
    """A data file that does not have the shape its schema says; the message names the file, the entry, the key,
    the expected type and the fix."""


class Table(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A TOML table of a data file: a key the schema does not name is an error, not ignored. (Each subclass says
    frozen=True again: msgspec inherits it, mypy's dataclass view of the subclasses does not.)"""


# -- vocabularies --------------------------------------------------------------------------------------------

Level = Literal["MUST", "SHOULD", "MAY"]
MetricType = Literal["counter", "gauge", "histogram", "summary", "info"]
Feature = Literal["core", "prefix_caching", "lora", "spec_decode", "kv_connector", "kv_offload", "multimodal", "mfu",
                  "http"]
Present = Literal["startup", "traffic"]
Move = Literal["increases"]
Quantity = Literal["requests", "prompt_tokens", "generation_tokens", "block_size"]  # what at_least compares with
LabelNames = Annotated[tuple[str, ...],
                       msgspec.Meta(description='a list of label names, like ["engine", "model_name"]')]


# -- catalog.toml (and users' --vllm-catalog files) -------------------------------------------------------------


class Metric(Table, frozen=True):
    """One [[metric]] entry of a catalog."""

    name: str
    type: MetricType
    level: Level
    feature: Feature
    versions: VersionRange
    labels: LabelNames = ()
    present: Present = "startup"
    moves: Move | None = None
    at_least: Quantity | None = None
    info_labels: LabelNames = ()
    replaced_by: str | None = None
    replaces: str | None = None
    meaning: str = ""


class CatalogFile(Table, frozen=True):
    metric: tuple[Metric, ...] = ()


# -- features.toml ---------------------------------------------------------------------------------------------


class FeatureRule(Table, frozen=True):
    """How a feature shows on a server's page before traffic; none of the keys: it cannot be seen."""

    always: bool = False
    info: str = ""  # an info metric whose `label` has the value `equals`
    label: str = ""
    equals: str = ""
    expected: bool = False  # expected unless exempted
    families: tuple[str, ...] = ()  # any of these families exposed
    prefixes: tuple[str, ...] = ()  # any family name starting with one of these

    def __post_init__(self) -> None:
        if self.info and not (self.label and self.equals):
            raise ValueError(f"info = {self.info!r} needs label and equals too (the info label and its value)")


class FeaturesFile(Table, frozen=True):
    feature: dict[Feature, FeatureRule]


# -- limitations.toml, diagnosis.toml --------------------------------------------------------------------------


class Limitation(Table, frozen=True):
    """A platform limitation documented by vLLM: on these architectures and versions vLLM turns `feature` off."""

    feature: Feature
    device: str
    arch: tuple[str, ...]
    versions: VersionRange
    message: str  # vLLM's own log line
    source: str
    fix: str

    def reason(self, arch: str, version: str) -> str:
        return (f"vLLM {version} disables {self.feature.replace('_', ' ')} on {arch} CPUs: \"{self.message}\" "
                f"({self.source}); the server confirms it: vllm:cache_config_info has "
                f"enable_prefix_caching=\"False\"; fix: {self.fix}")


class LimitationsFile(Table, frozen=True):
    limitation: tuple[Limitation, ...]


# the facts evaluate computes about a prefix-cache counter that did not move (evaluate._prefix_facts)
Fact = Literal["family_missing", "old_name_present", "prefix_caching", "arch_known", "repeated_prefix",
               "prefix_shorter_than_block", "queries_moved"]


class Rule(Table, frozen=True):
    """A known cause: the first rule whose `when` facts all hold gives the diagnosis."""

    id: str
    when: dict[Fact, bool | str]
    message: str  # {placeholders} filled from the facts


class DiagnosisFile(Table, frozen=True):
    rule: tuple[Rule, ...]


# -- accounting.toml -------------------------------------------------------------------------------------------

# quantities of traffic.TrafficResult
Counted = Literal["requests", "choices", "engine_prompt_tokens", "generation_tokens", "decode_steps",
                  "engine_max_tokens"]


class ExactRow(Table, frozen=True):
    name: str  # a counter, a histogram (its _count) or a histogram's _sum sample
    equals: Counted
    not_with_feature: Feature | None = None
    not_with_why: str = ""


class AbortGauges(Table, frozen=True):
    """The gauges that must read 0 again after aborted streams, and the probe's bounds."""

    names: tuple[str, ...]
    streams: int
    max_tokens: int
    wait_seconds: float
    during_seconds: float
    poll_seconds: float


class AccountingFile(Table, frozen=True):
    quantity: dict[Counted, str]  # how each quantity is counted, for messages
    exact: tuple[ExactRow, ...]
    gauges: AbortGauges

    def __post_init__(self) -> None:
        for row in self.exact:
            if row.equals not in self.quantity:
                raise ValueError(f"[[exact]] {row.name} equals {row.equals}, which [quantity] does not describe; "
                                 f"add {row.equals} = \"how it is counted\" to [quantity]")


# -- relations.toml --------------------------------------------------------------------------------------------


class Relation(Table, frozen=True):
    """A relation between an optional feature's counters, judged on the workload's delta."""

    id: str
    kind: Literal["at_most", "non_increasing", "refreshed"]
    entry: str  # the catalog entry that gives the level and the versions
    why: str
    smaller: str = ""
    larger: str = ""
    family: str = ""
    by: str = ""
    sums_to: str = ""
    moved: str = ""


class RelationsFile(Table, frozen=True):
    relation: tuple[Relation, ...]


# -- hygiene.toml ----------------------------------------------------------------------------------------------


class Store(Table, frozen=True):
    name: str
    flag: str
    max_labels: int
    source: str


class TargetLabels(Table, frozen=True):
    """The labels each kind of Prometheus Operator scrape adds, and the kind the check assumes."""

    service_monitor: tuple[str, ...] = msgspec.field(name="ServiceMonitor")
    pod_monitor: tuple[str, ...] = msgspec.field(name="PodMonitor")
    assumed: Literal["ServiceMonitor", "PodMonitor"]


class Volatile(Table, frozen=True):
    family: str
    labels: tuple[str, ...]
    why: str


class SeriesCap(Table, frozen=True):
    max_per_family: int


class PageCap(Table, frozen=True):
    warn_bytes: int


class Duplicates(Table, frozen=True):
    process_labels: tuple[str, ...]


class HygieneFile(Table, frozen=True):
    store: tuple[Store, ...]
    target_labels: TargetLabels
    volatile: tuple[Volatile, ...]
    series: SeriesCap
    page: PageCap
    duplicates: Duplicates


# -- epp.toml --------------------------------------------------------------------------------------------------


class Generation(Table, frozen=True):
    """One naming generation of the endpoint picker's metrics."""

    name: str
    per_pod_queue: str
    pod_label: str
    ready: str
    average_kv: str
    average_queue: str

    @property
    def families(self) -> tuple[str, ...]:
        return self.per_pod_queue, self.ready, self.average_kv, self.average_queue


class Settle(Table, frozen=True):
    """How long the EPP's gauges may lag behind the pods', and how often both are read again meanwhile."""

    per_pod_seconds: float
    pool_seconds: float
    poll_seconds: float


class EppFile(Table, frozen=True):
    generation: tuple[Generation, ...]
    settle: Settle


# -- upgrade.toml ----------------------------------------------------------------------------------------------


class DeprecationPolicy(Table, frozen=True):
    flag: str
    text: str
    hidden_minors: int  # minor releases a family stays hidden (behind the flag) before vLLM removes it


class UpgradeFile(Table, frozen=True):
    policy: DeprecationPolicy
    removed_in: dict[str, str] = {}  # family -> the first release without it, where vLLM kept it longer


# -- multinode.toml --------------------------------------------------------------------------------------------


class ApiServer(Table, frozen=True):
    programs: tuple[tuple[str, str], ...]  # (program file name, subcommand)
    modules: tuple[str, ...]  # run with python -m


class WorkerScript(Table, frozen=True):
    file: str
    subcommand: str
    address_flag: str


class RayWorker(Table, frozen=True):
    start: tuple[str, ...]
    head_flag: str
    address_flags: tuple[str, ...]
    scripts: tuple[WorkerScript, ...]


class Flags(Table, frozen=True):
    switches: tuple[str, ...]
    aliases: dict[str, str]  # short form -> long name


class LeaderWorkerSet(Table, frozen=True):
    name: str
    group_index: str
    group_key: str
    worker_index: str
    leader_name: str
    worker_index_env: str


class MultinodeFile(Table, frozen=True):
    server: ApiServer
    ray_worker: RayWorker
    flags: Flags
    lws: LeaderWorkerSet


# -- dashboards.toml (what the judging of readers knows beyond the catalog: readers.data) --------------------------


class Component(Table, frozen=True, kw_only=True):
    name: str
    prefixes: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    fix: str


class CollectionPrefix(Table, frozen=True):
    prefixes: tuple[str, ...]
    how: str


class FleetLabels(Table, frozen=True):
    per_pod: tuple[str, ...]
    scraped_per_pod: tuple[str, ...]
    within_line: tuple[str, ...]


class ScrapeLabels(Table, frozen=True):
    always_set: tuple[str, ...]


class FeatureMetric(Table, frozen=True):
    prefixes: tuple[str, ...]
    feature: Feature


class Synthesized(Table, frozen=True):
    synthesized: tuple[str, ...]


class Removed(Table, frozen=True):
    why: str
    fix: str


class Messages(Table, frozen=True):
    unjudged: str
    underscores: str
    other_form: str
    other_form_missing: str
    stored_as: str
    library: str
    few_samples: str


class DashboardsFile(Table, frozen=True):
    component: tuple[Component, ...]
    collection_prefix: tuple[CollectionPrefix, ...]
    fleet: FleetLabels
    scrape_labels: ScrapeLabels
    feature_metric: tuple[FeatureMetric, ...]
    durations: dict[str, str]
    prometheus: Synthesized
    removed: dict[str, Removed]
    messages: Messages
    kinds: dict[str, str]
    never: dict[str, str]


# -- the simulator's files (sim/profiles.toml, sim/families.toml) -------------------------------------------------


class ProfileRow(Table, frozen=True):
    """A simulator profile as written; a key left out keeps sim.profiles.Profile's default."""

    description: str
    arch: str
    version: str
    enable_prefix_caching: bool
    model: str | msgspec.UnsetType = msgspec.UNSET
    block_size: int | msgspec.UnsetType = msgspec.UNSET
    max_model_len: int | msgspec.UnsetType = msgspec.UNSET
    num_gpu_blocks: int | msgspec.UnsetType = msgspec.UNSET
    lora_modules: tuple[str, ...] | msgspec.UnsetType = msgspec.UNSET
    max_loras: int | msgspec.UnsetType = msgspec.UNSET
    speculative_method: Literal["ngram"] | msgspec.UnsetType = msgspec.UNSET
    num_speculative_tokens: int | msgspec.UnsetType = msgspec.UNSET
    prompt_lookup_min: int | msgspec.UnsetType = msgspec.UNSET
    prompt_lookup_max: int | msgspec.UnsetType = msgspec.UNSET
    data_parallel_size_local: int | msgspec.UnsetType = msgspec.UNSET
    data_parallel_start_rank: int | msgspec.UnsetType = msgspec.UNSET

    def given(self) -> dict[str, Any]:
        """The keys the file sets, as keyword arguments of sim.profiles.Profile."""
        return {name: value for name, value in msgspec.structs.asdict(self).items() if value is not msgspec.UNSET}


class ProfilesFile(Table, frozen=True):
    profile: dict[str, ProfileRow]


class ExtraFamily(Table, frozen=True):
    """A family an older vLLM emits: shaped like `like` of the real 0.32.0 page, with its own help."""

    name: str
    like: str
    help: str


class LabelValue(Table, frozen=True):
    """A label value that only these versions pre-create."""

    family: str
    label: str
    value: str
    versions: VersionRange


class FeatureFamilies(Table, frozen=True):
    """The families an optional feature adds: data/<data>.{before,after}.prom, placed before `before`."""

    name: Feature
    data: str
    before: str


class FamiliesFile(Table, frozen=True):
    family: tuple[ExtraFamily, ...] = ()
    label_value: tuple[LabelValue, ...] = ()
    feature: tuple[FeatureFamilies, ...] = ()


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
