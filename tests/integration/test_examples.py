"""Every example in examples/ runs, as a user would run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _run(*command: str, cwd: Path = EXAMPLES.parent) -> str:
    env = dict(os.environ)
    done = subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=180, env=env)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_quickstart_runs_with_grainlike_run_and_reports_cores() -> None:
    out = _run(sys.executable, "-m", "grainlike", "run", "examples/quickstart.py")
    assert "this machine offers" in out
    assert out.count("simulate") == 4
    assert "child process sees cores" in out


def test_subprocess_pinning_children_see_exactly_their_cores() -> None:
    out = _run(sys.executable, "-m", "grainlike", "run", "examples/subprocess_pinning.py")
    lines = [line for line in out.splitlines() if line.startswith("narrow")]
    assert lines
    for line in lines:
        allocated = line.split("allocated cores ")[1].split(";")[0]
        seen = line.split("affinity ")[1].split(",")[0]
        assert allocated == seen, line
        assert "OMP_NUM_THREADS=1" in line
        assert "CUDA_VISIBLE_DEVICES=''" in line


def test_learned_walltime_gives_limits_after_eight_runs(tmp_path: Path) -> None:
    out = _run(sys.executable, "examples/learned_walltime.py", str(tmp_path / "stats.json"))
    rounds = [line for line in out.splitlines() if line.startswith("round")]
    assert "none" in rounds[0]
    assert "none" not in rounds[2]
    again = _run(sys.executable, "examples/learned_walltime.py", str(tmp_path / "stats.json"))
    assert "none" not in again.splitlines()[0]  # the second run starts learned


def test_cluster_local_sends_token_tasks_only_to_the_worker_with_the_token() -> None:
    out = _run(sys.executable, "examples/cluster_local.py")
    assert "token:gpu tasks ran on: {'gpu-node': 4}" in out
    assert "5000 short tasks: all results right" in out
    assert "pipelined at most" in out


def test_resume_runs_again_only_what_the_killed_run_did_not_record() -> None:
    out = _run(sys.executable, "examples/resume.py").splitlines()
    first = json.loads(out[0].removeprefix("first run, killed: ran "))
    second = json.loads(out[1].removeprefix("second run: ran "))
    assert 10 <= len(first) < 20
    assert sorted(set(first) | set(second)) == list(range(20))
    # A task the killed run finished but had not recorded yet runs again; no other does.
    assert len(set(first) & set(second)) <= 2
    assert out[2] == "second run: sum of the squares of 0..19: 2470"
    assert out[3].endswith("20 tasks: 20 succeeded, 0 failed, 0 cancelled, 0 unfinished")
