"""Work that makes work across real worker processes: subtasks submitted from remote workers,
branches on the head, ``gl.released()`` over the wire, and a parent's worker killed."""

from __future__ import annotations

import signal
import sys
import traceback

import cloudpickle
import pytest
import trio

import grainlike as gl
from grainlike import ZERO, Cores

from .test_cluster import open_cluster

pytestmark = pytest.mark.slow

cloudpickle.register_pickle_by_value(sys.modules[__name__])


async def leaf(x: int) -> tuple[int, str]:
    await trio.sleep(0.05)
    return x * x, gl.GVAR.instance


async def step(level: int, width: int) -> list[object]:
    """A plan: at each level, ``width`` steps, each a plan of the next level on a worker."""
    if level == 0:
        work = [(leaf @ Cores(1))(width)]
    else:
        work = [(step @ Cores(1))(level - 1, width) for _ in range(width)]
    async with gl.released():  # a plan waits for its steps without holding their core
        return await gl.gather(*work)


async def test_a_plan_of_plans_three_levels_deep_runs_on_remote_workers_only() -> None:
    async with open_cluster() as cluster:
        await cluster.start_worker("a", "cores:2")
        await cluster.start_worker("b", "cores:2")
        with trio.fail_after(120):
            result = await (step @ Cores(1))(3, 2)
    flat: list[tuple[int, str]] = []

    def walk(node: object) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
        else:
            assert isinstance(node, tuple)
            flat.append(node)

    walk(result)
    assert len(flat) == 8
    assert {value for value, _ in flat} == {4}
    assert {worker for _, worker in flat} <= {"a", "b"}


async def grandchild() -> None:
    raise KeyError("from the grandchild")


async def child() -> None:
    await (grandchild @ Cores(1))()


async def parent() -> None:
    await (child @ ZERO)()


async def test_a_grandchilds_exception_reaches_the_top_with_its_traceback() -> None:
    async with open_cluster() as cluster:
        await cluster.start_worker("a", "cores:2")
        with pytest.raises(KeyError, match="from the grandchild") as caught:
            await (parent @ Cores(1))()
    text = "".join(traceback.format_exception(caught.value))
    assert "in grandchild" in text
    assert "raise KeyError" in text


async def branch_on_head() -> tuple[str, list[tuple[int, str]]]:
    return gl.GVAR.instance, await gl.gather(*[(leaf @ Cores(1))(i) for i in range(3)])


async def test_a_zero_request_runs_on_the_head_with_no_local_worker() -> None:
    async with open_cluster() as cluster:
        await cluster.start_worker("a", "cores:1")
        where, leaves = await (branch_on_head @ ZERO)()
    assert where == "head"
    assert [value for value, _ in leaves] == [0, 1, 4]
    assert {worker for _, worker in leaves} == {"a"}


async def wide_parent() -> tuple[list[int], list[tuple[int, str]], list[int]]:
    before = list(gl.GVAR.res.c)
    async with gl.released():
        children = await gl.gather(*[(leaf @ Cores(1))(i) for i in range(2)])
    return before, children, list(gl.GVAR.res.c)


async def test_a_parent_holding_every_core_of_its_worker_lends_them_inside_released() -> None:
    async with open_cluster() as cluster:
        await cluster.start_worker("a", "cores:2")
        with trio.fail_after(60):
            before, children, after = await (wide_parent @ Cores(2))()
    assert before == after == [0, 1]
    assert [value for value, _ in children] == [0, 1]


async def slow_leaf(x: int) -> int:
    await trio.sleep(1.0)
    return x


async def fan_out(n: int) -> int:
    async with gl.released():
        values = await gl.gather(*[(slow_leaf @ Cores(1))(i) for i in range(n)])
    return sum(values)


async def test_killing_the_worker_of_a_parent_reruns_it_and_each_result_arrives_once() -> None:
    async with open_cluster() as cluster:
        parent_worker = await cluster.start_worker("parent", "cores:1")
        await cluster.start_worker("children", "cores:4")
        seen: list[object] = []
        cluster.session.dispatcher.events.subscribe(seen.append)
        handle = (fan_out @ (Cores(1) & gl.Token("host")))(4)
        await cluster.start_worker("spare", "cores:1,token:host")
        # (the parent runs on "spare"; kill it while its children run elsewhere)
        await cluster.wait_for(lambda: handle.task.worker == "spare")
        await trio.sleep(0.5)
        cluster.workers["spare"].send_signal(signal.SIGKILL)
        await cluster.start_worker("spare-2", "cores:1,token:host")
        with trio.fail_after(60):
            assert await handle == 6
        finished = [e for e in seen if type(e).__name__ == "TaskFinished"]
        tops = [e for e in finished if getattr(e, "task_id", None) == handle.id]
        assert len(tops) == 1
        assert parent_worker.returncode is None


async def add(*values: int) -> int:
    return sum(values) + 1


async def fails() -> int:
    raise KeyError("an input failed")


async def diamond_on_a_worker() -> tuple[int, str]:
    """Subtasks that take each other's handles: the worker sends each once its inputs are back."""
    top = (add @ Cores(1))()
    left, right = (add @ Cores(1))(top), (add @ Cores(1))(top)
    bottom = (add @ Cores(1))(left, right)
    failed = (add @ Cores(1))((fails @ Cores(1))())
    async with gl.released():
        value = await bottom
        try:
            await failed
        except KeyError as error:
            return value, str(error)
    return value, "the dependent of a failed input did not fail"


async def test_subtasks_on_a_remote_worker_take_each_others_handles() -> None:
    async with open_cluster() as cluster:
        await cluster.start_worker("a", "cores:2")
        with trio.fail_after(60):
            value, error = await (diamond_on_a_worker @ Cores(1))()
    assert value == 5
    assert error == "'an input failed'"


async def big_result() -> bytes:
    return b"r" * 200_000


async def takes(data: bytes) -> int:
    return len(data)  # pragma: no cover - its call never crosses


async def oversized_subtask(kind: str) -> str:
    """A subtask whose call, or whose result, is over a frame limit on the way."""
    handle = (takes @ Cores(1))(b"a" * 200_000) if kind == "call" else (big_result @ Cores(1))()
    try:
        await handle
    except gl.TaskFailedError as error:
        return str(error)
    return "it crossed"


@pytest.mark.parametrize(
    ("kind", "dispatcher", "worker", "said"),
    [
        # The worker's SubmitTasks is over what the dispatcher takes.
        ("call", 100_000, 2**20, "its call is 200"),
        # The dispatcher's SubtasksFinished is over what the worker takes.
        ("result", 2**20, 100_000, "its result of 200"),
    ],
)
async def test_a_subtask_over_the_frame_limit_fails_alone_and_its_worker_goes_on(
    kind: str, dispatcher: int, worker: int, said: str
) -> None:
    async with open_cluster(max_frame=dispatcher) as cluster:
        await cluster.start_worker("a", "cores:2", extra=("--max-frame", str(worker)))
        with trio.fail_after(60):
            error = await (oversized_subtask @ Cores(1))(kind)
            assert await (leaf @ Cores(1))(3) == (9, "a")
        assert said in error and "frame limit of 100000 bytes" in error
        assert cluster.session.dispatcher.worker_ids() == ["a"]
