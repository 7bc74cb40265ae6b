"""The remote path in one process: the dispatcher's server and a remote worker over an
in-memory stream pair, on trio's autojump clock, so heartbeats and timeouts take no real time.

Each side is the real code (``Connections.handle`` and ``join``); only the TCP socket is
replaced by ``trio.testing.memory_stream_pair``.  Peers that misbehave are played by a raw
client that speaks the protocol by hand.
"""

from __future__ import annotations

import logging
import pickle
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, ClassVar

import attrs
import pytest
import trio
import trio.testing

import grainlike as gl
from grainlike import Cores, TaskFailedError, WorkerLostError, WTime
from grainlike.dispatch import (
    Dispatcher,
    DispatcherConfig,
    Event,
    TaskRetried,
    WorkerDrained,
    WorkerJoined,
    WorkerLost,
)
from grainlike.dispatch._server import Connections, ServerConfig
from grainlike.resource import Resources, as_resources, parse_resources
from grainlike.wire import (
    PROTOCOL_VERSION,
    Call,
    FramedStream,
    Goodbye,
    Hello,
    Refused,
    RunTasks,
    TaskOutcome,
    TasksFinished,
    Welcome,
    authenticate_as_client,
    decode,
    encode,
)
from grainlike.worker._remote import Departure, WorkerOptions, join

KEY = b"k" * 32


@attrs.define
class Cluster:
    """A dispatcher with its server, and a way to connect workers to it in memory."""

    dispatcher: Dispatcher
    connections: Connections
    nursery: trio.Nursery
    events: list[Event]
    departures: list[Departure | BaseException] = attrs.field(factory=list)

    async def pair(self) -> FramedStream:
        """A client end whose server end the dispatcher handles."""
        client, server = trio.testing.memory_stream_pair()
        self.nursery.start_soon(self.connections.handle, server)
        framed = FramedStream(client)
        await authenticate_as_client(framed, KEY)
        return framed

    async def worker(
        self, capacity: str, *, name: str = "w", options: WorkerOptions | None = None
    ) -> None:
        """A real remote worker, joined and running; its departure lands in ``departures``."""
        framed = await self.pair()
        settings = options or WorkerOptions(name=name)

        async def run() -> None:
            try:
                self.departures.append(
                    await join(framed, parse_resources(capacity, capacity=True), settings, "mem")
                )
            except Exception as error:
                self.departures.append(error)

        self.nursery.start_soon(run)
        await self.until(lambda: settings.name in self.dispatcher.worker_ids())

    async def until(self, condition: Callable[[], bool]) -> None:
        with trio.fail_after(120):
            while not condition():
                await trio.sleep(0.01)


@asynccontextmanager
async def cluster(*, max_retries: int = 3, **server: Any) -> AsyncIterator[Cluster]:
    dispatcher = Dispatcher(DispatcherConfig(unsatisfiable_grace=60.0, max_retries=max_retries))
    events: list[Event] = []
    dispatcher.events.subscribe(events.append)
    async with trio.open_nursery() as nursery:
        await nursery.start(dispatcher.serve)
        connections = Connections(dispatcher, KEY, ServerConfig(**server))
        yield Cluster(dispatcher, connections, nursery, events)
        nursery.cancel_scope.cancel()


def submit(dispatcher: Dispatcher, fn: Any, *args: Any, request: Any = None) -> gl.TaskHandle:
    resources = as_resources(request if request is not None else Cores(1))
    return dispatcher.submit(resources, Call(fn, args, {}, True), name=fn.__name__)


async def double(x: int) -> int:
    await trio.sleep(1)
    return 2 * x


async def where() -> tuple[str, list[int]]:
    return gl.GVAR.instance, gl.GVAR.res.c


async def hello_from(framed: FramedStream, capacity: Resources, name: str = "raw") -> Any:
    await framed.send(encode(Hello(PROTOCOL_VERSION, name, "h", 1, capacity, 2**20)))
    return decode(await framed.receive())


# -- the happy path ------------------------------------------------------------------------------


