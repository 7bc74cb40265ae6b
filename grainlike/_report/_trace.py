"""A run in the Chrome Trace Event format, which Perfetto and ``chrome://tracing`` open.

Each worker is a process (``pid``), each of its cores a thread (``tid`` = the core ID; GPUs and
tasks without cores get threads of their own, after the cores).  Each run of a task is one
complete event (``"ph": "X"``) on the lane of its first core, with all its cores and GPUs in
``args``: one event per run, so that the trace counts runs as the report does.

Complete events on one thread must nest, and viewers drop those that do not (Perfetto does),
so runs that overlap on a lane (a ``gl.released()`` parent and the subtasks that used its
cores meanwhile, concurrent tasks without cores) go to further threads of that lane:
``tid + n * ROW_TID`` for its row ``n``, named like ``core 0 (2)``.
"""

from __future__ import annotations

import datetime
from typing import Any

from ._model import FAILED, RETRIED, Run, RunModel, stack_rows

__all__ = ["GPU_TID", "OTHER_TID", "ROW_TID", "trace_events"]

#: Thread ids of GPU lanes (``GPU_TID + device index``) and of tasks with neither.
GPU_TID, OTHER_TID = 10_000, 20_000

#: What a further row of a lane adds to its thread id, per row.
ROW_TID = 100_000

#: Chrome's reserved colour names, so that failed and retried runs stand out in the viewer.
_COLOURS = {FAILED: "terrible", RETRIED: "bad"}


def _tid(run: Run) -> int:
    if run.cores:
        return run.cores[0]
    if run.gpus:
        return GPU_TID + run.gpus[0]
    return OTHER_TID


def _thread_name(tid: int) -> str:
    row, lane = divmod(tid, ROW_TID)
    if lane >= OTHER_TID:
        name = "no cores"
    elif lane >= GPU_TID:
        name = f"gpu {lane - GPU_TID}"
    else:
        name = f"core {lane}"
    return f"{name} ({row + 1})" if row else name


def trace_events(model: RunModel) -> dict[str, Any]:
    """The trace as a JSON-ready dict: ``{"traceEvents": [...], "displayTimeUnit": "ms"}``.

    Times are microseconds from the first event of the run.
    """
    names = {task.id: task.name for task in model.tasks}

    def us(at: float) -> float:
        return round((at - model.start) * 1e6, 3)

    events: list[dict[str, Any]] = []
    threads: dict[int, set[int]] = {}
    lanes = [(run.span, _tid(run)) for run in model.runs]  # one lane a run: its first core
    rows = stack_rows(model.runs, [(lane,) for lane in lanes])
    for run, (_, first_tid), (row,) in zip(model.runs, lanes, rows, strict=True):
        pid, tid = run.span + 1, first_tid + row * ROW_TID
        threads.setdefault(pid, set()).add(tid)
        args: dict[str, Any] = {
            "task_id": run.task_id,
            "attempt": run.attempt,
            "allocation": run.allocation,
            "cores": list(run.cores),
            "gpus": list(run.gpus),
            "outcome": run.outcome,
        }
        if run.note:
            args["note"] = run.note
        event = {
            "name": names.get(run.task_id, f"task {run.task_id}"),
            "cat": run.outcome,
            "ph": "X",
            "ts": us(run.start),
            "dur": round(run.duration * 1e6, 3),
            "pid": pid,
            "tid": tid,
            "args": args,
        }
        if run.outcome in _COLOURS:
            event["cname"] = _COLOURS[run.outcome]
        events.append(event)
    metadata: list[dict[str, Any]] = []
    for index, worker in enumerate(model.workers):
        pid = index + 1
        label = f"{worker.id} ({worker.capacity})" if worker.capacity else worker.id
        metadata.append(_meta("process_name", pid, 0, name=label))
        metadata.append(_meta("process_sort_index", pid, 0, sort_index=pid))
        known = {*worker.cores, *(GPU_TID + gpu for gpu in worker.gpus), *threads.get(pid, ())}
        for tid in sorted(known):
            metadata.append(_meta("thread_name", pid, tid, name=_thread_name(tid)))
            metadata.append(_meta("thread_sort_index", pid, tid, sort_index=tid))
    started = datetime.datetime.fromtimestamp(model.start, datetime.UTC).isoformat()
    return {
        "traceEvents": metadata + events,
        "displayTimeUnit": "ms",
        "otherData": {"source": model.source, "start": started},
    }


def _meta(kind: str, pid: int, tid: int, **args: Any) -> dict[str, Any]:
    return {"name": kind, "ph": "M", "pid": pid, "tid": tid, "args": args}
