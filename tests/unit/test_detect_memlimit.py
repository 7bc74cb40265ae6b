"""Usable memory from the limits and the headroom (grainlike/worker/_memlimit.py)."""

from __future__ import annotations

import pytest

from grainlike import ConfigError, Memory
from grainlike.worker._memlimit import Headroom, MemoryInfo, detect_memory

MIB = 1024
GIB = 1024**2


def test_headroom_is_five_percent_between_64_mib_and_2_gib() -> None:
    headroom = Headroom()
    assert headroom.kept_back(10 * GIB) == round(0.5 * GIB)
    assert headroom.kept_back(512 * MIB) == 64 * MIB
    assert headroom.kept_back(256 * GIB) == 2 * GIB


def test_headroom_never_takes_more_than_half() -> None:
    assert Headroom().kept_back(100 * MIB) == 50 * MIB
    assert Headroom().usable(100 * MIB) == 50 * MIB
    assert Headroom().usable(1) == 1


def test_usable_memory_is_rounded_down_to_a_whole_mib() -> None:
    # The default headroom of this repository's test machine: 24684084 KiB physical.
    assert Headroom().usable(24684084) == 22900 * MIB
    assert Headroom(fraction=0.0, minimum_kib=0).usable(10 * MIB + 5) == 10 * MIB


def test_a_zero_headroom_keeps_nothing_back() -> None:
    assert Headroom(fraction=0.0, minimum_kib=0, maximum_kib=0).usable(8 * GIB) == 8 * GIB


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fraction": 1.0}, r"fraction=1.0\): the fraction must be in \[0, 1\)"),
        ({"fraction": -0.1}, r"fraction=-0.1\)"),
        ({"minimum_kib": -1}, r"minimum_kib=-1\): a size in KiB must be >= 0"),
        ({"minimum_kib": 10, "maximum_kib": 5}, "the minimum must not exceed the maximum"),
    ],
)
def test_a_bad_headroom_is_refused_naming_the_value(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Headroom(**kwargs)  # type: ignore[arg-type]


def test_physical_memory_is_the_limit_when_nothing_is_tighter() -> None:
    info = detect_memory(16 * GIB, cgroup_kib=64 * GIB, slurm_kib=None)
    assert (info.limit_kib, info.source) == (16 * GIB, "physical")
    assert info.kib == 15564 * MIB  # 16 GiB less 5%, rounded down to a whole MiB
    assert info.kib + info.headroom_kib == 16 * GIB
    assert info.capacity() == Memory.from_kib(info.kib)


def test_the_cgroup_limit_wins_when_it_is_tighter() -> None:
    info = detect_memory(16 * GIB, cgroup_kib=4 * GIB, cgroup_file="/x/memory.max")
    assert info == MemoryInfo(
        kib=Headroom().usable(4 * GIB),
        limit_kib=4 * GIB,
        source="cgroup",
        physical_kib=16 * GIB,
        cgroup_kib=4 * GIB,
        cgroup_file="/x/memory.max",
    )


def test_the_slurm_allocation_wins_when_it_is_tightest() -> None:
    info = detect_memory(16 * GIB, cgroup_kib=4 * GIB, slurm_kib=2 * GIB)
    assert (info.limit_kib, info.source) == (2 * GIB, "slurm")
    assert info.capacity() == Memory("1945M")


def test_a_tie_is_credited_to_the_earlier_source() -> None:
    assert detect_memory(4 * GIB, cgroup_kib=4 * GIB, slurm_kib=4 * GIB).source == "physical"
    assert detect_memory(8 * GIB, cgroup_kib=4 * GIB, slurm_kib=4 * GIB).source == "cgroup"


def test_a_custom_headroom_is_applied() -> None:
    none = Headroom(fraction=0.0, minimum_kib=0)
    assert detect_memory(8 * GIB, headroom=none).capacity() == Memory(8)


def test_no_physical_memory_is_an_error() -> None:
    with pytest.raises(ConfigError, match="physical memory: 0 KiB"):
        detect_memory(0)
