"""A pool child: runs the sync calls its worker sends, one at a time, in its main thread.

The worker starts it with ``python -c`` (see ``_pool.py``) and one end of a socket pair.
The child answers a ``ready`` frame, then reads one frame per task and writes one back, in the
frame format of ``wire/_framing.py``.  A task frame is the msgpack array
``[task_id, call, allocation, worker_id, enforce_memory, scratch]`` (``call`` from
``CallPacker.pack``, ``allocation`` pickled, ``scratch`` the task's directory or ``None``); a
result frame is ``[task_id, ok, payload, cpu_seconds, peak_rss]``
(``ok, payload`` as ``pack_outcome`` makes them; ``cpu_seconds`` the child's CPU time so far,
its own and its reaped children's, so that the worker can also tell what a task it killed
used).

Before each task the child binds itself to the allocation: CPU affinity of all its threads, the
environment that ``run_process`` children get, the BLAS/OpenMP thread pools already loaded
(threadpoolctl), the task's scratch directory as ``TMPDIR`` (and as ``tempfile``'s directory),
and the task context behind ``gl.GVAR``.  After it, every process the task
started and left behind is killed: the child is a subreaper, so even those that left its
process group are found below it.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgpack
import outcome

from .._exceptions import TaskFailedError
from ..resource import Cores, Resources
from ..wire import CallUnpacker, dumps_payload, loads_payload, pack_exception, pack_outcome
from ..wire._framing import _HEADER, HEADER_SIZE
from ._context import TaskContext, set_task_context
from ._enforce import become_subreaper, descendants, high_water, set_parent_death_signal
from ._process import ALLOCATION_VARIABLES, allocation_environment

__all__ = ["main"]

#: How long the child goes on killing what a finished task left behind before it gives up.
REAP_PATIENCE = 1.0


class _Channel:
    """Blocking frames over the child's end of the socket pair."""

    def __init__(self, fd: int) -> None:
        self._socket = socket.socket(fileno=fd)
        self._socket.set_inheritable(False)

    def receive(self) -> bytes | None:
        """One frame, or ``None`` when the worker closed its end (or died)."""
        header = self._exactly(HEADER_SIZE)
        if header is None:
            return None
        (size,) = _HEADER.unpack(header)
        body = self._exactly(size)
        if body is None:
            raise EOFError(f"the worker's frame ended after part of its {size} bytes")
        return body

    def _exactly(self, size: int) -> bytes | None:
        buffer = bytearray(size)
        view = memoryview(buffer)
        got = 0
        while got < size:
            count = self._socket.recv_into(view[got:])
            if count == 0:
                if got == 0:
                    return None
                raise EOFError(f"the worker's stream ended inside a frame ({got} of {size})")
            got += count
        return bytes(buffer)

    def send(self, data: bytes) -> None:
        self._socket.sendall(_HEADER.pack(len(data)) + data)


class _ThreadPools:
    """Limits the BLAS/OpenMP thread pools loaded in this process (threadpoolctl).

    Scanning the loaded libraries costs about a millisecond, so it is done again only when
    a task imported modules since the last scan.
    """

    def __init__(self) -> None:
        self._modules = -1
        self._controller: Any = None
        self._limiter: Any = None
        self._limit: int | None = None

    def limit(self, threads: int | None) -> None:
        if len(sys.modules) != self._modules:
            self._restore()
            import threadpoolctl

            self._controller = threadpoolctl.ThreadpoolController()
            self._modules = len(sys.modules)
        elif threads == self._limit:
            return
        self._restore()
        if threads is not None and self._controller.lib_controllers:
            self._limiter = self._controller.limit(limits=threads)
        self._limit = threads

    def _restore(self) -> None:
        if self._limiter is not None:
            self._limiter.restore_original_limits()
            self._limiter = None
        self._limit = None


