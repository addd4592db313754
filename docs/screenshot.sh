#!/usr/bin/env bash
# Regenerates docs/report.png, the README's picture of the HTML report: a real run of the bundled suite against
# two simulated servers (x86_64, and arm64-cpu with vLLM 0.11.2's documented prefix-caching limitation), the
# bundled test dashboards and rule files, drawn by headless Chromium (Debian's `chromium`) in a 1,280 px window,
# offline.
#   usage: docs/screenshot.sh [output.png]   (from the repository, with the project installed: pip install -e .)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
out="$(realpath -m "${1:-$repo/docs/report.png}")"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
# The run fails on purpose (the older dashboard's panels select labels that no series carries, some rules read
# renamed metrics): exit 1 is expected.
python -m pytest -p no:cacheprovider -q --vllm-sim=x86_64 --vllm-sim=arm64-cpu \
    --grafana-dashboard="$repo/tests/data/dashboards" --prometheus-rules="$repo/tests/data/rules" \
    --html=report.html --self-contained-html >/dev/null || true
test -s report.html
# The top of the report (pytest-html's environment table, then the summary); no network (every host unresolvable).
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --no-first-run --disable-background-networking \
    --host-resolver-rules="MAP * ~NOTFOUND" --user-data-dir="$work/chromium" --window-size=1280,2300 \
    --virtual-time-budget=5000 --screenshot="$out" "file://$work/report.html" 2>/dev/null
echo "wrote $out"
