"""Memory, counted exactly in KiB."""

from __future__ import annotations

from typing import ClassVar, Self

from .._exceptions import ResourceError
from ._kind import Kind, register_kind
from ._units import KIB_PER_GB, MAX_KIB, format_gb, format_kib, parse_kib, shown

__all__ = ["Memory"]


class Memory(Kind):
    """Memory: ``Memory(8)``, ``Memory(0.5)``, ``Memory("512M")``, ``Memory("16G")``.

    Numbers are GB (1 G = 1024**3 bytes).  An allocation's ``.M`` is its size in GB.
    A size is from 1K to ``MAX_KIB`` KiB (1 EiB).
    """

    __slots__ = ("_free", "_kib")

    name = "mem"
    order = 1
    shortcuts: ClassVar[dict[str, str]] = {"M": "M"}
    _kib: int
    _free: int

    def __init__(self, size: float | str = 1) -> None:
        self._kib = self._free = parse_kib(size)
        self._live = None

    @classmethod
    def from_kib(cls, kib: int) -> Self:
        """Memory of exactly ``kib`` KiB (from 1 to ``MAX_KIB``)."""
        if isinstance(kib, bool) or not isinstance(kib, int) or not 1 <= kib <= MAX_KIB:
            raise ResourceError(
                f"Memory.from_kib({shown(kib)}): a size is a whole number of KiB from 1 to "
                f"{MAX_KIB}"
            )
        return cls._of(kib)

    @classmethod
    def _of(cls, kib: int) -> Self:
        new = cls.__new__(cls)
        new._kib = new._free = kib
        new._live = None
        return new

    @property
    def M(self) -> float:  # Grain's name, part of the contract
        """Size in GB."""
        return self._kib / KIB_PER_GB

    @property
    def kib(self) -> int:
        """Size in KiB."""
        return self._kib

    def _fits(self, req: Self, *, total: bool) -> bool:
        return req._kib <= (self._kib if total else self._free)

    def _take(self, req: Self) -> Self:
        self._free -= req._kib
        return self._of(req._kib)

    def _give(self, allocation: Self) -> None:
        self._free += allocation._kib

    def _stat(self) -> tuple[float, float]:
        return (self._free / KIB_PER_GB, self._kib / KIB_PER_GB)

    def to_text(self) -> str:
        return format_kib(self._free)

    def format_amount(self, amount: float) -> str:
        return format_gb(amount)

    @classmethod
    def from_text(cls, value: str | None, *, capacity: bool) -> Self | None:
        if value is None:
            return cls(1)
        kib = parse_kib(value, what="Memory", zero=capacity)
        return cls._of(kib) if kib else None

    def _same_value(self, other: Self) -> bool:
        return self._kib == other._kib and self._free == other._free

    def _value_hash(self) -> int:
        return hash(self._kib)

    def __repr__(self) -> str:
        return f"Memory({format_kib(self._kib)!r})"


register_kind(Memory, "memory")
