"""Remaining walltime: how long the enclosing batch job still runs."""

from __future__ import annotations

import math
import re
import subprocess
from collections.abc import Mapping, Sequence

import attrs

from .._exceptions import ConfigError
from ..resource import WTime
from ._slurmenv import job_id

__all__ = ["WalltimeInfo", "detect_walltime", "parse_time_left", "squeue_time_left"]

#: squeue's ``%L``: ``[days-][hours:]minutes:seconds``.
_TIME_LEFT = re.compile(r"^(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+)$")

#: squeue's words for "no limit known"; ``UNLIMITED`` is the only one that means no limit.
_UNKNOWN = ("INVALID", "NOT_SET", "N/A", "")

#: A countdown capacity needs a positive T; a job already at its end gets this much.
MINIMUM_SECONDS = 1.0


@attrs.frozen
class WalltimeInfo:
    """The remaining walltime and where it came from.

    Attributes:
        seconds: what remains (``math.inf`` when nothing limits it).
        source: ``"slurm"`` when the enclosing Slurm job said, else ``"none"``.
        detail: how it was found, or why it could not be.
    """

    seconds: float
    source: str
    detail: str

    def capacity(self) -> WTime:
        """The remaining walltime as a countdown capacity."""
        return WTime(T=max(self.seconds, MINIMUM_SECONDS), countdown=True)


def parse_time_left(text: str) -> float | None:
    """Seconds in squeue's ``%L`` (``1-02:03:04``, ``2:03:04``, ``3:04``, ``UNLIMITED``).

    Returns ``math.inf`` for ``UNLIMITED`` and ``None`` for an unknown limit (``INVALID``,
    ``NOT_SET``) or text in no known format.
    """
    word = text.strip()
    if word.upper() == "UNLIMITED":
        return math.inf
    if word.upper() in _UNKNOWN:
        return None
    match = _TIME_LEFT.match(word)
    if match is None:
        return None
    days, hours, minutes, seconds = (int(group or 0) for group in match.groups())
    return float(((days * 24 + hours) * 60 + minutes) * 60 + seconds)


def squeue_time_left(
    job: str, *, command: Sequence[str] = ("squeue",), timeout: float = 5.0
) -> tuple[float | None, str]:
    """Ask ``squeue -h -j JOB -o %L`` for the job's time left.

    A controller that does not answer must not hold up a worker's start, so the call has a
    ``timeout``; any failure gives ``None`` and the reason.

    Returns:
        (seconds or ``None``, what squeue said or why it failed).
    """
    argv = [*command, "-h", "-j", job, "-o", "%L"]
    shown = " ".join(argv)
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError:
        return None, f"{command[0]} not found"
    except subprocess.TimeoutExpired:
        return None, f"{shown} gave no answer within {timeout:g} s"
    except OSError as error:
        return None, f"{shown} could not run: {error}"
    output = done.stdout.strip()
    if done.returncode != 0:
        reason = (done.stderr.strip() or output).splitlines()
        return None, f"{shown} failed with status {done.returncode}: {' '.join(reason[:1])}"
    first = output.splitlines()[0] if output else ""
    seconds = parse_time_left(first)
    if seconds is None:
        return None, f"{shown} printed {first!r}: no time limit known"
    return seconds, f"{shown} printed {first}"


def detect_walltime(
    environ: Mapping[str, str],
    *,
    now: float,
    squeue: Sequence[str] = ("squeue",),
    timeout: float = 5.0,
) -> WalltimeInfo:
    """The remaining walltime of the enclosing Slurm job, or unlimited outside one.

    ``SLURM_JOB_END_TIME`` (epoch seconds, set by newer Slurm releases) is preferred because it
    costs no call; else ``squeue`` is asked.  When neither answers, the walltime is unlimited
    and ``detail`` says why: a worker then learns its end from being stopped, and its running
    tasks are resubmitted like those of any lost worker.

    Args:
        environ: the environment to read.
        now: the current time in epoch seconds (``time.time()``).
        squeue: the squeue command (a test may point this at a stand-in).
        timeout: how long squeue may take.
    """
    job = job_id(environ)
    if job is None:
        return WalltimeInfo(math.inf, "none", "not inside a Slurm job")
    end_text = environ.get("SLURM_JOB_END_TIME", "").strip()
    if end_text:
        try:
            end = float(end_text)
        except ValueError:
            raise ConfigError(f"SLURM_JOB_END_TIME={end_text!r}: not epoch seconds") from None
        left = float(math.floor(max(end - now, 0.0)))
        return WalltimeInfo(left, "slurm", f"SLURM_JOB_END_TIME of job {job}")
    seconds, detail = squeue_time_left(job, command=squeue, timeout=timeout)
    if seconds is None:
        return WalltimeInfo(math.inf, "none", f"job {job}: {detail}")
    return WalltimeInfo(seconds, "slurm", detail)
