"""The learned store: per group, the running statistics of what its tasks were measured to take.

One SQLite file (``~/.local/state/grainlike/learned.db`` by default) that any number of runs
share at once.  An update folds one measurement into its group's row inside a transaction
(Welford's step, in SQL), so runs never overwrite each other: two runs learning the same group
both count, and two learning different groups both keep theirs.  Each row holds a *metric*
(``wtime`` for the run times limits are learned from, ``wall``, ``cores``, ``mem`` and
``disk`` for what measured runs used) and a group name; the latest measurements of ``mem`` and
``disk`` are kept too, for their medians.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import attrs

from ._database import Schema, in_transaction, open_database

__all__ = ["KEPT_SAMPLES", "LEARNED", "LearnedStore", "Row"]

#: (count, mean, m2, largest) of one group.
Row = tuple[int, float, float, float]

_VERSION_1 = (
    """CREATE TABLE groups (
        metric TEXT NOT NULL,
        name TEXT NOT NULL,
        count INTEGER NOT NULL,
        mean REAL NOT NULL,
        m2 REAL NOT NULL,
        largest REAL NOT NULL,
        updated REAL NOT NULL,
        PRIMARY KEY (metric, name)
    ) WITHOUT ROWID""",
)

#: The latest measurements of each group of a sized metric (peak memory and disk), for the
#: median that ``grainlike stats`` shows; ``KEPT_SAMPLES`` of them per group.
_VERSION_2 = (
    """CREATE TABLE samples (
        metric TEXT NOT NULL,
        name TEXT NOT NULL,
        value REAL NOT NULL
    )""",
    "CREATE INDEX samples_of_group ON samples (metric, name)",
)

#: How many of the latest measurements of a group the store keeps (``samples``).
KEPT_SAMPLES = 101

#: Its messages call it a statistics file, as they did when it was JSON.
LEARNED = Schema("statistics file", 0x676C6C73, (_VERSION_1, _VERSION_2))  # "glls"

_PRUNE = """
    DELETE FROM samples WHERE metric = ? AND name = ? AND rowid NOT IN (
        SELECT rowid FROM samples WHERE metric = ? AND name = ? ORDER BY rowid DESC LIMIT ?
    )
"""

#: Welford's step: the old row's values on the right, the new measurement as ``excluded.mean``.
_FOLD = """
    INSERT INTO groups (metric, name, count, mean, m2, largest, updated)
    VALUES (?, ?, 1, ?, 0.0, ?, ?)
    ON CONFLICT (metric, name) DO UPDATE SET
        count = count + 1,
        mean = mean + (excluded.mean - mean) / (count + 1),
        m2 = m2 + (excluded.mean - mean)
            * (excluded.mean - mean - (excluded.mean - mean) / (count + 1)),
        largest = max(largest, excluded.largest),
        updated = excluded.updated
"""


def combine(a: Row, b: Row) -> Row:
    """The statistics of two sets of measurements together (Chan et al.'s parallel step)."""
    count = a[0] + b[0]
    if count == 0:
        return a
    delta = b[1] - a[1]
    mean = a[1] + delta * b[0] / count
    return (count, mean, a[2] + b[2] + delta * delta * a[0] * b[0] / count, max(a[3], b[3]))


@attrs.define(eq=False)
class LearnedStore:
    """The store at ``path``; the file is created on the first update (a run that learns
    nothing writes nothing)."""

    path: Path
    _connection: sqlite3.Connection | None = None

    @classmethod
    def open(cls, path: Path) -> LearnedStore:
        """The store at ``path``, opened (and migrated) if the file exists.

        Raises:
            ConfigError: the file is not a grainlike statistics file, or of a newer schema.
        """
        store = cls(path)
        if path.exists():
            store._connect()
        return store

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            self._connection = open_database(self.path, LEARNED)
        return self._connection

    def load(self, metric: str) -> dict[str, Row]:
        """Every group of ``metric`` (none before the file exists)."""
        if self._connection is None:
            return {}
        rows = self._connection.execute(
            "SELECT name, count, mean, m2, largest FROM groups WHERE metric = ?", (metric,)
        )
        return {name: (count, mean, m2, largest) for name, count, mean, m2, largest in rows}

    def samples(self, metric: str) -> dict[str, list[float]]:
        """The latest measurements kept of each group of ``metric``, oldest first."""
        if self._connection is None:
            return {}
        kept: dict[str, list[float]] = {}
        rows = self._connection.execute(
            "SELECT name, value FROM samples WHERE metric = ? ORDER BY rowid", (metric,)
        )
        for name, value in rows:
            kept.setdefault(name, []).append(value)
        return kept

    def fold(
        self, metric: str, samples: list[tuple[str, float]], *, keep: bool = False
    ) -> dict[str, Row]:
        """Fold each ``(group, value)`` into its row, in one transaction; the touched groups
        as they are now, with what other runs added.  With ``keep``, the measurements are
        also kept (the latest ``KEPT_SAMPLES`` of each group).

        Raises:
            ConfigError: the file cannot be created or is not a statistics file.
            sqlite3.Error: it cannot be written.
        """
        connection = self._connect()
        now = time.time()

        def write() -> dict[str, Row]:
            connection.executemany(
                _FOLD, [(metric, group, value, value, now) for group, value in samples]
            )
            names = sorted({group for group, _ in samples})
            if keep:
                connection.executemany(
                    "INSERT INTO samples VALUES (?, ?, ?)",
                    [(metric, group, value) for group, value in samples],
                )
                connection.executemany(
                    _PRUNE, [(metric, name, metric, name, KEPT_SAMPLES) for name in names]
                )
            marks = ", ".join("?" * len(names))
            rows = connection.execute(
                "SELECT name, count, mean, m2, largest FROM groups "
                f"WHERE metric = ? AND name IN ({marks})",
                (metric, *names),
            )
            return {name: (count, mean, m2, largest) for name, count, mean, m2, largest in rows}

        return in_transaction(connection, write)

    def merge(self, metric: str, groups: dict[str, Row]) -> None:
        """Add whole groups' statistics (from a file being migrated) to what is stored."""
        connection = self._connect()
        now = time.time()

        def write() -> None:
            stored = self.load(metric)
            for name, row in groups.items():
                count, mean, m2, largest = combine(stored.get(name, (0, 0.0, 0.0, 0.0)), row)
                connection.execute(
                    "INSERT OR REPLACE INTO groups VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (metric, name, count, mean, m2, largest, now),
                )

        in_transaction(connection, write)

    def close(self) -> None:
        """Close the file."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None
