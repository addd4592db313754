"""Discovery on Kubernetes: the vLLM pods of a namespace, as Targets reached through the API server.

The official `kubernetes` client reads the kubeconfig (or the in-cluster service account), lists pods and
reads nodes. Data-plane calls (metrics, completions) then go through httpx with the same credentials, to
the API server's pod proxy (`--vllm-transport=proxy`) or straight to pod IPs (`direct`, inside the
cluster). Downstream, a pod is just a `Target`.
"""

from __future__ import annotations

import json
import os
import ssl
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import _launch
from .observe import Observation
from .outcome import Outcome, Verdict
from .snapshot import Snapshot
from .targets import DataParallel, Role, Target, ranks, redact_url

# llm-d charts label serving pods with one of these (the spelling changed on 2026-01-30).
DEFAULT_SELECTORS = ("llm-d.ai/inferenceServing=true", "llm-d.ai/inference-serving=true")
VLLM_CONTAINERS = ("vllm", "modelserver-leader", "modelserver-worker")
NODE_PERMISSION_NOTE = (
    "architecture unknown: reading nodes is forbidden; grant get on nodes (cluster-scoped, "
    "deploy/clusterrole-nodes.yaml) so the suite can read kubernetes.io/arch"
)


_SOCKS = ("the API server is reached through a SOCKS proxy (the kubeconfig's proxy-url, or ALL_PROXY), which "
          "needs PySocks for the kubernetes client and socksio for the suite's HTTP client: pip install pysocks "
          "'httpx[socks]'.")


class DiscoveryError(Exception):
    """Discovery cannot proceed; one paragraph naming the cause and the fix."""


@dataclass
class ClusterInfo:
    """What the run knows of the cluster: for the `vllm_cluster` fixture and the report."""

    api_client: Any = field(repr=False)
    context: str
    server: str
    version: str | None
    namespace: str
    selectors: tuple[str, ...]
    notes: list[str] = field(default_factory=list)
    # pods of multi-node deployments that run engines without an API server: listed, never scraped
    workers: list[Worker] = field(default_factory=list)


_ROLE_SHOWN = {Role.HEADLESS: "headless engines", Role.RAY_WORKER: "Ray worker"}
_WORKERS_NAMED = 8  # workers named in the one note; the JSON report lists every one


@dataclass(frozen=True)
class Worker:
    """A pod of a multi-node deployment that runs engines without an API server (`vllm serve --headless`, a Ray
    worker node): it has no /metrics and takes no request, so it is reported, not checked. Its engines' metrics
    are on its leader's page."""

    pod: str
    role: Role
    how: str  # what its command line shows: "vllm serve --headless", "ray start --address=vllm-0.vllm.ns:6379"
    node: str | None = None
    leader: str | None = None  # the leader's pod, when known
    leader_from: str = ""  # how: "LeaderWorkerSet vllm, group 0", "--data-parallel-address 10.0.0.5"
    checked: bool = False  # the leader is a server the run checks
    engines: str = ""  # a headless worker's data-parallel ranks: "2-3"

    def text(self) -> str:
        engines = f", data-parallel engines {self.engines}" if self.engines else ""
        if self.leader:
            leader = f"leader {self.leader}" + (f" ({self.leader_from})" if self.leader_from else "")
            leader += "" if self.checked else ", not among the checked pods"
        else:
            leader = "leader unknown" + (f" ({self.leader_from} names no pod of the run)" if self.leader_from else "")
        return f"{self.pod} ({_ROLE_SHOWN[self.role]}: {self.how}{engines}; {leader})"

    def as_dict(self) -> dict[str, Any]:
        return {"pod": self.pod, "role": str(self.role), "command": self.how, "node": self.node,
                "leader": self.leader, "leaderFrom": self.leader_from or None, "leaderChecked": self.checked,
                "engines": self.engines or None}


def workers_note(workers: list[Worker]) -> str:
    """One note for every report: which pods were left out as multi-node workers, and why."""
    named = "; ".join(worker.text() for worker in workers[:_WORKERS_NAMED])
    more = len(workers) - _WORKERS_NAMED
    if more > 0:
        named += f"; and {more} more (the JSON report's environment.kubernetes.multiNodeWorkers lists every one)"
    return f"multi-node workers (not scraped: no API server): {named}"


def _one_attempt(configuration: Any) -> Any:
    """One bounded attempt per call: an unreachable or hung API server must not cost the run several timeouts.
    Set before the client is built: its connection pool takes the retries once, when it is made."""
    configuration.retries = 0
    return configuration


