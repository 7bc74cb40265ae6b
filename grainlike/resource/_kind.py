"""The kind protocol: what every resource kind, built-in or registered, implements.

A kind instance plays three roles: a request (what a task asks for), a capacity (what a worker
or pool owns; mutated by ``alloc``/``dealloc``) and an allocation (what a task got, usable again
as a request).  Subclasses implement the underscored primitives; the public methods here add
the bookkeeping every kind shares (atomicity, double-dealloc detection, combination with ``&``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Self

from .._exceptions import InsufficientResourcesError, ResourceError

if TYPE_CHECKING:
    from ._combined import Resources

__all__ = ["Kind", "kind_for_name", "register_kind", "registered_kinds", "shortcut_owner"]


class Kind:
    """Base class of every resource kind.

    A subclass sets ``name`` (its word in the shorthand grammar) and implements
    ``_fits``, ``_take``, ``_give``, ``_stat``, ``to_text``, ``from_text``, ``_same_value``
    and ``_value_hash``.  Kinds are mutable only in their capacity role; requests and
    allocations are never mutated.  A subclass may be an ``attrs`` class
    (``@attrs.define(eq=False)``, so that the value protocol here is kept).
    """

    __slots__ = ("__weakref__", "_live")

    name: ClassVar[str] = ""
    #: Position in printed shorthand; built-ins first, then everything else by label.
    order: ClassVar[int] = 100
    #: Grain-style shortcuts an allocation answers for this kind: ``{"c": "c"}`` makes
    #: ``res.c`` the ``c`` of the ``Cores`` part.
    shortcuts: ClassVar[dict[str, str]] = {}
    #: Whether instances of this class are different kinds told apart by name (counters), so
    #: that ``res.get(cls)`` cannot say which one is meant.
    named_by_instance: ClassVar[bool] = False

    # Annotated with runtime names only: cattrs resolves the hints of registered attrs kinds.
    _live: dict[int, object] | None

    # -- identity ---------------------------------------------------------------------------

    @property
    def key(self) -> object:
        """What makes two kinds "the same kind" for ``&`` and lookup (the class by default)."""
        return type(self)

    @property
    def label(self) -> str:
        """The kind's name in ``stat()`` and in messages."""
        return self.name

    def _what(self) -> str:
        """How messages name the kind itself: ``Cores``, or ``Counter('license')``."""
        return type(self).__name__

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

    def format_amount(self, amount: float) -> str:
        """An amount of ``stat()`` for people (``2``, ``22.4G``, ``59m59s``); exact shorthand is
        ``to_text``."""
        if amount == int(amount):
            return str(int(amount))
        return f"{amount:.3g}"

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
        """A hash of what ``_same_value`` compares (equal values, equal hashes)."""
        raise NotImplementedError

    def _live_allocations(self) -> dict[int, object]:
        """The allocations this capacity handed out and has not got back, by ``id``."""
        # A subclass need not initialise the slot (an attrs kind has its own __init__), and
        # object.__setattr__ lets even a frozen kind serve as a capacity of requests it keeps.
        live = getattr(self, "_live", None)
        if live is None:
            live = {}
            object.__setattr__(self, "_live", live)
        return live

    # -- the public protocol ---------------------------------------------------------------

    def request(self, req: Kind | Resources) -> bool:
        """Whether ``alloc(req)`` would succeed now (a kind this capacity lacks never fits).

        Args:
            req: a kind, a combination of kinds, or ``ZERO``.
        """
        from ._combined import as_resources

        return as_resources(self).request(req)

    def alloc(self, req: Kind | Resources) -> Any:
        """Allocate ``req`` from this capacity.

        Args:
            req: a kind, a combination of kinds, or ``ZERO``.

        Returns:
            The allocation: a kind of the same class (a combination when ``req`` is one),
            usable again as a request, to be given back with ``dealloc``.

        Raises:
            InsufficientResourcesError: when it does not fit now; nothing is taken.
        """
        from ._combined import Resources, as_resources

        if not isinstance(req, Kind | Resources):
            raise ResourceError(f"alloc({req!r}): not a resource request")
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
        self._live_allocations()[id(allocation)] = allocation
        return allocation

    def dealloc(self, allocation: Kind | Resources) -> None:
        """Give back an allocation that ``alloc`` of this capacity returned.

        Raises:
            ResourceError: when this capacity did not hand it out, or it was given back already.
        """
        live = self._live_allocations()
        if live.get(id(allocation)) is not allocation:
            raise ResourceError(
                f"dealloc({allocation}): this {self.label} capacity did not hand out this "
                "allocation, or it was already returned"
            )
        del live[id(allocation)]
        if isinstance(allocation, Kind):
            self._give(allocation)

    def stat(self) -> dict[str, tuple[float, float]]:
        """Per kind label, (available, total): cores and GPUs in units, memory in GB, wall time
        in seconds, a token in names, a counter in its count."""
        return {self.label: self._stat()}

    def describe(self, *, total: bool = False) -> str:
        """Free and total per kind for people: ``cores 2/4, mem 3.5G/16G`` (totals only, with
        ``total``)."""
        from ._combined import as_resources

        return as_resources(self).describe(total=total)

    # -- allocation role: lookups and Grain-style shortcuts (.c .N .M .T .softT .gpus) ---------

    def get(self, kind: Any) -> Any:
        """The part of kind ``kind`` (a class or a name), or ``None``; see ``Resources.get``."""
        from ._combined import as_resources

        return as_resources(self).get(kind)

    def __getitem__(self, kind: Any) -> Any:
        from ._combined import as_resources

        return as_resources(self)[kind]

    def __getattr__(self, attribute: str) -> Any:
        from ._combined import as_resources

        if not attribute.startswith("_") and _SHORTCUTS.get(attribute) is not None:
            return getattr(as_resources(self), attribute)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {attribute!r}")

    # -- combination and value protocol ----------------------------------------------------

    def __and__(self, other: Kind | Resources) -> Resources:
        from ._combined import Resources, as_resources

        if not isinstance(other, Kind | Resources):
            return NotImplemented  # let e.g. a bound function's __rand__ answer
        return as_resources(self) & other

    def __rmatmul__(self, fn: Any) -> Any:
        from ._binding import bind

        return bind(fn, self)

    def __rand__(self, other: Kind | Resources) -> Resources:
        from ._combined import Resources, as_resources

        if not isinstance(other, Kind | Resources):
            return NotImplemented
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
#: Shortcut attribute -> the registered kind that declares it.
_SHORTCUTS: dict[str, type[Kind]] = {}


