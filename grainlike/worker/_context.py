"""What a running task can learn about itself: ``GVAR`` and ``current_allocation()``."""

from __future__ import annotations

from contextvars import ContextVar

import attrs

from ..resource import Resources

__all__ = [
    "GVAR",
    "TaskContext",
    "current_allocation",
    "current_task_context",
    "set_task_context",
    "task_context_or_none",
]


@attrs.frozen
class TaskContext:
    """The task being run: its allocation, its worker, and the worker's enforcement settings."""

    allocation: Resources
    worker_id: str
    task_id: int
    enforce_memory: bool = False


_CURRENT: ContextVar[TaskContext] = ContextVar("grainlike_task")


def current_task_context() -> TaskContext:
    """The context of the running task; ``RuntimeError`` outside a grainlike task."""
    try:
        return _CURRENT.get()
    except LookupError:
        raise RuntimeError(
            "not inside a grainlike task: GVAR and current_allocation() are only set while a "
            "task submitted with fn @ resources runs"
        ) from None


def task_context_or_none() -> TaskContext | None:
    """The context of the running task, or ``None`` outside a grainlike task."""
    return _CURRENT.get(None)


def current_allocation() -> Resources:
    """The resources the running task was given (``GVAR.res``)."""
    return current_task_context().allocation


class _TaskVariables:
    """Grain-style access to the running task: ``GVAR.res`` and ``GVAR.instance``."""

    __slots__ = ()

    @property
    def res(self) -> Resources:
        """The running task's allocation (e.g. ``GVAR.res.c`` are its core IDs)."""
        return current_task_context().allocation

    @property
    def instance(self) -> str:
        """The id of the worker running the task."""
        return current_task_context().worker_id

    @property
    def task_id(self) -> int:
        """The running task's id."""
        return current_task_context().task_id


GVAR = _TaskVariables()


def set_task_context(context: TaskContext) -> None:
    """Bind ``context`` in the current (task's own) context."""
    _CURRENT.set(context)
