"""The report as one self-contained HTML file: tables in HTML, the timeline drawn by a script.

The run goes into the page as one JSON document (``browser_model``), compact enough for 100,000
runs in a few MB: the runs are columns of small integers, times are microseconds, each start is
the difference from the run before (the runs are sorted by start), and names and allocations
are indices into tables.  The script and the styles are package data (``assets/``), inlined, so
that the page needs no network and opens from any directory.
"""

from __future__ import annotations

import datetime
import html
import json
import re
from importlib.resources import files
from pathlib import Path
from typing import Any

from ._model import CANCELLED, FAILED, FINISHED, RETRIED, UNFINISHED, Run, RunModel, stack_rows
from ._summary import Row, counts, pool_peaks, table, utilisation

__all__ = ["OUTCOMES", "browser_model", "render_html"]

#: Run outcomes by their code in the page's ``outcome`` column.
OUTCOMES = (FINISHED, FAILED, RETRIED, CANCELLED, UNFINISHED)

#: Longest list of failed tasks, retried runs or cancelled tasks shown in full.
LIST_LIMIT = 500

#: Lane kinds in the page's ``lanes.kind`` column.
CORE_LANE, GPU_LANE, OTHER_LANE = 0, 1, 2

#: Most rows a lane gets for runs that overlap on it; more overlapping runs share a row.
LANE_ROWS = 8

LaneKey = tuple[int, int, int]  # (worker span, lane kind, core or GPU id)


def _indexer(values: list[str]) -> dict[str, int]:
    return {value: index for index, value in enumerate(values)}


def _lane_keys(run: Run) -> list[LaneKey]:
    own = [(run.span, CORE_LANE, core) for core in run.cores]
    own += [(run.span, GPU_LANE, gpu) for gpu in run.gpus]
    return own or [(run.span, OTHER_LANE, 0)]


def _lanes(model: RunModel) -> tuple[dict[str, list[Any]], list[list[int]]]:
    """One lane per core and per GPU of each worker, and one per worker for runs with neither;
    a lane has as many rows as runs overlap on it (at most ``LANE_ROWS``).

    Also returns, for each run, the indices of its lanes' rows.
    """
    lane_keys = [_lane_keys(run) for run in model.runs]
    rows = stack_rows(model.runs, lane_keys, limit=LANE_ROWS)
    keys: set[tuple[int, int, int, int]] = set()
    for span, worker in enumerate(model.workers):
        keys.update((span, CORE_LANE, core, 0) for core in worker.cores)
        keys.update((span, GPU_LANE, gpu, 0) for gpu in worker.gpus)
    for own_keys, own in zip(lane_keys, rows, strict=True):
        keys.update((*key, row) for key, row in zip(own_keys, own, strict=True))
    columns: dict[str, list[Any]] = {"span": [], "kind": [], "id": [], "row": []}
    index: dict[tuple[int, int, int, int], int] = {}
    for key in sorted(keys):
        index[key] = len(columns["span"])
        for column, value in zip(("span", "kind", "id", "row"), key, strict=True):
            columns[column].append(value)
    run_lanes = [
        [index[*key, row] for key, row in zip(own_keys, own, strict=True)]
        for own_keys, own in zip(lane_keys, rows, strict=True)
    ]
    return columns, run_lanes


def browser_model(model: RunModel) -> dict[str, Any]:
    """The run as the page's script reads it (JSON-ready)."""
    t0 = model.start

    def us(at: float) -> int:
        return round((at - t0) * 1e6)

    names = [row.key for row in table(model, "name")]
    groups = [row.key for row in table(model, "group")]
    name_index, group_index = _indexer(names), _indexer(groups)
    task_name = {task.id: name_index[task.name] for task in model.tasks}
    task_group = {task.id: group_index[task.group] for task in model.tasks}
    lanes, run_lanes = _lanes(model)
    allocations: dict[str, int] = {}
    outcome_code = _indexer(list(OUTCOMES))
    columns: dict[str, list[Any]] = {
        key: [] for key in ("task", "start", "dur", "lane", "name", "group", "outcome", "alloc")
    }
    columns["attempt"] = []
    notes: dict[str, str] = {}
    previous_start = previous_task = 0
    for number, run in enumerate(model.runs):
        start, end = us(run.start), us(run.end)
        own = run_lanes[number]
        columns["task"].append(run.task_id - previous_task)
        columns["start"].append(start - previous_start)
        columns["dur"].append(end - start)
        columns["lane"].append(own[0] if len(own) == 1 else own)
        columns["name"].append(task_name.get(run.task_id, 0))
        columns["group"].append(task_group.get(run.task_id, 0))
        columns["outcome"].append(outcome_code[run.outcome])
        columns["alloc"].append(allocations.setdefault(run.allocation, len(allocations)))
        columns["attempt"].append(run.attempt)
        if run.note:
            notes[str(number)] = run.note
        previous_start, previous_task = start, run.task_id
    amounts: dict[str, dict[str, float]] = {}
    for run in model.runs:
        amounts.setdefault(run.allocation, run.amounts)
    return {
        "source": model.source,
        "start": t0,
        "span": us(model.end),
        "workers": [
            {
                "id": worker.id,
                "capacity": worker.capacity,
                "joined": us(worker.joined),
                "left": None if worker.left is None else us(worker.left),
                "how": worker.how,
                "reason": worker.reason,
                "totals": worker.totals,
            }
            for worker in model.workers
        ],
        "lanes": lanes,
        "names": names,
        "groups": groups,
        "outcomes": list(OUTCOMES),
        "allocs": [{"text": text, "amounts": amounts[text]} for text in allocations],
        "runs": columns,
        "notes": notes,
        "pools": pool_peaks(model),
    }


