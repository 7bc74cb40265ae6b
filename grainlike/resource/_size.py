"""Sizes counted exactly in whole KiB, given or learned per group: what Memory and Disk share."""

from __future__ import annotations

import re
from typing import ClassVar, Self

from .._exceptions import ResourceError
from ._kind import Kind
from ._units import KIB_PER_GB, MAX_KIB, clipped, format_gb, format_kib, parse_kib, shown

__all__ = ["Size"]

#: Group names print after '@' in the shorthand, so they avoid its separators (as WTime's do).
_GROUP = re.compile(r"^[^,\[\]]+$")


def _check_group(kind: str, group: object) -> None:
    if not (isinstance(group, str) and group == group.strip() and _GROUP.match(group)):
        raise ResourceError(
            f"{kind}(group={group!r}): a group is a non-empty name without ',', '[' or ']'"
        )


class Size(Kind):
    """A size in whole KiB: the base of ``Memory`` and ``Disk``.

    Numbers are GB (1 G = 1024**3 bytes) and strings take the units ``K``, ``M``, ``G``, ``T``.
    A size is from 1K to ``MAX_KIB`` KiB (1 EiB).

    A request may instead name a group whose size is learned from earlier runs, with a first
    guess (``Memory(4, group="g")``) or without one (``Memory(group="g")``).  The dispatcher
    fills in what it learned (``with_kib``); a group request that reaches a capacity without a
    size takes all of it, the whole of one worker's memory or disk, which is the most it could
    need there.  Capacities are sizes only.

    Args:
        size: GB as a number, or a string with a unit; default 1 GB, or none for a group.
        group: the name of a group whose size is learned.

    Raises:
        ResourceError: for a size that is not positive, below 1K or above ``MAX_KIB``, or a
            malformed group name.
    """

    __slots__ = ("_free", "_kib", "group")

    #: What messages call the quantity (``disk must be positive``).
    noun: ClassVar[str] = "size"
    #: The size in KiB; 0 only for a group request without a first guess.
    _kib: int
    _free: int
    group: str | None

    def __init__(self, size: float | str | None = None, group: str | None = None) -> None:
        if group is not None:
            _check_group(type(self).__name__, group)
        if size is None:
            kib = 0 if group is not None else KIB_PER_GB
        else:
            kib = parse_kib(size, what=type(self).__name__, noun=self.noun)
        self._kib = self._free = kib
        self.group = group
        self._live = None

    @classmethod
    def from_kib(cls, kib: int, group: str | None = None) -> Self:
        """Exactly ``kib`` KiB (from 1 to ``MAX_KIB``), of ``group`` when given."""
        if isinstance(kib, bool) or not isinstance(kib, int) or not 1 <= kib <= MAX_KIB:
            raise ResourceError(
                f"{cls.__name__}.from_kib({shown(kib)}): a size is a whole number of KiB from 1 "
                f"to {MAX_KIB}"
            )
        if group is not None:
            _check_group(cls.__name__, group)
        return cls._of(kib, group)

    @classmethod
    def _of(cls, kib: int, group: str | None = None) -> Self:
        new = cls.__new__(cls)
        new._kib = new._free = kib
        new.group = group
        new._live = None
        return new

    @property
    def sized(self) -> bool:
        """Whether it has a size: all but a group request without a first guess."""
        return self._kib > 0

    @property
    def kib(self) -> int:
        """The size in KiB.

        Raises:
            ResourceError: for a group request without a first guess, which has no size yet.
        """
        if not self._kib:
            raise ResourceError(f"{self!r}: no size until its group is learned (see .sized)")
        return self._kib

    @property
    def gb(self) -> float:
        """The size in GB (see ``kib``)."""
        return self.kib / KIB_PER_GB

    def with_kib(self, kib: int) -> Self:
        """The same request with a (learned) size of ``kib`` KiB; the group is kept."""
        return self.from_kib(kib, self.group)

    def _fits(self, req: Self, *, total: bool) -> bool:
        owned = self._kib
        if not owned:
            return False  # a group request is no capacity
        need = req._kib or owned
        return need <= (owned if total else self._free)

    def _take(self, req: Self) -> Self:
        kib = req._kib or self._kib
        self._free -= kib
        return self._of(kib, req.group)

    def _give(self, allocation: Self) -> None:
        self._free += allocation._kib

    def _stat(self) -> tuple[float, float]:
        return (self._free / KIB_PER_GB, self._kib / KIB_PER_GB)

    def to_text(self) -> str:
        text = format_kib(self._free) if self._kib else ""
        return text if self.group is None else f"{text}@{self.group}"

    def format_amount(self, amount: float) -> str:
        return format_gb(amount)

    @classmethod
    def from_text(cls, value: str | None, *, capacity: bool) -> Self | None:
        if value is None:
            return cls()
        size, at, group = value.partition("@")
        if at:
            if capacity:
                raise ResourceError(
                    f"{cls.name}:{clipped(value)}: a capacity is a size, without a group"
                )
            return cls(size.strip() or None, group)
        kib = parse_kib(value, what=cls.__name__, noun=cls.noun, zero=capacity)
        return cls._of(kib) if kib else None

    def _same_value(self, other: Self) -> bool:
        return (self._kib, self._free, self.group) == (other._kib, other._free, other.group)

    def _value_hash(self) -> int:
        return hash((self._kib, self.group))

    def __repr__(self) -> str:
        parts = [repr(format_kib(self._kib))] if self._kib else []
        if self.group is not None:
            parts.append(f"group={self.group!r}")
        return f"{type(self).__name__}({', '.join(parts)})"
