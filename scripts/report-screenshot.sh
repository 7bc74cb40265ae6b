#!/usr/bin/env bash
# The screenshot in docs/seeing-a-run.md, made from a real run: examples/report.py runs a small
# workload on two workers and writes its report, and headless Chromium takes a picture of it.
# Usage: bash scripts/report-screenshot.sh [PNG]   (default docs/img/report.png)
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:-docs/img/report.png}")
python=${PYTHON:-.venv/bin/python}
case $python in */*) python=$(realpath -s "$python") ;; esac  # the example runs from elsewhere
root=$PWD
chromium=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$chromium" ]; then
    echo "report-screenshot: no chromium here; as root, run bash scripts/setup-chromium.sh" >&2
    exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# From inside the scratch directory, so that the report names its log run/run.jsonl.
(cd "$work" && "$python" "$root/examples/report.py" run >/dev/null)
mkdir -p "$(dirname "$out")"
# The flags keep Chromium off the network (the report needs none) and out of any profile.
timeout 120 "$chromium" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync --hide-scrollbars \
    --user-data-dir="$work/profile" --window-size=1400,900 --virtual-time-budget=5000 \
    --screenshot="$out" "file://$work/run/report.html" >/dev/null 2>&1
[ -s "$out" ] || { echo "report-screenshot: chromium wrote no $out" >&2; exit 1; }
echo "$out"
