"""Hardening with real processes and files: TLS pinning end to end, and a run whose event log
and statistics file cannot be written still finishing with main's result."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import cloudpickle
import pytest
import trio

import grainlike as gl
from grainlike import Cores
from grainlike.wire import certificate_fingerprint, ensure_self_signed, tls_server_context

pytestmark = pytest.mark.slow

# Workers cannot import this test module: send its functions by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

KEY = bytes(range(32))
GRAINLIKE = [sys.executable, "-m", "grainlike"]


def key_file(directory: Path) -> Path:
    """A private directory holding the shared key, as ``~/.config/grainlike`` does."""
    directory.mkdir(mode=0o700)
    path = directory / "key"
    path.write_text(KEY.hex())
    path.chmod(0o600)
    return path


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("GRAINLIKE_KEY", None)
    return env


async def where() -> str:
    return gl.GVAR.instance


async def start_worker(address: str, name: str, *flags: str) -> trio.Process:
    command = [
        *GRAINLIKE,
        "worker",
        address,
        "--name",
        name,
        "--resources",
        "cores:1,mem:1G",
        "--connect-timeout",
        "10",
        *flags,
    ]
    return await trio.lowlevel.open_process(
        command, env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


async def wait_for_exit(process: trio.Process) -> str:
    """The process's stderr once it has exited (within 30 s)."""
    assert process.stderr is not None
    chunks = []
    with trio.fail_after(30):
        async for chunk in process.stderr:
            chunks.append(chunk)
        await process.wait()
    return b"".join(chunks).decode()


async def test_a_worker_pinning_the_auto_certificate_joins_and_others_are_refused(
    tmp_path: Path,
) -> None:
    keys = key_file(tmp_path / "grainlike")
    tls = tls_server_context(*ensure_self_signed(keys.parent))
    stranger, _ = ensure_self_signed(key_file(tmp_path / "stranger").parent)
    async with gl.open_session(
        listen="127.0.0.1:0", local=False, key=KEY, stats=None, tls=tls
    ) as session:
        assert session.address is not None
        pinned = await start_worker(
            session.address, "pinned", "--tls", "auto", "--key-file", str(keys)
        )
        try:
            with trio.fail_after(30):
                while "pinned" not in session.dispatcher.worker_ids():
                    await trio.sleep(0.05)
            assert await (where @ Cores(1))() == "pinned"
            wrong = await start_worker(
                session.address,
                "wrong",
                "--tls-fingerprint",
                certificate_fingerprint(stranger),
                "--key-file",
                str(keys),
            )
            plain = await start_worker(session.address, "plain", "--key-file", str(keys))
            wrong_err = await wait_for_exit(wrong)
            await wait_for_exit(plain)
            assert wrong.returncode == 2
            assert f"TLS with the dispatcher at {session.address} failed" in wrong_err
            assert "Traceback" not in wrong_err
            assert f"not the pinned {certificate_fingerprint(stranger)}" in wrong_err
            assert plain.returncode != 0
            assert session.dispatcher.worker_ids() == ["pinned"]
        finally:
            pinned.kill()
            await pinned.wait()


async def test_a_worker_that_finds_every_handshake_slot_taken_retries_and_joins(
    tmp_path: Path,
) -> None:
    # Silent connections fill the dispatcher's pending handshakes; it closes the worker's
    # connection at once, with the worker's greeting unread, which resets it.
    keys = key_file(tmp_path / "grainlike")
    async with gl.open_session(
        listen="127.0.0.1:0", local=False, key=KEY, stats=None, max_pending_handshakes=8
    ) as session:
        assert session.address is not None
        host, port = session.address.rsplit(":", 1)
        silent = [await trio.open_tcp_stream(host, int(port)) for _ in range(8)]
        worker = await start_worker(session.address, "late", "--key-file", str(keys))
        try:
            await trio.sleep(1.5)
            assert worker.returncode is None, "the worker gave up while every slot was taken"
            for stream in silent:
                await stream.aclose()
            with trio.fail_after(30):
                while "late" not in session.dispatcher.worker_ids():
                    await trio.sleep(0.05)
            assert await (where @ Cores(1))() == "late"
        finally:
            for stream in silent:
                await stream.aclose()
            worker.kill()
            await worker.wait()


FEW_FILES_SCRIPT = """
import resource
import sys

import grainlike as gl
from grainlike import Cores

resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))  # the dispatcher runs out of descriptors


async def where():
    return gl.GVAR.instance


async def main():
    print("ran on", await (where @ Cores(1))(), flush=True)


gl.run(main, listen=sys.argv[1], local=False, key=bytes(range(32)), stats=None,
       handshake_timeout=2.0, progress=False)
"""


