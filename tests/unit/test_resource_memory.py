"""Memory (grainlike/resource/_memory.py): sizes in GB, exact KiB arithmetic."""

from __future__ import annotations

import re

import pytest

from grainlike import InsufficientResourcesError, Memory, ResourceError
from grainlike.resource import MAX_KIB


@pytest.mark.parametrize(
    ("size", "gb"),
    [(8, 8.0), (0.5, 0.5), ("512M", 0.5), ("16G", 16.0), ("1T", 1024.0), ("2048K", 2 / 1024)],
)
def test_sizes_are_gb_or_strings_with_units(size: float | str, gb: float) -> None:
    memory = Memory(size)
    assert memory.M == gb  # noqa: SIM300 - ruff takes Grain's .M for a constant


def test_equal_sizes_are_equal_however_spelled() -> None:
    assert Memory(0.5) == Memory("512M") == Memory("524288K")
    assert hash(Memory(0.5)) == hash(Memory("512M"))
    assert Memory(1) != Memory(2)


def test_memory_is_counted_in_whole_kib() -> None:
    assert Memory("1G").kib == 1024**2
    assert Memory.from_kib(3).kib == 3
    assert Memory(0.1).kib == round(0.1 * 1024**2)


@pytest.mark.parametrize(
    ("size", "message"),
    [
        (-1, "Memory(-1): memory must be positive and finite"),
        (0, "Memory(0): memory must be positive and finite"),
        (float("inf"), "Memory(inf): memory must be positive and finite"),
        (float("nan"), "Memory(nan): memory must be positive and finite"),
        ("lots", "Memory('lots'): not a memory size"),
        ("0.5K", "Memory('0.5K'): memory must be at least 1K"),
        (True, "Memory(True): memory must be a number of GB or a size string"),
    ],
)
def test_invalid_sizes_name_the_kind_and_the_value(size: float | str, message: str) -> None:
    with pytest.raises(ResourceError, match=re.escape(message)):
        Memory(size)


def test_alloc_and_dealloc_are_exact() -> None:
    capacity = Memory(1)
    held = [capacity.alloc(Memory(0.1)) for _ in range(9)]
    assert all(allocation.M == Memory(0.1).M for allocation in held)
    with pytest.raises(InsufficientResourcesError):
        capacity.alloc(Memory(0.1))
    for allocation in held:
        capacity.dealloc(allocation)
    assert capacity == Memory(1)
    assert capacity.stat() == {"mem": (1.0, 1.0)}


def test_stat_is_in_gb() -> None:
    capacity = Memory(16)
    capacity.alloc(Memory("4G"))
    assert capacity.stat() == {"mem": (12.0, 16.0)}


def test_text_is_the_shortest_exact_spelling() -> None:
    assert str(Memory(16)) == "mem:16G"
    assert str(Memory(0.5)) == "mem:512M"
    assert str(Memory(1024)) == "mem:1T"
    assert str(Memory.from_kib(1000)) == "mem:1000K"
    assert repr(Memory("512M")) == "Memory('512M')"


def test_memory_up_to_1_eib_prints_and_reads_back() -> None:
    largest = Memory("1048576T")
    assert largest.kib == MAX_KIB
    assert largest.M == 2**30
    assert str(largest) == "mem:1048576T"
    assert Memory.from_kib(MAX_KIB) == largest
    assert Memory(2**30) == largest


@pytest.mark.parametrize("size", ["82e888", "1e5000", 1e300, 2**30 + 1, "1048577T"])
def test_memory_beyond_1_eib_is_refused_naming_the_value(size: str | float) -> None:
    with pytest.raises(ResourceError, match=re.escape(f"Memory({size!r}): memory is at most")):
        Memory(size)


def test_from_kib_refuses_more_than_the_largest_size() -> None:
    with pytest.raises(ResourceError, match=f"from 1 to {MAX_KIB}"):
        Memory.from_kib(MAX_KIB + 1)
