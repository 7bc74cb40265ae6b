"""The dispatcher's network side: authenticated TCP connections from workers and clients.

Every connection authenticates before anything it sent is decoded, within the handshake
deadline, and only so many handshakes may be pending at once.  A worker's capacity is checked
against sane bounds before it joins, and a peer that breaks the protocol (a message of the
wrong kind, a malformed or implausible one) is disconnected with a logged reason.  A result is
unpickled only when it is delivered: after its sender and attempt were checked.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import ssl
from collections.abc import Callable, Sequence
from typing import Any, Final

import attrs
import outcome
import trio

from .._exceptions import (
    AuthenticationError,
    ConfigError,
    ProtocolError,
    TaskCancelledError,
    TaskFailedError,
)
from ..resource import GPU, Cores, Counter, Memory, Resources, Size, Token
from ..wire import (
    DEFAULT_MAX_FRAME,
    PROTOCOL_VERSION,
    AllocationRegained,
    CallPacker,
    CancelSubtasks,
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
    PackedCall,
    QueryStatus,
    QuitAcknowledged,
    QuitWorkers,
    ReacquireAllocation,
    Refused,
    ReleaseAllocation,
    RunTasks,
    SharedResult,
    ShareResults,
    Silence,
    StatusReport,
    SubmitTasks,
    Subtask,
    SubtaskResult,
    SubtasksFinished,
    TasksFinished,
    TaskSpec,
    TasksStarted,
    Welcome,
    authenticate_as_server,
    decode,
    encode,
    pack_exception,
    pack_outcome,
    parse_address,
    unpack_outcome,
)
from ._deps import SharedInputs
from ._dispatcher import Dispatcher
from ._handle import TaskHandle
from ._records import Task
from ._status import status_report

__all__ = ["Connections", "RemoteLink", "ServerConfig", "serve_workers"]

log = logging.getLogger("grainlike.dispatcher")

#: The largest first message after the handshake (a ``Hello`` with its capacity).
HELLO_LIMIT: Final = 1024 * 1024
#: Bounds on what a worker may say it owns: beyond them it is not a real node, and indexing
#: it would stall the dispatcher.
MAX_WORKER_IDS: Final = {Cores: 16384, GPU: 1024}
MAX_WORKER_KINDS: Final = 64
MAX_WORKER_MEMORY_KIB: Final = 2**40  # 1 PiB
MAX_WORKER_COUNT: Final = 2**40
MAX_TOKEN_NAMES: Final = 256
#: Errors of ``accept`` that mean "out of file descriptors or memory for now": wait, retry.
_RESOURCE_ERRNOS: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


def _positive_seconds(_: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise ConfigError(f"{attribute.name}={value!r}: must be a positive number of seconds")


def _whole(_: object, attribute: attrs.Attribute[Any], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{attribute.name}={value!r}: must be a whole number, 0 or more")


def _positive_whole(_: object, attribute: attrs.Attribute[Any], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{attribute.name}={value!r}: must be a whole number, 1 or more")


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
        max_pending_handshakes: Connections that may be authenticating at once; more are
            closed at once (a flood of silent connections cannot exhaust file descriptors).
        max_frame: The largest frame in bytes this side accepts.
        pipeline_depth: How many tasks may wait on a worker behind each running one (see
            ``_pipeline.py``).
    """

    heartbeat_interval: float = attrs.field(default=1.0, validator=_positive_seconds)
    heartbeat_timeout: float = attrs.field(default=10.0, validator=_positive_seconds)
    handshake_timeout: float = attrs.field(default=10.0, validator=_positive_seconds)
    max_pending_handshakes: int = attrs.field(default=128, validator=_positive_whole)
    max_frame: int = attrs.field(default=DEFAULT_MAX_FRAME, validator=_frame_limit)
    pipeline_depth: int = attrs.field(default=32, validator=_whole)


