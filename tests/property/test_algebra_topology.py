"""Laws of topology-aware ID allocation (IdSet._pick), against a plain list-based model."""

from __future__ import annotations

from collections.abc import Mapping

from hypothesis import given, settings
from hypothesis import strategies as st

from grainlike import GPU, Cores
from grainlike.resource import IdSet

LAWS = settings(max_examples=200, deadline=None)


def model_pick(free: list[int], groups: Mapping[int, int] | None, n: int) -> list[int]:
    """The documented rule, written the slow and obvious way over the sorted free IDs.

    Take all when all are asked for; else the shortest run of adjacent IDs inside one group
    that holds ``n`` (lowest first on a tie); else the group with the fewest free IDs that
    holds ``n`` (lowest first on a tie); else the fullest groups first.
    """
    if n == len(free):
        return list(free)

    def group(i: int) -> int | None:
        return None if groups is None else groups.get(i)

    runs: list[list[int]] = []
    for i in free:
        if runs and i == runs[-1][-1] + 1 and group(i) == group(i - 1):
            runs[-1].append(i)
        else:
            runs.append([i])
    fitting_runs = [run for run in runs if len(run) >= n]
    if fitting_runs:
        return min(fitting_runs, key=lambda run: (len(run), run[0]))[:n]
    if groups is None:
        return free[:n]
    by_group: dict[int | None, list[int]] = {}
    for i in free:
        by_group.setdefault(group(i), []).append(i)
    fitting_groups = [ids for ids in by_group.values() if len(ids) >= n]
    if fitting_groups:
        return min(fitting_groups, key=lambda ids: (len(ids), ids[0]))[:n]
    chosen: list[int] = []
    for ids in sorted(by_group.values(), key=lambda ids: (-len(ids), ids[0])):
        chosen.extend(ids[: n - len(chosen)])
    return sorted(chosen)


@st.composite
def topologies(draw: st.DrawFn) -> tuple[list[int], dict[int, int] | None]:
    """Core IDs (dense or with holes) and, maybe, sockets: in blocks, interleaved, or partial."""
    ids = draw(
        st.integers(1, 48).map(lambda n: list(range(n)))
        | st.lists(st.integers(0, 64), min_size=1, max_size=40, unique=True)
    )
    layout = draw(st.sampled_from(["none", "blocks", "interleaved", "random", "partial"]))
    if layout == "none":
        return ids, None
    if layout == "blocks":
        size = draw(st.integers(1, 16))
        return ids, {i: i // size for i in ids}
    if layout == "interleaved":  # hyperthread siblings: socket = ID parity
        return ids, {i: i % 2 for i in ids}
    if layout == "partial":
        return ids, {i: 0 for i in ids if draw(st.booleans())}
    return ids, {i: draw(st.integers(0, 3)) for i in ids}


@LAWS
@given(
    topologies(),
    st.sampled_from([Cores, GPU]),
    st.lists(st.tuples(st.booleans(), st.integers(1, 12)), max_size=30),
    st.data(),
)
def test_the_pick_follows_the_documented_rule(
    topology: tuple[list[int], dict[int, int] | None],
    cls: type[IdSet],
    steps: list[tuple[bool, int]],
    data: st.DataObject,
) -> None:
    """Every allocation takes exactly the IDs the plain list-based rule chooses."""
    ids, groups = topology
    capacity = cls(ids, groups=groups)
    live: list[IdSet] = []
    for give_back, n in steps:
        if give_back and live:
            capacity.dealloc(live.pop(data.draw(st.integers(0, len(live) - 1))))
            continue
        free = capacity.free_ids()
        if n > len(free):
            assert not capacity.request(cls(n))
            continue
        expected = model_pick(free, groups, n)
        allocation = capacity.alloc(cls(n))
        assert allocation.ids == expected
        live.append(allocation)


@LAWS
@given(topologies(), st.lists(st.integers(1, 6), min_size=1, max_size=12))
def test_the_pick_is_deterministic(
    topology: tuple[list[int], dict[int, int] | None], sizes: list[int]
) -> None:
    """The same capacity and the same requests give the same IDs, however often it is run."""
    ids, groups = topology

    def run() -> list[list[int]]:
        capacity = Cores(ids, groups=groups)
        return [capacity.alloc(Cores(n)).c for n in sizes if capacity.request(Cores(n))]

    assert run() == run()


@LAWS
@given(topologies(), st.integers(1, 8))
def test_a_request_that_fits_one_group_stays_in_it(
    topology: tuple[list[int], dict[int, int] | None], n: int
) -> None:
    """When some group has n free IDs, an n-ID allocation lies inside a single group."""
    ids, groups = topology
    capacity = Cores(ids, groups=groups)
    if groups is None or len(ids) == n:
        return
    members: dict[int | None, int] = {}
    for i in ids:
        members[groups.get(i)] = members.get(groups.get(i), 0) + 1
    if max(members.values()) < n:
        return
    allocation = capacity.alloc(Cores(n))
    assert len({groups.get(i) for i in allocation.c}) == 1
