"""The command line: argument handling of ``grainlike run`` and friends."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import grainlike as gl
from grainlike.cli import main

SCRIPT = """
import sys
import grainlike as gl
from grainlike import Cores

async def echo():
    return gl.GVAR.res.N

async def main():
    print("argv", sys.argv[1:], "cores", await (echo @ Cores(1))())
"""


def test_run_passes_arguments_after_a_double_dash_to_the_script(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    status = main(
        [
            "run",
            str(script),
            "--resources",
            "cores:1",
            "--stats",
            str(tmp_path / "s.json"),
            "--",
            "--flag",
            "value",
        ]
    )
    assert status == 0
    assert capsys.readouterr().out.strip() == "argv ['--flag', 'value'] cores 1"


def test_run_says_where_it_listens_also_on_a_port_the_system_chose(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRAINLIKE_KEY", "ab" * 32)
    script = tmp_path / "script.py"
    script.write_text("async def main():\n    print('ran')\n")
    argv = ["run", str(script), "--listen", "127.0.0.1:0", "--no-progress", "--no-local"]
    assert main([*argv, "--stats", str(tmp_path / "learned.db")]) == 0
    out, err = capsys.readouterr()
    assert out == "ran\n"
    port = re.fullmatch(r"grainlike run: listening on 127\.0\.0\.1:(\d+)\n", err)
    assert port is not None and int(port[1]) > 0, err


def test_run_refuses_a_script_without_an_async_main(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = tmp_path / "script.py"
    script.write_text("def main():\n    pass\n")
    assert main(["run", str(script)]) == 2
    assert "define `async def main()`" in capsys.readouterr().err


def test_run_names_a_missing_script(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "no/such/script.py"]) == 2
    assert "no/such/script.py: no such script" in capsys.readouterr().err


def test_tls_certificate_without_listen_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    assert main(["run", str(script), "--tls-cert", "cert.pem"]) == 2
    assert "--tls-cert needs --listen" in capsys.readouterr().err


# -- TLS flags -----------------------------------------------------------------------------------


def test_tls_auto_without_listen_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    assert main(["run", str(script), "--tls", "auto"]) == 2
    assert "--tls needs --listen" in capsys.readouterr().err


def private_key_file(tmp_path: Path) -> Path:
    directory = tmp_path / "grainlike"
    directory.mkdir(mode=0o700)
    key_file = directory / "key"
    key_file.write_text("00" * 32)
    key_file.chmod(0o600)
    return key_file


def test_a_worker_with_tls_auto_needs_the_dispatchers_certificate_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key_file = private_key_file(tmp_path)
    status = main(
        ["status", "--connect", "127.0.0.1:9", "--key-file", str(key_file), "--tls", "auto"]
    )
    assert status == 2
    err = capsys.readouterr().err
    assert f"--tls auto: no dispatcher certificate at {key_file.parent / 'tls-cert.pem'}" in err
    assert "grainlike run --tls auto" in err


@pytest.mark.parametrize(
    "flags",
    [
        ["--tls", "auto", "--tls-fingerprint", "SHA256:" + "ab" * 32],
        ["--tls-fingerprint", "SHA256:" + "ab" * 32, "--tls-ca", "ca.pem"],
    ],
)
def test_a_client_takes_one_way_to_trust_the_dispatcher(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str]
) -> None:
    key_file = private_key_file(tmp_path)
    assert main(["quit", "x", "--connect", "127.0.0.1:9", "--key-file", str(key_file), *flags]) == 2
    expected = f"give one of --tls, --tls-fingerprint and --tls-ca, not {flags[0]} and {flags[2]}"
    assert expected in capsys.readouterr().err


def test_a_malformed_fingerprint_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key_file = private_key_file(tmp_path)
    args = ["status", "--connect", "127.0.0.1:9", "--key-file", str(key_file)]
    assert main([*args, "--tls-fingerprint", "SHA256:12"]) == 2
    assert "TLS fingerprint 'SHA256:12': expected" in capsys.readouterr().err


def test_a_key_file_in_a_directory_others_may_write_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key_file = private_key_file(tmp_path)
    key_file.parent.chmod(0o777)
    assert main(["status", "--connect", "127.0.0.1:9", "--key-file", str(key_file)]) == 2
    err = capsys.readouterr().err
    assert f"directory {str(key_file.parent)!r} has mode 0777" in err
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    ("flags", "passed"),
    [
        (["--tls", "auto"], "--tls auto"),
        (["--tls-fingerprint", "SHA256:" + "AB" * 32], "--tls-fingerprint SHA256:" + "AB" * 32),
        ([], ""),
    ],
)
def test_up_passes_its_way_of_trusting_the_dispatcher_to_the_jobs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], passed: str
) -> None:
    key_file = private_key_file(tmp_path)
    command = ["up", "--slurm", "--dry", "--dispatcher", "login1:4242", "--key-file"]
    assert main([*command, str(key_file), *flags]) == 0
    (exec_line,) = [line for line in capsys.readouterr().out.splitlines() if "exec " in line]
    assert f"--key-file {key_file}" in exec_line
    assert ("--tls" in exec_line) == bool(passed)
    assert passed in exec_line


# -- exit codes: 0 done, 1 the user's main raised, 2 a usage error in one line ---------------

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port on 127.0.0.1 that refuses connections: bound, never listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def _script(tmp_path: Path, text: str) -> str:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(text))
    return str(script)


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_a_bad_resources_value_is_one_line_naming_it_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = _script(tmp_path, "async def main():\n    print('ran')\n")
    assert main(["run", script, "--resources", "cores:2,gpu:x"]) == 2
    out, err = capsys.readouterr()
    assert out == ""  # main never ran
    assert _one_line(err).startswith("grainlike run: --resources gpu:x:")


def test_a_bad_pool_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = _script(tmp_path, "async def main():\n    pass\n")
    assert main(["run", script, "--pool", "license:lots"]) == 2
    assert "--pool license:lots" in _one_line(capsys.readouterr().err)


def test_an_exception_of_main_prints_its_traceback_from_the_script_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = _script(
        tmp_path,
        """
        async def main():
            raise ValueError("the input is odd")
        """,
    )
    assert main(["run", script, "--stats", str(tmp_path / "s.json")]) == 1
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert lines[1] == f'  File "{script}", line 3, in main'
    assert lines[-1] == "ValueError: the input is odd"
    assert "ExceptionGroup" not in err


def test_a_resource_error_raised_by_main_itself_is_the_users_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = _script(
        tmp_path,
        """
        from grainlike import Cores

        async def main():
            Cores(0)
        """,
    )
    assert main(["run", script, "--stats", str(tmp_path / "s.json")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback")
    assert err.strip().endswith("ResourceError: Cores(0): a request needs at least 1 core")


def test_a_failed_task_exits_1_with_the_task_function_in_the_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = _script(
        tmp_path,
        """
        import grainlike as gl
        from grainlike import Cores

        def divide(x):
            return 1 / x

        async def main():
            await (divide @ Cores(1))(0)
        """,
    )
    assert main(["run", script, "--stats", str(tmp_path / "s.json"), "--resources", "cores:1"]) == 1
    err = capsys.readouterr().err
    assert "in divide" in err
    assert err.strip().endswith("ZeroDivisionError: division by zero")


def test_main_returning_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = _script(tmp_path, "async def main():\n    print('done')\n")
    assert main(["run", script, "--stats", str(tmp_path / "s.json")]) == 0
    assert capsys.readouterr().out == "done\n"


def test_a_listen_address_in_use_is_one_line_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = _script(tmp_path, "async def main():\n    print('ran')\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        status = main(["run", script, "--listen", address, "--stats", str(tmp_path / "s.json")])
    assert status == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert _one_line(err) == f"grainlike run: --listen {address}: Address already in use"


@pytest.mark.parametrize(
    ("words", "option"),
    [
        (["status", "--connect"], "--connect"),
        (["quit", "x", "--connect"], "--connect"),
        (["down", "--no-drain", "--dispatcher"], "--dispatcher"),
        (["up", "--slurm", "--dry", "--dispatcher"], "--dispatcher"),
        (["worker"], "dispatcher"),
    ],
)
@pytest.mark.parametrize("address", ["localhost", "127.0.0.1:port", "127.0.0.1:70000"])
def test_a_malformed_dispatcher_address_is_one_line(
    words: list[str], option: str, address: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*words, address]) == 2
    assert _one_line(capsys.readouterr().err) == (
        f"grainlike {words[0]}: {option} {address!r}: expected HOST:PORT, e.g. 127.0.0.1:4242"
    )


def test_a_bad_walltime_of_a_worker_is_one_line_naming_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["worker", "127.0.0.1:4242", "--walltime", "2x"]) == 2
    assert _one_line(capsys.readouterr().err).startswith("grainlike worker: --walltime wtime('2x')")


@pytest.mark.parametrize("command", ["status", "quit"])
def test_a_closed_port_is_one_line_naming_the_address(
    command: str,
    closed_port: int,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GRAINLIKE_KEY", KEY.hex())
    address = f"127.0.0.1:{closed_port}"
    words = (
        ["status", "--connect", address]
        if command == "status"
        else ["quit", "w*", "--connect", address]
    )
    assert main(words) == 2
    assert _one_line(capsys.readouterr().err) == (
        f"grainlike {command}: cannot reach the dispatcher at {address}: connection refused"
    )


def test_a_worker_refuses_a_name_close_to_a_kinds(
    closed_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["worker", f"127.0.0.1:{closed_port}", "--resources", "coers:1"]) == 2
    assert _one_line(capsys.readouterr().err) == (
        "grainlike worker: --resources coers:1: coers is no resource kind; did you mean cores? "
        "(a worker takes no counter whose name is this close to a kind's)"
    )


def test_a_worker_says_which_names_it_takes_as_counters(
    closed_port: int, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRAINLIKE_KEY", KEY.hex())
    address = f"127.0.0.1:{closed_port}"
    words = ["worker", address, "--resources", "cores:1,license:2", "--connect-timeout", "0"]
    assert main(words) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0] == (
        "grainlike worker: license:2 is a counter (no kind is named license; "
        "--import the module that registers one if a kind is meant)"
    )
    assert lines[-1].startswith(f"grainlike worker: cannot reach the dispatcher at {address}")


@pytest.mark.filterwarnings("default::UserWarning")
def test_a_typo_of_a_kind_in_run_resources_is_a_one_line_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = _script(tmp_path, "async def main():\n    print('ran')\n")
    assert main(["run", script, "--resources", "coers:1", "--stats", str(tmp_path / "s.json")]) == 0
    out, err = capsys.readouterr()
    assert out == "ran\n"
    assert _one_line(err) == (
        "grainlike run: warning: coers:1: coers is no resource kind, so it is a counter; "
        "did you mean cores?"
    )


def test_import_registers_a_custom_kind_before_resources_are_parsed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "gltest_burst_kind.py").write_text(BURST_KIND)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    words = ["detect", "--import", "gltest_burst_kind", "--resources", "cores:1,burst:7"]
    assert main(words) == 0
    out = capsys.readouterr().out
    assert out.startswith("cores:1,") and out.strip().endswith(",burst:7")
    from grainlike.resource import kind_for_name

    burst = kind_for_name("burst")
    assert burst is not None and burst.__module__ == "gltest_burst_kind"


def test_an_import_that_fails_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["worker", "127.0.0.1:4242", "--import", "no_such_module_here"]) == 2
    assert _one_line(capsys.readouterr().err) == (
        "grainlike worker: --import no_such_module_here: No module named 'no_such_module_here'"
    )


def test_detect_json_is_strict_json_with_null_for_no_limit(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["detect", "--json", "--resources", "cores:2,mem:1G,gpu:0"]) == 0
    data = json.loads(capsys.readouterr().out, parse_constant=_no_constants)
    assert data["capacity"].startswith("cores:2,mem:1G")
    assert data["available"]["cores"] == [2.0, 2.0]
    assert data["available"]["mem"] == [1.0, 1.0]


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"grainlike {gl.__version__}\n"


def test_a_missing_profile_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    words = ["up", "--slurm", "--profile", "no-such.toml", "--dispatcher", "127.0.0.1:4242"]
    assert main([*words, "--dry"]) == 2
    assert _one_line(capsys.readouterr().err) == (
        "grainlike up: profile 'no-such.toml': cannot read it: No such file or directory"
    )


def test_up_points_jobs_at_a_private_copy_of_an_environment_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRAINLIKE_KEY", KEY.hex())
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    words = ["up", "--slurm", "--dispatcher", "login1:4242", "--dry"]
    assert main(words) == 0
    script = capsys.readouterr().out
    key_file = tmp_path / "state" / "grainlike" / "key-login1_4242"
    assert f"--key-file {key_file} " in script
    assert KEY.hex() not in script
    assert not key_file.exists()  # --dry writes nothing


def test_up_with_a_key_file_points_jobs_at_that_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRAINLIKE_KEY", OTHER_KEY.hex())  # --key-file wins, as for the dispatcher
    key_file = tmp_path / "key"
    key_file.write_text(KEY.hex())
    key_file.chmod(0o600)
    words = ["up", "--slurm", "--dispatcher", "login1:4242", "--key-file", str(key_file), "--dry"]
    assert main(words) == 0
    assert f"--key-file {key_file} " in capsys.readouterr().out


def test_down_with_nothing_recorded_says_so(
    tmp_path: Path,
    closed_port: int,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert main(["down", "--dispatcher", f"127.0.0.1:{closed_port}", "--no-drain"]) == 0
    assert capsys.readouterr().out == "cancelled: no recorded worker jobs\n"


def _no_constants(name: str) -> None:
    raise AssertionError(f"{name} is not JSON")


BURST_KIND = """
from typing import ClassVar, Self

