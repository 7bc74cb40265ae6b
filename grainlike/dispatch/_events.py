"""What the dispatcher publishes: frozen events with timestamps, to any number of subscribers.

The life of a task, as events (``tests/unit/test_dispatch_events.py`` checks it as a state
machine): ``TaskSubmitted``, then any number of *runs*, then exactly one terminal event.
A run is ``TaskPlaced`` (it got an allocation on a worker), ``TaskStarted`` (the worker began
it; a task cancelled before it began has none), and the end of the run: either a terminal event
or ``TaskRetried`` (the run ended and the task went back to the queue).
The terminal events are ``TaskFinished`` (a value), ``TaskFailed`` (an exception: its own, a
time or memory limit, ``WorkerLostError``, ``UnsatisfiableError``) and ``TaskCancelled``; a
task that never ran has a terminal event without a run before it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import attrs

from ..wire import Usage

__all__ = [
    "TERMINAL_EVENTS",
    "Event",
    "EventBus",
    "TaskCancelled",
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
    """A task entered the queue.

    ``name`` is the function's qualified name (or the name given with ``options(name=...)``),
    ``request`` the shorthand of what it asks for, ``parent`` the task that submitted it (when a
    task submitted it).
    """

    task_id: int
    name: str
    request: str
    priority: int
    parent: int | None = None


@attrs.frozen
class TaskPlaced(Event):
    """A run began: the task was given ``allocation`` on ``worker``, for attempt ``attempt``.

    ``cores`` and ``gpus`` are the IDs it got (empty when it got none).
    """

    task_id: int
    worker: str
    allocation: str
    cores: tuple[int, ...]
    gpus: tuple[int, ...]
    attempt: int


@attrs.frozen
class TaskStarted(Event):
    """The worker began running attempt ``attempt`` of the task."""

    task_id: int
    worker: str
    attempt: int = 0


@attrs.frozen
class TaskFinished(Event):
    """The task returned a value: terminal.

    ``duration`` is its run time on the worker in seconds; ``usage`` what it used, for a task
    that ran in a process (a sync function in a worker process, or ``run_process``).
    """

    task_id: int
    worker: str
    duration: float
    attempt: int = 0
    usage: Usage | None = None


@attrs.frozen
class TaskFailed(Event):
    """The task ended with an exception of type ``error_type`` and message ``error``: terminal.

    ``worker`` and ``duration`` are those of its last run, ``None`` when it never ran (an
    unsatisfiable request); ``usage`` as for ``TaskFinished``.
    """

    task_id: int
    worker: str | None
    error: str
    duration: float | None
    error_type: str = ""
    attempt: int = 0
    usage: Usage | None = None


@attrs.frozen
class TaskCancelled(Event):
    """The task's caller cancelled it: terminal.  ``worker`` is where it ran, if it had begun
    a run."""

    task_id: int
    worker: str | None
    reason: str
    attempt: int = 0


@attrs.frozen
class TaskRetried(Event):
    """A run ended and the task went back to the queue, to run as attempt ``attempt``: its
    worker was lost, it failed and may be retried (``retries=``), or it had not begun."""

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


#: The events that end a task; every submitted task has exactly one of them.
TERMINAL_EVENTS: tuple[type[Event], ...] = (TaskFinished, TaskFailed, TaskCancelled)

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
