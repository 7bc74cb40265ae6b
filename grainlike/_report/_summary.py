"""Figures about a run: per-function tables, task counts, utilisation per kind."""

from __future__ import annotations

from collections import defaultdict

import attrs

from ._model import CANCELLED, FAILED, FINISHED, RETRIED, RunModel

__all__ = ["Counts", "Row", "counts", "pool_peaks", "table", "utilisation"]


@attrs.frozen
class Row:
    """The runs of one function (or one group).

    Attributes:
        key: The function's name, or the group (``""``: tasks without a group).
        tasks: How many tasks it had.
        runs: How many runs they had.
        mean: The mean duration of a run, in seconds.
        max: The longest run, in seconds.
        failures: How many of its tasks failed.
        retries: How many of its runs ended in a retry.
        busy: The sum of its runs' durations, in seconds.
    """

    key: str
    tasks: int
    runs: int
    mean: float
    max: float
    failures: int
    retries: int
    busy: float


def table(model: RunModel, by: str = "name") -> list[Row]:
    """One row per function (``by="name"``) or group (``by="group"``), busiest first."""
    key_of = {task.id: getattr(task, by) for task in model.tasks}
    tasks: dict[str, int] = defaultdict(int)
    failures: dict[str, int] = defaultdict(int)
    for task in model.tasks:
        tasks[key_of[task.id]] += 1
        failures[key_of[task.id]] += task.outcome == FAILED
    durations: dict[str, list[float]] = defaultdict(list)
    retries: dict[str, int] = defaultdict(int)
    for run in model.runs:
        key = key_of.get(run.task_id, "")
        durations[key].append(run.duration)
        retries[key] += run.outcome == RETRIED
    rows = []
    for key, count in tasks.items():
        spans = durations.get(key, [])
        busy = sum(spans)
        rows.append(
            Row(
                key,
                count,
                len(spans),
                busy / len(spans) if spans else 0.0,
                max(spans, default=0.0),
                failures[key],
                retries[key],
                busy,
            )
        )
    return sorted(rows, key=lambda row: (-row.busy, -row.tasks, row.key))


@attrs.frozen
class Counts:
    """How the tasks of a run ended.

    Attributes:
        tasks: Tasks submitted (or seen).
        finished: Tasks that returned a value.
        failed: Tasks that ended with an exception.
        cancelled: Tasks their callers cancelled.
        open: Tasks with no terminal event in the log.
        runs: Runs of tasks.
        retried: Runs that ended in ``TaskRetried``.
    """

    tasks: int
    finished: int
    failed: int
    cancelled: int
    open: int
    runs: int
    retried: int


def counts(model: RunModel) -> Counts:
    """Count the tasks by outcome, and the runs."""
    outcomes: dict[str, int] = defaultdict(int)
    for task in model.tasks:
        outcomes[task.outcome] += 1
    return Counts(
        len(model.tasks),
        outcomes[FINISHED],
        outcomes[FAILED],
        outcomes[CANCELLED],
        outcomes[""],
        len(model.runs),
        sum(run.outcome == RETRIED for run in model.runs),
    )


def _capacity_seconds(model: RunModel) -> dict[str, float]:
    held: dict[str, float] = defaultdict(float)
    for worker in model.workers:
        stay = (worker.left if worker.left is not None else model.end) - worker.joined
        for kind, total in worker.totals.items():
            held[kind] += total * max(stay, 0.0)
    return held


def utilisation(model: RunModel) -> dict[str, float]:
    """Per kind the workers offer: the fraction of it that runs held over the whole run
    (amount-seconds held by runs / amount-seconds offered while the workers were connected)."""
    offered = _capacity_seconds(model)
    used: dict[str, float] = defaultdict(float)
    for run in model.runs:
        for kind, amount in run.amounts.items():
            used[kind] += amount * run.duration
    return {kind: used[kind] / total for kind, total in offered.items() if total > 0}


def pool_peaks(model: RunModel) -> dict[str, float]:
    """Per kind that runs held but no worker offers (a cluster-wide pool): the most held at
    once."""
    offered = {kind for worker in model.workers for kind in worker.totals}
    changes: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for run in model.runs:
        for kind, amount in run.amounts.items():
            if kind not in offered:
                changes[kind] += [(run.start, amount), (run.end, -amount)]
    peaks = {}
    for kind, steps in changes.items():
        level = peak = 0.0
        for _, change in sorted(steps, key=lambda step: (step[0], step[1])):
            level += change
            peak = max(peak, level)
        peaks[kind] = peak
    return peaks
