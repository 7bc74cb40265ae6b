"""Disk: scratch space under a worker's scratch root, counted exactly in KiB."""

from __future__ import annotations

from ._kind import register_kind
from ._size import Size

__all__ = ["Disk"]


class Disk(Size):
    """Scratch disk: ``Disk(10)``, ``Disk("500M")``, ``Disk(group="g")``; shorthand ``disk:10G``.

    Numbers are GB (1 G = 1024**3 bytes), counted exactly in KiB like ``Memory``; ``.gb`` and
    ``.kib`` read the size.  A worker's capacity is the free space of its scratch root less a
    headroom.  A task whose allocation holds ``Disk`` gets a fresh private directory under that
    root, ``gl.GVAR.scratch``, removed when the task ends; its size is measured, not limited.
    ``Disk(group="g")`` and ``Disk(4, group="g")`` ask for a size learned per group (see
    ``Size``); they print as ``disk:@g`` and ``disk:4G@g``.
    """

    __slots__ = ()

    name = "disk"
    # After memory, before GPUs (ties sort by name): cores:4,mem:16G,disk:10G,gpu:1.
    order = 2
    noun = "disk"


register_kind(Disk)
