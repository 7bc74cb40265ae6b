"""What a Slurm job's environment says about its allocation on this node.

Slurm sets these variables in batch scripts and in ``srun`` steps; they are read, never set.
A variable that is present but malformed raises ``ConfigError`` naming it and its value, because
detection built on a misread allocation would oversubscribe the node silently.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from .._exceptions import ConfigError
from ._topology import parse_cpu_list

__all__ = [
    "expand_per_node",
    "job_id",
    "slurm_cpus_on_node",
    "slurm_gpu_ids",
    "slurm_memory_kib",
]

#: Slurm's memory sizes are MB of 1024**2 bytes; a suffix may say otherwise.
_SIZE = re.compile(r"^\s*(\d+)\s*([KMGT]?)B?\s*$", re.IGNORECASE)
_KIB_PER_UNIT = {"K": 1, "M": 1024, "G": 1024**2, "T": 1024**3}
_PER_NODE = re.compile(r"^(\d+)(?:\(x(\d+)\))?$")


def job_id(environ: Mapping[str, str]) -> str | None:
    """The enclosing Slurm job's ID (batch script, ``salloc`` or ``srun``), or ``None``."""
    return environ.get("SLURM_JOB_ID") or environ.get("SLURM_JOBID") or None


def _integer(environ: Mapping[str, str], name: str) -> int | None:
    text = environ.get(name)
    if text is None or not text.strip():
        return None
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"{name}={text!r}: not a whole number") from None
    if value < 0:
        raise ConfigError(f"{name}={text!r}: must not be negative")
    return value


def expand_per_node(text: str, *, what: str = "SLURM_JOB_CPUS_PER_NODE") -> list[int]:
    """Expand Slurm's per-node counts: ``"4(x2),2"`` is ``[4, 4, 2]``, one entry per node."""
    counts: list[int] = []
    for part in text.split(","):
        match = _PER_NODE.match(part.strip())
        if match is None:
            raise ConfigError(f"{what}={text!r}: not a per-node list like 4(x2),2")
        count, repeat = match.groups()
        counts.extend([int(count)] * int(repeat or 1))
    return counts


def slurm_cpus_on_node(environ: Mapping[str, str]) -> int | None:
    """How many CPUs the job holds on this node, or ``None`` outside a job.

    ``SLURM_CPUS_ON_NODE`` when set; else this node's entry (``SLURM_NODEID``, default 0) of
    ``SLURM_JOB_CPUS_PER_NODE``.
    """
    on_node = _integer(environ, "SLURM_CPUS_ON_NODE")
    if on_node is not None:
        return on_node
    per_node = environ.get("SLURM_JOB_CPUS_PER_NODE")
    if not per_node:
        return None
    counts = expand_per_node(per_node)
    node = _integer(environ, "SLURM_NODEID") or 0
    if node >= len(counts):
        raise ConfigError(
            f"SLURM_NODEID={node} but SLURM_JOB_CPUS_PER_NODE={per_node!r} lists "
            f"{len(counts)} node(s)"
        )
    return counts[node]


def _size_kib(environ: Mapping[str, str], name: str) -> int | None:
    text = environ.get(name)
    if text is None or not text.strip():
        return None
    match = _SIZE.match(text)
    if match is None:
        raise ConfigError(f"{name}={text!r}: not a memory size in MB")
    number, unit = match.groups()
    return int(number) * _KIB_PER_UNIT[(unit or "M").upper()]


def slurm_memory_kib(environ: Mapping[str, str]) -> int | None:
    """The job's memory on this node in KiB, or ``None`` when the environment does not say.

    ``SLURM_MEM_PER_NODE`` (``--mem``) when set; else ``SLURM_MEM_PER_CPU`` (``--mem-per-cpu``
    or the cluster's ``DefMemPerCPU``) times the job's CPUs on this node.  ``--mem=0`` asks
    for all of the node's memory, so 0 means no limit from Slurm.
    """
    per_node = _size_kib(environ, "SLURM_MEM_PER_NODE")
    if per_node is not None:
        return per_node or None
    per_cpu = _size_kib(environ, "SLURM_MEM_PER_CPU")
    if not per_cpu:
        return None
    cpus = slurm_cpus_on_node(environ)
    if cpus is None:
        raise ConfigError(
            f"SLURM_MEM_PER_CPU={environ['SLURM_MEM_PER_CPU']!r} is set but neither "
            "SLURM_CPUS_ON_NODE nor SLURM_JOB_CPUS_PER_NODE says how many CPUs the job has here"
        )
    return per_cpu * cpus or None


def slurm_gpu_ids(environ: Mapping[str, str]) -> tuple[int, ...] | None:
    """The GPU indices of ``SLURM_JOB_GPUS`` (``"0,2"``), or ``None`` when it is unset."""
    text = environ.get("SLURM_JOB_GPUS")
    if text is None:
        return None
    return parse_cpu_list(text, what=f"SLURM_JOB_GPUS={text!r}")
