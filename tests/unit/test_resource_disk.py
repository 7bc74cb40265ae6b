"""Disk (grainlike/resource/_disk.py), the size base it shares with Memory (_size.py), the
group forms of both, and parsl_spec (_parsl.py)."""

from __future__ import annotations

import pickle
import re

import pytest

import grainlike as gl
from grainlike import (
    GPU,
    Cores,
    Disk,
    InsufficientResourcesError,
    Memory,
    ResourceError,
    WTime,
    parse_resources,
    parsl_spec,
)
from grainlike.resource import MAX_KIB, Size, with_overrides
from grainlike.wire import make_converter

SIZES = [Memory, Disk]


def test_disk_is_exported_from_both_namespaces() -> None:
    assert gl.Disk is gl.resource.Disk
    assert gl.parsl_spec is gl.resource.parsl_spec


@pytest.mark.parametrize(
    ("size", "kib"),
    [(10, 10 * 1024**2), (0.5, 512 * 1024), ("500M", 500 * 1024), ("1T", 1024**3), ("3K", 3)],
)
def test_disk_sizes_are_gb_or_strings_with_units(size: float | str, kib: int) -> None:
    disk = Disk(size)
    assert disk.kib == kib
    assert disk.gb == kib / 1024**2


def test_a_bare_disk_is_one_gb_like_a_bare_memory() -> None:
    assert Disk() == Disk(1) == parse_resources("disk")
    assert Memory() == Memory(1)


@pytest.mark.parametrize(
    ("size", "message"),
    [
        (-1, "Disk(-1): disk must be positive and finite"),
        (0, "Disk(0): disk must be positive and finite"),
        (float("nan"), "Disk(nan): disk must be positive and finite"),
        ("lots", "Disk('lots'): not a disk size"),
        ("0.5K", "Disk('0.5K'): disk must be at least 1K"),
        ("1048577T", "Disk('1048577T'): disk is at most 1048576T"),
        (True, "Disk(True): disk must be a number of GB or a size string"),
    ],
)
def test_invalid_disk_sizes_name_the_kind_and_the_value(size: float | str, message: str) -> None:
    with pytest.raises(ResourceError, match=re.escape(message)):
        Disk(size)


def test_disk_is_limited_like_memory() -> None:
    assert Disk.from_kib(MAX_KIB).kib == MAX_KIB
    with pytest.raises(ResourceError, match=re.escape(f"Disk.from_kib({MAX_KIB + 1})")):
        Disk.from_kib(MAX_KIB + 1)


def test_disk_is_its_own_kind_not_a_memory() -> None:
    both = Memory(8) & Disk(8)
    assert both[Disk] == Disk(8)
    assert both[Memory] == Memory(8)
    assert both.get("disk") == Disk(8)
    assert both.get("mem") == Memory(8)
    assert Disk(8) != Memory(8)
    assert not isinstance(Disk(8), Memory)
    with pytest.raises(ResourceError, match="combines two Disk"):
        Disk(1) & Disk(2)


def test_disk_prints_after_memory_and_before_gpus() -> None:
    request = GPU(1) & Disk(10) & Memory(16) & Cores(4) & WTime(T=60)
    assert str(request) == "cores:4,mem:16G,disk:10G,gpu:1,wtime:1m"
    assert parse_resources(str(request)) == request


def test_disk_alloc_and_dealloc_are_exact_and_atomic() -> None:
    capacity = Disk(1)
    held = [capacity.alloc(Disk(0.1)) for _ in range(9)]
    with pytest.raises(InsufficientResourcesError):
        capacity.alloc(Disk(0.1))
    for allocation in held:
        capacity.dealloc(allocation)
    assert capacity == Disk(1)
    node = Cores(2) & Disk(10)
    with pytest.raises(InsufficientResourcesError, match="short of disk"):
        node.alloc(Cores(1) & Disk(11))
    assert node.stat() == {"cores": (2.0, 2.0), "disk": (10.0, 10.0)}


def test_disk_stat_and_description_are_in_gb() -> None:
    capacity = Disk(100)
    capacity.alloc(Disk("25G"))
    assert capacity.stat() == {"disk": (75.0, 100.0)}
    assert capacity.describe() == "disk 75G/100G"


def test_disk_capacity_text_with_zero_means_none() -> None:
    assert parse_resources("cores:2,disk:0", capacity=True) == Cores(2)
    assert with_overrides(Cores(2) & Disk(50), "disk:0") == Cores(2)
    with pytest.raises(ResourceError, match=re.escape("Disk('0'): disk must be positive")):
        parse_resources("disk:0")


# -- groups, for Memory and Disk alike ------------------------------------------------------------


@pytest.mark.parametrize("cls", SIZES)
def test_a_group_request_prints_and_parses_with_and_without_a_guess(cls: type[Size]) -> None:
    name = cls.name
    guessed, unguessed = cls(4, group="g"), cls(group="g")
    assert str(guessed) == f"{name}:4G@g"
    assert str(unguessed) == f"{name}:@g"
    assert parse_resources(f"{name}:4G@g") == guessed
    assert parse_resources(f"{name}:@g") == unguessed
    assert parse_resources({name: "@g"}) == unguessed
    assert repr(guessed) == f"{cls.__name__}('4G', group='g')"
    assert repr(unguessed) == f"{cls.__name__}(group='g')"


@pytest.mark.parametrize("cls", SIZES)
def test_a_group_is_part_of_the_value(cls: type[Size]) -> None:
    assert cls(4, group="g") != cls(4)
    assert cls(4, group="g") != cls(4, group="h")
    assert cls(4, group="g") != cls(group="g")
    assert cls(4, group="g") == cls("4096M", group="g")
    assert hash(cls(4, group="g")) == hash(cls("4G", group="g"))
    assert cls(group="g").group == "g"
    assert cls(4).group is None


