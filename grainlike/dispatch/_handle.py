"""The caller's side of a task: the handle it awaits, gathering many, and ``as_completed``.

A handle behaves like the futures users know: any number of callers may await it, at once or
one after another, before or after the task ends, and each gets the same value or exception.
Callers park on the task itself (``trio.lowlevel``) rather than on an ``Event`` each: a task
costs no allocation for its result until somebody waits, and a gather of ten thousand handles
wakes its caller once, not ten thousand times.

Who waits is what keeps a task alive: a caller that stops waiting (its scope was cancelled,
e.g. by a timeout) cancels the task only when nobody else still awaits or gathers it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Callable, Generator, Iterable
from typing import Any

import outcome
import trio

from ._records import Task

__all__ = ["AsCompleted", "TaskHandle", "as_completed", "wait_all"]

#: What the dispatcher gives a handle to cancel its task.
Canceller = Callable[[Task], None]


def unwrap(result: outcome.Outcome[Any]) -> Any:
    """The task's value, or raise its error; unlike ``Outcome.unwrap`` this may be repeated,
    so a handle can be awaited (or gathered) more than once."""
    if isinstance(result, outcome.Error):
        raise result.error
    assert isinstance(result, outcome.Value)
    return result.value


def _give_up(task: Task, cancel: Canceller) -> None:
    """One waiter is gone: cancel the task when it was the last one and the task is not done."""
    if task.result is None and not task.wanted:
        cancel(task)


class TaskHandle:
    """What ``bound(*args)`` returns: awaiting it gives the task's result or raises its error.

    It may be awaited any number of times, by any number of callers at once.  A cancelled
    task's awaiters get ``gl.TaskCancelledError``.
    """

    __slots__ = ("_cancel", "task")

    def __init__(self, task: Task, cancel: Canceller) -> None:
        self.task = task
        self._cancel = cancel

    @property
    def id(self) -> int:
        """The task's id (as in events and status)."""
        return self.task.id

    @property
    def name(self) -> str:
        """The task's name (the function's qualified name, unless given)."""
        return self.task.name

    def cancel(self) -> None:
        """Cancel the task (no-op once it has a result); its resources come back, and its
        awaiters get ``gl.TaskCancelledError``."""
        if self.task.result is None:
            self._cancel(self.task)

    def done(self) -> bool:
        """Whether the task has ended (with a value, an exception, or cancelled)."""
        return self.task.result is not None

    def result(self) -> Any:
        """The task's value, or raise its exception.

        Raises:
            RuntimeError: the task has not ended yet (await the handle instead).
        """
        result = self.task.result
        if result is None:
            raise RuntimeError(
                f"task {self.task.id} ({self.task.name}) has not ended yet: await its handle"
            )
        return unwrap(result)

    def __await__(self) -> Generator[Any, None, Any]:
        return self._wait().__await__()

    async def _wait(self) -> Any:
        task = self.task
        if task.result is not None:
            await trio.lowlevel.checkpoint()
            return unwrap(task.result)
        me = trio.lowlevel.current_task()
        if task.waiters is None:
            task.waiters = [me]
        else:
            task.waiters.append(me)

        def abort(_: Any) -> trio.lowlevel.Abort:
            if task.waiters is not None:
                task.waiters.remove(me)
            _give_up(task, self._cancel)
            return trio.lowlevel.Abort.SUCCEEDED

        return await trio.lowlevel.wait_task_rescheduled(abort)

    def __repr__(self) -> str:
        state = "done" if self.done() else self.task.state.value
        return f"<TaskHandle {self.task.id} {self.task.name} {state}>"


def _listen(task: Task, listener: Callable[[Task], None]) -> None:
    if task.listeners is None:
        task.listeners = [listener]
    else:
        task.listeners.append(listener)


def _unlisten(task: Task, listener: Callable[[Task], None]) -> None:
    if task.listeners is not None and listener in task.listeners:
        task.listeners.remove(listener)


