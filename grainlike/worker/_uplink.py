"""A remote worker's line to its dispatcher for what its tasks ask: subtasks and allocations.

The worker's connection carries its reports; a task that submits subtasks, or gives its
allocation back for a while (``gl.released()``), sends its requests on the same connection,
and what comes back for them is handed to whoever listens (the API level's submitter).
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from .._exceptions import GrainlikeError
from ..wire import Message, Outbox

__all__ = ["Uplink"]


@attrs.define(eq=False)
class Uplink:
    """What a remote worker's tasks send their dispatcher, and what comes back for them."""

    _outbox: Outbox | None = None
    _receivers: list[Callable[[Message | None], None]] = attrs.field(factory=list)

    @property
    def connected(self) -> bool:
        """Whether the worker is joined to a dispatcher now."""
        return self._outbox is not None

    def connect(self, outbox: Outbox) -> None:
        """The worker joined: send through ``outbox``."""
        self._outbox = outbox

    def disconnect(self) -> None:
        """The worker left its dispatcher: every receiver hears ``None``."""
        self._outbox = None
        for receiver in self._receivers:
            receiver(None)

    def post(self, message: Message) -> None:
        """Send ``message`` to the dispatcher (never blocks).

        Raises:
            GrainlikeError: the worker is not connected now.
        """
        if self._outbox is None:
            raise GrainlikeError("this worker is not connected to a dispatcher now")
        self._outbox.post(message)

    def listen(self, receiver: Callable[[Message | None], None]) -> None:
        """Call ``receiver`` with each message for the tasks (``None`` when disconnected)."""
        self._receivers.append(receiver)

    def deliver(self, message: Message) -> None:
        """A message for the tasks arrived."""
        for receiver in self._receivers:
            receiver(message)
