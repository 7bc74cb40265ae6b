"""``async with gl.released():`` a task gives its allocation back while it waits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs

from ._exceptions import TaskCancelledError
from ._submitter import current_submitter
from .worker import current_task_context, set_task_context

__all__ = ["released"]


@asynccontextmanager
async def released() -> AsyncIterator[None]:
    """Give the running task's allocation back to its worker for the duration of the block.

    Use it around waiting for subtasks, so that a parent does not hold the cores its children
    need.  Before the block exits the task takes an allocation of the same request on the same
    worker again, ahead of queued tasks, waiting for it if it must; ``gl.GVAR.res`` is then
    the new allocation (its core IDs may differ).  Inside the block the task holds nothing:
    processes it started keep running, but on cores that may now be given to others.

    Raises:
        RuntimeError: outside a task.
        TaskCancelledError: the task ended (was cancelled) before it got its allocation back.
    """
    context = current_task_context()
    submitter = current_submitter()
    submitter.release(context.task_id)
    try:
        yield
    finally:
        allocation = await submitter.reacquire(context.task_id)
        if allocation is None:
            raise TaskCancelledError(
                f"task {context.task_id} ended before it took its allocation back"
            )
        set_task_context(attrs.evolve(context, allocation=allocation))
