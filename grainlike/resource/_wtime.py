"""Wall time: a task's time limits, and a worker's remaining walltime."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from typing import ClassVar, Self

from .._exceptions import ResourceError
from ._kind import Kind, register_kind
from ._units import format_duration, format_seconds, parse_duration

__all__ = ["WTime"]

#: Group names print after '@' in the shorthand, so they avoid its separators.
_GROUP = re.compile(r"^[^,\[\]]+$")


class WTime(Kind):
    """Time limits.

    As a request: ``WTime(T=600)`` is a hard limit of 600 s, ``softT`` (default ``T``) the time
    the task is expected to need for placement, ``WTime(group="sim")`` asks for limits learned
    from earlier runs of the group (no limit until learned).  Durations are seconds or strings
    (``"2h"``, ``"1-00:00:00"``).

    As a capacity: ``WTime(T=3600, countdown=True)`` is a worker's remaining walltime, counting
    down from construction; it satisfies a request whose ``softT`` fits in what remains.
    WTime is not consumed by allocation.

    Args:
        T: the hard limit (request) or the walltime (capacity), in seconds or as a string.
        softT: the time the task is expected to need; defaults to ``T``.
        group: a name whose limits are learned from earlier runs.
        countdown: a capacity whose remaining time counts down from now.
        clock: what a countdown reads, in seconds (default ``time.monotonic``); a worker
            under trio may pass ``trio.current_time``, and tests a fake clock.

    Raises:
        ResourceError: for a zero, negative or malformed duration, one longer than
            ``MAX_DURATION`` (100 years; only a countdown's ``T`` may be infinite),
            ``softT > T``, an infinite request limit, or a countdown without ``T``.
    """

    __slots__ = ("_T", "_clock", "_deadline", "_softT", "countdown", "group")

    name = "wtime"
    order = 3
    shortcuts: ClassVar[dict[str, str]] = {"T": "T", "softT": "softT"}
    _T: float | None
    _softT: float | None
    _deadline: float
    _clock: Callable[[], float]
    group: str | None
    countdown: bool

    def __init__(
        self,
        T: float | str | None = None,  # Grain's names, part of the contract
        softT: float | str | None = None,
        group: str | None = None,
        *,
        countdown: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        hard = None if T is None else parse_duration(T, field="T=")
        soft = None if softT is None else parse_duration(softT, field="softT=")
        if hard is None and soft is None and group is None:
            raise ResourceError("WTime(): give a limit T, a soft limit softT, or a group")
        if group is not None and not (
            isinstance(group, str) and group == group.strip() and _GROUP.match(group)
        ):
            raise ResourceError(
                f"WTime(group={group!r}): a group is a non-empty name without ',', '[' or ']'"
            )
        if countdown and hard is None:
            raise ResourceError("WTime(countdown=True): a walltime capacity needs T")
        if not countdown and hard is not None and math.isinf(hard):
            raise ResourceError(f"WTime(T={T!r}): a limit must be finite; omit T for no limit")
        if soft is not None and math.isinf(soft):
            raise ResourceError(f"WTime(softT={softT!r}): a soft limit must be finite")
        if hard is not None and soft is not None and soft > hard:
            raise ResourceError(f"WTime(T={T!r}, softT={softT!r}): softT must not exceed T")
        self._T = hard
        # softT equal to T is the default spelled out: one value, one form.
        self._softT = None if soft == hard else soft
        self.group = group
        self.countdown = countdown
        self._clock = clock
        self._deadline = clock() + hard if countdown and hard is not None else math.inf
        self._live = None

    @property
    def T(self) -> float | None:  # Grain's name, part of the contract
        """The hard limit in seconds (``None``: no limit)."""
        return self._T

    @property
    def softT(self) -> float | None:  # Grain's name, part of the contract
        """The soft limit in seconds (defaults to ``T``; ``None``: unknown)."""
        return self._T if self._softT is None else self._softT

    def remaining(self) -> float:
        """Seconds this capacity still offers (counting down when ``countdown``)."""
        if self.countdown:
            return max(0.0, self._deadline - self._clock())
        return math.inf if self._T is None else self._T

    def with_limits(self, T: float, softT: float) -> WTime:
        """The same request with (learned) limits filled in; the group is kept."""
        return WTime(T, min(softT, T), self.group)

    def _fits(self, req: Self, *, total: bool) -> bool:
        need = req.softT
        return need is None or need <= self.remaining()

    def _take(self, req: Self) -> Self:
        new = type(self).__new__(type(self))
        new._T, new._softT, new.group, new.countdown = req._T, req._softT, req.group, False
        new._deadline, new._clock = math.inf, time.monotonic
        new._live = None
        return new

    def _give(self, allocation: Self) -> None:
        return None

    def _stat(self) -> tuple[float, float]:
        total = math.inf if self._T is None else self._T
        return (self.remaining(), total)

    def format_amount(self, amount: float) -> str:
        return format_seconds(amount)

    def to_text(self) -> str:
        text = "" if self._T is None else format_duration(self._T)
        if self._softT is not None and self._softT != self._T:
            text += "/" + format_duration(self._softT)
        if self.group is not None:
            text += "@" + self.group
        return text

    @classmethod
    def from_text(cls, value: str | None, *, capacity: bool) -> Self | None:
        if value is None or not value.strip():
            raise ResourceError("wtime: give a duration, e.g. wtime:2h, wtime:2h/1h, wtime:@group")
        text, _, group = value.partition("@")
        hard, _, soft = text.partition("/")
        if capacity:
            if group or soft:
                raise ResourceError(f"wtime:{value}: a walltime capacity is a single duration")
            if parse_duration(hard, what="wtime", zero=True) == 0:
                return None
            return cls(hard, countdown=True)
        return cls(hard or None, soft or None, group or None)

    def _same_value(self, other: Self) -> bool:
        return (self._T, self._softT, self.group, self.countdown) == (
            other._T,
            other._softT,
            other.group,
            other.countdown,
        )

    def _value_hash(self) -> int:
        return hash((self._T, self._softT, self.group))

    def __repr__(self) -> str:
        args = [f"{k}={v!r}" for k, v in (("T", self._T), ("softT", self._softT)) if v is not None]
        if self.group is not None:
            args.append(f"group={self.group!r}")
        if self.countdown:
            args.append("countdown=True")
        return f"WTime({', '.join(args)})"


register_kind(WTime, "walltime", "time")
