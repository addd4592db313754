"""Run one simulated vLLM server in the foreground: python -m pytest_vllm_metrics.sim --port N --profile P."""

from __future__ import annotations

import argparse
import sys

from aiohttp import web

from .profiles import get_profile, profile_names
from .server import build_app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pytest_vllm_metrics.sim", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    parser.add_argument("--profile", default="x86_64", choices=profile_names(), help="simulated server")
    parser.add_argument("--api-key", default=None, help="require this bearer token on /v1, as vllm --api-key")
    args = parser.parse_args(argv)
    profile = get_profile(args.profile)
    if args.api_key:
        profile = profile.replace(api_key=args.api_key)
    print(f"vLLM simulator: profile {profile.name} (vLLM {profile.version}, {profile.arch}) on "
          f"http://{args.host}:{args.port}", file=sys.stderr)
    web.run_app(build_app(profile), host=args.host, port=args.port, print=None, access_log=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
