"""The key of a task in the journal: which function, on which arguments, asking for what.

A key is a digest of

- the function's module and qualified name (a script's ``__main__`` and the ``__grainlike__``
  that ``grainlike run`` runs it as are one module),
- a digest of its code: the bytecode, constants and names of its code object and of every code
  object nested in it (inner functions, lambdas, comprehensions), its default arguments, and
  the values its closure holds.  Its docstring, comments, formatting and line numbers are not
  part of it; the globals it reads and the functions it calls are not either;
- its pickled arguments (keyword arguments sorted by name),
- its request's shorthand (``str(request)``),
- and which call of that same function, arguments and request this is in the run (the first,
  the second, ...), so that calling the same thing twice is two tasks, as without a journal.

Arguments are pickled with ``pickle`` when it can (it is several times faster), else with the
payload pickler (cloudpickle); which of the two applies depends only on the arguments, so the
same arguments give the same key in every run.
"""

from __future__ import annotations

import functools
import hashlib
import pickle
import types
from typing import Any, NamedTuple

import attrs

from ..resource import Resources
from ..wire import Call, dumps_payload

__all__ = ["FunctionKey", "KeyMaker", "TaskKey", "function_key", "task_key"]

#: A script run directly and through ``grainlike run`` is the same module for keys.
_SCRIPT_MODULES = {"__main__": "__main__", "__grainlike__": "__main__"}


def _digest(*parts: bytes) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return h.digest()


def pickled(value: object) -> bytes:
    """``value`` pickled for hashing: by ``pickle`` where it can, else by cloudpickle.

    Raises:
        Exception: what cloudpickle raises for a value it cannot pickle.
    """
    try:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        return dumps_payload(value)


