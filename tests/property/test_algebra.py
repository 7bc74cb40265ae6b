"""Laws of the resource algebra, checked with hypothesis on random kinds and capacities."""

from __future__ import annotations

import copy
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from grainlike import (
    GPU,
    Cores,
    Counter,
    Disk,
    InsufficientResourcesError,
    Kind,
    Memory,
    ResourceError,
    Resources,
    Token,
    WTime,
    parse_resources,
)
from grainlike.resource import (
    MAX_COUNT,
    MAX_DURATION,
    MAX_ID,
    MAX_IDS,
    MAX_KIB,
    IdSet,
    Size,
    kind_for_name,
    near_kind,
)
from grainlike.resource._units import KIB_PER_GB

LAWS = settings(max_examples=150, deadline=None)


def _stopped_clock() -> float:
    """Wall time that does not run down, so that the laws do not depend on the machine's speed."""
    return 0.0


# -- strategies --------------------------------------------------------------------------------

# Names close to a kind's are counters too, but parsing them warns (a likely typo).
NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,6}", fullmatch=True).filter(
    lambda name: kind_for_name(name.lower()) is None and near_kind(name) is None
)
COUNTER_NAMES = st.sampled_from(["license", "seat", "Lic-2", "a.b"]) | NAMES
GROUPS = st.text(string.ascii_letters + string.digits + "_-.:/@ ", min_size=1, max_size=8).filter(
    lambda group: group == group.strip()
)
# Quantities reach their limits (MAX_*), so that the laws hold at the edges too.
DURATIONS = st.integers(1, MAX_DURATION).map(float) | st.floats(1e-3, MAX_DURATION)
ID_LISTS = st.lists(
    st.integers(0, 40) | st.integers(MAX_ID - 40, MAX_ID), min_size=1, max_size=8, unique=True
)
COUNTS = st.integers(1, 20) | st.integers(MAX_COUNT - 20, MAX_COUNT)


@st.composite
def wtime_requests(draw: st.DrawFn) -> WTime:
    group = draw(st.none() | GROUPS)
    hard = draw(st.none() | DURATIONS)
    soft = draw(st.none() | DURATIONS)
    if hard is not None and soft is not None and soft > hard:
        hard, soft = soft, hard
    if hard is None and soft is None and group is None:
        hard = draw(DURATIONS)
    return WTime(hard, soft, group)


def _size(cls: type[Size], strategy: st.SearchStrategy[int]) -> st.SearchStrategy[Size]:
    """Plain sizes of ``cls`` (Memory or Disk), as a capacity or a request."""
    return strategy.map(cls.from_kib) | st.floats(1e-3, 1e5).map(cls)


def _size_requests(cls: type[Size], strategy: st.SearchStrategy[int]) -> st.SearchStrategy[Size]:
    """Requests of ``cls``: plain sizes, and learned groups with or without a first guess."""
    return (
        _size(cls, strategy)
        | st.builds(cls.from_kib, strategy, GROUPS)
        | GROUPS.map(lambda group: cls(group=group))
    )


#: One strategy per kind class, for requests; counters are one kind per name.
REQUEST_KINDS: dict[type[Kind], st.SearchStrategy[Kind]] = {
    Cores: st.integers(1, 8).map(Cores) | ID_LISTS.map(Cores),
    GPU: st.integers(1, 4).map(GPU) | ID_LISTS.map(GPU),
    Memory: _size_requests(Memory, st.integers(1, MAX_KIB)),
    Disk: _size_requests(Disk, st.integers(1, MAX_KIB)),
    WTime: wtime_requests(),
    Token: st.lists(NAMES, min_size=1, max_size=3).map(lambda names: Token(*names)),
    Counter: st.builds(Counter, COUNTER_NAMES, COUNTS),
}
KINDS = st.one_of(*REQUEST_KINDS.values())


def _same_kind(kind: Kind) -> st.SearchStrategy[Kind]:
    if isinstance(kind, Counter):
        return COUNTS.map(lambda n: Counter(kind.name, n))
    return REQUEST_KINDS[type(kind)]


