"""The outbox's batches: folding neighbours of one type keeps every item, in order, and makes
no two neighbours of one batch type; splitting for a frame limit keeps them too."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from grainlike.wire import (
    CancelTasks,
    Heartbeat,
    Message,
    SharedResult,
    ShareResults,
    SubtaskResult,
    SubtasksFinished,
    decode,
)
from grainlike.wire._outbox import _BATCHES, Outbox, _merge

ids = st.integers(1, 10_000)
messages = st.one_of(
    st.builds(lambda i: SubtasksFinished((SubtaskResult(i, True, b"v" * (i % 300)),)), ids),
    st.builds(lambda i: ShareResults((SharedResult(i, b"s" * (i % 500)),)), ids),
    st.builds(lambda i: CancelTasks((i,)), ids),
    st.builds(Heartbeat, st.floats(0, 1e9)),
)


def flattened(sequence: list[Message]) -> list[object]:
    items: list[object] = []
    for message in sequence:
        field = _BATCHES.get(type(message))
        items.extend(getattr(message, field) if field else [message])
    return items


@given(st.lists(messages, max_size=60))
def test_folding_keeps_every_item_in_order(sequence: list[Message]) -> None:
    merged = _merge(sequence)
    assert flattened(merged) == flattened(sequence)
    for first, second in itertools.pairwise(merged):
        assert not (type(first) is type(second) and type(first) in _BATCHES)


@given(st.lists(messages, max_size=60), st.integers(600, 4000))
def test_frames_within_a_limit_keep_every_item_in_order(
    sequence: list[Message], limit: int
) -> None:
    frames = Outbox()._frames(sequence, limit)
    assert all(len(frame) <= limit for frame in frames)
    assert flattened([decode(frame) for frame in frames]) == flattened(sequence)
