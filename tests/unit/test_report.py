"""``grainlike report``: reading an event log, the run model, the tables, the HTML and the trace."""

from __future__ import annotations

import heapq
import itertools
import json
import random
import re
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
import trio

import grainlike as gl
from grainlike import GPU, Cores, Memory, WTime
from grainlike._observe import event_record
from grainlike._report import (
    RunModel,
    counts,
    load_run,
    pool_peaks,
    summary_line,
    table,
    utilisation,
    write_html,
    write_trace,
)
from grainlike._report._html import browser_model, render_html
from grainlike._report._trace import GPU_TID, OTHER_TID, ROW_TID, trace_events
from grainlike.cli import main
from grainlike.dispatch import (
    Event,
    TaskCancelled,
    TaskFailed,
    TaskFinished,
    TaskPlaced,
    TaskRetried,
    TaskStarted,
    TaskSubmitted,
    WorkerDrained,
    WorkerJoined,
    WorkerLost,
)
from grainlike.wire import Usage

T0 = 1_700_000_000.0


def write_log(path: Path, *events: Event) -> Path:
    """The event log ``grainlike run --events`` would write for these events."""
    path.write_text("".join(json.dumps(event_record(event)) + "\n" for event in events))
    return path


def at(seconds: float) -> float:
    return T0 + seconds


def two_worker_run() -> list[Event]:
    """A small run on two workers: a finished, a multi-core, a retried, a failed, a cancelled
    and an unsatisfiable task, and a worker that is lost."""
    return [
        WorkerJoined("a", "cores:2,mem:4G,gpu:1,wtime:inf", at=at(0)),
        WorkerJoined("b", "cores:[0-3],mem:8G", at=at(0)),
        TaskSubmitted(1, "simulate", "cores:1,wtime:@sim", 0, at=at(0)),
        TaskSubmitted(2, "train", "cores:2,gpu:1", 0, at=at(0)),
        TaskSubmitted(3, "flaky", "cores:1", 0, at=at(0)),
        TaskSubmitted(4, "boom", "cores:1", 0, at=at(0)),
        TaskSubmitted(5, "sleepy", "cores:1", 0, at=at(0)),
        TaskSubmitted(6, "huge", "cores:64", 0, at=at(0)),
        TaskFailed(
            6,
            None,
            "cores:64: no worker could ever satisfy this request",
            None,
            "UnsatisfiableError",
            at=at(0),
        ),
        TaskPlaced(1, "b", "cores:[2],wtime:@sim", (2,), (), 1, at=at(1)),
        TaskPlaced(2, "a", "cores:[0,1],gpu:[0]", (0, 1), (0,), 1, at=at(1)),
        TaskStarted(1, "b", 1, at=at(1.5)),
        TaskStarted(2, "a", 1, at=at(1)),
        # The worker measured 2 s; the dispatcher heard of the end at 4 (a late batch).
        TaskFinished(1, "b", 2.0, 1, Usage(2.0, 1.5, 10_000_000), at=at(4)),
        TaskFinished(2, "a", 3.0, 1, at=at(4)),
        TaskPlaced(3, "b", "cores:[0]", (0,), (), 1, at=at(4)),
        TaskStarted(3, "b", 1, at=at(4)),
        WorkerLost("b", "connection dropped", at=at(5)),
        TaskRetried(3, "b", 2, "worker lost: connection dropped", at=at(5)),
        TaskPlaced(3, "a", "cores:[0]", (0,), (), 2, at=at(5)),
        TaskStarted(3, "a", 2, at=at(5)),
        TaskFinished(3, "a", 1.0, 2, at=at(6)),
        TaskPlaced(4, "a", "cores:[1]", (1,), (), 1, at=at(5)),
        TaskStarted(4, "a", 1, at=at(5)),
        TaskFailed(4, "a", "bad input 42", 0.5, "ValueError", 1, at=at(5.5)),
        TaskPlaced(5, "a", "cores:[1]", (1,), (), 1, at=at(6)),
        TaskStarted(5, "a", 1, at=at(6)),
        TaskCancelled(5, "a", "task 5 (sleepy) was cancelled", 1, at=at(7)),
        WorkerDrained("a", "asked to quit", at=at(8)),
    ]