REQUESTS = st.lists(KINDS, max_size=6, unique_by=lambda kind: kind.key).map(
    lambda kinds: Resources(*kinds)
)


def _groups_for(ids: list[int]) -> st.SearchStrategy[dict[int, int] | None]:
    return st.none() | st.fixed_dictionaries({i: st.integers(0, 2) for i in ids})


@st.composite
def id_capacities(draw: st.DrawFn, cls: type[IdSet]) -> IdSet:
    ids = draw(ID_LISTS | st.integers(1, 16).map(lambda n: list(range(n))))
    return cls(ids, groups=draw(_groups_for(ids)))


@st.composite
def capacities(draw: st.DrawFn) -> Resources:
    """A fresh capacity: some of the kinds, each with room for a few requests."""
    parts: list[Kind] = []
    if draw(st.booleans()):
        parts.append(draw(id_capacities(Cores)))
    if draw(st.booleans()):
        parts.append(draw(id_capacities(GPU)))
    for cls in (Memory, Disk):
        if draw(st.booleans()):
            parts.append(draw(_size(cls, st.integers(1, MAX_KIB))))
    if draw(st.booleans()):
        walltime = draw(DURATIONS | st.just(float("inf")))
        parts.append(WTime(walltime, countdown=True, clock=_stopped_clock))
    if draw(st.booleans()):
        parts.append(Token(*draw(st.lists(NAMES, min_size=1, max_size=4))))
    for name in draw(st.lists(COUNTER_NAMES, max_size=3, unique=True)):
        parts.append(Counter(name, draw(COUNTS)))
    return Resources(*parts)


@st.composite
def requests_for(draw: st.DrawFn, capacity: Resources) -> Resources:
    """A request mostly of the capacity's kinds, sized around what it owns, now and then not."""
    parts: list[Kind] = []
    for owned in capacity:
        if not draw(st.booleans()):
            continue
        if isinstance(owned, IdSet):
            parts.append(type(owned)(draw(st.integers(1, owned.N + 1))))
        elif isinstance(owned, Size):
            kib = st.integers(1, min(owned.kib + 1, MAX_KIB))
            parts.append(draw(st.builds(type(owned).from_kib, kib, st.none() | GROUPS)))
            if draw(st.integers(0, 3)) == 0:  # a group without a guess: all of the capacity
                parts[-1] = type(owned)(group=draw(GROUPS))
        elif isinstance(owned, Counter):
            parts.append(Counter(owned.name, draw(st.integers(1, min(owned.n + 1, MAX_COUNT)))))
        elif isinstance(owned, Token):
            names = draw(st.lists(st.sampled_from(sorted(owned.names)), min_size=1))
            parts.append(Token(*names, *draw(st.lists(NAMES, max_size=1))))
        elif isinstance(owned, WTime):
            parts.append(draw(wtime_requests()))
    if draw(st.integers(0, 9)) == 0:
        owned_keys = {owned.key for owned in capacity}
        parts.append(draw(KINDS.filter(lambda kind: kind.key not in owned_keys)))
    return Resources(*parts)


@st.composite
def busy_capacities(draw: st.DrawFn) -> tuple[Resources, list[Resources]]:
    """A capacity with some allocations live, and those allocations."""
    capacity = draw(capacities())
    live = []
    for _ in range(draw(st.integers(0, 4))):
        request = draw(requests_for(capacity))
        if capacity.request(request):
            live.append(capacity.alloc(request))
    return capacity, live


# -- & -------------------------------------------------------------------------------------------


@LAWS
@given(st.lists(KINDS, min_size=3, max_size=3, unique_by=lambda kind: kind.key))
def test_and_is_associative(kinds: list[Kind]) -> None:
    """(a & b) & c equals a & (b & c)."""
    a, b, c = kinds
    assert (a & b) & c == a & (b & c)


