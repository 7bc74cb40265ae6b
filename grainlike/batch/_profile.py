"""Batch profiles: what one worker job asks the batch system for, and how it starts grainlike."""

from __future__ import annotations

import math
import re
import shlex
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Literal, TypeAlias

import attrs

from .._exceptions import ConfigError, ResourceError
from ..resource import Memory, WTime
from ._shipped import shipped_profile

__all__ = ["PROFILE_KEYS", "SYSTEMS", "Profile", "System", "load_profile", "profile_from_dict"]

System: TypeAlias = Literal["slurm", "pbs"]
SYSTEMS: tuple[System, ...] = ("slurm", "pbs")

# Names and partitions go into directive lines unquoted, so they are kept to one plain word.
_WORD = re.compile(r"^[A-Za-z0-9_.+@-]+$")
_JOB_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")


def _bad(key: str, value: object, why: str) -> ConfigError:
    return ConfigError(f"profile key {key} = {value!r}: {why}")


def _system(value: object) -> System:
    if value == "slurm":
        return "slurm"
    if value == "pbs":
        return "pbs"
    raise _bad("system", value, "must be 'slurm' or 'pbs'")


def _word(key: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _WORD.match(value):
        raise _bad(key, value, "must be one word of letters, digits and _.+@-")
    return value


def _count(key: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _bad(key, value, f"must be a whole number of at least {minimum}")
    return value


def _partition(value: object) -> str | None:
    return _word("partition", value)


def _account(value: object) -> str | None:
    return _word("account", value)


def _cores(value: object) -> int:
    return _count("cores", value, 1)


def _gpus(value: object) -> int:
    return _count("gpus", value, 0)


def _memory(value: object) -> Memory | None:
    if value is None or isinstance(value, Memory):
        return value
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _bad("memory", value, "must be a size such as '4G' or '512M', or a number of GB")
    try:
        return Memory(value)
    except ResourceError as error:
        raise _bad("memory", value, str(error)) from None


def _walltime(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _bad("walltime", value, "must be 'hh:mm:ss', '[d-]hh:mm:ss', '2h' or seconds")
    try:
        seconds = WTime(T=value).T
    except ResourceError as error:
        raise _bad("walltime", value, str(error)) from None
    assert seconds is not None
    return float(math.ceil(seconds))


def _job_name(value: object) -> str:
    if not isinstance(value, str) or not _JOB_NAME.match(value):
        raise _bad(
            "job_name", value, "must start with a letter and use only letters, digits and _.-"
        )
    return value


def _output(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or any(c in value for c in '"\n\r'):
        raise _bad("output", value, "must be a path without double quotes or newlines")
    return value


def _lines(key: str, value: object) -> tuple[str, ...]:
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        for line in value:
            if "\n" in line or "\r" in line:
                raise _bad(key, line, "each entry is one line")
        return tuple(value)
    raise _bad(key, value, "must be a list of strings")


def _argv(key: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        try:
            value = shlex.split(value)
        except ValueError as error:
            raise _bad(key, value, f"cannot be split into words: {error}") from None
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        if any("\n" in v or "\0" in v for v in value):
            raise _bad(key, value, "words must not contain newlines")
        return tuple(value)
    raise _bad(key, value, "must be a command line string or a list of strings")


def _extra_directives(value: object) -> tuple[str, ...]:
    return _lines("extra_directives", value)


def _setup(value: object) -> tuple[str, ...]:
    return _lines("setup", value)


def _worker_args(value: object) -> tuple[str, ...]:
    return _argv("worker_args", value)


def _python(value: object) -> tuple[str, ...]:
    words = _argv("python", value)
    if not words:
        raise _bad("python", value, "must name a command")
    return words


def _default_python() -> tuple[str, ...]:
    return (sys.executable, "-m", "grainlike")


@attrs.frozen
class Profile:
    """What one worker job asks the batch system for, and how the job starts a worker.

    Attributes:
        system: ``"slurm"`` or ``"pbs"``.
        partition: The Slurm partition or PBS queue (``None``: the site's default).
        account: The account charged (``None``: the user's default).
        cores: Cores per worker job.
        memory: Memory per worker job (``None``: the site's default).
        gpus: GPUs per worker job.
        walltime: The job's time limit in whole seconds (``None``: the partition's default).
        job_name: The job name; each worker is named ``<job_name>-<job id>``.
        output: Where the job's output goes (Slurm patterns such as ``%j`` allowed).
        extra_directives: More directive lines, e.g. ``"--constraint=haswell"``.
        setup: Shell lines run before the worker starts (module loads, venv activation).
        worker_args: Extra arguments for ``grainlike worker``.
        python: The command that runs grainlike in the job.
    """

    system: System = attrs.field(default="slurm", converter=_system)
    partition: str | None = attrs.field(default=None, converter=_partition)
    account: str | None = attrs.field(default=None, converter=_account)
    cores: int = attrs.field(default=1, converter=_cores)
    memory: Memory | None = attrs.field(default=None, converter=_memory)
    gpus: int = attrs.field(default=0, converter=_gpus)
    walltime: float | None = attrs.field(default=None, converter=_walltime)
    job_name: str = attrs.field(default="grainlike", converter=_job_name)
    output: str | None = attrs.field(default=None, converter=_output)
    extra_directives: tuple[str, ...] = attrs.field(default=(), converter=_extra_directives)
    setup: tuple[str, ...] = attrs.field(default=(), converter=_setup)
    worker_args: tuple[str, ...] = attrs.field(default=(), converter=_worker_args)
    python: tuple[str, ...] = attrs.field(factory=_default_python, converter=_python)


#: Every key a profile file may set (``queue`` is another name for ``partition``).
PROFILE_KEYS: tuple[str, ...] = (*(a.name for a in attrs.fields(Profile)), "queue")


def profile_from_dict(data: Mapping[str, object]) -> Profile:
    """Build a profile from parsed TOML (or any mapping of profile keys).

    Raises:
        ConfigError: on an unknown key, or a value that is not valid for its key.
    """
    unknown = sorted(set(data) - set(PROFILE_KEYS))
    if unknown:
        raise ConfigError(
            f"unknown profile key {unknown[0]} = {data[unknown[0]]!r} "
            f"(known keys: {', '.join(PROFILE_KEYS)})"
        )
    values = dict(data)
    if "queue" in values:
        if "partition" in values:
            raise ConfigError(
                f"profile keys partition = {values['partition']!r} and queue = "
                f"{values['queue']!r}: give one (they are the same setting)"
            )
        values["partition"] = values.pop("queue")
    return Profile(**values)


def load_profile(path: str | Path) -> Profile:
    """Load a profile from a TOML file, or a profile shipped with grainlike by its bare name.

    Args:
        path: A TOML file, or the name of a shipped profile such as ``"local-slurm"``.

    Raises:
        ConfigError: when the file is missing or malformed, has an unknown key or a bad value;
            the message names the file, the key and the value.
    """
    file = Path(path)
    if not file.is_file() and file.suffix == "" and len(file.parts) == 1:
        file = shipped_profile(str(path)) or file
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"profile {str(path)!r}: cannot read it: {error.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"profile {str(file)!r}: not valid TOML: {error}") from None
    try:
        return profile_from_dict(data)
    except ConfigError as error:
        raise ConfigError(f"profile {str(file)!r}: {error}") from None
