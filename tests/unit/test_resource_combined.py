"""Combinations (grainlike/resource/_combined.py): ``&``, ZERO, Node, shortcuts, alloc."""

from __future__ import annotations

import copy
import os
import pickle
import re
import subprocess
import sys

import pytest

from grainlike import (
    GPU,
    ZERO,
    Cores,
    Counter,
    InsufficientResourcesError,
    Memory,
    Node,
    ResourceError,
    Resources,
    Token,
    WTime,
)


def _stopped_clock() -> float:
    return 0.0


def _capacity() -> Resources:
    """A worker's capacity with every built-in kind; its wall time does not run down."""
    return (
        Cores(8)
        & Memory(16)
        & GPU([0, 1])
        & WTime(T=3600, countdown=True, clock=_stopped_clock)
        & Token("bigmem")
        & Counter("license", 2)
    )


# -- & -------------------------------------------------------------------------------------------


def test_and_is_flat_and_order_independent() -> None:
    a, b, c = Cores(2), Memory(4), Counter("license", 1)
    assert (a & b) & c == a & (b & c) == c & b & a
    assert len((a & b) & c) == 3
    assert list(c & b & a) == [a, b, c]


def test_combining_the_same_kind_twice_names_the_kind() -> None:
    with pytest.raises(ResourceError, match=re.escape("Cores(2) & Cores(1): combines two Cores")):
        Cores(2) & Cores(1)
    with pytest.raises(ResourceError, match=re.escape("combines two Counter('license')")):
        Counter("license", 1) & Memory(1) & Counter("license", 2)
    with pytest.raises(ResourceError, match=re.escape("combines two Token")):
        Token("a") & (Cores(1) & Token("b"))


def test_resource_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="combines two GPU"):
        GPU(1) & GPU(1)


def test_and_with_something_else_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        Cores(1) & 3  # type: ignore[operator]
    with pytest.raises(TypeError):
        3 & (Cores(1) & Memory(1))  # type: ignore[operator]


def test_equality_and_hash_of_one_kind_alone_or_combined() -> None:
    assert Resources(Cores(2)) == Cores(2)
    assert Cores(2) == Resources(Cores(2))
    assert hash(Resources(Cores(2))) == hash(Cores(2))
    assert hash(Cores(2) & Memory(1)) == hash(Memory(1) & Cores(2))
    assert Cores(2) & Memory(1) != Cores(2) & Memory(2)


# -- ZERO and Node ---------------------------------------------------------------------------------


def test_zero_requests_nothing_and_every_capacity_satisfies_it() -> None:
    assert len(ZERO) == 0
    assert str(ZERO) == ""
    assert repr(ZERO) == "ZERO"
    assert ZERO & Cores(1) == Cores(1)
    for capacity in (_capacity(), Cores(1), Memory(1), Token("x")):
        assert capacity.request(ZERO)
        allocation = capacity.alloc(ZERO)
        assert len(allocation) == 0
        capacity.dealloc(allocation)


def test_node_is_cores_and_memory() -> None:
    assert Node(4, 16) == Cores(4) & Memory(16)
    assert Node(N=1, M=8) == Cores(1) & Memory(8)
    assert Node(N=2, M="512M").M == 0.5


# -- request / alloc / dealloc / stat --------------------------------------------------------------


def test_alloc_gives_every_kind_with_its_shortcuts() -> None:
    capacity = _capacity()
    allocation = capacity.alloc(
        Cores(2) & Memory(4) & GPU(1) & WTime(T=60, softT=30) & Token("bigmem") & Counter("license")
    )
    assert allocation.c == [0, 1]
    assert allocation.N == 2
    assert allocation.M == 4.0
    assert allocation.gpus == [0]
    assert (allocation.T, allocation.softT) == (60.0, 30.0)
    assert allocation[Cores].c == [0, 1]
    assert allocation[GPU].ids == [0]
    assert allocation.get(Token) == Token("bigmem")
    assert allocation.get("license") == Counter("license", 1)
    assert allocation.get("memory") == Memory(4)


def test_a_missing_shortcut_raises_attribute_error_naming_the_kind() -> None:
    allocation = Cores(4).alloc(Cores(1))
    assert allocation.get(GPU) is None
    assert allocation.get("license") is None
    with pytest.raises(AttributeError, match=re.escape("holds no GPU, so it has no .gpus")):
        _ = allocation.gpus
    with pytest.raises(AttributeError, match=re.escape("holds no Memory, so it has no .M")):
        _ = (Cores(1) & GPU(1)).M
    with pytest.raises(AttributeError, match=re.escape("holds no WTime, so it has no .softT")):
        _ = Memory(1).softT
    with pytest.raises(KeyError, match="has no GPU"):
        _ = (Cores(1) & Memory(1))[GPU]


def test_counters_are_looked_up_by_name() -> None:
    with pytest.raises(ResourceError, match=re.escape("get('license')")):
        (Cores(1) & Counter("license", 1)).get(Counter)


def test_request_is_true_exactly_when_everything_fits() -> None:
    capacity = _capacity()
    assert capacity.request(Cores(8) & Memory(16) & GPU(2) & Counter("license", 2))
    assert not capacity.request(Cores(9))
    assert not capacity.request(Cores(1) & Counter("license", 3))


