"""Sync functions in worker processes, through ``gl.run`` and on a real ``grainlike worker``.

Section 2.2 of the contract: pinned children, parallel speed-up, limits that hold, deaths that
fail one task, and no process outliving its task, even when the worker is killed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
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
import grainlike._session
from grainlike import GPU, Cores, Memory, MemoryLimitError, Resources, TaskFailedError, WTime
from grainlike.dispatch import Event, TaskFailed, TaskFinished, TaskStarted
from grainlike.resource import ResourceSpec, parse_resources, with_overrides

pytestmark = pytest.mark.slow

# Remote workers cannot import this test module: send its functions by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

KEY = bytes(range(32))
ALLOWED = sorted(os.sched_getaffinity(0))
two_cores = pytest.mark.skipif(len(ALLOWED) < 2, reason="needs at least two usable cores")


@pytest.fixture(autouse=True)
def this_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """The embedded worker owns this process's real cores (so affinity can be set), 4G and two
    pretend GPUs (only ``CUDA_VISIBLE_DEVICES`` is checked)."""
    base = parse_resources("mem:4G,gpu:2,wtime:inf", capacity=True) & Cores(ALLOWED)

    def capacity(resources: ResourceSpec | None) -> Resources:
        return with_overrides(base, resources)

    monkeypatch.setattr(grainlike._session, "_local_capacity", capacity)


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def all_gone(pids: list[int], within: float = 5.0) -> bool:
    with trio.move_on_after(within):
        while any(alive(pid) for pid in pids):
            await trio.sleep(0.05)
        return True
    return False


# -- what the tasks do ----------------------------------------------------------------------------


def seen() -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "affinity": sorted(os.sched_getaffinity(0)),
        "omp": os.environ.get("OMP_NUM_THREADS"),
        "cuda": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "allocated": gl.GVAR.res.c,
        "gpus": gl.GVAR.res[GPU].ids if gl.GVAR.res.get(GPU) is not None else [],
        "instance": gl.GVAR.instance,
    }


def burn(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i
    return total


def pid() -> int:
    return os.getpid()


def started_at() -> float:
    return time.time()


def hold(megabytes: int, seconds: float) -> int:
    block = bytearray(megabytes * 2**20)
    for i in range(0, len(block), 4096):
        block[i] = 1
    time.sleep(seconds)
    return len(block)


SHARED: list[int] = []


def remember(value: int) -> int:
    SHARED.append(value)
    return threading.get_ident()


def report_through_run_process() -> tuple[list[int], list[int]]:
    """A sync task can still use ``gl.run_process``, in a trio loop of its own."""
    code = "import os; print(sorted(os.sched_getaffinity(0)))"

    async def child() -> bytes:
        done = await gl.run_process([sys.executable, "-c", code], capture_stdout=True)
        return done.stdout

    out = trio.run(child)
    return eval(out), gl.GVAR.res.c


def family(pidfile: str) -> None:
    """Start a grandchild in a group of its own that ignores SIGTERM, then wait forever."""
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)"
    grandchild = subprocess.Popen([sys.executable, "-c", code], start_new_session=False)
    Path(pidfile + ".tmp").write_text(f"{os.getpid()} {grandchild.pid}")
    os.replace(pidfile + ".tmp", pidfile)
    time.sleep(120)


async def command_family(pidfile: str) -> None:
    """``run_process`` of a command that writes its pid and sleeps."""
    code = (
        "import os, sys, time; open(sys.argv[1] + '.tmp', 'w').write(str(os.getpid())); "
        "os.replace(sys.argv[1] + '.tmp', sys.argv[1]); time.sleep(120)"
    )
    await gl.run_process([sys.executable, "-c", code, pidfile])


async def pids_in(path: Path) -> list[int]:
    with trio.fail_after(30):
        while not path.exists():
            await trio.sleep(0.05)
    return [int(p) for p in path.read_text().split()]


# -- embedded -------------------------------------------------------------------------------------


@two_cores
async def test_two_cpu_bound_tasks_on_two_cores_take_well_under_their_serial_time() -> None:
    in_processes = burn @ Cores(1)
    in_threads = in_processes.options(executor="thread")  # the GIL runs them one at a time
    async with gl.open_session(stats=None, resources="cores:2"):
        await gl.gather(in_processes(10), in_processes(10))  # both children warm
        ratios = []
        for _ in range(3):
            start = time.perf_counter()
            await gl.gather(in_threads(3_000_000), in_threads(3_000_000))
            serial = time.perf_counter() - start
            start = time.perf_counter()
            await gl.gather(in_processes(3_000_000), in_processes(3_000_000))
            ratios.append((time.perf_counter() - start) / serial)
    # The serial baseline runs in the same rounds, under the same load from other jobs.  Ideal
    # is 0.5; the margin is for a machine shared with other jobs, and the best of three keeps a
    # passing burst of load from failing it.
    assert min(ratios) < 0.8, ratios


async def test_a_sync_task_runs_pinned_in_a_worker_process_and_sees_its_context() -> None:
    async with gl.open_session(stats=None, name="node-a"):
        got = await (seen @ Cores(1) & GPU(1))()
        wide = await (seen @ Cores(len(ALLOWED)))()
    assert got["pid"] != os.getpid()
    assert got["affinity"] == got["allocated"] and len(got["allocated"]) == 1
    assert (got["omp"], got["cuda"]) == ("1", ",".join(map(str, got["gpus"])))
    assert got["instance"] == "node-a"
    assert (wide["affinity"], wide["omp"], wide["cuda"]) == (ALLOWED, str(len(ALLOWED)), "")


async def test_a_sync_task_can_run_a_pinned_process_of_its_own() -> None:
    async with gl.open_session(stats=None):
        affinity, allocated = await (report_through_run_process @ Cores(1))()
    assert affinity == allocated


async def test_a_task_past_its_hard_limit_frees_its_cores_at_once() -> None:
    events: list[Event] = []
    async with gl.open_session(stats=None, resources=f"cores:{len(ALLOWED)}") as session:
        session.dispatcher.events.subscribe(events.append)
        start = time.monotonic()
        slow = (time.sleep @ Cores(1) & WTime(T=1))(30)
        wide = (started_at @ Cores(len(ALLOWED)))()
        with pytest.raises(trio.TooSlowError, match=r"\(sleep\) ran past its hard limit of 1s"):
            await slow
        assert time.monotonic() - start < 2.0
        await wide
    failed = next(e for e in events if isinstance(e, TaskFailed) and e.task_id == slow.task.id)
    begun = next(e for e in events if isinstance(e, TaskStarted) and e.task_id == wide.task.id)
    assert failed.error_type == "TooSlowError"
    assert begun.at - failed.at < 0.25


async def test_a_task_whose_process_exits_fails_alone_and_the_next_runs() -> None:
    async with gl.open_session(stats=None):
        with pytest.raises(TaskFailedError, match="died with exit code 3"):
            await (os._exit @ Cores(1))(3)
        assert await (pid @ Cores(1))() != os.getpid()


async def test_a_task_over_its_memory_gets_memory_limit_error() -> None:
    async with gl.open_session(stats=None, enforce_memory=True):
        with pytest.raises(MemoryLimitError, match=r"\(hold\) used .* more than its 0\.1953"):
            await (hold @ Cores(1) & Memory("200M"))(400, 30)


async def test_a_thousand_trivial_tasks_on_two_cores_use_at_most_two_processes() -> None:
    async with gl.open_session(stats=None, resources="cores:2") as session:
        results = await gl.gather(*((pid @ Cores(1))() for _ in range(1000)))
        assert session.local_worker is not None
        assert session.local_worker.pool.statistics().started <= 2
    assert len(set(results)) <= 2


async def test_every_process_task_is_measured_in_its_finished_event() -> None:
    events: list[Event] = []
    async with gl.open_session(stats=None) as session:
        session.dispatcher.events.subscribe(events.append)
        await (hold @ Cores(1))(100, 0.2)
    (finished,) = [e for e in events if isinstance(e, TaskFinished)]
    assert finished.usage is not None
    assert finished.usage.wall >= 0.2
    assert finished.usage.peak_rss >= 100 * 2**20
    assert 0 < finished.usage.cpu < finished.usage.wall + 0.1


async def test_an_argument_that_cannot_be_pickled_is_an_error_naming_the_task() -> None:
    async with gl.open_session(stats=None):
        with pytest.raises(TaskFailedError, match=r"task \d+ \(remember\): its function or arg"):
            await (remember @ Cores(1))(threading.Lock())
        assert await (pid @ Cores(1))() != os.getpid()


async def test_the_thread_executor_shares_memory_with_the_caller() -> None:
    SHARED.clear()
    async with gl.open_session(stats=None):
        await (remember @ Cores(1)).options(executor="thread")(1)
    async with gl.open_session(stats=None, executor="thread"):
        await (remember @ Cores(1))(2)
        await (remember @ Cores(1)).options(executor="process")(3)  # a copy of SHARED
    assert SHARED == [1, 2]


async def test_cancelling_the_caller_kills_the_process_and_frees_its_cores(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    async with gl.open_session(stats=None) as session:
        with trio.move_on_after(30) as scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(gl.exec1, Cores(1), family, str(pidfile))
                pids = await pids_in(pidfile)
                nursery.cancel_scope.cancel()
        assert not scope.cancelled_caught
        assert await all_gone(pids, within=2.0), [p for p in pids if alive(p)]
        with trio.fail_after(2):
            while session.dispatcher.running():
                await trio.sleep(0.02)


# -- on a remote worker ---------------------------------------------------------------------------


@asynccontextmanager
async def remote_worker(resources: str) -> AsyncIterator[tuple[gl.Session, trio.Process]]:
    async with gl.open_session(
        listen="127.0.0.1:0",
        local=False,
        key=KEY,
        stats=None,
        heartbeat_interval=0.2,
        heartbeat_timeout=2.0,
    ) as session:
        assert session.address is not None
        command = [sys.executable, "-m", "grainlike", "worker", session.address]
        command += ["--name", "far", "--resources", resources, "--connect-timeout", "10"]
        process = await trio.lowlevel.open_process(
            command, env=dict(os.environ, GRAINLIKE_KEY=KEY.hex()), stdout=subprocess.DEVNULL
        )
        try:
            with trio.fail_after(20):
                while not session.dispatcher.worker_ids():
                    await trio.sleep(0.02)
            yield session, process
        finally:
            if process.returncode is None:
                process.kill()
            await process.wait()


@two_cores
async def test_a_remote_worker_runs_sync_tasks_pinned_in_its_own_processes() -> None:
    events: list[Event] = []
    async with remote_worker("cores:2,gpu:2,mem:2G") as (session, worker):
        session.dispatcher.events.subscribe(events.append)
        got = await (seen @ Cores(1) & GPU(1))()
        with pytest.raises(trio.TooSlowError, match="ran past its hard limit of 1s"):
            await (time.sleep @ Cores(1) & WTime(T=1))(30)
        in_thread = await (seen @ Cores(1)).options(executor="thread")()
    assert got["pid"] not in (os.getpid(), worker.pid)
    assert got["affinity"] == got["allocated"] and len(got["allocated"]) == 1
    assert (got["omp"], got["cuda"]) == ("1", ",".join(map(str, got["gpus"])))
    assert got["instance"] == "far"
    assert in_thread["pid"] == worker.pid
    finished = [e for e in events if isinstance(e, TaskFinished)]
    assert finished[0].usage is not None and finished[0].usage.peak_rss > 0
    assert finished[1].usage is None  # the thread executor measures nothing


async def test_no_process_of_a_task_outlives_a_worker_killed_with_sigkill(tmp_path: Path) -> None:
    in_pool, by_command = tmp_path / "pool", tmp_path / "command"
    async with remote_worker("cores:2,mem:2G") as (_, worker):
        handles = [
            (family @ Cores(1))(str(in_pool)),
            (command_family @ Cores(1))(str(by_command)),
        ]
        pids = [*await pids_in(in_pool), *await pids_in(by_command)]
        assert all(alive(p) for p in pids)
        worker.send_signal(signal.SIGKILL)
        await worker.wait()
        assert await all_gone(pids), [p for p in pids if alive(p)]
        for handle in handles:
            handle.cancel()
