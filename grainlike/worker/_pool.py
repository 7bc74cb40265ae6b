"""The process pool of a worker: warm child processes that run sync functions, one task each.

A child (``_child.py``) is started once and reused; it is pinned to each task's allocation by
the child itself, before the task runs.  The pool grows on demand: a task takes an idle child
or starts one.  Tasks that hold cores never wait here (the dispatcher gives out no more cores
than the worker has, so at most that many such children are busy); tasks without cores share
``extra_children`` more.  A child idle for ``idle_timeout`` seconds is closed.

The parent side watches each task: it kills the child at the hard limit, kills it when the
tree's resident memory exceeds the task's ``Memory`` (with enforcement on), kills it when the
caller cancels, and measures the task's wall time, CPU time and peak resident memory.
A killed or dead child is replaced by the next task that needs one.

Children are started from the worker's main thread (see ``_children.py``) and set their
parent-death signal; each child's process group is also registered with the worker's keeper
(``_keeper.py``), so that what its task started dies with a killed worker too.
"""

from __future__ import annotations

import os
import signal
from typing import Any, Final

import attrs
import msgpack
import outcome
import trio

from .._exceptions import MemoryLimitError, TaskFailedError
from ..resource import GPU, ZERO, Cores, Memory, Resources
from ..wire import Call, Usage, dumps_payload, unpack_outcome
from ._children import Child, ChildDied, why_it_died
from ._context import TaskContext
from ._enforce import kill_process_group, kill_tree, tree_rss
from ._keeper import forget_group, watch_group

__all__ = ["PoolStatistics", "ProcessPool"]

#: How often the pool samples the process tree of each running task (resident memory): a peak
#: that lasts a second is seen, and a task over its limit is killed within this time.
SAMPLE_INTERVAL: Final = 0.25


def _default_extra() -> int:
    return len(os.sched_getaffinity(0))


@attrs.frozen
class PoolStatistics:
    """A snapshot of a pool.

    Attributes:
        alive: Children now running (idle or busy).
        idle: Children waiting for a task.
        started: Children started since the pool was made.
        tasks: Tasks run to their end (with a result, an exception, or a killed child).
    """

    alive: int
    idle: int
    started: int
    tasks: int


