"""Embedded-mode figures (issue 3): throughput, makespan, memory per queued task.

Run: ``.venv/bin/python bench/bench_embedded.py`` (prints one line per figure).
"""

from __future__ import annotations

import gc
import random
import statistics
import time
import tracemalloc

import trio

import grainlike as gl
from grainlike import Cores


async def trivial(i: int) -> int:
    return i


async def throughput(n: int = 10_000, repeats: int = 5) -> None:
    bound = trivial @ Cores(1)
    await gl.gather(*(bound(i) for i in range(1000)))  # warm up
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        await gl.gather(*(bound(i) for i in range(n)))
        rates.append(n / (time.perf_counter() - start))
    print(
        f"throughput: {n} trivial async tasks (f @ Cores(1)) on 2 cores: "
        f"median {statistics.median(rates):,.0f} tasks/s (best {max(rates):,.0f}, "
        f"{repeats} runs)"
    )


async def napping(seconds: float) -> None:
    await trio.sleep(seconds)


async def makespan(n: int = 500, cores: int = 2) -> None:
    rng = random.Random(1)
    widths = [rng.choice((1, 2)) for _ in range(n)]
    ideal = sum(widths) * 0.01 / cores
    start = time.perf_counter()
    await gl.gather(*((napping @ Cores(w))(0.01) for w in widths))
    took = time.perf_counter() - start
    print(
        f"makespan: {n} tasks of sleep(0.01) with Cores(1)/Cores(2) on {cores} cores: "
        f"{took:.3f} s vs ideal {ideal:.3f} s ({100 * (took / ideal - 1):+.1f}%)"
    )


async def memory_per_queued_task(n: int = 100_000) -> None:
    blocker = (napping @ Cores(2))(3600)
    await trio.sleep(0.01)
    bound = trivial @ Cores(1)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    handles = [bound(i) for i in range(n)]
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    print(
        f"memory: {n:,} queued tasks take {(after - before) / n:,.0f} bytes each "
        "(task record, handle, arguments, queue entry)"
    )
    for handle in handles:
        handle.cancel()
    blocker.cancel()


async def main() -> None:
    await throughput()
    await makespan()
    await memory_per_queued_task()


if __name__ == "__main__":
    gl.run(main, resources="cores:2", stats=None)
