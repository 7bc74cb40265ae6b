"""The dispatcher: one queue, many workers, exactly one result per task.

This module holds the life of a task, and only that: submission and cancellation, workers
joining and leaving, the reports of workers, freeing what a task held, retries, and the one
delivery of each result (``_finish``, which with a journal hands the result to it first, and
``_resolve``, the only place that resolves a task and publishes its terminal event).
Placement (``_placement.py``), chains (``_pipeline.py``), pools (``_pools.py``), learned
limits (``_learned.py``), the journal (``_journal.py``) and the words of ``explain``
(``_explain.py``) are elsewhere; freeing an allocation stays here, next to the decision to
deliver, because the two must agree for "exactly one result per task" to hold.
"""

from __future__ import annotations

import fnmatch
import logging
import math
from collections.abc import Callable
from typing import Any

import attrs
import outcome
import trio

from .._exceptions import (
    ConfigError,
    DiskLimitError,
    GrainlikeError,
    MemoryLimitError,
    TaskCancelledError,
    UnsatisfiableError,
    WorkerLostError,
)
from ..resource import GPU, ZERO, Cores, Disk, Memory, Resources, WTime
from ..resource._size import Size
from ..resource._units import format_gb, format_seconds
from ..wire import Call, PackedCall, Usage
from ._deps import Dependencies, SharedInputs, dependencies, first_failure, with_values
from ._events import (
    EventBus,
    TaskCancelled,
    TaskFailed,
    TaskFinished,
    TaskPlaced,
    TaskRetried,
    TaskStarted,
    TaskSubmitted,
    WorkerDrained,
    WorkerJoined,
    WorkerLost,
)
from ._explain import explain, unsatisfiable_error
from ._handle import TaskHandle
from ._journal import Journal
from ._learned import LearnedLimits
from ._pipeline import Pipelines
from ._placement import Placement, Reservation, WorkerIndex, plan
from ._pools import Pools
from ._queue import Shape, TaskQueue
from ._records import Task, TaskState, WorkerLink, WorkerState, runs_now
from ._sizing import grown_request, learn_usage, sized_request

__all__ = ["HEAD", "Dispatcher", "DispatcherConfig"]

log = logging.getLogger("grainlike.dispatcher")

#: Seconds without a task starting, while tasks wait for cores their ancestors hold, before
#: the dispatcher says so.
STUCK_AFTER = 30.0

#: The id of the worker in the dispatcher's own process that runs ZERO requests (branches).
HEAD = "head"


