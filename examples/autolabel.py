"""Learned memory labels: tasks that do not know their size pack tighter once it is learned.

Two groups of tasks say only ``Memory(group=...)``: a ``relax`` step that runs an external
program holding about 150 MB, and a ``scan`` step, a Python function that builds about 60 MB
in a worker process.  Until a group has 5 measured runs, each of its tasks takes the largest
memory any worker has (all of it, here: one at a time); then it takes the group's label, its
largest measured peak plus 10 % (the sixth task of the first round already does), and several
run at once.  The labels persist in the learned
store: run the example twice and the second run packs from the start.

Run it with ``python examples/autolabel.py [STORE]``; ``grainlike stats --stats STORE`` shows
what was learned.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import trio

import grainlike as gl
from grainlike import Cores, Memory

#: An external program that holds about 150 MB resident for 0.6 s.
RELAX = "import time; block = b'x' * (150 * 2**20); time.sleep(0.6)"

spans: dict[str, list[tuple[float, float]]] = {"relax": [], "scan": []}


async def relax() -> float:
    start = trio.current_time()
    await gl.run_process([sys.executable, "-c", RELAX])
    spans["relax"].append((start, trio.current_time()))
    return gl.GVAR.res.M  # the memory (GB) this task was given


def scan(n: int) -> int:
    import time

    block = b"y" * (60 * 2**20)  # about 60 MB, in a worker process (itself about 30 MB)
    time.sleep(0.4)
    return len(block) // 2**20


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


async def main() -> None:
    learned = gl.current_session().dispatcher.learned
    step, sweep = relax @ Cores(1) & Memory(group="relax"), scan @ Cores(1) & Memory(group="scan")
    for round_ in range(2):
        spans["relax"].clear()
        given = await gl.gather(*(step() for _ in range(6)))
        scanned = await gl.gather(*(sweep(i) for i in range(6)))
        sizes = " ".join(f"{size * 1024:.0f}M" for size in given)
        print(
            f"round {round_}: relax tasks were given {sizes}, at most "
            f"{most_at_once(spans['relax'])} at once; scan built {scanned[0]}M each"
        )
    for group in ("relax", "scan"):
        label = learned.label("mem", group)
        shown = "none yet" if label is None else f"{label / 1024:.0f}M"
        print(f"{group} label: {shown}")


if __name__ == "__main__":
    store = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()) / "learned.db"
    gl.run(main, stats=store, resources="cores:2,mem:1G")
    print(f"the learned store is {store}")