async def wait_all(handles: list[TaskHandle]) -> list[Any]:
    """Results of all ``handles`` in order, waking the caller once rather than once per task.

    The first failure (in completion order) is raised; cancelling the caller, or a failure,
    cancels every task that is still pending and that nobody else awaits.
    """
    cancel = {id(h.task): h._cancel for h in handles}
    pending = list({id(h.task): h.task for h in handles if h.task.result is None}.values())
    # A task that failed before the wait began (e.g. unsatisfiable at submission) ends it at once.
    first_error = [h.task for h in handles if isinstance(h.task.result, outcome.Error)][:1]
    waiter = trio.lowlevel.current_task()
    remaining = len(pending)

    def release_all() -> None:
        for task in pending:
            _unlisten(task, on_done)

    def on_done(task: Task) -> None:
        nonlocal remaining
        remaining -= 1
        failed = isinstance(task.result, outcome.Error) and not first_error
        if failed:
            first_error.append(task)
        if remaining == 0 or failed:
            release_all()
            trio.lowlevel.reschedule(waiter)

    def abort(_: Any) -> trio.lowlevel.Abort:
        release_all()
        for task in pending:
            _give_up(task, cancel[id(task)])
        return trio.lowlevel.Abort.SUCCEEDED

    if pending and not first_error:
        for task in pending:
            _listen(task, on_done)
        await trio.lowlevel.wait_task_rescheduled(abort)
    else:
        await trio.lowlevel.checkpoint()
    if first_error:
        for task in pending:
            _give_up(task, cancel[id(task)])
        failed = first_error[0].result
        assert failed is not None
        unwrap(failed)  # raises the task's exception
    return [unwrap(h.task.result) for h in handles]  # type: ignore[arg-type]


class AsCompleted:
    """``async for handle in gl.as_completed(handles)``: each handle once, as its task ends.

    Handles whose tasks have already ended come first, in the order given.  Cancelling the
    loop while it waits cancels the tasks it still waits for that nobody else awaits;
    breaking out of the loop leaves them running (their handles can still be awaited).
    """

    __slots__ = ("_pending", "_ready", "_waiter")

    def __init__(self, handles: Iterable[TaskHandle]) -> None:
        unique = list({id(h): h for h in handles}.values())
        self._ready: deque[TaskHandle] = deque(h for h in unique if h.task.result is not None)
        #: The handles still pending, each with the listener it put on its task.
        self._pending: dict[int, tuple[TaskHandle, Callable[[Task], None]]] = {}
        self._waiter: trio.lowlevel.Task | None = None
        for handle in unique:
            if handle.task.result is None:
                listener = self._listener(handle)
                self._pending[id(handle)] = (handle, listener)
                _listen(handle.task, listener)

    def _listener(self, handle: TaskHandle) -> Callable[[Task], None]:
        def on_done(_: Task) -> None:
            self._pending.pop(id(handle), None)
            self._ready.append(handle)
            waiter, self._waiter = self._waiter, None
            if waiter is not None:
                trio.lowlevel.reschedule(waiter)

        return on_done

    def __aiter__(self) -> AsyncIterator[TaskHandle]:
        return self

    async def __anext__(self) -> TaskHandle:
        if not self._ready:
            if not self._pending:
                raise StopAsyncIteration
            self._waiter = trio.lowlevel.current_task()

            def abort(_: Any) -> trio.lowlevel.Abort:
                self._waiter = None
                pending, self._pending = self._pending, {}
                for handle, listener in pending.values():
                    _unlisten(handle.task, listener)
                for handle, _ in pending.values():
                    _give_up(handle.task, handle._cancel)
                return trio.lowlevel.Abort.SUCCEEDED

            await trio.lowlevel.wait_task_rescheduled(abort)
        else:
            await trio.lowlevel.checkpoint()
        return self._ready.popleft()


def as_completed(handles: Iterable[TaskHandle]) -> AsCompleted:
    """Iterate over ``handles`` in the order their tasks end: ``async for h in ...``."""
    return AsCompleted(handles)
