"""Submitting from a task on a remote worker: subtasks and ``gl.released()`` go through the
worker's own connection to its dispatcher.

The worker process has no dispatcher of its own.  Its ``RemoteSubmitter`` keeps a record for
each subtask (the same ``Task`` record, so handles, ``gl.gather`` and ``gl.as_completed`` work as
anywhere), sends it as a ``SubmitTasks`` message, and resolves it when ``SubtasksFinished``
comes back.  Functions are pickled once per connection, as the dispatcher does.
"""

from __future__ import annotations

import ssl

import attrs
import outcome
import trio

from ._exceptions import TaskCancelledError, TaskFailedError, WorkerLostError
from ._submitter import submitting_to
from .dispatch import TaskHandle
from .dispatch._deps import Dependencies, dependencies, first_failure, with_values
from .dispatch._records import Task
from .resource import Resources
from .wire import (
    AllocationRegained,
    Call,
    CallPacker,
    CancelSubtasks,
    Message,
    ReacquireAllocation,
    ReleaseAllocation,
    SubmitTasks,
    Subtask,
    SubtasksFinished,
    mark_granted,
    unpack_outcome,
)
from .worker import Departure, Uplink, WorkerOptions, serve_worker

__all__ = ["RemoteSubmitter", "serve_remote_worker"]


@attrs.define(eq=False)
class RemoteSubmitter:
    """The submitter of the tasks of one remote worker (see ``_submitter.py``)."""

    uplink: Uplink
    executor: str = "process"
    _calls: CallPacker = attrs.field(factory=CallPacker)
    _pending: dict[int, Task] = attrs.field(factory=dict)
    _waiting: dict[int, Task] = attrs.field(factory=dict)
    _regains: dict[int, tuple[trio.Event, list[Resources | None]]] = attrs.field(factory=dict)
    _next_ref: int = 0

    def __attrs_post_init__(self) -> None:
        self.uplink.listen(self._receive)

    def submit(
        self,
        request: Resources,
        work: Call,
        *,
        name: str,
        priority: int,
        retries: int,
        parent: int | None,
    ) -> TaskHandle:
        """Send one subtask to the dispatcher; its handle resolves when its result is back."""
        self._next_ref += 1
        ref = self._next_ref
        task = Task(ref, request, work, name, priority, retries, trio.current_time(), parent=parent)
        handle = TaskHandle(task, self._cancel)
        if parent is None:
            error = TaskFailedError(
                f"{name}: on a remote worker only a running task submits (this call runs in "
                "no task)"
            )
            task.resolve(outcome.Error(error))
            return handle
        inputs = dependencies(work)
        if inputs:
            failure = first_failure(inputs)
            if failure is not None:
                task.resolve(outcome.Error(failure.error))
                return handle
            pending = [dependency for dependency in inputs if dependency.result is None]
            if pending:
                # Its inputs are this worker's own subtasks: it is sent once they succeeded.
                self._waiting[ref] = task
                Dependencies(task, pending, self._inputs_ready, self._input_failed)
                return handle
            task.work = with_values(work)
        self._send(task)
        return handle

    def _send(self, task: Task) -> None:
        assert isinstance(task.work, Call) and task.parent is not None
        try:
            payload = self._calls.pack(task.work)
        except Exception as error:
            task.resolve(
                outcome.Error(TaskFailedError(f"{task.name}: its call cannot be pickled: {error}"))
            )
            return
        self._pending[task.id] = task
        subtask = Subtask(
            task.id, task.parent, payload, task.request, task.name, task.priority, task.retries
        )
        self.uplink.post(SubmitTasks((subtask,)))

    def _inputs_ready(self, task: Task) -> None:
        if self._waiting.pop(task.id, None) is not None:
            self._send(task)

    def _input_failed(self, task: Task, failure: outcome.Error) -> None:
        if self._waiting.pop(task.id, None) is not None:
            task.resolve(outcome.Error(failure.error))

    def _cancel(self, task: Task) -> None:
        cancelled = outcome.Error(TaskCancelledError(f"subtask {task.name} was cancelled"))
        if self._waiting.pop(task.id, None) is not None:
            task.resolve(cancelled)
            return
        if self._pending.pop(task.id, None) is None:
            return
        if self.uplink.connected:
            self.uplink.post(CancelSubtasks((task.id,)))
        task.resolve(cancelled)

    def release(self, task_id: int) -> None:
        """Task ``task_id`` gives its allocation back to its worker for a while."""
        self.uplink.post(ReleaseAllocation(task_id))

    async def reacquire(self, task_id: int) -> Resources | None:
        """Task ``task_id`` takes its request again on this worker; waits until it has it."""
        waiting = self._regains[task_id] = (trio.Event(), [])
        self.uplink.post(ReacquireAllocation(task_id))
        await waiting[0].wait()
        return waiting[1][0]

    def _receive(self, message: Message | None) -> None:
        if message is None:  # the worker lost its dispatcher: nothing will come back
            pending, self._pending = self._pending, {}
            for task in pending.values():
                task.resolve(
                    outcome.Error(WorkerLostError(f"subtask {task.name}: the dispatcher was lost"))
                )
            for event, granted in self._regains.values():
                granted.append(None)
                event.set()
            self._regains.clear()
        elif isinstance(message, SubtasksFinished):
            for result in message.results:
                done = self._pending.pop(result.ref, None)
                if done is not None:
                    done.resolve(unpack_outcome(result.ok, result.payload, task_id=result.ref))
        elif isinstance(message, AllocationRegained):
            waiting = self._regains.pop(message.task_id, None)
            if waiting is not None:
                regained = message.allocation
                waiting[1].append(None if regained is None else mark_granted(regained))
                waiting[0].set()


async def serve_remote_worker(
    address: str,
    key: bytes,
    capacity: Resources,
    options: WorkerOptions | None = None,
    tls: ssl.SSLContext | None = None,
) -> Departure:
    """``grainlike worker``: a remote worker whose tasks may submit tasks of their own."""
    uplink = Uplink()
    with submitting_to(RemoteSubmitter(uplink)):
        return await serve_worker(address, key, capacity, options, tls, uplink)
