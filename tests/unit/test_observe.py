"""Observers of the dispatcher's events: the JSON-lines event log and the progress bar."""

from __future__ import annotations

import io
import json
import logging
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

import grainlike as gl
from grainlike import GPU, Cores
from grainlike._observe import event_record
from grainlike.dispatch import TaskFinished, TaskPlaced, WorkerJoined
from grainlike.wire import Usage

pytestmark = pytest.mark.usefixtures("local_capacity")


def test_an_event_record_names_the_event_and_lists_its_fields() -> None:
    event = TaskPlaced(4, "node-1", "cores:2,gpu:1", (2, 3), (1,), 1, at=1700000000.5)
    assert event_record(event) == {
        "event": "TaskPlaced",
        "at": 1700000000.5,
        "task_id": 4,
        "worker": "node-1",
        "allocation": "cores:2,gpu:1",
        "cores": [2, 3],
        "gpus": [1],
        "attempt": 1,
    }
    assert json.loads(json.dumps(event_record(event))) == event_record(event)


def test_an_event_record_turns_what_a_task_used_into_a_plain_dict() -> None:
    usage = Usage(wall=2.0, cpu=1.5, peak_rss=10_000_000)
    record = event_record(TaskFinished(4, "node-1", 2.0, 1, usage, at=1700000000.5))
    assert record["usage"] == {"wall": 2.0, "cpu": 1.5, "peak_rss": 10_000_000, "peak_disk": None}
    assert json.loads(json.dumps(record)) == record


