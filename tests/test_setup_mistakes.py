"""Setup mistakes a new user makes: each gives one clear answer per target, never a wall of failures or a traceback.

A URL copied with its /metrics path, a metrics endpoint that answers 404, a login or proxy page, or nothing; a
report path in a directory that does not exist yet or with a suffix the report has no format for; the simulator
started on a port already taken; the repository's own `pytest` without pytest-xdist.
"""

from __future__ import annotations

import html
import json
import os
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
import yaml

from conftest import flat, name_of, said, verdicts
from pytest_vllm_metrics.settings import REPORT_SUFFIXES
from pytest_vllm_metrics.sim import SimHost, get_profile

ROOT = Path(__file__).parent.parent


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    # a generous timeout: the simulated servers must answer in time on a loaded machine too
    return pytester.runpytest("-p", "no:cacheprovider", "--vllm-timeout=30", *args)


# -- a URL given with the metrics path --------------------------------------------------------------------


def test_a_url_copied_with_its_metrics_path_is_taken_as_the_base_url(
        pytester: pytest.Pytester, sim_host: SimHost) -> None:
    # Prometheus' Targets page lists each endpoint by its scrape URL (http://10.0.0.7:8200/metrics): the URL a
    # user copies. The suite appends /metrics itself, and /v1 and /version: it would request /metrics/metrics.
    sim = sim_host.start(get_profile("x86_64"))
    result = run(pytester, f"--vllm-url={sim.url}/metrics/", "--vllm-report=report.json",
                 "-k", "reachable or workload_served or version or prompt_tokens_total")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert set(verdicts(pytester).values()) == {"passed"}
    # said once, in the header: the target is the base URL
    assert flat(result).count("ends in the metrics path") == 1
    assert said(result, f"note: --vllm-url {sim.url}/metrics ends in the metrics path /metrics: checking {sim.url} "
                        f"(the suite requests /metrics, /v1 and /version under the base URL itself)")