async def test_a_task_runs_on_a_remote_worker_and_its_value_comes_back(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with cluster() as c:
        await c.worker("cores:2", name="far")
        assert await submit(c.dispatcher, double, 21) == 42
        assert await submit(c.dispatcher, where) == ("far", [0])
    assert [type(e) for e in c.events if isinstance(e, WorkerJoined)] == [WorkerJoined]


async def test_a_drained_worker_finishes_its_task_then_leaves_cleanly(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with cluster() as c:
        await c.worker("cores:1")
        handle = submit(c.dispatcher, double, 1)
        await trio.sleep(0.5)
        c.dispatcher.drain_worker("w", "asked to quit")
        assert await handle == 2
        await c.until(lambda: bool(c.departures))
    assert c.departures == [Departure("drained: asked to quit")]
    assert [e.reason for e in c.events if isinstance(e, WorkerDrained)] == ["asked to quit"]


async def test_a_walltime_within_the_drain_margin_drains_at_once_and_says_why(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    async with cluster() as c:
        walltime = WTime(T=30, countdown=True, clock=trio.current_time)
        framed = await c.pair()
        capacity = Cores([0]) & walltime
        c.nursery.start_soon(join, framed, capacity, WorkerOptions(name="short"), "mem")
        # It joins, runs nothing, and leaves at once.
        await c.until(lambda: any(isinstance(e, WorkerDrained) for e in c.events))
        handle = submit(c.dispatcher, double, 1)
        assert c.dispatcher.explain(handle.task).endswith(
            "; the last one, short left: its walltime ends in 30s (drain margin 1m00s))"
        )
        handle.cancel()
    messages = [r.getMessage() for r in caplog.records]
    assert any("walltime left (30s) is within the drain margin (1m00s)" in m for m in messages)
    assert any("worker short drains before running any task" in m for m in messages)


#: What ``step`` saw, in order (module-level: the worker's unpickled copy shares it).
ORDER: list[int] = []


async def step(i: int) -> int:
    ORDER.append(i)
    await trio.sleep(0.001)
    return i


async def test_pipelined_tasks_run_in_order_behind_each_other_on_the_worker(
    autojump_clock: trio.testing.MockClock,
) -> None:
    ORDER.clear()
    async with cluster() as c:
        await c.worker("cores:1")
        assert await submit(c.dispatcher, step, 0) == 0  # measured: now it pipelines
        handles = [submit(c.dispatcher, step, i) for i in range(1, 40)]
        await trio.sleep(0.0005)
        assert c.dispatcher.pipelined() > 0
        assert await gl.dispatch.wait_all(handles) == list(range(1, 40))
    assert list(range(40)) == ORDER


# -- workers that go away -------------------------------------------------------------------------


async def test_a_silent_worker_is_dropped_after_the_heartbeat_timeout_and_told_why(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with cluster(heartbeat_timeout=5.0) as c:
        framed = await c.pair()
        welcome = await hello_from(framed, parse_resources("cores:1", capacity=True))
        assert isinstance(welcome, Welcome)
        await c.until(lambda: bool(c.dispatcher.worker_ids()))
        await trio.sleep(6)  # the raw client sends no heartbeat
        assert c.dispatcher.worker_ids() == []
        heard = [decode(frame) async for frame in framed]
    assert isinstance(heard[-1], Goodbye)
    assert heard[-1].reason == "the dispatcher dropped this worker: no word from it for 5s"
    (lost,) = [e for e in c.events if isinstance(e, WorkerLost)]
    assert lost.reason == "no word from it for 5s"


async def test_a_task_whose_workers_keep_dying_fails_after_its_retries_naming_the_loss(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with cluster() as c:
        handle = submit(c.dispatcher, double, 1)
        for attempt in range(4):
            framed = await c.pair()
            await hello_from(framed, parse_resources("cores:1", capacity=True), f"v{attempt}")
            await c.until(lambda: handle.task.worker is not None)
            await framed.aclose()  # the worker "dies" while running it
            await c.until(lambda: handle.task.worker is None)
        with pytest.raises(WorkerLostError) as caught:
            await handle
    assert str(caught.value) == (
        f"task {handle.id} (double): 4 workers were lost while running it, the last v3 "
        "(the worker closed its connection), and it was retried 3 times (max_retries); it was "
        "the only task running on each of them, so it most likely killed them (os._exit or a "
        "crash in an async task, or blocking the event loop past the heartbeat timeout)"
    )
    retried = [e for e in c.events if isinstance(e, TaskRetried)]
    assert retried[0].reason == (
        "worker lost (the only task running there): the worker closed its connection"
    )


async def test_a_task_lost_with_others_is_not_named_the_cause(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with cluster(max_retries=0) as c:
        handles = [submit(c.dispatcher, double, x) for x in (1, 2)]
        framed = await c.pair()
        await hello_from(framed, parse_resources("cores:2", capacity=True), "v0")
        await c.until(lambda: all(h.task.worker is not None for h in handles))
        await framed.aclose()
        for handle in handles:
            with pytest.raises(WorkerLostError) as caught:
                await handle
            assert str(caught.value) == (
                f"task {handle.id} (double): a worker was lost while running it, the last v0 "
                "(the worker closed its connection), and it was retried 0 times (max_retries); "
                "a task that kills its worker (os._exit or a crash in an async task, or one "
                "that blocks the event loop past the heartbeat timeout) looks like this"
            )


# -- sizes: one task's size never kills a connection ------------------------------------------


async def test_a_call_over_the_frame_limit_fails_alone_and_the_worker_keeps_serving(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def size(data: bytes) -> int:
        return len(data)

    async with cluster() as c:
        await c.worker("cores:2", options=WorkerOptions(name="w", max_frame=64 * 1024))
        big = submit(c.dispatcher, size, b"x" * 100_000)
        small = submit(c.dispatcher, size, b"x" * 10)
        with pytest.raises(TaskFailedError, match=r"over the frame limit of 65536 bytes"):
            await big
        assert await small == 10
        assert c.dispatcher.worker_ids() == ["w"]


async def test_a_result_over_the_frame_limit_fails_its_task_and_the_worker_keeps_serving(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def blob(n: int) -> bytes:
        return b"y" * n

    async with cluster(max_frame=64 * 1024) as c:
        await c.worker("cores:2")
        with pytest.raises(TaskFailedError, match=r"exceeds the frame limit of 65536"):
            await submit(c.dispatcher, blob, 100_000)
        assert await submit(c.dispatcher, blob, 10) == b"y" * 10
        assert c.dispatcher.worker_ids() == ["w"]


async def test_many_tasks_larger_together_than_a_frame_are_sent_in_several(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def size(data: bytes) -> int:
        return len(data)

    async with cluster() as c:
        await c.worker("cores:16", options=WorkerOptions(name="w", max_frame=64 * 1024))
        handles = [submit(c.dispatcher, size, b"z" * 20_000) for _ in range(16)]
        assert await gl.dispatch.wait_all(handles) == [20_000] * 16


class Counted(trio.abc.Stream):
    """A stream that counts the bytes sent through it (the dispatcher's end of a worker)."""

    def __init__(self, inner: trio.abc.Stream) -> None:
        self.inner, self.sent = inner, 0

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        self.sent += len(data)
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self.inner.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_an_input_crosses_once_to_a_worker_however_many_of_its_dependents_run_there(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def produce(n: int) -> bytes:
        return bytes(range(256)) * (n // 256)

    async def measure(data: bytes, i: int) -> int:
        return len(data) + i

    async with cluster() as c:
        client, server = trio.testing.memory_stream_pair()
        counted = Counted(server)
        c.nursery.start_soon(c.connections.handle, counted)
        framed = FramedStream(client)
        await authenticate_as_client(framed, KEY)
        capacity = parse_resources("cores:4", capacity=True)
        c.nursery.start_soon(join, framed, capacity, WorkerOptions(name="w"), "mem")
        await c.until(lambda: "w" in c.dispatcher.worker_ids())
        data = submit(c.dispatcher, produce, 1_000_000)
        await data
        before = counted.sent
        handles = [submit(c.dispatcher, measure, data, i) for i in range(20)]
        assert await gl.dispatch.wait_all(handles) == [len(await data) + i for i in range(20)]
        # 20 dependents of a 1 MB value: it crossed once, not 20 times.
        assert 999_936 < counted.sent - before < 1_200_000
        assert len(c.dispatcher.shared) == 0  # none is left that needs it: dropped here
        # ... and on the worker, which was told to forget it: a later dependent sends it again.
        before = counted.sent
        assert await submit(c.dispatcher, measure, data, 0) == 999_936
        assert counted.sent - before > 999_936


async def test_inputs_inside_lists_and_dicts_reach_a_remote_worker_as_values(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def small() -> int:
        return 5

    async def large() -> bytes:
        return b"L" * 10_000

    async def combine(items: list[Any], extra: dict[str, Any]) -> tuple[int, int, int]:
        return items[0], len(items[1]), len(extra["big"])

    async with cluster() as c:
        await c.worker("cores:2")
        five, blob = submit(c.dispatcher, small), submit(c.dispatcher, large)
        results = [submit(c.dispatcher, combine, [five, blob], {"big": blob}) for _ in range(3)]
        assert await gl.dispatch.wait_all(results) == [(5, 10_000, 10_000)] * 3
        assert len(c.dispatcher.shared) == 0


async def test_a_call_that_cannot_be_pickled_fails_alone_on_its_remote_worker(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def locked(lock: Any) -> str:
        return "never"  # pragma: no cover - its call cannot cross

    async with cluster() as c:
        await c.worker("cores:2")
        bad = submit(c.dispatcher, locked, threading.Lock())
        with pytest.raises(TaskFailedError, match=r"its call cannot be pickled: TypeError"):
            await bad
        assert await submit(c.dispatcher, double, 4) == 8
        assert c.dispatcher.worker_ids() == ["w"]


async def test_shared_inputs_larger_together_than_a_frame_are_sent_in_several(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def blob(n: int) -> bytes:
        return bytes([n]) * 8000

    async def total(*parts: bytes) -> int:
        return sum(len(part) for part in parts)

    async with cluster(max_frame=20_000) as c:
        await c.worker("cores:2", options=WorkerOptions(name="w", max_frame=20_000))
        inputs = [submit(c.dispatcher, blob, n) for n in range(3)]
        assert await submit(c.dispatcher, total, *inputs) == 24_000


# -- peers that hold the key are checked too ----------------------------------------------------


class Tripwire:
    """Unpickling it records that it happened."""

    fired: ClassVar[list[str]] = []

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (Tripwire.fired.append, ("unpickled",))


async def test_a_result_for_a_task_the_sender_does_not_hold_is_never_unpickled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    Tripwire.fired.clear()
    async with cluster() as c:
        framed = await c.pair()
        await hello_from(framed, parse_resources("cores:1", capacity=True))
        stale = TaskOutcome(999, 1, True, pickle.dumps(Tripwire()), 1.0, 0.0)
        await framed.send(encode(TasksFinished((stale,))))
        await trio.testing.wait_all_tasks_blocked()
        assert c.dispatcher.worker_ids() == ["raw"]
    assert Tripwire.fired == []


async def test_a_worker_claiming_a_huge_capacity_is_refused_with_the_reason(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with cluster() as c:
        framed = await c.pair()
        reply = await hello_from(framed, as_resources(Cores(20_000)))
    assert isinstance(reply, Refused)
    assert reply.reason == "it offers 20000 core IDs, more than 16384"
    assert c.dispatcher.worker_ids() == []


async def test_a_worker_sending_a_message_of_the_wrong_kind_is_disconnected(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    async with cluster() as c:
        framed = await c.pair()
        await hello_from(framed, parse_resources("cores:1", capacity=True))
        await framed.send(encode(RunTasks(())))
        await c.until(lambda: not c.dispatcher.worker_ids())
    (lost,) = [e for e in c.events if isinstance(e, WorkerLost)]
    assert lost.reason == "protocol error: a worker may not send RunTasks"
    assert any("broke the protocol" in r.getMessage() for r in caplog.records)


async def test_a_second_hello_is_a_protocol_violation(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with cluster() as c:
        framed = await c.pair()
        capacity = parse_resources("cores:1", capacity=True)
        await hello_from(framed, capacity)
        await framed.send(encode(Hello(PROTOCOL_VERSION, "again", "h", 1, capacity, 2**20)))
        await c.until(lambda: not c.dispatcher.worker_ids())
    (lost,) = [e for e in c.events if isinstance(e, WorkerLost)]
    assert lost.reason == "protocol error: a worker may not send Hello"


async def test_a_handshake_that_never_comes_is_refused_with_a_reason(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "grainlike.dispatcher")
    async with cluster(handshake_timeout=3.0) as c:
        client, server = trio.testing.memory_stream_pair()
        c.nursery.start_soon(c.connections.handle, server)
        await trio.sleep(4)
        assert await client.receive_some() == b""  # closed on us
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.endswith(": no handshake within 3s") for m in messages)


async def test_connections_beyond_the_pending_handshake_cap_are_closed_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with cluster(max_pending_handshakes=2, handshake_timeout=100.0) as c:
        silent = []
        for _ in range(3):
            client, server = trio.testing.memory_stream_pair()
            c.nursery.start_soon(c.connections.handle, server)
            silent.append(client)
        await trio.sleep(1)
        closed = []
        for client in silent:
            with trio.move_on_after(1):
                closed.append(await client.receive_some() == b"")
        # Which one came last is up to trio's scheduler: one was closed at once, and the
        # other two still have their handshake time.
        assert sorted(closed) == [True]
        assert trio.current_time() == pytest.approx(3)
