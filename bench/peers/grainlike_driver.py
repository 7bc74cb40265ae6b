"""grainlike's side of the side-by-side figures (run under the project's venv).

Run: ``.venv/bin/python bench/peers/grainlike_driver.py FIGURE --out FILE``, from a directory that
has no ``grainlike`` package in it, with the grainlike to measure first on ``PYTHONPATH``: the
worker processes are ``python -m grainlike worker``, which import whatever that finds first.
The definitions are those of ``grain_driver.py``: same task functions, counts and workers.
"""

from __future__ import annotations

import collections
import gc
import importlib.util
import os
import secrets
import sys
import time
import tracemalloc
from argparse import Namespace
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import _common as common
import trio

import grainlike as gl
from grainlike import Cores, Memory


async def trivial(i: int) -> int:
    return i


async def whoami(i: int) -> str:
    import grainlike as gl

    return str(gl.GVAR.instance)


async def nap(seconds: float) -> None:
    import trio

    await trio.sleep(seconds)


KEY = secrets.token_bytes(32)


def start_workers(args: Namespace, address: str, resources: str, count: int = 2) -> list[str]:
    names = [f"w{i}" for i in range(count)]
    env = common.environment_with(GRAINLIKE_KEY=KEY.hex())
    for name in names:
        command = [sys.executable, "-m", "grainlike", "worker", address]
        command += ["--name", name, "--resources", resources]
        common.start_process(command, args, env)
    return names


async def wait_for_workers(count: int) -> None:
    dispatcher = gl.current_session().dispatcher
    with trio.fail_after(common.WORKERS_UP_TIMEOUT):
        while len(dispatcher.worker_ids()) < count:
            await trio.sleep(0.05)


async def throughput(bound: Any, count: int) -> tuple[float, list[Any]]:
    start = time.perf_counter()
    results = await gl.gather(*(bound(i) for i in range(count)))
    return count / (time.perf_counter() - start), results


async def round_trips(args: Namespace) -> dict[str, float]:
    bound = trivial @ Cores(1)
    for i in range(common.scaled(common.ROUND_TRIP_WARMUP, args)):
        await bound(i)
    latencies = []
    for i in range(common.scaled(common.ROUND_TRIPS, args)):
        start = time.perf_counter()
        await bound(i)
        latencies.append(time.perf_counter() - start)
    return common.round_trip_figures(latencies)


async def mixed(args: Namespace, total_cores: int) -> dict[str, float]:
    widths = common.mixed_widths(common.scaled(common.MIXED, args))
    bound = {1: nap @ Cores(1), 2: nap @ Cores(2)}
    start = time.perf_counter()
    await gl.gather(*(bound[w](common.MIXED_SLEEP) for w in widths))
    took = time.perf_counter() - start
    ideal = common.ideal_makespan(widths, total_cores)
    return {"makespan_s": took, "ideal_s": ideal, "ratio": took / ideal}


def cluster_main(
    args: Namespace, out: dict[str, Any], rss: common.PeakRSS
) -> Callable[[], Awaitable[None]]:
    figure = args.figure
    cores = 2 if figure == "mixed_cluster" else 1
    resources = f"cores:{cores}"
    if figure == "memory":
        resources += f",mem:{common.WORKER_MEMORY_GB}G"

    async def main() -> None:
        address = gl.current_session().address
        assert address is not None
        names = start_workers(args, address, resources)
        await wait_for_workers(len(names))
        if figure == "cluster":
            await throughput(trivial @ Cores(1), common.scaled(common.WARMUP, args))
            rss.peak = 0
            out["tasks_per_s"], _ = await throughput(
                trivial @ Cores(1), common.scaled(common.TASKS, args)
            )
            out["peak_rss_mb"] = rss.peak_mb
            out["rss_processes"] = 1
        elif figure == "memory":
            bound = whoami @ Memory(common.MEMORY_REQUEST_GB)
            await throughput(bound, common.scaled(common.WARMUP, args))
            out["tasks_per_s"], ran_on = await throughput(bound, common.scaled(common.TASKS, args))
            out["per_worker"] = dict(sorted(collections.Counter(ran_on).items()))
        elif figure == "latency":
            out.update(await round_trips(args))
        elif figure == "mixed_cluster":
            out.update(await mixed(args, total_cores=2 * cores))

    return main


def embedded_main(args: Namespace, out: dict[str, Any]) -> Callable[[], Awaitable[None]]:
    figure = args.figure

    async def main() -> None:
        if figure == "embedded":
            await throughput(trivial @ Cores(1), common.scaled(common.WARMUP, args))
            out["tasks_per_s"], _ = await throughput(
                trivial @ Cores(1), common.scaled(common.TASKS, args)
            )
        elif figure == "embedded_latency":
            out.update(await round_trips(args))
        elif figure == "mixed_embedded":
            out.update(await mixed(args, total_cores=2))
        elif figure == "queued":
            out.update(await queued(common.scaled(common.QUEUED, args)))

    return main


async def queued(count: int) -> dict[str, float]:
    """Bytes per queued task, measured as bench/bench_embedded.py does: a Cores(2) task holds
    both cores, then ``count`` Cores(1) tasks are submitted under tracemalloc."""
    blocker = (nap @ Cores(2))(3600)
    await trio.sleep(0.01)
    bound = trivial @ Cores(1)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    start = time.perf_counter()
    handles = [bound(i) for i in range(count)]
    took = time.perf_counter() - start
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    for handle in handles:
        handle.cancel()
    blocker.cancel()
    return {"bytes_per_task": (after - before) / count, "queued": count, "submit_s": took}


def placement(out: dict[str, Any]) -> None:
    """µs per placed task of one pure ``plan`` pass, with ``measure`` from the
    bench/bench_placement.py of the grainlike being measured (it uses dispatcher internals)."""
    package = Path(gl.__file__).resolve().parent
    script = package.parent / "bench" / "bench_placement.py"
    if not script.exists():
        script = Path(__file__).resolve().parent.parent / "bench_placement.py"
    spec = importlib.util.spec_from_file_location("bench_placement", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out["script"] = str(script)
    for workers in (100, 1000):
        # One pass over 100,000 fresh task objects: with the collector on, whether a full
        # collection of them falls inside the timed pass depends on how many objects the
        # checkout's Task makes, which made the figure of two alike passes differ threefold.
        gc.collect()
        gc.disable()
        try:
            placed, took = module.measure(workers, 100_000)
        finally:
            gc.enable()
        out[f"us_per_task_{workers}"] = took * 1e6 / max(placed, 1)
        out[f"placed_{workers}"] = placed


def main() -> None:
    args = common.parse_args(common.FIGURES)
    out: dict[str, Any] = {"tool": "grainlike", "package": os.path.dirname(gl.__file__)}
    with common.cleaned_up():
        if args.figure == "placement":
            placement(out)
        elif args.figure in ("embedded", "embedded_latency", "mixed_embedded", "queued"):
            gl.run(embedded_main(args, out), resources="cores:2", stats=None)
        else:
            with common.PeakRSS() as rss:
                gl.run(
                    cluster_main(args, out, rss),
                    listen="127.0.0.1:0",
                    local=False,
                    key=KEY,
                    stats=None,
                )
        out["self_maxrss_mb"] = common.PeakRSS.self_maxrss_mb()
    common.write(args, out)


if __name__ == "__main__":
    main()
