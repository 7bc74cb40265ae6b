"""Grain 0.17.1's side of the side-by-side figures (run under ``bench/peers/.venv-grain``).

Run: ``bench/peers/.venv-grain/bin/python bench/peers/grain_driver.py FIGURE --out FILE``.
Uses Grain's public API: ``grain.delayed.run(main, config_file=..., local=...)``, ``@delayed``
functions bound with ``@ Cores(n)`` / ``@ Memory(gb)``, ``grain.delayed.each``, and workers
started as ``python -m grain.worker --url tcp://HOST:PORT --res JSON`` (what ``grain up`` puts in
its job scripts).  Cluster figures use Grain's default scheduler, Gnaw (the Go daemon that Grain
starts itself, listening on ``head.listen``), unless ``GRAIN_SCHEDULER=builtin`` selects the
in-process ``GrainExecutor`` (``head.gnaw.enabled = false``).  Embedded figures use ``local=``,
which is always the in-process ``GrainExecutor``.
"""

# Grain has no type information; mypy does not check this file (see pyproject.toml).

from __future__ import annotations

import collections
import json
import os
import sys
import tempfile
import time

import _common as common
import psutil
import trio
from grain.delayed import delayed, each, run
from grain.resource import Cores, Memory

SCHEDULER = os.environ.get("GRAIN_SCHEDULER", "gnaw")
# Grain starts its Gnaw daemon as "gnaw" from PATH, as in an activated venv.
os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")


async def trivial(i):
    return i


# Task functions import what they use: dill sends a function of __main__ by value but not the
# modules it refers to, and the worker's __main__ is grain.worker.


async def whoami(i):
    import os  # Grain names every worker on a host after the host; its pid tells them apart

    return os.getpid()


async def nap(seconds):
    import trio

    await trio.sleep(seconds)


TRIVIAL = delayed(trivial)
WHOAMI = delayed(whoami)
NAP = delayed(nap)


def write_config(directory, port, gnaw, gnaw_log):
    path = os.path.join(directory, "grain.toml")
    url = f"tcp://127.0.0.1:{port}"
    with open(path, "w") as file:
        file.write(
            f'address = "{url}"\n'
            "[head]\n"
            f'listen = "{url}"\n'
            "[head.gnaw]\n"
            f"enabled = {'true' if gnaw else 'false'}\n"
            f'log_file = "{gnaw_log}"\n'
            'idle_quit = "30s"\n'
        )
    return path, url


def start_workers(args, url, res, count=2):
    return [
        common.start_process(
            [sys.executable, "-m", "grain.worker", "--url", url, "--res", json.dumps(res)], args
        )
        for _ in range(count)
    ]


async def wait_for_workers(args, workers, rss):
    """Run small batches of tasks until every worker process has run one (Grain has no public
    call that lists connected workers, and under Gnaw the head does not know them)."""
    wanted = {w.pid for w in workers}
    seen = set()
    res = Cores(1)
    with trio.fail_after(common.WORKERS_UP_TIMEOUT):
        while seen != wanted:
            seen |= set(await each([(WHOAMI @ res)(i) for i in range(50)]))
            await trio.sleep(0.05)
    # Our other children: the Gnaw daemon, which Grain starts in a session of its own.  It is
    # part of Grain's dispatcher, and the runner must be able to find it to end it.
    rss.extra = [p for p in psutil.Process().children() if p.pid not in wanted]
    for daemon in rss.extra:
        common.record_pid(args, daemon.pid)


async def throughput(bound_fn, res, count):
    start = time.perf_counter()
    results = await each([(bound_fn @ res)(i) for i in range(count)])
    return count / (time.perf_counter() - start), results


async def round_trips(args):
    res = Cores(1)
    for i in range(common.scaled(common.ROUND_TRIP_WARMUP, args)):
        await (TRIVIAL @ res)(i)
    latencies = []
    for i in range(common.scaled(common.ROUND_TRIPS, args)):
        start = time.perf_counter()
        await (TRIVIAL @ res)(i)
        latencies.append(time.perf_counter() - start)
    return common.round_trip_figures(latencies)


async def mixed(args, total_cores):
    widths = common.mixed_widths(common.scaled(common.MIXED, args))
    requests = {1: Cores(1), 2: Cores(2)}
    start = time.perf_counter()
    await each([(NAP @ requests[w])(common.MIXED_SLEEP) for w in widths])
    took = time.perf_counter() - start
    ideal = common.ideal_makespan(widths, total_cores)
    return {"makespan_s": took, "ideal_s": ideal, "ratio": took / ideal}


def cluster_main(args, url, out, rss):
    figure = args.figure
    cores = 2 if figure == "mixed_cluster" else 1
    worker_res = {"Cores": {"N": cores}}
    if figure == "memory":
        worker_res["Memory"] = {"M": common.WORKER_MEMORY_GB}

    async def main():
        workers = start_workers(args, url, worker_res)
        await wait_for_workers(args, workers, rss)
        if figure == "cluster":
            await throughput(TRIVIAL, Cores(1), common.scaled(common.WARMUP, args))
            rss.peak = 0
            out["tasks_per_s"], _ = await throughput(
                TRIVIAL, Cores(1), common.scaled(common.TASKS, args)
            )
            out["peak_rss_mb"] = rss.peak_mb
            out["rss_processes"] = 1 + len(rss.extra)
        elif figure == "memory":
            request = Memory(common.MEMORY_REQUEST_GB)
            await throughput(WHOAMI, request, common.scaled(common.WARMUP, args))
            out["tasks_per_s"], ran_on = await throughput(
                WHOAMI, request, common.scaled(common.TASKS, args)
            )
            names = {w.pid: f"w{i}" for i, w in enumerate(workers)}
            out["per_worker"] = dict(
                sorted(collections.Counter(names.get(p, str(p)) for p in ran_on).items())
            )
        elif figure == "latency":
            out.update(await round_trips(args))
        elif figure == "mixed_cluster":
            out.update(await mixed(args, total_cores=2 * cores))

    return main


def embedded_main(args, out):
    figure = args.figure

    async def main():
        if figure == "embedded":
            await throughput(TRIVIAL, Cores(1), common.scaled(common.WARMUP, args))
            out["tasks_per_s"], _ = await throughput(
                TRIVIAL, Cores(1), common.scaled(common.TASKS, args)
            )
        elif figure == "embedded_latency":
            out.update(await round_trips(args))
        elif figure == "mixed_embedded":
            out.update(await mixed(args, total_cores=2))

    return main


def main():
    args = common.parse_args(common.FIGURES[:7])  # not placement and queued: grainlike only
    out = {"tool": "grain", "scheduler": SCHEDULER}
    embedded = args.figure in ("embedded", "embedded_latency", "mixed_embedded")
    if embedded:
        out["scheduler"] = "builtin (local)"
    with tempfile.TemporaryDirectory() as directory, common.cleaned_up():
        config, url = write_config(
            directory, common.free_port(), SCHEDULER == "gnaw", args.out + ".gnaw.log"
        )
        if embedded:
            # local= selects Grain's in-process executor with a local worker of that capacity;
            # it still listens on head.listen for remote workers (none come).
            run(embedded_main(args, out), local=Cores(2), config_file=config)
        else:
            with common.PeakRSS() as rss:
                run(cluster_main(args, url, out, rss), config_file=config)
        out["self_maxrss_mb"] = common.PeakRSS.self_maxrss_mb()
    common.write(args, out)


if __name__ == "__main__":
    main()
