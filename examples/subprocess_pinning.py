"""External programs bound to their allocation: CPU affinity, OMP_NUM_THREADS, GPUs.

Each task starts a child process through ``gl.run_process``; the child reports what it sees.
Run it with ``grainlike run examples/subprocess_pinning.py``.
"""

from __future__ import annotations

import os
import sys

import grainlike as gl
from grainlike import Cores

CHILD = """
import os
print(sorted(os.sched_getaffinity(0)), os.environ["OMP_NUM_THREADS"],
      repr(os.environ["CUDA_VISIBLE_DEVICES"]))
"""


async def pinned_child(label: str) -> str:
    done = await gl.run_process([sys.executable, "-c", CHILD], capture_stdout=True)
    cores, threads, gpus = done.stdout.decode().split(maxsplit=2)
    return (
        f"{label}: allocated cores {gl.GVAR.res.c}; the child sees affinity {cores}, "
        f"OMP_NUM_THREADS={threads}, CUDA_VISIBLE_DEVICES={gpus.strip()}"
    )


async def main() -> None:
    cores = len(os.sched_getaffinity(0))
    wide = pinned_child @ Cores(cores)
    narrow = pinned_child @ Cores(1)
    for line in await gl.gather(wide("wide"), *(narrow(f"narrow {i}") for i in range(cores))):
        print(line)


if __name__ == "__main__":
    gl.run(main)
