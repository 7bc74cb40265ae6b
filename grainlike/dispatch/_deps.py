"""Handles as arguments: a call that takes another task's handle waits for that task.

A handle passed to a bound call, at the top level of its arguments or inside lists, tuples and
dicts there, is a dependency: the call is queued only once every such task succeeded, and then
runs with their values in place of the handles.  The first dependency that fails fails the
call with the same exception, without running it.

Both submitters use this: the dispatcher for calls made in its process, and a remote worker's
submitter for the subtasks its tasks make.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import outcome

from ..wire import Call
from ._handle import TaskHandle, unwrap
from ._records import Task

__all__ = ["Dependencies", "dependencies"]

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
