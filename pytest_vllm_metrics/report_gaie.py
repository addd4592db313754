"""The model-server protocol's results as Gateway API Inference Extension conformance reports (--vllm-gaie-report=DIR):
one `GatewayAPIInferenceExtensionConformanceReport` per model server and version (kubernetes-sigs/gateway-api-inference-
extension conformance/conformancereport.go: the GAIE version, then gateway-api's ConformanceReport inlined), profile
ModelServer, written where GAIE keeps such reports: DIR/<implementation>/<version>-default-model-server-report.yaml
(DIR standing for conformance/reports/<GAIE version>/model-server/). It renders the report model's rows of the
protocol's checks (conformance/test_model_server.py, and test_server.py's test_reachable and test_workload_served) and
decides nothing they do not say.

How a check counts for one model server: the worst of its targets' own outcomes (a row holds each target's), then
    passed, xpassed                 Passed
    failed, error                   Failed, named in failedTests
    skipped                         Skipped, named in skippedTests (an extended check whose feature the server does not
                                    serve is not run: the feature is listed in unsupportedFeatures, as GAIE does)
    inconclusive, xfailed           Skipped, named in skippedTests: GAIE has no word for "could not be judged" or
                                    "a documented limitation", and neither may read as passed; the result is then
                                    partial at best, and the summary says how many could not be judged
MUST and SHOULD checks are the profile's core, MAY checks its extended part. The result of each is GAIE's: failure
with any failure, else partial with any skip, else success.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from . import engines, gaie
from .engines import Engine
from .outcome import Level
from .report import Report, write_text
from .rows import Row, RowOutcome, worse

API_VERSION = "gateway.networking.k8s.io/v1"  # the TypeMeta gateway-api's conformance reports carry
PROTOCOL_MODULE = "test_model_server.py"
PROTOCOL_TEST = "test_protocol_"
# The bundled checks of every engine that the protocol also asks for: its metrics answer at their path, and it serves
# the OpenAI completions API. A server whose page does not answer fails test_reachable, and its protocol checks are
# inconclusive: without it, the report of a broken server would have no failure.
SERVER_TESTS = {("test_server.py", "test_reachable"), ("test_server.py", "test_workload_served")}
FEATURE_OF_CHECK = {"protocol_kv_cache_shape": "BlockSizeInfo"}  # an extended check's feature, as GAIE names one
LORA = "LoRA"
_CORE = (Level.MUST, Level.SHOULD)


class Result(StrEnum):
    """gateway-api conformance/apis/v1 Result."""

    SUCCESS = "success"
    PARTIAL = "partial"
    FAILURE = "failure"


class Counted(StrEnum):
    """GAIE's statistics (gateway-api conformance/apis/v1 Statistics)."""

    PASSED = "Passed"
    FAILED = "Failed"
    SKIPPED = "Skipped"


COUNTED_AS = {RowOutcome.PASSED: Counted.PASSED, RowOutcome.XPASSED: Counted.PASSED,
              RowOutcome.FAILED: Counted.FAILED, RowOutcome.ERROR: Counted.FAILED,
              RowOutcome.SKIPPED: Counted.SKIPPED, RowOutcome.INCONCLUSIVE: Counted.SKIPPED,
              RowOutcome.XFAILED: Counted.SKIPPED}


@dataclass
class Status:
    """A profile's core or extended part (gateway-api conformance/apis/v1 Status)."""

    counts: dict[Counted, int] = field(default_factory=lambda: dict.fromkeys(Counted, 0))
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    unjudged: int = 0  # inconclusive: among the skipped

    def add(self, test: str, outcome: RowOutcome) -> None:
        counted = COUNTED_AS[outcome]
        self.counts[counted] += 1
        if counted is Counted.FAILED:
            self.failed.append(test)
        elif counted is Counted.SKIPPED:
            self.skipped.append(test)
            self.unjudged += outcome is RowOutcome.INCONCLUSIVE

    @property
    def result(self) -> Result:
        if self.counts[Counted.FAILED]:
            return Result.FAILURE
        return Result.PARTIAL if self.counts[Counted.SKIPPED] else Result.SUCCESS

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        """GAIE's words (conformance/utils/suite/reports.go buildReportSummary)."""
        if self.result is Result.FAILURE:
            return f"failed with {self.counts[Counted.FAILED]} test failures"
        if self.result is Result.PARTIAL:
            return f"partially succeeded with {self.counts[Counted.SKIPPED]} test skips"
        return "succeeded"

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"result": self.result.value,
                               "statistics": {counted.value: n for counted, n in self.counts.items()}}
        if self.failed:
            out["failedTests"] = list(self.failed)
        if self.skipped:
            out["skippedTests"] = list(self.skipped)
        return out


