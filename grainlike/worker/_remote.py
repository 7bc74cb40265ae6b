"""The remote worker: connects to a dispatcher, authenticates, and runs what it is sent."""

from __future__ import annotations

import logging
import math
import os
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any

import attrs
import outcome
import trio

from .._exceptions import GrainlikeError, ProtocolError
from ..resource import Resources, WTime
from ..wire import (
    PROTOCOL_VERSION,
    Call,
    CallUnpacker,
    CancelTasks,
    Drain,
    FramedStream,
    Goodbye,
    Heartbeat,
    Hello,
    Pulse,
    Refused,
    RunTasks,
    Silence,
    TaskOutcome,
    TasksFinished,
    TasksStarted,
    Usage,
    Welcome,
    authenticate_as_worker,
    decode,
    encode,
    let_batch_grow,
    pack_outcome,
)
from ._local import LocalWorker

__all__ = ["WorkerOptions", "serve_worker"]

log = logging.getLogger("grainlike.worker")


@attrs.frozen
class WorkerOptions:
    """How a remote worker behaves.

    ``drain_margin``: with a finite walltime, stop taking tasks this many seconds before the end
    and leave once the running ones finish; ``exit_margin``: leave regardless this many seconds
    before the end (the dispatcher re-runs what was still running elsewhere).
    """

    name: str = ""
    connect_timeout: float = 60.0
    heartbeat_timeout: float = 10.0
    drain_margin: float = 60.0
    exit_margin: float = 10.0
    enforce_memory: bool = False
    max_frame: int = 64 * 2**20


@attrs.frozen
class _Received:
    id: int
    attempt: int
    work: Call
    allocation: Resources
    hard_limit: float | None
    after: int | None


@attrs.define(eq=False)
class _Outbox:
    """The reporter of a remote worker: batches what the worker says to the dispatcher.

    A task that ends before its start was sent is reported once, by its outcome (which
    carries its start time).
    """

    started: dict[int, None] = attrs.field(factory=dict)
    finished: list[TaskOutcome] = attrs.field(factory=list)
    start_times: dict[int, float] = attrs.field(factory=dict)
    goodbye: str | None = None
    _wake: trio.Event = attrs.field(factory=trio.Event)

    def task_started(self, worker_id: str, task_id: int, attempt: int) -> None:
        self.started[task_id] = None
        self.start_times[task_id] = time.time()
        self._wake.set()

    def task_done(
        self,
        worker_id: str,
        task_id: int,
        attempt: int,
        result: outcome.Outcome[Any],
        duration: float,
        usage: Usage | None = None,
    ) -> None:
        finished = time.time()
        self.started.pop(task_id, None)
        started = self.start_times.pop(task_id, finished - duration)
        self.finished.append(
            TaskOutcome(task_id, attempt, *pack_outcome(result), started, finished, usage)
        )
        self._wake.set()

    def remove_worker(self, worker_id: str, reason: str, *, lost: bool = True) -> None:
        self.goodbye = reason
        self._wake.set()

    def post(self) -> None:
        self._wake.set()

    async def send_loop(
        self,
        framed: FramedStream,
        heartbeat_interval: float,
        extra: list[Any],
        busy: Callable[[], bool],
    ) -> None:
        """Send started/finished batches as they come, a heartbeat when idle, Goodbye last.

        While ``busy()`` says more tasks are under way, a batch may grow before it is sent;
        the result of a worker's last task goes at once.
        """
        pulse = Pulse(heartbeat_interval)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pulse.beat, self.post)
            await self._send(framed, extra, busy, pulse)
            nursery.cancel_scope.cancel()

    async def _send(
        self, framed: FramedStream, extra: list[Any], busy: Callable[[], bool], pulse: Pulse
    ) -> None:
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            if (self.finished or self.started) and busy():
                await let_batch_grow(lambda: len(self.finished) + len(self.started))
            messages: list[Any] = [*extra]
            extra.clear()
            if self.started:
                messages.append(TasksStarted(tuple(self.started), time.time()))
                self.started = {}
            if self.finished:
                messages.append(TasksFinished(tuple(self.finished)))
                self.finished = []
            if self.goodbye is not None:
                messages.append(Goodbye(self.goodbye))
            if not messages:
                messages.append(Heartbeat(time.time()))
            try:
                await framed.send_many([encode(m) for m in messages])
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return  # the dispatcher is gone; the receiving side says so
            pulse.sent()
            if self.goodbye is not None:
                return


