"""What this machine offers a worker: cores, memory, GPUs, remaining walltime and scratch disk."""

from __future__ import annotations

import os
import time
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

import attrs
import psutil

from ..resource import (
    GPU,
    Cores,
    Disk,
    Kind,
    Memory,
    Resources,
    ResourceSpec,
    WTime,
    with_overrides,
)
from ._cgroup import cgroup_memory_limit
from ._memlimit import Headroom, MemoryInfo, detect_memory
from ._nvml import NVML, GPUInfo, detect_gpus
from ._scratch import SCRATCH_HEADROOM, ScratchInfo, detect_scratch, scratch_root
from ._slurmenv import job_id, slurm_cpus_on_node, slurm_memory_kib
from ._topology import CoreInfo, detect_cores
from ._walltime import WalltimeInfo, detect_walltime

__all__ = ["NodeInfo", "describe_node", "detect_capacity"]


@attrs.frozen
class NodeInfo:
    """What detection found, part by part; a part is ``None`` when it was not detected.

    Attributes:
        cores: the CPU affinity and its grouping.
        memory: usable memory and the limit it came from.
        gpus: the usable GPUs, with names and memory.
        walltime: the remaining walltime and its source.
        notes: warnings about the environment (a misconfigured batch system, for one).
        scratch: the scratch root and the disk it offers.
    """

    cores: CoreInfo | None
    memory: MemoryInfo | None
    gpus: GPUInfo | None
    walltime: WalltimeInfo | None
    notes: tuple[str, ...] = ()
    scratch: ScratchInfo | None = None

    def capacity(self) -> Resources:
        """The detected parts as a worker's capacity (no GPUs means no ``GPU`` kind)."""
        parts: list[Kind] = []
        if self.cores is not None:
            parts.append(self.cores.capacity())
        if self.memory is not None:
            parts.append(self.memory.capacity())
        if self.gpus is not None and (gpu := self.gpus.capacity()) is not None:
            parts.append(gpu)
        if self.walltime is not None:
            parts.append(self.walltime.capacity())
        if self.scratch is not None and (disk := self.scratch.capacity()) is not None:
            parts.append(disk)
        return Resources(*parts)


def _affinity() -> set[int]:
    if hasattr(os, "sched_getaffinity"):
        return os.sched_getaffinity(0)
    return set(range(os.cpu_count() or 1))  # pragma: no cover - macOS and Windows


def describe_node(
    *,
    environ: Mapping[str, str] | None = None,
    root: Path = Path("/"),
    nvml: NVML | None = None,
    squeue: Sequence[str] = ("squeue",),
    squeue_timeout: float = 5.0,
    headroom: Headroom = Headroom(),  # noqa: B008 - frozen, so one shared default is safe
    skip: Collection[type[Kind]] = (),
    scratch: str | os.PathLike[str] | None = None,
    scratch_headroom: Headroom = SCRATCH_HEADROOM,
) -> NodeInfo:
    """Describe what a worker on this machine, in this process's environment, may use.

    Cores come from the CPU affinity (so taskset, cgroup cpusets and Slurm's binding are
    respected), grouped by NUMA node or socket from sysfs.  Memory is the smallest of physical
    memory, the cgroup limit and the Slurm job's allocation, less ``headroom``.  GPUs come
    from NVML, narrowed by ``CUDA_VISIBLE_DEVICES`` or ``SLURM_JOB_GPUS``.  Walltime is what
    the enclosing Slurm job has left, else unlimited.  Disk is the free space of the scratch
    root (``scratch``, else the temp dir) less ``scratch_headroom``.  See docs/detection.md.

    This may run ``squeue`` (up to ``squeue_timeout`` seconds): call it from a thread in async
    code.

    Args:
        environ: the environment to read (``os.environ`` by default).
        root: the file-system root whose ``proc`` and ``sys`` are read.
        nvml: the NVML binding (``pynvml`` by default, imported only when needed).
        squeue: the squeue command.
        squeue_timeout: how long squeue may take.
        headroom: how much memory to keep back.
        skip: kinds not to detect (their part is ``None``), e.g. because they are overridden.
        scratch: the scratch root (default: the temp dir).
        scratch_headroom: how much of its free space to keep back.

    Raises:
        ConfigError: when a Slurm variable or a sysfs/cgroup file holds a malformed value, or
            the scratch root is not a directory this user may write in.
    """
    env = os.environ if environ is None else environ
    notes: list[str] = []
    cores = None
    if Cores not in skip:
        cores = detect_cores(_affinity(), sysfs=root / "sys")
        job_cpus = slurm_cpus_on_node(env)
        if job_cpus is not None and job_cpus < len(cores.ids):
            notes.append(
                f"Slurm job {job_id(env)} holds {job_cpus} CPU(s) here but the process may run "
                f"on {len(cores.ids)}: Slurm does not bind jobs to their CPUs (use "
                "TaskPlugin=task/affinity or task/cgroup), so pass --resources cores:... "
                "to avoid oversubscribing the node"
            )
    memory = None
    if Memory not in skip:
        cgroup = cgroup_memory_limit(root=root)
        slurm_kib = slurm_memory_kib(env)
        memory = detect_memory(
            psutil.virtual_memory().total // 1024,
            cgroup_kib=None if cgroup is None else cgroup.limit_bytes // 1024,
            cgroup_file=None if cgroup is None else str(cgroup.file),
            slurm_kib=slurm_kib,
            headroom=headroom,
        )
        if job_id(env) is not None and slurm_kib is None and memory.source == "physical":
            notes.append(
                f"Slurm job {job_id(env)} does not say its memory (no SLURM_MEM_PER_NODE or "
                "SLURM_MEM_PER_CPU, as under an srun outside sbatch or salloc) and no cgroup "
                "limits it: memory is the node's physical memory; pass --resources mem:... "
                "if the job holds less"
            )
    gpus = None if GPU in skip else detect_gpus(env, nvml=nvml)
    walltime = None
    if WTime not in skip:
        walltime = detect_walltime(env, now=time.time(), squeue=squeue, timeout=squeue_timeout)
    disk = None if Disk in skip else detect_scratch(scratch, headroom=scratch_headroom)
    return NodeInfo(cores, memory, gpus, walltime, tuple(notes), disk)


