"""Pure-Python CPU-bound work gets the cores it is given: sync functions run in worker processes.

One task of ``burn @ Cores(1)`` is timed alone, then as many at once as this machine has cores,
first in worker processes (the default) and then in worker threads (``executor="thread"``),
where the interpreter lock lets only one run at a time.
Run it with ``grainlike run examples/cpu_bound.py`` (or ``python examples/cpu_bound.py``).
"""

from __future__ import annotations

import os
import statistics
import time

import grainlike as gl
from grainlike import Cores

#: About a fifth of a second of pure Python on a 2020s core.
WORK = 3_000_000


def burn(n: int) -> int:
    """Pure Python, no I/O: it needs a core of its own (and an interpreter of its own)."""
    total = 0
    for i in range(n):
        total += i * i
    return total


async def timed(bound: gl.Bound, count: int) -> float:
    start = time.perf_counter()
    await gl.gather(*(bound(WORK) for _ in range(count)))
    return time.perf_counter() - start


async def main() -> None:
    cores = len(os.sched_getaffinity(0))
    print(f"{cores} CPU-bound tasks of burn @ Cores(1) on {cores} cores (median of 3 rounds)")
    for executor, where in (("process", "worker processes"), ("thread", "worker threads")):
        bound = (burn @ Cores(1)).options(executor=executor)
        await timed(bound, cores)  # warm: every worker process started
        rounds = [(await timed(bound, 1), await timed(bound, cores)) for _ in range(3)]
        one, together = (statistics.median(times) for times in zip(*rounds, strict=True))
        speedup = statistics.median(cores * alone / all_at_once for alone, all_at_once in rounds)
        print(
            f"{where}: one task {one:.2f} s, {cores} at once {together:.2f} s, "
            f"speed-up {speedup:.2f}x"
        )


if __name__ == "__main__":
    gl.run(main)