def _script_json(data: Any) -> str:
    """JSON that cannot end its ``<script>`` element early: every ``<`` is escaped."""
    return json.dumps(data, separators=(",", ":"), allow_nan=False).replace("<", "\\u003c")


def _duration(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    if seconds < 60:
        return f"{seconds:.2f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {seconds % 60:02.0f} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def _table(head: list[str], rows: list[list[str]], *, more: int = 0, empty: str = "") -> str:
    if not rows:
        return f'<p class="empty">{html.escape(empty)}</p>'
    cells = "".join(f"<th>{html.escape(cell)}</th>" for cell in head)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in rows
    )
    if more:
        body += f'<tr class="more"><td colspan="{len(head)}">… and {more} more</td></tr>'
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>"


def _rows_table(rows: list[Row], label: str) -> str:
    return _table(
        [label, "tasks", "runs", "mean", "max", "failures", "retries", "busy"],
        [
            [
                row.key or "(none)",
                str(row.tasks),
                str(row.runs),
                _duration(row.mean) if row.runs else "",
                _duration(row.max) if row.runs else "",
                str(row.failures),
                str(row.retries),
                _duration(row.busy),
            ]
            for row in rows
        ],
        empty="no tasks",
    )


def _tables(model: RunModel) -> dict[str, str]:
    def at(moment: float | None) -> str:
        return "" if moment is None else f"+{_duration(max(moment - model.start, 0.0))}"

    names = {task.id: task.name for task in model.tasks}
    failed = [task for task in model.tasks if task.outcome == FAILED]
    cancelled = [task for task in model.tasks if task.outcome == CANCELLED]
    retried = [run for run in model.runs if run.outcome == RETRIED]
    groups = table(model, "group")
    runs_of = [0] * len(model.workers)
    for run in model.runs:
        runs_of[run.span] += 1
    return {
        "functions": _rows_table(table(model, "name"), "function"),
        "groups": _rows_table(groups, "group") if any(row.key for row in groups) else "",
        "failed": _table(
            ["task", "function", "error", "worker", "runs", "ended"],
            [
                [
                    str(task.id),
                    task.name,
                    ": ".join(part for part in (task.error_type, task.error) if part),
                    task.worker or "(never ran)",
                    str(task.runs),
                    at(task.ended),
                ]
                for task in failed[:LIST_LIMIT]
            ],
            more=max(len(failed) - LIST_LIMIT, 0),
            empty="No task failed.",
        ),
        "retried": _table(
            ["task", "function", "attempt", "worker", "why", "ended"],
            [
                [
                    str(run.task_id),
                    names.get(run.task_id, ""),
                    str(run.attempt),
                    run.worker,
                    run.note,
                    at(run.end),
                ]
                for run in retried[:LIST_LIMIT]
            ],
            more=max(len(retried) - LIST_LIMIT, 0),
            empty="No run was retried.",
        ),
        "cancelled": _table(
            ["task", "function", "why", "worker", "ended"],
            [
                [str(task.id), task.name, task.error, task.worker or "", at(task.ended)]
                for task in cancelled[:LIST_LIMIT]
            ],
            more=max(len(cancelled) - LIST_LIMIT, 0),
            empty="No task was cancelled.",
        ),
        "workers": _table(
            ["worker", "capacity", "joined", "left", "lifetime", "runs", "how it left"],
            [
                [
                    worker.id,
                    worker.capacity,
                    at(worker.joined),
                    at(worker.left) if worker.left is not None else "(still connected)",
                    _duration((worker.left or model.end) - worker.joined),
                    str(runs_of[index]),
                    f"{worker.how}: {worker.reason}" if worker.how else "",
                ]
                for index, worker in enumerate(model.workers)
            ],
            empty="No worker joined.",
        ),
    }


def summary_line(model: RunModel) -> str:
    """One line about the run: tasks by outcome, runs, workers, wall time, utilisation."""
    tally = counts(model)
    parts = [f"{_plural(tally.tasks, 'task')}: {tally.finished} finished, {tally.failed} failed"]
    if tally.cancelled:
        parts[0] += f", {tally.cancelled} cancelled"
    if tally.open:
        parts[0] += f", {tally.open} unfinished"
    parts.append(f"{_plural(tally.runs, 'run')} ({tally.retried} retried)")
    parts.append(_plural(len(model.workers), "worker"))
    parts.append(f"wall {_duration(model.wall)}")
    busy = ", ".join(f"{kind} {share:.0%}" for kind, share in utilisation(model).items())
    if busy:
        parts.append(f"busy: {busy}")
    return "; ".join(parts)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


_MARKER = re.compile(r"\{\{(\w+)\}\}")


def _asset(name: str) -> str:
    return files(__package__).joinpath("assets", name).read_text(encoding="utf-8")


def render_html(model: RunModel) -> str:
    """The whole page."""
    started = datetime.datetime.fromtimestamp(model.start, datetime.UTC)
    values = {
        "title": html.escape(f"grainlike report: {Path(model.source).name}"),
        "source": html.escape(model.source),
        "started": started.strftime("%Y-%m-%d %H:%M:%S UTC"),
        "summary": html.escape(summary_line(model)),
        "notes": "".join(f"<li>{html.escape(note)}</li>" for note in model.notes),
        "style": _asset("report.css"),
        "script": _asset("report.js"),
        "model": _script_json(browser_model(model)),
        **_tables(model),
    }
    return _MARKER.sub(lambda match: values[match.group(1)], _asset("report.html"))
