"""deploy/: the manifests parse, the Indexed Job's pods run the shards the option's parser reads from their rendered
arguments, and every Job runs the image the Containerfile builds, pinned to this checkout's version."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_vllm_metrics import settings as settings_module
from pytest_vllm_metrics.shard import Shard
from pytest_vllm_metrics.versions import __version__

ROOT = Path(__file__).parent.parent
DEPLOY = ROOT / "deploy"
SHARDED = DEPLOY / "job-sharded.yaml"
IMAGE = f"registry.example.com/pytest-vllm-metrics:{__version__}"


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def job(name: str) -> dict[str, Any]:
    return next(doc for doc in documents(SHARDED) if doc["kind"] == "Job" and doc["metadata"]["name"] == name)


def expand(text: str, env: dict[str, str]) -> str:
    """What the kubelet makes of a container's command and args: `$(VAR)` replaced by the container's variable VAR,
    a reference to an unknown variable left as it is, `$$` an escaped `$` (kubernetes.io, "Define a Command and
    Arguments for a Container": "Use environment variables to define arguments")."""
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                  lambda m: "$" if m[0] == "$$" else env.get(m[1], m[0]), text)


@pytest.mark.parametrize("path", sorted(DEPLOY.glob("*.yaml")), ids=lambda p: p.name)
def test_every_manifest_parses(path: Path) -> None:
    assert all("kind" in doc and "apiVersion" in doc for doc in documents(path))


def test_the_indexed_jobs_pods_run_one_shard_each(pytester: pytest.Pytester, tmp_path: Path) -> None:
    spec = job("vllm-metrics-shards")["spec"]
    assert spec["completionMode"] == "Indexed" and spec["parallelism"] == spec["completions"]
    count = spec["completions"]
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    mount = container["volumeMounts"][0]["mountPath"]
    assert container["workingDir"] == mount
    found = []
    for index in range(count):
        # Kubernetes sets JOB_COMPLETION_INDEX in an Indexed Job's containers; the reports' volume is a directory
        env = {"JOB_COMPLETION_INDEX": str(index)}
        args = [expand(arg, env).replace(mount, str(tmp_path)) for arg in container["args"]]
        config = pytester.parseconfig(*args)
        resolved = settings_module.resolve(config, environ={})
        found.append((resolved.vllm_shard, resolved.vllm_report))
        assert resolved.vllm_namespace == job("vllm-metrics-shards")["metadata"]["namespace"]
    assert found == [(Shard(k, count), f"{tmp_path}/shard-{k}.json") for k in range(count)]


def test_the_merge_waits_for_every_shard_and_merges_them_from_the_same_volume() -> None:
    shards = job("vllm-metrics-shards")["spec"]
    merge = job("vllm-metrics-merge")["spec"]["template"]["spec"]
    waiter = merge["initContainers"][0]
    assert {e["name"]: e["value"] for e in waiter["env"]}["SHARDS"] == str(shards["completions"])
    assert "/reports/shard-*.json" in waiter["args"][0]
    claims = {v["persistentVolumeClaim"]["claimName"] for v in
              (*merge["volumes"], *shards["template"]["spec"]["volumes"])}
    claim = next(doc for doc in documents(SHARDED) if doc["kind"] == "PersistentVolumeClaim")
    assert claims == {claim["metadata"]["name"]} and claim["spec"]["accessModes"] == ["ReadWriteMany"]
    command = merge["containers"][0]["args"][0]
    for out in ("report.html", "junit.xml", "summary.md", "report.json"):
        assert f"pytest-vllm-metrics merge -o {out} shard-*.json" in command


def test_the_containerfile_pins_this_checkouts_version() -> None:
    text = (ROOT / "Containerfile").read_text()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    attr = pyproject["tool"]["setuptools"]["dynamic"]["version"]["attr"]  # the version pyproject builds the wheel with
    module, _, name = attr.rpartition(".")
    assert (module, name) == ("pytest_vllm_metrics.versions", "__version__")
    assert re.search(r"^ARG VERSION=(\S+)$", text, re.M)[1] == __version__  # type: ignore[index]
    assert '/wheels/pytest_vllm_metrics-${VERSION}-py3-none-any.whl' in text  # the install fails on another version
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.M)[1]  # type: ignore[index]
    assert re.fullmatch(r"\S+/python:3\.11\.\d+-slim-\w+|\S+/python@sha256:[0-9a-f]{64}", base), base
    user = re.findall(r"^USER (\S+)$", text, re.M)
    assert user and user[-1] != "0" and user[-1] != "root"


@pytest.mark.parametrize("path", [DEPLOY / "job.yaml", SHARDED], ids=lambda p: p.name)
def test_the_jobs_run_the_image_without_pip(path: Path) -> None:
    for doc in documents(path):
        if doc["kind"] != "Job":
            continue
        pod = doc["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in (*pod.get("initContainers", ()), *pod["containers"]):
            assert container["image"] == IMAGE
            assert "pip" not in " ".join(container.get("command", []) + container.get("args", []))
