"""The wire form of resource kinds: ``[tag, body]``, for built-in and registered kinds.

``tag`` is the kind's ``name`` (``"counter"`` for counters, whose body carries their own name)
and ``body`` a dict of plain values.
What crosses are requests, allocations and fresh capacities: a capacity's bookkeeping (free IDs,
free KiB, handed-out allocations) stays where it lives, so a capacity arrives whole and unused.
A countdown walltime crosses as the seconds it has left when it is sent.
"""

from __future__ import annotations

import math
import sys
import typing
from collections.abc import Callable
from typing import Any, Final

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn

from .._exceptions import GrainlikeError, ProtocolError
from ..resource import (
    GPU,
    Cores,
    Counter,
    Disk,
    IdSet,
    Kind,
    Memory,
    Resources,
    Size,
    Token,
    WTime,
    registered_kinds,
)
from ._checks import (
    Body,
    check_fields,
    check_int,
    check_list,
    check_optional_float,
    check_str,
    short,
)

__all__ = ["COUNTER_TAG", "KindCodec"]

#: The tag of every counter; the counter's own name travels in the body.
COUNTER_TAG: Final = "counter"

#: A countdown capacity that has run out still needs a positive T to be built; this is "none left".
_EXPIRED: Final = 1e-6


# -- built-in kinds ---------------------------------------------------------------------------


def _unstructure_idset(kind: IdSet) -> Body:
    body: Body = {"ids": kind.ids}
    groups = kind.groups
    if groups is not None:
        # Only the groups of this kind's own IDs: an allocation shares its capacity's whole map.
        body["groups"] = [[i, groups[i]] for i in kind.ids if i in groups]
    return body


def _structure_idset(cls: type[IdSet], tag: str, body: object) -> IdSet:
    fields = check_fields(tag, body, ("ids",), ("groups",))
    ids = [check_int(i, f"{tag} ID") for i in check_list(fields["ids"], f"{tag} ids")]
    groups: dict[int, int] | None = None
    if "groups" in fields:
        groups = {}
        for pair in check_list(fields["groups"], f"{tag} groups"):
            i, group = check_list(pair, f"{tag} group entry")  # two items or ValueError
            groups[check_int(i, f"{tag} group ID")] = check_int(group, f"{tag} group")
    return cls(ids, groups=groups)


def _unstructure_size(kind: Size) -> Body:
    # A plain size crosses as {"kib": n}; a group adds "group", and has no "kib" without a guess.
    body: Body = {"kib": kind.kib} if kind.sized else {}
    if kind.group is not None:
        body["group"] = kind.group
    return body


def _structure_size(cls: type[Size], tag: str, body: object) -> Size:
    fields = check_fields(tag, body, (), ("kib", "group"))
    group = fields.get("group")
    if group is not None:
        group = check_str(group, f"{tag} group")
    if "kib" in fields:
        return cls.from_kib(check_int(fields["kib"], f"{tag} kib"), group)
    if group is None:
        raise ProtocolError(
            f"{tag} {short(body)}: missing fields ['kib'] (a size needs kib, a group, or both)"
        )
    return cls(group=group)


def _unstructure_wtime(kind: WTime) -> Body:
    if kind.countdown:
        # Whole seconds: what is left is read off a clock, and a fraction of a second would
        # only clutter every place that prints the worker's capacity.
        left = kind.remaining()
        return {
            "T": max(left if math.isinf(left) else float(math.floor(left)), _EXPIRED),
            "softT": None,
            "group": None,
            "countdown": True,
        }
    # The soft limit as given, not the property that falls back to T: WTime(10) != WTime(10, 10).
    soft: float | None = kind._softT
    return {"T": kind.T, "softT": soft, "group": kind.group, "countdown": False}


def _structure_wtime(tag: str, body: object) -> WTime:
    fields = check_fields(tag, body, ("T", "softT", "group", "countdown"))
    group = fields["group"]
    countdown = fields["countdown"]
    if type(countdown) is not bool:
        raise ProtocolError(f"wtime countdown: expected a boolean, got {short(countdown)}")
    return WTime(
        check_optional_float(fields["T"], "wtime T"),
        check_optional_float(fields["softT"], "wtime softT"),
        None if group is None else check_str(group, "wtime group"),
        countdown=countdown,
    )


def _unstructure_token(kind: Token) -> Body:
    return {"names": sorted(kind.names)}


def _structure_token(tag: str, body: object) -> Token:
    fields = check_fields(tag, body, ("names",))
    return Token(*(check_str(n, "token name") for n in check_list(fields["names"], "token names")))


def _unstructure_counter(kind: Counter) -> Body:
    return {"name": kind.counter, "n": kind.n}


def _structure_counter(tag: str, body: object) -> Counter:
    fields = check_fields(tag, body, ("name", "n"))
    return Counter(check_str(fields["name"], "counter name"), check_int(fields["n"], "counter n"))


_UNSTRUCTURE: Final[dict[type[Kind], tuple[str, Callable[[Any], Body]]]] = {
    Cores: (Cores.name, _unstructure_idset),
    GPU: (GPU.name, _unstructure_idset),
    Memory: (Memory.name, _unstructure_size),
    Disk: (Disk.name, _unstructure_size),
    WTime: (WTime.name, _unstructure_wtime),
    Token: (Token.name, _unstructure_token),
    Counter: (COUNTER_TAG, _unstructure_counter),
}

