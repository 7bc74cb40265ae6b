"""Scratch disk: the worker's scratch root, what it offers as ``Disk``, and each task's directory.

A task whose allocation holds ``Disk`` gets a fresh directory under the root (mode 0700, made
by ``tempfile.mkdtemp``), removed when the task ends, whatever the outcome.  While tasks hold
directories, one sampler walks each of them about once a second to find its peak size; the
walk is the final measurement too, just before the directory goes.  A directory made with a
limit (a task of a learned ``Disk`` group) that a walk finds over it is reported once, and its
task stopped (``DiskLimitError``); otherwise the size is measured, not enforced.  Between two
walks a task may write past its limit: the limit is a label, not a quota.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

import attrs
import trio

from .._exceptions import ConfigError
from ..resource import MAX_KIB, Disk
from ._memlimit import GIB, Headroom

__all__ = [
    "SCRATCH_HEADROOM",
    "SCRATCH_INTERVAL",
    "ScratchDirectories",
    "ScratchInfo",
    "detect_scratch",
    "directory_size",
    "scratch_root",
]

#: What a worker keeps back of its scratch root's free space: 5% of it, at least 1 GiB (never
#: more than half), for the files of everything else on that file system (logs, the worker's
#: own temporary files, other users), which the worker does not count.
SCRATCH_HEADROOM: Final = Headroom(fraction=0.05, minimum_kib=GIB, maximum_kib=MAX_KIB)
#: Seconds between two walks of a task's directory; a tree that takes long to walk is walked
#: less often (at most a twentieth of the time goes into walking).
SCRATCH_INTERVAL: Final = 1.0
#: How many times the removal of a directory is tried: what the task left running may still
#: write for a moment after its processes were killed.
_REMOVAL_TRIES: Final = 5


@attrs.frozen
class ScratchInfo:
    """The scratch root and the disk it offers.

    Attributes:
        root: the directory tasks' directories are made in.
        kib: what tasks may use: the free space less the headroom (0: none).
        free_kib: the free space of the root's file system (for an unprivileged user).
        total_kib: the size of that file system.
        source: ``"given"`` (``--scratch``, ``scratch=``) or ``"tempdir"`` (the temp dir).
    """

    root: Path
    kib: int
    free_kib: int
    total_kib: int
    source: str

    @property
    def headroom_kib(self) -> int:
        """What was kept back of the free space."""
        return self.free_kib - self.kib

    def capacity(self) -> Disk | None:
        """The usable space as a capacity; ``None`` when nothing is free."""
        return Disk.from_kib(self.kib) if self.kib > 0 else None


def scratch_root(given: str | os.PathLike[str] | None = None) -> tuple[Path, str]:
    """The scratch root and its source: ``given``, else the temp dir (``TMPDIR`` or ``/tmp``).

    Raises:
        ConfigError: when the root is not a directory this process may write in.
    """
    if given is None:
        return Path(tempfile.gettempdir()), "tempdir"
    root = Path(given).expanduser().absolute()
    if not root.is_dir():
        raise ConfigError(f"scratch root {os.fspath(given)!r}: not a directory")
    if not os.access(root, os.W_OK | os.X_OK):
        raise ConfigError(f"scratch root {os.fspath(given)!r}: this user may not write in it")
    return root, "given"


def detect_scratch(
    given: str | os.PathLike[str] | None = None,
    *,
    headroom: Headroom = SCRATCH_HEADROOM,
    usage: Callable[[Path], tuple[int, int, int]] = shutil.disk_usage,
) -> ScratchInfo:
    """The scratch root (see ``scratch_root``) and its free space less ``headroom``.

    Args:
        given: the root the user named, if any.
        headroom: what to keep back of the free space.
        usage: ``shutil.disk_usage`` or a stand-in: (total, used, free) in bytes.
    """
    root, source = scratch_root(given)
    total, _, free = usage(root)
    free_kib = max(free // 1024, 0)
    kib = headroom.usable(free_kib) if free_kib > 0 else 0
    return ScratchInfo(root, kib, free_kib, total // 1024, source)


def directory_size(path: Path, *, repair: bool = False) -> int:
    """Bytes the tree under ``path`` occupies (its blocks, as ``du`` counts), each inode once.

    Symbolic links are not followed; what vanishes during the walk is skipped, and a tree
    that is gone is 0.  With ``repair``, a directory the walk may not enter or change is given
    back its owner's permissions first, so that it can be measured and then removed.
    """
    total = 0
    seen: set[tuple[int, int]] = set()
    pending = [os.fspath(path)]
    while pending:
        top = pending.pop()
        try:
            entries = os.scandir(top)
        except PermissionError:
            if not repair:
                continue
            with contextlib.suppress(OSError):
                os.chmod(top, stat.S_IRWXU)
            try:
                entries = os.scandir(top)
            except OSError:
                continue
        except OSError:
            continue
        with entries:
            for entry in entries:
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISDIR(info.st_mode):
                    if repair and info.st_mode & stat.S_IRWXU != stat.S_IRWXU:
                        with contextlib.suppress(OSError):
                            os.chmod(entry.path, stat.S_IRWXU)
                    pending.append(entry.path)
                elif info.st_nlink > 1:
                    key = (info.st_dev, info.st_ino)
                    if key in seen:
                        continue
                    seen.add(key)
                total += info.st_blocks * 512
    return total


def _measure_and_remove(path: Path) -> tuple[int, OSError | None]:
    """The final size of ``path``, then remove it; the error of the last try, if it stayed."""
    size = directory_size(path, repair=True)
    error: OSError | None = None
    for attempt in range(_REMOVAL_TRIES):
        try:
            shutil.rmtree(path)
            return size, None
        except FileNotFoundError:
            return size, None
        except OSError as failed:  # a file appeared while it went, or a permission
            error = failed
            directory_size(path, repair=True)
            time.sleep(0.01 * 2**attempt)
    return size, error


@attrs.define(eq=False)
class ScratchDirectories:
    """The task directories of one worker, under ``root``; ``serve`` measures them.

    Args:
        root: the scratch root.
        interval: the least seconds between two walks of a directory.
    """

    root: Path
    interval: float = SCRATCH_INTERVAL
    _peaks: dict[Path, int] = attrs.field(init=False, factory=dict)
    #: Per limited directory: its limit in bytes, and whom to tell (once) when it is over.
    _limits: dict[Path, tuple[int, Callable[[int], None]]] = attrs.field(init=False, factory=dict)
    _added: trio.Event = attrs.field(init=False, factory=trio.Event)

    def create(
        self, task_id: int, limit: int | None = None, over: Callable[[int], None] | None = None
    ) -> Path:
        """A fresh directory for task ``task_id``, mode 0700; measured until ``finish``.

        With ``limit`` (bytes), the first walk that finds the directory larger calls ``over``
        with its size.

        Raises:
            OSError: when it cannot be made (the root is gone, full or not writable).
        """
        path = Path(tempfile.mkdtemp(prefix=f"grainlike-task-{task_id}-", dir=self.root))
        self._peaks[path] = 0
        if limit is not None and over is not None:
            self._limits[path] = limit, over
        self._added.set()
        return path

    def live(self) -> list[Path]:
        """The directories of tasks that have not finished."""
        return list(self._peaks)

    async def finish(self, path: Path) -> int:
        """Measure ``path`` a last time and remove it; its peak size in bytes.

        Call it shielded from cancellation: the directory goes whatever the task's outcome.

        Raises:
            OSError: when the directory could not be removed.
        """
        peak = self._peaks.pop(path, 0)
        self._limits.pop(path, None)
        size, error = await trio.to_thread.run_sync(_measure_and_remove, path)
        if error is not None:
            raise error
        return max(peak, size)

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Walk each live directory about every ``interval`` seconds, recording its peak.

        An idle worker (no directories) is not woken.
        """
        task_status.started()
        interval = self.interval
        while True:
            if not self._peaks:
                self._added = trio.Event()
                await self._added.wait()
            await trio.sleep(interval)
            began = time.perf_counter()
            for path in list(self._peaks):
                size = await trio.to_thread.run_sync(directory_size, path)
                if path in self._peaks:  # not finished meanwhile
                    self._peaks[path] = max(self._peaks[path], size)
                    limited = self._limits.get(path)
                    if limited is not None and size > limited[0]:
                        del self._limits[path]
                        limited[1](size)
            interval = max(self.interval, 20 * (time.perf_counter() - began))
