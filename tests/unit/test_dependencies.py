"""Handles as arguments, on the embedded worker: a call that takes another task's handle waits
for that task, runs with its value, and fails without running when it failed."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import pytest
import trio
import trio.testing

import grainlike as gl
from grainlike import ZERO, Cores, TaskCancelledError
from grainlike.dispatch._status import status_report

pytestmark = pytest.mark.usefixtures("local_capacity")

started: dict[str, float] = {}


async def step(name: str, *inputs: int) -> int:
    started[name] = trio.current_time()
    await trio.sleep(1)
    return sum(inputs) + 1


async def broken(x: int) -> int:
    await trio.sleep(1)
    raise KeyError(f"no {x}")


async def total(values: list[int], extra: dict[str, int]) -> int:
    return sum(values) + sum(extra.values())


@pytest.fixture(autouse=True)
def _forget_starts() -> None:
    started.clear()


async def test_a_chain_runs_in_order_each_step_with_the_value_before_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with gl.open_session(stats=None):
        a = (step @ Cores(1))("a")
        b = (step @ Cores(1))("b", a)
        c = (step @ Cores(1))("c", b)
        assert await c == 3
    assert started == {"a": 0, "b": 1, "c": 2}


async def test_a_diamond_runs_its_sides_together_and_joins_them(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with gl.open_session(stats=None):
        top = (step @ Cores(1))("top")
        left = (step @ Cores(1))("left", top)
        right = (step @ Cores(1))("right", top)
        bottom = (step @ Cores(1))("bottom", left, right)
        assert await bottom == 5  # (1 + 1) + (1 + 1) + 1
        assert await top == 1  # a dependency's handle is still awaited as usual
    assert started == {"top": 0, "left": 1, "right": 1, "bottom": 2}


async def test_handles_inside_lists_and_dicts_are_replaced_by_their_values() -> None:
    async with gl.open_session(stats=None):
        a, b, c = [(step @ Cores(1))(name) for name in "abc"]
        assert await (total @ Cores(1))([a, b, 10], {"c": c}) == 13


async def test_a_failed_input_fails_its_dependents_with_its_error_without_running_them() -> None:
    async with gl.open_session(stats=None):
        bad = (broken @ Cores(1))(7)
        after = (step @ Cores(1))("after", bad)
        later = (step @ Cores(1))("later", after)
        with pytest.raises(KeyError, match="no 7"):
            await later
        with pytest.raises(KeyError, match="no 7"):
            await bad
        # Submitted once the input has failed, a dependent fails at once.
        with pytest.raises(KeyError, match="no 7"):
            await (step @ Cores(1))("late", bad)
    assert started == {}


async def test_a_waiting_dependent_says_what_it_waits_for_and_can_be_cancelled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with gl.open_session(stats=None) as session:
        slow = (step @ Cores(1)).options(name="slow")("slow")
        after = (step @ Cores(1)).options(name="after")("after", slow)
        await trio.sleep(0.5)
        assert gl.explain(after) == (
            f"task {after.id} (after) waits for its inputs: task {slow.id} (slow, running)"
        )
        status = status_report(session.dispatcher)
        assert "1 waiting for inputs" in status.text
        assert status.data["waiting"] == 1
        after.cancel()
        with pytest.raises(TaskCancelledError):
            await after
        assert await slow == 1  # its input is not cancelled with it
    assert "after" not in started


async def test_cancelling_an_input_fails_its_dependent() -> None:
    async with gl.open_session(stats=None):
        slow = (step @ Cores(1))("slow")
        after = (step @ Cores(1))("after", slow)
        slow.cancel()
        with pytest.raises(TaskCancelledError):
            await after


async def test_a_branch_of_zero_that_takes_handles_runs_on_the_head_once_they_succeeded(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def report(*values: int) -> tuple[str, float, int]:
        return gl.GVAR.instance, trio.current_time(), sum(values)

    async with gl.open_session(stats=None):
        parts = [(step @ Cores(1))(str(i)) for i in range(4)]
        assert await (report @ ZERO)(*parts) == ("head", 2.0, 4)


async def test_a_resumed_run_recalls_a_dependent_by_the_values_it_took(tmp_path: Path) -> None:
    journal = tmp_path / "run.db"
    for _ in range(2):
        started.clear()
        async with gl.open_session(stats=None, journal=journal):
            first = (step @ Cores(1))("first")
            assert await (step @ Cores(1))("second", first) == 2
    assert started == {}  # the second run recalled both from the journal


class Blob:
    """A value whose lifetime the test watches."""


async def make_blob() -> Blob:
    return Blob()


async def take(blob: Blob) -> str:
    return type(blob).__name__


async def test_an_input_is_not_kept_alive_by_a_kept_handle_to_its_dependent() -> None:
    async with gl.open_session(stats=None):
        produced = (make_blob @ Cores(1))()
        dependent = (take @ Cores(1))(produced)
        assert await dependent == "Blob"
        value = weakref.ref(await produced)
        del produced
        gc.collect()
        assert value() is None  # the dependent's handle, still held, does not keep it
        assert dependent.done()
