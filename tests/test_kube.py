"""Kubernetes discovery: the real `kubernetes` client against an API-server double over real HTTP(S)."""

from __future__ import annotations

import asyncio
import fnmatch
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from aiohttp import web

from conftest import (
    CURRENT,
    NS,
    ROLE,
    PrivateCA,
    flat,
    run_kube,
    said,
    verdicts,
    write_kubeconfig,
)
from pytest_vllm_metrics import kube
from pytest_vllm_metrics.kube import ClusterInfo, _node_architectures, discover
from pytest_vllm_metrics.sim import SimHost, get_profile
from pytest_vllm_metrics.sim.kubeapi import ALL, Cluster, KubeDouble, PodSpec, build_app
from pytest_vllm_metrics.targets import Target


def test_two_pods_one_amd64_one_arm64_give_per_pod_results(
    pytester: pytest.Pytester, double: KubeDouble, tmp_path: Path
) -> None:
    result = run_kube(pytester, write_kubeconfig(tmp_path / "kc", double, "admin"))
    out = result.stdout.str()
    per_pod = verdicts(pytester)
    assert per_pod["test_moves[vllm:prefix_cache_hits_total]", "decode-amd64"] == "passed"
    assert per_pod["test_moves[vllm:prefix_cache_hits_total]", "decode-arm64"] == "xfailed"
    result.stdout.fnmatch_lines(["XFAIL *test_moves[[]vllm:prefix_cache_hits_total[]]* - decode-arm64: vLLM 0.11.2 "
                                 "disables prefix caching on arm64 CPUs*"])
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0, out
    # the endpoint picker's pod is not a vLLM pod: not a target (its own checks are skipped without --vllm-epp-url)
    report = json.loads((pytester.path / "report.json").read_text())
    assert {impl["target"] for impl in report["implementations"]} == {"decode-amd64", "decode-arm64"}


def test_least_privilege_role_runs_the_suite_and_names_the_node_permission(
    pytester: pytest.Pytester, double: KubeDouble, tmp_path: Path
) -> None:
    result = run_kube(pytester, write_kubeconfig(tmp_path / "kc", double, "suite"),
                      "-k", "prefix_cache_hits or reachable")
    # Without get on nodes the arm64 pod's architecture is unknown: its prefix checks fail with the way out.
    result.stdout.fnmatch_lines(["*architecture is unknown*grant the suite get on nodes*"])
    assert verdicts(pytester)["test_reachable", "decode-arm64"] == "passed"
    with_nodes = run_kube(pytester, write_kubeconfig(tmp_path / "kc2", double, "suite-with-nodes"),
                     "-k", "prefix_cache_hits")
    assert with_nodes.parseoutcomes().get("failed", 0) == 0, with_nodes.stdout.str()


def test_workload_without_create_on_pods_proxy_names_the_verb(
    pytester: pytest.Pytester, double: KubeDouble, cluster: Cluster, tmp_path: Path
) -> None:
    cluster.tokens["read-only"] = ROLE - {("create", "pods/proxy")}
    result = run_kube(pytester, write_kubeconfig(tmp_path / "kc", double, "read-only"), "-k", "workload_served")
    result.assert_outcomes(failed=1)
    assert set(verdicts(pytester).values()) == {"failed"}
    result.stdout.fnmatch_lines(["*POST /v1/completions through the API server's pod proxy was refused (403): grant "
                                 "create on pods/proxy*or send the workload through --vllm-gateway-url*"])


def test_forbidden_pod_proxy_names_the_permission(pytester: pytest.Pytester, double: KubeDouble,
                                                  tmp_path: Path) -> None:
    result = run_kube(pytester, write_kubeconfig(tmp_path / "kc", double, "no-proxy"), "-k", "test_reachable")
    # a missing grant says nothing of the pods: inconclusive, with the grant to add
    assert {k: v for k, v in result.parseoutcomes().items() if k not in ("deselected", "warnings")} == {
        "inconclusive": 1}
    assert verdicts(pytester) == {("test_reachable", "decode-amd64"): "inconclusive",
                                  ("test_reachable", "decode-arm64"): "inconclusive"}
    assert said(result, "*decode-amd64: GET /metrics through the API server's pod proxy was refused (403 "
                        "Forbidden)*Grant get on pods/proxy*")


