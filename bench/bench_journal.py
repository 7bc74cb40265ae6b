"""The journal's cost (issue 15): throughput with it on and off, and resuming a large journal.

Run: ``.venv/bin/python bench/bench_journal.py`` (prints one line per figure).

- Embedded: 10,000 trivial async tasks on an embedded worker of 2 cores, as in
  ``bench_embedded.py``; sessions with and without a journal alternate, so that a slow minute
  of a shared machine counts against both.
- Embedded, 1 ms tasks: 2,000 tasks that each sleep 1 ms, likewise: the journal's cost next
  to tasks that do a little work.
- Cluster: 10,000 trivial tasks through 2 ``grainlike worker`` processes, as in
  ``bench_cluster.py``, alternating likewise (each session starts its own workers).
- Resume: a real run of 100,000 trivial tasks writes a journal; then the time to open it, the
  time for a run that submits the same 100,000 calls to get them all back from it, and that
  run's peak resident memory, against the same run without a journal (each in a fresh process).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import trio

import grainlike as gl
from grainlike import Cores
from grainlike.dispatch import Journal

KEY = secrets.token_bytes(32)
ENV = dict(os.environ, GRAINLIKE_KEY=KEY.hex())


async def trivial(i: int) -> int:
    return i


async def millisecond(i: int) -> int:
    await trio.sleep(0.001)
    return i


async def rate(n: int, repeats: int, task: Callable[[int], Awaitable[int]] = trivial) -> float:
    """The median rate of ``repeats`` gathers of ``n`` tasks, after a warm-up."""
    bound = task @ Cores(1)
    await gl.gather(*(bound(i) for i in range(min(n, 1000))))
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        await gl.gather(*(bound(i) for i in range(n)))
        rates.append(n / (time.perf_counter() - start))
    return statistics.median(rates)


async def embedded(journal: Path | None) -> float:
    options: dict[str, Any] = {"resources": "cores:2", "stats": None}
    if journal is not None:
        options["journal"] = journal
    async with gl.open_session(**options):
        return await rate(10_000, 3)


async def short(journal: Path | None) -> float:
    options: dict[str, Any] = {"resources": "cores:2", "stats": None}
    if journal is not None:
        options["journal"] = journal
    async with gl.open_session(**options):
        return await rate(2_000, 3, millisecond)


async def cluster(journal: Path | None) -> float:
    options: dict[str, Any] = {"listen": "127.0.0.1:0", "local": False, "key": KEY, "stats": None}
    if journal is not None:
        options["journal"] = journal
    async with gl.open_session(**options) as session:
        assert session.address is not None
        workers = [
            await trio.lowlevel.open_process(
                [
                    *(sys.executable, "-m", "grainlike", "worker", session.address),
                    *("--name", f"w{i}", "--resources", "cores:2,mem:2G"),
                    *("--reconnect-timeout", "0"),
                ],
                env=ENV,
                stderr=subprocess.DEVNULL,
            )
            for i in range(2)
        ]
        try:
            with trio.fail_after(60):
                while len(session.dispatcher.worker_ids()) < 2:
                    await trio.sleep(0.05)
            return await rate(10_000, 3)
        finally:
            for worker in workers:
                worker.kill()
                await worker.wait()


async def alternate(
    name: str,
    measure: Callable[[Path | None], Awaitable[float]],
    rounds: int,
    scratch: Path,
    what: str = "10,000 trivial tasks",
) -> None:
    off: list[float] = []
    on: list[float] = []
    for round_ in range(rounds):
        off.append(await measure(None))
        on.append(await measure(scratch / f"{name}-{round_}.db"))
    ratios = [b / a for a, b in zip(off, on, strict=True)]
    print(
        f"{name}: {what}, median of {rounds} alternating sessions: journal off "
        f"{statistics.median(off):,.0f} tasks/s, on {statistics.median(on):,.0f} tasks/s "
        f"(on/off {statistics.median(ratios):.2f}, per round "
        f"{', '.join(f'{r:.2f}' for r in ratios)})"
    )


async def gather_all(n: int) -> None:
    bound = trivial @ Cores(1)
    results = await gl.gather(*(bound(i) for i in range(n)))
    assert results == list(range(n))


def child(n: int, journal: str | None) -> None:
    """One run of ``n`` tasks in this process; prints its time and peak RSS as JSON."""
    start = time.perf_counter()
    gl.run(gather_all, n, resources="cores:2", stats=None, journal=journal)
    took = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": took, "rss_mb": rss}))


def run_child(n: int, journal: Path | None) -> dict[str, float]:
    command = [sys.executable, __file__, "--child", str(n)]
    if journal is not None:
        command += ["--journal", str(journal)]
    done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=1800)
    figures: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return figures


def resume(n: int, scratch: Path) -> None:
    path = scratch / "big.db"
    first = run_child(n, path)
    print(
        f"resume: a run of {n:,} trivial tasks writing the journal: {first['seconds']:.1f} s "
        f"({n / first['seconds']:,.0f} tasks/s), peak RSS {first['rss_mb']:.0f} MB; the journal "
        f"is {path.stat().st_size / 2**20:.1f} MB"
    )
    start = time.perf_counter()
    Journal.open(path).close()
    opened = time.perf_counter() - start
    again = run_child(n, path)
    plain = run_child(n, None)
    print(
        f"resume: opening it takes {opened:.2f} s; a run submitting the same {n:,} calls gets "
        f"them all from it in {again['seconds']:.1f} s (peak RSS {again['rss_mb']:.0f} MB), "
        f"where running them without a journal takes {plain['seconds']:.1f} s "
        f"(peak RSS {plain['rss_mb']:.0f} MB)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="alternating sessions per figure")
    parser.add_argument("--tasks", type=int, default=100_000, help="tasks in the resumed journal")
    parser.add_argument(
        "--only", choices=("embedded", "short", "cluster", "resume"), action="append"
    )
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--journal", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child, args.journal)
        return
    only = set(args.only or ("embedded", "short", "cluster", "resume"))
    with tempfile.TemporaryDirectory() as directory:
        scratch = Path(directory)
        if "embedded" in only:
            trio.run(alternate, "embedded", embedded, args.rounds, scratch)
        if "short" in only:
            what = "2,000 tasks of trio.sleep(0.001)"
            trio.run(alternate, "embedded, 1 ms tasks", short, args.rounds, scratch, what)
        if "cluster" in only:
            trio.run(alternate, "cluster", cluster, args.rounds, scratch)
        if "resume" in only:
            resume(args.tasks, scratch)


if __name__ == "__main__":
    main()
