"""The dispatcher's network side: authenticated TCP connections from workers and clients."""

from __future__ import annotations

import logging
import math
import ssl
import time
from collections.abc import Sequence
from typing import Any

import attrs
import trio

from .._exceptions import AuthenticationError, ConfigError, ProtocolError
from ..wire import (
    DEFAULT_MAX_FRAME,
    PROTOCOL_VERSION,
    CallPacker,
    CancelTasks,
    Drain,
    FramedStream,
    Goodbye,
    Heartbeat,
    Hello,
    Pulse,
    QueryStatus,
    QuitAcknowledged,
    QuitWorkers,
    Refused,
    RunTasks,
    Silence,
    StatusReport,
    TasksFinished,
    TaskSpec,
    TasksStarted,
    Welcome,
    authenticate_as_dispatcher,
    decode,
    encode,
    unpack_outcome,
)
from ._dispatcher import Dispatcher
from ._records import Task
from ._status import status_report

__all__ = ["RemoteLink", "ServerConfig", "serve_workers"]

log = logging.getLogger("grainlike.dispatcher")


def _positive_seconds(_: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise ConfigError(f"{attribute.name}={value!r}: must be a positive number of seconds")


def _whole(_: object, attribute: attrs.Attribute[Any], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{attribute.name}={value!r}: must be a whole number, 0 or more")


def _frame_limit(_: object, attribute: attrs.Attribute[Any], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1024 <= value < 2**32:
        raise ConfigError(f"{attribute.name}={value!r}: give 1024 to {2**32 - 1} bytes")


@attrs.frozen
class ServerConfig:
    """Network settings; every value is checked here (``ConfigError``).

    Attributes:
        heartbeat_interval: Seconds between the heartbeats each side sends when idle.
        heartbeat_timeout: Seconds of silence after which a worker counts as lost.
        handshake_timeout: Seconds a connecting peer has to authenticate.
        max_frame: The largest frame in bytes.
        pipeline_depth: How many tasks may wait on a worker behind each running one (see
            ``_pipeline.py``).
    """

    heartbeat_interval: float = attrs.field(default=1.0, validator=_positive_seconds)
    heartbeat_timeout: float = attrs.field(default=10.0, validator=_positive_seconds)
    handshake_timeout: float = attrs.field(default=10.0, validator=_positive_seconds)
    max_frame: int = attrs.field(default=DEFAULT_MAX_FRAME, validator=_frame_limit)
    pipeline_depth: int = attrs.field(default=32, validator=_whole)


@attrs.define(eq=False)
class RemoteLink:
    """The dispatcher's link to one remote worker: queues messages, a sender task batches them."""

    worker_id: str
    calls: CallPacker
    pipeline: int = 0
    _outbox: list[Any] = attrs.field(factory=list)
    _wake: trio.Event = attrs.field(factory=trio.Event)

    def run_tasks(self, tasks: Sequence[Task]) -> None:
        specs = []
        pack = self.calls.pack
        for task in tasks:
            payload = pack(task.work)
            assert task.allocation is not None
            specs.append(
                TaskSpec(
                    task.id, payload, task.allocation, task.hard_limit, task.attempt, task.after
                )
            )
        self._post(RunTasks(tuple(specs)))

    def cancel_task(self, task_id: int) -> None:
        self._post(CancelTasks((task_id,)))

    def drain(self, reason: str) -> None:
        self._post(Drain(reason))

    def _post(self, message: Any) -> None:
        self._outbox.append(message)
        self._wake.set()

    def _heartbeat(self) -> None:
        self._post(Heartbeat(time.time()))

    async def send_loop(self, framed: FramedStream, heartbeat_interval: float) -> None:
        """Send queued messages, many per write, and a heartbeat when idle."""
        pulse = Pulse(heartbeat_interval)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pulse.beat, self._heartbeat)
            while True:
                await self._wake.wait()
                self._wake = trio.Event()
                messages, self._outbox = self._outbox, []
                try:
                    await framed.send_many([encode(m) for m in _merge(messages)])
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    break  # the receiving side sees the connection end and removes the worker
                pulse.sent()
            nursery.cancel_scope.cancel()


def _merge(messages: list[Any]) -> list[Any]:
    """Fold consecutive RunTasks into one (one frame for many tasks)."""
    merged: list[Any] = []
    for message in messages:
        if merged and isinstance(message, RunTasks) and isinstance(merged[-1], RunTasks):
            merged[-1] = RunTasks(merged[-1].tasks + message.tasks)
        else:
            merged.append(message)
    return merged


async def serve_workers(
    dispatcher: Dispatcher,
    listen: str,
    key: bytes,
    tls: ssl.SSLContext | None = None,
    config: ServerConfig | None = None,
    *,
    task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Accept workers and clients on ``listen`` (``HOST:PORT``; port 0 picks a free one).

    Reports the bound (host, port) through ``task_status``.
    """
    host, _, port = listen.rpartition(":")
    settings = config or ServerConfig()
    calls = CallPacker()
    sockets = await trio.open_tcp_listeners(int(port), host=host or None)
    address = sockets[0].socket.getsockname()
    listeners: list[trio.abc.Listener[Any]] = list(sockets)
    if tls is not None:
        listeners = [trio.SSLListener(listener, tls) for listener in sockets]
    async with trio.open_nursery() as nursery:
        task_status.started((address[0], address[1]))

        async def handle(stream: trio.abc.Stream) -> None:
            await _handle_connection(dispatcher, stream, key, settings, calls)

        await nursery.start(trio.serve_listeners, handle, listeners)
        await trio.sleep_forever()


async def _handle_connection(
    dispatcher: Dispatcher,
    stream: trio.abc.Stream,
    key: bytes,
    settings: ServerConfig,
    calls: CallPacker,
) -> None:
    peer = _peer_name(stream)
    framed = FramedStream(stream, max_frame=settings.max_frame)
    async with framed:
        try:
            with trio.fail_after(settings.handshake_timeout):
                await authenticate_as_dispatcher(framed, key)
                first = decode(await framed.receive())
        except (AuthenticationError, ProtocolError, trio.TooSlowError, trio.EndOfChannel) as error:
            log.warning("refused connection from %s: %s", peer, error)
            return
        except (trio.BrokenResourceError, trio.ClosedResourceError) as error:
            log.warning("connection from %s broke during the handshake: %s", peer, error)
            return
        if isinstance(first, Hello):
            await _serve_worker(dispatcher, framed, first, settings, calls, peer)
        elif isinstance(first, QueryStatus):
            report = status_report(dispatcher)
            await framed.send(encode(StatusReport(report.text, report.data)))
        elif isinstance(first, QuitWorkers):
            matched = dispatcher.drain_workers(first.pattern)
            await framed.send(encode(QuitAcknowledged(tuple(matched))))
        else:
            log.warning("closed connection from %s: unexpected first message %r", peer, first)


async def _serve_worker(
    dispatcher: Dispatcher,
    framed: FramedStream,
    hello: Hello,
    settings: ServerConfig,
    calls: CallPacker,
    peer: str,
) -> None:
    if hello.protocol != PROTOCOL_VERSION:
        await framed.send(encode(Refused(f"protocol {hello.protocol} is not {PROTOCOL_VERSION}")))
        return
    worker_id = dispatcher.unique_worker_id(hello.name or hello.host)
    link = RemoteLink(worker_id, calls, settings.pipeline_depth)
    await framed.send(encode(Welcome(worker_id, settings.heartbeat_interval)))
    dispatcher.add_worker(worker_id, hello.capacity, link)
    log.info("worker %s joined from %s with %s", worker_id, peer, hello.capacity)
    ending = ["connection closed", True]  # why the worker left, and whether it was lost
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(link.send_loop, framed, settings.heartbeat_interval)
            silence = Silence(settings.heartbeat_timeout)
            with trio.CancelScope() as receiving:
                nursery.start_soon(silence.watch, receiving)
                await _receive_from_worker(dispatcher, framed, worker_id, silence, ending)
            if silence.expired:
                ending[0] = f"no heartbeat for {settings.heartbeat_timeout:g}s"
            nursery.cancel_scope.cancel()
    finally:
        reason, lost = str(ending[0]), bool(ending[1])
        dispatcher.remove_worker(worker_id, reason, lost=lost)
        log.info("worker %s left: %s", worker_id, reason)


async def _receive_from_worker(
    dispatcher: Dispatcher,
    framed: FramedStream,
    worker_id: str,
    silence: Silence,
    ending: list[Any],
) -> None:
    """Handle a worker's messages until it says goodbye or its connection ends."""
    try:
        while True:
            data = await framed.receive()
            silence.heard()
            message = decode(data)
            if isinstance(message, TasksFinished):
                _finished(dispatcher, worker_id, message)
            elif isinstance(message, TasksStarted):
                for task_id in message.task_ids:
                    task = dispatcher.task(task_id)
                    if task is not None:
                        dispatcher.task_started(worker_id, task_id, task.attempt)
            elif isinstance(message, Drain):
                dispatcher.stop_placing(worker_id, message.reason)
            elif isinstance(message, Goodbye):
                ending[:] = [message.reason, dispatcher.has_running(worker_id)]
                return
    except trio.EndOfChannel:
        ending[0] = "the worker closed its connection"
    except ProtocolError as error:
        ending[0] = f"protocol error: {error}"
        log.warning("worker %s: %s", worker_id, error)
    except (trio.BrokenResourceError, trio.ClosedResourceError) as error:
        ending[0] = f"connection broke: {error}"


def _finished(dispatcher: Dispatcher, worker_id: str, message: TasksFinished) -> None:
    for item in message.outcomes:
        result = unpack_outcome(item.ok, item.payload, task_id=item.task_id)
        duration = max(0.0, item.finished - item.started)
        dispatcher.task_done(worker_id, item.task_id, item.attempt, result, duration, item.usage)


def _peer_name(stream: trio.abc.Stream) -> str:
    try:
        socket_stream = stream if isinstance(stream, trio.SocketStream) else stream.transport_stream  # type: ignore[attr-defined]
        host, port = socket_stream.socket.getpeername()[:2]
        return f"{host}:{port}"
    except Exception:
        return "unknown peer"