def _load_client(kubeconfig: str | None, context: str | None) -> tuple[Any, str]:
    from kubernetes import client, config  # heavy: imported only when a namespace is given
    from kubernetes.config.config_exception import ConfigException

    path = kubeconfig or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or str(Path("~/.kube/config"))
    path = str(Path(path).expanduser())
    if not Path(path).is_file():
        if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            configuration = _one_attempt(client.Configuration())
            try:
                config.load_incluster_config(client_configuration=configuration)
            except ConfigException as exc:
                raise DiscoveryError(
                    f"running inside a cluster, but its service account cannot be used ({exc}): mount the "
                    f"token (automountServiceAccountToken) or pass --kubeconfig."
                ) from None
            return client.ApiClient(configuration), "in-cluster"
        raise DiscoveryError(
            f"kubeconfig {path} does not exist. Pass --kubeconfig=PATH (or set KUBECONFIG), or run inside the "
            f"cluster, where the pod's service account is used."
        )
    try:
        contexts, current = config.list_kube_config_contexts(path)
    except (ConfigException, OSError, ValueError) as exc:
        raise DiscoveryError(
            f"kubeconfig {path} cannot be read ({exc}); check that it is a valid kubeconfig."
        ) from None
    names = [c["name"] for c in contexts]
    chosen = str(context or (current or {}).get("name"))
    if chosen not in names:
        raise DiscoveryError(
            f"context {chosen!r} is not in kubeconfig {path}; its contexts are {', '.join(names) or 'none'}. "
            f"Pass one with --kube-context."
        )
    try:
        configuration = _one_attempt(client.Configuration())
        config.load_kube_config(config_file=path, context=chosen, client_configuration=configuration,
                                persist_config=False)
        return client.ApiClient(configuration), chosen
    except (ConfigException, OSError, ValueError) as exc:
        raise DiscoveryError(f"context {chosen!r} of kubeconfig {path} cannot be used: {exc}") from None
    except ImportError as exc:
        if exc.name != "socks":  # the kubernetes client imports PySocks only for a SOCKS proxy
            raise
        raise DiscoveryError(_SOCKS) from None