@pytest.mark.parametrize("cls", SIZES)
def test_a_group_without_a_guess_has_no_size_yet(cls: type[Size]) -> None:
    request = cls(group="g")
    assert not request.sized
    assert cls(4, group="g").sized
    with pytest.raises(ResourceError, match=re.escape(f"{cls.__name__}(group='g'): no size")):
        _ = request.kib
    assert request.with_kib(2048) == cls.from_kib(2048, "g")
    assert cls(4, group="g").with_kib(1024).kib == 1024


@pytest.mark.parametrize("cls", SIZES)
def test_a_guess_is_placed_like_a_size_and_keeps_its_group(cls: type[Size]) -> None:
    capacity = cls(16)
    allocation = capacity.alloc(cls(4, group="g"))
    assert allocation == cls(4, group="g")
    assert capacity.stat()[cls.name] == (12.0, 16.0)
    capacity.dealloc(allocation)
    assert capacity == cls(16)


@pytest.mark.parametrize("cls", SIZES)
def test_a_group_without_a_guess_takes_the_whole_capacity(cls: type[Size]) -> None:
    capacity = cls(16)
    assert capacity.request(cls(group="g"))
    allocation = capacity.alloc(cls(group="g"))
    assert allocation == cls(16, group="g")
    assert not capacity.request(cls("1K"))
    capacity.dealloc(allocation)
    held = capacity.alloc(cls("1K"))
    assert not capacity.request(cls(group="g"))  # only a whole, unused capacity holds it
    assert gl.resource.as_resources(capacity).shortfall(cls(group="g"), total=True) == ()
    capacity.dealloc(held)


@pytest.mark.parametrize("cls", SIZES)
def test_a_capacity_is_a_size_without_a_group(cls: type[Size]) -> None:
    with pytest.raises(ResourceError, match=f"{cls.name}:4G@g: a capacity is a size"):
        parse_resources(f"{cls.name}:4G@g", capacity=True)
    assert not cls(group="g").request(cls(1))


@pytest.mark.parametrize("cls", SIZES)
@pytest.mark.parametrize("group", ["", " g", "a,b", "x[1]", 5])
def test_malformed_group_names_are_refused(cls: type[Size], group: object) -> None:
    with pytest.raises(ResourceError, match=re.escape(f"{cls.__name__}(group={group!r})")):
        cls(group=group)  # type: ignore[arg-type]


@pytest.mark.parametrize("cls", SIZES)
def test_an_empty_group_in_text_is_refused(cls: type[Size]) -> None:
    with pytest.raises(ResourceError, match="a group is a non-empty name"):
        parse_resources(f"{cls.name}:4G@")


@pytest.mark.parametrize(
    "kind", [Memory(8), Memory(4, group="g"), Memory(group="g"), Disk(2, group="d"), Disk(3)]
)
def test_sizes_and_groups_cross_the_wire_and_pickle(kind: Size) -> None:
    converter = make_converter()
    back = converter.structure(converter.unstructure(gl.resource.as_resources(kind)), gl.Resources)
    assert back == kind
    assert pickle.loads(pickle.dumps(kind)) == kind


def test_a_plain_memory_crosses_the_wire_as_before() -> None:
    converter = make_converter()
    assert converter.unstructure(gl.resource.as_resources(Memory(8))) == [
        ["mem", {"kib": 8 * 1024**2}]
    ]
    assert converter.unstructure(gl.resource.as_resources(Memory(group="g"))) == [
        ["mem", {"group": "g"}]
    ]


@pytest.mark.parametrize("kind", [Memory(group="g"), Memory(4, group="g"), Disk(group="g")])
def test_a_worker_that_offers_a_group_is_refused(kind: Size) -> None:
    from grainlike.dispatch._server import capacity_problem

    assert (
        capacity_problem(Cores(2) & kind) == f"it offers {kind}, a learned group rather than a size"
    )
    assert capacity_problem(Cores(2) & type(kind)(4)) is None


# -- parsl_spec ----------------------------------------------------------------------------------


def test_parsl_spec_reads_memory_and_disk_in_mb() -> None:
    assert parsl_spec({"cores": 1, "memory": 1000, "disk": 1000}) == (
        Cores(1) & Memory("1000M") & Disk("1000M")
    )
    assert parsl_spec({"memory": 1536.5})[Memory].kib == 1536 * 1024 + 512


def test_parsl_spec_maps_gpus_and_running_time() -> None:
    spec = parsl_spec({"cores": 2, "gpus": 1, "running_time_min": 600})
    assert spec == Cores(2) & GPU(1) & WTime(softT=600)
    assert parsl_spec({"cores": 1, "gpus": 0}) == Cores(1)
    assert parsl_spec({}) == gl.ZERO


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"cores": 1, "ram": 5}, "parsl_spec({'ram': 5}): 'ram' is no key"),
        ({"priority": 3}, "parsl_spec({'priority': 3}): priority is no resource; grainlike has"),
        ({"memory": -5}, "parsl_spec({'memory': -5}): memory must be a positive number of MB"),
        ({"disk": "1G"}, "parsl_spec({'disk': '1G'}): disk is a number, not '1G'"),
        ({"cores": 0}, "parsl_spec({'cores': 0}): Cores(0): a request needs at least 1 core"),
        ({"gpus": True}, "parsl_spec({'gpus': True}): gpus is a number"),
    ],
)
def test_parsl_spec_refuses_what_it_cannot_map_naming_it(
    spec: dict[str, object], message: str
) -> None:
    with pytest.raises(ResourceError, match=re.escape(message)):
        parsl_spec(spec)
