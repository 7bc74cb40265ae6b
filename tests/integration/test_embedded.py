"""Embedded mode end to end: ``gl.run`` of a mixed workload, and ``grainlike run`` of an example."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

import grainlike as gl
import grainlike._session
from grainlike import Cores, Memory, Resources, parse_resources
from grainlike.resource import ResourceSpec, with_overrides

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
AFFINITY = "import json, os; print(json.dumps(sorted(os.sched_getaffinity(0))))"


@pytest.fixture
def this_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """The embedded worker owns this process's cores and 4G, without asking detection."""
    base = parse_resources("mem:4G,wtime:inf", capacity=True) & Cores(
        sorted(os.sched_getaffinity(0))
    )

    def capacity(resources: ResourceSpec | None) -> Resources:
        return with_overrides(base, resources)

    monkeypatch.setattr(grainlike._session, "_local_capacity", capacity)


async def simulate(step: int) -> tuple[str, int, list[int]]:
    await trio.sleep(0.01)
    return "simulate", step, gl.GVAR.res.c


def crunch(n: int) -> tuple[str, int, list[int], int]:
    return "crunch", sum(i * i for i in range(n)), gl.GVAR.res.c, os.getpid()


async def pinned() -> tuple[str, list[int], list[int]]:
    done = await gl.run_process([sys.executable, "-c", AFFINITY], capture_stdout=True)
    return "pinned", json.loads(done.stdout), gl.GVAR.res.c


async def mixed_workload() -> tuple[list[Any], list[Any]]:
    cores = len(os.sched_getaffinity(0))
    results = await gl.gather(
        *[(simulate @ Cores(1))(step) for step in range(6)],
        *[(crunch @ Cores(1) & Memory("256M"))(n) for n in (1000, 2000)],
        (pinned @ Cores(min(2, cores)))(),
    )
    async with gl.open_waitgroup() as wg:
        for step in range(3):
            wg.submit(Cores(1), simulate, 10 + step)
    return results, wg.results


@pytest.mark.usefixtures("this_machine")
def test_run_executes_a_mixed_workload_and_logs_where_each_task_ran(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    results, grouped = gl.run(mixed_workload, stats=None, events=events)
    assert [r[:2] for r in results[:6]] == [("simulate", step) for step in range(6)]
    assert [r[:2] for r in results[6:8]] == [
        ("crunch", sum(i * i for i in range(1000))),
        ("crunch", sum(i * i for i in range(2000))),
    ]
    assert all(r[3] != os.getpid() for r in results[6:8])  # sync tasks ran in worker processes
    kind, affinity, allocated = results[8]
    assert (kind, affinity) == ("pinned", allocated)
    assert [r[:2] for r in grouped] == [("simulate", 10), ("simulate", 11), ("simulate", 12)]
    records = [json.loads(line) for line in events.read_text().splitlines()]
    placed = {r["task_id"]: r for r in records if r["event"] == "TaskPlaced"}
    finished = {r["task_id"] for r in records if r["event"] == "TaskFinished"}
    assert len(placed) == 12
    assert finished == set(placed)
    measured = [r for r in records if r["event"] == "TaskFinished" and r["usage"] is not None]
    # The two sync tasks in worker processes, and the async task that ran a process.
    assert len(measured) == 3 and all(r["usage"]["peak_rss"] > 0 for r in measured)
    assert {r["worker"] for r in placed.values()} == {records[0]["worker"]}


def grainlike_run(tmp_path: Path, options_after_script: bool) -> tuple[str, list[str]]:
    """``grainlike run examples/quickstart.py`` with an event log; (stdout, event names)."""
    try:
        from grainlike.worker import detect_capacity  # noqa: F401
    except ImportError:
        pytest.skip("grainlike.worker.detect_capacity is missing: grainlike run cannot detect")
    events = tmp_path / "events.jsonl"
    script = [str(ROOT / "examples" / "quickstart.py")]
    options = ["--events", str(events), "--stats", str(tmp_path / "stats.json")]
    arguments = script + options if options_after_script else options + script
    command = [sys.executable, "-m", "grainlike", "run", *arguments]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no progress bar when stderr is not a terminal
    assert events.exists(), "the --events option did not reach grainlike run"
    names = [json.loads(line)["event"] for line in events.read_text().splitlines()]
    return done.stdout, names


def test_grainlike_run_runs_the_quickstart_example(tmp_path: Path) -> None:
    stdout, events = grainlike_run(tmp_path, options_after_script=False)
    lines = stdout.splitlines()
    cores = len(os.sched_getaffinity(0))
    assert lines[0].lower() == f"this machine offers {cores} core(s) to grainlike"
    assert sum(line.startswith("simulate ") for line in lines) == 4
    assert sum(line.startswith("crunch ") for line in lines) == 2
    assert sum(line.startswith("child process of a task on cores") for line in lines) == 1
    assert events.count("TaskFinished") == 7


def test_grainlike_run_takes_its_options_after_the_script(tmp_path: Path) -> None:
    _, events = grainlike_run(tmp_path, options_after_script=True)
    assert events.count("TaskFinished") == 7