import attrs

from grainlike.resource import Kind, register_kind


@attrs.define(eq=False)
class Burst(Kind):
    name: ClassVar[str] = "burst"
    units: int
    _free: int = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._free = self.units

    def _fits(self, req: Self, *, total: bool) -> bool:
        return req.units <= (self.units if total else self._free)

    def _take(self, req: Self) -> Self:
        self._free -= req.units
        return type(self)(req.units)

    def _give(self, allocation: Self) -> None:
        self._free += allocation.units

    def _stat(self) -> tuple[float, float]:
        return (float(self._free), float(self.units))

    def to_text(self) -> str:
        return str(self._free)

    @classmethod
    def from_text(cls, value: str | None, *, capacity: bool) -> Self | None:
        return cls(int(value or 1))

    def _same_value(self, other: Self) -> bool:
        return (self.units, self._free) == (other.units, other._free)

    def _value_hash(self) -> int:
        return hash(self.units)


register_kind(Burst)
"""


# -- against a real dispatcher in another process ---------------------------------------------

DISPATCHER = """
import sys

import trio

import grainlike as gl

for name in sys.argv[2:]:
    __import__(name)


async def main():
    print(gl.current_session().address, flush=True)
    # Until the test closes our stdin: then the dispatcher ends, as a finished run's does.
    await trio.to_thread.run_sync(sys.stdin.read)


