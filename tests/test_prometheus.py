"""The Prometheus client and the checks that query it (prometheus.py), over HTTP against a Prometheus API double on
loopback, and against a real Prometheus scraping simulated vLLM servers.

The double answers as Prometheus' HTTP API does (https://prometheus.io/docs/prometheus/latest/querying/api/):
`{"status": "success", "data": {"resultType": "vector", "result": [...]}}` for an instant query, an
`{"status": "error", "errorType": ..., "error": ...}` body with HTTP 400 for a bad query, the `state` filter of
/api/v1/targets (lower-cased, as Prometheus reads it), and whatever a proxy in front of it answers (401, 403,
an HTML page). Each docstring names the mutant it kills (mutmut 3, `tox -e mutants`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from conftest import (
    DASHBOARDS,
    NOW,
    PrivateCA,
    PrometheusAPI,
    closed_url,
    gaps,
    observation,
    page,
    run_suite,
    sample,
    vector,
    verdicts,
)
from pytest_vllm_metrics import prometheus
from pytest_vllm_metrics.catalog import Catalog, Entry
from pytest_vllm_metrics.observe import Observation
from pytest_vllm_metrics.outcome import Outcome, Verdict
from pytest_vllm_metrics.prometheus import Held, Prometheus, PrometheusError
from pytest_vllm_metrics.sim import SimHost, get_profile
from pytest_vllm_metrics.snapshot import Snapshot
from pytest_vllm_metrics.targets import Target, TargetSource
from pytest_vllm_metrics.versions import VersionRange

SYNC = "vllm:prompt_tokens_total"
@pytest.fixture
def api(sim_host: SimHost) -> Iterator[PrometheusAPI]:
    server = PrometheusAPI()
    server.url = sim_host.start_app(server.app())
    yield server
    if server.stall is not None:
        server.stall.set()


@pytest.fixture
def prom(api: PrometheusAPI) -> Iterator[Prometheus]:
    client = Prometheus(api.url)
    yield client
    client.close()


# -- Prometheus.get / query / targets: the answers of the API and what a user reads when it cannot answer -----


def test_instant_query_returns_the_vector_prometheus_answers(api: PrometheusAPI, prom: Prometheus) -> None:
    """kills the `query=expr` parameter, the `resultType == "vector"` test and `body["data"]` in
    Prometheus.query / Prometheus.get."""
    api.answer('up{job="vllm"}', vector(sample(1, job="vllm", instance="10.0.0.1:8200")))
    assert prom.query('up{job="vllm"}') == [{"metric": {"job": "vllm", "instance": "10.0.0.1:8200"},
                                             "value": [NOW, "1"]}]
    assert [s.path for s in api.seen] == ["/api/v1/query"]


def test_scalar_answer_is_no_series(api: PrometheusAPI, prom: Prometheus) -> None:
    """kills `resultType == "vector"` -> `!=` / `"XXvectorXX"` and `else []` -> `else None` in Prometheus.query:
    `query=1` answers a scalar, which names no series."""
    api.answer("1", {"resultType": "scalar", "result": [NOW, "1"]})
    assert prom.query("1") == []


def test_targets_asks_for_the_state_it_is_given(api: PrometheusAPI, prom: Prometheus) -> None:
    """kills the `state=state` parameter and its default "any" in Prometheus.targets."""
    api.active = [{"labels": {"instance": "a:1"}}]
    api.dropped = [{"discoveredLabels": {"__address__": "b:1"}}]
    assert prom.targets() == {"activeTargets": api.active, "droppedTargets": api.dropped}
    assert prom.targets("dropped") == {"activeTargets": [], "droppedTargets": api.dropped}
    assert [s.params for s in api.seen] == [{"state": "any"}, {"state": "dropped"}]


def test_unreachable_prometheus_is_one_message_naming_the_url_and_the_fix() -> None:
    """kills the message and `from None` of the httpx.HTTPError branch of Prometheus.get."""
    url = closed_url()
    prom = Prometheus(url, timeout=5.0)
    with pytest.raises(PrometheusError) as caught:
        prom.query("up")
    prom.close()
    assert str(caught.value).startswith(f"Prometheus at {url} cannot be reached (ConnectError: ")
    assert str(caught.value).endswith("). Check --prometheus-url (kube-prometheus-stack: port-forward "
                                      "svc/llmd-kube-prometheus-stack-prometheus 9090).")
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


@pytest.mark.parametrize("status", [401, 403])
def test_refused_request_asks_for_the_bearer_token(api: PrometheusAPI, prom: Prometheus, status: int) -> None:
    """kills `status_code in (401, 403)` -> either code dropped, and the message of that branch of Prometheus.get."""
    api.fixed = (status, "text/plain", "Unauthorized\n")
    with pytest.raises(PrometheusError) as caught:
        prom.query("up")
    assert str(caught.value) == (f"Prometheus at {api.url} refused the request (HTTP {status}); set the bearer "
                                 f"token in the environment variable named by --prometheus-token-env.")


@pytest.mark.parametrize("status", [200, 402, 404])
def test_page_that_is_not_json_says_the_url_is_not_prometheus(
    api: PrometheusAPI, prom: Prometheus, status: int
) -> None:
    """kills the ValueError branch (message, `from None`) of Prometheus.get; 402 and 404 are not refusals
    (the neighbours of 401 and 403)."""
    api.fixed = (status, "text/html", "<html><body>Grafana</body></html>")
    with pytest.raises(PrometheusError) as caught:
        prom.targets()
    assert str(caught.value) == (f"Prometheus at {api.url} answered /api/v1/targets with HTTP {status} and no "
                                 f"JSON; --prometheus-url must be the Prometheus server itself (its /api/v1 API).")
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_query_error_quotes_prometheus_error_type_and_text(api: PrometheusAPI, prom: Prometheus) -> None:
    """kills `status != "success"` -> `== ` / `"XXsuccessXX"` and the errorType / error keys in Prometheus.get."""
    api.fixed = (400, "application/json",
                 '{"status":"error","errorType":"bad_data","error":"invalid parameter \\"query\\": 1:4: parse '
                 'error: unexpected end of input"}')
    with pytest.raises(PrometheusError) as caught:
        prom.query("up{")
    assert str(caught.value) == (f"Prometheus at {api.url} answered /api/v1/query with an error: bad_data: "
                                 f'invalid parameter "query": 1:4: parse error: unexpected end of input')


def test_bearer_token_from_the_environment_is_sent(
    api: PrometheusAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kills the Authorization header of Prometheus._new_client and `os.environ.get(token_env)` and
    `url.rstrip("/")` in from_settings."""
    monkeypatch.setenv("PROM_TOKEN_TEST", "s3cret")
    prom = prometheus.from_settings(api.url + "/", "PROM_TOKEN_TEST", None, False, 30.0)
    try:
        prom.query("up")
    finally:
        prom.close()
    assert prom.url == api.url
    assert [(s.path, s.authorization) for s in api.seen] == [("/api/v1/query", "Bearer s3cret")]


