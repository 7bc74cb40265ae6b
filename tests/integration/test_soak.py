"""A soak under faults: thousands of short tasks while workers are SIGKILLed every 2 s and one
is SIGSTOPped past the heartbeat timeout.  Nothing is lost, nothing is delivered twice, and no
core ever runs two tasks at once, by each task's own record of where it ran."""

from __future__ import annotations

import itertools
import signal
import sys
import time

import cloudpickle
import pytest
import trio

import grainlike as gl
from grainlike import Cores

from .test_cluster import open_cluster

pytestmark = pytest.mark.slow

cloudpickle.register_pickle_by_value(sys.modules[__name__])

TASKS = 3000
WORKERS = 3


async def record(i: int) -> tuple[int, str, tuple[int, ...], float, float]:
    """Where and when this task ran, by itself."""
    start = time.time()
    await trio.sleep(0.04)  # 3000 of them on 6 cores: about 20 s of faults
    return i, gl.GVAR.instance, tuple(gl.GVAR.res.c), start, time.time()


async def test_a_soak_with_kills_and_a_stop_loses_nothing_and_doubles_nothing() -> None:
    names = itertools.count(1)
    async with open_cluster(max_retries=50) as cluster:
        for _ in range(WORKERS):
            await cluster.start_worker(f"w{next(names)}", "cores:2")
        handles = [(record @ Cores(1))(i) for i in range(TASKS)]
        delivered: list[tuple[int, str, tuple[int, ...], float, float]] = []

        async def collect() -> None:
            async for handle in gl.as_completed(handles):
                delivered.append(handle.result())

        kills = 0

        async def faults() -> None:
            nonlocal kills
            stopped = False
            while len(delivered) < TASKS:
                await trio.sleep(2.0)
                live = [n for n, p in cluster.workers.items() if p.returncode is None]
                victim = cluster.workers[live[0]]
                if not stopped:  # once: frozen past the heartbeat timeout, then thawed
                    stopped = True
                    victim.send_signal(signal.SIGSTOP)
                    await trio.sleep(3.0)
                    victim.send_signal(signal.SIGCONT)
                else:
                    victim.kill()
                    kills += 1
                await cluster.start_worker(f"w{next(names)}", "cores:2", join=False)

        with trio.fail_after(240):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(faults)
                await collect()
                nursery.cancel_scope.cancel()
    assert kills >= 4
    ids = sorted(item[0] for item in delivered)
    assert ids == list(range(TASKS))  # none lost, none twice
    runs: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for _, worker, cores, start, end in delivered:
        for core in cores:
            runs.setdefault((worker, core), []).append((start, end))
    for spans in runs.values():
        spans.sort()
        for (_, first_end), (second_start, _) in itertools.pairwise(spans):
            assert second_start >= first_end - 1e-3, "two tasks ran on one core at once"