@attrs.frozen(cache_hash=True)
class FunctionKey:
    """What the key says of a function: its module, qualified name, and a digest of its code.

    ``identity`` is a digest of the three, which the digest of each call starts from.
    """

    module: str
    qualname: str
    code: bytes
    identity: bytes = attrs.field(eq=False, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        identity = _digest(self.module.encode(), self.qualname.encode(), self.code)
        object.__setattr__(self, "identity", identity)


class TaskKey(NamedTuple):
    """A task's key (``digest``, 16 bytes) and what it was made of.

    (A named tuple rather than an attrs class: one is made per submitted task, and a tuple is
    made three times faster.)
    """

    digest: bytes
    function: FunctionKey
    request: str
    occurrence: int


def _constant(value: object) -> bytes:
    """A constant of a code object as bytes that do not depend on the process (the order of
    a frozenset's items does, through string hashing)."""
    if isinstance(value, tuple):
        return b"(" + b",".join(map(_constant, value)) + b")"
    if isinstance(value, frozenset):
        return b"{" + b",".join(sorted(map(_constant, value))) + b"}"
    return f"{type(value).__name__}:{value!r}".encode()


#: What ``_code`` is given for a code object that has no docstring slot (not a function's own).
_NO_DOC = object()


def _code(code: types.CodeType, h: Any, *, doc: object = _NO_DOC) -> None:
    h.update(code.co_code)
    h.update("\0".join(code.co_names).encode())
    for index, constant in enumerate(code.co_consts):
        if isinstance(constant, types.CodeType):
            h.update(b"\1code")
            _code(constant, h)
        elif doc is not _NO_DOC and index == 0 and (constant is None or constant == doc):
            # The docstring's slot (``None`` when there is none): a changed docstring is not
            # a changed function.
            h.update(b"\1doc")
        else:
            h.update(b"\1")
            h.update(_constant(constant))


def _code_digest(fn: Any, seen: set[int]) -> bytes:
    """A digest of what ``fn`` runs (see the module's docstring)."""
    if id(fn) in seen:  # a function whose closure holds itself
        return b"recursive"
    seen.add(id(fn))
    h = hashlib.blake2b(digest_size=16)
    if isinstance(fn, types.FunctionType):
        _code(fn.__code__, h, doc=fn.__doc__)
        h.update(pickled((fn.__defaults__, fn.__kwdefaults__)))
        for cell in fn.__closure__ or ():
            try:
                value = cell.cell_contents
            except ValueError:  # a cell not filled yet
                h.update(b"\1empty")
                continue
            h.update(_code_digest(value, seen) if callable(value) else pickled(value))
    elif isinstance(fn, functools.partial):
        h.update(_code_digest(fn.func, seen))
        h.update(pickled((fn.args, sorted(fn.keywords.items()))))
    elif isinstance(fn, types.MethodType):
        h.update(_code_digest(fn.__func__, seen))
        h.update(pickled(fn.__self__))
    else:  # a class, a builtin, an object with __call__: by what it pickles to
        h.update(dumps_payload(fn))
    return h.digest()


def _inner(fn: Any) -> Any:
    while isinstance(fn, functools.partial):
        fn = fn.func
    return fn.__func__ if isinstance(fn, types.MethodType) else fn


def function_key(fn: Any) -> FunctionKey:
    """The module, qualified name and code digest of ``fn``.

    Raises:
        Exception: what pickling raises for a default, closure value, partial argument or
            callable object that cannot be pickled.
    """
    inner = _inner(fn)
    module = getattr(inner, "__module__", None) or type(inner).__module__
    qualname = getattr(inner, "__qualname__", None) or type(inner).__qualname__
    return FunctionKey(_SCRIPT_MODULES.get(module, module), qualname, _code_digest(fn, set()))


def task_key(
    work: Call, request: Resources, occurrence: int = 0, function: FunctionKey | None = None
) -> TaskKey:
    """The key of the ``occurrence``-th call (from 0) of ``work`` with ``request`` in a run.

    Raises:
        Exception: what pickling raises for an argument (or a part of the function) that
            cannot be pickled.
    """
    function = function or function_key(work.fn)
    call = _call(function, str(request).encode(), work)
    return TaskKey(_occurrence(call, occurrence), function, str(request), occurrence)


def _call(function: FunctionKey, request: bytes, work: Call) -> bytes:
    """The digest of a call: the key of its first occurrence.  (The function's identity has a
    fixed length and a request's shorthand no NUL, so the parts cannot run into each other.)"""
    args = pickled((work.args, sorted(work.kwargs.items()) if work.kwargs else ()))
    return hashlib.blake2b(function.identity + request + b"\0" + args, digest_size=16).digest()


def _occurrence(call: bytes, occurrence: int) -> bytes:
    return call if occurrence == 0 else _digest(call, occurrence.to_bytes(8, "little"))


@attrs.define(eq=False)
class KeyMaker:
    """Makes the keys of a run's tasks: each function's code digested once, each repeated call
    numbered.  ``new_functions`` collects each function the first time it is met."""

    new_functions: list[FunctionKey] = attrs.field(factory=list)
    _functions: dict[int, tuple[Any, FunctionKey]] = attrs.field(factory=dict)
    _known: set[FunctionKey] = attrs.field(factory=set)
    _requests: dict[Resources, tuple[str, bytes]] = attrs.field(factory=dict)
    _calls: dict[bytes, int] = attrs.field(factory=dict)
    _last_request: Resources | None = None
    _last_shorthand: tuple[str, bytes] = ("", b"")

    def function(self, fn: Any) -> FunctionKey:
        """``function_key(fn)``, made once per function object."""
        cached = self._functions.get(id(fn))
        if cached is not None and cached[0] is fn:
            return cached[1]
        key = function_key(fn)
        if len(self._functions) >= 4096:  # e.g. a new closure per task: do not keep them all
            self._functions.clear()
        self._functions[id(fn)] = (fn, key)
        if key not in self._known:
            self._known.add(key)
            self.new_functions.append(key)
        return key

    def key(self, work: Call, request: Resources) -> TaskKey:
        """The key of this call: its next occurrence in the run.

        Raises:
            Exception: what pickling raises for what cannot be pickled.
        """
        function = self.function(work.fn)
        if request is self._last_request:  # a bound function called many times
            shorthand = self._last_shorthand
        else:
            known = self._requests.get(request)
            if known is None:
                text = str(request)
                known = self._requests[request] = (text, text.encode())
            self._last_request, self._last_shorthand = request, known
            shorthand = known
        call = _call(function, shorthand[1], work)
        occurrence = self._calls.get(call, 0)
        self._calls[call] = occurrence + 1
        return TaskKey(_occurrence(call, occurrence), function, shorthand[0], occurrence)