@pytest.fixture
def small_run(tmp_path: Path) -> RunModel:
    return load_run(write_log(tmp_path / "run.jsonl", *two_worker_run()))


# -- reading -----------------------------------------------------------------------------------


def test_a_missing_events_file_is_a_config_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(gl.ConfigError, match=r"nothing\.jsonl: no such file"):
        load_run(tmp_path / "nothing.jsonl")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", r"run\.jsonl:2: not a JSON event"),
        ('{"at": 1.0}', r"run\.jsonl:2: not an event \(no event name\)"),
        ("[1, 2]", r"run\.jsonl:2: not an event"),
        (
            '{"event": "TaskPlaced", "at": 1.0, "task_id": 1}',
            r"run\.jsonl:2: TaskPlaced without "
            r"allocation, attempt, cores, gpus, worker",
        ),
        (
            '{"event": "TaskStarted", "at": "noon", "task_id": 1, "worker": "w"}',
            r"run\.jsonl:2: TaskStarted has at='noon', not float",
        ),
        (
            '{"event": "TaskStarted", "at": 1.0, "task_id": true, "worker": "w"}',
            r"run\.jsonl:2: TaskStarted has task_id=True, not int",
        ),
        (
            '{"event": "TaskPlaced", "at": 1.0, "task_id": 1, "worker": "w", "allocation": "",'
            ' "cores": [0, "x"], "gpus": [], "attempt": 1}',
            r"run\.jsonl:2: TaskPlaced has cores=\[0, 'x'\], not IDs",
        ),
    ],
)
def test_a_malformed_line_is_a_config_error_naming_the_file_and_the_line(
    tmp_path: Path, line: str, message: str
) -> None:
    path = tmp_path / "run.jsonl"
    first = json.dumps(event_record(WorkerJoined("w", "cores:1", at=T0)))
    path.write_text(f"{first}\n{line}\n")
    with pytest.raises(gl.ConfigError, match=message):
        load_run(path)


def test_a_last_line_cut_short_by_a_killed_run_is_left_out_with_a_note(tmp_path: Path) -> None:
    path = write_log(tmp_path / "run.jsonl", *two_worker_run()[:4])
    path.write_text(path.read_text() + '{"event": "TaskPlaced", "at": 17')
    model = load_run(path)
    assert len(model.tasks) == 2
    assert model.notes == ("line 5 was cut short and is left out",)


def test_events_this_version_does_not_know_are_skipped(tmp_path: Path) -> None:
    path = write_log(tmp_path / "run.jsonl", *two_worker_run())
    path.write_text('{"event": "SomethingNew", "at": 1.0}\n' + path.read_text())
    assert len(load_run(path).runs) == 6


def test_an_empty_file_and_an_sqlite_file_are_config_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(gl.ConfigError, match=r"empty\.jsonl: no events"):
        load_run(empty)
    database = tmp_path / "run.db"
    with sqlite3.connect(database) as connection:
        connection.execute("create table t (x)")
    with pytest.raises(gl.ConfigError, match=r"run\.db: not a grainlike journal"):
        load_run(database)


# -- the model ---------------------------------------------------------------------------------


def test_each_placement_is_one_run_from_its_start_to_the_event_that_ended_it(
    small_run: RunModel,
) -> None:
    runs = [
        (run.task_id, run.attempt, run.worker, run.cores, run.gpus, run.outcome)
        for run in small_run.runs
    ]
    assert runs == [
        (2, 1, "a", (0, 1), (0,), "finished"),
        (1, 1, "b", (2,), (), "finished"),
        (3, 1, "b", (0,), (), "retried"),
        (3, 2, "a", (0,), (), "finished"),
        (4, 1, "a", (1,), (), "failed"),
        (5, 1, "a", (1,), (), "cancelled"),
    ]
    times = {(run.task_id, run.attempt): (run.start - T0, run.end - T0) for run in small_run.runs}
    assert times[1, 1] == (2.0, 4.0)  # the worker's 2 s before the end, not the late start
    assert times[2, 1] == (1.0, 4.0)
    assert times[3, 1] == (4.0, 5.0)  # ended by the retry
    assert times[4, 1] == (5.0, 5.5)
    assert times[5, 1] == (6.0, 7.0)  # ended when it was cancelled
    assert [run.note for run in small_run.runs if run.task_id == 4] == ["ValueError: bad input 42"]


