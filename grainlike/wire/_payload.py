"""Payloads: functions, arguments, results and exceptions as bytes, through cloudpickle.

Unpickling runs code chosen by whoever made the bytes, so payloads are loaded only from a peer
that passed authentication (``_auth.py``), never before.
"""

from __future__ import annotations

import contextlib
import pickle
import traceback
from typing import Any

import cloudpickle
import msgpack
import outcome

from .._exceptions import ProtocolError, TaskFailedError

__all__ = [
    "dumps_payload",
    "loads_payload",
    "pack_exception",
    "pack_outcome",
    "unpack_exception",
    "unpack_outcome",
]


#: Types whose values the standard pickle writes exactly as cloudpickle would, only faster.
_PLAIN = frozenset({int, float, str, bytes, bool, type(None)})


def _plain(obj: object, depth: int = 0) -> bool:
    """Whether ``obj`` is made of plain values only (and not too deeply nested to check)."""
    kind = type(obj)
    if kind in _PLAIN:
        return True
    if depth > 3:
        return False
    if kind is tuple or kind is list:
        items: Any = obj
        if len(items) > 64:
            return False
        for item in items:  # noqa: SIM110 - a loop is faster here than all() on a generator
            if type(item) not in _PLAIN and not _plain(item, depth + 1):
                return False
        return True
    if kind is dict:
        mapping: Any = obj
        if len(mapping) > 64:
            return False
        for key, value in mapping.items():
            if type(key) is not str:
                return False
            if type(value) not in _PLAIN and not _plain(value, depth + 1):
                return False
        return True
    return False


def dumps_payload(obj: object) -> bytes:
    """Pickle ``obj`` with cloudpickle (functions and classes defined in ``__main__`` too).

    Plain values (numbers, strings, bytes, and small lists, tuples and dicts of them) take the
    standard pickle instead: the same bytes for ``loads``, without cloudpickle's reducers.
    """
    if _plain(obj):
        return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    data: bytes = cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return data


def loads_payload(data: bytes) -> object:
    """Unpickle what ``dumps_payload`` made; errors of unpickling propagate unchanged."""
    return pickle.loads(data)


def pack_exception(exc: BaseException) -> bytes:
    """Pack an exception with its traceback formatted here, for ``unpack_exception`` there.

    The exception itself travels when it survives a pickle round trip here; otherwise only
    its type name, message and traceback do.
    """
    remote_traceback = "".join(traceback.format_exception(exc))
    pickled: bytes | None
    try:
        pickled = cloudpickle.dumps(exc, protocol=pickle.HIGHEST_PROTOCOL)
        # Exceptions whose __init__ does not take their args pickle but fail to unpickle;
        # find that out here, where the caller still gets a useful TaskFailedError.
        pickle.loads(pickled)
    except Exception:
        pickled = None
    try:
        message = str(exc)
    except Exception:
        message = "<exception str() failed>"
    kind = f"{type(exc).__module__}.{type(exc).__qualname__}"
    data: bytes = msgpack.packb([pickled, kind, message, remote_traceback], use_bin_type=True)
    return data


def unpack_exception(data: bytes) -> BaseException:
    """The exception that ``pack_exception`` packed, with the remote traceback attached.

    The traceback is added as a note (shown when the exception is printed) and kept as the
    attribute ``remote_traceback`` where the exception accepts attributes.  When the exception
    could not cross, the result is a ``TaskFailedError`` naming its type and message.

    Raises:
        ProtocolError: ``data`` is not what ``pack_exception`` makes.
    """
    try:
        pickled, kind, message, remote_traceback = msgpack.unpackb(data, raw=False)
    except Exception as error:  # msgpack errors, or not four items
        raise ProtocolError(f"a packed exception of {len(data)} bytes is malformed") from error
    if not (
        isinstance(pickled, bytes | None)
        and isinstance(kind, str)
        and isinstance(message, str)
        and isinstance(remote_traceback, str)
    ):
        raise ProtocolError(f"a packed exception has wrongly typed fields: {kind!r}")
    exc: object = None
    if pickled is not None:
        try:
            exc = pickle.loads(pickled)
        except Exception:
            exc = None  # e.g. its class does not exist here
    if not isinstance(exc, BaseException):
        return TaskFailedError(f"{kind}: {message}" if message else kind, remote_traceback)
    exc.add_note(f"Remote traceback:\n{remote_traceback.rstrip()}")
    # A class with __slots__ and no __dict__ refuses the attribute: the note alone carries it.
    with contextlib.suppress(AttributeError, TypeError):
        exc.remote_traceback = remote_traceback  # type: ignore[attr-defined]
    return exc


def pack_outcome(result: outcome.Outcome[Any]) -> tuple[bool, bytes]:
    """``(ok, payload)`` for a task's outcome: its pickled value, or its packed exception.

    A value that cannot be pickled becomes a packed ``TaskFailedError`` that says so.
    """
    if isinstance(result, outcome.Value):
        try:
            return True, dumps_payload(result.value)
        except Exception as error:
            failure = TaskFailedError(
                f"the task's result ({type(result.value).__name__}) cannot be pickled: {error}"
            )
            return False, pack_exception(failure)
    assert isinstance(result, outcome.Error)
    return False, pack_exception(result.error)


def unpack_outcome(ok: bool, payload: bytes, *, task_id: int) -> outcome.Outcome[Any]:
    """The outcome that ``pack_outcome`` packed; a value that cannot be unpickled here becomes
    a ``TaskFailedError`` naming task ``task_id``."""
    try:
        if ok:
            return outcome.Value(loads_payload(payload))
        return outcome.Error(unpack_exception(payload))
    except Exception as error:
        return outcome.Error(
            TaskFailedError(f"task {task_id}: its result could not be unpickled: {error}")
        )
