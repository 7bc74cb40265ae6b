"""The keeper: a tiny process that kills a worker's process groups when the worker dies.

A task's processes (``run_process`` children, pool children) each lead a process group.  When
the worker ends in an orderly way it kills them itself; when it is killed (``SIGKILL``, the
out-of-memory killer) nothing in it runs.  The keeper is started once per worker process and
reads the groups to watch from a pipe whose only writer is the worker: when that pipe ends,
the worker is gone, and the keeper kills every group still on its list, then exits.

``PR_SET_PDEATHSIG`` alone cannot do this for ``run_process``: the kernel sends it when the
*thread* that forked the child ends, and trio forks in its cached threads, which end when idle.
What the keeper cannot catch is a process that left its group (``setsid``) after its leader
ended.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys

__all__ = ["forget_group", "watch_group"]

#: The keeper's program: standard library only, so that it starts in milliseconds.
_PROGRAM = r"""
import os, signal
signal.signal(signal.SIGINT, signal.SIG_IGN)
groups, pending = set(), b""
while True:
    chunk = os.read(0, 65536)
    if not chunk:
        break
    *lines, pending = (pending + chunk).split(b"\n")
    for line in lines:
        (groups.add if line[:1] == b"+" else groups.discard)(int(line[1:]))
for group in groups:
    try:
        os.killpg(group, signal.SIGKILL)
    except OSError:
        pass
"""


class _Keeper:
    """The worker's end of the keeper's pipe."""

    __slots__ = ("_fd", "_owner", "_process")

    def __init__(self) -> None:
        read, self._fd = os.pipe()
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-S", "-I", "-c", _PROGRAM],
                stdin=read,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # not in the worker's group: it must outlive it
            )
        except BaseException:
            os.close(self._fd)
            raise
        finally:
            os.close(read)
        self._owner = os.getpid()

    def alive(self) -> bool:
        return self._owner == os.getpid() and self._process.poll() is None

    def send(self, line: bytes) -> None:
        with contextlib.suppress(OSError):  # a keeper gone is a watch lost, not a task failed
            os.write(self._fd, line)


_keeper: _Keeper | None = None


def _current() -> _Keeper | None:
    global _keeper
    if _keeper is None or not _keeper.alive():
        try:
            _keeper = _Keeper()
        except OSError:
            return None
    return _keeper


def watch_group(pgid: int) -> None:
    """Have the keeper kill process group ``pgid`` if this process dies before ``forget_group``."""
    keeper = _current()
    if keeper is not None:
        keeper.send(b"+%d\n" % pgid)


def forget_group(pgid: int) -> None:
    """Group ``pgid`` has been dealt with: the keeper no longer kills it."""
    if _keeper is not None and _keeper.alive():
        _keeper.send(b"-%d\n" % pgid)
