"""The messages between workers, clients and the dispatcher, and their msgpack encoding.

Commands are imperative (``RunTasks``, ``Drain``), events past tense (``TasksFinished``).
The classes know nothing of their encoding: ``_encoding.py`` turns them into bytes and back.
Payloads are opaque bytes here; ``_payload.py`` fills them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Final, TypeAlias

import attrs

from ..resource import Resources, as_resources

__all__ = [
    "MESSAGE_TYPES",
    "AllocationRegained",
    "CancelSubtasks",
    "CancelTasks",
    "Drain",
    "Draining",
    "ForgetResults",
    "Goodbye",
    "Heartbeat",
    "Hello",
    "Message",
    "QueryStatus",
    "QuitAcknowledged",
    "QuitWorkers",
    "ReacquireAllocation",
    "Refused",
    "ReleaseAllocation",
    "RunTasks",
    "ShareResults",
    "SharedResult",
    "StatusReport",
    "SubmitTasks",
    "Subtask",
    "SubtaskResult",
    "SubtasksFinished",
    "TaskOutcome",
    "TaskSpec",
    "TasksFinished",
    "TasksStarted",
    "Usage",
    "Welcome",
]


def _positive(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{type(instance).__name__}.{attribute.name}={value!r}: must be positive")


def _optional_positive(
    instance: object, attribute: attrs.Attribute[Any], value: float | None
) -> None:
    if value is not None and not value > 0:
        raise ValueError(f"{type(instance).__name__}.{attribute.name}={value!r}: must be positive")


def _not_negative(instance: object, attribute: attrs.Attribute[Any], value: int) -> None:
    if value < 0:
        raise ValueError(f"{type(instance).__name__}.{attribute.name}={value!r}: must be >= 0")


def _finite(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not math.isfinite(value):
        raise ValueError(f"{type(instance).__name__}.{attribute.name}={value!r}: must be finite")


#: The longest duration a worker may report for one task: a year.  Anything longer (or not
#: finite) is a peer that lies, and would poison learned limits.
MAX_REPORTED_SECONDS: Final = 366 * 86400.0


def _reported_seconds(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not 0 <= value <= MAX_REPORTED_SECONDS:
        raise ValueError(
            f"{type(instance).__name__}.{attribute.name}={value!r}: a reported duration must "
            f"be 0 to {MAX_REPORTED_SECONDS:g} seconds"
        )


def _frame_limit(instance: object, attribute: attrs.Attribute[Any], value: int) -> None:
    if not 1024 <= value < 2**32:
        raise ValueError(
            f"{type(instance).__name__}.{attribute.name}={value!r}: a frame limit must be "
            f"1024 to {2**32 - 1} bytes"
        )


def _task_specs(value: Iterable[TaskSpec]) -> tuple[TaskSpec, ...]:
    return tuple(value)


def _outcomes(value: Iterable[TaskOutcome]) -> tuple[TaskOutcome, ...]:
    return tuple(value)


def _subtasks(value: Iterable[Subtask]) -> tuple[Subtask, ...]:
    return tuple(value)


def _results(value: Iterable[SubtaskResult]) -> tuple[SubtaskResult, ...]:
    return tuple(value)


def _ints(value: Iterable[int]) -> tuple[int, ...]:
    return tuple(value)


def _strs(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


# -- joining -----------------------------------------------------------------------------------


@attrs.frozen
class Hello:
    """Worker to dispatcher, first message after authentication: who it is and what it owns.

    Attributes:
        protocol: The protocol version the worker speaks.
        name: The worker's requested name (its ``--name``, or a default).
        host: The worker's host name.
        pid: The worker's process ID.
        capacity: What the worker owns, as a fresh capacity.
        max_frame: The largest frame the worker accepts; the dispatcher sends no larger one.
    """

    protocol: int
    name: str
    host: str
    pid: int
    capacity: Resources = attrs.field(converter=as_resources)
    max_frame: int = attrs.field(validator=_frame_limit)


@attrs.frozen
class Welcome:
    """Dispatcher to worker, the reply to ``Hello``: the worker is in.

    Attributes:
        worker_id: The worker's ID, unique among live workers, assigned by the dispatcher.
        heartbeat_interval: Seconds between the heartbeats each side sends.
        max_frame: The largest frame the dispatcher accepts; the worker sends no larger one.
    """

    worker_id: str
    heartbeat_interval: float = attrs.field(validator=_positive)
    max_frame: int = attrs.field(validator=_frame_limit)


@attrs.frozen
class Refused:
    """Dispatcher to worker, the other reply to ``Hello``: the worker may not join.

    Attributes:
        reason: Why, for the worker's user.
    """

    reason: str


# -- running tasks -------------------------------------------------------------------------------


@attrs.frozen
class TaskSpec:
    """One task of a ``RunTasks`` batch.

    Attributes:
        task_id: The dispatcher's ID of the task.
        payload: The pickled function and arguments (see ``dumps_payload``).
        allocation: What the task was given on this worker.
        hard_limit: Seconds after which the task is cancelled, or ``None``.
        attempt: Which attempt this is, counting lost-worker retries.
        after: Start only once task ``after`` (which holds the same allocation) has ended on
            this worker, or at once if it already has; ``None`` to start at once.
    """

    task_id: int
    payload: bytes
    allocation: Resources = attrs.field(converter=as_resources)
    hard_limit: float | None = attrs.field(validator=_optional_positive)
    attempt: int = attrs.field(validator=_not_negative)
    after: int | None = None


@attrs.frozen
class RunTasks:
    """Dispatcher to worker: start these tasks (a batch, in order)."""

    tasks: tuple[TaskSpec, ...] = attrs.field(converter=_task_specs)


def _same_length(instance: TasksStarted, _: attrs.Attribute[Any], value: tuple[int, ...]) -> None:
    if len(value) != len(instance.task_ids):
        raise ValueError(
            f"TasksStarted.attempts={value!r}: must be one per task ID ({len(instance.task_ids)})"
        )


@attrs.frozen
class TasksStarted:
    """Worker to dispatcher: these attempts of these tasks started (``attempts[i]`` is the
    attempt of ``task_ids[i]``, so that a start reported for an attempt that moved on is
    ignored)."""

    task_ids: tuple[int, ...] = attrs.field(converter=_ints)
    attempts: tuple[int, ...] = attrs.field(converter=_ints, validator=_same_length)


def _non_negative_float(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"{type(instance).__name__}.{attribute.name}={value!r}: must be >= 0")


def _optional_non_negative_int(
    instance: object, attribute: attrs.Attribute[Any], value: int | None
) -> None:
    if value is not None and value < 0:
        raise ValueError(f"{type(instance).__name__}.{attribute.name}={value!r}: must be >= 0")


@attrs.frozen
class Usage:
    """What a task that ran in a process used, as measured by its worker.

    Attributes:
        wall: Seconds from the start of its process work to its end.
        cpu: CPU seconds (user and system) of its process tree.
        peak_rss: The largest resident memory of its process tree seen, in bytes.
        peak_disk: The largest size of its scratch directory seen, in bytes (``None`` when it
            had none).
    """

    wall: float = attrs.field(validator=_non_negative_float)
    cpu: float = attrs.field(validator=_non_negative_float)
    peak_rss: int = attrs.field(validator=_not_negative)
    peak_disk: int | None = attrs.field(default=None, validator=_optional_non_negative_int)


@attrs.frozen
class TaskOutcome:
    """How one task ended.

    Attributes:
        task_id: The dispatcher's ID of the task.
        attempt: The attempt this outcome belongs to (a stale attempt's outcome is ignored).
        ok: Whether ``payload`` is the pickled result (``True``) or a packed exception.
        payload: ``pack_outcome``'s bytes: the pickled result or the packed exception.
        duration: Seconds the task ran on the worker.
        finished: When it ended (the worker's ``time.time()``), for the event log.
        usage: What it used, when it ran in a process.
    """

    task_id: int
    attempt: int
    ok: bool
    payload: bytes
    duration: float = attrs.field(validator=_reported_seconds)
    finished: float = attrs.field(validator=_finite)
    usage: Usage | None = None


@attrs.frozen
class TasksFinished:
    """Worker to dispatcher: these tasks ended (a batch)."""

    outcomes: tuple[TaskOutcome, ...] = attrs.field(converter=_outcomes)


@attrs.frozen
class Subtask:
    """One task a running task submitted from a remote worker.

    Attributes:
        ref: The worker's own number for it (results come back under it).
        parent: The dispatcher's ID of the task that submitted it.
        payload: The packed call (``CallPacker.pack``); the dispatcher forwards it as it is.
        request: What it asks for.
        name: Its name in events and status.
        priority: Higher first.
        retries: Re-runs after its own exception.
    """

    ref: int
    parent: int
    payload: bytes
    request: Resources = attrs.field(converter=as_resources)
    name: str
    priority: int
    retries: int = attrs.field(validator=_not_negative)


@attrs.frozen
class SubmitTasks:
    """Worker to dispatcher: its running tasks submit these subtasks."""

    tasks: tuple[Subtask, ...] = attrs.field(converter=_subtasks)


@attrs.frozen
class CancelSubtasks:
    """Worker to dispatcher: cancel these subtasks (by their ``ref``)."""

    refs: tuple[int, ...] = attrs.field(converter=_ints)


@attrs.frozen
class SubtaskResult:
    """How a subtask ended: ``ok`` and ``payload`` as in ``TaskOutcome``."""

    ref: int
    ok: bool
    payload: bytes


@attrs.frozen
class SubtasksFinished:
    """Dispatcher to worker: these subtasks of its tasks ended."""

    results: tuple[SubtaskResult, ...] = attrs.field(converter=_results)


@attrs.frozen
class ReleaseAllocation:
    """Worker to dispatcher: task ``task_id`` gives its allocation back (``gl.released()``)."""

    task_id: int


@attrs.frozen
class ReacquireAllocation:
    """Worker to dispatcher: task ``task_id`` takes its request again on this worker."""

    task_id: int


@attrs.frozen
class AllocationRegained:
    """Dispatcher to worker: task ``task_id`` holds ``allocation`` again (``None``: it ended)."""

    task_id: int
    allocation: Resources | None


@attrs.frozen
class SharedResult:
    """One task's value, pickled, that calls sent after it refer to by ``task_id``."""

    task_id: int
    payload: bytes


def _shared(value: Iterable[SharedResult]) -> tuple[SharedResult, ...]:
    return tuple(value)


@attrs.frozen
class ShareResults:
    """Dispatcher to worker: keep these values; the calls of dependent tasks refer to them.

    A task's value that several of its dependents on one worker need crosses once; it is sent
    before the first ``RunTasks`` that refers to it, on the same connection.
    """

    results: tuple[SharedResult, ...] = attrs.field(converter=_shared)


@attrs.frozen
class ForgetResults:
    """Dispatcher to worker: no task that needs these shared values is left; drop them."""

    task_ids: tuple[int, ...] = attrs.field(converter=_ints)


@attrs.frozen
class CancelTasks:
    """Dispatcher to worker: cancel these tasks; each still reports a ``TaskOutcome``."""

    task_ids: tuple[int, ...] = attrs.field(converter=_ints)


# -- either side -------------------------------------------------------------------------------


@attrs.frozen
class Drain:
    """Dispatcher to worker: take no new tasks, finish the running ones, then say ``Goodbye``."""

    reason: str


@attrs.frozen
class Draining:
    """Worker to dispatcher: it is leaving soon (its walltime ends): place nothing more on it."""

    reason: str


@attrs.frozen
class Heartbeat:
    """Either side: still alive; ``sent`` is the sender's ``time.time()``."""

    sent: float = attrs.field(validator=_finite)


@attrs.frozen
class Goodbye:
    """Either side: closing the connection on purpose, and why."""

    reason: str


# -- clients (grainlike status / quit) ------------------------------------------------------------


@attrs.frozen
class QueryStatus:
    """Client to dispatcher: report the state of workers and tasks."""


@attrs.frozen
class StatusReport:
    """Dispatcher to client: the state as text for people and as JSON-like ``data`` for tools."""

    text: str
    data: dict[str, Any]


@attrs.frozen
class QuitWorkers:
    """Client to dispatcher: drain the workers whose ID matches ``pattern`` (a glob)."""

    pattern: str


@attrs.frozen
class QuitAcknowledged:
    """Dispatcher to client: these worker IDs matched ``QuitWorkers`` and are draining."""

    matched: tuple[str, ...] = attrs.field(converter=_strs)


Message: TypeAlias = (
    Hello
    | Welcome
    | Refused
    | RunTasks
    | TasksStarted
    | TasksFinished
    | CancelTasks
    | SubmitTasks
    | CancelSubtasks
    | SubtasksFinished
    | ReleaseAllocation
    | ReacquireAllocation
    | AllocationRegained
    | ShareResults
    | ForgetResults
    | Drain
    | Draining
    | Heartbeat
    | Goodbye
    | QueryStatus
    | StatusReport
    | QuitWorkers
    | QuitAcknowledged
)

#: Every message class, in the order of the protocol description.
MESSAGE_TYPES: Final[tuple[type[Message], ...]] = (
    Hello,
    Welcome,
    Refused,
    RunTasks,
    TasksStarted,
    TasksFinished,
    CancelTasks,
    SubmitTasks,
    CancelSubtasks,
    SubtasksFinished,
    ReleaseAllocation,
    ReacquireAllocation,
    AllocationRegained,
    ShareResults,
    ForgetResults,
    Drain,
    Draining,
    Heartbeat,
    Goodbye,
    QueryStatus,
    StatusReport,
    QuitWorkers,
    QuitAcknowledged,
)