@LAWS
@given(
    st.lists(KINDS, min_size=1, max_size=6, unique_by=lambda kind: kind.key).flatmap(
        lambda kinds: st.tuples(st.just(kinds), st.permutations(kinds))
    )
)
def test_and_is_commutative(orders: tuple[list[Kind], list[Kind]]) -> None:
    """Combining the same kinds in any order gives equal resources with equal hashes and text."""
    forward, shuffled = (Resources(*kinds) for kinds in orders)
    assert forward == shuffled
    assert hash(forward) == hash(shuffled)
    assert str(forward) == str(shuffled)


@LAWS
@given(st.lists(KINDS, min_size=2, max_size=6, unique_by=lambda kind: kind.key), st.data())
def test_and_is_flat(kinds: list[Kind], data: st.DataObject) -> None:
    """However a combination is nested, it holds the very kinds combined, one level deep."""
    split = data.draw(st.integers(1, len(kinds) - 1))
    left, right = Resources(*kinds[:split]), Resources(*kinds[split:])
    combined = left & right
    assert len(combined) == len(kinds)
    assert {id(part) for part in combined} == {id(kind) for kind in kinds}
    assert all(not isinstance(part, Resources) for part in combined)


@LAWS
@given(KINDS.flatmap(lambda kind: st.tuples(st.just(kind), _same_kind(kind))), KINDS)
def test_the_same_kind_twice_is_rejected(pair: tuple[Kind, Kind], other: Kind) -> None:
    """Combining two of the same kind raises ResourceError, however they are grouped."""
    first, second = pair
    with pytest.raises(ResourceError, match="combines two"):
        first & second
    if other.key != first.key:
        with pytest.raises(ResourceError, match="combines two"):
            (first & other) & second
        with pytest.raises(ResourceError, match="combines two"):
            second & (other & first)


# -- request, alloc, dealloc ----------------------------------------------------------------------


@LAWS
@given(busy_capacities().flatmap(lambda busy: st.tuples(st.just(busy), requests_for(busy[0]))))
def test_request_is_true_exactly_when_alloc_succeeds(
    case: tuple[tuple[Resources, list[Resources]], Resources],
) -> None:
    """capacity.request(r) is True exactly when capacity.alloc(r) succeeds, and a failed alloc
    changes nothing."""
    (capacity, _), request = case
    before = copy.deepcopy(capacity)
    if capacity.request(request):
        capacity.alloc(request)
    else:
        with pytest.raises(InsufficientResourcesError):
            capacity.alloc(request)
        assert capacity == before
        assert capacity.stat() == before.stat()


@LAWS
@given(busy_capacities().flatmap(lambda busy: st.tuples(st.just(busy), requests_for(busy[0]))))
def test_alloc_then_dealloc_restores_the_capacity(
    case: tuple[tuple[Resources, list[Resources]], Resources],
) -> None:
    """Allocating and then giving back leaves a capacity equal to what it was, stat() included."""
    (capacity, _), request = case
    if not capacity.request(request):
        return
    before, stat, text = copy.deepcopy(capacity), capacity.stat(), str(capacity)
    capacity.dealloc(capacity.alloc(request))
    assert capacity == before
    assert capacity.stat() == stat
    assert str(capacity) == text


@LAWS
@given(capacities(), st.lists(st.integers(1, 6), max_size=12), st.data())
def test_no_id_is_handed_to_two_live_allocations(
    capacity: Resources, sizes: list[int], data: st.DataObject
) -> None:
    """The core and GPU IDs of live allocations are disjoint and owned by the capacity."""
    live: list[Resources] = []
    for n in sizes:
        if len(live) > 0 and data.draw(st.booleans()):
            capacity.dealloc(live.pop(data.draw(st.integers(0, len(live) - 1))))
        request = Cores(n) & GPU(n)
        if capacity.request(request):
            live.append(capacity.alloc(request))
        for cls in (Cores, GPU):
            owned = capacity.get(cls)
            if owned is None:
                continue
            handed = [i for allocation in live for i in allocation[cls].ids]
            assert len(handed) == len(set(handed))
            assert set(handed) <= set(owned.ids)
            assert set(handed).isdisjoint(owned.free_ids())


