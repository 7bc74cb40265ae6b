"""Placement: best fit over a hand-built WorkerIndex, and the pure ``plan`` (no trio, no clock).

Every test here is synchronous: ``plan`` runs outside any trio run.
"""

from __future__ import annotations

import math

import pytest

from grainlike import Cores, Counter, Memory, Resources, WTime, parse_resources
from grainlike.dispatch._placement import (
    Placement,
    Reservation,
    WorkerIndex,
    estimated_free_at,
    plan,
)
from grainlike.dispatch._pools import Pools
from grainlike.dispatch._queue import Shape, TaskQueue
from grainlike.dispatch._records import Task, TaskState, WorkerState
from grainlike.resource import ZERO, Kind, as_resources
from grainlike.wire import Call

#: The work of tasks that are placed but never run.
NEVER_RUN = Call(print)


class NoLink:
    """Placement never talks to workers."""

    pipeline = 0

    def run_tasks(self, tasks: object) -> None:
        raise AssertionError("placement never starts tasks")

    def cancel_task(self, task_id: int) -> None:
        raise AssertionError("placement never cancels tasks")

    def drain(self, reason: str) -> None:
        raise AssertionError("placement never drains workers")


def make_worker(worker_id: str, capacity: str, order: int = 0) -> WorkerState:
    return WorkerState(worker_id, parse_resources(capacity, capacity=True), NoLink(), order)


def make_index(*workers: WorkerState) -> WorkerIndex:
    index = WorkerIndex()
    for worker in workers:
        index.add(worker)
    return index


def prepare(shape: Shape, pool_labels: tuple[str, ...]) -> None:
    """Fill in what the dispatcher fills in before calling ``plan``."""
    parts = shape.request.parts()
    shape.effective = Resources(*(p for p in parts if p.label not in pool_labels))
    pooled = [p for p in parts if p.label in pool_labels]
    shape.pool_part = Resources(*pooled) if pooled else None
    wtime = shape.request.get(WTime)
    shape.hard_limit = wtime.T if wtime is not None else None


class Queue:
    """A task queue whose shapes are prepared as the dispatcher prepares them."""

    def __init__(self, pool_labels: tuple[str, ...] = ()) -> None:
        self.tasks = TaskQueue()
        self.pool_labels = pool_labels
        self.next_id = 0

    def add(self, request: Kind | Resources, *, submitted: float = 0.0, priority: int = 0) -> Task:
        self.next_id += 1
        task = Task(self.next_id, as_resources(request), NEVER_RUN, f"t{self.next_id}", priority)
        task.submitted = submitted
        prepare(self.tasks.push(task), self.pool_labels)
        return task


def run_on(
    index: WorkerIndex,
    worker: WorkerState,
    request: Kind | Resources,
    *,
    started: float = 0.0,
    hard_limit: float | None = None,
) -> Task:
    """A task already running on ``worker``, as the dispatcher records one."""
    running = Task(1000 + len(worker.running), as_resources(request), NEVER_RUN, "running")
    running.state = TaskState.RUNNING
    running.allocation = index.allocate(worker, as_resources(request))
    running.assigned_at = started
    running.hard_limit = hard_limit
    worker.running[running.id] = running
    return running


def plan_at(
    queue: Queue,
    index: WorkerIndex,
    now: float = 0.0,
    *,
    pools: Pools | None = None,
    starvation_bound: float = 30.0,
    reservation: Reservation | None = None,
) -> tuple[list[Placement], Reservation | None]:
    return plan(
        queue.tasks,
        index,
        pools=pools if pools is not None else Pools(ZERO),
        now=now,
        starvation_bound=starvation_bound,
        reservation=reservation,
    )


def best(index: WorkerIndex, request: Kind | Resources) -> str | None:
    worker = index.best_fit(as_resources(request))
    return worker.id if worker is not None else None


def placed(placements: list[Placement]) -> list[tuple[int, str]]:
    return [(p.task.id, p.worker.id) for p in placements]


# -- best fit ---------------------------------------------------------------------------------


