"""Rendering a worker job's batch script from a profile and a template under ``resources/``."""

from __future__ import annotations

import os
import re
import shlex
import string
from pathlib import Path

from .._exceptions import ConfigError
from .._permissions import check_private_file
from ..resource import Memory
from ._profile import Profile
from ._shipped import template_path

__all__ = ["check_key_file", "render_script"]

_DISPATCHER = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):([0-9]{1,5})$")


def check_key_file(path: str | os.PathLike[str]) -> Path:
    """Check that a key file exists and only its owner can read or replace it.

    Call it before submitting: a worker job reads the key from this file, so it must sit on a
    filesystem the compute nodes see, and nobody else may read it.  The rule is the one every
    key file meets (``grainlike._permissions``, ssh's ``StrictModes``).

    Returns:
        Its absolute path.

    Raises:
        ConfigError: when the file is missing, not a regular file, open to group or others,
            or in a directory that others may write.
    """
    return check_private_file(path, what="key file")


def _clock(seconds: float, *, days: bool) -> str:
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if days and hours >= 24:
        return f"{hours // 24}-{hours % 24:02d}:{minutes:02d}:{secs:02d}"
    return f"{hours:02d}:{minutes:02d}:{secs:02d}"


def _size(memory: Memory, units: tuple[str, str, str]) -> str:
    """``memory`` in the largest whole unit of (GiB, MiB, KiB) spellings."""
    kib = memory.kib
    for power, unit in ((2, units[0]), (1, units[1])):
        if kib % 1024**power == 0:
            return f"{kib // 1024**power}{unit}"
    return f"{kib}{units[2]}"


def _path_word(path: str) -> str:
    # Both sbatch and qsub read directive arguments with double-quote handling.
    return f'"{path}"' if any(c.isspace() for c in path) else path


def _extra(prefix: str, lines: tuple[str, ...]) -> list[str]:
    return [line if line.startswith("#") else f"{prefix} {line}" for line in lines]


def _slurm_directives(profile: Profile) -> list[str]:
    lines = [f"-J {profile.job_name}", "-N 1", "-n 1", f"-c {profile.cores}"]
    if profile.memory is not None:
        lines.append(f"--mem={_size(profile.memory, ('G', 'M', 'K'))}")
    if profile.gpus:
        lines.append(f"--gres=gpu:{profile.gpus}")
    if profile.walltime is not None:
        lines.append(f"-t {_clock(profile.walltime, days=True)}")
    if profile.partition is not None:
        lines.append(f"-p {profile.partition}")
    if profile.account is not None:
        lines.append(f"-A {profile.account}")
    lines.append(f"-o {_path_word(profile.output or f'{profile.job_name}-%j.out')}")
    return [f"#SBATCH {line}" for line in lines] + _extra("#SBATCH", profile.extra_directives)


def _pbs_directives(profile: Profile) -> list[str]:
    select = f"select=1:ncpus={profile.cores}"
    if profile.memory is not None:
        select += f":mem={_size(profile.memory, ('gb', 'mb', 'kb'))}"
    if profile.gpus:
        select += f":ngpus={profile.gpus}"
    lines = [f"-N {profile.job_name}", f"-l {select}"]
    if profile.walltime is not None:
        lines.append(f"-l walltime={_clock(profile.walltime, days=False)}")
    if profile.partition is not None:
        lines.append(f"-q {profile.partition}")
    if profile.account is not None:
        lines.append(f"-A {profile.account}")
    lines.append("-j oe")
    if profile.output is not None:
        lines.append(f"-o {_path_word(profile.output)}")
    return [f"#PBS {line}" for line in lines] + _extra("#PBS", profile.extra_directives)


def render_script(profile: Profile, *, dispatcher: str, key_file: str) -> str:
    """The batch script that starts one worker connecting back to ``dispatcher``.

    The script names ``key_file`` (made absolute, since jobs start elsewhere) and never holds
    key material; the worker reads the key from that file.

    Args:
        profile: What the job asks for and how it starts grainlike.
        dispatcher: ``HOST:PORT`` where the dispatcher listens, reachable from compute nodes.
        key_file: The file holding the shared key (mode 0600, on a filesystem jobs can read).

    Returns:
        The script text, ready for :func:`submit`.

    Raises:
        ConfigError: when ``dispatcher`` is not ``HOST:PORT`` or the template is unusable.
    """
    match = _DISPATCHER.match(dispatcher)
    if match is None or not 0 < int(match.group(1)) < 65536:
        raise ConfigError(f"dispatcher {dispatcher!r}: expected HOST:PORT, e.g. login1:4242")
    if "\n" in key_file or not key_file.strip():
        raise ConfigError(f"key_file {key_file!r}: expected the path of the shared key file")
    worker_args = list(profile.worker_args)
    if profile.system == "pbs" and profile.walltime is not None:
        # Slurm workers read their remaining time from the job; PBS workers are told it.
        worker_args = ["--walltime", str(int(profile.walltime)), *worker_args]
    directives = (
        _slurm_directives(profile) if profile.system == "slurm" else _pbs_directives(profile)
    )
    path = template_path(profile.system)
    try:
        template = string.Template(path.read_text(encoding="utf-8"))
        return template.substitute(
            directives="\n".join(directives),
            setup="\n".join(profile.setup),
            python=shlex.join(profile.python),
            dispatcher=shlex.quote(dispatcher),
            key_file=shlex.quote(os.path.abspath(key_file)),
            job_name=shlex.quote(profile.job_name),
            worker_args="".join(f" {shlex.quote(arg)}" for arg in worker_args),
        )
    except OSError as error:
        raise ConfigError(f"template {str(path)!r}: cannot read it: {error.strerror}") from None
    except (KeyError, ValueError) as error:
        raise ConfigError(f"template {str(path)!r}: bad placeholder {error}") from None