gl.run(main, listen="127.0.0.1:0", key=bytes.fromhex(sys.argv[1]), stats=None, local=False)
"""


@pytest.fixture
def dispatcher(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """A dispatcher (key ``KEY``, no local worker) in a process of its own: its address."""
    with _dispatcher(tmp_path) as running:
        yield running


@contextmanager
def _dispatcher(tmp_path: Path, *imports: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    script = tmp_path / "dispatcher.py"
    script.write_text(DISPATCHER)
    process = subprocess.Popen(
        [sys.executable, str(script), KEY.hex(), *imports],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        assert process.stdout is not None
        address = process.stdout.readline().strip()
        assert address.startswith("127.0.0.1:"), process.communicate(timeout=30)
        yield address, process
    finally:
        process.kill()
        process.communicate(timeout=30)


GRAINLIKE = (sys.executable, "-m", "grainlike")


def _grainlike(
    *args: str, key: bytes = KEY, timeout: float = 60, cwd: Path | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*GRAINLIKE, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env={**os.environ, "GRAINLIKE_KEY": key.hex(), **env},
    )


@pytest.mark.slow
def test_status_with_another_key_is_one_line_and_exit_2(
    dispatcher: tuple[str, subprocess.Popen[str]],
) -> None:
    done = _grainlike("status", "--connect", dispatcher[0], key=OTHER_KEY)
    assert done.returncode == 2
    assert _one_line(done.stderr) == (
        "grainlike status: the dispatcher's proof is wrong: the two sides hold different keys"
    )


@pytest.mark.slow
def test_status_on_a_closed_port_is_one_line_and_exit_2(closed_port: int) -> None:
    done = _grainlike("status", "--connect", f"127.0.0.1:{closed_port}")
    assert (done.returncode, done.stdout) == (2, "")
    assert _one_line(done.stderr) == (
        f"grainlike status: cannot reach the dispatcher at 127.0.0.1:{closed_port}: "
        "connection refused"
    )


@pytest.mark.slow
def test_a_worker_with_import_offers_the_custom_kind_and_status_json_is_strict(
    tmp_path: Path,
) -> None:
    (tmp_path / "gltest_burst_kind.py").write_text(BURST_KIND)
    with _dispatcher(tmp_path, "gltest_burst_kind") as (address, _):
        offer = ["--import", "gltest_burst_kind", "--resources", "cores:1,burst:7"]
        worker = subprocess.Popen(
            [*GRAINLIKE, "worker", address, "--name", "bb", *offer],
            cwd=tmp_path,
            env={**os.environ, "GRAINLIKE_KEY": KEY.hex()},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            for _ in range(200):
                done = _grainlike("status", "--connect", address, "--json")
                assert done.returncode == 0, done.stderr
                report = json.loads(done.stdout, parse_constant=_no_constants)
                if report["workers"]:
                    break
                time.sleep(0.1)
            (offered,) = report["workers"]
            assert offered["id"] == "bb"
            assert offered["resources"]["burst"] == [7.0, 7.0]
            assert offered["resources"]["wtime"] == [None, None]  # no limit: null, not Infinity
        finally:
            worker.kill()
            worker.communicate(timeout=30)


@pytest.mark.slow
def test_up_refuses_to_submit_jobs_with_a_key_the_dispatcher_refuses(
    dispatcher: tuple[str, subprocess.Popen[str]], tmp_path: Path
) -> None:
    address = dispatcher[0]
    done = _grainlike(
        "up", "--slurm", "--dispatcher", address, key=OTHER_KEY, XDG_STATE_HOME=str(tmp_path)
    )
    assert done.returncode == 2
    assert _one_line(done.stderr) == (
        f"grainlike up: the dispatcher at {address} refuses the key from $GRAINLIKE_KEY: its "
        "workers would be refused too; give `grainlike up` the dispatcher's key"
    )
    assert not (tmp_path / "grainlike" / f"jobs-{address.replace(':', '_')}.json").exists()


@pytest.mark.slow
def test_the_autoscaler_exits_0_with_one_line_when_its_dispatcher_ends(
    dispatcher: tuple[str, subprocess.Popen[str]], tmp_path: Path
) -> None:
    address, process = dispatcher
    scale = ["--min", "0", "--max", "2", "--period", "0.2", "--dispatcher", address]
    autoscaler = subprocess.Popen(
        [*GRAINLIKE, "up", "--slurm", *scale],
        env={**os.environ, "GRAINLIKE_KEY": KEY.hex(), "XDG_STATE_HOME": str(tmp_path)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.0)  # a few looks at a live dispatcher
        assert autoscaler.poll() is None
        process.communicate(timeout=30)  # closes its stdin: the dispatcher's run ends
        out, err = autoscaler.communicate(timeout=30)
    finally:
        autoscaler.kill()
    assert autoscaler.returncode == 0, err
    assert out == ""
    assert _one_line(err) == (
        f"grainlike up: the dispatcher at {address} has gone: no worker job to cancel"
    )


def test_the_command_line_passes_on_only_what_was_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The library owns its defaults: an option left out is not passed at all.
    from grainlike.worker import Departure, WorkerOptions

    workers: list[WorkerOptions] = []

    async def serve(
        address: str, key: bytes, capacity: object, options: WorkerOptions, *_: object
    ) -> Departure:
        workers.append(options)
        return Departure("drained: by the test")

    monkeypatch.setattr("grainlike._uplink.serve_remote_worker", serve)
    monkeypatch.setenv("GRAINLIKE_KEY", bytes(range(32)).hex())
    worker = ["worker", "127.0.0.1:9", "--resources", "cores:1,mem:1G,disk:0"]
    assert main(worker) == 0
    assert main([*worker, "--connect-timeout", "5", "--exit-margin", "2"]) == 0
    assert workers[0] == WorkerOptions()
    assert workers[1] == WorkerOptions(connect_timeout=5.0, exit_margin=2.0)

    runs: list[dict[str, object]] = []
    monkeypatch.setattr(gl, "run", lambda main, **options: runs.append(options))
    script = tmp_path / "flow.py"
    script.write_text("async def main():\n    return 1\n")
    assert main(["run", str(script), "--no-progress"]) == 0
    assert main(["run", str(script), "--max-retries", "0", "--no-worker-grace", "5"]) == 0
    assert "max_retries" not in runs[0] and "no_worker_grace" not in runs[0]
    assert (runs[1]["max_retries"], runs[1]["no_worker_grace"]) == (0, 5.0)
