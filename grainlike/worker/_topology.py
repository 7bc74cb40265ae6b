"""CPU cores: the process's affinity, grouped by NUMA node or socket as sysfs describes them."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import attrs

from .._exceptions import ConfigError
from ..resource import Cores, Resources
from ..resource._units import format_ids

__all__ = ["CoreInfo", "detect_cores", "numa_nodes", "parse_cpu_list", "sockets"]


@attrs.frozen
class CoreInfo:
    """The cores this process may run on, and how they group.

    Attributes:
        ids: the logical CPU IDs of the process's affinity, sorted.
        groups: the group of each ID (parallel to ``ids``), or ``None`` when the IDs do not
            span several groups or sysfs does not say.
        grouped_by: ``"numa"``, ``"socket"`` or ``"none"``.
    """

    ids: tuple[int, ...]
    groups: tuple[int, ...] | None = None
    grouped_by: str = "none"

    def group_map(self) -> dict[int, int] | None:
        """ID to group, as ``Cores(..., groups=...)`` takes it."""
        if self.groups is None:
            return None
        return dict(zip(self.ids, self.groups, strict=True))

    def capacity(self) -> Cores:
        """These cores as a capacity."""
        return Cores(self.ids, groups=self.group_map())


def parse_cpu_list(text: str, *, what: str = "cpulist") -> tuple[int, ...]:
    """Parse the kernel's CPU list format (``0-3,8,10-11``; empty means none) into sorted IDs.

    Raises:
        ConfigError: when ``text`` is not a CPU list; the message names ``what``.
    """
    ids: set[int] = set()
    for part in text.strip().split(","):
        piece = part.strip()
        if not piece:
            continue
        low, dash, high = piece.partition("-")
        try:
            first, last = int(low), int(high if dash else low)
        except ValueError:
            raise ConfigError(f"{what}: {text.strip()!r} is not a CPU list like 0-3,8") from None
        if first < 0 or last < first:
            raise ConfigError(f"{what}: {text.strip()!r} is not a CPU list like 0-3,8")
        ids.update(range(first, last + 1))
    return tuple(sorted(ids))


def numa_nodes(sysfs: Path) -> dict[int, int]:
    """CPU to NUMA node, from ``node/nodeK/cpulist`` under ``sysfs/devices/system``."""
    out: dict[int, int] = {}
    base = sysfs / "devices" / "system" / "node"
    if not base.is_dir():
        return out
    for entry in base.iterdir():
        suffix = entry.name.removeprefix("node")
        if suffix == entry.name or not suffix.isdigit():
            continue
        try:
            text = (entry / "cpulist").read_text()
        except OSError:
            continue
        # A node without CPUs (memory only, e.g. HBM or CXL) lists nothing and groups nothing.
        for cpu in parse_cpu_list(text, what=str(entry / "cpulist")):
            out[cpu] = int(suffix)
    return out


def sockets(sysfs: Path, cpus: Iterable[int]) -> dict[int, int]:
    """CPU to physical package (socket), from ``cpuN/topology/physical_package_id``."""
    out: dict[int, int] = {}
    base = sysfs / "devices" / "system" / "cpu"
    for cpu in cpus:
        path = base / f"cpu{cpu}" / "topology" / "physical_package_id"
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        try:
            package = int(text)
        except ValueError:
            raise ConfigError(f"{path}: {text!r} is not a package number") from None
        # Some virtual machines report -1: no socket known.
        if package >= 0:
            out[cpu] = package
    return out


def detect_cores(affinity: Iterable[int], *, sysfs: Path = Path("/sys")) -> CoreInfo:
    """The cores of ``affinity``, grouped for locality.

    NUMA nodes are preferred: they are never coarser than sockets, and they are what memory
    locality follows (AMD NPS and Intel SNC modes split one socket into several nodes).  Sockets
    are the fallback when the kernel exposes no NUMA nodes.  A grouping is used only when it
    names every CPU of ``affinity`` and spans more than one group, since a single group gives
    placement nothing to exploit.

    Args:
        affinity: the CPU IDs the process may run on (``os.sched_getaffinity(0)``).
        sysfs: where sysfs is mounted (a test points this at a tree of its own).
    """
    ids = tuple(sorted(set(affinity)))
    if not ids:
        raise ConfigError("CPU affinity: the process may run on no CPU at all")
    numa = numa_nodes(sysfs)
    if _spans_groups(ids, numa):
        return CoreInfo(ids, tuple(numa[cpu] for cpu in ids), "numa")
    socket = sockets(sysfs, ids)
    if _spans_groups(ids, socket):
        return CoreInfo(ids, tuple(socket[cpu] for cpu in ids), "socket")
    return CoreInfo(ids)


def _spans_groups(ids: tuple[int, ...], mapping: dict[int, int]) -> bool:
    return all(cpu in mapping for cpu in ids) and len({mapping[cpu] for cpu in ids}) > 1


def _affinity() -> set[int]:
    return os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()


def pinnable(core_ids: Iterable[int]) -> set[int]:
    """The cores of ``core_ids`` this process may run on; all of those it may when none is
    (an overcommitted capacity names cores the machine does not have: see
    ``overcommitted``)."""
    allowed = _affinity()
    wanted = set(core_ids) & allowed
    return wanted or allowed


def overcommitted(capacity: Resources) -> str | None:
    """A warning when ``capacity`` offers core IDs this process may not run on, else ``None``.

    Such a capacity is allowed (to run more tasks than cores, on purpose): the tasks see the
    IDs they were given, and their processes run on the cores this process may use.
    """
    cores = capacity.get(Cores)
    allowed = _affinity()
    if cores is None or not allowed:
        return None
    outside = sorted(set(cores.ids) - allowed)
    if not outside:
        return None
    return (
        f"{cores} offers core IDs {format_ids(outside)} that this process may not run on (its "
        f"CPU affinity is {format_ids(sorted(allowed))}): tasks given them run on the others, "
        "sharing them (an overcommitted capacity; see docs/resources.md)"
    )
