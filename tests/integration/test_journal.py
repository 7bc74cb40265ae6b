"""Durable runs with real processes: ``grainlike run --journal`` run twice, killed with SIGKILL
midway and run again, a journal of 100,000 tasks resumed, and runs sharing the learned store."""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from grainlike.dispatch import LearnedLimits

pytestmark = pytest.mark.slow

GRAINLIKE = [sys.executable, "-m", "grainlike"]

MARKED = """
import os
import sys

import trio

import grainlike as gl
from grainlike import Cores


async def step(marker, i, pause):
    await trio.sleep(pause)
    with open(marker, "a") as file:  # which run ran it: not an argument, not in the key
        file.write(f"{os.environ.get('RUN', 'a')}:{i}\\n")
    return i * i


async def main():
    marker, count, pause = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    results = await gl.gather(*((step @ Cores(1))(marker, i, pause) for i in range(count)))
    print(sum(results), results[:5])
"""

TRIVIAL = """
import sys

import grainlike as gl
from grainlike import Cores


async def trivial(i):
    return i


async def main():
    count = int(sys.argv[1])
    results = await gl.gather(*((trivial @ Cores(1))(i) for i in range(count)))
    assert results == list(range(count))
    print(count)
"""

LEARNER = """
import sys
import time

import trio

import grainlike as gl
from grainlike import Cores, WTime


async def sleep(seconds):
    await trio.sleep(seconds)


async def main():
    group, count, seconds = sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    for _ in range(count):
        await (sleep @ Cores(1) & WTime(group=group))(seconds)
    print("learned", flush=True)
    if len(sys.argv) > 5:
        await trio.sleep(3600)  # killed here


# Every run counts; no limit is learned (one from a few runs this alike would be too tight).
rule = gl.LearningRule(samples=1000, min_duration=0.0)
gl.run(main, resources="cores:1", stats=sys.argv[1], learning=rule)
"""


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    """Processes a test starts; whatever still runs at its end is killed."""
    started: list[subprocess.Popen[str]] = []
    try:
        yield started
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()
            process.communicate()


def run(*command: str, timeout: float = 180, tag: str = "a") -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, RUN=tag)
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return done


def grainlike_run(script: Path, journal: Path, *args: str) -> list[str]:
    return [
        *GRAINLIKE,
        "run",
        str(script),
        "--resources",
        "cores:2,mem:1G",
        "--no-progress",
        "--stats",
        str(journal.with_name("learned.db")),
        "--journal",
        str(journal),
        "--",
        *args,
    ]


def ran(path: Path, tag: str = "a") -> list[int]:
    """The tasks that the runs tagged ``tag`` ran, as the marker file says."""
    if not path.exists():
        return []
    return [int(i) for t, i in (line.split(":") for line in path.read_text().split()) if t == tag]


