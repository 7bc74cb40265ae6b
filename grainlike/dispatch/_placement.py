"""Placement: which queued task runs where, decided from the queue and the capacities.

Deterministic and trio-free: nothing here awaits or reads a clock.  ``plan`` is given ``now``;
it pops what it places off the queue and allocates from the capacities and pools it is given,
so it can be tested and benchmarked without an event loop.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterator

import attrs

from ..resource import Cores, Resources, WTime
from ._pools import Pools
from ._queue import Shape, TaskQueue
from ._records import Task, TaskState, WorkerState

__all__ = ["Placement", "Reservation", "WorkerIndex", "plan"]


@attrs.frozen
class Reservation:
    """Resources held back for a task that waited too long: only tasks that end before
    ``start`` (by their known hard limit) may still be placed on ``worker``."""

    task: Task
    worker: WorkerState
    start: float


@attrs.frozen
class Placement:
    """One decision: ``task`` runs on ``worker`` with ``allocation`` (and ``pool_allocation``)."""

    task: Task
    worker: WorkerState
    allocation: Resources
    pool_allocation: Resources | None


class _CapacityClass:
    """Workers whose total capacity is the same: one eligibility check serves them all."""

    __slots__ = ("buckets", "eligible", "free_counts", "total")

    def __init__(self, total: Resources) -> None:
        self.total = total
        #: Workers by free core count; ``free_counts`` holds the counts in order, so that best
        #: fit walks them without sorting.
        self.buckets: dict[int, dict[WorkerState, None]] = {}
        self.free_counts: list[int] = []
        self.eligible: dict[int, tuple[Resources, bool]] = {}

    def put(self, worker: WorkerState) -> None:
        bucket = self.buckets.get(worker.free_cores)
        if bucket is None:
            bucket = self.buckets[worker.free_cores] = {}
            bisect.insort(self.free_counts, worker.free_cores)
        bucket[worker] = None

    def take(self, worker: WorkerState) -> None:
        free = worker.free_cores
        bucket = self.buckets[free]
        del bucket[worker]
        if not bucket:
            del self.buckets[free]
            del self.free_counts[bisect.bisect_left(self.free_counts, free)]

    def can_ever_fit(self, request: Resources) -> bool:
        cached = self.eligible.get(id(request))
        if cached is not None and cached[0] is request:
            return cached[1]
        static = Resources(*(kind for kind in request.parts() if not isinstance(kind, WTime)))
        fits = not self.total.shortfall(static, total=True)
        if len(self.eligible) > 4096:  # requests of shapes long gone
            self.eligible.clear()
        self.eligible[id(request)] = (request, fits)
        return fits


class WorkerIndex:
    """Workers grouped by total capacity, then bucketed by free core count, so best fit skips
    workers that could never fit a request and visits the rest from the fullest up."""

    __slots__ = ("_classes", "_pipelining", "_workers")

    def __init__(self) -> None:
        self._workers: dict[str, tuple[WorkerState, _CapacityClass]] = {}
        self._classes: dict[str, _CapacityClass] = {}
        self._pipelining = 0

    @property
    def pipelining(self) -> bool:
        """Whether any connected worker takes pipelined tasks."""
        return self._pipelining > 0

    def __len__(self) -> int:
        return len(self._workers)

    def __iter__(self) -> Iterator[WorkerState]:
        return (worker for worker, _ in self._workers.values())

    def get(self, worker_id: str) -> WorkerState | None:
        """The worker with this id, if connected."""
        entry = self._workers.get(worker_id)
        return entry[0] if entry is not None else None

    def add(self, worker: WorkerState) -> None:
        """Index a new worker (its capacity must be fresh: nothing allocated yet)."""
        # Walltime differs from worker to worker and changes by the second: it is checked per
        # worker, never per class.
        static = Resources(
            *(kind for kind in worker.capacity.parts() if not isinstance(kind, WTime))
        )
        signature = str(static)
        group = self._classes.get(signature)
        if group is None:
            group = self._classes[signature] = _CapacityClass(static)
        self._workers[worker.id] = (worker, group)
        group.put(worker)
        self._pipelining += worker.pipeline > 0

    def remove(self, worker: WorkerState) -> None:
        """Forget a worker."""
        _, group = self._workers.pop(worker.id)
        self._pipelining -= worker.pipeline > 0
        group.take(worker)

    def allocate(self, worker: WorkerState, request: Resources) -> Resources:
        """Allocate on ``worker`` and keep the index current."""
        allocation = worker.capacity.alloc(request)
        cores = allocation.get(Cores)
        # A task without cores leaves the worker in its bucket: moving it to the back spreads
        # such tasks over equal workers instead of piling them on the first.
        self._move(worker, worker.free_cores - (cores.N if cores is not None else 0))
        return allocation

    def release(self, worker: WorkerState, allocation: Resources) -> None:
        """Return an allocation to ``worker`` and keep the index current."""
        worker.capacity.dealloc(allocation)
        cores = allocation.get(Cores)
        if cores is not None:
            self._move(worker, worker.free_cores + cores.N)

    def _move(self, worker: WorkerState, free: int) -> None:
        group = self._workers[worker.id][1]
        group.take(worker)
        worker.free_cores = free
        group.put(worker)

    def best_fit(
        self,
        request: Resources,
        allowed: Callable[[WorkerState], bool] | None = None,
        blocked: set[WorkerState] | None = None,
    ) -> WorkerState | None:
        """The accepting worker that fits ``request`` now with the fewest free cores left over.

        Ties go to the worker that has been in its bucket longest (the one placed on least
        recently), so the choice is deterministic for the same history and tasks that take no
        cores go round the equal workers.  Workers found not to fit are added to
        ``blocked`` and skipped on later calls (within one placement pass capacities only
        shrink, so they cannot start to fit).
        """
        cores = request.get(Cores)
        need = cores.N if cores is not None else 0
        best: WorkerState | None = None
        for group in self._classes.values():
            if not group.buckets or not group.can_ever_fit(request):
                continue
            buckets, counts = group.buckets, group.free_counts
            for free in counts[bisect.bisect_left(counts, need) :]:
                if best is not None and free >= best.free_cores:
                    break
                found = None
                for worker in buckets[free]:
                    if blocked is not None and worker in blocked:
                        continue
                    if not worker.accepting or (allowed is not None and not allowed(worker)):
                        continue
                    if worker.capacity.request(request):
                        found = worker
                        break
                    if blocked is not None:
                        blocked.add(worker)
                if found is not None:
                    best = found
                    break
        return best

    def ever_fits(self, request: Resources) -> bool:
        """Whether any connected worker's total capacity could satisfy ``request``."""
        wtime = request.get(WTime)
        for group in self._classes.values():
            if not group.buckets or not group.can_ever_fit(request):
                continue
            if wtime is None:
                return True
            # Walltime is per worker (classes leave it out): some worker must have enough left.
            for bucket in group.buckets.values():
                if any(not w.capacity.shortfall(wtime, total=True) for w in bucket):
                    return True
        return False


