"""The one interface between the dispatcher and its workers, embedded or remote."""

from __future__ import annotations

from typing import Protocol

from ._task import Task

__all__ = ["WorkerLink"]


class WorkerLink(Protocol):
    """How the dispatcher talks to one worker.

    All methods are non-blocking: a remote link queues messages and sends them in batches.
    The worker answers through the dispatcher's ``task_started``/``task_done``/``worker_lost``.
    """

    @property
    def pipeline(self) -> int:
        """How many tasks may wait on this worker behind each running one (0: none)."""

    def run_tasks(self, tasks: list[Task]) -> None:
        """Start these tasks; each carries its allocation, hard limit and attempt number.

        A task whose ``after`` is set starts once task ``after`` (holding the same allocation)
        has ended on this worker, or at once if it has already ended.
        """

    def cancel_task(self, task_id: int) -> None:
        """Cancel a running task; the worker still reports it done (freeing its resources)."""

    def drain(self, reason: str) -> None:
        """Finish running tasks, take no new ones, then leave."""
