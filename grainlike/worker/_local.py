"""The worker's task runner: async tasks on its event loop, sync tasks in its process pool.

The embedded worker runs in the dispatcher's own process; the remote worker process runs one
too, behind a reporter that batches messages onto the wire.
"""

from __future__ import annotations

import logging
import tempfile
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import attrs
import outcome
import trio

from .._exceptions import DiskLimitError, TaskCancelledError, TaskFailedError
from ..resource import Disk, Memory
from ..resource._units import format_gb
from ..wire import Call, CallUnpacker, PackedCall, Usage
from ._context import TaskContext, UsageMeter
from ._execute import Assignment, run_work
from ._pool import ProcessPool
from ._scratch import ScratchDirectories

log = logging.getLogger(__name__)

__all__ = ["LocalWorker", "Reporter"]


class Reporter(Protocol):
    """Where a worker reports (the dispatcher, seen from the worker layer)."""

    def task_started(self, worker_id: str, task_id: int, attempt: int) -> None: ...

    def task_done(
        self,
        worker_id: str,
        task_id: int,
        attempt: int,
        result: outcome.Outcome[Any],
        duration: float,
        usage: Usage | None = None,
    ) -> None: ...

    def remove_worker(self, worker_id: str, reason: str, *, lost: bool = True) -> None: ...


