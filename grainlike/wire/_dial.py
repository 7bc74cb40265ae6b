"""Dialling a dispatcher: the address, TCP (with retries), TLS, framing and authentication.

Workers and the ``status``/``quit`` clients connect the same way, so they share this one dial.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from .._exceptions import AuthenticationError, ConfigError, GrainlikeError, ProtocolError
from ._auth import authenticate_as_client
from ._framing import DEFAULT_MAX_FRAME, FramedStream

__all__ = ["open_connection", "parse_address"]


def parse_address(text: str) -> tuple[str, int]:
    """``(host, port)`` of ``HOST:PORT`` (``[::1]:4242`` for IPv6; an empty host is all
    interfaces when listening, this machine when connecting).

    Raises:
        ConfigError: ``text`` is not ``HOST:PORT`` with a port of 0 to 65535.
    """
    host, colon, port = text.rpartition(":")
    if not colon or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{text!r}: give an address as HOST:PORT, e.g. 127.0.0.1:4242")
    host = host.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


async def _tcp(host: str, port: int, connect_timeout: float) -> trio.SocketStream:
    """A TCP stream to ``host:port``, retrying with backoff for ``connect_timeout`` seconds."""
    deadline = trio.current_time() + connect_timeout
    delay = 0.1
    while True:
        try:
            return await trio.open_tcp_stream(host, port)
        except OSError as error:
            if trio.current_time() + delay > deadline:
                waited = f" within {connect_timeout:g}s" if connect_timeout > 0 else ""
                reason = _why(error)
                raise GrainlikeError(
                    f"cannot reach the dispatcher at {host}:{port}{waited}: {reason}"
                ) from None
            await trio.sleep(delay)
            delay = min(delay * 2, 2.0)


def _why(error: OSError) -> str:
    """The system's word for a failed connect (trio wraps one error per address tried)."""
    causes = getattr(error.__cause__, "exceptions", ())
    reasons = {os.strerror(c.errno).lower() for c in causes if isinstance(c, OSError) and c.errno}
    return ", ".join(sorted(reasons)) or error.strerror or str(error)


@asynccontextmanager
async def open_connection(
    address: str,
    key: bytes,
    *,
    tls: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    max_frame: int = DEFAULT_MAX_FRAME,
    connect_timeout: float = 0.0,
    handshake_timeout: float = 30.0,
) -> AsyncIterator[FramedStream]:
    """An authenticated frame stream to the dispatcher at ``address`` (``HOST:PORT``).

    Args:
        address: Where the dispatcher listens.
        key: The shared key.
        tls: A client TLS context, to wrap the stream before authenticating.
        server_hostname: The name the TLS certificate is checked against (default the host).
        max_frame: The largest frame this side accepts.
        connect_timeout: Seconds to keep trying while the dispatcher is not there yet.
        handshake_timeout: Seconds the dispatcher has to complete the handshake.

    Raises:
        ConfigError: ``address`` is malformed.
        GrainlikeError: the dispatcher cannot be reached.
        AuthenticationError: the keys differ.
        ProtocolError: the peer is not a grainlike dispatcher of this protocol version.
    """
    host, port = parse_address(address)
    host = host or "127.0.0.1"
    deadline = trio.current_time() + connect_timeout
    delay = 0.1
    while True:
        framed = await _authenticated(
            address,
            host,
            port,
            key,
            tls,
            server_hostname,
            max_frame,
            connect_timeout,
            handshake_timeout,
        )
        if framed is not None:
            break
        # A dispatcher with many handshakes pending closes new connections at once: a burst
        # of workers starting together retries for as long as it may keep trying.
        if trio.current_time() + delay > deadline:
            raise GrainlikeError(
                f"the dispatcher at {address} kept closing the connection before the handshake"
            )
        await trio.sleep(delay)
        delay = min(delay * 2, 2.0)
    async with framed:
        yield framed


async def _authenticated(
    address: str,
    host: str,
    port: int,
    key: bytes,
    tls: ssl.SSLContext | None,
    server_hostname: str | None,
    max_frame: int,
    connect_timeout: float,
    handshake_timeout: float,
) -> FramedStream | None:
    """One attempt: TCP, TLS, framing, authentication; ``None`` when the dispatcher hung up
    (or reset the connection) before its greeting."""
    stream: trio.abc.Stream = await _tcp(host, port, connect_timeout)
    if tls is not None:
        stream = trio.SSLStream(stream, tls, server_hostname=server_hostname or host)
    framed = FramedStream(stream, max_frame=max_frame)
    try:
        with trio.fail_after(handshake_timeout):
            await authenticate_as_client(framed, key)
    except trio.TooSlowError:
        await trio.aclose_forcefully(framed)
        raise GrainlikeError(
            f"the dispatcher at {address} did not complete the handshake within "
            f"{handshake_timeout:g}s"
        ) from None
    except ProtocolError as error:
        await trio.aclose_forcefully(framed)
        if isinstance(error.__cause__, trio.EndOfChannel):
            return None
        raise
    except trio.BrokenResourceError as error:
        await trio.aclose_forcefully(framed)
        if isinstance(error.__cause__, ConnectionResetError):
            # Closed at once with our greeting unread, which resets the connection: as a
            # hang-up before its greeting, a dispatcher with every handshake slot taken.
            return None
        if isinstance(error.__cause__, ssl.SSLError):  # e.g. not the pinned certificate
            raise AuthenticationError(
                f"TLS with the dispatcher at {address} failed: {error.__cause__}"
            ) from None
        detail = f": {error}" if str(error) else ""
        raise GrainlikeError(
            f"the connection to the dispatcher at {address} broke during the handshake{detail}"
        ) from None
    except BaseException:
        await trio.aclose_forcefully(framed)
        raise
    return framed
