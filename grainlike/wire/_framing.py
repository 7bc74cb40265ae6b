"""Length-prefixed frames over a byte stream.

A frame is a 4-byte big-endian unsigned length followed by that many bytes.
The receiver checks the length against its limit before it reads the body, so an oversized
frame costs nothing but its header.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Final

import attrs
import trio

from .._exceptions import ProtocolError

__all__ = ["DEFAULT_MAX_FRAME", "HEADER_SIZE", "FramedStream"]

#: The default largest frame a receiver accepts: 64 MiB.
DEFAULT_MAX_FRAME: Final = 64 * 1024 * 1024
#: Bytes of the length prefix.
HEADER_SIZE: Final = 4

_HEADER: Final = struct.Struct(">I")
_LARGEST_LIMIT: Final = 2**32 - 1
# Reads ask for at least this much, so that many small frames cost one system call, and at
# most the upper bound, so that a large frame does not make trio allocate its size at once.
_MIN_READ: Final = 64 * 1024
_MAX_READ: Final = 1024 * 1024


def _check_limit(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _LARGEST_LIMIT:
        raise ValueError(f"FramedStream(max_frame={value!r}): give 1 to {_LARGEST_LIMIT} bytes")


@attrs.define(eq=False)
class FramedStream(trio.abc.Channel[bytes]):
    """Frames over a ``trio.abc.Stream``: a channel of ``bytes``.

    ``receive`` raises ``trio.EndOfChannel`` when the peer closed the stream between frames,
    so ``async for frame in framed`` reads until then.
    Several tasks may send at once (frames never interleave); one task receives.

    Args:
        stream: The byte stream (TCP, TLS, or an in-memory pair in tests).
        max_frame: The largest frame, in bytes, that this side sends or accepts.
    """

    _stream: trio.abc.Stream = attrs.field(alias="stream")
    _max_frame: int = attrs.field(
        default=DEFAULT_MAX_FRAME, alias="max_frame", validator=_check_limit
    )
    _send_limit: int = attrs.field(init=False, default=0)
    _buffer: bytearray = attrs.field(init=False, factory=bytearray)
    _send_lock: trio.Lock = attrs.field(init=False, factory=trio.Lock)
    _receiving: bool = attrs.field(init=False, default=False)
    _broken: str | None = attrs.field(init=False, default=None)

    def __attrs_post_init__(self) -> None:
        self._send_limit = self._max_frame

    @property
    def stream(self) -> trio.abc.Stream:
        """The underlying byte stream."""
        return self._stream

    @property
    def max_frame(self) -> int:
        """The largest frame this side accepts, in bytes."""
        return self._max_frame

    @property
    def send_limit(self) -> int:
        """The largest frame this side sends: its own limit, or the peer's if smaller."""
        return self._send_limit

    def limit_sends(self, peer_max_frame: int) -> None:
        """Send no frame larger than what the peer said it accepts (in the handshake)."""
        self._send_limit = min(self._max_frame, peer_max_frame)

    def _frame(self, data: bytes) -> bytes:
        if len(data) > self._send_limit:
            raise ProtocolError(
                f"cannot send a frame of {len(data)} bytes: the limit is {self._send_limit}"
            )
        return _HEADER.pack(len(data)) + data

    async def send(self, value: bytes) -> None:
        """Send one frame.

        Raises:
            ProtocolError: ``value`` is larger than ``max_frame``.
        """
        await self._send_all(self._frame(value))

    async def send_many(self, values: Iterable[bytes]) -> None:
        """Send several frames with one write.

        Raises:
            ProtocolError: one of ``values`` is larger than ``max_frame``; nothing was sent.
        """
        await self._send_all(b"".join([self._frame(value) for value in values]))

    async def _send_all(self, data: bytes) -> None:
        lock = self._send_lock
        if lock.locked():
            async with lock:
                await self._stream.send_all(data)
            return
        # Uncontended (the usual case: one sender task): take the lock without the extra yield
        # of ``Lock.acquire``; ``send_all`` is the checkpoint.
        lock.acquire_nowait()
        try:
            await self._stream.send_all(data)
        finally:
            lock.release()

    async def receive(self, *, max_size: int | None = None) -> bytes:
        """Receive one frame.

        Args:
            max_size: A tighter limit for this frame (the handshake uses one), else ``max_frame``.

        Raises:
            trio.EndOfChannel: The peer closed the stream between frames.
            ProtocolError: The frame is larger than the limit (known from its header, before its
                body is read), or the stream ended inside it; the stream is unusable afterwards.
            trio.BusyResourceError: Another task is receiving.
        """
        if self._receiving:
            raise trio.BusyResourceError("another task is already receiving from this stream")
        if self._broken is not None:
            raise ProtocolError(f"this stream is unusable after an earlier error: {self._broken}")
        limit = self._max_frame if max_size is None else max_size
        self._receiving = True
        try:
            frame = await self._receive(limit)
        except ProtocolError as exc:
            self._broken = str(exc)
            raise
        finally:
            self._receiving = False
        return frame

    async def _receive(self, limit: int) -> bytes:
        buffer = self._buffer
        read = False
        while len(buffer) < HEADER_SIZE:
            if not await self._fill(HEADER_SIZE - len(buffer)):
                if buffer:
                    raise ProtocolError(
                        f"the stream ended inside a frame header ({len(buffer)} of 4 bytes)"
                    )
                raise trio.EndOfChannel
            read = True
        (size,) = _HEADER.unpack_from(buffer)
        if size > limit:
            raise ProtocolError(f"the peer sent a frame of {size} bytes: the limit is {limit}")
        end = HEADER_SIZE + size
        while len(buffer) < end:
            if not await self._fill(end - len(buffer)):
                raise ProtocolError(
                    f"the stream ended inside a frame: {len(buffer) - HEADER_SIZE} of {size} bytes"
                )
            read = True
        frame = bytes(buffer[HEADER_SIZE:end])
        del buffer[:end]
        if not read:
            await (
                trio.lowlevel.checkpoint()
            )  # a frame already buffered still yields, like any receive
        return frame

    async def _fill(self, needed: int) -> bool:
        """Read at least one more byte into the buffer; ``False`` at end of stream."""
        chunk = await self._stream.receive_some(min(max(needed, _MIN_READ), _MAX_READ))
        if not chunk:
            return False
        self._buffer += chunk
        return True

    async def aclose(self) -> None:
        """Close the underlying stream."""
        await self._stream.aclose()
