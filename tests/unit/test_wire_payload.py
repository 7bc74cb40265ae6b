"""Payloads: cloudpickled values, and exceptions that carry their remote traceback."""

from __future__ import annotations

import sys
import threading
import traceback
from collections.abc import Callable
from typing import cast

import pytest

from grainlike import ProtocolError, TaskFailedError
from grainlike.wire import dumps_payload, loads_payload, pack_exception, unpack_exception


def raise_and_catch(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:
        return caught


def failing_deep_inside() -> None:
    raise KeyError("missing-sample")


class Stubborn(Exception):
    """Pickles (args are kept) but cannot unpickle: __init__ wants two arguments."""

    def __init__(self, a: int, b: int) -> None:
        super().__init__(a + b)


class Vanishing(Exception):
    pass


class Slotted(Exception):
    __slots__ = ()


def test_a_lambda_and_its_arguments_round_trip() -> None:
    offset = 10
    function, args = cast(
        tuple[Callable[[int], int], tuple[int]],
        loads_payload(dumps_payload((lambda x: x + offset, (5,)))),
    )
    assert function(*args) == 15


def test_an_exception_comes_back_as_itself_with_the_remote_traceback() -> None:
    try:
        failing_deep_inside()
    except KeyError as exc:
        data = pack_exception(exc)
    back = unpack_exception(data)
    assert isinstance(back, KeyError)
    assert back.args == ("missing-sample",)
    remote = back.remote_traceback  # type: ignore[attr-defined]
    assert "failing_deep_inside" in remote
    assert "KeyError: 'missing-sample'" in remote
    assert back.__notes__ == [f"Remote traceback:\n{remote.rstrip()}"]


@pytest.mark.parametrize("cls", [KeyError, Slotted])
def test_an_exception_that_crosses_twice_has_one_note_with_the_first_traceback(
    cls: type[Exception],
) -> None:
    # A sync task's exception goes from its pool child to the worker, then to the dispatcher.
    once = unpack_exception(pack_exception(raise_and_catch(cls("twice"))))
    twice = unpack_exception(pack_exception(once))
    assert isinstance(twice, cls)
    [note] = twice.__notes__
    assert note == once.__notes__[0]
    assert "raise_and_catch" in note and "Remote traceback" not in note[len("Remote") :]


def test_an_exception_that_cannot_unpickle_becomes_task_failed_error() -> None:
    exc = raise_and_catch(Stubborn(1, 2))
    back = unpack_exception(pack_exception(exc))
    assert isinstance(back, TaskFailedError)
    assert str(back) == f"{__name__}.Stubborn: 3"
    assert "raise_and_catch" in back.remote_traceback


def test_an_exception_holding_something_unpicklable_becomes_task_failed_error() -> None:
    lock_holder = raise_and_catch(ValueError("bad", threading.Lock()))
    back = unpack_exception(pack_exception(lock_holder))
    assert isinstance(back, TaskFailedError)
    assert str(back).startswith("builtins.ValueError: ")


def test_an_exception_whose_class_is_unknown_here_becomes_task_failed_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = pack_exception(raise_and_catch(Vanishing("x")))
    monkeypatch.delattr(sys.modules[__name__], "Vanishing")  # as if the caller lacked the class
    back = unpack_exception(data)
    assert isinstance(back, TaskFailedError)
    assert str(back) == f"{__name__}.Vanishing: x"
    assert "raise_and_catch" in back.remote_traceback


def test_a_slotted_exception_keeps_the_traceback_as_a_note() -> None:
    back = unpack_exception(pack_exception(raise_and_catch(Slotted("s"))))
    assert isinstance(back, Slotted)
    assert back.__notes__[0].startswith("Remote traceback:\n")


def test_task_failed_error_itself_crosses_intact() -> None:
    back = unpack_exception(pack_exception(raise_and_catch(TaskFailedError("inner", "tb"))))
    assert isinstance(back, TaskFailedError)
    assert str(back) == "inner"


@pytest.mark.parametrize("data", [b"", b"\x93\xc0\xa1x\xa1y", b"\x94\x01\x02\x03\x04"])
def test_a_malformed_packed_exception_is_a_protocol_error(data: bytes) -> None:
    with pytest.raises(ProtocolError, match="packed exception"):
        unpack_exception(data)


def test_a_function_pickled_by_value_keeps_the_file_it_was_defined_in() -> None:
    """cloudpickle would say "<dynamic-code>": a remote traceback names the user's script."""
    namespace: dict[str, object] = {"__name__": "users_script_not_importable"}
    source = "def divide(x):\n    return 1 / x\n"
    exec(compile(source, "/home/me/flow.py", "exec"), namespace)
    divide = cast(Callable[[int], float], loads_payload(dumps_payload(namespace["divide"])))
    assert divide.__code__.co_filename == "/home/me/flow.py"
    try:
        divide(0)
    except ZeroDivisionError as error:
        text = "".join(traceback.format_exception(error))
    assert 'File "/home/me/flow.py", line 2, in divide' in text
