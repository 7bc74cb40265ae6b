"""What a running task can learn about itself: ``GVAR`` and ``current_allocation()``."""

from __future__ import annotations

from contextvars import ContextVar
from pathlib import Path

import attrs

from ..resource import Resources

__all__ = [
    "GVAR",
    "TaskContext",
    "UsageMeter",
    "current_allocation",
    "current_task_context",
    "set_task_context",
    "task_context_or_none",
]


@attrs.define(eq=False)
class UsageMeter:
    """What the processes a task started with ``run_process`` used, added up as they end.

    Attributes:
        processes: How many have ended.
        cpu: Their CPU seconds (user and system), each with its reaped descendants.
        peak_rss: The largest resident memory, in bytes, of the trees sampled together.
    """

    processes: int = 0
    cpu: float = 0.0
    peak_rss: int = 0
    #: The last sampled resident memory of each tree still running, by its leader's pid.
    _running: dict[int, int] = attrs.field(factory=dict)

    def sampled(self, pid: int, rss: int) -> None:
        """Record a sample of the tree under ``pid``: the peak is of all running trees at once."""
        self._running[pid] = rss
        self.peak_rss = max(self.peak_rss, sum(self._running.values()))

    def ended(self, pid: int, cpu: float, peak: int = 0) -> None:
        """The tree under ``pid`` ended, having used ``cpu`` seconds and, as far as the kernel
        says, at least ``peak`` resident bytes at once."""
        self._running.pop(pid, None)
        self.processes += 1
        self.cpu += cpu
        self.peak_rss = max(self.peak_rss, peak)


@attrs.frozen
class TaskContext:
    """The task being run: its allocation, its worker, and the worker's enforcement settings.

    Attributes:
        allocation: What the task was given.
        worker_id: The id of the worker that runs it.
        task_id: The dispatcher's id of the task.
        enforce_memory: Whether processes over the task's ``Memory`` are killed.
        scratch: The task's own directory, when its allocation holds ``Disk``.
        meters: Where ``run_process`` adds what its processes used, under the task's id
            (its worker's meters; ``None``: not measured here, as in a pool child, whose
            whole tree its worker measures).
    """

    allocation: Resources
    worker_id: str
    task_id: int
    enforce_memory: bool = False
    scratch: Path | None = None
    meters: dict[int, UsageMeter] | None = None

    def meter(self) -> UsageMeter | None:
        """The task's meter, made on first use (most tasks start no process)."""
        meters = self.meters
        if meters is None:
            return None
        meter = meters.get(self.task_id)
        if meter is None:
            meter = meters[self.task_id] = UsageMeter()
        return meter


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

    @property
    def scratch(self) -> Path:
        """The running task's own directory, when its allocation holds ``Disk``.

        A fresh directory (mode 0700) under the worker's scratch root, removed when the task
        ends; it is also ``TMPDIR`` of the task's processes.

        Raises:
            AttributeError: when the task asked for no ``Disk``.
        """
        context = current_task_context()
        if context.scratch is None:
            raise AttributeError(
                f"scratch: task {context.task_id} holds no Disk ({context.allocation}), so it "
                "has no scratch directory; request Disk(...) for one"
            )
        return context.scratch


GVAR = _TaskVariables()


def set_task_context(context: TaskContext) -> None:
    """Bind ``context`` in the current (task's own) context."""
    _CURRENT.set(context)
