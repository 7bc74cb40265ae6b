"""The journal's SQLite schema, version by version (documented in docs/durable-runs.md).

A run adds its row to ``runs``; each task it records is one row of ``tasks``, written when the
task ends (or, for a task still running after a second, first when it was submitted and then
updated when it ends); each run of a task that ended without a result for its caller (a lost
worker, a retried failure) is a row of ``retries``; each worker that joined is a row of
``workers``.  A key's newest success (the highest ``tasks.id``) is what a later run recalls.
"""

from __future__ import annotations

from ._database import Schema

__all__ = ["JOURNAL", "STATES", "row_id"]

#: What a task row says of it: ``submitted`` until it ends.
STATES = ("submitted", "succeeded", "failed", "cancelled")


def row_id(run: int, task: int) -> int:
    """The ``tasks.id`` of task ``task`` of run ``run``: in the order runs and tasks came."""
    return run << 32 | task


_VERSION_1 = (
    """CREATE TABLE runs (
        run INTEGER PRIMARY KEY,
        started REAL NOT NULL,
        ended REAL,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        argv TEXT NOT NULL,
        rerun INTEGER NOT NULL,
        recalled INTEGER
    )""",
    """CREATE TABLE functions (
        function INTEGER PRIMARY KEY,
        module TEXT NOT NULL,
        qualname TEXT NOT NULL,
        code BLOB NOT NULL,
        UNIQUE (module, qualname, code)
    )""",
    f"""CREATE TABLE tasks (
        id INTEGER PRIMARY KEY,
        run INTEGER NOT NULL,
        task INTEGER NOT NULL,
        key BLOB NOT NULL,
        function INTEGER NOT NULL REFERENCES functions,
        request TEXT NOT NULL,
        occurrence INTEGER NOT NULL,
        name TEXT NOT NULL,
        priority INTEGER NOT NULL,
        submitted REAL NOT NULL,
        state TEXT NOT NULL CHECK (state IN {STATES!r}),
        attempts INTEGER NOT NULL,
        worker TEXT,
        allocation TEXT,
        cores TEXT,
        gpus TEXT,
        placed REAL,
        started REAL,
        ended REAL,
        duration REAL,
        usage TEXT,
        error_type TEXT,
        error TEXT,
        exception BLOB,
        result BLOB
    )""",
    """CREATE TABLE retries (
        run INTEGER NOT NULL,
        task INTEGER NOT NULL,
        attempt INTEGER NOT NULL,
        worker TEXT NOT NULL,
        allocation TEXT,
        cores TEXT,
        gpus TEXT,
        placed REAL,
        ended REAL NOT NULL,
        reason TEXT NOT NULL,
        PRIMARY KEY (run, task, attempt)
    ) WITHOUT ROWID""",
    """CREATE TABLE workers (
        run INTEGER NOT NULL,
        worker TEXT NOT NULL,
        capacity TEXT NOT NULL,
        joined REAL NOT NULL,
        left REAL,
        reason TEXT,
        lost INTEGER
    )""",
)

#: ``migrations[n]`` takes a journal from version ``n`` to ``n + 1``; version 0 is an empty file.
JOURNAL = Schema("journal", 0x676C6A6E, (_VERSION_1,))  # "gljn"
