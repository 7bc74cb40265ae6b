"""``grainlike up`` / ``down``: worker jobs in the batch system, and simple autoscaling."""

from __future__ import annotations

import logging
import math
import ssl
from pathlib import Path
from typing import Any

import trio

from ._client import query_status, quit_workers
from ._exceptions import AuthenticationError, GrainlikeError
from .batch import (
    Profile,
    cancel,
    check_key_file,
    forget_jobs,
    job_states,
    record_jobs,
    recorded_jobs,
    render_script,
    submit,
)
from .resource import GPU, Cores, Memory, Resources, parse_resources, with_overrides

__all__ = ["autoscale", "jobs_wanted", "profile_capacity", "start_jobs", "stop_jobs"]

log = logging.getLogger("grainlike.up")

#: Job states in which a job still holds (or will hold) a worker.
ACTIVE_STATES = frozenset({"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED"})

#: How often, a second apart, a dispatcher that stopped answering is asked again before the
#: autoscaler takes it to have ended (a restart of the same address within that time is not).
GONE_AFTER = 3

#: What a dispatcher that went away (or is going) makes a status query raise.
_GONE_ERRORS = (GrainlikeError, OSError, trio.BrokenResourceError, trio.EndOfChannel)


def profile_capacity(profile: Profile) -> Resources:
    """What one worker job of ``profile`` will offer (its ``--resources`` applied)."""
    kinds: list[Cores | Memory | GPU] = [Cores(profile.cores)]
    if profile.memory is not None:
        kinds.append(profile.memory)
    if profile.gpus:
        kinds.append(GPU(profile.gpus))
    capacity = Resources(*kinds)
    args = list(profile.worker_args)
    if "--resources" in args and args.index("--resources") + 1 < len(args):
        capacity = with_overrides(capacity, args[args.index("--resources") + 1])
    return capacity


def start_jobs(profile: Profile, dispatcher: str, key_file: str | Path, count: int) -> list[str]:
    """Submit ``count`` worker jobs and record them for ``grainlike down``; returns job ids."""
    if count < 1:
        raise GrainlikeError(f"-n {count}: start at least one worker job")
    script = render_script(profile, dispatcher=dispatcher, key_file=str(check_key_file(key_file)))
    ids = [submit(script, profile.system) for _ in range(count)]
    record_jobs(dispatcher, profile.system, ids)
    return ids


def stop_jobs(
    dispatcher: str,
    key: bytes | None,
    *,
    drain_timeout: float = 30.0,
    tls: ssl.SSLContext | None = None,
) -> list[str]:
    """Drain the recorded workers of ``dispatcher`` (when it answers), then cancel their jobs."""
    jobs = recorded_jobs(dispatcher)
    if not jobs:
        return []
    if key is not None:
        try:
            ids = [job.job_id for job in jobs]
            trio.run(_drain_and_wait, dispatcher, key, ids, drain_timeout, tls)
        except (OSError, GrainlikeError, trio.BrokenResourceError) as error:
            log.warning("could not drain through %s (%s): cancelling the jobs", dispatcher, error)
    by_system: dict[str, list[str]] = {}
    for job in jobs:
        by_system.setdefault(job.system, []).append(job.job_id)
    for system, ids in by_system.items():
        cancel(ids, system)  # type: ignore[arg-type]
    forget_jobs(dispatcher, [job.job_id for job in jobs])
    return [job.job_id for job in jobs]


async def _drain_and_wait(
    dispatcher: str, key: bytes, job_ids: list[str], timeout: float, tls: ssl.SSLContext | None
) -> None:
    suffixes = tuple(f"-{job_id}" for job_id in job_ids)
    with trio.move_on_after(timeout):
        for job_id in job_ids:
            await quit_workers(dispatcher, key, f"*-{job_id}", tls)
        while True:
            report = await query_status(dispatcher, key, tls)
            if not any(w["id"].endswith(suffixes) for w in report.data["workers"]):
                return
            await trio.sleep(0.5)


def jobs_wanted(
    shapes: list[dict[str, object]], capacity: Resources, minimum: int, maximum: int
) -> int:
    """How many worker jobs the queue asks for: 0 when nothing queued fits a profile worker,
    else enough for the queued core demand, kept within [minimum, maximum]."""
    demand_cores = 0
    fitting = 0
    for shape in shapes:
        request = parse_resources(str(shape["request"]))
        if capacity.shortfall(request, total=True):
            continue
        count = int(shape["queued"])  # type: ignore[call-overload]
        fitting += count
        cores = request.get(Cores)
        demand_cores += count * (cores.N if cores is not None else 1)
    if not fitting:
        return 0
    per_worker = max(1, capacity[Cores].N)
    return max(minimum, min(maximum, math.ceil(demand_cores / per_worker)))


