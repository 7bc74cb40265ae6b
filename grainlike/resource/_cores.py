"""CPU cores."""

from __future__ import annotations

from typing import ClassVar

from ._idset import IdSet
from ._kind import register_kind

__all__ = ["GPU", "Cores"]


class Cores(IdSet):
    """CPU cores: ``Cores(2)`` requests two, ``Cores([0, 1, 4, 5])`` owns those core IDs.

    An allocation's ``.c`` lists the core IDs it got and ``.N`` counts them.
    """

    __slots__ = ()
    name = "cores"
    order = 0
    unit = "core"
    shortcuts: ClassVar[dict[str, str]] = {"c": "c", "N": "N"}

    @property
    def c(self) -> list[int]:
        """The sorted core IDs."""
        return list(self._ids)


class GPU(IdSet):
    """GPUs: ``GPU(1)`` requests one, ``GPU([0, 1])`` owns those device indices.

    An allocation's ``.ids`` lists the device indices it got.
    """

    __slots__ = ()
    name = "gpu"
    order = 2
    unit = "GPU"
    shortcuts: ClassVar[dict[str, str]] = {"gpus": "ids"}


register_kind(Cores, "core", "cpu", "cpus")
register_kind(GPU, "gpus")
