"""The remote worker: connects to a dispatcher, authenticates, and runs what it is sent.

Its tasks run in the same ``LocalWorker`` as the embedded worker's; only the reporter differs:
here it coalesces starts and results into batches that the connection's outbox sends.

A worker outlives its dispatcher: when the connection is lost (not when the dispatcher said
goodbye or drained it), its running tasks are cancelled and it dials the same address again,
with backoff, for ``reconnect_timeout`` seconds, authenticating as on first contact.  So a
dispatcher restarted after a crash (``grainlike run --journal`` resumes the run) gets its
batch-job workers back.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs
import outcome
import trio

from .._exceptions import (
    AuthenticationError,
    ConfigError,
    GrainlikeError,
    ProtocolError,
    TaskFailedError,
)
from ..resource import Resources, WTime
from ..resource._units import format_seconds
from ..wire import (
    DEFAULT_MAX_FRAME,
    PROTOCOL_VERSION,
    AllocationRegained,
    Call,
    CallUnpacker,
    CancelTasks,
    Drain,
    Draining,
    ForgetResults,
    FramedStream,
    Goodbye,
    Heartbeat,
    Hello,
    Message,
    Outbox,
    Refused,
    RunTasks,
    ShareResults,
    Silence,
    SubmitTasks,
    SubtaskResult,
    SubtasksFinished,
    TaskOutcome,
    TasksFinished,
    TasksStarted,
    Usage,
    Welcome,
    decode,
    encode,
    open_connection,
    pack_exception,
    pack_outcome,
)
from ._local import LocalWorker
from ._scratch import scratch_root
from ._uplink import Uplink

__all__ = ["Departure", "WorkerOptions", "serve_worker"]

log = logging.getLogger("grainlike.worker")


def _seconds(_: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
        raise ConfigError(
            f"--{attribute.name.replace('_', '-')} {value!r}: give seconds, 0 or more"
        )


def _frame_limit(_: object, attribute: attrs.Attribute[Any], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1024 <= value < 2**32:
        raise ConfigError(f"--max-frame {value!r}: give 1024 to {2**32 - 1} bytes")


def _scratch(value: str | os.PathLike[str] | None) -> Path | None:
    return None if value is None else scratch_root(value)[0]


@attrs.frozen
class WorkerOptions:
    """How a remote worker behaves; every value is checked here (``ConfigError``).

    Attributes:
        name: The worker's requested id (default: the host name).
        connect_timeout: Seconds to keep trying to reach the dispatcher.
        heartbeat_timeout: Seconds of silence from the dispatcher after which it is gone.
        drain_margin: With a finite walltime, stop taking tasks this many seconds before the
            end and leave once the running ones finish.
        exit_margin: Leave regardless this many seconds before the end (the dispatcher runs
            what was still running elsewhere).
        enforce_memory: Kill processes over their task's ``Memory`` (a group's always are).
        max_frame: The largest frame in bytes this side accepts.
        reconnect_timeout: Seconds to keep trying to reach the dispatcher again after the
            connection to it was lost (``0``: leave at once).
        scratch: The scratch root, where ``Disk`` tasks get their directories (default: the
            temp dir); its free space is what ``detect_capacity(scratch=...)`` offers.
    """

    name: str = ""
    connect_timeout: float = attrs.field(default=60.0, validator=_seconds)
    heartbeat_timeout: float = attrs.field(default=10.0, validator=_seconds)
    drain_margin: float = attrs.field(default=60.0, validator=_seconds)
    exit_margin: float = attrs.field(default=10.0, validator=_seconds)
    enforce_memory: bool = False
    max_frame: int = attrs.field(default=DEFAULT_MAX_FRAME, validator=_frame_limit)
    reconnect_timeout: float = attrs.field(default=300.0, validator=_seconds)
    scratch: Path | None = attrs.field(default=None, converter=_scratch)


@attrs.frozen
class Departure:
    """Why a worker stopped; ``lost`` when the dispatcher went away unannounced."""

    reason: str
    lost: bool = False

    def __str__(self) -> str:
        return self.reason


@attrs.frozen
class _Received:
    """A task as the worker is handed it (what ``LocalWorker`` reads of an assignment)."""

    id: int
    attempt: int
    work: Call
    granted: Resources
    hard_limit: float | None
    after: int | None


@attrs.define(eq=False)
class _Reports:
    """The remote worker's reporter: coalesces starts and results until the outbox sends.

    A task that ends before its start was sent is reported once, by its outcome.
    """

    outbox: Outbox
    started: dict[int, int] = attrs.field(factory=dict)
    finished: list[TaskOutcome] = attrs.field(factory=list)

    def task_started(self, worker_id: str, task_id: int, attempt: int) -> None:
        self.started[task_id] = attempt
        self.outbox.poke()

    def task_done(
        self,
        worker_id: str,
        task_id: int,
        attempt: int,
        result: outcome.Outcome[Any],
        duration: float,
        usage: Usage | None = None,
    ) -> None:
        self.started.pop(task_id, None)
        ok, payload = pack_outcome(result)
        self.finished.append(
            TaskOutcome(task_id, attempt, ok, payload, max(0.0, duration), time.time(), usage)
        )
        self.outbox.poke()

    def remove_worker(self, worker_id: str, reason: str, *, lost: bool = True) -> None:
        self.outbox.post(Goodbye(reason))

    def backlog(self) -> int:
        return len(self.started) + len(self.finished)

    def flush(self) -> list[Message]:
        messages: list[Message] = []
        if self.started:
            started, self.started = self.started, {}
            messages.append(TasksStarted(tuple(started), tuple(started.values())))
        if self.finished:
            messages.append(TasksFinished(tuple(self.finished)))
            self.finished = []
        return messages


def _shrink(uplink: Uplink) -> Callable[[Message, int, int], list[Message]]:
    """What the outbox does with a message too large for any frame: a result becomes its
    task's failure, a subtask fails where it was submitted; the worker goes on."""

    def oversized(message: Message, size: int, limit: int) -> list[Message]:
        if isinstance(message, SubmitTasks):
            (subtask,) = message.tasks
            error = TaskFailedError(
                f"subtask {subtask.name}: its call is {size} bytes, over the frame limit of "
                f"{limit} bytes (pass large data through files, or raise the frame limit)"
            )
            failed = SubtaskResult(subtask.ref, False, pack_exception(error))
            uplink.deliver(SubtasksFinished((failed,)))
            return []
        return _shrink_result(message, size, limit)

    return oversized


