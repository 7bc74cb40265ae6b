"""A running dispatcher with its embedded worker, and the calls that use it from ``main``."""

from __future__ import annotations

import os
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TypeVar

import attrs
import trio

from ._exceptions import ConfigError, GrainlikeError
from .dispatch import (
    Dispatcher,
    DispatcherConfig,
    LearnedLimits,
    LearningRule,
    ServerConfig,
    TaskHandle,
    serve_workers,
    wait_all,
)
from .resource import Kind, Resources, ResourceSpec, as_resources, parse_resources
from .wire._call import check_executor
from .worker import LocalWorker

__all__ = ["Session", "current_session", "exec1", "explain", "gather", "open_session", "run"]

T = TypeVar("T")

_SESSION: ContextVar[Session] = ContextVar("grainlike_session")

#: Where learned time limits persist unless the caller says otherwise.
DEFAULT_STATS = Path.home() / ".local" / "state" / "grainlike" / "wtime-stats.json"


@attrs.define(eq=False)
class Session:
    """The dispatcher that ``fn @ res`` calls submit to, and what serves it."""

    dispatcher: Dispatcher
    local_worker: LocalWorker | None = None
    #: ``HOST:PORT`` where remote workers connect, when the session listens.
    address: str | None = None
    #: Where sync functions run unless bound with ``.options(executor=...)``.
    executor: str = "process"


def current_session() -> Session:
    """The session of the running ``gl.run``; ``GrainlikeError`` outside one."""
    try:
        return _SESSION.get()
    except LookupError:
        raise GrainlikeError(
            "no grainlike dispatcher is running: call bound functions inside the main "
            "passed to gl.run(main) (or inside `async with gl.open_session()`)"
        ) from None


#: Where a local run keeps its generated shared key (mode 0600).
DEFAULT_KEY_FILE = Path.home() / ".config" / "grainlike" / "key"


def default_key() -> bytes:
    """``GRAINLIKE_KEY`` when set, else the local key file (generated on first use)."""
    from .wire import ensure_local_key, key_from_env_or_file

    return key_from_env_or_file(None, os.environ) or ensure_local_key(DEFAULT_KEY_FILE)


def _local_capacity(resources: ResourceSpec | None) -> Resources:
    from .worker import detect_capacity

    return detect_capacity(override=resources)


@asynccontextmanager
async def open_session(
    *,
    resources: ResourceSpec | None = None,
    local: bool = True,
    listen: str | None = None,
    pools: ResourceSpec | None = None,
    max_retries: int = 3,
    starvation_bound: float = 30.0,
    unsatisfiable_grace: float | None = None,
    stats: str | Path | None = DEFAULT_STATS,
    learning: LearningRule | None = None,
    enforce_memory: bool = False,
    events: str | Path | None = None,
    progress: bool = False,
    name: str | None = None,
    key: bytes | None = None,
    tls: ssl.SSLContext | None = None,
    heartbeat_interval: float = 1.0,
    heartbeat_timeout: float = 10.0,
    max_frame: int = 64 * 2**20,
    pipeline_window: float = 0.02,
    pipeline_depth: int = 32,
    executor: str = "process",
) -> AsyncIterator[Session]:
    """Run a dispatcher (and, with ``local``, an embedded worker) for the duration of the block.

    The keywords are those of ``gl.run``.
    """
    if not local and listen is None:
        raise ConfigError("local=False needs listen='HOST:PORT': otherwise no worker can run tasks")
    grace = unsatisfiable_grace if unsatisfiable_grace is not None else (60.0 if listen else 0.0)
    if grace < 0:
        raise ConfigError(f"unsatisfiable_grace={grace!r}: must be 0 (fail at once) or more")
    if not pipeline_window >= 0:
        raise ConfigError(f"pipeline_window={pipeline_window!r}: must be 0 (off) or more seconds")
    if (
        isinstance(pipeline_depth, bool)
        or not isinstance(pipeline_depth, int)
        or pipeline_depth < 0
    ):
        raise ConfigError(f"pipeline_depth={pipeline_depth!r}: must be a whole number, 0 or more")
    check_executor(executor)
    config = DispatcherConfig(
        max_retries=max_retries,
        starvation_bound=starvation_bound,
        unsatisfiable_grace=grace,
        pools=parse_resources(pools, capacity=True) if pools is not None else None,
        pipeline_window=pipeline_window,
    )
    server = ServerConfig(
        heartbeat_interval=heartbeat_interval,
        heartbeat_timeout=heartbeat_timeout,
        max_frame=max_frame,
        pipeline=pipeline_depth,
    )
    learned = LearnedLimits.open(stats, learning)
    dispatcher = Dispatcher(config, learned)
    session = Session(dispatcher, executor=executor)
    token = _SESSION.set(session)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(dispatcher.serve)
            observers = _observers(events, progress)
            for observer in observers:
                await nursery.start(observer.serve, dispatcher)
            if listen is not None:
                host, port = await nursery.start(
                    serve_workers, dispatcher, listen, key or default_key(), tls, server
                )
                session.address = f"{host}:{port}"
            if local:
                capacity = await trio.to_thread.run_sync(_local_capacity, resources)
                worker_id = dispatcher.unique_worker_id(name or f"local-{socket.gethostname()}")
                session.local_worker = LocalWorker(worker_id, dispatcher, enforce_memory)
                await nursery.start(session.local_worker.serve)
                dispatcher.add_worker(worker_id, capacity, session.local_worker)
            try:
                yield session
            finally:
                nursery.cancel_scope.cancel()
    finally:
        _SESSION.reset(token)
        learned.save()


