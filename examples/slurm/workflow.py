"""A workflow for worker jobs started with ``grainlike up --slurm``.

Start the dispatcher (no embedded worker), then the workers, from a login node:

    grainlike run examples/slurm/workflow.py --listen 0.0.0.0:4242 --no-local &
    grainlike up --slurm -n 2 --profile examples/slurm/profile.toml --dispatcher $(hostname):4242

Each task reports the job and the cores it ran on (``GVAR.res.c`` is within the job's cpuset).
"""

from __future__ import annotations

import os

import trio

import grainlike as gl
from grainlike import Cores, Memory


async def step(i: int) -> str:
    await trio.sleep(0.5)
    job = os.environ.get("SLURM_JOB_ID", "not in a job")
    return f"step {i}: job {job}, worker {gl.GVAR.instance}, cores {gl.GVAR.res.c}"


async def main() -> None:
    for line in await gl.gather(*((step @ Cores(1) & Memory("256M"))(i) for i in range(8))):
        print(line)
