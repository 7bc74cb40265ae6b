"""Memory enforcement: a psutil watchdog over the process tree a task started."""

from __future__ import annotations

import contextlib
import os
import signal

import psutil
import trio

__all__ = ["kill_process_group", "tree_rss", "watch_memory"]


def tree_rss(pid: int) -> int:
    """Resident memory in bytes of process ``pid`` and all its descendants (0 once it is gone)."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total


def kill_process_group(pid: int, sig: int = signal.SIGKILL) -> None:
    """Signal the process group led by ``pid`` (the task's child started a new session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


async def watch_memory(pid: int, limit_bytes: int, interval: float = 0.25) -> int:
    """Return once the tree under ``pid`` uses more than ``limit_bytes`` (the RSS seen then)."""
    while True:
        rss = tree_rss(pid)
        if rss > limit_bytes:
            return rss
        await trio.sleep(interval)
