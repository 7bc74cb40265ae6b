"""Process-pool figures (issue 11): parallel speed-up, per-task overhead, start-up, idle memory.

Run: ``.venv/bin/python bench/bench_pool.py [--repeats N]`` (prints one line per figure).

- speed-up: N CPU-bound pure-Python ``Cores(1)`` tasks on N cores (N = this machine's usable
  cores), in worker processes and, for comparison, in worker threads; against one task alone,
  each measured in the same warm session.
- overhead: trivial sync tasks (``f @ Cores(1)`` returning its argument), embedded, in process
  mode and thread mode, all submitted at once (gathered) and one after another; microseconds
  per task, and the difference.
- start-up: the first sync task of a fresh session (it starts a child) against the second.
- idle memory: the resident size of one idle child (its unique set and its RSS).
- round trip: one frame to a child process and back over the pool's channel, nothing else.
- breakdown: the steps of one trivial process task on either side, timed in this process.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import timeit

import psutil

import grainlike as gl
from grainlike import Cores


def burn(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i
    return total


def trivial(i: int) -> int:
    return i


#: About a quarter of a second of pure Python on the reference machine.
WORK = 4_000_000


async def speedup(repeats: int) -> None:
    cores = len(os.sched_getaffinity(0))
    for executor in ("process", "thread"):
        bound = (burn @ Cores(1)).options(executor=executor)
        await gl.gather(*(bound(1000) for _ in range(cores)))  # every child warm
        ratios, ones, alls = [], [], []
        for _ in range(repeats):
            start = time.perf_counter()
            await bound(WORK)
            one = time.perf_counter() - start
            start = time.perf_counter()
            await gl.gather(*(bound(WORK) for _ in range(cores)))
            together = time.perf_counter() - start
            ones.append(one)
            alls.append(together)
            ratios.append(cores * one / together)
        print(
            f"speed-up, {executor}: {cores} CPU-bound Cores(1) tasks on {cores} cores: "
            f"median {statistics.median(ratios):.2f}x (one {statistics.median(ones):.3f} s, "
            f"{cores} at once {statistics.median(alls):.3f} s; {repeats} runs)"
        )


async def overhead(repeats: int, n: int = 2000) -> None:
    """Rounds of process mode and thread mode alternate, so that both see the same load."""
    bounds = {ex: (trivial @ Cores(1)).options(executor=ex) for ex in ("process", "thread")}
    for bound in bounds.values():
        await gl.gather(*(bound(i) for i in range(200)))  # warm up
    for how in ("gathered", "one at a time"):
        times: dict[str, list[float]] = {ex: [] for ex in bounds}
        for _ in range(repeats):
            for executor, bound in bounds.items():
                count = n if how == "gathered" else n // 4
                start = time.perf_counter()
                if how == "gathered":
                    await gl.gather(*(bound(i) for i in range(count)))
                else:
                    for i in range(count):
                        await bound(i)
                times[executor].append((time.perf_counter() - start) / count * 1e6)
        process, thread = (statistics.median(times[ex]) for ex in ("process", "thread"))
        pairs = zip(times["process"], times["thread"], strict=True)
        more = statistics.median(p - t for p, t in pairs)
        print(
            f"overhead, {how}: trivial sync tasks (f @ Cores(1)) embedded on 2 cores: "
            f"process {process:.0f} µs, thread {thread:.0f} µs per task; process - thread "
            f"{more:+.0f} µs (median of {repeats} alternating rounds)"
        )


async def first_task() -> tuple[float, float]:
    bound = trivial @ Cores(1)
    start = time.perf_counter()
    await bound(0)
    first = time.perf_counter() - start
    start = time.perf_counter()
    await bound(0)
    return first, time.perf_counter() - start


def startup(repeats: int) -> None:
    firsts, seconds = [], []
    for _ in range(repeats):
        first, second = gl.run(first_task, resources="cores:2", stats=None)
        firsts.append(first)
        seconds.append(second)
    print(
        f"start-up: first sync task of a session {statistics.median(firsts) * 1e3:.0f} ms "
        f"(best {min(firsts) * 1e3:.0f}), the next {statistics.median(seconds) * 1e3:.1f} ms; "
        f"{repeats} sessions"
    )


async def idle_child() -> None:
    await (trivial @ Cores(1))(0)
    (child,) = [p for p in psutil.Process().children() if "_child" in " ".join(p.cmdline())]
    info = child.memory_full_info()
    print(
        f"idle child: RSS {info.rss / 2**20:.1f} MiB, unique (USS) {info.uss / 2**20:.1f} MiB "
        f"(pid {child.pid})"
    )


def breakdown(number: int = 20_000) -> None:
    """Microseconds of each step of a trivial process task, timed in this process."""
    import msgpack

    from grainlike.resource import as_resources
    from grainlike.wire import Call, CallPacker, CallUnpacker, Usage, dumps_payload, unpack_outcome
    from grainlike.worker import _child

    allocation = as_resources(Cores([sorted(os.sched_getaffinity(0))[-1]]))
    packer, unpacker = CallPacker(), CallUnpacker()
    binding, peak = _child._Binding(), _child._Peak()
    placed = dumps_payload(allocation)
    call = packer.pack(Call(trivial, (1,)))
    answer = msgpack.packb([1, True, dumps_payload(1), 0.5, 2**25])
    steps = {
        "parent: pack the call and its frame": lambda: msgpack.packb(
            [1, packer.pack(Call(trivial, (1,))), placed, "w", False, None]
        ),
        "parent: unpack the answer and its usage": lambda: (
            msgpack.unpackb(answer),
            unpack_outcome(True, dumps_payload(1), task_id=1),
            Usage(0.1, 0.01, 2**25),
        ),
        "child: bind to the allocation (cached)": lambda: binding.bind(placed),
        "child: unpack, run, pickle the result": lambda: _child._run(call, 1, unpacker),
        "child: reset the peak": peak.reset,
        "child: read CPU and peak": _child._used,
        "child: look for leftover processes": _child._reap_leftovers,
    }
    for name, step in steps.items():
        per_call = timeit.timeit(step, number=number) / number * 1e6
        print(f"breakdown: {name}: {per_call:.1f} µs")


_ECHO = (
    "import sys; from grainlike.worker._child import _Channel; c = _Channel(int(sys.argv[1]))\n"
    "while (frame := c.receive()) is not None: c.send(frame)"
)


async def round_trip(number: int = 5000) -> None:
    """A frame to a child process and back, over the pool's channel, with nothing else."""
    import socket
    import subprocess
    import sys

    import trio

    from grainlike.wire import FramedStream

    ours, theirs = socket.socketpair()
    echo = subprocess.Popen(
        [sys.executable, "-c", _ECHO, str(theirs.fileno())], pass_fds=(theirs.fileno(),)
    )
    theirs.close()
    channel = FramedStream(trio.SocketStream(trio.socket.from_stdlib_socket(ours)))
    frame = b"x" * 100
    for _ in range(200):
        await channel.send(frame)
        await channel.receive()
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(number):
        await channel.send(frame)
        await channel.receive()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    await channel.aclose()
    echo.wait()
    print(
        f"round trip: one 100-byte frame to a child and back: {wall / number * 1e6:.0f} µs, "
        f"of which {cpu / number * 1e6:.0f} µs CPU in the worker"
    )


async def main(repeats: int) -> None:
    await speedup(repeats)
    await overhead(repeats)
    await round_trip()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    repeats = parser.parse_args().repeats
    cores = f"cores:{len(os.sched_getaffinity(0))}"
    gl.run(main, repeats, resources=cores, stats=None)
    startup(repeats)
    gl.run(idle_child, resources=cores, stats=None)
    breakdown()
