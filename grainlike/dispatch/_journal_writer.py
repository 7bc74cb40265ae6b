"""The journal's writing side: batches of what the dispatcher reported, turned into rows in the
writer's thread (formatting, pickling and SQLite all happen there, off the event loop)."""

from __future__ import annotations

import itertools
import json
import logging
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import attrs
import outcome

from ..resource import GPU, Cores, Resources
from ..wire import Usage, loads_payload, pack_exception
from ._database import in_transaction
from ._journal_key import FunctionKey, TaskKey, pickled
from ._journal_schema import row_id
from ._records import Task

__all__ = ["Batch", "End", "JournalWriter", "Submission"]

log = logging.getLogger("grainlike.journal")

#: SQLite accepts at least this many ``?`` in one statement.
_CHUNK = 500


@attrs.define(eq=False, slots=True)
class Submission:
    """A recorded task; ``ended`` once the dispatcher reported its end."""

    task: int
    key: TaskKey
    name: str
    priority: int
    submitted: float
    ended: bool = False


class End(NamedTuple):
    """How a run of a task ended: its attempt, where it was placed (worker, allocation, pool
    allocation, when), when it ended, and ``detail``: the value, the exception, or why it was
    retried.  (A named tuple: one is made per task on the dispatcher's hot path.)"""

    attempt: int
    state: str
    worker: str | None
    placed: tuple[str, Resources, Resources | None, float] | None
    ended: float
    duration: float | None
    usage: Usage | None
    detail: object


@attrs.define(eq=False, slots=True)
class Batch:
    """What the writer takes in one go; times are on trio's clock until ``offset`` (wall
    clock minus trio clock when it was taken) is added."""

    offset: float = 0.0
    functions: list[FunctionKey] = attrs.field(factory=list)
    submitted: list[Submission] = attrs.field(factory=list)
    ended: list[tuple[Submission, End]] = attrs.field(factory=list)
    retries: list[tuple[Submission, End]] = attrs.field(factory=list)
    workers: list[tuple[Any, ...]] = attrs.field(factory=list)
    durable: list[tuple[Task, outcome.Outcome[Any], str | None, float | None, Usage | None]] = (
        attrs.field(factory=list)
    )
    reads: list[tuple[Task, int, TaskKey]] = attrs.field(factory=list)

    def __len__(self) -> int:
        return len(self.submitted) + len(self.ended) + len(self.retries) + len(self.reads)

    def __bool__(self) -> bool:
        return bool(self.submitted or self.ended or self.retries or self.reads or self.workers)


def _ids(resources: Resources, kind: type[Cores] | type[GPU]) -> str:
    """The IDs of ``kind`` in ``resources`` as a JSON list."""
    part = resources.get(kind)
    if part is None:
        return "[]"
    ids = part.c if isinstance(part, Cores) else part.ids
    return "[" + ",".join(map(str, ids)) + "]"


_SUBMISSION = (
    "id, run, task, key, function, request, occurrence, name, priority, submitted, state, attempts"
)
_END = (
    "attempts, worker, allocation, cores, gpus, placed, started, ended, duration, usage, "
    "error_type, error, exception, result, state"
)
_INSERT_SUBMITTED = f"INSERT INTO tasks ({_SUBMISSION}) VALUES "
#: A task's whole row: a new one, or the end of one written as submitted before.
_INSERT_ENDED = (
    f"INSERT INTO tasks ({_SUBMISSION.removesuffix(', state, attempts')}, {_END}) VALUES "
)
_OR_UPDATE_END = " ON CONFLICT (id) DO UPDATE SET " + ", ".join(
    f"{column} = excluded.{column}" for column in _END.split(", ")
)
_INSERT_RETRY = "INSERT OR REPLACE INTO retries VALUES "
#: Rows per statement.  One statement of many rows rather than ``executemany``: the sqlite3
#: module gives up the GIL once per statement, and taking it back from a busy event loop
#: costs up to a switch interval (5 ms) each time.  Not many more, though: the rows of a
#: statement are made in one go, holding the GIL, which delays the event loop that long.
_ROWS = 50


def _insert(
    connection: sqlite3.Connection, insert: str, rows: Iterator[tuple[Any, ...]], tail: str = ""
) -> None:
    """Insert ``rows`` with statements of up to ``_ROWS`` rows each (``tail`` after each)."""
    full = ""  # the statement for a whole chunk, made once
    while chunk := list(itertools.islice(rows, _ROWS)):
        if len(chunk) == _ROWS and full:
            statement = full
        else:
            marks = "(" + ", ".join("?" * len(chunk[0])) + ")"
            statement = insert + ", ".join([marks] * len(chunk)) + tail
            if len(chunk) == _ROWS:
                full = statement
        connection.execute(statement, [value for row in chunk for value in row])


