"""Benchmark: alloc+dealloc pairs on a 64-core capacity, the dispatcher's hot path.

Run from the repository root::

    .venv/bin/python bench/bench_alloc.py [--iterations 20000] [--repeats 7]

It prints, per scenario, the median, mean and best time of one ``alloc`` + ``dealloc`` pair over
repeated runs (each run times ``--iterations`` pairs with ``time.perf_counter``).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from grainlike.resource import Cores, Counter, Memory, Resources

REQUEST = Cores(2) & Memory(4) & Counter("license", 1)
SOCKETS = {core: core // 32 for core in range(64)}


def _capacity(*, topology: bool) -> Resources:
    cores = Cores(64, groups=SOCKETS) if topology else Cores(64)
    return cores & Memory(256) & Counter("license", 8)


def _fragment(capacity: Resources) -> Resources:
    """Take cores so that the free ones are scattered: runs of 1, 2 and 3 IDs across both sockets.

    The allocations stay live for the whole run, as tasks already running on the node would.
    """
    taken = [capacity.alloc(Cores(1)) for _ in range(64)]
    for index, allocation in enumerate(taken):
        if index % 4 == 0 or index % 7 == 0:
            continue  # keep this one: it stays taken
        capacity.dealloc(allocation)
    return capacity


def _pair_loop(capacity: Resources, iterations: int) -> float:
    """Seconds for ``iterations`` alloc+dealloc pairs of REQUEST on ``capacity``."""
    alloc, dealloc, request = capacity.alloc, capacity.dealloc, REQUEST
    start = time.perf_counter()
    for _ in range(iterations):
        dealloc(alloc(request))
    return time.perf_counter() - start


def _measure(make: Callable[[], Resources], iterations: int, repeats: int) -> list[float]:
    """Microseconds per pair, one figure per repeat (a fresh capacity each time)."""
    figures = []
    for _ in range(repeats):
        capacity = make()
        before = capacity.stat()
        seconds = _pair_loop(capacity, iterations)
        if capacity.stat() != before:
            raise AssertionError(f"alloc+dealloc did not restore the capacity: {capacity.stat()}")
        figures.append(seconds / iterations * 1e6)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=20000, help="pairs per run")
    parser.add_argument("--repeats", type=int, default=7, help="runs per scenario")
    args = parser.parse_args()
    scenarios: dict[str, Callable[[], Resources]] = {
        "64 cores, no topology": lambda: _capacity(topology=False),
        "64 cores, 2 sockets": lambda: _capacity(topology=True),
        "64 cores, no topology, fragmented": lambda: _fragment(_capacity(topology=False)),
        "64 cores, 2 sockets, fragmented": lambda: _fragment(_capacity(topology=True)),
    }
    print(f"request: {REQUEST}   capacity: {_capacity(topology=True)} (+ groups)")
    print(f"{args.repeats} runs x {args.iterations} alloc+dealloc pairs; µs per pair")
    print(f"{'scenario':36} {'median':>8} {'mean':>8} {'best':>8}")
    for label, make in scenarios.items():
        figures = _measure(make, args.iterations, args.repeats)
        median, mean, best = statistics.median(figures), statistics.fmean(figures), min(figures)
        print(f"{label:36} {median:8.2f} {mean:8.2f} {best:8.2f}")


if __name__ == "__main__":
    main()
