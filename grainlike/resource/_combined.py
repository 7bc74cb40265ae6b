"""Combinations of kinds: ``a & b`` and ``ZERO``.

This module knows kinds only through the ``Kind`` protocol and the registry: each kind declares
its Grain-style shortcuts (``Cores.shortcuts``), so that ``Resources.c`` finds its part without
naming ``Cores`` here.  ``Kind`` and ``Resources`` are defined in terms of each other (a kind
combines into resources with ``&``): that one tie is kept behind function-local imports in
``_kind.py``, and the layering test allows exactly it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TypeVar, overload

from .._exceptions import InsufficientResourcesError, ResourceError
from ._kind import Kind, kind_for_name, shortcut_owner

__all__ = ["ZERO", "Resources", "as_resources"]

K = TypeVar("K", bound=Kind)


class Resources:
    """A flat, order-independent combination of kinds, at most one of each.

    Plays the same three roles as a kind: request, capacity and allocation.
    """

    __slots__ = ("__weakref__", "_hash", "_kinds", "_live")

    _kinds: dict[object, Kind]
    _live: dict[int, Resources] | None
    # The kinds' values never change (a capacity's bookkeeping is not part of its value), so
    # the hash is computed once: requests are hashed for every task the dispatcher queues.
    _hash: int | None

    def __init__(self, *kinds: Kind | Resources) -> None:
        self._kinds = {}
        self._live = None
        self._hash = None
        for kind in kinds:
            self._merge(kind)

    def __getstate__(self) -> tuple[None, dict[str, Any]]:
        # Not the cached hash: string hashes differ from process to process.
        return None, {"_kinds": self._kinds, "_live": self._live}

    def __setstate__(self, state: tuple[None, dict[str, Any]]) -> None:
        _, slots = state
        self._kinds = slots["_kinds"]
        self._live = slots["_live"]
        self._hash = None

    @classmethod
    def _of(cls, kinds: dict[object, Kind]) -> Resources:
        new = cls.__new__(cls)
        new._kinds = kinds
        new._live = None
        new._hash = None
        return new

    def _merge(self, other: Kind | Resources) -> None:
        if isinstance(other, Kind):
            items: Any = ((other.key, other),)
        elif isinstance(other, Resources):
            items = other._kinds.items()
        else:
            raise ResourceError(f"{other!r}: only resources combine with '&'")
        kinds = self._kinds
        for key, kind in items:
            if key in kinds:
                raise ResourceError(f"{kinds[key]!r} & {kind!r}: combines two {kind._what()}")
            kinds[key] = kind

    def parts(self) -> list[Kind]:
        """The kinds, in the canonical order of the shorthand."""
        return sorted(self._kinds.values(), key=lambda k: (k.order, k.label))

    def __and__(self, other: Kind | Resources) -> Resources:
        if not isinstance(other, Kind | Resources):
            return NotImplemented  # let e.g. a bound function's __rand__ answer
        combined = Resources._of(dict(self._kinds))
        combined._merge(other)
        return combined

    def __rmatmul__(self, fn: Any) -> Any:
        from ._binding import bind

        return bind(fn, self)

    def __rand__(self, other: Kind | Resources) -> Resources:
        if not isinstance(other, Kind | Resources):
            return NotImplemented
        return as_resources(other) & self

    def __len__(self) -> int:
        return len(self._kinds)

    def __iter__(self) -> Iterator[Kind]:
        return iter(self.parts())

    # -- capacity role ----------------------------------------------------------------------

    def shortfall(self, req: Kind | Resources, *, total: bool = False) -> tuple[str, ...]:
        """Labels of the kinds of ``req`` that do not fit now (with ``total``: could never fit).

        Args:
            req: a kind, a combination of kinds, or ``ZERO``.
            total: compare with what this capacity owns rather than what is free now.

        Returns:
            The labels (``"cores"``, ``"license"``, ...), sorted; empty when ``req`` fits.
        """
        kinds = self._kinds
        short = []
        for key, wanted in as_resources(req)._kinds.items():
            owned = kinds.get(key)
            if owned is None or not owned._fits(wanted, total=total):
                short.append(wanted.label)
        return tuple(sorted(short))

    def request(self, req: Kind | Resources) -> bool:
        """Whether ``alloc(req)`` would succeed now; a kind this capacity lacks never fits.

        Args:
            req: a kind, a combination of kinds, or ``ZERO``.
        """
        kinds = self._kinds
        for key, wanted in _items(req):
            owned = kinds.get(key)
            if owned is None or not owned._fits(wanted, total=False):
                return False
        return True

    def alloc(self, req: Kind | Resources) -> Resources:
        """Allocate every kind of ``req`` or none.

        Args:
            req: a kind, a combination of kinds, or ``ZERO``.

        Returns:
            The allocation: one part per kind of ``req``, usable again as a request, to be
            given back with ``dealloc``.

        Raises:
            InsufficientResourcesError: when a kind does not fit now (its ``short`` names
                them); nothing is taken.
        """
        kinds = self._kinds
        plan = []
        for key, wanted in _items(req):
            owned = kinds.get(key)
            if owned is None or not owned._fits(wanted, total=False):
                short = self.shortfall(req)
                raise InsufficientResourcesError(
                    f"cannot allocate {req} from {self}: short of {', '.join(short)}", short
                )
            plan.append((key, owned, wanted))
        taken: dict[object, Kind] = {}
        try:
            for key, owned, wanted in plan:
                taken[key] = owned._take(wanted)
        except BaseException:
            # Only a faulty custom kind fails after fitting; still, all or nothing.
            for key, part in taken.items():
                kinds[key]._give(part)
            raise
        allocation = Resources._of(taken)
        live = self._live
        if live is None:
            live = self._live = {}
        live[id(allocation)] = allocation
        return allocation

    def dealloc(self, allocation: Kind | Resources) -> None:
        """Give back an allocation that ``alloc`` of this capacity returned.

        Raises:
            ResourceError: when this capacity did not hand it out, or it was given back already.
        """
        live = self._live
        if live is None or live.get(id(allocation)) is not allocation:
            raise ResourceError(
                f"dealloc({allocation}): this capacity did not hand out this allocation, "
                "or it was already returned"
            )
        del live[id(allocation)]
        kinds = self._kinds
        assert isinstance(allocation, Resources)
        for key, part in allocation._kinds.items():
            kinds[key]._give(part)

    def stat(self) -> dict[str, tuple[float, float]]:
        """Per kind label, (available, total)."""
        out: dict[str, tuple[float, float]] = {}
        for kind in self.parts():
            out.update(kind.stat())
        return out

    def describe(self, *, total: bool = False) -> str:
        """Free and total per kind for people: ``cores 2/4, mem 3.5G/16G`` (totals only, with
        ``total``); ``nothing`` when empty."""
        items = []
        for kind in self.parts():
            for label, (free, whole) in kind.stat().items():
                amount = kind.format_amount
                text = amount(whole) if total else f"{amount(free)}/{amount(whole)}"
                items.append(f"{label} {text}")
        return ", ".join(items) or "nothing"

    # -- allocation role: lookups and Grain-style shortcuts ---------------------------------

    @overload
    def get(self, kind: type[K]) -> K | None: ...
    @overload
    def get(self, kind: str) -> Kind | None: ...
    def get(self, kind: type[Kind] | str) -> Kind | None:
        """The part of kind ``kind``, or ``None`` when this holds none.

        Args:
            kind: a kind class (``Cores``), or a name of the grammar: a kind's name or alias
                (``"mem"``, ``"memory"``) or a counter's name (``"license"``).

        Raises:
            ResourceError: for ``Counter`` itself, as counters are told apart by name.
        """
        if isinstance(kind, str):
            registered = kind_for_name(kind.lower())
            for part in self._kinds.values():
                if part.label == kind or (registered and isinstance(part, registered)):
                    return part
            return None
        if kind.named_by_instance:
            raise ResourceError(
                f"get({kind.__name__}): look a {kind.__name__.lower()} up by its name, "
                "e.g. get('license')"
            )
        return self._kinds.get(kind)

    @overload
    def __getitem__(self, kind: type[K]) -> K: ...
    @overload
    def __getitem__(self, kind: str) -> Kind: ...
    def __getitem__(self, kind: type[Kind] | str) -> Kind:
        part = self.get(kind)
        if part is None:
            name = kind if isinstance(kind, str) else kind.__name__
            raise KeyError(f"{self!r} has no {name}")
        return part

    def _shortcut(self, attribute: str) -> Any:
        kind = shortcut_owner(attribute)
        part = self._kinds.get(kind)
        if part is None:
            raise AttributeError(
                f"{attribute}: {self!r} holds no {kind.__name__}, so it has no .{attribute}"
            )
        return getattr(part, kind.shortcuts[attribute])

    # Real properties rather than __getattr__, so that type checkers know the shortcuts.
    @property
    def c(self) -> list[int]:
        """The sorted core IDs (``Cores``)."""
        ids: list[int] = self._shortcut("c")
        return ids

    @property
    def N(self) -> int:  # Grain's name, part of the contract
        """The number of cores (``Cores``)."""
        count: int = self._shortcut("N")
        return count

    @property
    def M(self) -> float:  # Grain's name, part of the contract
        """Memory in GB (``Memory``)."""
        gb: float = self._shortcut("M")
        return gb

    @property
    def T(self) -> float | None:  # Grain's name, part of the contract
        """The hard time limit in seconds (``WTime``); ``None`` when not known."""
        seconds: float | None = self._shortcut("T")
        return seconds

    @property
    def softT(self) -> float | None:  # Grain's name, part of the contract
        """The soft time limit in seconds (``WTime``); ``None`` when not known."""
        seconds: float | None = self._shortcut("softT")
        return seconds

    @property
    def gpus(self) -> list[int]:
        """The sorted GPU device indices (``GPU``)."""
        ids: list[int] = self._shortcut("gpus")
        return ids

    # -- values ------------------------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Kind):
            return len(self._kinds) == 1 and self._kinds.get(other.key) == other
        if isinstance(other, Resources):
            return self._kinds == other._kinds
        return NotImplemented

    def __hash__(self) -> int:
        value = self._hash
        if value is None:
            if len(self._kinds) == 1:
                value = hash(next(iter(self._kinds.values())))
            else:
                value = hash(frozenset((k, v._value_hash()) for k, v in self._kinds.items()))
            self._hash = value
        return value

    def __str__(self) -> str:
        return ",".join(str(kind) for kind in self.parts())

    def __repr__(self) -> str:
        if not self._kinds:
            return "ZERO"
        return " & ".join(repr(kind) for kind in self.parts())


def _items(req: Kind | Resources) -> Any:
    if type(req) is Resources:
        return req._kinds.items()
    if isinstance(req, Resources):
        return req._kinds.items()
    if isinstance(req, Kind):
        return ((req.key, req),)
    raise ResourceError(f"{req!r}: not a resource request")


def as_resources(value: Kind | Resources) -> Resources:
    """View a kind as a one-kind combination (sharing the kind object), or pass through."""
    if isinstance(value, Resources):
        return value
    if isinstance(value, Kind):
        return Resources._of({value.key: value})
    raise ResourceError(f"{value!r}: not a resource")


#: The empty request: every capacity satisfies it.
ZERO = Resources()
