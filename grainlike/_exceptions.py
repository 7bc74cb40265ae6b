"""The one exception tree of grainlike.

This module is a leaf: it imports nothing from grainlike, so every layer may use it.
Every exception passes all its arguments to ``super().__init__`` so that it pickles intact
(errors cross the wire from workers to callers).
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "ConfigError",
    "GrainlikeError",
    "InsufficientResourcesError",
    "MemoryLimitError",
    "ProtocolError",
    "ResourceError",
    "TaskCancelledError",
    "TaskFailedError",
    "UnsatisfiableError",
    "WorkerLostError",
]


class GrainlikeError(Exception):
    """Raised when grainlike itself reports a problem; the base of every grainlike error."""


class ResourceError(GrainlikeError, ValueError):
    """Raised when a resource is malformed, combined twice, or returned to the wrong capacity."""


class InsufficientResourcesError(GrainlikeError):
    """Raised when a capacity cannot allocate a request now; the capacity is left untouched."""

    def __init__(self, message: str, short: tuple[str, ...] = ()) -> None:
        super().__init__(message, short)
        self.short = short

    def __str__(self) -> str:
        return str(self.args[0])


class UnsatisfiableError(GrainlikeError):
    """Raised when no worker's total capacity could ever satisfy a request.

    ``short`` names the kinds that fall short.
    """

    def __init__(self, message: str, short: tuple[str, ...] = ()) -> None:
        super().__init__(message, short)
        self.short = short

    def __str__(self) -> str:
        return str(self.args[0])


class ConfigError(GrainlikeError, ValueError):
    """Raised when a configuration value, option or file is invalid."""


class ProtocolError(GrainlikeError):
    """Raised when a peer sends a frame that is oversized, truncated or cannot be decoded."""


class AuthenticationError(GrainlikeError):
    """Raised when a peer fails the shared-key challenge-response."""


class WorkerLostError(GrainlikeError):
    """Raised when a task's worker was lost more often than the task may be retried."""


class TaskFailedError(GrainlikeError):
    """Raised when a task failed with an exception that could not be re-raised as itself.

    ``remote_traceback`` holds the traceback text formatted where the task ran.
    """

    def __init__(self, message: str, remote_traceback: str = "") -> None:
        super().__init__(message, remote_traceback)
        self.remote_traceback = remote_traceback

    def __str__(self) -> str:
        return str(self.args[0])


class TaskCancelledError(GrainlikeError):
    """Raised when awaiting a task that was cancelled (``handle.cancel()``, or its last caller
    stopped waiting for it)."""


class MemoryLimitError(GrainlikeError):
    """Raised when a task's process tree used more resident memory than its ``Memory`` request."""


class DiskLimitError(GrainlikeError):
    """Raised when a task's scratch directory grew past the size of its ``Disk(group=...)``
    request (a learned label, or the group's first guess)."""