def discover(*, namespace: str, selector: str | None, container: str | None, port: str | None,
             kubeconfig: str | None, context: str | None, transport: str, timeout: float
             ) -> tuple[ClusterInfo, list[Target]]:
    from kubernetes import client

    api_client, context_name = _load_client(kubeconfig, context)
    configuration = api_client.configuration
    server = configuration.host
    selectors = (selector,) if selector else DEFAULT_SELECTORS
    core = client.CoreV1Api(api_client)
    proxy = _proxy(configuration)
    where = f"the API server {server} (context {context_name}" + (
        f", through the proxy {redact_url(proxy)})" if proxy else ")")

    def call(what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return _call(where, what, fn, *args, _request_timeout=timeout, **kwargs)

    # The version is only informational: whatever goes wrong reading it (an answer the client's model rejects,
    # an HTTP error, a timeout) is a note in the report, never a stop. If the API server is unreachable
    # altogether, listing pods says so next.
    version: str | None = None
    version_note = ""
    try:
        version = client.VersionApi(api_client).get_code(_request_timeout=timeout).git_version or None
    except Exception as exc:  # any failure at all: informational, see above
        version_note = f"Kubernetes version unknown (informational only): GET /version {_failure(exc)}"
    info = ClusterInfo(api_client, context_name, server, version, namespace, selectors)
    if version_note:
        info.notes.append(version_note)
    pods: dict[str, Any] = {}
    for one in selectors:
        listed = call(f"list pods in namespace {namespace}", core.list_namespaced_pod, namespace,
                      label_selector=one)
        for pod in listed.items:
            pods.setdefault(pod.metadata.name, pod)
    if not pods:
        raise DiscoveryError(_no_pods_message(core, call, namespace, selectors, where))
    arch_by_node = _node_architectures(core, {p.spec.node_name for p in pods.values() if p.spec.node_name},
                                       timeout, info)
    options = _client_options(configuration, proxy) if transport == "proxy" else {}
    ordered = sorted(pods.values(), key=lambda p: p.metadata.name)
    launches = {pod.metadata.name: _launch_of(pod, container) for pod in ordered}
    servers = {name for name, launch in launches.items() if not launch.role.worker}
    targets = [
        _target(pod, namespace, container, port, transport, server, options, arch_by_node,
                launches[pod.metadata.name].data_parallel)
        for pod in ordered if pod.metadata.name in servers
    ]
    for pod in ordered:
        launch = launches[pod.metadata.name]
        if not launch.role.worker:
            continue
        worker = _worker(pod, launch, ordered, servers)
        info.workers.append(worker)
        if not worker.checked:
            # Nothing of the run sees its engines: each check says so for this pod (inconclusive), and why.
            targets.append(_orphan(pod, worker, info, arch_by_node))
    if info.workers:
        info.notes.append(workers_note(info.workers))
    return info, sorted(targets, key=lambda t: t.name)


def _call(where: str, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError as Urllib3Error

    try:
        return fn(*args, **kwargs)
    except ApiException as exc:
        raise DiscoveryError(_api_error(where, what, exc)) from None
    except (Urllib3Error, OSError) as exc:
        if not _is_tls(exc):
            raise DiscoveryError(
                f"cannot reach {where} for {what} ({_root(exc)}). Check the network path to the cluster (VPN, "
                f"firewall) and that the context points at a running cluster."
            ) from None
        raise DiscoveryError(
            f"TLS with {where} failed during {what} ({_root(exc)}). The kubeconfig's certificate-authority does "
            f"not match the server's certificate, or the server URL is wrong; refresh the kubeconfig."
        ) from None
    except ValueError as exc:
        # The client validates every answer against its model (pydantic): an answer that lacks a required
        # field is a ValueError, which must not escape as a traceback.
        raise DiscoveryError(
            f"{where} answered {what} with an object the kubernetes client rejects ({_invalid(exc)}). Something "
            f"that is not a conformant Kubernetes API server answers there (a proxy, an old or partial API); "
            f"check the context's server URL."
        ) from None


def _invalid(exc: ValueError) -> str:
    """What a model validation error says, in one line: the fields it names."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            fields = sorted({".".join(map(str, e["loc"])) for e in errors() if e.get("loc")})
        except (TypeError, KeyError, AttributeError):
            fields = []
        if fields:
            return "missing or invalid: " + ", ".join(fields)
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _failure(exc: Exception) -> str:
    """How an informational call failed, in one line for a note ("answered 404 Not Found", ...)."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError as Urllib3Error

    if isinstance(exc, ApiException):
        return f"answered {exc.status} {exc.reason}"
    if isinstance(exc, ValueError):
        return f"answered an object the kubernetes client rejects ({_invalid(exc)})"
    if isinstance(exc, Urllib3Error | OSError):
        return f"failed ({_root(exc)})"
    text = str(exc).strip().splitlines()
    return f"failed ({type(exc).__name__}{': ' + text[0] if text else ''})"


def _is_tls(exc: BaseException) -> bool:
    import ssl as _ssl

    from urllib3.exceptions import SSLError

    seen: BaseException | None = exc
    for _ in range(8):  # the cause chain of a urllib3 error is short; bound it anyway
        if seen is None:
            return False
        if isinstance(seen, SSLError | _ssl.SSLError):
            return True
        nxt = seen.__cause__ or getattr(seen, "reason", None)
        seen = nxt if isinstance(nxt, BaseException) else None
    return False


def _root(exc: BaseException) -> str:
    while exc.__cause__ is not None or getattr(exc, "reason", None) is not None:
        nxt = exc.__cause__ or getattr(exc, "reason", None)
        if not isinstance(nxt, BaseException) or nxt is exc:
            break
        exc = nxt
    return str(exc) or type(exc).__name__


def _api_error(where: str, what: str, exc: Any) -> str:
    try:
        message = json.loads(exc.body or "{}").get("message", "")
    except ValueError:
        message = ""
    if exc.status == 401:
        return (f"{where} rejected the credentials (401 Unauthorized) during {what}: the token expired or is "
                f"wrong. Log in again or refresh the kubeconfig.")
    if exc.status == 403:
        return (f"{where} refused {what} (403 Forbidden: {message}). Grant the suite's identity that verb on "
                f"that resource; deploy/rbac.yaml holds the least the suite needs.")
    return f"{where} answered {exc.status} {exc.reason} during {what}: {message or exc.body}."


def _no_pods_message(core: Any, call: Any, namespace: str, selectors: tuple[str, ...], where: str) -> str:
    from kubernetes.client.exceptions import ApiException

    wanted = " or ".join(selectors)
    everything = call(f"list pods in namespace {namespace}", core.list_namespaced_pod, namespace).items
    if not everything:
        try:
            core.read_namespace(namespace, _request_timeout=10)
        except ApiException as exc:
            if exc.status == 404:
                return (f"namespace {namespace!r} does not exist on {where}. Check --vllm-namespace "
                        f"(kubectl get namespaces lists them).")
        except Exception:  # reading namespaces is optional (a cluster-scoped permission)
            pass
        return (f"namespace {namespace!r} on {where} has no pods at all (or does not exist). Check "
                f"--vllm-namespace and the kube context.")
    counts: Counter[str] = Counter()
    for pod in everything:
        for key, value in (pod.metadata.labels or {}).items():
            counts[f"{key}={value}"] += 1
    interesting = [label for label in counts if label.startswith(("llm-d.ai/", "app", "inference"))] or list(counts)
    shown = ", ".join(f"{label} ({counts[label]} pods)" for label in sorted(interesting)[:12])
    return (f"no pod in namespace {namespace!r} matches {wanted}; its {len(everything)} pod(s) carry: {shown}. "
            f"Pass the right selector with --vllm-selector (e.g. llm-d.ai/inference-serving=true versus "
            f"llm-d.ai/inferenceServing=true).")


def _node_architectures(core: Any, nodes: set[str], timeout: float, info: ClusterInfo) -> dict[str, str]:
    from kubernetes.client.exceptions import ApiException

    arch: dict[str, str] = {}
    for node in sorted(nodes):
        # Architectures are informational too: a node that cannot be read is a note, its pods' arch unknown.
        try:
            labels = core.read_node(node, _request_timeout=timeout).metadata.labels or {}
        except Exception as exc:  # an HTTP error, a timeout, an answer the client's model rejects, no metadata
            if isinstance(exc, ApiException) and exc.status in (401, 403):
                info.notes.append(NODE_PERMISSION_NOTE)
                return {}
            info.notes.append(f"architecture of node {node} unknown: reading it {_failure(exc)}")
            continue
        arch[node] = labels.get("kubernetes.io/arch", "unknown")
    return arch


def _client_options(configuration: Any, proxy: str | None) -> dict[str, Any]:
    """httpx options that reach the API server as the kubernetes client does: the credentials it loaded (CA,
    client cert, tokens), its `proxy` (see _proxy) and the kubeconfig's tls-server-name. Without the last
    two, discovery works and every scrape fails."""
    import importlib.util

    import httpx

    context = ssl.create_default_context(cafile=configuration.ssl_ca_cert) if configuration.ssl_ca_cert else (
        ssl.create_default_context())
    if configuration.cert_file:
        context.load_cert_chain(configuration.cert_file, configuration.key_file)
    if not configuration.verify_ssl:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    headers = {}
    # auth_settings() runs the refresh hook (exec plugins, in-cluster token rotation) before answering.
    for setting in configuration.auth_settings().values():
        if setting.get("in") == "header" and setting.get("value"):
            headers[setting["key"]] = setting["value"]
    options: dict[str, Any] = {"verify": context, "headers": headers}
    if proxy:
        if proxy.startswith("socks") and importlib.util.find_spec("socksio") is None:
            raise DiscoveryError(_SOCKS)
        options["proxy"] = httpx.Proxy(proxy, headers=configuration.proxy_headers)
    if configuration.tls_server_name:
        # httpcore's sni_hostname names the server for SNI and for checking its certificate, as
        # tls-server-name does for kubectl when the address is not the name on the certificate.
        server_name = configuration.tls_server_name

        async def name_the_server(request: httpx.Request) -> None:
            request.extensions["sni_hostname"] = server_name

        options["event_hooks"] = {"request": [name_the_server]}
    return options


def _proxy(configuration: Any) -> str | None:
    """The proxy the kubernetes client uses for the API server (the kubeconfig's proxy-url, else
    HTTPS_PROXY), by the same NO_PROXY rules."""
    from kubernetes.client.rest import should_bypass_proxies

    if configuration.proxy and not should_bypass_proxies(configuration.host, configuration.no_proxy or ""):
        return str(configuration.proxy)
    return None


def _target(pod: Any, namespace: str, container: str | None, port: str | None, transport: str, server: str,
            options: dict[str, Any], arch_by_node: dict[str, str], data_parallel: DataParallel | None = None
            ) -> Target:
    name = pod.metadata.name
    node = pod.spec.node_name
    labels = dict(pod.metadata.labels or {})
    arch = arch_by_node.get(node or "", "unknown")
    detail = {"namespace": namespace, "node": node or "unscheduled", "arch": arch, "transport": transport}
    common: dict[str, Any] = {"name": name, "arch": arch, "source": "kubernetes", "node": node, "labels": labels,
                              "detail": detail, "data_parallel": data_parallel}
    ready = any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))
    if not ready:
        reason = pod.status.reason or next(
            (s.state.waiting.reason for s in (pod.status.container_statuses or [])
             if s.state and s.state.waiting and s.state.waiting.reason), None)
        return Target(base_url="", unavailable=(
            f"{name}: pod is not Ready (phase {pod.status.phase}{', reason ' + reason if reason else ''}); "
            f"it is reported, not checked. kubectl describe pod {name} -n {namespace} says why."), **common)
    resolved, problem = _port(pod, container, port)
    if problem:
        lws = _launch.rules().lws
        index = labels.get(lws.worker_index)
        if index not in (None, "0"):
            # a LeaderWorkerSet's worker whose command line the run could not read as a worker's
            problem += (f" It is worker {index} of LeaderWorkerSet {labels.get(lws.name, '?')}: if it runs engines "
                        f"without an API server (a multi-node worker), their metrics are on its leader's page; select "
                        f"the leaders only (e.g. {lws.worker_index}=0).")
        return Target(base_url="", unavailable=f"{name}: {problem}", **common)
    # the container label a Prometheus Operator scrape of this port sets: the container declaring the port
    owner = next((c for c in pod.spec.containers or [] for p in c.ports or [] if p.container_port == resolved), None)
    detail["container"] = getattr(owner or _container(pod, container), "name", "") or ""
    if transport == "direct":
        ip = pod.status.pod_ip or ""
        return Target(base_url=f"http://[{ip}]:{resolved}" if ":" in ip else f"http://{ip}:{resolved}", **common)
    return Target(base_url=f"{server}/api/v1/namespaces/{namespace}/pods/{name}:{resolved}/proxy",
                  client_options=options, **common)


