"""The SQLite files grainlike keeps (the journal, the learned store): opening, versions, writing.

Both are private SQLite databases in WAL mode: readers (``grainlike journal``) never wait for
the writer, and a process killed in the middle of a write leaves the file as it was after its
last committed transaction.  ``synchronous=NORMAL`` makes a commit durable against the death of
the process (what SIGKILL, an OOM kill or a closed laptop lid do); only a crash of the whole
machine may lose the last few commits, never corrupt the file.

A file says what it is with ``PRAGMA application_id`` and which schema it has with ``PRAGMA
user_version``.  A schema is a list of migrations: migration ``n`` takes a file from version
``n`` to ``n + 1`` (version 0 is an empty file), each in one transaction, so a file is always at
one version or the next.  A file of a newer version than this grainlike knows is refused, never
rewritten.

``BatchWriter`` moves the writes off the event loop: what accumulates while one batch is being
written goes into the next, so a busy run writes few large transactions and a quiet one writes
each change at once.  While more is coming (the writer's owner says whether it is idle),
batches begin at least five milliseconds apart (ten once they are large), so that each carries
more: a batch costs two hand-offs between threads and a transaction (a dozen system calls),
far more than a row, and a stream of tiny batches takes CPU from the event loop.
"""

from __future__ import annotations

import math
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

import attrs
import trio

from .._exceptions import ConfigError

__all__ = ["BatchWriter", "Schema", "open_database"]

B = TypeVar("B")
R = TypeVar("R")

#: The first bytes of every SQLite database file.
SQLITE_MAGIC = b"SQLite format 3\x00"
#: UPSERT (``ON CONFLICT ... DO UPDATE``) arrived in SQLite 3.24.
MINIMUM_SQLITE = (3, 24, 0)


@attrs.frozen
class Schema:
    """What a kind of file is and how it is built.

    Attributes:
        what: Its name in messages (``journal``, ``learned store``).
        application_id: The number in its header that says it is one.
        migrations: Migration ``n`` (a sequence of SQL statements) takes version ``n`` to
            ``n + 1``; the current version is their number.
    """

    what: str
    application_id: int
    migrations: tuple[tuple[str, ...], ...]

    @property
    def version(self) -> int:
        """The schema version this grainlike writes."""
        return len(self.migrations)


def open_database(path: Path, schema: Schema, *, readonly: bool = False) -> sqlite3.Connection:
    """Open the file at ``path`` as a database of ``schema``, migrated to its version.

    A missing file is created, mode 0600 (its directories too), unless ``readonly``: then the
    connection only reads (``query_only``) and migrates nothing.  It is opened for writing
    where the file allows, so that closing it can remove the ``-wal`` and ``-shm`` files a
    read-only connection would leave behind.  The connection is in autocommit mode
    (``isolation_level=None``): transactions are explicit.

    Raises:
        ConfigError: the file cannot be opened or created, is not an SQLite database, is
            another program's database, or has a newer schema than this grainlike; the message
            names the file.
    """
    if sqlite3.sqlite_version_info < MINIMUM_SQLITE:
        raise ConfigError(
            f"{path}: a {schema.what} needs SQLite 3.24 or newer; this Python has "
            f"SQLite {sqlite3.sqlite_version}"
        )
    _check_header(path, schema, create=not readonly)
    try:
        if readonly:
            connection = _reader(path)
        else:
            connection = sqlite3.connect(
                path, isolation_level=None, timeout=30, check_same_thread=False
            )
    except sqlite3.Error as error:
        raise ConfigError(f"{path}: cannot open the {schema.what} ({error})") from None
    try:
        _prepare(connection, path, schema, readonly=readonly)
    except BaseException:
        connection.close()
        raise
    return connection


def _reader(path: Path) -> sqlite3.Connection:
    for mode in ("rw", "ro"):  # rw: see open_database; ro: a file this user may not write
        try:
            uri = f"file:{_quote(path)}?mode={mode}"
            connection = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=30)
            connection.execute("PRAGMA query_only = ON")
            return connection
        except sqlite3.OperationalError:
            if mode == "ro":
                raise
    raise AssertionError("unreachable")


def _quote(path: Path) -> str:
    from urllib.parse import quote

    return quote(str(path.absolute()))


def _check_header(path: Path, schema: Schema, *, create: bool) -> None:
    """Refuse a file that is not an SQLite database; create a missing one, 0600."""
    try:
        with path.open("rb") as file:
            head = file.read(len(SQLITE_MAGIC))
    except FileNotFoundError:
        if not create:
            raise ConfigError(f"{path}: no such {schema.what}") from None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # 0600 from the start, whatever the umask; SQLite gives its -wal and -shm files
            # the mode of the database.
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            pass  # another run created it meanwhile
        except OSError as error:
            raise ConfigError(f"{path}: cannot create the {schema.what} ({error})") from None
        return
    except IsADirectoryError:
        raise ConfigError(f"{path}: a directory, not a {schema.what}") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the {schema.what} ({error.strerror})") from None
    if head and head != SQLITE_MAGIC:
        raise ConfigError(f"{path}: not a grainlike {schema.what} (not an SQLite database)")