class _Binding:
    """What the child sets for each allocation: affinity, environment, thread pools."""

    def __init__(self) -> None:
        self._allowed = frozenset(os.sched_getaffinity(0))
        self._pinned = self._allowed
        self._base = {name: os.environ[name] for name in ALLOCATION_VARIABLES if name in os.environ}
        self._allocations: dict[bytes, tuple[Resources, frozenset[int], dict[str, str], int | None]]
        self._allocations = {}
        self._pools = _ThreadPools()
        self._tmpdir = os.environ.get("TMPDIR")
        self._tempdir = tempfile.tempdir
        self._scratch: str | None = None

    def bind(self, data: bytes) -> Resources:
        """Bind to the pickled allocation ``data``; return it."""
        known = self._allocations.get(data)
        if known is None:
            allocation = loads_payload(data)
            assert isinstance(allocation, Resources)
            cores = allocation.get(Cores)
            # Cores this machine does not have cannot be pinned to (a capacity that claims more
            # than there is): the task then runs on all the cores the worker may use.
            pinned = (frozenset(cores.c) & self._allowed if cores is not None else None) or (
                self._allowed
            )
            environment = allocation_environment(allocation, self._base)
            if len(self._allocations) > 256:
                self._allocations.clear()
            known = self._allocations[data] = (
                allocation,
                pinned,
                environment,
                cores.N if cores is not None else None,
            )
        allocation, pinned, environment, threads = known
        if pinned != self._pinned:
            # sched_setaffinity binds one thread: pin every thread (thread pools started
            # by libraries too); threads started later inherit the mask.
            for tid in os.listdir("/proc/self/task"):
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(int(tid), pinned)
            self._pinned = pinned
        for name in ALLOCATION_VARIABLES:
            value = environment.get(name)
            if os.environ.get(name) != value:
                if value is None:
                    del os.environ[name]
                else:
                    os.environ[name] = value
        self._pools.limit(threads)
        return allocation

    def scratch(self, directory: str | None) -> None:
        """Make ``directory`` (or, with ``None``, what the child started with) ``TMPDIR`` and
        ``tempfile``'s directory, for the task and the processes it starts."""
        if directory == self._scratch:
            return
        value = self._tmpdir if directory is None else directory
        if value is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = value
        # tempfile reads TMPDIR once and keeps what it found.
        tempfile.tempdir = self._tempdir if directory is None else directory
        self._scratch = directory


class _Peak:
    """Starts a fresh peak resident size (``VmHWM``) for each task, through ``clear_refs``.

    ``VmHWM`` then reports the peak since the reset.  The file stays open: a write costs a
    microsecond, opening it more.
    Where the kernel refuses the reset, the peak is the process's lifetime peak.
    """

    def __init__(self) -> None:
        try:
            self._clear: int | None = os.open("/proc/self/clear_refs", os.O_WRONLY | os.O_CLOEXEC)
        except OSError:
            self._clear = None

    def reset(self) -> None:
        if self._clear is not None:
            try:
                os.write(self._clear, b"5")
            except OSError:
                self._clear = None


def _used() -> tuple[float, int]:
    """CPU seconds so far (own and reaped children's), and the peak resident bytes since the
    last reset.

    The peak is ``VmHWM``, not ``getrusage``'s ``ru_maxrss``: Linux folds into the latter the
    size of the process before its ``exec``, which is the whole worker that forked it.
    """
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    return cpu, high_water() or own.ru_maxrss * 1024


def _reap_leftovers() -> None:
    """Kill and reap every process the finished task left behind."""
    try:
        os.waitpid(-1, os.WNOHANG)  # reaps one that ended, if any
    except ChildProcessError:
        return  # no children, so no descendants: orphans of a subreaper become its children
    me = os.getpid()
    give_up = time.monotonic() + REAP_PATIENCE
    while True:
        left = descendants(me)
        for pid in left:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
        if not left or time.monotonic() > give_up:
            return
        time.sleep(0.001)


def _run(call_data: bytes, task_id: int, calls: CallUnpacker) -> tuple[bool, bytes]:
    call = calls.unpack(call_data, task_id=task_id)
    try:
        if call.is_async:
            # Only a call that could not be unpickled is async here: it raises why.
            import trio

            value = trio.run(lambda: call.fn(*call.args, **call.kwargs))
        else:
            value = call.fn(*call.args, **call.kwargs)
    except Exception as error:
        return pack_outcome(outcome.Error(error))
    try:
        return True, dumps_payload(value)
    except Exception as error:
        failure = TaskFailedError(
            f"task {task_id} ({call.name}): its result ({type(value).__name__}) cannot be "
            f"pickled: {error}"
        )
        return False, pack_exception(failure)


def serve(channel: _Channel) -> None:
    """Answer ``ready``, then run tasks until the worker closes the channel."""
    calls = CallUnpacker()
    binding = _Binding()
    peak = _Peak()
    channel.send(msgpack.packb(["ready", _used()[0]]))
    while True:
        frame = channel.receive()
        if frame is None:
            return
        task_id, call_data, allocation_data, worker_id, enforce_memory, scratch = msgpack.unpackb(
            frame
        )
        allocation = binding.bind(allocation_data)
        binding.scratch(scratch)
        directory = None if scratch is None else Path(scratch)
        set_task_context(TaskContext(allocation, worker_id, task_id, enforce_memory, directory))
        peak.reset()
        ok, payload = _run(call_data, task_id, calls)
        _reap_leftovers()
        # A task's prints reach the worker's output now, not when the buffer fills.
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        channel.send(msgpack.packb([task_id, ok, payload, *_used()]))


def main(argv: list[str]) -> int:
    """The child's entry point: ``argv`` is the socket's fd and the worker's pid."""
    fd, parent = int(argv[0]), int(argv[1])
    set_parent_death_signal(signal.SIGKILL)
    if os.getppid() != parent:
        return 1  # the worker died before the line above took effect
    become_subreaper()
    serve(_Channel(fd))
    return 0
