"""Learned time limits: tasks of a ``WTime(group=...)`` get limits from the group's past runs.

Grain's rule is the default (8 runs of at least 10 s; hard limit mean + 5 sigma, soft limit mean
+ 2 sigma).  So that this example finishes in a second, it learns from runs of at least 10 ms.
The statistics persist in a file: run the example twice and the second run starts learned.

Run it with ``python examples/learned_walltime.py [STATS_FILE]``.
"""

from __future__ import annotations

import random
import sys
import tempfile
from pathlib import Path

import trio

import grainlike as gl
from grainlike import Cores, WTime


async def simulate(seconds: float) -> float | None:
    await trio.sleep(seconds)
    return gl.GVAR.res.T  # the hard limit this run was given (None until learned)


async def main() -> None:
    step = simulate @ Cores(1) & WTime(group="simulate")
    rng = random.Random(7)
    for round_ in range(3):
        limits = await gl.gather(*(step(rng.uniform(0.02, 0.04)) for _ in range(6)))
        shown = ", ".join("none" if t is None else f"{t:.3f}s" for t in limits)
        print(f"round {round_}: hard limits given: {shown}")


if __name__ == "__main__":
    stats = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()) / "stats.json"
    rule = gl.LearningRule(samples=8, min_duration=0.01)
    gl.run(main, stats=stats, learning=rule)
    print(f"learned statistics are in {stats}")
