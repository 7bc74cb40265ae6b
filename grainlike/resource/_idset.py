"""Kinds whose capacity is a set of numbered devices: cores and GPUs."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from typing import ClassVar, Self

from .._exceptions import ResourceError
from ._kind import Kind
from ._units import MAX_ID, MAX_IDS, clipped, format_ids, parse_ids, shown

__all__ = ["IdSet"]


def _positions(mask: int) -> list[int]:
    """The set bits of ``mask``, lowest first."""
    out = []
    while mask:
        low = mask & -mask
        out.append(low.bit_length() - 1)
        mask ^= low
    return out


class IdSet(Kind):
    """A kind made of numbered units; as a request only the count matters.

    ``groups`` maps an ID to its group (socket or NUMA node).  When a capacity knows its
    groups, allocation keeps a task's IDs inside one group where it can.
    """

    # The free IDs are a bit mask over positions in ``_ids`` (bit k is ``_ids[k]``), so that
    # alloc and dealloc are a few integer operations however many IDs a node has.
    __slots__ = ("_free", "_groups", "_ids", "_nfree", "_origin", "_received", "_topology")

    unit: ClassVar[str] = "unit"
    _ids: tuple[int, ...]
    _free: int
    _nfree: int
    _groups: Mapping[int, int] | None
    #: Bit k set where a run of adjacent IDs must break before position k; and, per group,
    #: the mask of its positions.  Computed on the first allocation, as only capacities need it.
    _topology: tuple[int, dict[int | None, int]] | None
    #: For an allocation: the positions it holds in the capacity that handed it out.
    _origin: int
    #: An allocation that came over the wire: no capacity here, but it prints as its IDs.
    _received: bool

    def __init__(
        self, count_or_ids: int | Iterable[int] = 1, *, groups: Mapping[int, int] | None = None
    ) -> None:
        kind = type(self).__name__
        if isinstance(count_or_ids, bool | float | str):
            raise ResourceError(
                f"{kind}({shown(count_or_ids)}): give a whole number of {self.unit}s or a list "
                "of IDs"
            )
        if isinstance(count_or_ids, int):
            if count_or_ids < 1:
                raise ResourceError(
                    f"{kind}({shown(count_or_ids)}): a request needs at least 1 {self.unit}"
                )
            if count_or_ids > MAX_IDS:
                raise ResourceError(
                    f"{kind}({shown(count_or_ids)}): at most {MAX_IDS} {self.unit}s"
                )
            ids = tuple(range(count_or_ids))
        else:
            # One more than the limit is enough to refuse it: never list a huge iterable.
            given = list(itertools.islice(count_or_ids, MAX_IDS + 1))
            if len(given) > MAX_IDS:
                raise ResourceError(f"{kind}({shown(given)}): at most {MAX_IDS} {self.unit}s")
            if not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in given):
                raise ResourceError(f"{kind}({shown(given)}): IDs must be non-negative integers")
            if not given:
                raise ResourceError(f"{kind}([]): needs at least one {self.unit} ID")
            if max(given) > MAX_ID:
                raise ResourceError(f"{kind}({shown(given)}): an ID is at most {MAX_ID}")
            ids = tuple(sorted(set(given)))
            if len(ids) != len(given):
                raise ResourceError(f"{kind}({shown(given)}): an ID is listed twice")
        if groups is not None:
            if not isinstance(groups, Mapping) or not all(
                isinstance(i, int) and isinstance(g, int) for i, g in groups.items()
            ):
                raise ResourceError(
                    f"{kind}(groups={groups!r}): groups map each ID to a group number"
                )
            groups = dict(groups)  # a private copy: the topology is computed from it once
        self._init(ids, groups, 0)

    def _init(self, ids: tuple[int, ...], groups: Mapping[int, int] | None, origin: int) -> None:
        self._ids = ids
        self._free = (1 << len(ids)) - 1
        self._nfree = len(ids)
        self._groups = groups
        self._topology = None
        self._origin = origin
        self._received = False
        self._live = None

    @classmethod
    def _of(cls, ids: tuple[int, ...], groups: Mapping[int, int] | None, origin: int) -> Self:
        """Build without validation, from IDs known to be sorted and unique."""
        new = cls.__new__(cls)
        new._init(ids, groups, origin)
        return new

    @property
    def N(self) -> int:  # Grain's name, part of the contract
        """The number of IDs."""
        return len(self._ids)

    @property
    def ids(self) -> list[int]:
        """The sorted IDs."""
        return list(self._ids)

    @property
    def groups(self) -> Mapping[int, int] | None:
        """ID to group (socket/NUMA node), when known."""
        return self._groups

    def free_ids(self) -> list[int]:
        """The IDs of a capacity that are not allocated now, sorted."""
        ids = self._ids
        return [ids[k] for k in _positions(self._free)]

    def _fits(self, req: Self, *, total: bool) -> bool:
        return len(req._ids) <= (len(self._ids) if total else self._nfree)

    def _take(self, req: Self) -> Self:
        n = len(req._ids)
        chosen = self._pick(n)
        self._free &= ~chosen
        self._nfree -= n
        ids = self._ids
        first = chosen & -chosen
        start = first.bit_length() - 1
        if chosen == ((1 << n) - 1) << start and ids[start + n - 1] - ids[start] == n - 1:
            picked = tuple(range(ids[start], ids[start] + n))
        else:
            picked = tuple(ids[k] for k in _positions(chosen))
        return self._of(picked, self._groups, chosen)

    def _give(self, allocation: Self) -> None:
        self._free |= allocation._origin
        self._nfree += len(allocation._ids)

    def _layout(self) -> tuple[int, dict[int | None, int]]:
        """The run breaks and group masks of ``_topology``, computed once."""
        if self._topology is None:
            groups = self._groups
            breaks = 0
            masks: dict[int | None, int] = {}
            previous = -2
            for k, i in enumerate(self._ids):
                group = None if groups is None else groups.get(i)
                if i != previous + 1 or (groups is not None and group != groups.get(previous)):
                    breaks |= 1 << k
                masks[group] = masks.get(group, 0) | 1 << k
                previous = i
            self._topology = (breaks, masks)
        return self._topology

    def _pick(self, n: int) -> int:
        """Choose ``n`` free positions: deterministic, adjacent and inside one group if possible.

        Best fit: the shortest run of adjacent free IDs inside one group that holds ``n`` (the
        lowest such run on a tie), so that long runs stay whole for large requests.  Without
        such a run, the group with the fewest free IDs that still holds ``n``; failing that,
        the fullest groups first.
        """
        free = self._free
        if n == self._nfree:
            return free
        breaks, masks = self._layout()
        # Bit k of ``joined``: positions k-1 and k are both free and in the same run.
        joined = free & (free << 1) & ~breaks
        starts = free & ~joined
        best_start, best_length = -1, self._nfree + 1
        while starts:
            low = starts & -starts
            starts ^= low
            start = low.bit_length() - 1
            after = joined >> (start + 1)
            length = ((after ^ (after + 1)).bit_length() - 1) + 1  # 1 + trailing ones
            if n <= length < best_length:
                best_start, best_length = start, length
                if length == n:
                    break
        if best_start >= 0:
            return ((1 << n) - 1) << best_start
        if self._groups is None:
            return _lowest(free, n)
        in_group = [free & mask for mask in masks.values() if free & mask]
        fitting = [mask for mask in in_group if mask.bit_count() >= n]
        if fitting:
            return _lowest(min(fitting, key=lambda m: (m.bit_count(), m & -m)), n)
        chosen = 0
        for mask in sorted(in_group, key=lambda m: (-m.bit_count(), m & -m)):
            want = n - chosen.bit_count()
            chosen |= _lowest(mask, min(want, mask.bit_count()))
            if chosen.bit_count() == n:
                break
        return chosen

    def _stat(self) -> tuple[float, float]:
        return (float(self._nfree), float(len(self._ids)))

    def mark_received(self) -> None:
        """Say that this is an allocation decoded from the wire, which a worker was granted:
        it then prints as the IDs it holds, as the allocation it was made from does."""
        self._received = True

    def to_text(self) -> str:
        ids = self._ids
        if self._origin or self._received:  # an allocation: its IDs, even 0 and 1 (not "2")
            return format_ids(list(ids))
        if self._nfree == len(ids) and ids[-1] == len(ids) - 1:
            return str(len(ids))
        return format_ids(self.free_ids())

    @classmethod
    def from_text(cls, value: str | None, *, capacity: bool) -> Self | None:
        if value is None:
            return cls(1)
        text = value.strip()
        if text.startswith("["):
            if capacity and not text[1:-1].strip():
                return None  # no IDs: like quantity 0, this kind is unavailable
            return cls(parse_ids(text, what=cls.__name__))
        try:
            count = int(text)
        except ValueError:
            raise ResourceError(
                f"{cls.name}:{clipped(value)}: give a whole number of {cls.unit}s or an ID list "
                "like [0-3]"
            ) from None
        if count == 0 and capacity:
            return None
        return cls(count)

    def _same_value(self, other: Self) -> bool:
        return self._ids == other._ids and self._free == other._free

    def _value_hash(self) -> int:
        return hash(self._ids)

    def __repr__(self) -> str:
        if self._ids[-1] == len(self._ids) - 1:
            return f"{type(self).__name__}({len(self._ids)})"
        return f"{type(self).__name__}({list(self._ids)!r})"


def _lowest(mask: int, n: int) -> int:
    """The ``n`` lowest set bits of ``mask``."""
    chosen = 0
    for _ in range(n):
        low = mask & -mask
        chosen |= low
        mask ^= low
    return chosen