@attrs.define(eq=False)
class LocalWorker:
    """A worker inside the dispatcher's process: no serialization, same event loop.

    It implements the dispatcher's worker-link interface (``run_tasks``, ``cancel_task``,
    ``drain``); ``serve`` must be running (it owns the nursery the tasks run in).  The remote
    worker runs its tasks through one too, and so honours ``after``: a task sent ahead waits
    for the task it follows.  In the dispatcher's own process nothing is gained by sending
    tasks ahead, so ``pipeline`` is 0 there.

    A sync function runs in a child of the worker's ``pool`` (``executor="process"``, the
    default) or in a worker thread (``executor="thread"``, at most ``thread_limit`` at once).

    A task whose allocation holds ``Disk`` gets a directory of its own under ``scratch_root``
    (default: the temp dir), removed when it ends.  What a task used is reported with its
    outcome: a pool task's wall time, CPU time and peak resident memory of its child's tree;
    an async or thread task's (whose own use is the worker's and is not told apart) those of
    the processes it ran with ``run_process``, if any; and a ``Disk`` task's peak directory
    size.

    Tasks start in the order they are handed over, every time: each *runner* (a trio task)
    takes the next ready task when it starts, and only then spawns the runner for the one after
    (trio runs the tasks spawned in one batch in either order).  A runner whose task ended goes
    on with the task that follows in the same allocation (a pipelined heir, or the one the
    dispatcher handed over while it reported), so a stream of short tasks costs no trio task
    each.
    """

    worker_id: str
    reporter: Reporter
    enforce_memory: bool = False
    thread_limit: int = 256
    pipeline: int = 0
    scratch_root: Path | None = None
    _nursery: trio.Nursery | None = None
    _scopes: dict[int, trio.CancelScope] = attrs.field(factory=dict)
    #: Per running thread task, the scope that stops waiting for its thread, and its name.
    _threads: dict[int, tuple[trio.CancelScope, str]] = attrs.field(factory=dict)
    _next: dict[int, Assignment] = attrs.field(factory=dict)
    _ready: deque[Assignment] = attrs.field(factory=deque)
    _spawning: bool = False
    _reporting: bool = False
    _draining: str | None = None
    _calls: CallUnpacker = attrs.field(factory=CallUnpacker)
    _limiter: trio.CapacityLimiter = attrs.field(init=False)
    _pool: ProcessPool = attrs.field(init=False)
    _scratch: ScratchDirectories = attrs.field(init=False)
    #: What the processes of running async and thread tasks used, by task id.
    _meters: dict[int, UsageMeter] = attrs.field(init=False, factory=dict)

    def __attrs_post_init__(self) -> None:
        self._limiter = trio.CapacityLimiter(self.thread_limit)
        self._pool = ProcessPool(self.worker_id)
        root = self.scratch_root if self.scratch_root is not None else tempfile.gettempdir()
        self._scratch = ScratchDirectories(Path(root))

    @property
    def pool(self) -> ProcessPool:
        """The worker processes that run its sync tasks."""
        return self._pool

    @property
    def scratch(self) -> ScratchDirectories:
        """The directories of its running ``Disk`` tasks."""
        return self._scratch

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the nursery tasks run in, and the process pool, until cancelled.

        When it ends, every task is cancelled and every pool child killed.
        """
        async with trio.open_nursery() as nursery:
            await nursery.start(self._pool.serve)
            await nursery.start(self._scratch.serve)
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    def run_tasks(self, tasks: Sequence[Assignment]) -> None:
        """Start the tasks in order (a task with ``after`` once that one has ended)."""
        assert self._nursery is not None, "LocalWorker.serve is not running"
        for task in tasks:
            # The scope exists before the task first runs, so a cancel that arrives in between
            # is not lost.
            self._scopes[task.id] = trio.CancelScope()
            after = task.after
            if after is not None and after in self._scopes:
                self._next[after] = task
            else:
                self._ready.append(task)
        if not self._reporting:  # a runner that is reporting takes the next one itself
            self._spawn()

    def _spawn(self) -> None:
        """Make sure a runner is on its way for the ready tasks (one at a time: see above)."""
        if self._ready and not self._spawning:
            assert self._nursery is not None
            self._spawning = True
            self._nursery.start_soon(self._runner)

    async def _runner(self) -> None:
        self._spawning = False
        if not self._ready:
            return  # a runner that finished its task took it meanwhile
        task: Assignment | None = self._ready.popleft()
        self._spawn()
        while task is not None:
            await self._run(task)
            task = self._next.pop(task.id, None)
            if task is None and self._ready:
                task = self._ready.popleft()
            self._spawn()
        if self._draining is not None and not self._scopes:
            self.reporter.remove_worker(self.worker_id, self._draining, lost=False)

    def busy(self) -> bool:
        """Whether tasks run or wait here."""
        return bool(self._scopes)

    def cancel_task(self, task_id: int) -> None:
        """Cancel a running task; it is still reported done, which frees its resources."""
        scope = self._scopes.get(task_id)
        if scope is not None:
            scope.cancel()

    def let_go_of_threads(self, reason: str) -> None:
        """Stop waiting for the threads of running thread tasks, which Python cannot stop,
        before the worker cancels its tasks: so that a worker whose dispatcher is gone can
        say so and reconnect (or leave) now, not when the longest of them returns.

        Each thread runs on, holding its place in the thread limit, and its result is
        dropped (the dispatcher counts the task as lost with its worker).
        """
        for task_id, (let_go, name) in self._threads.items():
            log.warning(
                "worker %s: task %d (%s) runs on in its thread, which cannot be stopped (%s); "
                "its result will be dropped",
                self.worker_id,
                task_id,
                name,
                reason,
            )
            let_go.cancel()

    def drain(self, reason: str) -> None:
        """Take no new tasks (the dispatcher stops placing) and leave when the last one ends."""
        self._draining = reason
        if not self._scopes:
            self.reporter.remove_worker(self.worker_id, reason, lost=False)

    async def _run(self, task: Assignment) -> None:
        task_id, attempt, hard_limit = task.id, task.attempt, task.hard_limit
        work: Call | PackedCall = task.work
        if isinstance(work, PackedCall):  # a subtask a remote worker submitted, as it sent it
            work = self._calls.unpack(work.data, task_id=task_id)
        scope = self._scopes[task_id]
        allocation = task.granted
        assert allocation is not None, "a task is handed over with its allocation"
        in_pool = not (work.is_async or work.executor == "thread")
        directory: Path | None = None
        result: outcome.Outcome[Any] | None = None
        disk = allocation.get(Disk)
        over_disk: list[int] = []  # the size a walk found over the label, if one did
        if disk is not None:
            limit = None if disk.group is None else disk.kib * 1024  # a learned label holds

            def over(size: int) -> None:
                over_disk.append(size)
                scope.cancel()

            try:
                directory = self._scratch.create(task_id, limit, over)
            except OSError as error:  # the root is gone, full or read-only: this task fails
                message = f"task {task_id}: cannot make its scratch directory: {error}"
                result = outcome.Error(TaskFailedError(message))
        meters = None if in_pool else self._meters
        enforce = self.enforce_memory
        if not enforce:
            memory = allocation.get(Memory)
            enforce = memory is not None and memory.group is not None  # a learned label
        context = TaskContext(allocation, self.worker_id, task_id, enforce, directory, meters)
        reporter = self.reporter
        clock = trio.lowlevel.current_clock()
        start = clock.current_time()
        usage: Usage | None = None
        peak_disk: int | None = None
        try:
            with scope:
                await trio.lowlevel.checkpoint_if_cancelled()  # cancelled before it began: skip it
                reporter.task_started(self.worker_id, task_id, attempt)
                if result is None:  # else it failed before it could run
                    if in_pool:
                        result, usage = await self._pool.run(work, context, hard_limit)
                    elif work.is_async:
                        result = await run_work(work, context, hard_limit, self._limiter)
                    else:
                        let_go = trio.CancelScope()
                        self._threads[task_id] = let_go, work.name
                        try:
                            result = await run_work(
                                work, context, hard_limit, self._limiter, let_go
                            )
                        finally:
                            del self._threads[task_id]
        finally:
            if directory is not None:
                # Whatever the outcome, and however the worker stops: the directory goes.
                with trio.CancelScope(shield=True):
                    try:
                        peak_disk = await self._scratch.finish(directory)
                    except OSError as error:
                        message = f"task {task_id}: its scratch directory stayed: {error}"
                        result = outcome.Error(TaskFailedError(message))
        del self._scopes[task_id]
        if over_disk:
            assert disk is not None
            reached, label = format_gb(over_disk[0] / 2**30), format_gb(disk.gb)
            result = outcome.Error(
                DiskLimitError(
                    f"task {task_id} ({work.name}): its scratch directory reached {reached}, "
                    f"more than its {label} (Disk request); the task was stopped"
                )
            )
        elif scope.cancelled_caught or result is None:
            result = outcome.Error(TaskCancelledError(f"task {task_id} was cancelled"))
        duration = clock.current_time() - start
        meter = self._meters.pop(task_id, None) if self._meters else None
        if meter is not None and meter.processes:
            usage = Usage(duration, meter.cpu, meter.peak_rss)
        if peak_disk is not None:
            usage = (
                Usage(duration, 0.0, 0, peak_disk)
                if usage is None
                else attrs.evolve(usage, peak_disk=peak_disk)
            )
        self._reporting = True
        try:
            reporter.task_done(self.worker_id, task_id, attempt, result, duration, usage)
        finally:
            self._reporting = False
