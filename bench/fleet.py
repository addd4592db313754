"""Fleet-scale benchmark: one run prints every ratio of issue 8 (not a timed test; run it by hand or in CI).

    python bench/fleet.py            # full: P1 up to 500 endpoints, P2 up to 100 pods, memory at 500
    python bench/fleet.py --quick    # smaller N, for a smoke run

P1  one scrape+parse round of N endpoints serving the real vLLM 0.32 page (~50 KB, 586 lines), the plugin's
    own path (shared httpx client, bounded concurrency, fast parser); goal T(100) <= 5 x T(1).
    Baseline: the seed's way, one request at a time on a new connection, parsed with prometheus_client.
P2  the whole bundled suite (pytest, every item) against N simulated pods, directly by URL and through the
    Kubernetes API double's pod proxy, best of 3 runs (this VM's timings vary by 10-20%); goal T(100) <= 3 x T(1).
MEM peak RSS of the pytest process running the whole suite against 500 endpoints; goal under 500 MB.
F   `--fleet N` (alone): the whole suite against N servers replaying a real vLLM 0.32 (bench/_fleet_server.py
    replay), `--vllm-requests=7` and the JSON report written; goal at N=1000: <= 10 s wall, <= 300 MB peak RSS.
    The floor is the same HTTP requests (every server's scrapes, /version, /v1/models and workload) sent by a bare
    client at the suite's concurrency, nothing parsed or judged; the ratio says how far the suite is from it.
    `--workers W` runs the suite with pytest-xdist (-n W).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import httpx

ROOT = Path(__file__).parent.parent
sys.path.insert(0, str(ROOT))

from pytest_vllm_metrics.scrape import Clients, get_text, scrape  # noqa: E402
from pytest_vllm_metrics.snapshot import Snapshot  # noqa: E402
from pytest_vllm_metrics.targets import Target  # noqa: E402

PAGE = (ROOT / "tests" / "data" / "captures" / "prefix-caching-on.after.prom").read_text()


@contextmanager
def fleet(mode: str, count: int) -> Iterator[dict[str, object]]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "fleet.json"
        process = subprocess.Popen([sys.executable, str(ROOT / "bench" / "_fleet_server.py"), mode, str(count),
                                    str(out)])
        try:
            deadline = time.monotonic() + 120
            while not out.exists() or not out.read_text():  # bounded wait for the fleet to listen
                if time.monotonic() > deadline or process.poll() is not None:
                    raise SystemExit("the fleet server did not start")
                time.sleep(0.05)
            info = json.loads(out.read_text())
            info["dir"] = tmp
            yield info
        finally:
            process.terminate()
            process.wait(timeout=30)


def best(fn: Callable[[], object], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def plugin_round(urls: list[str], concurrency: int = 16, parse: bool = True) -> None:
    async def go() -> None:
        targets = [Target(name=url, base_url=url) for url in urls]
        slots = asyncio.Semaphore(concurrency)
        async with Clients() as clients:

            async def one(target: Target) -> object:
                async with slots:
                    if parse:
                        return await scrape(clients.get(target), target, "/metrics", 30)
                    return await get_text(clients.get(target), target, "/metrics", 30)

            await asyncio.gather(*(one(t) for t in targets))

    asyncio.run(go())


def seed_round(urls: list[str]) -> None:
    for url in urls:  # one at a time, a new connection each, like `kubectl exec ... curl` per pod
        Snapshot.parse_reference(httpx.get(url + "/metrics", timeout=30).text)


class SuiteRun(NamedTuple):
    wall: float  # seconds
    cpu: float  # seconds of CPU of the pytest process itself (not the simulated fleet's)
    rss: int  # peak RSS, KB
    summary: str  # pytest's last line


def suite_run(args: list[str], env: dict[str, str], repeat: int = 1) -> SuiteRun:
    """The fastest of `repeat` pytest runs of the bundled suite (the first run also writes the bytecode)."""
    return min((_suite_once(args, env) for _ in range(repeat)), key=lambda run: run.wall)


def _suite_once(args: list[str], env: dict[str, str]) -> SuiteRun:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.txt"
        started = time.perf_counter()
        with out.open("w") as sink:
            # As an installed user runs it, not as this checkout would:
            # - no Hypothesis plugin (a dev install carries it; it imports Hypothesis at the end of every run);
            # - --noconftest: no conftest.py of the directories around an editable install's bundled suite;
            # - bytecode cached (a dev shell may set PYTHONDONTWRITEBYTECODE): otherwise every run compiles
            #   pytest, httpx and the plugin again, a fixed cost that would flatter the ratios.
            child_env = {**os.environ, **env}
            child_env.pop("PYTHONDONTWRITEBYTECODE", None)
            process = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                        "-p", "no:hypothesispytest", "--noconftest", *args],
                                       cwd=tmp, stdout=sink, stderr=subprocess.STDOUT, env=child_env)
            _, _, usage = os.wait4(process.pid, 0)  # this child's own usage, not the fleet server's
            process.returncode = 0  # reaped by wait4
        elapsed = time.perf_counter() - started
        lines = out.read_text().strip().splitlines()
    return SuiteRun(elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, lines[-1] if lines else "(no output)")


def floor_round(urls: list[str], requests: int, concurrency: int = 16) -> None:
    """Every HTTP request the suite sends a server (two scrapes, /version, /v1/models, the workload), sent by the
    plugin's clients at its concurrency; the answers are read and dropped."""
    body = {"model": "tiny", "prompt": "the metrics of every server", "max_tokens": 8}

    async def go() -> None:
        slots = asyncio.Semaphore(concurrency)
        async with Clients() as clients:

            async def one(target: Target) -> None:
                async with slots:
                    client = clients.get(target)
                    for path in ("/metrics", "/version", "/v1/models"):
                        (await client.get(target.url(path))).read()
                    for _ in range(requests):
                        (await client.post(target.url("/v1/completions"), json=body)).read()
                    (await client.get(target.url("/metrics"))).read()

            await asyncio.gather(*(one(Target(name=url, base_url=url)) for url in urls))

    asyncio.run(go())