def _container(pod: Any, container: str | None) -> Any:
    """The vLLM container of a pod: --vllm-container's, else a known name, else the one with a port named
    metrics, else the first. None when --vllm-container names none of them."""
    containers = list(pod.spec.containers or [])
    if container:
        return next((c for c in containers if c.name == container), None)
    return (next((c for c in containers if c.name in VLLM_CONTAINERS), None)
            or next((c for c in containers if any(p.name == "metrics" for p in c.ports or [])), None)
            or (containers[0] if containers else None))


def _port(pod: Any, container: str | None, port: str | None) -> tuple[int | None, str | None]:
    containers = list(pod.spec.containers or [])
    names = [c.name for c in containers]
    chosen = _container(pod, container)
    if container and chosen is None:
        return None, (f"has no container {container!r} (its containers: {', '.join(names)}); "
                      f"check --vllm-container.")
    declared = [(p.name, p.container_port) for c in containers for p in (c.ports or [])]
    listing = ", ".join(f"{n or '-'}={p}" for n, p in declared) or "none declared"
    if port is not None:
        if port.isdigit():
            return int(port), None  # the API server proxies any port, declared or not
        match = next((p for n, p in declared if n == port), None)
        if match is None:
            return None, f"has no container port named {port!r} (its ports: {listing}); check --vllm-port."
        return match, None
    own = [(p.name, p.container_port) for p in (chosen.ports or [])] if chosen else []
    named = next((p for n, p in own if n == "metrics"), None)
    if named is not None:
        return named, None
    if own:
        # llm-d decode pods serve vLLM on 8200 behind a routing sidecar on 8000: prefer vLLM's own port.
        return next((p for _, p in own if p == 8200), own[0][1]), None
    return None, (f"declares no port on container {chosen.name if chosen else '?'} (ports: {listing}); pass "
                  f"--vllm-port.")


