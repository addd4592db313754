"""--vllm-upgrade-to: what goes dark among the metrics' consumers when the fleet moves to another vLLM.

The dashboards: tests/data/upgrade (vLLM's example dashboard as it was before 0.11 renamed the KV-cache gauge,
see its README) and tests/data/dashboards (the real llm-d dashboards, which already read the new names)."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import httpx
import jsonschema
import pytest

from conftest import exposition, flat, said
from pytest_vllm_metrics.catalog import Entry, load_catalog
from pytest_vllm_metrics.observe import Observation, observe
from pytest_vllm_metrics.outcome import Level, Outcome
from pytest_vllm_metrics.readers import Query, Reader
from pytest_vllm_metrics.report import schema
from pytest_vllm_metrics.settings import Settings
from pytest_vllm_metrics.sim import SimHost, get_profile
from pytest_vllm_metrics.snapshot import Snapshot
from pytest_vllm_metrics.targets import Target
from pytest_vllm_metrics.upgrade import Fate, _is_version, _kept_by_flag, _where, fate, judge, metrics_read
from pytest_vllm_metrics.upgrade import fleet as upgrade_fleet
from pytest_vllm_metrics.upgrade import policy as upgrade_policy
from pytest_vllm_metrics.versions import VersionRange

DATA = Path(__file__).parent / "data"
UPGRADE = DATA / "upgrade"
LLM_D = DATA / "dashboards"


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-p", "no:cacheprovider", "-rA", f"--grafana-dashboard={UPGRADE}",
                              f"--grafana-dashboard={LLM_D}", "--vllm-report=report.json", *args)


def outcomes(pytester: pytest.Pytester) -> dict[str, str]:
    """Consumer (dashboard :: title) -> outcome, from the JSON report's upgrade section."""
    document = json.loads((pytester.path / "report.json").read_text())
    jsonschema.validate(document, schema())
    return {f"{c['dashboard']} :: {c['title']}": c["outcome"] for c in document["upgrade"]["consumers"]}


def failed(pytester: pytest.Pytester) -> set[str]:
    return {name for name, outcome in outcomes(pytester).items() if outcome == "failed"}


def test_to_0_11_names_the_kv_cache_usage_panels_on_a_0_10_fleet(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--vllm-sim=x86_64-0.10", "--vllm-sim=x86_64-0.10", "--vllm-upgrade-to=0.11.0",
                 "--html=report.html")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert failed(pytester) == {"vllm-example-0.10 :: Cache Utilization"}
    found = outcomes(pytester)
    # a query that also reads the new name keeps its data; llm-d's dashboards already read the new names
    assert found["vllm-example-0.10 :: KV Cache Usage (old or new name)"] == "passed"
    assert found["llm-d-performance :: KV Cache Usage %"] == "passed"
    assert found["llm-d-performance :: Per-Pod KV Cache Usage"] == "passed"
    # the EPP's panels are not vLLM's: an upgrade of vLLM does not change them
    assert found["llm-d-performance :: EPP KV Cache Pool Utilization"] == "skipped"
    # a name vLLM never exposed (the counter without _total) is the dashboard check's to report
    assert found["llm-d-failure-saturation :: Request Preemptions"] == "skipped"
    assert said(result, 'panel "Request Preemptions" (llm-d Failure & Saturation Indicators (panels reconstructed)) '
                        "reads no vLLM metric the catalog knows (vllm:num_preemptions: not vLLM's names; the "
                        "dashboard check says why)")
    assert said(result, 'panel "Cache Utilization" (vLLM) goes dark when the fleet moves from vLLM 0.10.1 to 0.11.0: '
                        "vllm:gpu_cache_usage_perc is hidden from vLLM 0.11.0 (on 0.11.0, "
                        "--show-hidden-metrics-for-version=0.10 shows it again) and removed in 0.12.0; read "
                        "vllm:kv_cache_usage_perc instead")
    result.stdout.fnmatch_lines([
        "upgrade to vLLM 0.11.0: 1 of * consumers go dark (the fleet runs 0.10.1 on 2 targets)",
        "*METRIC*ON 0.11.0*BUYS TIME*REMOVED*RENAMED TO",
        "  panel vllm-example-0.10 :: Cache Utilization",
        "    vllm:gpu_cache_usage_perc  hidden since 0.11.0  --show-hidden-metrics-for-version=0.10  0.12.0 *"
        "vllm:kv_cache_usage_perc",
        "  policy: A metric deprecated in vLLM X.Y is hidden in X.Y+1*"])
    html = (pytester.path / "report.html").read_text()
    assert "Upgrade to vLLM 0.11.0: what goes dark" in html
    assert ("<td>vllm-example-0.10 :: Cache Utilization</td><td><code>vllm:gpu_cache_usage_perc</code></td>"
            "<td>hidden since 0.11.0</td><td><code>--show-hidden-metrics-for-version=0.10</code></td>"
            "<td>0.12.0</td><td><code>vllm:kv_cache_usage_perc</code></td>") in html