@pytest.mark.parametrize(
    ("args", "token", "message"),
    [
        (["--vllm-namespace=missing"], "admin", "*namespace 'missing' does not exist on the API server http*"),
        (["--vllm-selector=app=vllm"], "admin",
         "*no pod in namespace 'llm-d-cpu-inference' matches app=vllm; its 3 pod(s) carry: *"
         "llm-d.ai/inference-serving=true (1 pods)*llm-d.ai/inferenceServing=true (1 pods)*--vllm-selector*"),
        ([], "nobody", "*rejected the credentials (401 Unauthorized) during list pods in namespace*"),
        (["--kube-context=prod"], "admin", "*context 'prod' is not in kubeconfig *; its contexts are test*"),
    ],
)
def test_discovery_errors_are_one_paragraph_usage_errors(
    pytester: pytest.Pytester, double: KubeDouble, tmp_path: Path, args: list[str], token: str, message: str
) -> None:
    result = run_kube(pytester, write_kubeconfig(tmp_path / "kc", double, token), *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_forbidden_pod_list_names_verb_and_resource(pytester: pytest.Pytester, double: KubeDouble,
                                                    cluster: Cluster, tmp_path: Path) -> None:
    cluster.tokens["version-only"] = frozenset()
    result = run_kube(pytester, write_kubeconfig(tmp_path / "kc", double, "version-only"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(['*refused list pods in namespace llm-d-cpu-inference (403 Forbidden: pods is '
                                 'forbidden: User * cannot list resource "pods"*deploy/rbac.yaml*'])


def test_pods_not_ready_are_inconclusive_targets_with_phase_and_reason(
    pytester: pytest.Pytester, double: KubeDouble, cluster: Cluster, tmp_path: Path
) -> None:
    cluster.namespaces[NS][1].ready = False
    cluster.namespaces[NS][1].phase = "Pending"
    cluster.namespaces[NS][1].reason = "Unschedulable"
    result = run_kube(pytester, write_kubeconfig(tmp_path / "kc", double, "admin"), "-k", "test_reachable")
    assert {k: v for k, v in result.parseoutcomes().items() if k not in ("deselected", "warnings")} == {
        "inconclusive": 1}
    assert verdicts(pytester) == {("test_reachable", "decode-amd64"): "passed",
                                  ("test_reachable", "decode-arm64"): "inconclusive"}
    assert said(result, "*decode-arm64: pod is not Ready (phase Pending, reason Unschedulable)*")


def test_missing_named_port_and_unreachable_numeric_port(
    pytester: pytest.Pytester, double: KubeDouble, tmp_path: Path
) -> None:
    kc = write_kubeconfig(tmp_path / "kc", double, "admin")
    named = run_kube(pytester, kc, "--vllm-port=http", "-k", "test_reachable")
    assert said(named, "*decode-amd64: has no container port named 'http' (its ports: proxy=8000, "
                       "metrics=8200); check --vllm-port.*")
    numeric = run_kube(pytester, kc, "--vllm-port=9999", "-k", "test_reachable or test_cache_config_info")
    assert said(numeric, "*could not reach the pod*connection refused*check --vllm-port*")
    # nothing listens on that port of the pods, as for a URL: reachability fails, once per pod, and the other
    # checks point at it (the API server's 503 says "connection refused")
    assert verdicts(pytester) == {
        ("test_reachable", "decode-amd64"): "failed", ("test_reachable", "decode-arm64"): "failed",
        ("test_cache_config_info", "decode-amd64"): "inconclusive",
        ("test_cache_config_info", "decode-arm64"): "inconclusive"}
    assert said(numeric, "*decode-amd64: see test_reachable: GET /metrics through the pod proxy: connection refused*")
    assert numeric.ret == pytest.ExitCode.TESTS_FAILED


def test_unreachable_api_server_names_context_and_url(pytester: pytest.Pytester, tmp_path: Path) -> None:
    kc = tmp_path / "kc"
    kc.write_text(json.dumps(KubeDouble.kubeconfig("http://127.0.0.1:9", "t", namespace=NS)))
    result = run_kube(pytester, kc)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    # GET /version is informational (a note when it fails): listing the pods is what stops the run
    result.stderr.fnmatch_lines(["ERROR: cannot reach the API server http://127.0.0.1:9 (context test) for list "
                                 "pods in namespace llm-d-cpu-inference*Check the network path*"])


def test_missing_kubeconfig(pytester: pytest.Pytester, tmp_path: Path) -> None:
    result = run_kube(pytester, tmp_path / "nope")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: kubeconfig */nope does not exist. Pass --kubeconfig=PATH*"])


def test_tls_failure_names_the_server(pytester: pytest.Pytester, sim_host: SimHost, cluster: Cluster,
                                      private_ca: PrivateCA, tmp_path: Path) -> None:
    double = KubeDouble(sim_host, cluster, tls=private_ca.server_context("IP:127.0.0.1"))
    result = run_kube(pytester, write_kubeconfig(tmp_path / "kc", double, "admin"))  # no CA: the cert is untrusted
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: TLS with the API server https://127.0.0.1:* (context test) failed*"
                                 "certificate-authority*"])


def test_cluster_and_pods_fixtures(pytester: pytest.Pytester, double: KubeDouble, tmp_path: Path) -> None:
    pytester.makepyfile(test_team="""
        def test_cluster(vllm_cluster):
            assert vllm_cluster.version == "v1.31.2" and vllm_cluster.context == "test"

        def test_pods(vllm_pods):
            assert {(p.name, p.node, p.arch) for p in vllm_pods} == {
                ("decode-amd64", "node-a", "amd64"), ("decode-arm64", "node-b", "arm64")}
            assert all(p.labels["llm-d.ai/role"] == "decode" for p in vllm_pods)
    """)
    result = run_kube(pytester, write_kubeconfig(tmp_path / "kc", double, "admin"), "test_team.py")
    result.assert_outcomes(passed=2)


def test_token_never_reaches_the_output(pytester: pytest.Pytester, double: KubeDouble, cluster: Cluster,
                                        tmp_path: Path) -> None:
    secret = "k8s-token-5b1e93d0c7"
    cluster.tokens[secret] = ROLE
    result = run_kube(pytester, write_kubeconfig(tmp_path / "kc", double, secret), "--junitxml=junit.xml")
    assert secret not in result.stdout.str() + result.stderr.str()
    assert secret not in (pytester.path / "junit.xml").read_text()


def role_grants(path: Path) -> frozenset[tuple[str, str]]:
    """(verb, resource) pairs a Role in a deploy/ manifest grants."""
    import yaml

    grants = set()
    for doc in yaml.safe_load_all(path.read_text()):
        if doc and doc["kind"] in ("Role", "ClusterRole"):
            for rule in doc["rules"]:
                grants |= {(verb, resource) for verb in rule["verbs"] for resource in rule["resources"]}
    return frozenset(grants)


DEPLOY = Path(__file__).parent.parent / "deploy"


def test_deploy_role_is_enough_for_the_whole_suite(pytester: pytest.Pytester, double: KubeDouble, cluster: Cluster,
                                                   tmp_path: Path) -> None:
    cluster.tokens["deployed"] = role_grants(DEPLOY / "rbac.yaml") | role_grants(DEPLOY / "clusterrole-nodes.yaml")
    result = run_kube(pytester, write_kubeconfig(tmp_path / "kc", double, "deployed"))
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0 and outcomes["passed"] > 60, result.stdout.str()
    assert outcomes["xfailed"] == 3  # the arm64 pod's prefix-cache checks: vLLM 0.11.2's documented limitation


@pytest.mark.parametrize("dropped", sorted(role_grants(DEPLOY / "rbac.yaml")))
def test_deploy_role_is_the_least_the_suite_needs(
    pytester: pytest.Pytester, double: KubeDouble, cluster: Cluster, tmp_path: Path, dropped: tuple[str, str]
) -> None:
    cluster.tokens["less"] = role_grants(DEPLOY / "rbac.yaml") - {dropped}
    result = run_kube(pytester, write_kubeconfig(tmp_path / "kc", double, "less"), "-k", "not prefix")
    assert result.ret != 0, f"the suite still passes without {dropped}: the Role grants more than needed"


def test_gateway_url_sends_the_workload_through_the_gateway(
    pytester: pytest.Pytester, double: KubeDouble, cluster: Cluster, tmp_path: Path
) -> None:
    # The "gateway" here routes everything to the amd64 pod's server, as an endpoint picker might.
    gateway = cluster.namespaces[NS][0].backend
    result = run_kube(pytester, write_kubeconfig(tmp_path / "kc", double, "admin"), f"--vllm-gateway-url={gateway}",
                 "-k", "test_moves and prompt_tokens_total")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*decode-arm64 (vLLM 0.11.2, arm64): vllm:prompt_tokens_total went from 0 to 0*"
                                 "The workload went through the gateway*sent none of it to this pod*"])
    assert verdicts(pytester)["test_moves[vllm:prompt_tokens_total]", "decode-amd64"] == "passed"