#: Words no registered kind may use: the wire tags counters with "counter".
_RESERVED = frozenset({"counter"})


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
        if word in _RESERVED:
            raise ResourceError(
                f"register_kind({cls.__name__}): name {word!r} is reserved (counters use it)"
            )
        taken = _REGISTRY.get(_ALIASES.get(word, word))
        if taken is not None and taken is not cls:
            raise ResourceError(
                f"register_kind({cls.__name__}): name {word!r} is taken by {taken.__name__}"
            )
    for shortcut in cls.shortcuts:
        owner = _SHORTCUTS.get(shortcut)
        if owner is not None and owner is not cls:
            raise ResourceError(
                f"register_kind({cls.__name__}): shortcut .{shortcut} is taken by {owner.__name__}"
            )
    _REGISTRY[cls.name] = cls
    for alias in aliases:
        _ALIASES[alias] = cls.name
    for shortcut in cls.shortcuts:
        _SHORTCUTS[shortcut] = cls
    return cls


def shortcut_owner(attribute: str) -> type[Kind]:
    """The registered kind whose shortcut ``attribute`` is (``.c`` is ``Cores``'s)."""
    return _SHORTCUTS[attribute]


def kind_for_name(word: str) -> type[Kind] | None:
    """The registered kind whose name (or alias) is ``word``, or ``None``."""
    return _REGISTRY.get(_ALIASES.get(word, word))


def registered_kinds() -> dict[str, type[Kind]]:
    """A snapshot of the registry: name to kind class."""
    return dict(_REGISTRY)
