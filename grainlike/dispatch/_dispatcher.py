"""The dispatcher: one queue, many workers, exactly one result per task."""

from __future__ import annotations

import fnmatch
from collections.abc import Hashable
from typing import Any

import attrs
import outcome
import trio

from .._exceptions import (
    GrainlikeError,
    TaskCancelledError,
    UnsatisfiableError,
    WorkerLostError,
)
from ..resource import GPU, Cores, Counter, Kind, Resources, WTime
from ..wire import Usage
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
from ._learned import LearnedLimits
from ._links import WorkerLink
from ._pipeline import Pipelines
from ._placement import Reservation, WorkerIndex, WorkerState, plan
from ._queue import Shape, TaskQueue
from ._task import Task, TaskHandle, TaskState

__all__ = ["Dispatcher", "DispatcherConfig"]


@attrs.frozen
class DispatcherConfig:
    """How the dispatcher behaves.

    ``unsatisfiable_grace`` is how long (in seconds, counted while at least one worker is
    connected) a request that no worker could ever satisfy waits before its caller gets
    ``UnsatisfiableError``; ``0`` fails at once (embedded mode).

    ``pipeline_window``: on workers that pipeline (remote ones), tasks are sent ahead to wait
    behind a running task of the same shape, as many as take this many seconds by the shape's
    measured mean duration (so shapes of longer tasks are not sent ahead); ``0`` turns
    pipelining off.
    """

    max_retries: int = 3
    starvation_bound: float = 30.0
    unsatisfiable_grace: float = 60.0
    pools: Resources | None = None
    pipeline_window: float = 0.02


