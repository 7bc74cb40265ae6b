"""Bound functions: ``fn @ res`` on plain, async, sync and ``@delayed`` functions."""

from __future__ import annotations

import functools

import attrs
import pytest

import grainlike as gl
from grainlike import ZERO, Bound, Cores, GrainlikeError, Memory, ResourceError, WTime, delayed
from grainlike.resource import as_resources


async def fetch(x: int) -> int:
    return x


def crunch(x: int) -> int:
    return x


@delayed
async def delayed_fetch(x: int) -> int:
    return x


@delayed
def delayed_crunch(x: int) -> int:
    return x


class AsyncCallable:
    async def __call__(self, x: int) -> int:
        return x


def test_binding_a_plain_function_records_its_request_and_that_it_is_sync() -> None:
    bound = crunch @ Cores(2)
    assert isinstance(bound, Bound)
    assert (bound.fn, bound.request, bound.is_async) == (crunch, as_resources(Cores(2)), False)
    assert bound.name == "crunch"


@pytest.mark.parametrize(
    "fn", [fetch, functools.partial(fetch, 1), AsyncCallable()], ids=["def", "partial", "call"]
)
def test_binding_an_async_callable_marks_it_async(fn: object) -> None:
    assert (fn @ Cores(1)).is_async


def test_delayed_functions_ask_for_nothing_until_bound() -> None:
    assert isinstance(delayed_fetch, Bound)
    assert (delayed_fetch.request, delayed_fetch.is_async) == (ZERO, True)
    assert (delayed_crunch.request, delayed_crunch.is_async) == (ZERO, False)


def test_binding_a_delayed_function_adds_the_resources() -> None:
    bound = delayed_fetch @ Cores(2)
    assert (bound.fn, bound.request, bound.is_async) == (
        delayed_fetch.fn,
        as_resources(Cores(2)),
        True,
    )
    assert delayed_fetch.request == ZERO


def test_a_bound_function_is_immutable() -> None:
    bound = crunch @ Cores(1)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        bound.request = as_resources(Cores(2))


def test_and_returns_a_new_bound_function_and_leaves_the_original_alone() -> None:
    one_core = crunch @ Cores(1)
    with_memory = one_core & Memory(8)
    assert one_core.request == as_resources(Cores(1))
    assert with_memory.request == Cores(1) & Memory(8)
    assert with_memory.fn is crunch


def test_both_precedence_forms_bind_the_same_request() -> None:
    loose = crunch @ Memory(8) & Cores(2)  # Python reads (crunch @ Memory(8)) & Cores(2)
    grouped = crunch @ (Memory(8) & Cores(2))
    assert loose == grouped
    assert loose.request == Cores(2) & Memory(8)


def test_binding_a_bound_function_again_adds_to_its_request() -> None:
    assert (crunch @ Cores(1)) @ WTime(T=60) == crunch @ (Cores(1) & WTime(T=60))


def test_asking_twice_for_one_kind_is_a_resource_error() -> None:
    with pytest.raises(ResourceError, match="combines two"):
        (crunch @ Cores(1)) & Cores(2)


def test_a_non_positive_quantity_fails_when_the_request_is_built() -> None:
    with pytest.raises(ResourceError, match=r"Cores\(0\)"):
        crunch @ Cores(0)
    with pytest.raises(ResourceError, match="Memory"):
        crunch @ Memory(-1)


def test_combining_with_something_that_is_not_a_resource_fails_at_bind_time() -> None:
    with pytest.raises(ResourceError, match="only resources combine"):
        (crunch @ Cores(1)) & 3
    with pytest.raises(TypeError):
        crunch @ "cores:2"  # type: ignore[operator]


def test_binding_something_that_is_not_callable_is_a_resource_error() -> None:
    with pytest.raises(ResourceError, match="only a function can be bound"):
        42 @ Cores(1)


def test_options_set_priority_retries_and_name_on_a_copy() -> None:
    bound = crunch @ Cores(1)
    tuned = bound.options(priority=3, retries=2, name="crunchy")
    assert (tuned.priority, tuned.retries, tuned.name) == (3, 2, "crunchy")
    assert (bound.priority, bound.retries, bound.name) == (0, 0, "crunch")
    assert tuned.options(retries=0).priority == 3


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"priority": "high"}, "priority='high'"),
        ({"priority": True}, "priority=True"),
        ({"retries": -1}, "retries=-1"),
        ({"retries": 1.5}, "retries=1.5"),
    ],
)
def test_bad_options_fail_at_once(options: dict[str, object], message: str) -> None:
    with pytest.raises(ResourceError, match=message):
        (crunch @ Cores(1)).options(**options)


def test_calling_a_bound_function_outside_a_session_says_what_to_do() -> None:
    with pytest.raises(GrainlikeError, match="no grainlike dispatcher is running"):
        (crunch @ Cores(1))(1)


@pytest.mark.usefixtures("local_capacity")
async def test_a_bound_function_is_reusable_and_every_call_gets_its_request() -> None:
    async def cores() -> int:
        return gl.GVAR.res.N

    async with gl.open_session(stats=None):
        one_core = cores @ Cores(1)
        both = one_core.fn @ Cores(2)
        results = await gl.gather(one_core(), one_core(), both(), one_core())
    assert results == [1, 1, 2, 1]


@pytest.mark.usefixtures("local_capacity")
async def test_all_kinds_of_functions_run_with_their_arguments() -> None:
    async with gl.open_session(stats=None, executor="thread"):  # unit tests start no processes
        results = await gl.gather(
            (fetch @ Cores(1))(1),
            (crunch @ Cores(1))(x=2),
            (delayed_fetch @ Cores(1))(3),
            (delayed_crunch @ Cores(1))(4),
            (AsyncCallable() @ Cores(1))(5),
            delayed_crunch(6),
        )
    assert results == [1, 2, 3, 4, 5, 6]
