"""Short-lived authenticated clients of a dispatcher: ``grainlike status`` and ``quit``."""

from __future__ import annotations

import os
import ssl
from typing import Any

import trio

from ._exceptions import GrainlikeError, ProtocolError
from .wire import (
    FramedStream,
    QueryStatus,
    QuitAcknowledged,
    QuitWorkers,
    StatusReport,
    authenticate_as_worker,
    decode,
    encode,
)

__all__ = ["query_status", "quit_workers", "unreachable"]


def unreachable(address: str, error: OSError) -> GrainlikeError:
    """The one-line error for a dispatcher that ``error`` says cannot be reached at ``address``.

    trio's ``open_tcp_stream`` raises one ``OSError`` for all the addresses it tried, with the
    error of each attempt in a group as its cause: the reasons come from there.
    """
    attempts = error.__cause__
    leaves = list(attempts.exceptions) if isinstance(attempts, BaseExceptionGroup) else [error]
    reasons = dict.fromkeys(
        os.strerror(leaf.errno).lower()
        if isinstance(leaf, OSError) and leaf.errno and leaf.errno > 0
        else str(getattr(leaf, "strerror", None) or leaf).lower()
        for leaf in leaves
    )
    return GrainlikeError(f"cannot reach the dispatcher at {address}: {'; '.join(reasons)}")


async def _ask(address: str, key: bytes, question: Any, tls: ssl.SSLContext | None) -> Any:
    host, _, port = address.rpartition(":")
    stream: trio.abc.Stream = await trio.open_tcp_stream(host or "127.0.0.1", int(port))
    if tls is not None:
        stream = trio.SSLStream(stream, tls, server_hostname=host or "127.0.0.1")
    async with FramedStream(stream) as framed:
        await authenticate_as_worker(framed, key)
        await framed.send(encode(question))
        return decode(await framed.receive())


async def query_status(address: str, key: bytes, tls: ssl.SSLContext | None = None) -> StatusReport:
    """The dispatcher's status report."""
    answer = await _ask(address, key, QueryStatus(), tls)
    if not isinstance(answer, StatusReport):
        raise ProtocolError(f"{address} answered a status query with {type(answer).__name__}")
    return answer


async def quit_workers(
    address: str, key: bytes, pattern: str, tls: ssl.SSLContext | None = None
) -> tuple[str, ...]:
    """Drain the workers whose id matches ``pattern``; returns the ids that matched."""
    answer = await _ask(address, key, QuitWorkers(pattern), tls)
    if not isinstance(answer, QuitAcknowledged):
        raise ProtocolError(f"{address} answered a quit request with {type(answer).__name__}")
    return answer.matched