@dataclass
class Profile:
    """One model server's ModelServer profile, filled from the protocol rows."""

    core: Status = field(default_factory=Status)
    extended: Status = field(default_factory=Status)
    supported: set[str] = field(default_factory=set)
    unsupported: set[str] = field(default_factory=set)

    def summary(self) -> str:
        text = f"Core tests {self.core.summary()}."
        if self.extended.total:  # GAIE speaks of the extended tests only when some ran
            text += f" Extended tests {self.extended.summary()}."
        unjudged = self.core.unjudged + self.extended.unjudged
        if unjudged:
            text += (f" {unjudged} of the skipped tests could not be judged (inconclusive: the run could not observe "
                     f"what they need); rerun once the cause is fixed.")
        return text

    def as_dict(self) -> dict[str, Any]:
        extended = self.extended.as_dict()
        if self.supported:
            extended["supportedFeatures"] = sorted(self.supported)
        if self.unsupported - self.supported:
            extended["unsupportedFeatures"] = sorted(self.unsupported - self.supported)
        return {"core": self.core.as_dict(), "extended": extended, "name": gaie.PROFILE, "summary": self.summary()}


def is_protocol(row: Row) -> bool:
    """A row of the bundled checks of the model-server protocol."""
    module, _, test = row.id.partition("::")
    module = module.rsplit("/", 1)[-1]
    return (module == PROTOCOL_MODULE and test.startswith(PROTOCOL_TEST)) or (module, test) in SERVER_TESTS


def test_name(check: str) -> str:
    """The check as GAIE names a test (its ShortName, CamelCase): protocol_metric[kv_usage] is ProtocolMetricKvUsage."""
    return "".join(part.capitalize() for part in check.replace("[", "_").replace("]", "").split("_") if part)


@dataclass
class _Group:
    implementation: gaie.Implementation
    targets: list[Mapping[str, Any]]
    profile: Profile = field(default_factory=Profile)


def documents(report: Report, version: str = gaie.VERSION, given: Iterable[gaie.Field] = ()
              ) -> dict[Path, dict[str, Any]]:
    """Each report as plain data, by its path under DIR (<implementation>/<file>): one per model server and version
    (targets whose implementation fields come out the same share one). No report for a model server no protocol
    check judged: a report of nothing would read as a success."""
    fields = list(given)
    groups: dict[Path, _Group] = {}
    of_target: dict[str, Path] = {}
    for target in report.implementations:
        engine = Engine(target.get("modelServer") or engines.default_engine())
        found = target.get("vllmVersion") if engine is Engine.VLLM else None
        implementation = gaie.implementation(engine, found, fields)
        path = Path(implementation.folder, implementation.file_name)
        group = groups.setdefault(path, _Group(implementation, []))
        group.targets.append(target)
        of_target[str(target["target"])] = path
    judged: set[Path] = set()
    for row in (r for r in report.rows if is_protocol(r)):
        outcomes: dict[Path, RowOutcome] = {}
        for name, outcome, _ in row.per_target():
            at = of_target.get(name)
            if at is not None:
                outcomes[at] = worse(outcomes.get(at), outcome.bucket)  # an error counts as failed
        for path, outcome in outcomes.items():
            judged.add(path)
            _count(groups[path].profile, row, outcome)
    out = {}
    for path, group in groups.items():
        if path not in judged:
            continue
        _lora(group)
        out[path] = {
            "GatewayAPIInferenceExtensionVersion": version, "apiVersion": API_VERSION,
            "date": report.started.strftime("%Y-%m-%dT%H:%M:%SZ"),
            # a model server's report tests no Gateway API resource: gateway-api's version and channel stay empty
            "gatewayAPIChannel": "", "gatewayAPIVersion": "",
            "implementation": group.implementation.as_dict(), "kind": "ConformanceReport", "mode": gaie.MODE,
            "profiles": [group.profile.as_dict()]}
    return out


def _count(profile: Profile, row: Row, outcome: RowOutcome) -> None:
    test = test_name(row.check)
    feature = FEATURE_OF_CHECK.get(row.check)
    if row.level in _CORE:
        profile.core.add(test, outcome)
    elif feature is not None and outcome is RowOutcome.SKIPPED:
        profile.unsupported.add(feature)  # the server serves none of it: GAIE does not run such a test
    else:
        profile.extended.add(test, outcome)
        if feature is not None and COUNTED_AS[outcome] is not Counted.SKIPPED:
            profile.supported.add(feature)  # served: its check passed, or failed on what it serves


def _lora(group: _Group) -> None:
    """LoRA is supported where the engine's protocol maps a LoRA metric and a target serves it."""
    seen = any(engines.profile(Engine(t.get("modelServer") or engines.default_engine())).lora
               and "lora" in (t.get("features") or ()) for t in group.targets)
    (group.profile.supported if seen else group.profile.unsupported).add(LORA)


def render(document: Mapping[str, Any]) -> str:
    """The YAML GAIE's suite writes (sigs.k8s.io/yaml: keys in order, block style)."""
    import yaml  # start-up cost: only when the reports are asked for

    return yaml.safe_dump(dict(document), sort_keys=True, default_flow_style=False, allow_unicode=True)


def write(report: Report, directory: Path, version: str = gaie.VERSION, given: Iterable[gaie.Field] = ()
          ) -> list[Path]:
    """Write each report under `directory`; the paths written."""
    written = []
    for path, document in documents(report, version, given).items():
        target = directory / path
        target.parent.mkdir(parents=True, exist_ok=True)
        write_text(target, render(document))
        written.append(target)
    return written