class _Warnings:
    """One-line warnings, at most one per kind every ``interval`` seconds; the rest counted."""

    def __init__(self, interval: float = 5.0) -> None:
        self._interval = interval
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warn(self, kind: str, message: str, *args: object) -> None:
        now = trio.current_time()
        last = self._last.get(kind)
        if last is not None and now - last < self._interval:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return
        self._last[kind] = now
        suppressed = self._suppressed.pop(kind, 0)
        more = f" ({suppressed} more like it since)" if suppressed else ""
        log.warning(message + more, *args)


#: What a worker's tasks ask of the dispatcher: subtasks, and allocations given back a while.
_FOR_TASKS: Final = (SubmitTasks, CancelSubtasks, ReleaseAllocation, ReacquireAllocation)


@attrs.define(eq=False)
class RemoteLink:
    """The dispatcher's link to one remote worker: what it posts, the outbox sends; and the
    subtasks its tasks submitted, by the worker's numbers for them."""

    worker_id: str
    calls: CallPacker
    outbox: Outbox
    pipeline: int = 0
    #: The dependents' inputs, shared with the dispatcher (``None``: none are shared).
    shared: SharedInputs | None = None
    #: The largest input sent once to be shared (a larger one travels inside each call).
    share_limit: int = 0
    _subtasks: dict[int, TaskHandle] = attrs.field(factory=dict)

    def for_tasks(self, dispatcher: Dispatcher, message: Message) -> None:
        """Do what a task on this worker asked: submit or cancel subtasks, give back or take
        again an allocation."""
        if isinstance(message, SubmitTasks):
            for subtask in message.tasks:
                self._submit(dispatcher, subtask)
        elif isinstance(message, CancelSubtasks):
            for ref in message.refs:
                handle = self._subtasks.get(ref)
                if handle is not None:
                    handle.cancel()
        elif isinstance(message, ReleaseAllocation):
            dispatcher.release(message.task_id)
        elif isinstance(message, ReacquireAllocation):
            task_id = message.task_id
            dispatcher.reacquire(
                task_id,
                lambda allocation: self.outbox.post(AllocationRegained(task_id, allocation)),
            )

    def _submit(self, dispatcher: Dispatcher, subtask: Subtask) -> None:
        ref = subtask.ref
        handle = dispatcher.submit(
            subtask.request,
            PackedCall(subtask.payload, subtask.name),
            name=subtask.name,
            priority=subtask.priority,
            retries=subtask.retries,
            parent=subtask.parent,
        )
        self._subtasks[ref] = handle

        def send_back(task: Task) -> None:
            self._subtasks.pop(ref, None)
            assert task.result is not None
            ok, payload = pack_outcome(task.result)
            self.outbox.post(SubtasksFinished((SubtaskResult(ref, ok, payload),)))

        if handle.task.result is not None:
            send_back(handle.task)
        elif handle.task.listeners is None:
            handle.task.listeners = [send_back]
        else:
            handle.task.listeners.append(send_back)

    def run_tasks(self, tasks: Sequence[Task]) -> None:
        pack = self.calls.pack_or_fail
        shared = self.shared if self.shared else None
        specs = []
        values: list[SharedResult] = []
        for task in tasks:
            granted = task.granted
            assert granted is not None
            refs = None
            if shared is not None:
                refs, new = shared.for_call(task, self, self.share_limit)
                values.extend(new)
            specs.append(
                TaskSpec(
                    task.id,
                    pack(task.work, refs, task_id=task.id),
                    granted,
                    task.hard_limit,
                    task.attempt,
                    task.after,
                )
            )
        if values:
            self.outbox.post(ShareResults(tuple(values)))  # before the calls that refer to them
        self.outbox.post(RunTasks(tuple(specs)))

    def forget_results(self, task_ids: tuple[int, ...]) -> None:
        self.outbox.post(ForgetResults(task_ids))

    def cancel_task(self, task_id: int) -> None:
        self.outbox.post(CancelTasks((task_id,)))

    def drain(self, reason: str) -> None:
        self.outbox.post(Drain(reason))


