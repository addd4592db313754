"""The bad-input and fault matrix: each case, the message a user sees, and the run finishing for the others.

docs/troubleshooting.md is generated from CASES (PYTEST_VLLM_WRITE_DOCS=1 pytest tests/test_faults.py -k doc)
and checked against them, so the document cannot drift from what the suite really prints.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from conftest import NS, PrivateCA, verdicts
from pytest_vllm_metrics.scrape import TooLarge, read_capped
from pytest_vllm_metrics.sim import SimHost, build_app, get_profile
from pytest_vllm_metrics.sim.kubeapi import Cluster, KubeDouble

DOC = Path(__file__).parent.parent / "docs" / "troubleshooting.md"


@dataclass(frozen=True)
class Case:
    id: str
    what: str  # what the user did or what the server does
    message: str  # fnmatch pattern of the line the user sees
    fix: str  # the short version, for the document
    kind: str  # sim | kube | usage
    sim: dict[str, Any] = field(default_factory=dict)  # Profile changes of the faulty simulator
    args: tuple[str, ...] = ()
    kube: dict[str, Any] = field(default_factory=dict)  # token, pod changes
    healthy_passes: bool = True  # False when the case's options hit every server alike
    # "untrusted": the faulty server speaks TLS with a private CA's certificate; "plain": it speaks plain HTTP
    # and is given as https://
    tls: str = ""
    # The faulty server holds every request to a path ending in this until the test ends: a server that never
    # answers, however fast or slow the machine, so that only a bound the case sets can end the wait.
    stall: str = ""

    @property
    def outcome(self) -> str:
        """What the case comes to: failed (the server is wrong), inconclusive (the run could not observe), or
        usage error (the run stops before any check)."""
        return OUTCOMES[self.id]


# Per case, its outcome (the worst of the faulty targets' own verdicts).
OUTCOMES = {
    "metrics-500": "failed",
    "metrics-404": "failed",
    "metrics-html": "failed",
    "metrics-garbage": "failed",
    "metrics-truncated": "failed",
    "metrics-empty": "failed",
    "metrics-huge": "failed",
    "metrics-slowloris": "inconclusive",
    "tls-untrusted": "inconclusive",
    "tls-plain-http": "inconclusive",
    "server-stops": "failed",
    "server-restarts": "inconclusive",
    "completions-429": "inconclusive",
    "completions-500": "failed",
    "completions-huge": "failed",
    "phase-cap": "inconclusive",
    "version-missing": "failed",
    "model-mismatch": "inconclusive",
    "api-key-missing": "inconclusive",
    "api-key-refused": "inconclusive",
    "unreachable-url": "failed",
    "namespace-unknown": "usage error",
    "no-matching-pods": "usage error",
    "pods-not-ready": "inconclusive",
    "forbidden-pods": "usage error",
    "forbidden-proxy": "inconclusive",
    "forbidden-nodes": "failed",
    "api-unreachable": "usage error",
    "kube-context-unknown": "usage error",
    "kube-socks-proxy": "usage error",
    "kubeconfig-missing": "usage error",
    "dashboard-unreadable": "usage error",
    "promql-unparsable": "failed",
    "prometheus-down": "inconclusive",
    "prometheus-not-prometheus": "inconclusive",
    "option-invalid": "usage error",
    "catalog-typo": "usage error",
}


CASES = [
    Case("metrics-500", "/metrics answers HTTP 500", "*GET /metrics answered HTTP 500. vLLM serves Prometheus text*",
         "scrape vLLM's own port and path", "sim", {"fault": "metrics-500"}),
    Case("metrics-404", "/metrics answers HTTP 404 (wrong path or port)", "*GET /metrics answered HTTP 404*check "
         "--vllm-metrics-path and the port*", "fix --vllm-metrics-path or the port", "sim", {"fault": "metrics-404"}),
    Case("metrics-html", "/metrics answers an HTML error page (a proxy, a login page)",
         "*GET /metrics answered an HTML page, not Prometheus text*", "point the target at vLLM's own port", "sim",
         {"fault": "metrics-html"}),
    Case("metrics-garbage", "/metrics answers text that is not Prometheus exposition",
         "*GET /metrics is not Prometheus text format*first bytes*", "check that the URL is vLLM's /metrics", "sim",
         {"fault": "metrics-garbage"}),
    Case("metrics-truncated", "/metrics answers a page cut off mid-line",
         "*GET /metrics is not Prometheus text format (Invalid value*", "check proxies between the suite and vLLM",
         "sim", {"fault": "metrics-truncated"}),
    Case("metrics-empty", "/metrics answers an empty page", "*GET /metrics answered an empty metrics page*",
         "check that the URL is vLLM's /metrics", "sim", {"fault": "metrics-empty"}),
    Case("metrics-huge", "/metrics answers a 20 MB body", "*GET /metrics returned more than 16 MiB*",
         "the URL points at something else than vLLM", "sim", {"fault": "metrics-huge"}),
    Case("metrics-slowloris", "/metrics never finishes its answer (slow loris)",
         "*GET /metrics did not finish within 10 s*kept the answer open*", "check the server; raise --vllm-timeout "
         "if it is only slow", "sim", {"fault": "metrics-slowloris"}, ("--vllm-timeout=10",)),
    Case("tls-untrusted", "an https:// server's certificate comes from a private CA",
         "*TLS with https://127.0.0.1:* failed (*CERTIFICATE_VERIFY_FAILED*)*point SSL_CERT_FILE at that CA's bundle*",
         "SSL_CERT_FILE=the CA bundle", "sim", tls="untrusted"),
    Case("tls-plain-http", "an https:// URL names a server that speaks plain HTTP",
         "*TLS with https://127.0.0.1:* failed*if the server speaks plain HTTP there, use an http:// URL*",
         "use http://", "sim", tls="plain"),
    Case("server-stops", "the server stops answering mid-run", "*closed the connection during GET*server stopped "
         "answering*", "check the server's logs and restarts", "sim", {"stop_answering_after_scrapes": 1}),
    Case("server-restarts", "the server restarts mid-run (counters reset, new _created)",
         "*could not judge movement: the server restarted between the scrapes*", "find why the server restarted, "
         "then rerun", "sim",
         {"restart_after_requests": 6}),
    Case("completions-429", "completions answer 429 Too Many Requests",
         "*every workload request answered HTTP 429: the server is overloaded or rate-limited*",
         "the server is saturated or rate-limited; retry later", "sim", {"fault": "completions-429"}),
    Case("completions-500", "completions answer 500", "*every workload request failed*simulated 500*",
         "check the server's logs", "sim", {"fault": "completions-500"}),
    Case("completions-huge", "completions answer a 5 MB body", "*the answer exceeded 4 MiB for a request of 8 "
         "tokens*", "the URL reaches something else than vLLM", "sim", {"fault": "completions-huge"}),
    Case("phase-cap", "the workload takes longer than --vllm-phase-timeout",
         "*the workload phase reached its cap of 10 s (--vllm-phase-timeout) after * of 8 requests*",
         "raise the cap or send fewer requests", "sim", {}, ("--vllm-phase-timeout=10", "-k",
                                                             "workload_served or reachable"), stall="completions"),
    Case("version-missing", "/version does not answer", "*GET /version answered HTTP 404 without a version*",
         "version-dependent checks assume the newest vLLM", "sim", {"fault": "version-missing"}),
    Case("model-mismatch", "--vllm-model names a model the server does not serve",
         "*does not serve the model 'nope' given with --vllm-model (it serves tiny)*", "pass the served model name, or "
         "leave --vllm-model out", "sim", {}, ("--vllm-model=nope",), healthy_passes=False),
    Case("api-key-missing", "the server requires an API key and none is given",
         "*401 Unauthorized: the server was started with --api-key and no key was given*--vllm-api-key*",
         "pass --vllm-api-key or set VLLM_API_KEY", "sim", {"api_key": "sk-required"}),
    Case("api-key-refused", "the server refuses the API key given", "*401 Unauthorized although an API key was "
         "given*the server refused it*", "pass the key the server was started with", "sim", {"api_key": "sk-required"},
         ("--vllm-api-key=sk-another",)),
    Case("unreachable-url", "nothing listens at a --vllm-url", "*cannot connect to http://127.0.0.1:9*",
         "check the host and port", "usage", args=("--vllm-url=http://127.0.0.1:9", "-k", "reachable")),
    Case("namespace-unknown", "--vllm-namespace does not exist", "*namespace 'missing' does not exist*",
         "check --vllm-namespace", "kube", args=("--vllm-namespace=missing",)),
    Case("no-matching-pods", "no pod matches the selector", "*no pod in namespace*matches app=vllm; its 3 pod(s) "
         "carry:*", "pass the labels the pods have to --vllm-selector", "kube", args=("--vllm-selector=app=vllm",)),
    Case("pods-not-ready", "the pods exist but are not Ready", "*pod is not Ready (phase Pending, reason "
         "Unschedulable)*", "kubectl describe pod says why", "kube", kube={"not_ready": True}),
    Case("forbidden-pods", "403 listing pods", "*refused list pods in namespace*403 Forbidden*", "grant list on "
         "pods (deploy/rbac.yaml)", "kube", kube={"grants": set()}),
    Case("forbidden-proxy", "403 on pods/proxy", "*through the API server's pod proxy was refused (403 Forbidden)*",
         "grant get and create on pods/proxy", "kube", kube={"grants": {("list", "pods")}}),
    Case("forbidden-nodes", "403 reading nodes", "*architecture is unknown*grant the suite get on nodes*",
         "grant get on nodes (deploy/clusterrole-nodes.yaml)", "kube",
         kube={"grants": {("list", "pods"), ("get", "pods/proxy"), ("create", "pods/proxy")}}),
    Case("api-unreachable", "the API server cannot be reached", "*cannot reach the API server http://127.0.0.1:9*",
         "check the network path and the context", "kube", kube={"server": "http://127.0.0.1:9"}),
    Case("kube-context-unknown", "--kube-context is not in the kubeconfig", "*context 'prod' is not in kubeconfig*",
         "pick a context the kubeconfig has", "kube", args=("--kube-context=prod",)),
    Case("kube-socks-proxy", "the kubeconfig's proxy-url is a SOCKS proxy, and its client packages are missing",
         "ERROR: the API server is reached through a SOCKS proxy*needs PySocks*and socksio*",
         "install them, or use an HTTP proxy", "kube", kube={"cluster": {"proxy-url": "socks5://127.0.0.1:9"}}),
    Case("kubeconfig-missing", "the kubeconfig file does not exist", "*kubeconfig */missing does not exist*",
         "pass --kubeconfig or set KUBECONFIG", "usage", args=("--kubeconfig=/nonexistent/missing",
                                                                 "--vllm-namespace=x")),
    Case("dashboard-unreadable", "a --grafana-dashboard file is not JSON", "*dashboard bad.json is not valid JSON*",
         "export the dashboard again from Grafana", "usage", args=("--grafana-dashboard=bad.json",
                                                                   "--vllm-sim=x86_64")),
    Case("promql-unparsable", "a panel's query is not valid PromQL", "*its query does not parse as PromQL*",
         "fix the panel's expression", "usage", args=("--grafana-dashboard=broken-query.json", "--vllm-sim=x86_64",
                                                      "-k", "test_panel")),
    Case("prometheus-down", "--prometheus-url does not answer", "*Prometheus at http://127.0.0.1:9 cannot be "
         "reached*", "check --prometheus-url", "usage", args=("--prometheus-url=http://127.0.0.1:9",
                                                             "--vllm-sim=x86_64", "-k", "prometheus")),
    Case("prometheus-not-prometheus", "--prometheus-url answers, but is not Prometheus' API",
         "*Prometheus at * answered /api/v1/* with HTTP 404 and no JSON*", "point it at the Prometheus server",
         "sim", {}, ("--prometheus-url={healthy}", "-k", "prometheus"), healthy_passes=False),
    Case("option-invalid", "an option has an invalid value", "*--vllm-requests: 500 is out of range*",
         "pass a value in the range", "usage", args=("--vllm-requests=500", "--vllm-sim=x86_64")),
    Case("catalog-typo", "a --vllm-catalog file has a typo", "*has unknown field(s) levle; valid fields are*",
         "fix the field name", "usage", args=("--vllm-catalog=typo.toml", "--vllm-sim=x86_64")),
]


def _files(pytester: pytest.Pytester) -> None:
    pytester.makefile(".json", bad="{not json")
    pytester.makefile(".json", **{"broken-query": '{"title": "B", "panels": [{"title": "P", "targets": '
                                                  '[{"expr": "sum(rate(x[5m]"}]}]}'})
    pytester.makefile(".toml", typo='[[metric]]\nname = "vllm:x"\ntype = "gauge"\nlevle = "MUST"\n'
                                    'feature = "core"\nversions = ">=0.9"\n')


@pytest.fixture
def released(sim_host: SimHost) -> Iterator[threading.Event]:
    """Set when the test ends, before its servers stop: what a stalled server waits for."""
    event = threading.Event()
    yield event
    event.set()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_fault(case: Case, pytester: pytest.Pytester, sim_host: SimHost, cluster: Cluster, double: KubeDouble,
               private_ca: PrivateCA, tmp_path: Path, released: threading.Event) -> None:
    _files(pytester)
    # The healthy server answers quickly, yet not always within 2 s on a loaded machine: it is given 30 s per
    # request. A case whose fault is slowness sets its own, shorter bound, which its faulty server exceeds whatever
    # the machine's speed (it never finishes, or never answers).
    common = ["-rA", "-p", "no:cacheprovider", "--vllm-timeout=30"]
    healthy = None
    if case.kind == "sim":
        faulty = _faulty_url(case, sim_host, private_ca, released)
        healthy = sim_host.start(get_profile("x86_64"))
        args = [a.format(healthy=healthy.url) for a in case.args]
        result = pytester.runpytest(*common, f"--vllm-url={faulty}", f"--vllm-url={healthy.url}",
                                    "--vllm-report=report.json", *args)
    elif case.kind == "kube":
        server = case.kube.get("server", double.url)
        if "grants" in case.kube:
            cluster.tokens["case"] = frozenset(case.kube["grants"])
        if case.kube.get("not_ready"):
            pod = cluster.namespaces[NS][1]
            pod.ready, pod.phase, pod.reason = False, "Pending", "Unschedulable"
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(json.dumps(KubeDouble.kubeconfig(server, "case" if "grants" in case.kube else "admin",
                                                               namespace=NS, cluster_fields=case.kube.get("cluster"))))
        result = pytester.runpytest(*common, f"--kubeconfig={kubeconfig}", f"--vllm-namespace={NS}",
                                    "--vllm-report=report.json", *case.args)
    else:
        result = pytester.runpytest(*common, "--vllm-report=report.json", *case.args)
    output = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in output, output
    # the terminal wraps long reasons: match the text with its wrapping undone
    shown = result.stderr.str() if result.ret == pytest.ExitCode.USAGE_ERROR else result.stdout.str()
    assert fnmatch.fnmatch(" ".join(shown.split()), case.message), f"{case.message!r} not in:\n{shown}"
    assert _outcome(pytester, result, healthy.url.removeprefix("http://") if healthy else None) == case.outcome
    if case.kind == "sim" and case.outcome == "failed":
        # a broken server fails one check, the one that reports its fault; the others could not judge it
        faulty_name = next(name for (_, name) in verdicts(pytester) if name != healthy.url.removeprefix("http://"))
        failed = [test for (test, name), outcome in verdicts(pytester).items()
                  if name == faulty_name and outcome == "failed"]
        assert len(failed) == 1, failed
    if healthy is not None and case.healthy_passes:
        # the run finished for the healthy server, which passed every check it shares with the faulty one
        name = healthy.url.removeprefix("http://")
        per_target = verdicts(pytester)
        assert per_target["test_reachable", name] == "passed"
        assert not [test for (test, target), outcome in per_target.items() if target == name and outcome == "failed"]


_WORST_FIRST = ("failed", "error", "inconclusive", "xfailed", "passed", "skipped")


def _outcome(pytester: pytest.Pytester, result: pytest.RunResult, healthy: str | None) -> str:
    """The worst verdict of the targets other than the healthy one (or "usage error")."""
    if result.ret == pytest.ExitCode.USAGE_ERROR:
        return "usage error"
    rows = json.loads((pytester.path / "report.json").read_text())["tests"]
    seen = {t["outcome"] for row in rows for name, t in row["targets"].items() if name != healthy}
    seen |= {row["outcome"] for row in rows if not row["targets"]}
    return next(outcome for outcome in _WORST_FIRST if outcome in seen)


def _faulty_url(case: Case, sim_host: SimHost, private_ca: PrivateCA, released: threading.Event) -> str:
    profile = get_profile("x86_64").replace(**case.sim)
    if case.tls == "untrusted":
        return sim_host.start_app(build_app(profile), ssl_context=private_ca.server_context("IP:127.0.0.1"))
    if case.stall:
        app = build_app(profile)

        @web.middleware
        async def stalled(request: web.Request, handler: Callable[..., Any]) -> web.StreamResponse:
            if request.path.endswith(case.stall):  # bounded: the test releases it when it ends
                await asyncio.get_running_loop().run_in_executor(None, released.wait, 120.0)
            return await handler(request)  # type: ignore[no-any-return]

        app.middlewares.append(stalled)
        return sim_host.start_app(app)
    url = sim_host.start(profile).url
    return url.replace("http://", "https://") if case.tls == "plain" else url


def test_private_ca_through_ssl_cert_file(pytester: pytest.Pytester, sim_host: SimHost, private_ca: PrivateCA,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # the fix that the tls-untrusted case gives
    url = sim_host.start_app(build_app(get_profile("x86_64")), ssl_context=private_ca.server_context("IP:127.0.0.1"))
    monkeypatch.setenv("SSL_CERT_FILE", str(private_ca.ca))
    result = pytester.runpytest("-p", "no:cacheprovider", f"--vllm-url={url}", "--vllm-report=report.json",
                                "-k", "reachable or workload_served or prompt_tokens_total")
    assert result.parseoutcomes().get("failed", 0) == 0, result.stdout.str()
    assert set(verdicts(pytester).values()) == {"passed"}


def render_doc() -> str:
    lines = [
        "# Troubleshooting",
        "",
        "Every case below is a test in `tests/test_faults.py`; this page is generated from that list",
        "(`PYTEST_VLLM_WRITE_DOCS=1 pytest tests/test_faults.py -k doc`) and a test fails when they differ.",
        "The message column is the pattern of what the suite prints (`*` stands for details such as the",
        "target's name). The outcome is the case's verdict on the faulty server alone: `failed` when it answers",
        "wrongly or not at all (exit code 1 for a MUST check; one check fails, the one that reports the fault, such",
        "as `test_reachable`, and the others say they could not judge the server and point at it), `inconclusive`",
        "when the run could not observe it (exit code 75),",
        "`usage error` when the run stops before any check (exit code 4, one `ERROR:` line): options, kubeconfig,",
        "discovery, dashboards, catalog. A broken server never changes the verdicts of the others.",
        "",
        "| case | situation | what you see | outcome | what to do |",
        "|---|---|---|---|---|",
    ]
    for case in CASES:
        message = case.message.strip("*").replace("|", "\\|")
        lines.append(f"| `{case.id}` | {case.what} | `{message}` | {case.outcome} | {case.fix} |")
    return "\n".join(lines) + "\n"


def test_troubleshooting_doc_matches_the_cases() -> None:
    expected = render_doc()
    if os.environ.get("PYTEST_VLLM_WRITE_DOCS"):
        DOC.write_text(expected)
    assert DOC.read_text() == expected, "docs/troubleshooting.md is stale: regenerate it (see the module docstring)"
    assert len(CASES) >= 20


# -- the body cap: decided by bytes, never by how fast they come ---------------------------------------------


async def _read(url: str, limit: int) -> bytes:
    async with httpx.AsyncClient() as client, client.stream("GET", url + "/metrics") as response:
        return await read_capped(response, limit)


def test_a_declared_length_over_the_cap_is_refused_before_reading(sim_host: SimHost) -> None:
    # metrics-huge declares 20 MiB: refused at once, so a loaded machine cannot turn it into a timeout
    url = sim_host.start(get_profile("x86_64").replace(fault="metrics-huge")).url
    with pytest.raises(TooLarge):
        asyncio.run(asyncio.wait_for(_read(url, 16 * 2**20), 5))


def test_a_body_of_undeclared_length_is_cut_at_the_cap(sim_host: SimHost) -> None:
    # the slow-loris page streams a byte at a time without Content-Length: the cap counts what arrived
    url = sim_host.start(get_profile("x86_64").replace(fault="metrics-slowloris")).url
    with pytest.raises(TooLarge):
        asyncio.run(asyncio.wait_for(_read(url, 3), 5))


@pytest.mark.parametrize("declared", [True, False], ids=["declared", "chunked"])
def test_a_body_at_the_cap_is_read_whole_and_one_byte_more_is_refused(sim_host: SimHost, declared: bool) -> None:
    body = b"# x\n" * 250  # 1000 bytes

    async def page(request: web.Request) -> web.StreamResponse:
        if declared:
            return web.Response(body=body)
        response = web.StreamResponse()  # no Content-Length: chunked
        await response.prepare(request)
        for start in range(0, len(body), 100):
            await response.write(body[start:start + 100])
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/metrics", page)
    url = sim_host.start_app(app)
    assert asyncio.run(_read(url, 1000)) == body  # exactly at the cap: read
    with pytest.raises(TooLarge):
        asyncio.run(_read(url, 999))  # one byte over: refused
