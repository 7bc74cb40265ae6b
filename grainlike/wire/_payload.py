"""Payloads: functions, arguments, results and exceptions as bytes, through cloudpickle.

Unpickling runs code chosen by whoever made the bytes, so payloads are loaded only from a peer
that passed authentication (``_auth.py``), never before.
"""

from __future__ import annotations

import collections
import contextlib
import io
import pickle
import traceback
import types
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import cloudpickle
import msgpack
import outcome

from .._exceptions import ProtocolError, TaskFailedError

__all__ = [
    "dumps_payload",
    "dumps_referring",
    "loads_payload",
    "loads_referring",
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


def _code_keeping_its_file(code: types.CodeType) -> tuple[Any, ...]:
    """cloudpickle's reduction of a code object, with the real ``co_filename`` kept.

    cloudpickle writes ``"<dynamic-code>"`` there, to make its payloads deterministic; a
    traceback from a worker would then not say which file a function of the user's script is
    in, nor show its lines.
    """
    constructor, args = cloudpickle.cloudpickle._code_reduce(code)
    args = tuple(code.co_filename if arg == "<dynamic-code>" else arg for arg in args)
    return constructor, args


class _Pickler(cloudpickle.Pickler):  # type: ignore[misc]
    dispatch_table: ClassVar[Mapping[type, Any]] = collections.ChainMap(
        {types.CodeType: _code_keeping_its_file}, cloudpickle.Pickler.dispatch_table
    )


def _cloudpickle(obj: object) -> bytes:
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
    return buffer.getvalue()


def dumps_payload(obj: object) -> bytes:
    """Pickle ``obj`` with cloudpickle (functions and classes defined in ``__main__`` too).

    Plain values (numbers, strings, bytes, and small lists, tuples and dicts of them) take the
    standard pickle instead: the same bytes for ``loads``, without cloudpickle's reducers.
    """
    if _plain(obj):
        return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return _cloudpickle(obj)


def loads_payload(data: bytes) -> object:
    """Unpickle what ``dumps_payload`` made; errors of unpickling propagate unchanged."""
    return pickle.loads(data)


class _ReferringPickler(_Pickler):
    """Writes the objects named in ``refs`` (by ``id``) as references to their keys."""

    def __init__(self, buffer: io.BytesIO, refs: Mapping[int, int]) -> None:
        super().__init__(buffer, protocol=pickle.HIGHEST_PROTOCOL)
        self._refs = refs

    def persistent_id(self, obj: object) -> int | None:
        return self._refs.get(id(obj))


def dumps_referring(obj: object, refs: Mapping[int, int]) -> bytes:
    """Pickle ``obj`` as ``dumps_payload`` does, but each object whose ``id`` is a key of
    ``refs`` as a reference to ``refs[id]``, which ``loads_referring`` resolves."""
    buffer = io.BytesIO()
    _ReferringPickler(buffer, refs).dump(obj)
    return buffer.getvalue()


class _ReferringUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, resolve: Callable[[object], object]) -> None:
        super().__init__(io.BytesIO(data))
        self._resolve = resolve

    def persistent_load(self, pid: object) -> object:
        return self._resolve(pid)


def loads_referring(data: bytes, resolver: Callable[[], Callable[[object], object]]) -> object:
    """Unpickle what ``dumps_payload`` or ``dumps_referring`` made; for a payload with
    references, ``resolver()`` makes the function that resolves each of its keys."""
    try:
        return pickle.loads(data)
    except pickle.UnpicklingError as error:
        # Only a payload with references needs the slower unpickler that resolves them.
        if "persistent" not in str(error):
            raise
    return _ReferringUnpickler(data, resolver()).load()


#: How the note that carries a remote traceback begins.
_NOTE = "Remote traceback:\n"


def _traceback_from_afar(exc: BaseException) -> str | None:
    """The remote traceback ``unpack_exception`` attached to ``exc``, if it did."""
    attached = getattr(exc, "remote_traceback", None)
    if isinstance(attached, str):
        return attached
    for note in getattr(exc, "__notes__", None) or ():
        if isinstance(note, str) and note.startswith(_NOTE):
            return note[len(_NOTE) :]
    return None


def pack_exception(exc: BaseException) -> bytes:
    """Pack an exception with its traceback formatted here, for ``unpack_exception`` there.

    The exception itself travels when it survives a pickle round trip here; otherwise only
    its type name, message and traceback do.
    """
    # An exception that already crossed (from a pool child to its worker, then on to the
    # dispatcher) keeps the traceback of where it was raised.
    remote_traceback = _traceback_from_afar(exc) or "".join(traceback.format_exception(exc))
    pickled: bytes | None
    try:
        pickled = _cloudpickle(exc)
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
    notes = getattr(exc, "__notes__", None)
    if isinstance(notes, list):  # one note, however many hops it made
        exc.__notes__ = [n for n in notes if not (isinstance(n, str) and n.startswith(_NOTE))]
    exc.add_note(f"{_NOTE}{remote_traceback.rstrip()}")
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
