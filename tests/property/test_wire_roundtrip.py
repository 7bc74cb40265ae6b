"""Laws of the wire: what is sent comes back equal, and garbage is only ever a ProtocolError."""

from __future__ import annotations

import contextlib
from typing import Any, ClassVar, Self

import attrs
import msgpack
from hypothesis import given, settings
from hypothesis import strategies as st

from grainlike import ProtocolError
from grainlike.resource import (
    GPU,
    Cores,
    Counter,
    Disk,
    Kind,
    Memory,
    Resources,
    Size,
    Token,
    WTime,
    as_resources,
    kind_for_name,
    register_kind,
)
from grainlike.wire import (
    MAX_REPORTED_SECONDS,
    MESSAGE_TYPES,
    AllocationRegained,
    CancelSubtasks,
    CancelTasks,
    Drain,
    Draining,
    ForgetResults,
    Goodbye,
    Heartbeat,
    Hello,
    Message,
    QueryStatus,
    QuitAcknowledged,
    QuitWorkers,
    ReacquireAllocation,
    Refused,
    ReleaseAllocation,
    RunTasks,
    SharedResult,
    ShareResults,
    StatusReport,
    SubmitTasks,
    Subtask,
    SubtaskResult,
    SubtasksFinished,
    TaskOutcome,
    TasksFinished,
    TaskSpec,
    TasksStarted,
    Usage,
    Welcome,
    decode,
    encode,
    make_converter,
)


@attrs.define(eq=False)
class Scratch(Kind):
    """Local scratch disk in GB on a storage tier: a user's kind, written as an attrs class."""

    name: ClassVar[str] = "wirepropscratch"
    gb: int = attrs.field(validator=attrs.validators.ge(1))
    tier: str = "ssd"
    _free: int = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._free = self.gb

    def _fits(self, req: Self, *, total: bool) -> bool:
        return req.tier == self.tier and req.gb <= (self.gb if total else self._free)

    def _take(self, req: Self) -> Self:
        self._free -= req.gb
        return type(self)(req.gb, self.tier)

    def _give(self, allocation: Self) -> None:
        self._free += allocation.gb

    def _same_value(self, other: Self) -> bool:
        return (self.gb, self.tier, self._free) == (other.gb, other.tier, other._free)

    def _value_hash(self) -> int:
        return hash((self.gb, self.tier))

    def to_text(self) -> str:
        return f"{self._free}@{self.tier}"


register_kind(Scratch)

CONVERTER = make_converter()

names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,12}", fullmatch=True)
counter_names = names.filter(lambda name: kind_for_name(name.lower()) is None)
seconds = st.floats(min_value=1e-3, max_value=1e9, allow_nan=False, allow_infinity=False)


@st.composite
def id_sets(draw: st.DrawFn, cls: type[Cores] | type[GPU]) -> Cores | GPU:
    ids = draw(st.lists(st.integers(0, 4096), min_size=1, max_size=24, unique=True))
    groups = draw(st.none() | st.dictionaries(st.sampled_from(ids), st.integers(0, 7)))
    return cls(ids, groups=groups)


@st.composite
def wtimes(draw: st.DrawFn) -> WTime:
    hard, soft = draw(st.none() | seconds), draw(st.none() | seconds)
    group = draw(st.none() | names)
    if hard is not None and soft is not None and soft > hard:
        hard, soft = soft, hard
    if hard is None and soft is None and group is None:
        group = "g"
    return WTime(hard, soft, group)


def sizes(cls: type[Size]) -> st.SearchStrategy[Size]:
    """Plain sizes, and learned groups with and without a first guess."""
    kib = st.integers(1, 2**50)
    return (
        kib.map(cls.from_kib)
        | st.builds(cls.from_kib, kib, names)
        | names.map(lambda group: cls(group=group))
    )