def test_metrics_paths_given_in_the_environment_and_the_epp_url_are_taken_off_too(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_VLLM_URL", "http://10.0.0.7:8200/metrics, http://10.0.0.8:8200")
    result = pytester.runpytest("-p", "no:cacheprovider", "--collect-only",
                                "--vllm-epp-url=http://llm-d-epp.llm-d:9090/metrics")  # no network at collection
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines([
        "vllm-metrics: targets: 10.0.0.7:8200, 10.0.0.8:8200;*",
        "*--vllm-url: http://10.0.0.7:8200, http://10.0.0.8:8200 (from env)",
        "*--vllm-epp-url: http://llm-d-epp.llm-d:9090 (from option)",
        "  note: --vllm-url http://10.0.0.7:8200/metrics ends in the metrics path /metrics: checking "
        "http://10.0.0.7:8200 (*",
        "  note: --vllm-epp-url http://llm-d-epp.llm-d:9090/metrics ends in the metrics path /metrics: checking "
        "http://llm-d-epp.llm-d:9090 (the suite requests /metrics under the base URL itself)",
    ])


def test_a_custom_metrics_path_is_the_one_taken_off(pytester: pytest.Pytester, sim_host: SimHost) -> None:
    sim = sim_host.start(get_profile("x86_64"))
    result = run(pytester, f"--vllm-url={sim.url}/metrics", "--vllm-metrics-path=/prom", "-k", "reachable")
    # /metrics is not the path asked for: the URL is kept as given, and the request is named as it went out
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert said(result, f"{name_of(sim.url)}: GET /metrics/prom answered HTTP 404.")


def test_a_failed_fetch_names_the_path_that_went_on_the_wire(pytester: pytest.Pytester, sim_host: SimHost) -> None:
    # An ingress that routes /vllm to the server without rewriting the path (nginx-ingress without
    # rewrite-target): the server sees /vllm/metrics, which it does not serve. The message says /vllm/metrics,
    # never /metrics, and names the base URL to pass.
    sim = sim_host.start(get_profile("x86_64"))
    result = run(pytester, f"--vllm-url={sim.url}/vllm", "-k", "reachable")
    assert said(result, f"{name_of(sim.url)}: GET /vllm/metrics answered HTTP 404. vLLM serves Prometheus text at "
                        f"/metrics on its API port")
    assert said(result, f"The target URL has a path of its own (/vllm), which comes before every path the suite "
                        f"requests; vLLM serves /metrics and /v1 at its root: pass {sim.url}.")
    assert "GET /metrics answered" not in flat(result)


# -- a metrics endpoint that answers wrongly, or nothing: one failure per target -----------------------------


def _faulty(sim_host: SimHost, kind: str) -> str:
    if kind == "refused":
        # a port that was just bound and closed again: nothing listens there
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return f"http://127.0.0.1:{sock.getsockname()[1]}"
    if kind == "closed":  # a server that drops every connection without an answer (crashing, or a proxy)
        return sim_host.start(get_profile("x86_64").replace(stop_answering_after_scrapes=0)).url
    return sim_host.start(get_profile("x86_64").replace(fault=kind)).url


@pytest.mark.parametrize(("kind", "cause"), [
    ("metrics-404", "GET /metrics answered HTTP 404"),
    # a proxy's error page (nginx's 502), as a login page would be: HTML, not Prometheus text
    ("metrics-html", "GET /metrics answered an HTML page, not Prometheus text"),
    ("refused", "cannot connect to http://127.0.0.1:* (All connection attempts failed)"),
    ("closed", "http://127.0.0.1:* closed the connection during GET /metrics"),
])
def test_a_broken_metrics_endpoint_fails_reachability_once_and_the_other_targets_are_judged(
        pytester: pytest.Pytester, sim_host: SimHost, kind: str, cause: str) -> None:
    faulty = _faulty(sim_host, kind)
    healthy = sim_host.start(get_profile("x86_64"))
    result = run(pytester, f"--vllm-url={faulty}", f"--vllm-url={healthy.url}", "--vllm-report=out/report.json",
                 "--junitxml=out/junit.xml", "--html=out/report.html", "-rA")
    bad, good = name_of(faulty), name_of(healthy.url)
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # the reachability failure is MUST
    assert "Traceback" not in flat(result)

    # the JSON report: one failed check for the broken target; each other check of it points at that one
    document = json.loads((pytester.path / "out" / "report.json").read_text())
    assert document["result"] == "failure"
    mine = {row["check"]: row["targets"][bad] for row in document["tests"] if bad in row["targets"]}
    assert [check for check, its in mine.items() if its["outcome"] == "failed"] == ["reachable"]
    said_cause = re.escape(cause).replace(r"\*", ".*")
    assert re.fullmatch(f"{bad}: {said_cause}.*", mine["reachable"]["reason"])
    others = {check: its for check, its in mine.items() if check != "reachable"}
    assert len(others) > 80 and {its["outcome"] for its in others.values()} <= {"inconclusive", "skipped"}
    for check, its in others.items():
        if its["outcome"] == "inconclusive":
            assert re.fullmatch(f"{bad}: see test_reachable: {said_cause}", its["reason"]), (check, its["reason"])
    [unobserved] = document["couldNotObserve"]
    assert unobserved["target"] == bad and unobserved["reason"].startswith("see test_reachable: ")
    # the healthy server is judged as ever: nothing fails on it, nothing is left undecided
    theirs = {row["check"]: row["targets"][good]["outcome"] for row in document["tests"] if good in row["targets"]}
    assert theirs["reachable"] == "passed" and not {"failed", "inconclusive"} & set(theirs.values())

    # the terminal: one FAILED test, one FAILED row in the summary table
    assert result.parseoutcomes()["failed"] == 1
    assert len([line for line in result.outlines if line.startswith("FAILED ")]) == 2  # the table's and -rA's
    assert len([line for line in result.outlines if line.startswith("FAILED   MUST")]) == 1
    # JUnit: one <failure>; HTML: one failed result
    assert (pytester.path / "out" / "junit.xml").read_text().count("<failure") == 1
    page = (pytester.path / "out" / "report.html").read_text()
    blob = json.loads(html.unescape(re.search(r'data-jsonblob="(.*?)"', page, re.S).group(1)))  # type: ignore[union-attr]
    assert [r["result"] for rows in blob["tests"].values() for r in rows].count("Failed") == 1


def test_a_target_that_cannot_be_observed_stays_inconclusive(pytester: pytest.Pytester, sim_host: SimHost) -> None:
    # A slow answer is not a broken server: reachability itself is inconclusive, with the cause (exit 75).
    slow = sim_host.start(get_profile("x86_64").replace(fault="metrics-slowloris"))
    result = run(pytester, f"--vllm-url={slow.url}", "--vllm-timeout=1", "--vllm-report=report.json",
                 "-k", "reachable or prompt_tokens_total")
    assert set(verdicts(pytester).values()) == {"inconclusive"}
    assert said(result, "*GET /metrics did not finish within 1 s*")
    assert result.ret == 75


# -- the conformance report's path ----------------------------------------------------------------------------


def test_the_report_goes_into_directories_that_do_not_exist_yet(pytester: pytest.Pytester) -> None:
    result = run(pytester, "--vllm-sim=x86_64", "--vllm-report=reports/nightly/report.json", "-k", "reachable")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert json.loads((pytester.path / "reports" / "nightly" / "report.json").read_text())["result"] == "success"


@pytest.mark.parametrize("name", ["report.txt", "report", "report.JSON", "report.html"])
def test_a_report_suffix_without_a_format_is_a_usage_error(pytester: pytest.Pytester, name: str) -> None:
    result = run(pytester, "--vllm-sim=x86_64", f"--vllm-report={name}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: --vllm-report: '{name}' does not end in a report format; name the file "
                                 f".json, .yaml or .yml (the machine-readable report), or .md or .markdown (a "
                                 f"Markdown summary)."])
    assert not (pytester.path / name).exists()