# -- multi-node deployments: API servers, and the workers that run engines without one -----------------------


def _launch_of(pod: Any, container: str | None) -> _launch.Launch:
    """What the pod's vLLM container starts, read from its command line and environment."""
    chosen = _container(pod, container)
    if chosen is None:
        return _launch.Launch(Role.SERVER)
    env = {e.name: e.value for e in chosen.env or [] if e.value is not None}  # valueFrom is resolved at runtime
    worker_index = (pod.metadata.labels or {}).get(_launch.rules().lws.worker_index)
    return _launch.read(list(chosen.command or []), list(chosen.args or []), env, worker_index)


def _worker(pod: Any, launch: _launch.Launch, pods: list[Any], servers: set[str]) -> Worker:
    leader, leader_from = _leader(pod, launch, pods)
    engines = ""
    dp = launch.data_parallel
    if dp is not None and dp.size_local is not None and dp.start_rank is not None and dp.size_local > 0:
        engines = ranks(range(dp.start_rank, dp.start_rank + dp.size_local))
    return Worker(pod.metadata.name, launch.role, launch.how, pod.spec.node_name, leader, leader_from,
                  leader in servers, engines)


def _leader(pod: Any, launch: _launch.Launch, pods: list[Any]) -> tuple[str | None, str]:
    """A worker's leader (its pod's name, or None) and how the run knows: the pod of worker index 0 in its
    LeaderWorkerSet group (else the group's leader-name annotation), or the address its command line joins (a
    pod's IP, or a pod's DNS name <pod>.<service>.<namespace>)."""
    lws = _launch.rules().lws
    labels = pod.metadata.labels or {}
    name = labels.get(lws.name)
    if name is not None:
        group, key = labels.get(lws.group_index), labels.get(lws.group_key)
        where = f"LeaderWorkerSet {name}" + (f", group {group}" if group is not None else "")
        for other in pods:
            theirs = other.metadata.labels or {}
            same_group = (theirs.get(lws.group_key) == key) if key else (
                group is not None and theirs.get(lws.group_index) == group)
            if theirs.get(lws.name) == name and theirs.get(lws.worker_index) == "0" and same_group:
                return other.metadata.name, where
        named = (pod.metadata.annotations or {}).get(lws.leader_name)
        if named:
            return named, where
    address = launch.leader_address
    if not address:
        return None, ""
    flag = "--data-parallel-address" if launch.role is Role.HEADLESS else "the Ray head address"
    by_ip = [p.metadata.name for p in pods if p.status.pod_ip == address]
    by_name = [p.metadata.name for p in pods if p.metadata.name == address.split(".")[0]]
    found = by_ip if len(by_ip) == 1 else by_name
    return (found[0] if found else None), f"{flag} {address}"


