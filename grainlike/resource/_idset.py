"""Kinds whose capacity is a set of numbered devices: cores and GPUs."""

from __future__ import annotations

from bisect import insort
from collections.abc import Iterable, Mapping
from typing import ClassVar, Self

from .._exceptions import ResourceError
from ._kind import Kind
from ._units import format_ids, parse_ids

__all__ = ["IdSet"]


class IdSet(Kind):
    """A kind made of numbered units; as a request only the count matters.

    ``groups`` maps an ID to its group (socket or NUMA node).  When a capacity knows its
    groups, allocation keeps a task's IDs inside one group where it can.
    """

    __slots__ = ("_free", "_groups", "_ids")

    unit: ClassVar[str] = "unit"
    _ids: tuple[int, ...]
    _free: list[int]
    _groups: Mapping[int, int] | None

    def __init__(
        self, count_or_ids: int | Iterable[int] = 1, *, groups: Mapping[int, int] | None = None
    ) -> None:
        kind = type(self).__name__
        if isinstance(count_or_ids, bool) or isinstance(count_or_ids, float | str):
            raise ResourceError(
                f"{kind}({count_or_ids!r}): give a whole number of {self.unit}s or a list of IDs"
            )
        if isinstance(count_or_ids, int):
            if count_or_ids < 1:
                raise ResourceError(
                    f"{kind}({count_or_ids}): a request needs at least 1 {self.unit}"
                )
            ids = tuple(range(count_or_ids))
        else:
            given = list(count_or_ids)
            if not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in given):
                raise ResourceError(f"{kind}({given!r}): IDs must be non-negative integers")
            if not given:
                raise ResourceError(f"{kind}([]): needs at least one {self.unit} ID")
            ids = tuple(sorted(set(given)))
            if len(ids) != len(given):
                raise ResourceError(f"{kind}({given!r}): an ID is listed twice")
        self._ids = ids
        self._free = list(ids)
        self._groups = groups
        self._live = None

    @classmethod
    def _of(cls, ids: tuple[int, ...], groups: Mapping[int, int] | None) -> Self:
        """Build without validation, from IDs known to be sorted and unique."""
        new = cls.__new__(cls)
        new._ids = ids
        new._free = list(ids)
        new._groups = groups
        new._live = None
        return new

    @property
    def N(self) -> int:  # noqa: N802 - Grain's name, part of the contract
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

    def _fits(self, req: Self, *, total: bool) -> bool:
        return len(req._ids) <= len(self._ids if total else self._free)

    def _take(self, req: Self) -> Self:
        chosen = self._pick(len(req._ids))
        free = self._free
        if len(chosen) == len(free):
            free.clear()
        else:
            for i in chosen:
                free.remove(i)
        return self._of(chosen, self._groups)

    def _give(self, allocation: Self) -> None:
        free = self._free
        for i in allocation._ids:
            insort(free, i)

    def _pick(self, n: int) -> tuple[int, ...]:
        """Choose ``n`` free IDs: deterministic, adjacent and inside one group when possible."""
        free = self._free
        if n == len(free):
            return tuple(free)
        groups = self._groups
        # Best fit over runs of consecutive IDs that stay inside one group: the smallest run
        # that holds n, so that large runs stay whole for large requests.
        best_start, best_length = -1, len(free) + 1
        run_start = 0
        for k in range(1, len(free) + 1):
            if (
                k == len(free)
                or free[k] != free[k - 1] + 1
                or (groups is not None and groups.get(free[k]) != groups.get(free[k - 1]))
            ):
                length = k - run_start
                if n <= length < best_length:
                    best_start, best_length = run_start, length
                    if length == n:
                        break
                run_start = k
        if best_start >= 0:
            return tuple(free[best_start : best_start + n])
        if groups is None:
            return tuple(free[:n])
        by_group: dict[int, list[int]] = {}
        for i in free:
            by_group.setdefault(groups.get(i, -1), []).append(i)
        fitting = [ids for ids in by_group.values() if len(ids) >= n]
        if fitting:
            return tuple(min(fitting, key=lambda ids: (len(ids), ids[0]))[:n])
        chosen: list[int] = []
        for ids in sorted(by_group.values(), key=lambda ids: (-len(ids), ids[0])):
            chosen.extend(ids[: n - len(chosen)])
            if len(chosen) == n:
                break
        return tuple(sorted(chosen))

    def _stat(self) -> tuple[float, float]:
        return (float(len(self._free)), float(len(self._ids)))

    def to_text(self) -> str:
        free = self._free
        if len(free) == len(self._ids) and self._ids == tuple(range(len(self._ids))):
            return str(len(self._ids))
        return format_ids(free)

    @classmethod
    def from_text(cls, value: str | None, *, capacity: bool) -> Self | None:
        if value is None:
            return cls(1)
        text = value.strip()
        if text.startswith("["):
            return cls(parse_ids(text, what=cls.__name__))
        try:
            count = int(text)
        except ValueError:
            raise ResourceError(
                f"{cls.name}:{value}: give a whole number of {cls.unit}s or an ID list like [0-3]"
            ) from None
        if count == 0 and capacity:
            return None
        return cls(count)

    def _same_value(self, other: Self) -> bool:
        return self._ids == other._ids and self._free == other._free

    def _value_hash(self) -> int:
        return hash(self._ids)

    def __repr__(self) -> str:
        if self._ids == tuple(range(len(self._ids))):
            return f"{type(self).__name__}({len(self._ids)})"
        return f"{type(self).__name__}({list(self._ids)!r})"
