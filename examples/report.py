"""See what ran where: a small mixed workload on two workers, its event log, report and trace.

Run it with ``python examples/report.py [DIR]`` (a new temporary directory by default).
A dispatcher with an embedded worker and one ``grainlike worker`` process on 127.0.0.1 run
async, sync, subprocess and two-core tasks; one task fails, one fails once and is retried.
It logs every event to ``DIR/run.jsonl`` (``gl.run(main, events=...)``, as ``grainlike run
script.py --events DIR/run.jsonl`` does), then runs

    grainlike report DIR/run.jsonl -o DIR/report.html --trace DIR/trace.json

for the report (open it in a browser) and the trace (open it in Perfetto or
``chrome://tracing``).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

import trio

import grainlike as gl
from grainlike import Cores, Memory, WTime

KEY = secrets.token_bytes(32)
CORES = min(len(os.sched_getaffinity(0)), 2)


async def simulate(step: int) -> int:
    """An async task, waiting as an I/O-bound or external job would."""
    await trio.sleep(0.15 + 0.1 * (step % 4))
    return step


def crunch(n: int) -> int:
    """A sync task: it runs in a worker process, which measures its CPU time and memory."""
    return sum(i * i for i in range(n))


async def solve() -> None:
    """A subprocess on two cores (or one, on a one-core machine)."""
    await gl.run_process([sys.executable, "-c", "import time; time.sleep(0.4)"])


async def flaky(marker: str) -> str:
    """Fails on its first attempt (it leaves a marker file), succeeds on the second."""
    await trio.sleep(0.15)
    path = Path(marker)
    if not path.exists():
        path.touch()
        raise RuntimeError("the license server did not answer")
    return "second time lucky"


async def broken(value: int) -> None:
    await trio.sleep(0.2)
    raise ValueError(f"bad input {value}")


async def start_worker(address: str, log: Path) -> trio.Process:
    command = [sys.executable, "-m", "grainlike", "worker", address]
    command += ["--name", "node-2", "--resources", f"cores:{CORES},mem:2G"]
    with log.open("w") as stream:  # the worker's own log lines, apart from the example's
        return await trio.lowlevel.open_process(
            command, env=dict(os.environ, GRAINLIKE_KEY=KEY.hex()), stdout=stream, stderr=stream
        )


async def main(directory: Path) -> None:
    session = gl.current_session()
    assert session.address is not None
    worker = await start_worker(session.address, directory / "worker.log")
    try:
        while "node-2" not in session.dispatcher.worker_ids():
            await trio.sleep(0.05)
        marker = str(directory / "flaky-marker")
        await gl.gather(
            *((simulate @ Cores(1) & WTime(group="simulate"))(step) for step in range(12)),
            *((crunch @ Cores(1) & Memory("256M"))(n) for n in (300_000, 600_000, 900_000)),
            *((solve @ Cores(CORES))() for _ in range(2)),
            (flaky @ Cores(1)).options(retries=1)(marker),
        )
        try:
            await (broken @ Cores(1))(42)
        except ValueError as error:
            print(f"one task failed, as it should: {error}")
        session.dispatcher.drain_workers("node-2", "the example is done with it")
        with trio.fail_after(30):
            await worker.wait()
    finally:
        if worker.returncode is None:
            worker.terminate()
            await worker.wait()


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="grainlike-"))
    out.mkdir(parents=True, exist_ok=True)
    events = out / "run.jsonl"
    gl.run(main, out, listen="127.0.0.1:0", key=KEY, events=events, stats=None, name="local")
    report, trace = out / "report.html", out / "trace.json"
    command = [sys.executable, "-m", "grainlike", "report", str(events), "-o", str(report)]
    done = subprocess.run([*command, "--trace", str(trace)], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(done.stderr)
    complete = [e for e in json.loads(trace.read_text())["traceEvents"] if e["ph"] == "X"]
    print(f"events: {events} ({len(events.read_text().splitlines())} events)")
    print(f"report: {report}")
    print(f"trace:  {trace} ({len(complete)} complete events, one per run)")
    print(done.stdout.splitlines()[0])  # grainlike report's summary line
