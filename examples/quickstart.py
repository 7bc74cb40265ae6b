"""A small mixed workload on this machine: each task reports the cores it was given.

Run it with ``grainlike run examples/quickstart.py`` (or ``python examples/quickstart.py``).
"""

from __future__ import annotations

import os
import sys

import trio

import grainlike as gl
from grainlike import Cores, Memory


async def simulate(step: int) -> str:
    """An async task: waits a little, as an I/O-bound or external job would."""
    await trio.sleep(0.05)
    return f"simulate {step}: cores {gl.GVAR.res.c} on {gl.GVAR.instance}"


def crunch(n: int) -> str:
    """A sync task (runs in a worker process, pinned to its cores): a bit of arithmetic."""
    total = sum(i * i for i in range(n))
    return f"crunch {n}: cores {gl.GVAR.res.c} -> {total}"


async def report_affinity() -> str:
    """A subprocess bound to the task's cores: it reports the CPU affinity it sees."""
    code = "import os; print(sorted(os.sched_getaffinity(0)), os.environ['OMP_NUM_THREADS'])"
    done = await gl.run_process([sys.executable, "-c", code], capture_stdout=True)
    affinity, _, threads = done.stdout.decode().strip().rpartition(" ")
    return (
        f"child process of a task on cores {gl.GVAR.res.c} sees cores {affinity}, "
        f"OMP_NUM_THREADS={threads}"
    )


async def main() -> None:
    cores = len(os.sched_getaffinity(0))
    print(f"this machine offers {cores} core(s) to grainlike")
    one_core = simulate @ Cores(1)
    lines = await gl.gather(
        *(one_core(step) for step in range(4)),
        *((crunch @ Cores(1) & Memory("256M"))(n) for n in (10_000, 20_000)),
        (report_affinity @ Cores(min(2, cores)))(),
    )
    for line in lines:
        print(line)


if __name__ == "__main__":
    gl.run(main)
