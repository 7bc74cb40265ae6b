"""WTime (grainlike/resource/_wtime.py): time limits and a worker's remaining walltime."""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import pytest

from grainlike import Cores, InsufficientResourcesError, ResourceError, WTime
from grainlike.resource import MAX_DURATION


class FakeClock:
    """A clock that moves only when told to, for countdowns without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_hard_limit_is_seconds_and_soft_limit_defaults_to_it() -> None:
    limit = WTime(T=600)
    assert limit.T == 600.0
    assert limit.softT == 600.0
    assert limit.group is None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90.0), ("30m", 1800.0), ("2h", 7200.0), ("1d", 86400.0), ("01:00:00", 3600.0)],
)
def test_limits_take_duration_strings(text: str, seconds: float) -> None:
    limit = WTime(T=text)
    assert limit.T == seconds  # noqa: SIM300 - ruff takes Grain's .T for a constant


def test_a_day_prefixed_clock_is_days_hours_minutes_seconds() -> None:
    assert WTime(T="1-02:03:04").T == 86400 + 2 * 3600 + 3 * 60 + 4


def test_a_soft_limit_is_kept_apart_from_the_hard_limit() -> None:
    limit = WTime(T="2h", softT="1h")
    assert (limit.T, limit.softT) == (7200.0, 3600.0)
    assert str(limit) == "wtime:2h/1h"


def test_a_soft_limit_equal_to_the_hard_limit_is_the_default() -> None:
    assert WTime(T=10, softT=10) == WTime(T=10)
    assert str(WTime(T=10, softT=10)) == "wtime:10s"


def test_a_group_asks_for_learned_limits_and_has_none_until_then() -> None:
    learned = WTime(group="sim")
    assert (learned.T, learned.softT, learned.group) == (None, None, "sim")
    assert str(learned) == "wtime:@sim"
    filled = learned.with_limits(T=100.0, softT=40.0)
    assert (filled.T, filled.softT, filled.group) == (100.0, 40.0, "sim")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: WTime(), "WTime(): give a limit T, a soft limit softT, or a group"),
        (lambda: WTime(T=0), "WTime(T=0): a duration must be positive"),
        (lambda: WTime(T=-5), "WTime(T=-5): a duration must be positive"),
        (lambda: WTime(softT="soon"), "WTime(softT='soon'): not a duration"),
        (lambda: WTime(T=5, softT=10), "WTime(T=5, softT=10): softT must not exceed T"),
        (lambda: WTime(T=math.inf), "WTime(T=inf): a limit must be finite"),
        (lambda: WTime(group=""), "WTime(group=''): a group is a non-empty name"),
        (lambda: WTime(group="a,b"), "WTime(group='a,b'): a group is a non-empty name"),
        (lambda: WTime(countdown=True), "WTime(): give a limit T"),
        (lambda: WTime(group="g", countdown=True), "WTime(countdown=True): a walltime capacity"),
    ],
)
def test_invalid_limits_name_the_kind_and_the_value(
    make: Callable[[], object], message: str
) -> None:
    with pytest.raises(ResourceError, match=re.escape(message)):
        make()


def test_a_countdown_capacity_takes_a_task_only_while_its_softT_fits() -> None:
    clock = FakeClock()
    walltime = WTime(T=100, countdown=True, clock=clock)
    task = WTime(T=200, softT=50)
    assert walltime.request(task)
    clock.now += 50
    assert walltime.remaining() == 50.0
    assert walltime.request(task)
    clock.now += 0.5
    assert not walltime.request(task)
    with pytest.raises(InsufficientResourcesError):
        walltime.alloc(task)


def test_a_task_without_known_limits_fits_any_remaining_time() -> None:
    clock = FakeClock()
    walltime = WTime(T=10, countdown=True, clock=clock)
    clock.now += 10
    assert walltime.remaining() == 0.0
    assert walltime.request(WTime(group="sim"))
    assert not walltime.request(WTime(T=1))


def test_remaining_time_never_goes_below_zero() -> None:
    clock = FakeClock()
    walltime = WTime(T=10, countdown=True, clock=clock)
    clock.now += 60
    assert walltime.remaining() == 0.0
    assert walltime.stat() == {"wtime": (0.0, 10.0)}


def test_wall_time_is_not_consumed() -> None:
    clock = FakeClock()
    walltime = WTime(T=100, countdown=True, clock=clock)
    first = walltime.alloc(WTime(T=80))
    second = walltime.alloc(WTime(T=80))
    assert first == second == WTime(T=80)
    assert walltime.stat() == {"wtime": (100.0, 100.0)}
    walltime.dealloc(first)
    walltime.dealloc(second)


def test_an_allocation_carries_the_task_limits() -> None:
    capacity = Cores(4) & WTime(T=3600, countdown=True, clock=FakeClock())
    allocation = capacity.alloc(Cores(1) & WTime(T=60, softT=30))
    assert (allocation.T, allocation.softT) == (60.0, 30.0)


def test_a_capacity_without_wall_time_never_satisfies_a_time_limit() -> None:
    assert not Cores(4).request(Cores(1) & WTime(T=60))


def test_a_limit_of_its_own_is_a_capacity_that_does_not_count_down() -> None:
    capacity = WTime(T=60)
    assert capacity.remaining() == 60.0
    assert capacity.request(WTime(T=90, softT=60))
    assert not capacity.request(WTime(T=61))


def test_repr_shows_the_given_fields() -> None:
    assert repr(WTime(T=60, softT=30, group="g")) == "WTime(T=60.0, softT=30.0, group='g')"
    assert repr(WTime(T=60, countdown=True)) == "WTime(T=60.0, countdown=True)"


def test_limits_of_up_to_100_years_are_accepted() -> None:
    assert WTime(MAX_DURATION, group="g").T == MAX_DURATION
    assert WTime(softT="36525d").softT == MAX_DURATION
    assert WTime("inf", countdown=True).remaining() == math.inf


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"T": MAX_DURATION + 1}, f"WTime(T={MAX_DURATION + 1})"),
        ({"softT": "1e5000"}, "WTime(softT='1e5000')"),
        ({"T": "36526d", "countdown": True}, "WTime(T='36526d')"),
    ],
)
def test_a_longer_limit_is_refused_naming_it(kwargs: dict[str, object], named: str) -> None:
    with pytest.raises(ResourceError, match=re.escape(f"{named}: a duration is at most")):
        WTime(**kwargs)  # type: ignore[arg-type]
