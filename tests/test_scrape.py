"""Scraping /metrics (scrape.py) over HTTP: a server (or a proxy) that answers OpenMetrics 1.0 whatever the suite
asks for gives the same Snapshot, and the same verdicts, as one that answers Prometheus text 0.0.4; a page that
cannot be read is one clear error."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import certifi
import httpx
import pytest
from aiohttp import web

from conftest import NS, PrivateCA, closed_url, comparable, verdicts, write_kubeconfig
from pytest_vllm_metrics.engines import Engine
from pytest_vllm_metrics.kube import discover
from pytest_vllm_metrics.scrape import (
    ACCEPT,
    Clients,
    FetchError,
    TooLarge,
    describe_http_error,
    read_capped,
    scrape,
)
from pytest_vllm_metrics.sim import SimHost, build_app, get_profile
from pytest_vllm_metrics.sim._openmetrics import CONTENT_TYPE, to_openmetrics
from pytest_vllm_metrics.sim.kubeapi import Cluster, KubeDouble
from pytest_vllm_metrics.snapshot import TEXT_FORMAT, ExpositionError, Snapshot
from pytest_vllm_metrics.targets import Target, TargetSource, url_targets

# -- over HTTP: the simulator and scrape() ------------------------------------------------------------


def _fetch(target: Target, timeout: float = 30.0, path: str = "/metrics") -> Snapshot:
    """The target's page, scraped as a run scrapes it: with the run's clients (the target's own options)."""
    async def run() -> Snapshot:
        async with Clients() as clients:
            return await scrape(clients.get(target), target, path, timeout)

    return asyncio.run(run())


def _failure(target: Target, timeout: float = 30.0, path: str = "/metrics") -> FetchError:
    with pytest.raises(FetchError) as excinfo:
        _fetch(target, timeout, path)
    return excinfo.value


def _scrape(url: str) -> Snapshot:
    return _fetch(Target("sim", url))


def test_simulator_answers_openmetrics_whatever_the_accept_header(sim_host: SimHost) -> None:
    sim = sim_host.start(get_profile("x86_64").replace(exposition="openmetrics"))
    answer = httpx.get(sim.url + "/metrics", headers={"Accept": ACCEPT})
    assert answer.headers["content-type"] == CONTENT_TYPE == (
        "application/openmetrics-text; version=1.0.0; charset=utf-8")
    assert answer.text.endswith("\n# EOF\n")
    assert "# TYPE vllm:prompt_tokens counter\n" in answer.text and "vllm_" not in answer.text
    snapshot = _scrape(sim.url)
    assert snapshot.format == "openmetrics/1.0.0"
    assert snapshot.families["vllm:prompt_tokens_total"].type == "counter"
    assert snapshot.created["vllm:prompt_tokens"]


def test_simulator_pages_give_the_same_snapshot_in_both_formats(sim_host: SimHost) -> None:
    sim = sim_host.start(get_profile("x86_64"))
    httpx.post(sim.url + "/v1/completions", json={"model": "tiny", "prompt": "a b c", "max_tokens": 3})
    text = httpx.get(sim.url + "/metrics").text
    assert comparable(Snapshot.parse_openmetrics(to_openmetrics(text))) == comparable(Snapshot.parse(text))
    assert _scrape(sim.url).format == TEXT_FORMAT


def test_a_broken_openmetrics_page_names_openmetrics_as_its_format(sim_host: SimHost) -> None:
    sim = sim_host.start(get_profile("x86_64").replace(exposition="openmetrics", fault="metrics-truncated"))
    body = httpx.get(sim.url + "/metrics").text
    with pytest.raises(ExpositionError) as parsed:
        Snapshot.parse_openmetrics(body)
    error = _failure(Target("sim", sim.url))
    assert str(error) == (f"sim: GET /metrics is not OpenMetrics text format, as its Content-Type says "
                          f"({parsed.value}); first bytes: {body[:80]!r}. Check that the URL is vLLM's /metrics.")
    # the server answered, with a broken page: a finding
    assert (error.cause, error.inconclusive) == ("GET /metrics is not OpenMetrics text format", False)


@pytest.mark.parametrize("exposition", ["text", "openmetrics"])
def test_an_empty_page_is_a_finding(sim_host: SimHost, exposition: str) -> None:
    sim = sim_host.start(get_profile("x86_64").replace(exposition=exposition, fault="metrics-empty"))
    error = _failure(Target("sim", sim.url))
    assert str(error) == ("sim: GET /metrics answered an empty metrics page. vLLM always exposes process and vllm: "
                          "families; check that the URL is vLLM's /metrics.")
    assert (error.cause, error.inconclusive) == ("GET /metrics answered an empty metrics page", False)


def test_unknown_exposition_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown exposition 'protobuf'"):
        build_app(get_profile("x86_64").replace(exposition="protobuf"))


def test_bundled_suite_gives_the_same_verdicts_against_openmetrics(pytester: pytest.Pytester,
                                                                    sim_host: SimHost) -> None:
    """As a user runs it: the whole bundled suite, once against a text server, once against an OpenMetrics one."""
    outcomes = {}
    for exposition in ("text", "openmetrics"):
        sim = sim_host.start(get_profile("x86_64").replace(exposition=exposition))
        result = pytester.runpytest("-p", "no:cacheprovider", f"--vllm-url={sim.url}", "--vllm-report=report.json")
        assert result.parseoutcomes().get("failed", 0) == 0, result.stdout.str()
        assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
        # the target is named by its URL: compare per test
        outcomes[exposition] = {test: outcome for (test, _), outcome in verdicts(pytester).items()}
        # the evidence says which format the server answered in
        report = json.loads((pytester.path / "report.json").read_text())
        assert [i["exposition"] for i in report["implementations"]] == [
            "openmetrics/1.0.0" if exposition == "openmetrics" else TEXT_FORMAT]
    assert outcomes["openmetrics"] == outcomes["text"]
    assert len(outcomes["text"]) > 50 and "passed" in outcomes["text"].values()


@pytest.mark.parametrize(("engine", "said"), [
    (Engine.SGLANG, "sglang serves its metrics at /metrics on its API port, and only when started with "
                    "--enable-metrics; check the pod's llm-d.ai/engine-type label (or --vllm-engine) and the port."),
    (Engine.TRTLLM_SERVE, "trtllm-serve serves its metrics at /prometheus/metrics on its API port; check the pod's "
                          "llm-d.ai/engine-type label (or --vllm-engine) and the port."),
])
def test_a_missing_page_of_another_engine_says_where_that_engine_serves_it(
        sim_host: SimHost, engine: Engine, said: str) -> None:
    # a server answering 404 at the engine's path: SGLang started without --enable-metrics, or a pod whose engine
    # label names another engine (the vLLM simulator has no /prometheus/metrics, and answers /metrics 404 here)
    sim = sim_host.start(get_profile("x86_64").replace(fault="metrics-404"))
    target, = url_targets((sim.url,), "amd64", engine)

    async def run() -> Snapshot:
        async with httpx.AsyncClient() as client:
            return await scrape(client, target, "/metrics", 30.0)

    with pytest.raises(FetchError) as excinfo:
        asyncio.run(run())
    assert str(excinfo.value).endswith(said)
    assert f"GET {target.metrics_path} answered HTTP 404" in str(excinfo.value)


def test_triton_answering_404_names_its_own_metrics_port(sim_host: SimHost) -> None:
    # Triton serves its page on a port of its own: the message says which
    sim = sim_host.start(get_profile("x86_64").replace(fault="metrics-404"))
    target = Target("triton-0", sim.url, engine=Engine.TRITON_TENSORRT_LLM, metrics_path="/metrics")
    error = _failure(target)
    assert str(error) == (
        "triton-0: GET /metrics answered HTTP 404. triton-tensorrt-llm serves its metrics at /metrics on port 8002; "
        "check the pod's llm-d.ai/engine-type label (or --vllm-engine) and the port.")
    assert (error.cause, error.inconclusive) == ("GET /metrics answered HTTP 404", False)


# -- what the server answered: statuses, pages that are not metrics ---------------------------------------------

PAGE = ("# HELP vllm:num_requests_running Number of requests in model execution batches.\n"
        "# TYPE vllm:num_requests_running gauge\n"
        'vllm:num_requests_running{engine="0",model_name="m"} 0.0\n')
TEXT = "text/plain; version=0.0.4; charset=utf-8"


@dataclass
class Fixed:
    """A server that answers every GET, at any path, with one status, Content-Type and body; it keeps what each
    request asked for (its path and headers) and the client's port it came from."""

    status: int = 200
    content_type: str | None = TEXT  # None: no Content-Type at all
    body: bytes = PAGE.encode()
    seen: list[tuple[str, dict[str, str], int]] = field(default_factory=list)

    def app(self) -> web.Application:
        async def answer(request: web.Request) -> web.Response:
            peer = request.transport.get_extra_info("peername") if request.transport else None
            self.seen.append((request.path, dict(request.headers), peer[1] if peer else 0))
            return web.Response(status=self.status, body=self.body, headers={"Content-Type": self.content_type or ""})

        async def untyped(request: web.Request, response: web.StreamResponse) -> None:
            if self.content_type is None:
                del response.headers["Content-Type"]

        app = web.Application()
        app.router.add_get("/{path:.*}", answer)
        app.on_response_prepare.append(untyped)
        return app


def _serving(sim_host: SimHost, status: int = 200, body: bytes = PAGE.encode(), content_type: str | None = TEXT
             ) -> tuple[str, Fixed]:
    server = Fixed(status, content_type, body)
    return sim_host.start_app(server.app()), server


@pytest.mark.parametrize("status", [401, 403])
def test_credentials_asked_for_in_front_of_vllm_leave_the_page_unobserved(sim_host: SimHost, status: int) -> None:
    url, _ = _serving(sim_host, status, b"Unauthorized")
    error = _failure(Target("t", url))
    message = (f"t: GET /metrics was refused (HTTP {status}): something in front of vLLM asks for credentials (vLLM "
               f"itself guards only /v1). Scrape vLLM's own port, or the pod directly.")
    assert (str(error), error.cause, error.inconclusive, error.unanswered) == (message, message, True, False)


@pytest.mark.parametrize("status", [429, 503])
def test_an_overloaded_server_leaves_the_page_unobserved(sim_host: SimHost, status: int) -> None:
    url, _ = _serving(sim_host, status, b"busy")
    error = _failure(Target("t", url))
    assert str(error) == (f"t: GET /metrics answered HTTP {status}: the server is overloaded or not ready yet, so its "
                          f"metrics could not be observed. Rerun when it serves again.")
    assert error.inconclusive and not error.unanswered


VLLM_PORT = ("vLLM serves Prometheus text at /metrics on its API port (llm-d decode pods: 8200, not the routing "
             "sidecar's 8000); check --vllm-metrics-path and the port.")


@pytest.mark.parametrize(("base_path", "status", "hint"), [
    ("", 404, ""),
    ("/", 404, ""),
    ("/", 500, ""),
    ("/vllm", 500, ""),
    ("/vllm", 404, " The target URL has a path of its own (/vllm), which comes before every path the suite requests; "
                   "vLLM serves /metrics and /v1 at its root: pass {root}."),
])
def test_another_status_is_a_finding_and_a_404_under_a_path_names_that_path(
        sim_host: SimHost, base_path: str, status: int, hint: str) -> None:
    url, server = _serving(sim_host, status, b"Not Found")
    error = _failure(Target("t", url + base_path))
    shown = "/vllm/metrics" if base_path == "/vllm" else "/metrics"
    assert [path for path, _, _ in server.seen] == [shown]  # what went on the wire is what the message names
    assert str(error) == f"t: GET {shown} answered HTTP {status}. {VLLM_PORT}{hint.format(root=url)}"
    assert (error.cause, error.inconclusive, error.unanswered) == (f"GET {shown} answered HTTP {status}", False, False)


def test_the_path_hint_names_the_root_without_the_urls_credentials(sim_host: SimHost) -> None:
    url, _ = _serving(sim_host, 404, b"Not Found")
    error = _failure(Target("t", url.replace("http://", "http://user:s3cret@") + "/vllm/"))
    assert str(error).endswith(f"vLLM serves /metrics and /v1 at its root: pass {url.replace('http://', 'http://***@')}.")
    assert "s3cret" not in str(error)


@pytest.mark.parametrize(("content_type", "body"), [
    ("text/html; charset=utf-8", b"<p>Sign in</p>"),
    (TEXT, b"  \n<!DOCTYPE html><html><body>502 Bad Gateway</body></html>"),  # a proxy's error page, as text
    (TEXT, b"<HTML><BODY>Sign in</BODY></HTML>"),
])
def test_an_html_page_is_a_proxy_or_a_login_page(sim_host: SimHost, content_type: str, body: bytes) -> None:
    url, _ = _serving(sim_host, 200, body, content_type)
    error = _failure(Target("t", url))
    assert str(error) == ("t: GET /metrics answered an HTML page, not Prometheus text. The URL reaches a proxy, a "
                          "login page or a web UI rather than vLLM; point the target at vLLM's own port.")
    assert (error.cause, error.inconclusive) == ("GET /metrics answered an HTML page, not Prometheus text", False)


@pytest.mark.parametrize(("content_type", "openmetrics", "shown_format"), [
    (TEXT, False, TEXT_FORMAT),
    ("text/plain", False, TEXT_FORMAT),
    (None, False, TEXT_FORMAT),
    (CONTENT_TYPE, True, "openmetrics/1.0.0"),
    ('Application/OpenMetrics-Text ; charset=utf-8; Version = "0.0.1"', True, "openmetrics/0.0.1"),
    ("application/openmetrics-text; charset=utf-8", True, "openmetrics/1.0.0"),
    ("application/openmetrics-text", True, "openmetrics/1.0.0"),
])
def test_the_page_is_read_in_the_format_its_content_type_names(
        sim_host: SimHost, content_type: str | None, openmetrics: bool, shown_format: str) -> None:
    url, server = _serving(sim_host, 200, (to_openmetrics(PAGE) if openmetrics else PAGE).encode(), content_type)
    snapshot = _fetch(Target("t", url))
    assert snapshot.format == shown_format
    assert snapshot.families["vllm:num_requests_running"].type == "gauge"
    assert server.seen[0][1]["Accept"] == ACCEPT  # asked for text 0.0.4, whatever came back


def test_a_page_says_when_it_was_taken_and_how_many_bytes_it_was(sim_host: SimHost) -> None:
    # read as Latin-1, as its Content-Type says
    body = PAGE.replace("Number", "Nombre d'\xe9l\xe9ments").encode("latin-1")
    url, _ = _serving(sim_host, 200, body, "text/plain; version=0.0.4; charset=iso-8859-1")
    before = time.time()
    snapshot = _fetch(Target("t", url))
    assert before <= (snapshot.taken_at or 0) <= time.time()
    assert snapshot.families["vllm:num_requests_running"].help.startswith("Nombre d'\xe9l\xe9ments of requests")
    assert snapshot.size == len(body) + 2  # each é is two bytes in UTF-8, as the suite measures the page


def test_bytes_that_are_not_utf8_are_replaced(sim_host: SimHost) -> None:
    body = PAGE.replace("Number", "Number\xff").encode("latin-1")
    url, _ = _serving(sim_host, 200, body)
    snapshot = _fetch(Target("t", url))
    assert snapshot.families["vllm:num_requests_running"].help.startswith("Number\ufffd of requests")
    assert snapshot.size == len(body) + 2  # the replacement character is three bytes


def test_an_engine_that_serves_its_page_apart_is_scraped_there(sim_host: SimHost) -> None:
    url, server = _serving(sim_host)
    # nothing listens at the API URL: the page is on the engine's own port and path
    target = Target("triton-0", closed_url(), engine=Engine.TRITON_TENSORRT_LLM,
                    metrics_path="/prometheus/metrics", metrics_base_url=url)
    assert _fetch(target, path="/metrics").families
    assert [path for path, _, _ in server.seen] == ["/prometheus/metrics"]


def test_a_page_that_is_not_prometheus_text_quotes_its_first_bytes(sim_host: SimHost) -> None:
    body = '{"detail": "this is a JSON answer of some other service, not a metrics page at all"}\n' * 3
    url, _ = _serving(sim_host, 200, body.encode())
    with pytest.raises(ExpositionError) as parsed:
        Snapshot.parse(body)
    error = _failure(Target("t", url))
    assert str(error) == (f"t: GET /metrics is not Prometheus text format ({parsed.value}); first bytes: "
                          f"{body[:80]!r}. Check that the URL is vLLM's /metrics.")
    assert (error.cause, error.inconclusive) == ("GET /metrics is not Prometheus text format", False)


def test_a_page_far_larger_than_any_metrics_page_is_not_read(sim_host: SimHost) -> None:
    sim = sim_host.start(get_profile("x86_64").replace(fault="metrics-huge"))
    error = _failure(Target("sim", sim.url))
    assert str(error) == ("sim: GET /metrics returned more than 16 MiB, far more than a vLLM metrics page (about 50 "
                          "KB); the URL probably points at something else. Check the target URL and "
                          "--vllm-metrics-path.")
    assert (error.cause, error.inconclusive) == ("GET /metrics returned more than 16 MiB", False)


# -- reading a body up to a cap ---------------------------------------------------------------------------------


def _body_app(size: int, declared: bool) -> web.Application:
    """`size` bytes, with their Content-Length, or chunked in pieces of 4 bytes (each read apart)."""
    body = bytes(range(65, 65 + size))

    async def answer(request: web.Request) -> web.StreamResponse:
        if declared:
            return web.Response(body=body)
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for start in range(0, size, 4):
            await response.write(body[start:start + 4])
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/", answer)
    return app


@pytest.mark.parametrize("declared", [True, False])
@pytest.mark.parametrize(("size", "fits"), [(10, True), (11, False)])
def test_a_body_is_read_up_to_its_cap_and_no_further(sim_host: SimHost, declared: bool, size: int, fits: bool) -> None:
    url = sim_host.start_app(_body_app(size, declared))

    async def read() -> bytes:
        async with httpx.AsyncClient() as client, client.stream("GET", url + "/") as response:
            return await read_capped(response, 10)

    if fits:
        assert asyncio.run(read()) == b"ABCDEFGHIJ"
    else:
        with pytest.raises(TooLarge):
            asyncio.run(read())


def test_a_body_declared_longer_than_its_cap_is_refused_before_it_is_read(sim_host: SimHost) -> None:
    async def trickle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_length = 1000  # declared; then a byte every 0.5 s: 5 s to pass a cap of 10 bytes
        await response.prepare(request)
        try:
            while True:
                await response.write(b"#")
                await asyncio.sleep(0.5)
        except ConnectionResetError:
            pass  # the client hung up
        return response

    app = web.Application()
    app.router.add_get("/", trickle)
    url = sim_host.start_app(app)

    async def read() -> bytes:
        async with httpx.AsyncClient() as client, client.stream("GET", url + "/") as response, asyncio.timeout(2):
            return await read_capped(response, 10)

    with pytest.raises(TooLarge):
        asyncio.run(read())


# -- requests that fail: no connection, TLS, a server that hangs up or never finishes ---------------------------


def test_nothing_listening_is_unanswered(sim_host: SimHost) -> None:
    url = closed_url()
    error = _failure(Target("t", url))
    assert str(error) == (f"t: cannot connect to {url} (All connection attempts failed). Check that the server is "
                          f"running and that the host and port are right.")
    assert (error.cause, error.inconclusive, error.unanswered) == (
        f"cannot connect to {url} (All connection attempts failed)", True, True)


def test_a_server_that_closes_the_connection_is_unanswered(sim_host: SimHost) -> None:
    sim = sim_host.start(get_profile("x86_64").replace(stop_answering_after_scrapes=0))
    error = _failure(Target("sim", sim.url))
    assert str(error) == (f"sim: {sim.url} closed the connection during GET /metrics (Server disconnected without "
                          f"sending a response.). The server stopped answering (crashed or restarting?); check its "
                          f"logs and its pod's restarts.")
    assert (error.cause, error.inconclusive, error.unanswered) == (
        f"{sim.url} closed the connection during GET /metrics", True, True)


def test_a_reset_connection_is_named_by_its_kind_when_it_says_nothing(sim_host: SimHost) -> None:
    async def reset(request: web.Request) -> web.Response:
        sock = request.transport.get_extra_info("socket") if request.transport else None
        assert sock is not None and request.transport is not None
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST on close
        request.transport.abort()
        return web.Response(status=499)  # never sent

    app = web.Application()
    app.router.add_get("/metrics", reset)
    url = sim_host.start_app(app)
    error = _failure(Target("t", url))
    assert str(error).startswith(f"t: {url} closed the connection during GET /metrics (ReadError). The server stopped")
    assert error.unanswered


def test_a_url_of_another_scheme_names_the_error(sim_host: SimHost) -> None:
    error = _failure(Target("t", "ftp://127.0.0.1:21"))
    assert str(error) == ("t: GET /metrics failed: Request URL has an unsupported protocol 'ftp://'.. Check the target "
                          "URL.")
    assert (error.cause, error.inconclusive, error.unanswered) == ("GET /metrics failed (UnsupportedProtocol)", True,
                                                                   False)


def test_a_credential_that_cannot_be_sent_is_not_quoted(sim_host: SimHost) -> None:
    sim = sim_host.start(get_profile("x86_64"))
    error = _failure(Target("t", sim.url, client_options={"headers": {"Authorization": "Bearer s3cret\nX: y"}}))
    assert str(error) == "t: GET /metrics could not be sent (an invalid header value); check the credentials."
    assert (error.cause, error.unanswered) == ("GET /metrics failed (LocalProtocolError)", False)


def test_a_page_that_never_finishes_is_cut_at_the_timeout(sim_host: SimHost) -> None:
    sim = sim_host.start(get_profile("x86_64").replace(fault="metrics-slowloris"))
    error = _failure(Target("sim", sim.url), timeout=0.5)
    message = ("sim: GET /metrics did not finish within 0.5 s: the server kept the answer open without completing it "
               "(a hung or overloaded server, or a proxy that buffers). Check the target, or raise --vllm-timeout if "
               "it is only slow.")
    assert (str(error), error.cause, error.inconclusive, error.unanswered) == (message, message, True, False)


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A server that accepts connections and never answers (the kernel's backlog accepts them)."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_a_request_that_timed_out_says_so_with_the_timeout(silent_server: str) -> None:
    async def request() -> httpx.HTTPError:
        async with httpx.AsyncClient(timeout=0.2) as client:
            with pytest.raises(httpx.ReadTimeout) as excinfo:
                await client.get(silent_server + "/v1/models")
            return excinfo.value

    exc = asyncio.run(request())
    assert describe_http_error(Target("t", silent_server), "GET /v1/models", exc, 0.2) == (
        "t: GET /v1/models did not complete within 0.2 s. The server is overloaded, hung, or the address answers "
        "but is not vLLM; check the target, or raise --vllm-timeout if it is only slow.")


@pytest.fixture
def tls_sim(sim_host: SimHost, private_ca: PrivateCA) -> str:
    """A simulated vLLM behind TLS, its certificate from the tests' private CA."""
    return sim_host.start_app(build_app(get_profile("x86_64")), ssl_context=private_ca.server_context("IP:127.0.0.1"))


UNTRUSTED = r"\(\[SSL: CERTIFICATE_VERIFY_FAILED\] certificate verify failed: unable to get local issuer certificate " \
            r"\(_ssl\.c:\d+\)\)"


def test_a_certificate_of_a_private_ca_names_ssl_cert_file(tls_sim: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    error = _failure(Target("t", tls_sim))
    assert re.fullmatch(
        rf"t: TLS with {tls_sim} failed {UNTRUSTED}\. If the server's certificate comes from a private CA, point "
        rf"SSL_CERT_FILE at that CA's bundle \(and use a host name that is on the certificate\); if the server speaks "
        rf"plain HTTP there, use an http:// URL\.", str(error)), str(error)
    # someone answered, through TLS: not an absent server
    assert (error.cause, error.inconclusive, error.unanswered) == ("GET /metrics failed (ConnectError)", True, False)


def test_tls_with_the_api_server_names_the_kubeconfig(tls_sim: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    target = Target("decode-0", f"{tls_sim}/api/v1/namespaces/{NS}/pods/decode-0:8200/proxy",
                    source=TargetSource.KUBERNETES, detail={"namespace": NS, "transport": "proxy"})
    error = _failure(target)
    assert re.fullmatch(rf"decode-0: TLS with the API server failed for {target.base_url} {UNTRUSTED}\. Check the "
                        rf"kubeconfig's certificate-authority and tls-server-name\.", str(error)), str(error)


@pytest.mark.parametrize("variable", ["SSL_CERT_FILE", "SSL_CERT_DIR"])
def test_the_ca_bundle_of_the_environment_is_trusted(tls_sim: str, private_ca: PrivateCA, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    assert _failure(Target("t", tls_sim)).cause == "GET /metrics failed (ConnectError)"
    if variable == "SSL_CERT_FILE":
        monkeypatch.setenv(variable, str(private_ca.ca))
    else:  # a directory of certificates by their hash, as openssl rehash makes it
        (tmp_path / "ca.pem").write_bytes(private_ca.ca.read_bytes())
        subprocess.run(["openssl", "rehash", str(tmp_path)], check=True, capture_output=True)
        monkeypatch.setenv(variable, str(tmp_path))
    assert _fetch(Target("t", tls_sim)).families


def test_ssl_cert_file_is_the_whole_trust_store(tls_sim: str, private_ca: PrivateCA, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # as httpx reads the environment: with SSL_CERT_FILE set (here the public CAs), a CA only in SSL_CERT_DIR is
    # not trusted
    (tmp_path / "ca.pem").write_bytes(private_ca.ca.read_bytes())
    subprocess.run(["openssl", "rehash", str(tmp_path)], check=True, capture_output=True)
    monkeypatch.setenv("SSL_CERT_FILE", certifi.where())
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path))
    assert _failure(Target("t", tls_sim)).cause == "GET /metrics failed (ConnectError)"


# -- the run's clients ------------------------------------------------------------------------------------------


def test_a_proxy_of_the_environment_does_not_carry_the_scrapes(sim_host: SimHost,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # the run reaches each server as its target says (the API server's proxy comes from the kubeconfig)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name in ("ALL_PROXY", "HTTP_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(name, closed_url())
    sim = sim_host.start(get_profile("x86_64"))
    assert _fetch(Target("sim", sim.url)).families


def test_each_target_is_asked_with_its_own_credentials_over_one_connection(sim_host: SimHost) -> None:
    url, server = _serving(sim_host)
    plain, guarded = Target("plain", url), Target("guarded", url, client_options={"headers": {"Authorization": "x"}})

    async def run() -> None:
        async with Clients() as clients:
            for target in (plain, guarded, plain, guarded):
                await scrape(clients.get(target), target, "/metrics", 30.0)

    asyncio.run(run())
    assert [headers.get("Authorization") for _, headers, _ in server.seen] == [None, "x", None, "x"]
    ports = [port for _, _, port in server.seen]
    assert ports[0] == ports[2] and ports[1] == ports[3] and ports[0] != ports[1]  # each target's client kept


def test_each_server_keeps_its_connection_across_a_pass_over_many(sim_host: SimHost) -> None:
    # one client per server, though the targets share their options (as discovery gives every pod the same): a
    # client shared by all would keep only 20 idle connections (httpx's default)
    servers = [Fixed() for _ in range(21)]
    options: dict[str, object] = {}
    targets = [Target(f"s{i}", sim_host.start_app(server.app()), client_options=options)
               for i, server in enumerate(servers)]

    async def run() -> None:
        async with Clients() as clients:
            for target in targets + targets:
                await scrape(clients.get(target), target, "/metrics", 30.0)

    asyncio.run(run())
    assert [len({port for _, _, port in server.seen}) for server in servers] == [1] * 21


def test_closed_clients_are_closed_and_new_ones_are_opened(sim_host: SimHost) -> None:
    sim = sim_host.start(get_profile("x86_64"))
    target = Target("sim", sim.url)

    async def run() -> None:
        clients = Clients()
        first = clients.get(target)
        await clients.aclose()
        assert first.is_closed
        assert (await scrape(clients.get(target), target, "/metrics", 30.0)).families
        await clients.aclose()

    asyncio.run(run())


# -- through the API server's pod proxy -------------------------------------------------------------------------


def _pods(double: KubeDouble, tmp_path: Path, token: str = "admin", port: str | None = None) -> dict[str, Target]:
    """The pods of the cluster double as discovery makes them targets (through the pod proxy, with `token`)."""
    _, targets = discover(namespace=NS, selector=None, container=None, port=port, context=None, transport="proxy",
                          kubeconfig=str(write_kubeconfig(tmp_path / f"kc-{token}", double, token)), timeout=30)
    return {t.name: t for t in targets}


PROXY = "decode-amd64: GET /metrics through the API server's pod proxy"


def test_a_pod_is_scraped_through_the_api_servers_proxy(double: KubeDouble, tmp_path: Path) -> None:
    snapshot = _fetch(_pods(double, tmp_path)["decode-amd64"])
    assert snapshot.families["vllm:num_requests_running"].type == "gauge"


@pytest.mark.parametrize("namespaced", [True, False])
def test_a_forbidden_pod_proxy_names_the_grant(double: KubeDouble, tmp_path: Path, namespaced: bool) -> None:
    target = _pods(double, tmp_path, "no-proxy")["decode-amd64"]
    if not namespaced:  # a target made without discovery's details
        target = replace(target, detail={"transport": "proxy"})
    error = _failure(target)
    message = (f"{PROXY} was refused (403 Forbidden): the suite's identity may not get pods/proxy in namespace "
               f"{NS if namespaced else '?'}. Grant get on pods/proxy (deploy/rbac.yaml), or run inside the cluster "
               f"with --vllm-transport=direct.")
    assert (str(error), error.cause, error.inconclusive, error.unanswered) == (message, message, True, False)


def test_expired_cluster_credentials_say_log_in_again(double: KubeDouble, cluster: Cluster, tmp_path: Path) -> None:
    cluster.tokens["expiring"] = cluster.tokens["admin"]
    target = _pods(double, tmp_path, "expiring")["decode-amd64"]
    del cluster.tokens["expiring"]
    error = _failure(target)
    message = f"{PROXY} was refused (401 Unauthorized): the cluster credentials expired; log in again."
    assert (str(error), error.cause, error.inconclusive, error.unanswered) == (message, message, True, False)


REFUSED = ('{"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "error trying to '
           'reach service: dial tcp 10.0.0.1:9999: connect: connection refused", "reason": "ServiceUnavailab')


def test_nothing_listening_on_the_pods_port_is_unanswered(double: KubeDouble, tmp_path: Path) -> None:
    error = _failure(_pods(double, tmp_path, port="9999")["decode-amd64"])
    assert str(error) == (f"{PROXY} could not reach the pod ({REFUSED}). vLLM does not listen on that port: check "
                          f"--vllm-port (llm-d decode pods serve vLLM on 8200, the routing sidecar on 8000).")
    assert (error.cause, error.inconclusive, error.unanswered) == (
        "GET /metrics through the pod proxy: connection refused", True, True)


def test_a_pod_the_api_server_cannot_reach_is_not_unanswered(double: KubeDouble, cluster: Cluster,
                                                              tmp_path: Path) -> None:
    target = _pods(double, tmp_path)["decode-amd64"]
    cluster.namespaces[NS][0].ready = False  # stopped since discovery
    error = _failure(target)
    assert str(error).startswith(f"{PROXY} could not reach the pod (")
    assert "pod decode-amd64 is not running" in str(error)
    assert (error.cause, error.inconclusive, error.unanswered) == (
        "GET /metrics through the pod proxy: pod not reached", True, False)


@pytest.mark.parametrize(("status", "inconclusive"), [(404, False), (429, True), (500, False)])
def test_another_status_through_the_pod_proxy_names_the_port_and_path(
        sim_host: SimHost, double: KubeDouble, cluster: Cluster, tmp_path: Path, status: int,
        inconclusive: bool) -> None:
    target = _pods(double, tmp_path)["decode-amd64"]
    cluster.namespaces[NS][0].backend, _ = _serving(sim_host, status, b"no")
    error = _failure(target)
    assert str(error) == (f"{PROXY} answered HTTP {status}. vLLM serves Prometheus text at /metrics on its own port; "
                          f"check --vllm-port and --vllm-metrics-path.")
    assert (error.cause, error.inconclusive, error.unanswered) == (
        f"GET /metrics through the pod proxy answered HTTP {status}", inconclusive, False)


def test_messages_through_the_pod_proxy_name_the_pods_path(sim_host: SimHost, double: KubeDouble, cluster: Cluster,
                                                           tmp_path: Path) -> None:
    target = _pods(double, tmp_path)["decode-amd64"]
    cluster.namespaces[NS][0].backend, _ = _serving(sim_host, 200, b"<html>login</html>", "text/html")
    assert _failure(target).cause == "GET /metrics answered an HTML page, not Prometheus text"


def test_an_api_server_that_does_not_answer_leaves_the_pod_not_unanswered(double: KubeDouble, tmp_path: Path) -> None:
    # nothing said about the pod: the API server is what could not be reached
    target = _pods(double, tmp_path)["decode-amd64"]
    gone = target.base_url.replace(double.url, closed_url())
    error = _failure(replace(target, base_url=gone))
    assert error.cause.startswith("cannot connect to http://127.0.0.1:")
    assert (error.inconclusive, error.unanswered) == (True, False)
