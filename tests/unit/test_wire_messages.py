"""Messages: their envelope, their validation, and decode's refusal of anything malformed."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from grainlike import ProtocolError
from grainlike.resource import Cores, Memory, Resources, WTime
from grainlike.wire import (
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
    Welcome,
    decode,
    encode,
)

SPEC = TaskSpec(7, b"\x00payload\xff", Cores([2, 3]) & Memory(1), 60.0, 0)

EXAMPLES: list[Message] = [
    Hello(1, "w1", "node01", 4242, Cores(4) & Memory(8) & WTime(T=600, softT=300), 2**26),
    Welcome("w1", 5.0, 2**26),
    Refused("protocol 2 is not spoken here"),
    RunTasks((SPEC, TaskSpec(8, b"", Resources(), None, 2))),
    TasksStarted((7, 8), (1, 3)),
    TasksFinished((TaskOutcome(7, 0, True, b"\x80result", 1.5, 1700000000.5),)),
    CancelTasks((7,)),
    SubmitTasks((Subtask(1, 7, b"\x80call", Cores(1) & Memory(1), "leaf", 0, 1),)),
    CancelSubtasks((1, 2)),
    SubtasksFinished((SubtaskResult(1, True, b"\x80value"),)),
    ReleaseAllocation(7),
    ReacquireAllocation(7),
    AllocationRegained(7, Cores([1]) & Memory(1)),
    AllocationRegained(8, None),
    ShareResults((SharedResult(4, b"pickled value"),)),
    ForgetResults((4, 5)),
    Drain("quit w*"),
    Draining("its walltime ends in 59s"),
    Heartbeat(1700000000.25),
    Goodbye("drained"),
    QueryStatus(),
    StatusReport("2 workers", {"workers": [{"id": "w1", "free": {"cores": [3, 4]}}], "n": 2}),
    QuitWorkers("w*"),
    QuitAcknowledged(("w1", "w2")),
]


def test_a_granted_allocation_prints_the_ids_it_holds_after_the_wire() -> None:
    # Cores 0 and 1 of a capacity print as IDs, not as the count "2", on both sides.
    capacity = Cores(4) & Memory(8)
    allocation = capacity.alloc(Cores(2))
    spec = TaskSpec(1, b"", allocation, None, 1)
    batch = decode(encode(RunTasks((spec,))))
    assert isinstance(batch, RunTasks)
    assert str(batch.tasks[0].allocation) == str(allocation) == "cores:[0-1]"
    submitted = decode(encode(SubmitTasks((Subtask(1, 7, b"", Cores(2), "leaf", 0, 1),))))
    assert isinstance(submitted, SubmitTasks)
    assert str(submitted.tasks[0].request) == "cores:2"  # a request stays a count


def test_the_examples_cover_every_message_type() -> None:
    assert {type(message) for message in EXAMPLES} == set(MESSAGE_TYPES)


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: type(m).__name__)
def test_every_message_round_trips(message: Message) -> None:
    assert decode(encode(message)) == message


def test_a_task_crosses_as_a_positional_row_with_its_allocation_as_bytes() -> None:
    tag, body = msgpack.unpackb(encode(RunTasks((SPEC,))), raw=False)
    assert tag == "RunTasks"
    task_id, payload, allocation, hard_limit, attempt, after = body[0]
    assert (task_id, payload, hard_limit, attempt, after) == (7, b"\x00payload\xff", 60.0, 0, None)
    assert msgpack.unpackb(allocation) == [["cores", {"ids": [2, 3]}], ["mem", {"kib": 1024**2}]]


def test_a_heartbeat_crosses_as_a_map_of_its_fields() -> None:
    assert msgpack.unpackb(encode(Heartbeat(1.5)), raw=False) == ["Heartbeat", {"sent": 1.5}]


def test_a_countdown_in_hello_arrives_as_the_time_left() -> None:
    capacity = Cores(1) & WTime(T=3600, countdown=True)
    hello = decode(encode(Hello(1, "w", "h", 1, capacity, 2**26)))
    assert isinstance(hello, Hello)
    assert 3590 < hello.capacity[WTime].remaining() <= 3600


def test_a_decoded_allocation_answers_the_shortcuts() -> None:
    batch = decode(encode(RunTasks((SPEC,))))
    assert isinstance(batch, RunTasks)
    assert batch.tasks[0].allocation.c == [2, 3]
    assert batch.tasks[0].allocation.M == 1.0


def test_lists_become_tuples_and_a_single_kind_becomes_resources() -> None:
    assert RunTasks([SPEC]).tasks == (SPEC,)
    assert TaskSpec(1, b"", Cores(1), None, 0).allocation == Resources(Cores(1))


@pytest.mark.parametrize(
    "build",
    [
        lambda: Welcome("w", 0.0, 2**26),
        lambda: Welcome("w", float("nan"), 2**26),
        lambda: Welcome("w", 1.0, 100),
        lambda: TaskSpec(1, b"", Cores(1), -1.0, 0),
        lambda: TaskSpec(1, b"", Cores(1), None, -1),
        lambda: TasksStarted((1, 2), (1,)),
        lambda: TaskOutcome(1, 1, True, b"", float("inf"), 0.0),
        lambda: TaskOutcome(1, 1, True, b"", -1.0, 0.0),
        lambda: TaskOutcome(1, 1, True, b"", 1.0, float("nan")),
        lambda: Heartbeat(float("inf")),
    ],
)
def test_invalid_values_are_refused_at_construction(build: Any) -> None:
    with pytest.raises(ValueError, match="must be"):
        build()


def test_encode_refuses_what_is_not_a_message() -> None:
    with pytest.raises(TypeError, match="not a grainlike wire message"):
        encode(SPEC)  # type: ignore[arg-type]


def pack(value: object) -> bytes:
    data: bytes = msgpack.packb(value, use_bin_type=True)
    return data


NO_ALLOCATION = msgpack.packb([])
GOOD_SPEC = [1, b"", NO_ALLOCATION, None, 0, None]


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"\xc1", "not valid msgpack"),
        (b"", "not valid msgpack"),
        (pack(["Heartbeat", {"sent": 1.0}]) + b"\x00", "not valid msgpack"),
        (pack({"Heartbeat": 1}), r"\[tag, body\]"),
        (pack(["Heartbeat"]), r"\[tag, body\]"),
        (pack([1, {}]), r"\[tag, body\]"),
        (pack(["Explode", {}]), "unknown message tag 'Explode'"),
        (pack(["TaskSpec", GOOD_SPEC]), "unknown message tag 'TaskSpec'"),
        (pack(["RunTasks", {"tasks": [GOOD_SPEC]}]), "expected a list"),
        (pack(["RunTasks", [GOOD_SPEC[:5]]]), "expected a list of 6 fields"),
        (pack(["RunTasks", [[1, b"", [], None, 0, None]]]), "an allocation crosses as bytes"),
        (pack(["RunTasks", [[1, b"", b"\xc1", None, 0, None]]]), "is not msgpack"),
        (pack(["RunTasks", [[1, b"", NO_ALLOCATION, -1.0, 0, None]]]), "must be positive"),
        (pack(["Heartbeat", {"sent": "now"}]), "malformed Heartbeat"),
        (pack(["Heartbeat", {}]), "malformed Heartbeat"),
        (pack(["Heartbeat", {"sent": 1.0, "extra": 1}]), "malformed Heartbeat"),
        (pack(["Heartbeat", [1.0]]), "malformed Heartbeat"),
        (
            pack(["Welcome", {"worker_id": "w", "heartbeat_interval": -1.0, "max_frame": 2**26}]),
            "must be positive",
        ),
        (
            pack(["Welcome", {"worker_id": "w", "heartbeat_interval": 1.0, "max_frame": 10}]),
            "a frame limit must be",
        ),
        (pack(["RunTasks", [[1, "text", NO_ALLOCATION, None, 0, None]]]), "expected bytes"),
        (pack(["RunTasks", [[1.0, b"", NO_ALLOCATION, None, 0, None]]]), "expected an integer"),
        (pack(["RunTasks", [[1, b"", msgpack.packb([["x", {}]]), None, 0, None]]]), "'x'"),
        (pack(["TasksFinished", {"outcomes": "abc"}]), "expected a list"),
        (pack(["StatusReport", {"text": "", "data": {1: 2}}]), "not valid msgpack"),
        (pack(["StatusReport", {"text": "", "data": [1]}]), "string keys"),
        (pack(["TasksStarted", [[1, True], [1, 1]]]), "expected an integer"),
        (pack(["TasksStarted", [[1, 2], [1]]]), "one per task ID"),
        (pack(["TasksFinished", [[1, 1, 1, b"", 0.5, 0.0, None]]]), "expected a boolean"),
        (pack(["TasksFinished", [[1, 1, True, b"", 0.5, 0.0, [1.0, 1.0, -5, None]]]]), ">= 0"),
    ],
)
def test_decode_turns_anything_malformed_into_a_protocol_error(data: bytes, match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        decode(data)
