"""Usable memory: the tightest of physical memory, the cgroup limit and the Slurm allocation."""

from __future__ import annotations

import attrs

from .._exceptions import ConfigError
from ..resource import Memory

__all__ = ["Headroom", "MemoryInfo", "detect_memory"]

MIB = 1024
GIB = 1024**2


def _check_fraction(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise ConfigError(f"Headroom(fraction={value!r}): the fraction must be in [0, 1)")


def _check_kib(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"Headroom({attribute.name}={value!r}): a size in KiB must be >= 0")


@attrs.frozen
class Headroom:
    """How much of the memory limit a worker keeps back for itself and the system.

    The worker process (about 30 MiB of Python, trio and grainlike before any task), the
    page cache and the kernel live inside the same limit as the tasks.  The headroom is
    ``fraction`` of the limit, at least ``minimum_kib`` and at most ``maximum_kib``, but never
    more than half the limit; what remains is rounded down to a whole MiB.

    Attributes:
        fraction: the share of the limit kept back (default 5%).
        minimum_kib: the least kept back (default 64 MiB).
        maximum_kib: the most kept back (default 2 GiB).
    """

    fraction: float = attrs.field(default=0.05, validator=_check_fraction)
    minimum_kib: int = attrs.field(default=64 * MIB, validator=_check_kib)
    maximum_kib: int = attrs.field(default=2 * GIB, validator=_check_kib)

    def __attrs_post_init__(self) -> None:
        if self.minimum_kib > self.maximum_kib:
            raise ConfigError(
                f"Headroom(minimum_kib={self.minimum_kib}, maximum_kib={self.maximum_kib}): "
                "the minimum must not exceed the maximum"
            )

    def kept_back(self, limit_kib: int) -> int:
        """KiB kept back from a limit of ``limit_kib``."""
        wanted = min(max(round(limit_kib * self.fraction), self.minimum_kib), self.maximum_kib)
        return min(wanted, limit_kib // 2)

    def usable(self, limit_kib: int) -> int:
        """KiB left for tasks under a limit of ``limit_kib`` (at least 1)."""
        left = limit_kib - self.kept_back(limit_kib)
        # Whole MiB print short (mem:22900M) and lose nothing that matters.
        return max(left - left % MIB if left >= MIB else left, 1)


@attrs.frozen
class MemoryInfo:
    """Usable memory and where its limit came from.

    Attributes:
        kib: what tasks may use: the limit less the headroom.
        limit_kib: the tightest limit.
        source: ``"physical"``, ``"cgroup"`` or ``"slurm"``: which limit is the tightest.
        physical_kib: the machine's physical memory.
        cgroup_kib: the cgroup limit, if any.
        cgroup_file: the file the cgroup limit was read from, if any.
        slurm_kib: the Slurm job's memory on this node, if any.
    """

    kib: int
    limit_kib: int
    source: str
    physical_kib: int
    cgroup_kib: int | None = None
    cgroup_file: str | None = None
    slurm_kib: int | None = None

    @property
    def headroom_kib(self) -> int:
        """What was kept back from the limit."""
        return self.limit_kib - self.kib

    def capacity(self) -> Memory:
        """The usable memory as a capacity."""
        return Memory.from_kib(self.kib)


def detect_memory(
    physical_kib: int,
    *,
    cgroup_kib: int | None = None,
    cgroup_file: str | None = None,
    slurm_kib: int | None = None,
    headroom: Headroom = Headroom(),
) -> MemoryInfo:
    """Combine the limits: the smallest wins; on a tie the earlier of physical, cgroup, Slurm.

    Args:
        physical_kib: physical memory (``psutil.virtual_memory().total`` in KiB).
        cgroup_kib: the cgroup limit, if any.
        cgroup_file: where the cgroup limit was read, for the description.
        slurm_kib: the Slurm job's memory on this node, if any.
        headroom: what to keep back.
    """
    if physical_kib < 1:
        raise ConfigError(f"physical memory: {physical_kib} KiB is not a memory size")
    limit, source = physical_kib, "physical"
    for candidate, name in ((cgroup_kib, "cgroup"), (slurm_kib, "slurm")):
        if candidate is not None and candidate < limit:
            limit, source = candidate, name
    return MemoryInfo(
        kib=headroom.usable(max(limit, 1)),
        limit_kib=limit,
        source=source,
        physical_kib=physical_kib,
        cgroup_kib=cgroup_kib,
        cgroup_file=cgroup_file,
        slurm_kib=slurm_kib,
    )
