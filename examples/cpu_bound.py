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


def burn(n: int) -> tuple[int, list[int], float]:
    """Pure Python, no I/O: it needs a core of its own (and an interpreter of its own).

    Returns where it ran (the process and the cores it may use) and the CPU time it took.
    """
    cpu = time.thread_time()
    total = 0
    for i in range(n):
        total += i * i
    assert total > 0
    return os.getpid(), sorted(os.sched_getaffinity(0)), time.thread_time() - cpu


async def timed(bound: gl.Bound, count: int) -> tuple[float, list[tuple[int, list[int], float]]]:
    start = time.perf_counter()
    ran = await gl.gather(*(bound(WORK) for _ in range(count)))
    return time.perf_counter() - start, ran


async def main() -> None:
    cores = len(os.sched_getaffinity(0))
    print(f"{cores} CPU-bound tasks of burn @ Cores(1) on {cores} cores (median of 3 rounds)")
    for executor, where in (("process", "worker processes"), ("thread", "worker threads")):
        bound = (burn @ Cores(1)).options(executor=executor)
        await timed(bound, cores)  # warm: every worker process started
        rounds = [((await timed(bound, 1))[0], await timed(bound, cores)) for _ in range(3)]
        one = statistics.median(alone for alone, _ in rounds)
        together = statistics.median(wall for _, (wall, _) in rounds)
        speedup = statistics.median(cores * alone / wall for alone, (wall, _) in rounds)
        print(
            f"{where}: one task {one:.2f} s, {cores} at once {together:.2f} s, "
            f"speed-up {speedup:.2f}x"
        )
        # The last round's tasks: how many processes, which cores, and how much CPU time they
        # used together in how much time (more CPU than time: they ran side by side).
        wall, ran = rounds[-1][1]
        pids = {pid for pid, _, _ in ran}
        pinned = " ".join(str(affinity) for _, affinity, _ in ran)
        cpu = sum(used for _, _, used in ran)
        print(
            f"{where}: {cores} at once ran in {len(pids)} process(es), on cores {pinned}, "
            f"and used {cpu:.2f} s of CPU in {wall:.2f} s"
        )


if __name__ == "__main__":
    gl.run(main)
