"""The dispatcher's records: tasks, workers and pipelining chains, and the link to a worker.

These are the floor of the dispatch package: every other module of it imports this one, and
this one imports none of them.  The records refer to each other (a task runs on a worker, in
a chain; a worker holds its running tasks), so they live together.

A task's life is ``QUEUED`` → ``RUNNING`` (placed on a worker) → ``DONE`` (off its worker, or
never placed), with ``requeue`` taking a running task back to ``QUEUED``; a task that takes other
tasks' handles as arguments is ``WAITING`` for them before it is queued.  Its one result is
separate from its state: a running task whose caller cancelled it has its result (the caller
was told) but stays ``RUNNING`` until its worker reports it ended, because until then its
allocation is still in use.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeAlias

import attrs
import outcome
import trio

from ..resource import Cores, Resources
from ..wire import Call, PackedCall

__all__ = ["Chain", "ShapeKey", "Task", "TaskState", "WorkerLink", "WorkerState"]

#: Tasks of the same request at the same priority are one *shape*: they queue and chain together.
ShapeKey: TypeAlias = tuple[int, Resources]


class TaskState(enum.Enum):
    """Where a task is in its life."""

    #: Submitted with handles among its arguments, whose tasks have not all succeeded yet.
    WAITING = "waiting"
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"


class WorkerLink(Protocol):
    """How the dispatcher talks to one worker, embedded or remote.

    All methods are non-blocking: a remote link queues messages and sends them in batches.
    The worker answers through the dispatcher's ``task_started``, ``task_done`` and
    ``remove_worker``.
    """

    @property
    def pipeline(self) -> int:
        """How many tasks may wait on this worker behind each running one (0: none)."""

    def run_tasks(self, tasks: Sequence[Task]) -> None:
        """Start these tasks; each carries its allocation, hard limit and attempt number.

        A task whose ``after`` is set starts once task ``after`` (holding the same allocation)
        has ended on this worker, or at once if it has already ended.
        """

    def cancel_task(self, task_id: int) -> None:
        """Cancel a running task; the worker still reports it done (freeing its resources)."""

    def drain(self, reason: str) -> None:
        """Finish running tasks, take no new ones, then leave."""


@attrs.define(eq=False, slots=True)
class Task:
    """One submitted call: what it asks for, what it got, and whom to tell when it ends.

    ``assigned_at`` is when the dispatcher placed the current attempt; ``began`` whether the
    worker reported that it started.  A pipelined task waits on its worker in ``chain`` behind
    task ``after`` (see ``_pipeline.py``).  ``waiters`` (parked awaiters) and ``listeners``
    (callbacks of gathers) are whoever still wants the result.  ``parent`` is the task that
    submitted this one (its ``children`` are cancelled when it ends); a task inside
    ``gl.released()`` has given its ``allocation`` back (``released``) and keeps its place on
    its worker.
    """

    id: int
    request: Resources
    work: Call | PackedCall
    name: str
    priority: int = 0
    retries: int = 0
    submitted: float = 0.0
    state: TaskState = TaskState.QUEUED
    attempt: int = 0
    failures: int = 0
    lost: int = 0
    lost_alone: int = 0  # of those lost workers, how many ran this task and no other
    worker: str | None = None
    allocation: Resources | None = None
    pool_allocation: Resources | None = None
    hard_limit: float | None = None
    assigned_at: float | None = None
    chain: Chain | None = None
    after: int | None = None
    began: bool = False
    result: outcome.Outcome[Any] | None = None
    waiters: list[trio.lowlevel.Task] | None = None
    listeners: list[Callable[[Task], None]] | None = None
    parent: int | None = None
    children: dict[int, Task] | None = None
    released: bool = False

    @property
    def key(self) -> ShapeKey:
        """The task's shape."""
        return (self.priority, self.request)

    @property
    def granted(self) -> Resources | None:
        """What the task got, as it sees it (``gl.GVAR.res``): its worker's part, and the
        counters it drew from the dispatcher's pools."""
        allocation, pooled = self.allocation, self.pool_allocation
        if allocation is None or pooled is None:
            return allocation
        return allocation & pooled

    def assign(
        self,
        worker: WorkerState,
        allocation: Resources,
        pool_allocation: Resources | None,
        hard_limit: float | None,
        now: float,
    ) -> None:
        """Place the next attempt of this task on ``worker`` with ``allocation``."""
        self.state = TaskState.RUNNING
        self.worker = worker.id
        self.allocation = allocation
        self.pool_allocation = pool_allocation
        self.hard_limit = hard_limit
        self.assigned_at = now
        self.began = False
        self.attempt += 1
        worker.running[self.id] = self

    def release(self) -> None:
        """The task is off its worker (it ended, or its worker left)."""
        self.state = TaskState.DONE
        self.worker = None
        self.allocation = None
        self.pool_allocation = None
        self.chain = None
        self.after = None
        self.released = False

    def requeue(self) -> None:
        """The task goes back to the queue (its run ended without a result for its caller)."""
        self.release()
        self.state = TaskState.QUEUED

    @property
    def wanted(self) -> bool:
        """Whether anybody still waits for the result (an awaiter or a gather)."""
        return bool(self.waiters) or bool(self.listeners)

    def resolve(self, result: outcome.Outcome[Any]) -> bool:
        """Deliver the one result of this task; later calls are ignored and return False."""
        if self.result is not None:
            return False
        self.result = result
        if self.state is TaskState.QUEUED:
            self.state = TaskState.DONE
        waiters, self.waiters = self.waiters, None
        listeners, self.listeners = self.listeners, None
        for waiter in waiters or ():
            trio.lowlevel.reschedule(waiter, fresh(result))
        for listener in listeners or ():
            listener(self)
        return True


def fresh(result: outcome.Outcome[Any]) -> outcome.Outcome[Any]:
    """A copy of ``result`` for trio to unwrap, leaving the task's own unused."""
    if isinstance(result, outcome.Error):
        return outcome.Error(result.error)
    assert isinstance(result, outcome.Value)
    return outcome.Value(result.value)


@attrs.define(eq=False, slots=True)
class WorkerState:
    """The dispatcher's view of one worker: its capacity (free and total), what runs there,
    and the link to it.

    ``accepting`` is false once the worker drains or leaves, and ``leaving`` then says why;
    ``pipeline`` is how many tasks may wait on it behind each running one (0: none).
    """

    id: str
    capacity: Resources
    link: WorkerLink
    order: int = 0
    accepting: bool = True
    leaving: str = ""
    pipeline: int = 0
    running: dict[int, Task] = attrs.field(factory=dict)
    free_cores: int = 0

    def __attrs_post_init__(self) -> None:
        cores = self.capacity.get(Cores)
        self.free_cores = int(cores.stat()["cores"][0]) if cores is not None else 0


@attrs.define(eq=False, slots=True)
class Chain:
    """Tasks that run one after another in one allocation of one worker.

    ``tasks[0]`` runs (or is about to); each later task starts as soon as the one before it
    ends.  The allocation goes back to the worker when the last task ends.
    """

    worker: WorkerState
    key: ShapeKey
    allocation: Resources
    pool_allocation: Resources | None
    tasks: deque[Task] = attrs.field(factory=deque)

    def runs_now(self, task: Task) -> bool:
        """Whether ``task`` is the one that runs (rather than one waiting behind it)."""
        return self.tasks[0] is task


def runs_now(task: Task) -> bool:
    """Whether ``task`` runs (or may run) now, rather than waiting behind another in a chain."""
    return task.chain is None or task.chain.runs_now(task)
