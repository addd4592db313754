"""The endpoint picker's (EPP's) EndpointPickerConfig: which metric it reads from each engine's pods, and whether
those pods serve it the way it reads it.

The EPP takes its configuration from `--config-text` (inline YAML) or `--config-file PATH` (in the charts, a
ConfigMap mounted at /config). Its `core-metrics-extractor` plugin names, per engine, the specs it reads
(`engineConfigs[]`); an entry replaces that engine's built-in specs whole (a spec left out is not read, "" turns a
spec off), and an engine without an entry keeps its built-in ones (engines.py). Each pod's engine is its
`engineLabelKey` label, else `defaultEngine`. Older EPPs (gateway-api-inference-extension) took the vLLM specs from
`--*-metric` flags; llm-d-router's EPP refuses to start when one is passed.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from . import engines
from .engines import Engine, Metric
from .model_server import MEANING, read
from .observe import Observation, Stage
from .outcome import Level, Outcome, Verdict
from .readers import Query, Reader, ReaderKind
from .series import named
from .snapshot import Snapshot
from .targets import TargetSource
from .versions import VersionRange

__all__ = ["ConfigError", "EppCheck", "EppConfig", "Spec", "from_deployment", "from_file", "judge", "readers"]

PLUGIN = "core-metrics-extractor"
# llm-d-router's engine label (factories.go DefaultEngineTypeLabelKey), and gateway-api-inference-extension's, which
# llm-d-router still reads when the pod lacks its own (engines.toml label_keys, current first)
LABEL_KEY = engines.label_keys()[0]


class Spec(StrEnum):
    """The spec keys of an engineConfigs entry (core-metrics-extractor, factories.go)."""

    QUEUED = "queuedRequestsSpec"
    RUNNING = "runningRequestsSpec"
    KV_USAGE = "kvUsageSpec"
    LORA = "loraSpec"
    CACHE_INFO = "cacheInfoSpec"  # an info gauge: block size and blocks in two of its labels
    BLOCK_SIZE = "cacheBlockSizeSpec"  # the same as plain gauges
    NUM_BLOCKS = "cacheNumBlocksSpec"


REQUIRED = {Spec.QUEUED: Metric.QUEUED, Spec.RUNNING: Metric.RUNNING, Spec.KV_USAGE: Metric.KV_USAGE}
# The flags older EPPs took the vLLM specs from (gateway-api-inference-extension pkg/epp/server/options.go); in
# llm-d-router's `deprecatedMetricFlags` ("rejected if explicitly set").
FLAGS = {"--total-queued-requests-metric": Spec.QUEUED, "--total-running-requests-metric": Spec.RUNNING,
         "--kv-cache-usage-percentage-metric": Spec.KV_USAGE, "--lora-info-metric": Spec.LORA,
         "--cache-info-metric": Spec.CACHE_INFO}
# Images whose EPP refuses those flags: llm-d-router's, and llm-d-inference-scheduler's from 0.7.0 (KServe's
# controller strips the five flags from that scheduler version on, "hard-rejected" there).
_REJECTING = ((re.compile(r"(^|/)llm-d-router(-epp)?(:|@|$)"), VersionRange(">=0")),
              (re.compile(r"(^|/)llm-d-inference-scheduler(:|@|$)"), VersionRange(">=0.7.0")))
REFUSED = "flag {flag!r} is deprecated and cannot be used; configure metrics via engineConfigs"
# EPPs whose built-in SGLang entry reads the KV cache's shape from sglang:cache_config_info's labels, which SGLang
# 0.5.12 replaced with plain gauges: gateway-api-inference-extension's (factories.go @1748e829), llm-d-inference-
# scheduler's, and llm-d-router's at v0.10.0 (the release that reads the gauges is not known: later ones are taken
# as reading them, as the current one does).
_OLD_SGLANG = ((re.compile(r"(^|/)llm-d-router(-epp)?(:|@|$)"), VersionRange("<0.11")),
               (re.compile(r"(^|/)llm-d-inference-scheduler(:|@|$)"), VersionRange(">=0")),
               (re.compile(r"gateway-api-inference-extension/epp(:|@|$)"), VersionRange(">=0")))


class CheckKind(StrEnum):
    SPECS = "engineConfigs"  # the specs each engine's pods are read with
    FLAGS = "metric flags"  # the old flags passed to an EPP that refuses them


@dataclass(frozen=True)
class EngineSpecs:
    """What the EPP reads from the pods of one engine."""

    name: str
    specs: Mapping[Spec, str]  # "" or absent: not read
    origin: str  # "built-in", "engineConfigs" or "flags"
    block_label: str = "block_size"  # cacheBlockSizeLabelName: the info gauge's label for the block size
    blocks_label: str = "num_gpu_blocks"  # cacheNumBlocksLabelName


@dataclass(frozen=True)
class EppConfig:
    """One EPP's effective reading of the pods; `problem`: why the EPP refuses the configuration (a failure),
    `unread`: why the run could not read it (inconclusive)."""

    name: str  # the Deployment's (or the file's) name, for test ids
    where: str  # for messages: "Deployment ns/name, ConfigMap ns/cm key k", "file x.yaml"
    label_key: str = LABEL_KEY
    default_engine: str = engines.default_engine().value
    engines: tuple[EngineSpecs, ...] = ()
    problem: str = ""
    unread: str = ""
    flags: Mapping[str, str] = field(default_factory=dict)  # the --*-metric flags it passes
    refuses_flags: str = ""  # the image whose EPP refuses them, "" when it takes them

    def engine(self, name: str) -> EngineSpecs | None:
        return next((e for e in self.engines if e.name == name), None)


@dataclass(frozen=True)
class EppCheck:
    """What a Reader of kind EPP carries to its judging (readers.Reader.epp)."""

    config: EppConfig
    kind: CheckKind


class ConfigError(ValueError):
    """An EndpointPickerConfig the EPP would refuse."""


# -- the built-in specs, and the configuration over them -----------------------------------------------------


def builtin(old: bool = False) -> dict[str, EngineSpecs]:
    """Each engine's built-in specs (llm-d-router's defaults, as engines.toml has them): the required gauges, LoRA,
    and the KV cache's shape in the form of the engine's newest versions (`old`: its oldest, as older EPPs read
    it)."""
    found = {}
    for engine, profile in engines.profiles().items():
        specs = {spec: profile.required[metric] for spec, metric in REQUIRED.items()}
        specs[Spec.LORA] = profile.lora
        cache, labels = profile.cache[0 if old else -1], {}
        if cache.block_size.label:
            specs[Spec.CACHE_INFO] = cache.block_size.name
            labels = {"block_label": cache.block_size.label, "blocks_label": cache.num_blocks.label or ""}
        else:
            specs[Spec.BLOCK_SIZE], specs[Spec.NUM_BLOCKS] = cache.block_size.name, cache.num_blocks.name
        found[engine.value] = EngineSpecs(engine.value, specs, "built-in", **labels)
    return found


def effective(parameters: Any, flags: Mapping[str, str] | None = None, old: bool = False) -> dict[str, Any]:
    """The EppConfig fields of a core-metrics-extractor's `parameters` (None: the built-ins) and the old flags
    (over the vLLM specs, as older EPPs took them). ConfigError when the EPP would refuse them."""
    params = parameters if isinstance(parameters, dict) else {}
    if parameters is not None and not isinstance(parameters, dict):
        raise ConfigError(f"the {PLUGIN} plugin's parameters are a {type(parameters).__name__}, not a mapping")
    found = builtin(old)
    if flags:
        vllm = found[Engine.VLLM.value]
        found[Engine.VLLM.value] = EngineSpecs(vllm.name, {**vllm.specs, **{FLAGS[f]: v for f, v in flags.items()}},
                                               "flags", vllm.block_label, vllm.blocks_label)
    entries = params.get("engineConfigs") or []
    if not isinstance(entries, list):
        raise ConfigError("engineConfigs is not a list of engine entries")
    for number, entry in enumerate(entries, 1):
        name = str(entry.get("name") or "") if isinstance(entry, dict) else ""
        if not name:
            raise ConfigError(f"engineConfigs entry {number} has no name")
        specs = {spec: str(entry.get(spec.value) or "") for spec in Spec}
        for spec, text in specs.items():
            if text:
                try:
                    engines.selector(text)
                except ValueError as exc:
                    raise ConfigError(f"engine {name}, {spec.value}: {exc}") from None
        found[name] = EngineSpecs(name, specs, "engineConfigs",
                                  str(entry.get("cacheBlockSizeLabelName") or "block_size"),
                                  str(entry.get("cacheNumBlocksLabelName") or "num_gpu_blocks"))
    default = str(params.get("defaultEngine") or engines.default_engine().value)
    if default not in found:
        raise ConfigError(f"defaultEngine {default!r} not found in engineConfigs or the built-in engines "
                          f"({', '.join(found)})")
    return {"label_key": str(params.get("engineLabelKey") or LABEL_KEY), "default_engine": default,
            "engines": tuple(found.values())}


def plugin_parameters(document: Any) -> tuple[bool, Any]:
    """(found, parameters) of the core-metrics-extractor in an EndpointPickerConfig, a `plugins` list or one plugin
    entry; (False, None) when it declares none (the EPP then runs it with its defaults)."""
    if isinstance(document, list):
        entries = document
    elif isinstance(document, dict) and isinstance(document.get("plugins"), list):
        entries = document["plugins"]
    elif isinstance(document, dict) and document.get("type") == PLUGIN:
        entries = [document]
    elif isinstance(document, dict) and set(document) == {"parameters"}:
        return True, document["parameters"]  # a bare parameters block, as the configuration guide prints it
    else:
        return False, None
    plugin = next((p for p in entries if isinstance(p, dict) and p.get("type") == PLUGIN), None)
    return (plugin is not None), (plugin or {}).get("parameters")


def parse(text: str, name: str, where: str, **extra: Any) -> EppConfig:
    """The EppConfig of a configuration's text; its `problem` says why the EPP refuses it. Its old metric flags
    (`flags`) count over the vLLM specs unless the EPP refuses them (`refuses_flags`): it never starts then."""
    flags = extra.pop("flags", {})
    overlay = {} if extra.get("refuses_flags") else flags
    old = extra.pop("old", False)
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return EppConfig(name, where, problem=f"not valid YAML ({' '.join(str(exc).split())})", flags=flags, **extra)
    try:
        _, parameters = plugin_parameters(document)
        return EppConfig(name, where, **effective(parameters, overlay, old), flags=flags, **extra)
    except ConfigError as exc:
        return EppConfig(name, where, problem=str(exc), flags=flags, **extra)


def from_file(path: Path) -> EppConfig:
    """The configuration given by the user (--vllm-epp-config): an EndpointPickerConfig as the EPP reads
    --config-file, or the EPP's Deployment with its ConfigMap as kubectl prints them. ConfigError when the file is
    neither."""
    try:
        text = path.read_text(encoding="utf-8")
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"--vllm-epp-config {path} cannot be read as YAML ({' '.join(str(exc).split())}); pass "
                          f"the endpoint picker's EndpointPickerConfig file.") from None
    objects = [d for d in documents if isinstance(d, dict) and d.get("kind")]
    deployment = next((d for d in objects if d["kind"] == "Deployment"), None)
    if deployment is not None:
        return from_deployment(deployment, [d for d in objects if d["kind"] == "ConfigMap"])
    if len(documents) != 1 or (not plugin_parameters(documents[0])[0] and not (
            isinstance(documents[0], dict) and documents[0].get("kind") == "EndpointPickerConfig")):
        raise ConfigError(f"--vllm-epp-config {path} is not an EndpointPickerConfig (kind: EndpointPickerConfig with "
                          f"plugins:, or a {PLUGIN} plugin entry) nor the endpoint picker's Deployment; pass the file "
                          f"the EPP reads with --config-file, or kubectl get deployment,configmap -o yaml of it.")
    return parse(text, path.stem, f"file {path}")


# -- from the EPP's Deployment ------------------------------------------------------------------------------


def args_of(container: Mapping[str, Any]) -> list[str]:
    return [str(a) for a in [*(container.get("command") or []), *(container.get("args") or [])]]


def flag_values(words: list[str], names: Iterable[str]) -> dict[str, str]:
    """The values of the flags `names` among a command line, as "--flag=value" or "--flag value" (Go's flag
    package, one or two dashes)."""
    wanted, found = set(names), {}
    for index, word in enumerate(words):
        flag, equals, value = word.partition("=")
        flag = "--" + flag.lstrip("-") if flag.startswith("-") else flag
        if flag in wanted:
            found[flag] = value if equals else (words[index + 1] if index + 1 < len(words) else "")
    return found


def from_deployment(deployment: Mapping[str, Any], configmaps: list[dict[str, Any]]) -> EppConfig:
    """The configuration of an EPP Deployment: its --config-text, or its --config-file read from the ConfigMap the
    container mounts at that path (among `configmaps`, those the run could list), else the built-ins."""
    metadata = deployment.get("metadata") or {}
    name, namespace = str(metadata.get("name") or "?"), str(metadata.get("namespace") or "")
    where = f"Deployment {namespace}/{name}" if namespace else f"Deployment {name}"
    pod = ((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}
    containers = [c for c in pod.get("containers") or [] if isinstance(c, dict)]
    config_flags = ("--config-text", "--config-file")
    container = next((c for c in containers if flag_values(args_of(c), [*config_flags, *FLAGS])),
                     containers[0] if containers else {})
    words = args_of(container)
    flags = flag_values(words, FLAGS)
    image = str(container.get("image") or "")
    extra: dict[str, Any] = {"flags": flags, "refuses_flags": image if flags and refuses_flags(image) else "",
                             "old": _is(image, _OLD_SGLANG)}
    given = flag_values(words, config_flags)
    if "--config-text" in given:
        return parse(given["--config-text"], name, f"{where}, --config-text", **extra)
    if "--config-file" not in given:
        return parse("", name, f"{where} (no --config-file or --config-text: the built-in specs)", **extra)
    path = given["--config-file"]
    source, unread = _mounted(path, container, pod, namespace, configmaps)
    if source is None:
        return EppConfig(name, f"{where}, --config-file {path}", unread=unread, flags=flags,
                         refuses_flags=extra["refuses_flags"])
    text, shown = source
    return parse(text, name, f"{where}, {shown}", **extra)


def refuses_flags(image: str) -> bool:
    """Whether the EPP of `image` refuses the --*-metric flags; a tag that is no version counts as recent."""
    return _is(image, _REJECTING)


def _is(image: str, kinds: tuple[tuple[re.Pattern[str], VersionRange], ...]) -> bool:
    """Whether `image` is of one of `kinds` (an image pattern, its versions); a tag that is no version (latest, a
    digest) counts as the newest release."""
    name = image.partition("@")[0].rpartition("/")[2]
    tag = name.rpartition(":")[2].lstrip("v") if ":" in name else ""
    return any(pattern.search(image) and versions.contains(tag or None) for pattern, versions in kinds)


def _mounted(path: str, container: Mapping[str, Any], pod: Mapping[str, Any], namespace: str,
             configmaps: list[dict[str, Any]]) -> tuple[tuple[str, str] | None, str]:
    """((text, where it was read), "") of the file `path` in the container: the ConfigMap key its volumeMounts put
    there; (None, why not)."""
    path = posixpath.normpath(path)
    mounts = sorted((m for m in container.get("volumeMounts") or [] if isinstance(m, dict)),
                    key=lambda m: -len(str(m.get("mountPath") or "")))
    for mount in mounts:
        at = posixpath.normpath(str(mount.get("mountPath") or "/"))
        if mount.get("subPath"):
            relative = str(mount["subPath"]) if path == at else None
        else:
            relative = posixpath.relpath(path, at) if path == at or path.startswith(at.rstrip("/") + "/") else None
        if relative is None:
            continue
        volume = next((v for v in pod.get("volumes") or [] if isinstance(v, dict) and v.get("name") ==
                       mount.get("name")), {})
        source = volume.get("configMap") if isinstance(volume.get("configMap"), dict) else None
        if source is None:
            return None, (f"{path} is on volume {mount.get('name')}, which is not a ConfigMap; pass the "
                          f"configuration with --vllm-epp-config=FILE to check it")
        # items: [{key, path}] puts a key under another file name
        key = next((str(i.get("key")) for i in source.get("items") or [] if isinstance(i, dict)
                    and posixpath.normpath(str(i.get("path"))) == relative), relative)
        cm_name = str(source.get("name") or "")
        shown = f"ConfigMap {namespace}/{cm_name}, key {key}"
        configmap = next((c for c in configmaps if (c.get("metadata") or {}).get("name") == cm_name
                          and (c.get("metadata") or {}).get("namespace", namespace) == namespace), None)
        if configmap is None:
            return None, (f"ConfigMap {namespace}/{cm_name} is not among the ConfigMaps this run could list in "
                          f"namespace {namespace}; grant list on configmaps there, or pass the configuration "
                          f"with --vllm-epp-config=FILE")
        data = configmap.get("data") or {}
        if key not in data:
            return None, f"{shown} does not exist (its keys: {', '.join(sorted(data)) or 'none'})"
        return (str(data[key]), shown), ""
    return None, (f"no volumeMount of the container holds {path}; pass the configuration with "
                  f"--vllm-epp-config=FILE to check it")


# -- as readers, and their verdicts ----------------------------------------------------------------------------


def readers(config: EppConfig) -> list[Reader]:
    """The EPP's checks as consumers of the metrics: its engines' specs, and the refused flags when it has them."""
    queries = tuple(Query(f"{e.name} {spec.value}", text) for e in config.engines
                    for spec, text in e.specs.items() if text)
    found = [Reader(config.name, CheckKind.SPECS.value, queries, dashboard_title=config.where, kind=ReaderKind.EPP,
                    epp=EppCheck(config, CheckKind.SPECS))]
    if config.refuses_flags:
        found.append(Reader(config.name, CheckKind.FLAGS.value, (), dashboard_title=config.where,
                            kind=ReaderKind.EPP, epp=EppCheck(config, CheckKind.FLAGS)))
    return found


def pod_engine(obs: Observation, config: EppConfig) -> tuple[str, bool]:
    """The engine the EPP reads a pod as: its engineLabelKey label (llm-d-router's own key falls back to the older
    one), else defaultEngine; and whether a label named it. A --vllm-url server has no labels: its --vllm-engine."""
    target = obs.target
    if target.source is not TargetSource.KUBERNETES:
        return target.engine.value, True
    keys = engines.label_keys() if config.label_key == LABEL_KEY else (config.label_key,)
    label = next((target.labels[k] for k in keys if k in target.labels), None)
    return (label, True) if label is not None else (config.default_engine, False)


def judge(check: EppCheck, observations: list[Observation]) -> Verdict:
    config = check.config
    where = f"the endpoint picker ({config.where})"
    if check.kind is CheckKind.FLAGS:
        flags = ", ".join(sorted(config.flags))
        return _verdict(config, Outcome.FAILED, "refused", f"{where} runs {config.refuses_flags}, which refuses to "
                        f"start with {flags}: \"{REFUSED.format(flag=sorted(config.flags)[0].lstrip('-'))}\". Remove "
                        f"the flags and restate their specs in the {PLUGIN} plugin's engineConfigs.",
                        flags=dict(config.flags))
    if config.unread:
        return _verdict(config, Outcome.INCONCLUSIVE, "inconclusive",
                        f"{where}: its configuration could not be read: {config.unread}.")
    if config.problem:
        return _verdict(config, Outcome.FAILED, "refused", f"{where}: the endpoint picker refuses this "
                        f"configuration: {config.problem}. Fix its {PLUGIN} plugin's parameters.")
    return _judge_specs(config, where, observations)


def _judge_specs(config: EppConfig, where: str, observations: list[Observation]) -> Verdict:
    must: list[str] = []
    unsure: list[str] = []
    evidence: dict[str, Any] = {"engines": {}, "notJudged": {}}
    by_engine: dict[str, list[Observation]] = {}
    for obs in observations:
        by_engine.setdefault(pod_engine(obs, config)[0], []).append(obs)
    for name in sorted(set(by_engine) - {e.name for e in config.engines}):
        unsure.append(f"pods {named([o.target.name for o in by_engine[name]])} are labelled engine {name}, which "
                      f"the endpoint picker has no specs for")
    # pods with the same problems are named together: a fleet is one line per kind of problem, not per pod
    groups: dict[tuple[str, tuple[str, ...], bool], list[str]] = {}
    for spec_set in config.engines:
        pods = by_engine.get(spec_set.name, [])
        if not pods:
            evidence["notJudged"][spec_set.name] = "no pod of this run runs this engine"
            continue
        evidence["engines"][spec_set.name] = {"origin": spec_set.origin, "pods": [o.target.name for o in pods],
                                              "specs": {s.value: t for s, t in spec_set.specs.items() if t}}
        off = [s.value for s in REQUIRED if not spec_set.specs.get(s)]
        if off:
            must.append(f"for {spec_set.name} ({spec_set.origin}) {', '.join(off)} {'is' if len(off) == 1 else 'are'} "
                        f"\"\" or left out, so it reads nothing there and schedules blind on "
                        + ", ".join(MEANING[REQUIRED[Spec(s)]] for s in off))
        for obs in pods:
            problem = obs.failure(Stage.BEFORE)
            page = obs.after or obs.before
            if problem is not None or page is None:
                unsure.append(f"{obs.target.name} ({spec_set.name}): "
                              f"{problem.message if problem else 'its page was not read'}")
                continue
            read_as = spec_set.name + ("" if pod_engine(obs, config)[1] else
                                       f", as its defaultEngine: it has no {config.label_key} label")
            required = tuple(p for s in REQUIRED if (p := _required(page, spec_set.specs.get(s, ""))))
            optional = tuple(_optional(page, spec_set))
            if required or optional:
                groups.setdefault((read_as, required + optional, bool(required)), []).append(obs.target.name)
    must += [f"{named(pods)} ({read_as}): {'; '.join(problems)}" for (read_as, problems, fails), pods in groups.items()
             if fails]
    should = [f"{named(pods)} ({read_as}): {'; '.join(problems)}" for (read_as, problems, fails), pods in
              groups.items() if not fails]
    evidence = {k: v for k, v in evidence.items() if v}
    if must:
        return _verdict(config, Outcome.FAILED, "no data", f"{where}: " + "; ".join(must + should) + ". The endpoint "
                        "picker's reading of those pods fails (its extract-error counter rises), so its scorers lack "
                        "these values.",
                        **evidence)
    if should:
        return _verdict(config, Outcome.FAILED, "partial", f"{where}: " + "; ".join(should) + ".", Level.SHOULD,
                        **evidence)
    if unsure or not evidence.get("engines"):
        why = "; ".join(unsure) or "no pod of this run was read"
        return _verdict(config, Outcome.INCONCLUSIVE, "inconclusive", f"{where}: what it reads could not be judged: "
                                                                      f"{why}.", **evidence)
    return _verdict(config, Outcome.PASSED, "ok", "", **evidence)


def _verdict(config: EppConfig, outcome: Outcome, kind: str, message: str, level: Level = Level.MUST,
             **evidence: Any) -> Verdict:
    """A verdict as a reader's (judging.Context.verdict): its short verdict in the evidence, its EPP as target."""
    exprs = list(dict.fromkeys(t for e in config.engines for t in e.specs.values() if t))
    return Verdict(outcome, message, level, {"panel_verdict": kind, "exprs": exprs, **evidence}, target=config.name)