async def _connect(host: str, port: int, timeout: float) -> trio.SocketStream:
    deadline = trio.current_time() + timeout
    delay = 0.1
    while True:
        try:
            return await trio.open_tcp_stream(host, port)
        except OSError as error:
            if trio.current_time() + delay > deadline:
                raise GrainlikeError(
                    f"cannot reach the dispatcher at {host}:{port} within {timeout:g}s: {error}"
                ) from None
            await trio.sleep(delay)
            delay = min(delay * 2, 2.0)


async def serve_worker(
    address: str,
    key: bytes,
    capacity: Resources,
    options: WorkerOptions | None = None,
    tls: ssl.SSLContext | None = None,
) -> str:
    """Join the dispatcher at ``address`` (``HOST:PORT``) and run tasks until told to leave.

    Returns why the worker stopped.  Raises ``AuthenticationError`` when the keys differ,
    ``GrainlikeError`` when the dispatcher cannot be reached or refuses the worker.
    """
    settings = options or WorkerOptions()
    host, _, port = address.rpartition(":")
    stream: trio.abc.Stream = await _connect(
        host or "127.0.0.1", int(port), settings.connect_timeout
    )
    if tls is not None:
        stream = trio.SSLStream(stream, tls, server_hostname=host or "127.0.0.1")
    framed = FramedStream(stream, max_frame=settings.max_frame)
    async with framed:
        await authenticate_as_worker(framed, key)
        name = settings.name or socket.gethostname()
        await framed.send(
            encode(Hello(PROTOCOL_VERSION, name, socket.gethostname(), os.getpid(), capacity))
        )
        reply = decode(await framed.receive())
        if isinstance(reply, Refused):
            raise GrainlikeError(f"the dispatcher at {address} refused this worker: {reply.reason}")
        if not isinstance(reply, Welcome):
            raise GrainlikeError(f"the dispatcher at {address} answered {type(reply).__name__}")
        log.info("joined %s as %s with %s", address, reply.worker_id, capacity)
        return await _work(framed, reply, capacity, settings)


async def _work(
    framed: FramedStream, welcome: Welcome, capacity: Resources, settings: WorkerOptions
) -> str:
    outbox = _Outbox()
    runner = LocalWorker(welcome.worker_id, outbox, settings.enforce_memory)
    calls = CallUnpacker()
    extra: list[Any] = []
    reason = "the dispatcher closed the connection"
    async with trio.open_nursery() as nursery:
        await nursery.start(runner.serve)

        async def send_then_stop() -> None:
            await outbox.send_loop(framed, welcome.heartbeat_interval, extra, runner.busy)
            nursery.cancel_scope.cancel()

        nursery.start_soon(send_then_stop)
        walltime = capacity.get(WTime)
        if walltime is not None and math.isfinite(walltime.remaining()):
            nursery.start_soon(_watch_walltime, walltime, runner, outbox, extra, settings)
        silence = Silence(settings.heartbeat_timeout)
        try:
            with trio.CancelScope() as receiving:
                nursery.start_soon(silence.watch, receiving)
                while True:
                    data = await framed.receive()
                    silence.heard()
                    message = decode(data)
                    if isinstance(message, RunTasks):
                        runner.run_tasks(_unpack_tasks(message, calls))
                    elif isinstance(message, CancelTasks):
                        for task_id in message.task_ids:
                            runner.cancel_task(task_id)
                    elif isinstance(message, Drain):
                        reason = f"drained: {message.reason}"
                        runner.drain(message.reason)
                    elif isinstance(message, Goodbye):
                        reason = f"the dispatcher said goodbye: {message.reason}"
                        break
        except (trio.EndOfChannel, trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        except ProtocolError as error:
            reason = f"protocol error from the dispatcher: {error}"
        if silence.expired:
            reason = f"no word from the dispatcher for {settings.heartbeat_timeout:g}s"
        nursery.cancel_scope.cancel()
    return (outbox.goodbye and f"left: {outbox.goodbye}") or reason


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
    walltime: WTime, runner: LocalWorker, outbox: _Outbox, extra: list[Any], settings: WorkerOptions
) -> None:
    remaining = walltime.remaining()
    drain_at = max(0.0, remaining - settings.drain_margin)
    await trio.sleep(drain_at)
    extra.append(Drain("walltime ends"))
    outbox.post()
    log.info("walltime ends in %.0fs: draining", walltime.remaining())
    runner.drain("walltime ends")
    await trio.sleep(max(0.0, walltime.remaining() - settings.exit_margin))
    outbox.remove_worker("", "walltime exhausted")
