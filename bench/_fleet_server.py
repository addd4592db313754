"""A fleet of simulated vLLM endpoints for the benchmarks, in its own process (so serving does not share
the measured process' CPU): `python bench/_fleet_server.py MODE N OUT.json`, then it serves until killed.

MODE static: N endpoints answering /metrics with the real vLLM 0.32 page (tests/data/captures, ~50 KB).
MODE sim:    N full simulators (profile x86_64) and a Kubernetes API double whose pods proxy to them.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path

from aiohttp import web

from pytest_vllm_metrics.sim import SimHost, get_profile
from pytest_vllm_metrics.sim.kubeapi import ALL, Cluster, KubeDouble, PodSpec

PAGE = (Path(__file__).parent.parent / "tests" / "data" / "captures" / "prefix-caching-on.after.prom").read_bytes()


def static_app() -> web.Application:
    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=PAGE, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    return app


def main(mode: str, count: int, out: Path) -> None:
    host = SimHost()
    info: dict[str, object] = {}
    if mode == "static":
        info["urls"] = [host.start_app(static_app()) for _ in range(count)]
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