def test_to_0_13_names_what_read_the_time_per_output_token_histogram(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--vllm-sim=x86_64-0.10", "--vllm-upgrade-to=0.13.0")
    assert failed(pytester) == {"vllm-example-0.10 :: Time Per Output Token Latency",
                                "vllm-example-0.10 :: Cache Utilization"}
    # vLLM kept the per-step histogram hidden until 0.15.0 (the policy says it would be gone in 0.13.0)
    assert said(result, "vllm:time_per_output_token_seconds is hidden from vLLM 0.12.0 (on 0.13.0, "
                        "--show-hidden-metrics-for-version=0.12 shows it again) and removed in 0.15.0; read "
                        "vllm:inter_token_latency_seconds instead.")
    assert said(result, "vllm:gpu_cache_usage_perc is hidden from vLLM 0.11.0 and removed in 0.12.0, so 0.13.0 "
                        "does not have it; read vllm:kv_cache_usage_perc instead")
    result.stdout.fnmatch_lines(["    vllm:gpu_cache_usage_perc * removed (hidden since 0.11.0)  -  * 0.12.0 *"
                                 "vllm:kv_cache_usage_perc"])
    # the histogram's _bucket, _sum and _count are one family: one line, not three
    assert flat(result).count("vllm:time_per_output_token_seconds hidden since 0.12.0") == 1


def test_one_release_before_the_rename_nothing_goes_dark(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--vllm-sim=x86_64-0.10", "--vllm-upgrade-to=0.10.2")
    assert result.ret == pytest.ExitCode.OK
    assert failed(pytester) == set()
    result.stdout.fnmatch_lines(["upgrade to vLLM 0.10.2: 0 of * consumers go dark (the fleet runs 0.10.1 on 1 "
                                 "target)"])


def test_no_workload_is_sent_the_run_only_scrapes(pytester: pytest.Pytester, sim_host: SimHost) -> None:
    sim = sim_host.start(get_profile("x86_64-0.10"))
    result = run(pytester, f"--vllm-url={sim.url}", "--vllm-upgrade-to=0.11.0")
    assert failed(pytester) == {"vllm-example-0.10 :: Cache Utilization"}
    # only test_upgrade ran: the bundled checks that need the workload were not collected
    assert "test_upgrade.py" in result.stdout.str() and "test_metrics.py" not in result.stdout.str()
    page = Snapshot.parse(httpx.get(f"{sim.url}/metrics", timeout=10).text)
    assert page.value("vllm:request_success_total") == 0
    assert not [s for s in page.series("http_requests_total") if dict(s.labels).get("handler", "").startswith("/v1")]


def test_an_unreachable_fleet_is_inconclusive(pytester: pytest.Pytester) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = run(pytester, f"--vllm-url=http://127.0.0.1:{port}", "--vllm-upgrade-to=0.11.0", "--vllm-timeout=2")
    assert result.ret == 75
    assert set(outcomes(pytester).values()) <= {"inconclusive", "skipped"}
    assert "inconclusive" in outcomes(pytester).values()
    assert said(result, "no target could be scraped nor told its version, so what the fleet runs today is unknown")
    # the cause in full: test_reachable, which reports it in an ordinary run, is not collected here
    assert said(result, f"cannot connect to http://127.0.0.1:{port} (All connection attempts failed)")
    assert "see test_reachable" not in flat(result)


def test_without_a_consumer_the_check_says_what_to_pass(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("-p", "no:cacheprovider", "-rs", "--vllm-sim=x86_64-0.10",
                                "--vllm-upgrade-to=0.11.0")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*no consumer of the metrics to judge: pass --grafana-dashboard or "
                                 "--prometheus-rules*"])


@pytest.mark.parametrize("value", ["latest", "1", "0.x", "v"])
def test_a_version_that_is_not_a_release_is_a_usage_error(pytester: pytest.Pytester, value: str) -> None:
    result = pytester.runpytest("-p", "no:cacheprovider", "--vllm-sim=x86_64", f"--vllm-upgrade-to={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert said(result, f"--vllm-upgrade-to: {value!r} is not a vLLM release; pass the version the fleet moves to "
                        f"as a PEP 440 release with at least major and minor, e.g. --vllm-upgrade-to=0.13.0.")
    assert "Traceback" not in flat(result)


@pytest.mark.parametrize(("raw", "release"), [("0.13", "0.13.0"), ("v0.11.1", "0.11.1"), ("0.13.0rc1+cpu", "0.13.0")])
def test_a_release_is_read_as_the_catalog_reads_versions(pytester: pytest.Pytester, raw: str, release: str) -> None:
    run(pytester, "--vllm-sim=x86_64-0.10", f"--vllm-upgrade-to={raw}")
    document = json.loads((pytester.path / "report.json").read_text())
    assert document["upgrade"]["to"] == release


# -- the rules, at their boundaries --------------------------------------------------------------------------

CATALOG = load_catalog()


@pytest.mark.parametrize(("to", "state", "flag", "removed"), [
    ("0.10.2", None, None, None),  # one release before it is hidden
    ("0.11.0", "hidden", "--show-hidden-metrics-for-version=0.10", "0.12.0"),
    ("0.11.2", "hidden", "--show-hidden-metrics-for-version=0.10", "0.12.0"),
    ("0.12.0", "removed", None, "0.12.0"),
])
def test_the_kv_cache_gauge_follows_the_policy(to: str, state: str | None, flag: str | None,
                                              removed: str | None) -> None:
    entry = CATALOG.get("vllm:gpu_cache_usage_perc")
    assert entry is not None
    gone = fate(entry, to)
    assert (gone.state, gone.flag, gone.removed_in) == (state, flag, removed) if gone else state is None


@pytest.mark.parametrize(("to", "state", "flag"), [
    ("0.11.2", None, None),
    ("0.12.0", "hidden", "--show-hidden-metrics-for-version=0.11"),
    ("0.14.1", "hidden", "--show-hidden-metrics-for-version=0.13"),  # the flag takes the running minor - 1
    ("0.15.0", "removed", None),
])
def test_the_per_step_tpot_histogram_was_kept_hidden_longer_than_the_policy(to: str, state: str | None,
                                                                           flag: str | None) -> None:
    entry = CATALOG.get("vllm:time_per_output_token_seconds")
    assert entry is not None
    gone = fate(entry, to)
    assert (gone.state, gone.flag, gone.replaced_by) == (state, flag, "vllm:inter_token_latency_seconds") \
        if gone else state is None


def test_a_downgrade_names_what_does_not_exist_yet() -> None:
    entry = CATALOG.get("vllm:kv_cache_usage_perc")
    assert entry is not None
    gone = fate(entry, "0.9.1")
    assert gone is not None and gone.state == "not yet"
    assert gone.describe("0.9.1") == "vllm:kv_cache_usage_perc does not exist yet in vLLM 0.9.1 (vLLM >=0.9.2 emits it)"


# -- other consumers than panels: rules and scalers, judged over the simulator's real HTTP ------------------

def _observed(sim_host: SimHost, profile: str) -> list[Observation]:
    sim = sim_host.start(get_profile(profile))
    settings = Settings(vllm_url=(sim.url,), vllm_upgrade_to="0.11.0")
    return list(asyncio.run(observe([Target(name="pod-a", base_url=sim.url)], settings)).values())


# PrometheusRule (monitoring.coreos.com/v1) spec.groups[].rules[]: an alert on the KV-cache gauge as written
# before the rename, and a recording rule on the per-step TPOT histogram (shapes of consumers-and-semantics §4).
ALERT = Reader("vllm-alerts", "VLLMKVCacheAlmostFull",
              (Query("expr", "avg by (namespace, model_name) (vllm:gpu_cache_usage_perc) > 0.9"),), kind="alert")
RECORD = Reader("vllm-recording", "vllm:tpot_seconds:p99", (Query("expr", (
    "histogram_quantile(0.99, sum by (le, model_name) (rate(vllm:time_per_output_token_seconds_bucket[5m])))")),),
    kind="record")
# KEDA ScaledObject (keda.sh/v1alpha1) spec.triggers[].metadata.query on the new name
SCALER = Reader("llm-d-decode", "prometheus trigger", (
    Query("query", 'sum(vllm:kv_cache_usage_perc{namespace="llm-d"})'),), kind="keda")


def test_an_alert_on_the_old_kv_cache_gauge_goes_dark_in_0_11(sim_host: SimHost) -> None:
    verdict = judge(ALERT, _observed(sim_host, "x86_64-0.10"), CATALOG, "0.11.0")
    assert verdict.outcome == Outcome.FAILED
    assert verdict.message.startswith('alert "VLLMKVCacheAlmostFull" (vllm-alerts) goes dark when the fleet moves '
                                      'from vLLM 0.10.1 to 0.11.0: vllm:gpu_cache_usage_perc is hidden')
    (dark,) = verdict.evidence["upgrade"]["dark"]
    assert dark["flag"] == "--show-hidden-metrics-for-version=0.10" and dark["from"] == ["0.10.1"]


def test_a_recording_rule_keeps_its_data_in_0_11_and_loses_it_in_0_12(sim_host: SimHost) -> None:
    observed = _observed(sim_host, "x86_64-0.10")
    assert judge(RECORD, observed, CATALOG, "0.11.2").outcome == Outcome.PASSED
    later = judge(RECORD, observed, CATALOG, "0.12.0")
    assert later.outcome == Outcome.FAILED and "--show-hidden-metrics-for-version=0.11" in later.message


def test_a_scaler_on_the_new_name_keeps_its_data(sim_host: SimHost) -> None:
    verdict = judge(SCALER, _observed(sim_host, "x86_64-0.10"), CATALOG, "0.13.0")
    assert verdict.outcome == Outcome.PASSED, verdict.message


def test_a_family_already_dark_on_the_fleet_is_not_the_upgrades_to_report(sim_host: SimHost) -> None:
    # a 0.32 fleet has no gpu_cache_usage_perc today: the dashboard and rule checks say so, not the upgrade
    verdict = judge(ALERT, _observed(sim_host, "x86_64"), CATALOG, "0.33.0")
    assert verdict.outcome == Outcome.PASSED


PAGE_0_11_WITH_FLAG = """\
# HELP vllm:gpu_cache_usage_perc GPU KV-cache usage.DEPRECATED: Use vllm:kv_cache_usage_perc instead.
# TYPE vllm:gpu_cache_usage_perc gauge
vllm:gpu_cache_usage_perc{engine="0",model_name="m"} 0.0
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.0
"""


def test_a_fleet_that_already_shows_the_hidden_family_keeps_it_within_the_minor() -> None:
    # vLLM 0.11.1 started with --show-hidden-metrics-for-version=0.10 still exposes the old gauge
    observed = [Observation(Target(name="pod-a", base_url="http://pod-a:8000"), version="0.11.1",
                            before=Snapshot.parse(PAGE_0_11_WITH_FLAG))]
    same_minor = judge(ALERT, observed, CATALOG, "0.11.2")
    assert same_minor.outcome == Outcome.PASSED
    assert "already shows it with --show-hidden-metrics-for-version=0.10" in same_minor.message
    assert judge(ALERT, observed, CATALOG, "0.12.0").outcome == Outcome.FAILED


def test_without_a_page_the_version_decides() -> None:
    # /version answered but /metrics was not kept: the catalog's range for that version says what it provides
    observed = [Observation(Target(name="pod-a", base_url="http://pod-a:8000"), version="0.10.1")]
    assert judge(ALERT, observed, CATALOG, "0.11.0").outcome == Outcome.FAILED
    assert judge(ALERT, observed, CATALOG, "0.10.2").outcome == Outcome.PASSED


@pytest.mark.parametrize("option", ["--vllm-upgrade-to=0.13.0", "--vllm-epp-url=http://127.0.0.1:9090"])
def test_a_fleet_check_without_a_fleet_is_a_usage_error(pytester: pytest.Pytester, option: str) -> None:
    result = pytester.runpytest("-p", "no:cacheprovider", f"--grafana-dashboard={UPGRADE}", option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert said(result, f"{option.split('=')[0]} judges the running fleet, and no vLLM target is given: pass "
                        f"--vllm-namespace (or --vllm-url, --vllm-sim)")


def test_the_markdown_summary_carries_the_upgrade_table(pytester: pytest.Pytester) -> None:
    run(pytester, "--vllm-sim=x86_64-0.10", "--vllm-upgrade-to=0.13.0", "--vllm-report=summary.md")
    text = (pytester.path / "summary.md").read_text()
    assert "### Upgrade to vLLM 0.13.0: 2 of 27 consumers go dark" in text
    assert ("| panel | vllm-example-0.10 :: Time Per Output Token Latency | `vllm:time_per_output_token_seconds` | "
            "hidden since 0.12.0 | `--show-hidden-metrics-for-version=0.12` | 0.15.0 | "
            "`vllm:inter_token_latency_seconds` |") in text


def test_to_0_11_names_the_alerts_on_the_kv_cache_gauge_from_a_rule_file(pytester: pytest.Pytester) -> None:
    # the rules of tests/data/rules, as --prometheus-rules reads them (promtool checks them in test_consumers.py)
    result = run(pytester, "--vllm-sim=x86_64-0.10", "--vllm-upgrade-to=0.11.0",
                 f"--prometheus-rules={DATA / 'rules' / 'vllm-alerts.yaml'}")
    assert failed(pytester) == {"vllm-example-0.10 :: Cache Utilization", "vllm-alerts :: VLLMKVCacheHigh"}
    result.stdout.fnmatch_lines(["  alert vllm-alerts :: VLLMKVCacheHigh",
                                 "    vllm:gpu_cache_usage_perc  hidden since 0.11.0  "
                                 "--show-hidden-metrics-for-version=0.10  0.12.0 *vllm:kv_cache_usage_perc"])


# -- the forecast's words and rules in-process: each fate, what a consumer reads, the verdict's cases ----------

def _entry(versions: str, replaced_by: str | None = None, name: str = "vllm:old_total") -> Entry:
    """A catalog entry of our own: a family emitted by default in `versions`."""
    return Entry(name, "counter", Level.MUST, "core", VersionRange(versions), replaced_by=replaced_by)


def test_each_fate_in_words() -> None:
    kv = CATALOG.get("vllm:gpu_cache_usage_perc")
    assert kv is not None
    assert fate(kv, "0.11.0") == Fate("vllm:gpu_cache_usage_perc", "hidden", ">=0.7.3,<0.11.0", "0.11.0", "0.12.0",
                                      "--show-hidden-metrics-for-version=0.10", "vllm:kv_cache_usage_perc")
    assert fate(kv, "0.11.0").describe("0.11.0") == (  # type: ignore[union-attr]
        "vllm:gpu_cache_usage_perc is hidden from vLLM 0.11.0 (on 0.11.0, --show-hidden-metrics-for-version=0.10 "
        "shows it again) and removed in 0.12.0; read vllm:kv_cache_usage_perc instead")
    assert fate(kv, "0.12.0").describe("0.12.0") == (  # type: ignore[union-attr]
        "vllm:gpu_cache_usage_perc is hidden from vLLM 0.11.0 and removed in 0.12.0, so 0.12.0 does not have it; "
        "read vllm:kv_cache_usage_perc instead")
    assert fate(kv, "0.10.2") is None and fate(kv, "0.7.3") is None
    # a family without successor, hidden from a major release: no previous minor for the flag to name
    major = _entry(">=0.5.0,<2.0.0,<1.0.0")
    assert fate(major, "0.9.9") is None
    assert fate(major, "1.0.0") == Fate("vllm:old_total", "hidden", ">=0.5.0,<2.0.0,<1.0.0", "1.0.0", "1.1.0")
    assert fate(major, "1.0.0").describe("1.0.0") == (  # type: ignore[union-attr]
        "vllm:old_total is hidden from vLLM 1.0.0 (vLLM can show it again) and removed in 1.1.0")
    assert fate(major, "1.0.9").state == "hidden"  # type: ignore[union-attr]
    assert fate(major, "1.1.0").describe("1.1.0") == (  # type: ignore[union-attr]
        "vllm:old_total is hidden from vLLM 1.0.0 and removed in 1.1.0, so 1.1.0 does not have it")
    # before the family existed, or a family that never ends: not there yet
    assert fate(major, "0.4.0") == Fate("vllm:old_total", "not yet", ">=0.5.0,<2.0.0,<1.0.0")
    new = _entry(">=0.9.2", replaced_by="vllm:newer")
    assert fate(new, "0.9.1") == Fate("vllm:old_total", "not yet", ">=0.9.2", replaced_by="vllm:newer")
    assert fate(new, "0.9.1").describe("0.9.1") == (  # type: ignore[union-attr]
        "vllm:old_total does not exist yet in vLLM 0.9.1 (vLLM >=0.9.2 emits it)")
    assert fate(_entry(">=0.5.0,<=1.0.0"), "1.0.1").state == "not yet"  # type: ignore[union-attr]


def test_the_families_a_consumer_reads_in_its_queries_order() -> None:
    reader = Reader("d", "T", (Query("A", "rate(vllm:b_total[$__rate_interval]) / rate(vllm:a_total[5m])"),
                               Query("B", "sum(vllm:a_total) + up + process_start_time_seconds"),
                               Query("C", "vllm:c_total{model_name=~\"$model\""),  # not PromQL: its names, plainly
                               Query("D", "foo{x=\"vllm:d\"} + vllm:e")))
    assert metrics_read(reader) == ["vllm:b_total", "vllm:a_total", "vllm:c_total", "vllm:e"]
    assert metrics_read(Reader("d", "T", ())) == []


def _obs(name: str, version: str | None, page: Snapshot | None = None) -> Observation:
    return Observation(Target(name=name, base_url=f"http://{name}:8000"), version=version, before=page)


GAUGE_PAGE = Snapshot.parse(PAGE_0_11_WITH_FLAG)


def test_the_fleets_versions() -> None:
    fleet_of = [_obs("a", "0.10.1"), _obs("b", None, GAUGE_PAGE), _obs("c", "0.10.1", GAUGE_PAGE),
                _obs("d", None)]
    assert upgrade_fleet(fleet_of) == {"0.10.1": ["a", "c"], "unknown": ["b"]}
    assert upgrade_fleet([]) == {}


def test_a_consumer_of_no_vllm_metric_is_not_the_upgrades_to_judge() -> None:
    none = judge(Reader("d", "T", (Query("A", "up"),), dashboard_title="D"), [_obs("a", "0.10.1")], CATALOG,
                 "0.11.0")
    assert (none.outcome, none.message, none.level) == (
        Outcome.SKIPPED, 'panel "T" (D) reads no vLLM metric the catalog knows, so a vLLM upgrade does not change '
                         'what it shows.', Level.MUST)
    assert none.evidence == {"upgrade": {"to": "0.11.0", "kind": "panel", "dashboard": "d", "title": "T",
                                         "reads": [], "dark": []}}
    unknown = judge(Reader("d", "T", (Query("A", "vllm:nope + vllm:neither"),), kind="alert"),
                    [_obs("a", "0.10.1")], CATALOG, "0.11.0")
    assert (unknown.outcome, unknown.message) == (
        Outcome.SKIPPED, 'alert "T" (d) reads no vLLM metric the catalog knows (vllm:nope, vllm:neither: not vLLM\'s '
                         'names; the dashboard check says why), so a vLLM upgrade does not change what it shows.')


def test_a_fleet_that_told_nothing_is_inconclusive_with_its_causes() -> None:
    gone = list(asyncio.run(observe([Target(name="gone", base_url="http://127.0.0.1:9")],
                                    Settings(vllm_requests=1))).values())
    verdict = judge(ALERT, gone, CATALOG, "0.11.0")
    assert verdict.outcome == Outcome.INCONCLUSIVE and verdict.level == Level.MUST
    assert verdict.message == (
        'alert "VLLMKVCacheAlmostFull" (vllm-alerts): no target could be scraped nor told its version, so what the '
        "fleet runs today is unknown: gone: cannot connect to http://127.0.0.1:9 (All connection attempts failed). "
        "Check that the server is running and that the host and port are right.")
    assert "fleet" not in verdict.evidence["upgrade"]
    assert judge(ALERT, [], CATALOG, "0.11.0").message.endswith("so what the fleet runs today is unknown: no target")


def test_what_goes_dark_what_is_kept_and_why() -> None:
    both = Reader("d", "KV", (Query("A", "vllm:gpu_cache_usage_perc or vllm:kv_cache_usage_perc"),),
                  dashboard_title="D")
    page = exposition({"vllm:gpu_cache_usage_perc": 0.1, "vllm:kv_cache_usage_perc": 0.1})
    fleet_of = [_obs("a", "0.10.1", page), _obs("b", None, page)]
    kept = judge(both, fleet_of, CATALOG, "0.11.0")  # it also reads the successor, emitted on 0.11
    assert (kept.outcome, kept.message) == (
        Outcome.PASSED, 'panel "KV" (D) keeps its data on vLLM 0.11.0 (vllm:gpu_cache_usage_perc goes dark in vLLM '
                        '0.11.0, but it also reads vllm:kv_cache_usage_perc).')
    assert kept.evidence["upgrade"]["kept"] == [
        "vllm:gpu_cache_usage_perc goes dark in vLLM 0.11.0, but it also reads vllm:kv_cache_usage_perc"]
    assert kept.evidence["upgrade"]["fleet"] == {"0.10.1": ["a"], "unknown": ["b"]}
    # two families dark, on versions named in order, each with its fate
    two = Reader("d", "Two", (Query("A", "vllm:gpu_cache_usage_perc"),
                              Query("B", "rate(vllm:time_per_output_token_seconds_sum[5m])")), kind="record")
    page = Snapshot.parse("# TYPE vllm:gpu_cache_usage_perc gauge\nvllm:gpu_cache_usage_perc 0.1\n"
                          "# TYPE vllm:time_per_output_token_seconds histogram\n"
                          'vllm:time_per_output_token_seconds_bucket{le="+Inf"} 1\n'
                          "vllm:time_per_output_token_seconds_sum 0.5\nvllm:time_per_output_token_seconds_count 1\n")
    dark = judge(two, [_obs("z", "0.11.1", page), _obs("a", "0.10.1", page), _obs("n", None, page)], CATALOG,
                 "0.12.0")
    assert dark.outcome == Outcome.FAILED and dark.level == Level.MUST
    assert dark.message == (
        'record "Two" (d) goes dark when the fleet moves from vLLM 0.10.1, 0.11.1, unknown to 0.12.0: '
        "vllm:gpu_cache_usage_perc is hidden from vLLM 0.11.0 and removed in 0.12.0, so 0.12.0 does not have it; "
        "read vllm:kv_cache_usage_perc instead; vllm:time_per_output_token_seconds is hidden from vLLM 0.12.0 (on "
        "0.12.0, --show-hidden-metrics-for-version=0.11 shows it again) and removed in 0.15.0; read "
        "vllm:inter_token_latency_seconds instead.")
    assert [d["metric"] for d in dark.evidence["upgrade"]["dark"]] == [
        "vllm:gpu_cache_usage_perc", "vllm:time_per_output_token_seconds"]
    assert dark.evidence["upgrade"]["dark"][0] == {
        "metric": "vllm:gpu_cache_usage_perc", "state": "removed", "emitted": ">=0.7.3,<0.11.0",
        "hidden_from": "0.11.0", "removed_in": "0.12.0", "flag": None, "replaced_by": "vllm:kv_cache_usage_perc",
        "from": ["0.10.1", "0.11.1", "unknown"]}
    assert dark.evidence["upgrade"]["reads"] == ["vllm:gpu_cache_usage_perc", "vllm:time_per_output_token_seconds_sum"]
    assert dark.evidence["upgrade"]["kept"] == []
    # only the targets that provide a family today are named as where it goes dark from
    mixed = judge(ALERT, [_obs("a", "0.10.1"), _obs("b", "0.32.0")], CATALOG, "0.11.0")
    assert mixed.evidence["upgrade"]["dark"][0]["from"] == ["0.10.1"]
    assert "moves from vLLM 0.10.1 to 0.11.0" in mixed.message


def test_the_flag_keeps_a_family_only_where_every_target_runs_the_same_minor() -> None:
    hidden = fate(CATALOG.get("vllm:gpu_cache_usage_perc"), "0.11.2")  # type: ignore[arg-type]
    removed = fate(CATALOG.get("vllm:gpu_cache_usage_perc"), "0.12.0")  # type: ignore[arg-type]
    assert hidden is not None and removed is not None
    on = [_obs("a", "0.11.1", GAUGE_PAGE), _obs("b", "0.11.0rc1+cpu", GAUGE_PAGE)]
    assert _kept_by_flag(hidden, on, "0.11.2")
    assert not _kept_by_flag(hidden, [*on, _obs("c", "0.10.1", GAUGE_PAGE)], "0.11.2")  # another minor
    assert not _kept_by_flag(hidden, [*on, _obs("c", "1.11.0", GAUGE_PAGE)], "0.11.2")  # another major
    assert not _kept_by_flag(hidden, [*on, _obs("c", None, GAUGE_PAGE)], "0.11.2")  # unknown: cannot tell
    assert not _kept_by_flag(hidden, [*on, _obs("c", "main-abc", GAUGE_PAGE)], "0.11.2")
    assert not _kept_by_flag(removed, on, "0.12.0")
    assert not _kept_by_flag(Fate("vllm:x", "hidden", "<0.11.0"), on, "0.11.2")  # no hidden_from: not hidden
    assert _is_version("0.11.0rc1+cpu") and not _is_version("main-abc")


def test_a_consumer_is_named_as_its_reader_knows_it() -> None:
    assert _where(Reader("file", "T", (), dashboard_title="vLLM")) == 'panel "T" (vLLM)'
    assert _where(Reader("file", "T", ())) == 'panel "T" (file)'
    assert _where(Reader("rules", "A", (), dashboard_title="ignored", kind="alert")) == 'alert "A" (rules)'
    assert upgrade_policy() == {"text": "A metric deprecated in vLLM X.Y is hidden in X.Y+1, where "
                                        "--show-hidden-metrics-for-version=X.Y shows it again for one more minor "
                                        "release, and removed in X.Y+2.",
                                "flag": "--show-hidden-metrics-for-version"}
