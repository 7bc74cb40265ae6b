"""Reading a journal: its summary, for ``grainlike journal`` (a run's events are in
``_journal_events.py``).

Readers only read (``open_reader``), so they are safe while a run writes the journal: WAL
lets them see the last committed state without waiting for the writer or holding it up.
"""

from __future__ import annotations

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
    "STATES",
    "FailedTask",
    "FunctionTotals",
    "JournalSummary",
    "RunSummary",
    "open_reader",
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


def open_reader(path: str | Path) -> sqlite3.Connection:
    """A connection that only reads the journal at ``path``.

    Raises:
        ConfigError: the file is missing, not a journal, or of another schema version.
    """
    file = Path(path)
    if not file.exists():
        raise ConfigError(f"{file}: no such journal")
    return open_database(file, JOURNAL, readonly=True)


def summarize_journal(path: str | Path) -> JournalSummary:
    """Summarise the journal at ``path`` (read-only; safe while a run writes it).

    Raises:
        ConfigError: the file is missing, not a journal, or of another schema version.
    """
    connection = open_reader(path)
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
