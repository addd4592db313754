"""Settings: every option once, as data; resolved once (option > environment > ini > default).

Each option has a command-line flag, an environment variable and an ini key, except the API key, which has
no ini key on purpose: ini files are committed, secrets are not. Environment variables use the
`PYTEST_VLLM_` prefix so they never collide with vLLM's own `VLLM_*` variables; `VLLM_API_KEY` is shared with
vLLM deliberately (the server and the suite then agree on one key).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from packaging.version import InvalidVersion, Version

from . import gaie
from . import shard as _shard
from .catalog import FEATURES
from .engines import Engine
from .shard import Shard
from .targets import redact_url

MAX_BODY_BYTES = 16 * 1024 * 1024  # a body the suite reads at most: a real vLLM page is ~50 KB, this is not one

ARCHITECTURES = ("amd64", "arm64", "ppc64le", "s390x", "riscv64", "unknown")
# `uname -m` spellings users type, mapped to the GOARCH names Kubernetes puts on nodes.
_ARCH_ALIASES = {"x86_64": "amd64", "aarch64": "arm64", "arm": "arm64", "ppc64": "ppc64le", "riscv": "riscv64"}


@dataclass(frozen=True)
class Option:
    name: str  # attribute on Settings
    help: str
    parse: Callable[[str, str], Any] = lambda raw, where: raw
    multiple: bool = False
    secret: bool = False
    ini: bool = True
    env: str | None = None
    metavar: str | None = None
    nargs_optional_const: str | None = None  # `--vllm-sim` alone means this value
    switch: bool = False  # takes no value on the command line (true when given)

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def ini_key(self) -> str:
        return self.name

    @property
    def env_var(self) -> str:
        return self.env or "PYTEST_" + self.name.upper().removeprefix("PYTEST_")


def _engine(raw: str, where: str) -> Engine:
    return Engine(_Choice(tuple(engine.value for engine in Engine))(raw, where))


# Parsers made per option are frozen classes, not closures: their checks run when a value is parsed, not when
# OPTIONS is built at import (which is also what lets a mutation run reach them).
@dataclass(frozen=True)
class _Bounded:
    """A whole number in low..high (the bounds that keep a run against production servers small)."""
    low: int
    high: int
    what: str

    def __call__(self, raw: str, where: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise pytest.UsageError(f"{where}: {raw!r} is not a whole number; give {self.what} as {self.low}.."
                                    f"{self.high}.") from None
        if not self.low <= value <= self.high:
            raise pytest.UsageError(f"{where}: {value} is out of range; {self.what} is bounded to {self.low}.."
                                    f"{self.high} so a run against a production server stays small. Pass a value in "
                                    f"that range.")
        return value


def _seconds(raw: str, where: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise pytest.UsageError(f"{where}: {raw!r} is not a number of seconds; pass e.g. 10 or 2.5.") from None
    if not 0 < value <= 600:
        raise pytest.UsageError(f"{where}: {value} seconds is out of range; pass a timeout in 0..600 seconds.")
    return value


def _url(raw: str, where: str) -> str:
    shown = redact_url(raw)
    try:
        parsed = httpx.URL(raw)
        valid = parsed.scheme in ("http", "https") and bool(parsed.host)
    except (httpx.InvalidURL, TypeError):
        valid = False
    if not valid:
        raise pytest.UsageError(f"{where}: {shown!r} is not an http(s) URL; pass the server's base URL, e.g. "
                                f"http://10.0.0.7:8000 (without /metrics or /v1).")
    return raw.rstrip("/")


def _path(raw: str, where: str) -> str:
    if not raw.startswith("/"):
        raise pytest.UsageError(f"{where}: {raw!r} must be a URL path starting with '/', e.g. /metrics.")
    return raw


@dataclass(frozen=True)
class _Choice:
    """One of `valid` (case and spaces aside), or an alias of one."""
    valid: tuple[str, ...]
    aliases: Mapping[str, str] = field(default_factory=dict)

    def __call__(self, raw: str, where: str) -> str:
        value = self.aliases.get(raw.strip().lower(), raw.strip().lower())
        if value not in self.valid:
            raise pytest.UsageError(f"{where}: {raw!r} is not valid; valid values are {', '.join(self.valid)}.")
        return value


def _sim_profile(raw: str, where: str) -> str:
    from .sim.profiles import profile_names  # the simulator's data, read only when a profile is named

    names = profile_names()
    if raw not in names:
        hint = ""
        if os.path.exists(raw.split("::")[0]):
            hint = (f" {raw!r} is a test path that argparse took as the profile: write --vllm-sim=PROFILE "
                    f"(with '=') before test paths.")
        raise pytest.UsageError(f"{where}: unknown simulator profile {raw!r}; valid profiles are "
                                f"{', '.join(names)}.{hint}")
    return raw


def _release(raw: str, where: str) -> str:
    """--vllm-upgrade-to: a PEP 440 release with at least a minor (0.13 or 0.13.0); pre-releases and local
    builds count as their release (0.13.0rc1+cpu is 0.13.0), as everywhere in the catalog."""
    try:
        version = Version(raw.strip())  # PEP 440 takes a leading v itself
    except InvalidVersion:
        version = None
    if version is None or len(version.release) < 2:
        raise pytest.UsageError(f"{where}: {raw!r} is not a vLLM release; pass the version the fleet moves to as a PEP "
                                f"440 release with at least major and minor, e.g. --vllm-upgrade-to=0.13.0.")
    release = list(version.release) + [0] * (3 - len(version.release))
    return ".".join(str(part) for part in release)


def _bool(raw: str, where: str) -> bool:
    value = raw.strip().lower()
    if value not in ("true", "false", "1", "0", "yes", "no"):
        raise pytest.UsageError(f"{where}: {raw!r} is not valid; valid values are true, false.")
    return value in ("true", "1", "yes")


@dataclass(frozen=True)
class _Existing:
    """A file or directory that exists (`what` names the kind of file, for the message)."""
    what: str

    def __call__(self, raw: str, where: str) -> Path:
        path = Path(raw).expanduser()
        if not os.path.exists(path):  # Path.exists() raises under a directory that cannot be searched (3.11)
            raise pytest.UsageError(f"{where}: {raw} does not exist; pass {self.what} or a directory of them.")
        return path


def _secret(raw: str, where: str) -> str:
    value = raw.strip()  # a Secret created --from-file keeps its trailing newline
    if not value or not value.isascii() or not value.isprintable() or " " in value:
        raise pytest.UsageError(f"{where}: the key is empty or contains spaces, control or non-ASCII characters, which "
                                f"cannot go into an HTTP header; check how it is stored (the value is not shown).")
    return value


# What the conformance report's writer makes of each suffix (report.write): anything else is refused, never
# written as JSON under another name.
REPORT_SUFFIXES = {".json": "JSON", ".yaml": "YAML", ".yml": "YAML", ".md": "Markdown", ".markdown": "Markdown"}


def _report_path(raw: str, where: str) -> str:
    path = Path(raw).expanduser()
    if path.suffix not in REPORT_SUFFIXES:
        raise pytest.UsageError(
            f"{where}: {raw!r} does not end in a report format; name the file .json, .yaml or .yml (the "
            f"machine-readable report), or .md or .markdown (a Markdown summary).")
    # Missing directories are created when the report is written (as --junitxml and --html do); a file in the
    # way, or a directory that cannot be written, would only show at the end of the run: say it now.
    existing = next(parent for parent in (path.absolute(), *path.absolute().parents) if os.path.exists(parent))
    if existing == path.absolute() and path.is_dir():
        raise pytest.UsageError(f"{where}: {raw} is a directory; name the report file, e.g. {raw}/report.json.")
    return _writable(raw, where, existing, path)


def _writable(raw: str, where: str, existing: Path, path: Path) -> str:
    if existing != path.absolute() and not existing.is_dir():
        raise pytest.UsageError(f"{where}: cannot write {raw}: {existing} is a file, not a directory.")
    if not os.access(existing, os.W_OK | (os.X_OK if existing.is_dir() else 0)):
        raise pytest.UsageError(f"{where}: cannot write {raw}: {existing} is not writable.")
    return raw


def _directory(raw: str, where: str) -> str:
    path = Path(raw).expanduser()
    existing = next(parent for parent in (path.absolute(), *path.absolute().parents) if os.path.exists(parent))
    if existing == path.absolute() and not path.is_dir():
        raise pytest.UsageError(f"{where}: {raw} is a file; name a directory (created if missing) for the reports.")
    return _writable(raw, where, existing, path)


def _file(raw: str, where: str) -> Path:
    path = Path(raw).expanduser()
    if not os.path.isfile(path):
        raise pytest.UsageError(f"{where}: {raw} is not a readable file; check the path.")
    return path


OPTIONS: tuple[Option, ...] = (
    Option("vllm_url", "base URL of a vLLM server to check (repeatable)", parse=_url, multiple=True,
           metavar="URL"),
    Option("vllm_sim", "start the bundled vLLM simulator with PROFILE (default x86_64; repeatable)",
           parse=_sim_profile, multiple=True, metavar="PROFILE", nargs_optional_const="x86_64"),
    Option("vllm_api_key", "API key sent as 'Authorization: Bearer' to /v1 (never printed)", secret=True,
           parse=_secret, ini=False, env="VLLM_API_KEY", metavar="KEY"),
    Option("vllm_model", "model to send the workload to (default: the first of /v1/models)", metavar="NAME"),
    Option("vllm_metrics_path", "path of the metrics endpoint", parse=_path, metavar="PATH"),
    Option("vllm_timeout", "timeout in seconds of each HTTP request", parse=_seconds, metavar="SECONDS"),
    Option("vllm_requests", "workload size: requests per server (1..64)",
           parse=_Bounded(1, 64, "--vllm-requests"), metavar="N"),
    Option("vllm_max_tokens", "max_tokens of each workload request (2..256)",
           parse=_Bounded(2, 256, "--vllm-max-tokens"), metavar="N"),
    Option("vllm_concurrency", "at most this many servers scraped or loaded at once (1..256)",
           parse=_Bounded(1, 256, "--vllm-concurrency"), metavar="N"),
    Option("vllm_phase_timeout", "wall-time cap in seconds of each phase per server (scrape, workload)",
           parse=_seconds, metavar="SECONDS"),
    Option("vllm_arch", "CPU architecture of --vllm-url servers (" + ", ".join(ARCHITECTURES) + ")",
           parse=_Choice(ARCHITECTURES, _ARCH_ALIASES), metavar="ARCH"),
    Option("vllm_engine", "model server of --vllm-url servers (" + ", ".join(e.value for e in Engine) + "; default "
           "vllm)", parse=_engine, metavar="ENGINE"),
    Option("vllm_catalog", "extra catalog file (TOML) whose entries add to or replace the bundled ones "
           "(repeatable)", parse=_file, multiple=True, metavar="PATH"),
    Option("vllm_require_feature", "fail when a server lacks this feature (repeatable): " + ", ".join(FEATURES),
           parse=_Choice(FEATURES), multiple=True, metavar="NAME"),
    Option("vllm_exempt_feature", "skip the checks of this feature (repeatable): " + ", ".join(FEATURES),
           parse=_Choice(FEATURES), multiple=True, metavar="NAME"),
    Option("vllm_namespace", "check the vLLM pods of this Kubernetes namespace", metavar="NAME"),
    Option("vllm_selector", "label selector of the vLLM pods (default: llm-d.ai/inferenceServing=true or "
           "llm-d.ai/inference-serving=true)", metavar="SELECTOR"),
    Option("vllm_container", "container that runs vLLM (default: vllm, modelserver-leader/-worker, or the one "
           "with a port named metrics)", metavar="NAME"),
    Option("vllm_port", "vLLM's port on the pods, a number or a port name (default: the port named metrics, "
           "else the vLLM container's port)", metavar="PORT"),
    Option("kubeconfig", "kubeconfig file (default: the first file of $KUBECONFIG, ~/.kube/config, else "
           "in-cluster)", metavar="PATH"),
    Option("kube_context", "kubeconfig context (default: the current one)", metavar="NAME"),
    Option("vllm_transport", "reach pods through the API server's pod proxy (proxy) or at their IPs (direct, "
           "inside the cluster)", parse=_Choice(("proxy", "direct")), metavar="MODE"),
    Option("vllm_gateway_url", "send the workload through this inference gateway instead of to each pod",
           parse=_url, metavar="URL"),
    Option("grafana_dashboard", "Grafana dashboard JSON file, or a directory of them, to check panel by panel "
           "(repeatable)", parse=_Existing("a dashboard JSON file"), multiple=True, metavar="PATH"),
    Option("grafana_namespace", "namespace of the Grafana dashboard ConfigMaps (label grafana_dashboard) to check "
           "(default: --vllm-namespace)", metavar="NAME"),
    Option("prometheus_rules", "Prometheus rule file (groups:) or PrometheusRule YAML, or a directory of them, to "
           "check rule by rule (repeatable)", parse=_Existing("a rule file (YAML)"), multiple=True,
           metavar="PATH"),
    Option("vllm_epp_url", "base URL of the inference gateway's endpoint picker (EPP) metrics, to compare its view "
           "of the pods with theirs", parse=_url, metavar="URL"),
    Option("vllm_epp_config", "the endpoint picker's EndpointPickerConfig (or its Deployment and ConfigMap as YAML), "
           "to check what it reads from each engine's pods without a cluster", parse=_file, metavar="PATH"),
    Option("vllm_epp_token_env", "environment variable holding the bearer token the EPP's metrics ask for (its "
           "ServiceMonitor's)", metavar="NAME"),
    Option("vllm_upgrade_to", "report what breaks among the metrics' consumers when the fleet moves to this vLLM "
           "version (e.g. 0.13.0); the run then only scrapes, it sends no workload", parse=_release,
           metavar="VERSION"),
    Option("vllm_exclusive", "no other traffic reaches the targets during the run: counters must move by exactly "
           "the workload", parse=_bool, switch=True),
    Option("prometheus_url", "Prometheus server to check: is every target scraped, will every panel show data",
           parse=_url, metavar="URL"),
    Option("prometheus_token_env", "environment variable holding Prometheus' bearer token", metavar="NAME"),
    Option("prometheus_ca", "CA bundle to verify Prometheus' TLS certificate", parse=_file, metavar="PATH"),
    Option("prometheus_insecure", "do not verify Prometheus' TLS certificate", parse=_bool, switch=True),
    Option("vllm_report", "write the conformance report here: .json or .yaml (machine-readable), or .md (a Markdown "
           "summary for a CI job summary or a merge-request comment)", parse=_report_path, metavar="PATH"),
    Option("vllm_gaie_report", "also write the model-server protocol's results as Gateway API Inference Extension "
           "conformance reports (profile ModelServer) under this directory, one per model server and version",
           parse=_directory, metavar="DIR"),
    Option("vllm_gaie_version", f"the Inference Extension version those reports name (default {gaie.VERSION})",
           parse=gaie.version, metavar="VERSION"),
    Option("vllm_gaie_implementation", "a field of those reports' implementation, for every model server or one "
           "(repeatable): [ENGINE:]FIELD=VALUE, FIELD one of " + ", ".join(gaie.FIELDS), parse=gaie.field,
           multiple=True, metavar="[ENGINE:]FIELD=VALUE"),
    Option("vllm_fail_on", "lowest requirement level whose failures fail the run: must, should or may",
           parse=_Choice(("must", "should", "may")), metavar="LEVEL"),
    Option("vllm_shard", "check only shard K of N of the targets (K from 0; a Kubernetes Indexed Job passes "
           "$(JOB_COMPLETION_INDEX)); shard 0 also judges the fleet's readers; merge the shards' JSON reports "
           "with pytest-vllm-metrics merge", parse=_shard.parse, metavar="K/N"),
)


@dataclass(frozen=True)
class Policy:
    """The few settings the checks read (evaluate, dashboards): what a verdict depends on besides the data."""

    require: tuple[str, ...] = ()  # features a server must have (--vllm-require-feature)
    exempt: tuple[str, ...] = ()  # features whose checks are skipped (--vllm-exempt-feature)
    via_gateway: bool = False  # the workload went through the inference gateway, not to each pod
    namespace: str | None = None  # the Kubernetes namespace, for dashboards' $namespace
    exclusive: bool = False  # no other traffic reaches the targets (--vllm-exclusive): counters move exactly
    sliced: bool = False  # the run observes only its shard of the fleet (--vllm-shard=K/N with N > 1)


@dataclass(frozen=True)
class Settings:
    vllm_url: tuple[str, ...] = ()
    vllm_sim: tuple[str, ...] = ()
    vllm_api_key: str | None = field(default=None, repr=False)  # never in a traceback's locals
    vllm_model: str | None = None
    vllm_metrics_path: str = "/metrics"
    vllm_timeout: float = 10.0
    vllm_requests: int = 8
    vllm_max_tokens: int = 8
    vllm_concurrency: int = 16
    vllm_phase_timeout: float = 120.0
    vllm_arch: str = "unknown"
    vllm_engine: Engine = Engine.VLLM
    vllm_catalog: tuple[Path, ...] = ()
    vllm_require_feature: tuple[str, ...] = ()
    vllm_exempt_feature: tuple[str, ...] = ()
    vllm_namespace: str | None = None
    vllm_selector: str | None = None
    vllm_container: str | None = None
    vllm_port: str | None = None
    kubeconfig: str | None = None
    kube_context: str | None = None
    vllm_transport: str = "proxy"
    vllm_gateway_url: str | None = None
    grafana_dashboard: tuple[Path, ...] = ()
    grafana_namespace: str | None = None
    prometheus_rules: tuple[Path, ...] = ()
    vllm_epp_url: str | None = None
    vllm_epp_config: Path | None = None
    vllm_epp_token_env: str = "EPP_TOKEN"
    vllm_upgrade_to: str | None = None
    vllm_exclusive: bool = False
    prometheus_url: str | None = None
    prometheus_token_env: str = "PROMETHEUS_TOKEN"
    prometheus_ca: Path | None = None
    prometheus_insecure: bool = False
    vllm_report: str | None = None
    vllm_gaie_report: str | None = None
    vllm_gaie_version: str = gaie.VERSION
    vllm_gaie_implementation: tuple[gaie.Field, ...] = ()
    vllm_fail_on: str = "must"
    vllm_shard: Shard | None = None
    sources: Mapping[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()  # how a value given was read, for the report header

    @property
    def policy(self) -> Policy:
        return Policy(self.vllm_require_feature, self.vllm_exempt_feature, bool(self.vllm_gateway_url),
                      self.vllm_namespace, self.vllm_exclusive,
                      self.vllm_shard is not None and self.vllm_shard.sliced)

    @property
    def has_targets(self) -> bool:
        return bool(self.vllm_url or self.vllm_sim or self.vllm_namespace)

    def bounds(self) -> str:
        """The caps that keep a run against production servers small, for the report header."""
        return (f"bounds: {self.vllm_requests} requests per server of at most {self.vllm_max_tokens} tokens, "
                f"{self.vllm_concurrency} servers at once, {self.vllm_timeout:g} s per request, "
                f"{self.vllm_phase_timeout:g} s per phase, bodies up to {MAX_BODY_BYTES // 2**20} MiB")

    def header_lines(self) -> list[str]:
        """One line per setting not left at its default, with where it came from; secrets masked."""
        lines = []
        for option in OPTIONS:
            source = self.sources.get(option.name, "default")
            if source == "default":
                continue
            value = getattr(self, option.name)
            if option.secret:
                shown = "set (hidden)"
            elif isinstance(value, Shard):
                shown = f"{value.spelled} ({value})"
            elif isinstance(value, tuple):
                shown = ", ".join(redact_url(str(v)) for v in value)
            else:
                shown = redact_url(str(value))
            lines.append(f"{option.flag}: {shown} (from {source})")
        return lines


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("vllm-metrics", "vLLM metrics conformance")
    for option in OPTIONS:
        env_note = f" [env {option.env_var}" + (f", ini {option.ini_key}]" if option.ini else "]")
        kwargs: dict[str, Any] = {"dest": option.name, "default": None, "metavar": option.metavar,
                                  "help": option.help + env_note}
        if option.multiple:
            kwargs["action"] = "append"
        if option.switch:
            kwargs.update(action="store_const", const="true")
            kwargs.pop("metavar")
        if option.nargs_optional_const is not None:
            kwargs["nargs"] = "?"
            kwargs["const"] = option.nargs_optional_const
        group.addoption(option.flag, **kwargs)
        if option.ini and option.multiple:
            parser.addini(option.ini_key, option.help, type="linelist")
        elif option.ini:
            parser.addini(option.ini_key, option.help, type="string")


def resolve(config: pytest.Config, environ: Mapping[str, str] | None = None) -> Settings:
    """Resolve every option once; raise pytest.UsageError naming the bad value and the valid ones."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for option in OPTIONS:
        raw, source = _raw_value(config, environ, option)
        if raw is None:
            continue
        where = {"option": option.flag, "env": option.env_var, "ini": f"ini {option.ini_key}"}[source]
        if option.multiple:
            items = raw if isinstance(raw, list) else _split(raw)
            values[option.name] = tuple(option.parse(item, where) for item in items if item)
        else:
            values[option.name] = option.parse(raw, where)
        sources[option.name] = source
    settings = _base_urls(Settings(**values, sources=sources))
    for needs_pods in ("vllm_upgrade_to", "vllm_epp_url"):
        if getattr(settings, needs_pods) and not settings.has_targets:
            flag = next(o.flag for o in OPTIONS if o.name == needs_pods)
            raise pytest.UsageError(
                f"{flag} judges the running fleet, and no vLLM target is given: pass --vllm-namespace (or "
                f"--vllm-url, --vllm-sim) so that the run knows which pods and versions it compares with.")
    if settings.vllm_upgrade_to and settings.vllm_shard is not None and settings.vllm_shard.sliced:
        raise pytest.UsageError(
            f"--vllm-upgrade-to forecasts over the versions of the whole fleet, and --vllm-shard="
            f"{settings.vllm_shard.spelled} sees only a slice of it: run the forecast unsharded (it only scrapes "
            f"each server once, with no workload, so one run covers a large fleet).")
    if settings.vllm_gaie_report and settings.vllm_shard is not None and settings.vllm_shard.sliced:
        raise pytest.UsageError(
            "--vllm-gaie-report writes one report per model server over all its pods, and --vllm-shard sees only a "
            "slice of them (the shards would overwrite each other's files): write it from an unsharded run.")
    overlap = set(settings.vllm_require_feature) & set(settings.vllm_exempt_feature)
    if overlap:
        raise pytest.UsageError(f"feature(s) {', '.join(sorted(overlap))} are both required and exempted; pass each "
                                f"feature to only one of --vllm-require-feature and --vllm-exempt-feature.")
    return settings


