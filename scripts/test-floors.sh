#!/usr/bin/env bash
# The dependency floors in pyproject.toml are true: install each dependency at exactly its floor
# (`>=X` becomes `==X`) in a venv of its own, .venv-floors, and run a fast subset of the tests
# there: the unit and property tests that start no process, and two tests with real remote
# workers (a task function that uses trio crosses the wire; a task's exception comes back).
# About a minute; CI runs it after the whole suite (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
venv=.venv-floors

# The pins, one a line, read from pyproject.toml; the test tools come at their own versions.
pins=$("$PYTHON" - <<'EOF'
import re
import tomllib

project = tomllib.load(open("pyproject.toml", "rb"))["project"]
for requirement in project["dependencies"]:
    match = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*>=\s*([0-9][0-9A-Za-z.]*)", requirement)
    if match is None:
        raise SystemExit(f"test-floors: {requirement!r}: every dependency needs a floor, NAME>=X")
    print(f"{match[1]}=={match[2]}")
for requirement in project["optional-dependencies"]["dev"]:
    name = re.split(r"[<>=!~ ]", requirement, maxsplit=1)[0]
    if name in {"pytest", "pytest-trio", "pytest-timeout", "hypothesis", "trustme"}:
        print(requirement)
EOF
)
stamp=$venv/.installed
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$pins" ]; then
    rm -rf "$venv"
    "$PYTHON" -m venv "$venv"
    # shellcheck disable=SC2086 # one pin a word
    "$venv/bin/python" -m pip install --quiet $pins
    "$venv/bin/python" -m pip install --quiet --no-deps -e .
    printf '%s' "$pins" >"$stamp"
fi
echo "test-floors: $(echo "$pins" | grep '==' | tr '\n' ' ')"
# A floor one dependency cannot live with (trio's own attrs floor, say) fails here.
"$venv/bin/python" -m pip check
pytest=("$venv/bin/python" -m pytest -q -p no:cacheprovider --timeout 120)
"${pytest[@]}" -m "not slow" tests/unit tests/property "$@"
cluster=tests/integration/test_cluster.py
"${pytest[@]}" "$cluster::test_a_pool_limits_concurrency_across_workers" \
    "$cluster::test_a_task_exception_reaches_the_caller_with_the_remote_traceback" "$@"
