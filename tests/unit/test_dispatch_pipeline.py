"""Pipelining: tasks sent ahead to wait behind a running task of the same shape.

The dispatcher is driven through fake worker links that say they pipeline; the worker's
answers are calls the test makes, with the durations the test chooses.
"""

from __future__ import annotations

import outcome
import trio

from grainlike import Cores, Counter, Memory, WorkerLostError, WTime
from grainlike.dispatch import Dispatcher
from grainlike.dispatch._records import Task
from grainlike.dispatch._status import status_report
from grainlike.resource import as_resources

from .test_dispatcher import FakeLink, attach, free, serving, settle, submit


def finish(dispatcher: Dispatcher, task: Task, duration: float = 0.001, value: object = 0) -> None:
    assert task.worker is not None
    dispatcher.task_done(task.worker, task.id, task.attempt, outcome.Value(value), duration)


async def warm_up(dispatcher: Dispatcher, link: FakeLink, request: object, duration: float) -> None:
    """Run one task of the shape, so that its duration is known."""
    handle = submit(dispatcher, request)  # type: ignore[arg-type]
    await settle()
    finish(dispatcher, handle.task, duration)
    await handle
    link.started.clear()


async def test_short_tasks_are_sent_ahead_behind_a_running_one_in_the_same_allocation() -> None:
    async with serving(pipeline_window=0.02) as dispatcher:
        link = attach(dispatcher, "w", "cores:2", pipeline=4)
        await warm_up(dispatcher, link, Cores(1), 0.001)
        handles = [submit(dispatcher, Cores(1), name=f"t{i}") for i in range(12)]
        await settle()
        # Two run (one per core); four wait behind each: at most 1 + 4 per allocation.
        assert len(link.started) == 10
        assert dispatcher.queued() == 2
        assert (dispatcher.running(), dispatcher.pipelined()) == (2, 8)
        heads = [t for t in link.started if t.after is None]
        assert len(heads) == 2
        for head in heads:
            chain = [head]
            while (
                nxt := next((t for t in link.started if t.after == chain[-1].id), None)
            ) is not None:
                chain.append(nxt)
            assert len(chain) == 5
            assert all(t.allocation is head.allocation for t in chain)
        # The worker's capacity is held once per allocation, not once per task.
        assert free(dispatcher) == {"w": {"cores": (0, 2)}}
        assert "(pipelined)" in dispatcher.explain(link.started[-1])
        report = status_report(dispatcher)
        assert (report.data["running"], report.data["pipelined"]) == (2, 8)
        assert report.data["workers"][0]["pipelined"] == 8
        assert "w: 2 running (+8 pipelined)" in report.text
        assert "2 queued, 2 running, 8 pipelined" in report.text
        for task in list(link.started):
            finish(dispatcher, task)
        await settle()
        for task in link.started[10:]:
            finish(dispatcher, task)
        assert [await h for h in handles] == [0] * 12
        assert free(dispatcher) == {"w": {"cores": (2, 2)}}
        assert (dispatcher.queued(), dispatcher.running(), dispatcher.pipelined()) == (0, 0, 0)


async def test_the_allocation_is_released_only_when_the_last_task_of_a_chain_ends() -> None:
    async with serving(pipeline_window=0.02) as dispatcher:
        link = attach(dispatcher, "w", "cores:1", pipeline=2)
        await warm_up(dispatcher, link, Cores(1), 0.001)
        handles = [submit(dispatcher, Cores(1)) for _ in range(3)]
        await settle()
        first, second, third = link.started
        assert (second.after, third.after) == (first.id, second.id)
        finish(dispatcher, first)
        finish(dispatcher, second)
        assert free(dispatcher) == {"w": {"cores": (0, 1)}}
        finish(dispatcher, third)
        assert free(dispatcher) == {"w": {"cores": (1, 1)}}
        assert [await h for h in handles] == [0, 0, 0]


async def test_tasks_longer_than_the_window_are_not_sent_ahead() -> None:
    async with serving(pipeline_window=0.02) as dispatcher:
        link = attach(dispatcher, "w", "cores:1", pipeline=8)
        await warm_up(dispatcher, link, Cores(1), 5.0)
        for _ in range(3):
            submit(dispatcher, Cores(1))
        await settle()
        assert len(link.started) == 1
        assert dispatcher.queued() == 2


async def test_the_depth_covers_the_window_by_the_measured_duration() -> None:
    async with serving(pipeline_window=0.02) as dispatcher:
        link = attach(dispatcher, "w", "cores:1", pipeline=32)
        await warm_up(dispatcher, link, Cores(1), 0.005)  # four of them fill 20 ms
        for _ in range(10):
            submit(dispatcher, Cores(1))
        await settle()
        assert len(link.started) == 1 + 4


async def test_no_task_is_sent_ahead_before_its_shape_was_measured_or_on_embedded_workers() -> None:
    async with serving(pipeline_window=0.02) as dispatcher:
        remote = attach(dispatcher, "remote", "cores:1", pipeline=8)
        for _ in range(3):
            submit(dispatcher, Cores(1))
        await settle()
        assert len(remote.started) == 1  # nothing measured yet
    async with serving(pipeline_window=0.02) as dispatcher:
        local = attach(dispatcher, "local", "cores:1", pipeline=0)
        await warm_up(dispatcher, local, Cores(1), 0.001)
        for _ in range(3):
            submit(dispatcher, Cores(1))
        await settle()
        assert len(local.started) == 1


