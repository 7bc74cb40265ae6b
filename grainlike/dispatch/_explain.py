"""Why a task is where it is: the words of ``gl.explain``, ``grainlike status`` and
``UnsatisfiableError``.

Read-only functions over the dispatcher's records; they change when the wording changes, not
when the task's life does, so they live apart from the dispatcher (as HyperQueue's tako keeps
``explain.rs`` beside its reactor).
"""

from __future__ import annotations

from collections.abc import Mapping

from .._exceptions import UnsatisfiableError
from ..resource import Cores, Resources
from ..resource._units import format_seconds
from ..wire import Call
from ._deps import dependencies
from ._placement import Reservation, WorkerIndex
from ._pools import Pools
from ._records import Task, TaskState, WorkerState, runs_now

__all__ = ["explain", "explain_unfit", "unsatisfiable_error"]


def _in_order(workers: WorkerIndex) -> list[WorkerState]:
    return sorted(workers, key=lambda w: w.order)


def _totals(worker: WorkerState) -> str:
    return worker.capacity.describe(total=True)


def explain_unfit(request: Resources, workers: WorkerIndex, pools: Pools) -> str:
    """Why no worker could ever satisfy ``request``, naming the kinds that fall short."""
    if not len(workers):
        return f"{request}: no worker is connected"
    lines = [f"{request}: no worker could ever satisfy this request"]
    worker_part, pool_part = pools.split(request)
    for worker in _in_order(workers):
        short = worker.capacity.shortfall(worker_part, total=True)
        fits = f"short of {', '.join(short)}" if short else "could fit it"
        lines.append(f"  {worker.id}: {fits} (has {_totals(worker)})")
    if pools:
        short = pools.shortfall(pool_part, total=True) if pool_part is not None else ()
        pools_short = f", short of {', '.join(short)}" if short else ""
        lines.append(f"  pools: {pools}{pools_short}")
    return "\n".join(lines)


def unsatisfiable_error(
    effective: Resources, pool_part: Resources | None, workers: WorkerIndex, pools: Pools
) -> UnsatisfiableError:
    """The error for tasks of a shape that no worker (or pool) could ever hold."""
    request = effective if pool_part is None else effective & pool_part
    worker_short = [w.capacity.shortfall(effective, total=True) for w in workers]
    labels: set[str] = set()
    if () not in worker_short:  # no worker could take even the worker part
        labels.update(label for short in worker_short for label in short)
    if pool_part is not None:
        labels.update(pools.shortfall(pool_part, total=True))
    return UnsatisfiableError(explain_unfit(request, workers, pools), tuple(sorted(labels)))


def explain(
    task: Task,
    workers: WorkerIndex,
    pools: Pools,
    reservation: Reservation | None,
    now: float,
    *,
    no_worker_since: float | None = None,
    last_departure: str = "",
    tasks: Mapping[int, Task] | None = None,
) -> str:
    """Why ``task`` waits, or where it runs (for ``gl.explain`` and ``grainlike status``)."""
    who = f"task {task.id} ({task.name})"
    if task.result is not None and task.state is not TaskState.RUNNING:
        return f"{who} is done"
    if task.state is TaskState.WAITING:
        assert isinstance(task.work, Call)
        inputs = [dependency for dependency in dependencies(task.work) if dependency.result is None]
        named = ", ".join(f"task {d.id} ({d.name}, {d.state.value})" for d in inputs[:3])
        more = f" and {len(inputs) - 3} more" if len(inputs) > 3 else ""
        return f"{who} waits for its inputs: {named}{more}"
    if task.state is TaskState.RUNNING:
        if not runs_now(task):
            return (
                f"{who} waits on {task.worker} behind task {task.after}, to run next with "
                f"{task.allocation} (pipelined)"
            )
        ending = " (cancelled; its worker is stopping it)" if task.result is not None else ""
        if task.released or task.allocation is None:
            return f"{who} runs on {task.worker}, its allocation given back (gl.released()){ending}"
        return f"{who} runs on {task.worker} with {task.allocation}{ending}"
    if not len(workers):
        since = []
        if no_worker_since is not None:
            since.append(f"for {format_seconds(now - no_worker_since)}")
        if last_departure:
            since.append(f"the last one, {last_departure}")
        return f"{who} waits: no worker is connected" + (f" ({'; '.join(since)})" if since else "")
    worker_part, pool_part = pools.split(task.request)
    reasons = []
    held = _held_by_ancestor(task, worker_part, workers, tasks or {})
    if held is not None:
        reasons.append(held)
    if pool_part is not None:
        pools_short = pools.shortfall(pool_part)
        if pools_short:
            reasons.append(f"the pools are in use (free too little {', '.join(pools_short)})")
    for worker in _in_order(workers):
        short = worker.capacity.shortfall(worker_part, total=True)
        if short:
            reasons.append(f"{worker.id} can never fit it (short of {', '.join(short)})")
        elif not worker.accepting:
            why = f": {worker.leaving}" if worker.leaving else ""
            reasons.append(f"{worker.id} is draining{why}")
        elif now_short := worker.capacity.shortfall(worker_part):
            reasons.append(f"{worker.id} is busy (free too little {', '.join(now_short)})")
        elif reservation is not None and reservation.worker is worker:
            reasons.append(f"{worker.id} is reserved for task {reservation.task.id}")
    head = f"task {task.id} ({task.name}, {task.request}) has waited "
    head += format_seconds(now - task.submitted)
    return head + ": " + "; ".join(reasons) if reasons else head


def _held_by_ancestor(
    task: Task, worker_part: Resources, workers: WorkerIndex, tasks: Mapping[int, Task]
) -> str | None:
    """Why ``task`` waits, when the cores it needs are held by a task that waits for it."""
    cores = worker_part.get(Cores)
    need = cores.N if cores is not None else 0
    ancestor, depth = tasks.get(task.parent) if task.parent is not None else None, 1
    while ancestor is not None and depth < 64:
        state = workers.get(ancestor.worker or "")
        held = ancestor.allocation.get(Cores) if ancestor.allocation is not None else None
        if (
            state is not None
            and held is not None
            and not state.capacity.shortfall(worker_part, total=True)
            and state.free_cores < need <= state.free_cores + held.N
        ):
            who = "its parent" if depth == 1 else "its ancestor"
            return (
                f"the cores it needs on {state.id} are held by {who} task {ancestor.id} "
                f"({ancestor.name}), which waits for it: wrap that wait in "
                "`async with gl.released():`"
            )
        ancestor = tasks.get(ancestor.parent) if ancestor.parent is not None else None
        depth += 1
    return None
