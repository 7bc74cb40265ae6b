"""Running one task on the worker's own process: a coroutine on the event loop, or a sync
function in a worker thread (``executor="thread"``; the process pool is ``_pool.py``)."""

from __future__ import annotations

import functools
from typing import Any, Protocol

import outcome
import trio

from .._exceptions import TaskCancelledError
from ..resource import Resources
from ..wire import Call, PackedCall
from ._context import TaskContext, set_task_context

__all__ = ["Assignment", "run_work"]


class Assignment(Protocol):
    """What a worker is handed for one task (the dispatcher's task record fits this)."""

    @property
    def id(self) -> int: ...
    @property
    def attempt(self) -> int: ...
    @property
    def work(self) -> Call | PackedCall: ...
    @property
    def granted(self) -> Resources | None:
        """What the task got: its worker's part and any counters from the dispatcher's pools."""

    @property
    def hard_limit(self) -> float | None: ...
    @property
    def after(self) -> int | None: ...


async def run_work(
    work: Call,
    context: TaskContext,
    hard_limit: float | None,
    limiter: trio.CapacityLimiter,
    let_go: trio.CancelScope | None = None,
) -> outcome.Outcome[Any]:
    """Run the call ``work`` under ``context`` and capture its result or exception.

    A hard limit cancels an async function (``trio.TooSlowError``).  A sync function runs in a
    thread, which Python cannot interrupt: it gets ``TooSlowError`` when it returns late, and a
    cancelled task waits for its thread to return, so that its cores stay held meanwhile;
    cancelling ``let_go`` instead stops waiting (the thread runs on, its result dropped) and
    the task fails with ``TaskCancelledError``, for a worker whose dispatcher is gone.
    ``trio.Cancelled`` is not captured: it belongs to whoever cancelled.
    """
    fn, args, kwargs = work.fn, work.args, work.kwargs
    set_task_context(context)
    try:
        if work.is_async:
            if hard_limit is None:
                return outcome.Value(await fn(*args, **kwargs))
            with trio.move_on_after(hard_limit) as limit:
                return outcome.Value(await fn(*args, **kwargs))
            assert limit.cancelled_caught
            task = f"task {context.task_id} ({work.name})"
            raise trio.TooSlowError(f"{task} ran past its hard limit of {hard_limit:g}s")
        call = functools.partial(fn, *args, **kwargs)
        start = trio.current_time()
        with trio.CancelScope(shield=True), let_go or trio.CancelScope():
            value = await trio.to_thread.run_sync(call, limiter=limiter, abandon_on_cancel=True)
        if let_go is not None and let_go.cancelled_caught:
            raise TaskCancelledError(
                f"task {context.task_id} ({work.name}): its worker let go of its thread"
            )
        if hard_limit is not None and trio.current_time() - start > hard_limit:
            task = f"task {context.task_id} ({work.name})"
            raise trio.TooSlowError(
                f"{task} ran {trio.current_time() - start:.1f}s, past its hard limit of "
                f"{hard_limit:g}s (a thread cannot be stopped: use the process executor)"
            )
        return outcome.Value(value)
    except Exception as error:
        return outcome.Error(error)