def _shrink_result(message: Message, size: int, limit: int) -> list[Message]:
    if not isinstance(message, TasksFinished):
        raise ProtocolError(f"a {type(message).__name__} of {size} bytes exceeds {limit}")
    (item,) = message.outcomes
    error = TaskFailedError(
        f"task {item.task_id}: its result of {size} bytes exceeds the frame limit of {limit} "
        "bytes (return large data through files, or raise --max-frame on both sides)"
    )
    return [TasksFinished((attrs.evolve(item, ok=False, payload=pack_exception(error)),))]


async def serve_worker(
    address: str,
    key: bytes,
    capacity: Resources,
    options: WorkerOptions | None = None,
    tls: ssl.SSLContext | None = None,
    uplink: Uplink | None = None,
) -> Departure:
    """Join the dispatcher at ``address`` (``HOST:PORT``) and run tasks until told to leave.

    ``uplink`` carries what the worker's tasks ask of the dispatcher (subtasks, allocations).
    When the connection is lost, it joins again (see the module's docstring), until the
    dispatcher is back or ``reconnect_timeout`` seconds have passed.

    Returns why the worker stopped (``lost`` when the dispatcher went away and did not come
    back).  Raises ``AuthenticationError`` when the keys differ (on first contact or a later
    one), ``GrainlikeError`` when the dispatcher cannot be reached at first or refuses the
    worker (with its reason).
    """
    settings = options or WorkerOptions()

    async def visit(connect_timeout: float, again: bool = False) -> Departure:
        async with open_connection(
            address, key, tls=tls, max_frame=settings.max_frame, connect_timeout=connect_timeout
        ) as framed:
            return await join(framed, capacity, settings, address, uplink, again=again)

    departure = await visit(settings.connect_timeout)
    back = True
    while departure.lost and back and settings.reconnect_timeout > 0:
        departure, back = await _come_back(visit, departure, address, capacity, settings)
    return departure