def test_api_key_through_the_pod_proxy_is_refused_with_the_way_out(
    pytester: pytest.Pytester, double: KubeDouble, tmp_path: Path
) -> None:
    result = run_kube(pytester, write_kubeconfig(tmp_path / "kc", double, "admin"), "--vllm-api-key=sk-x",
                 "-k", "workload_served")
    assert {k: v for k, v in result.parseoutcomes().items() if k not in ("deselected", "warnings")} == {
        "inconclusive": 1}
    assert said(result, "*decode-amd64: the workload cannot carry the vLLM API key through the API "
                        "server's pod proxy*--vllm-transport=direct*--vllm-gateway-url*")


# -- reaching the API server as kubectl would: its CA, tls-server-name, a proxy ------------------------------


@pytest.fixture
def tls_double(sim_host: SimHost, cluster: Cluster, private_ca: PrivateCA) -> KubeDouble:
    """The API server double over HTTPS, its certificate for the name kube.test only: reached at 127.0.0.1, it
    verifies only when the client names it kube.test."""
    return KubeDouble(sim_host, cluster, tls=private_ca.server_context("DNS:kube.test"))


class ConnectProxy:
    """An HTTP CONNECT proxy on loopback, the only way to the names in `hosts` (name -> a port on 127.0.0.1):
    kube.test resolves nowhere else. It records each tunnel it opened."""

    def __init__(self, hosts: dict[str, int]) -> None:
        self.hosts = hosts
        self.tunnels: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="connect-proxy", daemon=True)
        self._thread.start()
        started = asyncio.run_coroutine_threadsafe(asyncio.start_server(self._tunnel, "127.0.0.1", 0), self._loop)
        self._server = started.result(timeout=10)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def _tunnel(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
            method, authority = head.decode("latin-1").split(" ", 2)[:2]
            host = authority.rpartition(":")[0]
            if method != "CONNECT" or host not in self.hosts:
                writer.write(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n")
                return
            self.tunnels.append(authority)
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.hosts[host])
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            pass
        finally:
            writer.close()

    def close(self) -> None:
        async def shutdown() -> None:
            # end the open tunnels on their own loop, before it stops (else they die later, on a closed loop)
            self._server.close()
            tunnels = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in tunnels:
                task.cancel()
            await asyncio.gather(*tunnels, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


@pytest.fixture
def connect_proxy(tls_double: KubeDouble) -> Iterator[ConnectProxy]:
    proxy = ConnectProxy({"kube.test": int(tls_double.url.rpartition(":")[2])})
    yield proxy
    proxy.close()


def _kubeconfig(path: Path, server: str, ca: Path, **cluster_fields: str) -> Path:
    path.write_text(json.dumps(KubeDouble.kubeconfig(server, "admin", namespace=NS, ca_file=str(ca),
                                                     cluster_fields=cluster_fields)))
    return path


def test_https_api_server_named_by_tls_server_name(pytester: pytest.Pytester, tls_double: KubeDouble,
                                                     private_ca: PrivateCA, tmp_path: Path) -> None:
    # The certificate names kube.test, the address is 127.0.0.1: kubectl's tls-server-name bridges the two,
    # for discovery and for every scrape and request through the pod proxy.
    kc = _kubeconfig(tmp_path / "kc", tls_double.url, private_ca.ca, **{"tls-server-name": "kube.test"})
    result = run_kube(pytester, kc, "-k", "reachable or workload_served or prompt_tokens_total")
    assert result.parseoutcomes().get("failed", 0) == 0, result.stdout.str()
    assert set(verdicts(pytester).values()) == {"passed"}
    without = run_kube(pytester, _kubeconfig(tmp_path / "kc2", tls_double.url, private_ca.ca), "-k", "reachable")
    without.stderr.fnmatch_lines(["ERROR: TLS with the API server https://127.0.0.1:* failed*"])


@pytest.mark.parametrize("how", ["proxy-url", "HTTPS_PROXY"])
def test_api_server_behind_a_proxy(pytester: pytest.Pytester, connect_proxy: ConnectProxy, tls_double: KubeDouble,
                                   private_ca: PrivateCA, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    # kube.test resolves nowhere: only the proxy reaches it, so every scrape and request must go through it.
    server = f"https://kube.test:{tls_double.url.rpartition(':')[2]}"
    if how == "proxy-url":
        kc = _kubeconfig(tmp_path / "kc", server, private_ca.ca, **{"proxy-url": connect_proxy.url})
    else:
        kc = _kubeconfig(tmp_path / "kc", server, private_ca.ca)
        monkeypatch.setenv("HTTPS_PROXY", connect_proxy.url)
    result = run_kube(pytester, kc, "-k", "reachable or workload_served or prompt_tokens_total")
    assert result.parseoutcomes().get("failed", 0) == 0, result.stdout.str()
    assert set(verdicts(pytester).values()) == {"passed"}
    assert connect_proxy.tunnels and set(connect_proxy.tunnels) == {server.removeprefix("https://")}


def test_unreachable_proxy_is_named_without_its_credentials(pytester: pytest.Pytester, double: KubeDouble,
                                                             tmp_path: Path) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "kc", double, "admin",
                                  cluster_fields={"proxy-url": "http://proxy-user:pr0xy-s3cret@127.0.0.1:9"})
    result = run_kube(pytester, kubeconfig)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: cannot reach the API server http://127.0.0.1:* (context test, through the "
                                 "proxy http://[*][*][*]@127.0.0.1:9) for list pods in namespace*"])
    assert "pr0xy-s3cret" not in result.stdout.str() + result.stderr.str()


