"""The kind protocol: what every resource kind, built-in or registered, implements.

A kind instance plays three roles: a request (what a task asks for), a capacity (what a worker
or pool owns; mutated by ``alloc``/``dealloc``) and an allocation (what a task got, usable again
as a request).  Subclasses implement the underscored primitives; the public methods here add
the bookkeeping every kind shares (atomicity, double-dealloc detection, combination with ``&``).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING, Any, ClassVar, Self

from .._exceptions import InsufficientResourcesError, ResourceError

if TYPE_CHECKING:
    from ._combined import Resources

__all__ = ["Kind", "kind_for_name", "register_kind", "registered_kinds"]


class Kind:
    """Base class of every resource kind.

    A subclass sets ``name`` (its word in the shorthand grammar) and implements
    ``_fits``, ``_take``, ``_give``, ``_stat``, ``to_text`` and ``from_text``.  Kinds are
    mutable only in their capacity role; requests and allocations are never mutated.
    """

    __slots__ = ("__weakref__", "_live")

    name: ClassVar[str] = ""
    #: Position in printed shorthand; built-ins first, then everything else by label.
    order: ClassVar[int] = 100

    _live: dict[int, Kind | Resources] | None

    # -- identity ---------------------------------------------------------------------------

    @property
    def key(self) -> Hashable:
        """What makes two kinds "the same kind" for ``&`` and lookup (the class by default)."""
        return type(self)

    @property
    def label(self) -> str:
        """The kind's name in ``stat()`` and in messages."""
        return self.name

    # -- the primitives a kind implements --------------------------------------------------

    def _fits(self, req: Self, *, total: bool) -> bool:
        """Whether ``req`` fits what is free now (or, with ``total``, what this capacity owns)."""
        raise NotImplementedError

    def _take(self, req: Self) -> Self:
        """Allocate ``req`` (already known to fit) and return the allocation."""
        raise NotImplementedError

    def _give(self, allocation: Self) -> None:
        """Return an allocation that ``_take`` handed out."""
        raise NotImplementedError

    def _stat(self) -> tuple[float, float]:
        """(available, total) in the kind's natural unit."""
        raise NotImplementedError

    def to_text(self) -> str:
        """The value part of the shorthand (after ``name:``)."""
        raise NotImplementedError

    @classmethod
    def from_text(cls, value: str | None, *, capacity: bool) -> Self | None:
        """Parse the value part of the shorthand (``None`` for a bare name).

        Returns ``None`` only for a capacity of quantity 0 ("this kind is unavailable").
        """
        raise NotImplementedError

    def _same_value(self, other: Self) -> bool:
        """Value equality between two instances of this kind."""
        raise NotImplementedError

    def _value_hash(self) -> int:
        raise NotImplementedError

    # -- the public protocol ---------------------------------------------------------------

    def request(self, req: Kind | Resources) -> bool:
        """Whether ``alloc(req)`` would succeed now."""
        from ._combined import as_resources

        return as_resources(self).request(req)

    def alloc(self, req: Kind | Resources) -> Any:
        """Allocate ``req`` atomically; raise ``InsufficientResourcesError`` when it cannot."""
        from ._combined import Resources, as_resources

        allocation: Kind | Resources
        if isinstance(req, Resources) and len(req) != 1:
            allocation = as_resources(self).alloc(req)  # ZERO, or raises naming the lacking kinds
        else:
            if isinstance(req, Resources):
                req = req.parts()[0]
            if req.key != self.key or not self._fits(req, total=False):
                raise InsufficientResourcesError(
                    f"cannot allocate {req} from {self}: short of {req.label}", (req.label,)
                )
            allocation = self._take(req)
        if self._live is None:
            self._live = {}
        self._live[id(allocation)] = allocation
        return allocation

    def dealloc(self, allocation: Kind | Resources) -> None:
        """Return an allocation; raise ``ResourceError`` if this capacity did not hand it out."""
        live = self._live
        if live is None or live.get(id(allocation)) is not allocation:
            raise ResourceError(
                f"dealloc({allocation}): this {self.label} capacity did not hand out this "
                "allocation, or it was already returned"
            )
        del live[id(allocation)]
        if isinstance(allocation, Kind):
            self._give(allocation)

    def stat(self) -> dict[str, tuple[float, float]]:
        """Per kind label, (available, total)."""
        return {self.label: self._stat()}

    # -- allocation role: lookups and Grain-style shortcuts (.c .N .M .T .softT .gpus) ---------

    def get(self, kind: Any) -> Any:
        """The part of kind ``kind`` (a class or a label), or ``None``."""
        from ._combined import as_resources

        return as_resources(self).get(kind)

    def __getitem__(self, kind: Any) -> Any:
        from ._combined import as_resources

        return as_resources(self)[kind]

    def __getattr__(self, attribute: str) -> Any:
        from ._combined import SHORTCUTS, as_resources

        if attribute in SHORTCUTS:
            return getattr(as_resources(self), attribute)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {attribute!r}")

    # -- combination and value protocol ----------------------------------------------------

    def __and__(self, other: Kind | Resources) -> Resources:
        from ._combined import as_resources

        return as_resources(self) & other

    def __rand__(self, other: Kind | Resources) -> Resources:
        from ._combined import as_resources

        return as_resources(other) & self

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Kind):
            return other.key == self.key and self._same_value(other)
        from ._combined import Resources

        if isinstance(other, Resources):
            return other == self
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.key, self._value_hash()))

    def __str__(self) -> str:
        return f"{self.name}:{self.to_text()}"


_REGISTRY: dict[str, type[Kind]] = {}
_ALIASES: dict[str, str] = {}


def register_kind(cls: type[Kind], *aliases: str) -> type[Kind]:
    """Register a kind so that the shorthand grammar and the wire know it.

    Usable as a class decorator.  The kind's ``name`` (and each alias) must be a lower-case
    identifier not taken by another kind.
    """
    if not (isinstance(cls, type) and issubclass(cls, Kind)):
        raise ResourceError(f"register_kind({cls!r}): a kind must subclass grainlike.Kind")
    for word in (cls.name, *aliases):
        if not (isinstance(word, str) and word.isidentifier() and word == word.lower()):
            raise ResourceError(
                f"register_kind({cls.__name__}): name {word!r} must be a lower-case identifier"
            )
        taken = _REGISTRY.get(_ALIASES.get(word, word))
        if taken is not None and taken is not cls:
            raise ResourceError(
                f"register_kind({cls.__name__}): name {word!r} is taken by {taken.__name__}"
            )
    _REGISTRY[cls.name] = cls
    for alias in aliases:
        _ALIASES[alias] = cls.name
    return cls


def kind_for_name(word: str) -> type[Kind] | None:
    """The registered kind whose name (or alias) is ``word``, or ``None``."""
    return _REGISTRY.get(_ALIASES.get(word, word))


def registered_kinds() -> dict[str, type[Kind]]:
    """A snapshot of the registry: name to kind class."""
    return dict(_REGISTRY)
