"""Subscribers to the dispatcher's events: the JSON-lines event log and the progress bar."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import attrs
import trio

from .dispatch import Dispatcher, Event

__all__ = ["EventLog", "ProgressBar", "event_record"]


def event_record(event: Event) -> dict[str, Any]:
    """One event as a JSON-ready dict with its type under ``"event"``."""
    record: dict[str, Any] = {"event": type(event).__name__}
    record.update(attrs.asdict(event, recurse=False))
    return {
        k: list(v) if isinstance(v, tuple) else attrs.asdict(v) if attrs.has(type(v)) else v
        for k, v in record.items()
    }


@attrs.define(eq=False)
class EventLog:
    """Writes every event as one JSON line to ``path`` (truncated at start)."""

    path: Path

    async def serve(
        self,
        dispatcher: Dispatcher,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Subscribe and write until cancelled; whatever is pending is written on the way out."""
        send, receive = trio.open_memory_channel[Event](math.inf)
        unsubscribe = dispatcher.events.subscribe(send.send_nowait)
        with self.path.open("w", encoding="utf-8") as out:
            task_status.started()
            try:
                async for event in receive:
                    out.write(json.dumps(event_record(event)) + "\n")
                    while True:
                        try:
                            more = receive.receive_nowait()
                        except trio.WouldBlock:
                            break
                        out.write(json.dumps(event_record(more)) + "\n")
                    out.flush()
            finally:
                unsubscribe()
                while True:
                    try:
                        out.write(json.dumps(event_record(receive.receive_nowait())) + "\n")
                    except trio.WouldBlock:
                        break


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
