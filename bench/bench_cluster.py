"""Remote-worker figures (issue 4): throughput through 2 worker processes, round-trip latency,
and a dispatcher with 200 lightweight workers' connections.

Run: ``.venv/bin/python bench/bench_cluster.py`` (prints one line per figure).
The workers are real ``grainlike worker`` processes on 127.0.0.1; for the scale figure, one
helper process runs 200 worker connections (each a full protocol client) in one event loop.
"""

from __future__ import annotations

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

SWARM = """
import sys, trio
from grainlike.resource import parse_resources
from grainlike.worker import WorkerOptions, serve_worker
address, count, key = sys.argv[1], int(sys.argv[2]), bytes.fromhex(sys.argv[3])
async def main():
    async with trio.open_nursery() as nursery:
        for i in range(count):
            capacity = parse_resources("cores:2,mem:2G", capacity=True)
            nursery.start_soon(serve_worker, address, key, capacity, WorkerOptions(name=f"sim{i}"))
trio.run(main)
"""


async def trivial(i: int) -> int:
    return i


async def wait_for_workers(count: int) -> None:
    dispatcher = gl.current_session().dispatcher
    with trio.fail_after(60):
        while len(dispatcher.worker_ids()) < count:
            await trio.sleep(0.05)


async def two_workers(address: str) -> None:
    processes = [
        await trio.lowlevel.open_process(
            [
                sys.executable,
                "-m",
                "grainlike",
                "worker",
                address,
                "--name",
                f"w{i}",
                "--resources",
                "cores:2,mem:2G",
            ],
            env=ENV,
            stderr=subprocess.DEVNULL,
        )
        for i in range(2)
    ]
    await wait_for_workers(2)
    bound = trivial @ Cores(1)
    await gl.gather(*(bound(i) for i in range(1000)))
    rates = []
    cpu = []
    for _ in range(3):
        start, used = time.perf_counter(), time.process_time()
        await gl.gather(*(bound(i) for i in range(10_000)))
        rates.append(10_000 / (time.perf_counter() - start))
        cpu.append((time.process_time() - used) / 10_000)
    print(
        f"throughput: 10,000 trivial tasks through 2 worker processes: median "
        f"{statistics.median(rates):,.0f} tasks/s (best {max(rates):,.0f}); the dispatcher's "
        f"process (with the caller) uses {statistics.median(cpu) * 1e6:.0f} µs of CPU per task"
    )
    latencies = []
    for i in range(500):
        start = time.perf_counter()
        await bound(i)
        latencies.append(time.perf_counter() - start)
    latencies.sort()
    print(
        f"latency: one task submit -> result over loopback: median "
        f"{statistics.median(latencies) * 1e3:.3f} ms, p90 {latencies[450] * 1e3:.3f} ms"
    )
    for process in processes:
        process.terminate()
        await process.wait()
    dispatcher = gl.current_session().dispatcher
    with trio.fail_after(30):
        while dispatcher.worker_ids():
            await trio.sleep(0.05)


async def swarm(address: str, count: int = 200) -> None:
    process = await trio.lowlevel.open_process(
        [sys.executable, "-c", SWARM, address, str(count), KEY.hex()],
        env=ENV,
        stderr=subprocess.DEVNULL,
    )
    await wait_for_workers(count)
    bound = trivial @ Cores(1)
    cpu = time.process_time()
    start = time.perf_counter()
    await gl.gather(*(bound(i) for i in range(10_000)))
    took = time.perf_counter() - start
    cpu = time.process_time() - cpu
    await trio.sleep(5)  # heartbeats only
    idle_cpu = time.process_time()
    await trio.sleep(5)
    idle_cpu = time.process_time() - idle_cpu
    lost = gl.current_session().dispatcher.worker_ids()
    print(
        f"scale: {count} worker connections: 10,000 tasks at {10_000 / took:,.0f} tasks/s, "
        f"dispatcher CPU {cpu / took * 100:.0f}% while busy, {idle_cpu / 5 * 100:.1f}% idle "
        f"(heartbeats only); {len(lost)} of {count} still connected"
    )
    process.terminate()
    await process.wait()


async def main() -> None:
    address = gl.current_session().address
    assert address is not None
    await two_workers(address)
    await swarm(address)


if __name__ == "__main__":
    gl.run(main, listen="127.0.0.1:0", local=False, key=KEY, stats=None)
