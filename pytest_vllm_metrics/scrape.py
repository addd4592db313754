"""Scrape: fetch /metrics of many targets concurrently (httpx, bounded) and parse each into a Snapshot."""

from __future__ import annotations

import asyncio
import functools
import os
import ssl
import time
from typing import Any

import httpx

from .snapshot import ExpositionError, Snapshot
from .targets import Target, host_port

# Prometheus text 0.0.4, never OpenMetrics: prometheus_client >= 0.23 rewrites `vllm:` names to `vllm_`
# in OpenMetrics answers (client_python issue #1177).
ACCEPT = "text/plain;version=0.0.4;q=1.0,*/*;q=0.1"
MAX_BODY_BYTES = 16 * 1024 * 1024  # a real vLLM page is ~50 KB; anything this large is not one


class FetchError(Exception):
    """A request to a target failed; the message is one paragraph with the cause and the fix.

    `inconclusive`: the suite could not observe the server (no connection, TLS, timeout, auth refused,
    overloaded), as opposed to a server that answered, but not with a metrics page."""

    def __init__(self, message: str, inconclusive: bool = False) -> None:
        super().__init__(message)
        self.inconclusive = inconclusive


def default_tls() -> ssl.SSLContext:
    """The TLS context for servers with public certificates (or the bundle in SSL_CERT_FILE / SSL_CERT_DIR):
    one per process and bundle, not one per client, since building one parses the whole CA bundle (~20 ms of
    CPU), and httpx builds one for every client it is not given one, even for plain http://."""
    return _tls_for(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))


@functools.lru_cache(maxsize=4)
def _tls_for(cert_file: str | None, cert_dir: str | None) -> ssl.SSLContext:
    return httpx.create_ssl_context()  # reads SSL_CERT_FILE / SSL_CERT_DIR itself, else certifi


class Clients:
    """The httpx clients of one pass over many targets: one per server and set of credentials.

    Not one client for all: httpcore scans every pooled connection on each request, which is quadratic in
    the number of pods.
    """

    def __init__(self) -> None:
        self._clients: dict[tuple[int, str], httpx.AsyncClient] = {}

    def get(self, target: Target) -> httpx.AsyncClient:
        key = (id(target.client_options), host_port(target.base_url))
        client = self._clients.get(key)
        if client is None:
            options: dict[str, Any] = dict(target.client_options)
            options.setdefault("verify", default_tls())
            client = self._clients[key] = httpx.AsyncClient(trust_env=False, **options)
        return client

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()

    async def __aenter__(self) -> Clients:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class TooLarge(Exception):
    """An answer grew past the cap its reader set."""


