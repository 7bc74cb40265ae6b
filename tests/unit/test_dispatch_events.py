"""Events: frozen values with timestamps, delivered in order to any number of subscribers."""

from __future__ import annotations

import contextlib
import time

import attrs
import pytest
import trio
import trio.testing

import grainlike as gl
from grainlike import Cores, WTime
from grainlike.dispatch import (
    Event,
    EventBus,
    TaskFailed,
    TaskFinished,
    TaskPlaced,
    TaskRetried,
    TaskStarted,
    TaskSubmitted,
    WorkerJoined,
)

from ..lifecycle import check_lifecycles

pytestmark = pytest.mark.usefixtures("local_capacity")


def test_every_subscriber_gets_every_event_in_publication_order() -> None:
    bus = EventBus()
    first: list[Event] = []
    second: list[Event] = []
    bus.subscribe(first.append)
    bus.subscribe(second.append)
    events = [WorkerJoined("w", "cores:2"), TaskSubmitted(1, "f", "cores:1", 0)]
    for event in events:
        bus.publish(event)
    assert first == events
    assert second == events


def test_an_unsubscribed_subscriber_gets_nothing_more() -> None:
    bus = EventBus()
    seen: list[Event] = []
    unsubscribe = bus.subscribe(seen.append)
    bus.publish(TaskStarted(1, "w"))
    unsubscribe()
    bus.publish(TaskStarted(2, "w"))
    assert seen == [TaskStarted(1, "w", at=seen[0].at)]


def test_a_bus_is_active_only_while_somebody_listens() -> None:
    bus = EventBus()
    assert not bus.active
    unsubscribe = bus.subscribe(lambda event: None)
    assert bus.active
    unsubscribe()
    assert not bus.active


def test_events_are_frozen_and_stamped_with_wall_clock_time() -> None:
    before = time.time()
    event = TaskFinished(1, "w", 2.5)
    assert before <= event.at <= time.time()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        event.duration = 3.0  # type: ignore[misc]


async def test_one_task_publishes_submitted_placed_started_finished_in_order() -> None:
    async def double(x: int) -> int:
        return 2 * x

    async with gl.open_session(stats=None, name="here") as session:
        seen: list[Event] = []
        session.dispatcher.events.subscribe(seen.append)
        handle = (double @ Cores(2))(21)
        assert await handle == 42
    assert [type(event) for event in seen] == [TaskSubmitted, TaskPlaced, TaskStarted, TaskFinished]
    submitted, placed, started, finished = seen
    name = handle.task.name
    assert name.endswith("double")
    assert submitted == TaskSubmitted(handle.id, name, "cores:2", 0, at=submitted.at)
    assert placed == TaskPlaced(handle.id, "here", "cores:[0-1]", (0, 1), (), 1, at=placed.at)
    assert started == TaskStarted(handle.id, "here", 1, at=started.at)
    assert isinstance(finished, TaskFinished) and finished.task_id == handle.id
    assert [event.at for event in seen] == sorted(event.at for event in seen)


async def test_a_retried_failure_ends_its_run_with_retried_and_the_task_with_finished() -> None:
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("disk hiccup")
        return "ok"

    async with gl.open_session(stats=None, name="here") as session:
        seen: list[Event] = []
        session.dispatcher.events.subscribe(seen.append)
        assert await (flaky @ Cores(1)).options(retries=1)() == "ok"
    assert [type(event).__name__ for event in seen] == [
        "TaskSubmitted",
        "TaskPlaced",
        "TaskStarted",
        "TaskRetried",
        "TaskPlaced",
        "TaskStarted",
        "TaskFinished",
    ]
    retried = seen[3]
    assert isinstance(retried, TaskRetried) and retried.attempt == 2
    assert retried.reason == "failed: OSError: disk hiccup"
    assert [e.attempt for e in seen if isinstance(e, TaskPlaced)] == [1, 2]


async def test_every_tasks_events_follow_its_life_in_a_mixed_run(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Successes, failures, retries, time limits, cancels, unsatisfiable requests, branches and
    subtasks cancelled with their parent: each task's events follow the life of a task."""
    attempts = 0

    async def work(seconds: float) -> float:
        await trio.sleep(seconds)
        return seconds

    async def flaky() -> str:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise OSError("once")
        return "ok"

    async def fail() -> None:
        raise ValueError("always")

    async def branch() -> list[float]:
        (work @ Cores(1))(100)  # left pending: cancelled when the branch ends
        return await gl.gather(*[(work @ Cores(1))(1) for _ in range(2)])

    async with gl.open_session(stats=None, name="here") as session:
        seen: list[Event] = []
        session.dispatcher.events.subscribe(seen.append)
        handles = [
            (work @ Cores(1))(1),
            (flaky @ Cores(1)).options(retries=1)(),
            (fail @ Cores(1))(),
            (work @ Cores(1) & WTime(T=2))(10),
            (work @ Cores(8))(1),  # unsatisfiable
            (branch @ gl.ZERO)(),
        ]
        queued = (work @ Cores(2))(1)
        running = (work @ Cores(1))(50)
        await trio.sleep(0.5)
        queued.cancel()
        running.cancel()
        for handle in handles:
            with contextlib.suppress(Exception):
                await handle
        await trio.testing.wait_all_tasks_blocked()
    lifecycles = check_lifecycles(seen)
    assert len(lifecycles) == 11  # 8 submitted from here, 3 by the branch
    assert lifecycles[handles[1].id].count("TaskRetried") == 1
    assert lifecycles[handles[4].id] == ["TaskSubmitted", "TaskFailed"]
    terminal = [e for e in seen if isinstance(e, TaskFailed) and e.task_id == handles[3].id]
    assert [e.error_type for e in terminal] == ["TooSlowError"]
