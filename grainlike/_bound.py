"""Bound functions: ``fn @ resources``, ``@gl.delayed`` and ``gl.exec1``."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import attrs

from ._exceptions import GrainlikeError, ResourceError
from ._submitter import SYNC_TASKS_DO_NOT_SUBMIT, current_submitter
from .dispatch import TaskHandle
from .resource import ZERO, Kind, Resources, as_resources
from .resource._binding import set_binder
from .wire import Call, check_executor
from .worker import task_context_or_none

__all__ = ["Bound", "bind", "delayed", "exec1"]


def _is_async(fn: Callable[..., Any]) -> bool:
    while isinstance(fn, functools.partial):
        fn = fn.func
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - an object with an async __call__
    )


def _check_priority(_: object, __: object, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ResourceError(f"priority={value!r}: a priority is a whole number (higher first)")


def _check_executor(_: object, __: object, value: str | None) -> None:
    if value is not None:
        check_executor(value)


def _check_retries(_: object, __: object, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ResourceError(f"retries={value!r}: retries is a whole number of at least 0")


@attrs.frozen
class Bound:
    """A function with the resources each call asks for; immutable and reusable.

    ``bound(*args, **kwargs)`` submits one task to the current dispatcher and returns a handle
    to await.  ``bound & res`` adds to the request; ``bound.options(priority=...)`` sets the
    priority (higher first, FIFO within a priority), ``retries`` (re-runs after the task's own
    exception), the ``name`` shown in events and status, and the ``executor`` of a sync
    function (``"process"``: a worker process pinned to its cores; ``"thread"``: a thread of
    the worker, sharing its memory; unset: the session's default).
    """

    fn: Callable[..., Any]
    request: Resources
    priority: int = attrs.field(default=0, validator=_check_priority)
    retries: int = attrs.field(default=0, validator=_check_retries)
    name: str = ""
    is_async: bool = attrs.field(default=False)
    executor: str | None = attrs.field(default=None, validator=_check_executor)

    def __and__(self, other: Kind | Resources) -> Bound:
        if not isinstance(other, Kind | Resources):
            raise ResourceError(f"{self.name} & {other!r}: only resources combine with '&'")
        return attrs.evolve(self, request=self.request & other)

    def __matmul__(self, other: Kind | Resources) -> Bound:
        return self & other

    def options(
        self,
        *,
        priority: int | None = None,
        retries: int | None = None,
        name: str | None = None,
        executor: str | None = None,
    ) -> Bound:
        """The same bound function with other submission options."""
        changes: dict[str, Any] = {}
        if priority is not None:
            changes["priority"] = priority
        if retries is not None:
            changes["retries"] = retries
        if name is not None:
            changes["name"] = name
        if executor is not None:
            changes["executor"] = executor
        return attrs.evolve(self, **changes)

    def __call__(self, *args: Any, **kwargs: Any) -> TaskHandle:
        submitter = current_submitter()
        try:
            return submitter.submit(
                self.request,
                Call(self.fn, args, kwargs, self.is_async, self.executor or submitter.executor),
                name=self.name,
                priority=self.priority,
                retries=self.retries,
                parent=_current_task_id(),
            )
        except RuntimeError as error:
            if "async context" not in str(error):
                raise
            # A thread (a sync task with executor="thread") sees its session, not its loop.
            raise GrainlikeError(SYNC_TASKS_DO_NOT_SUBMIT) from None

    def __repr__(self) -> str:
        return f"<{self.name} @ {self.request!r}>"


def _current_task_id() -> int | None:
    """The id of the task this code runs in, if it runs in one (its subtasks are its own)."""
    context = task_context_or_none()
    return context.task_id if context is not None else None


def bind(fn: Any, resources: Kind | Resources) -> Bound:
    """``fn @ resources`` for a plain callable (installed into the resource operators)."""
    if isinstance(fn, Bound):
        return fn & resources
    if not callable(fn):
        raise ResourceError(f"{fn!r} @ {resources}: only a function can be bound to resources")
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)
    return Bound(fn, as_resources(resources), name=name, is_async=_is_async(fn))


def delayed(fn: Callable[..., Any]) -> Bound:
    """Make ``fn`` a bound function that asks for nothing until bound with ``@``."""
    return bind(fn, ZERO)


async def exec1(res: Kind | Resources, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run one call of ``fn`` with resources ``res`` and return its result."""
    return await bind(fn, as_resources(res))(*args, **kwargs)


set_binder(bind)
