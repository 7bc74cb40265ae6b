"""Grain-style wait groups: submit many, results in submission order, first failure cancels."""

from __future__ import annotations

import pytest
import trio
import trio.testing

import grainlike as gl
from grainlike import Cores, Memory

pytestmark = pytest.mark.usefixtures("local_capacity")


async def wait(seconds: float) -> float:
    await trio.sleep(seconds)
    return seconds


async def test_results_come_in_submission_order(autojump_clock: trio.testing.MockClock) -> None:
    async with gl.open_session(stats=None, resources="cores:4"):
        async with gl.open_waitgroup() as wg:
            for seconds in (4.0, 1.0, 3.0, 2.0):
                wg.submit(Cores(1), wait, seconds)
        assert wg.results == [4.0, 1.0, 3.0, 2.0]
        assert trio.current_time() == 4.0


async def test_leaving_the_block_waits_for_every_task(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with gl.open_session(stats=None) as session:
        async with gl.open_waitgroup() as wg:
            handles = [wg.submit(Cores(1), wait, 5.0) for _ in range(4)]
        assert all(handle.done() for handle in handles)
        assert trio.current_time() == 10.0
        assert session.dispatcher.completed == 4


async def test_each_task_gets_the_resources_it_was_submitted_with() -> None:
    def granted() -> tuple[int, float]:
        return gl.GVAR.res.N, gl.GVAR.res.M

    async with gl.open_session(stats=None, executor="thread"):  # unit tests start no processes
        async with gl.open_waitgroup() as wg:
            wg.submit(Cores(1) & Memory(1), granted)
            wg.submit(Cores(2) & Memory(2), granted)
        assert wg.results == [(1, 1.0), (2, 2.0)]


async def test_results_are_not_available_inside_the_block() -> None:
    async with gl.open_session(stats=None), gl.open_waitgroup() as wg:
        with pytest.raises(RuntimeError, match="after the `async with` block"):
            _ = wg.results


async def test_a_handle_awaited_inside_the_block_is_still_in_the_results() -> None:
    async with gl.open_session(stats=None):
        async with gl.open_waitgroup() as wg:
            early = wg.submit(Cores(1), wait, 0.0)
            assert await early == 0.0
            wg.submit(Cores(1), wait, 0.0)
        assert wg.results == [0.0, 0.0]


async def test_the_first_failure_is_raised_and_cancels_the_pending_tasks(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def fail() -> None:
        await trio.sleep(1)
        raise ValueError("broken")

    async with gl.open_session(stats=None, resources="cores:4") as session:
        with pytest.raises(ValueError, match="broken"):
            async with gl.open_waitgroup() as wg:
                slow = wg.submit(Cores(1), wait, 100.0)
                wg.submit(Cores(1), fail)
                queued = wg.submit(Cores(4), wait, 1.0)
        assert trio.current_time() == 1.0
        await trio.testing.wait_all_tasks_blocked()
        assert (session.dispatcher.running(), session.dispatcher.queued()) == (0, 0)
        assert slow.done() and queued.done()


async def test_an_error_in_the_block_cancels_what_was_submitted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with gl.open_session(stats=None) as session:
        with pytest.raises(KeyError):
            async with gl.open_waitgroup() as wg:
                wg.submit(Cores(1), wait, 100.0)
                await trio.testing.wait_all_tasks_blocked()
                raise KeyError("in the block")
        await trio.testing.wait_all_tasks_blocked()
        assert session.dispatcher.running() == 0
        assert trio.current_time() == 0.0


async def test_a_bad_request_fails_at_submit() -> None:
    async with gl.open_session(stats=None):
        async with gl.open_waitgroup() as wg:
            with pytest.raises(gl.ResourceError, match="not a resource"):
                wg.submit("cores:1", wait, 0.0)  # type: ignore[arg-type]
        assert wg.results == []
