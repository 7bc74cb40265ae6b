"""Mutual authentication on a shared key: HMAC-SHA256 challenge-response, on raw frames.

Nothing a peer sends is unpickled or even msgpack-decoded before this handshake succeeds.
The connecting side (a worker, or a ``status``/``quit`` client) is the client and takes the
worker's role byte; the listening side (the dispatcher) is the server.

Each side's first frame starts with ``MAGIC`` and the protocol version, in every version, so a
mismatch is reported as such.  The exchange (``docs/protocol.md`` gives it byte by byte)::

    worker     -> dispatcher   MAGIC version "W" nonce_w
    dispatcher -> worker       MAGIC version "D" nonce_d HMAC(key, "D" nonce_d nonce_w)
    worker     -> dispatcher   HMAC(key, "W" nonce_w nonce_d)        or REJECT
    dispatcher -> worker       ACCEPT                                or REJECT

The role byte inside each HMAC stops a peer from reflecting one side's proof back at it, and
fresh nonces on both sides stop replays.  The handshake does not bound its own time: callers
wrap it in ``trio.fail_after`` (or ``move_on_after``) and close the stream when it fails.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets
import struct
from typing import Final

import trio

from .._exceptions import AuthenticationError, ConfigError, ProtocolError
from ._framing import FramedStream
from ._keys import MIN_KEY_SIZE

__all__ = [
    "MAGIC",
    "PROTOCOL_VERSION",
    "authenticate_as_client",
    "authenticate_as_server",
]

#: The first bytes of each side's first frame.
MAGIC: Final = b"GRLK"
#: The protocol version this grainlike speaks.
PROTOCOL_VERSION: Final = 2
#: Bytes of each side's nonce and of each proof (an HMAC-SHA256 digest).
NONCE_SIZE: Final = 32
DISPATCHER: Final = b"D"
WORKER: Final = b"W"
ACCEPT: Final = b"ACCEPT"
REJECT: Final = b"REJECT"

_PREFIX: Final = struct.Struct(">4sH")
# Every handshake frame is short; a larger length means the peer is not grainlike.
_HANDSHAKE_LIMIT: Final = 256


def _check_key(key: bytes) -> None:
    if not isinstance(key, bytes) or len(key) < MIN_KEY_SIZE:
        raise ConfigError(f"a shared key must be at least {MIN_KEY_SIZE} bytes")


def _proof(key: bytes, role: bytes, own_nonce: bytes, peer_nonce: bytes) -> bytes:
    return hmac.new(key, role + own_nonce + peer_nonce, hashlib.sha256).digest()


def _greeting(role: bytes, nonce: bytes, proof: bytes = b"") -> bytes:
    return _PREFIX.pack(MAGIC, PROTOCOL_VERSION) + role + nonce + proof


async def _receive(framed: FramedStream, what: str) -> bytes:
    try:
        return await framed.receive(max_size=_HANDSHAKE_LIMIT)
    except trio.EndOfChannel as end:
        # The cause tells a dialler that the peer hung up at once (a busy dispatcher does).
        raise ProtocolError(f"the peer closed the connection before sending its {what}") from end
    except ProtocolError as exc:
        raise ProtocolError(f"not a grainlike peer: bad {what}: {exc}") from exc


def _parse_greeting(frame: bytes, role: bytes, proof_size: int) -> tuple[bytes, bytes]:
    """Check a greeting's magic, version and role; return (nonce, proof)."""
    if len(frame) < _PREFIX.size or not frame.startswith(MAGIC):
        raise ProtocolError(f"not a grainlike peer: its greeting starts with {frame[:8]!r}")
    (_, version) = _PREFIX.unpack_from(frame)
    if version != PROTOCOL_VERSION:
        raise ProtocolError(
            f"the peer speaks grainlike protocol {version}, this side speaks {PROTOCOL_VERSION}"
        )
    peer_role = frame[_PREFIX.size : _PREFIX.size + 1]
    if peer_role not in (DISPATCHER, WORKER):
        raise ProtocolError(f"a protocol-{version} greeting with role {peer_role!r} is malformed")
    if peer_role != role:
        raise AuthenticationError(f"the peer claims role {peer_role!r}, expected {role!r}")
    if len(frame) != _PREFIX.size + 1 + NONCE_SIZE + proof_size:
        raise ProtocolError(f"a protocol-{version} greeting of {len(frame)} bytes is malformed")
    nonce_end = _PREFIX.size + 1 + NONCE_SIZE
    return frame[_PREFIX.size + 1 : nonce_end], frame[nonce_end:]


