#!/usr/bin/env bash
# Install into .venv and run the quickstart workflow on the embedded local worker.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/grainlike run examples/quickstart.py "$@"
