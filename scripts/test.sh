#!/usr/bin/env bash
# Install into .venv, prepare what the integration tests need (a real one-node Slurm when we
# are root), and run the whole test suite.
#
# GRAINLIKE_NO_SLURM=1 leaves Slurm alone: its tests skip.  Otherwise, as root, a Slurm that
# scripts/setup-slurm.sh cannot start makes its tests skip, except under CI=true, where it
# fails the run (after the log of the step that failed) rather than hide a broken Slurm.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
if [ "$(id -u)" = 0 ] && [ "${GRAINLIKE_NO_SLURM:-}" != 1 ]; then
    if ! bash scripts/setup-slurm.sh; then
        if [ "${CI:-}" = true ]; then
            echo "scripts/test.sh: scripts/setup-slurm.sh failed under CI=true: stopping" >&2
            exit 1
        fi
        echo "scripts/test.sh: scripts/setup-slurm.sh failed: the Slurm tests will skip" >&2
    fi
fi
bash scripts/setup-chromium.sh  # the report's browser tests; under CI=true a failed install fails
exec .venv/bin/python -m pytest "$@"