def _required(page: Snapshot, text: str) -> str:
    """Why the EPP cannot read a required gauge with `text` from the page ("" when it can)."""
    if not text:
        return ""
    spec = engines.selector(text)
    reading = read(page, spec)
    if reading.family_type is None:
        return f"{spec.name} is not on its page" + (f" (spec {text})" if text != spec.name else "")
    if reading.family_type != "gauge":
        kind = "untyped, which the endpoint picker reads as 0" if reading.family_type in ("unknown", "untyped") \
            else f"a {reading.family_type}, not a gauge"
        return f"{spec.name} is {kind}"
    if not reading.series:
        return f"no series of {spec.name} matches {text}: the endpoint picker finds nothing to read"
    return ""


# The SGLang releases that moved the KV cache's shape from the info gauge to plain gauges (engines.toml cache)
_SGLANG_GAUGES = ("sglang:page_size", "sglang:num_pages")


def _optional(page: Snapshot, spec_set: EngineSpecs) -> list[str]:
    """Why the EPP cannot read the KV cache's shape (or LoRA) from the page as configured; absent LoRA is fine."""
    found: list[str] = []
    lora = spec_set.specs.get(Spec.LORA, "")
    if lora and page.family(engines.selector(lora).name) is not None and not read(page, engines.selector(lora)).series:
        found.append(f"no series of its LoRA gauge matches {lora}")
    info = spec_set.specs.get(Spec.CACHE_INFO, "")
    gauges = [spec_set.specs.get(s, "") for s in (Spec.BLOCK_SIZE, Spec.NUM_BLOCKS)]
    forms: list[str] = []
    if info:
        reading = read(page, engines.selector(info))
        labels = dict(reading.series[0].labels) if reading.series else {}
        bad = [k for k in (spec_set.block_label, spec_set.blocks_label) if not str(labels.get(k, "")).isdigit()]
        if not reading.series and all(page.family(g) is not None for g in _SGLANG_GAUGES) and "sglang" in info:
            forms.append(f"{info} is not on its page, which serves the KV cache's shape as the gauges "
                         f"{' and '.join(_SGLANG_GAUGES)} (newer SGLang) instead: restate the {spec_set.name} entry "
                         f"with cacheInfoSpec: \"\", cacheBlockSizeSpec: {_SGLANG_GAUGES[0]} and cacheNumBlocksSpec: "
                         f"{_SGLANG_GAUGES[1]} (a newer llm-d-router reads those by default)")
        elif not reading.series:
            forms.append(f"{info} (the KV cache's shape) is not on its page")
        elif bad:
            forms.append(f"{info} has no whole-number label {' or '.join(bad)}: the endpoint picker fails to read "
                         f"the KV cache's shape")
        else:
            return found
    if any(gauges):
        missing = [g for g in gauges if g and not read(page, engines.selector(g)).series]
        if not missing:
            return found
        forms.append(f"{', '.join(missing)} (the KV cache's shape) {'is' if len(missing) == 1 else 'are'} not on "
                     f"its page")
    return found + forms
