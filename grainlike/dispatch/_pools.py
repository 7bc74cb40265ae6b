"""Cluster-wide pools: counters the dispatcher owns, drawn from whichever worker runs a task.

A request is split once per shape: the counters named by a pool come from the pool, the rest
from the worker.  With no pools configured every request is all worker part, and the pool
methods are never reached, so the dispatcher needs no special case for "no pools".
"""

from __future__ import annotations

from collections.abc import Hashable

import attrs

from .._exceptions import ConfigError
from ..resource import ZERO, Counter, Kind, Resources

__all__ = ["Pools"]


@attrs.define(eq=False)
class Pools:
    """The dispatcher's pools (``pools={"license": 3}``): a capacity of counters only."""

    _capacity: Resources = ZERO
    _keys: frozenset[Hashable] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        for part in self._capacity.parts():
            if not isinstance(part, Counter):
                raise ConfigError(f"pools={self._capacity}: only counters can be pools, not {part}")
        # A private copy: allocations mutate it.
        self._capacity = Resources(*self._capacity.parts())
        self._keys = frozenset(part.key for part in self._capacity.parts())

    def __bool__(self) -> bool:
        return bool(self._keys)

    def __str__(self) -> str:
        return str(self._capacity)

    @property
    def capacity(self) -> Resources:
        """What the pools own (free and total, as any capacity)."""
        return self._capacity

    def split(self, request: Resources) -> tuple[Resources, Resources | None]:
        """``(worker part, pool part)`` of ``request``; the pool part is ``None`` when empty."""
        if not self._keys:
            return request, None
        worker: list[Kind] = []
        pooled: list[Kind] = []
        for part in request.parts():
            (pooled if part.key in self._keys else worker).append(part)
        if not pooled:
            return request, None
        return Resources(*worker), Resources(*pooled)

    def request(self, pool_part: Resources) -> bool:
        """Whether ``pool_part`` could be allocated now."""
        return self._capacity.request(pool_part)

    def alloc(self, pool_part: Resources) -> Resources:
        """Allocate ``pool_part`` (known to fit)."""
        return self._capacity.alloc(pool_part)

    def dealloc(self, allocation: Resources) -> None:
        """Give back what ``alloc`` handed out."""
        self._capacity.dealloc(allocation)

    def shortfall(self, pool_part: Resources, *, total: bool = False) -> tuple[str, ...]:
        """The pooled counters of ``pool_part`` that do not fit now (or ever, with ``total``)."""
        return self._capacity.shortfall(pool_part, total=total)