def _orphan(pod: Any, worker: Worker, info: ClusterInfo, arch_by_node: dict[str, str]) -> Target:
    """A worker whose leader the run does not check: a target that cannot be checked, saying why and what to do."""
    name = pod.metadata.name
    selector = " or ".join(info.selectors)
    lws = (pod.metadata.labels or {}).get(_launch.rules().lws.name)
    fix = (f"select the leader's pods too (e.g. --vllm-selector=leaderworkerset.sigs.k8s.io/name={lws})" if lws
           else "select the leader's pod too (--vllm-selector)")
    start = (f"{name}: a multi-node worker ({_ROLE_SHOWN[worker.role]}: {worker.how}) runs engines without an API "
             f"server, so it has no /metrics of its own; its engines' metrics are on its leader's page")
    if worker.leader:
        why = (f"{start}, and its leader {worker.leader} ({worker.leader_from}) is not among the pods the run checks "
               f"(those matching {selector} in namespace {info.namespace} that serve the API)")
    else:
        source = (f"{worker.leader_from} names no pod of the run" if worker.leader_from
                  else "no LeaderWorkerSet labels and no --data-parallel-address")
        why = f"{start}, and the run cannot tell its leader ({source})"
    node = pod.spec.node_name
    arch = arch_by_node.get(node or "", "unknown")
    return Target(name=name, base_url="", arch=arch, source="kubernetes", node=node,
                  labels=dict(pod.metadata.labels or {}),
                  detail={"namespace": info.namespace, "node": node or "unscheduled", "arch": arch,
                          "role": str(worker.role)},
                  unavailable=f"{why}. Nothing of the run sees those engines: {fix}.")


def engines_on_page(snapshot: Snapshot) -> list[str]:
    """The `engine` labels of vLLM's series on a page: one per data-parallel engine the API server manages."""
    found = {value for name, series in snapshot.samples.items() if name.startswith("vllm:")
             for one in series for key, value in one.labels if key == "engine"}
    return sorted(found, key=lambda v: (not v.isdigit(), int(v) if v.isdigit() else 0, v))


