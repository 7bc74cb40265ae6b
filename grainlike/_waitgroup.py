"""Grain-style wait groups: submit many, collect all results in submission order."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from .dispatch import TaskHandle
from .resource import Kind, Resources, as_resources

__all__ = ["WaitGroup", "open_waitgroup"]


class WaitGroup:
    """Tasks submitted inside ``async with gl.open_waitgroup() as wg``; ``wg.results`` after."""

    def __init__(self) -> None:
        self._handles: list[TaskHandle] = []
        self._results: list[Any] | None = None

    def submit(
        self, res: Kind | Resources, fn: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> TaskHandle:
        """Submit ``fn(*args, **kwargs)`` with resources ``res``."""
        from ._bound import bind

        handle = bind(fn, as_resources(res))(*args, **kwargs)
        self._handles.append(handle)
        return handle

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
    from ._session import gather_handles

    group = WaitGroup()
    try:
        yield group
    except BaseException:
        for handle in group._handles:
            handle.cancel()
        raise
    group._results = await gather_handles(group._handles)