def test_a_report_path_through_a_file_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makefile(".txt", notes="x")
    result = run(pytester, "--vllm-sim=x86_64", "--vllm-report=notes.txt/report.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --vllm-report: cannot write notes.txt/report.json: */notes.txt is a file, "
                                 "not a directory."])


@pytest.mark.parametrize("suffix", list(REPORT_SUFFIXES))
def test_every_accepted_suffix_is_written_in_its_format(pytester: pytest.Pytester, suffix: str) -> None:
    run(pytester, "--vllm-sim=x86_64", f"--vllm-report=out/report{suffix}", "-k", "reachable")
    text = (pytester.path / "out" / f"report{suffix}").read_text()
    kind = REPORT_SUFFIXES[suffix]
    if kind == "JSON":
        assert json.loads(text)["kind"] == "ConformanceReport"
    elif kind == "YAML":
        assert text.startswith("apiVersion:") and yaml.safe_load(text)["kind"] == "ConformanceReport"
    else:
        assert "vLLM metrics conformance" in text and not text.lstrip().startswith(("{", "apiVersion:"))


# -- the simulator on a busy port ----------------------------------------------------------------------------


def _sim(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "pytest_vllm_metrics.sim", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_the_simulator_on_a_busy_port_says_so_in_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = _sim("--port", str(port))
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 1
    assert stderr.splitlines() == [
        f"python -m pytest_vllm_metrics.sim: port {port} on 127.0.0.1 is already in use (another simulator or server "
        f"listens there); pass another --port, or --port 0 to pick a free one."]


def test_the_simulator_on_port_0_says_the_port_it_took() -> None:
    process = _sim("--port", "0")
    try:
        first: list[str] = []
        reader = threading.Thread(target=lambda: first.append(process.stderr.readline()))  # type: ignore[union-attr]
        reader.start()
        reader.join(timeout=60)  # bounded: the line comes once the server listens
        found = re.fullmatch(r"vLLM simulator: profile x86_64 \(vLLM [\d.]+, amd64\) on (http://127\.0\.0\.1:(\d+))\n",
                             first[0] if first else "")
        assert found and int(found.group(2)) > 0, first
        assert "vllm:num_requests_running" in httpx.get(found.group(1) + "/metrics", timeout=10).text
    finally:
        process.terminate()
        process.communicate(timeout=30)
    assert process.returncode == 0  # SIGTERM stops it cleanly


# -- the repository's own `pytest`, with and without pytest-xdist -----------------------------------------------


def _repo_pytest(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_XDIST", "PYTEST_ADDOPTS"))}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


FAST = "tests/test_setup_mistakes.py::test_a_report_suffix_without_a_format_is_a_usage_error[report.txt]"


@pytest.mark.spawns
def test_the_repositorys_pytest_runs_without_pytest_xdist() -> None:
    # -p no:xdist: as if pytest-xdist were not installed (its -n option does not exist then)
    result = _repo_pytest("-p", "no:xdist", FAST)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "unrecognized arguments" not in result.stderr and "1 passed" in result.stdout


@pytest.mark.spawns
def test_the_repositorys_pytest_spreads_over_workers_with_pytest_xdist() -> None:
    pytest.importorskip("xdist")
    # --maxprocesses caps the workers -n auto asks for (tests/conftest.py sizes it); alone it starts none
    result = _repo_pytest("--maxprocesses=1", FAST)
    assert "created: 1/1 worker" in result.stdout, result.stdout + result.stderr
    assert "1 passed" in result.stdout
    serial = _repo_pytest("-n", "0", FAST)  # -n given: left as it is
    assert "created:" not in serial.stdout and "1 passed" in serial.stdout