async def _come_back(
    visit: Callable[[float, bool], Awaitable[Departure]],
    lost: Departure,
    address: str,
    capacity: Resources,
    settings: WorkerOptions,
) -> tuple[Departure, bool]:
    """Join the dispatcher again after ``lost``: how that visit ended and ``True``, or why
    there was none and ``False``.

    Until the deadline, anything but a failed key or TLS check is tried again: the address may
    not listen yet, or may still be the old dispatcher shutting down.
    """
    timeout = settings.reconnect_timeout
    walltime = capacity.get(WTime)
    if walltime is not None:  # no use waiting past the end of the batch job
        timeout = max(0.0, min(timeout, walltime.remaining() - settings.exit_margin))
    log.warning("%s; reconnecting to %s for up to %s", lost, address, format_seconds(timeout))
    deadline = trio.current_time() + timeout
    delay, last = 0.1, "none reached it"
    while (left := deadline - trio.current_time()) > 0:
        try:
            return await visit(left, True), True
        except AuthenticationError:
            raise
        except GrainlikeError as error:
            last = str(error)
            log.debug("not back yet: %s", error)
        await trio.sleep(min(delay, max(0.0, deadline - trio.current_time())))
        delay = min(delay * 2, 5.0)
    gone = Departure(
        f"{lost}, and it did not come back within {format_seconds(timeout)} "
        f"(--reconnect-timeout; last try: {last})",
        lost=True,
    )
    return gone, False


async def join(
    framed: FramedStream,
    capacity: Resources,
    settings: WorkerOptions,
    address: str,
    uplink: Uplink | None = None,
    *,
    again: bool = False,
) -> Departure:
    """Join the dispatcher at the other end of an authenticated ``framed``; run its tasks.

    ``again`` says that this worker was there before and lost the dispatcher (for the log).
    """
    host = socket.gethostname()
    hello = Hello(
        PROTOCOL_VERSION, settings.name or host, host, os.getpid(), capacity, settings.max_frame
    )
    try:
        await framed.send(encode(hello))
        reply = decode(await framed.receive())
    except (trio.EndOfChannel, trio.BrokenResourceError) as error:
        raise GrainlikeError(
            f"the dispatcher at {address} closed the connection before welcoming this worker "
            f"({type(error).__name__})"
        ) from None
    if isinstance(reply, Refused):
        raise GrainlikeError(f"the dispatcher at {address} refused this worker: {reply.reason}")
    if not isinstance(reply, Welcome):
        raise GrainlikeError(f"the dispatcher at {address} answered {type(reply).__name__}")
    framed.limit_sends(reply.max_frame)
    log.info(
        "%s %s as %s with %s", "rejoined" if again else "joined", address, reply.worker_id, capacity
    )
    return await _work(framed, reply, capacity, settings, uplink or Uplink())


#: What a dispatcher may send to a worker; anything else breaks the protocol.
_FROM_DISPATCHER = (RunTasks, CancelTasks, Drain, Heartbeat, Goodbye)
#: What a dispatcher sends for the worker's tasks (through the uplink).
_FOR_TASKS = (SubtasksFinished, AllocationRegained)


