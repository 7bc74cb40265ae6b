"""What ran where, as values: worker stays, task runs, task outcomes, and the whole run.

``_build.build_model`` makes them from a run's events; the report, its tables and the trace
read them.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable, Sequence
from typing import Any

import attrs

__all__ = [
    "CANCELLED",
    "FAILED",
    "FINISHED",
    "RETRIED",
    "UNFINISHED",
    "Run",
    "RunModel",
    "TaskSummary",
    "WorkerSpan",
    "stack_rows",
]

FINISHED, FAILED, RETRIED, CANCELLED, UNFINISHED = (
    "finished",
    "failed",
    "retried",
    "cancelled",
    "unfinished",
)


@attrs.frozen
class WorkerSpan:
    """One worker's stay in the run, from ``WorkerJoined`` to ``WorkerLost``/``WorkerDrained``.

    Attributes:
        id: The worker's id (a worker that joins again under the same id is another span).
        capacity: The capacity it advertised, in the shorthand grammar.
        joined: When it joined (seconds since the epoch).
        left: When it left; ``None`` when it was still connected at the end of the log.
        how: ``"lost"``, ``"drained"``, or ``""`` while connected.
        reason: Why it left.
        cores: Its core IDs.
        gpus: Its GPU device indices.
        totals: Per consumable kind (``cores``, ``mem`` in GB, ``gpu``, counters), its total.
    """

    id: str
    capacity: str
    joined: float
    left: float | None
    how: str
    reason: str
    cores: tuple[int, ...]
    gpus: tuple[int, ...]
    totals: dict[str, float] = attrs.field(hash=False)


@attrs.frozen
class Run:
    """One run of a task on a worker.

    Attributes:
        task_id: The task.
        attempt: Which attempt of the task this run was (from 1).
        worker: The worker's id.
        span: The index of the worker's ``WorkerSpan`` in ``RunModel.workers``.
        allocation: What the run was given, in the shorthand grammar.
        cores: The core IDs it was given.
        gpus: The GPU device indices it was given.
        placed: When the dispatcher placed it.
        start: When it began (see the module docstring).
        end: When it ended.
        outcome: ``"finished"``, ``"failed"``, ``"retried"`` (it ended and the task went back
            to the queue), ``"cancelled"``, or ``"unfinished"`` (the log ends first).
        note: Why a run that did not finish ended: the error, or the reason of the retry or
            cancellation.
        amounts: Per consumable kind, how much of it the run held (``allocation`` parsed;
            shared between runs of the same allocation, so never changed).
    """

    task_id: int
    attempt: int
    worker: str
    span: int
    allocation: str
    cores: tuple[int, ...]
    gpus: tuple[int, ...]
    placed: float
    start: float
    end: float
    outcome: str
    note: str = ""
    amounts: dict[str, float] = attrs.field(factory=dict, hash=False)

    @property
    def duration(self) -> float:
        """Seconds from start to end."""
        return self.end - self.start


@attrs.frozen
class TaskSummary:
    """One task: what it was and how it ended.

    Attributes:
        id: The task's id.
        name: Its function's name (``TaskSubmitted.name``).
        request: What it asked for, in the shorthand grammar.
        group: The learned groups of its request (``WTime(group="sim")`` gives ``"sim"``),
            ``""`` for none.
        parent: The task that submitted it, if a task did.
        submitted: When it was submitted.
        outcome: ``"finished"``, ``"failed"``, ``"cancelled"``, or ``""`` when the log ends
            before the task did.
        error_type: The exception type of a failed task.
        error: The error message of a failed task, or why a cancelled one was cancelled.
        ended: When its terminal event came.
        worker: Where it ran last.
        runs: How many runs it had.
        retries: How many of them ended in ``TaskRetried``.
        usage: What its last run used (``grainlike.wire.Usage`` as a dict), when measured.
    """

    id: int
    name: str
    request: str
    group: str
    parent: int | None
    submitted: float
    outcome: str = ""
    error_type: str = ""
    error: str = ""
    ended: float | None = None
    worker: str | None = None
    runs: int = 0
    retries: int = 0
    usage: dict[str, Any] | None = attrs.field(default=None, hash=False)


@attrs.frozen
class RunModel:
    """A whole run: its workers, task runs and tasks, as ``grainlike report`` draws them.

    Attributes:
        source: The file the events came from.
        start: The time of the first event (seconds since the epoch).
        end: The time of the last event.
        workers: Every worker's stay, in joining order.
        runs: Every run of a task, in the order the runs began.
        tasks: Every task, by id.
        notes: What the reader left out, and allocations or capacities it could not parse.
    """

    source: str
    start: float
    end: float
    workers: tuple[WorkerSpan, ...]
    runs: tuple[Run, ...]
    tasks: tuple[TaskSummary, ...]
    notes: tuple[str, ...] = ()

    @property
    def wall(self) -> float:
        """Seconds from the first event to the last."""
        return self.end - self.start


def stack_rows(
    runs: Sequence[Run], lanes: Sequence[Sequence[Hashable]], limit: int | None = None
) -> list[tuple[int, ...]]:
    """For each run, a row within each of its ``lanes``, so that no two runs of a row overlap.

    Runs share a lane when a task gave its cores back for a while (``gl.released()``) and
    another ran on them, or when they hold neither cores nor GPUs (a worker's "no cores"
    lane, the head's branches).  ``runs`` come in order of start; in each lane a run takes
    the row that became free first if it is free by the run's start, else a new row; once a
    lane has ``limit`` rows, a run shares the row that becomes free first.
    """
    free: dict[Hashable, list[tuple[float, int]]] = {}  # per lane: (free from, row), a heap
    rows: list[tuple[int, ...]] = []
    for run, own_lanes in zip(runs, lanes, strict=True):
        own = []
        for lane in own_lanes:
            heap = free.setdefault(lane, [])
            if heap and (heap[0][0] <= run.start or (limit is not None and len(heap) >= limit)):
                until, row = heapq.heappop(heap)
                heapq.heappush(heap, (max(until, run.end), row))
            else:
                row = len(heap)
                heapq.heappush(heap, (run.end, row))
            own.append(row)
        rows.append(tuple(own))
    return rows