def test_best_fit_chooses_the_worker_with_the_fewest_free_cores_that_fits() -> None:
    index = make_index(
        make_worker("eight", "cores:8"),
        make_worker("two", "cores:2"),
        make_worker("four", "cores:4"),
    )
    assert best(index, Cores(2)) == "two"
    assert best(index, Cores(3)) == "four"
    assert best(index, Cores(5)) == "eight"
    assert best(index, Cores(9)) is None


def test_best_fit_counts_free_cores_not_total_cores() -> None:
    big, small = make_worker("big", "cores:8"), make_worker("small", "cores:4")
    index = make_index(big, small)
    run_on(index, big, Cores(7))
    assert big.free_cores == 1
    assert index.best_fit(as_resources(Cores(1))) is big
    assert index.best_fit(as_resources(Cores(2))) is small


def test_best_fit_skips_a_worker_whose_cores_fit_but_memory_does_not() -> None:
    index = make_index(make_worker("lean", "cores:2,mem:1G"), make_worker("fat", "cores:8,mem:64G"))
    assert best(index, Cores(1) & Memory(16)) == "fat"


def test_best_fit_skips_a_worker_that_is_not_accepting() -> None:
    draining, other = make_worker("draining", "cores:2"), make_worker("other", "cores:8")
    index = make_index(draining, other)
    draining.accepting = False
    assert index.best_fit(as_resources(Cores(1))) is other


def test_release_makes_the_cores_available_again() -> None:
    worker = make_worker("w", "cores:2")
    index = make_index(worker)
    running = run_on(index, worker, Cores(2))
    assert index.best_fit(as_resources(Cores(1))) is None
    assert running.allocation is not None
    index.release(worker, running.allocation)
    assert worker.free_cores == 2
    assert index.best_fit(as_resources(Cores(2))) is worker


def test_ever_fits_compares_with_total_capacity_not_what_is_free() -> None:
    worker = make_worker("w", "cores:2,mem:4G")
    index = make_index(worker)
    run_on(index, worker, Cores(2))
    assert index.ever_fits(as_resources(Cores(2)))
    assert not index.ever_fits(as_resources(Cores(3)))
    assert not index.ever_fits(Cores(1) & Memory(8))


def test_ever_fits_needs_a_worker_with_enough_walltime_left() -> None:
    index = make_index(make_worker("short", "cores:2,wtime:1h"), make_worker("none", "cores:8"))
    assert index.ever_fits(Cores(1) & WTime(T="2h", softT="50m"))
    assert not index.ever_fits(Cores(1) & WTime(T="2h"))
    assert not index.ever_fits(Cores(4) & WTime(T="10m"))


# -- plan: no head-of-line blocking, priorities ------------------------------------------------


def test_a_task_that_cannot_fit_does_not_block_smaller_tasks_behind_it() -> None:
    index = make_index(make_worker("w", "cores:2"))
    queue = Queue()
    big = queue.add(Cores(4))
    small = [queue.add(Cores(1)) for _ in range(3)]
    placements, reservation = plan_at(queue, index)
    assert placed(placements) == [(small[0].id, "w"), (small[1].id, "w")]
    assert reservation is None
    assert [task.id for task in queue.tasks] == [big.id, small[2].id]


def test_higher_priority_is_placed_first_then_fifo_within_a_priority() -> None:
    index = make_index(make_worker("w", "cores:3"))
    queue = Queue()
    low = queue.add(Cores(1), priority=0)
    high_1 = queue.add(Cores(1), priority=2)
    mid = queue.add(Cores(1), priority=1)
    high_2 = queue.add(Cores(1), priority=2)
    placements, _ = plan_at(queue, index)
    assert [p.task for p in placements] == [high_1, high_2, mid]
    assert [task.id for task in queue.tasks] == [low.id]


def test_each_placement_gets_distinct_cores() -> None:
    index = make_index(make_worker("w", "cores:4"))
    queue = Queue()
    for request in (Cores(2), Cores(1), Cores(1)):
        queue.add(request)
    placements, _ = plan_at(queue, index)
    cores = [core for p in placements for core in p.allocation.c]
    assert sorted(cores) == [0, 1, 2, 3]


