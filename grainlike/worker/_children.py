"""The parent's side of one pool child: starting it, its channel, waiting for it, its end.

The child is started from the calling thread, which the pool makes the worker's main thread:
the kernel sends a child its parent-death signal when the *thread* that started it ends, and
trio's cached threads end when idle.  A ``vfork`` and ``exec`` of Python costs about a
millisecond of that thread.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from typing import Final

import attrs
import psutil
import trio

from ..wire import CallPacker, FramedStream

__all__ = ["Child", "ChildDied", "why_it_died"]

#: Frames between a worker and its own children are not limited below the header's range.
_MAX_FRAME: Final = 2**32 - 1

_BOOT: Final = (
    "import sys; sys.path[:] = sys.argv[3:]; "
    "from grainlike.worker._child import main; sys.exit(main(sys.argv[1:3]))"
)


class ChildDied(Exception):
    """The child's channel ended: it exited or was killed."""


@attrs.define(eq=False)
class Child:
    """One child process and the parent's end of its channel."""

    popen: subprocess.Popen[bytes]
    stream: trio.SocketStream
    channel: FramedStream
    pidfd: int | None
    packer: CallPacker = attrs.field(factory=CallPacker)
    #: The GPUs of the first GPU task it ran: a CUDA runtime, once started, keeps its devices.
    gpus: tuple[int, ...] | None = None
    idle_since: float = 0.0
    #: Its CPU seconds (own and reaped children's) when its last task ended.
    cpu: float = 0.0
    #: Set once it is being killed; whoever else wants it gone waits for that.
    discarded: trio.Event | None = None
    #: While it runs a task: the tree's largest sampled RSS, the task's memory limit (with
    #: enforcement on), and the RSS over that limit at which the sampler killed it.
    peak: int = 0
    limit: int | None = None
    over: int | None = None

    @classmethod
    def spawn(cls) -> Child:
        """Start a child (synchronously, on the calling thread: see the module docstring)."""
        ours, theirs = socket.socketpair()
        try:
            popen = subprocess.Popen(
                [sys.executable, "-c", _BOOT, str(theirs.fileno()), str(os.getpid()), *sys.path],
                stdin=subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),),
                start_new_session=True,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        try:
            pidfd: int | None = os.pidfd_open(popen.pid)
        except (AttributeError, OSError):
            pidfd = None  # before Linux 5.3: wait in a thread instead
        stream = trio.SocketStream(trio.socket.from_stdlib_socket(ours))
        return cls(popen, stream, FramedStream(stream, max_frame=_MAX_FRAME), pidfd)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def exited(self) -> bool:
        """Whether it has ended (and is reaped)."""
        return self.popen.poll() is not None

    async def wait(self) -> int:
        """Wait for it to end; its return code (negative: the signal that killed it)."""
        if self.popen.returncode is None:
            if self.pidfd is not None:
                await trio.lowlevel.wait_readable(self.pidfd)
            else:
                await trio.to_thread.run_sync(self.popen.wait, abandon_on_cancel=True)
        return self.popen.wait()

    def cpu_now(self) -> float:
        """Its CPU seconds so far (of it and its reaped children), from ``/proc``."""
        try:
            times = psutil.Process(self.pid).cpu_times()
        except psutil.Error:
            return self.cpu
        return times.user + times.system + times.children_user + times.children_system

    def close_files(self) -> None:
        """Close the channel and the pidfd (after the child ended)."""
        self.stream.socket.close()
        if self.pidfd is not None:
            trio.lowlevel.notify_closing(self.pidfd)
            os.close(self.pidfd)
            self.pidfd = None


def why_it_died(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = str(-returncode)
        return f"was killed by signal {name}"
    return f"died with exit code {returncode}"
