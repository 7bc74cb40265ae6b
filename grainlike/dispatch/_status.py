"""What ``grainlike status`` shows: workers with free/total per kind, tasks, and why tasks wait."""

from __future__ import annotations

import math
from typing import Any

import attrs

from ._dispatcher import Dispatcher

__all__ = ["StatusSnapshot", "status_report"]


@attrs.frozen
class StatusSnapshot:
    """The dispatcher's state for people (``text``) and tools (``data``, JSON-ready)."""

    text: str
    data: dict[str, Any]


def _json_number(value: float) -> float | None:
    """JSON has no infinity: an unlimited amount (a walltime of ``inf``) is ``null``."""
    return None if math.isinf(value) else value


def status_report(dispatcher: Dispatcher, pending_limit: int = 5) -> StatusSnapshot:
    """Snapshot the dispatcher: workers, queued/running counts, the oldest pending tasks."""
    workers = []
    lines = []
    for worker in dispatcher.worker_states():
        stat = worker.capacity.stat()
        pipelined = dispatcher.pipelined(worker)
        running = len(worker.running) - pipelined
        workers.append(
            {
                "id": worker.id,
                "accepting": worker.accepting,
                "running": running,
                "pipelined": pipelined,
                "leaving": worker.leaving or None,
                "resources": {
                    label: [_json_number(free), _json_number(total)]
                    for label, (free, total) in stat.items()
                },
            }
        )
        kinds = worker.capacity.describe()
        state = ""
        if not worker.accepting:
            state = f"  (draining: {worker.leaving})" if worker.leaving else "  (draining)"
        ahead = f" (+{pipelined} pipelined)" if pipelined else ""
        lines.append(f"  {worker.id}: {running} running{ahead}  {kinds}{state}")
    pending = [
        {
            "task_id": task.id,
            "name": task.name,
            "request": str(task.request),
            "why": dispatcher.explain(task),
        }
        for task in dispatcher.pending(pending_limit)
    ]
    queued, running, pipelined = dispatcher.queued(), dispatcher.running(), dispatcher.pipelined()
    waiting = dispatcher.waiting()
    ahead = f", {pipelined} pipelined" if pipelined else ""
    inputs = f"{waiting} waiting for inputs, " if waiting else ""
    text = [
        f"workers: {len(workers)}",
        *lines,
        f"tasks: {inputs}{queued} queued, {running} running{ahead}, {dispatcher.completed} done",
    ]
    if pending:
        text.append("oldest pending:")
        text.extend(f"  {item['why']}" for item in pending)
    data = {
        "shapes": [
            {"request": str(request), "queued": count}
            for request, count in dispatcher.queued_requests()
        ],
        "workers": workers,
        "waiting": waiting,
        "queued": queued,
        "running": running,
        "pipelined": pipelined,
        "done": dispatcher.completed,
        "pending": pending,
    }
    return StatusSnapshot("\n".join(text), data)
