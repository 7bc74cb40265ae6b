"""Talking to the batch system: submit a script, cancel jobs, read job states.

Synchronous on purpose: the command line calls these once per command, and every call has a
timeout so that a hung controller cannot hang ``grainlike up`` or ``grainlike down``.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Iterable, Sequence

from .._exceptions import ConfigError
from ._profile import SYSTEMS, System

__all__ = ["PBS_STATES", "cancel", "job_states", "parse_qstat_json", "submit"]

#: Seconds one batch command may take before it counts as failed.
TIMEOUT = 60.0

#: PBS's one-letter job states, spelled as Slurm spells the nearest state.
PBS_STATES = {
    "Q": "PENDING",
    "W": "PENDING",
    "T": "PENDING",
    "H": "HELD",
    "S": "SUSPENDED",
    "U": "SUSPENDED",
    "R": "RUNNING",
    "B": "RUNNING",
    "E": "COMPLETING",
    "F": "COMPLETED",
    "X": "COMPLETED",
    "M": "MOVED",
}

# A job that has ended or was never known needs no cancelling: ``grainlike down`` is idempotent.
_GONE = ("invalid job id", "already completing or completed", "unknown job id", "job has finished")


def _check_system(system: str) -> System:
    for known in SYSTEMS:
        if system == known:
            return known
    raise ConfigError(f"batch system {system!r}: expected one of {', '.join(SYSTEMS)}")


def _run(argv: Sequence[str], *, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout, check=False
        )
    except FileNotFoundError:
        raise ConfigError(
            f"{argv[0]}: command not found; run this where the batch system's commands are"
        ) from None
    except subprocess.TimeoutExpired:
        raise ConfigError(f"{' '.join(argv)}: no answer within {timeout:g} s") from None


def _failure(argv: Sequence[str], done: subprocess.CompletedProcess[str]) -> ConfigError:
    detail = (done.stderr.strip() or done.stdout.strip() or "no message").splitlines()
    return ConfigError(
        f"{' '.join(argv)} failed with exit status {done.returncode}: {' '.join(detail)}"
    )


def submit(script_text: str, system: System) -> str:
    """Submit a batch script and return its job id.

    The script goes to a private temporary file (mode 0600) that is removed once the batch
    system has taken its copy.

    Args:
        script_text: The script, e.g. from :func:`render_script`.
        system: ``"slurm"`` (``sbatch --parsable``) or ``"pbs"`` (``qsub``).

    Raises:
        ConfigError: when the command is missing, fails (its message is included) or hangs.
    """
    system = _check_system(system)
    descriptor, path = tempfile.mkstemp(prefix="grainlike-job-", suffix=".sh")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(script_text)
        argv = ["sbatch", "--parsable", path] if system == "slurm" else ["qsub", path]
        done = _run(argv)
    finally:
        os.unlink(path)
    if done.returncode != 0:
        raise _failure(argv, done)
    # ``--parsable`` prints ``id`` or ``id;cluster``; qsub prints ``id.server``.
    words = done.stdout.strip().split(";")[0].split()
    if len(words) != 1:
        raise ConfigError(f"{argv[0]} printed no job id: {done.stdout.strip()!r}")
    return words[0]


def cancel(job_ids: Iterable[str], system: System) -> None:
    """Cancel jobs (``scancel`` or ``qdel``); jobs that already ended are not an error.

    Raises:
        ConfigError: when the command is missing, hangs, or refuses for another reason.
    """
    system = _check_system(system)
    ids = list(job_ids)
    if not ids:
        return
    argv = ["scancel", *ids] if system == "slurm" else ["qdel", *ids]
    done = _run(argv)
    if done.returncode != 0:
        message = (done.stderr + done.stdout).lower()
        lines = [line for line in message.splitlines() if line.strip()]
        if not lines or not all(any(gone in line for gone in _GONE) for line in lines):
            raise _failure(argv, done)


def parse_qstat_json(text: str) -> dict[str, str]:
    """Job states from ``qstat -x -f -F json`` (PBS Pro / OpenPBS), spelled as Slurm does."""
    try:
        jobs = json.loads(text).get("Jobs", {}) if text.strip() else {}
    except (json.JSONDecodeError, AttributeError):
        raise ConfigError(f"qstat printed something that is not its JSON: {text[:200]!r}") from None
    states = {}
    for job_id, fields in jobs.items():
        letter = str(fields.get("job_state", "?"))
        state = PBS_STATES.get(letter, letter)
        if state == "COMPLETED" and fields.get("Exit_status", 0) != 0:
            state = "FAILED"
        states[job_id] = state
    return states


def job_states(job_ids: Iterable[str], system: System) -> dict[str, str]:
    """The batch system's state of each job it still knows (e.g. ``"RUNNING"``).

    Jobs the batch system has forgotten are absent from the result.

    Raises:
        ConfigError: when the command is missing, hangs, or fails for another reason.
    """
    system = _check_system(system)
    ids = list(job_ids)
    if not ids:
        return {}
    if system == "slurm":
        argv = ["squeue", "-h", "-t", "all", "-j", ",".join(ids), "-o", "%i %T"]
    else:
        argv = ["qstat", "-x", "-f", "-F", "json", *ids]
    done = _run(argv)
    if system == "pbs":
        # qstat reports unknown ids on stderr but still prints the jobs it knows.
        if done.returncode != 0 and not done.stdout.strip():
            if "unknown job id" in done.stderr.lower():
                return {}
            raise _failure(argv, done)
        return parse_qstat_json(done.stdout)
    if done.returncode != 0:
        if "invalid job id" in done.stderr.lower():
            return {}
        raise _failure(argv, done)
    states = {}
    for line in done.stdout.splitlines():
        job_id, _, state = line.strip().partition(" ")
        if job_id:
            states[job_id] = state.strip()
    return states
