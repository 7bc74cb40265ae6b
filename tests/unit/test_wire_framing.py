"""Framing: length-prefixed frames over in-memory streams and real TCP on 127.0.0.1."""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing

from grainlike import ProtocolError
from grainlike.wire import DEFAULT_MAX_FRAME, FramedStream


def header(size: int) -> bytes:
    return struct.pack(">I", size)


def framed_pair(max_frame: int = DEFAULT_MAX_FRAME) -> tuple[FramedStream, FramedStream]:
    left, right = trio.testing.memory_stream_pair()
    return FramedStream(left, max_frame=max_frame), FramedStream(right, max_frame=max_frame)


def raw_to_framed(chunk: int | None = None) -> tuple[trio.abc.SendStream, FramedStream]:
    """A raw sending stream and a framed receiver that sees at most ``chunk`` bytes per read."""
    send = trio.testing.MemorySendStream()
    receive = trio.testing.MemoryReceiveStream()

    async def pump() -> None:
        trio.testing.memory_stream_pump(send, receive, max_bytes=chunk)

    receive.receive_some_hook = pump
    return send, FramedStream(trio.StapledStream(trio.testing.MemorySendStream(), receive))


class CountingStream(trio.abc.Stream):
    """A real stream that counts the writes passed through to it."""

    def __init__(self, inner: trio.abc.Stream) -> None:
        self.inner = inner
        self.writes = 0

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        self.writes += 1
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self.inner.receive_some(max_bytes)

    async def send_eof(self) -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_frames_arrive_whole_and_in_order() -> None:
    left, right = framed_pair()
    frames = [b"", b"a", b"\x00" * 1000, bytes(range(256))]
    for frame in frames:
        await left.send(frame)
    assert [await right.receive() for _ in frames] == frames


async def test_end_of_stream_between_frames_ends_iteration() -> None:
    left, right = framed_pair()
    await left.send_many([b"one", b"two"])
    await left.aclose()
    assert [frame async for frame in right] == [b"one", b"two"]
    with pytest.raises(trio.EndOfChannel):
        await right.receive()


async def test_send_many_makes_one_write() -> None:
    inner, peer = trio.testing.memory_stream_pair()
    counting = CountingStream(inner)
    sender, receiver = FramedStream(counting), FramedStream(peer)
    frames = [str(i).encode() * (i % 7) for i in range(500)]
    await sender.send_many(frames)
    assert counting.writes == 1
    assert [await receiver.receive() for _ in frames] == frames


async def test_many_frames_in_one_write_are_all_received() -> None:
    send, receiver = raw_to_framed()
    frames = [bytes([i]) * i for i in range(200)]
    await send.send_all(b"".join(header(len(f)) + f for f in frames))
    assert [await receiver.receive() for _ in frames] == frames


@pytest.mark.parametrize("chunk", [1, 3, 7])
async def test_frames_split_across_reads_are_reassembled(chunk: int) -> None:
    send, receiver = raw_to_framed(chunk)
    frames = [b"x" * n for n in (0, 1, 2, 3, 4, 5, 17, 300)]
    await send.send_all(b"".join(header(len(f)) + f for f in frames))
    await send.aclose()
    assert [frame async for frame in receiver] == frames


async def test_an_oversized_header_is_refused_before_the_body_is_read(
    autojump_clock: trio.testing.MockClock,
) -> None:
    send, receiver = raw_to_framed()
    await send.send_all(header(1025))  # the body never comes: a reader that waited would hang
    receiver = FramedStream(receiver.stream, max_frame=1024)
    with trio.fail_after(1), pytest.raises(ProtocolError, match="frame of 1025 bytes"):
        await receiver.receive()
    with pytest.raises(ProtocolError, match="unusable"):
        await receiver.receive()


async def test_a_per_call_limit_tightens_the_check() -> None:
    left, right = framed_pair()
    await left.send(b"x" * 300)
    with pytest.raises(ProtocolError, match="limit is 256"):
        await right.receive(max_size=256)


@pytest.mark.parametrize(
    ("data", "match"),
    [(header(10) + b"12345", "inside a frame: 5 of 10 bytes"), (b"\x00\x00", "frame header")],
)
async def test_a_truncated_frame_is_a_protocol_error(data: bytes, match: str) -> None:
    send, receiver = raw_to_framed()
    await send.send_all(data)
    await send.aclose()
    with pytest.raises(ProtocolError, match=match):
        await receiver.receive()


async def test_sending_an_oversized_frame_sends_nothing() -> None:
    left, right = framed_pair(max_frame=8)
    with pytest.raises(ProtocolError, match="frame of 9 bytes"):
        await left.send_many([b"ok", b"123456789"])
    await left.send(b"fine")
    assert await right.receive() == b"fine"


async def test_a_second_receiver_is_refused() -> None:
    _, right = framed_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(right.receive)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(trio.BusyResourceError):
            await right.receive()
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("limit", [0, -1, 2**32, True])
def test_max_frame_must_fit_the_header(limit: int) -> None:
    with pytest.raises(ValueError, match="max_frame"):
        FramedStream(trio.testing.memory_stream_pair()[0], max_frame=limit)


@pytest.fixture
async def tcp_pair() -> AsyncIterator[tuple[trio.SocketStream, trio.SocketStream]]:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    client = await trio.open_tcp_stream("127.0.0.1", port)
    server = await listeners[0].accept()
    await listeners[0].aclose()
    yield client, server
    await client.aclose()
    await server.aclose()


async def test_large_frames_cross_real_tcp(
    tcp_pair: tuple[trio.SocketStream, trio.SocketStream],
) -> None:
    client, server = FramedStream(tcp_pair[0]), FramedStream(tcp_pair[1])
    big = bytes(range(256)) * (16 * 1024)  # 4 MiB: many reads on the receiving side
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.send_many, [big, b"small", big])
            assert await server.receive() == big
            assert await server.receive() == b"small"
            assert await server.receive() == big


async def test_concurrent_senders_never_interleave_frames_on_tcp(
    tcp_pair: tuple[trio.SocketStream, trio.SocketStream],
) -> None:
    client, server = FramedStream(tcp_pair[0]), FramedStream(tcp_pair[1])
    a, b = b"a" * (2 * 1024 * 1024), b"b" * (2 * 1024 * 1024)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            for frame in (a, b, a, b):
                nursery.start_soon(client.send, frame)
            received = [await server.receive() for _ in range(4)]
    assert sorted(received) == [a, a, b, b]


async def test_an_oversized_header_on_tcp_is_refused_at_once(
    tcp_pair: tuple[trio.SocketStream, trio.SocketStream],
) -> None:
    await tcp_pair[0].send_all(header(2**30) + b"start of a body that never ends")
    with trio.fail_after(5), pytest.raises(ProtocolError, match="1073741824 bytes"):
        await FramedStream(tcp_pair[1]).receive()


async def test_a_peer_closing_mid_frame_on_tcp_is_a_protocol_error(
    tcp_pair: tuple[trio.SocketStream, trio.SocketStream],
) -> None:
    await tcp_pair[0].send_all(header(100) + b"x" * 40)
    await tcp_pair[0].aclose()
    with trio.fail_after(5), pytest.raises(ProtocolError, match="40 of 100 bytes"):
        await FramedStream(tcp_pair[1]).receive()
