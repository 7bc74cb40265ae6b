"""A running dispatcher with its embedded worker and services: ``gl.run`` and ``gl.open_session``.

The session owns the lifecycle: it starts the dispatcher, the observers (event log, progress
bar), the server for remote workers and the embedded worker, each with ``nursery.start``, and
stops them when ``main`` (or the ``async with`` block) ends.  What a user calls inside it
(bound calls, ``gl.exec1``, ``gl.gather``) lives in ``_bound.py`` and ``_waitgroup.py``.

Errors reach the user as themselves: the session's nursery would wrap an exception from
``main`` in an ``ExceptionGroup`` of grainlike's own making, so that one group is unwrapped
(a user's own ``ExceptionGroup`` stays intact inside it).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from functools import partial
from pathlib import Path
from typing import Any, TypedDict, TypeVar, Unpack

import attrs
import trio

from ._exceptions import ConfigError, GrainlikeError
from ._submitter import _SUBMITTER
from .dispatch import (
    HEAD,
    Dispatcher,
    DispatcherConfig,
    Journal,
    LearnedLimits,
    LearningRule,
    ServerConfig,
    TaskHandle,
    serve_workers,
)
from .resource import Resources, ResourceSpec, parse_resources
from .wire import Call, check_executor
from .worker import LocalWorker, overcommitted

__all__ = [
    "DEFAULT_KEY_FILE",
    "DEFAULT_STATS",
    "LEGACY_STATS",
    "Session",
    "SessionOptions",
    "current_session",
    "explain",
    "open_session",
    "run",
]

T = TypeVar("T")

log = logging.getLogger("grainlike")

_SESSION: ContextVar[Session] = ContextVar("grainlike_session")

#: Where learned time limits persist unless the caller says otherwise.
DEFAULT_STATS = Path.home() / ".local" / "state" / "grainlike" / "learned.db"
#: Where they persisted, as JSON, before the learned store; migrated on first use.
LEGACY_STATS = DEFAULT_STATS.with_name("wtime-stats.json")
#: Where a local run keeps its generated shared key (mode 0600).
DEFAULT_KEY_FILE = Path.home() / ".config" / "grainlike" / "key"
#: Seconds an unsatisfiable request waits when remote workers may still join.
LISTENING_UNSATISFIABLE_GRACE = 60.0


class SessionOptions(TypedDict, total=False):
    """The keywords of ``gl.run`` and ``gl.open_session``; each is optional.

    Attributes:
        resources: Overrides the embedded worker's detected capacity per kind.
        local: Run an embedded worker (default True).
        listen: ``HOST:PORT`` where remote workers may also connect.
        name: The embedded worker's id.
        pools: Cluster-wide counters, e.g. ``{"license": 3}``.
        max_retries: Retries of a task whose worker was lost (default 3).
        starvation_bound: Seconds before a waiting large task gets a reservation (default 30).
        unsatisfiable_grace: Seconds an unsatisfiable request waits (default 0 embedded,
            60 when listening).
        no_worker_grace: Seconds with no worker at all before queued tasks fail (default: wait).
        stats: The learned store (``None``: learn nothing across runs).
        learning: A ``LearningRule``.
        enforce_memory: Kill processes over their ``Memory`` request (a group request always is).
        scratch: The embedded worker's scratch root: ``Disk`` tasks get their directories
            there, and its free space is the disk it offers (default: the temp dir).
        events: A JSON-lines event log path.
        progress: Show a progress bar.
        key: The shared key for remote workers (default ``GRAINLIKE_KEY`` or the local key).
        tls: A server ``ssl.SSLContext`` for remote workers.
        heartbeat_interval: Seconds between heartbeats (default 1).
        heartbeat_timeout: Seconds of silence after which a peer is gone (default 10).
        handshake_timeout: Seconds a connecting peer has to authenticate (default 10).
        max_pending_handshakes: Connections that may be authenticating at once; more are
            closed at once, and their workers try again (default 128).
        max_frame: The largest frame in bytes (default 64 MiB).
        pipeline_window: Seconds of short tasks sent ahead per running one (0: off).
        pipeline_depth: At most this many tasks sent ahead per running one (default 32).
        journal: A SQLite journal that makes the run durable: recorded successes are not
            run again (docs/durable-runs.md).
        rerun: With ``journal``, run everything again, whatever was recorded.
        executor: Where sync functions run: ``"process"`` (the default: a warm worker process
            pinned to the task's cores) or ``"thread"`` (a thread of the worker, sharing its
            memory); ``bound.options(executor=...)`` overrides it per function.
    """

    resources: ResourceSpec | None
    local: bool
    listen: str | None
    name: str | None
    pools: ResourceSpec | None
    max_retries: int
    starvation_bound: float
    unsatisfiable_grace: float
    no_worker_grace: float | None
    stats: str | os.PathLike[str] | None
    learning: LearningRule | None
    enforce_memory: bool
    scratch: str | os.PathLike[str] | None
    events: str | os.PathLike[str] | None
    progress: bool
    key: bytes | None
    tls: ssl.SSLContext | None
    heartbeat_interval: float
    heartbeat_timeout: float
    handshake_timeout: float
    max_pending_handshakes: int
    max_frame: int
    pipeline_window: float
    pipeline_depth: int
    journal: str | os.PathLike[str] | None
    rerun: bool
    executor: str


_DISPATCHER_OPTIONS = frozenset(
    {
        "max_retries",
        "starvation_bound",
        "unsatisfiable_grace",
        "no_worker_grace",
        "pools",
        "pipeline_window",
    }
)
_SERVER_OPTIONS = frozenset(
    {
        "heartbeat_interval",
        "heartbeat_timeout",
        "handshake_timeout",
        "max_pending_handshakes",
        "max_frame",
        "pipeline_depth",
    }
)


@attrs.define(eq=False)
class Session:
    """The dispatcher that ``fn @ res`` calls submit to, and what serves it (a ``Submitter``)."""

    dispatcher: Dispatcher
    local_worker: LocalWorker | None = None
    #: ``HOST:PORT`` where remote workers connect, when the session listens.
    address: str | None = None
    #: Where sync functions run unless bound with ``.options(executor=...)``.
    executor: str = "process"

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
        """Submit one call to the dispatcher."""
        return self.dispatcher.submit(
            request, work, name=name, priority=priority, retries=retries, parent=parent
        )

    def release(self, task_id: int) -> None:
        """Task ``task_id`` gives its allocation back to its worker for a while."""
        self.dispatcher.release(task_id)

    async def reacquire(self, task_id: int) -> Resources | None:
        """Task ``task_id`` takes its request again on its worker; waits until it has it."""
        granted: list[Resources | None] = []
        done = trio.Event()

        def give(allocation: Resources | None) -> None:
            granted.append(allocation)
            done.set()

        self.dispatcher.reacquire(task_id, give)
        await done.wait()
        return granted[0]


def current_session() -> Session:
    """The session of the running ``gl.run``; ``GrainlikeError`` outside one."""
    try:
        return _SESSION.get()
    except LookupError:
        raise GrainlikeError(
            "no grainlike dispatcher is running: call bound functions inside the main "
            "passed to gl.run(main) (or inside `async with gl.open_session()`)"
        ) from None


def default_key() -> bytes:
    """``GRAINLIKE_KEY`` when set, else the local key file (generated on first use)."""
    from .wire import ensure_local_key, key_from_env_or_file

    return key_from_env_or_file(None, os.environ) or ensure_local_key(DEFAULT_KEY_FILE)


def _local_capacity(
    resources: ResourceSpec | None, scratch: str | os.PathLike[str] | None = None
) -> Resources:
    from .worker import detect_capacity

    return detect_capacity(override=resources, scratch=scratch)


def _configs(options: SessionOptions) -> tuple[DispatcherConfig, ServerConfig]:
    """The dispatcher's and the server's configuration: what the caller gave, the classes'
    own defaults for the rest (they validate, raising ``ConfigError``)."""
    unknown = set(options) - set(SessionOptions.__annotations__)
    if unknown:
        raise TypeError(f"unexpected keyword argument(s): {', '.join(sorted(unknown))}")
    given: dict[str, Any] = dict(options)
    dispatcher = {k: v for k, v in given.items() if k in _DISPATCHER_OPTIONS}
    if "unsatisfiable_grace" not in dispatcher and given.get("listen") is None:
        dispatcher["unsatisfiable_grace"] = 0.0  # embedded only: no worker may join later
    elif "unsatisfiable_grace" not in dispatcher:
        dispatcher["unsatisfiable_grace"] = LISTENING_UNSATISFIABLE_GRACE
    if dispatcher.get("pools") is not None:
        dispatcher["pools"] = parse_resources(dispatcher["pools"], capacity=True)
    server = {k: v for k, v in given.items() if k in _SERVER_OPTIONS}
    return DispatcherConfig(**dispatcher), ServerConfig(**server)


def _is_loopback(host: str) -> bool:
    """Whether the bound address ``host`` is reachable only from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]").partition("%")[0]).is_loopback
    except ValueError:
        return False


