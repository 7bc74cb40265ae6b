"""The record of worker jobs that ``grainlike up`` submitted, so ``grainlike down`` cancels those.

One small JSON file per dispatcher in a state directory (``$XDG_STATE_HOME/grainlike`` or
``~/.local/state/grainlike`` unless the caller names another), replaced atomically on change;
next to it, the key file its jobs read when the key came from ``GRAINLIKE_KEY``.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import attrs

from .._exceptions import ConfigError
from ._profile import SYSTEMS, System

__all__ = [
    "SubmittedJob",
    "default_state_dir",
    "forget_jobs",
    "job_key_file",
    "jobs_file",
    "record_jobs",
    "recorded_jobs",
    "write_job_key",
]


@attrs.frozen
class SubmittedJob:
    """One worker job submitted for a dispatcher.

    Attributes:
        job_id: The batch system's job id.
        system: ``"slurm"`` or ``"pbs"``.
        submitted: When it was submitted (Unix time).
    """

    job_id: str
    system: System
    submitted: float


def default_state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_STATE_HOME/grainlike``, or ``~/.local/state/grainlike``."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "grainlike"


def _state_file(prefix: str, dispatcher: str, suffix: str, state_dir: Path | None) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", dispatcher)
    return (state_dir or default_state_dir()) / f"{prefix}-{safe}{suffix}"


def jobs_file(dispatcher: str, *, state_dir: Path | None = None) -> Path:
    """The file that records the jobs submitted for ``dispatcher`` (``HOST:PORT``)."""
    return _state_file("jobs", dispatcher, ".json", state_dir)


def job_key_file(dispatcher: str, *, state_dir: Path | None = None) -> Path:
    """The key file that jobs for ``dispatcher`` read when the key came from no file."""
    return _state_file("key", dispatcher, "", state_dir)


def write_job_key(dispatcher: str, key: bytes, *, state_dir: Path | None = None) -> Path:
    """Write ``key`` (as hex, mode 0600 from the start) where jobs for ``dispatcher`` read it.

    For a key that lives in no file (``GRAINLIKE_KEY``): a job script names a key file, so that
    the key never appears in the script, on a command line or in the batch system's records.
    An earlier key there is replaced atomically, so a job never reads half of either.

    Returns:
        The file's absolute path.
    """
    file = job_key_file(dispatcher, state_dir=state_dir).absolute()
    file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{file.name}.", dir=file.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="ascii") as stream:
            stream.write(key.hex() + "\n")
        os.replace(temporary, file)
    except BaseException:
        os.unlink(temporary)
        raise
    return file


def _job(entry: object, file: Path) -> SubmittedJob:
    if isinstance(entry, dict):
        job_id, system, submitted = (entry.get(k) for k in ("job_id", "system", "submitted"))
        if isinstance(job_id, str) and isinstance(submitted, int | float):
            for known in SYSTEMS:
                if system == known:
                    return SubmittedJob(job_id, known, float(submitted))
    raise ConfigError(f"job record {str(file)!r}: malformed entry {entry!r}")


def recorded_jobs(dispatcher: str, *, state_dir: Path | None = None) -> tuple[SubmittedJob, ...]:
    """The jobs recorded for ``dispatcher``, oldest first (none when nothing was recorded).

    Raises:
        ConfigError: when the record exists but cannot be read or parsed.
    """
    file = jobs_file(dispatcher, state_dir=state_dir)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return ()
    except (OSError, json.JSONDecodeError) as error:
        raise ConfigError(f"job record {str(file)!r}: cannot read it: {error}") from None
    if not isinstance(data, dict) or not isinstance(data.get("jobs"), list):
        raise ConfigError(f"job record {str(file)!r}: expected an object with a 'jobs' list")
    return tuple(_job(entry, file) for entry in data["jobs"])


def _write(dispatcher: str, jobs: Iterable[SubmittedJob], state_dir: Path | None) -> None:
    file = jobs_file(dispatcher, state_dir=state_dir)
    entries = [attrs.asdict(job) for job in jobs]
    if not entries:
        file.unlink(missing_ok=True)
        return
    file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor, temporary = tempfile.mkstemp(prefix=file.name, dir=file.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            json.dump({"dispatcher": dispatcher, "jobs": entries}, stream, indent=1)
        # Replacing is atomic, so a crash mid-write never leaves down with half a record.
        os.replace(temporary, file)
    except BaseException:
        os.unlink(temporary)
        raise


def record_jobs(
    dispatcher: str,
    system: System,
    job_ids: Iterable[str],
    *,
    state_dir: Path | None = None,
) -> tuple[SubmittedJob, ...]:
    """Add jobs just submitted for ``dispatcher`` to its record; returns the whole record."""
    now = time.time()
    known = recorded_jobs(dispatcher, state_dir=state_dir)
    seen = {job.job_id for job in known}
    added = tuple(SubmittedJob(i, system, now) for i in dict.fromkeys(job_ids) if i not in seen)
    jobs = known + added
    _write(dispatcher, jobs, state_dir)
    return jobs


def forget_jobs(
    dispatcher: str, job_ids: Iterable[str], *, state_dir: Path | None = None
) -> tuple[SubmittedJob, ...]:
    """Remove jobs (e.g. once cancelled) from ``dispatcher``'s record; returns what remains.

    The file is deleted when no job remains.
    """
    gone = set(job_ids)
    remaining = tuple(
        job for job in recorded_jobs(dispatcher, state_dir=state_dir) if job.job_id not in gone
    )
    _write(dispatcher, remaining, state_dir)
    return remaining
