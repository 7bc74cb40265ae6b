"""The dispatcher: placement, results exactly once, lost workers, pools, time limits, learning.

The first half drives a ``Dispatcher`` through a fake worker link (the worker's answers are
calls the test makes); the second half runs real tasks on the embedded worker with trio's
autojump clock, so minutes of task time take no real time.
"""

from __future__ import annotations

import statistics
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import outcome
import pytest
import trio
import trio.testing

import grainlike as gl
from grainlike import (
    GPU,
    Cores,
    Counter,
    GrainlikeError,
    LearningRule,
    Memory,
    Resources,
    TaskCancelledError,
    UnsatisfiableError,
    WorkerLostError,
    WTime,
    parse_resources,
)
from grainlike.dispatch import (
    Dispatcher,
    DispatcherConfig,
    Event,
    TaskHandle,
    TaskPlaced,
    TaskRetried,
    WorkerLost,
)
from grainlike.dispatch._records import Task
from grainlike.dispatch._status import status_report
from grainlike.resource import Kind, as_resources
from grainlike.wire import Call

# -- a dispatcher with fake workers -------------------------------------------------------------


@attrs.define
class FakeLink:
    """A worker link that records what the dispatcher asks of it."""

    pipeline: int = 0
    started: list[Task] = attrs.field(factory=list)
    cancelled: list[int] = attrs.field(factory=list)
    drained: list[str] = attrs.field(factory=list)

    def run_tasks(self, tasks: Sequence[Task]) -> None:
        self.started.extend(tasks)

    def cancel_task(self, task_id: int) -> None:
        self.cancelled.append(task_id)

    def drain(self, reason: str) -> None:
        self.drained.append(reason)


@asynccontextmanager
async def serving(**config: Any) -> AsyncIterator[Dispatcher]:
    """A dispatcher whose placement loop runs for the duration of the block."""
    config.setdefault("unsatisfiable_grace", 0.0)
    dispatcher = Dispatcher(DispatcherConfig(**config))
    async with trio.open_nursery() as nursery:
        await nursery.start(dispatcher.serve)
        yield dispatcher
        nursery.cancel_scope.cancel()


def attach(dispatcher: Dispatcher, worker_id: str, capacity: str, *, pipeline: int = 0) -> FakeLink:
    link = FakeLink(pipeline)
    dispatcher.add_worker(worker_id, parse_resources(capacity, capacity=True), link)
    return link


def never_run() -> None:
    """The work of tasks that fake workers never run."""


def submit(dispatcher: Dispatcher, request: Kind | Resources, **options: Any) -> TaskHandle:
    return dispatcher.submit(as_resources(request), Call(never_run), **options)


async def settle() -> None:
    await trio.testing.wait_all_tasks_blocked()


def free(dispatcher: Dispatcher) -> dict[str, dict[str, tuple[float, float]]]:
    return {w.id: w.capacity.stat() for w in dispatcher.worker_states()}


def done(dispatcher: Dispatcher, link_id: str, task: Task, value: object = None) -> None:
    dispatcher.task_done(link_id, task.id, task.attempt, outcome.Value(value), 1.0)


async def test_a_task_is_placed_and_its_value_reaches_the_caller() -> None:
    async with serving() as dispatcher:
        link = attach(dispatcher, "w", "cores:2,mem:4G")
        handle = submit(dispatcher, Cores(1) & Memory(1), name="job")
        await settle()
        (task,) = link.started
        assert (task.id, task.worker, task.attempt) == (handle.id, "w", 1)
        assert task.allocation is not None and task.allocation.c == [0]
        assert free(dispatcher) == {"w": {"cores": (1, 2), "mem": (3, 4)}}
        done(dispatcher, "w", task, "result")
        assert await handle == "result"
        assert free(dispatcher) == {"w": {"cores": (2, 2), "mem": (4, 4)}}
        assert (dispatcher.queued(), dispatcher.running(), dispatcher.completed) == (0, 0, 1)