def engines_shown(implementation: Mapping[str, Any]) -> str:
    """A report's word on a target's data-parallel engines ("engines 8-15 (8 of the 8 its command line runs)"),
    from its implementation entry; "" for a server of one engine."""
    engines = implementation.get("engines") or []
    dp = implementation.get("dataParallel") or {}
    if not dp and len(engines) <= 1:
        return ""
    text = f"engines {ranks(engines) or 'none'}"
    expected = dp.get("expectedEngines")
    if expected is not None:
        text += f" ({len(engines)} of the {expected} its command line runs)"
    return text


def engines_note(implementations: list[dict[str, Any]]) -> str | None:
    """The terminal's one line on the data-parallel targets' pages, or None when there is none."""
    shown = [(str(i["target"]), text) for i in implementations if (text := engines_shown(i))]
    if not shown:
        return None
    named = "; ".join(f"{target}: {text}" for target, text in shown[:_WORKERS_NAMED])
    more = len(shown) - _WORKERS_NAMED
    return "data-parallel engines on each page: " + named + (f"; and {more} more (see the report)" if more > 0 else "")


_NOT_DATA_PARALLEL = {
    "kubernetes": "not a data-parallel server (no --data-parallel-* flag on its command line)",
    "sim": "not a data-parallel server (its simulator profile runs one engine)",
    "url": "the run does not know its command line (it reads those of pods found with --vllm-namespace), so not "
           "whether it is data-parallel",
}


def data_parallel_engines(obs: Observation) -> Verdict:
    """Whether a data-parallel server's page carries every engine its command line runs. vLLM's API server labels
    each engine's series with its rank (`engine`); a rank missing from the page is an engine whose requests,
    tokens, queue and KV cache no dashboard, alert or autoscaler reading the pod counts."""
    target = obs.target
    dp = target.data_parallel
    problem = obs.failure("before")
    if problem:
        return problem.verdict()
    if dp is None:
        return Verdict(Outcome.SKIPPED, _NOT_DATA_PARALLEL.get(target.source, _NOT_DATA_PARALLEL["url"]))
    assert obs.before is not None
    count, first, unknown = dp.expected_engines()
    seen = engines_on_page(obs.before)
    shown = ranks(seen) or "none"
    evidence: dict[str, Any] = {"engines": seen, "flags": dp.flags(), "balancing": str(dp.balancing),
                                "expected": count, "firstEngine": first}
    if count is None:
        return Verdict(Outcome.INCONCLUSIVE, f"{target.name}: cannot tell how many engines its page must carry: "
                                             f"{unknown}. The page carries engines {shown}.", evidence=evidence)
    if not seen:
        return Verdict(Outcome.INCONCLUSIVE, f"{target.name}: its vLLM series carry no engine label, so the run "
                                             f"cannot tell its data-parallel engines apart ({dp.flags()}).",
                       evidence=evidence)
    runs = f"the {count} engine{'s' * (count != 1)} its command line runs ({dp.flags()}, {dp.balancing} load balancing)"
    if first is not None:
        wanted = [str(rank) for rank in range(first, first + count)]
        missing = [rank for rank in wanted if rank not in seen]
        evidence["missing"] = missing
    else:
        missing = [] if len(seen) >= count else ["?"] * (count - len(seen))
        evidence["missing"] = len(missing)
    if not missing:
        return Verdict(Outcome.PASSED, f"{target.name}: engines {shown} on its page: {runs}", evidence=evidence)
    verb = "are" if len(missing) != 1 else "is"
    named = (f"engine{'s' * (len(missing) != 1)} {ranks(missing)} {verb}" if first is not None
             else f"{len(missing)} of them {verb}")
    return Verdict(Outcome.FAILED, (
        f"{target.name}: its /metrics carries engines {shown}, not all of {runs}: {named} missing. Their requests, "
        f"tokens, queue and KV cache are counted nowhere: every panel, alert and autoscaler reading this pod "
        f"undercounts. Check that the port scraped is this pod's own vLLM API server (--vllm-port), and the "
        f"server's --data-parallel-* flags."), evidence=evidence)


# -- the metrics' other consumers, read from the cluster (read-only) ---------------------------------------

CONSUMERS_RBAC = "deploy/rbac-consumers.yaml"


@dataclass
class ConsumerObjects:
    """What reads vLLM's metrics in the cluster, as plain objects (the API's JSON shape)."""

    prometheus_rules: list[dict[str, Any]] = field(default_factory=list)
    dashboards: list[dict[str, Any]] = field(default_factory=list)  # ConfigMaps labelled grafana_dashboard
    grafana_dashboards: list[dict[str, Any]] = field(default_factory=list)  # the Grafana Operator's resources
    configmaps: list[dict[str, Any]] = field(default_factory=list)  # every ConfigMap: prometheus-adapter configs
    scaled_objects: list[dict[str, Any]] = field(default_factory=list)
    deployments: list[dict[str, Any]] = field(default_factory=list)


