"""Running one task (``run_work``) and the embedded worker that runs many (``LocalWorker``)."""

from __future__ import annotations

import functools
import inspect
import os
import pickle
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import outcome
import pytest
import trio
import trio.testing

import grainlike as gl
from grainlike import Cores, Resources
from grainlike.resource import as_resources
from grainlike.wire import REMEMBERED_FUNCTIONS, Call, CallPacker, CallUnpacker, Usage
from grainlike.worker._context import TaskContext
from grainlike.worker._execute import run_work
from grainlike.worker._local import LocalWorker

ALLOCATION = as_resources(Cores([3]))
CONTEXT = TaskContext(ALLOCATION, "worker-1", 7)


def work(fn: Any, *args: Any, **kwargs: Any) -> Call:
    """What the embedded worker is handed for ``fn(*args, **kwargs)``."""
    return Call(fn, args, kwargs, inspect.iscoroutinefunction(fn))


async def seen_async() -> tuple[list[int], str, int, int]:
    await trio.sleep(0)
    return gl.GVAR.res.c, gl.GVAR.instance, gl.GVAR.task_id, threading.get_ident()


def seen_sync() -> tuple[list[int], str, int, int]:
    return gl.GVAR.res.c, gl.GVAR.instance, gl.GVAR.task_id, threading.get_ident()


# -- run_work -------------------------------------------------------------------------------------


async def test_an_async_function_runs_on_the_loop_and_sees_its_context() -> None:
    limiter = trio.CapacityLimiter(1)
    result = await run_work(work(seen_async), CONTEXT, None, limiter)
    assert result == outcome.Value(([3], "worker-1", 7, threading.get_ident()))


async def test_a_sync_function_runs_in_a_thread_and_sees_its_context() -> None:
    limiter = trio.CapacityLimiter(1)
    result = await run_work(work(seen_sync), CONTEXT, None, limiter)
    assert isinstance(result, outcome.Value)
    cores, instance, task_id, thread = result.value
    assert (cores, instance, task_id) == ([3], "worker-1", 7)
    assert thread != threading.get_ident()


async def test_arguments_reach_the_function() -> None:
    def combine(a: int, b: int, *, c: int) -> tuple[int, int, int]:
        return a, b, c

    result = await run_work(
        Call(combine, (1, 2), {"c": 3}, False), CONTEXT, None, trio.CapacityLimiter(1)
    )
    assert result == outcome.Value((1, 2, 3))


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
async def test_an_exception_is_captured_as_the_result(is_async: bool) -> None:
    error = ValueError("bad input")

    def sync_fail() -> None:
        raise error

    async def async_fail() -> None:
        raise error

    fn: Any = async_fail if is_async else sync_fail
    result = await run_work(Call(fn, (), {}, is_async), CONTEXT, None, trio.CapacityLimiter(1))
    assert result == outcome.Error(error)


async def test_an_async_function_past_its_hard_limit_gets_too_slow_naming_task_and_limit(
    autojump_clock: trio.testing.MockClock,
) -> None:
    result = await run_work(work(trio.sleep, 100), CONTEXT, 5.0, trio.CapacityLimiter(1))
    assert isinstance(result, outcome.Error) and isinstance(result.error, trio.TooSlowError)
    assert str(result.error) == "task 7 (sleep) ran past its hard limit of 5s"
    assert trio.current_time() == 5.0


async def test_a_sync_function_that_returns_past_its_hard_limit_gets_too_slow(
    autojump_clock: trio.testing.MockClock,
) -> None:
    def slow() -> str:
        trio.from_thread.run(trio.sleep, 10)  # ten seconds on the test's clock
        return "late"

    result = await run_work(Call(slow, (), {}, False), CONTEXT, 5.0, trio.CapacityLimiter(1))
    assert isinstance(result, outcome.Error)
    assert isinstance(result.error, trio.TooSlowError)
    assert str(result.error).startswith("task 7 (")
    assert "(slow) ran 10.0s, past its hard limit of 5s" in str(result.error)


async def test_a_sync_function_within_its_hard_limit_returns_its_value(
    autojump_clock: trio.testing.MockClock,
) -> None:
    def quick() -> str:
        trio.from_thread.run(trio.sleep, 1)
        return "on time"

    result = await run_work(Call(quick, (), {}, False), CONTEXT, 5.0, trio.CapacityLimiter(1))
    assert result == outcome.Value("on time")


