"""Cores and GPU (grainlike/resource/_idset.py, _cores.py): IDs, validation, topology."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from grainlike import GPU, Cores, InsufficientResourcesError, ResourceError
from grainlike.resource import MAX_ID, MAX_IDS, IdSet, parse_resources

SOCKETS = {0: 0, 1: 0, 2: 0, 3: 0, 4: 1, 5: 1, 6: 1, 7: 1}


def test_cores_request_counts_and_capacity_lists_ids() -> None:
    assert Cores(2).N == 2
    capacity = Cores([5, 4, 1, 0])
    assert capacity.ids == [0, 1, 4, 5]
    assert capacity.c == [0, 1, 4, 5]
    assert capacity.N == 4


def test_a_count_as_capacity_means_ids_from_zero() -> None:
    assert Cores(4) == Cores([0, 1, 2, 3])
    assert Cores(4).c == [0, 1, 2, 3]


def test_gpu_ids_are_sorted_device_indices() -> None:
    assert GPU([1, 0]).ids == [0, 1]
    assert GPU(1).N == 1
    assert isinstance(GPU(1), IdSet)


def test_allocation_lists_the_ids_it_got() -> None:
    capacity = Cores([0, 1, 4, 5])
    allocation = capacity.alloc(Cores(2))
    assert isinstance(allocation, Cores)
    assert allocation.c == [0, 1]
    assert allocation.N == 2
    assert capacity.free_ids() == [4, 5]
    capacity.dealloc(allocation)
    assert capacity.free_ids() == [0, 1, 4, 5]


def test_gpu_allocation_answers_gpus() -> None:
    capacity = GPU([0, 1, 2])
    allocation = capacity.alloc(GPU(2))
    assert allocation.gpus == [0, 1]
    assert allocation.ids == [0, 1]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Cores(0), "Cores(0): a request needs at least 1 core"),
        (lambda: Cores(-3), "Cores(-3): a request needs at least 1 core"),
        (lambda: GPU(0), "GPU(0): a request needs at least 1 GPU"),
        (
            lambda: GPU(1.5),  # type: ignore[arg-type]
            "GPU(1.5): give a whole number of GPUs or a list of IDs",
        ),
        (lambda: Cores(True), "Cores(True): give a whole number of cores or a list of IDs"),
        (
            lambda: Cores("2"),  # type: ignore[arg-type]
            "Cores('2'): give a whole number of cores or a list of IDs",
        ),
        (lambda: Cores([]), "Cores([]): needs at least one core ID"),
        (lambda: Cores([0, 0]), "Cores([0, 0]): an ID is listed twice"),
        (lambda: Cores([-1]), "Cores([-1]): IDs must be non-negative integers"),
        (
            lambda: GPU([0.5]),  # type: ignore[list-item]
            "GPU([0.5]): IDs must be non-negative integers",
        ),
        (
            lambda: Cores(2, groups={0: "a"}),  # type: ignore[dict-item]
            "Cores(groups={0: 'a'}): groups map each ID to a group number",
        ),
    ],
)
def test_invalid_quantities_name_the_kind_and_the_value(
    make: Callable[[], object], message: str
) -> None:
    with pytest.raises(ResourceError, match=re.escape(message)):
        make()


def test_alloc_beyond_the_free_ids_raises_and_takes_nothing() -> None:
    capacity = Cores(4)
    held = capacity.alloc(Cores(3))
    with pytest.raises(InsufficientResourcesError) as caught:
        capacity.alloc(Cores(2))
    assert caught.value.short == ("cores",)
    assert capacity.free_ids() == [3]
    assert capacity.stat() == {"cores": (1.0, 4.0)}
    capacity.dealloc(held)
    assert capacity == Cores(4)


def test_an_allocation_prints_its_ids_and_is_a_request_again() -> None:
    capacity = Cores(8)
    first = capacity.alloc(Cores(3))
    second = capacity.alloc(Cores(2))
    assert str(second) == "cores:[3-4]"
    assert str(capacity) == "cores:[5-7]"
    capacity.dealloc(second)
    capacity.dealloc(first)
    assert capacity.request(second)
    assert str(capacity) == "cores:8"


def test_repr_shows_a_count_or_the_ids() -> None:
    assert repr(Cores(3)) == "Cores(3)"
    assert repr(GPU([1, 3])) == "GPU([1, 3])"


# -- topology: IdSet._pick ---------------------------------------------------------------------


def test_two_cores_stay_on_one_socket() -> None:
    """The lowest two free cores straddle the sockets; the pick does not."""
    with_sockets = Cores(8, groups=SOCKETS)
    without = Cores(8)
    for capacity in (with_sockets, without):
        assert capacity.alloc(Cores(3)).c == [0, 1, 2]
    assert with_sockets.alloc(Cores(2)).c == [4, 5]
    assert without.alloc(Cores(2)).c == [3, 4]


def test_a_group_with_enough_scattered_cores_beats_spanning_sockets() -> None:
    capacity = Cores([0, 2, 4, 5, 7], groups={0: 0, 2: 0, 4: 1, 5: 1, 7: 1})
    # No run of three adjacent cores exists; socket 1 holds three, so they come from it.
    assert capacity.alloc(Cores(3)).c == [4, 5, 7]


def test_among_fitting_groups_the_fullest_stays_whole() -> None:
    groups = {0: 0, 2: 0, 4: 0, 8: 1, 10: 1, 12: 1, 14: 1}
    capacity = Cores([0, 2, 4, 8, 10, 12, 14], groups=groups)
    assert capacity.alloc(Cores(2)).c == [0, 2]


def test_a_request_larger_than_any_group_takes_the_fullest_groups_first() -> None:
    groups = {0: 0, 1: 0, 4: 1, 5: 1, 6: 1, 8: 2}
    capacity = Cores([0, 1, 4, 5, 6, 8], groups=groups)
    assert capacity.alloc(Cores(5)).c == [0, 1, 4, 5, 6]


def test_adjacent_ids_are_preferred() -> None:
    capacity = Cores([0, 2, 4, 5, 6])
    assert capacity.alloc(Cores(2)).c == [4, 5]


def test_best_fit_keeps_large_runs_whole() -> None:
    capacity = Cores([0, 1, 2, 3, 8, 9])
    assert capacity.alloc(Cores(2)).c == [8, 9]
    assert capacity.alloc(Cores(4)).c == [0, 1, 2, 3]


def test_best_fit_inside_sockets_uses_the_partly_used_socket() -> None:
    capacity = Cores(8, groups=SOCKETS)
    capacity.alloc(Cores(2))  # cores 0-1: socket 0 now has a run of 2 left
    assert capacity.alloc(Cores(2)).c == [2, 3]
    assert capacity.alloc(Cores(4)).c == [4, 5, 6, 7]


def test_without_adjacent_ids_or_groups_the_lowest_free_ids_are_taken() -> None:
    capacity = Cores([1, 3, 5, 7])
    assert capacity.alloc(Cores(3)).c == [1, 3, 5]


def test_a_request_for_every_free_id_takes_them_all() -> None:
    capacity = Cores(8, groups=SOCKETS)
    assert capacity.alloc(Cores(8)).c == list(range(8))
    assert capacity.stat() == {"cores": (0.0, 8.0)}


def test_the_pick_is_deterministic_for_the_same_state() -> None:
    def history() -> list[list[int]]:
        capacity = Cores(16, groups={i: i // 8 for i in range(16)})
        held = [capacity.alloc(Cores(n)) for n in (3, 1, 2, 5)]
        capacity.dealloc(held[1])
        capacity.dealloc(held[3])
        picks = [allocation.c for allocation in held]
        for n in (2, 4, 1, 3):
            allocation = capacity.alloc(Cores(n))
            picks.append(allocation.c)
            capacity.dealloc(allocation)
            picks.append(capacity.alloc(Cores(n)).c)
        return picks

    assert history() == history()


def test_ids_missing_from_groups_form_a_group_of_their_own() -> None:
    capacity = Cores(6, groups={0: 0, 1: 0, 2: 0})
    capacity.alloc(Cores(1))  # core 0; free: [1-2] in group 0, [3-5] in no group
    assert capacity.alloc(Cores(3)).c == [3, 4, 5]


def test_groups_are_kept_by_allocations() -> None:
    capacity = Cores(8, groups=SOCKETS)
    allocation = capacity.alloc(Cores(4))
    assert allocation.groups == SOCKETS
    assert allocation.alloc(Cores(2)).c == [0, 1]


def test_a_request_of_up_to_2_to_the_20_ids_is_accepted() -> None:
    assert MAX_IDS == 2**20
    assert Cores(MAX_IDS).N == MAX_IDS
    assert GPU([MAX_ID]).ids == [MAX_ID]


@pytest.mark.parametrize("count", [MAX_IDS + 1, 10**9, 10**30])
def test_a_request_of_more_ids_is_refused_before_building_them(count: int) -> None:
    with pytest.raises(ResourceError, match=re.escape(f"Cores({count}): at most {MAX_IDS} cores")):
        Cores(count)


def test_a_capacity_of_more_ids_is_refused_without_listing_them() -> None:
    with pytest.raises(ResourceError, match=f"at most {MAX_IDS} GPUs") as info:
        GPU(range(10**12))
    assert len(str(info.value)) < 200
    with pytest.raises(ResourceError, match=f"an ID is at most {MAX_ID}"):
        Cores([0, MAX_ID + 1])


def test_the_grammar_refuses_a_billion_cores() -> None:
    with pytest.raises(ResourceError, match=re.escape("Cores(1000000000): at most")):
        parse_resources("cores:1000000000")
    with pytest.raises(ResourceError, match=f"an ID is at most {MAX_ID}"):
        parse_resources("cores:[0-1000000000]", capacity=True)


def test_an_allocation_prints_its_ids_even_from_zero() -> None:
    capacity = Cores(4)
    first, second = capacity.alloc(Cores(1)), capacity.alloc(Cores(2))
    assert (str(first), str(second)) == ("cores:[0]", "cores:[1-2]")
    assert str(Cores(2)) == "cores:2"  # a request: a count
