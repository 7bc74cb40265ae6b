"""The converter: every kind crosses as [tag, body] and comes back equal and working."""

from __future__ import annotations

from typing import Any, ClassVar, Self

import attrs
import pytest

from grainlike import ProtocolError
from grainlike.resource import (
    GPU,
    ZERO,
    Cores,
    Counter,
    IdSet,
    Kind,
    Memory,
    Resources,
    Token,
    WTime,
    as_resources,
    register_kind,
)
from grainlike.wire import make_converter


@attrs.define(eq=False)
class Licence(Kind):
    """A registered attrs kind, registered only inside a test (after a converter exists)."""

    name: ClassVar[str] = "wireunitlicence"
    seats: int
    vendor: str = "acme"

    def _same_value(self, other: Self) -> bool:
        return (self.seats, self.vendor) == (other.seats, other.vendor)

    def _value_hash(self) -> int:
        return hash((self.seats, self.vendor))


class FPGA(IdSet):
    """A registered IdSet kind that is not an attrs class: it crosses as its IDs."""

    __slots__ = ()
    name = "wireunitfpga"
    unit = "FPGA"


register_kind(FPGA)


class Unregistered(Kind):
    __slots__ = ()
    name = "wireunitunregistered"


def roundtrip(value: Kind | Resources) -> Resources:
    converter = make_converter()
    data = converter.unstructure(as_resources(value))
    resources: Resources = converter.structure(data, Resources)
    return resources


def test_every_builtin_kind_crosses_with_its_name_as_tag() -> None:
    request = (
        Cores(2) & Memory("512M") & GPU(1) & WTime(T=60, softT=30, group="g") & Token("bigmem")
    )
    data = make_converter().unstructure(request & Counter("license", 3))
    assert [tag for tag, _ in data] == ["cores", "mem", "gpu", "wtime", "token", "counter"]
    assert data[1] == ["mem", {"kib": 512 * 1024}]
    assert data[5] == ["counter", {"name": "license", "n": 3}]


def test_a_combined_request_comes_back_equal() -> None:
    request = Cores(2) & Memory(0.5) & GPU(1) & WTime(T=60, group="g") & Token("a", "b")
    assert roundtrip(request & Counter("license", 2)) == request & Counter("license", 2)


def test_zero_crosses_as_an_empty_list() -> None:
    assert make_converter().unstructure(ZERO) == []
    assert roundtrip(ZERO) == ZERO


def test_an_allocation_keeps_its_core_ids_and_memory() -> None:
    capacity = Cores([0, 1, 2, 3, 8, 9]) & Memory("16G") & GPU([0, 1])
    capacity.alloc(Cores(3))
    allocation = capacity.alloc(Cores(2) & Memory("1G") & GPU(1))
    back = roundtrip(allocation)
    assert back == allocation
    assert back.c == allocation.c == [8, 9]
    assert back.M == 1.0
    assert back.gpus == allocation.gpus


def test_an_allocation_is_usable_again_as_a_request() -> None:
    capacity = Cores(4) & Memory(4)
    allocation = roundtrip(capacity.alloc(Cores(2) & Memory(1)))
    fresh = Cores(4) & Memory(4)
    assert fresh.alloc(allocation).N == 2


def test_memory_crosses_exactly_in_kib() -> None:
    odd = Memory.from_kib(123_456_789)
    back = roundtrip(odd)
    assert back[Memory].kib == 123_456_789


def test_core_groups_cross_for_the_cores_they_describe() -> None:
    capacity = Cores([0, 1, 2, 3], groups={0: 0, 1: 0, 2: 1, 3: 1})
    assert roundtrip(capacity)[Cores].groups == {0: 0, 1: 0, 2: 1, 3: 1}
    allocation = capacity.alloc(Cores(2))
    data = make_converter().unstructure(allocation)
    assert data == ["cores", {"ids": [0, 1], "groups": [[0, 0], [1, 0]]}]


def test_a_capacity_crosses_fresh_without_its_bookkeeping() -> None:
    capacity = Cores(4) & Memory(8)
    capacity.alloc(Cores(3) & Memory(2))
    back = roundtrip(capacity)
    assert back == Cores(4) & Memory(8)
    assert back.stat() == {"cores": (4.0, 4.0), "mem": (8.0, 8.0)}


