#!/usr/bin/env bash
# Create (or check) bench/peers/.venv-grain: Grain 0.17.1 (`grain-scheduler` on PyPI, with its
# Gnaw binary) in a venv of its own, for side_by_side.py.  About 20 s the first time.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
if [ ! -x .venv-grain/bin/python ]; then
    "$PYTHON" -m venv .venv-grain
fi
if ! .venv-grain/bin/python -c 'import sys, grain; sys.exit(grain.__version__ != "0.17.1")' 2>/dev/null; then
    .venv-grain/bin/python -m pip install --quiet --upgrade pip
    .venv-grain/bin/python -m pip install --quiet 'grain-scheduler==0.17.1'
fi
.venv-grain/bin/python -c 'import grain; print("Grain", grain.__version__, "in", grain.__file__)'
