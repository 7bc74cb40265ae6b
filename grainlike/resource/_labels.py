"""Named kinds: tokens (features a worker has) and counters (things it has some of)."""

from __future__ import annotations

import re
from typing import Self

from .._exceptions import ResourceError
from ._kind import Kind, kind_for_name, register_kind
from ._units import MAX_COUNT, clipped, shown

__all__ = ["Counter", "Token"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


class Token(Kind):
    """Features: ``Token("bigmem")`` requests a worker that has ``bigmem``.

    Tokens are not consumed: a request matches when its names are a subset of the capacity's.
    """

    __slots__ = ("names",)

    name = "token"
    order = 4
    names: frozenset[str]

    def __init__(self, *names: str) -> None:
        if not names:
            raise ResourceError("Token(): give at least one name")
        for word in names:
            if not (isinstance(word, str) and _NAME.match(word)):
                raise ResourceError(
                    f"Token({word!r}): a token name is letters, digits, '_', '.' or '-'"
                )
        self.names = frozenset(names)
        self._live = None

    def _fits(self, req: Self, *, total: bool) -> bool:
        return req.names <= self.names

    def _take(self, req: Self) -> Self:
        return type(self)(*req.names)

    def _give(self, allocation: Self) -> None:
        return None

    def _stat(self) -> tuple[float, float]:
        return (float(len(self.names)), float(len(self.names)))

    def to_text(self) -> str:
        return "+".join(sorted(self.names))

    @classmethod
    def from_text(cls, value: str | None, *, capacity: bool) -> Self | None:
        if value is None or not value.strip():
            raise ResourceError("token: give names, e.g. token:bigmem or token:bigmem+infiniband")
        return cls(*(part.strip() for part in value.split("+")))

    def _same_value(self, other: Self) -> bool:
        return self.names == other.names

    def _value_hash(self) -> int:
        return hash(self.names)

    def __repr__(self) -> str:
        return f"Token({', '.join(repr(n) for n in sorted(self.names))})"


class Counter(Kind):
    """A named count: ``Counter("license", 1)`` requests one, ``Counter("license", 4)`` owns four.

    Counters of different names are different kinds.  Unknown bare names in the shorthand
    grammar are counters: ``"license:3"`` is ``Counter("license", 3)``.  A count is at most
    ``MAX_COUNT`` (2**53).
    """

    __slots__ = ("_free", "_n", "counter")

    order = 50
    named_by_instance = True
    counter: str
    _n: int
    _free: int

    def __init__(self, name: str, n: int = 1) -> None:
        what = f"Counter({shown(name)}, {shown(n)})"
        if not (isinstance(name, str) and _NAME.match(name)):
            raise ResourceError(f"{what}: a counter name is letters, digits, '_', '.' or '-'")
        if kind_for_name(name.lower()) is not None:
            raise ResourceError(f"{what}: {name!r} names a resource kind, not a counter")
        if isinstance(n, bool) or not isinstance(n, int):
            raise ResourceError(f"{what}: a count must be a whole number")
        if n < 1:
            raise ResourceError(f"{what}: a request needs a count of at least 1")
        if n > MAX_COUNT:
            raise ResourceError(f"{what}: a count is at most {MAX_COUNT} (2**53)")
        self.counter = name
        self._n = self._free = n
        self._live = None

    @classmethod
    def _of(cls, name: str, n: int) -> Self:
        new = cls.__new__(cls)
        new.counter = name
        new._n = new._free = n
        new._live = None
        return new

    @property
    def name(self) -> str:  # type: ignore[override]
        """The counter's name."""
        return self.counter

    @property
    def n(self) -> int:
        """The count."""
        return self._n

    @property
    def key(self) -> tuple[str, str]:
        return ("counter", self.counter)

    @property
    def label(self) -> str:
        return self.counter

    def _what(self) -> str:
        return f"Counter({self.counter!r})"

    def _fits(self, req: Self, *, total: bool) -> bool:
        return req._n <= (self._n if total else self._free)

    def _take(self, req: Self) -> Self:
        self._free -= req._n
        return self._of(self.counter, req._n)

    def _give(self, allocation: Self) -> None:
        self._free += allocation._n

    def _stat(self) -> tuple[float, float]:
        return (float(self._free), float(self._n))

    def to_text(self) -> str:
        return str(self._free)

    @classmethod
    def from_text(cls, value: str | None, *, capacity: bool) -> Self | None:
        raise ResourceError("Counter.from_text: counters are parsed by name, see parse_resources")

    @classmethod
    def parse(cls, name: str, value: str | None, *, capacity: bool) -> Self | None:
        """Parse ``name:value`` for an unregistered name (``value`` is ``None`` when bare)."""
        if value is None:
            return cls(name, 1)
        try:
            count = int(value.strip())
        except ValueError:
            raise ResourceError(
                f"{name}:{clipped(value)}: a counter takes a whole number"
            ) from None
        if count < 0:
            raise ResourceError(f"Counter({name!r}, {shown(count)}): a count must not be negative")
        if count == 0 and capacity:
            return None
        return cls(name, count)

    def _same_value(self, other: Self) -> bool:
        return self._n == other._n and self._free == other._free

    def _value_hash(self) -> int:
        return hash(self._n)

    def __repr__(self) -> str:
        return f"Counter({self.counter!r}, {self._n})"


register_kind(Token, "tokens")
