"""``grainlike journal PATH``: a journal's summary as rich tables on a terminal, else as text."""

from __future__ import annotations

import datetime
from typing import IO

from .dispatch import JournalSummary
from .dispatch._journal_read import STATES, RunSummary

__all__ = ["render_summary"]

#: At most this many failed tasks are listed (``--json`` lists them all).
SHOWN_FAILURES = 20


def _when(seconds: float | None, *, short: bool = False) -> str:
    if seconds is None:
        return "-"
    moment = datetime.datetime.fromtimestamp(seconds)
    return moment.strftime("%H:%M:%S" if short else "%Y-%m-%d %H:%M:%S")


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}s"


def _states(states: dict[str, int]) -> str:
    return ", ".join(f"{states[state]} {state}" for state in STATES)


def _run_status(run: RunSummary) -> str:
    if run.ended is not None:
        return f"ended {_when(run.ended)}, {run.recalled or 0} recalled"
    return "did not end (still running, or killed)"


def render_summary(summary: JournalSummary, file: IO[str], *, terminal: bool) -> None:
    """Write ``summary`` to ``file``: rich tables when ``terminal``, else plain lines."""
    if terminal:
        _render_rich(summary, file)
        return
    total = sum(summary.states.values())
    lines = [
        f"journal {summary.path} (schema {summary.version}): {total} tasks: "
        f"{_states(summary.states)}",
        "runs:",
    ]
    for run in summary.runs:
        rerun = ", --rerun" if run.rerun else ""
        lines.append(
            f"  run {run.run} on {run.host} (pid {run.pid}{rerun}), started "
            f"{_when(run.started)}, {_run_status(run)}: {_states(run.states)}"
        )
    if summary.failed:
        lines.append(f"failed ({len(summary.failed)}):")
        for failed in summary.failed[:SHOWN_FAILURES]:
            message = failed.error.splitlines()[0] if failed.error else ""
            lines.append(
                f"  {failed.name} (run {failed.run}, task {failed.task}, attempt "
                f"{failed.attempts}): {failed.error_type}: {message}"
            )
        if len(summary.failed) > SHOWN_FAILURES:
            lines.append(f"  ... and {len(summary.failed) - SHOWN_FAILURES} more (see --json)")
    lines.append("functions:")
    for function in summary.functions:
        lines.append(
            f"  {function.function}: {function.calls} calls, {function.runs} runs, "
            f"{function.succeeded} succeeded, {function.failed} failed, mean "
            f"{_seconds(function.mean_duration)}, max {_seconds(function.max_duration)}"
        )
    file.write("\n".join(lines) + "\n")


def _render_rich(summary: JournalSummary, file: IO[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(file=file)
    total = sum(summary.states.values())
    states = Table(title=f"{summary.path}: {total} tasks (schema {summary.version})")
    for state in STATES:
        states.add_column(state, justify="right")
    states.add_row(*(str(summary.states[state]) for state in STATES))
    console.print(states)
    runs = Table(title="runs")
    for column in ("run", "started", "ended", "recalled", *STATES):
        runs.add_column(column, justify="right")
    for run in summary.runs:
        runs.add_row(
            str(run.run) + (" rerun" if run.rerun else ""),
            _when(run.started, short=True),
            "yes" if run.ended is not None else "no",
            str(run.recalled) if run.recalled is not None else "-",
            *(str(run.states[state]) for state in STATES),
        )
    console.print(runs)
    if summary.failed:
        failed = Table(title=f"failed tasks ({len(summary.failed)})")
        for column in ("task", "run", "attempt", "error"):
            failed.add_column(column)
        for task in summary.failed[:SHOWN_FAILURES]:
            message = task.error.splitlines()[0] if task.error else ""
            failed.add_row(
                f"{task.name} ({task.task})",
                str(task.run),
                str(task.attempts),
                f"{task.error_type}: {message}",
            )
        console.print(failed)
    functions = Table(title="functions")
    for column in ("function", "calls", "runs", "succeeded", "failed", "mean", "max"):
        functions.add_column(column, justify="left" if column == "function" else "right")
    for function in summary.functions:
        functions.add_row(
            function.function,
            str(function.calls),
            str(function.runs),
            str(function.succeeded),
            str(function.failed),
            _seconds(function.mean_duration),
            _seconds(function.max_duration),
        )
    console.print(functions)