@attrs.define(eq=False)
class ProcessPool:
    """Warm child processes for a worker's sync tasks.

    ``serve`` must run while the pool is used: it closes children idle for ``idle_timeout``
    seconds and, when it ends, kills every child.

    Args:
        worker_id: The worker's id (``gl.GVAR.instance`` in the child).
        extra_children: How many children tasks without ``Cores`` may use at once (default:
            the number of cores this process may run on).
        idle_timeout: Seconds after which an idle child is closed.
        sample_interval: Seconds between two samples of each running task's process tree.
    """

    worker_id: str
    extra_children: int = attrs.field(factory=_default_extra)
    idle_timeout: float = 30.0
    sample_interval: float = SAMPLE_INTERVAL
    _idle: list[Child] = attrs.field(init=False, factory=list)
    _alive: set[Child] = attrs.field(init=False, factory=set)
    _extra: trio.Semaphore = attrs.field(init=False)
    _started: int = attrs.field(init=False, default=0)
    _tasks: int = attrs.field(init=False, default=0)
    _allocations: dict[Resources, bytes] = attrs.field(init=False, factory=dict)
    _serving: bool = attrs.field(init=False, default=False)
    _busy: set[Child] = attrs.field(init=False, factory=set)
    #: Set when a child becomes busy, or idle: ``serve``'s two loops wait for these.
    _became_busy: trio.Event = attrs.field(init=False, factory=trio.Event)
    _became_idle: trio.Event = attrs.field(init=False, factory=trio.Event)

    def __attrs_post_init__(self) -> None:
        self._extra = trio.Semaphore(max(1, self.extra_children))

    def statistics(self) -> PoolStatistics:
        """How many children there are, and how many were started."""
        return PoolStatistics(len(self._alive), len(self._idle), self._started, self._tasks)

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Sample busy children, close idle ones after ``idle_timeout``; kill all when cancelled.

        One sampler for all running tasks: a task then waits for its answer with no timer of
        its own, unless it has a hard limit.
        """
        self._serving = True
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._close_idle)
                task_status.started()
                while True:
                    if not self._busy:  # an idle worker is not woken four times a second
                        self._became_busy = trio.Event()
                        await self._became_busy.wait()
                    await trio.sleep(self.sample_interval)
                    for child in list(self._busy):
                        self._sample(child)
        finally:
            self._serving = False
            for child in list(self._alive):
                if child.popen.returncode is None:
                    kill_tree(child.pid)  # all at once: they die in parallel
            for child in list(self._alive):
                await self._discard(child)

    async def _close_idle(self) -> None:
        while True:
            if not self._idle:
                self._became_idle = trio.Event()
                await self._became_idle.wait()
                continue
            oldest = min(child.idle_since for child in self._idle)
            await trio.sleep_until(oldest + self.idle_timeout)
            now = trio.current_time()
            for child in [c for c in self._idle if now - c.idle_since >= self.idle_timeout]:
                self._idle.remove(child)
                await self._discard(child)

    def _sample(self, child: Child) -> None:
        rss = tree_rss(child.pid)
        child.peak = max(child.peak, rss)
        if child.limit is not None and rss > child.limit and child.over is None:
            child.over = rss
            kill_tree(child.pid)  # its task sees the channel end, then why

    async def run(
        self, call: Call, context: TaskContext, hard_limit: float | None
    ) -> tuple[outcome.Outcome[Any], Usage | None]:
        """Run ``call`` (a sync function) in a child under ``context``: its outcome and usage.

        ``trio.Cancelled`` is not captured: the child is killed and the cancellation goes on.
        """
        assert self._serving, "ProcessPool.serve is not running"
        allocation = context.allocation if context.allocation is not None else ZERO
        if allocation.get(Cores) is not None:
            return await self._run(call, context, allocation, hard_limit)
        async with self._extra:
            return await self._run(call, context, allocation, hard_limit)

    async def _run(
        self, call: Call, context: TaskContext, allocation: Resources, hard_limit: float | None
    ) -> tuple[outcome.Outcome[Any], Usage | None]:
        task = f"task {context.task_id} ({call.name})"
        gpus = allocation.get(GPU)
        gpu_ids = tuple(gpus.ids) if gpus is not None else None
        try:
            child = await self._acquire(gpu_ids)
        except ChildDied as error:
            return outcome.Error(TaskFailedError(f"{task}: {error}")), None
        except OSError as error:  # no more processes or files: this task fails, not the worker
            message = f"{task}: cannot start a worker process: {error}"
            return outcome.Error(TaskFailedError(message)), None
        try:
            request = self._request(child, call, context, allocation)
        except Exception as error:
            self._release(child)
            return outcome.Error(TaskFailedError(f"{task}: {error}")), None
        if gpu_ids is not None and child.gpus is None:
            child.gpus = gpu_ids
        finished = False
        try:
            result, usage = await self._watch(child, request, allocation, context, hard_limit, task)
            finished = True
        finally:
            self._tasks += 1
            if not finished:  # cancelled: the child is busy with work nobody wants
                with trio.CancelScope(shield=True):
                    await self._discard(child)
        return result, usage

    def _request(
        self, child: Child, call: Call, context: TaskContext, allocation: Resources
    ) -> bytes:
        try:
            packed = child.packer.pack(call)
        except Exception as error:
            raise ValueError(f"its function or arguments cannot be pickled: {error}") from None
        placed = self._allocations.get(allocation)
        if placed is None:
            if len(self._allocations) > 256:
                self._allocations.clear()
            placed = self._allocations[allocation] = dumps_payload(allocation)
        scratch = None if context.scratch is None else str(context.scratch)
        data: bytes = msgpack.packb(
            [context.task_id, packed, placed, context.worker_id, context.enforce_memory, scratch]
        )
        return data

    async def _watch(
        self,
        child: Child,
        request: bytes,
        allocation: Resources,
        context: TaskContext,
        hard_limit: float | None,
        task: str,
    ) -> tuple[outcome.Outcome[Any], Usage | None]:
        start = trio.current_time()
        memory = allocation.get(Memory)
        child.limit = memory.kib * 1024 if context.enforce_memory and memory is not None else None
        child.peak, child.over = 0, None
        frame: bytes | None = None
        failure: BaseException | None = None
        self._busy.add(child)
        self._became_busy.set()
        try:
            await child.channel.send(request)
            if hard_limit is None:
                frame = await child.channel.receive()
            else:
                with trio.move_on_at(start + hard_limit):
                    frame = await child.channel.receive()
                if frame is None:
                    kill_tree(child.pid)
                    failure = trio.TooSlowError(
                        f"{task} ran past its hard limit of {hard_limit:g}s; its process was killed"
                    )
        except (trio.EndOfChannel, trio.BrokenResourceError, trio.ClosedResourceError) as error:
            failure = error
        except Exception as error:  # a ProtocolError: the stream ended inside a frame
            failure = error
        finally:
            self._busy.discard(child)
        if child.over is not None:  # the sampler killed it
            assert memory is not None
            failure = MemoryLimitError(
                f"{task} used {child.over / 2**30:.2f}G resident memory, more than its "
                f"{memory.M:g}G (Memory request); its process was killed"
            )
            frame = None
        peak = child.peak
        wall = trio.current_time() - start
        if frame is not None and failure is None:
            task_id, ok, payload, cpu, own_peak = msgpack.unpackb(frame)
            assert task_id == context.task_id, f"{task}: the child answered task {task_id}"
            used, child.cpu = max(cpu - child.cpu, 0.0), cpu
            self._release(child)
            usage = Usage(wall, used, max(peak, own_peak))
            return unpack_outcome(ok, payload, task_id=task_id), usage
        used = max(child.cpu_now() - child.cpu, 0.0)
        returncode = await self._discard(child)
        if not isinstance(failure, trio.TooSlowError | MemoryLimitError):
            failure = TaskFailedError(f"{task}: its worker process {why_it_died(returncode)}")
        return outcome.Error(failure), Usage(wall, used, peak)

    async def _acquire(self, gpus: tuple[int, ...] | None) -> Child:
        """An idle child (one that ran the same GPUs, or none, for a GPU task), or a new one."""
        for index in range(len(self._idle) - 1, -1, -1):
            child = self._idle[index]
            if child.exited():
                del self._idle[index]
                self._alive.discard(child)
                kill_process_group(child.pid)  # what it left in its group
                forget_group(child.pid)
                child.close_files()
                continue
            if gpus is not None and child.gpus not in (None, gpus):
                continue
            del self._idle[index]
            return child
        child = Child.spawn()
        watch_group(child.pid)  # its task's processes die with this worker, even by SIGKILL
        self._alive.add(child)
        self._started += 1
        ready = False
        try:
            try:
                word, child.cpu = msgpack.unpackb(await child.channel.receive())
                ready = word == "ready"
            except (trio.EndOfChannel, trio.BrokenResourceError):
                pass
        finally:
            if not ready:
                returncode = await self._discard(child)
        if not ready:
            raise ChildDied(f"its worker process could not start: it {why_it_died(returncode)}")
        return child

    def _release(self, child: Child) -> None:
        child.idle_since = trio.current_time()
        self._idle.append(child)
        self._became_idle.set()

    async def _discard(self, child: Child) -> int:
        """Kill ``child`` (its whole group), wait for it, close its files; its return code."""
        if child.discarded is not None:  # another task is at it (the pool stops as it ends)
            with trio.CancelScope(shield=True):  # it takes milliseconds, at most 5 s
                await child.discarded.wait()
        else:
            child.discarded = trio.Event()
            try:
                if child.popen.returncode is None:
                    kill_tree(child.pid)
                else:
                    # Reaped: its pid may be reused by now, so only its group (which keeps its
                    # id while any member lives) is safe to signal.
                    kill_process_group(child.pid)
                # Shielded, also when the pool is stopping: a killed child ends in milliseconds,
                # and whoever waits on ``discarded`` relies on its files being closed.
                with trio.CancelScope(shield=True), trio.move_on_after(5):
                    await child.wait()
                self._alive.discard(child)
                forget_group(child.pid)
                child.close_files()
            finally:
                child.discarded.set()
        return child.popen.returncode if child.popen.returncode is not None else -signal.SIGKILL
