"""Informational calls of discovery (the API server's version, node architectures) never stop a run: whatever
goes wrong with them is a note in the report, and the pods are judged as usual."""

from __future__ import annotations

import asyncio
import fnmatch
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from conftest import NS, flat, verdicts, write_kubeconfig
from pytest_vllm_metrics.kube import ClusterInfo, _node_architectures, discover
from pytest_vllm_metrics.sim import SimHost
from pytest_vllm_metrics.sim.kubeapi import Cluster, KubeDouble, build_app


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
