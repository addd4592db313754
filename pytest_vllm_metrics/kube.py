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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import engines
from .multinode import Worker, launch_of, lws_name, lws_worker_hint, worker_of, workers_note
from .targets import DataParallel, Target, TargetSource, metrics_location, redact_url

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
        version_note = f"Kubernetes version unknown (informational only): GET /version {failure(exc)}"
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
    launches = {pod.metadata.name: launch_of(pod, _container(pod, container)) for pod in ordered}
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
        worker = worker_of(pod, launch, ordered, servers)
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


def failure(exc: Exception) -> str:
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
            info.notes.append(f"architecture of node {node} unknown: reading it {failure(exc)}")
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
    common: dict[str, Any] = {"name": name, "arch": arch, "source": TargetSource.KUBERNETES, "node": node,
                              "labels": labels, "detail": detail, "data_parallel": data_parallel}
    try:
        engine, _ = engines.of_labels(labels)
    except engines.UnknownEngine as exc:
        return Target(base_url="", unavailable=f"{name}: {exc}", **common)
    ready = any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))
    if not ready:
        reason = pod.status.reason or next(
            (s.state.waiting.reason for s in (pod.status.container_statuses or [])
             if s.state and s.state.waiting and s.state.waiting.reason), None)
        return Target(base_url="", unavailable=(
            f"{name}: pod is not Ready (phase {pod.status.phase}{', reason ' + reason if reason else ''}); "
            f"it is reported, not checked. kubectl describe pod {name} -n {namespace} says why."), **common)
    resolved, problem = _port(pod, container, port, engines.profile(engine).metrics_port)
    if problem or resolved is None:
        return Target(base_url="", unavailable=f"{name}: {problem}{lws_worker_hint(labels)}", **common)
    # the container label a Prometheus Operator scrape of this port sets: the container declaring the port
    owner = next((c for c in pod.spec.containers or [] for p in c.ports or [] if p.container_port == resolved), None)
    detail["container"] = getattr(owner or _container(pod, container), "name", "") or ""
    if transport == "direct":
        ip = pod.status.pod_ip or ""

        def direct(at: int) -> str:
            return f"http://[{ip}]:{at}" if ":" in ip else f"http://{ip}:{at}"

        return Target(base_url=direct(resolved), **common, **metrics_location(engine, direct))

    def proxied(at: int) -> str:
        return f"{server}/api/v1/namespaces/{namespace}/pods/{name}:{at}/proxy"

    return Target(base_url=proxied(resolved), client_options=options, **common, **metrics_location(engine, proxied))


def _container(pod: Any, container: str | None) -> Any:
    """The vLLM container of a pod: --vllm-container's, else a known name, else the one with a port named
    metrics, else the first. None when --vllm-container names none of them."""
    containers = list(pod.spec.containers or [])
    if container:
        return next((c for c in containers if c.name == container), None)
    return (next((c for c in containers if c.name in VLLM_CONTAINERS), None)
            or next((c for c in containers if any(p.name == "metrics" for p in c.ports or [])), None)
            or (containers[0] if containers else None))


def _port(pod: Any, container: str | None, port: str | None, metrics_port: int = 0) -> tuple[int | None, str | None]:
    """The server's API port: --vllm-port's, else its container's port named metrics, else 8200, else its first.
    An engine that serves its page on a port of its own (`metrics_port`, Triton's 8002) is reached on its HTTP port
    instead: its named `http`, else its first other port."""
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
    if metrics_port:
        api = [(n, p) for n, p in own if p != metrics_port]
        if api:
            return next((p for n, p in api if n == "http"), api[0][1]), None
    named = next((p for n, p in own if n == "metrics"), None)
    if named is not None:
        return named, None
    if own:
        # llm-d decode pods serve vLLM on 8200 behind a routing sidecar on 8000: prefer vLLM's own port.
        return next((p for _, p in own if p == 8200), own[0][1]), None
    return None, (f"declares no port on container {chosen.name if chosen else '?'} (ports: {listing}); pass "
                  f"--vllm-port.")


def _orphan(pod: Any, worker: Worker, info: ClusterInfo, arch_by_node: dict[str, str]) -> Target:
    """A worker whose leader the run does not check: a target that cannot be checked, saying why and what to do."""
    name = pod.metadata.name
    selector = " or ".join(info.selectors)
    lws = lws_name(pod.metadata.labels or {})
    fix = (f"select the leader's pods too (e.g. --vllm-selector=leaderworkerset.sigs.k8s.io/name={lws})" if lws
           else "select the leader's pod too (--vllm-selector)")
    start = (f"{name}: a multi-node worker ({worker.role_shown}: {worker.how}) runs engines without an API "
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
    return Target(name=name, base_url="", arch=arch, source=TargetSource.KUBERNETES, node=node,
                  labels=dict(pod.metadata.labels or {}),
                  detail={"namespace": info.namespace, "node": node or "unscheduled", "arch": arch,
                          "role": str(worker.role)},
                  unavailable=f"{why}. Nothing of the run sees those engines: {fix}.")