@attrs.define(eq=False)
class JournalWriter:
    """Writes batches into the journal's connection, in the writer's thread."""

    path: Path
    run: int
    connection: sqlite3.Connection
    function_ids: dict[FunctionKey, int]
    warn_once: Callable[..., None]
    _described: dict[int, tuple[Resources, tuple[str, str, str]]] = attrs.field(factory=dict)

    def write(self, batch: Batch) -> None:
        """Commit one batch (one transaction)."""
        in_transaction(self.connection, lambda: self._rows(batch))

    def _rows(self, batch: Batch) -> None:
        connection, run, offset = self.connection, self.run, batch.offset
        for function in batch.functions:
            self._function_id(function)
        submitted = ((*self._submission(s, offset), "submitted", 0) for s in batch.submitted)
        _insert(connection, _INSERT_SUBMITTED, submitted)
        ended = (
            (*self._submission(submission, offset), *self._end(submission.task, end, offset))
            for submission, end in batch.ended
        )
        _insert(connection, _INSERT_ENDED, ended, _OR_UPDATE_END)
        retries = (self._retry(s.task, end, offset) for s, end in batch.retries)
        _insert(connection, _INSERT_RETRY, retries)
        for joined, worker, capacity, at, reason, lost in batch.workers:
            if joined:
                connection.execute(
                    "INSERT INTO workers (run, worker, capacity, joined) VALUES (?, ?, ?, ?)",
                    (run, worker, capacity, at + offset),
                )
            else:
                connection.execute(
                    "UPDATE workers SET left = ?, reason = ?, lost = ? "
                    "WHERE run = ? AND worker = ? AND left IS NULL",
                    (at + offset, reason, int(lost), run, worker),
                )

    def _function_id(self, function: FunctionKey) -> int:
        known = self.function_ids.get(function)
        if known is not None:
            return known
        self.connection.execute(
            "INSERT INTO functions (module, qualname, code) VALUES (?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            (function.module, function.qualname, function.code),
        )
        (found,) = self.connection.execute(
            "SELECT function FROM functions WHERE module = ? AND qualname = ? AND code = ?",
            (function.module, function.qualname, function.code),
        ).fetchone()
        self.function_ids[function] = found
        return int(found)

    def _submission(self, submission: Submission, offset: float = 0.0) -> tuple[Any, ...]:
        key, task = submission.key, submission.task
        return (
            row_id(self.run, task),
            self.run,
            task,
            key.digest,
            self.function_ids[key.function],
            key.request,
            key.occurrence,
            submission.name,
            submission.priority,
            submission.submitted + offset,
        )

    def _end(self, task: int, end: End, offset: float) -> tuple[Any, ...]:
        allocation = cores = gpus = placed = started = None
        if end.placed is not None:
            allocation, cores, gpus = self._describe(end.placed[1], end.placed[2])
            placed = end.placed[3] + offset
        ended = end.ended + offset
        if end.duration is not None:
            started = ended - end.duration
        error_type = error = exception = result = None
        detail = end.detail
        if end.state == "succeeded":
            result = self._pickle_result(task, detail)
        else:
            assert isinstance(detail, BaseException)
            error_type, error = type(detail).__name__, str(detail)
            exception = pack_exception(detail)
        usage = json.dumps(attrs.asdict(end.usage)) if end.usage is not None else None
        return (
            end.attempt,
            end.worker,
            allocation,
            cores,
            gpus,
            placed,
            started,
            ended,
            end.duration,
            usage,
            error_type,
            error,
            exception,
            result,
            end.state,
        )

    def _retry(self, task: int, end: End, offset: float) -> tuple[Any, ...]:
        allocation = cores = gpus = placed = None
        if end.placed is not None:
            allocation, cores, gpus = self._describe(end.placed[1], end.placed[2])
            placed = end.placed[3] + offset
        worker = end.worker or ""
        return (
            self.run,
            task,
            end.attempt,
            worker,
            allocation,
            cores,
            gpus,
            placed,
            end.ended + offset,
            str(end.detail),
        )

    def _describe(self, allocation: Resources, pool: Resources | None) -> tuple[str, str, str]:
        """An allocation as the journal stores it: its shorthand, its cores and GPUs.

        Tasks that follow each other in one allocation share the object: each is described
        once.
        """
        cached = self._described.get(id(allocation))
        if cached is not None and cached[0] is allocation and pool is None:
            return cached[1]
        whole = allocation & pool if pool is not None else allocation
        described = (str(whole), _ids(allocation, Cores), _ids(allocation, GPU))
        if pool is None:
            if len(self._described) >= 4096:
                self._described.clear()
            self._described[id(allocation)] = (allocation, described)
        return described

    def _pickle_result(self, task: int, value: object) -> bytes | None:
        try:
            return pickled(value)
        except Exception as error:
            self.warn_once(
                f"result {type(value).__qualname__}",
                "journal %s: the result of task %d (%s) cannot be pickled, so it is not "
                "recorded and the task runs again on resume: %s",
                self.path,
                task,
                type(value).__qualname__,
                error,
            )
            return None

    def read(
        self, reads: list[tuple[Task, int, TaskKey]]
    ) -> list[tuple[Task, outcome.Outcome[Any] | None]]:
        """The recorded values of recalled tasks (``None`` for one that cannot be read back)."""
        values: dict[int, bytes] = {}
        ids = [row for _, row, _ in reads]
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            marks = ", ".join("?" * len(chunk))
            values.update(
                self.connection.execute(
                    f"SELECT id, result FROM tasks WHERE id IN ({marks})",
                    chunk,
                )
            )
        out: list[tuple[Task, outcome.Outcome[Any] | None]] = []
        for task, row, _ in reads:
            try:
                out.append((task, outcome.Value(loads_payload(values[row]))))
            except Exception as error:
                self.warn_once(
                    f"recall {task.name}",
                    "journal %s: a recorded result of %s cannot be read back (%s: %s): it "
                    "runs again",
                    self.path,
                    task.name,
                    type(error).__name__,
                    error,
                )
                out.append((task, None))
        return out