async def test_best_fit_places_on_the_worker_with_the_fewest_free_cores_that_fits() -> None:
    async with serving() as dispatcher:
        roomy = attach(dispatcher, "roomy", "cores:8")
        snug = attach(dispatcher, "snug", "cores:2")
        submit(dispatcher, Cores(2))
        submit(dispatcher, Cores(3))
        await settle()
        assert [t.request for t in snug.started] == [as_resources(Cores(2))]
        assert [t.request for t in roomy.started] == [as_resources(Cores(3))]


async def test_a_lost_workers_tasks_run_elsewhere_and_its_late_report_is_ignored() -> None:
    async with serving() as dispatcher:
        seen: list[Event] = []
        dispatcher.events.subscribe(seen.append)
        first = attach(dispatcher, "first", "cores:1")
        handle = submit(dispatcher, Cores(1))
        await settle()
        (task,) = first.started
        second = attach(dispatcher, "second", "cores:1")
        dispatcher.remove_worker("first", "connection dropped")
        await settle()
        assert second.started == [task]
        assert (task.worker, task.attempt) == ("second", 2)
        done(dispatcher, "first", task, "stale")  # the lost worker answers after all
        done(dispatcher, "second", task, "fresh")
        done(dispatcher, "second", task, "twice")
        assert await handle == "fresh"
        assert dispatcher.completed == 1
        lost = [e for e in seen if isinstance(e, WorkerLost | TaskRetried)]
        assert [(type(e).__name__, e.worker) for e in lost] == [
            ("WorkerLost", "first"),
            ("TaskRetried", "first"),
        ]


async def test_a_task_whose_workers_keep_getting_lost_fails_with_worker_lost_error() -> None:
    async with serving(max_retries=1) as dispatcher:
        attach(dispatcher, "a", "cores:1")
        handle = submit(dispatcher, Cores(1), name="doomed")
        await settle()
        attach(dispatcher, "b", "cores:1")
        dispatcher.remove_worker("a", "killed")
        await settle()
        assert handle.task.worker == "b"
        dispatcher.remove_worker("b", "killed")
        with pytest.raises(WorkerLostError, match=r"doomed\): 2 workers were lost .* b \(killed\)"):
            await handle


async def test_cancelling_the_caller_of_a_queued_task_drops_it_from_the_queue() -> None:
    async with serving() as dispatcher:
        link = attach(dispatcher, "w", "cores:1")
        blocker = submit(dispatcher, Cores(1))
        handle = submit(dispatcher, Cores(1))
        await settle()
        assert dispatcher.queued() == 1
        with trio.move_on_after(0):
            await handle
        assert dispatcher.queued() == 0
        done(dispatcher, "w", blocker.task)
        await settle()
        assert [t.id for t in link.started] == [blocker.id]


async def test_cancelling_the_caller_of_a_running_task_cancels_it_on_its_worker() -> None:
    async with serving() as dispatcher:
        link = attach(dispatcher, "w", "cores:2")
        handle = submit(dispatcher, Cores(2))
        await settle()
        with trio.move_on_after(0):
            await handle
        assert link.cancelled == [handle.id]
        assert free(dispatcher) == {"w": {"cores": (0, 2)}}  # until the worker says it stopped
        (task,) = link.started
        dispatcher.task_done("w", task.id, task.attempt, outcome.Error(trio.TooSlowError()), 0.5)
        assert free(dispatcher) == {"w": {"cores": (2, 2)}}
        assert dispatcher.completed == 1  # once, when it was cancelled


async def test_handle_cancel_wakes_whoever_awaits_a_running_task() -> None:
    async with serving() as dispatcher:
        attach(dispatcher, "w", "cores:1")
        handle = submit(dispatcher, Cores(1))
        await settle()
        errors: list[BaseException] = []

        async def waiter() -> None:
            try:
                await handle
            except TaskCancelledError as error:
                errors.append(error)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(waiter)
            await settle()
            handle.cancel()
            with trio.fail_after(1):
                await settle()
        assert [str(e) for e in errors] == [f"task {handle.id} (task) was cancelled"]


