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
