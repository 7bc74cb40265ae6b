"""The handshake: both sides prove the shared key; nothing else gets through."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import struct
from collections.abc import Awaitable, Callable

import pytest
import trio
import trio.testing

from grainlike import AuthenticationError, ConfigError, ProtocolError
from grainlike.wire import (
    MAGIC,
    PROTOCOL_VERSION,
    FramedStream,
    Heartbeat,
    authenticate_as_client,
    authenticate_as_server,
    decode,
    encode,
)

KEY = bytes.fromhex("9f" * 16 + "0123456789abcdef" * 2)
OTHER_KEY = secrets.token_bytes(32)


def framed_pair() -> tuple[FramedStream, FramedStream]:
    left, right = trio.testing.memory_stream_pair()
    return FramedStream(left), FramedStream(right)


def greeting(
    role: bytes, nonce: bytes, proof: bytes = b"", version: int = PROTOCOL_VERSION
) -> bytes:
    return MAGIC + struct.pack(">H", version) + role + nonce + proof


def proof(key: bytes, role: bytes, own: bytes, peer: bytes) -> bytes:
    return hmac.new(key, role + own + peer, hashlib.sha256).digest()


async def both(
    dispatcher: Callable[[], Awaitable[None]], worker: Callable[[], Awaitable[None]]
) -> dict[str, BaseException | None]:
    """Run both sides to the end; what each raised (or ``None``)."""
    outcome: dict[str, BaseException | None] = {}

    async def run(side: str, fn: Callable[[], Awaitable[None]]) -> None:
        try:
            await fn()
        except (AuthenticationError, ProtocolError) as exc:
            outcome[side] = exc
        else:
            outcome[side] = None

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run, "dispatcher", dispatcher)
            nursery.start_soon(run, "worker", worker)
    return outcome


def assert_key_not_exposed(exc: BaseException | None, key: bytes) -> None:
    assert isinstance(exc, AuthenticationError)
    for text in (str(exc), repr(exc)):
        assert key.hex() not in text
        assert repr(key) not in text
        assert key.hex()[:16] not in text


async def test_the_same_key_authenticates_both_ways_and_messages_flow(
    autojump_clock: trio.testing.MockClock,
) -> None:
    d, w = framed_pair()
    outcome = await both(
        lambda: authenticate_as_server(d, KEY), lambda: authenticate_as_client(w, KEY)
    )
    assert outcome == {"dispatcher": None, "worker": None}
    await w.send(encode(Heartbeat(1.5)))
    assert decode(await d.receive()) == Heartbeat(1.5)


@pytest.mark.parametrize(("dispatcher_key", "worker_key"), [(KEY, OTHER_KEY), (OTHER_KEY, KEY)])
async def test_a_wrong_key_on_either_side_fails_on_both_ends_without_exposing_it(
    autojump_clock: trio.testing.MockClock, dispatcher_key: bytes, worker_key: bytes
) -> None:
    d, w = framed_pair()
    outcome = await both(
        lambda: authenticate_as_server(d, dispatcher_key),
        lambda: authenticate_as_client(w, worker_key),
    )
    for side in ("dispatcher", "worker"):
        assert_key_not_exposed(outcome[side], KEY)
        assert_key_not_exposed(outcome[side], OTHER_KEY)
    assert "different keys" in str(outcome["dispatcher"])
    assert "different keys" in str(outcome["worker"])


async def test_the_dispatchers_own_proof_reflected_back_fails(
    autojump_clock: trio.testing.MockClock,
) -> None:
    d, attacker = framed_pair()

    async def reflect() -> None:
        nonce = secrets.token_bytes(32)
        await attacker.send(greeting(b"W", nonce))
        reply = await attacker.receive()
        await attacker.send(reply[-32:])  # the dispatcher's proof, offered as ours
        assert await attacker.receive() == b"REJECT"

    outcome = await both(lambda: authenticate_as_server(d, KEY), reflect)
    assert isinstance(outcome["dispatcher"], AuthenticationError)
    assert outcome["worker"] is None


async def test_a_proof_obtained_from_a_second_session_with_swapped_nonces_fails(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The classic reflection: have the dispatcher answer its own challenge in another session."""
    d1, attacker1 = framed_pair()
    d2, attacker2 = framed_pair()

    async def attack() -> None:
        await attacker1.send(greeting(b"W", secrets.token_bytes(32)))
        challenge = (await attacker1.receive())[7:39]
        await attacker2.send(greeting(b"W", challenge))  # the dispatcher's nonce as ours
        answer = (await attacker2.receive())[-32:]
        await attacker2.aclose()
        await attacker1.send(answer)
        assert await attacker1.receive() == b"REJECT"

    outcome: dict[str, BaseException | None] = {}

    async def session(name: str, framed: FramedStream) -> None:
        try:
            await authenticate_as_server(framed, KEY)
        except AuthenticationError as exc:
            outcome[name] = exc
        else:
            outcome[name] = None

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(session, "first", d1)
            nursery.start_soon(session, "second", d2)
            await attack()
    assert "proof is wrong" in str(outcome["first"])
    assert "closed the connection" in str(outcome["second"])


