"""The one queue: tasks grouped by shape (same request, same priority), FIFO within a shape.

Grouping makes placement cost depend on the number of distinct shapes, not on the number of
queued tasks: when the head of a shape does not fit anywhere, none of its tasks do.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

import attrs

from ..resource import Resources
from ._records import ShapeKey, Task, TaskState

__all__ = ["Shape", "TaskQueue"]


@attrs.define(eq=False, slots=True)
class Shape:
    """Queued tasks that ask for the same resources at the same priority, oldest first.

    ``effective`` is the part of the request a worker provides, with learned limits filled in,
    and ``pool_part`` the part drawn from the dispatcher's cluster-wide pools (``None``: none).
    The dispatcher fills these in; ``version`` tells it when to refresh them.
    """

    request: Resources
    priority: int
    tasks: deque[Task] = attrs.field(factory=deque)
    pool_part: Resources | None = None
    effective: Resources | None = None
    hard_limit: float | None = None
    version: int = -1
    ever_fits: bool | None = None
    ever_fits_version: int = -1
    unfit_for: float = 0.0

    @property
    def key(self) -> ShapeKey:
        """The shape's key: its tasks' ``Task.key``."""
        return (self.priority, self.request)

    def head(self) -> Task | None:
        """The oldest live task, dropping cancelled ones from the front."""
        tasks = self.tasks
        while tasks and tasks[0].state is not TaskState.QUEUED:
            tasks.popleft()
        return tasks[0] if tasks else None


class TaskQueue:
    """Queued tasks by shape; ``shapes()`` yields shapes in placement order.

    Order: higher priority first, then the shape whose oldest task was submitted first.
    """

    __slots__ = ("_count", "_shapes")

    def __init__(self) -> None:
        self._shapes: dict[ShapeKey, Shape] = {}
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def push(self, task: Task) -> Shape:
        """Append ``task`` to its shape (creating the shape on first use)."""
        key = task.key
        shape = self._shapes.get(key)
        if shape is None:
            shape = self._shapes[key] = Shape(task.request, task.priority)
        shape.tasks.append(task)
        self._count += 1
        return shape

    def pushleft(self, task: Task) -> None:
        """Put a task back at the front of its shape (a retry keeps its place in line)."""
        self.push(task).tasks.rotate(1)

    def discard(self, task: Task) -> None:
        """Forget a queued task that left the queue other than by ``popleft``.

        The task object stays in its deque until it reaches the front; ``head`` skips it.
        """
        self._count -= 1

    def popleft(self, shape: Shape) -> Task:
        """Take the head task of ``shape`` (the caller checked ``head()``)."""
        task = shape.tasks.popleft()
        self._count -= 1
        if not shape.tasks:
            del self._shapes[shape.key]
        return task

    def sole_shape(self) -> Shape | None:
        """The one shape with queued tasks, when there is exactly one (else ``None``)."""
        if len(self._shapes) != 1:
            return None
        (shape,) = self._shapes.values()
        return shape if shape.head() is not None else None

    def shapes(self) -> list[Shape]:
        """Live shapes in placement order."""
        live = []
        for key, shape in list(self._shapes.items()):
            head = shape.head()
            if head is None:
                del self._shapes[key]
            else:
                live.append((-shape.priority, head.id, shape))
        live.sort(key=lambda item: (item[0], item[1]))
        return [shape for _, _, shape in live]

    def __iter__(self) -> Iterator[Task]:
        for shape in self.shapes():
            for task in shape.tasks:
                if task.state is TaskState.QUEUED:
                    yield task