async def test_an_unsatisfiable_request_fails_at_once_naming_the_kinds_that_fall_short() -> None:
    async with serving() as dispatcher:
        attach(dispatcher, "w", "cores:2,mem:4G")
        handle = submit(dispatcher, Cores(4) & Memory(8) & GPU(1))
        assert handle.done()
        with pytest.raises(UnsatisfiableError) as caught:
            await handle
        assert caught.value.short == ("cores", "gpu", "mem")
        assert str(caught.value) == (
            "cores:4,mem:8G,gpu:1: no worker could ever satisfy this request\n"
            "  w: short of cores, gpu, mem (has cores 2, mem 4G)"
        )
        assert dispatcher.queued() == 0


async def test_an_unsatisfiable_pooled_counter_names_the_pool_that_falls_short() -> None:
    async with serving(pools=Resources(Counter("license", 2))) as dispatcher:
        attach(dispatcher, "w", "cores:2")
        with pytest.raises(UnsatisfiableError) as caught:
            await submit(dispatcher, Cores(1) & Counter("license", 3))
        assert caught.value.short == ("license",)
        assert str(caught.value) == (
            "cores:1,license:3: no worker could ever satisfy this request\n"
            "  w: could fit it (has cores 2)\n"
            "  pools: license:2, short of license"
        )


async def test_with_a_grace_period_an_unsatisfiable_request_fails_after_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with serving(unsatisfiable_grace=10.0) as dispatcher:
        handle = submit(dispatcher, Cores(4))
        await trio.sleep(60)  # no worker is connected: the grace period does not run
        assert not handle.done()
        attach(dispatcher, "small", "cores:2")
        start = trio.current_time()
        with pytest.raises(UnsatisfiableError, match="short of cores"):
            await handle
        assert 9 <= trio.current_time() - start <= 10  # the watch ticks once a second