def read_consumers(info: ClusterInfo, grafana_namespace: str | None, timeout: float) -> ConsumerObjects:
    """PrometheusRules, dashboard ConfigMaps, ConfigMaps (prometheus-adapter), KEDA ScaledObjects and Deployments
    (the endpoint picker) of the vLLM namespace and of the Grafana namespace, and the Grafana Operator's
    GrafanaDashboards of the Grafana namespace. A read the identity may not make is a note naming the grant
    ("not checked"), a kind whose CRD is not installed a quiet note; never a stop."""
    from kubernetes import client

    api = info.api_client
    core, apps, custom = client.CoreV1Api(api), client.AppsV1Api(api), client.CustomObjectsApi(api)
    monitoring = grafana_namespace or info.namespace
    namespaces = list(dict.fromkeys((info.namespace, monitoring)))
    found = ConsumerObjects()

    def listed(verb_resource: tuple[str, str], namespace: str, fn: Any, *args: Any,
               missing: list[str] | None = None, **kwargs: Any) -> list[Any]:
        """The objects `fn` lists; `missing` collects a resource whose API is not installed instead of a note."""
        verb, resource = verb_resource
        try:
            answer = fn(*args, _request_timeout=timeout, **kwargs)
        except Exception as exc:  # an HTTP error, a timeout, an answer the model rejects: a note, never a stop
            from kubernetes.client.exceptions import ApiException

            if isinstance(exc, ApiException) and exc.status in (401, 403):
                info.notes.append(f"{resource} in namespace {namespace} not checked: grant {verb} on {resource} "
                                  f"({CONSUMERS_RBAC})")
            elif isinstance(exc, ApiException) and exc.status == 404 and missing is not None:
                missing.append(resource)
            elif isinstance(exc, ApiException) and exc.status == 404:
                info.notes.append(f"{resource} not installed in the cluster (no such API): nothing to check")
            else:
                info.notes.append(f"{resource} in namespace {namespace} not checked: listing them {_failure(exc)}")
            return []
        items = answer.get("items") if isinstance(answer, dict) else api.sanitize_for_serialization(answer)["items"]
        return [item for item in items or [] if isinstance(item, dict)]

    for namespace in namespaces:
        found.prometheus_rules += listed(("list", "prometheusrules.monitoring.coreos.com"), namespace,
                                         custom.list_namespaced_custom_object, "monitoring.coreos.com", "v1",
                                         namespace, "prometheusrules")
        found.configmaps += listed(("list", "configmaps"), namespace, core.list_namespaced_config_map, namespace)
    # The Grafana sidecar's convention (kube-prometheus-stack's sidecar.dashboards.label, default grafana_dashboard)
    found.dashboards = [c for c in found.configmaps if c.get("metadata", {}).get("namespace", monitoring) == monitoring
                        and "grafana_dashboard" in (c.get("metadata", {}).get("labels") or {})]
    # The Grafana Operator's dashboards, in the Grafana namespace as the sidecar's ConfigMaps: v5's API
    # (grafana.integreatly.org/v1beta1), else v4's (integreatly.org/v1alpha1) where v5's is not installed
    gone: list[str] = []
    found.grafana_dashboards = listed(("list", "grafanadashboards.grafana.integreatly.org"), monitoring,
                                      custom.list_namespaced_custom_object, "grafana.integreatly.org", "v1beta1",
                                      monitoring, "grafanadashboards", missing=gone)
    if gone:
        found.grafana_dashboards = listed(("list", "grafanadashboards.integreatly.org"), monitoring,
                                          custom.list_namespaced_custom_object, "integreatly.org", "v1alpha1",
                                          monitoring, "grafanadashboards", missing=gone)
        if len(gone) == 2:
            info.notes.append(f"{gone[0]} not installed in the cluster (no such API): nothing to check")
    found.scaled_objects = listed(("list", "scaledobjects.keda.sh"), info.namespace,
                                  custom.list_namespaced_custom_object, "keda.sh", "v1alpha1", info.namespace,
                                  "scaledobjects")
    found.deployments = listed(("list", "deployments.apps"), info.namespace, apps.list_namespaced_deployment,
                               info.namespace)
    return found