async def test_a_dispatcher_out_of_file_descriptors_warns_now_and_then_and_serves_later(
    tmp_path: Path,
) -> None:
    keys = key_file(tmp_path / "grainlike")
    script = tmp_path / "few_files.py"
    script.write_text(FEW_FILES_SCRIPT)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dispatcher = await trio.lowlevel.open_process(
        [sys.executable, str(script), f"127.0.0.1:{port}"],
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    silent: list[trio.SocketStream] = []
    try:
        with trio.fail_after(30):
            while not silent:
                try:
                    silent.append(await trio.open_tcp_stream("127.0.0.1", port))
                except OSError:
                    await trio.sleep(0.05)
        for _ in range(99):  # more than the dispatcher has descriptors for
            silent.append(await trio.open_tcp_stream("127.0.0.1", port))
        await trio.sleep(1.0)  # it accepts what it can, then waits for descriptors
        worker = await start_worker(f"127.0.0.1:{port}", "patient", "--key-file", str(keys))
        await trio.sleep(1.0)
        for stream in silent:  # the handshake timeout would drop them too, two seconds on
            await stream.aclose()
        err = await wait_for_exit(dispatcher)
        assert dispatcher.returncode == 0, err
        assert dispatcher.stdout is not None
        assert (await dispatcher.stdout.receive_some()).decode() == "ran on patient\n"
        assert "Traceback" not in err
        warnings = [line for line in err.splitlines() if "cannot accept connections now" in line]
        assert warnings and "Too many open files" in warnings[0], err
        assert len(warnings) <= 3, err  # one every 5 s at most, however many attempts
        worker.kill()
        await worker.wait()
    finally:
        for stream in silent:
            await stream.aclose()
        if dispatcher.returncode is None:
            dispatcher.kill()
            await dispatcher.wait()


CLI_SCRIPT = """
import sys
from pathlib import Path

import grainlike as gl
from grainlike import Cores

async def where():
    return gl.GVAR.instance

async def main():
    Path(sys.argv[1]).write_text(gl.current_session().address)
    print("ran on", await (where @ Cores(1))())
"""


async def test_grainlike_run_with_tls_auto_serves_a_worker_with_tls_auto(tmp_path: Path) -> None:
    keys = key_file(tmp_path / "grainlike")
    script, address_file = tmp_path / "script.py", tmp_path / "address"
    script.write_text(CLI_SCRIPT)
    run_command = [
        *GRAINLIKE,
        "run",
        str(script),
        "--listen",
        "127.0.0.1:0",
        "--no-local",
        "--no-progress",
        "--tls",
        "auto",
        "--key-file",
        str(keys),
        "--stats",
        str(tmp_path / "stats.json"),
        "--",
        str(address_file),
    ]
    dispatcher = await trio.lowlevel.open_process(
        run_command, env=environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    worker = None
    try:
        with trio.fail_after(30):
            while not address_file.exists() or not address_file.read_text():
                await trio.sleep(0.05)
        worker = await start_worker(
            address_file.read_text(), "pinned", "--tls", "auto", "--key-file", str(keys)
        )
        assert dispatcher.stdout is not None
        with trio.fail_after(30):
            out = b"".join([chunk async for chunk in dispatcher.stdout]).decode()
        err = await wait_for_exit(dispatcher)
    finally:
        for process in (dispatcher, worker):
            if process is not None and process.returncode is None:
                process.kill()
                await process.wait()
    assert dispatcher.returncode == 0, err
    assert out == "ran on pinned\n"
    fingerprint = certificate_fingerprint(keys.parent / "tls-cert.pem")
    assert f"--tls-fingerprint {fingerprint}" in err
    assert "without TLS" not in err


FULL_DISK_SCRIPT = """
import shutil
import sys
from pathlib import Path

import grainlike as gl
from grainlike import Cores

async def one():
    return 1

async def main():
    total = sum(await gl.gather(*[(one @ Cores(1))() for _ in range(3)]))
    state = Path(sys.argv[1])
    shutil.rmtree(state)
    state.write_text("")  # the statistics directory is gone: saving what is learned must fail
    # What a task of a WTime group that ran for 12 s records (without waiting 12 s).
    gl.current_session().dispatcher.learned.record("g", 12.0)
    print("total", total)
"""


def test_a_run_whose_event_log_and_statistics_cannot_be_written_exits_0(tmp_path: Path) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system")
    script, state = tmp_path / "script.py", tmp_path / "state"
    script.write_text(FULL_DISK_SCRIPT)
    state.mkdir()
    done = subprocess.run(
        [
            *GRAINLIKE,
            "run",
            str(script),
            "--resources",
            "cores:2,mem:1G",
            "--no-progress",
            "--events",
            "/dev/full",
            "--stats",
            str(state / "stats.json"),
            "--",
            str(state),
        ],
        env=environment(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (done.returncode, done.stdout) == (0, "total 3\n"), done.stderr
    assert "event log /dev/full not written: [Errno 28] No space left on device" in done.stderr
    assert f"not saved to {state / 'stats.json'}" in done.stderr
    assert "Traceback" not in done.stderr