def test_a_task_that_never_ran_has_no_run_but_its_outcome(small_run: RunModel) -> None:
    huge = small_run.tasks[5]
    assert (huge.id, huge.outcome, huge.error_type, huge.runs) == (
        6,
        "failed",
        "UnsatisfiableError",
        0,
    )
    assert all(run.task_id != 6 for run in small_run.runs)


def test_tasks_carry_their_outcome_group_retries_and_usage(small_run: RunModel) -> None:
    by_id = {task.id: task for task in small_run.tasks}
    assert [by_id[i].outcome for i in range(1, 7)] == [
        "finished",
        "finished",
        "finished",
        "failed",
        "cancelled",
        "failed",
    ]
    assert by_id[1].group == "sim"
    assert by_id[1].usage == {"wall": 2.0, "cpu": 1.5, "peak_rss": 10_000_000, "peak_disk": None}
    assert (by_id[3].runs, by_id[3].retries, by_id[3].worker) == (2, 1, "a")
    assert by_id[5].error == "task 5 (sleepy) was cancelled"


def test_workers_have_their_capacity_and_lifetime(small_run: RunModel) -> None:
    a, b = small_run.workers
    assert (a.id, a.cores, a.gpus, a.joined - T0, a.left, a.how) == (
        "a",
        (0, 1),
        (0,),
        0.0,
        at(8),
        "drained",
    )
    assert a.totals == {"cores": 2.0, "mem": 4.0, "gpu": 1.0}
    assert (b.cores, b.gpus, b.how, b.reason) == ((0, 1, 2, 3), (), "lost", "connection dropped")


def test_a_run_the_log_ends_inside_is_unfinished_at_the_end_of_the_log(tmp_path: Path) -> None:
    model = load_run(
        write_log(
            tmp_path / "run.jsonl",
            WorkerJoined("w", "cores:1", at=at(0)),
            TaskSubmitted(1, "f", "cores:1", 0, at=at(0)),
            TaskPlaced(1, "w", "cores:1", (0,), (), 1, at=at(1)),
            TaskStarted(1, "w", 1, at=at(1)),
            TaskSubmitted(2, "f", "cores:1", 0, at=at(3)),
        )
    )
    [run] = model.runs
    assert (run.outcome, run.start - T0, run.end - T0) == ("unfinished", 1.0, 3.0)
    assert counts(model).open == 2
    assert model.workers[0].left is None


# -- tables and figures ------------------------------------------------------------------------


def test_the_function_table_has_runs_mean_and_max_duration_failures_and_retries(
    small_run: RunModel,
) -> None:
    rows = {row.key: row for row in table(small_run)}
    flaky = rows["flaky"]
    assert (flaky.tasks, flaky.runs, flaky.failures, flaky.retries) == (1, 2, 0, 1)
    assert flaky.mean == pytest.approx(1.0)
    assert flaky.max == pytest.approx(1.0)
    assert (rows["boom"].failures, rows["huge"].runs, rows["huge"].failures) == (1, 0, 1)
    assert table(small_run)[0].key == "train"  # the busiest first
    groups = {row.key: row.tasks for row in table(small_run, "group")}
    assert groups == {"sim": 1, "": 5}


def test_utilisation_is_held_over_offered_per_kind(small_run: RunModel) -> None:
    # a: 2 cores for 8 s; b: 4 cores for 5 s.  Held: train 2x3, simulate 2, flaky 1 + 1,
    # boom 0.5, sleepy 1 core-seconds.
    shares = utilisation(small_run)
    assert shares["cores"] == pytest.approx((6 + 2 + 2 + 0.5 + 1) / (2 * 8 + 4 * 5))
    assert shares["gpu"] == pytest.approx(3 / 8)
    assert set(shares) == {"cores", "mem", "gpu"}


