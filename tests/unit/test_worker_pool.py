"""The process pool with real children: pinning, reuse, limits, deaths, measurements.

Every test starts real child processes (about a third of a second each on a loaded machine),
so each keeps to one or two, and every wait on them is bounded.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import outcome
import psutil
import pytest
import trio

import grainlike as gl
from grainlike import GPU, Cores, Memory, MemoryLimitError, Resources, TaskFailedError
from grainlike.resource import ZERO, as_resources
from grainlike.wire import Call, Usage
from grainlike.worker._context import TaskContext
from grainlike.worker._pool import PoolStatistics, ProcessPool

pytestmark = pytest.mark.slow

ALLOWED = sorted(os.sched_getaffinity(0))
ONE_CORE = as_resources(Cores([ALLOWED[-1]]))


@asynccontextmanager
async def serving(**options: Any) -> AsyncIterator[ProcessPool]:
    pool = ProcessPool("worker-1", **options)
    async with trio.open_nursery() as nursery:
        await nursery.start(pool.serve)
        yield pool
        nursery.cancel_scope.cancel()


_ids = iter(range(1, 10**6))


async def run(
    pool: ProcessPool,
    fn: Callable[..., Any],
    *args: Any,
    allocation: Resources = ONE_CORE,
    hard_limit: float | None = None,
    enforce_memory: bool = False,
) -> tuple[outcome.Outcome[Any], Usage | None]:
    context = TaskContext(allocation, "worker-1", next(_ids), enforce_memory)
    return await pool.run(Call(fn, args), context, hard_limit)


async def value_of(pool: ProcessPool, fn: Callable[..., Any], *args: Any, **options: Any) -> Any:
    result, _ = await run(pool, fn, *args, **options)
    return result.unwrap()


async def error_of(pool: ProcessPool, fn: Callable[..., Any], *args: Any, **options: Any) -> Any:
    result, _ = await run(pool, fn, *args, **options)
    assert isinstance(result, outcome.Error), result
    return result.error


def pool_children() -> list[int]:
    """The pids of this process's pool children (not its keeper)."""
    children = psutil.Process().children()
    return [p.pid for p in children if "grainlike.worker._child" in " ".join(p.cmdline())]


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def gone(pid: int, within: float = 5.0) -> bool:
    with trio.move_on_after(within):
        while alive(pid):
            await trio.sleep(0.02)
        return True
    return False


# -- functions the children run -------------------------------------------------------------------


def seen() -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "affinity": sorted(os.sched_getaffinity(0)),
        "omp": os.environ.get("OMP_NUM_THREADS"),
        "cuda": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "cores": os.environ.get("GRAINLIKE_CORES"),
        "res": gl.GVAR.res,
        "instance": gl.GVAR.instance,
        "task_id": gl.GVAR.task_id,
    }


def pid() -> int:
    return os.getpid()


def fail(message: str) -> None:
    raise ValueError(message)


def exit_with(code: int) -> None:
    os._exit(code)


def kill_myself(sig: int) -> None:
    os.kill(os.getpid(), sig)


def hold(megabytes: int, seconds: float) -> int:
    block = bytearray(megabytes * 2**20)
    for i in range(0, len(block), 4096):
        block[i] = 1  # touch every page: resident, not just reserved
    time.sleep(seconds)
    return len(block)


def burn(seconds: float) -> int:
    end, n = time.process_time() + seconds, 0
    while time.process_time() < end:
        n += 1
    return n


def leave_behind(pidfile: str, new_session: bool) -> None:
    """Start a grandchild that ignores SIGTERM, write its pid, and return without waiting."""
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    child = subprocess.Popen([sys.executable, "-c", code], start_new_session=new_session)
    Path(pidfile).write_text(str(child.pid))


def leave_behind_and_sleep(pidfile: str, new_session: bool) -> None:
    leave_behind(pidfile, new_session)
    time.sleep(60)


def give_back(value: object) -> object:
    return value


# -- where a task runs ----------------------------------------------------------------------------


async def test_a_sync_call_runs_in_a_child_pinned_to_its_cores_with_its_context() -> None:
    allocation = as_resources(Cores([ALLOWED[-1]]) & GPU([1]))
    async with serving() as pool:
        result, usage = await run(pool, seen, allocation=allocation)
    got = result.unwrap()
    assert got["pid"] != os.getpid()
    assert got["affinity"] == [ALLOWED[-1]]
    assert (got["omp"], got["cuda"], got["cores"]) == ("1", "1", str(ALLOWED[-1]))
    assert (got["res"], got["instance"]) == (allocation, "worker-1")
    assert usage is not None and usage.wall > 0 and usage.peak_rss > 0


