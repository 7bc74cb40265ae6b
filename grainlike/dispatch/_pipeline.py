"""Pipelining: queued tasks wait on a remote worker behind a running task of the same shape.

A round trip to a remote worker costs far more than a trivial task, so a worker that gets one
task per free core sits idle between a result and the next task.  A *chain* keeps the next few
tasks of the same shape on the worker already: each starts there as soon as the one before it
ends, in the same allocation, and the dispatcher tops the chain up as results come back.

How many tasks wait in a chain follows from how long the shape's tasks were measured to take:
enough to cover ``window`` seconds of work, at most the worker's ``pipeline``.  A shape whose
tasks take longer than the window is not chained at all: a long task gains nothing from it and
would lose load balance (a task sent ahead cannot move to a worker that frees up or joins).
A chain is topped up only once half of its waiting tasks have started, so that each message
to a worker carries many tasks.

Chaining follows the queue order (a shape is chained only while every shape before it is
exhausted) and never happens while a task holds a reservation.
Nothing here awaits or reads a clock, like ``plan``.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator

import attrs

from ._placement import Placement
from ._queue import TaskQueue
from ._records import Chain, ShapeKey, Task, WorkerState

__all__ = ["Pipelines"]

# Weight of the newest duration in a shape's moving average.
_SMOOTHING = 0.2
# Durations are kept for this many shapes at most (shapes long gone are forgotten).
_MAX_SHAPES = 4096


@attrs.define(eq=False)
class Pipelines:
    """Chains that may take more tasks, by shape, and how long each shape's tasks take.

    ``window``: seconds of work (by the shape's mean duration) to keep waiting per allocation.
    """

    window: float
    _open: dict[ShapeKey, dict[Chain, None]] = attrs.field(factory=dict)
    _durations: dict[ShapeKey, float] = attrs.field(factory=dict)
    _order: Iterator[int] = attrs.field(factory=itertools.count)

    def begin(self, placement: Placement) -> None:
        """A task was placed on a pipelining worker: later tasks may chain behind it, when its
        shape's tasks are short enough to chain at all (else no chain is made)."""
        task = placement.task
        key = task.key
        if not self.depth(key, placement.worker):
            return
        chain = Chain(placement.worker, key, placement.allocation, placement.pool_allocation)
        chain.tasks.append(task)
        task.chain = chain
        self._open.setdefault(key, {})[chain] = None

    def leave(self, task: Task) -> Chain | None:
        """Take ``task`` out of its chain; the chain is returned when it is now empty (its
        allocation is free), else ``None``.  ``task`` must be in a chain."""
        chain = task.chain
        assert chain is not None
        task.chain = None
        tasks = chain.tasks
        if tasks[0] is task:
            tasks.popleft()
        else:
            tasks.remove(task)
        if tasks:
            if chain.worker.accepting and self._wants_more(chain):
                self._open.setdefault(chain.key, {})[chain] = None
            return None
        self._close(chain)
        return chain

    def record(self, task: Task, duration: float) -> None:
        """Fold a finished task's duration into its shape's moving average."""
        key = task.key
        durations = self._durations
        mean = durations.get(key)
        if mean is None:
            if len(durations) >= _MAX_SHAPES:
                durations.clear()
            durations[key] = duration
        else:
            durations[key] = mean + _SMOOTHING * (duration - mean)

    def depth(self, key: ShapeKey, worker: WorkerState) -> int:
        """How many tasks of this shape may wait behind a running one on ``worker``."""
        mean = self._durations.get(key)
        if mean is None:  # not measured yet
            return 0
        if mean <= 0:
            return worker.pipeline
        return min(worker.pipeline, int(self.window / mean))

    def _wants_more(self, chain: Chain) -> bool:
        """Whether at most half of the tasks a chain may hold wait in it."""
        return len(chain.tasks) - 1 <= self.depth(chain.key, chain.worker) // 2

    def extend(self, queue: TaskQueue) -> list[Placement]:
        """Chain queued tasks, in queue order, onto open chains of their shape.

        Stops at the first shape that still has queued tasks after chaining (later shapes may
        not overtake it).  Each chosen task is taken off the queue and appended to the chain
        with the fewest waiting tasks; ``task.after`` names the task it waits for.  The
        placements are in the chain's allocation.
        """
        chained: list[Placement] = []
        if not self._open:
            return chained
        for shape in queue.shapes():
            head = shape.head()
            if head is None:
                continue
            key = shape.key
            candidates = self._open.get(key)
            if not candidates:
                break
            heap = []
            for chain in list(candidates):
                # Each chain fills to its depth now; it is open again once half of it started.
                del candidates[chain]
                depth = self.depth(key, chain.worker)
                if len(chain.tasks) <= depth and chain.worker.accepting:
                    heap.append((len(chain.tasks), next(self._order), chain, depth))
            heapq.heapify(heap)
            while head is not None and heap:
                length, _, chain, depth = heapq.heappop(heap)
                task = queue.popleft(shape)
                task.after = chain.tasks[-1].id
                task.chain = chain
                chain.tasks.append(task)
                chained.append(
                    Placement(task, chain.worker, chain.allocation, chain.pool_allocation)
                )
                if length + 1 <= depth:
                    heapq.heappush(heap, (length + 1, next(self._order), chain, depth))
                head = shape.head()
            for _, _, chain, _ in heap:  # not filled up: still open
                candidates[chain] = None
            if not candidates:
                del self._open[key]
            if head is not None:
                break
        return chained

    def _close(self, chain: Chain) -> None:
        candidates = self._open.get(chain.key)
        if candidates is not None:
            candidates.pop(chain, None)
            if not candidates:
                del self._open[chain.key]

    def forget_worker(self, worker: WorkerState) -> None:
        """A worker left or drains: chain nothing more onto it."""
        for key in list(self._open):
            candidates = self._open[key]
            for chain in [c for c in candidates if c.worker is worker]:
                del candidates[chain]
            if not candidates:
                del self._open[key]