async def test_with_a_no_worker_grace_tasks_fail_once_no_worker_was_connected_that_long(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with serving(no_worker_grace=30.0, unsatisfiable_grace=60.0) as dispatcher:
        link = attach(dispatcher, "w1", "cores:1")
        running = submit(dispatcher, Cores(1))
        await settle()
        [task] = link.started
        dispatcher.remove_worker("w1", "its job ended", lost=True)
        queued = submit(dispatcher, Cores(1))
        await trio.sleep(20)
        assert not running.done() and not queued.done()
        assert dispatcher.explain(queued.task) == (
            f"task {queued.id} (task) waits: no worker is connected "
            "(for 20s; the last one, w1 left: its job ended)"
        )
        start = trio.current_time()
        with pytest.raises(UnsatisfiableError, match=r"no worker has been connected for 30s"):
            await queued
        with pytest.raises(UnsatisfiableError, match=r"\(no_worker_grace\)"):
            await running  # requeued when its worker was lost, then failed alike
        assert 9 <= trio.current_time() - start <= 11  # 30 s after the worker left
    assert task.id == running.id


async def test_without_a_no_worker_grace_tasks_wait_for_workers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with serving(unsatisfiable_grace=60.0) as dispatcher:
        handle = submit(dispatcher, Cores(1))
        await trio.sleep(3600)
        assert not handle.done()
        link = attach(dispatcher, "late", "cores:1")
        await settle()
        assert [t.id for t in link.started] == [handle.id]


async def test_a_request_that_fits_a_worker_joining_within_the_grace_runs(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with serving(unsatisfiable_grace=10.0) as dispatcher:
        attach(dispatcher, "small", "cores:2")
        handle = submit(dispatcher, Cores(4))
        await trio.sleep(5)
        big = attach(dispatcher, "big", "cores:4")
        await trio.sleep(20)
        assert [t.id for t in big.started] == [handle.id]


def test_only_counters_can_be_pools() -> None:
    with pytest.raises(GrainlikeError, match="only counters can be pools"):
        Dispatcher(DispatcherConfig(pools=parse_resources("cores:2", capacity=True)))


async def test_a_time_limit_failure_is_not_retried() -> None:
    async with serving() as dispatcher:
        link = attach(dispatcher, "w", "cores:1")
        handle = submit(dispatcher, Cores(1), retries=3)
        await settle()
        (task,) = link.started
        dispatcher.task_done("w", task.id, 1, outcome.Error(trio.TooSlowError("late")), 9.0)
        with pytest.raises(trio.TooSlowError):
            await handle
        assert len(link.started) == 1


async def test_a_task_its_worker_cancelled_is_not_retried() -> None:
    async with serving() as dispatcher:
        link = attach(dispatcher, "w", "cores:1")
        handle = submit(dispatcher, Cores(1), retries=3)
        await settle()
        (task,) = link.started
        error = gl.TaskCancelledError(f"task {task.id} was cancelled")
        dispatcher.task_done("w", task.id, 1, outcome.Error(error), 1.0)
        with pytest.raises(gl.TaskCancelledError):
            await handle
        assert len(link.started) == 1


async def test_worker_ids_are_made_unique_and_duplicates_refused() -> None:
    async with serving() as dispatcher:
        attach(dispatcher, "node", "cores:1")
        assert dispatcher.unique_worker_id("node") == "node-2"
        assert dispatcher.unique_worker_id("other") == "other"
        with pytest.raises(GrainlikeError, match="'node' is already connected"):
            attach(dispatcher, "node", "cores:1")


async def test_a_draining_worker_gets_no_new_tasks() -> None:
    async with serving() as dispatcher:
        draining = attach(dispatcher, "old-1", "cores:4")
        staying = attach(dispatcher, "new-1", "cores:8")
        assert dispatcher.drain_workers("old-*") == ["old-1"]
        submit(dispatcher, Cores(1))
        await settle()
        assert (draining.drained, len(draining.started), len(staying.started)) == (
            ["asked to quit"],
            0,
            1,
        )


async def test_explain_says_why_a_task_waits_and_where_it_runs(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with serving(unsatisfiable_grace=60.0) as dispatcher:
        waiting = submit(dispatcher, Cores(2), name="wide")
        assert (
            dispatcher.explain(waiting.task)
            == f"task {waiting.id} (wide) waits: no worker is connected (for 0s)"
        )
        attach(dispatcher, "w", "cores:2")
        await settle()
        running = waiting
        queued = submit(dispatcher, Cores(1), name="narrow")
        await trio.sleep(2.5)
        assert dispatcher.explain(running.task) == (
            f"task {running.id} (wide) runs on w with cores:[0-1]"
        )
        assert dispatcher.explain(queued.task) == (
            f"task {queued.id} (narrow, cores:1) has waited 2.5s: w is busy (free too little cores)"
        )
        report = status_report(dispatcher)
        assert report.data["queued"] == 1
        assert report.data["running"] == 1
        assert report.data["workers"] == [
            {
                "id": "w",
                "accepting": True,
                "running": 1,
                "pipelined": 0,
                "leaving": None,
                "resources": {"cores": [0, 2]},
            }
        ]


async def test_explain_blames_an_exhausted_pool_not_the_workers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with serving(pools=Resources(Counter("license", 1))) as dispatcher:
        attach(dispatcher, "w", "cores:4")
        submit(dispatcher, Cores(1) & Counter("license", 1))
        queued = submit(dispatcher, Cores(1) & Counter("license", 1), name="second")
        await settle()
        assert dispatcher.explain(queued.task) == (
            f"task {queued.id} (second, cores:1,license:1) has waited 0s: "
            "the pools are in use (free too little license)"
        )


# -- real tasks on the embedded worker -----------------------------------------------------------

pytestmark = pytest.mark.usefixtures("local_capacity")


async def test_no_two_live_tasks_share_a_core(autojump_clock: trio.testing.MockClock) -> None:
    live: set[int] = set()
    overlaps: list[tuple[int, ...]] = []
    peak = 0

    async def work(seconds: float) -> None:
        nonlocal peak
        cores = set(gl.GVAR.res.c)
        if live & cores:
            overlaps.append(tuple(sorted(live & cores)))
        live.update(cores)
        peak = max(peak, len(live))
        await trio.sleep(seconds)
        live.difference_update(cores)

    async with gl.open_session(stats=None, resources="cores:4"):
        await gl.gather(
            *[(work @ Cores(1 + i % 3))(0.5 + (i * 7 % 5)) for i in range(40)],
        )
    assert overlaps == []
    assert peak == 4


async def test_a_task_that_cannot_fit_now_does_not_stop_smaller_ones(
    autojump_clock: trio.testing.MockClock,
) -> None:
    finished: list[tuple[str, float]] = []

    async def job(label: str, seconds: float) -> None:
        await trio.sleep(seconds)
        finished.append((label, trio.current_time()))

    async with gl.open_session(stats=None) as session:
        blocker = (job @ Cores(1))("blocker", 10)
        await trio.testing.wait_all_tasks_blocked()
        big = (job @ Cores(2))("big", 1)
        small = [(job @ Cores(1))(f"small{i}", 1) for i in range(3)]
        await gl.gather(blocker, big, *small)
        assert session.dispatcher.queued() == 0
    assert finished == [
        ("small0", 1.0),
        ("small1", 2.0),
        ("small2", 3.0),
        ("blocker", 10.0),
        ("big", 11.0),
    ]


async def test_a_starving_big_task_gets_reserved_and_runs(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Two staggered streams of 1-core tasks always hold a core; past the starvation bound
    the 2-core task gets both cores instead of waiting for the streams to end."""
    log: list[tuple[str, float]] = []

    async def small() -> None:
        await trio.sleep(3)

    async def big() -> None:
        log.append(("big", trio.current_time()))

    async def stream(offset: float) -> None:
        await trio.sleep(offset)
        for _ in range(30):
            await (small @ Cores(1))()
        log.append(("stream done", trio.current_time()))

    async with gl.open_session(stats=None, starvation_bound=5), trio.open_nursery() as nursery:
        nursery.start_soon(stream, 0)
        nursery.start_soon(stream, 1.5)
        await trio.sleep(0.5)
        await (big @ Cores(2))()
    ((first, started),) = log[:1]
    assert first == "big"
    assert 5.5 <= started <= 9.0


async def test_only_tasks_that_end_before_the_reservation_backfill(
    autojump_clock: trio.testing.MockClock,
) -> None:
    started: list[tuple[str, float]] = []

    async def job(label: str, seconds: float) -> None:
        started.append((label, trio.current_time()))
        await trio.sleep(seconds)

    async with gl.open_session(stats=None, starvation_bound=5):
        holder = (job @ Cores(1) & WTime(T=20))("holder", 19)
        await trio.testing.wait_all_tasks_blocked()
        big = (job @ Cores(2))("big", 1)
        await trio.sleep(6)  # big has waited past the bound
        short = (job @ Cores(1) & WTime(T=5))("short", 4)  # ends at 11, before 20
        long = (job @ Cores(1) & WTime(T=30))("long", 1)  # would end at 36
        unknown = (job @ Cores(1))("unknown", 1)
        await gl.gather(holder, big, short, long, unknown)
    assert dict(started) == {
        "holder": 0.0,
        "short": 6.0,
        "big": 19.0,
        "long": 20.0,
        "unknown": 20.0,
    }


async def test_higher_priority_runs_first_and_fifo_within_a_priority(
    autojump_clock: trio.testing.MockClock,
) -> None:
    order: list[str] = []

    async def job(label: str) -> None:
        order.append(label)
        await trio.sleep(1)

    async with gl.open_session(stats=None, resources="cores:1"):
        blocker = (job @ Cores(1))("blocker")
        await trio.testing.wait_all_tasks_blocked()
        bound = job @ Cores(1)
        handles = [
            bound("low-1"),
            bound.options(priority=5)("high-1"),
            bound.options(priority=1)("mid"),
            bound("low-2"),
            bound.options(priority=5)("high-2"),
            bound.options(priority=-1)("lowest"),
        ]
        await gl.gather(blocker, *handles)
    assert order == ["blocker", "high-1", "high-2", "mid", "low-1", "low-2", "lowest"]


async def test_a_task_past_its_hard_limit_gets_too_slow_and_the_worker_keeps_serving(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def sleepy(seconds: float) -> float:
        await trio.sleep(seconds)
        return seconds

    async with gl.open_session(stats=None) as session:
        start = trio.current_time()
        with pytest.raises(trio.TooSlowError):
            await (sleepy @ Cores(2) & WTime(T=5))(100)
        assert trio.current_time() - start == pytest.approx(5)
        assert await (sleepy @ Cores(2) & WTime(T=5))(4) == 4
        (worker,) = session.dispatcher.worker_states()
        assert worker.capacity.stat()["cores"] == (2, 2)


async def test_a_failing_task_is_rerun_as_often_as_retries_allows() -> None:
    calls: list[int] = []

    def flaky(fail_times: int) -> int:
        calls.append(len(calls))
        if len(calls) <= fail_times:
            raise ValueError(f"attempt {len(calls)} failed")
        return len(calls)

    # ``calls`` is shared with the task: a worker thread, not a worker process.
    async with gl.open_session(stats=None, executor="thread"):
        assert await (flaky @ Cores(1)).options(retries=2)(2) == 3
        calls.clear()
        with pytest.raises(ValueError, match="attempt 3 failed"):
            await (flaky @ Cores(1)).options(retries=2)(5)
        assert len(calls) == 3
        calls.clear()
        with pytest.raises(ValueError, match="attempt 1 failed"):
            await (flaky @ Cores(1))(1)
        assert len(calls) == 1


async def test_a_pool_limits_how_many_tasks_run_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    running = peak = 0

    async def licensed() -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await trio.sleep(1)
        running -= 1

    async with gl.open_session(stats=None, resources="cores:4", pools={"license": 2}) as session:
        start = trio.current_time()
        await gl.gather(*[(licensed @ Cores(1) & Counter("license", 1))() for _ in range(6)])
        assert trio.current_time() - start == pytest.approx(3)
        assert session.dispatcher._pools.capacity.stat() == {"license": (2, 2)}
    assert peak == 2


async def test_a_pooled_counter_is_named_with_the_allocation_in_the_placed_event() -> None:
    async def nothing() -> None:
        pass

    async with gl.open_session(stats=None, pools={"license": 1}) as session:
        seen: list[Event] = []
        session.dispatcher.events.subscribe(seen.append)
        await (nothing @ Cores(1) & Counter("license", 1))()
    (placed,) = [e for e in seen if isinstance(e, TaskPlaced)]
    assert placed.allocation == "cores:[0],license:1"


# -- learned groups -------------------------------------------------------------------------------

#: Eight qualifying runs (each at least 10 s) of the group "sim".
RUNS = [10.5, 12.0, 11.0, 14.5, 13.0, 10.5, 16.0, 12.5]
MEAN, SIGMA = statistics.mean(RUNS), statistics.stdev(RUNS)


async def simulate(seconds: float) -> tuple[float | None, float | None]:
    await trio.sleep(seconds)
    return gl.GVAR.res.T, gl.GVAR.res.softT


async def learn_group(group: str = "sim") -> None:
    for seconds in RUNS:
        assert await (simulate @ Cores(1) & WTime(group=group))(seconds) == (None, None)


async def test_a_group_runs_without_limits_until_eight_runs_then_gets_grains_rule(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with gl.open_session(stats=None) as session:
        await learn_group()
        handle = (simulate @ Cores(1) & WTime(group="sim"))(11)
        await trio.testing.wait_all_tasks_blocked()
        assert handle.task.hard_limit == pytest.approx(MEAN + 5 * SIGMA)
        hard, soft = await handle
        assert (hard, soft) == pytest.approx((MEAN + 5 * SIGMA, MEAN + 2 * SIGMA))
        assert session.dispatcher.learned.stats("sim").count == 9


async def test_a_learned_hard_limit_is_enforced(autojump_clock: trio.testing.MockClock) -> None:
    async with gl.open_session(stats=None):
        await learn_group()
        start = trio.current_time()
        with pytest.raises(trio.TooSlowError):
            await (simulate @ Cores(1) & WTime(group="sim"))(1000)
        assert trio.current_time() - start == pytest.approx(MEAN + 5 * SIGMA)


async def test_a_declared_limit_wins_over_a_learned_one(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with gl.open_session(stats=None):
        await learn_group()
        result = await (simulate @ Cores(1) & WTime(T=100, group="sim"))(11)
        assert result == (100, 100)


async def test_learned_limits_persist_to_the_stats_file_for_the_next_session(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    stats = tmp_path / "wtime-stats.json"
    async with gl.open_session(stats=stats):
        await learn_group()
    assert stats.exists()
    async with gl.open_session(stats=stats) as session:
        seen: list[Event] = []
        session.dispatcher.events.subscribe(seen.append)
        hard, soft = await (simulate @ Cores(1) & WTime(group="sim"))(11)
    assert (hard, soft) == pytest.approx((MEAN + 5 * SIGMA, MEAN + 2 * SIGMA))
    (placed,) = [e for e in seen if isinstance(e, TaskPlaced)]
    learned = WTime(MEAN + 5 * SIGMA, MEAN + 2 * SIGMA, group="sim")
    assert placed.allocation == f"cores:[0],{learned}"


async def test_the_learning_rule_is_configurable(autojump_clock: trio.testing.MockClock) -> None:
    rule = LearningRule(samples=3, min_duration=1.0, hard_sigmas=3.0, soft_sigmas=1.0)
    runs = [2.0, 4.0, 3.0]
    async with gl.open_session(stats=None, learning=rule):
        for seconds in runs:
            await (simulate @ Cores(1) & WTime(group="quick"))(seconds)
        hard, soft = await (simulate @ Cores(1) & WTime(group="quick"))(1)
    mean, sigma = statistics.mean(runs), statistics.stdev(runs)
    assert (hard, soft) == pytest.approx((mean + 3 * sigma, mean + sigma))


async def test_failed_and_short_runs_teach_a_group_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def fail() -> None:
        await trio.sleep(20)
        raise RuntimeError("no")

    async with gl.open_session(stats=None) as session:
        await (simulate @ Cores(1) & WTime(group="sim"))(9)
        with pytest.raises(RuntimeError):
            await (fail @ Cores(1) & WTime(group="sim"))()
        assert session.dispatcher.learned.stats("sim").count == 0


async def test_a_walltime_capacity_takes_only_tasks_whose_soft_limit_fits(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def nothing() -> None:
        pass

    async with gl.open_session(stats=None, resources="wtime:1h"):
        await (nothing @ Cores(1) & WTime(T="2h", softT="30m"))()
        with pytest.raises(UnsatisfiableError, match="short of wtime"):
            await (nothing @ Cores(1) & WTime(T="2h"))()


async def test_the_next_task_of_the_same_shape_takes_over_a_finished_tasks_allocation() -> None:
    async with serving() as dispatcher:
        link = attach(dispatcher, "w", "cores:2")
        handles = [submit(dispatcher, Cores(1)) for _ in range(4)]
        await settle()
        first, second = link.started
        done(dispatcher, "w", first)
        # Started in the same step, in the cores the finished task gave back.
        third = link.started[2]
        assert third.id == handles[2].id and third.allocation is not None
        assert third.allocation.c == [0] and first.allocation is None
        assert free(dispatcher) == {"w": {"cores": (0, 2)}}
        for task in (second, third):
            done(dispatcher, "w", task)
        await settle()
        done(dispatcher, "w", link.started[3])
        assert [await h for h in handles] == [None] * 4
        assert free(dispatcher) == {"w": {"cores": (2, 2)}}


async def test_a_finished_tasks_cores_go_to_what_is_first_in_line_not_to_its_own_shape() -> None:
    async with serving() as dispatcher:
        link = attach(dispatcher, "w", "cores:2")
        first = submit(dispatcher, Cores(1))
        second = submit(dispatcher, Cores(1))
        await settle()
        submit(dispatcher, Cores(1))
        urgent = submit(dispatcher, Cores(2), priority=5)
        await settle()
        done(dispatcher, "w", first.task)
        done(dispatcher, "w", second.task)
        await settle()
        assert link.started[2].id == urgent.id


async def test_a_counter_from_a_pool_is_in_the_tasks_allocation() -> None:
    async def licences() -> object:
        res = gl.GVAR.res
        return res.get("license"), res.c

    async with gl.open_session(stats=None, resources="cores:2", pools={"license": 2}):
        held, cores = await (licences @ Cores(1) & Counter("license", 1))()
    assert held == Counter("license", 1)
    assert len(cores) == 1
