"""Messages as bytes: the msgpack array ``[tag, body]``.

``tag`` is the message class name, ``body`` the map of its fields as the converter of
``_converter.py`` unstructures them, or, for the three messages that carry every task, the
positional arrays of ``_hot.py``.  Decoding is strict and raises only ``ProtocolError``.
"""

from __future__ import annotations

from typing import Final

import msgpack

from .._exceptions import ProtocolError
from ._checks import short
from ._converter import make_converter
from ._hot import HotCodec
from ._kind_codec import KindCodec
from ._messages import MESSAGE_TYPES, Message

__all__ = ["decode", "encode"]

_BY_TAG: Final[dict[str, type[Message]]] = {cls.__name__: cls for cls in MESSAGE_TYPES}
_CONVERTER: Final = make_converter()
_HOT: Final = HotCodec(KindCodec(_CONVERTER))


def encode(message: Message) -> bytes:
    """The msgpack bytes of ``message``: ``[tag, body]``.

    Raises:
        TypeError: ``message`` is not one of ``MESSAGE_TYPES``.
        ProtocolError: it holds a resource kind that cannot cross the wire.
    """
    tag = type(message).__name__
    if _BY_TAG.get(tag) is not type(message):
        raise TypeError(f"encode({message!r}): not a grainlike wire message")
    hot = _HOT.encoders.get(type(message))
    body = hot(message) if hot is not None else _CONVERTER.unstructure(message)
    data: bytes = msgpack.packb([tag, body], use_bin_type=True)
    return data


def decode(data: bytes) -> Message:
    """The message whose ``encode`` gave ``data``.

    Raises:
        ProtocolError: ``data`` is not msgpack, not ``[tag, body]``, names an unknown message,
            or its body has missing, extra or wrongly typed fields, or invalid values.
    """
    try:
        envelope = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        raise ProtocolError(f"a frame of {len(data)} bytes is not valid msgpack: {exc}") from exc
    if not (isinstance(envelope, list) and len(envelope) == 2 and type(envelope[0]) is str):
        raise ProtocolError(f"a message is [tag, body], got {short(envelope)}")
    tag, body = envelope
    cls = _BY_TAG.get(tag)
    if cls is None:
        raise ProtocolError(f"unknown message tag {tag!r}")
    hot = _HOT.decoders.get(cls)
    try:
        message: Message = hot(body) if hot is not None else _CONVERTER.structure(body, cls)
    except ProtocolError as exc:
        raise ProtocolError(f"malformed {tag} message: {exc}") from exc
    except Exception as exc:  # cattrs and attrs validators raise many types for bad fields
        raise ProtocolError(f"malformed {tag} message {short(body)}: {exc!r}") from exc
    return message
