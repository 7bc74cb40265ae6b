"""Process-pool figures (issue 11): parallel speed-up, per-task overhead, start-up, idle memory.

Run: ``.venv/bin/python bench/bench_pool.py [--repeats N]`` (prints one line per figure).

- speed-up: N CPU-bound pure-Python ``Cores(1)`` tasks on N cores (N = this machine's usable
  cores), in worker processes and, for comparison, in worker threads; against one task alone,
  each measured in the same warm session.
- overhead: trivial sync tasks (``f @ Cores(1)`` returning its argument), embedded, in process
  mode and thread mode; microseconds per task, and the difference.
- start-up: the first sync task of a fresh session (it starts a child) against the second.
- idle memory: the resident size of one idle child (its unique set and its RSS).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import psutil

import grainlike as gl
from grainlike import Cores


def burn(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i
    return total


def trivial(i: int) -> int:
    return i


#: About a quarter of a second of pure Python on the reference machine.
WORK = 4_000_000


async def speedup(repeats: int) -> None:
    cores = len(os.sched_getaffinity(0))
    for executor in ("process", "thread"):
        bound = (burn @ Cores(1)).options(executor=executor)
        await gl.gather(*(bound(1000) for _ in range(cores)))  # every child warm
        ratios, ones, alls = [], [], []
        for _ in range(repeats):
            start = time.perf_counter()
            await bound(WORK)
            one = time.perf_counter() - start
            start = time.perf_counter()
            await gl.gather(*(bound(WORK) for _ in range(cores)))
            together = time.perf_counter() - start
            ones.append(one)
            alls.append(together)
            ratios.append(cores * one / together)
        print(
            f"speed-up, {executor}: {cores} CPU-bound Cores(1) tasks on {cores} cores: "
            f"median {statistics.median(ratios):.2f}x (one {statistics.median(ones):.3f} s, "
            f"{cores} at once {statistics.median(alls):.3f} s; {repeats} runs)"
        )


async def overhead(repeats: int, n: int = 2000) -> None:
    per_task: dict[str, float] = {}
    for executor in ("process", "thread"):
        bound = (trivial @ Cores(1)).options(executor=executor)
        await gl.gather(*(bound(i) for i in range(200)))  # warm up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            await gl.gather(*(bound(i) for i in range(n)))
            times.append((time.perf_counter() - start) / n * 1e6)
        per_task[executor] = statistics.median(times)
        print(
            f"overhead, {executor}: {n} trivial sync tasks (f @ Cores(1)) embedded on 2 cores: "
            f"median {per_task[executor]:.0f} µs per task (best {min(times):.0f}, "
            f"{repeats} runs)"
        )
    more = per_task["process"] - per_task["thread"]
    print(f"overhead, process - thread: {more:+.0f} µs per task")


async def first_task() -> tuple[float, float]:
    bound = trivial @ Cores(1)
    start = time.perf_counter()
    await bound(0)
    first = time.perf_counter() - start
    start = time.perf_counter()
    await bound(0)
    return first, time.perf_counter() - start


def startup(repeats: int) -> None:
    firsts, seconds = [], []
    for _ in range(repeats):
        first, second = gl.run(first_task, resources="cores:2", stats=None)
        firsts.append(first)
        seconds.append(second)
    print(
        f"start-up: first sync task of a session {statistics.median(firsts) * 1e3:.0f} ms "
        f"(best {min(firsts) * 1e3:.0f}), the next {statistics.median(seconds) * 1e3:.1f} ms; "
        f"{repeats} sessions"
    )


async def idle_child() -> None:
    await (trivial @ Cores(1))(0)
    (child,) = [p for p in psutil.Process().children() if "_child" in " ".join(p.cmdline())]
    info = child.memory_full_info()
    print(
        f"idle child: RSS {info.rss / 2**20:.1f} MiB, unique (USS) {info.uss / 2**20:.1f} MiB "
        f"(pid {child.pid})"
    )


async def main(repeats: int) -> None:
    await speedup(repeats)
    await overhead(repeats)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    repeats = parser.parse_args().repeats
    cores = f"cores:{len(os.sched_getaffinity(0))}"
    gl.run(main, repeats, resources=cores, stats=None)
    startup(repeats)
    gl.run(idle_child, resources=cores, stats=None)