def _discover(kubeconfig: Path, timeout: float = 30.0) -> tuple[ClusterInfo, list[str]]:
    info, targets = discover(namespace=NS, selector=None, container=None, port=None, kubeconfig=str(kubeconfig),
                             context=None, transport="proxy", timeout=timeout)
    return info, [t.name for t in targets]


def test_version_without_its_fields_is_a_note_and_the_suite_runs(
    pytester: pytest.Pytester, double: KubeDouble, cluster: Cluster, tmp_path: Path
) -> None:
    """The finding: `{"major": "1", "minor": "30"}` failed the client's VersionInfo model and stopped the run
    with an INTERNALERROR traceback. Through pytester, as a user runs the suite."""
    cluster.version_answer = {"major": "1", "minor": "30"}
    kubeconfig = write_kubeconfig(tmp_path / "kc", double, "admin")
    result = pytester.runpytest("-p", "no:cacheprovider", f"--kubeconfig={kubeconfig}", f"--vllm-namespace={NS}",
                                "--vllm-report=report.json")
    output = result.stdout.str() + result.stderr.str()
    assert "INTERNALERROR" not in output and "Traceback" not in output, output
    assert result.ret not in (pytest.ExitCode.USAGE_ERROR, pytest.ExitCode.INTERNAL_ERROR), output
    assert result.parseoutcomes().get("failed", 0) == 0, output
    # both pods judged
    judged = verdicts(pytester)
    assert judged["test_reachable", "decode-amd64"] == judged["test_reachable", "decode-arm64"] == "passed"
    assert {pod for _, pod in judged} == {"decode-amd64", "decode-arm64"}
    kubernetes = json.loads((pytester.path / "report.json").read_text())["environment"]["kubernetes"]
    assert kubernetes["version"] is None
    [note] = kubernetes["notes"]
    assert note.startswith("Kubernetes version unknown (informational only): ")
    # names the call and the missing fields, in one line
    assert note == ("Kubernetes version unknown (informational only): GET /version answered an object the "
                    "kubernetes client rejects (missing or invalid: buildDate, compiler, gitCommit, gitTreeState, "
                    "gitVersion, goVersion, platform)")
    # and the terminal states it too, as a note (the run went on)
    assert "note: Kubernetes version unknown (informational only): GET /version" in flat(result)


