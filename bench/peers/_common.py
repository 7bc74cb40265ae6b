"""What the side-by-side drivers share: the benchmark definitions and the plumbing.

This module uses only the standard library and psutil, so that the grainlike drivers (under the
project's venv) and the Grain drivers (under ``bench/peers/.venv-grain``) import the same file.
Counts are the definitions of the figures; ``--scale`` shrinks them for a quick trial run only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import psutil

TASKS = 10_000  # trivial async tasks per throughput figure
WARMUP = 1_000  # tasks run before the timed batch
ROUND_TRIPS = 2_000  # one task at a time, awaited in sequence
ROUND_TRIP_WARMUP = 200
MIXED = 500  # tasks of MIXED_SLEEP seconds, alternating Cores(1)/Cores(2)
MIXED_SLEEP = 0.01
QUEUED = 1_000_000  # tasks queued for the memory-per-queued-task figure
MEMORY_REQUEST_GB = 0.1  # the non-binding Memory request
WORKER_MEMORY_GB = 1  # what each worker offers for it
WORKERS_UP_TIMEOUT = 60.0  # seconds for the worker processes to connect

FIGURES = (
    "cluster",  # Cores(1) throughput through 2 workers of 1 core, and the dispatcher's peak RSS
    "memory",  # Memory(0.1)-only tasks through 2 workers of 1 core and 1 GB: rate and spread
    "latency",  # cluster round trip, one task at a time
    "embedded",  # Cores(1) throughput, one in-process worker of 2 cores
    "embedded_latency",  # embedded round trip
    "mixed_cluster",  # makespan / ideal, 2 workers of 2 cores
    "mixed_embedded",  # makespan / ideal, one in-process worker of 2 cores
    "placement",  # grainlike only: pure placement pass, bench/bench_placement.py
    "queued",  # grainlike only: bytes per queued task at 1,000,000 queued
)


def parse_args(figures: Sequence[str]) -> argparse.Namespace:
    """The command line every driver takes: ``FIGURE --out FILE [--scale F] [--pidfile FILE]``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("figure", choices=list(figures))
    parser.add_argument("--out", required=True, help="write the figures here, as JSON")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply counts (trials only)")
    parser.add_argument("--pidfile", help="append the id of every process started here")
    return parser.parse_args()


def scaled(count: int, args: argparse.Namespace) -> int:
    scale: float = args.scale
    return max(1, round(count * scale))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for a tool that cannot bind port 0
    and say which port it got)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


_started: list[subprocess.Popen[bytes]] = []


def start_process(
    command: Sequence[str], args: argparse.Namespace, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start a helper process (a worker) that ``cleaned_up`` kills, and record its id."""
    process = subprocess.Popen(
        list(command),
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _started.append(process)
    record_pid(args, process.pid)
    return process


def record_pid(args: argparse.Namespace, pid: int) -> None:
    """Tell the runner about a process (id and start time), so that it can end it if this
    driver dies without doing so."""
    if args.pidfile:
        with contextlib.suppress(psutil.Error), open(args.pidfile, "a") as file:
            file.write(f"{pid} {psutil.Process(pid).create_time()!r}\n")


@contextlib.contextmanager
def cleaned_up() -> Iterator[None]:
    """On the way out, however it goes: end every process this driver started (its workers, and
    any daemon a tool started as our child), first politely, then with SIGKILL."""
    try:
        yield
    finally:
        children = [p for p in psutil.Process().children(recursive=True)]
        for child in children:
            with contextlib.suppress(psutil.Error):
                child.terminate()
        for process in _started:
            with contextlib.suppress(OSError):
                process.terminate()
        _, alive = psutil.wait_procs(children, timeout=2)
        for child in alive:
            with contextlib.suppress(psutil.Error):
                child.kill()
        psutil.wait_procs(alive, timeout=2)
        for process in _started:
            with contextlib.suppress(OSError):
                process.kill()
            process.wait()


class PeakRSS:
    """Sample the resident memory of this process and of extra processes every ``interval`` s.

    ``peak_mb`` is the highest sampled sum; ``self_maxrss_mb`` is the kernel's exact peak for
    this process alone (``ru_maxrss``, which includes everything since it started).
    """

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.extra: list[psutil.Process] = []
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._me = psutil.Process()

    def _loop(self) -> None:
        while not self._stop.is_set():
            total = self._me.memory_info().rss
            for process in self.extra:
                with contextlib.suppress(psutil.Error):
                    total += process.memory_info().rss
            self.peak = max(self.peak, total)
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_mb(self) -> float:
        return self.peak / 1e6

    @staticmethod
    def self_maxrss_mb() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6


def round_trip_figures(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "median_ms": statistics.median(ordered) * 1e3,
        "p99_ms": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1e3,
        "count": len(ordered),
    }


def mixed_widths(count: int) -> list[int]:
    """Cores per task: 1, 2, 1, 2, ..."""
    return [1 + i % 2 for i in range(count)]


def ideal_makespan(widths: Sequence[int], total_cores: int) -> float:
    """Total core-seconds over total cores."""
    return sum(widths) * MIXED_SLEEP / total_cores


def write(args: argparse.Namespace, figures: dict[str, Any]) -> None:
    figures = {
        "figure": args.figure,
        "scale": args.scale,
        "python": sys.version.split()[0],
        "finished": time.time(),
        **figures,
    }
    with open(args.out, "w") as file:
        json.dump(figures, file, indent=1)
    print(json.dumps(figures))


def environment_with(**extra: str) -> dict[str, str]:
    return dict(os.environ, **extra)
