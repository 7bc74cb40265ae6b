"""The user API around a session: run, exec1, gather, GVAR, errors and cancellation."""

from __future__ import annotations

import logging
import threading
import traceback
from pathlib import Path

import pytest
import trio
import trio.testing

import grainlike as gl
from grainlike import (
    GPU,
    ConfigError,
    Cores,
    GrainlikeError,
    Memory,
    ResourceError,
    Resources,
    UnsatisfiableError,
)

pytestmark = pytest.mark.usefixtures("local_capacity")


def free_cores(session: gl.Session) -> tuple[float, float]:
    (worker,) = session.dispatcher.worker_states()
    return worker.capacity.stat()["cores"]


# -- run, exec1, gather --------------------------------------------------------------------------


def test_run_returns_what_main_returns_given_its_arguments() -> None:
    async def double(x: int) -> int:
        return 2 * x

    async def main(x: int, y: int) -> list[int]:
        return await gl.gather((double @ Cores(1))(x), (double @ Cores(2))(y))

    assert gl.run(main, 1, 2, stats=None) == [2, 4]


def test_run_resources_override_the_embedded_workers_capacity() -> None:
    async def cores() -> list[int]:
        return list(gl.GVAR.res.c)

    async def main() -> list[int]:
        result: list[int] = await (cores @ Cores(1))()
        with pytest.raises(UnsatisfiableError):
            await (cores @ Cores(2))()
        return result

    assert gl.run(main, resources="cores:1", stats=None) == [0]


async def test_exec1_runs_one_call_with_its_resources() -> None:
    def add(x: int, y: int) -> tuple[int, int]:
        return x + y, gl.GVAR.res.N

    async with gl.open_session(stats=None, executor="thread"):  # unit tests start no processes
        assert await gl.exec1(Cores(2), add, 1, y=2) == (3, 2)


async def test_gather_returns_results_in_argument_order_not_completion_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def wait(seconds: float) -> float:
        await trio.sleep(seconds)
        return seconds

    async with gl.open_session(stats=None, resources="cores:4"):
        handles = [(wait @ Cores(1))(s) for s in (3.0, 1.0, 2.0)]
        assert await gl.gather(*handles) == [3.0, 1.0, 2.0]
        coroutines = [gl.exec1(Cores(1), wait, s) for s in (2.0, 1.0)]
        assert await gl.gather(*coroutines) == [2.0, 1.0]
        assert await gl.gather() == []


async def test_gather_of_one_handle_twice_gives_its_result_twice() -> None:
    async def one() -> int:
        return 1

    async with gl.open_session(stats=None):
        handle = (one @ Cores(1))()
        assert await gl.gather(handle, handle) == [1, 1]


async def test_a_handle_can_be_awaited_again_for_the_same_result() -> None:
    async def one() -> int:
        return 1

    async def fail() -> None:
        raise ValueError("again")

    async with gl.open_session(stats=None):
        handle = (one @ Cores(1))()
        assert (await handle, await handle) == (1, 1)
        assert await gl.gather(handle) == [1]
        failing = (fail @ Cores(1))()
        for _ in range(2):
            with pytest.raises(ValueError, match="again"):
                await failing


@pytest.mark.parametrize("as_coroutines", [False, True], ids=["handles", "coroutines"])
async def test_the_first_failure_in_gather_cancels_the_rest(
    autojump_clock: trio.testing.MockClock, as_coroutines: bool
) -> None:
    cancelled: list[str] = []

    async def slow() -> None:
        try:
            await trio.sleep(1000)
        except trio.Cancelled:
            cancelled.append("slow")
            raise

    async def fail() -> None:
        await trio.sleep(1)
        raise ValueError("first failure")

    async with gl.open_session(stats=None) as session:
        if as_coroutines:
            awaitables = [gl.exec1(Cores(1), slow), gl.exec1(Cores(1), fail)]
        else:
            awaitables = [(slow @ Cores(1))(), (fail @ Cores(1))()]
        with pytest.raises(ValueError, match="first failure"):
            await gl.gather(*awaitables)
        assert trio.current_time() == pytest.approx(1)
        await trio.testing.wait_all_tasks_blocked()
        assert cancelled == ["slow"]
        assert free_cores(session) == (2, 2)


