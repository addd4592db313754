"""The repository's own pytest configuration: shared fixtures for the project's tests."""

from __future__ import annotations

import asyncio
import fnmatch
import itertools
import json
import locale
import math
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpcore._backends.anyio
import httpcore._backends.sync
import httpx
import httpx._transports.default
import pytest
import yaml
from aiohttp import web

from pytest_vllm_metrics import evaluate, upgrade
from pytest_vllm_metrics.catalog import Entry, load_catalog
from pytest_vllm_metrics.judging import judge_reader
from pytest_vllm_metrics.observe import Observation, observe
from pytest_vllm_metrics.outcome import Level, Verdict
from pytest_vllm_metrics.prometheus import Prometheus
from pytest_vllm_metrics.readers import Query, Reader
from pytest_vllm_metrics.rows import Row, RowOutcome, TargetResult
from pytest_vllm_metrics.settings import Policy, Settings
from pytest_vllm_metrics.sim import Profile, SimHost, get_profile
from pytest_vllm_metrics.sim.kubeapi import ALL, Cluster, KubeDouble, PodSpec
from pytest_vllm_metrics.snapshot import Snapshot
from pytest_vllm_metrics.targets import Target
from pytest_vllm_metrics.traffic import RequestRecord, TrafficResult
from pytest_vllm_metrics.versions import VersionRange

# pytester restores sys.modules after each test, dropping modules first imported during it. httpx maps
# httpcore's exceptions through a table filled on first use: fill it now, with the httpcore imported here,
# so a later re-import cannot leave httpcore.ConnectError unmapped (it would escape as a raw httpcore error).
with httpx._transports.default.map_httpcore_exceptions():
    pass