def test_a_pool_counter_no_worker_offers_reports_the_most_held_at_once(tmp_path: Path) -> None:
    events: list[Event] = [WorkerJoined("w", "cores:4", at=at(0))]
    for task_id, (begin, end) in enumerate([(0, 2), (1, 3), (1.5, 2.5), (3, 4)], start=1):
        events += [
            TaskSubmitted(task_id, "lic", "cores:1,license:1", 0, at=at(0)),
            TaskPlaced(task_id, "w", "cores:1,license:1", (task_id - 1,), (), 1, at=at(begin)),
            TaskFinished(task_id, "w", end - begin, 1, at=at(end)),
        ]
    model = load_run(write_log(tmp_path / "run.jsonl", *events))
    assert pool_peaks(model) == {"license": 3.0}
    assert "license" not in utilisation(model)


def test_the_summary_line_counts_tasks_runs_workers_and_utilisation(small_run: RunModel) -> None:
    assert summary_line(small_run) == (
        "6 tasks: 3 finished, 2 failed, 1 cancelled; 6 runs (1 retried); 2 workers; "
        "wall 8.00 s; busy: cores 32%, mem 0%, gpu 38%"
    )


# -- the trace ---------------------------------------------------------------------------------


def test_the_trace_has_one_complete_event_per_run_with_worker_processes_and_core_threads(
    small_run: RunModel, tmp_path: Path
) -> None:
    path = write_trace(small_run, tmp_path / "trace.json")
    trace = json.loads(path.read_text())
    assert trace["displayTimeUnit"] == "ms"
    complete = [event for event in trace["traceEvents"] if event["ph"] == "X"]
    assert len(complete) == len(small_run.runs)
    first = complete[0]
    assert (first["name"], first["pid"], first["tid"], first["ts"], first["dur"]) == (
        "train",
        1,
        0,
        1e6,
        3e6,
    )
    assert first["args"]["cores"] == [0, 1]
    assert first["args"]["gpus"] == [0]
    processes = {
        event["pid"]: event["args"]["name"]
        for event in trace["traceEvents"]
        if event["name"] == "process_name"
    }
    assert processes == {1: "a (cores:2,mem:4G,gpu:1,wtime:inf)", 2: "b (cores:[0-3],mem:8G)"}
    threads = {
        (event["pid"], event["tid"]): event["args"]["name"]
        for event in trace["traceEvents"]
        if event["name"] == "thread_name"
    }
    assert threads == {
        (1, 0): "core 0",
        (1, 1): "core 1",
        (1, GPU_TID): "gpu 0",
        **{(2, core): f"core {core}" for core in range(4)},
    }
    failed = [event for event in complete if event["cat"] == "failed"]
    assert [event["args"]["note"] for event in failed] == ["ValueError: bad input 42"]


def test_a_run_without_cores_or_gpus_goes_to_a_thread_of_its_own(tmp_path: Path) -> None:
    model = load_run(
        write_log(
            tmp_path / "run.jsonl",
            WorkerJoined("w", "cores:1,mem:1G", at=at(0)),
            TaskSubmitted(1, "m", "mem:1G", 0, at=at(0)),
            TaskPlaced(1, "w", "mem:1G", (), (), 1, at=at(0)),
            TaskFinished(1, "w", 1.0, 1, at=at(1)),
        )
    )
    [event] = [event for event in trace_events(model)["traceEvents"] if event["ph"] == "X"]
    assert event["tid"] == OTHER_TID
    lanes = browser_model(model)["lanes"]
    assert lanes == {"span": [0, 0], "kind": [0, 2], "id": [0, 0], "row": [0, 0]}