async def test_cancellation_is_not_captured_as_a_result() -> None:
    with trio.CancelScope() as scope:
        scope.cancel()
        await run_work(work(trio.sleep, 10), CONTEXT, None, trio.CapacityLimiter(1))
        pytest.fail("run_work swallowed the cancellation")  # pragma: no cover
    assert scope.cancelled_caught


# -- LocalWorker ----------------------------------------------------------------------------------


@attrs.define
class Assignment:
    id: int
    work: Call
    granted: Resources = ALLOCATION
    hard_limit: float | None = None
    attempt: int = 1
    after: int | None = None


@attrs.define
class FakeReporter:
    """Records what the worker reports, in order."""

    reports: list[tuple[Any, ...]] = attrs.field(factory=list)

    def task_started(self, worker_id: str, task_id: int, attempt: int) -> None:
        self.reports.append(("started", worker_id, task_id, attempt))

    def task_done(
        self,
        worker_id: str,
        task_id: int,
        attempt: int,
        result: outcome.Outcome[Any],
        duration: float,
        usage: Usage | None = None,
    ) -> None:
        self.reports.append(("done", worker_id, task_id, attempt, result, duration, usage))

    def remove_worker(self, worker_id: str, reason: str, *, lost: bool = True) -> None:
        self.reports.append(("removed", worker_id, reason, lost))

    def outcome_of(self, task_id: int) -> outcome.Outcome[Any]:
        (result,) = [r[4] for r in self.reports if r[0] == "done" and r[2] == task_id]
        return result  # type: ignore[no-any-return]


@asynccontextmanager
async def local_worker() -> AsyncIterator[tuple[LocalWorker, FakeReporter]]:
    reporter = FakeReporter()
    worker = LocalWorker("local", reporter)
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.serve)
        yield worker, reporter
        nursery.cancel_scope.cancel()


