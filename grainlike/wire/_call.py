"""The call payload: what a task runs, and its one byte format for crossing a process boundary.

A ``Call`` is built by the API (``bound(*args)``), carried opaquely by the dispatcher, and run by
a worker.  ``CallPacker`` and ``CallUnpacker`` are the two halves of its format, side by side:
the packer pickles each distinct function once (tasks of one function share its bytes), the
unpacker unpickles each distinct function once, each for the latest ``REMEMBERED_FUNCTIONS``.
The dispatcher keeps one packer for all its connections; a remote worker one unpacker for its
connection; a worker one of each for its pool children.

``executor`` says where a sync function runs on its worker: ``"process"`` (the default: a warm
child process pinned to the task's cores) or ``"thread"`` (a thread of the worker's process, for
code that must share memory with it).  An async function ignores it: it runs on the worker's
event loop.

A payload that cannot be unpickled still becomes a ``Call``: one that raises a
``TaskFailedError`` saying so, so that the task takes its turn and its caller hears why.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from .._exceptions import ConfigError, TaskFailedError
from ._payload import dumps_payload, dumps_referring, loads_payload, loads_referring

__all__ = [
    "EXECUTORS",
    "REMEMBERED_FUNCTIONS",
    "Call",
    "CallPacker",
    "CallUnpacker",
    "PackedCall",
    "check_executor",
]

#: Where a sync function may run on its worker.
EXECUTORS = ("process", "thread")


def check_executor(value: object) -> str:
    """``value`` when it names an executor; ``ConfigError`` naming it otherwise."""
    if not isinstance(value, str) or value not in EXECUTORS:
        raise ConfigError(f"executor={value!r}: choose 'process' or 'thread'")
    return value


@attrs.frozen(slots=True)
class Call:
    """One call of a function: ``fn(*args, **kwargs)``; ``is_async`` when ``fn`` is a coroutine
    function (it then runs on the worker's event loop), else ``executor`` says where it runs.

    A call is made for every task, so it checks nothing itself: its executor was checked
    where it came from (``Bound.options``, the session, or ``CallUnpacker`` for one off the
    wire).
    """

    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = attrs.field(factory=dict)
    is_async: bool = False
    executor: str = "process"

    @property
    def name(self) -> str:
        """The function's name, as errors and events show it."""
        fn: Any = self.fn
        name = str(getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or fn)
        return name.rpartition("<locals>.")[2]  # a nested function by its own name


@attrs.frozen(slots=True)
class PackedCall:
    """A call already packed (a subtask a remote worker submitted): it is forwarded as it is,
    and only the worker that runs it unpacks it."""

    data: bytes
    name: str = "task"


#: How many functions a packer or unpacker remembers: enough for every function of a workflow,
#: few enough that a run making a fresh closure or ``partial`` per task keeps bounded memory.
REMEMBERED_FUNCTIONS = 256


def _remember(cache: dict[Any, Any], key: Any, value: Any) -> None:
    if len(cache) >= REMEMBERED_FUNCTIONS:
        del cache[next(iter(cache))]  # the oldest
    cache[key] = value


class CallPacker:
    """Packs calls into bytes, pickling each distinct function once (by identity), for the
    latest ``REMEMBERED_FUNCTIONS`` functions."""

    __slots__ = ("_functions",)

    def __init__(self) -> None:
        self._functions: dict[int, tuple[Any, bytes]] = {}

    def function_bytes(self, fn: Any) -> bytes:
        """The pickle of ``fn``, made once per function object."""
        cached = self._functions.get(id(fn))
        if cached is not None and cached[0] is fn:
            return cached[1]
        data = dumps_payload(fn)
        _remember(self._functions, id(fn), (fn, data))
        return data

    def pack_or_fail(
        self, call: Call | PackedCall, shared: Mapping[int, int] | None = None, *, task_id: int
    ) -> bytes:
        """``pack``, or, for a call that cannot be pickled, a call that raises a
        ``TaskFailedError`` saying why: its task fails alone, where it was to run."""
        try:
            return self.pack(call, shared)
        except Exception as error:
            failure = TaskFailedError(
                f"task {task_id} ({call.name}): its call cannot be pickled: "
                f"{type(error).__name__}: {error}"
            )
            return self.pack(Call(_raise, (failure,), {}, True))

    def pack(self, call: Call | PackedCall, shared: Mapping[int, int] | None = None) -> bytes:
        """The bytes of ``call``; raises what pickling raises for an unpicklable argument.

        ``shared`` maps the ``id()`` of argument values the worker already holds (sent in a
        ``ShareResults``) to their keys: those are written as references, not pickled.
        """
        if type(call) is PackedCall:
            return call.data
        assert isinstance(call, Call)
        parts = (self.function_bytes(call.fn), call.args, call.kwargs, call.is_async, call.executor)
        if shared:
            return dumps_referring(parts, shared)
        return dumps_payload(parts)


class CallUnpacker:
    """Unpacks what ``CallPacker.pack`` made, unpickling each distinct function once.

    It keeps the shared values its dispatcher sent (``share``) until told to ``forget`` them;
    each call that refers to one gets its own copy, unpickled from the kept bytes, so tasks
    never see each other's changes to a value.
    """

    __slots__ = ("_functions", "_shared")

    def __init__(self) -> None:
        self._functions: dict[bytes, Any] = {}
        self._shared: dict[int, bytes] = {}

    def share(self, key: int, data: bytes) -> None:
        """Keep the pickled value ``data`` for the calls that refer to ``key``."""
        self._shared[key] = data

    def forget(self, keys: Iterable[int]) -> None:
        """Drop the shared values of ``keys`` (no call that refers to them is left)."""
        for key in keys:
            self._shared.pop(key, None)

    @property
    def shared(self) -> int:
        """How many shared values are kept."""
        return len(self._shared)

    def _loader(self) -> Callable[[object], Any]:
        """Resolves the references of one call: each shared value once, however often the
        call refers to it."""
        loaded: dict[object, Any] = {}

        def load(key: object) -> Any:
            if key in loaded:
                return loaded[key]
            data = self._shared.get(key) if type(key) is int else None
            if data is None:
                raise TaskFailedError(f"its input, the value of task {key}, was not sent here")
            value = loaded[key] = loads_payload(data)
            return value

        return load

    def unpack(self, data: bytes, *, task_id: int) -> Call:
        """The call in ``data``; a payload that cannot be unpickled becomes a call that raises
        ``TaskFailedError`` naming task ``task_id`` and the reason."""
        try:
            unpacked: Any = loads_referring(data, self._loader)
            fn_bytes, args, kwargs, is_async, executor = unpacked
            fn: Any = self._functions.get(fn_bytes)
            if fn is None:
                fn = loads_payload(fn_bytes)
                _remember(self._functions, fn_bytes, fn)
            return Call(fn, tuple(args), dict(kwargs), bool(is_async), check_executor(executor))
        except Exception as error:
            failure = TaskFailedError(
                f"task {task_id} could not be unpickled on this worker: {error}"
            )
            return Call(_raise, (failure,), {}, True)


async def _raise(error: BaseException) -> None:
    raise error
