"""Short-lived authenticated clients of a dispatcher: ``grainlike status`` and ``quit``."""

from __future__ import annotations

import ssl

import trio

from ._exceptions import GrainlikeError, ProtocolError
from .wire import (
    Message,
    QueryStatus,
    QuitAcknowledged,
    QuitWorkers,
    StatusReport,
    decode,
    encode,
    open_connection,
)

__all__ = ["query_status", "quit_workers"]


async def _ask(address: str, key: bytes, question: Message, tls: ssl.SSLContext | None) -> Message:
    async with open_connection(address, key, tls=tls) as framed:
        try:
            await framed.send(encode(question))
            return decode(await framed.receive())
        except (trio.EndOfChannel, trio.BrokenResourceError) as error:
            raise GrainlikeError(
                f"the dispatcher at {address} closed the connection before answering "
                f"({type(error).__name__})"
            ) from None


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
