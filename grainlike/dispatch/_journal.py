"""The journal of a durable run: what each task was, how each attempt went, and its result.

The dispatcher tells the journal about a task at five points of its life (``recall`` at
submission, ``placed``, ``retried``, ``record`` at its end, and workers joining and leaving);
the journal appends rows in memory and a ``BatchWriter`` commits them in a thread.

Two promises hold:

- *A result is durable before its caller sees it.*  ``record`` keeps the task's outcome until
  the batch holding it has committed; only then does the dispatcher resolve the task (wake its
  callers, publish its terminal event).  A cancellation is recorded but not waited for: a
  cancelled task runs again on resume anyway.
- *A recorded success is not computed again.*  ``recall`` finds the key of a new submission
  among the successes recorded when the journal was opened; the value is read and unpickled in
  the writer's thread, and the task resolves with it without running.  A value that cannot be
  unpickled any more (its class is gone) makes the task run after all.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import outcome
import trio

from .._exceptions import GrainlikeError, TaskCancelledError
from .._permissions import check_private_directories, check_private_file
from ..resource import GPU, Cores, Resources
from ..wire import Usage, dumps_payload, loads_payload, pack_exception
from ._database import BatchWriter, in_transaction, open_database
from ._journal_key import FunctionKey, KeyMaker, TaskKey
from ._journal_schema import JOURNAL
from ._records import Task

__all__ = ["Journal"]

log = logging.getLogger("grainlike.journal")

#: What the dispatcher does once a task's outcome is durable (its ``_resolve``).
Deliver = Callable[[Task, outcome.Outcome[Any], str | None, float | None, Usage | None], None]
#: What the dispatcher does with a recalled task: resolve it with the value, or (``None``:
#: the value could not be read back) run it.
Recalled = Callable[[Task, outcome.Outcome[Any] | None], None]

#: SQLite accepts at least this many ``?`` in one statement.
_CHUNK = 500


@attrs.define(eq=False, slots=True)
class _Batch:
    """What the writer takes in one go; times are on trio's clock until ``offset`` (wall
    clock minus trio clock when it was taken) is added."""

    offset: float
    functions: list[FunctionKey]
    tasks: list[tuple[Any, ...]]
    attempts: list[tuple[Any, ...]]
    workers: list[tuple[Any, ...]]
    durable: list[tuple[Task, outcome.Outcome[Any], str | None, float | None, Usage | None]]
    reads: list[tuple[Task, int, TaskKey]]


def _ids(resources: Resources | None, kind: type[Cores] | type[GPU]) -> str:
    part = resources.get(kind) if resources is not None else None
    if part is None:
        return "[]"
    return json.dumps(part.c if isinstance(part, Cores) else part.ids)


@attrs.define(eq=False)
class Journal:
    """An open journal; ``Journal.open`` makes one, ``serve`` writes, ``close`` ends the run.

    Attributes:
        path: The journal file.
        run: This run's number in it.
        rerun: Whether this run ignores what earlier runs recorded (everything runs again).
        recalled: How many submissions were answered from the journal.
        batches: How many batches (transactions) were committed.
    """

    path: Path
    run: int
    rerun: bool
    _connection: sqlite3.Connection
    _recorded: dict[bytes, int]
    _known: dict[tuple[str, str], set[bytes]]
    _function_ids: dict[FunctionKey, int]
    recalled: int = 0
    batches: int = 0
    _keys: KeyMaker = attrs.field(factory=KeyMaker)
    _deliver: Deliver | None = None
    _recall: Recalled | None = None
    _live: dict[int, bytes] = attrs.field(factory=dict)
    _placed: dict[int, tuple[str, Resources, Resources | None, float]] = attrs.field(factory=dict)
    _seen_functions: set[FunctionKey] = attrs.field(factory=set)
    _warned: set[str] = attrs.field(factory=set)
    _batch: _Batch = attrs.field(init=False)
    _writer: BatchWriter[_Batch, list[tuple[Task, outcome.Outcome[Any] | None]]] = attrs.field(
        init=False
    )

    def __attrs_post_init__(self) -> None:
        self._batch = self._empty()
        self._writer = BatchWriter(self._take, self._write, self._done)

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, rerun: bool = False) -> Journal:
        """Open (or create, mode 0600) the journal at ``path`` and start a run in it.

        Blocking: call it in a thread.

        Raises:
            ConfigError: the file is not a journal, has a newer schema, or others may write it
                or its directory (a resumed run unpickles what it holds); the message names it.
        """
        file = Path(path)
        if file.exists():
            check_private_file(file, what="journal", secret=False)
        else:
            check_private_directories(file.absolute().parent, what=f"journal {str(file)!r}")
        connection = open_database(file, JOURNAL)
        argv = json.dumps(sys.argv)
        started = time.time()

        def begin() -> int:
            cursor = connection.execute(
                "INSERT INTO runs (started, host, pid, argv, rerun) VALUES (?, ?, ?, ?, ?)",
                (started, socket.gethostname(), os.getpid(), argv, int(rerun)),
            )
            assert cursor.lastrowid is not None
            return cursor.lastrowid

        try:
            run = in_transaction(connection, begin)
            recorded: dict[bytes, int] = {}
            if not rerun:
                # In rowid order: a key's newest success is the one that stays.
                recorded = dict(
                    connection.execute(
                        "SELECT key, rowid FROM attempts "
                        "WHERE outcome = 'succeeded' AND result IS NOT NULL"
                    )
                )
            function_ids: dict[FunctionKey, int] = {}
            known: dict[tuple[str, str], set[bytes]] = {}
            for function, module, qualname, code in connection.execute(
                "SELECT function, module, qualname, code FROM functions"
            ):
                function_ids[FunctionKey(module, qualname, code)] = function
                known.setdefault((module, qualname), set()).add(code)
        except BaseException:
            connection.close()
            raise
        return cls(file, run, rerun, connection, recorded, known, function_ids)

    def attach(self, deliver: Deliver, recall: Recalled) -> None:
        """Say what to call when an outcome is durable, and when a recalled value is read."""
        self._deliver, self._recall = deliver, recall

    # -- what the dispatcher tells the journal ------------------------------------------------

    def recall(self, task: Task) -> bool:
        """A task was submitted: ``True`` when its key has a recorded success, whose value
        then comes to the ``recall`` callback; else the task is recorded and should run.

        A task whose key cannot be made (an argument that cannot be pickled) runs unrecorded,
        with one warning per function.
        """
        try:
            key = self._keys.key(task.work, task.request)
        except Exception as error:
            self._warn_once(
                task.name,
                "journal %s: %s is not recorded (it runs every time): its key cannot be made "
                "(%s: %s)",
                self.path,
                task.name,
                type(error).__name__,
                error,
            )
            return False
        if key.function not in self._seen_functions:
            self._seen_functions.add(key.function)
            self._note_changes(key.function)
            self._batch.functions.append(key.function)
        rowid = self._recorded.get(key.digest)
        if rowid is not None:
            self._batch.reads.append((task, rowid, key))
        else:
            self._register(task, key)
        self._writer.poke()
        return rowid is not None

    def _register(self, task: Task, key: TaskKey) -> None:
        """Record the submission of a task that is to run."""
        self._live[task.id] = key.digest
        self._batch.tasks.append(
            (
                task.id,
                key.digest,
                key.function,
                key.args,
                key.request,
                key.occurrence,
                task.name,
                task.priority,
                task.submitted,
            )
        )

    def placed(
        self, task: Task, worker: str, allocation: Resources, pool_allocation: Resources | None
    ) -> None:
        """A run of ``task`` was placed on ``worker`` with ``allocation``."""
        if task.id in self._live:
            self._placed[task.id] = (worker, allocation, pool_allocation, trio.current_time())

    def retried(self, task: Task, worker: str, reason: str) -> None:
        """A run of ``task`` ended without a result for its caller: it goes back to the queue."""
        key = self._live.get(task.id)
        if key is not None:
            self._attempt(task, key, "retried", worker, None, None, reason)

    def record(
        self,
        task: Task,
        result: outcome.Outcome[Any],
        worker: str | None,
        duration: float | None,
        usage: Usage | None,
    ) -> bool:
        """``task`` ended with ``result``: ``True`` when the journal delivers it (through the
        ``deliver`` callback, once it is durable), ``False`` when the caller delivers it now
        (a cancellation, or a task the journal does not record)."""
        key = self._live.pop(task.id, None)
        if key is None:
            return False
        if isinstance(result, outcome.Value):
            self._attempt(task, key, "succeeded", worker, duration, usage, result.value)
        else:
            assert isinstance(result, outcome.Error)
            cancelled = isinstance(result.error, TaskCancelledError)
            state = "cancelled" if cancelled else "failed"
            self._attempt(task, key, state, worker, duration, usage, result.error)
            if cancelled:
                return False
        self._batch.durable.append((task, result, worker, duration, usage))
        return True

    def _attempt(
        self,
        task: Task,
        key: bytes,
        state: str,
        worker: str | None,
        duration: float | None,
        usage: Usage | None,
        detail: object,
    ) -> None:
        placed = self._placed.pop(task.id, None)
        self._batch.attempts.append(
            (
                task.id,
                task.attempt,
                key,
                state,
                worker,
                placed,
                trio.current_time(),
                duration,
                usage,
                detail,
            )
        )
        self._writer.poke()

    def worker_joined(self, worker: str, capacity: Resources) -> None:
        """A worker joined with ``capacity``."""
        self._batch.workers.append((True, worker, capacity, trio.current_time(), None, None))
        self._writer.poke()

    def worker_left(self, worker: str, reason: str, lost: bool) -> None:
        """A worker left (``lost``: unannounced)."""
        self._batch.workers.append((False, worker, None, trio.current_time(), reason, lost))
        self._writer.poke()

    def _note_changes(self, function: FunctionKey) -> None:
        codes = self._known.get((function.module, function.qualname))
        if codes and function.code not in codes and not self.rerun:
            log.warning(
                "journal %s: %s.%s changed since it was recorded: its calls run again",
                self.path,
                function.module,
                function.qualname,
            )

    def _warn_once(self, topic: str, message: str, *args: object) -> None:
        if topic not in self._warned:
            self._warned.add(topic)
            log.warning(message, *args)

    # -- writing ------------------------------------------------------------------------------

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Commit what is recorded, in batches, until cancelled."""
        await self._writer.serve(task_status=task_status)

    async def flush(self) -> None:
        """Commit everything recorded so far and deliver what waited for it."""
        await self._writer.flush()

    def close(self) -> None:
        """Commit what is left (delivering nothing more), note the run's end, close the file.

        Raises:
            GrainlikeError: the journal cannot be written.
        """
        try:
            self._writer.write_now()
            in_transaction(
                self._connection,
                lambda: self._connection.execute(
                    "UPDATE runs SET ended = ?, recalled = ? WHERE run = ?",
                    (time.time(), self.recalled, self.run),
                ),
            )
        except sqlite3.Error as error:
            raise GrainlikeError(f"journal {self.path}: cannot write it ({error})") from None
        finally:
            self._connection.close()

    @staticmethod
    def _empty() -> _Batch:
        return _Batch(0.0, [], [], [], [], [], [])

    def _take(self) -> _Batch | None:
        batch = self._batch
        if not (batch.tasks or batch.attempts or batch.reads or batch.workers):
            return None
        self._batch = self._empty()
        batch.offset = time.time() - trio.current_time()
        return batch

    def _done(
        self, batch: _Batch, recalled: list[tuple[Task, outcome.Outcome[Any] | None]]
    ) -> None:
        deliver, recall = self._deliver, self._recall
        assert deliver is not None and recall is not None, "Journal.attach was not called"
        self.batches += 1
        for entry in batch.durable:
            deliver(*entry)
        for (task, _, key), (_, value) in zip(batch.reads, recalled, strict=True):
            if value is None:
                self._register(task, key)  # it runs after all
            else:
                self.recalled += 1
            recall(task, value)

    def _write(self, batch: _Batch) -> list[tuple[Task, outcome.Outcome[Any] | None]]:
        """Commit one batch, then read the values of its recalled tasks (in the thread)."""
        try:
            in_transaction(self._connection, lambda: self._write_rows(batch))
            return self._read(batch.reads) if batch.reads else []
        except sqlite3.Error as error:
            raise GrainlikeError(f"journal {self.path}: cannot write it ({error})") from None

    def _write_rows(self, batch: _Batch) -> None:
        connection, run, offset = self._connection, self.run, batch.offset
        for function in batch.functions:  # the first time this run meets each
            if function not in self._function_ids:
                connection.execute(
                    "INSERT INTO functions (module, qualname, code) VALUES (?, ?, ?) "
                    "ON CONFLICT DO NOTHING",
                    (function.module, function.qualname, function.code),
                )
                (self._function_ids[function],) = connection.execute(
                    "SELECT function FROM functions WHERE module = ? AND qualname = ? AND code = ?",
                    (function.module, function.qualname, function.code),
                ).fetchone()
        ids = self._function_ids
        connection.executemany(
            "INSERT INTO tasks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    run,
                    task,
                    key,
                    ids[function],
                    args,
                    request,
                    occurrence,
                    name,
                    priority,
                    submitted + offset,
                )
                for task, key, function, args, request, occurrence, name, priority, submitted in (
                    batch.tasks
                )
            ],
        )
        if batch.attempts:
            connection.executemany(
                f"INSERT INTO attempts VALUES ({', '.join('?' * 18)})",
                [self._attempt_row(row, offset) for row in batch.attempts],
            )
        for joined, worker, capacity, at, reason, lost in batch.workers:
            if joined:
                connection.execute(
                    "INSERT INTO workers (run, worker, capacity, joined) VALUES (?, ?, ?, ?)",
                    (run, worker, str(capacity), at + offset),
                )
            else:
                connection.execute(
                    "UPDATE workers SET left = ?, reason = ?, lost = ? "
                    "WHERE run = ? AND worker = ? AND left IS NULL",
                    (at + offset, reason, int(lost), run, worker),
                )

    def _attempt_row(self, row: tuple[Any, ...], offset: float) -> tuple[Any, ...]:
        task, attempt, key, state, worker, placed, ended, duration, usage, detail = row
        allocation = cores = gpus = placed_at = started = None
        if placed is not None:
            worker_part, pool_part = placed[1], placed[2]
            cores, gpus = _ids(worker_part, Cores), _ids(worker_part, GPU)
            allocation = str(worker_part & pool_part if pool_part is not None else worker_part)
            placed_at = placed[3] + offset
        ended += offset
        if duration is not None:
            started = ended - duration
        error_type = error = exception = result = None
        if state == "succeeded":
            result = self._pickle_result(task, detail)
        elif state == "retried":
            error = detail
        else:
            error_type, error = type(detail).__name__, str(detail)
            exception = pack_exception(detail)
        usage_text = json.dumps(attrs.asdict(usage)) if usage is not None else None
        return (
            self.run,
            task,
            attempt,
            key,
            state,
            worker,
            allocation,
            cores,
            gpus,
            placed_at,
            started,
            ended,
            duration,
            usage_text,
            error_type,
            error,
            exception,
            result,
        )

    def _pickle_result(self, task: int, value: object) -> bytes | None:
        try:
            return dumps_payload(value)
        except Exception as error:
            self._warn_once(
                f"result {type(value).__qualname__}",
                "journal %s: the result of task %d (%s) cannot be pickled, so it is not "
                "recorded and the task runs again on resume: %s",
                self.path,
                task,
                type(value).__qualname__,
                error,
            )
            return None

    def _read(
        self, reads: list[tuple[Task, int, TaskKey]]
    ) -> list[tuple[Task, outcome.Outcome[Any] | None]]:
        values: dict[int, bytes] = {}
        rowids = [rowid for _, rowid, _ in reads]
        for start in range(0, len(rowids), _CHUNK):
            chunk = rowids[start : start + _CHUNK]
            marks = ", ".join("?" * len(chunk))
            values.update(
                self._connection.execute(
                    f"SELECT rowid, result FROM attempts WHERE rowid IN ({marks})", chunk
                )
            )
        out: list[tuple[Task, outcome.Outcome[Any] | None]] = []
        for task, rowid, _ in reads:
            try:
                out.append((task, outcome.Value(loads_payload(values[rowid]))))
            except Exception as error:
                self._warn_once(
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
