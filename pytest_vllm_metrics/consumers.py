"""Readers of vLLM's metrics besides Grafana panels, each a `readers.Reader` with its `kind`.

Alerting and recording rules (plain rule files, `PrometheusRule` objects), KEDA `ScaledObject`s with Prometheus
triggers, prometheus-adapter rules and the endpoint picker's (EPP) metric flags: each becomes a Reader whose
queries are its PromQL expressions (for an EPP flag, the metric it names), judged by `judging.judge_reader`
with the vocabulary of panels. This module only reads their shapes (files here, objects from `kube.py`); it
never talks to a cluster itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from . import epp_config
from .promql import selectors
from .readers import DashboardError, Query, Reader, ReaderKind, object_dashboards

__all__ = [
    "ConsumerError",
    "about_vllm",
    "adapter_consumers",
    "consumer_id",
    "epp_consumers",
    "from_cluster",
    "keda_consumers",
    "load_rules",
    "rule_consumers",
    "unique",
    "with_recorded",
]

_RULE_SUFFIXES = (".yaml", ".yml", ".json")
# The endpoint picker's flags that name a model-server metric (gateway-api-inference-extension, cmd/epp; the
# inferencepool chart passes them as "--flag=value" or as two arguments).
EPP_FLAGS = ("--kv-cache-usage-percentage-metric", "--total-queued-requests-metric",
             "--total-running-requests-metric", "--lora-info-metric")


class ConsumerError(Exception):
    """A rule file that cannot be used; one paragraph naming the file and the fix."""


def consumer_id(panel: Reader) -> str:
    """The test id of a consumer: its kind, its source and its name (alert:vllm-alerts::VLLMKVCacheHigh)."""
    return f"{panel.kind}:{panel.id}"


def unique(panels: Iterable[Reader]) -> list[Reader]:
    """The panels with titles made unique within their source (test ids must be): "X", "X (2)", ..."""
    out: list[Reader] = []
    ids: set[str] = set()
    for panel in panels:
        title, n = panel.title, 1
        while f"{panel.kind}:{panel.dashboard}::{title}" in ids:
            n += 1
            title = f"{panel.title} ({n})"
        ids.add(f"{panel.kind}:{panel.dashboard}::{title}")
        out.append(panel if title == panel.title else replace(panel, title=title))
    return out


def with_recorded(panels: list[Reader], consumers: list[Reader]) -> tuple[list[Reader], list[Reader]]:
    """The panels and consumers, each knowing the series the recording rules among the consumers make: an alert
    or a panel over a recorded series is judged by the recording rule's own test, not as a missing vLLM metric."""
    recorded = frozenset(_record_name(c) for c in consumers if c.kind == ReaderKind.RECORD)
    return ([replace(p, recorded=recorded) for p in panels], [replace(c, recorded=recorded) for c in consumers])


# -- Prometheus rules --------------------------------------------------------------------------------------