def estimated_free_at(worker: WorkerState) -> float:
    """When everything now running on ``worker`` has ended by its hard limit (inf if unknown)."""
    latest = 0.0
    for task in worker.running.values():
        if task.hard_limit is None or task.assigned_at is None:
            return math.inf
        chain = task.chain
        if chain is None:
            latest = max(latest, task.assigned_at + task.hard_limit)
        elif chain.runs_now(task):  # the tasks waiting behind it run one after another
            latest = max(latest, task.assigned_at + task.hard_limit * len(chain.tasks))
    return latest


def plan(
    queue: TaskQueue,
    workers: WorkerIndex,
    *,
    pools: Pools,
    now: float,
    starvation_bound: float,
    reservation: Reservation | None = None,
    shapes: list[Shape] | None = None,
) -> tuple[list[Placement], Reservation | None]:
    """Place every queued task that fits now; return the placements and the reservation in force.

    Shapes are visited in queue order.  A shape whose head does not fit is skipped, so a large
    task never blocks smaller ones behind it — until its head has waited ``starvation_bound``
    seconds: then its best worker is reserved, and only tasks whose hard limit ends before that
    worker frees up (``now + T <= start``) may still backfill there.

    Each shape must have ``effective`` and ``pool_part`` filled in by the caller; ``shapes``
    (the queue's shapes in order) may be passed when the caller already has them.
    """
    placements: list[Placement] = []
    if reservation is not None and (
        reservation.task.state is not TaskState.QUEUED or reservation.task.allocation is not None
    ):
        reservation = None  # its task was placed, or cancelled while it waited
    for shape in queue.shapes() if shapes is None else shapes:
        request = shape.effective
        assert request is not None
        blocked: set[WorkerState] = set()
        head = shape.head()
        while head is not None:
            if reservation is not None and reservation.task is head:
                allowed = None
            elif reservation is not None:
                allowed = _backfill_rule(reservation, now, shape)
            else:
                allowed = None
            pool_part = shape.pool_part
            if pool_part is not None and not pools.request(pool_part):
                break
            worker = workers.best_fit(request, allowed, blocked)
            if worker is None:
                if (
                    reservation is None
                    and now - head.submitted >= starvation_bound
                    and workers.ever_fits(request)
                ):
                    reservation = _reserve(head, request, workers)
                break
            task = queue.popleft(shape)
            allocation = workers.allocate(worker, request)
            pool_allocation = pools.alloc(pool_part) if pool_part is not None else None
            placements.append(Placement(task, worker, allocation, pool_allocation))
            if reservation is not None and reservation.task is task:
                reservation = None
            head = shape.head()
    return placements, reservation


def _backfill_rule(
    reservation: Reservation, now: float, shape: Shape
) -> Callable[[WorkerState], bool]:
    ends = now + shape.hard_limit if shape.hard_limit is not None else math.inf

    def allowed(worker: WorkerState) -> bool:
        # When the reserved worker's free time is unknown (start is inf), nothing may backfill
        # there: a task without a known end could hold it forever.
        return worker is not reservation.worker or ends <= reservation.start < math.inf

    return allowed


def _reserve(task: Task, request: Resources, workers: WorkerIndex) -> Reservation | None:
    candidates = [
        w for w in workers if w.accepting and not w.capacity.shortfall(request, total=True)
    ]
    if not candidates:
        return None
    best = min(candidates, key=lambda w: (estimated_free_at(w), -w.free_cores, w.order))
    return Reservation(task, best, estimated_free_at(best))
