"""What measuring tasks costs (issue 14): per 100 ms process task, and in an idle worker.

Run: ``.venv/bin/python bench/bench_measure.py [--repeats N] [--idle SECONDS]`` (one line per
figure).

- run_process: a 100 ms process (``sleep 0.1``) bound to one core, started as ``gl.run_process``
  did before it measured (``trio.run_process`` with the task's environment, CPU affinity and a
  session of its own: the baseline), with ``gl.run_process`` unmeasured (the task context has
  no meter: its ``wait4`` reaping alone) and with ``gl.run_process`` measured (a meter: the
  tree sampler too); wall milliseconds per task and the worker's CPU per task, rounds
  alternating.
- pool: a 100 ms sync task (``time.sleep(0.1)``) in a warm pool child with the pool's sampler
  every 0.25 s (as shipped) and with it off; wall milliseconds per task.
- scratch: making, measuring and removing an empty task directory, and measuring one of
  1,000 small files; microseconds.
- sample: one sample of a process tree (``tree_usage`` of one sleeping process), timed with
  ``perf_counter``; microseconds.
- idle: the CPU a serving ``LocalWorker`` (pool and scratch sampler) uses while it has no task,
  and while one task runs ``sleep`` through ``run_process`` (so the tree sampler wakes four
  times a second); percent of one core over ``--idle`` seconds each, from ``getrusage``.

On a kernel with tick-based CPU accounting (``CONFIG_TICK_CPU_ACCOUNTING``, as on the VM of
bench/README.md) ``getrusage`` charges a whole tick to the process that runs when the timer
fires, and a process woken by a timer runs just then: small CPU figures are overstated there.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import outcome
import trio

from grainlike import Cores, ResourceError
from grainlike.resource import Resources, as_resources
from grainlike.wire import Call, Usage
from grainlike.worker import TaskContext, run_process
from grainlike.worker._context import UsageMeter, set_task_context
from grainlike.worker._enforce import tree_usage
from grainlike.worker._local import LocalWorker
from grainlike.worker._pool import ProcessPool
from grainlike.worker._process import allocation_environment
from grainlike.worker._scratch import ScratchDirectories, directory_size

SLEEP = ["sleep", "0.1"]
CORE = as_resources(Cores([sorted(os.sched_getaffinity(0))[-1]]))


def cpu_seconds() -> float:
    """This process's CPU so far, user and system."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def timed(work: Callable[[], Awaitable[Any]], count: int) -> tuple[float, float]:
    """Wall and worker CPU seconds per call of ``work``."""
    cpu, start = cpu_seconds(), time.perf_counter()
    for _ in range(count):
        await work()
    return (time.perf_counter() - start) / count, (cpu_seconds() - cpu) / count


async def unmeasured_before(command: list[str]) -> Any:
    """What ``gl.run_process`` did before it measured: bind, then ``trio.run_process``."""
    core = set(CORE.c)
    return await trio.run_process(
        command,
        env=allocation_environment(CORE),
        start_new_session=True,
        preexec_fn=lambda: os.sched_setaffinity(0, core),
    )


BASELINE = "before: trio.run_process, bound"


async def bench_run_process(repeats: int, count: int = 20) -> None:
    ways: dict[str, Callable[[], Awaitable[Any]]] = {
        BASELINE: lambda: unmeasured_before(SLEEP),
        "gl.run_process, unmeasured": lambda: run_process(SLEEP),
        "gl.run_process, measured": lambda: run_process(SLEEP),
    }
    walls: dict[str, list[float]] = {name: [] for name in ways}
    cpus: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(repeats):
        for name, work in ways.items():
            meters: dict[int, UsageMeter] | None = {} if name.endswith(", measured") else None
            set_task_context(TaskContext(CORE, "bench", 1, meters=meters))
            wall, cpu = await timed(work, count)
            walls[name].append(wall)
            cpus[name].append(cpu)
            if meters is not None:
                assert meters[1].processes == count and meters[1].cpu > 0
    base = statistics.median(walls[BASELINE])
    for name in ways:
        wall, cpu = statistics.median(walls[name]), statistics.median(cpus[name])
        extra = (wall - base) / 0.1 * 100
        print(
            f"run_process: {name}: {wall * 1e3:.1f} ms per 100 ms task ({extra:+.1f} % of the "
            f"task against the baseline), worker CPU {cpu * 1e3:.2f} ms per task "
            f"(median of {repeats} rounds of {count})"
        )


def nap() -> None:
    time.sleep(0.1)


