"""Benchmark: encode + decode of a ``RunTasks`` batch of 100 tasks, per task.

Run from the repository root::

    .venv/bin/python bench/bench_wire.py [--tasks 100] [--iterations 200] [--repeats 7]

Each task carries a small payload (a pickled reference to ``operator.mul`` and its arguments)
and a realistic allocation (two core IDs, memory, a hard limit).  It prints, for encode alone,
decode alone and both, the median and best time per task over repeated runs, and the batch size.
"""

from __future__ import annotations

import argparse
import operator
import statistics
import time
from collections.abc import Callable

from grainlike.resource import Cores, Memory, WTime
from grainlike.wire import RunTasks, TaskSpec, decode, dumps_payload, encode


def batch(tasks: int) -> RunTasks:
    capacity = Cores(2 * tasks) & Memory(2 * tasks) & WTime(T=3600)
    specs = []
    for task_id in range(tasks):
        allocation = capacity.alloc(Cores(2) & Memory("1500M") & WTime(T=600))
        payload = dumps_payload((operator.mul, (task_id, 2), {}))
        specs.append(TaskSpec(task_id, payload, allocation, 600.0, 0))
    return RunTasks(tuple(specs))


def per_task(fn: Callable[[], object], tasks: int, iterations: int, repeats: int) -> list[float]:
    """Seconds per task of ``fn`` (which handles ``tasks`` tasks), one figure per repeat."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(iterations):
            fn()
        times.append((time.perf_counter() - start) / iterations / tasks)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=7)
    options = parser.parse_args()
    message = batch(options.tasks)
    data = encode(message)
    assert decode(data) == message
    print(
        f"RunTasks of {options.tasks} tasks: {len(data)} bytes "
        f"({len(data) / options.tasks:.0f} per task)"
    )
    scenarios: dict[str, Callable[[], object]] = {
        "encode": lambda: encode(message),
        "decode": lambda: decode(data),
        "encode+decode": lambda: decode(encode(message)),
    }
    for name, fn in scenarios.items():
        times = per_task(fn, options.tasks, options.iterations, options.repeats)
        print(
            f"{name:>14}: median {statistics.median(times) * 1e6:6.2f} us/task, "
            f"best {min(times) * 1e6:6.2f} us/task"
        )


if __name__ == "__main__":
    main()
