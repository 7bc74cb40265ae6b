"""Heartbeats and silence: when to send one, and when a quiet peer counts as gone.

Both sides of a connection send a ``Heartbeat`` when they have sent nothing else for an
interval, and drop the peer when nothing at all arrived for a timeout.  The checks run in
their own tasks, so that the per-message path only stores a time (a deadline scope around
every receive and every wait for something to send would cost more than a small task).
"""

from __future__ import annotations

from collections.abc import Callable

import trio

__all__ = ["Pulse", "Silence"]


class Pulse:
    """Calls ``due()`` whenever nothing was sent for ``interval`` seconds.

    The sender calls ``sent()`` after each write; ``beat`` runs until cancelled.
    """

    __slots__ = ("_last", "interval")

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._last = trio.current_time()

    def sent(self) -> None:
        """A message went out."""
        self._last = trio.current_time()

    async def beat(self, due: Callable[[], None]) -> None:
        """Call ``due()`` after each ``interval`` without a write."""
        while True:
            await trio.sleep_until(self._last + self.interval)
            if trio.current_time() >= self._last + self.interval:
                due()
                self._last = trio.current_time()  # the heartbeat is on its way


class Silence:
    """Notices a peer that has been quiet for ``timeout`` seconds.

    The receiver calls ``heard()`` for each message; ``watch(scope)`` cancels ``scope`` once
    the peer has been quiet too long, and ``expired`` says that this is why it ended.
    """

    __slots__ = ("_last", "expired", "timeout")

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.expired = False
        self._last = trio.current_time()

    def heard(self) -> None:
        """A message arrived."""
        self._last = trio.current_time()

    async def watch(self, scope: trio.CancelScope) -> None:
        """Cancel ``scope`` when nothing arrived for ``timeout`` seconds."""
        while True:
            await trio.sleep_until(self._last + self.timeout)
            if trio.current_time() >= self._last + self.timeout:
                self.expired = True
                scope.cancel()
                return
