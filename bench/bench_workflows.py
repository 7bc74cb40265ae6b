"""Work that makes work (issue 13): nested submission from a remote worker against submission
from ``main``, and what dependencies (handles as arguments) cost, embedded.

Run: ``.venv/bin/python bench/bench_workflows.py`` (prints one line per figure; about a minute).

- ``latency``: one trivial subtask submitted and awaited by a task on a remote worker, one after
  another, against the same trivial task submitted and awaited from ``main``: median and p99.
- ``throughput``: 10,000 trivial subtasks gathered by one parent on a remote worker (inside
  ``gl.released()``, so that all 4 cores are free for them, as for ``main``) against 10,000
  gathered from ``main``; rounds alternate, so a slow minute of the machine counts against both.
- ``dependencies`` (embedded, ``cores:2``): a chain of 10,000 tasks, each taking the previous
  one's handle, and a fan-in of 10,000 handles into one task, against 10,000 independent
  tasks gathered, and against the same chain awaited one call at a time.
- the first result: 10,000 trivial tasks submitted at once, from ``main`` and from the parent,
  and the time until the first of them has ended (how long the submissions take to get going).

The remote part uses two real ``grainlike worker`` processes of ``cores:2,mem:2G`` on
127.0.0.1; the dispatcher and ``main`` share one process.  ``--pause`` waits before each
throughput round and prints the process ids, for attaching a profiler (``py-spy``).
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import time

import trio

import grainlike as gl
from grainlike import Cores

KEY = secrets.token_bytes(32)
ENV = dict(os.environ, GRAINLIKE_KEY=KEY.hex())


async def trivial(i: int) -> int:
    return i


async def inc(x: int) -> int:
    return x + 1


async def total(values: list[int]) -> int:
    return sum(values)


def _percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def _ms(values: list[float]) -> str:
    values = sorted(values)
    median, p99 = statistics.median(values) * 1e3, _percentile(values, 0.99) * 1e3
    return f"median {median:.3f} ms, p99 {p99:.3f} ms"


# -- remote: a parent on a worker against main -----------------------------------------------


async def round_trips(n: int) -> list[float]:
    """Submit and await ``n`` trivial tasks one after another; the time of each."""
    bound = trivial @ Cores(1)
    took = []
    for i in range(n):
        start = time.perf_counter()
        await bound(i)
        took.append(time.perf_counter() - start)
    return took


async def nested_round_trips(n: int) -> tuple[str, list[float]]:
    """The same, as a task on a remote worker (it holds one of the 4 cores meanwhile)."""
    return gl.GVAR.instance, await round_trips(n)


async def fan_out(n: int) -> tuple[float, float]:
    """Gather ``n`` trivial tasks; the wall time and this process's CPU time it took."""
    bound = trivial @ Cores(1)
    start, cpu = time.perf_counter(), time.process_time()
    values = await gl.gather(*(bound(i) for i in range(n)))
    took, used = time.perf_counter() - start, time.process_time() - cpu
    assert values == list(range(n))
    return took, used


async def nested_fan_out(n: int) -> tuple[str, float, float]:
    """The same from a task on a remote worker, its core lent to its subtasks meanwhile."""
    async with gl.released():
        took, used = await fan_out(n)
    return gl.GVAR.instance, took, used


async def first_result(n: int) -> float:
    """Submit ``n`` trivial tasks at once; how long until the first of them has ended."""
    bound = trivial @ Cores(1)
    start = time.perf_counter()
    handles = [bound(i) for i in range(n)]
    first = None
    async for _ in gl.as_completed(handles):
        if first is None:
            first = time.perf_counter() - start
    assert first is not None
    return first


async def nested_first_result(n: int) -> float:
    async with gl.released():
        return await first_result(n)


async def start_workers(address: str, count: int) -> list[trio.Process]:
    command = [
        sys.executable,
        "-m",
        "grainlike",
        "worker",
        address,
        "--resources",
        "cores:2,mem:2G",
    ]
    processes = [
        await trio.lowlevel.open_process(
            [*command, "--name", f"w{i}"],
            env=ENV,
            stderr=subprocess.DEVNULL,
        )
        for i in range(count)
    ]
    dispatcher = gl.current_session().dispatcher
    with trio.fail_after(60):
        while len(dispatcher.worker_ids()) < count:
            await trio.sleep(0.05)
    return processes


