"""The command line: argument handling of ``grainlike run`` and friends."""

from __future__ import annotations

from pathlib import Path

import pytest

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