def test_runs_that_overlap_on_a_lane_get_rows_of_their_own(tmp_path: Path) -> None:
    # Three branches without cores at once, and a parent whose core a subtask used while it
    # had given it back: no two X events of one thread may overlap, nor two bars of a row.
    model = load_run(
        write_log(
            tmp_path / "run.jsonl",
            WorkerJoined("w", "cores:1,mem:1G", at=at(0)),
            *(TaskSubmitted(task, "branch", "", 0, at=at(0)) for task in (1, 2, 3)),
            *(TaskPlaced(task, "w", "", (), (), 1, at=at(0)) for task in (1, 2, 3)),
            TaskSubmitted(4, "parent", "cores:1", 0, at=at(0)),
            TaskPlaced(4, "w", "cores:[0]", (0,), (), 1, at=at(0)),
            TaskSubmitted(5, "child", "cores:1", 0, at=at(1)),
            TaskPlaced(5, "w", "cores:[0]", (0,), (), 1, at=at(1)),
            TaskFinished(5, "w", 1.0, 1, at=at(2)),
            TaskSubmitted(6, "later", "", 0, at=at(3)),
            TaskPlaced(6, "w", "", (), (), 1, at=at(3)),
            *(TaskFinished(task, "w", 3.0, 1, at=at(3)) for task in (1, 2, 3, 4)),
            TaskFinished(6, "w", 1.0, 1, at=at(4)),
        )
    )
    runs = [event for event in trace_events(model)["traceEvents"] if event["ph"] == "X"]
    by_thread: dict[tuple[int, int], list[tuple[float, float]]] = {}
    for event in runs:
        by_thread.setdefault((event["pid"], event["tid"]), []).append(
            (event["ts"], event["ts"] + event["dur"])
        )
    for spans in by_thread.values():
        spans.sort()
        assert all(end <= start for (_, end), (start, _) in itertools.pairwise(spans)), spans
    tids = {event["args"]["task_id"]: event["tid"] for event in runs}
    assert tids[4] == 0 and tids[5] == ROW_TID  # the subtask in the core's second row
    assert sorted(tids[task] for task in (1, 2, 3)) == [OTHER_TID + n * ROW_TID for n in range(3)]
    assert tids[6] in {tids[1], tids[2], tids[3]}  # a row free again is used again
    names = {
        event["tid"]: event["args"]["name"]
        for event in trace_events(model)["traceEvents"]
        if event["name"] == "thread_name"
    }
    assert names[ROW_TID] == "core 0 (2)" and names[OTHER_TID + 2 * ROW_TID] == "no cores (3)"
    page = browser_model(model)
    lanes = page["lanes"]
    assert list(zip(lanes["kind"], lanes["id"], lanes["row"], strict=True)) == [
        (0, 0, 0),
        (0, 0, 1),
        (2, 0, 0),
        (2, 0, 1),
        (2, 0, 2),
    ]


# -- the HTML ----------------------------------------------------------------------------------


def page_model(page: str) -> dict[str, Any]:
    found = re.search(r'<script type="application/json" id="run-model">(.*?)</script>', page, re.S)
    assert found is not None
    data: dict[str, Any] = json.loads(found.group(1))
    return data


def test_the_page_is_self_contained_and_names_no_address(small_run: RunModel) -> None:
    page = render_html(small_run)
    for needle in ("http://", "https://", "//cdn", "<link", " src=", "@import", "url("):
        assert needle not in page
    assert page.count("<script") == 2  # the model and the inline script


def test_the_page_carries_the_runs_as_columns_that_decode_to_the_model(
    small_run: RunModel,
) -> None:
    data = page_model(render_html(small_run))
    columns = data["runs"]
    assert len(columns["task"]) == len(small_run.runs)
    tasks, starts, start, task = [], [], 0, 0
    for task_delta, start_delta in zip(columns["task"], columns["start"], strict=True):
        task, start = task + task_delta, start + start_delta
        tasks.append(task)
        starts.append(start)
    assert tasks == [run.task_id for run in small_run.runs]
    assert starts == [round((run.start - T0) * 1e6) for run in small_run.runs]
    assert columns["dur"][0] == 3_000_000
    lanes = data["lanes"]
    assert len(lanes["span"]) == 3 + 4  # a: 2 cores and a GPU; b: 4 cores
    assert columns["lane"][0] == [0, 1, 2]  # train: a's cores 0 and 1, and its GPU
    assert [data["outcomes"][code] for code in columns["outcome"]] == [
        run.outcome for run in small_run.runs
    ]
    assert data["notes"] == {
        "2": "worker lost: connection dropped",
        "4": "ValueError: bad input 42",
        "5": "task 5 (sleepy) was cancelled",
    }