async def _reject(framed: FramedStream) -> None:
    # Tell the peer why the connection ends; it may already have gone.
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        await framed.send(REJECT)


async def authenticate_as_server(framed: FramedStream, key: bytes) -> None:
    """Authenticate the peer that connected to us, and prove to it that we hold ``key``.

    Returns only when both sides proved knowledge of the key.
    On failure the caller closes the stream (nothing the peer sent has been deserialized).

    Raises:
        AuthenticationError: The peer does not hold ``key`` (or rejected ours).
        ProtocolError: The peer is not grainlike, speaks another protocol version, or broke
            the handshake.
        ConfigError: ``key`` is shorter than 16 bytes.
    """
    _check_key(key)
    greeting = await _receive(framed, "greeting")
    own_nonce = secrets.token_bytes(NONCE_SIZE)
    try:
        peer_nonce, _ = _parse_greeting(greeting, WORKER, 0)
    except ProtocolError:
        if greeting.startswith(MAGIC):
            # Another version: answer with ours so that the worker's error says so too.
            await _reject_version(framed, own_nonce)
        raise
    if hmac.compare_digest(peer_nonce, own_nonce):
        raise AuthenticationError("the peer echoed our nonce")
    await framed.send(
        _greeting(DISPATCHER, own_nonce, _proof(key, DISPATCHER, own_nonce, peer_nonce))
    )
    answer = await _receive_answer(framed, "proof")
    if answer == REJECT:
        raise AuthenticationError("the peer rejected our proof: the two sides hold different keys")
    if len(answer) != NONCE_SIZE:
        raise ProtocolError(f"the peer's proof is {len(answer)} bytes, expected {NONCE_SIZE}")
    if not hmac.compare_digest(answer, _proof(key, WORKER, peer_nonce, own_nonce)):
        await _reject(framed)
        raise AuthenticationError("the peer's proof is wrong: the two sides hold different keys")
    await framed.send(ACCEPT)


async def _reject_version(framed: FramedStream, nonce: bytes) -> None:
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        await framed.send(_greeting(DISPATCHER, nonce, bytes(NONCE_SIZE)))


async def _receive_answer(framed: FramedStream, what: str) -> bytes:
    try:
        return await framed.receive(max_size=_HANDSHAKE_LIMIT)
    except trio.EndOfChannel:
        # Past the greetings, a peer that hangs up is one that did not accept us.
        raise AuthenticationError(f"the peer closed the connection instead of its {what}") from None


async def authenticate_as_client(framed: FramedStream, key: bytes) -> None:
    """Prove to the dispatcher we connected to that we hold ``key``, and check that it does.

    Returns only when both sides proved knowledge of the key and the dispatcher accepted us.
    On failure the caller closes the stream.

    Raises:
        AuthenticationError: The dispatcher does not hold ``key``, or rejected our proof.
        ProtocolError: The peer is not a grainlike dispatcher, speaks another protocol version,
            or broke the handshake.
        ConfigError: ``key`` is shorter than 16 bytes.
    """
    _check_key(key)
    own_nonce = secrets.token_bytes(NONCE_SIZE)
    await framed.send(_greeting(WORKER, own_nonce))
    greeting = await _receive(framed, "greeting")
    peer_nonce, peer_proof = _parse_greeting(greeting, DISPATCHER, NONCE_SIZE)
    if hmac.compare_digest(peer_nonce, own_nonce) or not hmac.compare_digest(
        peer_proof, _proof(key, DISPATCHER, peer_nonce, own_nonce)
    ):
        await _reject(framed)
        raise AuthenticationError(
            "the dispatcher's proof is wrong: the two sides hold different keys"
        )
    await framed.send(_proof(key, WORKER, own_nonce, peer_nonce))
    verdict = await _receive_answer(framed, "verdict")
    if verdict == REJECT:
        raise AuthenticationError(
            "the dispatcher rejected our proof: the two sides hold different keys"
        )
    if verdict != ACCEPT:
        raise ProtocolError(f"the dispatcher's verdict is {verdict[:16]!r}, not ACCEPT or REJECT")