def _unwrap(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one exception inside the session nursery's group, or the group when there are
    several (then several things really went wrong at once)."""
    if len(group.exceptions) == 1:
        return group.exceptions[0]
    return group


@asynccontextmanager
async def open_session(**options: Unpack[SessionOptions]) -> AsyncIterator[Session]:
    """Run a dispatcher (and, with ``local``, an embedded worker) for the duration of the block.

    The keywords are those of ``gl.run`` (``SessionOptions``).  When the block ends, tasks
    that are still queued or running are cancelled, with one logged warning saying how many.
    """
    if not options.get("local", True) and options.get("listen") is None:
        raise ConfigError("local=False needs listen='HOST:PORT': otherwise no worker can run tasks")
    config, server = _configs(options)
    executor = check_executor(options.get("executor", "process"))
    journal_path, rerun = options.get("journal"), options.get("rerun", False)
    if rerun and journal_path is None:
        raise ConfigError("rerun=True needs journal=PATH: without a journal everything runs anyway")
    stats = options.get("stats", DEFAULT_STATS)
    legacy = LEGACY_STATS if "stats" not in options else None
    learned = LearnedLimits.open(stats, options.get("learning"), legacy=legacy)
    journal = None
    if journal_path is not None:
        try:
            journal = await trio.to_thread.run_sync(
                partial(Journal.open, journal_path, rerun=rerun)
            )
        except BaseException:
            learned.close()
            raise
    dispatcher = Dispatcher(config, learned, journal=journal)
    session = Session(dispatcher, executor=executor)
    token = _SESSION.set(session)
    submitter = _SUBMITTER.set(session)
    try:
        error: BaseException | None = None
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(learned.serve)
                if journal is not None:
                    await nursery.start(journal.serve)
                await _start_services(nursery, session, options, server)
                try:
                    yield session
                finally:
                    abandoned = dispatcher.cancel_all()
                    if abandoned:
                        log.warning(
                            "main ended while %d task(s) were still queued or running: "
                            "they were cancelled",
                            abandoned,
                        )
                    if journal is not None:
                        with trio.CancelScope(shield=True):  # what finished is kept, whatever
                            await journal.flush()
                    nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            error = _unwrap(group)
            if error is group:
                raise
        if error is not None:
            # Raised here, outside the handler, so that the exception keeps its own context
            # rather than gaining the group as one.
            raise error
    finally:
        _SUBMITTER.reset(submitter)
        _SESSION.reset(token)
        learned.close()
        if journal is not None:
            journal.close()


async def _start_services(
    nursery: trio.Nursery, session: Session, options: SessionOptions, server: ServerConfig
) -> None:
    """The dispatcher, the observers, the server for remote workers, the embedded worker."""
    dispatcher = session.dispatcher
    await nursery.start(dispatcher.serve)
    head = LocalWorker(HEAD, dispatcher, options.get("enforce_memory", False))
    await nursery.start(head.serve)
    dispatcher.set_head(head)
    for observer in _observers(options.get("events"), options.get("progress", False)):
        await nursery.start(observer.serve, dispatcher)
    listen = options.get("listen")
    if listen is not None:
        key = options.get("key") or default_key()
        tls = options.get("tls")
        host, port = await nursery.start(serve_workers, dispatcher, listen, key, tls, server)
        session.address = f"{host}:{port}"
        if tls is None and not _is_loopback(host):
            log.warning(
                "listening on %s without TLS: anyone on the network path can read tasks and "
                "results and, relaying the key handshake, send tasks of their own; use TLS "
                "(grainlike run --tls auto, see docs/protocol.md)",
                session.address,
            )
    if options.get("local", True):
        scratch = options.get("scratch")
        # Without a scratch root, the one-argument call that tests stand in for.
        detect = _local_capacity if scratch is None else partial(_local_capacity, scratch=scratch)
        capacity = await trio.to_thread.run_sync(detect, options.get("resources"))
        warning = overcommitted(capacity)
        if warning is not None:
            log.warning("the embedded worker's %s", warning)
        name = options.get("name") or f"local-{socket.gethostname()}"
        worker_id = dispatcher.unique_worker_id(name)
        session.local_worker = LocalWorker(
            worker_id,
            dispatcher,
            options.get("enforce_memory", False),
            scratch_root=None if scratch is None else Path(scratch).expanduser().absolute(),
        )
        await nursery.start(session.local_worker.serve)
        dispatcher.add_worker(worker_id, capacity, session.local_worker)


def _observers(events: str | os.PathLike[str] | None, progress: bool) -> list[Any]:
    from ._observe import EventLog, ProgressBar

    observers: list[Any] = []
    if events is not None:
        observers.append(EventLog(Path(events)))
    if progress:
        observers.append(ProgressBar())
    return observers


def run(main: Callable[..., Awaitable[T]], *args: Any, **options: Unpack[SessionOptions]) -> T:
    """Run ``await main(*args)`` under a dispatcher and return its result.

    Returns what ``main`` returns and raises what it raises, itself (never wrapped in an
    ``ExceptionGroup`` of grainlike's making).  The keywords are ``SessionOptions``: e.g.
    ``resources="cores:4"`` (the embedded worker's capacity), ``listen="HOST:PORT"`` (also
    accept remote workers), ``local=False``, ``events="run.jsonl"``.
    """

    async def session_main() -> T:
        async with open_session(**options):
            return await main(*args)

    return trio.run(session_main)


def explain(handle: TaskHandle) -> str:
    """Why a submitted task waits (or where it runs)."""
    return current_session().dispatcher.explain(handle.task)
