"""A run's events folded into worker stays, task runs and task outcomes (``_model``).

A *run* of a task lasts from the moment it began on its worker to the event that ended it (the
task's terminal event, or ``TaskRetried``).  It began at ``TaskStarted``, or at ``TaskPlaced``
when no start was reported; when the worker measured the run (``duration`` in ``TaskFinished``
or ``TaskFailed``), the run began ``duration`` seconds before it ended, which is closer to the
truth than the times at which the dispatcher received the worker's reports (remote workers
report in batches).  A task that was never placed has no run, only an outcome.
"""

from __future__ import annotations

import re
from typing import Any

import attrs

from .._exceptions import GrainlikeError
from ..resource import parse_resources
from ._model import (
    CANCELLED,
    FAILED,
    FINISHED,
    RETRIED,
    UNFINISHED,
    Run,
    RunModel,
    TaskSummary,
    WorkerSpan,
)
from ._records import EventRecords

__all__ = ["AmountTable", "build_model", "group_of"]

#: Kinds that are not used up by a task, so they have no utilisation.
_NOT_CONSUMED = frozenset({"wtime", "token"})

_GROUP = re.compile(r"@([^,\s\]]+)")


def group_of(request: str) -> str:
    """The learned groups named in a request's shorthand (``"cores:1,wtime:@sim"`` gives
    ``"sim"``), joined by ``+`` when there are several; ``""`` for none."""
    found = sorted(set(_GROUP.findall(request)))
    return "+".join(found)


@attrs.define(eq=False)
class AmountTable:
    """Per allocation or capacity text, its amounts per consumable kind (parsed once each)."""

    _cache: dict[tuple[str, bool], dict[str, float]] = attrs.field(factory=dict)
    unparsed: list[str] = attrs.field(factory=list)

    def amounts(self, text: str, *, capacity: bool = False) -> dict[str, float]:
        """``{"cores": 2.0, "mem": 0.25, ...}`` for ``text`` (empty when it cannot be parsed)."""
        key = (text, capacity)
        found = self._cache.get(key)
        if found is None:
            try:
                stat = parse_resources(text, capacity=capacity).stat()
            except (GrainlikeError, ValueError) as error:
                self.unparsed.append(f"{text!r} is left out of the utilisation: {error}")
                stat = {}
            found = {
                label: total
                for label, (_, total) in stat.items()
                if label not in _NOT_CONSUMED and total != float("inf")
            }
            self._cache[key] = found
        return found


@attrs.define(eq=False)
class _Builder:
    """Folds the events, in order, into workers, runs and tasks."""

    amounts: AmountTable
    workers: list[dict[str, Any]] = attrs.field(factory=list)
    current: dict[str, int] = attrs.field(factory=dict)
    tasks: dict[int, dict[str, Any]] = attrs.field(factory=dict)
    open: dict[int, dict[str, Any]] = attrs.field(factory=dict)
    runs: list[Run] = attrs.field(factory=list)

    def join(self, worker: str, capacity: str, at: float) -> int:
        totals = self.amounts.amounts(capacity, capacity=True)
        try:
            parsed = parse_resources(capacity, capacity=True)
            cores, gpus = tuple(_ids(parsed, "c")), tuple(_ids(parsed, "gpus"))
        except (GrainlikeError, ValueError):
            cores, gpus = (), ()
        self.workers.append(
            {
                "id": worker,
                "capacity": capacity,
                "joined": at,
                "left": None,
                "how": "",
                "reason": "",
                "cores": cores,
                "gpus": gpus,
                "totals": totals,
            }
        )
        self.current[worker] = len(self.workers) - 1
        return len(self.workers) - 1

    def leave(self, record: dict[str, Any], how: str) -> None:
        index = self.current.pop(record["worker"], None)
        if index is not None:
            self.workers[index].update(left=record["at"], how=how, reason=record["reason"])

    def task(self, task_id: int, at: float) -> dict[str, Any]:
        task = self.tasks.get(task_id)
        if task is None:  # placed without being submitted in this log
            task = self.tasks[task_id] = _task(task_id, f"task {task_id}", "", None, at)
        return task

    def place(self, record: dict[str, Any]) -> None:
        task_id, at = record["task_id"], record["at"]
        if task_id in self.open:  # a run that ended unreported: it ends where the next begins
            self.close(task_id, at, RETRIED, "placed again before this run ended")
        span = self.current.get(record["worker"])
        if span is None:
            span = self.join(record["worker"], "", at)
        self.open[task_id] = {"placed": record, "span": span, "started": None}
        self.task(task_id, at)["runs"] += 1

    def start(self, record: dict[str, Any]) -> None:
        run = self.open.get(record["task_id"])
        if run is not None and run["started"] is None:
            run["started"] = record["at"]

    def close(
        self, task_id: int, at: float, outcome: str, note: str, duration: float | None = None
    ) -> None:
        run = self.open.pop(task_id, None)
        if run is None:
            return
        placed = run["placed"]
        start = run["started"] if run["started"] is not None else placed["at"]
        if duration is not None:
            start = max(placed["at"], at - duration)
        self.runs.append(
            Run(
                task_id,
                placed["attempt"],
                placed["worker"],
                run["span"],
                placed["allocation"],
                tuple(placed["cores"]),
                tuple(placed["gpus"]),
                placed["at"],
                min(start, at),
                at,
                outcome,
                note,
                self.amounts.amounts(placed["allocation"]),
            )
        )

    def end(self, record: dict[str, Any], outcome: str) -> None:
        task = self.task(record["task_id"], record["at"])
        if outcome == FINISHED:
            note = ""
        elif outcome == FAILED:
            task["error_type"], task["error"] = record.get("error_type", ""), record["error"]
            note = ": ".join(part for part in (task["error_type"], task["error"]) if part)
        else:
            task["error"] = note = record["reason"]
        task.update(outcome=outcome, ended=record["at"], usage=record.get("usage"))
        if record.get("worker") is not None:
            task["worker"] = record["worker"]
        self.close(record["task_id"], record["at"], outcome, note, record.get("duration"))