async def test_the_worker_reports_a_task_started_then_done_with_its_duration(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def job() -> str:
        await trio.sleep(3)
        return "ok"

    async with local_worker() as (worker, reporter):
        worker.run_tasks([Assignment(1, Call(job, (), {}, True), attempt=2)])
        await trio.sleep(10)
    assert reporter.reports == [
        ("started", "local", 1, 2),
        ("done", "local", 1, 2, outcome.Value("ok"), 3.0, None),
    ]


async def test_a_task_cancelled_before_it_started_never_runs() -> None:
    ran: list[int] = []

    async def job() -> None:
        ran.append(1)

    async with local_worker() as (worker, reporter):
        worker.run_tasks([Assignment(1, Call(job, (), {}, True))])
        worker.cancel_task(1)  # before the worker's task got to run
        await trio.testing.wait_all_tasks_blocked()
    assert ran == []
    result = reporter.outcome_of(1)
    assert isinstance(result, outcome.Error) and isinstance(result.error, gl.TaskCancelledError)


async def test_a_running_task_is_cancelled_and_still_reported_done(
    autojump_clock: trio.testing.MockClock,
) -> None:
    cleaned_up: list[bool] = []

    async def job() -> None:
        try:
            await trio.sleep_forever()
        finally:
            cleaned_up.append(True)

    async with local_worker() as (worker, reporter):
        worker.run_tasks([Assignment(1, Call(job, (), {}, True))])
        await trio.sleep(1)
        worker.cancel_task(1)
        worker.cancel_task(99)  # unknown ids are ignored
        await trio.testing.wait_all_tasks_blocked()
    assert cleaned_up == [True]
    result = reporter.outcome_of(1)
    assert isinstance(result, outcome.Error) and "task 1 was cancelled" in str(result.error)


async def test_a_task_past_its_hard_limit_does_not_stop_the_next_one(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with local_worker() as (worker, reporter):
        worker.run_tasks([Assignment(1, work(trio.sleep, 100), hard_limit=5)])
        await trio.sleep(6)
        worker.run_tasks([Assignment(2, Call(seen_async, (), {}, True), hard_limit=5)])
        await trio.sleep(1)
    first = reporter.outcome_of(1)
    assert isinstance(first, outcome.Error) and isinstance(first.error, trio.TooSlowError)
    assert isinstance(reporter.outcome_of(2), outcome.Value)


async def test_draining_an_idle_worker_removes_it_at_once() -> None:
    async with local_worker() as (worker, reporter):
        worker.drain("asked to quit")
    assert reporter.reports == [("removed", "local", "asked to quit", False)]


async def test_a_draining_worker_leaves_when_its_last_task_ends(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with local_worker() as (worker, reporter):
        worker.run_tasks([Assignment(1, work(trio.sleep, 2)), Assignment(2, work(trio.sleep, 4))])
        await trio.sleep(1)
        worker.drain("walltime ends")
        await trio.sleep(10)
    assert [r[0] for r in reporter.reports] == ["started", "started", "done", "done", "removed"]
    assert reporter.reports[-1] == ("removed", "local", "walltime ends", False)


async def test_a_task_sent_ahead_starts_when_the_one_it_follows_ends(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with local_worker() as (worker, reporter):
        worker.run_tasks(
            [
                Assignment(1, work(trio.sleep, 2)),
                Assignment(2, work(trio.sleep, 3), after=1),
                Assignment(3, work(trio.sleep, 1), after=2),
            ]
        )
        await trio.sleep(1)
        assert [r[:3] for r in reporter.reports] == [("started", "local", 1)]
        await trio.sleep(10)
    # One after another, never two at once: 2 s, then 3 s, then 1 s.
    assert [(r[0], r[2]) for r in reporter.reports] == [
        ("started", 1),
        ("done", 1),
        ("started", 2),
        ("done", 2),
        ("started", 3),
        ("done", 3),
    ]
    assert [r[5] for r in reporter.reports if r[0] == "done"] == [2.0, 3.0, 1.0]


async def test_a_task_sent_after_one_that_already_ended_starts_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with local_worker() as (worker, reporter):
        worker.run_tasks([Assignment(1, work(trio.sleep, 1))])
        await trio.sleep(2)
        worker.run_tasks([Assignment(2, work(trio.sleep, 1), after=1)])
        await trio.sleep(1.5)
    assert [(r[0], r[2]) for r in reporter.reports] == [
        ("started", 1),
        ("done", 1),
        ("started", 2),
        ("done", 2),
    ]


async def test_a_waiting_task_that_is_cancelled_is_skipped_in_its_turn(
    autojump_clock: trio.testing.MockClock,
) -> None:
    ran: list[int] = []

    async def job(i: int) -> None:
        ran.append(i)
        await trio.sleep(1)

    async with local_worker() as (worker, reporter):
        worker.run_tasks(
            [
                Assignment(1, Call(job, (1,), {}, True)),
                Assignment(2, Call(job, (2,), {}, True), after=1),
                Assignment(3, Call(job, (3,), {}, True), after=2),
            ]
        )
        worker.cancel_task(2)
        await trio.sleep(5)
    assert ran == [1, 3]
    result = reporter.outcome_of(2)
    assert isinstance(result, outcome.Error) and isinstance(result.error, gl.TaskCancelledError)
    assert [(r[0], r[2]) for r in reporter.reports if r[0] == "done"] == [
        ("done", 1),
        ("done", 2),
        ("done", 3),
    ]


# -- the executor ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["fork", "", 1])
def test_an_unknown_executor_is_a_config_error_naming_it(value: Any) -> None:
    with pytest.raises(gl.ConfigError, match=rf"executor={value!r}: choose 'process' or 'thread'"):
        (seen_sync @ Cores(1)).options(executor=value)


def test_an_unknown_executor_off_the_wire_fails_its_task() -> None:
    packed = CallPacker().pack(Call(seen_sync, (1,), {}, False, "fork"))
    call = CallUnpacker().unpack(packed, task_id=5)
    assert call.is_async and isinstance(call.args[0], gl.TaskFailedError)
    assert "executor='fork'" in str(call.args[0])


async def test_a_session_refuses_an_unknown_default_executor() -> None:
    with pytest.raises(gl.ConfigError, match="executor='threads'"):
        async with gl.open_session(stats=None, executor="threads"):
            pass  # pragma: no cover


def test_a_shared_value_is_referred_to_and_each_call_gets_its_own_copy() -> None:
    value = [1, 2, 3]
    packed = CallPacker().pack(Call(seen_sync, (value, [value]), {}, False), {id(value): 9})
    unpacker = CallUnpacker()
    unpacker.share(9, pickle.dumps([1, 2, 3]))
    first, second = (unpacker.unpack(packed, task_id=n) for n in (1, 2))
    assert first.args == ([1, 2, 3], [[1, 2, 3]]) == second.args
    assert first.args[0] is first.args[1][0]  # one object in the call, as it was sent
    assert first.args[0] is not second.args[0]  # one task's changes are not another's
    unpacker.forget([9])
    failed = unpacker.unpack(packed, task_id=3)
    assert isinstance(failed.args[0], gl.TaskFailedError)
    assert "its input, the value of task 9, was not sent here" in str(failed.args[0])


def test_a_packer_and_an_unpacker_remember_a_bounded_number_of_functions() -> None:
    packer, unpacker = CallPacker(), CallUnpacker()
    calls = [Call(functools.partial(max, n), (n - 1,)) for n in range(REMEMBERED_FUNCTIONS + 50)]
    for n, call in enumerate(calls):
        unpacked = unpacker.unpack(packer.pack(call), task_id=n)
        assert unpacked.fn(*unpacked.args) == n
    assert len(packer._functions) == len(unpacker._functions) == REMEMBERED_FUNCTIONS


def test_the_executor_crosses_in_the_packed_call() -> None:
    packed = CallPacker().pack(Call(seen_sync, (1,), {}, False, "thread"))
    assert CallUnpacker().unpack(packed, task_id=1) == Call(seen_sync, (1,), {}, False, "thread")


async def test_a_thread_executor_task_runs_in_a_thread_of_the_worker_and_is_not_measured() -> None:
    async with local_worker() as (worker, reporter):
        worker.run_tasks([Assignment(1, Call(seen_sync, executor="thread"))])
        with trio.fail_after(10):
            while len(reporter.reports) < 2:
                await trio.sleep(0.01)
        assert worker.pool.statistics().started == 0
    cores, instance, task_id, thread = reporter.outcome_of(1).unwrap()
    assert (cores, instance, task_id) == ([3], "local", 1)
    assert thread != threading.get_ident()
    assert reporter.reports[-1][6] is None


def pid() -> int:
    return os.getpid()


@pytest.mark.slow
async def test_a_sync_task_runs_in_a_pool_process_and_reports_its_usage() -> None:
    allocation = as_resources(Cores([sorted(os.sched_getaffinity(0))[0]]))
    async with local_worker() as (worker, reporter):
        worker.run_tasks([Assignment(1, Call(pid), granted=allocation)])
        with trio.fail_after(30):
            while len(reporter.reports) < 2:
                await trio.sleep(0.01)
        assert worker.pool.statistics().alive == 1
    assert reporter.outcome_of(1).unwrap() != os.getpid()
    usage = reporter.reports[-1][6]
    assert isinstance(usage, Usage) and usage.peak_rss > 0
    assert worker.pool.statistics().alive == 0  # serve ended: its children are gone


async def test_an_idle_worker_and_its_pool_are_not_woken_while_nothing_runs(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with local_worker():
        start = time.perf_counter()
        await trio.sleep(10**7)  # on the test's clock; a periodic wake-up would take minutes
        assert time.perf_counter() - start < 1.0


# -- start order -----------------------------------------------------------------------------------

#: The order tasks began in (one list per test run).
STARTS: list[int] = []


async def note_start(i: int) -> None:
    STARTS.append(i)
    await trio.sleep(1)


@pytest.mark.parametrize("repeat", range(20))
async def test_tasks_handed_over_together_start_in_their_order_every_time(
    repeat: int, autojump_clock: trio.testing.MockClock
) -> None:
    """trio runs a batch of new tasks in either order; the worker starts tasks in order."""
    STARTS.clear()
    async with local_worker() as (worker, _):
        worker.run_tasks([Assignment(i, Call(note_start, (i,), {}, True)) for i in range(8)])
        await trio.sleep(2)
    assert list(range(8)) == STARTS


async def test_a_pipelined_heir_runs_after_its_predecessor_in_the_same_runner(
    autojump_clock: trio.testing.MockClock,
) -> None:
    STARTS.clear()
    async with local_worker() as (worker, _):
        worker.run_tasks(
            [
                Assignment(1, Call(note_start, (1,), {}, True)),
                Assignment(2, Call(note_start, (2,), {}, True), after=1),
                Assignment(3, Call(note_start, (3,), {}, True)),
            ]
        )
        await trio.sleep(0.5)
        assert STARTS == [1, 3]  # 2 waits for 1
        await trio.sleep(1)
        assert STARTS == [1, 3, 2]
