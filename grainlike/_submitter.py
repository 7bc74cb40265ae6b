"""Who a bound call submits to: the session's dispatcher, or, inside a task on a remote worker,
the worker's line to its dispatcher.

``fn @ res`` calls and ``gl.released()`` find it in a context variable, which trio hands on to
every task started below the place it was set: ``gl.run`` sets it to its session, and a remote
worker to its own submitter, so a task submits the same way wherever it runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Protocol

from ._exceptions import GrainlikeError
from .dispatch import TaskHandle
from .resource import Resources
from .wire import Call
from .worker import task_context_or_none

__all__ = ["Submitter", "current_submitter", "submitting_to"]


class Submitter(Protocol):
    """What bound calls and ``gl.released()`` use."""

    @property
    def executor(self) -> str:
        """Where sync functions run unless bound with ``.options(executor=...)``."""

    def submit(
        self,
        request: Resources,
        work: Call,
        *,
        name: str,
        priority: int,
        retries: int,
        parent: int | None,
    ) -> TaskHandle:
        """Submit one call; ``parent`` is the id of the task that submits it, if any."""

    def release(self, task_id: int) -> None:
        """Task ``task_id`` gives its allocation back to its worker for a while."""

    async def reacquire(self, task_id: int) -> Resources | None:
        """Task ``task_id`` takes its request again on its worker (``None``: it has ended)."""


_SUBMITTER: ContextVar[Submitter] = ContextVar("grainlike_submitter")


#: What a sync task that calls a bound function hears.
SYNC_TASKS_DO_NOT_SUBMIT = (
    "a sync task cannot submit tasks (it runs in a worker process or thread, away from its "
    "dispatcher's event loop): make the function that submits `async def`"
)


def current_submitter() -> Submitter:
    """The submitter of the running ``gl.run`` (or remote worker); ``GrainlikeError`` outside."""
    try:
        return _SUBMITTER.get()
    except LookupError:
        if task_context_or_none() is not None:
            raise GrainlikeError(SYNC_TASKS_DO_NOT_SUBMIT) from None
        raise GrainlikeError(
            "no grainlike dispatcher is running: call bound functions inside the main "
            "passed to gl.run(main) (or inside `async with gl.open_session()`), or in an "
            "async task"
        ) from None


@contextmanager
def submitting_to(submitter: Submitter) -> Iterator[None]:
    """Make ``submitter`` the one bound calls use, for the duration of the block."""
    token = _SUBMITTER.set(submitter)
    try:
        yield
    finally:
        _SUBMITTER.reset(token)
