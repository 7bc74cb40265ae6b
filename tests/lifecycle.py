"""The life of a task as events, as a small state machine (see grainlike/dispatch/_events.py).

Shared by the tests that check event logs: ``check_lifecycles(events)`` raises
``AssertionError`` naming the first task whose events break it.
"""

from __future__ import annotations

from collections.abc import Iterable

from grainlike.dispatch import Event

#: (state, event) -> next state.  A task begins "new" and must end "done".
TRANSITIONS: dict[tuple[str, str], str] = {
    ("new", "TaskSubmitted"): "queued",
    ("queued", "TaskPlaced"): "placed",
    ("queued", "TaskFailed"): "done",  # unsatisfiable, or no worker for too long
    ("queued", "TaskCancelled"): "done",
    ("placed", "TaskStarted"): "started",
    ("placed", "TaskRetried"): "queued",  # its worker was lost before it began
    ("placed", "TaskCancelled"): "done",
    ("placed", "TaskFailed"): "done",
    ("started", "TaskFinished"): "done",
    ("started", "TaskFailed"): "done",
    ("started", "TaskCancelled"): "done",
    ("started", "TaskRetried"): "queued",
}


def check_lifecycles(events: Iterable[Event]) -> dict[int, list[str]]:
    """Check every task's events against ``TRANSITIONS``; return each task's event names."""
    states: dict[int, str] = {}
    seen: dict[int, list[str]] = {}
    for event in events:
        task_id = getattr(event, "task_id", None)
        if task_id is None:
            continue  # a worker's event
        name = type(event).__name__
        seen.setdefault(task_id, []).append(name)
        state = states.get(task_id, "new")
        if name == "TaskFinished" and getattr(event, "worker", None) == "journal":
            following = "done" if state == "queued" else None  # recalled, never ran
        else:
            following = TRANSITIONS.get((state, name))
        assert following is not None, f"task {task_id}: {name} after {seen[task_id][:-1]}"
        states[task_id] = following
    unfinished = {task: seen[task] for task, state in states.items() if state != "done"}
    assert unfinished == {}, f"tasks without a terminal event: {unfinished}"
    return seen