@pytest.mark.parametrize(("changes", "says"), [
    ({"version_answer": {"major": "1", "minor": "30"}}, "GET /version answered an object the kubernetes client "
     "rejects (missing or invalid: buildDate, compiler, gitCommit, gitTreeState, gitVersion, goVersion, platform)"),
    ({"version_answer": {}}, "GET /version answered an object the kubernetes client rejects (missing or invalid: "),
    ({"version_answer": ["not", "an", "object"]}, "GET /version answered an object the kubernetes client rejects ("),
    ({"version_status": 500}, "GET /version answered 500 Internal Server Error"),
], ids=["missing-fields", "empty", "not-an-object", "http-500"])
def test_any_version_failure_is_a_note(double: KubeDouble, cluster: Cluster, tmp_path: Path,
                                       changes: dict[str, Any], says: str) -> None:
    for key, value in changes.items():
        setattr(cluster, key, value)
    info, pods = _discover(write_kubeconfig(tmp_path / "kc", double, "admin"))
    assert info.version is None
    assert pods == ["decode-amd64", "decode-arm64"]  # discovery went on
    [note] = info.notes
    assert note.startswith("Kubernetes version unknown (informational only): ")
    assert fnmatch.fnmatch(note, f"*{says}*"), note


def test_a_version_that_never_comes_is_a_note(sim_host: SimHost, cluster: Cluster, tmp_path: Path) -> None:
    """/version holds its answer until the test ends: the call times out whatever the machine's speed, while
    every other call of discovery has the whole timeout to be answered (5 s). It is asked once: a hung API server
    costs one timeout per call, not one per retry of the client."""
    app = build_app(cluster)
    released = threading.Event()
    asked: list[str] = []

    @web.middleware
    async def stalled_version(request: web.Request, handler: Callable[..., Any]) -> web.StreamResponse:
        if request.path.rstrip("/") == "/version":  # the client asks /version/
            asked.append(request.path)
            await asyncio.get_running_loop().run_in_executor(None, released.wait, 60.0)
        return await handler(request)  # type: ignore[no-any-return]

    app.middlewares.append(stalled_version)
    kubeconfig = tmp_path / "kc"
    kubeconfig.write_text(json.dumps(KubeDouble.kubeconfig(sim_host.start_app(app), "admin", namespace=NS)))
    try:
        info, pods = _discover(kubeconfig, timeout=5.0)
    finally:
        released.set()
    assert info.version is None
    assert pods == ["decode-amd64", "decode-arm64"]  # discovery went on
    assert len(asked) == 1
    [note] = info.notes
    assert fnmatch.fnmatch(note, "Kubernetes version unknown (informational only): GET /version failed (*timed "
                                 "out*)"), note