def _fail_oversized(dispatcher: Dispatcher, worker_id: str) -> Callable[..., list[Message]]:
    """What the outbox does with a task too large for any frame: fail that task alone."""

    def oversized(message: Message, size: int, limit: int) -> list[Message]:
        if isinstance(message, SubtasksFinished):
            (item,) = message.results
            error = TaskFailedError(
                f"subtask {item.ref}: its result of {size} bytes exceeds the frame limit of "
                f"{limit} bytes (return large data through files, or raise the frame limit)"
            )
            return [SubtasksFinished((SubtaskResult(item.ref, False, pack_exception(error)),))]
        if not isinstance(message, RunTasks):
            raise ProtocolError(f"a {type(message).__name__} of {size} bytes exceeds {limit}")
        (spec,) = message.tasks
        task = dispatcher.task(spec.task_id)
        name = f" ({task.name})" if task is not None else ""
        error = TaskFailedError(
            f"task {spec.task_id}{name}: its call is {size} bytes, over the frame limit of "
            f"{limit} bytes (pass large data through files, or raise --max-frame on both sides)"
        )
        dispatcher.task_done(worker_id, spec.task_id, spec.attempt, outcome.Error(error), 0.0)
        return []

    return oversized


@attrs.define(eq=False)
class Connections:
    """Handles each connection to a dispatcher: authenticates it and serves what it asks.

    ``handle`` takes any trio stream (TCP, TLS, or an in-memory one in tests).
    """

    dispatcher: Dispatcher
    key: bytes
    settings: ServerConfig = attrs.field(factory=ServerConfig)
    _calls: CallPacker = attrs.field(factory=CallPacker)
    _warnings: _Warnings = attrs.field(factory=_Warnings)
    _pending: int = 0  # connections still authenticating

    async def handle(self, stream: trio.abc.Stream) -> None:
        """Serve one connection until it ends."""
        peer = _peer_name(stream)
        if self._pending >= self.settings.max_pending_handshakes:
            self._warnings.warn(
                "busy",
                "closed a connection from %s: %d handshakes are already pending",
                peer,
                self._pending,
            )
            await trio.aclose_forcefully(stream)
            return
        framed = FramedStream(stream, max_frame=self.settings.max_frame)
        async with framed:
            first = await self._handshake(framed, peer)
            if isinstance(first, Hello):
                await _serve_worker(
                    self.dispatcher, framed, first, self.settings, self._calls, peer
                )
            elif isinstance(first, QueryStatus):
                report = status_report(self.dispatcher)
                await framed.send(encode(StatusReport(report.text, report.data)))
            elif isinstance(first, QuitWorkers):
                matched = self.dispatcher.drain_workers(first.pattern)
                await framed.send(encode(QuitAcknowledged(tuple(matched))))
            elif first is not None:
                log.warning(
                    "closed connection from %s: a %s cannot open a connection",
                    peer,
                    type(first).__name__,
                )

    async def accept(self, listener: trio.abc.Listener[Any], nursery: trio.Nursery) -> None:
        """Accept connections from ``listener`` and handle each in ``nursery``.

        Running out of file descriptors (or buffers) is waited out with one warning line
        now and then, not a traceback per attempt.
        """
        async with listener:
            while True:
                try:
                    stream = await listener.accept()
                except OSError as error:
                    if error.errno not in _RESOURCE_ERRNOS:
                        raise
                    self._warnings.warn(
                        "accept", "cannot accept connections now (%s): retrying", error.strerror
                    )
                    await trio.sleep(0.1)
                    continue
                nursery.start_soon(self.handle, stream)

    async def _handshake(self, framed: FramedStream, peer: str) -> Message | None:
        """Authenticate the peer and read its first message (``None`` when it failed)."""
        self._pending += 1
        authenticated = False
        try:
            with trio.fail_after(self.settings.handshake_timeout):
                await authenticate_as_server(framed, self.key)
                authenticated = True
                return decode(await framed.receive(max_size=HELLO_LIMIT))
        except trio.TooSlowError:
            reason = f"no handshake within {self.settings.handshake_timeout:g}s"
            self._warnings.warn("refused", "refused connection from %s: %s", peer, reason)
        except (AuthenticationError, ProtocolError, trio.EndOfChannel) as error:
            reason = str(error) or "it closed the connection during the handshake"
            self._warnings.warn("refused", "refused connection from %s: %s", peer, reason)
            if authenticated and isinstance(error, ProtocolError):
                # It holds the key, so it may hear why (e.g. a kind not registered here).
                await _refuse(framed, f"its first message is malformed: {error}")
        except (trio.BrokenResourceError, trio.ClosedResourceError) as error:
            self._warnings.warn(
                "broke", "connection from %s broke during the handshake: %s", peer, error
            )
        finally:
            self._pending -= 1
        return None


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
    host, port = parse_address(listen)
    connections = Connections(dispatcher, key, config or ServerConfig())
    sockets = await trio.open_tcp_listeners(port, host=host or None)
    address = sockets[0].socket.getsockname()
    listeners: list[trio.abc.Listener[Any]] = list(sockets)
    if tls is not None:
        listeners = [trio.SSLListener(listener, tls) for listener in sockets]
    async with trio.open_nursery() as nursery:
        for listener in listeners:
            nursery.start_soon(connections.accept, listener, nursery)
        task_status.started((address[0], address[1]))