async def test_a_task_without_cores_gets_the_whole_machine_back_in_a_reused_child(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    async with serving() as pool:
        pinned = await value_of(pool, seen)
        free = await value_of(pool, seen, allocation=ZERO)
        assert pool.statistics().started == 1
    assert free["pid"] == pinned["pid"]
    assert (pinned["affinity"], pinned["omp"]) == ([ALLOWED[-1]], "1")
    assert (free["affinity"], free["omp"], free["cores"]) == (ALLOWED, None, None)
    assert free["cuda"] == ""


async def test_one_child_serves_tasks_one_after_another() -> None:
    async with serving() as pool:
        pids = {await value_of(pool, pid) for _ in range(20)}
        assert len(pids) == 1
        assert pool.statistics() == PoolStatistics(alive=1, idle=1, started=1, tasks=20)


async def test_tasks_without_cores_share_at_most_extra_children() -> None:
    async with serving(extra_children=1) as pool:
        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(functools.partial(run, pool, time.sleep, 0.2, allocation=ZERO))
        assert pool.statistics().started == 1


async def test_a_child_that_ran_on_some_gpus_is_not_reused_for_others() -> None:
    on = {i: as_resources(Cores([ALLOWED[-1]]) & GPU([i])) for i in (0, 1)}
    async with serving() as pool:
        first = await value_of(pool, pid, allocation=on[0])
        other = await value_of(pool, pid, allocation=on[1])
        again = await value_of(pool, pid, allocation=on[0])
    assert first != other
    assert again == first


# -- results and errors ---------------------------------------------------------------------------


async def test_arguments_and_results_cross_by_value() -> None:
    async with serving() as pool:
        assert await value_of(pool, give_back, {"a": [1, 2], "b": (3,)}) == {"a": [1, 2], "b": (3,)}


async def test_an_exception_reaches_the_caller_with_the_childs_traceback() -> None:
    async with serving() as pool:
        error = await error_of(pool, fail, "bad input")
    assert isinstance(error, ValueError) and str(error) == "bad input"
    assert "in fail" in getattr(error, "remote_traceback", "")


async def test_an_argument_that_cannot_be_pickled_fails_its_task_and_the_child_serves_on() -> None:
    async with serving() as pool:
        error = await error_of(pool, give_back, threading.Lock())
        assert isinstance(error, TaskFailedError)
        assert "(give_back): its function or arguments cannot be pickled" in str(error)
        assert await value_of(pool, give_back, 5) == 5
        assert pool.statistics().started == 1


def make_lock() -> object:
    return threading.Lock()


async def test_a_result_that_cannot_be_pickled_fails_its_task_naming_it() -> None:
    async with serving() as pool:
        error = await error_of(pool, make_lock)
        assert isinstance(error, TaskFailedError)
        assert "(make_lock): its result (lock) cannot be pickled" in str(error)
        assert await value_of(pool, give_back, 5) == 5


async def test_a_child_that_exits_fails_only_its_task_naming_the_exit_code() -> None:
    async with serving() as pool:
        error = await error_of(pool, exit_with, 3)
        assert isinstance(error, TaskFailedError)
        assert "(exit_with): its worker process died with exit code 3" in str(error)
        assert await value_of(pool, give_back, "next") == "next"
        assert pool.statistics().started == 2


async def test_a_child_killed_by_a_signal_names_the_signal() -> None:
    async with serving() as pool:
        error = await error_of(pool, kill_myself, signal.SIGSEGV)
    assert isinstance(error, TaskFailedError)
    assert "its worker process was killed by signal SIGSEGV" in str(error)


# -- limits ---------------------------------------------------------------------------------------


async def test_a_task_past_its_hard_limit_is_killed_at_the_limit_and_still_measured() -> None:
    async with serving() as pool:
        child = await value_of(pool, pid)
        start = trio.current_time()
        result, usage = await run(pool, burn, 30.0, hard_limit=1.0)
        took = trio.current_time() - start
        assert isinstance(result, outcome.Error) and isinstance(result.error, trio.TooSlowError)
        assert "(burn) ran past its hard limit of 1s" in str(result.error)
        assert 1.0 <= took < 2.0
        assert not alive(child)
        assert await value_of(pool, pid) != child
    assert usage is not None and 1.0 <= usage.wall < 2.0
    assert 0.3 <= usage.cpu <= usage.wall + 0.05  # most of a second, on a loaded machine


async def test_a_task_over_its_memory_is_killed_with_memory_limit_error() -> None:
    allocation = as_resources(Cores([ALLOWED[-1]]) & Memory("150M"))
    async with serving() as pool:
        error = await error_of(pool, hold, 300, 30, allocation=allocation, enforce_memory=True)
        assert isinstance(error, MemoryLimitError)
        assert "(hold) used" in str(error) and "more than its 0.146484G" in str(error)
        # Without enforcement the same task runs (briefly) to its end.
        assert await value_of(pool, hold, 300, 0.0, allocation=allocation) == 300 * 2**20


async def test_a_task_is_measured_wall_cpu_and_peak_memory() -> None:
    async with serving() as pool:
        await value_of(pool, pid)  # the child is warm: its start is not measured
        _, used = await run(pool, burn, 0.3)
        _, big = await run(pool, hold, 200, 0.3)
        _, small = await run(pool, pid)
    assert used is not None and big is not None and small is not None
    assert 0.25 <= used.cpu <= used.wall + 0.05
    assert big.peak_rss >= 200 * 2**20
    # The peak is per task: the next one does not inherit the big one's.
    assert small.peak_rss < big.peak_rss - 150 * 2**20


# -- cancellation and clean-up --------------------------------------------------------------------


async def test_cancelling_a_task_kills_its_child_promptly_and_the_next_gets_a_new_one() -> None:
    async with serving() as pool:
        child = await value_of(pool, pid)
        with trio.move_on_after(0.3):
            await run(pool, time.sleep, 30)
        assert await gone(child, within=1.0)
        assert await value_of(pool, pid) != child
        assert pool.statistics().alive == 1


@pytest.mark.parametrize("new_session", [False, True], ids=["own-group", "setsid"])
async def test_what_a_task_leaves_running_is_killed_when_it_returns(
    tmp_path: Path, new_session: bool
) -> None:
    pidfile = tmp_path / "grandchild"
    async with serving() as pool:
        await value_of(pool, leave_behind, str(pidfile), new_session)
        assert await gone(int(pidfile.read_text()))


async def test_what_a_task_started_is_killed_with_it_at_its_hard_limit(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild"
    async with serving() as pool:
        error = await error_of(pool, leave_behind_and_sleep, str(pidfile), True, hard_limit=1.0)
        assert isinstance(error, trio.TooSlowError)
        assert await gone(int(pidfile.read_text()))


async def test_idle_children_are_closed_after_the_idle_timeout() -> None:
    async with serving(idle_timeout=0.2) as pool:
        child = await value_of(pool, pid)
        assert pool.statistics().alive == 1
        await trio.sleep(0.6)
        assert pool.statistics().alive == 0
        assert not alive(child)


async def test_every_child_is_killed_when_the_pool_stops() -> None:
    async with serving() as pool:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run, pool, time.sleep, 0.5)
            nursery.start_soon(functools.partial(run, pool, time.sleep, 0.5, allocation=ZERO))
        children = pool_children()
        assert pool.statistics().idle == len(children) == 2
    for child in children:
        assert await gone(child, within=1.0)


async def test_stopping_the_pool_while_tasks_run_kills_their_children() -> None:
    pool = ProcessPool("worker-1")
    results: list[Any] = []

    async def one(allocation: Resources) -> None:
        results.append(await run(pool, time.sleep, 30, allocation=allocation))

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(pool.serve)
            nursery.start_soon(one, ONE_CORE)
            nursery.start_soon(one, ZERO)
            while len(pool_children()) < 2:
                await trio.sleep(0.05)
            await trio.sleep(0.3)  # both tasks sent
            children = pool_children()
            nursery.cancel_scope.cancel()
    assert results == []  # cancelled, not reported
    assert pool.statistics().alive == 0
    for child in children:
        assert await gone(child, within=1.0)


# -- thread pools ---------------------------------------------------------------------------------


def blas_threads() -> list[int]:
    import numpy  # noqa: F401 - loads OpenBLAS with its thread pool
    from threadpoolctl import threadpool_info

    return [info["num_threads"] for info in threadpool_info()]


async def test_thread_pools_loaded_in_the_child_are_limited_to_the_core_count() -> None:
    pytest.importorskip("numpy")
    async with serving() as pool:
        free = await value_of(pool, blas_threads, allocation=ZERO)  # loads numpy in the child
        limited = await value_of(pool, blas_threads)
    assert limited and set(limited) == {1}
    if len(ALLOWED) > 1:
        assert max(free) > 1  # the limit is the allocation's, not the library's default