def test_the_page_lists_failed_retried_and_cancelled_tasks_and_the_workers(
    small_run: RunModel,
) -> None:
    page = render_html(small_run)
    failed = page[page.index('id="failed"') : page.index('id="workers"')]
    assert "ValueError: bad input 42" in failed
    assert "UnsatisfiableError: cores:64: no worker could ever satisfy this request" in failed
    assert "(never ran)" in failed
    assert "worker lost: connection dropped" in failed
    assert "task 5 (sleepy) was cancelled" in failed
    workers = page[page.index('id="workers"') :]
    assert "drained: asked to quit" in workers
    assert "lost: connection dropped" in workers
    assert "data-task-id=" not in page  # the script makes the bars, and only they carry it


def test_text_from_the_log_cannot_end_the_script_or_add_markup(tmp_path: Path) -> None:
    sneaky = "</script><script>alert(1)</script><b>"
    model = load_run(
        write_log(
            tmp_path / "run.jsonl",
            WorkerJoined("w", "cores:1", at=at(0)),
            TaskSubmitted(1, sneaky, "cores:1", 0, at=at(0)),
            TaskPlaced(1, "w", "cores:1", (0,), (), 1, at=at(0)),
            TaskFailed(1, "w", sneaky, 1.0, "ValueError", 1, at=at(1)),
        )
    )
    page = render_html(model)
    assert page.count("</script>") == 2
    assert "<b>" not in page
    assert page_model(page)["names"] == [sneaky]