_ = (httpcore._backends.anyio, httpcore._backends.sync)


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own, which turns -n into workers
def pytest_cmdline_main(config: pytest.Config) -> None:
    """`-n auto` unless -n was given, when pytest-xdist is installed: in pyproject.toml's addopts, a plain
    `pytest` without it would stop at "unrecognized arguments: -n". Not in a worker (it would start workers of
    its own), nor with -p no:xdist."""
    if (config.pluginmanager.hasplugin("xdist") and not hasattr(config, "workerinput")
            and config.getoption("numprocesses", None) is None):
        config.option.numprocesses = "auto"


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist: pytest runs without it too
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto`: two workers per core. Many tests wait on a server rather than compute (a Prometheus
    scraping, a bounded poll, a pytester run's simulator), so twice the cores keeps every core busy; measured on
    2 cores: 127 s with 2 workers, 89 s with 4, 93 s with 6."""
    return 2 * (os.cpu_count() or 1)


class PrivateCA:
    """A certificate authority of the tests' own (openssl), and server certificates it issues: what a cluster's
    API server or a TLS-terminated vLLM presents when its CA is not a public one."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.ca = directory / "ca.pem"
        _openssl("req", "-x509", *_EC_KEY, "-keyout", directory / "ca.key", "-out", self.ca, "-days", "1",
                 "-subj", "/CN=test-ca", "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign")

    def server_context(self, san: str) -> ssl.SSLContext:
        """A server's TLS context with a certificate for `san` only (e.g. "DNS:kube.test", "IP:127.0.0.1")."""
        name = san.split(":", 1)[1]
        key, csr, cert, ext = (self.dir / f"{name}.{suffix}" for suffix in ("key", "csr", "pem", "ext"))
        if not cert.exists():
            _openssl("req", *_EC_KEY, "-keyout", key, "-out", csr, "-subj", f"/CN={name}")
            ext.write_text(f"subjectAltName={san}\n")
            _openssl("x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", self.dir / "ca.key", "-CAcreateserial",
                     "-out", cert, "-days", "1", "-extfile", ext)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        return context


_EC_KEY = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


@pytest.fixture(scope="session")
def private_ca(tmp_path_factory: pytest.TempPathFactory) -> PrivateCA:
    return PrivateCA(tmp_path_factory.mktemp("private-ca"))


@pytest.fixture(scope="module")
def host() -> Iterator[SimHost]:
    """Simulated servers shared by a module's tests (observed once, judged many times)."""
    with SimHost() as sims:
        yield sims


@pytest.fixture
def api(host: SimHost) -> Iterator[PrometheusAPI]:
    """A Prometheus HTTP API on loopback that answers what a test tells it (conftest.PrometheusAPI)."""
    server = PrometheusAPI()
    server.url = host.start_app(server.app())
    yield server


@pytest.fixture
def prom(api: PrometheusAPI) -> Iterator[Prometheus]:
    client = Prometheus(api.url, timeout=30)  # the double answers at once; a loaded machine may be slow
    yield client
    client.close()


@pytest.fixture
def tls_api(sim_host: SimHost, private_ca: PrivateCA) -> PrometheusAPI:
    """The Prometheus HTTP API of `api` over TLS, its certificate issued by the private CA for 127.0.0.1."""
    server = PrometheusAPI()
    server.url = sim_host.start_app(server.app(), ssl_context=private_ca.server_context("IP:127.0.0.1"))
    return server


@pytest.fixture
def sim_host() -> Iterator[SimHost]:
    """Simulated vLLM servers on loopback that a test configures itself (faults, API keys)."""
    with SimHost() as host:
        yield host


@pytest.fixture
def prometheus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., str]]:
    """Start a real Prometheus (Debian package) on a free loopback port scraping the given targets every
    second, with relabeling that adds namespace and pod labels as Prometheus Operator does. Returns its URL."""
    started: list[subprocess.Popen[bytes]] = []

    def start(targets: dict[str, str], namespace: str = "llm-d-cpu-inference", rules: tuple[Path, ...] = ()) -> str:
        binary = shutil.which("prometheus")
        if binary is None:
            if os.environ.get("CI"):
                pytest.fail("prometheus is not installed: .ci/run installs the Debian package")
            pytest.skip("prometheus is not installed (apt-get install prometheus)")
        workdir = tmp_path_factory.mktemp("prometheus")
        groups = [{"targets": [urlsplit(url).netloc], "labels": {"__tmp_namespace": namespace, "__tmp_pod": pod}}
                  for pod, url in targets.items()]
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{
                "job_name": "vllm", "static_configs": groups,
                "relabel_configs": [
                    {"source_labels": ["__tmp_namespace"], "target_label": "namespace"},
                    {"source_labels": ["__tmp_pod"], "target_label": "pod"},
                    {"target_label": "container", "replacement": "vllm"},
                    {"target_label": "endpoint", "replacement": "metrics"},
                ],
            }],
        }
        if rules:  # loaded as Prometheus Operator loads a PrometheusRule: its spec.groups as a rule file
            config["rule_files"] = [str(f) for f in prometheus_rule_files(rules, workdir)]
        (workdir / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        process = subprocess.Popen(
            [binary, f"--config.file={workdir / 'prometheus.yml'}", f"--storage.tsdb.path={workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            stdout=subprocess.DEVNULL, stderr=(workdir / "log").open("wb"),
        )
        started.append(process)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60  # generous: Prometheus starts slowly on a loaded machine
        with httpx.Client(timeout=1, verify=False) as client:  # one client: each new one parses the CA bundle
            while time.monotonic() < deadline:  # bounded wait: ready, and every target scraped once
                try:
                    up = client.get(url + "/api/v1/query", params={"query": "count(up == 1)"}).json()
                    if up["data"]["result"] and int(up["data"]["result"][0]["value"][1]) == len(targets):
                        return url
                except (httpx.HTTPError, ValueError, KeyError):
                    pass
                if process.poll() is not None:
                    break
                time.sleep(0.1)
        pytest.fail(f"Prometheus did not become ready: {(workdir / 'log').read_text()[-2000:]}")

    yield start
    for process in started:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def prometheus_rule_files(paths: tuple[Path, ...], directory: Path) -> list[Path]:
    """The rule files Prometheus itself reads for the given rule files and PrometheusRule YAML (directories
    included): a plain file as it is, each PrometheusRule's spec.groups written to a file of its own."""
    out: list[Path] = []
    files = [f for p in paths for f in (sorted(p.glob("*.y*ml")) if p.is_dir() else [p])]
    for file in files:
        for number, document in enumerate(yaml_documents(file)):
            if document.get("kind") == "PrometheusRule":
                written = directory / f"{file.stem}-{number}.rules.yaml"
                written.write_text(yaml.safe_dump({"groups": document["spec"]["groups"]}))
                out.append(written)
            elif "groups" in document:
                out.append(file)
    return out


# -- a Prometheus HTTP API on loopback, for the checks' own logic (the real Prometheus is prometheus_server) ---

NOW = 1_767_225_600.0  # the evaluation timestamp Prometheus puts on every sample of an instant query


def sample(value: float | str, **labels: str) -> dict[str, Any]:
    """One element of an instant vector: its labels and [evaluation time, value as a string]."""
    return {"metric": labels, "value": [NOW, str(value)]}


def vector(*samples: dict[str, Any]) -> dict[str, Any]:
    return {"resultType": "vector", "result": list(samples)}


@dataclass
class Seen:
    path: str
    params: dict[str, str]
    authorization: str | None
    peer_port: int
    at: float = 0.0  # time.monotonic() when the request arrived: how far apart a client's polls came


def gaps(seen: list[Seen]) -> list[float]:
    """Seconds between consecutive requests, as the server saw them arrive."""
    return [later.at - earlier.at for earlier, later in itertools.pairwise(seen)]


@dataclass
class PrometheusAPI:
    """A Prometheus HTTP API on loopback. `answers` maps a PromQL expression to the successive `data` it
    answers (the last one repeats); any other expression has an empty vector, as a series Prometheus lacks."""

    answers: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    active: list[dict[str, Any]] = field(default_factory=list)
    dropped: list[dict[str, Any]] = field(default_factory=list)
    # (HTTP status, content type, body) answered to every request instead, as a proxy or an error would.
    fixed: tuple[int, str, str] | None = None
    # when set up: hold each answer until the test releases it (bounded, far beyond any client timeout under test)
    stall: threading.Event | None = None
    series: dict[str, list[dict[str, str]]] = field(default_factory=dict)  # /api/v1/series: match[] -> label sets
    label_values: dict[str, list[str]] = field(default_factory=dict)  # /api/v1/label/<name>/values
    label_names: list[str] = field(default_factory=list)  # /api/v1/labels
    seen: list[Seen] = field(default_factory=list)
    url: str = ""

    def answer(self, expr: str, *data: dict[str, Any]) -> None:
        self.answers[expr] = list(data)

    def queries(self) -> list[str]:
        return [s.params["query"] for s in self.seen if s.path == "/api/v1/query"]

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api/v1/query", self._query)
        app.router.add_get("/api/v1/targets", self._targets)
        app.router.add_get("/api/v1/series", self._series)
        app.router.add_get("/api/v1/labels", self._labels)
        app.router.add_get("/api/v1/label/{name}/values", self._labels)
        return app

    async def _record(self, request: web.Request) -> web.Response | None:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.seen.append(Seen(request.path, dict(request.query), request.headers.get("Authorization"),
                              peer[1] if peer else 0, time.monotonic()))
        if self.stall is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.stall.wait, 60.0)
        if self.fixed is not None:
            status, content_type, body = self.fixed
            return web.Response(status=status, content_type=content_type, text=body)
        return None

    async def _query(self, request: web.Request) -> web.Response:
        fixed = await self._record(request)
        if fixed is not None:
            return fixed
        data = self.answers.get(request.query["query"], [vector()])
        if len(data) > 1:
            return web.json_response({"status": "success", "data": data.pop(0)})
        return web.json_response({"status": "success", "data": data[0]})

    async def _series(self, request: web.Request) -> web.Response:
        fixed = await self._record(request)
        if fixed is not None:
            return fixed
        return web.json_response({"status": "success", "data": self.series.get(request.query["match[]"], [])})

    async def _labels(self, request: web.Request) -> web.Response:
        fixed = await self._record(request)
        if fixed is not None:
            return fixed
        name = request.match_info.get("name")
        data = self.label_names if name is None else self.label_values.get(name, [])
        return web.json_response({"status": "success", "data": data})

    async def _targets(self, request: web.Request) -> web.Response:
        fixed = await self._record(request)
        if fixed is not None:
            return fixed
        state = request.query.get("state", "").lower()  # as Prometheus' web/api/v1 reads it
        data = {"activeTargets": self.active if state in ("", "any", "active") else [],
                "droppedTargets": self.dropped if state in ("", "any", "dropped") else []}
        return web.json_response({"status": "success", "data": data})


# -- a Kubernetes cluster double with two vLLM pods -------------------------------------------------

NS = "llm-d-cpu-inference"
LEGACY = {"llm-d.ai/inferenceServing": "true", "llm-d.ai/role": "decode"}
CURRENT = {"llm-d.ai/inference-serving": "true", "llm-d.ai/role": "decode"}
# What deploy/rbac.yaml grants: the least the suite needs. The workload POSTs through the pod proxy, and
# Kubernetes authorizes a POST to a subresource as the verb "create".
ROLE = frozenset({("list", "pods"), ("get", "pods/proxy"), ("create", "pods/proxy")})


# -- runs of the suite as a user runs them, and the real vLLM pages ----------------------------------------


def verdicts(pytester: pytest.Pytester, report: str = "report.json") -> dict[tuple[str, str], str]:
    """(test name with its parameters, target) -> that target's outcome, from a run's --vllm-report file.

    The bundled checks judge every target in one test; this is how a test sees one pod's result."""
    rows = json.loads((pytester.path / report).read_text())["tests"]
    return {(row["id"].split("::")[-1], name): t["outcome"] for row in rows for name, t in row["targets"].items()}


CAPTURE_DIR = Path(__file__).parent / "data" / "captures"  # real vLLM 0.32 pages (its README says how taken)
CAPTURES = sorted(CAPTURE_DIR.glob("*.prom"))
BASE_CAPTURE = CAPTURE_DIR / "prefix-caching-on.after.prom"  # the plain server's page (no optional feature)


def capture_text(name: str) -> str:
    """The text of the real page `name` (a file of tests/data/captures without its .prom)."""
    return (CAPTURE_DIR / f"{name}.prom").read_text(encoding="utf-8")


def capture(name: str) -> Snapshot:
    return Snapshot.parse(capture_text(name))


def comparable(snapshot: Snapshot) -> tuple[object, ...]:
    """What two parses of one page must agree on: families, samples (NaN made comparable), created stamps."""
    samples = {name: [(s.labels, "nan" if math.isnan(s.value) else s.value) for s in series]
               for name, series in snapshot.samples.items()}
    created = {name: {labels: "nan" if math.isnan(stamp) else stamp for labels, stamp in stamps.items()}
               for name, stamps in snapshot.created.items()}
    return snapshot.families, samples, created


def exposition(values: dict[str, float], start: float = 1000.0, extra: str = "") -> Snapshot:
    """A small vLLM page: each name (labels after `{` allowed) one series of engine 0 and model m, a counter when
    it ends in _total; `start` is the process start time (a restart changes it)."""
    lines = [f"process_start_time_seconds {start}"]
    for name, value in values.items():
        base, _, labels = name.partition("{")
        kind = "counter" if base.endswith("_total") else "gauge"
        lines += [f"# TYPE {base.removesuffix('_total')} {kind}",
                  f'{base}{{engine="0",model_name="m"{"," + labels if labels else "}"} {value}']
    return Snapshot.parse("\n".join(lines) + "\n" + extra)


def run_suite(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """The bundled suite run as a user runs it, every outcome listed (-rA)."""
    return pytester.runpytest("-rA", "-p", "no:cacheprovider", *args)


def json_report(pytester: pytest.Pytester, report: str = "report.json") -> dict[str, Any]:
    """The JSON report a run wrote (--vllm-report=report.json)."""
    document: dict[str, Any] = json.loads((pytester.path / report).read_text())
    return document


def closed_url() -> str:
    """The URL of a loopback port nothing listens on (bound, then closed): a connection to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def name_of(url: str) -> str:
    """The name of a --vllm-url target: its address."""
    return url.removeprefix("http://")


def flat(result: pytest.RunResult) -> str:
    """A run's output with the terminal's line wrapping undone (the summary wraps long reasons)."""
    return " ".join((result.stdout.str() + result.stderr.str()).split())


def said(result: pytest.RunResult, pattern: str) -> bool:
    """Whether the run printed text matching the fnmatch `pattern`, wherever the terminal wrapped it."""
    return fnmatch.fnmatch(flat(result), f"*{pattern}*")


# -- the cluster double: its kubeconfig, its pods, a run on them ------------------------------------------


def write_kubeconfig(path: Path, double: KubeDouble, token: str, **kwargs: Any) -> Path:
    path.write_text(json.dumps(KubeDouble.kubeconfig(double.url, token, namespace=NS, **kwargs)))
    return path


def run_kube(pytester: pytest.Pytester, kubeconfig: Path, *args: str) -> pytest.RunResult:
    """The bundled suite run on the pods of the cluster `kubeconfig` names, in namespace NS."""
    return pytester.runpytest("-rA", "-p", "no:cacheprovider", f"--kubeconfig={kubeconfig}",
                              f"--vllm-namespace={NS}", "--vllm-report=report.json", *args)


@pytest.fixture
def cluster(sim_host: SimHost) -> Cluster:
    """Two decode pods (amd64 and arm64, each label spelling once) behind a pod proxy, plus a sidecar port."""
    amd = sim_host.start(get_profile("x86_64"))
    arm = sim_host.start(get_profile("arm64-cpu"))
    return Cluster(
        namespaces={NS: [
            PodSpec("decode-amd64", LEGACY, "node-a", {"proxy": 8000, "metrics": 8200}, backend=amd.url),
            PodSpec("decode-arm64", CURRENT, "node-b", {"metrics": 8200}, backend=arm.url),
            PodSpec("epp", {"app": "epp"}, "node-a", {"grpc": 9002}),
        ], "empty": []},
        nodes={"node-a": "amd64", "node-b": "arm64"},
        tokens={"admin": ALL, "suite": ROLE, "suite-with-nodes": ROLE | {("get", "nodes")},
                "no-proxy": frozenset({("list", "pods")})},
    )


@pytest.fixture(scope="session")
def kubernetes_client() -> None:
    """The kubernetes client's modules, imported once per worker. pytester drops what a pytester run imported
    when it ends, and the client's API modules take ~2 s of CPU to import: without this, every in-process run
    against the API-server double imported them again."""
    from kubernetes import client, config  # noqa: F401

    _ = (client.CoreV1Api, client.AppsV1Api, client.CustomObjectsApi, client.VersionApi, client.ApiClient)


@pytest.fixture(autouse=True)
def _pytester_keeps_kubernetes_imported(request: pytest.FixtureRequest) -> None:
    if "pytester" in request.fixturenames:  # any pytester run may discover pods (see kubernetes_client)
        request.getfixturevalue("kubernetes_client")


@pytest.fixture
def double(sim_host: SimHost, cluster: Cluster) -> KubeDouble:
    return KubeDouble(sim_host, cluster)


MULTINODE = Path(__file__).parent / "data" / "multinode"  # multi-node deployments, each citing its source


def manifest(name: str) -> list[dict[str, Any]]:
    pods: list[dict[str, Any]] = yaml.safe_load((MULTINODE / f"{name}.yaml").read_text())["pods"]
    return pods


def deployment(name: str, sim_host: SimHost, serves: dict[str, dict[str, int]] | None = None,
               only: set[str] | None = None) -> Cluster:
    """The pods of a data file (or `only` some of them), each pod that serves the API backed by a simulator running
    what its `serves` says (or `serves[pod]`, to break one)."""
    pods = []
    for pod in manifest(name):
        if only is not None and pod["name"] not in only:
            continue
        backend = None
        if "serves" in pod:
            profile = get_profile("x86_64").replace(**{**pod["serves"], **(serves or {}).get(pod["name"], {})})
            backend = sim_host.start(profile).url
        pods.append(PodSpec(pod["name"], pod["labels"], pod["node"], pod.get("ports") or {}, backend=backend,
                            ip=pod["ip"], container=pod["container"], command=pod.get("command"),
                            args=pod.get("args"), env={k: str(v) for k, v in (pod.get("env") or {}).items()},
                            annotations=pod.get("annotations") or {}))
    return Cluster(namespaces={NS: pods}, nodes={"node-a": "amd64", "node-b": "amd64"}, tokens={"admin": ALL})


# -- observations built from small pages and workload records, as `observe` builds them -----------------


LABELS = '{engine="0",model_name="tiny"}'
SUCCESS = "vllm:request_success_total"
HITS = "vllm:prefix_cache_hits_total"
QUERIES = "vllm:prefix_cache_queries_total"
WHERE = "decode-0 (vLLM 0.32.0, amd64)"


def page(samples: dict[str, float], *, block_size: int = 16, caching: str = "True", start: float = 1000.0,
         taken_at: float | None = None, extra: str = "") -> Snapshot:
    """A /metrics page as vLLM writes it: each counter (`*_total`) or `_created` stamp with one series, the
    cache config and the process start time (and `extra` lines as written). `exposition` is the bare kind: no
    HELP, no cache config, model m."""
    lines = ["# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.",
             "# TYPE process_start_time_seconds gauge", f"process_start_time_seconds {start}",
             "# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig",
             "# TYPE vllm:cache_config_info gauge",
             f'vllm:cache_config_info{{block_size="{block_size}",enable_prefix_caching="{caching}",'
             f'engine="0"}} 1.0']
    for name, value in samples.items():
        if name.endswith("_created"):
            lines += [f"# HELP {name} created", f"# TYPE {name} gauge", f"{name}{LABELS} {value}"]
        else:
            lines += [f"# HELP {name} counted", f"# TYPE {name} counter", f"{name}{LABELS} {value}"]
    snapshot = Snapshot.parse("\n".join(lines) + "\n" + extra)
    snapshot.taken_at = taken_at
    return snapshot


def record(kind: str = "completion", *, prompt: int = 25, completion: int = 2, shares: bool = False,
           status: int = 200) -> RequestRecord:
    return RequestRecord(kind, status, 0.01, prompt_tokens=prompt, completion_tokens=completion,
                         shares_prefix=shares)


def workload(*records: RequestRecord, prefix_tokens: int = 0, block_size: int = 16) -> TrafficResult:
    """Four plain completions (100 prompt tokens, 8 generated) unless records are given."""
    return TrafficResult("tiny", block_size, list(records or [record() for _ in range(4)]), prefix_tokens)


def observation(before: Snapshot, after: Snapshot | None, traffic: TrafficResult | None = None, *,
             arch: str = "amd64", source: str = "url", version: str | None = "0.32.0") -> Observation:
    target = Target("decode-0", "http://10.0.0.1:8200", arch=arch, source=source)
    return Observation(target, version=version, before=before, traffic=traffic or workload(), after=after)


def counter(name: str = SUCCESS, at_least: str | None = None, *, feature: str = "core", meaning: str = "",
            replaces: str | None = None) -> Entry:
    """A counter the workload must move; SHOULD, so that a verdict that loses the entry's level shows."""
    return Entry(name=name, type="counter", level="SHOULD", feature=feature, versions=VersionRange(">=0.9.2"),
                 labels=("engine", "model_name"), moves="increases", at_least=at_least, replaces=replaces,
                 meaning=meaning)


def moved(before: float, after: float, entry: Entry | None = None, traffic: TrafficResult | None = None,
          policy: Policy | None = None) -> Verdict:
    """The movement verdict of one counter that went from `before` to `after` across the workload."""
    entry = entry or counter(at_least="requests")
    obs = observation(page({entry.name: before}), page({entry.name: after}), traffic)
    return evaluate.movement(entry, obs, policy or Policy())


SUMMARY = ("4/4 requests succeeded, 100 prompt tokens (shared prefix 0 tokens, block size 16), 8 generated "
           "tokens")


# -- the metrics' other readers in a cluster, as the API-server double serves them -------------------------

DASHBOARDS = Path(__file__).parent / "data" / "dashboards"  # the real llm-d dashboards
RULES = Path(__file__).parent / "data" / "rules"
MONITORING = "monitoring"


def yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def configmap(name: str, namespace: str, data: dict[str, str], labels: dict[str, str] | None = None
               ) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "data": data,
            "metadata": {"name": name, "namespace": namespace, "labels": labels or {}, "uid": f"uid-{name}",
                         "resourceVersion": "1", "creationTimestamp": "2026-11-28T00:00:00Z"}}


def scaled_object(name: str, query: str) -> dict[str, Any]:
    # vLLM production-stack's KEDA tutorial (docs/source/use_cases/autoscaling-keda.rst) and KEDA's prometheus
    # scaler docs: a prometheus trigger with serverAddress, metricName, threshold and query; a cpu trigger beside
    return {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"scaleTargetRef": {"name": "vllm-decode"}, "minReplicaCount": 1, "maxReplicaCount": 2,
                     "triggers": [{"type": "prometheus", "metadata": {
                         "serverAddress": "http://prometheus-operated.monitoring.svc:9090",
                         "metricName": "vllm:num_requests_waiting", "threshold": "5", "query": query}},
                         {"type": "cpu", "metricType": "Utilization", "metadata": {"value": "80"}}]}}


def k8s_deployment(name: str, image: str, args: list[str], labels: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": NS, "labels": labels, "uid": f"uid-{name}",
                         "resourceVersion": "1", "creationTimestamp": "2026-11-28T00:00:00Z"},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": {"containers": [
                         {"name": name.rsplit("-", 1)[-1], "image": image, "args": args,
                          "ports": [{"name": "grpc", "containerPort": 9002}, {"name": "metrics",
                                                                               "containerPort": 9090}]}]}}}}


# prometheus-adapter's config.yaml (its docs/config-walkthrough.md: seriesQuery with an anchored __name__ regex,
# resources overrides, name.as, metricsQuery over <<.Series>>, <<.LabelMatchers>> and <<.GroupBy>>)
ADAPTER = """\
rules:
- seriesQuery: '{__name__=~"^vllm:num_requests_waiting$",namespace!="",pod!=""}'
  resources:
    overrides:
      namespace: {resource: "namespace"}
      pod: {resource: "pod"}
  name:
    matches: "vllm:num_requests_waiting"
    as: "vllm_queue_length"
  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)
externalRules:
- seriesQuery: 'vllm:gpu_cache_usage_perc{namespace!=""}'
  name:
    as: "vllm_kv_cache_usage"
  metricsQuery: max(<<.Series>>{<<.LabelMatchers>>})
- seriesQuery: '{__name__=~"^vllm:.*_total$"}'
  metricsQuery: sum(rate(<<.Series>>[2m]))
"""


OPERATOR = Path(__file__).parent / "data" / "grafana-operator"


# grafana/grafana-operator examples/dashboard/url/resources.yaml
URL_DASHBOARD = "https://raw.githubusercontent.com/grafana-operator/grafana-operator/master/examples/" \
                "dashboard_from_url/dashboard.json"


def grafana_dashboard_object(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "grafana.integreatly.org/v1beta1", "kind": "GrafanaDashboard",
            "metadata": {"name": name, "namespace": MONITORING},
            "spec": {"instanceSelector": {"matchLabels": {"dashboards": "grafana"}}, **spec}}


NODE_DASHBOARD = json.dumps({"title": "Nodes", "panels": [{"title": "Load", "targets": [{"expr": "node_load1"}]}]})


@pytest.fixture
def consumers_cluster(cluster: Cluster) -> Cluster:
    """The namespace's PrometheusRules (tests/data/rules), a KEDA scaler on the current and one on the old KV-cache
    name, the endpoint picker as the inferencepool chart deploys it; in the monitoring namespace the Grafana
    sidecar's dashboard ConfigMaps, prometheus-adapter's config, and the Grafana Operator's GrafanaDashboards
    (tests/data/grafana-operator: gzipJson, and configMapRef with its ConfigMap; one from a URL the operator has not
    fetched; one of no vLLM metric)."""
    saturation = (DASHBOARDS / "llm-d-failure-saturation.json").read_text()
    operator = {d["metadata"]["name"]: {**d, "metadata": {**d["metadata"], "namespace": MONITORING}}
                for d in yaml_documents(OPERATOR / "vllm-dashboards.yaml")}
    rules = yaml_documents(RULES / "vllm-prefix-cache.yaml")
    unrelated = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
                 "metadata": {"name": "node-exporter", "namespace": MONITORING},
                 "spec": {"groups": [{"name": "node", "rules": [{"alert": "NodeDown", "expr": "up == 0"}]}]}}
    cluster.namespaces[MONITORING] = []
    cluster.objects = {
        "prometheusrules": {NS: rules, MONITORING: [unrelated]},
        "configmaps": {MONITORING: [
            configmap("llm-d-dashboards", MONITORING, {"llm-d-failure-saturation.json": saturation},
                       {"grafana_dashboard": "1"}),
            configmap("node-dashboards", MONITORING, {"nodes.json": NODE_DASHBOARD}, {"grafana_dashboard": "1"}),
            configmap("prometheus-adapter", MONITORING, {"config.yaml": ADAPTER}),
            operator["vllm-performance-old-definition"],
        ]},
        "grafanadashboards": {MONITORING: [
            operator["vllm-performance-gzipped"], operator["vllm-performance-old-from-configmap"],
            grafana_dashboard_object("grafanadashboard-from-url", {"url": URL_DASHBOARD}),
            grafana_dashboard_object("node-exporter", {"json": NODE_DASHBOARD}),
        ]},
        "scaledobjects": {NS: [scaled_object("vllm-queue", "sum(vllm:num_requests_waiting)"),
                               scaled_object("vllm-kv", "max(vllm:gpu_cache_usage_perc)")]},
        "deployments": {NS: [
            # the inferencepool chart's EPP: container epp, args "--pool-name", NAME, then "--flag=value"
            k8s_deployment("llm-d-infpool-epp", "registry.k8s.io/gateway-api-inference-extension/epp:v1.0.1",
                        ["--pool-name", "llm-d-infpool", "--pool-namespace", NS, "--zap-encoder", "json",
                         "--kv-cache-usage-percentage-metric=vllm:gpu_cache_usage_perc",
                         "--total-queued-requests-metric", "vllm:num_requests_waiting",
                         "--total-running-requests-metric=vllm:num_requests_running",
                         "--lora-info-metric=vllm:lora_requests_info"],
                        {"app.kubernetes.io/name": "llm-d-infpool-epp", "inferencepool": "llm-d-infpool-epp"}),
            k8s_deployment("vllm-decode", "vllm/vllm-openai:v0.11.0", ["--model", "x", "--port", "8200"],
                        {"llm-d.ai/inference-serving": "true"}),
        ]},
    }
    return cluster


# What each consumer of the double's cluster gets (the admin token reads everything).
CLUSTER_VERDICTS = {
    # summed by namespace over both pods: the amd64 pod's hits make the rule record data
    "record:vllm-prefix-cache::namespace:vllm_prefix_cache_hits:rate1m": ("passed", "ok"),
    "record:vllm-prefix-cache::namespace:vllm_prefix_cache_hit_ratio:rate1m": ("passed", "ok"),
    "record:vllm-prefix-cache::namespace:vllm_gpu_prefix_cache_hits:rate1m": ("failed", "no data"),
    # the old histogram: only the older vLLM serves it
    "alert:vllm-latency::VLLMSlowDecode": ("failed", "part of the fleet"),
    "keda:vllm-queue::vllm:num_requests_waiting": ("passed", "ok"),
    "keda:vllm-kv::vllm:num_requests_waiting": ("failed", "no data"),
    "adapter:prometheus-adapter::vllm_queue_length": ("passed", "ok"),
    "adapter:prometheus-adapter::vllm_kv_cache_usage": ("failed", "no data"),
    "epp:llm-d-infpool-epp::kv-cache-usage-percentage-metric": ("failed", "no data"),
    "epp:llm-d-infpool-epp::total-queued-requests-metric": ("passed", "ok"),
    "epp:llm-d-infpool-epp::total-running-requests-metric": ("passed", "ok"),
    # the pods serve no LoRA adapter: the EPP reads nothing there, as expected
    "epp:llm-d-infpool-epp::lora-info-metric": ("skipped", "feature not enabled"),
    # its flags over the built-in vLLM specs: the old KV-cache gauge, which neither pod serves
    "epp:llm-d-infpool-epp::engineConfigs": ("failed", "no data"),
}


# -- panels judged in-process ---------------------------------------------------------------------------------


def dashboard_file(path: Path, panels: list[dict[str, Any]], variables: list[dict[str, Any]] | None = None) -> Path:
    """A dashboard "vLLM" as Grafana exports it (its variables, its panels), written to `path`."""
    path.write_text(json.dumps({"title": "vLLM", "templating": {"list": variables or []}, "panels": panels}))
    return path


def panel_json(title: str, *exprs: str, **extra: Any) -> dict[str, Any]:
    """A panel of a dashboard file: its queries A, B, ... are `exprs`."""
    return {"title": title, "targets": [{"refId": chr(ord("A") + i), "expr": e} for i, e in enumerate(exprs)],
            **extra}


def observed(host: SimHost, profile: str | Profile, name: str = "decode-0", arch: str = "amd64", requests: int = 4,
             **target: Any) -> list[Observation]:
    """One simulated server (a profile's name, or a profile) observed around a workload as a run does (`target`:
    more Target fields, such as source="kubernetes" and its detail)."""
    sim = host.start(get_profile(profile) if isinstance(profile, str) else profile)
    settings = Settings(vllm_requests=requests)
    return list(asyncio.run(observe([Target(name=name, base_url=sim.url, arch=arch, **target)], settings)).values())


def judge(observations: list[Observation], *exprs: str, policy: Policy | None = None, kind: str = "panel",
          **kwargs: Any) -> Verdict:
    """The verdict of a panel (or another reader `kind`) whose queries are `exprs`, titled "T" of dashboard "vLLM"."""
    panel = Reader("d", "T", tuple(Query(chr(ord("A") + i), e) for i, e in enumerate(exprs)), dashboard_title="vLLM",
                  kind=kind)
    return judge_reader(panel, observations, load_catalog(), policy or Policy(), **kwargs)


def summary(verdict: Verdict) -> tuple[str, str, str, str]:
    return verdict.outcome.value, verdict.level, verdict.evidence["panel_verdict"], verdict.message


# -- the rows of a run, for the report writers -----------------------------------------------------------------

KV_REASON = 'panel "KV Cache Usage" (vLLM) Query A: vllm:gpu_cache_usage_perc is on no target: vLLM 0.11 renamed it'
TIMED_OUT = "the second scrape timed out after 10 s: rerun"
NO_PREFIX = 'vLLM reports enable_prefix_caching="False": start it with --enable-prefix-caching'
NOT_ON_ARM = "vLLM 0.11.2 does not emit it on arm64 (upgrade to vLLM 0.12.0)"
RULE_REASON = 'alert "VLLMKVCacheHigh" (vllm-rules): its $namespace matches no target'


def report_rows() -> list[Row]:
    """The rows of a run on three pods with a dashboard, a rule and a scaler, as the bundled suite makes them:
    decode-1 fails the prefix-cache check, decode-2's second scrape timed out, decode-0 has a documented limitation;
    one panel has no data, the rule could not be judged, the scaler works but sees two of the three pods."""
    def one(test: str, target: str, outcome: str, reason: str = "") -> Row:
        return Row(id=f"conformance/test_server.py::test_{test}[{target}]", target=target, check=test,
                   level=Level.MUST, outcome=RowOutcome(outcome), reason=reason)

    def across(check: str, level: Level, outcome: str, **targets: tuple[str, str, str]) -> Row:
        return Row(id=f"conformance/test_metrics.py::test_x[{check}]", target="", check=check, level=level,
                   outcome=RowOutcome(outcome), reason=f"{outcome} on some targets",
                   targets={name.replace("_", "-"): TargetResult(RowOutcome(o), r, d)
                            for name, (o, r, d) in targets.items()})

    def reader(check: str, target: str, outcome: str, verdict: str, reason: str) -> Row:
        return Row(id=f"conformance/test_dashboards.py::test_reader[{check}]", target=target, check=check,
                   level=Level.MUST, outcome=RowOutcome(outcome), reason=reason, evidence={"panel_verdict": verdict})

    return [
        one("reachable", "decode-0", "passed"), one("reachable", "decode-1", "passed"),
        one("reachable", "decode-2", "inconclusive", f"decode-2: {TIMED_OUT}"),
        across("moves: vllm:prefix_cache_hits_total", Level.MUST, "failed",
               decode_0=("passed", "decode-0: moved by 256", ""),
               decode_1=("failed", "decode-1: vllm:prefix_cache_hits_total did not move", NO_PREFIX),
               decode_2=("inconclusive", f"decode-2: {TIMED_OUT}", "")),
        across("present: vllm:lora_requests_info", Level.SHOULD, "xfailed",
               decode_0=("xfailed", f"decode-0: {NOT_ON_ARM}", ""), decode_1=("passed", "", ""),
               decode_2=("passed", "", "")),
        reader("panel: KV Cache Usage", "vllm-dash", "failed", "no data", KV_REASON),
        reader("panel: Throughput", "vllm-dash", "passed", "ok", ""),
        reader("alert: VLLMKVCacheHigh", "vllm-rules", "inconclusive", "inconclusive", RULE_REASON),
        reader("keda: vllm-scaler", "keda-ns", "passed", "ok", "its query sums 2 of the 3 pods (decode-2: no data)"),
    ]


REPORT_TARGETS = [{"target": f"decode-{i}", "architecture": "arm64" if i == 0 else "amd64",
                   "vllmVersion": "0.11.2" if i == 0 else "0.32.0", "model": "tiny", "source": "kubernetes"}
                  for i in range(3)]


def upgrade_rows(to: str) -> list[Row]:
    """The rows of an upgrade forecast (--vllm-upgrade-to) of a panel and an alert on vLLM 0.10's KV-cache gauge and
    a scaler on the running requests, for two pods on vLLM 0.10.1 and one whose /version did not answer."""
    page = exposition({"vllm:gpu_cache_usage_perc": 0.1, "vllm:num_requests_running": 0.0})
    fleet = [Observation(Target(name=f"decode-{i}", base_url="http://127.0.0.1:9"),
                         version="0.10.1" if i < 2 else None, before=page) for i in range(3)]
    rows = []
    for kind, title, expr in (("panel", "KV Cache Usage", "vllm:gpu_cache_usage_perc"),
                              ("alert", "VLLMKVCacheHigh", "max(vllm:gpu_cache_usage_perc) > 0.9"),
                              ("keda", "vllm-scaler", "sum(vllm:num_requests_running)")):
        reader = Reader("vllm-dash", title, (Query("A", expr),), dashboard_title="vLLM", kind=kind)
        verdict = upgrade.judge(reader, fleet, load_catalog(), to)
        rows.append(Row(id=f"conformance/test_upgrade.py::test_upgrade[{kind}:{reader.id}]", target="",
                        check=f"upgrade[{kind}:{reader.id}]", level=Level.MUST, outcome=RowOutcome(verdict.outcome),
                        reason=verdict.message, evidence=verdict.evidence))
    return rows


# -- HTML as a browser reads it, for the HTML report's tests ---------------------------------------------------

_INLINE = frozenset({"a", "b", "code", "em", "i", "span", "strong"})  # drawn within the line: no space around
_VOID = frozenset({"br", "hr", "img", "input", "meta", "link", "col", "wbr", "source", "area", "base", "embed"})


@dataclass
class Node:
    """An element of an HTML page: its tag, its attributes, its children (elements and text)."""

    tag: str
    attrs: dict[str, str]
    children: list[Node | str] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The text a browser draws for it, its whitespace collapsed."""
        return " ".join("".join(c if isinstance(c, str) else c.text if c.tag in _INLINE else f" {c.text} "
                                for c in self.children).split())

    def all(self, tag: str | None = None, **attrs: str) -> list[Node]:
        """Its descendants with this tag and these attributes (class_="x": one of their classes; data_x: data-x)."""
        found = []
        for child in self.children:
            if isinstance(child, Node):
                if (tag is None or child.tag == tag) and all(child.has(k, v) for k, v in attrs.items()):
                    found.append(child)
                found += child.all(tag, **attrs)
        return found

    def one(self, tag: str | None = None, **attrs: str) -> Node:
        found = self.all(tag, **attrs)
        assert len(found) == 1, f"{len(found)} <{tag} {attrs}>"
        return found[0]

    def has(self, key: str, value: str) -> bool:
        name = key.rstrip("_").replace("_", "-")
        if name == "class":
            return value in self.attrs.get("class", "").split()
        return self.attrs.get(name) == value


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("", {})
        self.open = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.open[-1].children.append(node)
        if tag not in _VOID:
            self.open.append(node)

    def handle_endtag(self, tag: str) -> None:
        # an end tag closes its element; a stray one (HTML that does not nest) fails the test that parses it
        assert self.open[-1].tag == tag, f"</{tag}> closes <{self.open[-1].tag}>"
        self.open.pop()

    def handle_data(self, data: str) -> None:
        self.open[-1].children.append(data)


def parse_html(text: str) -> Node:
    """An HTML fragment as a tree of elements (every element closed where it should be)."""
    parser = _Parser()
    parser.feed(text)
    parser.close()
    assert parser.open == [parser.root], f"unclosed: {[n.tag for n in parser.open[1:]]}"
    return parser.root


# -- the HTML report in a real browser ----------------------------------------------------------------------


class _Text(HTMLParser):
    """Text content of a DOM (attributes ignored): what a browser draws, not what a script carries."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: .ci/run installs the Debian package")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return path


def dump_dom(html_file: Path, tmp_path: Path, width: int = 1400) -> str:
    """The DOM after the page's scripts ran, in headless Chromium, every host name unresolvable (offline)."""
    return subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
         "--disable-background-networking", "--disable-component-update", "--host-resolver-rules=MAP * ~NOTFOUND",
         f"--user-data-dir={tmp_path / 'chromium'}", f"--window-size={width},1000", "--virtual-time-budget=10000",
         "--dump-dom", html_file.as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout


def render(html_file: Path, tmp_path: Path) -> str:
    """The page's text after its JavaScript ran, in headless Chromium."""
    dom = dump_dom(html_file, tmp_path)
    parser = _Text()
    parser.feed(dom)
    return " ".join(" ".join(parser.parts).split())


@pytest.fixture
def ascii_locale() -> Iterator[None]:
    """The process' locale encoding is ASCII, as under LANG=C with Python's UTF-8 mode off (PYTHONUTF8=0): a file
    read or written without an explicit encoding would be ASCII."""
    saved = locale.setlocale(locale.LC_CTYPE)
    locale.setlocale(locale.LC_CTYPE, "C")
    try:
        yield
    finally:
        locale.setlocale(locale.LC_CTYPE, saved)
