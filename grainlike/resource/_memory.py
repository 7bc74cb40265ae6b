"""Memory, counted exactly in KiB."""

from __future__ import annotations

from typing import ClassVar

from ._kind import register_kind
from ._size import Size
from ._units import KIB_PER_GB

__all__ = ["Memory"]


class Memory(Size):
    """Memory: ``Memory(8)``, ``Memory(0.5)``, ``Memory("512M")``, ``Memory("16G")``.

    Numbers are GB (1 G = 1024**3 bytes).  An allocation's ``.M`` is its size in GB.
    A size is from 1K to ``MAX_KIB`` KiB (1 EiB).
    ``Memory(group="g")`` and ``Memory(4, group="g")`` ask for a size learned per group (see
    ``Size``); they print as ``mem:@g`` and ``mem:4G@g``.
    """

    __slots__ = ()

    name = "mem"
    order = 1
    noun = "memory"
    shortcuts: ClassVar[dict[str, str]] = {"M": "M"}

    @property
    def M(self) -> float:  # Grain's name, part of the contract
        """Size in GB."""
        return self.kib / KIB_PER_GB


register_kind(Memory, "memory")