@LAWS
@given(busy_capacities().flatmap(lambda busy: st.tuples(st.just(busy), requests_for(busy[0]))))
def test_an_allocation_as_a_request_fits_where_it_came_from(
    case: tuple[tuple[Resources, list[Resources]], Resources],
) -> None:
    """An allocation used as a request is satisfied by its capacity as it was before the alloc."""
    (capacity, _), request = case
    if not capacity.request(request):
        return
    before = copy.deepcopy(capacity)
    allocation = capacity.alloc(request)
    assert before.request(allocation)
    capacity.dealloc(allocation)
    assert capacity.request(allocation)


# -- the grammar -----------------------------------------------------------------------------------


@LAWS
@given(REQUESTS)
def test_a_request_parses_back_from_its_text(request: Resources) -> None:
    """parse_resources(str(r)) == r for every request r."""
    assert parse_resources(str(request)) == request


@LAWS
@given(capacities())
def test_a_fresh_capacity_parses_back_from_its_text(capacity: Resources) -> None:
    """parse_resources(str(c), capacity=True) == c for every fresh capacity c."""
    assert parse_resources(str(capacity), capacity=True) == capacity


@LAWS
@given(REQUESTS)
def test_the_dict_of_the_text_parses_to_the_same_request(request: Resources) -> None:
    """The dict form {name: value} of a request's text parses to that request."""
    as_dict = {part.name: part.to_text() for part in request}
    assert parse_resources(as_dict) == request


# -- limits ----------------------------------------------------------------------------------------


def _near(limit: int) -> st.SearchStrategy[int]:
    return st.integers(limit - 3, limit + 3)


@LAWS
@given(_near(MAX_KIB))
def test_memory_is_accepted_exactly_up_to_its_limit(kib: int) -> None:
    """A size of n KiB is accepted, as a value or as text, exactly when 1 <= n <= MAX_KIB."""
    for text in (None, f"{kib}K"):
        if kib > MAX_KIB:
            with pytest.raises(ResourceError, match=f"{kib}"):
                Memory.from_kib(kib) if text is None else Memory(text)
            continue
        memory = Memory.from_kib(kib) if text is None else Memory(text)
        assert memory.kib == kib
        assert parse_resources(str(memory)) == memory


@LAWS
@given(_near(MAX_COUNT))
def test_a_counter_is_accepted_exactly_up_to_its_limit(n: int) -> None:
    """Counter(name, n) is accepted exactly when 1 <= n <= MAX_COUNT, as a value or as text."""
    if n <= MAX_COUNT:
        assert Counter("seat", n).n == n
        assert parse_resources(f"seat:{n}") == Counter("seat", n)
        return
    with pytest.raises(ResourceError, match=rf"Counter\('seat', {n}\)"):
        Counter("seat", n)
    with pytest.raises(ResourceError, match=rf"Counter\('seat', {n}\)"):
        parse_resources(f"seat:{n}")


@LAWS
@given(_near(MAX_ID))
def test_an_id_is_accepted_exactly_up_to_its_limit(i: int) -> None:
    """An ID i is accepted, as a value or as text, exactly when 0 <= i <= MAX_ID."""
    if i <= MAX_ID:
        assert GPU([0, i]).ids == [0, i]
        assert parse_resources(f"gpu:[0,{i}]", capacity=True) == GPU([0, i])
        return
    with pytest.raises(ResourceError, match=f"an ID is at most {MAX_ID}"):
        GPU([0, i])
    with pytest.raises(ResourceError, match=f"an ID is at most {MAX_ID}"):
        parse_resources(f"gpu:[0,{i}]", capacity=True)


@settings(max_examples=4, deadline=None)
@given(st.sampled_from([MAX_IDS, MAX_IDS + 1]))
def test_a_count_of_ids_is_accepted_exactly_up_to_its_limit(n: int) -> None:
    """Cores(n) is accepted, as a value or as text, exactly when 1 <= n <= MAX_IDS."""
    if n <= MAX_IDS:
        assert len(Cores(n).c) == n
        assert parse_resources(f"cores:{n}") == Cores(n)
        return
    with pytest.raises(ResourceError, match=rf"Cores\({n}\): at most {MAX_IDS}"):
        Cores(n)
    with pytest.raises(ResourceError, match=rf"Cores\({n}\): at most {MAX_IDS}"):
        parse_resources(f"cores:{n}")