async def _refuse(framed: FramedStream, reason: str) -> None:
    """Tell a peer why it may not join; it may have gone already."""
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, ProtocolError):
        await framed.send(encode(Refused(reason)))


def capacity_problem(capacity: Resources) -> str | None:
    """Why ``capacity`` is not a plausible worker (``None`` when it is)."""
    parts = capacity.parts()
    if len(parts) > MAX_WORKER_KINDS:
        return f"it offers {len(parts)} kinds of resource, more than {MAX_WORKER_KINDS}"
    for part in parts:
        if isinstance(part, Cores | GPU):
            most = MAX_WORKER_IDS[type(part)]
            if most < part.N:
                noun = {"cores": "core", "gpu": "GPU"}.get(part.label, part.label)
                return f"it offers {part.N} {noun} IDs, more than {most}"
        elif isinstance(part, Size) and (part.group is not None or not part.sized):
            return f"it offers {part}, a learned group rather than a size"
        elif isinstance(part, Memory) and part.kib > MAX_WORKER_MEMORY_KIB:
            return f"it offers {part.kib} KiB of memory, more than {MAX_WORKER_MEMORY_KIB}"
        elif isinstance(part, Counter) and part.n > MAX_WORKER_COUNT:
            return f"it offers {part.n} of counter {part.name}, more than {MAX_WORKER_COUNT}"
        elif isinstance(part, Token) and len(part.names) > MAX_TOKEN_NAMES:
            return f"it offers {len(part.names)} tokens, more than {MAX_TOKEN_NAMES}"
    return None


async def _serve_worker(
    dispatcher: Dispatcher,
    framed: FramedStream,
    hello: Hello,
    settings: ServerConfig,
    calls: CallPacker,
    peer: str,
) -> None:
    if hello.protocol != PROTOCOL_VERSION:
        await _refuse(framed, f"protocol {hello.protocol} is not {PROTOCOL_VERSION}")
        return
    problem = capacity_problem(hello.capacity)
    if problem is not None:
        log.warning("refused worker %s from %s: %s", hello.name or hello.host, peer, problem)
        await _refuse(framed, problem)
        return
    framed.limit_sends(hello.max_frame)
    worker_id = dispatcher.unique_worker_id(hello.name or hello.host)
    outbox = Outbox(oversized=_fail_oversized(dispatcher, worker_id))
    link = RemoteLink(
        worker_id,
        calls,
        outbox,
        settings.pipeline_depth,
        dispatcher.shared,
        framed.send_limit // 2,
    )
    try:
        await framed.send(
            encode(Welcome(worker_id, settings.heartbeat_interval, settings.max_frame))
        )
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return
    dispatcher.add_worker(worker_id, hello.capacity, link)
    log.info("worker %s joined from %s with %s", worker_id, peer, hello.capacity)
    reason, lost, ended = "the connection closed", True, False
    try:
        async with trio.open_nursery() as nursery:
            sent_all = trio.Event()

            async def send() -> None:
                try:
                    await outbox.serve(framed, settings.heartbeat_interval)
                finally:
                    sent_all.set()

            nursery.start_soon(send)
            silence = Silence(settings.heartbeat_timeout)
            with trio.CancelScope() as receiving:
                nursery.start_soon(silence.watch, receiving)
                reason, lost = await _receive_from_worker(dispatcher, framed, link, silence)
            if silence.expired:
                reason = f"no word from it for {settings.heartbeat_timeout:g}s"
                # Say so, in case it is alive but stuck (a task blocking its event loop).
                outbox.post(Goodbye(f"the dispatcher dropped this worker: {reason}"))
                with trio.move_on_after(1.0):
                    await sent_all.wait()
            nursery.cancel_scope.cancel()
        ended = True
    finally:
        if not ended:
            # Cancelled: the dispatcher shuts down (its run ended).  Say so, or the worker
            # would take the closed connection for a lost dispatcher and wait for it.
            with (
                trio.move_on_after(1.0, shield=True),
                contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError),
            ):
                await framed.send(encode(Goodbye("its run ended")))
        dispatcher.remove_worker(worker_id, reason, lost=lost)
        log.info("worker %s left: %s", worker_id, reason)