@pytest.mark.parametrize("value", [None, ""])
def test_no_token_sends_no_authorization(api: PrometheusAPI, monkeypatch: pytest.MonkeyPatch,
                                         value: str | None) -> None:
    """kills `if self.token` -> `if not self.token` / always in Prometheus._new_client and `or None` in
    from_settings: an unset or empty variable sends no `Bearer ` header."""
    monkeypatch.delenv("PROM_TOKEN_TEST", raising=False)
    if value is not None:
        monkeypatch.setenv("PROM_TOKEN_TEST", value)
    prom = prometheus.from_settings(api.url, "PROM_TOKEN_TEST", None, False, 30.0)
    try:
        prom.query("up")
    finally:
        prom.close()
    assert prom.token is None
    assert [s.authorization for s in api.seen] == [None]


def test_proxy_variables_of_the_environment_are_not_used(
    api: PrometheusAPI, prom: Prometheus, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kills `trust_env=False` -> `True` / dropped in Prometheus._new_client: a proxy configured for the
    shell does not stand between the suite and the Prometheus URL it was given."""
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, closed_url())
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert prom.query("up") == []
    assert len(api.seen) == 1


def test_slow_prometheus_times_out_with_the_configured_timeout(api: PrometheusAPI, monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    """kills `timeout=self.timeout` -> dropped / None in Prometheus._new_client and the timeout of
    from_settings: the API holds its answer until the test ends, the client gives up after its 0.3 s. The bound
    is the point, so it is measured: from the request's arrival, well under httpx's own default of 5 s (what a
    dropped timeout would wait; None would wait for the answer, which never comes)."""
    api.stall = threading.Event()
    prom = prometheus.from_settings(api.url, "PROM_TOKEN_UNSET_TEST", None, False, 0.3)
    try:
        with pytest.raises(PrometheusError, match=r"cannot be reached \(ReadTimeout: "):
            prom.query("up")
        gave_up = time.monotonic()
    finally:
        api.stall.set()
        prom.close()
    [asked] = api.seen
    assert gave_up - asked.at < 4.5


def test_closed_client_reconnects_on_the_next_query(api: PrometheusAPI) -> None:
    """kills the body of Prometheus.close (`is not None` -> `is None`, `_http = None` -> `""`) and the cached
    client of Prometheus._client: queries reuse one connection, close() releases it, the next query opens
    another."""
    prom = Prometheus(api.url)
    prom.query("up")
    prom.query("up")
    prom.close()
    prom.close()  # closing twice is harmless
    prom.query("up")
    prom.close()
    ports = [s.peer_port for s in api.seen]
    assert ports[0] == ports[1] != ports[2]


# -- TLS: a private CA, or --prometheus-insecure ----------------------------------------------------------------


def test_prometheus_behind_a_private_ca_is_trusted_with_its_ca_file(tls_api: PrometheusAPI,
                                                                      private_ca: PrivateCA) -> None:
    """kills `elif self.ca_file` -> `elif not self.ca_file` and `cafile=self.ca_file` -> None in
    Prometheus._new_client, and the ca_file of from_settings."""
    prom = prometheus.from_settings(tls_api.url, "PROM_TOKEN_UNSET_TEST", str(private_ca.ca), False, 30.0)
    try:
        assert prom.query("up") == []
    finally:
        prom.close()


def test_prometheus_behind_a_private_ca_is_refused_without_it(tls_api: PrometheusAPI) -> None:
    """kills `verify = True` -> `False` / None (the default) in Prometheus._new_client."""
    prom = prometheus.from_settings(tls_api.url, "PROM_TOKEN_UNSET_TEST", None, False, 30.0)
    try:
        with pytest.raises(PrometheusError, match=r"cannot be reached \(ConnectError: .*CERTIFICATE_VERIFY_FAILED"):
            prom.query("up")
    finally:
        prom.close()
    assert tls_api.seen == []


def test_prometheus_behind_a_private_ca_is_trusted_through_ssl_cert_file_as_the_servers_are(
        tls_api: PrometheusAPI, private_ca: PrivateCA, monkeypatch: pytest.MonkeyPatch) -> None:
    """The TLS context is built once per process and CA bundle: refused first, then, in the same process,
    trusted once SSL_CERT_FILE names the CA (a context cached regardless of the variable would stay refused)."""
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    refused = prometheus.from_settings(tls_api.url, "PROM_TOKEN_UNSET_TEST", None, False, 30.0)
    try:
        with pytest.raises(PrometheusError, match="CERTIFICATE_VERIFY_FAILED"):
            refused.query("up")
    finally:
        refused.close()
    monkeypatch.setenv("SSL_CERT_FILE", str(private_ca.ca))
    trusted = prometheus.from_settings(tls_api.url, "PROM_TOKEN_UNSET_TEST", None, False, 30.0)
    try:
        assert trusted.query("up") == []
    finally:
        trusted.close()


def test_insecure_skips_verification(tls_api: PrometheusAPI) -> None:
    """kills `verify = False` -> `True` / None and `if self.insecure` -> `if not` in Prometheus._new_client, and
    the insecure flag of from_settings."""
    prom = prometheus.from_settings(tls_api.url, "PROM_TOKEN_UNSET_TEST", None, True, 30.0)
    try:
        assert prom.query("up") == []
    finally:
        prom.close()


# -- scrape_interval: the longest interval of the active targets, capped at a minute ----------------------------


@pytest.mark.parametrize(("intervals", "expected"), [
    (["15s", "500ms"], 15.0), (["250ms"], 0.25), (["1s500ms", "250ms"], 1.5), (["1m"], 60.0), (["59s"], 59.0),
    (["60s"], 60.0), (["61s"], 60.0), (["2m"], 60.0), (["1h"], 60.0), (["ms"], 30.0), (["soon"], 30.0),
    ([None], 30.0), ([], 30.0),
])
def test_scrape_interval_is_the_longest_of_the_active_targets_capped_at_a_minute(
    api: PrometheusAPI, prom: Prometheus, intervals: list[str | None], expected: float
) -> None:
    """kills `min(max(...), 60.0)` -> 61.0, `default=30.0` -> 31.0, the unit table and the unit names of
    _seconds (a unit alone is no number), and `targets("active")` in scrape_interval. An unreadable interval
    (or none) counts as Prometheus' default 30 s."""
    api.active = [{"labels": {"instance": f"10.0.0.{i}:8200"}, **({"scrapeInterval": t} if t else {})}
                  for i, t in enumerate(intervals)]
    api.dropped = [{"discoveredLabels": {"__address__": "10.0.0.99:8200"}, "scrapeInterval": "59m"}]
    assert prometheus.scrape_interval(prom) == expected
    assert [s.params for s in api.seen] == [{"state": "active"}]


def test_scrape_interval_of_one_and_a_half_minutes_is_capped_at_a_minute(api: PrometheusAPI,
                                                                        prom: Prometheus) -> None:
    """Prometheus prints a 90 s scrape_interval as "1m30s": read whole (it was read as 30 s, so the sync wait
    was 65 s instead of the capped 125 s)."""
    api.active = [{"labels": {"instance": "10.0.0.1:8200"}, "scrapeInterval": "1m30s"}]
    assert prometheus.scrape_interval(prom) == 60.0


# -- wait_until_synced: poll (bounded) until Prometheus holds each target's post-workload counter ---------------


def observed(name: str, address: str, after: float | None, *, source: str = "url",
             taken: bool = True) -> Observation:
    page = (f"# TYPE vllm:prompt_tokens counter\nvllm:prompt_tokens_total{{model_name=\"tiny\"}} {after}\n"
            if after is not None else "# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running 0\n")
    target = Target(name, f"http://{address}", source=source, detail={"namespace": "llm-d"})
    return Observation(target, before=Snapshot.parse(page), after=Snapshot.parse(page) if taken else None)


def sync_queries(address: str) -> tuple[str, str]:
    selector = f'{SYNC}{{instance="{address}"}}'
    return f"sum({selector})", f"max(timestamp({selector}))"


def active(*addresses: str) -> list[dict[str, Any]]:
    return [{"labels": {"instance": a, "job": "vllm"}, "scrapeInterval": "1s"} for a in addresses]


def test_prometheus_that_already_holds_the_value_is_not_waited_for(api: PrometheusAPI, prom: Prometheus) -> None:
    """kills `value < wanted` -> `<=` in wait_until_synced (exactly the wanted value is synced) and the value /
    timestamp reading: one poll, and what Prometheus holds is returned."""
    api.active = active("10.0.0.1:8200")
    total, stamp = sync_queries("10.0.0.1:8200")
    api.answer(total, vector(sample(50)))
    api.answer(stamp, vector(sample(NOW - 0.5)))
    held = prometheus.wait_until_synced(prom, [observed("decode-0", "10.0.0.1:8200", 50.0)], bound=30.0)
    assert held == {"decode-0": Held(50.0, NOW - 0.5)}
    assert api.queries() == [total, stamp]  # one poll: not waited for
    assert api.seen[0].params == {"state": "active"}


def test_prometheus_one_below_is_polled_until_it_catches_up(api: PrometheusAPI, prom: Prometheus) -> None:
    """kills `pending = True` -> False / `value < wanted` -> `>` / `or` -> `and` and `sleep(0.25)` -> 1.25 / None
    in wait_until_synced: one below the direct scrape is not synced yet; polled again a quarter of a second later
    until a poll at the value ends the wait."""
    api.active = active("10.0.0.1:8200")
    total, stamp = sync_queries("10.0.0.1:8200")
    api.answer(total, vector(sample(49)), vector(sample(49)), vector(sample(49)), vector(sample(50)))
    api.answer(stamp, vector(sample(NOW - 1)), vector(sample(NOW - 1)), vector(sample(NOW - 1)), vector(sample(NOW)))
    held = prometheus.wait_until_synced(prom, [observed("decode-0", "10.0.0.1:8200", 50.0)], bound=60.0)
    assert held == {"decode-0": Held(50.0, NOW)}
    assert api.queries() == [total, stamp] * 4
    # the polls as Prometheus saw them come: never sooner than 0.25 s apart, and (the best of three, so that one
    # slow answer on a loaded machine does not decide) sooner than the 1.25 s a longer sleep would take
    polls = gaps([s for s in api.seen if s.params.get("query") == total])
    assert min(polls) >= 0.25 and min(polls) < 1.25, polls


def test_prometheus_without_the_series_is_polled_until_it_has_it(api: PrometheusAPI, prom: Prometheus) -> None:
    """kills `value is None` -> `is not None` and the `if series` guards of wait_until_synced: no series is not
    synced (polled again, no timestamp asked), until Prometheus has it. The bound is far off: the polls end by
    what Prometheus answers, however slowly they come."""
    api.active = active("10.0.0.1:8200")
    total, stamp = sync_queries("10.0.0.1:8200")
    api.answer(total, vector(), vector(), vector(sample(50)))
    api.answer(stamp, vector(sample(NOW)))
    held = prometheus.wait_until_synced(prom, [observed("decode-0", "10.0.0.1:8200", 50.0)], bound=60.0)
    assert held == {"decode-0": Held(50.0, NOW)}
    assert api.queries() == [total, total, total, stamp]


def test_prometheus_without_the_series_is_waited_for_until_the_bound(api: PrometheusAPI, prom: Prometheus) -> None:
    """kills `deadline = monotonic() + bound` -> `- bound` / `* bound` and the `if series` guards of
    wait_until_synced: never the series, so Held(None, None) once the bound has passed, and no sooner. How many
    polls fit in the bound depends on the machine; at most one per 0.25 s does not."""
    api.active = active("10.0.0.1:8200")
    total, _ = sync_queries("10.0.0.1:8200")
    started = time.monotonic()
    held = prometheus.wait_until_synced(prom, [observed("decode-0", "10.0.0.1:8200", 50.0)], bound=0.6)
    waited = time.monotonic() - started
    assert held == {"decode-0": Held(None, None)}
    assert waited >= 0.6
    # a poll at most every 0.25 s, and none after one that ends past the bound: at 0, 0.25, 0.5 and 0.75 s at most
    assert set(api.queries()) == {total} and 1 <= len(api.queries()) <= 4


def test_series_without_a_timestamp_answer_has_no_sample_time(api: PrometheusAPI, prom: Prometheus) -> None:
    """kills `if stamp else None` -> always indexing in wait_until_synced."""
    api.active = active("10.0.0.1:8200")
    total, _ = sync_queries("10.0.0.1:8200")
    api.answer(total, vector(sample(80)))
    held = prometheus.wait_until_synced(prom, [observed("decode-0", "10.0.0.1:8200", 50.0)], bound=3.0)
    assert held == {"decode-0": Held(80.0, None)}


def test_only_targets_prometheus_scrapes_and_the_suite_scraped_after_are_waited_for(
    api: PrometheusAPI, prom: Prometheus
) -> None:
    """kills the active-target filter (`is not None` -> `is None`, `targets("active")`) and `obs.after is None`
    -> `is not None` of wait_until_synced: a target Prometheus does not scrape, or one without a second
    scrape, is not waited for; a target whose page lacks the counter is read but not waited for."""
    api.active = active("10.0.0.1:8200", "10.0.0.3:8200")
    api.dropped = [{"discoveredLabels": {"__address__": "10.0.0.2:8200"}}]
    total, stamp = sync_queries("10.0.0.1:8200")
    api.answer(total, vector(sample(50)))
    api.answer(stamp, vector(sample(NOW)))
    held = prometheus.wait_until_synced(prom, [
        observed("decode-0", "10.0.0.1:8200", 50.0),
        observed("decode-1", "10.0.0.2:8200", 50.0),  # not scraped: its sum would stay empty
        observed("decode-2", "10.0.0.3:8200", 50.0, taken=False),
        observed("decode-3", "10.0.0.3:8200", None),
    ], bound=30.0)
    assert held == {"decode-0": Held(50.0, NOW), "decode-3": Held(None, None)}
    assert api.queries() == [total, stamp, sync_queries("10.0.0.3:8200")[0]]  # one poll: nothing waited for


def test_pod_is_waited_for_by_namespace_and_pod(api: PrometheusAPI, prom: Prometheus) -> None:
    """kills the pod selector of wait_until_synced (`_matchers` joining with "," and quoting each value)."""
    api.active = [{"labels": {"namespace": "llm-d", "pod": "decode-0"}, "scrapeInterval": "1s"}]
    selector = f'{SYNC}{{namespace="llm-d",pod="decode-0"}}'
    api.answer(f"sum({selector})", vector(sample(50)))
    api.answer(f"max(timestamp({selector}))", vector(sample(NOW)))
    held = prometheus.wait_until_synced(prom, [observed("decode-0", "10.1.0.7:8200", 50.0, source="kubernetes")],
                                        bound=3.0)
    assert held == {"decode-0": Held(50.0, NOW)}


# -- families_there: the MUST families, with the labels dashboards select on ------------------------------------


def entry(name: str, type_: str = "counter", level: str = "MUST", labels: tuple[str, ...] = ("model_name",),
          versions: str = ">=0.10") -> Entry:
    return Entry(name, type_, level, "core", VersionRange(versions), labels)


def exposing(*families: tuple[str, str]) -> Snapshot:
    lines = []
    for name, type_ in families:
        lines.append(f"# TYPE {name} {type_}")
        if type_ == "histogram":
            lines += [f'{name}_bucket{{le="+Inf",model_name="tiny"}} 1', f'{name}_count{{model_name="tiny"}} 1',
                      f'{name}_sum{{model_name="tiny"}} 1']
        else:
            lines.append(f'{name}{{model_name="tiny"}} 1')
    return Snapshot.parse("\n".join(lines) + "\n")


POD = {"namespace": "llm-d", "pod": "decode-0"}
POD_MATCH = 'namespace="llm-d",pod="decode-0"'


def pod_obs(page: Snapshot | None, version: str | None = "0.11.0") -> Observation:
    target = Target("decode-0", "http://10.1.0.7:8200", source="kubernetes", detail={"namespace": "llm-d"})
    return Observation(target, version=version, before=page, after=page)


def test_must_families_in_prometheus_with_dashboard_labels_pass(api: PrometheusAPI, prom: Prometheus) -> None:
    """kills `"_count" if type == "histogram"` (the histogram is queried by its _count series) and the label
    check of families_there."""
    api.answer(f"vllm:a_total{{{POD_MATCH}}}", vector(sample(1, **POD, model_name="tiny")))
    api.answer(f"vllm:lat_seconds_count{{{POD_MATCH}}}", vector(sample(1, **POD, model_name="tiny")))
    catalog = Catalog((entry("vllm:a_total"), entry("vllm:lat_seconds", "histogram")))
    page = exposing(("vllm:a", "counter"), ("vllm:lat_seconds", "histogram"))
    verdict = prometheus.families_there(prom, pod_obs(page), catalog)
    assert verdict.outcome == Outcome.PASSED, verdict.message
    assert verdict.evidence == {"selector": POD, "missing": [], "unlabeled": []}
    assert api.queries() == [f"vllm:a_total{{{POD_MATCH}}}", f"vllm:lat_seconds_count{{{POD_MATCH}}}"]


def test_only_must_families_the_pod_exposes_are_looked_up(api: PrometheusAPI, prom: Prometheus) -> None:
    """kills the skips of families_there (`level != "MUST"`, `type == "info"`, `applies_to`, the family absent
    at the source, `continue` -> `break`): none of these is asked of Prometheus, the last MUST one is."""
    catalog = Catalog((
        entry("vllm:should_total", level="SHOULD"),
        entry("vllm:cache_config_info", "info"),
        entry("vllm:old_total", versions="<0.10"),
        entry("vllm:absent_total"),
        entry("vllm:a_total"),
    ))
    page = exposing(("vllm:should", "counter"), ("vllm:cache_config_info", "gauge"), ("vllm:old", "counter"),
                    ("vllm:a", "counter"))
    verdict = prometheus.families_there(prom, pod_obs(page), catalog)
    assert api.queries() == [f"vllm:a_total{{{POD_MATCH}}}"]
    assert verdict.outcome == Outcome.FAILED
    assert verdict.evidence["missing"] == ["vllm:a_total"]


def test_without_a_first_scrape_nothing_is_looked_up(api: PrometheusAPI, prom: Prometheus) -> None:
    """kills `obs.before is None or ...` -> `and` in families_there."""
    verdict = prometheus.families_there(prom, pod_obs(None), Catalog((entry("vllm:a_total"),)))
    assert verdict.outcome == Outcome.PASSED
    assert api.queries() == []


def test_missing_families_are_named_up_to_eight(api: PrometheusAPI, prom: Prometheus) -> None:
    """kills `missing[:8]` -> `[:9]`, the message text and `"; ".join` of families_there."""
    names = [f"vllm:m{i}" for i in range(9)]
    catalog = Catalog(tuple(entry(f"{n}_total") for n in names))
    verdict = prometheus.families_there(prom, pod_obs(exposing(*((n, "counter") for n in names))), catalog)
    assert verdict.outcome == Outcome.FAILED
    assert verdict.message == ("decode-0: missing in Prometheus although the pod exposes them: "
                               + ", ".join(f"{n}_total" for n in names[:8])
                               + ". Check metric_relabel_configs that drop series or labels.")
    assert verdict.evidence["missing"] == [f"{n}_total" for n in names]


def test_series_without_pod_or_model_name_are_named_with_the_lacking_labels(api: PrometheusAPI,
                                                                            prom: Prometheus) -> None:
    """kills the `wanted` / `lacking` lists of families_there (namespace and pod always wanted on Kubernetes,
    model_name when the catalog lists it), `unlabeled[:8]` and both parts joined by "; "."""
    api.answer(f"vllm:a_total{{{POD_MATCH}}}", vector(sample(1, namespace="llm-d", model_name="tiny")))
    api.answer(f"vllm:b_total{{{POD_MATCH}}}", vector(sample(1, **POD)))
    api.answer(f"vllm:c_total{{{POD_MATCH}}}", vector(sample(1, **POD)))  # the catalog lists no model_name
    catalog = Catalog((entry("vllm:a_total"), entry("vllm:b_total"), entry("vllm:c_total", labels=()),
                       entry("vllm:d_total")))
    page = exposing(("vllm:a", "counter"), ("vllm:b", "counter"), ("vllm:c", "counter"), ("vllm:d", "counter"))
    verdict = prometheus.families_there(prom, pod_obs(page), catalog)
    assert verdict.message == ("decode-0: missing in Prometheus although the pod exposes them: vllm:d_total; "
                               "without the labels dashboards select on: vllm:a_total (no pod), vllm:b_total "
                               "(no model_name). Check metric_relabel_configs that drop series or labels.")
    assert verdict.evidence == {"selector": POD, "missing": ["vllm:d_total"],
                                "unlabeled": ["vllm:a_total (no pod)", "vllm:b_total (no model_name)"]}


def test_unlabeled_families_are_named_up_to_eight(api: PrometheusAPI, prom: Prometheus) -> None:
    """kills `unlabeled[:8]` -> `[:9]` and `", ".join(lacking)` of families_there."""
    names = [f"vllm:u{i}_total" for i in range(9)]
    for name in names:
        api.answer(f"{name}{{{POD_MATCH}}}", vector(sample(1, model_name="tiny")))
    catalog = Catalog(tuple(entry(n) for n in names))
    verdict = prometheus.families_there(prom, pod_obs(exposing(*((n[:-6], "counter") for n in names))), catalog)
    assert verdict.message == ("decode-0: without the labels dashboards select on: "
                               + ", ".join(f"{n} (no namespace, pod)" for n in names[:8])
                               + ". Check metric_relabel_configs that drop series or labels.")


def test_target_by_url_needs_only_model_name(api: PrometheusAPI, prom: Prometheus) -> None:
    """kills `source != "kubernetes"` -> `==` and the url-target filter (`label == "model_name" or label in
    metric`) of families_there: a target scraped by URL has no pod label to ask for, but model_name still
    counts."""
    where = 'instance="10.0.0.1:8200"'
    api.answer(f"vllm:a_total{{{where}}}", vector(sample(1, instance="10.0.0.1:8200", model_name="tiny")))
    api.answer(f"vllm:b_total{{{where}}}", vector(sample(1, instance="10.0.0.1:8200", namespace="x")))
    obs = Observation(Target("decode-0", "http://10.0.0.1:8200"), version="0.11.0",
                      before=exposing(("vllm:a", "counter"), ("vllm:b", "counter")))
    verdict = prometheus.families_there(prom, obs, Catalog((entry("vllm:a_total"), entry("vllm:b_total"))))
    assert verdict.evidence == {"selector": {"instance": "10.0.0.1:8200"}, "missing": [],
                                "unlabeled": ["vllm:b_total (no model_name)"]}


def test_unknown_version_counts_as_the_newest(api: PrometheusAPI, prom: Prometheus) -> None:
    """kills `applies_to(obs.version)` -> `applies_to(None)` in families_there: a family that newer vLLM
    releases dropped is looked up for a server that says it is 0.11, not for one of unknown version."""
    catalog = Catalog((entry("vllm:gone_total", versions="<0.12"),))
    page = exposing(("vllm:gone", "counter"))
    assert prometheus.families_there(prom, pod_obs(page, "0.11.0"), catalog).outcome == Outcome.FAILED
    assert prometheus.families_there(prom, pod_obs(page, None), catalog).outcome == Outcome.PASSED


# -- dashboards against Prometheus: what the panel's query returns there ----------------------------------------


def dashboard_panel(prom: Prometheus, expr: str, wait: float = 3.0) -> Any:
    """The verdict of a one-query panel "T" of dashboard d, judged against Prometheus, for one server whose
    prompt-token counter went from 10 to 50 during the workload."""
    from pytest_vllm_metrics import judging, readers
    from pytest_vllm_metrics.catalog import load_catalog
    from pytest_vllm_metrics.settings import Policy

    def page(tokens: int) -> Snapshot:
        return Snapshot.parse(f'# TYPE vllm:prompt_tokens counter\nvllm:prompt_tokens_total{{model_name="tiny"}} '
                              f'{tokens}\n# TYPE vllm:num_requests_running gauge\n'
                              f'vllm:num_requests_running{{model_name="tiny"}} 0\n')

    obs = Observation(Target("decode-0", "http://10.0.0.1:8200"), version="0.32.0", before=page(10), after=page(50))
    panel = readers.Reader("d", "T", (readers.Query("A", expr),))
    return judging.judge_reader(panel, [obs], load_catalog(), Policy(), prom=prom, wait=wait)


RATE = "sum(rate(vllm:prompt_tokens_total[5m]))"


@pytest.mark.parametrize(("data", "outcome"), [
    (vector(sample(2.5)), Outcome.PASSED),
    (vector(sample(0)), Outcome.FAILED),
    (vector(sample("NaN")), Outcome.FAILED),
    ({"resultType": "scalar", "result": [NOW, "3"]}, Outcome.PASSED),
    ({"resultType": "scalar", "result": [NOW, "0"]}, Outcome.FAILED),
    ({"resultType": "string", "result": [NOW, "text"]}, Outcome.FAILED),
    ({"resultType": "matrix", "result": [{"metric": {}, "values": [[NOW - 15, "0"], [NOW, "4"]]}]}, Outcome.PASSED),
    ({"resultType": "matrix", "result": [{"metric": {}, "values": [[NOW - 15, "4"], [NOW, "0"]]}]}, Outcome.FAILED),
])
def test_panel_of_a_moving_counter_that_prometheus_returns_only_zero_for_fails(
    api: PrometheusAPI, prom: Prometheus, data: dict[str, Any], outcome: Outcome
) -> None:
    """kills the reading of each result type in series.query_values (a scalar is its value, a string counts as 0,
    a matrix its newest value) and the only-0-or-NaN verdict of judging._judge_queries."""
    api.answer("count(vllm:prompt_tokens_total)", vector(sample(1)))
    api.answer(RATE, data)
    verdict = dashboard_panel(prom, RATE)
    assert verdict.outcome == outcome, verdict.message
    if outcome == Outcome.FAILED:
        assert verdict.message == 'panel "T" (d): Prometheus returns only 0 or NaN for its queries.'
    assert api.queries() == ["count(vllm:prompt_tokens_total)", RATE]


def test_panel_empty_at_first_is_asked_again_until_prometheus_has_the_samples(api: PrometheusAPI,
                                                                            prom: Prometheus) -> None:
    """kills series.poll (its bound, its return of the first answer with data): the second answer has data."""
    api.answer("count(vllm:prompt_tokens_total)", vector(sample(1)))
    api.answer(RATE, vector(), vector(sample(2.5)))
    verdict = dashboard_panel(prom, RATE, wait=60.0)
    assert verdict.outcome == Outcome.PASSED, verdict.message
    assert api.queries() == ["count(vllm:prompt_tokens_total)", RATE, RATE]  # no poll after the data came


@pytest.mark.parametrize(("count", "outcome", "said"), [
    (1, Outcome.INCONCLUSIVE, 'panel "T" (d): Prometheus holds fewer than two samples of vllm:prompt_tokens_total '
                              "within the panel's 5m window"),
    (2, Outcome.FAILED, f'panel "T" (d): Prometheus returns nothing for {RATE} although each of its selectors has '
                        "series there: the series do not match across its operators (the labels of one side differ "
                        "from the other's), or a filter removes them all."),
])
def test_panel_empty_for_the_whole_wait_is_too_few_samples_or_no_data(
    api: PrometheusAPI, prom: Prometheus, count: int, outcome: Outcome, said: str
) -> None:
    """kills judging._after_wait: fewer than two samples in the range window (one below the threshold) is the
    run's timing, two or more is the expression's own emptiness; and the bound of series.poll: the whole
    wait, and no more polls than one per 0.25 s of it (how many fit depends on the machine)."""
    api.answer("count(vllm:prompt_tokens_total)", vector(sample(1)))
    api.answer("count_over_time(vllm:prompt_tokens_total[5m])", vector(sample(count)))
    started = time.monotonic()
    verdict = dashboard_panel(prom, RATE, wait=0.6)
    waited = time.monotonic() - started
    assert verdict.outcome == outcome
    assert verdict.message.startswith(said)
    assert waited >= 0.6
    assert 1 <= api.queries().count(RATE) <= 4  # asked once, then polled after 0.25, 0.5 and 0.6 s at most
    assert api.queries()[-1] == "count_over_time(vllm:prompt_tokens_total[5m])"


def test_panel_selecting_a_label_prometheus_does_not_store_names_what_it_stores(api: PrometheusAPI,
                                                                               prom: Prometheus) -> None:
    """kills the /api/v1/series lookup of why_empty._label_mismatch (path, match[], limit, start an hour back at
    most) and its "Prometheus stores only" text."""
    api.series["vllm:num_requests_running"] = [{"__name__": "vllm:num_requests_running", "instance": "10.0.0.1:8200",
                                                "job": "vllm", "model_name": "tiny"}]
    expr = 'vllm:num_requests_running{kubernetes_namespace="llm-d"}'
    before = time.time()
    verdict = dashboard_panel(prom, expr)
    after = time.time()
    assert (verdict.outcome, verdict.evidence["panel_verdict"]) == (Outcome.FAILED, "label mismatch")
    assert verdict.message.startswith('panel "T" (d) selects vllm:num_requests_running by label '
                                      "kubernetes_namespace, which no series carries (Prometheus stores only "
                                      "instance, job, model_name), so the panel stays empty.")
    asked = [s.params for s in api.seen if s.path == "/api/v1/series"]
    assert len(asked) == 1 and asked[0]["match[]"] == "vllm:num_requests_running" and asked[0]["limit"] == "50"
    assert round(before - 600) <= float(asked[0]["start"]) <= round(after - 600)  # ten minutes before it asked


def test_every_target_scraped_complete_and_in_agreement(
    pytester: pytest.Pytester, sim_host: SimHost, prometheus_server: Callable[..., str]
) -> None:
    amd = sim_host.start(get_profile("x86_64"))
    arm = sim_host.start(get_profile("arm64-cpu"))
    prom = prometheus_server({"decode-0": amd.url, "decode-1": arm.url})
    result = run_suite(pytester, f"--vllm-url={amd.url}", f"--vllm-url={arm.url}", f"--prometheus-url={prom}",
                 "-k", "prometheus", "--vllm-report=report.json")
    result.assert_outcomes(passed=3)
    assert set(verdicts(pytester).values()) == {"passed"} and len(verdicts(pytester)) == 6
    result.stdout.fnmatch_lines(["PASSED *test_values_agree_with_direct_scrape*"])


def test_target_missing_from_the_scrape_config_is_named_with_the_likely_cause(
    pytester: pytest.Pytester, sim_host: SimHost, prometheus_server: Callable[..., str]
) -> None:
    scraped = sim_host.start(get_profile("x86_64"))
    forgotten = sim_host.start(get_profile("x86_64"))
    prom = prometheus_server({"decode-0": scraped.url})
    result = run_suite(pytester, f"--vllm-url={scraped.url}", f"--vllm-url={forgotten.url}", f"--prometheus-url={prom}",
                 "-k", "test_scraped_by_prometheus", "--vllm-report=report.json")
    result.assert_outcomes(failed=1)
    name = forgotten.url.removeprefix("http://")
    assert verdicts(pytester) == {("test_scraped_by_prometheus", scraped.url.removeprefix("http://")): "passed",
                                  ("test_scraped_by_prometheus", name): "failed"}
    result.stdout.fnmatch_lines([f"{name}: Prometheus does not scrape it (no up series for instance {name}): no "
                                 f"PodMonitor or ServiceMonitor selects it*"])


@pytest.mark.parametrize(("profile", "outcome"), [("x86_64", "PASSED"), ("arm64-cpu", "XFAIL")])
def test_hit_rate_panels_against_prometheus(
    pytester: pytest.Pytester, sim_host: SimHost, prometheus_server: Callable[..., str], profile: str, outcome: str
) -> None:
    sim = sim_host.start(get_profile(profile))
    prom = prometheus_server({"decode-0": sim.url})
    arch = ["--vllm-arch=arm64"] if profile.startswith("arm64") else []
    result = run_suite(pytester, f"--vllm-url={sim.url}", *arch, f"--prometheus-url={prom}",
                 f"--grafana-dashboard={DASHBOARDS / 'llm-d-performance.json'}", "-k", "test_panel")
    for panel in ("KV Cache Hit Rate", "Per-Pod Cache Hit Rates"):
        result.stdout.fnmatch_lines([f"{outcome} *test_panel[[]llm-d-performance::{panel}[]]*"])
    # every other vLLM panel of the current dashboard shows data on either server
    for panel in ("Time to First Token (TTFT)", "Request Throughput", "KV Cache Usage %"):
        result.stdout.fnmatch_lines([f"PASSED *test_panel[[]llm-d-performance::{panel}[]]"])
    assert result.parseoutcomes().get("failed", 0) == 0, result.stdout.str()


def test_prometheus_down_is_one_clear_message(pytester: pytest.Pytester, sim_host: SimHost) -> None:
    sim = sim_host.start(get_profile("x86_64"))
    result = run_suite(pytester, f"--vllm-url={sim.url}", "--prometheus-url=http://127.0.0.1:9", "-k", "prometheus")
    # Prometheus out of reach says nothing of the deployment: inconclusive, with its cause stated once
    assert result.parseoutcomes()["inconclusive"] == 3 and "failed" not in result.parseoutcomes()
    text = " ".join(result.stdout.str().split())
    assert text.count("Prometheus at http://127.0.0.1:9 cannot be reached") == 1
    assert "Check --prometheus-url" in text
    assert "Traceback" not in result.stdout.str()


# -- values_agree: a lagging Prometheus is inconclusive, a Prometheus that scraped and disagrees fails ----------


def test_prometheus_whose_newest_sample_predates_the_suites_scrape_is_inconclusive() -> None:
    obs = observation(page({PROMPT: 10.0}), page({PROMPT: 50.0}, taken_at=1000.0))
    verdict = prometheus.values_agree(None, obs, prometheus.Held(10.0, 999.5), waited=3.0)  # type: ignore[arg-type]
    assert verdict.outcome == Outcome.INCONCLUSIVE
    assert "has not scraped this target since the workload" in verdict.message and "3 s" in verdict.message


def test_prometheus_that_scraped_at_the_same_instant_and_disagrees_fails() -> None:
    # the boundary: a sample taken exactly when the suite scraped is a sample after the workload
    obs = observation(page({PROMPT: 10.0}), page({PROMPT: 50.0}, taken_at=1000.0))
    verdict = prometheus.values_agree(None, obs, prometheus.Held(10.0, 1000.0), waited=3.0)  # type: ignore[arg-type]
    assert verdict.outcome == Outcome.FAILED
    assert "scrapes another process or port" in verdict.message


@pytest.mark.parametrize(("held", "outcome"), [(50.0, Outcome.PASSED), (51.0, Outcome.PASSED),
                                               (49.0, Outcome.FAILED)])
def test_prometheus_value_equal_or_above_the_direct_scrape_passes(held: float, outcome: Outcome) -> None:
    obs = observation(page({PROMPT: 10.0}), page({PROMPT: 50.0}, taken_at=1000.0))
    verdict = prometheus.values_agree(None, obs, prometheus.Held(held, 1001.0), waited=3.0)  # type: ignore[arg-type]
    assert verdict.outcome == outcome


# -- the Prometheus `up` check (prometheus.scraped) ------------------------------------------------------------


class FakePrometheus:
    """The answers prometheus.scraped gets: `up` per series, the active and dropped targets. `scraped()` serves
    them from a Prometheus HTTP API on loopback (conftest.PrometheusAPI); `queries` is what it was asked."""

    def __init__(self, up: list[str], active: list[dict[str, Any]] | None = None,
                 dropped: list[dict[str, Any]] | None = None) -> None:
        self.up, self.active, self.dropped = up, active or [], dropped or []
        self.queries: list[str] = []


def scraped(fake: FakePrometheus, source: str = "url") -> Verdict:
    target = Target("decode-0", "http://10.0.0.1:8200", source=source, detail={"namespace": "llm-d"})
    obs = Observation(target)
    selector = ",".join(f'{key}="{value}"' for key, value in prometheus.selector_for(obs).items())
    api = PrometheusAPI(active=fake.active, dropped=fake.dropped)
    api.answer(f"up{{{selector}}}", vector(*(sample(value) for value in fake.up)))
    with SimHost() as host:
        api.url = host.start_app(api.app())
        prom = Prometheus(api.url)
        try:
            verdict = prometheus.scraped(prom, obs)
        finally:
            prom.close()
    fake.queries = api.queries()
    return verdict


def test_target_up_is_scraped() -> None:
    """kills `== 1` -> `!= 1` / `== 2` in prometheus.scraped, and its selector by instance."""
    fake = FakePrometheus(["1"])
    verdict = scraped(fake)
    assert verdict.outcome == Outcome.PASSED
    assert fake.queries == ['up{instance="10.0.0.1:8200"}']
    assert verdict.evidence == {"selector": {"instance": "10.0.0.1:8200"}, "up": ["1"]}


def test_pod_is_found_by_namespace_and_pod() -> None:
    """kills `source == "kubernetes"` -> `!=` in prometheus.selector_for."""
    fake = FakePrometheus(["1"])
    assert scraped(fake, "kubernetes").outcome == Outcome.PASSED
    assert fake.queries == ['up{namespace="llm-d",pod="decode-0"}']


def test_target_whose_up_is_0_is_down_with_prometheus_last_error() -> None:
    """kills `all(... == 1)` -> `any(...)` and the lastError of the matching active target in prometheus.scraped."""
    active = [{"labels": {"instance": "10.0.0.9:8200"}, "lastError": "other target"},
              {"labels": {"instance": "10.0.0.1:8200"}, "lastError": 'server returned HTTP status 500'}]
    verdict = scraped(FakePrometheus(["1", "0"], active))
    assert verdict.outcome == Outcome.FAILED
    assert verdict.message == ("decode-0: Prometheus scrapes it but the target is down (up=0): server returned HTTP "
                               "status 500. The pod does not answer on the scraped port or path; compare the "
                               "PodMonitor's port and path with vLLM's.")


def test_target_down_without_an_error_says_down_only() -> None:
    """kills `': ' + error if error else ''` -> always `': ' + error` in prometheus.scraped."""
    verdict = scraped(FakePrometheus(["0"], [{"discoveredLabels": {"__address__": "10.0.0.1:8200"}}]))
    assert verdict.message.startswith("decode-0: Prometheus scrapes it but the target is down (up=0). The pod")


def test_pod_dropped_by_relabeling_is_named_as_such() -> None:
    """kills the droppedTargets lookup by `__meta_kubernetes_pod_name` in prometheus._find_target."""
    dropped = [{"discoveredLabels": {"__meta_kubernetes_pod_name": "decode-1"}},
               {"discoveredLabels": {"__meta_kubernetes_pod_name": "decode-0"}}]
    verdict = scraped(FakePrometheus([], dropped=dropped), "kubernetes")
    assert verdict.outcome == Outcome.FAILED
    assert verdict.message.startswith("decode-0: Prometheus discovers it but relabeling drops it")


@pytest.mark.parametrize(("source", "where"), [("url", "instance 10.0.0.1:8200"), ("kubernetes", "namespace llm-d")])
def test_target_prometheus_does_not_know_names_its_selector(source: str, where: str) -> None:
    """kills `"namespace" in selector` -> `not in` in prometheus.scraped."""
    dropped = [{"discoveredLabels": {"__address__": "10.0.0.2:8200", "pod": "decode-2"}}]
    verdict = scraped(FakePrometheus([], dropped=dropped), source)
    assert verdict.message.startswith(f"decode-0: Prometheus does not scrape it (no up series for {where}): no "
                                      f"PodMonitor or ServiceMonitor selects it")


def test_target_whose_up_is_0_in_a_real_prometheus_is_down_with_its_error(
    sim_host: SimHost, prometheus_server: Callable[..., str]
) -> None:
    """kills `all(float(v) == 1 ...)` -> `True` in prometheus.scraped against Prometheus' real answer: a target
    that stopped answering reads up=0 with Prometheus' own last scrape error."""
    alive = sim_host.start(get_profile("x86_64"))
    gone = sim_host.start(get_profile("x86_64"))
    prom = prometheus.Prometheus(prometheus_server({"decode-0": alive.url, "decode-1": gone.url}))
    sim_host.stop(gone)  # nothing listens on its port any more
    instance = gone.url.removeprefix("http://")
    deadline = time.monotonic() + 60  # Prometheus scrapes every second: bounded (generously) wait for the failed scrape
    while prom.query(f'up{{instance="{instance}"}} == 0') == [] and time.monotonic() < deadline:
        time.sleep(0.2)  # polling an external process, bounded by `deadline`
    try:
        down = prometheus.scraped(prom, Observation(Target(instance, gone.url)))
        up = prometheus.scraped(prom, Observation(Target(alive.url.removeprefix("http://"), alive.url)))
    finally:
        prom.close()
    assert down.outcome == Outcome.FAILED, down.message
    assert down.message.startswith(f"{instance}: Prometheus scrapes it but the target is down (up=0): ")
    assert "connection refused" in down.message
    assert up.outcome == Outcome.PASSED


# -- Prometheus' value against the direct scrape (prometheus.values_agree) ---------------------------------------

PROMPT = "vllm:prompt_tokens_total"


def agree(held: prometheus.Held | None, *, after: float | None = 50.0, taken_at: float | None = 1000.0) -> Verdict:
    """values_agree for a target the suite saw go from 10 to `after` prompt tokens, scraped at `taken_at`."""
    second = page({PROMPT: after} if after is not None else {}, taken_at=taken_at)
    obs = observation(page({PROMPT: 10.0}), second)
    return prometheus.values_agree(None, obs, held, waited=7.0)  # type: ignore[arg-type]


def test_prometheus_holding_the_direct_value_passes_with_both_in_the_evidence() -> None:
    """kills the evidence keys and `evidence=evidence` of the PASSED verdict of prometheus.values_agree."""
    verdict = agree(prometheus.Held(50.0, 1001.0))
    assert verdict.outcome == Outcome.PASSED
    assert verdict.evidence == {"metric": PROMPT, "direct_before": 10.0, "direct_after": 50.0, "prometheus": 50.0,
                                "prometheus_sampled_at": 1001.0}


def test_prometheus_value_within_rounding_of_the_direct_one_passes() -> None:
    """kills `math.isclose(value, after) or` dropped in prometheus.values_agree: 50 read back as 49.999999999999."""
    assert agree(prometheus.Held(50.0 - 1e-12, 1001.0)).outcome == Outcome.PASSED


FAILED_TAIL = ("even after waiting for its scrape interval: Prometheus scrapes another process or port than the "
               "suite, or its scrapes fail.")


def test_prometheus_without_the_series_fails_saying_it_holds_none() -> None:
    """kills `held.value if held else None` / `held.sampled_at if held else None` -> always `held.…` (no Held at
    all) and the evidence of the FAILED verdict of prometheus.values_agree."""
    verdict = agree(None)
    assert verdict.outcome == Outcome.FAILED
    assert verdict.message == (f"decode-0: Prometheus holds {PROMPT} = None while the direct scrape saw 50.0 after "
                               f"the workload (and 10.0 before), {FAILED_TAIL}")
    assert verdict.evidence == {"metric": PROMPT, "direct_before": 10.0, "direct_after": 50.0, "prometheus": None,
                                "prometheus_sampled_at": None}


@pytest.mark.parametrize(("held", "taken_at"), [(prometheus.Held(10.0, None), 1000.0),
                                                (prometheus.Held(10.0, 999.0), None)])
def test_lag_is_only_inconclusive_when_both_sample_times_are_known(held: prometheus.Held,
                                                                   taken_at: float | None) -> None:
    """kills `held.sampled_at is not None` / `scraped_at is not None` -> `is None` and `and` -> `or` of the lag
    test of prometheus.values_agree: without both times nothing says Prometheus lags, so it disagrees."""
    verdict = agree(held, taken_at=taken_at)
    assert verdict.outcome == Outcome.FAILED
    assert verdict.message.endswith(FAILED_TAIL)


def test_prometheus_that_lags_is_inconclusive_saying_by_how_much_and_how_long_the_suite_waited() -> None:
    """kills the message and evidence of the INCONCLUSIVE verdict of prometheus.values_agree."""
    verdict = agree(prometheus.Held(10.0, 988.0))
    assert verdict.outcome == Outcome.INCONCLUSIVE
    assert verdict.message == (f"decode-0: Prometheus has not scraped this target since the workload (its newest "
                               f"sample of {PROMPT} is 12 s older than the suite's scrape) within the 7 s the suite "
                               f"waits (two scrape intervals, capped by --vllm-phase-timeout); rerun, or raise "
                               f"--vllm-phase-timeout.")
    assert verdict.evidence["prometheus_sampled_at"] == 988.0


def test_direct_scrape_without_the_counter_after_the_workload_disagrees() -> None:
    """kills `after is not None and` -> `or` in prometheus.values_agree (a missing counter is no agreement)."""
    verdict = agree(prometheus.Held(50.0, 1001.0), after=None)
    assert verdict.outcome == Outcome.FAILED
    assert "while the direct scrape saw None after the workload" in verdict.message


# -- prometheus.scraped: the evidence of each failure, and targets found by address ---------------------------


def test_down_target_found_by_its_scraped_address_quotes_its_error_with_the_evidence() -> None:
    """kills the `__address__` lookup of prometheus._find_target (an instance relabeled to a name is still found
    by the address Prometheus scrapes) and `evidence=evidence` of the up=0 verdict of prometheus.scraped."""
    active = [{"discoveredLabels": {"__address__": "10.0.0.1:8200"}, "labels": {"instance": "decode-0"},
               "lastError": "connection refused"}]
    verdict = scraped(FakePrometheus(["0"], active))
    assert verdict.message.startswith("decode-0: Prometheus scrapes it but the target is down (up=0): connection "
                                      "refused. The pod")
    assert verdict.evidence == {"selector": {"instance": "10.0.0.1:8200"}, "up": ["0"]}


def test_down_target_no_longer_among_the_active_ones_says_down_only() -> None:
    """kills `if active` -> `or True` and `else ""` -> `else "XXXX"` in prometheus.scraped: up=0 is still
    stored for a target Prometheus has stopped listing."""
    verdict = scraped(FakePrometheus(["0"], [{"labels": {"instance": "10.0.0.9:8200"}, "lastError": "other"}]))
    assert verdict.outcome == Outcome.FAILED
    assert verdict.message.startswith("decode-0: Prometheus scrapes it but the target is down (up=0). The pod")


def test_dropped_and_unknown_targets_keep_the_evidence() -> None:
    """kills `evidence=evidence` -> None / dropped of the relabeling-drop and not-scraped verdicts of
    prometheus.scraped."""
    dropped = [{"discoveredLabels": {"__meta_kubernetes_pod_name": "decode-0"}}]
    evidence = {"selector": {"namespace": "llm-d", "pod": "decode-0"}, "up": []}
    assert scraped(FakePrometheus([], dropped=dropped), "kubernetes").evidence == evidence
    assert scraped(FakePrometheus([]), "kubernetes").evidence == evidence


def test_a_targets_series_are_found_by_pod_on_kubernetes_and_by_instance_otherwise() -> None:
    pod = Target("decode-0", "http://10.0.0.1:8000", source=TargetSource.KUBERNETES,
                 detail={"namespace": "llm-d", "node": "n1"})
    assert prometheus.selector_for(Observation(pod)) == {"namespace": "llm-d", "pod": "decode-0"}
    url = Target("u", "http://10.0.0.1:8000/base")
    assert prometheus.selector_for(Observation(url)) == {"instance": "10.0.0.1:8000"}
