"""The journal's SQLite schema, version by version (documented in docs/durable-runs.md).

Everything is appended: a run adds its row to ``runs``, one row per submitted task to
``tasks``, one row per attempt (and per ending without a run) to ``attempts``, one row per
worker to ``workers``; only a run's and a worker's end are updates.  What a key's state is
(succeeded, failed, ...) is read from its rows; the newest success of a key is what a later run
recalls.
"""

from __future__ import annotations

from ._database import Schema

__all__ = ["JOURNAL", "OUTCOMES"]

#: How an attempt ended; ``retried`` means the task went back to the queue.
OUTCOMES = ("succeeded", "failed", "cancelled", "retried")

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
    """CREATE TABLE tasks (
        run INTEGER NOT NULL,
        task INTEGER NOT NULL,
        key BLOB NOT NULL,
        function INTEGER NOT NULL REFERENCES functions,
        args BLOB NOT NULL,
        request TEXT NOT NULL,
        occurrence INTEGER NOT NULL,
        name TEXT NOT NULL,
        priority INTEGER NOT NULL,
        submitted REAL NOT NULL,
        PRIMARY KEY (run, task)
    ) WITHOUT ROWID""",
    f"""CREATE TABLE attempts (
        run INTEGER NOT NULL,
        task INTEGER NOT NULL,
        attempt INTEGER NOT NULL,
        key BLOB NOT NULL,
        outcome TEXT NOT NULL CHECK (outcome IN {OUTCOMES!r}),
        worker TEXT,
        allocation TEXT,
        cores TEXT,
        gpus TEXT,
        placed REAL,
        started REAL,
        ended REAL NOT NULL,
        duration REAL,
        usage TEXT,
        error_type TEXT,
        error TEXT,
        exception BLOB,
        result BLOB
    )""",
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
