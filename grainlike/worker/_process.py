"""``run_process``: a subprocess bound to the running task's allocation, and measured.

The process is started with ``trio.lowlevel.open_process`` and reaped here with ``os.wait4``,
whose resource usage is the exact CPU time of the process and of every descendant it (or they)
reaped.  While it runs, a sampler reads the resident memory of its whole tree from ``/proc``,
at once, then after 20, 50, 100 and 200 ms, then every quarter second: a peak of a second or
more is seen.  The kernel's own peak of the largest single process of the tree (``wait4``'s
``ru_maxrss``) counts too where it says more than the worker's own peak: below that it may be
the copy of the worker that the process was before its ``exec``.
What a task's processes used is added to its ``UsageMeter``, which its worker reports.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import trio

from .._exceptions import MemoryLimitError
from ..resource import GPU, Cores, Memory, Resources
from ._context import UsageMeter, current_task_context
from ._enforce import high_water, kill_process_group, kill_tree, tree_usage
from ._keeper import forget_group, watch_group
from ._topology import pinnable

__all__ = ["ALLOCATION_VARIABLES", "allocation_environment", "run_process"]

#: How long a cancelled child gets between SIGTERM and SIGKILL.
TERMINATE_GRACE = 2.0
#: Seconds between two samples of a process tree once it has run a while; the first samples
#: come sooner, so that short processes are seen too.
SAMPLE_INTERVAL: Final = 0.25
_FIRST_SAMPLES: Final = (0.0, 0.02, 0.03, 0.05, 0.1)

#: The environment variables that ``allocation_environment`` sets from an allocation.
ALLOCATION_VARIABLES = (
    "CUDA_VISIBLE_DEVICES",
    "CUDA_DEVICE_ORDER",
    "OMP_NUM_THREADS",
    "GRAINLIKE_CORES",
    "GRAINLIKE_ALLOCATION",
)


def allocation_environment(
    allocation: Resources, base: Mapping[str, str] | None = None, scratch: Path | None = None
) -> dict[str, str]:
    """The environment a task's child sees: GPUs, thread count, the allocation itself, and
    ``TMPDIR``, the task's scratch directory, when it has one."""
    env = dict(os.environ if base is None else base)
    if scratch is not None:
        env["TMPDIR"] = str(scratch)
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


async def _reap(process: trio.Process) -> resource.struct_rusage | None:
    """Wait for ``process`` to end and reap it with ``wait4``: its resource usage.

    ``None`` when something else reaped it (a ``deliver_cancel`` that awaits
    ``process.wait()``), or where Linux has no pidfds: trio then reaps it.
    """
    # trio's Popen: its return code is set here, so that trio knows the process ended.
    popen: Any = getattr(process, "_proc", None)
    try:
        pidfd = os.pidfd_open(process.pid) if popen is not None else None
    except (AttributeError, OSError):
        pidfd = None
    if pidfd is None:
        await process.wait()
        return None
    try:
        await trio.lowlevel.wait_readable(pidfd)
    finally:
        trio.lowlevel.notify_closing(pidfd)
        os.close(pidfd)
    if popen.returncode is not None:  # reaped by trio meanwhile: its pid may be reused now
        return None
    _, status, usage = os.wait4(process.pid, 0)
    popen.returncode = os.waitstatus_to_exitcode(status)
    process.poll()  # trio closes its own pidfd once it sees the return code
    return usage


async def _sample(
    pid: int, limit: int | None, meter: UsageMeter | None, seen: list[float], over: list[int]
) -> None:
    """Sample the tree under ``pid`` until cancelled; kill it once it exceeds ``limit`` bytes.

    ``seen`` holds the tree's CPU seconds at the last sample, for a process reaped by others.
    """
    samples = 0
    while True:
        if samples < len(_FIRST_SAMPLES):
            await trio.sleep(_FIRST_SAMPLES[samples])
        else:
            await trio.sleep(SAMPLE_INTERVAL)
        samples += 1
        rss, cpu = tree_usage(pid)
        seen[0] = max(seen[0], cpu)
        if meter is not None:
            meter.sampled(pid, rss)
        if limit is not None and rss > limit and not over:
            over.append(rss)
            kill_tree(pid)


async def _feed(stream: trio.abc.SendStream, data: bytes | bytearray | memoryview) -> None:
    # A process that closes its stdin early has read all it wants.
    async with stream:
        with contextlib.suppress(trio.BrokenResourceError):
            await stream.send_all(data)


async def _read(stream: trio.abc.ReceiveStream, chunks: list[bytes | bytearray]) -> None:
    async with stream:
        async for chunk in stream:
            chunks.append(chunk)


