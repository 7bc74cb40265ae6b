"""Task handles as the futures users know: many awaiters, done/result/cancel, as_completed."""

from __future__ import annotations

import pytest
import trio
import trio.testing

import grainlike as gl
from grainlike import Cores, TaskCancelledError

pytestmark = pytest.mark.usefixtures("local_capacity")


async def sleepy(seconds: float, value: object = None) -> object:
    await trio.sleep(seconds)
    return value


async def test_two_callers_awaiting_one_handle_at_once_both_get_the_result(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Grain's test_simutaneous_await: any number of awaiters, each gets the same value."""
    results: list[object] = []
    async with gl.open_session(stats=None):
        handle = (sleepy @ Cores(1))(1, "shared")

        async def wait() -> None:
            results.append(await handle)

        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(wait)
        assert await handle == "shared"
    assert results == ["shared"] * 3


async def test_a_waiter_that_times_out_cancels_the_task_only_when_it_was_the_last(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with gl.open_session(stats=None):
        handle = (sleepy @ Cores(1))(10, "done")
        seen: list[object] = []

        async def patient() -> None:
            seen.append(await handle)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(patient)
            with trio.move_on_after(1):
                await handle  # gives up; the patient one still waits
            assert not handle.done()
        assert seen == ["done"]

        lonely = (sleepy @ Cores(1))(10)
        with trio.move_on_after(1):
            await lonely
        assert lonely.done()
        with pytest.raises(TaskCancelledError, match=rf"task {lonely.id} \(sleepy\) was cancelled"):
            lonely.result()


async def test_done_and_result_report_the_tasks_state(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def fail() -> None:
        raise ValueError("nope")

    async with gl.open_session(stats=None):
        handle = (sleepy @ Cores(1))(1, 42)
        assert not handle.done()
        with pytest.raises(RuntimeError, match="has not ended yet"):
            handle.result()
        await trio.sleep(2)
        assert handle.done()
        assert handle.result() == 42
        failing = (fail @ Cores(1))()
        await trio.sleep(1)
        with pytest.raises(ValueError, match="nope"):
            failing.result()


async def test_cancel_wakes_every_awaiter_with_task_cancelled_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    errors: list[BaseException] = []
    async with gl.open_session(stats=None) as session:
        handle = (sleepy @ Cores(1))(100)

        async def wait() -> None:
            try:
                await handle
            except TaskCancelledError as error:
                errors.append(error)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(wait)
            nursery.start_soon(wait)
            await trio.sleep(1)
            handle.cancel()
        await trio.testing.wait_all_tasks_blocked()
        assert session.dispatcher.running() == 0
    assert [type(e) for e in errors] == [TaskCancelledError, TaskCancelledError]
    assert gl.TaskCancelledError is TaskCancelledError


async def test_as_completed_yields_each_handle_once_in_the_order_the_tasks_end(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with gl.open_session(stats=None, resources="cores:4"):
        handles = [(sleepy @ Cores(1))(s, s) for s in (3, 1, 2)]
        done_first = (sleepy @ Cores(1))(0, 0)
        await trio.sleep(0.5)
        order = [h.result() async for h in gl.as_completed([*handles, done_first])]
    assert order == [0, 1, 2, 3]


async def test_cancelling_an_as_completed_loop_cancels_what_nobody_else_awaits(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with gl.open_session(stats=None):
        quick = (sleepy @ Cores(1))(1, "quick")
        slow = (sleepy @ Cores(1))(100, "slow")
        seen = []
        with trio.move_on_after(5):
            async for handle in gl.as_completed([quick, slow]):
                seen.append(handle.result())
        assert seen == ["quick"]
        assert slow.done()
        with pytest.raises(TaskCancelledError):
            slow.result()
