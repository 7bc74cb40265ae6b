"""The task queue: shapes (same request and priority), FIFO within a shape, placement order."""

from __future__ import annotations

from grainlike import ZERO, Cores, Memory, Resources
from grainlike.dispatch._queue import Shape, TaskQueue
from grainlike.dispatch._records import Task, TaskState
from grainlike.resource import as_resources
from grainlike.wire import Call


def make_task(task_id: int, request: Resources = ZERO, priority: int = 0) -> Task:
    return Task(task_id, as_resources(request), Call(print), f"t{task_id}", priority=priority)


def queued_ids(queue: TaskQueue) -> list[int]:
    return [task.id for task in queue]


def head_id(shape: Shape) -> int:
    head = shape.head()
    assert head is not None
    return head.id


def test_tasks_with_the_same_request_and_priority_share_a_shape() -> None:
    queue = TaskQueue()
    first = queue.push(make_task(1, as_resources(Cores(1))))
    second = queue.push(make_task(2, as_resources(Cores(1))))
    other_priority = queue.push(make_task(3, as_resources(Cores(1)), priority=1))
    other_request = queue.push(make_task(4, Cores(1) & Memory(1)))
    assert first is second
    assert len({id(first), id(other_priority), id(other_request)}) == 3
    assert len(queue) == 4


def test_shapes_come_higher_priority_first_then_by_oldest_head() -> None:
    queue = TaskQueue()
    queue.push(make_task(1, as_resources(Cores(2))))
    queue.push(make_task(2, as_resources(Cores(1)), priority=5))
    queue.push(make_task(3, as_resources(Cores(4))))
    queue.push(make_task(4, as_resources(Cores(1))))
    order = [(shape.priority, head_id(shape)) for shape in queue.shapes()]
    assert order == [(5, 2), (0, 1), (0, 3), (0, 4)]


def test_iteration_is_fifo_within_a_priority_and_higher_priority_first() -> None:
    queue = TaskQueue()
    for task_id, priority in [(1, 0), (2, 1), (3, 0), (4, 1), (5, -1)]:
        queue.push(make_task(task_id, as_resources(Cores(1)), priority))
    assert queued_ids(queue) == [2, 4, 1, 3, 5]


def test_popleft_takes_the_oldest_task_of_a_shape() -> None:
    queue = TaskQueue()
    shape = queue.push(make_task(1))
    queue.push(make_task(2))
    assert queue.popleft(shape).id == 1
    assert head_id(shape) == 2
    assert len(queue) == 1


def test_popleft_of_the_last_task_drops_the_shape() -> None:
    queue = TaskQueue()
    shape = queue.push(make_task(1))
    queue.popleft(shape)
    assert queue.shapes() == []
    assert len(queue) == 0


def test_a_discarded_task_is_skipped_and_no_longer_counted() -> None:
    queue = TaskQueue()
    cancelled = make_task(1)
    shape = queue.push(cancelled)
    queue.push(make_task(2))
    queue.discard(cancelled)
    cancelled.state = TaskState.DONE
    assert len(queue) == 1
    assert head_id(shape) == 2
    assert queued_ids(queue) == [2]


def test_a_shape_whose_tasks_were_all_discarded_is_not_listed() -> None:
    queue = TaskQueue()
    task = make_task(1, as_resources(Cores(2)))
    queue.push(task)
    queue.push(make_task(2, as_resources(Cores(1))))
    queue.discard(task)
    task.state = TaskState.DONE
    assert [shape.request for shape in queue.shapes()] == [as_resources(Cores(1))]


def test_pushleft_puts_a_retried_task_in_front_of_its_shape() -> None:
    queue = TaskQueue()
    retried = make_task(1)
    shape = queue.push(retried)
    queue.popleft(shape)
    queue.push(make_task(2))
    queue.push(make_task(3))
    queue.pushleft(retried)
    assert queued_ids(queue) == [1, 2, 3]
    assert len(queue) == 3


def test_a_retried_task_keeps_its_place_among_shapes_by_its_id() -> None:
    queue = TaskQueue()
    retried = make_task(1, as_resources(Cores(2)))
    queue.popleft(queue.push(retried))
    queue.push(make_task(2, as_resources(Cores(1))))
    queue.pushleft(retried)
    assert [head_id(shape) for shape in queue.shapes()] == [1, 2]
