"""External programs bound to their allocation: CPU affinity, OMP_NUM_THREADS, GPUs.

Each task starts a child process through ``gl.run_process``; the child reports what it sees.
Run it with ``grainlike run examples/subprocess_pinning.py``.
"""

from __future__ import annotations

import json
import os
import sys

import grainlike as gl
from grainlike import Cores

# The child reports what it sees as one JSON object: its affinity is a list with spaces in it.
CHILD = """
import json, os
print(json.dumps({
    "affinity": sorted(os.sched_getaffinity(0)),
    "OMP_NUM_THREADS": os.environ["OMP_NUM_THREADS"],
    "CUDA_VISIBLE_DEVICES": os.environ["CUDA_VISIBLE_DEVICES"],
}))
"""


async def pinned_child(label: str) -> str:
    done = await gl.run_process([sys.executable, "-c", CHILD], capture_stdout=True)
    seen = json.loads(done.stdout)
    return (
        f"{label}: allocated cores {gl.GVAR.res.c}; the child sees affinity {seen['affinity']}, "
        f"OMP_NUM_THREADS={seen['OMP_NUM_THREADS']}, "
        f"CUDA_VISIBLE_DEVICES={seen['CUDA_VISIBLE_DEVICES']!r}"
    )


async def main() -> None:
    cores = len(os.sched_getaffinity(0))
    wide = pinned_child @ Cores(cores)
    narrow = pinned_child @ Cores(1)
    for line in await gl.gather(wide("wide"), *(narrow(f"narrow {i}") for i in range(cores))):
        print(line)


if __name__ == "__main__":
    gl.run(main)