def _observers(events: str | Path | None, progress: bool) -> list[Any]:
    from ._observe import EventLog, ProgressBar

    observers: list[Any] = []
    if events is not None:
        observers.append(EventLog(Path(events)))
    if progress:
        observers.append(ProgressBar())
    return observers


def run(main: Callable[..., Awaitable[T]], *args: Any, **options: Any) -> T:
    """Run ``await main(*args)`` under a dispatcher and return its result.

    Keywords: ``resources`` (overrides the embedded worker's detected capacity per kind),
    ``local`` (run an embedded worker; default True), ``listen="HOST:PORT"`` (also accept
    remote workers), ``pools`` (cluster-wide counters, e.g. ``{"license": 3}``),
    ``max_retries`` (per task, after lost workers), ``starvation_bound`` (seconds before a
    waiting large task gets a reservation), ``unsatisfiable_grace`` (seconds, default 0
    embedded / 60 with remote workers), ``stats`` (learned-limits file), ``learning``
    (a ``LearningRule``), ``enforce_memory``, ``events`` (JSON-lines event log path),
    ``progress`` (a progress bar), ``name`` (the embedded worker's id);
    for remote workers ``heartbeat_interval``/``heartbeat_timeout``, ``max_frame``,
    ``pipeline_window`` (seconds of short tasks sent ahead to wait behind each running one,
    by their measured duration; 0 turns pipelining off) and ``pipeline_depth`` (at most that
    many per running task); ``executor`` (``"process"``, the default: sync functions run in
    worker processes pinned to their cores; ``"thread"``: in worker threads).
    """

    async def session_main() -> T:
        async with open_session(**options):
            return await main(*args)

    return trio.run(session_main)


async def exec1(res: Kind | Resources, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run one call of ``fn`` with resources ``res`` and return its result."""
    from ._bound import bind

    return await bind(fn, as_resources(res))(*args, **kwargs)


async def gather(*awaitables: Awaitable[Any]) -> list[Any]:
    """Await all, return their results in order; the first failure cancels the rest."""
    if all(isinstance(a, TaskHandle) for a in awaitables):
        return await gather_handles([a for a in awaitables if isinstance(a, TaskHandle)])
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


async def gather_handles(handles: list[TaskHandle]) -> list[Any]:
    """Results of already-submitted tasks, in order; the first failure cancels the rest."""
    return await wait_all(handles)


def explain(handle: TaskHandle) -> str:
    """Why a submitted task waits (or where it runs)."""
    return current_session().dispatcher.explain(handle.task)