kinds: st.SearchStrategy[Kind] = st.one_of(
    id_sets(Cores),
    id_sets(GPU),
    sizes(Memory),
    sizes(Disk),
    wtimes(),
    st.lists(names, min_size=1, max_size=4).map(lambda n: Token(*n)),
    st.builds(Counter, counter_names, st.integers(1, 2**40)),
    st.builds(Scratch, st.integers(1, 10**6), st.sampled_from(["ssd", "nvme", "hdd"])),
)


@st.composite
def resources(draw: st.DrawFn) -> Resources:
    by_key = {kind.key: kind for kind in draw(st.lists(kinds, max_size=7))}
    return Resources(*by_key.values())


def roundtrip(value: Resources) -> Resources:
    back: Resources = CONVERTER.structure(CONVERTER.unstructure(value), Resources)
    return back


@given(resources())
def test_resources_survive_unstructure_and_structure(value: Resources) -> None:
    """structure(unstructure(r)) == r for every combination of kinds, custom ones included."""
    back = roundtrip(value)
    assert back == value
    assert str(back) == str(value)


@given(kinds)
def test_a_single_kind_survives_with_its_type_and_groups(kind: Kind) -> None:
    """A kind comes back as the same class, equal, and with the same groups where it has them."""
    back = CONVERTER.structure(CONVERTER.unstructure(kind), Kind)
    assert type(back) is type(kind)
    assert back == kind
    assert getattr(back, "groups", None) == getattr(kind, "groups", None)


@given(
    st.lists(st.integers(0, 256), min_size=1, max_size=32, unique=True),
    st.data(),
)
def test_an_allocation_behaves_the_same_after_crossing(ids: list[int], data: st.DataObject) -> None:
    """An allocation that crossed names the same cores and fits back into a fresh capacity."""
    count = data.draw(st.integers(1, len(ids)))
    kib = data.draw(st.integers(1, 2**30))
    capacity = Cores(ids) & Memory.from_kib(2**31) & Disk.from_kib(2**31) & Scratch(100)
    request = Cores(count) & Memory.from_kib(kib) & Disk(group="g") & Scratch(7)
    allocation = capacity.alloc(request)
    back = roundtrip(allocation)
    assert back == allocation
    assert back.c == allocation.c
    assert back[Memory].kib == kib
    assert back[Disk].kib == 2**31  # a group without a guess took all of the capacity
    assert back[Disk].group == "g"
    fresh = Cores(ids) & Memory.from_kib(2**31) & Disk.from_kib(2**31) & Scratch(100)
    assert fresh.request(back)


int64 = st.integers(-(2**63), 2**63 - 1)
floats = st.floats(allow_nan=False)


def _nested(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4)


json_like: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | int64 | floats | st.text(), _nested, max_leaves=12
)
task_ids = st.integers(0, 2**63 - 1)
task_specs = st.builds(
    TaskSpec,
    task_ids,
    st.binary(max_size=64),
    resources(),
    st.none() | seconds,
    st.integers(0, 100),
)
finite = st.floats(allow_nan=False, allow_infinity=False)
durations = st.floats(0, MAX_REPORTED_SECONDS)
usages = st.builds(
    Usage,
    st.floats(0, 1e6),
    st.floats(0, 1e6),
    st.integers(0, 2**50),
    st.none() | st.integers(0, 2**50),
)
outcomes = st.builds(
    TaskOutcome,
    task_ids,
    st.integers(0, 100),
    st.booleans(),
    st.binary(),
    durations,
    finite,
    st.none() | usages,
)
frame_limits = st.integers(1024, 2**32 - 1)

