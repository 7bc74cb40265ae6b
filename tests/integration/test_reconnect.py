"""Workers that outlive their dispatcher: real ``grainlike worker`` and ``grainlike run``
processes on 127.0.0.1, the dispatcher killed with SIGKILL and started again on the same port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import pytest

pytestmark = pytest.mark.slow

KEY = bytes(range(32))
GRAINLIKE = [sys.executable, "-m", "grainlike"]
ENV = dict(os.environ, GRAINLIKE_KEY=KEY.hex())

SCRIPT = """
import sys
import time
from pathlib import Path

import trio

import grainlike as gl
from grainlike import Cores


async def where():
    return gl.GVAR.instance


async def hold(state):
    Path(state, "holding").write_text("")
    try:
        await trio.sleep(3600)
    finally:
        Path(state, "cancelled").write_text("")


def block(state):
    Path(state, "holding").write_text("")
    time.sleep(60)  # in a thread of the worker, which nothing can stop


async def main():
    mode, state = sys.argv[1], sys.argv[2]
    print(mode, "ran on", await (where @ Cores(1))(), flush=True)
    if mode == "first":
        await (hold @ Cores(1))(state)  # the dispatcher is killed while this runs
    elif mode == "thread":
        await (block @ Cores(1)).options(executor="thread")(state)
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    """Processes a test starts; whatever still runs at its end is killed."""
    started: list[subprocess.Popen[str]] = []
    try:
        yield started
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()
            process.communicate()


def start(started: list[subprocess.Popen[str]], *command: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [*GRAINLIKE, *command],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    started.append(process)
    return process


def dispatcher(
    started: list[subprocess.Popen[str]], script: Path, port: int, mode: str, state: Path
) -> subprocess.Popen[str]:
    return start(
        started,
        "run",
        str(script),
        "--listen",
        f"127.0.0.1:{port}",
        "--no-local",
        "--no-progress",
        "--stats",
        str(state / "learned.db"),
        "--",
        mode,
        str(state),
    )


@attrs.frozen
class Pair:
    """A ``grainlike run`` dispatcher of ``SCRIPT`` and one ``grainlike worker`` of it."""

    script: Path
    port: int
    dispatcher: subprocess.Popen[str]
    worker: subprocess.Popen[str]


def dispatcher_and_worker(
    started: list[subprocess.Popen[str]], state: Path, mode: str, *worker_flags: str
) -> Pair:
    script = state / "script.py"
    script.write_text(SCRIPT)
    port = free_port()
    first = dispatcher(started, script, port, mode, state)
    worker = start(
        started, "worker", f"127.0.0.1:{port}", "--resources", "cores:1,mem:1G", *worker_flags
    )
    return Pair(script, port, first, worker)


def test_a_worker_survives_a_killed_dispatcher_and_serves_the_restarted_one(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    pair = dispatcher_and_worker(
        processes, tmp_path, "first", "--name", "survivor", "--reconnect-timeout", "30"
    )
    script, port, first, worker = pair.script, pair.port, pair.dispatcher, pair.worker
    wait_for(lambda: (tmp_path / "holding").exists(), "the first dispatcher's long task")
    os.kill(first.pid, signal.SIGKILL)
    first_out, _ = first.communicate(timeout=10)
    assert first_out == "first ran on survivor\n"
    wait_for(lambda: (tmp_path / "cancelled").exists(), "the worker to cancel its task")
    assert worker.poll() is None  # still there, waiting for its dispatcher
    second = dispatcher(processes, script, port, "second", tmp_path)
    second_out, second_err = second.communicate(timeout=60)
    assert (second.returncode, second_out) == (0, "second ran on survivor\n"), second_err
    _, worker_err = worker.communicate(timeout=30)
    assert worker.returncode == 0, worker_err  # the second run ended and said goodbye
    assert "reconnecting to 127.0.0.1" in worker_err
    assert f"rejoined 127.0.0.1:{port} as survivor" in worker_err
    assert (
        worker_err.splitlines()[-1]
        == "grainlike worker: the dispatcher said goodbye: its run ended"
    )


def test_a_worker_whose_dispatcher_does_not_come_back_exits_with_one_line(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    pair = dispatcher_and_worker(
        processes, tmp_path, "first", "--name", "orphan", "--reconnect-timeout", "3"
    )
    first, worker = pair.dispatcher, pair.worker
    wait_for(lambda: (tmp_path / "holding").exists(), "the dispatcher's long task")
    os.kill(first.pid, signal.SIGKILL)
    lost = time.monotonic()
    _, err = worker.communicate(timeout=30)
    waited = time.monotonic() - lost
    assert worker.returncode == 1, err
    (last,) = [line for line in err.splitlines() if line.startswith("grainlike worker:")]
    assert last == err.splitlines()[-1]
    assert last.startswith("grainlike worker: the dispatcher was lost: ")
    assert "did not come back within 3s (--reconnect-timeout; last try: cannot reach" in last
    assert 3 <= waited < 15
    assert (tmp_path / "cancelled").exists()


def test_a_worker_in_a_thread_task_does_not_wait_for_it_to_notice_its_dispatcher_is_gone(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    pair = dispatcher_and_worker(processes, tmp_path, "thread", "--reconnect-timeout", "3")
    first, worker = pair.dispatcher, pair.worker
    wait_for(lambda: (tmp_path / "holding").exists(), "the dispatcher's thread task")
    os.kill(first.pid, signal.SIGKILL)
    lost = time.monotonic()
    _, err = worker.communicate(timeout=50)
    waited = time.monotonic() - lost
    assert worker.returncode == 1, err
    assert waited < 15, err  # not the 60 s the thread sleeps
    assert "task 2 (block) runs on in its thread, which cannot be stopped" in err
    assert "did not come back within 3s" in err.splitlines()[-1]