async def bench_pool(repeats: int, count: int = 20) -> None:
    call = Call(nap)
    walls: dict[str, list[float]] = {"sampler every 0.25 s": [], "sampler off": []}
    pools = {
        "sampler every 0.25 s": ProcessPool("bench", extra_children=1),
        "sampler off": ProcessPool("bench", extra_children=1, sample_interval=float("inf")),
    }
    async with trio.open_nursery() as nursery:
        for pool in pools.values():
            await nursery.start(pool.serve)
        for pool in pools.values():  # warm: each has its child
            await pool.run(call, TaskContext(CORE, "bench", 0), None)
        for _ in range(repeats):
            for name, pool in pools.items():
                context = TaskContext(CORE, "bench", 1)

                async def one(pool: ProcessPool = pool, context: TaskContext = context) -> None:
                    result, usage = await pool.run(call, context, None)
                    assert isinstance(result, outcome.Value) and isinstance(usage, Usage)

                wall, _ = await timed(one, count)
                walls[name].append(wall)
        nursery.cancel_scope.cancel()
    off = statistics.median(walls["sampler off"])
    for name, values in walls.items():
        wall = statistics.median(values)
        print(
            f"pool: {name}: {wall * 1e3:.1f} ms per 100 ms sync task "
            f"({(wall - off) / 0.1 * 100:+.1f} % of the task against the sampler off; "
            f"median of {repeats} rounds of {count})"
        )


async def bench_scratch(count: int = 500) -> None:
    with tempfile.TemporaryDirectory() as root:
        directories = ScratchDirectories(Path(root))
        start = time.perf_counter()
        for task in range(count):
            with trio.CancelScope(shield=True):
                await directories.finish(directories.create(task))
        each = (time.perf_counter() - start) / count
        print(f"scratch: make, measure and remove an empty task directory: {each * 1e6:.0f} µs")
        full = Path(root) / "full"
        full.mkdir()
        for i in range(1000):
            (full / f"f{i}").write_bytes(b"x" * 100)
        start = time.perf_counter()
        for _ in range(20):
            directory_size(full)
        each = (time.perf_counter() - start) / 20
        print(f"scratch: one walk of a directory of 1,000 small files: {each * 1e3:.2f} ms")


def bench_sample(number: int = 2000) -> None:
    import subprocess

    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        start = time.perf_counter()
        for _ in range(number):
            tree_usage(sleeper.pid)
        each = (time.perf_counter() - start) / number
    finally:
        sleeper.kill()
        sleeper.wait()
    print(
        f"sample: the resident size and CPU of a one-process tree from /proc: {each * 1e6:.0f} µs"
    )


class Quiet:
    """A reporter that keeps nothing."""

    def task_started(self, worker_id: str, task_id: int, attempt: int) -> None:
        return None

    def task_done(
        self,
        worker_id: str,
        task_id: int,
        attempt: int,
        result: outcome.Outcome[Any],
        duration: float,
        usage: Usage | None = None,
    ) -> None:
        return None

    def remove_worker(self, worker_id: str, reason: str, *, lost: bool = True) -> None:
        return None


class _Task:
    """One assignment for the worker: an async task that sleeps in a process."""

    def __init__(self, seconds: float) -> None:
        self.id, self.attempt, self.hard_limit, self.after = 1, 1, None, None
        self.allocation: Resources | None = CORE
        self.granted: Resources | None = CORE

        async def sleeper() -> None:
            await run_process(["sleep", str(seconds)])

        self.work = Call(sleeper, is_async=True)


async def bench_idle(seconds: float) -> None:
    worker = LocalWorker("bench", Quiet())
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.serve)
        await trio.sleep(0.5)
        cpu, start = cpu_seconds(), time.perf_counter()
        await trio.sleep(seconds)
        share = (cpu_seconds() - cpu) / (time.perf_counter() - start) * 100
        print(f"idle: a serving worker without tasks: {share:.3f} % of a core over {seconds:g} s")
        worker.run_tasks([_Task(seconds + 1)])
        await trio.sleep(0.5)
        cpu, start = cpu_seconds(), time.perf_counter()
        await trio.sleep(seconds)
        share = (cpu_seconds() - cpu) / (time.perf_counter() - start) * 100
        print(
            f"idle: the same worker while one task's process sleeps (sampled 4 times a "
            f"second): {share:.3f} % of a core over {seconds:g} s"
        )
        nursery.cancel_scope.cancel()


async def main(repeats: int, idle: float) -> None:
    await bench_run_process(repeats)
    await bench_pool(repeats)
    await bench_scratch()
    bench_sample()
    await bench_idle(idle)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--idle", type=float, default=10.0)
    args = parser.parse_args()
    if args.repeats < 1:
        raise ResourceError(f"--repeats {args.repeats}: give at least 1")
    trio.run(main, args.repeats, args.idle)