def test_report_writes_the_html_and_the_trace_and_prints_the_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = write_log(tmp_path / "run.jsonl", *two_worker_run())
    assert (
        main(
            [
                "report",
                str(log),
                "-o",
                str(tmp_path / "r.html"),
                "--trace",
                str(tmp_path / "t.json"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("6 tasks: 3 finished, 2 failed")
    assert f"wrote {tmp_path / 'r.html'}" in out
    assert (tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>")
    assert json.loads((tmp_path / "t.json").read_text())["traceEvents"]
    assert main(["report", str(log)]) == 0  # next to the log when no output is named
    assert (tmp_path / "run.html").is_file()


def test_report_of_a_malformed_log_exits_2_naming_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "run.jsonl"
    log.write_text('{"event": "TaskStarted"}\n')
    assert main(["report", str(log)]) == 2
    assert capsys.readouterr().err == (
        f"grainlike report: {log}:1: TaskStarted without at, task_id, worker\n"
    )


# -- a real run ---------------------------------------------------------------------------------


@pytest.mark.usefixtures("local_capacity")
async def test_a_real_event_log_gives_one_run_per_placement_on_the_cores_it_got(
    tmp_path: Path,
) -> None:
    attempts = {"flaky": 0}

    async def nap(seconds: float) -> None:
        await trio.sleep(seconds)

    async def flaky() -> None:
        attempts["flaky"] += 1
        if attempts["flaky"] == 1:
            raise RuntimeError("transient")

    async def boom() -> None:
        raise ValueError("bad input 42")

    log = tmp_path / "run.jsonl"
    async with gl.open_session(stats=None, events=log, resources="cores:2,gpu:1"):
        await gl.gather(
            (nap @ Cores(2))(0.02),
            (nap @ Cores(1) & GPU(1))(0.02),
            (nap @ Cores(1) & Memory("256M") & WTime(group="g"))(0.02),
            (flaky @ Cores(1)).options(retries=1)(),
        )
        with pytest.raises(ValueError, match="bad input"):
            await (boom @ Cores(1))()
    records = [json.loads(line) for line in log.read_text().splitlines()]
    placed = [record for record in records if record["event"] == "TaskPlaced"]
    model = load_run(log)
    assert len(model.runs) == len(placed) == 6
    assert sorted((run.task_id, run.attempt, run.cores, run.gpus) for run in model.runs) == sorted(
        (r["task_id"], r["attempt"], tuple(r["cores"]), tuple(r["gpus"])) for r in placed
    )
    assert [run.outcome for run in model.runs].count("retried") == 1
    assert [task.error for task in model.tasks if task.outcome == "failed"] == ["bad input 42"]
    assert all(run.start <= run.end for run in model.runs)
    assert {row.key for row in table(model, "group")} == {"g", ""}


# -- 100,000 tasks ------------------------------------------------------------------------------


def write_synthetic_log(
    path: Path, tasks: int, *, workers: int = 4, cores: int = 8, seed: int = 0
) -> int:
    """Write the event log of a made-up run of ``tasks`` tasks on ``workers`` nodes of ``cores``
    cores and one GPU each (about 1 % retried, 1 % failed); returns the number of runs."""
    rng = random.Random(seed)
    names = ["simulate", "crunch", "fetch", "post", "train"]
    events: list[tuple[float, int, Event]] = []

    def emit(event: Event) -> None:
        events.append((event.at, len(events), event))

    for node in range(workers):
        emit(WorkerJoined(f"node-{node}", f"cores:{cores},mem:32G,gpu:1,wtime:inf", at=at(0)))
    free = [(0.1, node, core) for node in range(workers) for core in range(cores)]
    runs = 0
    for task_id in range(1, tasks + 1):
        name = names[task_id % len(names)]
        request = "cores:1,wtime:@sim" if name == "simulate" else "cores:1"
        emit(TaskSubmitted(task_id, name, request, 0, at=at(0.05)))
        for attempt in (1, 2):
            runs += 1
            begin, node, core = heapq.heappop(free)
            worker, seconds = f"node-{node}", rng.expovariate(1.0) + 0.01
            gpus = (0,) if name == "train" and core == 0 else ()
            allocation = f"cores:[{core}]" + (",gpu:[0]" if gpus else "")
            emit(TaskPlaced(task_id, worker, allocation, (core,), gpus, attempt, at=at(begin)))
            emit(TaskStarted(task_id, worker, attempt, at=at(begin + 0.001)))
            end = begin + 0.001 + seconds
            heapq.heappush(free, (end + 0.0005, node, core))
            roll = rng.random()
            if roll < 0.01 and attempt == 1:
                emit(TaskRetried(task_id, worker, 2, "failed: RuntimeError: flaky", at=at(end)))
                continue
            if roll > 0.99:
                emit(
                    TaskFailed(
                        task_id,
                        worker,
                        f"bad input {task_id}",
                        seconds,
                        "ValueError",
                        attempt,
                        at=at(end),
                    )
                )
            else:
                usage = Usage(seconds, seconds * 0.9, 50_000_000)
                emit(TaskFinished(task_id, worker, seconds, attempt, usage, at=at(end)))
            break
    events.sort(key=lambda item: (item[0], item[1]))
    with path.open("w") as out:
        for _, _, event in events:
            out.write(json.dumps(event_record(event)) + "\n")
    return runs


def test_a_report_of_100000_tasks_builds_in_seconds_and_stays_a_few_mb(tmp_path: Path) -> None:
    log = tmp_path / "big.jsonl"
    runs = write_synthetic_log(log, 100_000)
    began = time.process_time()
    model = load_run(log)
    page = write_html(model, tmp_path / "big.html")
    seconds = time.process_time() - began
    assert len(model.runs) == runs
    assert len(page_model(page.read_text())["runs"]["task"]) == runs
    size = page.stat().st_size
    print(f"100,000 tasks, {runs} runs: {seconds:.1f} s of CPU, {size / 1e6:.1f} MB")
    assert seconds < 20  # about 4 s on the 2-core machine of the project
    assert size < 5e6
