"""Run one simulated vLLM server in the foreground: python -m pytest_vllm_metrics.sim --port N --profile P."""

from __future__ import annotations

import argparse
import asyncio
import errno
import signal
import sys

from aiohttp import web

from .profiles import Profile, get_profile, profile_names
from .server import build_app

PROG = "python -m pytest_vllm_metrics.sim"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000,
                        help="port to listen on (default 8000; 0 picks a free one, printed at start)")
    parser.add_argument("--profile", default="x86_64", choices=profile_names(), help="simulated server")
    parser.add_argument("--api-key", default=None, help="require this bearer token on /v1, as vllm --api-key")
    args = parser.parse_args(argv)
    profile = get_profile(args.profile)
    if args.api_key:
        profile = profile.replace(api_key=args.api_key)
    try:
        asyncio.run(_serve(profile, args.host, args.port))
    except OSError as exc:
        # A port taken or not ours to bind, an address the host does not have: one line, never a traceback.
        print(f"{PROG}: {_cannot_listen(args.host, args.port, exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass  # Ctrl-C: a normal stop
    return 0


async def _serve(profile: Profile, host: str, port: int) -> None:
    runner = web.AppRunner(build_app(profile), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        bound = runner.addresses[0][1]  # the port chosen for --port 0
        served = "vLLM" if profile.engine == "vllm" else profile.engine
        print(f"vLLM simulator: profile {profile.name} ({served} {profile.version}, {profile.arch}) on "
              f"http://{host}:{bound}", file=sys.stderr, flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)  # a clean stop, as for Ctrl-C
        await stop.wait()
    finally:
        await runner.cleanup()


def _cannot_listen(host: str, port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return (f"port {port} on {host} is already in use (another simulator or server listens there); pass "
                f"another --port, or --port 0 to pick a free one.")
    if exc.errno == errno.EACCES:
        return (f"not allowed to listen on port {port} (ports below 1024 need privileges); pass a port from 1024 "
                f"up, or --port 0 to pick a free one.")
    return f"cannot listen on {host}:{port} ({exc.strerror or exc}); check --host and --port."


if __name__ == "__main__":
    sys.exit(main())