async def test_a_shape_that_must_wait_stops_later_shapes_from_being_sent_ahead() -> None:
    async with serving(pipeline_window=0.02) as dispatcher:
        link = attach(dispatcher, "w", "cores:2", pipeline=4)
        await warm_up(dispatcher, link, Cores(1), 0.001)
        running = submit(dispatcher, Cores(1))
        big = submit(dispatcher, Cores(2))  # waits: one core is taken
        small = [submit(dispatcher, Cores(1)) for _ in range(3)]
        await settle()
        # The second core goes to a small task (backfill), but none is sent ahead of the big one.
        assert [t.id for t in link.started] == [running.id, small[0].id]
        assert all(t.after is None for t in link.started)
        assert not big.done()


async def test_a_lost_worker_requeues_waiting_tasks_without_counting_an_attempt() -> None:
    async with serving(pipeline_window=0.02, max_retries=0) as dispatcher:
        link = attach(dispatcher, "a", "cores:1", pipeline=3)
        await warm_up(dispatcher, link, Cores(1), 0.001)
        handles = [submit(dispatcher, Cores(1)) for _ in range(4)]
        await settle()
        assert len(link.started) == 4
        head = link.started[0]
        dispatcher.task_started("a", head.id, head.attempt)
        dispatcher.remove_worker("a", "killed")
        # The running one had its one try; the three behind it never began.
        try:
            await handles[0]
        except WorkerLostError:
            pass
        else:  # pragma: no cover
            raise AssertionError("the running task should have failed with WorkerLostError")
        assert dispatcher.queued() == 3
        assert [h.task.lost for h in handles[1:]] == [0, 0, 0]
        other = attach(dispatcher, "b", "cores:1", pipeline=3)
        await settle()
        # Back in their order, and sent ahead again on the new worker.
        assert [t.id for t in other.started] == [h.id for h in handles[1:]]
        for task in list(other.started):
            finish(dispatcher, task)
        assert [await h for h in handles[1:]] == [0, 0, 0]


async def test_a_pool_counter_is_held_once_by_a_chain_and_returned_at_its_end() -> None:
    async with serving(
        pipeline_window=0.02, pools=as_resources(Counter("license", 1))
    ) as dispatcher:
        link = attach(dispatcher, "w", "cores:4", pipeline=2)
        request = Cores(1) & Counter("license", 1)
        await warm_up(dispatcher, link, request, 0.001)
        handles = [submit(dispatcher, request) for _ in range(5)]
        await settle()
        # One license: one chain of three, one after another; two wait in the queue.
        assert len(link.started) == 3
        assert dispatcher.queued() == 2
        for task in list(link.started):
            finish(dispatcher, task)
        await settle()
        for task in link.started[3:]:
            finish(dispatcher, task)
        assert [await h for h in handles] == [0] * 5


async def test_cancelling_a_waiting_task_asks_its_worker_and_the_chain_goes_on() -> None:
    async with serving(pipeline_window=0.02) as dispatcher:
        link = attach(dispatcher, "w", "cores:1", pipeline=2)
        await warm_up(dispatcher, link, Cores(1), 0.001)
        first, second, third = (submit(dispatcher, Cores(1)) for _ in range(3))
        await settle()
        second.cancel()
        assert link.cancelled == [second.id]
        finish(dispatcher, first.task)
        dispatcher.task_done(
            "w", second.id, second.task.attempt, outcome.Error(trio.TooSlowError()), 0
        )
        finish(dispatcher, third.task)
        assert (await first, await third) == (0, 0)
        assert free(dispatcher) == {"w": {"cores": (1, 1)}}


async def test_a_draining_worker_gets_nothing_sent_ahead() -> None:
    async with serving(pipeline_window=0.02) as dispatcher:
        link = attach(dispatcher, "w", "cores:1", pipeline=4)
        await warm_up(dispatcher, link, Cores(1), 0.001)
        first = submit(dispatcher, Cores(1))
        await settle()
        dispatcher.drain_worker("w", "asked to quit")
        for _ in range(3):
            submit(dispatcher, Cores(1))
        await settle()
        assert [t.id for t in link.started] == [first.id]


async def test_nothing_is_sent_ahead_while_a_task_holds_a_reservation(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with serving(pipeline_window=0.02, starvation_bound=10) as dispatcher:
        link = attach(dispatcher, "w", "cores:2,mem:4G,wtime:100000", pipeline=4)
        urgent = Cores(1) & WTime(1)
        warm = submit(dispatcher, urgent, priority=1)
        await settle()
        finish(dispatcher, warm.task)
        link.started.clear()
        running = submit(dispatcher, urgent, priority=1)
        big = submit(dispatcher, Cores(2) & Memory(1))
        await settle()
        await trio.sleep(11)
        # The next placement pass finds that the big task waited past the bound: it reserves
        # the worker, and this task (no known end) may not backfill there.
        submit(dispatcher, Memory(1))
        await settle()
        for _ in range(4):
            submit(dispatcher, urgent, priority=1)
        await settle()
        # Without the reservation they would be sent ahead (they come first by priority).
        assert [t.id for t in link.started] == [running.id]
        assert dispatcher.queued() == 6
        finish(dispatcher, running.task)
        await settle()
        assert big.task.worker == "w"
