#!/usr/bin/env bash
# The checks every commit passes: ruff, ruff format --check, mypy --strict.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
