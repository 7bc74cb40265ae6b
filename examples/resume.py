"""A durable run: killed halfway, run again with the same journal, it picks up where it stopped.

The script runs 20 tasks: ``grainlike run examples/resume.py --journal run.db`` twice runs them
once.  Run as ``python examples/resume.py``, it starts itself that way in a subprocess, kills
that run with SIGKILL once half of the tasks are done (as an OOM killer or a rebooting login
node would), runs it again, and prints which tasks ran in each run: the second run runs only
what the first did not record, and prints the whole result.  Then it shows ``grainlike
journal``'s summary.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio

import grainlike as gl
from grainlike import Cores


async def simulate(i: int) -> int:
    await trio.sleep(0.1)
    # Which run ran it, for the demonstration: the environment is not part of the task's key.
    log = os.environ.get("RESUME_LOG")
    if log is not None:
        with open(log, "a") as file:
            file.write(f"{os.environ.get('RESUME_RUN', 'a run')} {i}\n")
    return i * i


async def main() -> None:
    results = await gl.gather(*((simulate @ Cores(1))(i) for i in range(20)))
    print(f"sum of the squares of 0..19: {sum(results)}")


def ran(log: Path, run: str) -> list[int]:
    """The tasks that ``run`` ran, as the log says."""
    if not log.exists():
        return []
    entries = (line.split() for line in log.read_text().splitlines())
    return sorted(int(i) for name, i in entries if name == run)


def demo(directory: Path) -> None:
    journal, log = directory / "run.db", directory / "ran.log"
    command = [
        *(sys.executable, "-m", "grainlike", "run", __file__, "--journal", str(journal)),
        *("--resources", "cores:2", "--no-progress", "--stats", str(directory / "learned.db")),
    ]
    env = dict(os.environ, RESUME_LOG=str(log))
    first = subprocess.Popen(command, env=dict(env, RESUME_RUN="first"), stdout=subprocess.PIPE)
    try:
        while len(ran(log, "first")) < 10:
            time.sleep(0.02)
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate()
    print(f"first run, killed: ran {ran(log, 'first')}")
    second = subprocess.run(
        command, env=dict(env, RESUME_RUN="second"), capture_output=True, text=True, check=True
    )
    print(f"second run: ran {ran(log, 'second')}")
    print(f"second run: {second.stdout.strip()}")
    summary = subprocess.run(
        [sys.executable, "-m", "grainlike", "journal", str(journal)],
        capture_output=True,
        text=True,
        check=True,
    )
    print(summary.stdout, end="")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as scratch:
        demo(Path(scratch))