@LAWS
@given(st.integers(MAX_DURATION - 3, MAX_DURATION + 3), st.sampled_from(["", "s"]))
def test_a_limit_is_accepted_exactly_up_to_its_limit(seconds: int, unit: str) -> None:
    """WTime(T=t) is accepted, as a number or as text, exactly when 0 < t <= MAX_DURATION."""
    for given_as in (seconds, f"{seconds}{unit}"):
        if seconds > MAX_DURATION:
            with pytest.raises(ResourceError, match="a duration is at most 36525d"):
                WTime(given_as)
            continue
        hard = WTime(given_as).T
        assert hard == seconds


# -- random alloc/dealloc sequences ----------------------------------------------------------------


def _amount(part: Kind) -> int:
    """How much of a consumable kind a part holds, in its exact unit."""
    if isinstance(part, IdSet):
        return part.N
    if isinstance(part, Size):
        return part.kib
    if isinstance(part, Counter):
        return part.n
    raise AssertionError(part)


def _available(owned: Kind) -> int:
    available, _ = owned.stat()[owned.label]
    scale = KIB_PER_GB if isinstance(owned, Size) else 1
    return int(available * scale)  # exact: KiB / 2**20 is a binary fraction


class AllocationMachine(RuleBasedStateMachine):
    """Random alloc/dealloc sequences on one capacity, checking conservation after each step."""

    def __init__(self) -> None:
        super().__init__()
        self.capacity = Resources()
        self.fresh = Resources()
        self.live: list[Resources] = []
        self.returned: list[Resources] = []

    @initialize(capacity=capacities())
    def start(self, capacity: Resources) -> None:
        self.capacity = capacity
        self.fresh = copy.deepcopy(capacity)

    @rule(data=st.data())
    def alloc(self, data: st.DataObject) -> None:
        request = data.draw(requests_for(self.capacity))
        if self.capacity.request(request):
            self.live.append(self.capacity.alloc(request))
        else:
            with pytest.raises(InsufficientResourcesError):
                self.capacity.alloc(request)

    @precondition(lambda self: self.live)
    @rule(data=st.data())
    def dealloc(self, data: st.DataObject) -> None:
        allocation = self.live.pop(data.draw(st.integers(0, len(self.live) - 1)))
        self.capacity.dealloc(allocation)
        self.returned.append(allocation)

    @precondition(lambda self: self.returned)
    @rule(data=st.data())
    def dealloc_twice(self, data: st.DataObject) -> None:
        allocation = data.draw(st.sampled_from(self.returned))
        with pytest.raises(ResourceError, match="already returned"):
            self.capacity.dealloc(allocation)

    @precondition(lambda self: not self.live)
    @rule()
    def all_returned(self) -> None:
        assert self.capacity == self.fresh
        assert self.capacity.stat() == self.fresh.stat()

    @invariant()
    def free_and_live_make_the_total(self) -> None:
        for owned, fresh in zip(self.capacity, self.fresh, strict=True):
            if isinstance(owned, Token | WTime):
                assert owned.stat() == fresh.stat()  # not consumed
                continue
            held = [allocation.get(owned.label) for allocation in self.live]
            taken = sum(_amount(part) for part in held if part is not None)
            assert _available(owned) + taken == _amount(owned)

    @invariant()
    def no_id_is_held_twice(self) -> None:
        for cls in (Cores, GPU):
            owned = self.capacity.get(cls)
            if owned is None:
                continue
            held = [
                i for allocation in self.live if allocation.get(cls) for i in allocation[cls].ids
            ]
            assert sorted(held + owned.free_ids()) == owned.ids


AllocationMachine.TestCase.settings = settings(
    max_examples=100, stateful_step_count=25, deadline=None
)
TestAllocationMachine = AllocationMachine.TestCase