@attrs.define(eq=False)
class Dispatcher:
    """Matches queued tasks to worker capacity and routes results back to callers.

    Workers are attached with ``add_worker`` through a ``WorkerLink`` and answer through
    ``task_started``, ``task_done`` and ``remove_worker``.  ``serve`` runs the placement loop.
    """

    config: DispatcherConfig = attrs.field(factory=DispatcherConfig)
    learned: LearnedLimits = attrs.field(factory=LearnedLimits)
    events: EventBus = attrs.field(factory=EventBus)
    _queue: TaskQueue = attrs.field(factory=TaskQueue)
    _workers: WorkerIndex = attrs.field(factory=WorkerIndex)
    _links: dict[str, WorkerLink] = attrs.field(factory=dict)
    _tasks: dict[int, Task] = attrs.field(factory=dict)
    _pools: Resources | None = None
    _pool_keys: frozenset[Hashable] = frozenset()
    _next_id: int = 0
    _next_order: int = 0
    _wake: trio.Event = attrs.field(factory=trio.Event)
    _reservation: Reservation | None = None
    _shape_version: int = 0
    _workers_version: int = 0
    _learned_seen: int = -1
    _draining: set[str] = attrs.field(factory=set)
    _pipelines: Pipelines = attrs.field(init=False)
    _pipelining: int = 0
    completed: int = 0

    def __attrs_post_init__(self) -> None:
        self._pipelines = Pipelines(self.config.pipeline_window)
        pools = self.config.pools
        if pools is not None:
            for part in pools.parts():
                if not isinstance(part, Counter):
                    raise GrainlikeError(f"pools={pools}: only counters can be pools, not {part}")
            self._pools = Resources(*pools.parts())
            self._pool_keys = frozenset(part.key for part in pools.parts())

    # -- submission ---------------------------------------------------------------------------

    def submit(
        self,
        request: Resources,
        work: Any,
        *,
        name: str = "task",
        priority: int = 0,
        retries: int = 0,
    ) -> TaskHandle:
        """Queue one task; the returned handle is awaited for its result."""
        self._next_id += 1
        task = Task(self._next_id, request, work, name, priority, retries, trio.current_time())
        self._tasks[task.id] = task
        shape = self._queue.push(task)
        if self.events.active:
            self.events.publish(TaskSubmitted(task.id, name, str(request), priority))
        if self.config.unsatisfiable_grace <= 0 and not self._ever_fits(shape):
            self._fail_unsatisfiable(shape)
        self._kick()
        return TaskHandle(task, self._abort)

    def _abort(self, task: Task) -> None:
        """The caller stopped waiting: drop a queued task, cancel a running one."""
        cancelled = outcome.Error(TaskCancelledError(f"task {task.id} ({task.name}) was cancelled"))
        if task.state is TaskState.QUEUED:
            self._queue.discard(task)
            self._finish(task, cancelled)
        elif task.state is TaskState.RUNNING:
            # Deliver the result to whoever still awaits the handle (``handle.cancel()`` from
            # elsewhere); the task stays RUNNING on its worker until the worker reports it done.
            self._finish(task, cancelled, worker=task.worker)
            self._tasks[task.id] = task
            task.state = TaskState.RUNNING
            link = self._links.get(task.worker or "")
            if link is not None:
                link.cancel_task(task.id)

    def _kick(self) -> None:
        self._wake.set()

    # -- workers ------------------------------------------------------------------------------

    def unique_worker_id(self, name: str) -> str:
        """``name``, or ``name-2``, ``name-3``... if a live worker already has it."""
        candidate, suffix = name, 1
        while candidate in self._links:
            suffix += 1
            candidate = f"{name}-{suffix}"
        return candidate

    def add_worker(self, worker_id: str, capacity: Resources, link: WorkerLink) -> None:
        """Attach a worker (its id must be unique: see ``unique_worker_id``)."""
        if worker_id in self._links:
            raise GrainlikeError(f"worker id {worker_id!r} is already connected")
        self._next_order += 1
        depth = link.pipeline if self.config.pipeline_window > 0 else 0
        state = WorkerState(
            worker_id, Resources(*capacity.parts()), self._next_order, pipeline=depth
        )
        self._workers.add(state)
        self._pipelining += depth > 0
        self._links[worker_id] = link
        self._workers_version += 1
        self.events.publish(WorkerJoined(worker_id, str(capacity)))
        self._kick()

    def remove_worker(self, worker_id: str, reason: str, *, lost: bool = True) -> None:
        """Detach a worker; its running tasks go back to the queue (or fail after max_retries)."""
        state = self._workers.get(worker_id)
        if state is None:
            return
        state.accepting = False
        self._workers.remove(state)
        del self._links[worker_id]
        self._draining.discard(worker_id)
        self._workers_version += 1
        self._pipelining -= state.pipeline > 0
        self._pipelines.forget_worker(state)
        if self._reservation is not None and self._reservation.worker is state:
            self._reservation = None
        event = WorkerLost(worker_id, reason) if lost else WorkerDrained(worker_id, reason)
        self.events.publish(event)
        # Newest first, so that putting each back at the front of the queue keeps their order.
        tasks = sorted(state.running.values(), key=lambda t: t.id, reverse=True)
        # A task still waiting behind another in a pipeline never ran: it is not a lost attempt.
        ran = {task.id for task in tasks if task.began or self._pipelines.is_first(task)}
        for task in tasks:
            self._free(state, task, worker_alive=False)
            task.worker = None
            if task.result is not None:  # cancelled by its caller meanwhile
                self._tasks.pop(task.id, None)
                continue
            if task.id not in ran:
                self._requeue(task, worker_id, f"worker lost before the task began: {reason}")
                continue
            task.lost += 1
            if task.lost > self.config.max_retries:
                self._finish(
                    task,
                    outcome.Error(
                        WorkerLostError(
                            f"task {task.id} ({task.name}): worker {worker_id} was lost "
                            f"({reason}) and the task was retried {self.config.max_retries} times"
                        )
                    ),
                    worker=worker_id,
                )
            else:
                self._requeue(task, worker_id, f"worker lost: {reason}")
        state.running.clear()
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
        if state is None or worker_id in self._draining:
            return
        state.accepting = False
        self._draining.add(worker_id)
        self._pipelines.forget_worker(state)
        self._links[worker_id].drain(reason)

    def stop_placing(self, worker_id: str, reason: str) -> None:
        """A worker said it is leaving (e.g. its walltime ends): place nothing more there."""
        state = self._workers.get(worker_id)
        if state is not None:
            state.accepting = False
            self._draining.add(worker_id)
            self._pipelines.forget_worker(state)

    def has_running(self, worker_id: str) -> bool:
        """Whether tasks run on this worker."""
        state = self._workers.get(worker_id)
        return state is not None and bool(state.running)

    def task(self, task_id: int) -> Task | None:
        """A live (queued or running) task by id."""
        return self._tasks.get(task_id)

    def worker_ids(self) -> list[str]:
        """Ids of the connected workers, in joining order."""
        return [w.id for w in sorted(self._workers, key=lambda w: w.order)]

    # -- reports from workers -----------------------------------------------------------------

    def task_started(self, worker_id: str, task_id: int, attempt: int) -> None:
        """A worker began running a task."""
        task = self._tasks.get(task_id)
        if task is None or task.worker != worker_id or task.attempt != attempt:
            return
        task.began = True
        if self.events.active:
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
        state = self._workers.get(worker_id)
        if task is None or state is None or task.worker != worker_id or task.attempt != attempt:
            return
        del state.running[task_id]
        if not task.began and self.events.active:  # its start was not reported apart
            self.events.publish(TaskStarted(task_id, worker_id, attempt))
        if not self._hand_over(state, task):
            self._free(state, task, worker_alive=True)
            self._kick()
        if state.pipeline:
            self._pipelines.record(task, duration)
        if task.result is not None:  # its caller cancelled it
            del self._tasks[task_id]
            return
        wtime = task.request.get(WTime)
        if isinstance(result, outcome.Value):
            if wtime is not None and wtime.group is not None:
                self.learned.record(wtime.group, duration)
            self._finish(task, result, worker=worker_id, duration=duration, usage=usage)
            return
        assert isinstance(result, outcome.Error)
        error = result.error
        if task.failures < task.retries and not isinstance(error, trio.TooSlowError):
            task.failures += 1
            self._requeue(task, worker_id, f"failed: {_describe(error)}")
        else:
            self._finish(task, result, worker=worker_id, duration=duration, usage=usage)

    def _hand_over(self, state: WorkerState, task: Task) -> bool:
        """Start the next queued task in the allocation of one that ended, if that is what a
        placement pass would do: it is the next in line (the only shape queued) and asks for
        the same; no reservation holds, and no learned limit changed since the last pass.

        This saves a pass and an alloc/dealloc pair per task when many tasks of one shape
        stream through (the pass runs once per scheduler turn, for a few tasks).
        """
        if task.chain is not None or self._reservation is not None or not state.accepting:
            return False
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
        pool_allocation, task.pool_allocation, task.allocation = task.pool_allocation, None, None
        self._assign([(heir, state, allocation, pool_allocation)], trio.current_time())
        return True

    def _free(self, state: WorkerState, task: Task, *, worker_alive: bool) -> None:
        """Give back what ``task`` held, unless tasks pipelined behind it still use it."""
        if task.chain is None:
            if worker_alive:
                assert task.allocation is not None
                self._workers.release(state, task.allocation)
            self._release_pool(task)
        else:
            chain = task.chain
            task.pool_allocation = None  # the chain's, given back with the chain
            if self._pipelines.leave(task) is not None:
                if worker_alive:
                    self._workers.release(state, chain.allocation)
                if chain.pool_allocation is not None and self._pools is not None:
                    self._pools.dealloc(chain.pool_allocation)
            elif worker_alive:
                chain.tasks[0].started = trio.current_time()
        task.allocation = None

    def _requeue(self, task: Task, worker_id: str, reason: str) -> None:
        task.state = TaskState.QUEUED
        task.worker = None
        task.after = None
        self._queue.pushleft(task)
        if self.events.active:
            self.events.publish(TaskRetried(task.id, worker_id, task.attempt + 1, reason))

    def _finish(
        self,
        task: Task,
        result: outcome.Outcome[Any],
        *,
        worker: str | None = None,
        duration: float | None = None,
        usage: Usage | None = None,
    ) -> None:
        """Resolve a task with its one result, and publish its one terminal event."""
        self._tasks.pop(task.id, None)
        self.completed += 1
        if not task.resolve(result) or not self.events.active:
            return
        attempt = task.attempt
        if isinstance(result, outcome.Value):
            assert worker is not None and duration is not None
            event: Any = TaskFinished(task.id, worker, duration, attempt, usage)
        elif isinstance(result, outcome.Error) and isinstance(result.error, TaskCancelledError):
            event = TaskCancelled(task.id, worker, str(result.error), attempt)
        else:
            assert isinstance(result, outcome.Error)
            error = result.error
            message = str(error).splitlines()[0] if str(error) else ""
            event = TaskFailed(
                task.id, worker, message, duration, type(error).__name__, attempt, usage
            )
        self.events.publish(event)

    def _release_pool(self, task: Task) -> None:
        if task.pool_allocation is not None and self._pools is not None:
            self._pools.dealloc(task.pool_allocation)
            task.pool_allocation = None

    # -- placement ----------------------------------------------------------------------------

    def _refresh(self, shape: Shape) -> None:
        """Split the request between worker and pools, and fill in learned limits."""
        if shape.version == self._shape_version:
            return
        request = shape.request
        worker_kinds: list[Kind] = []
        pool_kinds: list[Kind] = []
        for part in request.parts():
            (pool_kinds if part.key in self._pool_keys else worker_kinds).append(part)
        worker_part = Resources(*worker_kinds)
        wtime = worker_part.get(WTime)
        if wtime is not None and wtime.group is not None and wtime.T is None:
            learned = self.learned.limits(wtime.group)
            if learned is not None:
                resolved = wtime.with_limits(*learned)
                worker_part = Resources(
                    *(resolved if p.key == WTime else p for p in worker_part.parts())
                )
                wtime = resolved
        shape.worker_part = worker_part
        shape.effective = worker_part
        shape.pool_part = Resources(*pool_kinds) if pool_kinds else None
        shape.hard_limit = wtime.T if wtime is not None else None
        shape.version = self._shape_version

    def _ever_fits(self, shape: Shape) -> bool:
        self._refresh(shape)
        if shape.ever_fits_version != self._workers_version:
            assert shape.effective is not None
            fits = self._workers.ever_fits(shape.effective)
            if fits and shape.pool_part is not None:
                fits = self._pools is not None and not self._pools.shortfall(
                    shape.pool_part, total=True
                )
            shape.ever_fits = fits
            shape.ever_fits_version = self._workers_version
        return bool(shape.ever_fits)

    def _fail_unsatisfiable(self, shape: Shape) -> None:
        effective = shape.effective
        assert effective is not None
        pool_part = shape.pool_part
        message = self.explain_unfit(effective if pool_part is None else effective & pool_part)
        worker_short = [w.capacity.shortfall(effective, total=True) for w in self._workers]
        labels: set[str] = set()
        if () not in worker_short:  # no worker could take even the worker part
            labels.update(label for short in worker_short for label in short)
        if pool_part is not None and self._pools is not None:
            labels.update(self._pools.shortfall(pool_part, total=True))
        short = tuple(sorted(labels))
        while (task := shape.head()) is not None:
            self._queue.popleft(shape)
            self._finish(task, outcome.Error(UnsatisfiableError(message, short)))

    def explain_unfit(self, request: Resources) -> str:
        """Why no worker could ever satisfy ``request``, naming the kinds that fall short."""
        if not len(self._workers):
            return f"{request}: no worker is connected"
        lines = [f"{request}: no worker could ever satisfy this request"]
        # Counters the dispatcher pools are drawn from the pools, not from a worker.
        worker_part = Resources(*(p for p in request.parts() if p.key not in self._pool_keys))
        pool_part = Resources(*(p for p in request.parts() if p.key in self._pool_keys))
        for worker in sorted(self._workers, key=lambda w: w.order):
            short = worker.capacity.shortfall(worker_part, total=True)
            totals = ", ".join(
                f"{label} {total:g}" for label, (_, total) in worker.capacity.stat().items()
            )
            fits = f"short of {', '.join(short)}" if short else "could fit it"
            lines.append(f"  {worker.id}: {fits} (has {totals})")
        if self._pools is not None:
            short = self._pools.shortfall(pool_part, total=True)
            pools_short = f", short of {', '.join(short)}" if short else ""
            lines.append(f"  pools: {self._pools}{pools_short}")
        return "\n".join(lines)

    def _place(self) -> None:
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
        assigned = [(p.task, p.worker, p.allocation, p.pool_allocation) for p in placements]
        for task, worker, allocation, pool_allocation in assigned:
            if worker.pipeline:  # before extending, so that tasks can be sent ahead behind it
                self._pipelines.begin(task, worker, allocation, pool_allocation)
        if self._pipelining and self._reservation is None:
            for task in self._pipelines.extend(queue):
                chain = task.chain
                assert chain is not None
                assigned.append((task, chain.worker, chain.allocation, chain.pool_allocation))
        if assigned:
            self._assign(assigned, now)

    def _assign(
        self,
        assigned: list[tuple[Task, WorkerState, Resources, Resources | None]],
        now: float,
    ) -> None:
        """Start tasks on the workers chosen for them, in the allocations made for them."""
        batches: dict[str, list[Task]] = {}
        publish = self.events.active
        for task, worker, allocation, pool_allocation in assigned:
            task.pool_allocation = pool_allocation
            if worker.pipeline and task.chain is None:
                self._pipelines.begin(task, worker, allocation, pool_allocation)
            task.state = TaskState.RUNNING
            task.worker = worker.id
            task.allocation = allocation
            wtime = allocation.get(WTime)
            task.hard_limit = wtime.T if wtime is not None else None
            task.started = now
            task.began = False
            task.attempt += 1
            worker.running[task.id] = task
            batches.setdefault(worker.id, []).append(task)
            if publish:
                cores = allocation.get(Cores)
                gpus = allocation.get(GPU)
                if pool_allocation is not None:
                    allocation = allocation & pool_allocation
                self.events.publish(
                    TaskPlaced(
                        task.id,
                        worker.id,
                        str(allocation),
                        tuple(cores.c) if cores is not None else (),
                        tuple(gpus.ids) if gpus is not None else (),
                        task.attempt,
                    )
                )
        for worker_id, tasks in batches.items():
            self._links[worker_id].run_tasks(tasks)

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the placement loop (and the unsatisfiable-request watch) until cancelled."""
        async with trio.open_nursery() as nursery:
            if self.config.unsatisfiable_grace > 0:
                nursery.start_soon(self._watch_unsatisfiable)
            task_status.started()
            while True:
                await self._wake.wait()
                self._wake = trio.Event()
                self._place()

    async def _watch_unsatisfiable(self) -> None:
        period = min(1.0, self.config.unsatisfiable_grace / 4)
        while True:
            await trio.sleep(period)
            if not len(self._workers):
                continue
            for shape in self._queue.shapes():
                if self._ever_fits(shape):
                    shape.unfit_for = 0.0
                    continue
                shape.unfit_for += period
                if shape.unfit_for >= self.config.unsatisfiable_grace:
                    self._fail_unsatisfiable(shape)

    # -- looking in ---------------------------------------------------------------------------

    def queued(self) -> int:
        """How many tasks wait."""
        return len(self._queue)

    def running(self) -> int:
        """How many tasks run (not counting those pipelined behind a running one)."""
        return sum(len(w.running) for w in self._workers) - self.pipelined()

    def pipelined(self, worker: WorkerState | None = None) -> int:
        """How many tasks wait on a worker (or on ``worker``) behind a running task."""
        first = self._pipelines.is_first
        workers = self._workers if worker is None else [worker]
        return sum(not first(t) for w in workers if w.pipeline for t in w.running.values())

    def explain(self, task: Task) -> str:
        """Why a task is where it is (for ``gl.explain`` and ``grainlike status``)."""
        if task.state is TaskState.RUNNING:
            if not self._pipelines.is_first(task):
                return (
                    f"task {task.id} ({task.name}) waits on {task.worker} behind task "
                    f"{task.after}, to run next with {task.allocation} (pipelined)"
                )
            return f"task {task.id} ({task.name}) runs on {task.worker} with {task.allocation}"
        if task.state is TaskState.DONE:
            return f"task {task.id} ({task.name}) is done"
        request = task.request
        # Pooled counters come from the dispatcher's pools, not from any worker.
        shape_request = Resources(*(p for p in request.parts() if p.key not in self._pool_keys))
        pool_part = Resources(*(p for p in request.parts() if p.key in self._pool_keys))
        if not len(self._workers):
            return f"task {task.id} ({task.name}) waits: no worker is connected"
        reasons = []
        if len(pool_part) and self._pools is not None:
            pools_short = self._pools.shortfall(pool_part)
            if pools_short:
                reasons.append(f"the pools are in use (free too little {', '.join(pools_short)})")
        for worker in sorted(self._workers, key=lambda w: w.order):
            short = worker.capacity.shortfall(shape_request, total=True)
            if short:
                reasons.append(f"{worker.id} can never fit it (short of {', '.join(short)})")
                continue
            now_short = worker.capacity.shortfall(shape_request)
            if not worker.accepting:
                reasons.append(f"{worker.id} is draining")
            elif now_short:
                reasons.append(f"{worker.id} is busy (free too little {', '.join(now_short)})")
            elif self._reservation is not None and self._reservation.worker is worker:
                reasons.append(f"{worker.id} is reserved for task {self._reservation.task.id}")
        waited = trio.current_time() - task.submitted
        head = f"task {task.id} ({task.name}, {request}) has waited {waited:.1f}s"
        return head + ": " + "; ".join(reasons) if reasons else head

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


def _describe(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