async def run_process(
    command: str | Sequence[str], **options: Any
) -> subprocess.CompletedProcess[bytes]:
    """Run a subprocess bound to the running task's allocation; return its ``CompletedProcess``.

    The child's CPU affinity is the task's cores, ``CUDA_VISIBLE_DEVICES`` its GPUs (empty when
    none), ``OMP_NUM_THREADS`` its core count, and ``TMPDIR`` the task's scratch directory when
    it has ``Disk``.  It leads a process group of its own, which is terminated (SIGTERM, then
    SIGKILL) when the task is cancelled or exceeds its hard limit, and killed when the child
    ends, so that nothing it left in its group outlives it; if the worker itself is killed,
    the worker's keeper process kills the group.
    When the worker enforces memory, a tree whose resident memory exceeds the task's ``Memory``
    is killed and ``MemoryLimitError`` raised.  The tree's CPU time and peak resident memory
    count towards the task's measured usage.  Keywords are those of ``trio.run_process``
    (``stdin`` bytes, ``capture_stdout``, ``capture_stderr``, ``check``, ``deliver_cancel``
    and those of ``trio.lowlevel.open_process``), except ``task_status``.
    """
    context = current_task_context()
    allocation = context.allocation
    options["env"] = allocation_environment(allocation, options.get("env"), context.scratch)
    options["start_new_session"] = True
    deliver_cancel = options.pop("deliver_cancel", None) or _terminate_group
    check = options.pop("check", True)
    stdin = options.pop("stdin", None)
    capture = {"stdout": options.pop("capture_stdout", False)}
    capture["stderr"] = options.pop("capture_stderr", False)
    if isinstance(stdin, str):
        raise UnicodeError("process stdin must be bytes, not str")
    if subprocess.PIPE in (stdin, options.get("stdout"), options.get("stderr")):
        raise ValueError(
            "gl.run_process: nothing here reads or writes a subprocess.PIPE; pass stdin as "
            "bytes, and capture_stdout=True or capture_stderr=True"
        )
    given = stdin if isinstance(stdin, bytes | bytearray | memoryview) else None
    options["stdin"] = subprocess.PIPE if given is not None else stdin
    for stream, wanted in capture.items():
        if wanted:
            if stream in options:
                raise ValueError(f"can't specify both {stream} and capture_{stream}")
            options[stream] = subprocess.PIPE
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
    meter = context.meter()
    chunks: dict[str, list[bytes | bytearray]] = {"stdout": [], "stderr": []}
    over: list[int] = []
    seen = [0.0]
    process = await trio.lowlevel.open_process(command, **options)
    watch_group(process.pid)  # killed by the keeper if this worker dies first
    usage: resource.struct_rusage | None = None
    try:
        async with trio.open_nursery() as nursery:
            if given is not None:
                assert process.stdin is not None
                nursery.start_soon(_feed, process.stdin, given)
            for stream, target in (("stdout", process.stdout), ("stderr", process.stderr)):
                if capture[stream]:
                    assert target is not None
                    nursery.start_soon(_read, target, chunks[stream])
            sampling = trio.CancelScope()
            if limit is not None or meter is not None:

                async def sample() -> None:
                    with sampling:
                        await _sample(process.pid, limit, meter, seen, over)

                nursery.start_soon(sample)
            try:
                usage = await _reap(process)
            except BaseException:
                # As trio.run_process: deliver the cancellation, and still wait for the end.
                with trio.CancelScope(shield=True):
                    killer = trio.CancelScope(shield=True)

                    async def kill() -> None:
                        with killer:
                            await deliver_cancel(process)

                    nursery.start_soon(kill)
                    usage = await _reap(process)
                    killer.cancel()
                raise
            finally:
                sampling.cancel()
                # However the leader ended, what it left in its group goes too: a grandchild
                # that outlives it would run on cores already given back, and keep the output
                # pipes open.
                kill_process_group(process.pid)
                forget_group(process.pid)
    finally:
        if meter is not None:
            cpu, peak = seen[0], 0
            if usage is not None:
                cpu = usage.ru_utime + usage.ru_stime
                peak = usage.ru_maxrss * 1024 if usage.ru_maxrss * 1024 > high_water() else 0
            meter.ended(process.pid, cpu, peak)
    if over:
        assert memory is not None
        raise MemoryLimitError(
            f"{command!r} used {over[0] / 2**30:.2f}G resident memory, more than its "
            f"{memory.M:g}G (Memory request); its process tree was killed"
        )
    returncode = process.returncode
    assert returncode is not None
    out = b"".join(chunks["stdout"]) if capture["stdout"] else None
    err = b"".join(chunks["stderr"]) if capture["stderr"] else None
    if check and returncode:
        raise subprocess.CalledProcessError(returncode, process.args, out, err)
    return subprocess.CompletedProcess(process.args, returncode, out, err)