STRATEGIES: dict[type[Message], st.SearchStrategy[Message]] = {
    Hello: st.builds(Hello, int64, st.text(), st.text(), int64, resources(), frame_limits),
    Welcome: st.builds(Welcome, st.text(), seconds, frame_limits),
    Refused: st.builds(Refused, st.text()),
    RunTasks: st.builds(RunTasks, st.lists(task_specs, max_size=4)),
    TasksStarted: st.lists(st.tuples(task_ids, st.integers(0, 100)), max_size=8).map(
        lambda pairs: TasksStarted([i for i, _ in pairs], [a for _, a in pairs])
    ),
    TasksFinished: st.builds(TasksFinished, st.lists(outcomes, max_size=4)),
    CancelTasks: st.builds(CancelTasks, st.lists(task_ids, max_size=8)),
    SubmitTasks: st.builds(
        SubmitTasks,
        st.lists(
            st.builds(
                Subtask,
                task_ids,
                task_ids,
                st.binary(max_size=64),
                resources(),
                st.text(),
                int64,
                st.integers(0, 10),
            ),
            max_size=4,
        ),
    ),
    CancelSubtasks: st.builds(CancelSubtasks, st.lists(task_ids, max_size=8)),
    SubtasksFinished: st.builds(
        SubtasksFinished,
        st.lists(st.builds(SubtaskResult, task_ids, st.booleans(), st.binary()), max_size=4),
    ),
    ReleaseAllocation: st.builds(ReleaseAllocation, task_ids),
    ReacquireAllocation: st.builds(ReacquireAllocation, task_ids),
    AllocationRegained: st.builds(AllocationRegained, task_ids, st.none() | resources()),
    ShareResults: st.builds(
        ShareResults, st.lists(st.builds(SharedResult, task_ids, st.binary()), max_size=4)
    ),
    ForgetResults: st.builds(ForgetResults, st.lists(task_ids, max_size=8)),
    Drain: st.builds(Drain, st.text()),
    Draining: st.builds(Draining, st.text()),
    Heartbeat: st.builds(Heartbeat, finite),
    Goodbye: st.builds(Goodbye, st.text()),
    QueryStatus: st.just(QueryStatus()),
    StatusReport: st.builds(
        StatusReport, st.text(), st.dictionaries(st.text(), json_like, max_size=4)
    ),
    QuitWorkers: st.builds(QuitWorkers, st.text()),
    QuitAcknowledged: st.builds(QuitAcknowledged, st.lists(st.text(), max_size=4)),
}
messages: st.SearchStrategy[Message] = st.one_of(*STRATEGIES.values())


def test_the_message_strategies_cover_every_message_type() -> None:
    assert set(STRATEGIES) == set(MESSAGE_TYPES)


@given(messages)
def test_every_message_survives_encode_and_decode(message: Message) -> None:
    """decode(encode(m)) == m for every message type."""
    assert decode(encode(message)) == message


def decodes_or_refuses(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decode(data)


@given(st.binary(max_size=256))
def test_random_bytes_decode_or_raise_only_protocol_error(data: bytes) -> None:
    """decode of arbitrary bytes returns a message or raises ProtocolError, nothing else."""
    decodes_or_refuses(data)


@given(st.sampled_from([cls.__name__ for cls in MESSAGE_TYPES]), json_like)
def test_a_known_tag_with_a_random_body_raises_only_protocol_error(tag: str, body: Any) -> None:
    """A well-formed envelope around any JSON-like body decodes or raises ProtocolError."""
    decodes_or_refuses(msgpack.packb([tag, body]))


@settings(max_examples=200)
@given(messages, st.data())
def test_a_corrupted_message_raises_only_protocol_error(
    message: Message, data: st.DataObject
) -> None:
    """Flipping bytes of a valid encoding never raises anything but ProtocolError."""
    encoded = bytearray(encode(message))
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(encoded) - 1))
        encoded[index] = data.draw(st.integers(0, 255))
    decodes_or_refuses(bytes(encoded))


@given(resources())
def test_a_single_kind_is_its_one_kind_resources(value: Resources) -> None:
    """Any part of a combination crosses alone exactly as it does inside the combination."""
    for part in value.parts():
        assert roundtrip(as_resources(part)) == part
