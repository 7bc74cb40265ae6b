"""Under ``CI=true`` a missing outside system fails its tests instead of skipping them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

USES_SLURM = "def test_needs_slurm(slurm):\n    assert slurm\n"


def _pytest_without_slurm(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run a test that needs the ``slurm`` fixture where no ``sinfo`` can be found."""
    shutil.copy(Path(__file__).with_name("conftest.py"), tmp_path / "conftest.py")
    (tmp_path / "test_needs_slurm.py").write_text(USES_SLURM)
    (tmp_path / "bin").mkdir()
    command = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider"]
    return subprocess.run(
        [*command, "-c", os.devnull, "--rootdir", str(tmp_path), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PATH": str(tmp_path / "bin"), **env},
    )


def test_without_slurm_the_slurm_tests_skip_outside_ci(tmp_path: Path) -> None:
    done = _pytest_without_slurm(tmp_path, CI="")
    assert done.returncode == 0, done.stdout
    assert "1 skipped" in done.stdout
    assert "Slurm is not installed (no sinfo)" in done.stdout


def test_without_slurm_the_slurm_tests_fail_under_ci(tmp_path: Path) -> None:
    done = _pytest_without_slurm(tmp_path, CI="true")
    assert done.returncode == 1, done.stdout
    assert "1 error" in done.stdout
    assert "CI=true: a test that should run may not skip" in done.stdout


def test_under_ci_an_explicit_opt_out_still_skips(tmp_path: Path) -> None:
    done = _pytest_without_slurm(tmp_path, CI="true", GRAINLIKE_NO_SLURM="1")
    assert done.returncode == 0, done.stdout
    assert "1 skipped" in done.stdout