def _whole(_: object, attribute: attrs.Attribute[Any], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{attribute.name}={value!r}: must be a whole number, 0 or more")


def _seconds(_: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is None and attribute.name == "no_worker_grace":
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ConfigError(f"{attribute.name}={value!r}: must be 0 or more seconds")


@attrs.frozen
class DispatcherConfig:
    """How the dispatcher behaves; every value is checked here (``ConfigError``).

    Attributes:
        max_retries: How often a task whose worker was lost runs again before its caller
            gets ``WorkerLostError``.
        starvation_bound: Seconds a large task waits before resources are reserved for it.
        unsatisfiable_grace: Seconds (counted while at least one worker is connected) a request
            that no worker could ever satisfy waits before its caller gets
            ``UnsatisfiableError``; ``0`` fails at once (embedded mode).
        no_worker_grace: Seconds with no worker connected at all after which queued tasks fail
            with ``UnsatisfiableError``; ``None`` waits for workers for ever (as Dask's
            ``no-workers-timeout`` does by default).
        pools: Cluster-wide counters (``Counter("license", 3)``), drawn whichever worker runs
            the task.
        pipeline_window: On workers that pipeline (remote ones), tasks are sent ahead to wait
            behind a running task of the same shape, as many as take this many seconds by the
            shape's measured mean duration; ``0`` turns pipelining off.
    """

    max_retries: int = attrs.field(default=3, validator=_whole)
    starvation_bound: float = attrs.field(default=30.0, validator=_seconds)
    unsatisfiable_grace: float = attrs.field(default=60.0, validator=_seconds)
    no_worker_grace: float | None = attrs.field(default=None, validator=_seconds)
    pools: Resources | None = None
    pipeline_window: float = attrs.field(default=0.02, validator=_seconds)


@attrs.define(eq=False)
class Dispatcher:
    """Matches queued tasks to worker capacity and routes results back to callers.

    Workers are attached with ``add_worker`` through a ``WorkerLink`` and answer through
    ``task_started``, ``task_done`` and ``remove_worker``.  ``serve`` runs the placement loop.
    """

    config: DispatcherConfig = attrs.field(factory=DispatcherConfig)
    learned: LearnedLimits = attrs.field(factory=LearnedLimits)
    events: EventBus = attrs.field(factory=EventBus)
    #: Where a durable run records its tasks (``None``: nothing is recorded).
    journal: Journal | None = None
    _queue: TaskQueue = attrs.field(factory=TaskQueue)
    _workers: WorkerIndex = attrs.field(factory=WorkerIndex)
    _tasks: dict[int, Task] = attrs.field(factory=dict)
    _pools: Pools = attrs.field(init=False)
    _pipelines: Pipelines = attrs.field(init=False)
    _next_id: int = 0
    _next_order: int = 0
    _wake: trio.Event = attrs.field(factory=trio.Event)
    _reservation: Reservation | None = None
    _shape_version: int = 0
    _workers_version: int = 0
    _learned_seen: int = -1
    _no_worker_since: float | None = None
    _last_departure: str = ""
    _head: WorkerState | None = None
    _last_start: float = 0.0
    _warned_stuck: set[int] = attrs.field(factory=set)
    _regains: list[tuple[Task, Callable[[Resources | None], None]]] = attrs.field(factory=list)
    #: The inputs of dependents still here, and which remote workers hold them.
    shared: SharedInputs = attrs.field(factory=SharedInputs, init=False)
    #: Tasks retried with twice their memory label: their requests as submitted.
    _grown: dict[int, Resources] = attrs.field(factory=dict, init=False)
    #: The requests of those retries, which keep the size they were given.
    _grown_requests: set[Resources] = attrs.field(factory=set, init=False)
    completed: int = 0

    def __attrs_post_init__(self) -> None:
        self._pools = Pools(self.config.pools or ZERO)
        self._pipelines = Pipelines(self.config.pipeline_window)
        if self.journal is not None:
            self.journal.attach(self._resolve, self._recalled)

    # -- submission ---------------------------------------------------------------------------

    def submit(
        self,
        request: Resources,
        work: Call | PackedCall,
        *,
        name: str = "task",
        priority: int = 0,
        retries: int = 0,
        parent: int | None = None,
    ) -> TaskHandle:
        """Queue one task; the returned handle is awaited for its result.

        ``parent`` is the task that submitted it, if a task did: it is cancelled when its
        parent ends.  A ``ZERO`` request (a branch that only submits and gathers) runs on the
        head, in the dispatcher's own process, without taking a worker's slot.
        With a journal, a task whose key has a recorded success is not queued: it resolves
        with the recorded value as soon as the journal has read it (``_recalled``).
        """
        self._next_id += 1
        now = trio.current_time()
        task = Task(self._next_id, request, work, name, priority, retries, now, parent=parent)
        if self.events.active:
            self.events.publish(TaskSubmitted(task.id, name, str(request), priority, parent))
        handle = TaskHandle(task, self._abort)
        if parent is not None:
            owner = self._tasks.get(parent)
            if owner is None or owner.result is not None or owner.state is not TaskState.RUNNING:
                # Its parent ended meanwhile (a report that crossed).
                error = TaskCancelledError(f"task {task.id} ({name}): its parent {parent} ended")
                self._finish(task, outcome.Error(error))
                task.state = TaskState.DONE
                return handle
            if owner.children is None:
                owner.children = {task.id: task}
            else:
                owner.children[task.id] = task
        inputs = dependencies(work) if isinstance(work, Call) else None
        if inputs:
            assert isinstance(work, Call)
            failure = first_failure(inputs)
            if failure is not None:
                task.state = TaskState.DONE
                self._finish(task, outcome.Error(failure.error))
                return handle
            self.shared.add(task, inputs)
            pending = [dependency for dependency in inputs if dependency.result is None]
            if pending:
                task.state = TaskState.WAITING
                self._tasks[task.id] = task
                Dependencies(task, pending, self._inputs_ready, self._input_failed)
                return handle
            task.work = with_values(work)
        self._admit(task)
        return handle

    def _admit(self, task: Task) -> None:
        """A task whose inputs are ready: recalled from the journal, run on the head (a
        ``ZERO`` request), or queued."""
        if self.journal is not None and self.journal.recall(task):
            self._tasks.pop(task.id, None)
            task.state = TaskState.DONE  # not queued, and nothing to cancel
            if self.shared:
                self.shared.remove(task)
            return
        task.state = TaskState.QUEUED
        self._tasks[task.id] = task
        if not task.request and self._head is not None:
            self._assign([Placement(task, self._head, ZERO, None, None)], trio.current_time())
        else:
            self._enqueue(task)

    def _inputs_ready(self, task: Task) -> None:
        self._admit(task)

    def _input_failed(self, task: Task, failure: outcome.Error) -> None:
        self._end(task)
        self._finish(task, outcome.Error(failure.error))

    def _enqueue(self, task: Task) -> None:
        shape = self._queue.push(task)
        if self.config.unsatisfiable_grace <= 0 and not self._ever_fits(shape):
            self._fail_unsatisfiable(shape)
        elif len(self._queue) == 1 and self._reservation is None:
            # Alone in the queue, it is placed now, as the next pass would place it: a task
            # that fits starts without waiting for the placement loop's turn.
            self._place()
            if len(self._queue):
                self._kick()  # it waits: the loop watches over waiting tasks
        else:
            self._kick()

    def _recalled(self, task: Task, result: outcome.Outcome[Any] | None) -> None:
        """The journal read the recorded value of a task (``None``: it could not): resolve it
        as finished by the journal, or run it after all."""
        if result is None:
            task.state = TaskState.QUEUED
            self._tasks[task.id] = task
            if not task.request and self._head is not None:
                self._assign([Placement(task, self._head, ZERO, None, None)], trio.current_time())
            else:
                self._enqueue(task)
        else:
            self._resolve(task, result, worker="journal", duration=0.0)

    def _abort(self, task: Task, why: str = "") -> None:
        """Cancel a task: drop it from the queue, or stop it on its worker (``why``: the
        reason its caller and the event log are given, after "was cancelled")."""
        message = f"task {task.id} ({task.name}) was cancelled{why}"
        cancelled = outcome.Error(TaskCancelledError(message))
        if task.state is TaskState.QUEUED:
            self._queue.discard(task)
            self._end(task)
            self._finish(task, cancelled)
        elif task.state is TaskState.WAITING:
            self._end(task)
            self._finish(task, cancelled)
        elif task.state is TaskState.RUNNING and task.result is None:
            # The caller hears now; the task stays on its worker (holding its allocation) until
            # the worker reports that it stopped.
            self._finish(task, cancelled, worker=task.worker)
            state = self._state(task.worker)
            if state is not None:
                state.link.cancel_task(task.id)

    def cancel_all(self) -> int:
        """Cancel every task that has no result yet; returns how many."""
        live = [task for task in self._tasks.values() if task.result is None]
        for task in sorted(live, key=lambda t: t.id, reverse=True):
            self._abort(task)
        return len(live)

    def _kick(self) -> None:
        self._wake.set()

    # -- workers ------------------------------------------------------------------------------

    def set_head(self, link: WorkerLink) -> None:
        """Run ``ZERO`` requests through ``link`` (a worker in the dispatcher's own process)."""
        self._head = WorkerState(HEAD, Resources(), link)
        self.events.publish(WorkerJoined(HEAD, ""))

    def _state(self, worker_id: str | None) -> WorkerState | None:
        head = self._head
        if head is not None and worker_id == head.id:
            return head
        return self._workers.get(worker_id or "")

    def unique_worker_id(self, name: str) -> str:
        """``name``, or ``name-2``, ``name-3``... if a live worker already has it."""
        candidate, suffix = name, 1
        while candidate == HEAD or self._workers.get(candidate) is not None:
            suffix += 1
            candidate = f"{name}-{suffix}"
        return candidate

    def add_worker(self, worker_id: str, capacity: Resources, link: WorkerLink) -> None:
        """Attach a worker (its id must be unique: see ``unique_worker_id``)."""
        if self._workers.get(worker_id) is not None:
            raise GrainlikeError(f"worker id {worker_id!r} is already connected")
        self._next_order += 1
        depth = link.pipeline if self.config.pipeline_window > 0 else 0
        state = WorkerState(
            worker_id, Resources(*capacity.parts()), link, self._next_order, pipeline=depth
        )
        self._workers.add(state)
        self._workers_version += 1
        self._shape_version += 1  # the largest worker sizes a group request with no label
        self._no_worker_since = None
        self.events.publish(WorkerJoined(worker_id, str(capacity)))
        if self.journal is not None:
            self.journal.worker_joined(worker_id, capacity)
        self._kick()

    def remove_worker(self, worker_id: str, reason: str, *, lost: bool = True) -> None:
        """Detach a worker; its running tasks go back to the queue (or fail after max_retries)."""
        state = self._workers.get(worker_id)
        if state is None:
            return
        state.accepting = False
        self._workers.remove(state)
        self._workers_version += 1
        self._shape_version += 1
        if not len(self._workers):
            self._no_worker_since = trio.current_time()
        self._last_departure = f"{worker_id} left: {reason}"
        self._pipelines.forget_worker(state)
        if self._reservation is not None and self._reservation.worker is state:
            self._reservation = None
        event = WorkerLost(worker_id, reason) if lost else WorkerDrained(worker_id, reason)
        self.events.publish(event)
        if self.journal is not None:
            self.journal.worker_left(worker_id, reason, lost)
        # Newest first, so that putting each back at the front of the queue keeps their order.
        tasks = sorted(state.running.values(), key=lambda t: t.id, reverse=True)
        # A task still waiting behind another in a pipeline never ran: it is not a lost attempt.
        ran = {task.id for task in tasks if task.began or runs_now(task)}
        state.running.clear()
        for task in tasks:
            self._free(state, task, worker_alive=False)
            if task.result is not None:  # cancelled by its caller meanwhile
                self._end(task)
                continue
            if task.id not in ran:
                self._requeue(task, worker_id, f"worker lost before the task began: {reason}")
                continue
            # The evidence a dispatcher has that a task killed its worker: it was all the
            # worker ran when the worker went, each time.
            task.lost_alone += len(ran) == 1
            if task.lost >= self.config.max_retries:
                self._end(task)
                error = WorkerLostError(_lost_too_often(task, worker_id, reason, self.config))
                self._finish(task, outcome.Error(error), worker=worker_id)
            else:
                task.lost += 1
                alone = " (the only task running there)" if len(ran) == 1 else ""
                self._requeue(task, worker_id, f"worker lost{alone}: {reason}")
        self._kick()

    def drain_workers(self, pattern: str, reason: str = "asked to quit") -> list[str]:
        """Ask workers whose id matches the glob ``pattern`` to finish and leave."""
        matched = [w.id for w in self._workers if fnmatch.fnmatchcase(w.id, pattern)]
        for worker_id in matched:
            self.drain_worker(worker_id, reason)
        return matched

    def drain_worker(self, worker_id: str, reason: str) -> None:
        """Stop placing tasks on a worker and tell it to leave once its tasks are done."""
        state = self._workers.get(worker_id)
        if state is not None and state.accepting:
            self.stop_placing(worker_id, reason)
            state.link.drain(reason)

    def stop_placing(self, worker_id: str, reason: str) -> None:
        """A worker is leaving (it drains, or its walltime ends): place nothing more there."""
        state = self._workers.get(worker_id)
        if state is not None:
            state.accepting = False
            state.leaving = reason
            self._pipelines.forget_worker(state)

    def has_running(self, worker_id: str) -> bool:
        """Whether tasks run on this worker."""
        state = self._workers.get(worker_id)
        return state is not None and bool(state.running)

    def task(self, task_id: int) -> Task | None:
        """A live (queued or running) task by id."""
        return self._tasks.get(task_id)

    def expects(self, worker_id: str, task_id: int, attempt: int) -> Task | None:
        """The task whose report from ``worker_id`` about ``attempt`` would count, else
        ``None`` (the report is stale: the task moved on or ended)."""
        task = self._tasks.get(task_id)
        if task is None or task.worker != worker_id or task.attempt != attempt:
            return None
        return task

    def worker_ids(self) -> list[str]:
        """Ids of the connected workers, in joining order."""
        return [w.id for w in self.worker_states()]

    # -- gl.released(): a task gives its allocation back for a while --------------------------

    def release(self, task_id: int) -> None:
        """A running task gives its allocation back to its worker (``gl.released()``); it stays
        on its worker.  Tasks pipelined behind it go back to the queue first."""
        task = self._tasks.get(task_id)
        state = self._state(task.worker) if task is not None else None
        if task is None or state is None or task.released or task.result is not None:
            return
        chain = task.chain
        if chain is not None:
            for waiting in list(chain.tasks)[1:]:
                del state.running[waiting.id]
                state.link.cancel_task(waiting.id)
                self._requeue(waiting, state.id, "its chain's first task gave its allocation back")
            self._pipelines.leave(task)
            task.allocation, task.pool_allocation = chain.allocation, chain.pool_allocation
        if task.allocation is not None and state is not self._head:
            self._workers.release(state, task.allocation)
        if task.pool_allocation is not None:
            self._pools.dealloc(task.pool_allocation)
        task.allocation = task.pool_allocation = None
        task.released = True
        self._kick()

    def reacquire(self, task_id: int, granted: Callable[[Resources | None], None]) -> None:
        """Take the same request again on the same worker for a released task, before any
        queued task; ``granted`` gets the new allocation (``None`` if the task has ended)."""
        task = self._tasks.get(task_id)
        if task is None or task.result is not None:
            granted(None)
        elif not task.released:
            granted(task.allocation)
        else:
            self._regains.append((task, granted))
            self._kick()

    def _regain(self) -> None:
        """Give released tasks their allocations back where they fit again now."""
        waiting, self._regains = self._regains, []
        for task, granted in waiting:
            state = self._state(task.worker)
            if state is None or task.result is not None or not task.released:
                granted(None)
                continue
            worker_part, pool_part = self._pools.split(task.request)
            if state is self._head:
                allocation: Resources = ZERO
            elif not state.capacity.request(worker_part) or (
                pool_part is not None and not self._pools.request(pool_part)
            ):
                self._regains.append((task, granted))  # not yet
                continue
            else:
                allocation = self._workers.allocate(state, worker_part)
            task.allocation = allocation
            task.pool_allocation = self._pools.alloc(pool_part) if pool_part is not None else None
            task.released = False
            pooled = task.pool_allocation
            granted(allocation if pooled is None else allocation & pooled)

    # -- reports from workers -----------------------------------------------------------------

    def task_started(self, worker_id: str, task_id: int, attempt: int) -> None:
        """A worker began running a task."""
        task = self._tasks.get(task_id)
        if task is None or task.worker != worker_id or task.attempt != attempt:
            return
        task.began = True
        if self.events.active and task.result is None:  # not after its terminal event
            self.events.publish(TaskStarted(task_id, worker_id, attempt))

    def task_done(
        self,
        worker_id: str,
        task_id: int,
        attempt: int,
        result: outcome.Outcome[Any],
        duration: float,
        usage: Usage | None = None,
    ) -> None:
        """A worker finished a task (value, exception, or cancelled); frees its resources.

        Reports from a worker that no longer holds the task (it was lost and the task moved on)
        are ignored, so a task is reported to its caller exactly once.
        """
        task = self._tasks.get(task_id)
        state = self._state(worker_id)
        if task is None or state is None or task.worker != worker_id or task.attempt != attempt:
            return
        del state.running[task_id]
        grown = None
        exceeded = _exceeded(result)
        if exceeded is not None:
            grown = self._grow(task, exceeded)  # while it still holds what it exceeded
        if not task.began and task.result is None and self.events.active:
            # Its start was not reported apart (and it was not cancelled meanwhile).
            self.events.publish(TaskStarted(task_id, worker_id, attempt))
        if state.pipeline:
            self._pipelines.record(task, duration)
        if type(result) is outcome.Value and task.result is None:
            # Learned first: the next task of the group, handed this allocation below, or
            # placed by the next pass, is sized by what this run just taught.
            request = self._grown.get(task.id, task.request) if self._grown else task.request
            wtime = request.get(WTime)
            if wtime is not None and wtime.group is not None:
                self.learned.record(wtime.group, duration)
            if usage is not None:
                learn_usage(self.learned, request, usage)
        if state is self._head:
            task.allocation = None  # a branch holds nothing
        elif not self._hand_over(state, task):
            self._free(state, task, worker_alive=True)
            self._kick()
        if task.result is not None:  # its caller cancelled it
            self._end(task)
            return
        if grown is not None:
            assert exceeded is not None
            self._grown[task.id] = task.request
            self._grown_requests.add(grown)
            task.request = grown
            size = grown.get(exceeded)
            assert size is not None
            what = "memory" if exceeded is Memory else "disk"
            self._requeue(
                task, worker_id, f"over its {what} label: retried once with {format_gb(size.gb)}"
            )
            return
        elif (
            isinstance(result, outcome.Error)
            and task.failures < task.retries
            and not isinstance(result.error, trio.TooSlowError | TaskCancelledError)
        ):
            task.failures += 1
            self._requeue(task, worker_id, f"failed: {_describe(result.error)}")
            return
        grew = self._grown and task.id in self._grown
        if grew and exceeded is not None:
            assert isinstance(result, outcome.Error)
            error = type(result.error)(f"{result.error} (after one retry with twice its label)")
            result = outcome.Error(error)
        self._end(task)
        self._finish(task, result, worker=worker_id, duration=duration, usage=usage)

    def _grow(self, task: Task, kind: type[Size]) -> Resources | None:
        """The request of the one retry of a task that exceeded its memory or disk label
        (``None``: it asked for no group, was retried so already, or nothing larger exists)."""
        if task.id in self._grown:
            return None
        return grown_request(task.request, task.allocation, self.learned, self._workers, kind)

    def _hand_over(self, state: WorkerState, task: Task) -> bool:
        """Start the next queued task in the allocation of one that ended, if that is what a
        placement pass would do: it is the next in line (the only shape queued) and asks for
        the same; no reservation holds, and no learned limit changed since the last pass.

        This saves a pass and an alloc/dealloc pair per task when many tasks of one shape
        stream through (the pass runs once per scheduler turn, for a few tasks).
        """
        if task.chain is not None or self._reservation is not None or not state.accepting:
            return False
        if self._regains and any(waiting.worker == state.id for waiting, _ in self._regains):
            return False  # a task coming back from gl.released() takes these cores first
        if self.learned.version != self._learned_seen:
            return False
        shape = self._queue.sole_shape()
        if (
            shape is None
            or shape.version != self._shape_version
            or shape.priority != task.priority
            or not (shape.request is task.request or shape.request == task.request)
        ):
            return False
        allocation = task.allocation
        assert allocation is not None
        heir = self._queue.popleft(shape)
        handed = Placement(heir, state, allocation, task.pool_allocation, task.hard_limit)
        task.allocation = task.pool_allocation = None
        self._assign([handed], trio.current_time())
        return True

    def _free(self, state: WorkerState, task: Task, *, worker_alive: bool) -> None:
        """Give back what ``task`` held, unless tasks pipelined behind it still use it."""
        chain = task.chain
        if chain is None:
            if worker_alive and task.allocation is not None:
                self._workers.release(state, task.allocation)
            if task.pool_allocation is not None:
                self._pools.dealloc(task.pool_allocation)
        elif self._pipelines.leave(task) is not None:  # the chain's last task: its allocation
            if worker_alive:
                self._workers.release(state, chain.allocation)
            if chain.pool_allocation is not None:
                self._pools.dealloc(chain.pool_allocation)
        elif worker_alive:
            chain.tasks[0].assigned_at = trio.current_time()
        task.allocation = task.pool_allocation = None

    def _requeue(self, task: Task, worker_id: str, reason: str) -> None:
        self._cancel_children(task, "is run again")  # the next attempt submits its own
        if self.journal is not None:
            self.journal.retried(task, worker_id, reason)
        task.requeue()
        self._queue.pushleft(task)
        if self.events.active:
            self.events.publish(TaskRetried(task.id, worker_id, task.attempt + 1, reason))

    def _end(self, task: Task) -> None:
        """The task leaves the dispatcher: no worker report about it counts any more, and its
        subtasks still pending are cancelled."""
        self._tasks.pop(task.id, None)
        self._cancel_children(task)
        if task.parent is not None:
            # Its parent lets go of it: a long parent does not keep its children's results.
            owner = self._tasks.get(task.parent)
            if owner is not None and owner.children:
                owner.children.pop(task.id, None)
        task.release()
        if self._grown:
            self._grown.pop(task.id, None)
        if self.shared and self.shared.remove(task):
            work = task.work
            assert isinstance(work, Call)
            # Its inputs' values are not kept alive by a handle to it that is kept.
            task.work = Call(work.fn, (), {}, work.is_async, work.executor)

    def _cancel_children(self, task: Task, what: str = "ended") -> None:
        children, task.children = task.children, None
        for child in (children or {}).values():
            if child.result is None:
                self._abort(child, f": its parent, task {task.id} ({task.name}), {what}")

    def _finish(
        self,
        task: Task,
        result: outcome.Outcome[Any],
        *,
        worker: str | None = None,
        duration: float | None = None,
        usage: Usage | None = None,
    ) -> None:
        """End a task with its one result: resolve it and publish its one terminal event, at
        once or, with a journal, once the result is durable there (``_resolve``)."""
        if task.result is not None:
            return
        if self.journal is not None and self.journal.record(task, result, worker, duration, usage):
            return
        self._resolve(task, result, worker, duration, usage)

    def _resolve(
        self,
        task: Task,
        result: outcome.Outcome[Any],
        worker: str | None = None,
        duration: float | None = None,
        usage: Usage | None = None,
    ) -> None:
        """Resolve a task with its one result, and publish its one terminal event."""
        if not task.resolve(result):
            return
        self.completed += 1
        if not self.events.active:
            return
        attempt = task.attempt
        event: Any
        if isinstance(result, outcome.Value):
            assert worker is not None and duration is not None
            event = TaskFinished(task.id, worker, duration, attempt, usage)
        else:
            assert isinstance(result, outcome.Error)
            error = result.error
            if isinstance(error, TaskCancelledError):
                event = TaskCancelled(task.id, worker, str(error), attempt)
            else:
                message = str(error).splitlines()[0] if str(error) else ""
                event = TaskFailed(
                    task.id, worker, message, duration, type(error).__name__, attempt, usage
                )
        self.events.publish(event)

    # -- placement ----------------------------------------------------------------------------

    def _refresh(self, shape: Shape) -> None:
        """Split the request between worker and pools, and fill in learned limits."""
        if shape.version == self._shape_version:
            return
        worker_part, shape.pool_part = self._pools.split(shape.request)
        wtime = worker_part.get(WTime)
        if wtime is not None and wtime.group is not None and wtime.T is None:
            learned = self.learned.limits(wtime.group)
            if learned is not None:
                resolved = wtime.with_limits(*learned)
                worker_part = Resources(
                    *(resolved if p.key == WTime else p for p in worker_part.parts())
                )
                wtime = resolved
        if shape.request not in self._grown_requests:
            worker_part = sized_request(worker_part, self.learned, self._workers)
        shape.effective = worker_part
        shape.hard_limit = wtime.T if wtime is not None else None
        shape.version = self._shape_version

    def _ever_fits(self, shape: Shape) -> bool:
        self._refresh(shape)
        if shape.ever_fits_version != self._workers_version:
            assert shape.effective is not None
            fits = self._workers.ever_fits(shape.effective)
            if fits and shape.pool_part is not None:
                fits = not self._pools.shortfall(shape.pool_part, total=True)
            shape.ever_fits = fits
            shape.ever_fits_version = self._workers_version
        return bool(shape.ever_fits)

    def _fail_unsatisfiable(self, shape: Shape, error: GrainlikeError | None = None) -> None:
        assert shape.effective is not None
        if error is None:
            error = unsatisfiable_error(
                shape.effective, shape.pool_part, self._workers, self._pools
            )
        while (task := shape.head()) is not None:
            self._queue.popleft(shape)
            self._end(task)
            self._finish(task, outcome.Error(error))

    def _place(self) -> None:
        if self._regains:
            self._regain()
        if not len(self._queue):
            return
        if self.learned.version != self._learned_seen:
            self._learned_seen = self.learned.version
            self._shape_version += 1
        queue = self._queue
        shapes = queue.shapes()
        for shape in shapes:
            self._refresh(shape)
        now = trio.current_time()
        placements, self._reservation = plan(
            queue,
            self._workers,
            pools=self._pools,
            now=now,
            starvation_bound=self.config.starvation_bound,
            reservation=self._reservation,
            shapes=shapes,
        )
        self._assign(placements, now)  # first, so that tasks can be sent ahead behind these
        if self._workers.pipelining and self._reservation is None:
            self._assign(self._pipelines.extend(queue), now)

    def _assign(self, placements: list[Placement], now: float) -> None:
        """Start tasks on the workers chosen for them, in the allocations made for them."""
        if not placements:
            return
        batches: dict[WorkerState, list[Task]] = {}
        publish = self.events.active
        self._last_start = now
        journal = self.journal
        for placement in placements:
            task, worker, allocation = placement.task, placement.worker, placement.allocation
            if worker.pipeline and task.chain is None:
                self._pipelines.begin(placement)
            task.assign(worker, allocation, placement.pool_allocation, placement.hard_limit, now)
            batch = batches.get(worker)
            if batch is None:
                batches[worker] = [task]
            else:
                batch.append(task)
            if publish:
                self.events.publish(_placed(task, worker.id, placement))
            if journal is not None:
                journal.placed(task, worker.id, allocation, placement.pool_allocation, now)
        for worker, tasks in batches.items():
            worker.link.run_tasks(tasks)

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the placement loop (and the watch over waiting tasks) until cancelled."""
        async with trio.open_nursery() as nursery:
            if not len(self._workers):
                self._no_worker_since = trio.current_time()
            if self.config.unsatisfiable_grace > 0 or self.config.no_worker_grace is not None:
                nursery.start_soon(self._watch)
            task_status.started()
            while True:
                # While tasks wait, look now and then whether they wait on their own ancestors
                # (no deadline while nothing waits: a run with an idle queue sleeps).
                with trio.move_on_after(STUCK_AFTER if len(self._queue) else math.inf):
                    await self._wake.wait()
                if not self._wake.is_set():
                    self._warn_if_stuck()
                    continue
                self._wake = trio.Event()
                self._place()

    async def _watch(self) -> None:
        """Fail shapes that no worker could ever hold after the unsatisfiable grace, and every
        queued task once no worker was connected for the no-worker grace."""
        graces = [self.config.unsatisfiable_grace, self.config.no_worker_grace or math.inf]
        period = min(1.0, *(grace / 4 for grace in graces if grace > 0))
        while True:
            await trio.sleep(period)
            if not len(self._workers):
                self._fail_if_no_worker_for_too_long()
                continue
            for shape in self._queue.shapes():
                if self._ever_fits(shape):
                    shape.unfit_for = 0.0
                    continue
                shape.unfit_for += period
                if shape.unfit_for >= self.config.unsatisfiable_grace > 0:
                    self._fail_unsatisfiable(shape)

    def _warn_if_stuck(self) -> None:
        """Say so, once, when tasks wait for cores their own ancestors hold, and nothing has
        started for a while (a parent that holds every core while it awaits its children)."""
        now = trio.current_time()
        if not len(self._queue) or now - self._last_start < STUCK_AFTER:
            return
        for task in self.pending(limit=20):
            why = self.explain(task)
            if "held by its" in why and task.id not in self._warned_stuck:
                self._warned_stuck.add(task.id)
                log.warning(
                    "nothing started for %s: %s", format_seconds(now - self._last_start), why
                )
                return

    def _fail_if_no_worker_for_too_long(self) -> None:
        grace, since = self.config.no_worker_grace, self._no_worker_since
        if grace is None or since is None or trio.current_time() - since < grace:
            return
        for shape in self._queue.shapes():
            self._refresh(shape)
            error = UnsatisfiableError(
                f"{shape.request}: no worker has been connected for {grace:g}s (no_worker_grace)",
                (),
            )
            self._fail_unsatisfiable(shape, error)

    # -- looking in ---------------------------------------------------------------------------

    def queued(self) -> int:
        """How many tasks wait."""
        return len(self._queue)

    def waiting(self) -> int:
        """How many tasks wait for their inputs (the tasks whose handles they take)."""
        return sum(task.state is TaskState.WAITING for task in self._tasks.values())

    def running(self) -> int:
        """How many tasks run (not counting those pipelined behind a running one)."""
        on_head = len(self._head.running) if self._head is not None else 0
        return sum(len(w.running) for w in self._workers) + on_head - self.pipelined()

    def pipelined(self, worker: WorkerState | None = None) -> int:
        """How many tasks wait on a worker (or on ``worker``) behind a running task."""
        workers = self._workers if worker is None else [worker]
        return sum(not runs_now(t) for w in workers if w.pipeline for t in w.running.values())

    def explain(self, task: Task) -> str:
        """Why a task is where it is (for ``gl.explain`` and ``grainlike status``)."""
        return explain(
            task,
            self._workers,
            self._pools,
            self._reservation,
            trio.current_time(),
            no_worker_since=self._no_worker_since,
            last_departure=self._last_departure,
            tasks=self._tasks,
        )

    def pending(self, limit: int = 5) -> list[Task]:
        """The oldest queued tasks (up to ``limit``) in placement order."""
        out = []
        for task in self._queue:
            out.append(task)
            if len(out) >= limit:
                break
        return out

    def queued_requests(self) -> list[tuple[Resources, int]]:
        """Each distinct queued request (with learned limits applied) and how many tasks wait."""
        out = []
        for shape in self._queue.shapes():
            self._refresh(shape)
            count = sum(1 for task in shape.tasks if task.state is TaskState.QUEUED)
            out.append((shape.effective or shape.request, count))
        return out

    def worker_states(self) -> list[WorkerState]:
        """The connected workers, in joining order."""
        return sorted(self._workers, key=lambda w: w.order)


def _exceeded(result: outcome.Outcome[Any]) -> type[Size] | None:
    """The kind whose label a worker stopped the task for exceeding, if it did."""
    if type(result) is not outcome.Error:
        return None
    if type(result.error) is MemoryLimitError:
        return Memory
    return Disk if type(result.error) is DiskLimitError else None


def _lost_too_often(task: Task, worker_id: str, reason: str, config: DispatcherConfig) -> str:
    """Why a task whose workers kept being lost fails, with the evidence that it was the
    cause: it was the only task running on each of them."""
    lost, retries = task.lost + 1, config.max_retries
    workers = "a worker was" if lost == 1 else f"{lost} workers were"
    times = "once" if retries == 1 else f"{retries} times"
    why = f"task {task.id} ({task.name}): {workers} lost while running it, the last {worker_id} "
    why += f"({reason}), and it was retried {times} (max_retries)"
    if lost > 1 and task.lost_alone == lost:
        return (
            f"{why}; it was the only task running on each of them, so it most likely killed "
            "them (os._exit or a crash in an async task, or blocking the event loop past the "
            "heartbeat timeout)"
        )
    return (
        f"{why}; a task that kills its worker (os._exit or a crash in an async task, or one "
        "that blocks the event loop past the heartbeat timeout) looks like this"
    )


def _placed(task: Task, worker_id: str, placement: Placement) -> TaskPlaced:
    allocation = placement.allocation
    cores = allocation.get(Cores)
    gpus = allocation.get(GPU)
    if placement.pool_allocation is not None:
        allocation = allocation & placement.pool_allocation
    return TaskPlaced(
        task.id,
        worker_id,
        str(allocation),
        tuple(cores.c) if cores is not None else (),
        tuple(gpus.ids) if gpus is not None else (),
        task.attempt,
    )


def _describe(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