def _base_urls(settings: Settings) -> Settings:
    """A URL given with the path the suite appends (http://host:8200/metrics) is taken as its base URL: the suite
    would request /metrics/metrics and /metrics/v1. Said once, in the report header."""
    notes = list(settings.notes)
    changes: dict[str, Any] = {}
    # --vllm-epp-url's metrics are always at /metrics (the EPP's own path)
    for name, path in (("vllm_url", settings.vllm_metrics_path), ("vllm_epp_url", "/metrics")):
        value = getattr(settings, name)
        urls = value if isinstance(value, tuple) else (value,) if value else ()
        cut = [url for url in urls if path != "/" and url.endswith(path) and httpx.URL(url).path.endswith(path)]
        if not cut:
            continue
        bases = tuple(url.removesuffix(path) if url in cut else url for url in urls)
        changes[name] = bases if isinstance(value, tuple) else bases[0]
        flag = next(o.flag for o in OPTIONS if o.name == name)
        notes.append(f"{flag} {', '.join(redact_url(url) for url in cut)} ends in the metrics path {path}: "
                     f"checking {', '.join(redact_url(url.removesuffix(path)) for url in cut)} (the suite requests "
                     f"{path}{', /v1 and /version' if name == 'vllm_url' else ''} under the base URL itself)")
    return replace(settings, **changes, notes=tuple(notes)) if changes else settings


def _raw_value(config: pytest.Config, environ: Mapping[str, str], option: Option) -> tuple[Any, str]:
    cli = config.getoption(option.name, default=None)
    if cli not in (None, []):
        return cli, "option"
    env = environ.get(option.env_var)
    if env:
        return env, "env"
    if option.ini:
        ini = config.getini(option.ini_key)
        if ini not in (None, "", []):
            return ini, "ini"
    return None, "default"


def _split(raw: str) -> list[str]:
    return [item for item in re.split(r"[,\s]+", raw.strip()) if item]