async def remote(args: argparse.Namespace) -> None:
    address = gl.current_session().address
    assert address is not None
    processes = await start_workers(address, 2)
    try:
        one = Cores(1)
        await fan_out(1000)  # warm up: the shape's duration is learned, pipelining starts
        await (nested_fan_out @ one)(1000)

        if "latency" in args.figures:
            await round_trips(100)
            from_main = await round_trips(args.latency)
            where, nested = await (nested_round_trips @ one)(args.latency)
            print(f"latency, from main: one trivial task submit -> result: {_ms(from_main)}")
            print(f"latency, from a task on remote worker {where}: {_ms(nested)}")

        if "throughput" in args.figures:
            main_rates, nested_rates, main_cpu, nested_cpu, parent_cpu = [], [], [], [], []
            main_first, nested_first = [], []
            n = args.n
            for _ in range(args.rounds):
                if args.pause:
                    print(f"pausing {args.pause}s: dispatcher pid {os.getpid()}, workers", end="")
                    print(f" {[p.pid for p in processes]}", flush=True)
                    await trio.sleep(args.pause)
                cpu = time.process_time()
                took, _ = await fan_out(n)
                main_cpu.append((time.process_time() - cpu) / n)
                main_rates.append(n / took)
                cpu = time.process_time()
                where, took, used = await (nested_fan_out @ one)(n)
                nested_cpu.append((time.process_time() - cpu) / n)
                nested_rates.append(n / took)
                parent_cpu.append(used / n)
                main_first.append(await first_result(n))
                nested_first.append(await (nested_first_result @ one)(n))
            ratio = statistics.median(main_rates) / statistics.median(nested_rates)
            rounds = ", ".join(
                f"{m:,.0f}/{s:,.0f}" for m, s in zip(main_rates, nested_rates, strict=True)
            )
            print(
                f"throughput, {n:,} trivial tasks gathered from main: median "
                f"{statistics.median(main_rates):,.0f} tasks/s; dispatcher's process CPU "
                f"{statistics.median(main_cpu) * 1e6:.0f} µs/task"
            )
            print(
                f"throughput, {n:,} gathered by one parent on remote worker {where}: median "
                f"{statistics.median(nested_rates):,.0f} tasks/s; dispatcher's process CPU "
                f"{statistics.median(nested_cpu) * 1e6:.0f} µs/task, the parent's worker "
                f"process {statistics.median(parent_cpu) * 1e6:.0f} µs/task"
            )
            print(f"throughput, main / nested: {ratio:.2f}x (rounds, main/nested: {rounds})")
            print(
                f"the first of {n:,} results submitted at once: from main after "
                f"{statistics.median(main_first) * 1e3:.0f} ms, from the parent after "
                f"{statistics.median(nested_first) * 1e3:.0f} ms (medians)"
            )
    finally:
        for process in processes:
            process.terminate()
            await process.wait()


# -- embedded: what dependencies cost ----------------------------------------------------------


async def independent(n: int) -> float:
    bound = trivial @ Cores(1)
    start = time.perf_counter()
    await gl.gather(*(bound(i) for i in range(n)))
    return time.perf_counter() - start


async def chain_of_handles(n: int) -> float:
    """``n`` tasks, each taking the previous one's handle, all submitted at once."""
    bound = inc @ Cores(1)
    start = time.perf_counter()
    handle = bound(0)
    for _ in range(n - 1):
        handle = bound(handle)
    assert await handle == n
    return time.perf_counter() - start


async def chain_of_awaits(n: int) -> float:
    """The same chain, each call submitted once the one before returned."""
    bound = inc @ Cores(1)
    start = time.perf_counter()
    value = 0
    for _ in range(n):
        value = await bound(value)
    assert value == n
    return time.perf_counter() - start


async def fan_in(n: int) -> float:
    """``n`` independent tasks and one that takes all their handles in a list."""
    bound = trivial @ Cores(1)
    start = time.perf_counter()
    handles = [bound(i) for i in range(n)]
    assert await (total @ Cores(1))(handles) == n * (n - 1) // 2
    return time.perf_counter() - start


async def embedded(args: argparse.Namespace) -> None:
    n = args.n
    kinds = {
        "independent": independent,
        "chain of handles": chain_of_handles,
        "chain of awaits": chain_of_awaits,
        f"fan-in {n:,} -> 1": fan_in,
    }
    for measure in kinds.values():
        await measure(1000)  # warm up
    took: dict[str, list[float]] = {name: [] for name in kinds}
    for _ in range(args.rounds):
        for name, measure in kinds.items():
            took[name].append(await measure(n))
    base = statistics.median(took["independent"])
    for name, times in took.items():
        median = statistics.median(times)
        print(
            f"dependencies, embedded cores:2, {n:,} tasks, {name}: median {median * 1e3:.0f} ms "
            f"({median / n * 1e6:.1f} µs/task, {median / base:.2f}x independent)"
        )


FIGURES = ("latency", "throughput", "dependencies")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="tasks per throughput round")
    parser.add_argument("--latency", type=int, default=2000, help="round trips to time")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per figure")
    parser.add_argument("--pause", type=float, default=0.0, help="seconds before each round")
    parser.add_argument("figures", nargs="*", help=f"some of {', '.join(FIGURES)} (all)")
    args = parser.parse_args()
    args.figures = args.figures or list(FIGURES)
    if unknown := set(args.figures) - set(FIGURES):
        parser.error(f"unknown figures: {', '.join(sorted(unknown))}")
    if {"latency", "throughput"} & set(args.figures):
        gl.run(remote, args, listen="127.0.0.1:0", local=False, key=KEY, stats=None)
    if "dependencies" in args.figures:
        gl.run(embedded, args, resources="cores:2", stats=None)


if __name__ == "__main__":
    main()
