"""Subscribers to the dispatcher's events: the JSON-lines event log, the progress bar and its
summary line."""

from __future__ import annotations

import json
import logging
import math
import os
import stat
import sys
from pathlib import Path
from typing import Any

import attrs
import trio

from ._exceptions import GrainlikeError
from .dispatch import (
    Dispatcher,
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
from .resource import parse_resources

__all__ = ["EventLog", "ProgressBar", "RunTally", "event_record"]

log = logging.getLogger("grainlike.events")


def event_record(event: Event) -> dict[str, Any]:
    """One event as a JSON-ready dict with its type under ``"event"``.

    Tuples become lists and nested values (a ``TaskFinished``'s ``usage``) plain dicts.
    """
    record: dict[str, Any] = {"event": type(event).__name__}
    for name, value in attrs.asdict(event, recurse=False).items():
        if isinstance(value, tuple):
            value = list(value)
        elif attrs.has(type(value)):
            value = attrs.asdict(value)
        record[name] = value
    return record


def _open_private(path: Path) -> int:
    """Open ``path`` for writing, truncated, readable by its owner only."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        info = os.fstat(descriptor)
        # The log names tasks, errors and allocations: an older log that others could read is
        # made private too.  Only a regular file: a path like /dev/stdout is not ours to chmod.
        if stat.S_ISREG(info.st_mode) and info.st_mode & 0o077:
            os.fchmod(descriptor, 0o600)
    except OSError:
        os.close(descriptor)
        raise
    return descriptor


def _write_all(descriptor: int, events: list[Event]) -> None:
    data = "".join(json.dumps(event_record(event)) + "\n" for event in events).encode()
    view = memoryview(data)
    while view:
        view = view[os.write(descriptor, view) :]


def _drain(receive: trio.MemoryReceiveChannel[Event]) -> list[Event]:
    events = []
    while True:
        try:
            events.append(receive.receive_nowait())
        except trio.WouldBlock:
            return events


@attrs.define(eq=False)
class EventLog:
    """Writes every event as one JSON line to ``path`` (truncated at start, mode 0600).

    A log that cannot be written (a full disk, a missing directory) costs the log, not the
    run: one warning names the file and the error, and the log stops listening.
    """

    path: Path

    async def serve(
        self,
        dispatcher: Dispatcher,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Subscribe and write until cancelled; whatever is pending is written on the way out."""
        try:
            descriptor = _open_private(self.path)
        except OSError as error:
            self._give_up(error)
            task_status.started()
            return
        send, receive = trio.open_memory_channel[Event](math.inf)
        unsubscribe = dispatcher.events.subscribe(send.send_nowait)
        task_status.started()
        failed = False
        try:
            async for event in receive:
                _write_all(descriptor, [event, *_drain(receive)])
        except OSError as error:
            failed = True
            self._give_up(error)
        finally:
            # On a failure too: events must not pile up in a channel that nobody reads.
            unsubscribe()
            try:
                if not failed:
                    _write_all(descriptor, _drain(receive))
            except OSError as error:
                self._give_up(error)
            finally:
                os.close(descriptor)

    def _give_up(self, error: OSError) -> None:
        log.warning("event log %s not written: %s; the run goes on without it", self.path, error)


@attrs.define(eq=False)
class RunTally:
    """Counts a run's tasks by how they ended, and the core-seconds their runs held.

    A subscriber: times are ``trio.current_time()`` when each event arrives, and a run's start
    is its worker's measured ``duration`` before its end when there is one (as in the report).
    """

    started: float = attrs.field(factory=trio.current_time)
    submitted: int = 0
    finished: int = 0
    failed: int = 0
    cancelled: int = 0
    retried: int = 0
    core_seconds: float = 0.0
    _runs: dict[int, tuple[float, int]] = attrs.field(factory=dict)
    _workers: dict[str, tuple[float, int]] = attrs.field(factory=dict)
    _offered: float = 0.0

    def __call__(self, event: Event) -> None:
        """Take one event."""
        now = trio.current_time()
        if isinstance(event, TaskSubmitted):
            self.submitted += 1
        elif isinstance(event, TaskPlaced):
            self._runs[event.task_id] = (now, len(event.cores))
        elif isinstance(event, TaskStarted):
            placed = self._runs.get(event.task_id)
            if placed is not None:
                self._runs[event.task_id] = (now, placed[1])
        elif isinstance(event, TaskFinished | TaskFailed | TaskCancelled | TaskRetried):
            duration = getattr(event, "duration", None)
            self._end_run(event.task_id, now, duration)
            if isinstance(event, TaskFinished):
                self.finished += 1
            elif isinstance(event, TaskFailed):
                self.failed += 1
            elif isinstance(event, TaskCancelled):
                self.cancelled += 1
            else:
                self.retried += 1
        elif isinstance(event, WorkerJoined):
            self._workers[event.worker] = (now, _core_count(event.capacity))
        elif isinstance(event, WorkerLost | WorkerDrained):
            joined = self._workers.pop(event.worker, None)
            if joined is not None:
                self._offered += joined[1] * (now - joined[0])

    def _end_run(self, task_id: int, now: float, duration: float | None) -> None:
        run = self._runs.pop(task_id, None)
        if run is not None:
            began = run[0] if duration is None else max(run[0], now - duration)
            self.core_seconds += run[1] * max(now - began, 0.0)

    def summary(self) -> str:
        """``grainlike: 10 tasks: 9 done, 1 failed, 2 retried in 12.3 s; cores 87 % busy``."""
        now = trio.current_time()
        wall = now - self.started
        offered = self._offered + sum(n * (now - t) for t, n in self._workers.values())
        ended = [f"{self.finished} done", f"{self.failed} failed"]
        if self.cancelled:
            ended.append(f"{self.cancelled} cancelled")
        ended.append(f"{self.retried} retried")
        line = f"grainlike: {self.submitted} tasks: {', '.join(ended)} in {wall:.1f} s"
        if offered > 0:
            line += f"; cores {100 * min(self.core_seconds / offered, 1.0):.0f} % busy"
        return line


def _core_count(capacity: str) -> int:
    try:
        stat = parse_resources(capacity, capacity=True).stat()
    except (GrainlikeError, ValueError):  # a custom kind this process does not know
        return 0
    return int(stat.get("cores", (0.0, 0.0))[1])


@attrs.define(eq=False)
class ProgressBar:
    """A rich progress bar of tasks done / running / queued, and a summary line at the end.

    The bar is drawn only on a terminal, and ends on its final frame; the summary line (tasks
    done, failed, retried, wall time, how busy the cores were) is printed to stderr when the
    run ends, on a terminal or not.  It reads the dispatcher's counters a few times a second;
    it never slows the dispatcher.
    """

    async def serve(
        self,
        dispatcher: Dispatcher,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Redraw until cancelled (or just count, when stderr is not a terminal)."""
        from rich.console import Console

        console = Console(file=sys.stderr)
        tally = RunTally()
        unsubscribe = dispatcher.events.subscribe(tally)
        task_status.started()
        try:
            if console.is_terminal:
                await self._draw(dispatcher, console)
            else:
                await trio.sleep_forever()
        finally:
            unsubscribe()
            console.print(tally.summary(), highlight=False, markup=False)

    async def _draw(self, dispatcher: Dispatcher, console: Any) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        columns = (
            TextColumn("[bold]tasks"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
        )
        with Progress(*columns, console=console, transient=False) as progress:
            bar = progress.add_task("tasks", total=0, detail="")

            def update() -> None:
                queued, running, done = (
                    dispatcher.queued(),
                    dispatcher.running(),
                    dispatcher.completed,
                )
                progress.update(
                    bar,
                    total=queued + running + done,
                    completed=done,
                    detail=f"running {running}  queued {queued}",
                )

            try:
                while True:
                    update()
                    await trio.sleep(0.2)
            finally:
                # The run ends between two redraws: draw what it ended with, and leave it shown.
                update()
                progress.refresh()
