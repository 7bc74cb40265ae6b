"""Reading a journal: its summary (``grainlike journal``) and a run's events (``grainlike report``).

Both open the file read-only, so they are safe while a run writes to it: WAL lets readers see
the last committed state without waiting for the writer or holding it up.
"""

from __future__ import annotations

import json
import sqlite3
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

import attrs

from .._exceptions import ConfigError
from ._database import open_database
from ._journal_schema import JOURNAL

__all__ = [
    "FailedTask",
    "FunctionTotals",
    "JournalSummary",
    "RunSummary",
    "journal_events",
    "summarize_journal",
]

#: The states of a key (and of a task in one run), in the order they are shown.
STATES = ("succeeded", "failed", "cancelled", "unfinished")


@attrs.frozen
class RunSummary:
    """One run that used the journal.

    Attributes:
        run: Its number.
        started: When it began (seconds since the epoch).
        ended: When it ended; ``None`` while it runs, or when it was killed.
        host: Where it ran.
        pid: Its process id.
        rerun: Whether it ran everything again (``--rerun``).
        recalled: How many submissions it answered from the journal (once it ended).
        states: How its recorded tasks ended, per state.
    """

    run: int
    started: float
    ended: float | None
    host: str
    pid: int
    rerun: bool
    recalled: int | None
    states: dict[str, int]


@attrs.frozen
class FailedTask:
    """A key whose latest outcome is a failure (it runs again on resume)."""

    name: str
    function: str
    run: int
    task: int
    attempts: int
    error_type: str
    error: str


@attrs.frozen
class FunctionTotals:
    """What one function did over the whole journal.

    Attributes:
        function: ``module.qualname`` (a script is ``__main__``).
        calls: Distinct keys (calls) recorded.
        runs: Attempts that ran (retries included).
        succeeded: Attempts that returned a value.
        failed: Attempts that raised.
        mean_duration: Mean run time of the attempts that ran, in seconds.
        max_duration: The longest.
    """

    function: str
    calls: int
    runs: int
    succeeded: int
    failed: int
    mean_duration: float | None
    max_duration: float | None


@attrs.frozen
class JournalSummary:
    """``grainlike journal``'s view of a journal: each key's state, the runs, the failures."""

    path: str
    version: int
    states: dict[str, int]
    runs: tuple[RunSummary, ...]
    failed: tuple[FailedTask, ...]
    functions: tuple[FunctionTotals, ...]

    def to_json(self) -> dict[str, Any]:
        """The summary as JSON-ready data."""
        return attrs.asdict(self)


def _open(path: str | Path) -> sqlite3.Connection:
    file = Path(path)
    if not file.exists():
        raise ConfigError(f"{file}: no such journal")
    return open_database(file, JOURNAL, readonly=True)


def summarize_journal(path: str | Path) -> JournalSummary:
    """Summarise the journal at ``path`` (read-only; safe while a run writes it).

    Raises:
        ConfigError: the file is missing, not a journal, or of another schema version.
    """
    connection = _open(path)
    try:
        with connection:  # one read transaction: one consistent view
            return _summarize(connection, str(path))
    except sqlite3.DatabaseError as error:
        raise ConfigError(f"{path}: not a readable journal ({error})") from None
    finally:
        connection.close()


def _summarize(connection: sqlite3.Connection, path: str) -> JournalSummary:
    connection.execute("BEGIN")
    names = {
        function: f"{module}.{qualname}"
        for function, module, qualname in connection.execute(
            "SELECT function, module, qualname FROM functions"
        )
    }
    succeeded: set[bytes] = set()
    latest: dict[bytes, tuple[str, int, int, int, str, str, int, str]] = {}
    functions_of: dict[tuple[int, int], int] = {}
    keys_of: dict[int, set[bytes]] = {}
    counts_of: dict[int, Counter[str]] = {}
    durations: dict[int, list[float]] = {}
    run_states: dict[int, Counter[str]] = {}
    for (
        run,
        task,
        key,
        function,
        name,
        state,
        attempts,
        duration,
        error_type,
        error,
    ) in connection.execute(
        "SELECT run, task, key, function, name, state, attempts, duration, error_type, "
        "error FROM tasks ORDER BY id"
    ):
        shown = "unfinished" if state == "submitted" else state
        run_states.setdefault(run, Counter())[shown] += 1
        latest[key] = (shown, run, task, attempts, error_type or "", error or "", function, name)
        if state == "succeeded":
            succeeded.add(key)
        functions_of[(run, task)] = function
        keys_of.setdefault(function, set()).add(key)
        counts = counts_of.setdefault(function, Counter())
        counts[shown] += 1
        if attempts > 0 and state != "submitted":
            counts["runs"] += 1
            if duration is not None:
                durations.setdefault(function, []).append(duration)
    for run, task in connection.execute("SELECT run, task FROM retries"):
        counts_of.setdefault(functions_of.get((run, task), -1), Counter())["runs"] += 1
    states = Counter("succeeded" if key in succeeded else row[0] for key, row in latest.items())
    failed = sorted(
        (
            FailedTask(name, names.get(function, "?"), run, task, attempts, error_type, error)
            for key, (state, run, task, attempts, error_type, error, function, name) in (
                latest.items()
            )
            if state == "failed" and key not in succeeded
        ),
        key=lambda f: (f.run, f.task),
    )
    functions = tuple(
        FunctionTotals(
            names.get(function, "?"),
            len(keys_of.get(function, ())),
            counts["runs"],
            counts["succeeded"],
            counts["failed"],
            statistics.fmean(durations[function]) if function in durations else None,
            max(durations[function]) if function in durations else None,
        )
        for function, counts in sorted(counts_of.items())
    )
    runs = tuple(
        RunSummary(
            run,
            started,
            ended,
            host,
            pid,
            bool(rerun),
            recalled,
            {state: run_states.get(run, Counter())[state] for state in STATES},
        )
        for run, started, ended, host, pid, rerun, recalled in connection.execute(
            "SELECT run, started, ended, host, pid, rerun, recalled FROM runs ORDER BY run"
        )
    )
    (version,) = connection.execute("PRAGMA user_version").fetchone()
    return JournalSummary(
        path, version, {state: states[state] for state in STATES}, runs, tuple(failed), functions
    )


def journal_events(path: str | Path, run: int | None = None) -> list[dict[str, Any]]:
    """The events of one run (the latest by default), rebuilt from the journal, as dicts of
    the event log's form (``grainlike._observe.event_record``), in time order.

    What the journal does not hold is left out: tasks answered from the journal (they did not
    run), and a ``TaskStarted`` whose time is unknown (a run that ended without reporting
    its duration, e.g. on a lost worker).

    Raises:
        ConfigError: the file is missing or not a journal, or has no such run.
    """
    connection = _open(path)
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