async def read_capped(response: httpx.Response, limit: int) -> bytes:
    """The body of a streamed response, read up to `limit` bytes; TooLarge beyond (at once when the server
    declares a longer Content-Length: nothing is read, however slow the link)."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


async def get_text(client: httpx.AsyncClient, target: Target, path: str, timeout: float,
                   headers: dict[str, str] | None = None) -> tuple[int, str, str]:
    """GET a path; return (status, content type, body). Reads at most MAX_BODY_BYTES."""
    url = target.url(path)
    try:
        # httpx's timeout bounds each read; the deadline bounds the whole answer (a slow-loris body that
        # trickles a byte at a time would otherwise never time out).
        async with asyncio.timeout(timeout), client.stream("GET", url, headers=headers, timeout=timeout) as response:
            try:
                raw = await read_capped(response, MAX_BODY_BYTES)
            except TooLarge:
                raise FetchError(
                    f"{target.name}: GET {path} returned more than {MAX_BODY_BYTES // (1024 * 1024)} MiB, "
                    f"far more than a vLLM metrics page (about 50 KB); the URL probably points at something "
                    f"else. Check the target URL and --vllm-metrics-path."
                ) from None
            body = raw.decode(response.encoding or "utf-8", errors="replace")
            return response.status_code, response.headers.get("content-type", ""), body
    except httpx.HTTPError as exc:
        raise FetchError(describe_http_error(target, f"GET {path}", exc, timeout), inconclusive=True) from None
    except TimeoutError:
        raise FetchError(
            f"{target.name}: GET {path} did not finish within {timeout:g} s: the server kept the answer open without "
            f"completing it (a hung or overloaded server, or a proxy that buffers). Check the target, or raise "
            f"--vllm-timeout if it is only slow.", inconclusive=True
        ) from None


def describe_http_error(target: Target, what: str, exc: httpx.HTTPError, timeout: float) -> str:
    """One paragraph naming the cause of a failed request and the fix."""
    if isinstance(exc, httpx.TimeoutException):
        return (f"{target.name}: {what} did not complete within {timeout:g} s. The server is overloaded, hung, "
                f"or the address answers but is not vLLM; check the target, or raise --vllm-timeout if it is "
                f"only slow.")
    if isinstance(exc, httpx.ConnectError) and _caused_by_tls(exc):
        if target.source == "kubernetes":
            return (f"{target.name}: TLS with the API server failed for {target.shown_url} ({_reason(exc)}). Check "
                    f"the kubeconfig's certificate-authority and tls-server-name.")
        return (f"{target.name}: TLS with {target.shown_url} failed ({_reason(exc)}). If the server's certificate "
                f"comes from a private CA, point SSL_CERT_FILE at that CA's bundle (and use a host name that is "
                f"on the certificate); if the server speaks plain HTTP there, use an http:// URL.")
    if isinstance(exc, httpx.ConnectError):
        return (f"{target.name}: cannot connect to {target.shown_url} ({_reason(exc)}). Check that the server is "
                f"running and that the host and port are right.")
    if isinstance(exc, httpx.RemoteProtocolError):
        return (f"{target.name}: {target.shown_url} closed the connection during {what} ({_reason(exc)}). The "
                f"server stopped answering (crashed or restarting?); check its logs and its pod's restarts.")
    if isinstance(exc, httpx.LocalProtocolError):
        # its text quotes the offending header, which may be a credential
        return f"{target.name}: {what} could not be sent (an invalid header value); check the credentials."
    return f"{target.name}: {what} failed: {_reason(exc)}. Check the target URL."


async def scrape(client: httpx.AsyncClient, target: Target, path: str, timeout: float) -> Snapshot:
    taken_at = time.time()
    status, content_type, body = await get_text(client, target, path, timeout, headers={"Accept": ACCEPT})
    if status != 200 and target.source == "kubernetes":
        raise FetchError(_proxy_status(target, path, status, body), inconclusive=status in (401, 403, 429, 503))
    if status in (401, 403):
        raise FetchError(
            f"{target.name}: GET {path} was refused (HTTP {status}): something in front of vLLM asks for "
            f"credentials (vLLM itself guards only /v1). Scrape vLLM's own port, or the pod directly.",
            inconclusive=True,
        )
    if status in (429, 503):
        raise FetchError(
            f"{target.name}: GET {path} answered HTTP {status}: the server is overloaded or not ready yet, so its "
            f"metrics could not be observed. Rerun when it serves again.", inconclusive=True,
        )
    if status != 200:
        raise FetchError(
            f"{target.name}: GET {path} answered HTTP {status}. vLLM serves Prometheus text at /metrics on its "
            f"API port (llm-d decode pods: 8200, not the routing sidecar's 8000); check --vllm-metrics-path and "
            f"the port."
        )
    if "html" in content_type or body.lstrip()[:15].lower().startswith(("<!doctype", "<html")):
        raise FetchError(
            f"{target.name}: GET {path} answered an HTML page, not Prometheus text. The URL reaches a proxy, a "
            f"login page or a web UI rather than vLLM; point the target at vLLM's own port."
        )
    # ACCEPT asks for text 0.0.4, but some frontends and proxies answer OpenMetrics regardless: read the page
    # in the format its Content-Type names, or its counters would read as untyped families.
    media_type, *parameters = content_type.split(";")
    openmetrics = media_type.strip().lower() == "application/openmetrics-text"
    version = next((value.strip().strip('"') for key, _, value in (p.partition("=") for p in parameters)
                    if key.strip().lower() == "version"), "") or "1.0.0"
    try:
        if not openmetrics:
            snapshot = Snapshot.parse(body)
        elif body.strip():
            snapshot = Snapshot.parse_openmetrics(body, version)
        else:
            snapshot = Snapshot(format=f"openmetrics/{version}")  # an empty page: said below, as for text
    except ExpositionError as exc:
        what = "OpenMetrics text format, as its Content-Type says" if openmetrics else "Prometheus text format"
        raise FetchError(
            f"{target.name}: GET {path} is not {what} ({exc}); first bytes: {body[:80]!r}. "
            f"Check that the URL is vLLM's /metrics."
        ) from None
    snapshot.taken_at = taken_at
    snapshot.size = len(body.encode("utf-8", errors="replace"))
    if not snapshot.families:
        raise FetchError(
            f"{target.name}: GET {path} answered an empty metrics page. vLLM always exposes process and "
            f"vllm: families; check that the URL is vLLM's /metrics."
        )
    return snapshot


def _caused_by_tls(exc: BaseException) -> bool:
    """Whether an ssl error is behind this one (httpx and httpcore each wrap the error they map)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _reason(exc: Exception) -> str:
    text = str(exc).strip()
    return text or type(exc).__name__


def _proxy_status(target: Target, path: str, status: int, body: str) -> str:
    """The API server's pod proxy answers for the pod: name what to grant or which port to fix."""
    where = f"{target.name}: GET {path} through the API server's pod proxy"
    if status == 403:
        return (f"{where} was refused (403 Forbidden): the suite's identity may not get pods/proxy in namespace "
                f"{target.detail.get('namespace', '?')}. Grant get on pods/proxy (deploy/rbac.yaml), or run inside "
                f"the cluster with --vllm-transport=direct.")
    if status == 401:
        return f"{where} was refused (401 Unauthorized): the cluster credentials expired; log in again."
    if status == 503:
        return (f"{where} could not reach the pod ({body.strip()[:200]}). vLLM does not listen on that port: "
                f"check --vllm-port (llm-d decode pods serve vLLM on 8200, the routing sidecar on 8000).")
    return (f"{where} answered HTTP {status}. vLLM serves Prometheus text at /metrics on its own port; check "
            f"--vllm-port and --vllm-metrics-path.")
