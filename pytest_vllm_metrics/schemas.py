"""The schemas of the suite's data files (conformance/*.toml, sim/*.toml, users' --vllm-catalog files): frozen
`msgspec.Struct`s that refuse a key they do not name and type every value. data.py decodes each file with its schema.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from .versions import VersionRange


class Table(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A TOML table of a data file: a key the schema does not name is an error, not ignored. (Each subclass says
    frozen=True again: msgspec inherits it, mypy's dataclass view of the subclasses does not.)"""


# -- vocabularies --------------------------------------------------------------------------------------------

Level = Literal["MUST", "SHOULD", "MAY"]
MetricType = Literal["counter", "gauge", "histogram", "summary", "info"]
Feature = Literal["core", "prefix_caching", "lora", "spec_decode", "kv_connector", "kv_offload", "multimodal", "mfu",
                  "http"]
Present = Literal["startup", "traffic"]
EngineName = Literal["vllm", "sglang", "trtllm-serve", "triton-tensorrt-llm"]  # engines.Engine's values
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
    engine: EngineName | msgspec.UnsetType = msgspec.UNSET  # the model server simulated (default vllm)

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


# What a series of another engine's captured page reads while the simulator runs (sim/other_engines.py)
Live = Literal["running", "queued", "kv_usage", "block_size", "num_blocks", "used_blocks", "free_blocks",
               "total_tokens", "requests", "zero"]


class EngineCapture(Table, frozen=True):
    """Another model server's page, served by the simulator for the versions in `versions`: data/<data>.prom (a
    real capture), its model label set to the profile's model, the series `live` names (selectors) moving."""

    engine: EngineName
    versions: VersionRange
    data: str
    owned_by: str  # /v1/models' owned_by, as the engine answers it
    numbers: Literal["prometheus_client", "prometheus-cpp"]  # the client library that writes the page's numbers
    live: dict[str, Live] = msgspec.field(default_factory=dict)


class FamiliesFile(Table, frozen=True):
    family: tuple[ExtraFamily, ...] = ()
    label_value: tuple[LabelValue, ...] = ()
    feature: tuple[FeatureFamilies, ...] = ()
    capture: tuple[EngineCapture, ...] = ()


# -- engines.toml ----------------------------------------------------------------------------------------------

class CacheSpec(Table, frozen=True):
    """An optional protocol metric: a gauge (`name`, a selector), or the label `label` of an info series."""

    name: str
    label: str = ""


class CacheForm(Table, frozen=True):
    """How the engine's versions in `versions` serve the KV cache's block size and number of blocks."""

    versions: VersionRange
    block_size: CacheSpec
    num_blocks: CacheSpec


class EngineEntry(Table, frozen=True):
    """One [[engine]]: where its page is and what answers for each metric of the model-server protocol."""

    name: EngineName
    metrics_path: str
    enable: str
    lora: str
    model_label: str
    source: str
    queued: str
    running: str
    kv_usage: str
    settle_seconds: float
    metrics_port: int = 0  # 0: the API port
    cache: tuple[CacheForm, ...] = ()


class EnginesFile(Table, frozen=True):
    label_keys: tuple[str, ...]
    default_engine: EngineName
    engine: tuple[EngineEntry, ...]