def fleet_case(count: int, workers: int) -> None:
    requests = 7
    with fleet("replay", count) as info:
        urls = list(info["urls"])  # type: ignore[call-overload]
        floor = best(functools.partial(floor_round, urls, requests), repeat=2)
        report = Path(str(info["dir"])) / "report.json"
        args = [f"--vllm-requests={requests}", f"--vllm-report={report}"]
        if workers:
            args += ["-n", str(workers)]
        run = suite_run(args, {"PYTEST_VLLM_URL": ",".join(urls)}, repeat=2)
        size = report.stat().st_size if report.exists() else 0
    print(f"\nF  whole suite, {count} replaying servers, --vllm-requests={requests}, JSON report"
          + (f", -n {workers}" if workers else ""))
    print(f"   wall {run.wall:.1f} s   pytest CPU {run.cpu:.1f} s   peak RSS {run.rss / 1024:.0f} MB   "
          f"report {size / 1e6:.1f} MB   {run.summary}")
    print(f"   floor (the same HTTP requests, bare): {floor:.1f} s   ratio to the floor: {run.wall / floor:.1f}")
    goal = run.wall <= 10 and run.rss / 1024 <= 300
    print(f"   goal at 1000 servers: <= 10 s wall and <= 300 MB -> {'met' if goal else 'NOT met'}")