def load_rules(paths: Iterable[Path]) -> list[Reader]:
    """Every alerting and recording rule of the given files and directories (--prometheus-rules)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in _RULE_SUFFIXES)
            if not found:
                raise ConsumerError(
                    f"rule directory {path} holds no rule file (*.yaml, *.yml, *.json); put the Prometheus rule "
                    f"files or PrometheusRule objects (kubectl get prometheusrule NAME -o yaml) in it, or pass the "
                    f"files themselves to --prometheus-rules.")
            files.extend(found)
        else:
            files.append(path)
    panels: list[Reader] = []
    for file in files:
        panels.extend(_rule_file(file))
    kept = about_vllm(panels)
    if panels and not kept:
        raise ConsumerError(
            f"none of the {len(panels)} rules in {', '.join(map(str, files))} reads a vLLM metric (a vllm: series, "
            f"up or another scrape series of a job named after vLLM, or a series such a rule records), so there is "
            f"nothing to check. Pass the rule files of your vLLM deployment to --prometheus-rules.")
    return unique(kept)


def _rule_file(file: Path) -> list[Reader]:
    import yaml  # a dependency of the kubernetes client as well

    try:
        documents = [d for d in yaml.safe_load_all(file.read_text(encoding="utf-8")) if d is not None]
    except (OSError, UnicodeDecodeError) as exc:
        raise ConsumerError(f"rule file {file} cannot be read ({exc}); check --prometheus-rules.") from None
    except yaml.YAMLError as exc:
        problem = " ".join(str(exc).split())
        raise ConsumerError(f"rule file {file} is not valid YAML ({problem}); fix it (promtool check rules "
                            f"{file} shows where) or pass the PrometheusRule as kubectl prints it (kubectl get "
                            f"prometheusrule NAME -o yaml).") from None
    panels: list[Reader] = []
    for number, document in enumerate(documents, 1):
        panels.extend(_rule_document(file, number, document))
    if not panels:
        raise ConsumerError(
            f"rule file {file} holds no alerting or recording rule: expected a Prometheus rule file ('groups:' at "
            f"the top, each group with 'rules:') or a PrometheusRule (kind: PrometheusRule, "
            f"apiVersion: monitoring.coreos.com/v1, with spec.groups). Pass the file Prometheus loads, or the "
            f"PrometheusRule as kubectl prints it (kubectl get prometheusrule NAME -o yaml).")
    return panels


def _rule_document(file: Path, number: int, document: Any) -> list[Reader]:
    if not isinstance(document, dict):
        raise ConsumerError(
            f"rule file {file}: document {number} is a {type(document).__name__}, not a rule file ('groups:' at "
            f"the top) or a PrometheusRule (kind: PrometheusRule with spec.groups); pass a rule file as "
            f"Prometheus loads it or a PrometheusRule as kubectl prints it.")
    kind = document.get("kind")
    if kind == "List":
        return [p for item in document.get("items") or [] for p in _rule_document(file, number, item)]
    if kind == "PrometheusRule":
        metadata = document.get("metadata") or {}
        name = str(metadata.get("name") or file.stem)
        namespace = metadata.get("namespace")
        where = f"PrometheusRule {namespace + '/' if namespace else ''}{name} in {file}"
        return rule_consumers((document.get("spec") or {}).get("groups"), name, where)
    if kind is not None:
        return []  # another Kubernetes object next to the rules (a Helm chart's output): not a consumer
    if "groups" not in document:
        keys = ", ".join(sorted(map(str, document))) or "none"
        raise ConsumerError(
            f"rule file {file}: document {number} has no 'groups:' (its top-level keys: {keys}) and is not a "
            f"PrometheusRule; a Prometheus rule file starts with 'groups:', a PrometheusRule has kind: "
            f"PrometheusRule and spec.groups. Pass one of those to --prometheus-rules.")
    return rule_consumers(document["groups"], file.stem, f"file {file}")


def rule_consumers(groups: Any, source: str, where: str) -> list[Reader]:
    """The rules of `groups` (a rule file's or a PrometheusRule's spec), one Reader each. `source` names them in
    test ids (the file's stem, the PrometheusRule's name); `where` in messages. ConsumerError when malformed."""
    if not isinstance(groups, list):
        raise ConsumerError(f"{where}: 'groups' must be a list of rule groups (each with 'name' and 'rules'), "
                            f"found {type(groups).__name__}; check it with promtool check rules.")
    panels: list[Reader] = []
    for index, group in enumerate(groups, 1):
        rules = group.get("rules") if isinstance(group, dict) else None
        group_name = str(group.get("name") or index) if isinstance(group, dict) else str(index)
        if not isinstance(rules, list):
            raise ConsumerError(f"{where}: group {group_name} has no list of 'rules'; each group holds 'name' and "
                                f"'rules'. Check it with promtool check rules.")
        for number, rule in enumerate(rules, 1):
            kind = next((k for k in (ReaderKind.ALERT, ReaderKind.RECORD) if isinstance(rule, dict) and rule.get(k)),
                        None)
            expr = rule.get("expr") if isinstance(rule, dict) else None
            if kind is None or expr is None or not str(expr).strip():
                raise ConsumerError(f"{where}: rule {number} of group {group_name} needs 'alert' or 'record' and "
                                    f"'expr'; check it with promtool check rules.")
            panels.append(Reader(source, str(rule[kind]), (Query("expr", str(expr).strip()),),
                                dashboard_title=where, kind=kind))
    return panels


# -- KEDA, prometheus-adapter, the endpoint picker ---------------------------------------------------------


def keda_consumers(scaled_object: dict[str, Any]) -> tuple[list[Reader], list[str]]:
    """The Prometheus triggers of a KEDA ScaledObject (keda.sh/v1alpha1): their metadata.query. Notes for the
    triggers that cannot be judged."""
    metadata = scaled_object.get("metadata") or {}
    name, namespace = str(metadata.get("name") or "?"), str(metadata.get("namespace") or "")
    where = f"ScaledObject {namespace}/{name}" if namespace else f"ScaledObject {name}"
    panels, notes = [], []
    triggers = (scaled_object.get("spec") or {}).get("triggers") or []
    for index, trigger in enumerate(triggers if isinstance(triggers, list) else [], 1):
        if not isinstance(trigger, dict) or trigger.get("type") != "prometheus":
            continue
        meta = trigger.get("metadata") or {}
        query = str(meta.get("query") or "").strip()
        title = str(trigger.get("name") or meta.get("metricName") or f"trigger {index}")
        if not query:
            notes.append(f"{where}, trigger {title}: no metadata.query (KEDA would reject it); not checked")
            continue
        server = str(meta.get("serverAddress") or "")
        panels.append(Reader(name, title, (Query("query", query),),
                            dashboard_title=f"{where}, Prometheus {server}" if server else where, kind=ReaderKind.KEDA))
    return panels, notes


def adapter_consumers(config: Any, source: str, where: str, namespace: str | None) -> tuple[list[Reader], list[str]]:
    """The rules of a prometheus-adapter config.yaml (`rules`, `externalRules`): the seriesQuery, and the
    metricsQuery with its template filled as the adapter fills it for one object of `namespace`."""
    panels: list[Reader] = []
    notes: list[str] = []
    if not isinstance(config, dict):
        return [], [f"{where}: config.yaml is not a mapping of rules; not checked"]
    for key in ("rules", "externalRules"):
        rules = config.get(key) or []
        for index, rule in enumerate(rules if isinstance(rules, list) else [], 1):
            if not isinstance(rule, dict) or not rule.get("seriesQuery"):
                continue
            series_query = str(rule["seriesQuery"]).strip()
            naming = rule.get("name") or {}
            title = str(naming.get("as") or naming.get("matches") or f"{key}[{index}]")
            metric = _named_metric(series_query)
            if metric is not None and not series_query.lstrip().startswith(metric):
                # {__name__=~"^name$",...} (the adapter's docs write it so): the same selector, named
                rest = re.sub(r'__name__\s*=~?\s*"[^"]*"\s*,?\s*', "", series_query).strip()
                series_query = metric + (rest if rest != "{}" else "")
            if metric is None:
                notes.append(f"{where}, rule {title}: its seriesQuery {series_query} selects series by a name "
                             f"pattern, not one metric; not checked")
                continue
            queries = [Query("seriesQuery", series_query)]
            if rule.get("metricsQuery"):
                queries.append(Query("metricsQuery", _fill(str(rule["metricsQuery"]), metric, namespace)))
            panels.append(Reader(source, title, tuple(queries), dashboard_title=where, kind=ReaderKind.ADAPTER))
    return panels, notes


def _named_metric(series_query: str) -> str | None:
    """The metric a seriesQuery names (`vllm:x{...}` or `{__name__="vllm:x",...}`), None for a name regex."""
    found = re.match(r"\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{|$)", series_query)
    if found:
        return found.group(1)
    named = re.search(r'__name__\s*=~?\s*"\^?([a-zA-Z_:][a-zA-Z0-9_:]*)\$?"', series_query)
    return named.group(1) if named else None


def _fill(template: str, series: str, namespace: str | None) -> str:
    """The adapter's Go template: <<.Series>>, <<.LabelMatchers>> (the object's namespace) and <<.GroupBy>>."""
    matchers = f'namespace="{namespace}"' if namespace else ""
    text = re.sub(r"<<\s*\.Series\s*>>", series, template)
    text = re.sub(r"<<\s*\.LabelMatchers\s*>>", matchers, text)
    text = re.sub(r"<<\s*\.GroupBy\s*>>", "namespace, pod", text)
    return re.sub(r"\{\s*,|,\s*\}", lambda m: "{" if m.group(0).startswith("{") else "}", text)


def epp_consumers(deployment: dict[str, Any]) -> list[Reader]:
    """The metric flags of an endpoint picker Deployment's containers, one Reader each (the metric as its query)."""
    metadata = deployment.get("metadata") or {}
    name, namespace = str(metadata.get("name") or "?"), str(metadata.get("namespace") or "")
    where = f"Deployment {namespace}/{name}" if namespace else f"Deployment {name}"
    containers = (((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
    panels = []
    for container in containers:
        for flag, value in epp_flags(epp_config.args_of(container)).items():
            if value:  # an empty value turns the reading off (the chart does so for LoRA on Triton)
                panels.append(Reader(name, flag.removeprefix("--"), (Query("metric", _metric_spec(value)),),
                                    dashboard_title=where, kind=ReaderKind.EPP))
    return panels


def epp_flags(args: list[Any]) -> dict[str, str]:
    """The metric flags among a container's arguments, as "--flag=value" or "--flag value" (Go's flag package)."""
    return epp_config.flag_values([str(a) for a in args], EPP_FLAGS)


def _metric_spec(spec: str) -> str:
    """The EPP's metric spec (`name` or `name{label=value,...}`, values unquoted) as a PromQL selector."""
    name, brace, rest = spec.strip().partition("{")
    if not brace:
        return name
    pairs = [p.strip() for p in rest.rstrip("}").split(",") if p.strip()]
    matchers = []
    for pair in pairs:
        label, _, value = pair.partition("=")
        matchers.append(f'{label.strip()}="{value.strip().strip(chr(34))}"')
    return f"{name}{{{','.join(matchers)}}}"


def is_epp(deployment: dict[str, Any]) -> bool:
    """An endpoint picker: labelled as the inferencepool chart labels it (selector `inferencepool: NAME-epp`,
    app.kubernetes.io/name NAME-epp), or a container passing one of its metric flags or its --pool-name, or
    running its image (gateway-api-inference-extension's epp, llm-d's inference scheduler)."""
    template = (deployment.get("spec") or {}).get("template") or {}
    labels = {**((deployment.get("metadata") or {}).get("labels") or {}),
              **((template.get("metadata") or {}).get("labels") or {})}
    if "inferencepool" in labels or str(labels.get("app.kubernetes.io/name", "")).endswith("-epp"):
        return True
    containers = (template.get("spec") or {}).get("containers") or []
    for container in containers:
        args = ["--" + str(a).partition("=")[0].lstrip("-")
                for a in [*(container.get("command") or []), *(container.get("args") or [])] if str(a).startswith("-")]
        image = str(container.get("image") or "")
        if set(args) & {*EPP_FLAGS, "--pool-name"} or re.search(
                r"gateway-api-inference-extension/epp|/epp:|llm-d-inference-scheduler", image):
            return True
    return False


# -- from the cluster --------------------------------------------------------------------------------------


def from_cluster(objects: Any, namespace: str) -> tuple[list[Reader], list[Reader], list[str]]:
    """(Grafana panels, other consumers, notes) of what `cluster_readers.read_consumers` found. Only readers of vLLM's
    metrics are kept: a monitoring namespace holds many rules and dashboards about other things. An object
    that cannot be read is a note, never a stop. A GrafanaDashboard's panels are drawn as the sidecar's are
    (`object_dashboards` reads either; a GrafanaDashboard in a List with the ConfigMap its configMapRef names)."""
    import yaml  # a dependency of the kubernetes client as well

    panels: list[Reader] = []
    consumers: list[Reader] = []
    notes: list[str] = []
    for rule in objects.prometheus_rules:
        metadata = rule.get("metadata") or {}
        name = str(metadata.get("name") or "?")
        where = f"PrometheusRule {metadata.get('namespace') or namespace}/{name}"
        try:
            consumers += rule_consumers((rule.get("spec") or {}).get("groups") or [], name, where)
        except ConsumerError as exc:
            notes.append(f"not checked: {exc}")
    for configmap in objects.dashboards:
        metadata = configmap.get("metadata") or {}
        where = f"namespace {metadata.get('namespace') or namespace}"
        try:
            found = object_dashboards(configmap, where)
        except DashboardError as exc:
            notes.append(f"not checked: {exc}")
            continue
        panels += found
    for resource in objects.grafana_dashboards:
        namespace_of = str((resource.get("metadata") or {}).get("namespace") or namespace)
        # with the ConfigMap its configMapRef names, of its own namespace (the operator reads no other)
        spec = resource.get("spec") if isinstance(resource.get("spec"), dict) else {}
        named = {str(ref.get("name")) for ref in (spec.get("configMapRef"), spec.get("gzipConfigMapRef"))
                 if isinstance(ref, dict)}
        source = [c for c in objects.configmaps if (c.get("metadata") or {}).get("name") in named
                  and (c.get("metadata") or {}).get("namespace", namespace_of) == namespace_of]
        try:
            panels += object_dashboards({"apiVersion": "v1", "kind": "List", "items": [resource, *source]},
                                       f"namespace {namespace_of}")
        except DashboardError as exc:
            notes.append(f"not checked: {exc}")
    for configmap in objects.configmaps:
        text = (configmap.get("data") or {}).get("config.yaml")
        if not text or not re.search(r"^\s*(rules|externalRules)\s*:", str(text), re.MULTILINE):
            continue  # not a prometheus-adapter configuration
        metadata = configmap.get("metadata") or {}
        name = str(metadata.get("name") or "?")
        where = f"ConfigMap {metadata.get('namespace') or namespace}/{name}, key config.yaml"
        try:
            config = yaml.safe_load(str(text))
        except yaml.YAMLError as exc:
            notes.append(f"{where} not checked: not valid YAML ({' '.join(str(exc).split())})")
            continue
        found, more = adapter_consumers(config, name, where, namespace)
        consumers += found
        notes += more
    for scaled in objects.scaled_objects:
        found, more = keda_consumers(scaled)
        consumers += found
        notes += more
    pickers: list[Reader] = []
    for deployment in objects.deployments:
        if not is_epp(deployment):
            continue
        config = epp_config.from_deployment(deployment, objects.configmaps)
        # an EPP that refuses its flags never reads them: its one failure says so
        consumers += [] if config.refuses_flags else epp_consumers(deployment)
        pickers += epp_config.readers(config)  # whatever engines they read: not filtered as vLLM's readers
    consumers = about_vllm(consumers) + pickers
    recorded = [_record_name(c) for c in consumers if c.kind == ReaderKind.RECORD]
    # a dashboard is kept whole when one of its panels reads vLLM (its other panels are judged as files' are)
    dashboards = {p.dashboard for p in about_vllm(panels, recorded)}
    return [p for p in panels if p.dashboard in dashboards], consumers, notes


def about_vllm(panels: list[Reader], recorded: Iterable[str] = ()) -> list[Reader]:
    """The panels that read vLLM's metrics: a `vllm:` metric or a series named after vLLM (as recording rules
    name theirs), `up` or another series Prometheus makes for a scrape job named after vLLM
    (`up{job="vllm"} == 0`), or a series that a recording rule over those records
    (`recorded`: more of those, from elsewhere). A monitoring namespace or a rules directory holds many rules
    about other things, which vLLM's pages cannot judge. An expression that does not parse is kept (its verdict
    says so)."""
    known = set(recorded)

    def reads(panel: Reader) -> bool:
        for expr in panel.exprs:
            try:
                found = selectors(expr)
            except ValueError:
                return "vllm" in expr.lower()
            for selector in found:
                # vllm:* and the recording rules' names for them (namespace:vllm_requests_waiting:sum)
                if "vllm" in selector.metric.lower() or selector.metric in known:
                    return True
                if selector.metric in _SCRAPE_SERIES and any("vllm" in v.lower() for _, _, v in selector.matchers):
                    return True
        return False

    records = [p for p in panels if p.kind == ReaderKind.RECORD]
    while True:  # recording rules over recording rules: until no new recorded series reads vLLM
        new = {_record_name(p) for p in records if _record_name(p) not in known and reads(p)}
        if not new:
            break
        known |= new
    return [p for p in panels if reads(p)]


_SCRAPE_SERIES = ("up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_series_added")


def _record_name(panel: Reader) -> str:
    return re.sub(r" \(\d+\)$", "", panel.title)  # unique() numbers repeated names; a record name has no space
