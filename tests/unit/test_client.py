"""``grainlike status --watch``: the status of a real dispatcher, redrawn until it is stopped."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys

import pytest
import trio
from rich.console import Console

import grainlike as gl
from grainlike import Cores
from grainlike._client import watch_status
from grainlike.cli import main

pytestmark = pytest.mark.usefixtures("local_capacity")

KEY = bytes(range(32))


async def nap(seconds: float) -> None:
    await trio.sleep(seconds)


def a_console(*, terminal: bool) -> Console:
    return Console(file=io.StringIO(), width=140, force_terminal=terminal, color_system=None)


async def test_a_watch_draws_workers_tasks_shapes_and_why_tasks_wait_each_time() -> None:
    async with gl.open_session(stats=None, listen="127.0.0.1:0", key=KEY, name="box") as session:
        assert session.address is not None
        busy = (nap @ Cores(2))(5.0)
        waiting = (nap @ Cores(1))(0.1)
        while busy.task.worker is None:
            await trio.sleep(0.01)
        console = a_console(terminal=False)
        drawn = await watch_status(session.address, KEY, interval=0.05, count=3, console=console)
        busy.cancel()
        waiting.cancel()
    shown = console.file.getvalue()  # type: ignore[attr-defined]
    assert drawn == 3
    assert shown.count(f"grainlike status {session.address} at ") == 3
    assert re.search(r"box +│ +1 │ +0 │ +0/2 │ +4/4 │ +inf/inf", shown), shown
    assert "tasks: 1 queued, 1 running, 0 done" in shown
    assert "queued shapes" in shown
    assert "cores:1" in shown
    assert "oldest pending" in shown
    assert "box is busy" in shown


async def test_on_a_terminal_the_watch_redraws_in_place() -> None:
    async with gl.open_session(stats=None, listen="127.0.0.1:0", key=KEY, name="box") as session:
        assert session.address is not None
        console = a_console(terminal=True)
        await watch_status(session.address, KEY, interval=0.05, count=2, console=console)
    shown = console.file.getvalue()  # type: ignore[attr-defined]
    assert "\x1b[" in shown  # cursor movement: the table is drawn over its last frame
    assert "box" in shown


async def test_a_watch_ends_with_an_error_when_the_dispatcher_goes_away() -> None:
    stop = trio.Event()

    async def dispatcher(*, task_status: trio.TaskStatus[str]) -> None:
        async with gl.open_session(stats=None, listen="127.0.0.1:0", key=KEY) as session:
            assert session.address is not None
            task_status.started(session.address)
            await stop.wait()

    async with trio.open_nursery() as nursery:
        address = await nursery.start(dispatcher)
        nursery.start_soon(lambda: _later(0.3, stop.set))
        console = a_console(terminal=False)
        with pytest.raises(gl.GrainlikeError, match=f"the dispatcher at {address} went away"):
            await watch_status(address, KEY, interval=0.05, console=console)
    assert console.file.getvalue().count("grainlike status") >= 2  # type: ignore[attr-defined]


async def _later(seconds: float, then: object) -> None:
    await trio.sleep(seconds)
    assert callable(then)
    then()


async def test_watching_where_no_dispatcher_listens_says_it_cannot_reach_it() -> None:
    with trio.socket.socket() as probe:  # a port nobody listens on
        await probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(
        gl.GrainlikeError,
        match=f"cannot reach the dispatcher at 127.0.0.1:{port}: connection refused",
    ):
        await watch_status(f"127.0.0.1:{port}", KEY, console=a_console(terminal=False))


async def test_status_of_an_address_where_nothing_listens_exits_2_with_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with trio.socket.socket() as probe:
        await probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert await trio.to_thread.run_sync(main, ["status", "--connect", f"127.0.0.1:{port}"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line == (
        f"grainlike status: cannot reach the dispatcher at 127.0.0.1:{port}: connection refused"
    )


def _status_command(address: str, *more: str) -> list[str]:
    return [sys.executable, "-m", "grainlike", "status", "--connect", address, "--watch", *more]


@pytest.mark.slow
async def test_status_watch_from_the_command_line_stops_after_count_and_on_ctrl_c() -> None:
    env = dict(os.environ, GRAINLIKE_KEY=KEY.hex(), COLUMNS="140")
    async with gl.open_session(stats=None, listen="127.0.0.1:0", key=KEY, name="box") as session:
        assert session.address is not None
        done = await trio.run_process(
            _status_command(session.address, "--count", "2", "--interval", "0.1"),
            capture_stdout=True,
            capture_stderr=True,
            env=env,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.decode().count("grainlike status") == 2
        process = await trio.lowlevel.open_process(
            _status_command(session.address, "--interval", "0.1"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        assert process.stdout is not None
        seen = b""
        with trio.fail_after(30):
            while b"box" not in seen:
                seen += await process.stdout.receive_some()
            process.send_signal(signal.SIGINT)
            assert await process.wait() == 0  # Ctrl-C is how a watch ends


@pytest.mark.slow
async def test_status_watch_exits_2_with_one_line_when_the_dispatcher_goes_away() -> None:
    env = dict(os.environ, GRAINLIKE_KEY=KEY.hex())
    async with gl.open_session(stats=None, listen="127.0.0.1:0", key=KEY) as session:
        assert session.address is not None
        address = session.address
        process = await trio.lowlevel.open_process(
            _status_command(address, "--interval", "0.1"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        assert process.stdout is not None and process.stderr is not None
        with trio.fail_after(30):
            seen = b""
            while b"grainlike status" not in seen:
                seen += await process.stdout.receive_some()
    with trio.fail_after(30):
        assert await process.wait() == 2
        error = b""
        while chunk := await process.stderr.receive_some():
            error += chunk
    assert error.decode().splitlines() == [
        f"grainlike status: the dispatcher at {address} went away (cannot reach the dispatcher "
        f"at {address}: connection refused)"
    ]