#: What a worker may send once it joined; anything else breaks the protocol.
_FROM_WORKERS: Final = (TasksStarted, TasksFinished, Draining, Heartbeat, Goodbye)


async def _receive_from_worker(
    dispatcher: Dispatcher, framed: FramedStream, link: RemoteLink, silence: Silence
) -> tuple[str, bool]:
    """Handle a worker's messages until it says goodbye or its connection ends.

    Returns why it ended and whether the worker counts as lost (its running tasks retried).
    """
    worker_id = link.worker_id
    ran_any = False
    try:
        while True:
            data = await framed.receive()
            silence.heard()
            message = decode(data)
            if isinstance(message, _FOR_TASKS):
                link.for_tasks(dispatcher, message)
            elif isinstance(message, TasksFinished):
                ran_any = True
                _finished(dispatcher, worker_id, message)
            elif isinstance(message, TasksStarted):
                for task_id, attempt in zip(message.task_ids, message.attempts, strict=True):
                    dispatcher.task_started(worker_id, task_id, attempt)
            elif isinstance(message, Draining):
                if not ran_any:
                    log.warning(
                        "worker %s drains before running any task: %s", worker_id, message.reason
                    )
                dispatcher.stop_placing(worker_id, message.reason)
            elif isinstance(message, Goodbye):
                return message.reason, dispatcher.has_running(worker_id)
            elif not isinstance(message, _FROM_WORKERS):
                raise ProtocolError(f"a worker may not send {type(message).__name__}")
    except trio.EndOfChannel:
        return "the worker closed its connection", True
    except ProtocolError as error:
        log.warning("worker %s broke the protocol: %s", worker_id, error)
        return f"protocol error: {error}", True
    except (trio.BrokenResourceError, trio.ClosedResourceError) as error:
        return f"connection broke: {error}", True


def _finished(dispatcher: Dispatcher, worker_id: str, message: TasksFinished) -> None:
    for item in message.outcomes:
        task = dispatcher.expects(worker_id, item.task_id, item.attempt)
        if task is None:
            continue  # stale: nothing of it is unpickled
        result: outcome.Outcome[Any]
        if task.result is not None:  # its caller cancelled it: only its resources matter
            result = outcome.Error(TaskCancelledError(f"task {item.task_id} was cancelled"))
        else:
            result = unpack_outcome(item.ok, item.payload, task_id=item.task_id)
        dispatcher.task_done(
            worker_id, item.task_id, item.attempt, result, item.duration, item.usage
        )


def _peer_name(stream: trio.abc.Stream) -> str:
    try:
        socket_stream = stream if isinstance(stream, trio.SocketStream) else stream.transport_stream  # type: ignore[attr-defined]
        host, port = socket_stream.socket.getpeername()[:2]
        return f"{host}:{port}"
    except Exception:
        return "unknown peer"