def test_a_complete_version_leaves_no_note(double: KubeDouble, tmp_path: Path) -> None:
    info, _ = _discover(write_kubeconfig(tmp_path / "kc", double, "admin"))
    assert info.version == "v1.31.2" and info.notes == []


def test_a_node_that_cannot_be_read_is_a_note(double: KubeDouble, cluster: Cluster, tmp_path: Path) -> None:
    del cluster.nodes["node-b"]  # the arm64 pod's node answers 404
    info, targets = discover(namespace=NS, selector=None, container=None, port=None,
                             kubeconfig=str(write_kubeconfig(tmp_path / "kc", double, "admin")), context=None,
                             transport="proxy", timeout=30.0)
    assert {t.name: t.arch for t in targets} == {"decode-amd64": "amd64", "decode-arm64": "unknown"}
    assert info.notes == ["architecture of node node-b unknown: reading it answered 404 Not Found"]


class _Core:
    """A CoreV1Api whose read_node fails as the client does on an answer its model rejects."""

    def read_node(self, name: str, _request_timeout: float) -> Any:
        raise ValueError("1 validation error for V1Node\nmetadata\n  Input should be a valid dictionary")


def test_a_node_answer_the_client_rejects_is_a_note() -> None:
    info = ClusterInfo(None, "test", "http://api", None, NS, ())
    assert _node_architectures(_Core(), {"node-a"}, 1.0, info) == {}
    assert info.notes == ["architecture of node node-a unknown: reading it answered an object the kubernetes "
                          "client rejects (1 validation error for V1Node)"]


# -- target selection on Kubernetes (kube._target, kube._port) -------------------------------------------------


def pod(containers: list[tuple[str, dict[str, int]]], *, ready: bool = True, ip: str = "10.1.0.7",
        phase: str = "Running", reason: str | None = None, waiting: str | None = None) -> Any:
    """A pod as the kubernetes client returns it, with the fields target selection reads."""
    spec = SimpleNamespace(node_name="node-a", containers=[
        SimpleNamespace(name=name, ports=[SimpleNamespace(name=p, container_port=n) for p, n in ports.items()])
        for name, ports in containers])
    state = SimpleNamespace(waiting=SimpleNamespace(reason=waiting)) if waiting else None
    status = SimpleNamespace(conditions=[SimpleNamespace(type="Ready", status="True" if ready else "False")],
                             phase=phase, reason=reason, pod_ip=ip,
                             container_statuses=[SimpleNamespace(state=state)])
    return SimpleNamespace(metadata=SimpleNamespace(name="decode-0", labels={"app": "vllm"}), spec=spec,
                           status=status)


def chosen(p: Any, *, container: str | None = None, port: str | None = None, transport: str = "proxy") -> Target:
    return kube._target(p, "llm-d", container, port, transport, "https://api:6443", {}, {"node-a": "arm64"})


