"""Subscribers to the dispatcher's events: the JSON-lines event log and the progress bar."""

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

from .dispatch import Dispatcher, Event

__all__ = ["EventLog", "ProgressBar", "event_record"]

log = logging.getLogger("grainlike.events")


def event_record(event: Event) -> dict[str, Any]:
    """One event as a JSON-ready dict with its type under ``"event"``."""
    record: dict[str, Any] = {"event": type(event).__name__}
    record.update(attrs.asdict(event, recurse=False))
    return {k: list(v) if isinstance(v, tuple) else v for k, v in record.items()}


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
class ProgressBar:
    """A rich progress bar of tasks done / running / queued, shown only on a terminal.

    It reads the dispatcher's counters a few times a second; it never slows the dispatcher.
    """

    async def serve(
        self,
        dispatcher: Dispatcher,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Redraw until cancelled (or just wait, when stderr is not a terminal)."""
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        console = Console(file=sys.stderr)
        task_status.started()
        if not console.is_terminal:
            await trio.sleep_forever()
        columns = (
            TextColumn("[bold]tasks"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
        )
        with Progress(*columns, console=console, transient=True) as progress:
            bar = progress.add_task("tasks", total=0, detail="")
            while True:
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
                await trio.sleep(0.2)
