"""``Disk`` tasks' scratch directories and what tasks are measured to use, with real processes.

A task that holds ``Disk`` gets a private directory under the worker's scratch root (here a
``tmp_path``), which is ``TMPDIR`` of its processes and is gone when the task ends, whatever
the outcome.  A task's processes are measured: the figures agree with psutil's view of the
same processes.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import cloudpickle
import psutil
import pytest
import trio

import grainlike as gl
from grainlike import Cores, Disk, TaskFailedError, WTime
from grainlike.dispatch import Event, TaskFinished, TaskRetried, WorkerJoined
from grainlike.wire import Usage

pytestmark = pytest.mark.slow

# Remote workers cannot import this test module: send its functions by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

PYTHON = sys.executable
MB = 2**20
KEY = bytes(range(32))


@asynccontextmanager
async def session(root: Path, **options: Any) -> AsyncIterator[list[Event]]:
    """An embedded session whose scratch root is ``root``, with 2G of disk; yields its events."""
    options.setdefault("resources", "cores:1,disk:2G")
    events: list[Event] = []
    async with gl.open_session(stats=None, scratch=root, **options) as running:
        running.dispatcher.events.subscribe(events.append)
        yield events


def usage_of(events: list[Event]) -> Usage:
    (finished,) = [e for e in events if isinstance(e, TaskFinished)]
    assert finished.usage is not None
    return finished.usage


def what_a_task_sees() -> dict[str, Any]:
    scratch = gl.GVAR.scratch
    import tempfile

    return {
        "scratch": str(scratch),
        "mode": stat.S_IMODE(scratch.stat().st_mode),
        "entries": os.listdir(scratch),
        "tmpdir": os.environ.get("TMPDIR"),
        "tempfile": tempfile.gettempdir(),
    }


async def what_an_async_task_and_its_child_see() -> dict[str, Any]:
    seen = what_a_task_sees()
    code = "import os, tempfile; print(os.environ['TMPDIR']); print(tempfile.gettempdir())"
    done = await gl.run_process([PYTHON, "-c", code], capture_stdout=True)
    seen["child"] = done.stdout.decode().split()
    return seen


def tmpdir_now() -> tuple[str | None, str]:
    import tempfile

    return os.environ.get("TMPDIR"), tempfile.gettempdir()


def child_tmpdir_of_a_pool_task() -> list[str]:
    import subprocess

    code = "import os; print(os.environ['TMPDIR'])"
    done = subprocess.run([PYTHON, "-c", code], capture_output=True, check=True, text=True)
    return [str(gl.GVAR.scratch), done.stdout.strip()]


async def test_a_pool_task_gets_a_fresh_private_directory_that_is_its_tmpdir(
    tmp_path: Path,
) -> None:
    async with session(tmp_path):
        seen = await (what_a_task_sees @ Cores(1) & Disk(1))()
        again = await (what_a_task_sees @ Cores(1) & Disk(1))()
        own, child = await (child_tmpdir_of_a_pool_task @ Cores(1) & Disk(1))()
        after = await (tmpdir_now @ Cores(1))()  # the same child, without Disk now
    scratch = Path(seen["scratch"])
    assert scratch.parent == tmp_path
    assert scratch.name.startswith("grainlike-task-")
    assert seen["mode"] == 0o700
    assert seen["entries"] == []
    assert seen["tmpdir"] == seen["tempfile"] == seen["scratch"]
    assert again["scratch"] != seen["scratch"]
    assert child == own
    assert after == tmpdir_now()  # what the child started with, as this process has it
    assert not scratch.exists()
    assert os.listdir(tmp_path) == []


async def test_an_async_task_and_its_run_process_children_see_the_directory(
    tmp_path: Path,
) -> None:
    async with session(tmp_path):
        seen = await (what_an_async_task_and_its_child_see @ Disk("100M"))()
    assert Path(seen["scratch"]).parent == tmp_path
    assert seen["mode"] == 0o700
    assert seen["child"] == [seen["scratch"], seen["scratch"]]
    assert os.listdir(tmp_path) == []


def fill_and_fail(marker: Path) -> None:
    (gl.GVAR.scratch / "data").write_bytes(b"x" * MB)
    marker.write_text(str(gl.GVAR.scratch))
    raise ValueError("failed on purpose")


def fill_and_die(marker: Path) -> None:
    (gl.GVAR.scratch / "data").write_bytes(b"x" * MB)
    marker.write_text(str(gl.GVAR.scratch))
    os._exit(3)


def fill_and_hang(marker: Path) -> None:
    # A subdirectory the worker may not enter, and a file in it: removal still succeeds.
    locked = gl.GVAR.scratch / "locked"
    locked.mkdir()
    (locked / "data").write_bytes(b"x" * MB)
    locked.chmod(0o500)
    marker.write_text(str(gl.GVAR.scratch))
    time.sleep(60)


async def run_and_hang(marker: Path) -> None:
    code = "import sys, time; open(sys.argv[1], 'w').write('x' * 2**20); time.sleep(60)"
    marker.write_text(str(gl.GVAR.scratch))
    await gl.run_process([PYTHON, "-c", code, str(gl.GVAR.scratch / "data")])


async def wait_for(marker: Path) -> Path:
    with trio.fail_after(20):
        while not marker.exists() or not marker.read_text():
            await trio.sleep(0.02)
    return Path(marker.read_text())


async def test_the_directory_is_gone_after_a_failure(tmp_path: Path) -> None:
    root, marker = tmp_path / "root", tmp_path / "marker"
    root.mkdir()
    async with session(root):
        with pytest.raises(ValueError, match="failed on purpose"):
            await (fill_and_fail @ Cores(1) & Disk(1))(marker)
    assert marker.read_text().startswith(str(root))
    assert os.listdir(root) == []


async def test_the_directory_is_gone_after_its_process_dies(tmp_path: Path) -> None:
    root, marker = tmp_path / "root", tmp_path / "marker"
    root.mkdir()
    async with session(root):
        with pytest.raises(TaskFailedError, match="exit code 3"):
            await (fill_and_die @ Cores(1) & Disk(1))(marker)
    assert os.listdir(root) == []


async def test_the_directory_is_gone_after_a_hard_time_limit(tmp_path: Path) -> None:
    root, marker = tmp_path / "root", tmp_path / "marker"
    root.mkdir()
    async with session(root):
        with trio.fail_after(30), pytest.raises(trio.TooSlowError):
            await (fill_and_hang @ Cores(1) & Disk(1) & WTime(T=1))(marker)
        assert not (await wait_for(marker)).exists()
        with trio.fail_after(30), pytest.raises(trio.TooSlowError):
            await (run_and_hang @ Disk(1) & WTime(T=1))(marker)
        assert os.listdir(root) == []


@pytest.mark.parametrize("work", [fill_and_hang, run_and_hang], ids=["pool", "run_process"])
async def test_the_directory_is_gone_after_the_caller_cancels(tmp_path: Path, work: Any) -> None:
    root, marker = tmp_path / "root", tmp_path / "marker"
    root.mkdir()
    async with session(root):
        handle = (work @ Cores(1) & Disk(1))(marker)
        directory = await wait_for(marker)
        assert directory.is_dir()
        handle.cancel()
        with pytest.raises(gl.TaskCancelledError):
            await handle
        with trio.fail_after(10):
            while directory.exists():
                await trio.sleep(0.02)
    assert os.listdir(root) == []


async def test_a_task_without_disk_has_no_scratch_directory(tmp_path: Path) -> None:
    async def look() -> str:
        return str(gl.GVAR.scratch)

    async with session(tmp_path):
        with pytest.raises(AttributeError, match=r"scratch: task \d+ holds no Disk"):
            await (look @ Cores(1))()


async def test_disk_tasks_that_together_exceed_the_capacity_do_not_overlap(
    tmp_path: Path,
) -> None:
    spans: list[tuple[float, float]] = []

    async def hold() -> None:
        began = time.monotonic()
        await trio.sleep(0.5)
        spans.append((began, time.monotonic()))

    async with session(tmp_path, resources="cores:2,disk:1G"):
        await gl.gather((hold @ Disk(0.6))(), (hold @ Disk(0.6))())
        (first, second) = sorted(spans)
        assert first[1] <= second[0]
        spans.clear()
        await gl.gather((hold @ Disk(0.4))(), (hold @ Disk(0.4))())  # these fit together
        (first, second) = sorted(spans)
        assert second[0] < first[1]


async def test_a_disk_request_larger_than_the_scratch_root_offers_is_unsatisfiable(
    tmp_path: Path,
) -> None:
    async def nothing() -> None:
        return None

    async with session(tmp_path, resources="cores:1,disk:1G"):
        with pytest.raises(gl.UnsatisfiableError, match="disk"):
            await (nothing @ Disk(2))()


# -- measurements -------------------------------------------------------------------------------

#: Writes its pid to argv[1], holds about 150 MB for 1.5 s burning CPU meanwhile, and prints
#: the CPU seconds it counted for itself.
HOLDER = r"""
import os, sys, time
with open(sys.argv[1], "w") as out:
    out.write(str(os.getpid()))
