"""The outbox of one connection: messages wait here, and one task sends them in batches.

Both ends of a worker's connection use it: the dispatcher's link posts ``RunTasks``,
``CancelTasks`` and ``Drain``; the worker posts what its tasks report.  The sender task writes
everything that is waiting with one write, folds consecutive batches of tasks into one
message, beats a heartbeat when nothing else went out for an interval, and stops after it sent
``Goodbye`` or when the connection breaks.

A frame never exceeds what the peer accepts (``FramedStream.send_limit``, agreed in the
handshake): a batch too large for one frame is split, and a single task or result too large
for any frame is handed to ``oversized``, which answers with what to send instead (the task's
owner is told, the connection lives on).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import attrs
import trio

from ._encoding import encode
from ._framing import FramedStream
from ._liveness import Pulse
from ._messages import (
    Goodbye,
    Heartbeat,
    Message,
    RunTasks,
    ShareResults,
    SubmitTasks,
    SubtasksFinished,
    TasksFinished,
)

__all__ = ["Outbox", "let_batch_grow"]

#: Given a one-item batch (or any message) that does not fit a frame, its encoded size and the
#: limit: the messages to send instead (maybe none).
Oversized = Callable[[Message, int, int], list[Message]]


def _refuse(message: Message, size: int, limit: int) -> list[Message]:
    raise AssertionError(  # pragma: no cover - the owner of the outbox handles its batches
        f"a {type(message).__name__} of {size} bytes exceeds the frame limit of {limit}"
    )


@attrs.define(eq=False)
class Outbox:
    """Messages waiting to be sent on one connection.

    Args:
        flush: Called before each write for messages kept elsewhere until then (the worker
            coalesces its started/finished reports there).
        busy: While it returns True, a batch may grow for a few scheduler turns before it is
            sent (more tasks are under way and will add to it).
        backlog: How many reports ``flush`` holds, to tell whether the batch still grows.
        oversized: What to send instead of a message too large for any frame.
    """

    flush: Callable[[], list[Message]] | None = None
    busy: Callable[[], bool] | None = None
    backlog: Callable[[], int] | None = None
    oversized: Oversized = _refuse
    _pending: list[Message] = attrs.field(factory=list)
    _wake: trio.Event = attrs.field(factory=trio.Event)
    #: The reason of the ``Goodbye`` this side sent, once sent.
    farewell: str | None = None

    def post(self, message: Message) -> None:
        """Queue ``message``; the sender task sends it soon (never blocks)."""
        self._pending.append(message)
        self._wake.set()

    def poke(self) -> None:
        """Wake the sender: ``flush`` has something."""
        self._wake.set()

    async def serve(self, framed: FramedStream, heartbeat_interval: float) -> None:
        """Send until ``Goodbye`` went out or the connection broke; heartbeats when idle."""
        pulse = Pulse(heartbeat_interval)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pulse.beat, self._beat)
            try:
                await self._send_all(framed, pulse)
            finally:
                nursery.cancel_scope.cancel()

    def _beat(self) -> None:
        self._pending.append(Heartbeat(time.time()))
        self._wake.set()

    async def _send_all(self, framed: FramedStream, pulse: Pulse) -> None:
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            if self.busy is not None and self.busy():
                await let_batch_grow(self._size)
            # Reports first: a Goodbye waiting behind them must not overtake them.
            messages = self.flush() if self.flush is not None else []
            messages.extend(self._pending)
            self._pending = []
            if not messages:
                continue
            frames = self._frames(messages, framed.send_limit)
            try:
                await framed.send_many(frames)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return  # the receiving side sees the connection end and says why
            pulse.sent()
            for message in messages:
                if isinstance(message, Goodbye):
                    self.farewell = message.reason
                    return

    def _size(self) -> int:
        return len(self._pending) + (self.backlog() if self.backlog is not None else 0)

    def _frames(self, messages: list[Message], limit: int) -> list[bytes]:
        frames: list[bytes] = []
        for message in _merge(messages):
            frames.extend(self._fit(message, limit))
        return frames

    def _fit(self, message: Message, limit: int) -> list[bytes]:
        """``message`` encoded in frames of at most ``limit`` bytes, split where it must."""
        data = encode(message)
        if len(data) <= limit:
            return [data]
        halves = _halves(message)
        if halves is None:
            frames: list[bytes] = []
            for instead in self.oversized(message, len(data), limit):
                frames.extend(self._fit(instead, limit))
            return frames
        return self._fit(halves[0], limit) + self._fit(halves[1], limit)


#: The batch messages: each folds with the one before it of its type and splits in halves,
#: by its one field of items.
_BATCHES: dict[type[Message], str] = {
    RunTasks: "tasks",
    TasksFinished: "outcomes",
    SubmitTasks: "tasks",
    SubtasksFinished: "results",
    ShareResults: "results",
}


def _merge(messages: list[Message]) -> list[Message]:
    """Fold consecutive batches of one type (``RunTasks``, ...) into one message each."""
    merged: list[Message] = []
    run: list[Any] = []  # the items of the batch being folded, the last of ``merged``
    for message in messages:
        field = _BATCHES.get(type(message))
        last = merged[-1] if merged else None
        if field is not None and type(last) is type(message):
            if not run:
                run.extend(getattr(last, field))
            run.extend(getattr(message, field))
            continue
        if run:
            merged[-1] = _batch(merged[-1], run)
            run = []
        merged.append(message)
    if run:
        merged[-1] = _batch(merged[-1], run)
    return merged


def _batch(like: Message, items: list[Any]) -> Message:
    """A batch message of the type of ``like`` holding ``items``."""
    kind: Any = type(like)
    batch: Message = kind(tuple(items))
    return batch


def _halves(message: Message) -> tuple[Message, Message] | None:
    """A batch of two or more items as two smaller batches (``None`` for anything else)."""
    field = _BATCHES.get(type(message))
    if field is None:
        return None
    items = getattr(message, field)
    if len(items) < 2:
        return None
    middle = len(items) // 2
    cls: type[Any] = type(message)
    return cls(items[:middle]), cls(items[middle:])


async def let_batch_grow(size: Callable[[], int], most: int = 16) -> None:
    """Yield to the other ready tasks for as long as they add to a batch (``size()`` grows),
    at most ``most`` times, so that one write carries what they produce.

    A write to a loopback or LAN socket costs more than a trivial task, so sending each
    result as it comes would bound throughput; an idle sender yields once and goes on.
    """
    before = size()
    for _ in range(most):
        await trio.lowlevel.checkpoint()
        after = size()
        if after == before:
            return
        before = after