PROXY = "https://api:6443/api/v1/namespaces/llm-d/pods/decode-0:{}/proxy"


def test_named_metrics_port_of_the_vllm_container_is_chosen() -> None:
    """kills `n == "metrics"` -> `!=` in kube._port and the proxy URL of kube._target."""
    target = chosen(pod([("sidecar", {"proxy": 8000}), ("vllm", {"http": 8000, "metrics": 8200})]))
    assert target.base_url == PROXY.format(8200)
    assert (target.arch, target.source, target.detail["node"]) == ("arm64", "kubernetes", "node-a")


def test_llm_d_decode_pod_prefers_vllm_port_8200_behind_the_sidecar() -> None:
    """kills `p == 8200` -> `!=` and the fallback `own[0][1]` in kube._port."""
    assert chosen(pod([("vllm", {"proxy": 8000, "serve": 8200})])).base_url == PROXY.format(8200)
    assert chosen(pod([("vllm", {"proxy": 8000, "serve": 8300})])).base_url == PROXY.format(8000)


def test_the_container_label_is_the_container_declaring_the_scraped_port() -> None:
    """As a Prometheus Operator scrape labels the series: by the container whose port it scrapes (dashboards judge
    container= matchers with it)."""
    assert chosen(pod([("sidecar", {"proxy": 8000}), ("vllm", {"metrics": 8200})])).detail["container"] == "vllm"
    p = pod([("vllm", {"metrics": 8200}), ("other", {"alt": 9000})])
    assert chosen(p, port="alt").detail["container"] == "other"
    assert chosen(p, port="8123").detail["container"] == "vllm"  # an undeclared port: the chosen container


def test_container_with_a_metrics_port_is_chosen_when_none_is_named_vllm() -> None:
    """kills `p.name == "metrics"` -> `!=` in kube._port's container choice."""
    target = chosen(pod([("router", {"http": 8000}), ("engine", {"metrics": 9100})]))
    assert target.base_url == PROXY.format(9100)


def test_first_container_when_no_container_says_vllm_or_metrics() -> None:
    """kills `containers[0]` -> `containers[1]` in kube._port."""
    assert chosen(pod([("a", {"http": 7000}), ("b", {"http": 7100})])).base_url == PROXY.format(7000)


def test_given_container_and_port_name_are_used_and_a_missing_one_is_named() -> None:
    """kills `c.name == container` -> `!=` and `n == port` -> `!=` in kube._port."""
    p = pod([("vllm", {"metrics": 8200}), ("other", {"alt": 9000})])
    assert chosen(p, container="other").base_url == PROXY.format(9000)
    assert chosen(p, port="alt").base_url == PROXY.format(9000)
    assert chosen(p, port="8123").base_url == PROXY.format(8123)  # a number is proxied, declared or not
    missing = chosen(p, container="nope")
    assert (missing.base_url, missing.unavailable) == ("", "decode-0: has no container 'nope' (its containers: "
                                                           "vllm, other); check --vllm-container.")
    assert chosen(p, port="grpc").unavailable == ("decode-0: has no container port named 'grpc' (its ports: "
                                                  "metrics=8200, alt=9000); check --vllm-port.")


def test_container_without_ports_asks_for_a_port() -> None:
    """kills the `if own` fallback of kube._port."""
    target = chosen(pod([("vllm", {})]))
    assert target.unavailable == ("decode-0: declares no port on container vllm (ports: none declared); pass "
                                  "--vllm-port.")


@pytest.mark.parametrize(("ip", "url"), [("10.1.0.7", "http://10.1.0.7:8200"), ("fd00::7", "http://[fd00::7]:8200")])
def test_direct_transport_goes_to_the_pod_ip(ip: str, url: str) -> None:
    """kills `transport == "direct"` -> `!=` and `":" in ip` -> `not in` in kube._target."""
    assert chosen(pod([("vllm", {"metrics": 8200})], ip=ip), transport="direct").base_url == url


def test_pod_not_ready_is_reported_with_phase_and_reason() -> None:
    """kills `c.status == "True"` -> `!=` and the waiting reason of kube._target."""
    target = chosen(pod([("vllm", {"metrics": 8200})], ready=False, phase="Pending", waiting="ImagePullBackOff"))
    assert target.base_url == ""
    assert target.unavailable == ("decode-0: pod is not Ready (phase Pending, reason ImagePullBackOff); it is "
                                  "reported, not checked. kubectl describe pod decode-0 -n llm-d says why.")
    plain = chosen(pod([("vllm", {"metrics": 8200})], ready=False, phase="Pending"))
    assert plain.unavailable is not None and plain.unavailable.startswith("decode-0: pod is not Ready (phase "
                                                                          "Pending); it is reported")


