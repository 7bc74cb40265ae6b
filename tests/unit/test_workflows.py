"""Work that makes work, on the embedded worker: subtasks belong to their parent, branches run
on the head, and ``gl.released()`` lends a parent's cores to its children."""

from __future__ import annotations

import gc
import traceback
import weakref

import pytest
import trio
import trio.testing

import grainlike as gl
from grainlike import ZERO, Cores, TaskCancelledError

pytestmark = pytest.mark.usefixtures("local_capacity")


async def leaf(x: int) -> int:
    await trio.sleep(1)
    return x * x


async def where() -> str:
    return gl.GVAR.instance


async def test_a_branch_of_zero_runs_on_the_head_and_takes_no_slot(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def branch(n: int) -> tuple[str, list[int]]:
        squares = await gl.gather(*[(leaf @ Cores(1))(i) for i in range(n)])
        return gl.GVAR.instance, squares

    async with gl.open_session(stats=None, name="box") as session:
        # Three branches at once on a 2-core worker: none waits for a core, their leaves do.
        results = await gl.gather(*[(branch @ ZERO)(3) for _ in range(3)])
        assert trio.current_time() == pytest.approx(5)  # 9 leaves of 1 s on 2 cores
        assert await (where @ ZERO)() == "head"
        assert await (where @ Cores(1))() == "box"
        assert session.dispatcher.running() == 0
    assert results == [("head", [0, 1, 4])] * 3


async def test_a_parents_exception_chain_reaches_the_top_with_the_grandchilds_traceback() -> None:
    async def grandchild() -> None:
        raise KeyError("deep down")

    async def child() -> None:
        await (grandchild @ Cores(1))()

    async def parent() -> None:
        await (child @ ZERO)()

    async with gl.open_session(stats=None):
        with pytest.raises(KeyError, match="deep down") as caught:
            await (parent @ ZERO)()
    text = "".join(traceback.format_exception(caught.value))
    assert "in grandchild" in text and "raise KeyError" in text


async def test_when_a_parent_ends_its_pending_subtasks_are_cancelled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    handles: list[gl.TaskHandle] = []

    async def careless() -> str:
        handles.extend((leaf @ Cores(1))(i) for i in range(4))  # never awaited
        return "done early"

    async with gl.open_session(stats=None) as session:
        assert await (careless @ ZERO)() == "done early"
        await trio.testing.wait_all_tasks_blocked()
        assert all(h.done() for h in handles)
        for handle in handles:
            with pytest.raises(
                TaskCancelledError,
                match=r"was cancelled: its parent, task \d+ \(.*careless\), ended",
            ):
                handle.result()
        assert (session.dispatcher.queued(), session.dispatcher.running()) == (0, 0)


async def test_cancelling_the_top_cancels_everything_below_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    started: list[str] = []

    async def deep(level: int) -> None:
        started.append(f"level {level}")
        if level < 3:
            await gl.gather((deep @ ZERO)(level + 1), (leaf @ Cores(1))(level))
        await trio.sleep_forever()

    async with gl.open_session(stats=None) as session:
        top = (deep @ ZERO)(0)
        await trio.sleep(0.5)
        assert started == ["level 0", "level 1", "level 2", "level 3"]
        top.cancel()
        await trio.testing.wait_all_tasks_blocked()
        assert (session.dispatcher.queued(), session.dispatcher.running()) == (0, 0)
        (worker,) = [w for w in session.dispatcher.worker_states() if w.id != "head"]
        assert worker.capacity.stat()["cores"] == (2, 2)


async def test_a_parent_inside_released_lends_its_cores_to_its_children(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def parent() -> tuple[list[int], list[int], list[int]]:
        mine = list(gl.GVAR.res.c)
        async with gl.released():
            children = await gl.gather(*[(leaf @ Cores(1))(i) for i in range(2)])
        return mine, children, list(gl.GVAR.res.c)

    async with gl.open_session(stats=None, resources="cores:2"):
        before, children, after = await (parent @ Cores(2))()
        assert trio.current_time() == pytest.approx(1)  # both children ran at once on its cores
    assert (before, children, after) == ([0, 1], [0, 1], [0, 1])


async def test_without_released_a_parent_holding_every_core_explains_its_wait(
    autojump_clock: trio.testing.MockClock,
) -> None:
    explained: list[str] = []

    async def hoarder() -> None:
        child = (leaf @ Cores(1))(1)
        await trio.sleep(5)
        explained.append(gl.explain(child))
        child.cancel()

    async with gl.open_session(stats=None, resources="cores:2"):
        hoard = (hoarder @ Cores(2))()
        await hoard
    assert explained and "held by its parent task" in explained[0]
    assert "gl.released()" in explained[0]


async def test_a_run_stuck_on_cores_its_parent_holds_says_so_once(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    async def hoarder() -> None:
        await (leaf @ Cores(1))(1)  # waits for ever: the parent holds both cores

    async with gl.open_session(stats=None, resources="cores:2"):
        with trio.move_on_after(100):
            await (hoarder @ Cores(2))()
    warnings = [r.getMessage() for r in caplog.records if "held by its parent" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].startswith("nothing started for 3")


def submits_from_sync() -> object:
    return (where @ Cores(1))()


@pytest.mark.parametrize("executor", ["process", "thread"])
async def test_a_sync_task_that_submits_hears_that_only_async_tasks_do(executor: str) -> None:
    async with gl.open_session(stats=None):
        with pytest.raises(
            gl.GrainlikeError, match=r"a sync task cannot submit tasks .* `async def`"
        ):
            await (submits_from_sync @ Cores(1)).options(executor=executor)()


async def test_explain_says_a_released_parent_gave_its_allocation_back(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def parent() -> None:
        async with gl.released():
            await trio.sleep(5)

    async with gl.open_session(stats=None, name="box") as session:
        handle = (parent @ Cores(1))()
        await trio.sleep(1)
        assert session.dispatcher.explain(handle.task) == (
            f"task {handle.id} ({handle.task.name}) runs on box, its allocation given back "
            "(gl.released())"
        )
        await handle


async def test_a_released_parent_takes_its_core_back_before_queued_tasks(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def short() -> None:
        await trio.sleep(0.1)

    async def parent() -> float:
        async with gl.released():
            await (leaf @ Cores(1))(2)  # 1 s
        return trio.current_time()

    async with gl.open_session(stats=None, resources="cores:1"):
        handle = (parent @ Cores(1))()
        await trio.sleep(0.5)
        queued = [(short @ Cores(1))() for _ in range(20)]
        # Its child ends at 1; the core it frees may go to a queued task in that moment, but
        # the parent takes it back after that one (0.1 s), not after all 20 queued ones.
        assert await handle <= 1.1 + 1e-9
        await gl.gather(*queued)


class Big:
    """A result whose lifetime the test watches."""


async def big() -> Big:
    return Big()


async def test_a_running_parent_does_not_keep_its_finished_childrens_results() -> None:
    async def parent() -> bool:
        first = weakref.ref(await (big @ Cores(1))())
        for _ in range(3):
            await (big @ Cores(1))()
        gc.collect()
        return first() is None

    async with gl.open_session(stats=None):
        assert await (parent @ ZERO)()
