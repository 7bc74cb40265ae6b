"""A run's events rebuilt from its journal, in the event log's form, for ``grainlike report``."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import attrs

from .._exceptions import ConfigError
from ._journal_read import open_reader

__all__ = ["journal_events"]


def journal_events(path: str | Path, run: int | None = None) -> list[dict[str, Any]]:
    """The events of one run (the latest by default), rebuilt from the journal, as dicts of
    the event log's form (``grainlike._observe.event_record``), in time order.

    What the journal does not hold is left out: tasks answered from the journal (they did not
    run), and a ``TaskStarted`` whose time is unknown (a run that ended without reporting
    its duration, e.g. on a lost worker).

    Raises:
        ConfigError: the file is missing or not a journal, or has no such run.
    """
    connection = open_reader(path)
    try:
        with connection:
            connection.execute("BEGIN")
            if run is None:
                (run,) = connection.execute("SELECT max(run) FROM runs").fetchone()
            if (
                run is None
                or not connection.execute("SELECT 1 FROM runs WHERE run = ?", (run,)).fetchone()
            ):
                raise ConfigError(f"{path}: the journal has no run {run}")
            return _events(connection, run)
    except sqlite3.DatabaseError as error:
        raise ConfigError(f"{path}: not a readable journal ({error})") from None
    finally:
        connection.close()


@attrs.define
class _Events:
    """Event records and the order they were made in (for a stable sort by time)."""

    items: list[tuple[float, int, dict[str, Any]]] = attrs.field(factory=list)

    def add(self, at: float, event: str, **fields: Any) -> None:
        self.items.append((at, len(self.items), {"event": event, "at": at, **fields}))

    def in_order(self) -> list[dict[str, Any]]:
        return [record for _, _, record in sorted(self.items, key=lambda item: item[:2])]


def _events(connection: sqlite3.Connection, run: int) -> list[dict[str, Any]]:
    events = _Events()
    for worker, capacity, joined, left, reason, lost in connection.execute(
        "SELECT worker, capacity, joined, left, reason, lost FROM workers WHERE run = ?", (run,)
    ):
        events.add(joined, "WorkerJoined", worker=worker, capacity=capacity)
        if left is not None:
            kind = "WorkerLost" if lost else "WorkerDrained"
            events.add(left, kind, worker=worker, reason=reason)
    for task, attempt, worker, allocation, cores, gpus, placed, ended, reason in connection.execute(
        "SELECT task, attempt, worker, allocation, cores, gpus, placed, ended, reason "
        "FROM retries WHERE run = ?",
        (run,),
    ):
        _placed(events, task, attempt, worker, allocation, cores, gpus, placed, None)
        events.add(
            ended, "TaskRetried", task_id=task, worker=worker, attempt=attempt + 1, reason=reason
        )
    for row in connection.execute(
        "SELECT task, name, request, priority, submitted, state, attempts, worker, allocation, "
        "cores, gpus, placed, started, ended, duration, usage, error_type, error "
        "FROM tasks WHERE run = ?",
        (run,),
    ):
        _task_events(events, *row)
    return events.in_order()


def _placed(
    events: _Events,
    task: int,
    attempt: int,
    worker: str | None,
    allocation: str | None,
    cores: str | None,
    gpus: str | None,
    placed: float | None,
    started: float | None,
) -> None:
    """A run's placement and start, when it had them."""
    if placed is None or worker is None:
        return
    events.add(
        placed,
        "TaskPlaced",
        task_id=task,
        worker=worker,
        allocation=allocation,
        cores=json.loads(cores or "[]"),
        gpus=json.loads(gpus or "[]"),
        attempt=attempt,
    )
    if started is not None:
        at = max(started, placed)
        events.add(at, "TaskStarted", task_id=task, worker=worker, attempt=attempt)


def _task_events(
    events: _Events,
    task: int,
    name: str,
    request: str,
    priority: int,
    submitted: float,
    state: str,
    attempt: int,
    worker: str | None,
    allocation: str | None,
    cores: str | None,
    gpus: str | None,
    placed: float | None,
    started: float | None,
    ended: float | None,
    duration: float | None,
    usage: str | None,
    error_type: str | None,
    error: str | None,
) -> None:
    """A task's submission, and the placement, start and end of its last run."""
    events.add(
        submitted,
        "TaskSubmitted",
        task_id=task,
        name=name,
        request=request,
        priority=priority,
        parent=None,
    )
    if state == "submitted" or ended is None:
        return  # it did not end (the run was killed, or still runs)
    _placed(events, task, attempt, worker, allocation, cores, gpus, placed, started)
    used = json.loads(usage) if usage is not None else None
    if state == "succeeded":
        events.add(
            ended,
            "TaskFinished",
            task_id=task,
            worker=worker,
            duration=duration or 0.0,
            attempt=attempt,
            usage=used,
        )
    elif state == "failed":
        events.add(
            ended,
            "TaskFailed",
            task_id=task,
            worker=worker,
            error=(error or "").split("\n")[0],
            duration=duration,
            error_type=error_type or "",
            attempt=attempt,
            usage=used,
        )
    else:
        reason = error or ""
        events.add(
            ended, "TaskCancelled", task_id=task, worker=worker, reason=reason, attempt=attempt
        )