def _prepare(connection: sqlite3.Connection, path: Path, schema: Schema, *, readonly: bool) -> None:
    try:
        connection.execute("PRAGMA busy_timeout = 30000")
        version = _version(connection, path, schema)
        if readonly:
            if version < schema.version:
                raise ConfigError(
                    f"{path}: a {schema.what} of schema version {version}; open it once "
                    f"with this grainlike to update it to version {schema.version}"
                )
            return
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = NORMAL")
        if version < schema.version:
            _migrate(connection, path, schema)
    except sqlite3.DatabaseError as error:
        raise ConfigError(f"{path}: not a usable {schema.what} ({error})") from None


def _version(connection: sqlite3.Connection, path: Path, schema: Schema) -> int:
    """The file's schema version, after checking that it is a file of ``schema``."""
    (application,) = connection.execute("PRAGMA application_id").fetchone()
    (version,) = connection.execute("PRAGMA user_version").fetchone()
    if application == 0 and version == 0:
        (tables,) = connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
        if tables:
            raise ConfigError(
                f"{path}: not a grainlike {schema.what} (an SQLite database of another program)"
            )
        return 0
    if application != schema.application_id:
        raise ConfigError(
            f"{path}: not a grainlike {schema.what} (an SQLite database with application id "
            f"{application:#x})"
        )
    if version > schema.version:
        raise ConfigError(
            f"{path}: a {schema.what} of schema version {version}, newer than this grainlike "
            f"reads ({schema.version}); open it with a newer grainlike"
        )
    return int(version)


def _migrate(connection: sqlite3.Connection, path: Path, schema: Schema) -> None:
    """Run the missing migrations, one transaction each (another process may run them too)."""
    while True:
        connection.execute("BEGIN IMMEDIATE")
        try:
            # Read again under the write lock: a concurrent run may have migrated meanwhile.
            version = _version(connection, path, schema)
            if version >= schema.version:
                connection.execute("COMMIT")
                return
            for statement in schema.migrations[version]:
                connection.execute(statement)
            connection.execute(f"PRAGMA application_id = {schema.application_id:d}")
            connection.execute(f"PRAGMA user_version = {version + 1:d}")
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise


def in_transaction(connection: sqlite3.Connection, write: Callable[[], R]) -> R:
    """Run ``write`` in one ``BEGIN IMMEDIATE`` transaction: all of it is committed, or none."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        result = write()
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")
    return result


def _nothing_due() -> float:
    return math.inf


@attrs.define(eq=False)
class BatchWriter(Generic[B, R]):
    """Writes what accumulates in batches, in a worker thread, one batch at a time.

    ``take(final)`` (on the event loop) returns what is to be written now, or ``None``
    (``final``: everything, the writer is closing); ``write`` (in a thread) writes one batch
    and returns what ``done`` (back on the event loop) needs.  ``poke`` says that something is
    to be written; ``due`` says when something is, unpoked (trio's clock).  ``serve`` runs the
    loop; ``flush`` writes what is to be written now.  Batches are written one at a time, in
    the order they were taken, and a batch taken is always written.
    """

    take: Callable[[bool], B | None]
    write: Callable[[B], R]
    done: Callable[[B, R], None]
    size: Callable[[B], int] = lambda _: 0
    due: Callable[[], float] = _nothing_due
    #: Whether nothing more is coming soon, so that waiting would only delay what is pending.
    idle: Callable[[], bool] = lambda: True
    #: Unless ``idle``, a batch is taken at least ``interval`` seconds after the one before it
    #: began, or ``pause`` seconds when that one was ``busy`` (as ``size`` counts) or larger.
    interval: float = 0.005
    busy: int = 64
    pause: float = 0.010
    _wake: trio.Event = attrs.field(factory=trio.Event)
    _lock: trio.Lock = attrs.field(factory=trio.Lock)
    _last: int = 0
    _began: float = -math.inf

    def poke(self) -> None:
        """Something is to be written: write it soon."""
        self._wake.set()

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Write batches until cancelled (a batch being written is finished first)."""
        task_status.started()
        while True:
            with trio.move_on_at(self.due()):
                await self._wake.wait()
            if not self.idle():  # let the next batch grow (see the module)
                gap = self.pause if self._last >= self.busy else self.interval
                await trio.sleep_until(self._began + gap)
            self._wake = trio.Event()
            await self.flush()

    async def flush(self) -> None:
        """Write what is to be written now, and call ``done`` for it."""
        async with self._lock:
            batch = self.take(False)
            if batch is None:
                self._last = 0
                return
            self._last = self.size(batch)
            self._began = trio.current_time()
            with trio.CancelScope(shield=True):  # a batch taken is a batch written
                result = await trio.to_thread.run_sync(self.write, batch)
            self.done(batch, result)

    def write_now(self) -> R | None:
        """Write everything left in this thread, without calling ``done`` (when closing, with
        ``serve`` no longer running)."""
        batch = self.take(True)
        return None if batch is None else self.write(batch)
