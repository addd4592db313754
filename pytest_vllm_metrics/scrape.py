"""Scrape: fetch /metrics of many targets concurrently (httpx, bounded) and parse each into a Snapshot."""

from __future__ import annotations

import asyncio
import functools
import os
import ssl
import time
from typing import Any
from urllib.parse import urlsplit

import httpx

from . import engines
from .engines import Engine
from .settings import MAX_BODY_BYTES
from .snapshot import ExpositionError, Snapshot
from .targets import Target, TargetSource, host_port, redact_url

# Prometheus text 0.0.4, never OpenMetrics: prometheus_client >= 0.23 rewrites `vllm:` names to `vllm_`
# in OpenMetrics answers (client_python issue #1177).
ACCEPT = "text/plain;version=0.0.4;q=1.0,*/*;q=0.1"


class FetchError(Exception):
    """A request to a target failed; the message is one paragraph with the cause and the fix.

    `inconclusive`: the suite could not observe the server (no connection, TLS, timeout, auth refused,
    overloaded), as opposed to a server that answered, but not with a metrics page. `unanswered`: nothing
    answered at all (connection refused, or closed without an answer): a vLLM target is then unreachable.
    `cause`: the failure in a few words, for the checks that point at the one check reporting it."""

    def __init__(self, message: str, inconclusive: bool = False, cause: str = "", unanswered: bool = False) -> None:
        super().__init__(message)
        self.inconclusive = inconclusive
        self.cause = cause or message
        self.unanswered = unanswered


def shown_path(target: Target, path: str) -> str:
    """The path a request for `path` puts on the wire, for messages: the target URL's own path comes first
    (http://host/prefix and /metrics: /prefix/metrics). Through the API server's pod proxy, the pod's path (the
    messages say that it went through the proxy)."""
    if target.detail.get("transport") == "proxy":
        return path
    return urlsplit(target.url(path)).path or path


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


@functools.lru_cache(maxsize=16384)
def parsed_url(url: str) -> httpx.URL:
    """A URL as httpx takes it, parsed once: httpx parses a URL given as text at every request (~20 us, a tenth of
    the client's own cost of a small request), and a fleet's run asks for the same few paths of each server."""
    return httpx.URL(url)


async def get_text(client: httpx.AsyncClient, target: Target, path: str, timeout: float,
                   headers: dict[str, str] | None = None) -> tuple[int, str, str]:
    """GET a path; return (status, content type, body). Reads at most MAX_BODY_BYTES."""
    url = target.url(path)
    shown = shown_path(target, path)
    try:
        # httpx's timeout bounds each read; the deadline bounds the whole answer (a slow-loris body that
        # trickles a byte at a time would otherwise never time out).
        async with asyncio.timeout(timeout), client.stream("GET", parsed_url(url), headers=headers,
                                                           timeout=timeout) as response:
            try:
                raw = await read_capped(response, MAX_BODY_BYTES)
            except TooLarge:
                cause = f"GET {shown} returned more than {MAX_BODY_BYTES // (1024 * 1024)} MiB"
                raise FetchError(
                    f"{target.name}: {cause}, far more than a vLLM metrics page (about 50 KB); the URL probably "
                    f"points at something else. Check the target URL and --vllm-metrics-path.", cause=cause
                ) from None
            body = raw.decode(response.encoding or "utf-8", errors="replace")
            return response.status_code, response.headers.get("content-type", ""), body
    except httpx.HTTPError as exc:
        # Nothing answered: connection refused, or closed without an answer (unlike TLS or a timeout: an
        # overloaded server, a firewall). Through the API server's pod proxy, that is the API server, not the pod.
        unanswered = (isinstance(exc, _NO_ANSWER) and not _caused_by_tls(exc)
                      and target.detail.get("transport") != "proxy")
        raise FetchError(describe_http_error(target, f"GET {shown}", exc, timeout), inconclusive=True,
                         cause=_short(target, f"GET {shown}", exc), unanswered=unanswered) from None
    except TimeoutError:
        raise FetchError(
            f"{target.name}: GET {shown} did not finish within {timeout:g} s: the server kept the answer open "
            f"without completing it (a hung or overloaded server, or a proxy that buffers). Check the target, or "
            f"raise --vllm-timeout if it is only slow.", inconclusive=True
        ) from None


