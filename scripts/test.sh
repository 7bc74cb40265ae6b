#!/usr/bin/env bash
# Install into .venv, prepare what the integration tests need (a real one-node Slurm when we
# are root and can install it), and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
if [ -x scripts/setup-slurm.sh ] && [ "$(id -u)" = 0 ] && [ "${GRAINLIKE_NO_SLURM:-}" != 1 ]; then
    bash scripts/setup-slurm.sh || echo "scripts/setup-slurm.sh failed: Slurm tests will skip" >&2
fi
bash scripts/setup-chromium.sh  # the report's browser tests; under CI=true a failed install fails
exec .venv/bin/python -m pytest "$@"
