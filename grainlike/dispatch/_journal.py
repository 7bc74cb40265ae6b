"""The journal of a durable run: what each task was, how each attempt went, and its result.

The dispatcher tells the journal about a task at four points of its life (``recall`` at
submission, ``placed``, ``retried``, ``record`` at its end), and about workers joining and
leaving; the journal keeps rows in memory and a ``BatchWriter`` commits them in a thread.
A task is one row, written when it ends; only a task still running a second after it was
submitted is written twice (submitted, then ended), so that a killed run shows what it left
unfinished without every short task costing two writes.

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
import math
import os
import socket
import sqlite3
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import outcome
import trio

from .._exceptions import ConfigError, GrainlikeError, TaskCancelledError
from .._permissions import check_private_directories, check_private_file
from ..resource import Resources
from ..wire import Call, Usage
from ._database import BatchWriter, in_transaction, open_database
from ._journal_key import FunctionKey, KeyMaker, TaskKey
from ._journal_schema import JOURNAL
from ._journal_writer import Batch, End, JournalWriter, Submission
from ._records import Task

__all__ = ["HOLD", "Journal"]

log = logging.getLogger("grainlike.journal")

#: What the dispatcher does once a task's outcome is durable (its ``_resolve``).
Deliver = Callable[[Task, outcome.Outcome[Any], str | None, float | None, Usage | None], None]
#: What the dispatcher does with a recalled task: resolve it with the value, or (``None``:
#: the value could not be read back) run it.
Recalled = Callable[[Task, outcome.Outcome[Any] | None], None]
#: What reading recalled values gives back to the event loop.
_Read = list[tuple[Task, outcome.Outcome[Any] | None]]

#: Seconds a submission waits to be written with its task's end, before it is written alone.
HOLD = 1.0


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
    #: Recorded tasks that have not ended, by id; ``_unwritten`` those not written yet, in
    #: the order they were submitted (and some that ended since: they are skipped).
    _live: dict[int, Submission] = attrs.field(factory=dict)
    _unwritten: deque[Submission] = attrs.field(factory=deque)
    _placed: dict[int, tuple[str, Resources, Resources | None, float]] = attrs.field(factory=dict)
    _warned: set[str] = attrs.field(factory=set)
    _batch: Batch = attrs.field(factory=Batch)
    _rows: JournalWriter = attrs.field(init=False)
    _writer: BatchWriter[Batch, _Read] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._rows = JournalWriter(
            self.path, self.run, self._connection, self._function_ids, self._warn_once
        )
        self._writer = BatchWriter(self._take, self._write, self._done, len, self._due, self._idle)

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, rerun: bool = False) -> Journal:
        """Open (or create, mode 0600) the journal at ``path`` and start a run in it.

        Blocking: call it in a thread.

        Raises:
            ConfigError: the file is not a journal, is damaged, has a newer schema, or others
                may write it or its directory (a resumed run unpickles what it holds); the
                message names it.
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
                # In id order: a key's newest success is the one that stays.
                recorded = dict(
                    connection.execute(
                        "SELECT key, id FROM tasks WHERE state = 'succeeded' AND result NOT NULL"
                    )
                )
            function_ids: dict[FunctionKey, int] = {}
            known: dict[tuple[str, str], set[bytes]] = {}
            for function, module, qualname, code in connection.execute(
                "SELECT function, module, qualname, code FROM functions"
            ):
                function_ids[FunctionKey(module, qualname, code)] = function
                known.setdefault((module, qualname), set()).add(code)
        except sqlite3.DatabaseError as error:  # a damaged page, found only once it is read
            connection.close()
            raise ConfigError(f"{file}: not a readable journal ({error})") from None
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
        with one warning per function.  So does a subtask a remote worker submitted (it
        arrives packed): its parent's result is what a resumed run recalls.
        """
        work = task.work
        if not isinstance(work, Call):
            return False
        try:
            key = self._keys.key(work, task.request)
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
        if self._keys.new_functions:
            for function in self._keys.new_functions:
                self._note_changes(function)
            self._batch.functions.extend(self._keys.new_functions)
            self._keys.new_functions.clear()
        row = self._recorded.get(key.digest)
        if row is None:
            self._register(task, key)
            return False
        self._batch.reads.append((task, row, key))
        self._writer.poke()
        return True

    def _register(self, task: Task, key: TaskKey) -> None:
        """Record a task that is to run (written with its end, or alone after ``HOLD``)."""
        submission = Submission(task.id, key, task.name, task.priority, task.submitted)
        self._live[task.id] = submission
        self._unwritten.append(submission)

    def placed(
        self,
        task: Task,
        worker: str,
        allocation: Resources,
        pool_allocation: Resources | None,
        now: float,
    ) -> None:
        """A run of ``task`` was placed on ``worker`` with ``allocation`` at ``now``."""
        if task.id in self._live:
            self._placed[task.id] = (worker, allocation, pool_allocation, now)

    def retried(self, task: Task, worker: str, reason: str) -> None:
        """A run of ``task`` ended without a result for its caller: it goes back to the queue."""
        submission = self._live.get(task.id)
        if submission is not None:
            end = End(
                task.attempt,
                "retried",
                worker,
                self._placed.pop(task.id, None),
                trio.current_time(),
                None,
                None,
                reason,
            )
            self._batch.retries.append((submission, end))
            self._writer.poke()

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
        submission = self._live.pop(task.id, None)
        if submission is None:
            return False
        submission.ended = True
        if isinstance(result, outcome.Value):
            state, detail = "succeeded", result.value
        else:
            assert isinstance(result, outcome.Error)
            detail = result.error
            state = "cancelled" if isinstance(detail, TaskCancelledError) else "failed"
        placed = self._placed.pop(task.id, None)
        end = End(task.attempt, state, worker, placed, trio.current_time(), duration, usage, detail)
        self._batch.ended.append((submission, end))
        self._writer.poke()
        if state == "cancelled":
            return False
        self._batch.durable.append((task, result, worker, duration, usage))
        return True

    def worker_joined(self, worker: str, capacity: Resources) -> None:
        """A worker joined with ``capacity``."""
        # Its text now: the dispatcher allocates from these very parts before the writer runs.
        self._batch.workers.append((True, worker, str(capacity), trio.current_time(), None, None))
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

    def _idle(self) -> bool:
        """Whether no recorded task is still queued or running (none will end soon)."""
        return not self._live

    def _oldest(self) -> Submission | None:
        """The oldest submission that is still to be written alone, if any."""
        unwritten = self._unwritten
        while unwritten and unwritten[0].ended:
            unwritten.popleft()
        return unwritten[0] if unwritten else None

    def _due(self) -> float:
        """When the oldest submission not written yet is to be written alone."""
        oldest = self._oldest()
        return oldest.submitted + HOLD if oldest is not None else math.inf

    def _take(self, final: bool) -> Batch | None:
        batch = self._batch
        hold = -math.inf if final else trio.current_time() - HOLD
        while (oldest := self._oldest()) is not None and oldest.submitted <= hold:
            batch.submitted.append(self._unwritten.popleft())
        if not batch:
            return None
        self._batch = Batch()
        batch.offset = time.time() - trio.current_time()
        return batch

    def _write(self, batch: Batch) -> _Read:
        """Commit one batch, then read the values of its recalled tasks (in the thread)."""
        try:
            self._rows.write(batch)
            return self._rows.read(batch.reads) if batch.reads else []
        except sqlite3.Error as error:
            raise GrainlikeError(f"journal {self.path}: cannot write it ({error})") from None

    def _done(self, batch: Batch, recalled: _Read) -> None:
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
