"""Handles as arguments: a call that takes another task's handle waits for that task.

A handle passed to a bound call, at the top level of its arguments or inside lists, tuples and
dicts there, is a dependency: the call is queued only once every such task succeeded, and then
runs with their values in place of the handles.  The first dependency that fails fails the
call with the same exception, without running it.

Both submitters use this: the dispatcher for calls made in its process, and a remote worker's
submitter for the subtasks its tasks make.

A large input crosses to each remote worker once (``SharedInputs``), however many of its
dependents run there, and is dropped there and here once no dependent that needs it is left.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import attrs
import outcome

from ..wire import Call, SharedResult, dumps_payload
from ._handle import TaskHandle, unwrap
from ._records import Task

__all__ = ["Dependencies", "ResultHolder", "SharedInputs", "dependencies", "first_failure"]

#: How deep inside lists, tuples and dicts handles are looked for.
_DEPTH = 3


def _find(value: Any, found: dict[int, Task], depth: int) -> None:
    kind = type(value)
    if kind is TaskHandle:
        found[id(value.task)] = value.task
    elif depth < _DEPTH and (kind is list or kind is tuple):
        for item in value:
            _find(item, found, depth + 1)
    elif depth < _DEPTH and kind is dict:
        for item in value.values():
            _find(item, found, depth + 1)


def dependencies(call: Call) -> list[Task]:
    """The tasks whose handles ``call`` takes as arguments (none, for almost every call)."""
    found: dict[int, Task] = {}
    for arg in call.args:
        _find(arg, found, 0)
    for arg in call.kwargs.values():
        _find(arg, found, 0)
    return list(found.values())


def _substitute(value: Any, depth: int) -> Any:
    kind = type(value)
    if kind is TaskHandle:
        return unwrap(value.task.result)
    if depth < _DEPTH and kind is list:
        return [_substitute(item, depth + 1) for item in value]
    if depth < _DEPTH and kind is tuple:
        return tuple(_substitute(item, depth + 1) for item in value)
    if depth < _DEPTH and kind is dict:
        return {key: _substitute(item, depth + 1) for key, item in value.items()}
    return value


def with_values(call: Call) -> Call:
    """``call`` with each handle among its arguments replaced by its task's value."""
    args = tuple(_substitute(arg, 0) for arg in call.args)
    kwargs = {key: _substitute(arg, 0) for key, arg in call.kwargs.items()}
    return Call(call.fn, args, kwargs, call.is_async, call.executor)


class Dependencies:
    """Waits for the dependencies of one dependent task, then says whether it may run.

    ``ready(task)`` is called once when every dependency succeeded (``task.work`` then holds
    their values); ``failed(task, error)`` once, with the first dependency's exception, when
    one failed.  A dependent that ended meanwhile (cancelled) hears nothing.
    """

    __slots__ = ("_failed", "_ready", "_remaining", "_task")

    def __init__(
        self,
        task: Task,
        waiting: list[Task],
        ready: Callable[[Task], None],
        failed: Callable[[Task, outcome.Error], None],
    ) -> None:
        self._task = task
        self._ready = ready
        self._failed = failed
        self._remaining = len(waiting)
        for dependency in waiting:
            if dependency.listeners is None:
                dependency.listeners = [self._one_done]
            else:
                dependency.listeners.append(self._one_done)

    def _one_done(self, dependency: Task) -> None:
        task = self._task
        if task.result is not None or self._remaining <= 0:
            return
        result = dependency.result
        if isinstance(result, outcome.Error):
            self._remaining = 0
            self._failed(task, result)
            return
        self._remaining -= 1
        if self._remaining == 0:
            assert isinstance(task.work, Call)
            task.work = with_values(task.work)
            self._ready(task)


def first_failure(waiting: list[Task]) -> outcome.Error | None:
    """The result of the first of ``waiting`` that already failed, if one did."""
    for dependency in waiting:
        if isinstance(dependency.result, outcome.Error):
            return dependency.result
    return None


#: An input whose pickle is at least this many bytes crosses once per worker; a smaller one
#: travels inside each dependent's call, which costs less than a reference and a message.
SHARE_FROM = 4096


class ResultHolder(Protocol):
    """A worker's link that keeps shared inputs until told to forget them."""

    def forget_results(self, task_ids: tuple[int, ...]) -> None:
        """No dependent that needs these inputs is left."""


@attrs.define(eq=False, slots=True)
class _Shared:
    task: Task
    dependents: int = 0
    data: bytes | None = None
    pickled: bool = False
    holders: list[ResultHolder] = attrs.field(factory=list)


class SharedInputs:
    """The inputs of dependents still in the dispatcher, and which workers hold which.

    ``add`` when a dependent is submitted, ``remove`` when it leaves the dispatcher; an input's
    pickle is made once, the first time a dependent of it goes to a remote worker, and kept
    (with the workers it was sent to) only while a dependent of it is left.
    """

    __slots__ = ("_entries", "_inputs_of")

    def __init__(self) -> None:
        self._entries: dict[int, _Shared] = {}
        self._inputs_of: dict[int, tuple[int, ...]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, dependent: Task, inputs: list[Task]) -> None:
        """``dependent`` takes the values of ``inputs``."""
        for task in inputs:
            entry = self._entries.get(task.id)
            if entry is None:
                entry = self._entries[task.id] = _Shared(task)
            entry.dependents += 1
        self._inputs_of[dependent.id] = tuple(task.id for task in inputs)

    def remove(self, dependent: Task) -> bool:
        """``dependent`` left the dispatcher: its inputs that no one else needs are dropped,
        here and on the workers that hold them.  ``False`` if it had no inputs."""
        ids = self._inputs_of.pop(dependent.id, None)
        if ids is None:
            return False
        for task_id in ids:
            entry = self._entries[task_id]
            entry.dependents -= 1
            if entry.dependents == 0:
                del self._entries[task_id]
                for holder in entry.holders:
                    holder.forget_results((task_id,))
        return True

    def for_call(
        self, dependent: Task, holder: ResultHolder, limit: int
    ) -> tuple[dict[int, int], list[SharedResult]]:
        """What packing ``dependent``'s call for ``holder`` needs: the references to write
        (``id`` of each large input value → its task ID) and the values to send first (those
        ``holder`` does not hold yet).  A value over ``limit`` bytes travels inline."""
        ids = self._inputs_of.get(dependent.id)
        refs: dict[int, int] = {}
        new: list[SharedResult] = []
        for task_id in ids or ():
            entry = self._entries[task_id]
            result = entry.task.result
            if not isinstance(result, outcome.Value):
                continue
            if not entry.pickled:
                entry.pickled = True
                try:
                    data = dumps_payload(result.value)
                except Exception:
                    data = None  # packing the call says why, for this dependent alone
                entry.data = data if data is not None and len(data) >= SHARE_FROM else None
            if entry.data is None or len(entry.data) > limit:
                continue
            refs[id(result.value)] = task_id
            if holder not in entry.holders:
                entry.holders.append(holder)
                new.append(SharedResult(task_id, entry.data))
        return refs, new