async def _look(dispatcher: str, key: bytes, tls: ssl.SSLContext | None) -> dict[str, Any] | None:
    """The dispatcher's status, or ``None`` once it has not answered ``GONE_AFTER`` times."""
    for attempt in range(GONE_AFTER):
        try:
            return (await query_status(dispatcher, key, tls)).data
        except AuthenticationError:
            raise  # somebody else answers there now, with another key
        except _GONE_ERRORS:
            if attempt + 1 < GONE_AFTER:
                await trio.sleep(1.0)
    return None


async def autoscale(
    profile: Profile,
    dispatcher: str,
    key: bytes,
    key_file: str | Path,
    minimum: int,
    maximum: int,
    *,
    period: float = 10.0,
    rounds: int | None = None,
    tls: ssl.SSLContext | None = None,
) -> str:
    """Keep between ``minimum`` and ``maximum`` worker jobs while queued work fits a worker of
    ``profile``; with nothing queued, drain idle workers and cancel jobs that have not started.

    Runs until the dispatcher has gone, then cancels the jobs it recorded for it and returns
    a line saying so (or until cancelled, or for ``rounds`` rounds, for tests).

    Raises:
        GrainlikeError: when the dispatcher cannot be reached at the first look, or refuses
            the key (``AuthenticationError``).
    """
    if not 0 <= minimum <= maximum or maximum < 1:
        raise GrainlikeError(f"--min {minimum} --max {maximum}: need 0 <= min <= max and max >= 1")
    capacity = profile_capacity(profile)
    try:
        data: dict[str, Any] | None = (await query_status(dispatcher, key, tls)).data
    except (trio.BrokenResourceError, trio.EndOfChannel):
        raise GrainlikeError(f"the dispatcher at {dispatcher} closed the connection") from None
    done = 0
    while rounds is None or done < rounds:
        if data is None:
            return await _dispatcher_gone(dispatcher, profile)
        done += 1
        jobs = [job.job_id for job in recorded_jobs(dispatcher)]
        states = await trio.to_thread.run_sync(job_states, jobs, profile.system) if jobs else {}
        active = [job_id for job_id in jobs if states.get(job_id) in ACTIVE_STATES]
        gone = [job_id for job_id in jobs if job_id not in active]
        if gone:
            forget_jobs(dispatcher, gone)
        wanted = jobs_wanted(data["shapes"], capacity, minimum, maximum)
        if wanted > len(active):
            ids = await trio.to_thread.run_sync(
                start_jobs, profile, dispatcher, key_file, wanted - len(active)
            )
            log.info("queued work fits %d worker(s): submitted %s", wanted, ", ".join(ids))
        elif wanted == 0 and active:
            workers = data["workers"]
            await _scale_to_zero(dispatcher, key, profile, active, states, workers, tls)
        await trio.sleep(period)
        data = await _look(dispatcher, key, tls)
    return f"stopped after {done} round(s)"


async def _dispatcher_gone(dispatcher: str, profile: Profile) -> str:
    # Its workers have no one to work for, and no one to drain them: their jobs only hold
    # allocations now.
    ids = [job.job_id for job in recorded_jobs(dispatcher)]
    if ids:
        await trio.to_thread.run_sync(cancel, ids, profile.system)
        forget_jobs(dispatcher, ids)
    cancelled = f"cancelled worker jobs {', '.join(ids)}" if ids else "no worker job to cancel"
    return f"the dispatcher at {dispatcher} has gone: {cancelled}"


async def _scale_to_zero(
    dispatcher: str,
    key: bytes,
    profile: Profile,
    active: list[str],
    states: dict[str, str],
    workers: list[dict[str, object]],
    tls: ssl.SSLContext | None,
) -> None:
    pending = [job_id for job_id in active if states.get(job_id) == "PENDING"]
    if pending:
        await trio.to_thread.run_sync(cancel, pending, profile.system)
        forget_jobs(dispatcher, pending)
    for worker in workers:
        worker_id = str(worker["id"])
        if worker["running"] == 0 and any(worker_id.endswith(f"-{j}") for j in active):
            await quit_workers(dispatcher, key, worker_id, tls)
            log.info("queue is empty: draining %s", worker_id)
