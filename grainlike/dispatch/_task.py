"""The dispatcher's record of one task, and the handle its caller awaits."""

from __future__ import annotations

import enum
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

import attrs
import outcome
import trio

from ..resource import Resources

if TYPE_CHECKING:
    from ._pipeline import Chain

__all__ = ["Task", "TaskHandle", "TaskState", "wait_all"]


class TaskState(enum.Enum):
    """Where a task is in its life."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"


@attrs.define(eq=False, slots=True)
class Task:
    """One submitted call: what it asks for, what it got, and how to tell its caller.

    ``work`` is opaque to the dispatcher: the worker link knows how to run (or serialize) it.
    A pipelined task waits on its worker in ``chain`` behind task ``after`` (see ``_pipeline``);
    ``began`` says whether the worker reported it started.
    """

    id: int
    request: Resources
    work: Any
    name: str
    priority: int = 0
    retries: int = 0
    submitted: float = 0.0
    state: TaskState = TaskState.QUEUED
    attempt: int = 0
    failures: int = 0
    lost: int = 0
    worker: str | None = None
    allocation: Resources | None = None
    pool_allocation: Resources | None = None
    hard_limit: float | None = None
    started: float | None = None
    chain: Chain | None = None
    after: int | None = None
    began: bool = False
    result: outcome.Outcome[Any] | None = None
    _waiter: trio.lowlevel.Task | None = None
    _on_done: Callable[[Task], None] | None = None

    def resolve(self, result: outcome.Outcome[Any]) -> bool:
        """Deliver the one result of this task; later calls are ignored and return False."""
        if self.result is not None:
            return False
        self.result = result
        self.state = TaskState.DONE
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            trio.lowlevel.reschedule(waiter, _fresh(result))
        elif self._on_done is not None:
            self._on_done(self)
        return True


def _unwrap(result: outcome.Outcome[Any]) -> Any:
    """The task's value, or raise its error; unlike ``Outcome.unwrap`` this may be repeated,
    so a handle can be awaited (or gathered) more than once."""
    if isinstance(result, outcome.Error):
        raise result.error
    assert isinstance(result, outcome.Value)
    return result.value


def _fresh(result: outcome.Outcome[Any]) -> outcome.Outcome[Any]:
    """A copy of ``result`` for trio to unwrap, leaving the task's own unused."""
    if isinstance(result, outcome.Error):
        return outcome.Error(result.error)
    assert isinstance(result, outcome.Value)
    return outcome.Value(result.value)


class TaskHandle:
    """What ``bound(*args)`` returns: awaiting it gives the task's result or raises its error.

    Cancelling the awaiting caller cancels the task (and frees its resources).
    """

    __slots__ = ("_abort", "task")

    def __init__(self, task: Task, abort: Callable[[Task], None]) -> None:
        self.task = task
        self._abort = abort

    @property
    def id(self) -> int:
        """The task's id (as in events and status)."""
        return self.task.id

    def cancel(self) -> None:
        """Cancel the task (no-op once it has a result); its resources come back."""
        if self.task.result is None:
            self._abort(self.task)

    def done(self) -> bool:
        """Whether the result is in."""
        return self.task.result is not None

    def __await__(self) -> Generator[Any, None, Any]:
        return self._wait().__await__()

    async def _wait(self) -> Any:
        task = self.task
        if task.result is None:
            if task._waiter is not None:
                raise RuntimeError(f"task {task.id} ({task.name}) is already awaited elsewhere")
            task._waiter = trio.lowlevel.current_task()

            def abort(_: Any) -> trio.lowlevel.Abort:
                task._waiter = None
                self._abort(task)
                return trio.lowlevel.Abort.SUCCEEDED

            return await trio.lowlevel.wait_task_rescheduled(abort)
        await trio.lowlevel.checkpoint()
        return _unwrap(task.result)

    def __repr__(self) -> str:
        return f"<TaskHandle {self.task.id} {self.task.name} {self.task.state.value}>"


async def wait_all(handles: list[TaskHandle]) -> list[Any]:
    """Results of all ``handles`` in order, waking the caller once rather than once per task.

    The first failure (in completion order) is raised; cancelling the caller, or a failure,
    cancels every task that is still pending.
    """
    pending = list({id(h.task): h.task for h in handles if h.task.result is None}.values())
    for task in pending:
        if task._waiter is not None or task._on_done is not None:
            raise RuntimeError(f"task {task.id} ({task.name}) is already awaited elsewhere")
    # A task that failed before the wait began (e.g. unsatisfiable at submission) ends it at once.
    first_error = [h.task for h in handles if isinstance(h.task.result, outcome.Error)][:1]
    waiter = trio.lowlevel.current_task()
    remaining = len(pending)

    def on_done(task: Task) -> None:
        nonlocal remaining
        remaining -= 1
        result = task.result
        failed = isinstance(result, outcome.Error) and not first_error
        if failed:
            first_error.append(task)
        if remaining == 0 or failed:
            for other in pending:
                other._on_done = None
            trio.lowlevel.reschedule(waiter)

    def abort(_: Any) -> trio.lowlevel.Abort:
        for task in pending:
            task._on_done = None
        return trio.lowlevel.Abort.SUCCEEDED

    try:
        if pending and not first_error:
            for task in pending:
                task._on_done = on_done
            await trio.lowlevel.wait_task_rescheduled(abort)
        else:
            await trio.lowlevel.checkpoint()
        if first_error:
            failed = first_error[0].result
            assert failed is not None
            _unwrap(failed)  # raises the task's exception
        return [_unwrap(h.task.result) for h in handles]  # type: ignore[arg-type]
    except BaseException:
        for handle in handles:
            handle.cancel()
        raise