def overridden_kinds(override: ResourceSpec | None) -> set[type[Kind]]:
    """The detected kinds that ``override`` replaces or removes, so need no detecting.

    Raises:
        ResourceError: when ``override`` is malformed (before any slow detection runs).
    """
    stand_ins: dict[type[Kind], Kind] = {
        Cores: Cores(1),
        Memory: Memory.from_kib(1),
        GPU: GPU(1),
        WTime: WTime(T=1, countdown=True),
        Disk: Disk.from_kib(1),
    }
    # with_overrides keeps the very objects of the kinds it does not name.
    after = with_overrides(Resources(*stand_ins.values()), override)
    return {kind for kind, stand_in in stand_ins.items() if after.get(kind) is not stand_in}


def detect_capacity(
    override: ResourceSpec | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    root: Path = Path("/"),
    nvml: NVML | None = None,
    squeue: Sequence[str] = ("squeue",),
    squeue_timeout: float = 5.0,
    headroom: Headroom = Headroom(),  # noqa: B008 - frozen, so one shared default is safe
    scratch: str | os.PathLike[str] | None = None,
) -> Resources:
    """The capacity a worker on this machine advertises, with ``override`` applied per kind.

    Kinds that ``override`` names are not detected at all (``gpu:0`` never loads NVML,
    ``wtime:2h`` never runs squeue); quantity 0 removes a kind.  The other keywords are those
    of ``describe_node``.

    Args:
        override: per-kind overrides in the shorthand grammar or a dict, e.g. ``"cores:4"``.
        environ: the environment to read (``os.environ`` by default).
        root: the file-system root whose ``proc`` and ``sys`` are read.
        nvml: the NVML binding (``pynvml`` by default).
        squeue: the squeue command.
        squeue_timeout: how long squeue may take.
        headroom: how much memory to keep back.
        scratch: the scratch root whose free space is the ``Disk`` (default: the temp dir).

    Raises:
        ResourceError: when ``override`` is malformed.
        ConfigError: when the environment holds a malformed value for a detected kind, or the
            scratch root is not a directory this user may write in.
    """
    skip = overridden_kinds(override)
    if scratch is not None:
        scratch_root(scratch)  # checked even when Disk is overridden: its tasks need it
    info = describe_node(
        environ=environ,
        root=root,
        nvml=nvml,
        squeue=squeue,
        squeue_timeout=squeue_timeout,
        headroom=headroom,
        skip=skip,
        scratch=scratch,
    )
    return with_overrides(info.capacity(), override)