# No answer at all: nothing listens there (or the host is unknown), or the server closed the connection.
_NO_ANSWER = (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError)


def _short(target: Target, what: str, exc: httpx.HTTPError) -> str:
    """A failed request in a few words."""
    if isinstance(exc, httpx.ConnectError) and not _caused_by_tls(exc):
        return f"cannot connect to {target.shown_url} ({_reason(exc)})"
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
        return f"{target.shown_url} closed the connection during {what}"
    return f"{what} failed ({type(exc).__name__})"


def describe_http_error(target: Target, what: str, exc: httpx.HTTPError, timeout: float) -> str:
    """One paragraph naming the cause of a failed request and the fix."""
    if isinstance(exc, httpx.TimeoutException):
        return (f"{target.name}: {what} did not complete within {timeout:g} s. The server is overloaded, hung, "
                f"or the address answers but is not vLLM; check the target, or raise --vllm-timeout if it is "
                f"only slow.")
    if isinstance(exc, httpx.ConnectError) and _caused_by_tls(exc):
        if target.source is TargetSource.KUBERNETES:
            return (f"{target.name}: TLS with the API server failed for {target.shown_url} ({_reason(exc)}). Check "
                    f"the kubeconfig's certificate-authority and tls-server-name.")
        return (f"{target.name}: TLS with {target.shown_url} failed ({_reason(exc)}). If the server's certificate "
                f"comes from a private CA, point SSL_CERT_FILE at that CA's bundle (and use a host name that is "
                f"on the certificate); if the server speaks plain HTTP there, use an http:// URL.")
    if isinstance(exc, httpx.ConnectError):
        return (f"{target.name}: cannot connect to {target.shown_url} ({_reason(exc)}). Check that the server is "
                f"running and that the host and port are right.")
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
        return (f"{target.name}: {target.shown_url} closed the connection during {what} ({_reason(exc)}). The "
                f"server stopped answering (crashed or restarting?); check its logs and its pod's restarts.")
    if isinstance(exc, httpx.LocalProtocolError):
        # its text quotes the offending header, which may be a credential
        return f"{target.name}: {what} could not be sent (an invalid header value); check the credentials."
    return f"{target.name}: {what} failed: {_reason(exc)}. Check the target URL."


def _where_served(engine: Engine) -> str:
    profile = engines.profile(engine)
    port = f" on port {profile.metrics_port}" if profile.metrics_port else " on its API port"
    enable = f", and only when started with {profile.enable}" if profile.enable else ""
    return f"{engine} serves its metrics at {profile.metrics_path}{port}{enable}"