async def test_gather_fails_at_once_when_a_task_failed_before_it_was_called(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def slow() -> None:
        await trio.sleep(1000)

    async with gl.open_session(stats=None):
        running = (slow @ Cores(1))()
        unsatisfiable = (slow @ Cores(8))()
        with pytest.raises(UnsatisfiableError):
            await gl.gather(running, unsatisfiable)
        assert trio.current_time() == 0
        assert running.done()


# -- what a task sees -----------------------------------------------------------------------------


def where() -> tuple[Resources, str, Resources, int]:
    return gl.GVAR.res, gl.GVAR.instance, gl.current_allocation(), threading.get_ident()


async def where_async() -> tuple[Resources, str, Resources, int]:
    await trio.sleep(0)
    return where()


async def test_an_async_task_sees_its_allocation_and_worker_on_the_event_loop() -> None:
    async with gl.open_session(stats=None, name="node-a"):
        res, instance, current, thread = await (where_async @ Cores(2) & Memory(1))()
    assert (res.c, res.M, instance, thread) == ([0, 1], 1.0, "node-a", threading.get_ident())
    assert current is res


async def test_a_sync_task_sees_its_allocation_and_worker_in_a_worker_thread() -> None:
    async with gl.open_session(stats=None, name="node-a", executor="thread"):
        res, instance, current, thread = await (where @ Cores(1))()
    assert (res.N, instance) == (1, "node-a")
    assert current is res
    assert thread != threading.get_ident()


async def test_concurrent_tasks_each_see_their_own_allocation(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def mine() -> list[int]:
        before = list(gl.GVAR.res.c)
        await trio.sleep(1)
        assert gl.GVAR.res.c == before
        return before

    async with gl.open_session(stats=None):
        first, second = await gl.gather((mine @ Cores(1))(), (mine @ Cores(1))())
    assert sorted(first + second) == [0, 1]


def test_gvar_outside_a_task_says_it_is_only_set_inside_one() -> None:
    with pytest.raises(RuntimeError, match="not inside a grainlike task"):
        _ = gl.GVAR.res
    with pytest.raises(RuntimeError, match="not inside a grainlike task"):
        gl.current_allocation()


async def test_a_task_can_submit_tasks_of_its_own() -> None:
    async def leaf(x: int) -> int:
        return x * x

    async def parent(n: int) -> int:
        return sum(await gl.gather(*[(leaf @ Cores(1))(i) for i in range(n)]))

    async with gl.open_session(stats=None):
        assert await (parent @ Cores(1))(4) == 14


# -- errors --------------------------------------------------------------------------------------


def explode_in_a_thread() -> None:
    raise KeyError("boom in a thread")


async def explode_on_the_loop() -> None:
    await trio.sleep(0)
    raise KeyError("boom on the loop")


@pytest.mark.parametrize(
    ("fn", "line"),
    [
        (explode_in_a_thread, 'raise KeyError("boom in a thread")'),
        (explode_on_the_loop, 'raise KeyError("boom on the loop")'),
    ],
    ids=["sync", "async"],
)
async def test_a_tasks_exception_reaches_the_caller_with_its_traceback(
    fn: object, line: str
) -> None:
    async with gl.open_session(stats=None, executor="thread"):  # unit tests start no processes
        with pytest.raises(KeyError) as caught:
            await (fn @ Cores(1))()
    text = "".join(traceback.format_exception(caught.value))
    assert f"in {fn.__name__}" in text  # type: ignore[attr-defined]
    assert line in text


async def test_an_unsatisfiable_request_fails_at_once_naming_what_falls_short() -> None:
    async def nothing() -> None:
        pass

    async with gl.open_session(stats=None, name="laptop"):
        handle = (nothing @ Cores(3) & GPU(1) & Memory(1))()
        assert handle.done()
        with pytest.raises(UnsatisfiableError) as caught:
            await handle
    assert caught.value.short == ("cores", "gpu")
    assert "laptop: short of cores, gpu" in str(caught.value)


async def test_a_bad_request_fails_at_submission() -> None:
    async def nothing() -> None:
        pass

    async with gl.open_session(stats=None) as session:
        with pytest.raises(ResourceError, match="not a resource"):
            await gl.exec1("cores:2", nothing)  # type: ignore[arg-type]
        with pytest.raises(ResourceError, match=r"Cores\(0\)"):
            await gl.exec1(Cores(0), nothing)
        assert session.dispatcher.queued() == 0
        assert session.dispatcher.completed == 0


async def test_bad_session_options_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="local=False needs listen"):
        async with gl.open_session(stats=None, local=False):
            pass
    with pytest.raises(ConfigError, match="unsatisfiable_grace=-1"):
        async with gl.open_session(stats=None, unsatisfiable_grace=-1):
            pass
    with pytest.raises(ConfigError, match=r"pipeline_window=-0\.1"):
        async with gl.open_session(stats=None, pipeline_window=-0.1):
            pass
    with pytest.raises(ConfigError, match=r"pipeline_depth=2\.5"):
        async with gl.open_session(stats=None, pipeline_depth=2.5):  # type: ignore[arg-type]
            pass


async def test_current_session_is_only_set_inside_a_session() -> None:
    from grainlike._session import current_session

    async with gl.open_session(stats=None) as session:
        assert current_session() is session
    with pytest.raises(GrainlikeError, match="no grainlike dispatcher is running"):
        current_session()


# -- cancellation --------------------------------------------------------------------------------


async def test_cancelling_the_caller_cancels_the_task_and_frees_its_resources(
    autojump_clock: trio.testing.MockClock,
) -> None:
    cancelled: list[int] = []

    async def forever() -> None:
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            cancelled.append(gl.GVAR.res.N)
            raise

    async with gl.open_session(stats=None) as session:
        with trio.move_on_after(5):
            await (forever @ Cores(2))()
        await trio.testing.wait_all_tasks_blocked()
        assert cancelled == [2]
        assert free_cores(session) == (2, 2)
        assert (session.dispatcher.running(), session.dispatcher.queued()) == (0, 0)


async def test_cancelling_the_caller_of_a_queued_task_means_it_never_runs(
    autojump_clock: trio.testing.MockClock,
) -> None:
    ran: list[str] = []

    async def job(label: str) -> None:
        ran.append(label)
        await trio.sleep(10)

    async with gl.open_session(stats=None) as session:
        blocker = (job @ Cores(2))("blocker")
        with trio.move_on_after(1):
            await (job @ Cores(1))("queued")
        assert session.dispatcher.queued() == 0
        await blocker
    assert ran == ["blocker"]


async def test_explain_says_where_a_task_runs_and_why_one_waits(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def hold() -> None:
        await trio.sleep(10)

    async with gl.open_session(stats=None, name="box"):
        running = (hold @ Cores(2))()
        waiting = (hold @ Cores(1))()
        await trio.testing.wait_all_tasks_blocked()
        assert gl.explain(running).startswith(f"task {running.id} (")
        assert gl.explain(running).endswith(") runs on box with cores:[0-1]")
        assert gl.explain(waiting).endswith("box is busy (free too little cores)")
        await gl.gather(running, waiting)


async def test_the_stats_file_is_written_where_asked(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async def nothing() -> None:
        await trio.sleep(11)

    stats = tmp_path / "learned.db"
    async with gl.open_session(stats=stats):
        await (nothing @ Cores(1) & gl.WTime(group="g"))()
    assert gl.dispatch.LearnedLimits.open(stats).stats("g").count == 1


# -- errors reach the user as themselves ------------------------------------------------------


def test_run_raises_mains_exception_itself_not_an_exception_group() -> None:
    async def main() -> None:
        raise ValueError("from main")

    with pytest.raises(ValueError, match="from main") as caught:
        gl.run(main, stats=None)
    assert not isinstance(caught.value, BaseExceptionGroup)


def test_a_users_own_exception_group_stays_intact() -> None:
    async def main() -> None:
        raise ExceptionGroup("mine", [KeyError("a"), OSError("b")])

    with pytest.raises(ExceptionGroup) as caught:
        gl.run(main, stats=None)
    assert caught.value.message == "mine"
    assert [type(e) for e in caught.value.exceptions] == [KeyError, OSError]


def test_a_task_failure_reaches_try_except_around_run() -> None:
    async def fail() -> None:
        raise KeyError("task")

    async def main() -> None:
        await (fail @ Cores(1))()

    try:
        gl.run(main, stats=None)
    except KeyError as error:
        assert "task" in str(error)
    else:  # pragma: no cover - the test fails here
        pytest.fail("gl.run did not raise the task's KeyError")


@pytest.mark.parametrize("attempt", range(10))
def test_main_returning_with_tasks_still_queued_cancels_them_and_returns_its_value(
    attempt: int, caplog: pytest.LogCaptureFixture
) -> None:
    async def forever() -> None:
        await trio.sleep_forever()

    async def main() -> str:
        for _ in range(5):
            (forever @ Cores(1))()  # never awaited: two run, three wait
        await trio.sleep(0)
        return "main's value"

    assert gl.run(main, stats=None) == "main's value"
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [
        "main ended while 5 task(s) were still queued or running: they were cancelled"
    ]


# -- listening without TLS -----------------------------------------------------------------------

KEY = bytes(range(32))


def listen_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "without TLS" in r.getMessage()]


async def test_listening_beyond_loopback_without_tls_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="grainlike"):
        async with gl.open_session(stats=None, listen="0.0.0.0:0", key=KEY) as session:
            pass
    (warning,) = listen_warnings(caplog)
    assert f"listening on {session.address} without TLS" in warning
    assert "--tls auto" in warning


@pytest.mark.parametrize("listen", ["127.0.0.1:0", "localhost:0"])
async def test_listening_on_loopback_without_tls_does_not_warn(
    listen: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="grainlike"):
        async with gl.open_session(stats=None, listen=listen, key=KEY):
            pass
    assert listen_warnings(caplog) == []


async def test_listening_beyond_loopback_with_tls_does_not_warn(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from grainlike.wire import ensure_self_signed, tls_server_context

    directory = tmp_path / "grainlike"
    directory.mkdir(mode=0o700)
    tls = tls_server_context(*ensure_self_signed(directory))
    with caplog.at_level(logging.WARNING, logger="grainlike"):
        async with gl.open_session(stats=None, listen="0.0.0.0:0", key=KEY, tls=tls):
            pass
    assert listen_warnings(caplog) == []
