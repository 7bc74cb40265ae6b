"""What the dispatcher publishes: frozen events with timestamps, to any number of subscribers."""

from __future__ import annotations

import time
from collections.abc import Callable

import attrs

__all__ = [
    "Event",
    "EventBus",
    "TaskFailed",
    "TaskFinished",
    "TaskPlaced",
    "TaskRetried",
    "TaskStarted",
    "TaskSubmitted",
    "WorkerDrained",
    "WorkerJoined",
    "WorkerLost",
]


def _now() -> float:
    return time.time()


@attrs.frozen
class Event:
    """Base of every event; ``at`` is wall-clock time (seconds since the epoch)."""

    at: float = attrs.field(factory=_now, kw_only=True)


@attrs.frozen
class TaskSubmitted(Event):
    """A task entered the queue."""

    task_id: int
    name: str
    request: str
    priority: int


@attrs.frozen
class TaskPlaced(Event):
    """A task was given an allocation on a worker."""

    task_id: int
    worker: str
    allocation: str
    cores: tuple[int, ...]
    gpus: tuple[int, ...]
    attempt: int


@attrs.frozen
class TaskStarted(Event):
    """A worker started running a task."""

    task_id: int
    worker: str


@attrs.frozen
class TaskFinished(Event):
    """A task returned a value; ``duration`` is its run time on the worker in seconds."""

    task_id: int
    worker: str
    duration: float


@attrs.frozen
class TaskFailed(Event):
    """A task ended with an exception (its own, a time limit, or a lost worker)."""

    task_id: int
    worker: str
    error: str
    duration: float


@attrs.frozen
class TaskRetried(Event):
    """A task went back to the queue (its worker was lost, or the user asked for retries)."""

    task_id: int
    worker: str
    attempt: int
    reason: str


@attrs.frozen
class WorkerJoined(Event):
    """A worker connected and advertised its capacity."""

    worker: str
    capacity: str


@attrs.frozen
class WorkerLost(Event):
    """A worker disappeared (connection drop, missed heartbeats, killed process)."""

    worker: str
    reason: str


@attrs.frozen
class WorkerDrained(Event):
    """A worker finished its tasks after being asked to drain, and left."""

    worker: str
    reason: str


Subscriber = Callable[[Event], None]


@attrs.define(eq=False)
class EventBus:
    """Delivers events to subscribers in publication order.

    Subscribers are plain callables and must not block: one that needs to do I/O hands the event
    to a channel of its own.  ``active`` lets publishers skip building events nobody reads.
    """

    _subscribers: list[Subscriber] = attrs.field(factory=list)

    @property
    def active(self) -> bool:
        """Whether anybody listens."""
        return bool(self._subscribers)

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Add a subscriber; returns a function that removes it."""
        self._subscribers.append(subscriber)
        return lambda: self._subscribers.remove(subscriber)

    def publish(self, event: Event) -> None:
        """Hand ``event`` to every subscriber."""
        for subscriber in self._subscribers:
            subscriber(event)