def _pods(n: int) -> str:
    return f"{n} pod" if n == 1 else f"{n} pods"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller N, for a smoke run")
    parser.add_argument("--fleet", type=int, metavar="N", help="only the fleet case, against N replaying servers")
    parser.add_argument("--workers", type=int, default=0, metavar="W", help="the fleet case under pytest -n W")
    args = parser.parse_args()
    if args.fleet:
        return fleet_case(args.fleet, args.workers)
    p1_sizes = [1, 10, 100] if args.quick else [1, 10, 100, 500]
    p2_sizes = [1, 10] if args.quick else [1, 10, 100]
    rows: list[tuple[str, str, str]] = []

    fast = best(lambda: [Snapshot.parse(PAGE) for _ in range(20)]) / 20
    ref = best(lambda: [Snapshot.parse_reference(PAGE) for _ in range(20)]) / 20
    rows.append(("parse one 50 KB page", f"fast {fast * 1000:.1f} ms, prometheus_client {ref * 1000:.1f} ms",
                 f"{ref / fast:.1f}x faster"))

    timings: dict[int, float] = {}
    with fleet("static", max(p1_sizes)) as info:
        urls = list(info["urls"])  # type: ignore[call-overload]
        for n in p1_sizes:
            timings[n] = best(functools.partial(plugin_round, urls[:n]))
            rows.append((f"P1 scrape+parse round, N={n}", f"{timings[n] * 1000:.0f} ms",
                         f"T(N)/T(1) = {timings[n] / timings[1]:.1f}"))
        # the same round without parsing: how much of P1 is the HTTP itself
        fetch = {n: best(functools.partial(plugin_round, urls[:n], parse=False)) for n in (1, 100)}
        rows.append(("P1 without the parse, N=1 / N=100", f"{fetch[1] * 1000:.0f} / {fetch[100] * 1000:.0f} ms",
                     f"T(100)/T(1) = {fetch[100] / fetch[1]:.1f}"))
        seed_n = 100
        seed = best(lambda: seed_round(urls[:seed_n]), repeat=1)
        rows.append((f"baseline: seed's way, N={seed_n}", f"{seed * 1000:.0f} ms",
                     f"{seed / timings[seed_n]:.1f}x slower than the plugin"))
        if 500 in timings:
            env = {"PYTEST_VLLM_URL": ",".join(urls[:500])}
            # the whole suite; the static pages serve no /version and no completions, which fail fast
            mem = suite_run(["--vllm-requests=1"], env)
            rows.append(("MEM whole suite, 500 static endpoints", f"{mem.rss / 1024:.0f} MB peak RSS", mem.summary))
    goal1 = timings[100] / timings[1]

    p2: dict[str, dict[int, SuiteRun]] = {"direct": {}, "pod proxy": {}}
    for n in p2_sizes:
        with fleet("sim", n) as info:
            urls = list(info["urls"])  # type: ignore[call-overload]
            kubeconfig = Path(str(info["dir"])) / "kubeconfig"
            kubeconfig.write_text(json.dumps(info["kubeconfig"]))
            p2["direct"][n] = suite_run([], {"PYTEST_VLLM_URL": ",".join(urls)}, repeat=3)
            p2["pod proxy"][n] = suite_run([f"--kubeconfig={kubeconfig}", "--vllm-namespace=bench"], {}, repeat=3)
            for way in p2:
                run = p2[way][n]
                rows.append((f"P2 whole suite, {_pods(n)}, {way}", f"{run.wall:.2f} s (pytest CPU {run.cpu:.2f} s)",
                             run.summary))

    # The simulated pods are healthy: a run that did not pass measured something else (a broken bench).
    broken = [f"{_pods(n)}, {way}: {run.summary}" for way, runs in p2.items() for n, run in runs.items()
              if "passed" not in run.summary or "failed" in run.summary or "error" in run.summary]
    width = max(len(r[0]) for r in rows)
    print(f"\n{'measure':{width}}  {'time':>28}  note")
    for name, value, note in rows:
        print(f"{name:{width}}  {value:>28}  {note}")
    print(f"\nP1 goal T(100) <= 5 x T(1): {goal1:.1f} -> {'met' if goal1 <= 5 else 'NOT met'}")
    last = max(p2_sizes)
    for way, runs in p2.items():
        ratio = runs[last].wall / runs[1].wall
        per_pod = (runs[last].wall - runs[1].wall) / (last - 1) * 1000
        print(f"P2 goal T({last}) <= 3 x T(1), {way}: {ratio:.1f} -> {'met' if ratio <= 3 else 'NOT met'}  "
              f"(pytest's own CPU time: {runs[last].cpu / runs[1].cpu:.1f}; each pod after the first adds "
              f"{per_pod:.0f} ms, the goal allows {2 * runs[1].wall / (last - 1) * 1000:.0f} ms)")
    if broken:
        raise SystemExit("the suite did not pass against the healthy simulated fleet, so these timings mean "
                         "nothing: " + "; ".join(broken))


if __name__ == "__main__":
    main()
