"""What the measured runs of each group used, and the sizes learned from it.

Every task that ran in a process reports a ``Usage`` (wall and CPU time of its process tree, peak
resident memory, its scratch directory's peak size).  For each group its request names, the
dispatcher folds those into running statistics per *metric*: ``wall`` (seconds), ``cores`` (CPU
seconds per wall second), ``mem`` and ``disk`` (peak bytes).  The label of a ``Memory(group=g)``
or ``Disk(group=g)`` request is the largest peak of ``g`` plus a margin, once ``g`` has enough
measured runs (Work Queue's autolabel, with its "max" first allocation before that).

This module is the arithmetic; ``_learned.py`` persists it with the learned time limits.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Final

from ..resource import MAX_DURATION, MAX_KIB
from ._learned_store import KEPT_SAMPLES, Row, combine

__all__ = [
    "CORES",
    "DISK",
    "KEPT",
    "MEM",
    "METRICS",
    "WALL",
    "Measurements",
    "Sample",
    "first_size",
]

WALL: Final = "wall"
CORES: Final = "cores"
MEM: Final = "mem"
DISK: Final = "disk"
#: Every metric of measured runs, in the order ``grainlike stats`` shows them.
METRICS: Final = (WALL, CORES, MEM, DISK)
#: The metrics whose latest measurements are kept, for their medians.
KEPT: Final = frozenset({MEM, DISK})

#: The largest plausible value of each metric: a report beyond it is a lie or a bug.
_LARGEST: Final = {
    WALL: MAX_DURATION,
    CORES: 2.0**20,
    MEM: MAX_KIB * 1024.0,
    DISK: MAX_KIB * 1024.0,
}

#: One measurement: (metric, group, value).
Sample = tuple[str, str, float]


def plausible(metric: str, value: float) -> bool:
    """Whether ``value`` could be a measurement of ``metric``."""
    return math.isfinite(value) and 0 <= value <= _LARGEST[metric]


def plausible_row(row: Row) -> bool:
    """Whether a stored row is one this grainlike could have written."""
    count, mean, m2, largest = row
    return (
        isinstance(count, int)
        and count >= 0
        and all(isinstance(x, int | float) and math.isfinite(x) and x >= 0 for x in (mean, largest))
        and isinstance(m2, int | float)
        and math.isfinite(m2)
    )


class Measurements:
    """The running statistics of each (metric, group), and the latest peaks of each group."""

    __slots__ = ("_kept", "_rows")

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], Row] = {}
        self._kept: dict[tuple[str, str], list[float]] = {}

    def add(self, metric: str, group: str, value: float) -> None:
        """Fold one plausible measurement in."""
        key = (metric, group)
        self._rows[key] = combine(self._rows.get(key, (0, 0.0, 0.0, 0.0)), (1, value, 0.0, value))
        if metric in KEPT:
            kept = self._kept.setdefault(key, [])
            kept.append(value)
            del kept[:-KEPT_SAMPLES]

    def set_row(self, metric: str, group: str, row: Row) -> None:
        """Take a stored row (with what other runs added) as the statistics of the group."""
        self._rows[(metric, group)] = row

    def set_kept(self, metric: str, group: str, values: Iterable[float]) -> None:
        """Take the stored latest measurements of the group."""
        self._kept[(metric, group)] = list(values)[-KEPT_SAMPLES:]

    def row(self, metric: str, group: str) -> Row | None:
        """(count, mean, m2, largest) of the group's measurements of ``metric``."""
        return self._rows.get((metric, group))

    def median(self, metric: str, group: str) -> float | None:
        """The median of the latest kept measurements (``None`` before any)."""
        kept = sorted(self._kept.get((metric, group), ()))
        if not kept:
            return None
        middle = len(kept) // 2
        return kept[middle] if len(kept) % 2 else (kept[middle - 1] + kept[middle]) / 2

    def groups(self) -> list[str]:
        """Every group measured so far, sorted."""
        return sorted({group for _, group in self._rows})

    def label(
        self, metric: str, group: str, samples: int, margin: float, mode: str = "max"
    ) -> int | None:
        """The learned size in KiB of a ``mem`` or ``disk`` group, once it has ``samples``
        measured runs (else ``None``): its largest peak plus ``margin`` (a fraction), or in
        ``throughput`` mode the first allocation that maximises throughput (``first_size``)."""
        row = self._rows.get((metric, group))
        if row is None or row[0] < samples or row[3] <= 0:
            return None
        peak = row[3]
        if mode == "throughput":
            peak = first_size(self._kept.get((metric, group), ()), peak)
        return _kib(peak * (1 + margin))

    def largest_label(self, metric: str, group: str, margin: float) -> int | None:
        """The group's largest peak plus ``margin``, in KiB (``None`` before any)."""
        row = self._rows.get((metric, group))
        return _kib(row[3] * (1 + margin)) if row is not None and row[3] > 0 else None


def _kib(size: float) -> int:
    # Rounded first, so that float noise in 100M * 1.1 does not add a KiB.
    return max(1, min(MAX_KIB, math.ceil(round(size / 1024, 6))))


def first_size(peaks: Iterable[float], largest: float) -> float:
    """Tovar et al.'s first allocation that maximises throughput: the peak ``a`` that makes the
    expected size a task takes, ``a + P(peak > a) * largest`` (a task over ``a`` runs again
    with the largest), the least.  With fewer than ten kept peaks, ``largest``: too few to
    tell a tail from noise."""
    seen = sorted(peaks)
    if len(seen) < 10:
        return largest
    best, best_cost = largest, largest
    for index, candidate in enumerate(seen):
        above = sum(1 for peak in seen[index + 1 :] if peak > candidate)
        cost = candidate + above / len(seen) * largest
        if cost < best_cost:
            best, best_cost = candidate, cost
    return best
