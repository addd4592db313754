"""A fleet of simulated vLLM endpoints for the benchmarks, in its own process (so serving does not share
the measured process' CPU): `python bench/_fleet_server.py MODE N OUT.json`, then it serves until killed.

MODE static: N endpoints answering /metrics with the real vLLM 0.32 page (tests/data/captures, ~50 KB).
MODE sim:    N full simulators (profile x86_64) and a Kubernetes API double whose pods proxy to them.
MODE replay: N endpoints replaying a real vLLM 0.32 server (tests/data/captures): its /metrics page after traffic
             when a completion came since the last scrape, else the page before; its /version and /v1/models; each
             completion kind is answered with what one simulator answered it (recorded at start), so that serving
             costs the fleet as little as a real server's network stack would cost the measured process.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from aiohttp import web

from pytest_vllm_metrics.sim import SimHost, get_profile
from pytest_vllm_metrics.sim.kubeapi import ALL, Cluster, KubeDouble, PodSpec

CAPTURES = Path(__file__).parent.parent / "tests" / "data" / "captures"
PAGE = (CAPTURES / "prefix-caching-on.after.prom").read_bytes()
BEFORE = (CAPTURES / "prefix-caching-on.before.prom").read_bytes()
VERSION, MODELS = (CAPTURES / "version.json").read_bytes(), (CAPTURES / "v1-models.json").read_bytes()
TEXT = "text/plain; version=0.0.4; charset=utf-8"


def static_app() -> web.Application:
    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=PAGE, headers={"Content-Type": TEXT})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    return app


Recorded = dict[tuple[str, bool], tuple[bytes, str]]  # (path, streamed) -> (body, content type)


def record(url: str) -> Recorded:
    """One simulator's answer to each kind of workload request (the body shapes the suite sends)."""
    answers: Recorded = {}
    with httpx.Client(timeout=30) as client:
        model = client.get(f"{url}/v1/models").json()["data"][0]["id"]
        for path, key in (("/v1/completions", "prompt"), ("/v1/chat/completions", "messages")):
            for stream in (False, True):
                prompt: object = "the metrics of every server" if key == "prompt" else [
                    {"role": "user", "content": "the metrics of every server"}]
                body: dict[str, object] = {"model": model, key: prompt, "max_tokens": 8, "stream": stream}
                if stream:
                    body["stream_options"] = {"include_usage": True}
                response = client.post(f"{url}{path}", json=body)
                answers[(path, stream)] = (response.content, response.headers["content-type"])
    return answers


def replay_app(answers: Recorded) -> web.Application:
    served = {"since": False}  # a completion since the last scrape: each run (or floor round) sees before -> after

    async def metrics(request: web.Request) -> web.Response:
        page = PAGE if served["since"] else BEFORE
        served["since"] = False
        return web.Response(body=page, headers={"Content-Type": TEXT})

    def fixed(body: bytes) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def answer(request: web.Request) -> web.Response:
            return web.Response(body=body, content_type="application/json")

        return answer

    async def complete(request: web.Request) -> web.Response:
        stream = bool((await request.json()).get("stream"))
        served["since"] = True  # the server has served traffic: its page after traffic
        body, content_type = answers[(request.path, stream)]
        return web.Response(body=body, headers={"Content-Type": content_type})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/version", fixed(VERSION))
    app.router.add_get("/v1/models", fixed(MODELS))
    app.router.add_post("/v1/completions", complete)
    app.router.add_post("/v1/chat/completions", complete)
    return app


def main(mode: str, count: int, out: Path) -> None:
    host = SimHost()
    info: dict[str, object] = {}
    if mode == "static":
        info["urls"] = [host.start_app(static_app()) for _ in range(count)]
    elif mode == "replay":
        answers = record(host.start(get_profile("x86_64")).url)
        info["urls"] = [host.start_app(replay_app(answers)) for _ in range(count)]
    else:
        sims = [host.start(get_profile("x86_64")) for _ in range(count)]
        info["urls"] = [sim.url for sim in sims]
        pods = [PodSpec(f"decode-{i}", {"llm-d.ai/inference-serving": "true"}, f"node-{i % 8}", {"metrics": 8200},
                        backend=sim.url) for i, sim in enumerate(sims)]
        cluster = Cluster(namespaces={"bench": pods}, nodes={f"node-{i}": "amd64" for i in range(8)},
                          tokens={"bench": ALL})
        double = KubeDouble(host, cluster)
        info["kubeconfig"] = KubeDouble.kubeconfig(double.url, "bench", namespace="bench")
    out.write_text(json.dumps(info))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    host.close()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]))