_STRUCTURE: Final[dict[str, Callable[[str, object], Kind]]] = {
    Cores.name: lambda tag, body: _structure_idset(Cores, tag, body),
    GPU.name: lambda tag, body: _structure_idset(GPU, tag, body),
    Memory.name: lambda tag, body: _structure_size(Memory, tag, body),
    Disk.name: lambda tag, body: _structure_size(Disk, tag, body),
    WTime.name: _structure_wtime,
    Token.name: _structure_token,
    COUNTER_TAG: _structure_counter,
}


# -- the codec ----------------------------------------------------------------------------------


@attrs.define(eq=False)
class KindCodec:
    """(Un)structures kinds, built-in or registered; registered ones are looked up per call."""

    _converter: cattrs.Converter
    _unstructure_attrs: dict[type[Any], Callable[[Any], Body]] = attrs.field(factory=dict)
    _structure_attrs: dict[type[Any], Callable[[Any, Any], Any]] = attrs.field(factory=dict)

    def unstructure(self, kind: Kind) -> list[Any]:
        cls = type(kind)
        builtin = _UNSTRUCTURE.get(cls)
        if builtin is not None:
            tag, unstructure = builtin
            return [tag, unstructure(kind)]
        tag = cls.name
        if registered_kinds().get(tag) is not cls:
            raise ProtocolError(
                f"cannot send {kind!r}: its kind {cls.__name__} is not registered "
                "with grainlike.resource.register_kind"
            )
        if isinstance(kind, IdSet):
            return [tag, _unstructure_idset(kind)]
        if not attrs.has(cls):
            raise ProtocolError(
                f"cannot send {kind!r}: kind {cls.__name__} is neither an attrs class nor an IdSet"
            )
        hook = self._unstructure_attrs.get(cls)
        if hook is None:
            _resolve_field_types(cls)
            hook = self._unstructure_attrs[cls] = make_dict_unstructure_fn(cls, self._converter)
        return [tag, hook(kind)]

    def structure(self, data: object, expected: type[Kind] = Kind) -> Kind:
        kind = self._structure(data)
        if not isinstance(kind, expected):
            raise ProtocolError(f"expected a {expected.__name__}, got {kind!r}")
        return kind

    def _structure(self, data: object) -> Kind:
        if not (isinstance(data, list | tuple) and len(data) == 2 and type(data[0]) is str):
            raise ProtocolError(f"a kind crosses as [tag, body], got {short(data)}")
        tag, body = data
        try:
            builtin = _STRUCTURE.get(tag)
            if builtin is not None:
                return builtin(tag, body)
            cls = registered_kinds().get(tag)
            if cls is None:
                raise ProtocolError(f"unknown resource kind {tag!r} (not registered here)")
            if issubclass(cls, IdSet):
                return _structure_idset(cls, tag, body)
            if not attrs.has(cls):
                raise ProtocolError(f"resource kind {tag!r} ({cls.__name__}) is not an attrs class")
            hook = self._structure_attrs.get(cls)
            if hook is None:
                _resolve_field_types(cls)
                hook = self._structure_attrs[cls] = make_dict_structure_fn(cls, self._converter)
            kind: Kind = hook(check_fields(tag, body, (), tuple(_names(cls))), cls)
            return kind
        except ProtocolError:
            raise
        except Exception as exc:  # whatever a kind's constructor rejects, the peer sent wrong
            raise ProtocolError(f"invalid {tag} {short(body)}: {exc}") from exc

    def unstructure_resources(self, resources: Resources) -> list[list[Any]]:
        return [self.unstructure(kind) for kind in resources.parts()]

    def structure_resources(self, data: object, _: Any = None) -> Resources:
        kinds = [self._structure(item) for item in check_list(data, "resources")]
        try:
            return Resources(*kinds)
        except GrainlikeError as exc:
            raise ProtocolError(f"invalid resources {short(data)}: {exc}") from exc


def _names(cls: type[Any]) -> list[str]:
    return [field.name for field in attrs.fields(cls) if field.init]


def _resolve_field_types(cls: type[Any]) -> None:
    """Resolve string annotations (PEP 563) of an attrs kind's own fields, in place.

    cattrs would call ``typing.get_type_hints`` on the class, which evaluates the annotations
    of every base class too, including names that ``Kind`` imports only for type checking.
    """
    fields = [field for field in attrs.fields(cls) if isinstance(field.type, str)]
    if not fields:
        return

    def stand_in() -> None: ...

    stand_in.__annotations__ = {field.name: field.type for field in fields}
    module = sys.modules.get(cls.__module__)
    try:
        hints = typing.get_type_hints(
            stand_in, vars(module) if module else {}, dict(vars(cls)), include_extras=True
        )
    except Exception as exc:  # NameError, SyntaxError, TypeError from evaluating annotations
        raise ProtocolError(f"kind {cls.__name__}: cannot resolve its field types: {exc}") from exc
    for field in fields:
        # attrs does the same in attrs.resolve_types: its Attribute objects are frozen.
        object.__setattr__(field, "type", hints[field.name])