def test_a_soft_limit_equal_to_the_hard_one_is_kept_as_given() -> None:
    assert roundtrip(WTime(T=10, softT=10)) == WTime(T=10, softT=10)
    assert roundtrip(WTime(T=10)) == WTime(T=10)
    assert roundtrip(WTime(group="sim")) == WTime(group="sim")


def test_a_countdown_crosses_as_its_remaining_whole_seconds() -> None:
    capacity = WTime(T=3600, countdown=True)
    data = make_converter().unstructure(capacity)
    tag, body = data
    assert (tag, body["countdown"], body["softT"], body["group"]) == ("wtime", True, None, None)
    assert body["T"] in (3599.0, 3600.0)  # whole seconds, never more than it had
    back = make_converter().structure(data, Kind)
    assert isinstance(back, WTime) and back.countdown
    assert 3598 < back.remaining() <= 3600
    assert back.request(WTime(T=4000, softT=3000))
    assert not back.request(WTime(T=4000))


def test_a_registered_attrs_kind_crosses_even_when_registered_after_the_converter() -> None:
    converter = make_converter()
    register_kind(Licence)
    value = Cores(1) & Licence(3, "bigsoft")
    data = converter.unstructure(value)
    assert data[-1] == ["wireunitlicence", {"seats": 3, "vendor": "bigsoft"}]
    assert converter.structure(data, Resources) == value


def test_a_registered_idset_kind_crosses_as_its_ids() -> None:
    assert roundtrip(FPGA([2, 5])) == FPGA([2, 5])


def test_an_unregistered_kind_cannot_be_sent() -> None:
    with pytest.raises(ProtocolError, match="Unregistered is not registered"):
        make_converter().unstructure(Unregistered())


def test_an_unknown_tag_is_a_protocol_error_naming_it() -> None:
    with pytest.raises(ProtocolError, match="unknown resource kind 'quantum'"):
        make_converter().structure([["quantum", {"qubits": 4}]], Resources)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ([["cores", {"ids": ["0"]}]], "expected an integer"),
        ([["cores", {"ids": [True]}]], "expected an integer"),
        ([["cores", {"ids": []}]], "invalid cores"),
        ([["cores", {"ids": [1], "extra": 1}]], "unexpected fields"),
        ([["mem", {"kib": 1.5}]], "expected an integer"),
        ([["mem", {"kib": 0}]], "invalid mem"),
        ([["mem", {}]], "missing fields"),
        ([["wtime", {"T": "1h", "softT": None, "group": None, "countdown": False}]], "number"),
        ([["wtime", {"T": 5, "softT": 9, "group": None, "countdown": False}]], "softT"),
        ([["wtime", {"T": 5, "softT": None, "group": None, "countdown": 0}]], "boolean"),
        ([["token", {"names": "abc"}]], "expected a list"),
        ([["counter", {"name": "cores", "n": 1}]], "names a resource kind"),
        ([["counter", {"name": "x", "n": 0}]], "invalid counter"),
        ([["cores", {"ids": [0]}], ["cores", {"ids": [1]}]], "invalid resources"),
        ([["cores"]], r"\[tag, body\]"),
        ({"cores": 1}, "expected a list"),
        ([["wireunitfpga", {"ids": [0], "groups": [[0]]}]], "invalid wireunitfpga"),
    ],
)
def test_malformed_kinds_are_protocol_errors(data: Any, match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        make_converter().structure(data, Resources)


def test_a_kind_field_checks_the_kind_it_got() -> None:
    with pytest.raises(ProtocolError, match="expected a Cores"):
        make_converter().structure(["mem", {"kib": 1}], Cores)


def test_strict_primitives_refuse_coercion() -> None:
    converter = make_converter()
    for value, type_ in [("5", int), (True, int), (5, str), (1, bool), ("x", float), ("a", bytes)]:
        with pytest.raises(ProtocolError):
            converter.structure(value, type_)
    assert converter.structure(3, float) == 3.0
    with pytest.raises(ProtocolError):
        converter.structure("abc", tuple[int, ...])