block = bytearray(150 * 2**20)
for i in range(0, len(block), 4096):
    block[i] = 1
end = time.monotonic() + 1.5
while time.monotonic() < end:
    sum(range(10000))
print(time.process_time(), flush=True)
"""


async def watch_with_psutil(pid: int, peaks: list[int]) -> None:
    """The largest RSS psutil sees of ``pid`` until it is gone, every 50 ms."""
    try:
        process = psutil.Process(pid)
        while True:
            peaks.append(process.memory_info().rss)
            await trio.sleep(0.05)
    except psutil.NoSuchProcess:
        return


async def hold_memory_in_a_child() -> tuple[list[int], float]:
    peaks: list[int] = []
    pidfile = gl.GVAR.scratch / "pid"

    async def watch() -> None:
        with trio.fail_after(20):
            while not pidfile.exists() or not pidfile.read_text():
                await trio.sleep(0.01)
        await watch_with_psutil(int(pidfile.read_text()), peaks)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch)
        done = await gl.run_process([PYTHON, "-c", HOLDER, str(pidfile)], capture_stdout=True)
    return peaks, float(done.stdout)


async def test_a_run_process_childs_peak_memory_and_cpu_agree_with_psutil(tmp_path: Path) -> None:
    async with session(tmp_path) as events:
        peaks, own_cpu = await (hold_memory_in_a_child @ Cores(1) & Disk("10M"))()
    usage = usage_of(events)
    seen = max(peaks)
    assert seen > 150 * MB
    # Both sample the same plateau of 1.5 s: they differ by what moves between samples.
    assert abs(usage.peak_rss - seen) < 0.1 * seen, (usage.peak_rss, seen)
    # The CPU the child counted for itself, plus its start and exit.
    assert own_cpu <= usage.cpu < own_cpu + 0.5, (usage.cpu, own_cpu)
    assert usage.wall >= 1.5


def hold_memory_in_the_pool_child(pidfile: Path) -> float:
    began = time.process_time()
    pidfile.write_text(str(os.getpid()))
    block = bytearray(150 * MB)
    for i in range(0, len(block), 4096):
        block[i] = 1
    end = time.monotonic() + 1.5
    while time.monotonic() < end:
        sum(range(10000))
    return time.process_time() - began


async def test_a_pool_tasks_peak_memory_and_cpu_agree_with_psutil(tmp_path: Path) -> None:
    pidfile, peaks = tmp_path / "pid", []
    async with session(tmp_path) as events, trio.open_nursery() as nursery:
        handle = (hold_memory_in_the_pool_child @ Cores(1))(pidfile)

        async def watch() -> None:
            with trio.fail_after(20):
                while not pidfile.exists() or not pidfile.read_text():
                    await trio.sleep(0.01)
            pid = int(pidfile.read_text())
            with trio.move_on_after(30):
                while not handle.done():
                    peaks.append(psutil.Process(pid).memory_info().rss)
                    await trio.sleep(0.05)

        nursery.start_soon(watch)
        own_cpu = await handle
    usage = usage_of(events)
    seen = max(peaks)
    assert seen > 150 * MB
    assert abs(usage.peak_rss - seen) < 0.1 * seen, (usage.peak_rss, seen)
    # Its own count misses the unpickling of the call and the freeing of the block.
    assert own_cpu <= usage.cpu < own_cpu + 0.4, (usage.cpu, own_cpu)


def write_into_scratch(megabytes: int) -> None:
    with open(gl.GVAR.scratch / "data", "wb") as out:
        for _ in range(megabytes):
            out.write(os.urandom(MB))
        out.flush()
        os.fsync(out.fileno())


async def test_the_peak_size_of_the_directory_is_measured(tmp_path: Path) -> None:
    async with session(tmp_path) as events:
        await (write_into_scratch @ Cores(1) & Disk("100M"))(50)
    peak = usage_of(events).peak_disk
    assert peak is not None
    assert 50 * MB <= peak < 51 * MB, peak


async def test_a_directory_emptied_before_the_end_is_measured_at_its_peak(tmp_path: Path) -> None:
    async def write_then_delete() -> None:
        data = gl.GVAR.scratch / "data"
        data.write_bytes(os.urandom(20 * MB))
        await trio.sleep(2.5)  # the sampler walks the directory at least once meanwhile
        data.unlink()

    async with session(tmp_path) as events:
        await (write_then_delete @ Disk("100M"))()
    usage = usage_of(events)
    assert usage.peak_disk is not None and 20 * MB <= usage.peak_disk < 21 * MB
    assert (usage.cpu, usage.peak_rss) == (0.0, 0)  # it ran no process


async def test_a_remote_worker_makes_directories_under_its_scratch_root(tmp_path: Path) -> None:
    root = tmp_path / "node-local"
    root.mkdir()
    events: list[Event] = []
    async with gl.open_session(listen="127.0.0.1:0", local=False, key=KEY, stats=None) as running:
        running.dispatcher.events.subscribe(events.append)
        assert running.address is not None
        command = [PYTHON, "-m", "grainlike", "worker", running.address, "--scratch", str(root)]
        command += ["--resources", "cores:1", "--connect-timeout", "10"]
        process = await trio.lowlevel.open_process(
            command, env=dict(os.environ, GRAINLIKE_KEY=KEY.hex()), stdout=subprocess.DEVNULL
        )
        try:
            with trio.fail_after(20):
                while not running.dispatcher.worker_ids():
                    await trio.sleep(0.02)
            seen = await (what_a_task_sees @ Cores(1) & Disk("10M"))()
        finally:
            if process.returncode is None:
                process.kill()
            await process.wait()
    (joined,) = [e for e in events if isinstance(e, WorkerJoined)]
    assert ",disk:" in joined.capacity  # the free space of its scratch root
    assert Path(seen["scratch"]).parent == root
    assert seen["tmpdir"] == seen["scratch"]
    assert os.listdir(root) == []
    assert usage_of(events).peak_disk == 0


def test_grainlike_detect_reports_the_scratch_root(tmp_path: Path) -> None:
    done = subprocess.run(
        [PYTHON, "-m", "grainlike", "detect", "--json", "--scratch", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    report = json.loads(done.stdout)
    assert report["scratch"]["root"] == str(tmp_path)
    assert report["scratch"]["source"] == "given"
    assert "disk" in report["available"]
    text = subprocess.run(
        [PYTHON, "-m", "grainlike", "detect", "--scratch", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert ",disk:" in text.stdout
    assert f"scratch: {tmp_path} (" in text.stderr


def write_then_wait(mb: int, wait: float) -> int:
    (gl.GVAR.scratch / "data").write_bytes(bytes(mb * MB))
    time.sleep(wait)  # long enough for a walk of the directory to see it
    return mb


async def test_a_disk_group_task_over_its_label_is_stopped_and_retried_once_with_twice_it(
    tmp_path: Path,
) -> None:
    io = (write_then_wait @ Cores(1) & Disk("4M", group="io")).options(name="io")
    async with session(tmp_path) as events:
        assert await io(6, 3.0) == 6  # over 4M, within 8M
        with pytest.raises(gl.DiskLimitError) as caught:
            await io(12, 3.0)  # over 8M too
    retried = [e for e in events if isinstance(e, TaskRetried)]
    assert [e.reason for e in retried] == ["over its disk label: retried once with 8M"] * 2
    assert str(caught.value).endswith(
        "more than its 8M (Disk request); the task was stopped (after one retry with twice "
        "its label)"
    ), caught.value
    assert "its scratch directory reached 12" in str(caught.value)
    assert list(tmp_path.iterdir()) == []  # every directory went, the stopped ones too