def query(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as connection:
        return list(connection.execute(sql))


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


def test_a_second_run_with_the_journal_runs_nothing_and_prints_the_same(tmp_path: Path) -> None:
    script, journal, marker = tmp_path / "script.py", tmp_path / "run.db", tmp_path / "marker"
    script.write_text(MARKED)
    first = run(*grainlike_run(script, journal, str(marker), "20", "0.01"))
    assert sorted(ran(marker)) == list(range(20))
    second = run(*grainlike_run(script, journal, str(marker), "20", "0.01"), tag="b")
    assert second.stdout == first.stdout == "2470 [0, 1, 4, 9, 16]\n"
    assert ran(marker, "b") == []  # nothing ran again
    summary = json.loads(run(*GRAINLIKE, "journal", str(journal), "--json").stdout)
    assert summary["states"] == {"succeeded": 20, "failed": 0, "cancelled": 0, "unfinished": 0}
    assert [r["recalled"] for r in summary["runs"]] == [0, 20]


def test_a_run_killed_midway_resumes_without_losing_or_recomputing_what_was_recorded(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    script, journal, marker = tmp_path / "script.py", tmp_path / "run.db", tmp_path / "marker"
    script.write_text(MARKED)
    first = subprocess.Popen(
        grainlike_run(script, journal, str(marker), "200", "0.02"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, RUN="first"),
    )
    processes.append(first)
    wait_for(lambda: len(ran(marker, "first")) >= 100, "half of the tasks")
    # The summary reads the journal while the run writes it.
    during = run(*GRAINLIKE, "journal", str(journal), "--json")
    assert json.loads(during.stdout)["runs"][0]["ended"] is None
    os.kill(first.pid, signal.SIGKILL)
    first.communicate()
    assert query(journal, "PRAGMA integrity_check") == [("ok",)]
    squares = query(journal, "SELECT result FROM tasks WHERE state = 'succeeded'")
    recorded = {round(pickle.loads(result) ** 0.5) for (result,) in squares}
    assert 50 <= len(recorded) < 200
    assert recorded <= set(ran(marker, "first"))

    second = run(*grainlike_run(script, journal, str(marker), "200", "0.02"), tag="second")
    assert second.stdout == f"{sum(i * i for i in range(200))} [0, 1, 4, 9, 16]\n"
    ran_again = set(ran(marker, "second"))
    assert ran_again & recorded == set()  # nothing recorded was computed again
    assert ran_again | recorded == set(range(200))  # and the result is complete
    assert query(journal, "PRAGMA integrity_check") == [("ok",)]
    text = run(*GRAINLIKE, "journal", str(journal)).stdout
    assert f"journal {journal} (schema 1): 200 tasks: 200 succeeded" in text
    assert "run 1 on " in text and "did not end (still running, or killed)" in text


def test_a_journal_of_100000_tasks_resumes_in_seconds(tmp_path: Path) -> None:
    script, journal = tmp_path / "script.py", tmp_path / "run.db"
    script.write_text(TRIVIAL)
    start = time.perf_counter()
    run(*grainlike_run(script, journal, "100000"), timeout=600)
    first = time.perf_counter() - start
    start = time.perf_counter()
    done = run(*grainlike_run(script, journal, "100000"), timeout=600)
    resumed = time.perf_counter() - start
    print(
        f"\n100,000 tasks: the first run took {first:.1f} s, the resumed run {resumed:.1f} s "
        f"(journal {journal.stat().st_size / 2**20:.1f} MB)"
    )
    assert done.stdout == "100000\n"
    assert query(journal, "SELECT recalled FROM runs ORDER BY run") == [(0,), (100000,)]
    assert resumed < 60


def test_two_runs_sharing_the_learned_store_both_keep_their_groups(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    script, store = tmp_path / "learner.py", tmp_path / "learned.db"
    script.write_text(LEARNER)
    runs = [
        subprocess.Popen(
            [sys.executable, str(script), str(store), group, "10", "0.1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for group in ("left", "right")
    ]
    processes.extend(runs)
    for process in runs:
        out, err = process.communicate(timeout=120)
        assert (process.returncode, out) == (0, "learned\n"), err
    learned = LearnedLimits.open(store)
    learned.close()
    assert (learned.stats("left").count, learned.stats("right").count) == (10, 10)


def test_a_killed_run_keeps_what_it_learned_before_it_died(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    script, store = tmp_path / "learner.py", tmp_path / "learned.db"
    script.write_text(LEARNER)
    victim = subprocess.Popen(
        [sys.executable, str(script), str(store), "doomed", "5", "0.05", "hold"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    processes.append(victim)
    assert victim.stdout is not None
    line = victim.stdout.readline()
    assert line == "learned\n", victim.communicate()

    def stored() -> int:
        learned = LearnedLimits.open(store)
        learned.close()
        return learned.stats("doomed").count

    wait_for(lambda: store.exists() and stored() == 5, "the store to hold the five runs", 10)
    os.kill(victim.pid, signal.SIGKILL)
    victim.communicate()
    assert stored() == 5
