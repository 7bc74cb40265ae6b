"""The kind protocol and registry (grainlike/resource/_kind.py), with a user-defined kind."""

from __future__ import annotations

import pickle
import re
from typing import ClassVar, Self

import attrs
import cattrs
import pytest

from grainlike import (
    Cores,
    Counter,
    InsufficientResourcesError,
    Kind,
    Memory,
    ResourceError,
    parse_resources,
    register_kind,
)
from grainlike.resource import kind_for_name, registered_kinds, with_overrides


def _positive(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ResourceError(f"Scratch({value!r}): give a whole number of GiB, at least 1")


@attrs.define(eq=False)
class Scratch(Kind):
    """Node-local scratch disk in whole GiB: a kind written the way a user would."""

    name: ClassVar[str] = "scratch"
    gib: int = attrs.field(validator=_positive)
    _free: int = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        self._free = self.gib

    def _fits(self, req: Self, *, total: bool) -> bool:
        return req.gib <= (self.gib if total else self._free)

    def _take(self, req: Self) -> Self:
        self._free -= req.gib
        return type(self)(req.gib)

    def _give(self, allocation: Self) -> None:
        self._free += allocation.gib

    def _stat(self) -> tuple[float, float]:
        return (float(self._free), float(self.gib))

    def to_text(self) -> str:
        return str(self._free)

    @classmethod
    def from_text(cls, value: str | None, *, capacity: bool) -> Self | None:
        try:
            gib = 1 if value is None else int(value)
        except ValueError:
            raise ResourceError(f"scratch:{value}: give a whole number of GiB") from None
        return None if gib == 0 and capacity else cls(gib)

    def _same_value(self, other: Self) -> bool:
        return (self.gib, self._free) == (other.gib, other._free)

    def _value_hash(self) -> int:
        return hash(self.gib)


register_kind(Scratch, "tmpdisk")


def test_a_registered_kind_is_known_by_name_and_alias() -> None:
    assert kind_for_name("scratch") is Scratch
    assert kind_for_name("tmpdisk") is Scratch
    assert registered_kinds()["scratch"] is Scratch
    assert registered_kinds()["cores"] is Cores
    assert kind_for_name("cpus") is Cores
    assert kind_for_name("nonesuch") is None


def test_a_registered_kind_works_in_the_grammar() -> None:
    assert parse_resources("cores:2,scratch:10") == Cores(2) & Scratch(10)
    assert parse_resources("tmpdisk") == Scratch(1)
    assert parse_resources("scratch:0,cores:1", capacity=True) == Cores(1)
    assert str(Cores(2) & Scratch(10)) == "cores:2,scratch:10"
    assert parse_resources(str(Scratch(10) & Memory(1))) == Scratch(10) & Memory(1)
    assert with_overrides(Cores(2) & Scratch(10), "scratch:0") == Cores(2)


def test_a_registered_kind_combines_and_is_looked_up() -> None:
    request = Scratch(5) & Cores(1)
    assert request == Cores(1) & Scratch(5)
    assert request[Scratch] == Scratch(5)
    assert request.get("scratch") == Scratch(5)
    with pytest.raises(ResourceError, match=re.escape("combines two Scratch")):
        request & Scratch(1)


def test_a_registered_kind_is_allocated_and_given_back() -> None:
    capacity = Cores(4) & Scratch(100)
    allocation = capacity.alloc(Cores(1) & Scratch(60))
    assert allocation[Scratch] == Scratch(60)
    assert capacity.stat() == {"cores": (3.0, 4.0), "scratch": (40.0, 100.0)}
    assert not capacity.request(Scratch(41))
    with pytest.raises(InsufficientResourcesError) as caught:
        capacity.alloc(Cores(1) & Scratch(41))
    assert caught.value.short == ("scratch",)
    assert capacity.stat() == {"cores": (3.0, 4.0), "scratch": (40.0, 100.0)}
    capacity.dealloc(allocation)
    assert capacity == Cores(4) & Scratch(100)


def test_a_registered_kind_alone_is_a_capacity() -> None:
    capacity = Scratch(10)
    allocation = capacity.alloc(Scratch(4))
    assert capacity.stat() == {"scratch": (6.0, 10.0)}
    capacity.dealloc(allocation)
    with pytest.raises(ResourceError, match="already returned"):
        capacity.dealloc(allocation)


def test_a_registered_attrs_kind_converts_with_cattrs() -> None:
    converter = cattrs.Converter()
    assert converter.unstructure(Scratch(10)) == {"gib": 10}
    assert converter.structure({"gib": 10}, Scratch) == Scratch(10)


def test_a_kind_name_cannot_also_be_a_counter() -> None:
    with pytest.raises(ResourceError, match="'scratch' names a resource kind"):
        Counter("scratch", 1)


def test_register_kind_refuses_a_taken_name() -> None:
    class Disk(Scratch):
        pass

    with pytest.raises(ResourceError, match="name 'scratch' is taken by Scratch"):
        register_kind(Disk)
    with pytest.raises(ResourceError, match="name 'cpu' is taken by Cores"):
        register_kind(Scratch, "cpu")


def test_register_kind_refuses_what_is_not_a_kind_or_a_bad_name() -> None:
    with pytest.raises(ResourceError, match=re.escape("a kind must subclass grainlike.Kind")):
        register_kind(int)  # type: ignore[arg-type]

    class Bad(Scratch):
        name = "Bad Name"

    with pytest.raises(ResourceError, match="name 'Bad Name' must be a lower-case identifier"):
        register_kind(Bad)


def test_registering_the_same_kind_again_is_harmless() -> None:
    assert register_kind(Scratch, "tmpdisk") is Scratch


def test_kinds_pickle_by_value() -> None:
    for kind in (Cores([0, 2]), Memory("3G"), Counter("license", 2), Scratch(3)):
        assert pickle.loads(pickle.dumps(kind)) == kind


def test_a_shortcut_on_a_kind_without_it_names_the_kind() -> None:
    with pytest.raises(AttributeError, match=re.escape("holds no Cores, so it has no .c")):
        _ = Scratch(1).c
    with pytest.raises(AttributeError, match="has no attribute 'nonesuch'"):
        _ = Cores(1).nonesuch


def test_register_kind_refuses_the_word_the_wire_uses_for_counters() -> None:
    from grainlike.resource import Kind, register_kind

    class Counterfeit(Kind):
        __slots__ = ()
        name = "counter"

    with pytest.raises(ResourceError, match="reserved"):
        register_kind(Counterfeit)


def test_memory_from_kib_is_exact_and_validated() -> None:
    assert Memory.from_kib(1536) == Memory("1536K")
    with pytest.raises(ResourceError, match="from_kib"):
        Memory.from_kib(0)