def test_a_kind_the_capacity_lacks_is_never_satisfiable() -> None:
    capacity = Cores(8) & Memory(16)
    assert not capacity.request(GPU(1))
    with pytest.raises(InsufficientResourcesError) as caught:
        capacity.alloc(Cores(1) & GPU(1) & Counter("seat", 1))
    assert caught.value.short == ("gpu", "seat")
    assert capacity.shortfall(GPU(1), total=True) == ("gpu",)


def test_alloc_is_atomic_when_one_kind_falls_short() -> None:
    capacity = _capacity()
    before = copy.deepcopy(capacity)
    with pytest.raises(InsufficientResourcesError, match="short of mem") as caught:
        capacity.alloc(Cores(2) & Memory(32) & Counter("license", 1))
    assert caught.value.short == ("mem",)
    assert capacity == before
    assert capacity.stat() == before.stat()
    assert capacity[Cores].free_ids() == list(range(8))


def test_dealloc_restores_the_capacity() -> None:
    capacity = _capacity()
    before = capacity.stat()
    held = [capacity.alloc(Cores(3) & Memory(5) & Counter("license")) for _ in range(2)]
    assert capacity.stat()["cores"] == (2.0, 8.0)
    assert capacity.stat()["mem"] == (6.0, 16.0)
    assert capacity.stat()["license"] == (0.0, 2.0)
    for allocation in reversed(held):
        capacity.dealloc(allocation)
    assert capacity.stat() == before
    assert capacity == _capacity()


def test_dealloc_of_a_foreign_allocation_raises() -> None:
    capacity, other = Cores(4) & Memory(4), Cores(4) & Memory(4)
    foreign = other.alloc(Cores(1) & Memory(1))
    with pytest.raises(ResourceError, match="did not hand out this allocation"):
        capacity.dealloc(foreign)
    with pytest.raises(ResourceError, match="did not hand out this allocation"):
        capacity.dealloc(Cores(1) & Memory(1))
    assert capacity.stat() == {"cores": (4.0, 4.0), "mem": (4.0, 4.0)}


def test_dealloc_twice_raises() -> None:
    capacity = Cores(4) & Memory(4)
    allocation = capacity.alloc(Cores(1))
    capacity.dealloc(allocation)
    with pytest.raises(ResourceError, match="or it was already returned"):
        capacity.dealloc(allocation)
    assert capacity.stat() == {"cores": (4.0, 4.0), "mem": (4.0, 4.0)}


def test_a_single_kind_capacity_checks_dealloc_too() -> None:
    capacity = Memory(4)
    allocation = capacity.alloc(Memory(1))
    capacity.dealloc(allocation)
    with pytest.raises(ResourceError, match="this mem capacity did not hand out"):
        capacity.dealloc(allocation)
    with pytest.raises(ResourceError, match="did not hand out"):
        capacity.dealloc(Memory(1))


def test_a_single_kind_capacity_allocates_a_one_kind_combination() -> None:
    capacity = Cores(4)
    allocation = capacity.alloc(Resources(Cores(2)))
    assert allocation.c == [0, 1]
    with pytest.raises(InsufficientResourcesError, match="short of mem"):
        capacity.alloc(Memory(1))
    with pytest.raises(InsufficientResourcesError, match="short of mem"):
        capacity.alloc(Cores(1) & Memory(1))
    with pytest.raises(ResourceError, match="not a resource request"):
        capacity.alloc("cores:1")  # type: ignore[arg-type]


def test_stat_reports_available_and_total_per_kind() -> None:
    capacity = _capacity()
    capacity.alloc(Cores(2) & GPU(1) & Memory(0.5))
    stat = capacity.stat()
    assert stat["cores"] == (6.0, 8.0)
    assert stat["mem"] == (15.5, 16.0)
    assert stat["gpu"] == (1.0, 2.0)
    assert stat["token"] == (1.0, 1.0)
    assert stat["license"] == (2.0, 2.0)
    assert stat["wtime"] == (3600.0, 3600.0)
    assert list(stat) == ["cores", "mem", "gpu", "wtime", "token", "license"]


def test_an_allocation_is_a_request_its_capacity_satisfies() -> None:
    capacity = _capacity()
    allocation = capacity.alloc(Cores(3) & Memory(2) & GPU(1))
    capacity.dealloc(allocation)
    assert capacity.request(allocation)
    again = capacity.alloc(allocation)
    assert again.N == 3
    assert again.M == 2.0


def test_resources_pickled_after_hashing_hash_right_in_another_process() -> None:
    # The hash is cached, and string hashes differ between processes: the cached value must
    # not travel with the pickle, or the same request would miss itself in a dict over there.
    request = Cores(2) & Memory(4) & Counter("license", 1)
    hash(request)
    script = (
        "import pickle, sys\n"
        "from grainlike import Cores, Counter, Memory\n"
        "request = pickle.loads(sys.stdin.buffer.read())\n"
        "fresh = Cores(2) & Memory(4) & Counter('license', 1)\n"
        "print(hash(request) == hash(fresh), {fresh: 1}.get(request))\n"
    )
    for seed in ("1", "2"):
        result = subprocess.run(
            [sys.executable, "-c", script],
            input=pickle.dumps(request),
            capture_output=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        )
        assert result.stdout.decode().split() == ["True", "1"]
