"""``run_process``: a subprocess bound to the running task's allocation."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any

import trio

from .._exceptions import MemoryLimitError
from ..resource import GPU, Cores, Memory, Resources
from ._context import current_task_context
from ._enforce import kill_process_group, watch_memory
from ._keeper import forget_group, watch_group
from ._topology import pinnable

__all__ = ["ALLOCATION_VARIABLES", "allocation_environment", "run_process"]

#: How long a cancelled child gets between SIGTERM and SIGKILL.
TERMINATE_GRACE = 2.0

#: The environment variables that ``allocation_environment`` sets from an allocation.
ALLOCATION_VARIABLES = (
    "CUDA_VISIBLE_DEVICES",
    "CUDA_DEVICE_ORDER",
    "OMP_NUM_THREADS",
    "GRAINLIKE_CORES",
    "GRAINLIKE_ALLOCATION",
)


def allocation_environment(
    allocation: Resources, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment a task's child sees: GPUs, thread count, and the allocation itself."""
    env = dict(os.environ if base is None else base)
    gpus = allocation.get(GPU)
    env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in gpus.ids) if gpus is not None else ""
    # GPU IDs are NVML indices, which follow PCI bus order; CUDA's default order differs.
    env.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    cores = allocation.get(Cores)
    if cores is not None:
        env["OMP_NUM_THREADS"] = str(cores.N)
        env["GRAINLIKE_CORES"] = ",".join(str(c) for c in cores.c)
    env["GRAINLIKE_ALLOCATION"] = str(allocation)
    return env


async def _terminate_group(process: trio.Process) -> None:
    kill_process_group(process.pid, signal.SIGTERM)
    try:
        with trio.move_on_after(TERMINATE_GRACE):
            await process.wait()
    finally:
        # Always, even when the leader exited in time (trio then cancels this function): the
        # rest of its group may have ignored SIGTERM, and the whole group must go.
        kill_process_group(process.pid, signal.SIGKILL)


async def run_process(
    command: str | Sequence[str], **options: Any
) -> subprocess.CompletedProcess[bytes]:
    """Run a subprocess bound to the running task's allocation; return its ``CompletedProcess``.

    The child's CPU affinity is the task's cores, ``CUDA_VISIBLE_DEVICES`` its GPUs (empty when
    none) and ``OMP_NUM_THREADS`` its core count.  It leads a process group of its own, which is
    terminated (SIGTERM, then SIGKILL) when the task is cancelled or exceeds its hard limit,
    and killed when the child ends, so that nothing it left in its group outlives it; if the
    worker itself is killed, the worker's keeper process kills the group.
    When the worker enforces memory, a tree whose resident memory exceeds the task's ``Memory``
    is killed and ``MemoryLimitError`` raised.  Keywords are those of ``trio.run_process``.
    """
    context = current_task_context()
    allocation = context.allocation
    options["env"] = allocation_environment(allocation, options.get("env"))
    options["start_new_session"] = True
    options.setdefault("deliver_cancel", _terminate_group)
    cores = allocation.get(Cores)
    if cores is not None:
        core_ids = pinnable(cores.c)
        caller_setup = options.pop("preexec_fn", None)

        def bind_to_cores() -> None:
            os.sched_setaffinity(0, core_ids)
            if caller_setup is not None:
                caller_setup()

        options["preexec_fn"] = bind_to_cores
    memory = allocation.get(Memory)
    limit = memory.kib * 1024 if context.enforce_memory and memory is not None else None
    check = options.pop("check", True)
    finished: list[subprocess.CompletedProcess[bytes]] = []
    exceeded: list[int] = []
    async with trio.open_nursery() as nursery:

        async def run_child(task_status: trio.TaskStatus[trio.Process]) -> None:
            finished.append(
                await trio.run_process(command, check=False, task_status=task_status, **options)
            )
            nursery.cancel_scope.cancel()  # the child ended: stop watching

        process: trio.Process = await nursery.start(run_child)
        watch_group(process.pid)  # killed by the keeper if this worker dies first
        try:
            if limit is None:
                await trio.sleep_forever()
            exceeded.append(await watch_memory(process.pid, limit))
        finally:
            # However the leader ended, what it left in its group goes too: a grandchild that
            # outlives it would run on cores already given back.
            kill_process_group(process.pid)
            forget_group(process.pid)
    if exceeded:
        assert memory is not None
        raise MemoryLimitError(
            f"{command!r} used {exceeded[0] / 2**30:.2f}G resident memory, more than its "
            f"{memory.M:g}G (Memory request); its process tree was killed"
        )
    completed = finished[0]
    if check and completed.returncode:
        raise subprocess.CalledProcessError(
            completed.returncode, completed.args, completed.stdout, completed.stderr
        )
    return completed