async def test_a_replayed_worker_answer_fails(autojump_clock: trio.testing.MockClock) -> None:
    # A transcript of a genuine worker's session, as an eavesdropper would record it.
    d, w = framed_pair()
    nonce = secrets.token_bytes(32)
    recorded: list[bytes] = []

    async def genuine_worker() -> None:
        await w.send(greeting(b"W", nonce))
        peer_nonce = (await w.receive())[7:39]
        recorded.append(proof(KEY, b"W", nonce, peer_nonce))
        await w.send(recorded[0])
        assert await w.receive() == b"ACCEPT"

    assert await both(lambda: authenticate_as_server(d, KEY), genuine_worker) == {
        "dispatcher": None,
        "worker": None,
    }

    d, replayer = framed_pair()

    async def replay() -> None:
        await replayer.send(greeting(b"W", nonce))
        await replayer.receive()
        await replayer.send(recorded[0])
        assert await replayer.receive() == b"REJECT"

    outcome = await both(lambda: authenticate_as_server(d, KEY), replay)
    assert isinstance(outcome["dispatcher"], AuthenticationError)


async def test_a_mirror_that_echoes_the_worker_is_not_a_dispatcher(
    autojump_clock: trio.testing.MockClock,
) -> None:
    w, mirror = framed_pair()

    async def echo() -> None:
        await mirror.send(await mirror.receive())

    outcome = await both(echo, lambda: authenticate_as_client(w, KEY))
    assert isinstance(outcome["worker"], AuthenticationError)
    assert "role" in str(outcome["worker"])


@pytest.mark.parametrize(
    "garbage",
    [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"\x00\x00\x00\x05hello", b"\x00\x00\x00\x02GR"],
)
async def test_garbage_before_the_handshake_is_a_protocol_error(
    autojump_clock: trio.testing.MockClock, garbage: bytes
) -> None:
    d, raw = trio.testing.memory_stream_pair()
    await raw.send_all(garbage)
    with trio.fail_after(1), pytest.raises(ProtocolError, match="not a grainlike peer"):
        await authenticate_as_server(FramedStream(d), KEY)


async def test_a_worker_that_meets_garbage_gets_a_protocol_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    w, raw = trio.testing.memory_stream_pair()

    async def http_server() -> None:
        await raw.receive_some()
        await raw.send_all(b"HTTP/1.1 400 Bad Request\r\n\r\n")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(http_server)
        with trio.fail_after(1), pytest.raises(ProtocolError, match="not a grainlike peer"):
            await authenticate_as_client(FramedStream(w), KEY)


async def test_a_version_mismatch_is_reported_on_both_ends(
    autojump_clock: trio.testing.MockClock,
) -> None:
    other = PROTOCOL_VERSION + 1
    d, future_worker = framed_pair()

    async def speak_another_version() -> None:
        await future_worker.send(greeting(b"W", secrets.token_bytes(32), version=other))
        reply = await future_worker.receive()
        assert reply[:6] == MAGIC + struct.pack(">H", PROTOCOL_VERSION)

    with trio.fail_after(1):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(speak_another_version)
            with pytest.raises(ProtocolError, match=f"speaks grainlike protocol {other}"):
                await authenticate_as_server(d, KEY)

    w, future_dispatcher = framed_pair()

    async def answer_another_version() -> None:
        await future_dispatcher.receive()
        await future_dispatcher.send(greeting(b"D", secrets.token_bytes(32), version=other))

    with trio.fail_after(1):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(answer_another_version)
            with pytest.raises(ProtocolError, match=f"speaks grainlike protocol {other}"):
                await authenticate_as_client(w, KEY)


async def test_a_peer_hanging_up_mid_handshake_fails_cleanly(
    autojump_clock: trio.testing.MockClock,
) -> None:
    d, quitter = framed_pair()

    async def hang_up_after_greetings() -> None:
        await quitter.send(greeting(b"W", secrets.token_bytes(32)))
        await quitter.receive()
        await quitter.aclose()

    outcome = await both(lambda: authenticate_as_server(d, KEY), hang_up_after_greetings)
    assert isinstance(outcome["dispatcher"], AuthenticationError)

    w, silent = framed_pair()
    stream = silent.stream
    assert isinstance(stream, trio.abc.HalfCloseableStream)
    await stream.send_eof()
    with pytest.raises(ProtocolError, match="closed the connection before"):
        await authenticate_as_client(w, KEY)


@pytest.mark.parametrize("key", [b"", b"short"])
async def test_a_short_key_is_refused_before_anything_is_sent(key: bytes) -> None:
    d, w = framed_pair()
    with pytest.raises(ConfigError, match="at least 16 bytes"):
        await authenticate_as_client(w, key)
    with pytest.raises(ConfigError, match="at least 16 bytes"):
        await authenticate_as_server(d, key)
