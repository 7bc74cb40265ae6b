"""Placement cost (issue 3): pure ``plan`` over many workers and a long queue, without trio.

Run: ``.venv/bin/python bench/bench_placement.py``.  Prints µs per placed task for growing
numbers of workers and queue lengths.
"""

from __future__ import annotations

import gc
import random
import time

from grainlike.dispatch._placement import WorkerIndex, plan
from grainlike.dispatch._pools import Pools
from grainlike.dispatch._queue import TaskQueue
from grainlike.dispatch._records import Task, WorkerState
from grainlike.resource import GPU, ZERO, Cores, Memory, Resources, Token
from grainlike.wire import Call


class IdleLink:
    """Placement never talks to workers; this link only has to exist."""

    pipeline = 0

    def run_tasks(self, tasks: object) -> None: ...

    def cancel_task(self, task_id: int) -> None: ...

    def drain(self, reason: str) -> None: ...


SHAPES = [
    Cores(1),
    Cores(2) & Memory(4),
    Cores(4) & Memory(16),
    Cores(1) & Memory(2) & GPU(1),
    Cores(8) & Memory(32),
    Cores(1) & Token("bigmem"),
    Cores(16) & Memory(64),
    Cores(2) & Memory("512M"),
]
CAPACITIES = [
    "cores:16,mem:64G",
    "cores:32,mem:128G",
    "cores:64,mem:256G,token:bigmem",
    "cores:8,mem:32G,gpu:2",
]


def build(workers: int, queued: int, seed: int = 0) -> tuple[TaskQueue, WorkerIndex]:
    from grainlike.resource import as_resources, parse_resources

    rng = random.Random(seed)
    index = WorkerIndex()
    for i in range(workers):
        capacity = parse_resources(rng.choice(CAPACITIES), capacity=True)
        index.add(WorkerState(f"w{i}", capacity, IdleLink(), i))
    queue = TaskQueue()
    requests = [as_resources(shape) for shape in SHAPES]  # type: ignore[arg-type]
    for i in range(queued):
        request = rng.choice(requests)
        queue.push(Task(i + 1, request, Call(print), "t"))
    for shape in queue.shapes():
        shape.effective = shape.request
    return queue, index


def measure(workers: int, queued: int) -> tuple[int, float]:
    queue, index = build(workers, queued)
    # The pass alone, as timeit measures: a full collection of the queue's fresh objects
    # would otherwise land inside one pass or another by chance.
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter()
        placements, _ = plan(queue, index, pools=Pools(ZERO), now=0.0, starvation_bound=30.0)
        took = time.perf_counter() - start
    finally:
        gc.enable()
    return len(placements), took


def main() -> None:
    print("placement: µs per placed task (pure plan, one pass)")
    print(f"{'workers':>8} {'queued':>8} {'placed':>8} {'total ms':>9} {'µs/task':>8}")
    for workers, queued in [
        (10, 100_000),
        (100, 100_000),
        (1000, 1_000),
        (1000, 10_000),
        (1000, 100_000),
    ]:
        placed, took = measure(workers, queued)
        print(
            f"{workers:>8} {queued:>8} {placed:>8} {took * 1e3:>9.1f} "
            f"{took * 1e6 / max(placed, 1):>8.2f}"
        )


if __name__ == "__main__":
    main()


_ = Resources
