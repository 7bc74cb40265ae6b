"""Memory enforcement and process clean-up: a watchdog over the process tree a task started.

The tree is read from ``/proc`` (each thread's ``children`` file, and ``statm``), which costs
tens of microseconds for a small tree, so that a task can be sampled ten times a second.
Where those files are missing, psutil walks the whole process table instead.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal

import psutil
import trio

__all__ = [
    "become_subreaper",
    "descendants",
    "high_water",
    "kill_process_group",
    "kill_tree",
    "set_parent_death_signal",
    "tree_rss",
    "tree_usage",
    "watch_memory",
]

_PAGE = os.sysconf("SC_PAGE_SIZE")
_TICK = os.sysconf("SC_CLK_TCK")
#: ``prctl`` options (linux/prctl.h).
PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
# Kernels built without CONFIG_PROC_CHILDREN lack these files; psutil is the fallback there.
_HAVE_CHILDREN_FILES = os.path.exists(f"/proc/self/task/{os.getpid()}/children")


def _children_of(pid: int) -> list[int] | None:
    """The direct children of ``pid`` from ``/proc``; ``None`` when the kernel has no such file."""
    if not _HAVE_CHILDREN_FILES:
        return None
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return []  # gone
    except OSError:
        return None
    found: list[int] = []
    for tid in threads:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as file:
                found.extend(int(child) for child in file.read().split())
        except OSError:
            continue  # that thread (or the whole process) just ended
    return found


def descendants(pid: int) -> list[int]:
    """The pids of every process below ``pid`` (not ``pid`` itself), parents before children."""
    found: list[int] = []
    pending = [pid]
    while pending:
        children = _children_of(pending.pop())
        if children is None:
            try:
                return [p.pid for p in psutil.Process(pid).children(recursive=True)]
            except psutil.NoSuchProcess:
                return []
        found.extend(children)
        pending.extend(children)
    return found


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as file:
            return int(file.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        try:
            return int(psutil.Process(pid).memory_info().rss)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return 0


def tree_rss(pid: int) -> int:
    """Resident memory in bytes of process ``pid`` and all its descendants (0 once it is gone)."""
    return sum(_rss(p) for p in [pid, *descendants(pid)])


def _usage(pid: int) -> tuple[int, float]:
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            # Fields after the command name, which is in parentheses and may hold anything.
            fields = file.read().rpartition(b")")[2].split()
        cpu = int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
        return int(fields[21]) * _PAGE, cpu / _TICK
    except (OSError, IndexError, ValueError):
        try:
            process = psutil.Process(pid)
            with process.oneshot():
                times = process.cpu_times()
                rss = int(process.memory_info().rss)
            return rss, times.user + times.system + times.children_user + times.children_system
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return 0, 0.0


def tree_usage(pid: int) -> tuple[int, float]:
    """Resident bytes and CPU seconds of process ``pid`` and its descendants, from ``/proc``.

    The CPU of each process counts the children it has reaped, so the sum is the tree's CPU so
    far (without what descendants that left the tree used).  ``(0, 0.0)`` once it is gone.
    """
    rss, cpu = 0, 0.0
    for p in [pid, *descendants(pid)]:
        own_rss, own_cpu = _usage(p)
        rss += own_rss
        cpu += own_cpu
    return rss, cpu


def high_water() -> int:
    """``VmHWM`` of this process in bytes, its peak resident size (0 where ``/proc`` does not
    say)."""
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def kill_process_group(pid: int, sig: int = signal.SIGKILL) -> None:
    """Signal the process group led by ``pid`` (the task's child started a new session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def kill_tree(pid: int) -> None:
    """SIGKILL the process group of ``pid`` and every descendant of ``pid``, wherever its group.

    The descendants are listed first: once ``pid`` is dead, those that left its group
    (``setsid``) are no longer below it.
    """
    below = descendants(pid)
    kill_process_group(pid)
    for child in below:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(child, signal.SIGKILL)


def _prctl(option: int, value: int) -> bool:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        return bool(libc.prctl(option, value, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False  # not Linux


def set_parent_death_signal(sig: int = signal.SIGKILL) -> bool:
    """Have the kernel send ``sig`` to this process when the thread that started it ends.

    Call it in a child whose parent started it from a thread that lives as long as the parent
    process (its main thread); whether it took is the return value.
    """
    return _prctl(PR_SET_PDEATHSIG, sig)


def become_subreaper() -> bool:
    """Adopt this process's orphaned descendants, so that ``descendants`` still finds them."""
    return _prctl(PR_SET_CHILD_SUBREAPER, 1)


async def watch_memory(pid: int, limit_bytes: int, interval: float = 0.25) -> int:
    """Return once the tree under ``pid`` uses more than ``limit_bytes`` (the RSS seen then)."""
    while True:
        rss = tree_rss(pid)
        if rss > limit_bytes:
            return rss
        await trio.sleep(interval)