async def scrape(client: httpx.AsyncClient, target: Target, path: str, timeout: float) -> Snapshot:
    """The target's page: at `path` (--vllm-metrics-path), or where its engine serves it."""
    taken_at = time.time()
    target, path = target.page_target(), target.metrics_path or path
    status, content_type, body = await get_text(client, target, path, timeout, headers={"Accept": ACCEPT})
    shown = shown_path(target, path)  # what went on the wire: the messages name that
    if status != 200 and target.detail.get("transport") == "proxy":
        raise _proxy_status(target, path, status, body)
    if status in (401, 403):
        raise FetchError(
            f"{target.name}: GET {shown} was refused (HTTP {status}): something in front of vLLM asks for "
            f"credentials (vLLM itself guards only /v1). Scrape vLLM's own port, or the pod directly.",
            inconclusive=True,
        )
    if status in (429, 503):
        raise FetchError(
            f"{target.name}: GET {shown} answered HTTP {status}: the server is overloaded or not ready yet, so its "
            f"metrics could not be observed. Rerun when it serves again.", inconclusive=True,
        )
    if status != 200:
        cause = f"GET {shown} answered HTTP {status}"
        if target.engine is not Engine.VLLM:
            raise FetchError(f"{target.name}: {cause}. {_where_served(target.engine)}; check the pod's "
                             f"{engines.label_keys()[0]} label (or --vllm-engine) and the port.", cause=cause)
        raise FetchError(f"{target.name}: {cause}. vLLM serves Prometheus text at /metrics on its API port (llm-d "
                         f"decode pods: 8200, not the routing sidecar's 8000); check --vllm-metrics-path and the "
                         f"port.{_base_hint(target, status)}", cause=cause)
    if "html" in content_type or body.lstrip()[:15].lower().startswith(("<!doctype", "<html")):
        cause = f"GET {shown} answered an HTML page, not Prometheus text"
        raise FetchError(f"{target.name}: {cause}. The URL reaches a proxy, a login page or a web UI rather than "
                         f"vLLM; point the target at vLLM's own port.", cause=cause)
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
            f"{target.name}: GET {shown} is not {what} ({exc}); first bytes: {body[:80]!r}. "
            f"Check that the URL is vLLM's /metrics.", cause=f"GET {shown} is not {what.split(',')[0]}"
        ) from None
    snapshot.taken_at = taken_at
    snapshot.size = len(body.encode("utf-8", errors="replace"))
    if not snapshot.families:
        cause = f"GET {shown} answered an empty metrics page"
        raise FetchError(f"{target.name}: {cause}. vLLM always exposes process and vllm: families; check that the "
                         f"URL is vLLM's /metrics.", cause=cause)
    return snapshot


def _base_hint(target: Target, status: int) -> str:
    """A 404 under a target URL that has a path of its own: the path is likely the mistake."""
    base = urlsplit(target.base_url)
    if status != 404 or base.path in ("", "/"):
        return ""
    root = redact_url(f"{base.scheme}://{base.netloc}")
    return (f" The target URL has a path of its own ({base.path}), which comes before every path the suite "
            f"requests; vLLM serves /metrics and /v1 at its root: pass {root}.")


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


def _proxy_status(target: Target, path: str, status: int, body: str) -> FetchError:
    """The API server's pod proxy answers for the pod: name what to grant or which port to fix."""
    where = f"{target.name}: GET {path} through the API server's pod proxy"
    if status == 403:
        return FetchError(
            f"{where} was refused (403 Forbidden): the suite's identity may not get pods/proxy in namespace "
            f"{target.detail.get('namespace', '?')}. Grant get on pods/proxy (deploy/rbac.yaml), or run inside the "
            f"cluster with --vllm-transport=direct.", inconclusive=True)
    if status == 401:
        return FetchError(f"{where} was refused (401 Unauthorized): the cluster credentials expired; log in again.",
                          inconclusive=True)
    if status == 503:
        # The API server could not reach the pod; "connection refused": nothing listens on that port of the pod,
        # as for a URL (the API server's own words, k8s.io/apimachinery's proxy: "error trying to reach service:
        # dial tcp IP:PORT: connect: connection refused").
        refused = "connection refused" in body
        return FetchError(
            f"{where} could not reach the pod ({body.strip()[:200]}). vLLM does not listen on that port: check "
            f"--vllm-port (llm-d decode pods serve vLLM on 8200, the routing sidecar on 8000).", inconclusive=True,
            cause=f"GET {path} through the pod proxy: {'connection refused' if refused else 'pod not reached'}",
            unanswered=refused)
    return FetchError(f"{where} answered HTTP {status}. vLLM serves Prometheus text at /metrics on its own port; "
                      f"check --vllm-port and --vllm-metrics-path.", inconclusive=status == 429,
                      cause=f"GET {path} through the pod proxy answered HTTP {status}")