def test_plan_changes_nothing_when_nothing_fits() -> None:
    worker = make_worker("w", "cores:2,mem:4G")
    index = make_index(worker)
    queue = Queue()
    queue.add(Cores(3))
    queue.add(Cores(1) & Memory(8))
    before = worker.capacity.stat()
    placements, reservation = plan_at(queue, index, now=1.0)
    assert placements == []
    assert reservation is None
    assert worker.capacity.stat() == before
    assert len(queue.tasks) == 2


def test_plan_spreads_tasks_over_workers_by_best_fit() -> None:
    index = make_index(make_worker("two", "cores:2"), make_worker("four", "cores:4"))
    queue = Queue()
    first = queue.add(Cores(3))
    second = queue.add(Cores(2))
    third = queue.add(Cores(1))
    placements, _ = plan_at(queue, index)
    assert placed(placements) == [(first.id, "four"), (second.id, "two"), (third.id, "four")]


# -- plan: pools --------------------------------------------------------------------------------


def test_a_pool_limits_how_many_tasks_holding_its_counter_run() -> None:
    index = make_index(make_worker("a", "cores:4"), make_worker("b", "cores:4"))
    pools = Pools(Resources(Counter("license", 2)))
    queue = Queue(pool_labels=("license",))
    tasks = [queue.add(Cores(1) & Counter("license", 1)) for _ in range(3)]
    placements, _ = plan_at(queue, index, pools=pools)
    assert [p.task for p in placements] == tasks[:2]
    assert all(p.pool_allocation == Counter("license", 1) for p in placements)
    assert all(p.allocation == Cores(p.allocation.c) for p in placements)
    assert pools.capacity.stat() == {"license": (0, 2)}


def test_a_pooled_counter_is_never_taken_from_a_worker() -> None:
    index = make_index(make_worker("w", "cores:2,license:5"))
    queue = Queue(pool_labels=("license",))
    queue.add(Cores(1) & Counter("license", 1))
    placements, _ = plan_at(queue, index, pools=None)
    assert placements == []


# -- plan: starvation, reservation and backfill -------------------------------------------------


def test_a_task_that_waited_past_the_bound_gets_a_reservation() -> None:
    worker = make_worker("w", "cores:2")
    index = make_index(worker)
    run_on(index, worker, Cores(1), started=0.0, hard_limit=100.0)
    queue = Queue()
    big = queue.add(Cores(2), submitted=0.0)
    placements, reservation = plan_at(queue, index, now=29.0, starvation_bound=30.0)
    assert (placements, reservation) == ([], None)
    placements, reservation = plan_at(queue, index, now=30.0, starvation_bound=30.0)
    assert placements == []
    assert reservation == Reservation(big, worker, 100.0)


def test_only_tasks_that_end_before_the_reservation_backfill() -> None:
    worker = make_worker("w", "cores:3,wtime:inf")
    index = make_index(worker)
    run_on(index, worker, Cores(1), started=0.0, hard_limit=100.0)
    queue = Queue()
    big = queue.add(Cores(3), submitted=0.0)
    no_limit = queue.add(Cores(1), submitted=40.0)
    too_long = queue.add(Cores(1) & WTime(T=60), submitted=40.0)
    fits_before = queue.add(Cores(1) & WTime(T=50), submitted=40.0)
    placements, reservation = plan_at(queue, index, now=45.0, starvation_bound=30.0)
    assert placed(placements) == [(fits_before.id, "w")]
    assert reservation is not None and reservation.task is big
    assert [task.id for task in queue.tasks] == [big.id, no_limit.id, too_long.id]


def test_without_a_known_end_on_the_reserved_worker_nothing_backfills_there() -> None:
    worker = make_worker("w", "cores:2,wtime:inf")
    index = make_index(worker)
    run_on(index, worker, Cores(1), started=0.0, hard_limit=None)
    queue = Queue()
    queue.add(Cores(2), submitted=0.0)
    queue.add(Cores(1), submitted=40.0)
    queue.add(Cores(1) & WTime(T=1), submitted=40.0)
    placements, reservation = plan_at(queue, index, now=45.0, starvation_bound=30.0)
    assert placements == []
    assert reservation is not None and reservation.start == math.inf