async def _work(
    framed: FramedStream,
    welcome: Welcome,
    capacity: Resources,
    settings: WorkerOptions,
    uplink: Uplink,
) -> Departure:
    outbox = Outbox(oversized=_shrink(uplink))
    reports = _Reports(outbox)
    runner = LocalWorker(
        welcome.worker_id, reports, settings.enforce_memory, scratch_root=settings.scratch
    )
    outbox.flush, outbox.backlog, outbox.busy = reports.flush, reports.backlog, runner.busy
    calls = CallUnpacker()
    departure = Departure("the dispatcher was lost: it closed the connection", lost=True)
    drained: str | None = None
    uplink.connect(outbox)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(runner.serve)

            async def send_then_stop() -> None:
                await outbox.serve(framed, welcome.heartbeat_interval)
                if outbox.farewell is not None:
                    nursery.cancel_scope.cancel()
                # Else the connection broke under a write: what the dispatcher sent before it
                # closed (a Goodbye saying why) is still to be read, and the receiving side
                # ends at the end of the stream.

            nursery.start_soon(send_then_stop)
            walltime = capacity.get(WTime)
            if walltime is not None and math.isfinite(walltime.remaining()):
                nursery.start_soon(_watch_walltime, walltime, runner, outbox, settings)
            silence = Silence(settings.heartbeat_timeout)
            try:
                with trio.CancelScope() as receiving:
                    nursery.start_soon(silence.watch, receiving)
                    while True:
                        message = decode(await framed.receive())
                        silence.heard()
                        if isinstance(message, RunTasks):
                            runner.run_tasks(_unpack_tasks(message, calls))
                        elif isinstance(message, ShareResults):
                            for shared in message.results:
                                calls.share(shared.task_id, shared.payload)
                        elif isinstance(message, ForgetResults):
                            calls.forget(message.task_ids)
                        elif isinstance(message, CancelTasks):
                            for task_id in message.task_ids:
                                runner.cancel_task(task_id)
                        elif isinstance(message, Drain):
                            drained = message.reason
                            runner.drain(message.reason)
                        elif isinstance(message, Goodbye):
                            departure = Departure(f"the dispatcher said goodbye: {message.reason}")
                            break
                        elif isinstance(message, _FOR_TASKS):
                            uplink.deliver(message)
                        elif not isinstance(message, _FROM_DISPATCHER):
                            raise ProtocolError(
                                f"a dispatcher may not send {type(message).__name__}"
                            )
            except trio.EndOfChannel:
                pass
            except (trio.BrokenResourceError, trio.ClosedResourceError) as error:
                departure = Departure(
                    f"the dispatcher was lost: the connection broke ({error})", True
                )
            except ProtocolError as error:
                departure = Departure(f"protocol error from the dispatcher: {error}", lost=True)
            if silence.expired:
                departure = Departure(
                    f"the dispatcher was lost: no word from it for {settings.heartbeat_timeout:g}s",
                    lost=True,
                )
            runner.let_go_of_threads(departure.reason)
            nursery.cancel_scope.cancel()
    finally:
        uplink.disconnect()
    if outbox.farewell is not None:  # this side said goodbye: drained, or its walltime ended
        return Departure(f"drained: {drained}" if drained else f"left: {outbox.farewell}")
    return departure


def _unpack_tasks(message: RunTasks, calls: CallUnpacker) -> list[_Received]:
    # A payload that cannot be unpickled still takes its turn (tasks may wait behind it), then
    # reports the failure: the unpacker makes it a call that raises.
    return [
        _Received(
            spec.task_id,
            spec.attempt,
            calls.unpack(spec.payload, task_id=spec.task_id),
            spec.allocation,
            spec.hard_limit,
            spec.after,
        )
        for spec in message.tasks
    ]


async def _watch_walltime(
    walltime: WTime, runner: LocalWorker, outbox: Outbox, settings: WorkerOptions
) -> None:
    remaining = walltime.remaining()
    if remaining <= settings.drain_margin:
        log.warning(
            "walltime left (%s) is within the drain margin (%s): this worker drains at once "
            "and takes no task (lower --drain-margin)",
            format_seconds(remaining),
            format_seconds(settings.drain_margin),
        )
    await trio.sleep(max(0.0, remaining - settings.drain_margin))
    reason = (
        f"its walltime ends in {format_seconds(walltime.remaining())} "
        f"(drain margin {format_seconds(settings.drain_margin)})"
    )
    outbox.post(Draining(reason))
    log.info("%s: draining", reason)
    runner.drain(reason)
    await trio.sleep(max(0.0, walltime.remaining() - settings.exit_margin))
    outbox.post(Goodbye("its walltime is exhausted"))