def read_log(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_the_event_log_tells_which_task_ran_where_on_which_cores_and_for_how_long(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async def job(seconds: float) -> None:
        await trio.sleep(seconds)

    log = tmp_path / "run.jsonl"
    async with gl.open_session(stats=None, events=log, name="box", resources="cores:3,gpu:1"):
        handles = [
            (job @ Cores(2))(2.0),
            (job @ Cores(1) & GPU(1)).options(name="gpu-job")(1.0),
            (job @ Cores(1))(3.0),
        ]
        await gl.gather(*handles)
        session_ids = [h.id for h in handles]
    records = read_log(log)
    assert records[0] == {
        "event": "WorkerJoined",
        "at": records[0]["at"],
        "worker": "box",
        "capacity": "cores:3,mem:4G,gpu:1,wtime:inf",
    }
    runs: dict[int, dict[str, Any]] = {}
    for record in records:
        if "task_id" in record:
            runs.setdefault(record["task_id"], {})[record["event"]] = record
    assert sorted(runs) == sorted(session_ids)
    for task_id, seconds in zip(session_ids, (2.0, 1.0, 3.0), strict=True):
        events = runs[task_id]
        assert list(events) == ["TaskSubmitted", "TaskPlaced", "TaskStarted", "TaskFinished"]
        assert events["TaskPlaced"]["worker"] == "box"
        assert events["TaskFinished"]["duration"] == seconds
    placed = {task_id: runs[task_id]["TaskPlaced"] for task_id in session_ids}
    cores = [placed[task_id]["cores"] for task_id in session_ids]
    assert [len(group) for group in cores] == [2, 1, 1]
    assert set(cores[0]).isdisjoint(cores[1])  # the first two ran side by side
    assert [placed[task_id]["gpus"] for task_id in session_ids] == [[], [0], []]
    assert runs[session_ids[1]]["TaskSubmitted"]["name"] == "gpu-job"


async def test_the_event_log_is_complete_when_the_session_ends(tmp_path: Path) -> None:
    async def nothing() -> None:
        pass

    log = tmp_path / "run.jsonl"
    async with gl.open_session(stats=None, events=log):
        for _ in range(50):
            await (nothing @ Cores(1))()
    names = [record["event"] for record in read_log(log)]
    assert names.count("TaskFinished") == 50
    assert names[0] == WorkerJoined.__name__


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


async def test_off_a_terminal_there_is_no_bar_but_the_summary_line(
    autojump_clock: trio.testing.MockClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)

    async def job() -> None:
        await trio.sleep(1)

    async with gl.open_session(stats=None, progress=True):
        await gl.gather(*[(job @ Cores(1))() for _ in range(4)])
    assert stderr.getvalue() == (
        "grainlike: 4 tasks: 4 done, 0 failed, 0 retried in 2.0 s; cores 100 % busy\n"
    )


async def test_the_progress_bar_shows_done_running_and_queued_on_a_terminal(
    autojump_clock: trio.testing.MockClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)

    async def job() -> None:
        await trio.sleep(1)

    async with gl.open_session(stats=None, progress=True):
        await gl.gather(*[(job @ Cores(1))() for _ in range(4)])
        await trio.sleep(0.5)
    shown = terminal.getvalue()
    assert "tasks" in shown
    assert "4/4" in shown  # done out of all tasks
    assert "running 0  queued 0" in shown


# -- an event log that cannot be written costs the log, never the run ----------------------------


async def work(seconds: float) -> str:
    await trio.sleep(seconds)
    return "done"


async def test_a_full_disk_under_the_event_log_warns_once_and_the_run_goes_on(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    full = Path("/dev/full")  # every write to it fails with ENOSPC
    if not full.exists():
        pytest.skip("no /dev/full on this system")
    with caplog.at_level(logging.WARNING, logger="grainlike"):
        async with gl.open_session(stats=None, events=full) as session:
            results = await gl.gather(*[(work @ Cores(1))(1.0) for _ in range(5)])
            assert not session.dispatcher.events.active  # the log let go of the dispatcher
    assert results == ["done"] * 5
    (warning,) = [r for r in caplog.records if r.name.startswith("grainlike")]
    assert "/dev/full" in warning.getMessage()
    assert "No space left on device" in warning.getMessage()


async def test_an_event_log_in_a_missing_directory_warns_and_the_run_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = tmp_path / "no-such-directory" / "run.jsonl"
    with caplog.at_level(logging.WARNING, logger="grainlike"):
        async with gl.open_session(stats=None, events=log):
            assert await (work @ Cores(1))(0.0) == "done"
    (warning,) = [r for r in caplog.records if r.name.startswith("grainlike")]
    assert str(log) in warning.getMessage()
    assert not log.exists()


def test_gl_run_returns_the_result_when_the_event_log_fills_the_disk(
    caplog: pytest.LogCaptureFixture,
) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system")

    async def main() -> list[str]:
        return await gl.gather(*[(work @ Cores(1))(0.0) for _ in range(3)])

    with caplog.at_level(logging.WARNING, logger="grainlike"):
        assert gl.run(main, stats=None, events="/dev/full") == ["done"] * 3


async def test_the_event_log_is_created_0600_whatever_the_umask(tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    previous = os.umask(0)
    try:
        async with gl.open_session(stats=None, events=log):
            await (work @ Cores(1))(0.0)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert "TaskFinished" in [record["event"] for record in read_log(log)]


async def test_an_event_log_that_others_could_read_is_made_private(tmp_path: Path) -> None:
    log = tmp_path / "run.jsonl"
    log.write_text("an old run\n")
    log.chmod(0o644)
    async with gl.open_session(stats=None, events=log):
        await (work @ Cores(1))(0.0)
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert read_log(log)[0]["event"] == "WorkerJoined"  # truncated, not appended


async def test_the_progress_bar_ends_on_its_final_frame(
    autojump_clock: trio.testing.MockClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)

    async def job(seconds: float) -> None:
        await trio.sleep(seconds)

    async with gl.open_session(stats=None, progress=True):
        # The last task ends between two redraws (they come every 0.2 s), and the run at once.
        await gl.gather(*[(job @ Cores(1))(0.3 * i + 0.05) for i in range(1, 11)])
    frames = [line for line in terminal.getvalue().splitlines() if "/10" in line]
    assert "10/10" in frames[-1]
    assert "running 0  queued 0" in frames[-1]
    last = terminal.getvalue().rstrip().splitlines()[-1]
    assert "grainlike: 10 tasks: 10 done, 0 failed, 0 retried in" in last


async def test_the_summary_line_counts_done_failed_and_retried_and_how_busy_the_cores_were(
    autojump_clock: trio.testing.MockClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    attempts = {"flaky": 0}

    async def job() -> None:
        await trio.sleep(1)

    async def flaky() -> None:
        attempts["flaky"] += 1
        if attempts["flaky"] == 1:
            raise RuntimeError("once")
        await trio.sleep(1)

    async def broken() -> None:
        await trio.sleep(1)
        raise ValueError("bad input")

    async with gl.open_session(stats=None, progress=True):
        # 0-1 s: two jobs on the two cores; 1-2 s: flaky (after its failed try) and broken.
        first = [(job @ Cores(1))() for _ in range(2)]
        later = [(flaky @ Cores(1)).options(retries=1)(), (broken @ Cores(1))()]
        await gl.gather(*first)
        await later[0]
        with pytest.raises(ValueError, match="bad input"):
            await later[1]
        await trio.sleep(2)  # the cores idle: half of the 4 s the run took
    assert stderr.getvalue() == (
        "grainlike: 4 tasks: 3 done, 1 failed, 1 retried in 4.0 s; cores 50 % busy\n"
    )
