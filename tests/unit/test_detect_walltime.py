"""Remaining walltime from Slurm (grainlike/worker/_walltime.py)."""

from __future__ import annotations

import math
import stat
from pathlib import Path

import pytest

from grainlike import ConfigError, WTime
from grainlike.worker._walltime import (
    WalltimeInfo,
    detect_walltime,
    parse_time_left,
    squeue_time_left,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1-02:03:04", 93784.0),
        ("2:03:04", 7384.0),
        ("3:04", 184.0),
        ("0:00", 0.0),
        ("23:58:59\n", 86339.0),
        ("UNLIMITED", math.inf),
        ("INVALID", None),
        ("NOT_SET", None),
        ("", None),
        ("soon", None),
    ],
)
def test_parse_time_left_reads_every_squeue_format(text: str, seconds: float | None) -> None:
    assert parse_time_left(text) == seconds


def test_outside_a_job_the_walltime_is_unlimited() -> None:
    info = detect_walltime({}, now=0.0, squeue=("/nonexistent/squeue",))
    assert info == WalltimeInfo(math.inf, "none", "not inside a Slurm job")
    assert info.capacity() == WTime(T=math.inf, countdown=True)


def test_job_end_time_gives_the_whole_seconds_left_without_squeue() -> None:
    environ = {"SLURM_JOB_ID": "5", "SLURM_JOB_END_TIME": "1000"}
    info = detect_walltime(environ, now=400.5, squeue=("/nonexistent/squeue",))
    assert info == WalltimeInfo(599.0, "slurm", "SLURM_JOB_END_TIME of job 5")
    assert info.capacity().T == 599.0
    assert info.capacity().countdown


def test_a_job_past_its_end_still_gives_a_valid_capacity() -> None:
    info = detect_walltime({"SLURM_JOB_ID": "5", "SLURM_JOB_END_TIME": "10"}, now=20.0)
    assert info.seconds == 0.0
    assert info.capacity().T == 1.0


def test_a_malformed_end_time_is_named() -> None:
    with pytest.raises(ConfigError, match="SLURM_JOB_END_TIME='tomorrow'"):
        detect_walltime({"SLURM_JOB_ID": "5", "SLURM_JOB_END_TIME": "tomorrow"}, now=0.0)


def test_a_missing_squeue_leaves_the_walltime_unlimited_and_says_why() -> None:
    info = detect_walltime({"SLURM_JOB_ID": "5"}, now=0.0, squeue=("/nonexistent/squeue",))
    assert info == WalltimeInfo(math.inf, "none", "job 5: /nonexistent/squeue not found")


def fake_squeue(directory: Path, body: str) -> tuple[str]:
    """A stand-in squeue: a shell script whose body sees the arguments as $@."""
    script = directory / "squeue"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return (str(script),)


@pytest.mark.slow
def test_squeue_is_asked_for_the_jobs_time_left(tmp_path: Path) -> None:
    command = fake_squeue(tmp_path, 'echo "$@" > "$(dirname "$0")/args"; echo 1-00:00:05')
    info = detect_walltime({"SLURM_JOB_ID": "42"}, now=0.0, squeue=command)
    assert info.seconds == 86405.0
    assert info.source == "slurm"
    assert (tmp_path / "args").read_text() == "-h -j 42 -o %L\n"


@pytest.mark.slow
def test_squeue_unlimited_means_no_limit_from_slurm(tmp_path: Path) -> None:
    command = fake_squeue(tmp_path, "echo UNLIMITED")
    assert squeue_time_left("1", command=command) == (
        math.inf,
        f"{command[0]} -h -j 1 -o %L printed UNLIMITED",
    )


@pytest.mark.slow
def test_a_failing_squeue_is_reported_not_raised(tmp_path: Path) -> None:
    command = fake_squeue(tmp_path, "echo 'slurm_load_jobs error: Invalid job id' >&2; exit 1")
    seconds, detail = squeue_time_left("7", command=command)
    assert seconds is None
    assert detail.endswith("failed with status 1: slurm_load_jobs error: Invalid job id")
    command = fake_squeue(tmp_path, "echo NOT_SET")
    info = detect_walltime({"SLURM_JOB_ID": "7"}, now=0.0, squeue=command)
    assert (info.seconds, info.source) == (math.inf, "none")
    assert info.detail.endswith("printed 'NOT_SET': no time limit known")


@pytest.mark.slow
def test_a_hanging_squeue_is_given_up_after_the_timeout(tmp_path: Path) -> None:
    command = fake_squeue(tmp_path, "exec sleep 30")
    seconds, detail = squeue_time_left("7", command=command, timeout=0.3)
    assert seconds is None
    assert detail.endswith("gave no answer within 0.3 s")
