"""Sizes for ``Memory(group=...)`` and ``Disk(group=...)`` requests, from what was learned.

A group's request takes its learned label once there is one (``_measured.py``), else its first
guess, else the largest amount any connected worker has (Work Queue's "max" first allocation).
A label is never more than the largest worker has, so that a group whose tasks once fitted
still fits.  A task killed for exceeding its memory or disk label is retried once with twice it.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..resource import Disk, Memory, Resources, WTime
from ..resource._size import Size
from ..wire import Usage
from ._learned import LearnedLimits
from ._measured import DISK, MEM
from ._records import WorkerState

__all__ = ["grown_request", "learn_usage", "sized_request"]

_SIZED: tuple[tuple[type[Size], str], ...] = ((Memory, MEM), (Disk, DISK))


def _largest(kind: type[Size], workers: Iterable[WorkerState]) -> int | None:
    """The largest total of ``kind`` (KiB) among ``workers``, if any has it."""
    sizes = [part.kib for worker in workers if (part := worker.capacity.get(kind)) is not None]
    return max(sizes, default=None)


def _replaced(request: Resources, part: Size) -> Resources:
    return Resources(*(part if p.key == part.key else p for p in request.parts()))


def sized_request(
    request: Resources, learned: LearnedLimits, workers: Iterable[WorkerState]
) -> Resources:
    """``request`` with each ``Memory`` and ``Disk`` group part given its size now."""
    for kind, metric in _SIZED:
        part = request.get(kind)
        if part is None or part.group is None:
            continue
        largest = _largest(kind, workers)
        kib = learned.label(metric, part.group)
        if kib is not None and largest is not None:
            kib = min(kib, largest)
        elif kib is None:
            kib = part.kib if part.sized else largest
        if kib is not None and not (part.sized and part.kib == kib):
            request = _replaced(request, part.with_kib(kib))
    return request


def grown_request(
    request: Resources,
    held: Resources | None,
    learned: LearnedLimits,
    workers: Iterable[WorkerState],
    kind: type[Size] = Memory,
) -> Resources | None:
    """The request for the one retry of a task of a ``Memory`` (or ``Disk``) group that
    exceeded the ``held`` allocation: twice what it held (or, if more, the size that fits
    every measured run of the group), at most the largest worker's; ``None`` when it asked
    for no group, or nothing larger exists."""
    part = request.get(kind)
    had = held.get(kind) if held is not None else None
    if part is None or part.group is None or had is None:
        return None
    metric = MEM if kind is Memory else DISK
    largest = _largest(kind, workers)
    target = max(2 * had.kib, learned.largest_label(metric, part.group) or 0)
    target = min(target, largest if largest is not None else target)
    if target <= had.kib:
        return None
    return _replaced(request, kind.from_kib(target, part.group))


def learn_usage(learned: LearnedLimits, request: Resources, usage: Usage) -> None:
    """Teach ``learned`` what a run of ``request`` used, for each group it names."""
    wtime, memory, disk = request.get(WTime), request.get(Memory), request.get(Disk)
    memory_group = memory.group if memory is not None else None
    disk_group = disk.group if disk is not None else None
    groups = {
        group
        for group in (wtime.group if wtime is not None else None, memory_group, disk_group)
        if group is not None
    }
    if groups:
        learned.record_usage(
            sorted(groups),
            usage.wall,
            usage.cpu,
            usage.peak_rss,
            usage.peak_disk,
            memory=memory_group,
            disk=disk_group,
        )