def test_tasks_still_backfill_on_workers_that_are_not_reserved() -> None:
    reserved, other = make_worker("reserved", "cores:2", 1), make_worker("other", "cores:1", 2)
    index = make_index(reserved, other)
    run_on(index, reserved, Cores(1), started=0.0, hard_limit=50.0)
    queue = Queue()
    big = queue.add(Cores(2), submitted=0.0)
    small = queue.add(Cores(1), submitted=40.0)
    placements, reservation = plan_at(queue, index, now=45.0, starvation_bound=30.0)
    assert placed(placements) == [(small.id, "other")]
    assert reservation == Reservation(big, reserved, 50.0)


def test_the_reservation_goes_to_the_worker_that_frees_up_first() -> None:
    late, early = make_worker("late", "cores:2", 1), make_worker("early", "cores:2", 2)
    index = make_index(late, early)
    run_on(index, late, Cores(1), started=0.0, hard_limit=100.0)
    run_on(index, early, Cores(1), started=10.0, hard_limit=40.0)
    queue = Queue()
    queue.add(Cores(2), submitted=0.0)
    _, reservation = plan_at(queue, index, now=30.0, starvation_bound=30.0)
    assert reservation is not None and (reservation.worker.id, reservation.start) == ("early", 50.0)


def test_a_draining_worker_is_never_reserved() -> None:
    draining, open_ = make_worker("draining", "cores:2", 1), make_worker("open", "cores:2", 2)
    index = make_index(draining, open_)
    run_on(index, draining, Cores(1), started=0.0, hard_limit=10.0)
    run_on(index, open_, Cores(1), started=0.0, hard_limit=100.0)
    draining.accepting = False
    queue = Queue()
    queue.add(Cores(2), submitted=0.0)
    _, reservation = plan_at(queue, index, now=30.0, starvation_bound=30.0)
    assert reservation is not None and reservation.worker is open_


def test_the_reserved_task_is_placed_once_its_worker_frees_up() -> None:
    worker = make_worker("w", "cores:2")
    index = make_index(worker)
    running = run_on(index, worker, Cores(1), started=0.0, hard_limit=100.0)
    queue = Queue()
    big = queue.add(Cores(2), submitted=0.0)
    _, reservation = plan_at(queue, index, now=30.0, starvation_bound=30.0)
    assert running.allocation is not None
    index.release(worker, running.allocation)
    del worker.running[running.id]
    placements, reservation = plan_at(
        queue, index, now=100.0, starvation_bound=30.0, reservation=reservation
    )
    assert placed(placements) == [(big.id, "w")]
    assert reservation is None


def test_a_reservation_for_a_cancelled_task_is_dropped() -> None:
    worker = make_worker("w", "cores:2")
    index = make_index(worker)
    run_on(index, worker, Cores(1), started=0.0, hard_limit=None)
    queue = Queue()
    big = queue.add(Cores(2), submitted=0.0)
    _, reservation = plan_at(queue, index, now=30.0, starvation_bound=30.0)
    assert reservation is not None
    queue.tasks.discard(big)
    big.state = TaskState.DONE
    small = queue.add(Cores(1), submitted=31.0)
    placements, reservation = plan_at(
        queue, index, now=31.0, starvation_bound=30.0, reservation=reservation
    )
    assert placed(placements) == [(small.id, "w")]
    assert reservation is None


@pytest.mark.parametrize(
    ("limits", "expected"),
    [([], 0.0), ([(0.0, 10.0), (5.0, 20.0)], 25.0), ([(0.0, 10.0), (5.0, None)], math.inf)],
)
def test_estimated_free_at_is_when_every_running_task_ends_by_its_hard_limit(
    limits: list[tuple[float, float | None]], expected: float
) -> None:
    worker = make_worker("w", "cores:4")
    index = make_index(worker)
    for started, hard_limit in limits:
        run_on(index, worker, Cores(1), started=started, hard_limit=hard_limit)
    assert estimated_free_at(worker) == expected


def test_tasks_that_take_no_cores_go_round_equal_workers() -> None:
    index = make_index(make_worker("a", "cores:1,mem:4G"), make_worker("b", "cores:1,mem:4G"))
    queue = Queue()
    for _ in range(6):
        queue.add(Memory("512M"))
    placements, _ = plan_at(queue, index)
    assert [p.worker.id for p in placements] == ["a", "b"] * 3
