"""Fixtures for integration tests that need real outside systems."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from typing import NoReturn

import pytest

#: Node states in which a submitted job starts soon: the node is up and has free cores.
USABLE_STATES = ("idle", "mixed")


def _missing(why: str) -> NoReturn:
    """Skip a test whose outside system is missing; under CI (``CI=true``) fail it instead, so
    that a broken Slurm cannot pass as skipped tests (``GRAINLIKE_NO_SLURM=1`` still skips)."""
    if os.environ.get("CI") == "true" and os.environ.get("GRAINLIKE_NO_SLURM") != "1":
        pytest.fail(f"{why} (CI=true: a test that should run may not skip)", pytrace=False)
    pytest.skip(why)


@pytest.fixture(scope="session")
def slurm() -> Iterator[str]:
    """A running Slurm (``bash scripts/setup-slurm.sh`` as root starts one); yields its default
    partition.  Skips, saying why, when ``sinfo`` is missing or no node can take jobs now; fails
    under ``CI=true``."""
    if shutil.which("sinfo") is None:
        _missing("Slurm is not installed (no sinfo); as root, run bash scripts/setup-slurm.sh")
    try:
        done = subprocess.run(
            ["sinfo", "-h", "-o", "%P %T"], capture_output=True, text=True, timeout=15
        )
    except subprocess.TimeoutExpired:
        _missing("Slurm is not answering: sinfo took more than 15 s")
    if done.returncode != 0:
        _missing(f"Slurm is not running: sinfo says {done.stderr.strip()!r}")
    nodes = [line.split() for line in done.stdout.splitlines() if line.strip()]
    usable = [words for words in nodes if words[1] in USABLE_STATES]
    if not usable:
        states = ", ".join(f"{words[0]} {words[1]}" for words in nodes) or "no nodes"
        _missing(f"no Slurm node is idle ({states}); run bash scripts/setup-slurm.sh")
    default = [words[0] for words in usable if words[0].endswith("*")]
    yield (default or [usable[0][0]])[0].rstrip("*")