def test_pod_becomes_a_target_with_its_node_labels_and_the_api_servers_credentials() -> None:
    """kills the `detail` keys, the labels, the client options and the "unknown" architecture of kube._target."""
    p = pod([("vllm", {"metrics": 8200})])
    options = {"headers": {"Authorization": "Bearer x"}}
    target = kube._target(p, "llm-d", None, None, "proxy", "https://api:6443", options, {})
    assert target == Target(name="decode-0", base_url=PROXY.format(8200), arch="unknown", source="kubernetes",
                            node="node-a", labels={"app": "vllm"}, client_options=options,
                            detail={"namespace": "llm-d", "node": "node-a", "arch": "unknown", "transport": "proxy",
                                    "container": "vllm"})
    p.spec.node_name = None
    p.metadata.labels = None
    unscheduled = kube._target(p, "llm-d", None, None, "proxy", "https://api:6443", {}, {"": "amd64"})
    assert (unscheduled.detail["node"], unscheduled.labels, unscheduled.arch) == ("unscheduled", {}, "amd64")


def test_metrics_port_wins_over_vllms_own_8200_and_unnamed_ports_are_listed() -> None:
    """kills `n == "metrics"` -> `"XXmetricsXX"` / `named = None` and `n or '-'` in kube._port."""
    assert chosen(pod([("vllm", {"http": 8200, "metrics": 9100})])).base_url == PROXY.format(9100)
    unnamed = chosen(pod([("vllm", {"": 8000})]), port="metrics")
    assert unnamed.unavailable == ("decode-0: has no container port named 'metrics' (its ports: -=8000); check "
                                   "--vllm-port.")


def test_pod_without_containers_asks_for_a_port() -> None:
    """kills `containers[0] if containers else None` -> `or True` and `chosen.name if chosen else '?'` in
    kube._port."""
    assert chosen(pod([])).unavailable == ("decode-0: declares no port on container ? (ports: none declared); pass "
                                           "--vllm-port.")


# -- pods of other model servers, named by the endpoint picker's engine label --------------------------------------


def test_a_pod_labelled_with_its_engine_is_read_where_that_engine_serves_its_page(
        sim_host: SimHost, tmp_path: Path) -> None:
    sglang = sim_host.start(get_profile("sglang-0.5.16"))
    triton = sim_host.start(get_profile("triton-tensorrt-llm"))
    cluster = Cluster(namespaces={NS: [
        PodSpec("sglang-0", {**CURRENT, "llm-d.ai/engine-type": "sglang"}, "node-a", {"http": 8000},
                backend=sglang.url),
        # Triton: HTTP 8000, gRPC 8001, its metrics service on 8002 (the tensorrtllm_backend README)
        PodSpec("triton-0", {**CURRENT, "inference.networking.k8s.io/engine-type": "triton-tensorrt-llm"}, "node-a",
                {"http": 8000, "grpc": 8001, "metrics": 8002}, backend=triton.url),
    ]}, nodes={"node-a": "amd64"}, tokens={"admin": ALL})
    double = KubeDouble(sim_host, cluster)
    _, targets = discover(namespace=NS, selector=None, container=None, port=None,
                          kubeconfig=str(write_kubeconfig(tmp_path / "kc", double, "admin")), context=None,
                          transport="proxy", timeout=30)
    by_name = {t.name: t for t in targets}
    assert {n: (t.engine.value, t.metrics_path) for n, t in by_name.items()} == {
        "sglang-0": ("sglang", "/metrics"), "triton-0": ("triton-tensorrt-llm", "/metrics")}
    assert by_name["triton-0"].page_target().base_url.endswith("/pods/triton-0:8002/proxy")
    # its API (the workload) on its HTTP port, not on the metrics service that its port named metrics names
    assert by_name["triton-0"].base_url.endswith("/pods/triton-0:8000/proxy")
    assert by_name["sglang-0"].base_url.endswith("/pods/sglang-0:8000/proxy")
    for name, family in (("sglang-0", "sglang:num_running_reqs"), ("triton-0", "nv_trt_llm_request_metrics")):
        target = by_name[name].page_target()
        page = httpx.get(target.url(target.metrics_path or "/metrics"), headers={"Authorization": "Bearer admin"})
        assert page.status_code == 200 and f"# TYPE {family} gauge" in page.text, name
