"""A small Kubernetes API-server double: the official `kubernetes` client talks to it over real HTTP(S).

It serves what the suite reads (version, namespaces, pods by label selector, nodes; the ConfigMaps, Deployments,
PrometheusRules and KEDA ScaledObjects of a namespace, by label selector too) with complete objects
and Kubernetes `Status` error bodies, enforces RBAC per bearer token (verb, resource, namespace), and
proxies `pods/{name}:{port}/proxy/...` to a backend (a simulated vLLM) as the real API server does.
For tests and benchmarks; it is not a Kubernetes.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import aiohttp
from aiohttp import web

from .server import SimHost

ALL = frozenset({("*", "*")})


@dataclass
class PodSpec:
    name: str
    labels: dict[str, str]
    node: str
    ports: dict[str, int]  # port name ("" for none) -> container port
    backend: str | None = None  # base URL the pod proxy forwards to
    ready: bool = True
    phase: str = "Running"
    reason: str | None = None
    ip: str = "10.0.0.1"
    container: str = "vllm"
    image: str = "vllm/vllm-openai:latest"
    # the container's command line and environment (variables with a literal value), and the pod's annotations:
    # what tells a multi-node deployment's API servers from its workers (a LeaderWorkerSet's pods carry its labels,
    # annotations and LWS_* variables, as its webhook sets them)
    command: list[str] | None = None
    args: list[str] | None = None
    env: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)


@dataclass
class Cluster:
    namespaces: dict[str, list[PodSpec]] = field(default_factory=dict)
    nodes: dict[str, str] = field(default_factory=dict)  # node name -> kubernetes.io/arch
    # bearer token -> allowed (verb, resource) pairs; resource "pods/proxy", "nodes", ...; ("*", "*") = all
    tokens: dict[str, frozenset[tuple[str, str]]] = field(default_factory=dict)
    git_version: str = "v1.31.2"
    # What GET /version answers instead of a complete version, e.g. {"major": "1", "minor": "30"}: some API
    # servers and proxies leave out fields the kubernetes client's model requires. With its HTTP status, for the
    # other ways an informational call fails.
    version_answer: dict[str, Any] | None = None
    version_status: int = 200
    # What else the suite reads (list, read-only): resource -> namespace -> objects as the API answers them.
    # Resources: "configmaps", "deployments" (apps), "prometheusrules" (monitoring.coreos.com),
    # "scaledobjects" (keda.sh), "grafanadashboards" (grafana.integreatly.org) and
    # "grafanadashboards.integreatly.org" (the operator's v4 API; RBAC grants it as "grafanadashboards").
    # A resource in `uninstalled` has no API (its CRD is not installed): 404.
    objects: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)
    uninstalled: set[str] = field(default_factory=set)


# resource -> (API group, URL prefix, kind of the list), for the listed resources besides pods
LISTED = {
    "configmaps": ("", "/api/v1", "ConfigMapList"),
    "deployments": ("apps", "/apis/apps/v1", "DeploymentList"),
    "prometheusrules": ("monitoring.coreos.com", "/apis/monitoring.coreos.com/v1", "PrometheusRuleList"),
    "scaledobjects": ("keda.sh", "/apis/keda.sh/v1alpha1", "ScaledObjectList"),
    # the Grafana Operator's dashboards: v5's API, and v4's (a key "plural.group" lists the plural in its URL)
    "grafanadashboards": ("grafana.integreatly.org", "/apis/grafana.integreatly.org/v1beta1", "GrafanaDashboardList"),
    "grafanadashboards.integreatly.org": ("integreatly.org", "/apis/integreatly.org/v1alpha1", "GrafanaDashboardList"),
}


def _status(code: int, reason: str, message: str) -> web.Response:
    return web.json_response(
        {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
         "reason": reason, "code": code},
        status=code,
    )


def _forbidden(user: str, verb: str, resource: str, namespace: str | None, api_group: str = "") -> web.Response:
    group, _, sub = resource.partition("/")
    scope = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
    sub_text = f' with subresource "{sub}"' if sub else ""
    qualified = f"{group}.{api_group}" if api_group else group
    return _status(403, "Forbidden", f'{qualified} is forbidden: User "{user}" cannot {verb} resource "{group}"'
                                     f'{sub_text} in API group "{api_group}"{scope}')


def _matches(selector: str, labels: dict[str, str]) -> bool:
    """Kubernetes label selector: k=v, k==v, k!=v, k, !k, k in (a,b), k notin (a,b), comma = AND."""
    for term in re.findall(r"[^,(]+(?:\([^)]*\))?", selector or ""):
        term = term.strip()
        if not term:
            continue
        if m := re.fullmatch(r"(\S+)\s+(in|notin)\s+\(([^)]*)\)", term):
            values = {v.strip() for v in m.group(3).split(",")}
            inside = labels.get(m.group(1)) in values
            if inside != (m.group(2) == "in"):
                return False
        elif m := re.fullmatch(r"(\S+?)\s*(==|!=|=)\s*(\S*)", term):
            equal = labels.get(m.group(1)) == m.group(3)
            if equal != (m.group(2) != "!="):
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def _pod_object(namespace: str, pod: PodSpec) -> dict[str, Any]:
    conditions = [{"type": "Ready", "status": "True" if pod.ready else "False",
                   "lastTransitionTime": "2026-11-28T00:00:00Z"}]
    status: dict[str, Any] = {"phase": pod.phase, "conditions": conditions, "podIP": pod.ip,
                              "hostIP": "192.0.2.1", "startTime": "2026-11-28T00:00:00Z"}
    if pod.reason:
        status["reason"] = pod.reason
        status["message"] = f"pod {pod.name}: {pod.reason}"
    status["containerStatuses"] = [{
        "name": pod.container, "ready": pod.ready, "restartCount": 0, "image": "vllm/vllm-openai:latest",
        "imageID": "docker.io/vllm/vllm-openai@sha256:0", "started": pod.ready,
        "state": {"running": {"startedAt": "2026-11-28T00:00:00Z"}} if pod.ready else
                 {"waiting": {"reason": pod.reason or "ContainerCreating"}},
    }]
    container: dict[str, Any] = {
        "name": pod.container, "image": pod.image,
        # a port declared without a name has the key "" in `ports`
        "ports": [{"containerPort": port, "protocol": "TCP", **({"name": name} if name else {})}
                  for name, port in pod.ports.items()],
    }
    if pod.command is not None:
        container["command"] = pod.command
    if pod.args is not None:
        container["args"] = pod.args
    if pod.env:
        container["env"] = [{"name": name, "value": value} for name, value in pod.env.items()]
    metadata: dict[str, Any] = {"name": pod.name, "namespace": namespace, "labels": pod.labels,
                                "uid": f"uid-{namespace}-{pod.name}", "resourceVersion": "1",
                                "creationTimestamp": "2026-11-28T00:00:00Z"}
    if pod.annotations:
        metadata["annotations"] = pod.annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata,
            "spec": {"nodeName": pod.node, "containers": [container]}, "status": status}


def _node_object(name: str, arch: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/arch": arch, "kubernetes.io/os": "linux",
                                              "kubernetes.io/hostname": name},
                     "uid": f"uid-node-{name}", "resourceVersion": "1", "creationTimestamp": "2026-11-28T00:00:00Z"},
        "spec": {},
        "status": {"nodeInfo": {
            "architecture": arch, "bootID": "boot", "containerRuntimeVersion": "containerd://1.7.0",
            "kernelVersion": "6.1.0", "kubeProxyVersion": "v1.31.2", "kubeletVersion": "v1.31.2",
            "machineID": "machine", "operatingSystem": "linux", "osImage": "Debian GNU/Linux 12",
            "systemUUID": "uuid",
        }},
    }


def build_app(cluster: Cluster) -> web.Application:
    app = web.Application()
    session: list[aiohttp.ClientSession] = []

    def allowed(request: web.Request, verb: str, resource: str, namespace: str | None,
                api_group: str = "") -> web.Response | None:
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ").strip()
        if token not in cluster.tokens:
            return _status(401, "Unauthorized", "Unauthorized")
        grants = cluster.tokens[token]
        if grants == ALL or (verb, resource) in grants or ("*", resource) in grants:
            return None
        return _forbidden(f"system:serviceaccount:{namespace or 'default'}:{token[:8]}", verb, resource, namespace,
                          api_group)

    def lister(resource: str) -> Any:
        api_group, prefix, kind = LISTED[resource]

        async def listed(request: web.Request) -> web.Response:
            if resource in cluster.uninstalled:  # no such API: the API server's plain 404
                return web.Response(status=404, text="404 page not found\n")
            ns = request.match_info["ns"]
            denied = allowed(request, "list", resource.partition(".")[0], ns, api_group)
            if denied:
                return denied
            selector = request.query.get("labelSelector", "")
            items = [item for item in cluster.objects.get(resource, {}).get(ns, [])
                     if _matches(selector, (item.get("metadata") or {}).get("labels") or {})]
            return web.json_response({"apiVersion": prefix.removeprefix("/apis/").removeprefix("/api/"),
                                      "kind": kind, "metadata": {"resourceVersion": "1"}, "items": items})

        return listed

    async def version(request: web.Request) -> web.Response:
        if cluster.version_status != 200:
            return _status(cluster.version_status, "InternalError", "simulated /version failure")
        if cluster.version_answer is not None:
            return web.json_response(cluster.version_answer)
        return web.json_response({"major": "1", "minor": "31", "gitVersion": cluster.git_version,
                                  "gitCommit": "0", "gitTreeState": "clean", "buildDate": "2026-11-01T00:00:00Z",
                                  "goVersion": "go1.23", "compiler": "gc", "platform": "linux/amd64"})

    async def namespace(request: web.Request) -> web.Response:
        name = request.match_info["ns"]
        denied = allowed(request, "get", "namespaces", None)
        if denied:
            return denied
        if name not in cluster.namespaces:
            return _status(404, "NotFound", f'namespaces "{name}" not found')
        return web.json_response({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name},
                                  "spec": {}, "status": {"phase": "Active"}})

    async def pods(request: web.Request) -> web.Response:
        ns = request.match_info["ns"]
        denied = allowed(request, "list", "pods", ns)
        if denied:
            return denied
        selector = request.query.get("labelSelector", "")
        items = [_pod_object(ns, p) for p in cluster.namespaces.get(ns, []) if _matches(selector, p.labels)]
        return web.json_response({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "1"},
                                  "items": items})

    async def node(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        denied = allowed(request, "get", "nodes", None)
        if denied:
            return denied
        if name not in cluster.nodes:
            return _status(404, "NotFound", f'nodes "{name}" not found')
        return web.json_response(_node_object(name, cluster.nodes[name]))

    async def proxy(request: web.Request) -> web.StreamResponse:
        ns = request.match_info["ns"]
        target = unquote(request.match_info["target"])
        denied = allowed(request, "get" if request.method == "GET" else "create", "pods/proxy", ns)
        if denied:
            return denied
        name, _, port = target.partition(":")
        pod = next((p for p in cluster.namespaces.get(ns, []) if p.name == name), None)
        if pod is None:
            return _status(404, "NotFound", f'pods "{name}" not found')
        if port and port not in pod.ports and port not in {str(v) for v in pod.ports.values()}:
            return _status(503, "ServiceUnavailable",
                           f"error trying to reach service: dial tcp {pod.ip}:{port}: connect: connection refused")
        if pod.backend is None or not pod.ready:
            return _status(503, "ServiceUnavailable", f"error trying to reach service: pod {name} is not running")
        if not session:
            session.append(aiohttp.ClientSession(auto_decompress=False))
        url = pod.backend.rstrip("/") + "/" + request.match_info["path"]
        body = await request.read()
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() in ("content-type", "accept")}  # the API server drops the caller's credentials
        async with session[0].request(request.method, url, params=request.query, data=body or None,
                                      headers=headers) as upstream:
            response = web.StreamResponse(status=upstream.status, headers={
                k: v for k, v in upstream.headers.items() if k.lower() in ("content-type",)})
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response

    async def close_session(app: web.Application) -> None:
        for s in session:
            await s.close()

    app.on_cleanup.append(close_session)
    app.router.add_get("/version", version)
    app.router.add_get("/version/", version)
    app.router.add_get("/api/v1/namespaces/{ns}", namespace)
    app.router.add_get("/api/v1/namespaces/{ns}/pods", pods)
    app.router.add_get("/api/v1/nodes/{name}", node)
    for resource, (_, prefix, _) in LISTED.items():
        app.router.add_get(f"{prefix}/namespaces/{{ns}}/{resource.partition('.')[0]}", lister(resource))
    app.router.add_route("*", "/api/v1/namespaces/{ns}/pods/{target}/proxy/{path:.*}", proxy)
    return app


class KubeDouble:
    """Start the API-server double on loopback, in a SimHost's event loop (HTTP, or HTTPS with `tls`)."""

    def __init__(self, host: SimHost, cluster: Cluster, tls: ssl.SSLContext | None = None) -> None:
        self.cluster = cluster
        self._host = host
        self.url = host.start_app(build_app(cluster), ssl_context=tls)

    @staticmethod
    def kubeconfig(server: str, token: str, context: str = "test", namespace: str = "default",
                   ca_file: str | None = None, extra_contexts: Iterable[str] = (),
                   cluster_fields: Mapping[str, str] | None = None) -> dict[str, Any]:
        """A kubeconfig for this double; `cluster_fields` adds to its cluster (tls-server-name, proxy-url)."""
        cluster: dict[str, Any] = {"server": server, **(cluster_fields or {})}
        if ca_file:
            cluster["certificate-authority"] = ca_file
        contexts = [context, *extra_contexts]
        return {
            "apiVersion": "v1", "kind": "Config", "current-context": context,
            "clusters": [{"name": "double", "cluster": cluster}],
            "users": [{"name": "tester", "user": {"token": token}}],
            "contexts": [{"name": c, "context": {"cluster": "double", "user": "tester", "namespace": namespace}}
                         for c in contexts],
        }