def _ids(resources: Any, attribute: str) -> list[int]:
    try:
        return list(getattr(resources, attribute))
    except AttributeError:  # the capacity lacks the kind
        return []


def _task(task_id: int, name: str, request: str, parent: int | None, at: float) -> dict[str, Any]:
    return {
        "id": task_id,
        "name": name,
        "request": request,
        "group": group_of(request),
        "parent": parent,
        "submitted": at,
        "outcome": "",
        "error_type": "",
        "error": "",
        "ended": None,
        "worker": None,
        "runs": 0,
        "retries": 0,
        "usage": None,
    }


def build_model(events: EventRecords) -> RunModel:
    """Fold the events of one run into a ``RunModel``."""
    builder = _Builder(AmountTable())
    for record in events.records:
        kind = record["event"]
        if kind == "TaskPlaced":
            builder.place(record)
        elif kind == "TaskStarted":
            builder.start(record)
        elif kind == "TaskFinished":
            builder.end(record, FINISHED)
        elif kind == "TaskSubmitted":
            builder.tasks[record["task_id"]] = _task(
                record["task_id"],
                record["name"],
                record["request"],
                record.get("parent"),
                record["at"],
            )
        elif kind == "TaskFailed":
            builder.end(record, FAILED)
        elif kind == "TaskRetried":
            builder.task(record["task_id"], record["at"])["retries"] += 1
            builder.close(record["task_id"], record["at"], RETRIED, record["reason"])
        elif kind == "TaskCancelled":
            builder.end(record, CANCELLED)
        elif kind == "WorkerJoined":
            builder.join(record["worker"], record["capacity"], record["at"])
        elif kind == "WorkerLost":
            builder.leave(record, "lost")
        elif kind == "WorkerDrained":
            builder.leave(record, "drained")
    times = [record["at"] for record in events.records]
    start, end = min(times), max(times)
    for task_id in list(builder.open):
        builder.close(task_id, end, UNFINISHED, "the log ends before the run did")
    runs = sorted(builder.runs, key=lambda run: (run.start, run.task_id))
    notes = (*events.notes, *dict.fromkeys(builder.amounts.unparsed))
    return RunModel(
        events.source,
        start,
        end,
        tuple(WorkerSpan(**worker) for worker in builder.workers),
        tuple(runs),
        tuple(TaskSummary(**task) for task in sorted(builder.tasks.values(), key=_by_id)),
        notes,
    )


def _by_id(task: dict[str, Any]) -> int:
    return int(task["id"])
