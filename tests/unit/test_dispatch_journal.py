"""The journal: its schema and versions, the key of a task, durability before delivery, resume.

Every journal here is a real SQLite file; the runs are real sessions with the embedded worker.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import re
import sqlite3
import stat
import threading
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pytest
import trio
import trio.testing
from hypothesis import assume, given

import grainlike as gl
from grainlike import ConfigError, Cores, Memory
from grainlike.dispatch import (
    Event,
    Journal,
    TaskFinished,
    TaskSubmitted,
    journal_events,
    summarize_journal,
)
from grainlike.dispatch._journal_key import KeyMaker, function_key, task_key
from grainlike.dispatch._journal_schema import JOURNAL
from grainlike.resource import as_resources
from grainlike.wire import Call

pytestmark = pytest.mark.usefixtures("local_capacity")

#: What the tasks of this module ran, in order (each test starts it empty).
RAN: list[Any] = []


@pytest.fixture(autouse=True)
def _forget_runs() -> None:
    RAN.clear()


async def square(x: int) -> int:
    RAN.append(x)
    return x * x


async def fail(x: int) -> int:
    RAN.append(x)
    raise ValueError(f"{x} is wrong")


def rows(path: Path, query: str) -> list[tuple[Any, ...]]:
    """What another process reading the journal now would see."""
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as connection:
        return list(connection.execute(query))


async def run_squares(path: Path, xs: list[int], **options: Any) -> list[int]:
    async with gl.open_session(stats=None, journal=path, **options):
        return list(await gl.gather(*((square @ Cores(1))(x) for x in xs)))


# -- the file: schema, versions, refusals --------------------------------------------------------


def test_a_new_journal_is_version_1_private_and_has_its_tables(tmp_path: Path) -> None:
    path = tmp_path / "run.db"
    previous = os.umask(0)
    try:
        Journal.open(path).close()
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert rows(path, "PRAGMA user_version") == [(1,)]
    assert rows(path, "PRAGMA application_id") == [(JOURNAL.application_id,)]
    tables = rows(path, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
    assert tables == [("functions",), ("retries",), ("runs",), ("tasks",), ("workers",)]
    assert rows(path, "PRAGMA journal_mode") == [("wal",)]


def test_an_empty_file_is_version_0_and_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "run.db"
    path.touch(mode=0o600)
    Journal.open(path).close()
    assert rows(path, "PRAGMA user_version") == [(1,)]


async def test_a_version_1_journal_opens_with_what_it_holds(tmp_path: Path) -> None:
    path = tmp_path / "run.db"
    assert await run_squares(path, [1, 2]) == [1, 4]
    Journal.open(path).close()  # opening again migrates nothing and drops nothing
    assert rows(path, "SELECT count(*) FROM tasks") == [(2,)]
    assert rows(path, "SELECT run, ended IS NOT NULL FROM runs") == [(1, 1), (2, 1)]


def test_a_journal_of_a_newer_version_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "run.db"
    Journal.open(path).close()
    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.execute("PRAGMA user_version = 2")
    with pytest.raises(
        ConfigError, match=rf"^{re.escape(str(path))}: a journal of schema version 2"
    ):
        Journal.open(path)


@pytest.mark.parametrize(
    ("content", "problem"),
    [(b"{}", "not an SQLite database"), (b"x" * 200, "not an SQLite database")],
)
def test_a_file_that_is_not_a_journal_is_refused_by_name(
    tmp_path: Path, content: bytes, problem: str
) -> None:
    path = tmp_path / "run.db"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(ConfigError, match=rf"{re.escape(str(path))}: not a grainlike journal"):
        Journal.open(path)


def test_another_programs_database_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "run.db"
    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.execute("CREATE TABLE things (x)")
    path.chmod(0o600)
    with pytest.raises(ConfigError, match=r"run\.db: not a grainlike journal \(an SQLite database"):
        Journal.open(path)


async def test_a_journal_damaged_inside_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "run.db"
    await run_squares(path, [1, 2, 3])
    with contextlib.closing(sqlite3.connect(path)) as connection:
        [(page_size,)] = connection.execute("PRAGMA page_size")
        [(root,)] = connection.execute("SELECT rootpage FROM sqlite_master WHERE name = 'tasks'")
    with path.open("r+b") as file:  # the tasks table's first page, overwritten
        file.seek((root - 1) * page_size)
        file.write(b"\xab" * page_size)
    with pytest.raises(ConfigError, match=rf"{re.escape(str(path))}: not a (readable|usable) jou"):
        Journal.open(path)


def test_a_journal_others_may_write_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "run.db"
    Journal.open(path).close()
    path.chmod(0o666)
    with pytest.raises(ConfigError, match=r"journal .*run\.db' has mode 0666: others may change"):
        Journal.open(path)


async def test_a_missing_journal_is_a_config_error_for_the_summary(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nothing\.db: no such journal"):
        summarize_journal(tmp_path / "nothing.db")


# -- the key --------------------------------------------------------------------------------------

VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
    | st.binary(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=12,
)


ONE_CORE = Cores(1)


def key_of(fn: Any, *args: Any, request: Any = ONE_CORE, **kwargs: Any) -> bytes:
    return task_key(Call(fn, args, kwargs), request).digest


@given(VALUES)
def test_equal_calls_have_equal_keys(value: Any) -> None:
    """A call and a deep copy of it have the same key."""
    assert key_of(square, value) == key_of(square, copy.deepcopy(value))


@given(VALUES, VALUES)
def test_calls_with_different_arguments_have_different_keys(a: Any, b: Any) -> None:
    """Arguments that are not equal give different keys."""
    assume(a != b)
    assert key_of(square, a) != key_of(square, b)


def compiled(source: str) -> Any:
    namespace: dict[str, Any] = {}
    exec(compile(source, "<test>", "exec"), namespace)
    return namespace["f"]


@given(st.integers(), st.integers())
def test_a_changed_function_has_a_different_key(a: int, b: int) -> None:
    """Functions whose code differs (here one constant) give different keys."""
    assume(a != b)
    first, second = (compiled(f"async def f(x):\n    return x + {n}\n") for n in (a, b))
    assert key_of(first, 1) != key_of(second, 1)


def test_the_docstring_comments_and_layout_are_not_part_of_the_key() -> None:
    plain = compiled("async def f(x):\n    return x + 1\n")
    edited = compiled(
        'async def f(x):\n    """Now documented."""\n\n'
        "    # a comment\n    return (\n        x + 1\n    )\n"
    )
    assert key_of(plain, 1) == key_of(edited, 1)


def test_a_changed_nested_function_changes_the_key() -> None:
    one = compiled("def f(xs):\n    return [x + 1 for x in xs]\n")
    two = compiled("def f(xs):\n    return [x + 2 for x in xs]\n")
    assert key_of(one, [1]) != key_of(two, [1])


def test_the_values_a_closure_holds_are_part_of_the_key() -> None:
    def scaled(factor: int) -> Any:
        async def scale(x: int) -> int:
            return x * factor

        return scale

    assert key_of(scaled(2), 1) == key_of(scaled(2), 1)
    assert key_of(scaled(2), 1) != key_of(scaled(3), 1)


def test_default_arguments_are_part_of_the_key() -> None:
    assert key_of(compiled("def f(x, y=1):\n    return x + y\n"), 1) != key_of(
        compiled("def f(x, y=2):\n    return x + y\n"), 1
    )


def test_keyword_order_and_the_request_shorthand() -> None:
    assert key_of(square, a=1, b=2) == key_of(square, b=2, a=1)
    assert key_of(square, 1, request=Cores(1)) != key_of(square, 1, request=Cores(2))
    assert key_of(square, 1, request=Cores(1) & Memory(1)) == key_of(
        square, 1, request=Memory(1) & Cores(1)
    )


def test_a_script_is_the_same_module_whether_run_directly_or_by_grainlike_run() -> None:
    direct = compiled("def f(x):\n    return x\n")
    direct.__module__ = "__main__"
    through_cli = compiled("def f(x):\n    return x\n")
    through_cli.__module__ = "__grainlike__"
    assert function_key(direct) == function_key(through_cli)
    assert function_key(direct).module == "__main__"


def test_repeated_calls_are_numbered_so_each_is_its_own_task() -> None:
    keys = KeyMaker()
    first, second = (keys.key(Call(square, (1,)), as_resources(ONE_CORE)) for _ in range(2))
    assert (first.occurrence, second.occurrence) == (0, 1)
    assert first.digest != second.digest
    assert first.digest == key_of(square, 1)  # the first call's key is the plain key


def test_an_argument_that_cannot_be_pickled_has_no_key() -> None:
    with pytest.raises(TypeError):
        key_of(square, threading.Lock())


# -- durability before delivery ---------------------------------------------------------------


async def test_a_result_is_in_the_journal_when_its_caller_wakes(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    path = tmp_path / "run.db"
    async with gl.open_session(stats=None, journal=path):
        for x in range(5):
            assert await (square @ Cores(1))(x) == x * x
            recorded = rows(path, "SELECT count(*) FROM tasks WHERE state = 'succeeded'")
            assert recorded == [(x + 1,)]


async def test_the_terminal_event_is_published_once_the_result_is_durable(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    path = tmp_path / "run.db"
    seen: list[tuple[str, int]] = []

    def on_event(event: Event) -> None:
        if isinstance(event, TaskFinished):
            count = rows(path, "SELECT count(*) FROM tasks WHERE state = 'succeeded'")
            seen.append((type(event).__name__, count[0][0]))

    async with gl.open_session(stats=None, journal=path) as session:
        session.dispatcher.events.subscribe(on_event)
        await gl.gather(*((square @ Cores(1))(x) for x in range(3)))
    assert [name for name, _ in seen] == ["TaskFinished"] * 3
    assert all(count >= 1 for _, count in seen)


async def test_results_that_arrive_together_are_committed_together(tmp_path: Path) -> None:
    async with gl.open_session(stats=None, journal=tmp_path / "run.db") as session:
        await gl.gather(*((square @ Cores(1))(x) for x in range(2000)))
        journal = session.dispatcher.journal
        assert journal is not None
        batches = journal.batches
    assert rows(tmp_path / "run.db", "SELECT count(*) FROM tasks") == [(2000,)]
    assert batches < 200  # 2,000 results in few transactions


async def test_a_caller_cancelled_while_its_result_is_written_leaves_it_in_the_journal(
    tmp_path: Path,
) -> None:
    path = tmp_path / "run.db"
    async with gl.open_session(stats=None, journal=path) as session:
        journal = session.dispatcher.journal
        assert journal is not None
        async with journal._writer._lock:  # hold the writer back: the result waits for it
            with trio.move_on_after(0.2):
                await (square @ Cores(1))(7)
            assert RAN == [7]
    assert rows(path, "SELECT count(*) FROM tasks WHERE state = 'succeeded'") == [(1,)]
    assert await run_squares(path, [7]) == [49]
    assert RAN == [7]  # recalled, not run again


# -- resume -----------------------------------------------------------------------------------


async def test_a_second_run_recalls_what_the_first_computed(tmp_path: Path) -> None:
    path = tmp_path / "run.db"
    assert await run_squares(path, [1, 2, 3]) == [1, 4, 9]
    assert await run_squares(path, [1, 2, 3, 4]) == [1, 4, 9, 16]
    assert sorted(RAN) == [1, 2, 3, 4]


async def test_a_recalled_task_has_one_terminal_event_from_the_journal(tmp_path: Path) -> None:
    path = tmp_path / "run.db"
    await run_squares(path, [5])
    events: list[Event] = []
    async with gl.open_session(stats=None, journal=path) as session:
        session.dispatcher.events.subscribe(events.append)
        assert await (square @ Cores(1))(5) == 25
    kinds = [type(e).__name__ for e in events if hasattr(e, "task_id")]
    assert kinds == ["TaskSubmitted", "TaskFinished"]
    finished = events[-1]
    assert isinstance(finished, TaskFinished)
    assert (finished.worker, finished.duration) == ("journal", 0.0)
    assert isinstance(events[0], TaskSubmitted)


async def test_failed_tasks_run_again_and_the_summary_names_them(tmp_path: Path) -> None:
    path = tmp_path / "run.db"
    for _ in range(2):
        async with gl.open_session(stats=None, journal=path):
            with pytest.raises(ValueError, match="3 is wrong"):
                await (fail @ Cores(1))(3)
    assert RAN == [3, 3]
    summary = summarize_journal(path)
    assert summary.states == {"succeeded": 0, "failed": 1, "cancelled": 0, "unfinished": 0}
    (failed,) = summary.failed
    assert (failed.name, failed.run, failed.error_type, failed.error) == (
        "fail",
        2,
        "ValueError",
        "3 is wrong",
    )


async def test_a_task_cancelled_at_the_end_of_a_run_runs_again(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    path = tmp_path / "run.db"

    async def slow(x: int) -> int:
        RAN.append(x)
        await trio.sleep(100)
        return x

    async with gl.open_session(stats=None, journal=path):
        (slow @ Cores(1))(1)
        await trio.sleep(1)
    assert summarize_journal(path).states["cancelled"] == 1
    async with gl.open_session(stats=None, journal=path):
        assert await (slow @ Cores(1))(1) == 1
    assert RAN == [1, 1]


async def test_rerun_runs_everything_again_and_its_results_win(tmp_path: Path) -> None:
    path = tmp_path / "run.db"
    await run_squares(path, [1, 2])
    await run_squares(path, [1, 2], rerun=True)
    await run_squares(path, [1, 2])
    assert sorted(RAN) == [1, 1, 2, 2]
    (first, second, third) = summarize_journal(path).runs
    assert (first.rerun, second.rerun, third.recalled) == (False, True, 2)


async def test_rerun_without_a_journal_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="rerun=True needs journal=PATH"):
        async with gl.open_session(stats=None, rerun=True):
            pass


async def test_a_changed_function_runs_again_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "run.db"
    before = compiled("async def f(x):\n    return x + 1\n")
    after = compiled("async def f(x):\n    return x + 2\n")
    for fn in (before, after):
        fn.__module__ = "__main__"
    async with gl.open_session(stats=None, journal=path):
        assert await (before @ Cores(1))(1) == 2
    with caplog.at_level(logging.WARNING, logger="grainlike"):
        async with gl.open_session(stats=None, journal=path):
            assert await gl.gather((after @ Cores(1))(1), (after @ Cores(1))(2)) == [3, 4]
    (warning,) = [r.getMessage() for r in caplog.records]
    assert warning.endswith("__main__.f changed since it was recorded: its calls run again")


async def test_a_call_that_has_no_key_runs_unrecorded_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def locked(lock: Any) -> str:
        return "ran"

    with caplog.at_level(logging.WARNING, logger="grainlike"):
        async with gl.open_session(stats=None, journal=tmp_path / "run.db"):
            results = [await (locked @ Cores(1))(threading.Lock()) for _ in range(2)]
    assert results == ["ran", "ran"]
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "locked is not recorded (it runs every time)" in warning
    assert rows(tmp_path / "run.db", "SELECT count(*) FROM tasks") == [(0,)]


class Unpicklable:
    def __reduce__(self) -> Any:
        raise TypeError("not today")


async def test_a_result_that_cannot_be_pickled_is_delivered_but_not_recalled(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def make(x: int) -> Any:
        RAN.append(x)
        return Unpicklable()

    path = tmp_path / "run.db"
    with caplog.at_level(logging.WARNING, logger="grainlike"):
        for _ in range(2):
            async with gl.open_session(stats=None, journal=path):
                assert isinstance(await (make @ Cores(1))(1), Unpicklable)
    assert RAN == [1, 1]
    assert "cannot be pickled, so it is not recorded" in caplog.records[0].getMessage()


async def test_a_recorded_result_that_cannot_be_unpickled_any_more_runs_again(
    tmp_path: Path,
) -> None:
    path = tmp_path / "run.db"
    await run_squares(path, [6])
    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.execute("UPDATE tasks SET result = x'8005'")  # a truncated pickle
        connection.commit()
    assert await run_squares(path, [6]) == [36]
    assert RAN == [6, 6]


# -- reading it back --------------------------------------------------------------------------


async def test_the_events_of_a_run_rebuilt_from_the_journal(tmp_path: Path) -> None:
    path = tmp_path / "run.db"
    async with gl.open_session(stats=None, journal=path, name="box"):
        await (square @ Cores(1))(2)
        with pytest.raises(ValueError):
            await (fail @ Cores(2))(3)
    events = journal_events(path)
    kinds = [(e["event"], e.get("task_id")) for e in events]
    assert kinds == [
        ("WorkerJoined", None),
        ("TaskSubmitted", 1),
        ("TaskPlaced", 1),
        ("TaskStarted", 1),
        ("TaskFinished", 1),
        ("TaskSubmitted", 2),
        ("TaskPlaced", 2),
        ("TaskStarted", 2),
        ("TaskFailed", 2),
    ]
    placed = events[6]
    assert (placed["worker"], placed["cores"], placed["gpus"], placed["attempt"]) == (
        "box",
        [0, 1],
        [],
        1,
    )
    failed = events[-1]
    assert (failed["error_type"], failed["error"], failed["worker"]) == (
        "ValueError",
        "3 is wrong",
        "box",
    )
    assert [e["at"] for e in events] == sorted(e["at"] for e in events)


async def test_a_worker_is_recorded_with_the_capacity_it_joined_with(tmp_path: Path) -> None:
    # The writer writes later, while tasks hold the worker's cores: what it writes must be
    # the capacity as it was when the worker joined, not what is free at that moment.
    path = tmp_path / "run.db"
    async with gl.open_session(stats=None, journal=path, resources="cores:2", name="box"):
        blocker = trio.Event()

        async def hold() -> None:
            await blocker.wait()

        handles = [(hold @ Cores(1))() for _ in range(2)]
        await trio.sleep(0.2)  # both running, and the writer has flushed what it had
        blocker.set()
        await gl.gather(*handles)
    [(capacity,)] = rows(path, "SELECT capacity FROM workers")
    assert capacity.startswith("cores:2,"), capacity
    [joined] = [e for e in journal_events(path) if e["event"] == "WorkerJoined"]
    assert joined["capacity"] == capacity


async def test_the_summary_counts_functions_and_runs(tmp_path: Path) -> None:
    path = tmp_path / "run.db"
    await run_squares(path, [1, 2, 3])
    await run_squares(path, [1, 2, 3, 4])
    summary = summarize_journal(path)
    assert summary.states == {"succeeded": 4, "failed": 0, "cancelled": 0, "unfinished": 0}
    (function,) = summary.functions
    assert (function.function, function.calls, function.runs, function.succeeded) == (
        f"{__name__}.square",
        4,
        4,
        4,
    )
    assert [(r.run, r.recalled, r.states["succeeded"]) for r in summary.runs] == [
        (1, 0, 3),
        (2, 3, 1),
    ]
    assert summary.to_json()["states"] == summary.states


async def test_a_task_still_running_after_a_second_is_written_as_submitted(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    path = tmp_path / "run.db"
    go_on = trio.Event()  # not a timer: the clock jumps while the journal's thread writes

    async def slow() -> str:
        await go_on.wait()
        return "done"

    async with gl.open_session(stats=None, journal=path) as session:
        journal = session.dispatcher.journal
        assert journal is not None
        handle = (slow @ Cores(1))()
        await trio.sleep(0.5)
        await journal.flush()
        assert rows(path, "SELECT state FROM tasks") == []  # written with its end, if soon
        await trio.sleep(0.5)
        await journal.flush()
        assert rows(path, "SELECT state FROM tasks") == [("submitted",)]
        assert summarize_journal(path).runs[-1].states["unfinished"] == 1
        go_on.set()
        assert await handle == "done"
        assert rows(path, "SELECT state, attempts FROM tasks") == [("succeeded", 1)]


async def test_a_retried_run_is_a_row_of_its_own_and_an_event(tmp_path: Path) -> None:
    path = tmp_path / "run.db"
    tries: list[int] = []

    async def flaky() -> str:
        tries.append(1)
        if len(tries) == 1:
            raise OSError("the file system hiccuped")
        return "fine"

    async with gl.open_session(stats=None, journal=path, name="box"):
        assert await (flaky @ Cores(1)).options(retries=1)() == "fine"
    assert rows(path, "SELECT attempt, worker, reason FROM retries") == [
        (1, "box", "failed: OSError: the file system hiccuped")
    ]
    kinds = [(e["event"], e.get("attempt")) for e in journal_events(path) if "task_id" in e]
    assert kinds == [
        ("TaskSubmitted", None),
        ("TaskPlaced", 1),
        ("TaskRetried", 2),
        ("TaskPlaced", 2),
        ("TaskStarted", 2),
        ("TaskFinished", 2),
    ]
    (function,) = summarize_journal(path).functions
    assert (function.calls, function.runs, function.succeeded) == (1, 2, 1)


async def test_the_report_reads_a_journal_as_it_reads_an_event_log(tmp_path: Path) -> None:
    from grainlike._report import load_run  # the api level's reader of runs

    path = tmp_path / "run.db"
    async with gl.open_session(stats=None, journal=path, name="box"):
        await gl.gather(*((square @ Cores(1))(x) for x in range(3)))
        with pytest.raises(ValueError):
            await (fail @ Cores(1))(3)
    model = load_run(path)
    assert [(w.id, w.capacity) for w in model.workers] == [("box", "cores:2,mem:4G,wtime:inf")]
    assert sorted(t.outcome for t in model.tasks) == ["failed", "finished", "finished", "finished"]
    assert [(r.worker, len(r.cores)) for r in model.runs] == [("box", 1)] * 4
