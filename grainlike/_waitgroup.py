"""Waiting for many: ``gl.gather`` and Grain-style wait groups."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import trio

from ._bound import bind
from .dispatch import TaskHandle, wait_all
from .resource import Kind, Resources, as_resources

__all__ = ["WaitGroup", "gather", "open_waitgroup"]


async def gather(*awaitables: Awaitable[Any]) -> list[Any]:
    """Await all, return their results in order; the first failure is raised and cancels the
    rest (the tasks among them that nobody else awaits)."""
    if all(isinstance(a, TaskHandle) for a in awaitables):
        return await wait_all([a for a in awaitables if isinstance(a, TaskHandle)])
    results: list[Any] = [None] * len(awaitables)

    async def one(index: int, awaitable: Awaitable[Any]) -> None:
        results[index] = await awaitable

    try:
        async with trio.open_nursery() as nursery:
            for index, awaitable in enumerate(awaitables):
                nursery.start_soon(one, index, awaitable)
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise
    return results


class WaitGroup:
    """Tasks submitted inside ``async with gl.open_waitgroup() as wg``; ``wg.results`` after."""

    def __init__(self) -> None:
        self._handles: list[TaskHandle] = []
        self._results: list[Any] | None = None

    def submit(
        self, res: Kind | Resources, fn: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> TaskHandle:
        """Submit ``fn(*args, **kwargs)`` with resources ``res``."""
        handle = bind(fn, as_resources(res))(*args, **kwargs)
        self._handles.append(handle)
        return handle

    @property
    def handles(self) -> list[TaskHandle]:
        """The handles of the tasks submitted so far, in submission order."""
        return list(self._handles)

    @property
    def results(self) -> list[Any]:
        """Results in submission order (available once the ``async with`` block has ended)."""
        if self._results is None:
            raise RuntimeError("wg.results is available after the `async with` block ends")
        return self._results


@asynccontextmanager
async def open_waitgroup() -> AsyncIterator[WaitGroup]:
    """A wait group: leaving the block waits for every task; the first failure is raised and
    cancels the tasks still pending."""
    group = WaitGroup()
    try:
        yield group
    except BaseException:
        for handle in group._handles:
            handle.cancel()
        raise
    group._results = await wait_all(group._handles)
