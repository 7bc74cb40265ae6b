"""Grain's branch pattern: cheap "branch" functions that submit expensive "leaves" and reduce
their results, several branches at once.

A branch is bound to ``ZERO``: it runs on the head, in the dispatcher's own process (with
``--no-local`` too), and takes no worker's slot, so any number of branches can wait for their
leaves while the leaves have every core.  Each leaf asks for one core and runs on a worker.

On this machine (one core is enough: the branches take none)::

    grainlike run examples/plans/branches.py --resources cores:1

With remote workers only (a worker keeps trying until the dispatcher listens)::

    grainlike worker 127.0.0.1:4242 --name a &
    grainlike worker 127.0.0.1:4242 --name b &
    grainlike run examples/plans/branches.py --listen 127.0.0.1:4242 --no-local

It prints where and when (seconds since the start) each branch and each leaf ran.
"""

from __future__ import annotations

import time
from typing import Any

import grainlike as gl
from grainlike import ZERO, Cores

START = time.time()


def leaf(x: int) -> dict[str, Any]:
    """An expensive calculation (here 0.1 s of waiting), on one core of a worker."""
    started = time.time()
    time.sleep(0.1)
    where = {"worker": gl.GVAR.instance, "cores": gl.GVAR.res.c}
    return {"x": x, "value": x * x, **where, "started": started, "ended": time.time()}


async def branch(xs: list[int]) -> dict[str, Any]:
    """Submit a leaf for each of ``xs`` at once, wait for them all, and add them up."""
    started = time.time()
    leaves = await gl.gather(*((leaf @ Cores(1))(x) for x in xs))
    total = sum(done["value"] for done in leaves)
    span = {"started": started, "ended": time.time()}
    return {"worker": gl.GVAR.instance, **span, "total": total, "leaves": leaves}


def when(done: dict[str, Any]) -> str:
    return f"from {done['started'] - START:.3f}s to {done['ended'] - START:.3f}s"


async def main() -> None:
    data = [[1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11]]
    branches = await gl.gather(*((branch @ ZERO)(xs) for xs in data))
    for i, (xs, done) in enumerate(zip(data, branches, strict=True)):
        print(f"branch {i} {xs} on {done['worker']} {when(done)}: sum of squares {done['total']}")
        for one in done["leaves"]:
            print(f"  leaf {one['x']} on {one['worker']} cores {one['cores']} {when(one)}")
    print(f"{len(data)} branches: sum of squares of 1..11 = {sum(d['total'] for d in branches)}")


if __name__ == "__main__":
    gl.run(main)
