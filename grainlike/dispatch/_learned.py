"""Learned time limits per ``WTime(group=...)`` (Grain's rule) and learned sizes per
``Memory(group=...)`` and ``Disk(group=...)`` (``_measured.py``), persisted across runs.

The statistics live in memory, where placement reads them, and in the learned store
(``_learned_store.py``), where every counted run is folded in as it is recorded (in a thread,
off the event loop) and whence the merged statistics, with what concurrent runs added, come
back.  A JSON statistics file of earlier versions is migrated on first use.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import attrs
import trio

from .._exceptions import ConfigError
from ..resource import MAX_DURATION
from ._database import SQLITE_MAGIC, BatchWriter
from ._learned_store import LearnedStore, Row, combine
from ._measured import (
    CORES,
    DISK,
    KEPT,
    MEM,
    METRICS,
    WALL,
    Measurements,
    Sample,
    plausible,
    plausible_row,
)

__all__ = ["GroupStats", "LearnedLimits", "LearningRule"]

log = logging.getLogger("grainlike.learned")


@attrs.frozen
class LearningRule:
    """When and how a group's limits are learned.

    After ``samples`` runs that each took at least ``min_duration`` seconds, the group's hard
    limit is ``mean + hard_sigmas * stdev`` and its soft limit ``mean + soft_sigmas * stdev``.

    After ``size_samples`` measured runs, a ``Memory`` or ``Disk`` group's label is its largest
    peak times ``1 + size_margin``; before that, a task gets its first guess, or else the
    largest amount any connected worker has.  ``size_mode="throughput"`` labels it instead with
    the peak that maximises throughput (Tovar et al. 2018): smaller, so more tasks fit, at the
    cost of rerunning the few above it with the largest label.
    """

    samples: int = attrs.field(default=8)
    min_duration: float = 10.0
    hard_sigmas: float = 5.0
    soft_sigmas: float = 2.0
    size_samples: int = attrs.field(default=5)
    size_margin: float = attrs.field(default=0.10)
    size_mode: str = attrs.field(default="max")

    @samples.validator
    def _check_samples(self, _: object, value: int) -> None:
        if value < 2:
            raise ConfigError(f"LearningRule(samples={value}): at least 2 runs are needed")

    @size_samples.validator
    def _check_size_samples(self, _: object, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"LearningRule(size_samples={value!r}): at least 1 run is needed")

    @size_mode.validator
    def _check_size_mode(self, _: object, value: str) -> None:
        if value not in ("max", "throughput"):
            raise ConfigError(f"LearningRule(size_mode={value!r}): choose 'max' or 'throughput'")

    @size_margin.validator
    def _check_size_margin(self, _: object, value: float) -> None:
        if not _is_number(value) or not 0 <= value <= 10:
            raise ConfigError(
                f"LearningRule(size_margin={value!r}): a margin is a fraction from 0 to 10"
            )


def _check_count(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"GroupStats(count={value!r}): a count is a whole number, 0 or more")


def _check_mean(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    # A mean beyond the longest WTime limit could only come from a corrupt file or a lying
    # peer, and would make placement build a request that WTime refuses.
    if not _is_number(value) or not 0 <= value <= MAX_DURATION:
        raise ConfigError(
            f"GroupStats(mean={value!r}): a mean run time is from 0 to {MAX_DURATION} seconds"
        )


def _check_m2(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not _is_number(value) or not 0 <= value < math.inf:
        raise ConfigError(f"GroupStats(m2={value!r}): a sum of squares is finite, 0 or more")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@attrs.frozen
class GroupStats:
    """Running mean and variance (Welford) of a group's qualifying run times.

    Raises:
        ConfigError: a count below 0, or a mean or ``m2`` that is negative or not finite
            (or a mean beyond the longest limit a ``WTime`` may have).
    """

    count: int = attrs.field(default=0, validator=_check_count)
    mean: float = attrs.field(default=0.0, validator=_check_mean)
    m2: float = attrs.field(default=0.0, validator=_check_m2)

    def add(self, duration: float) -> GroupStats:
        """The statistics with one more run.

        Raises:
            ConfigError: ``duration`` is not a number from 0 to ``MAX_DURATION`` seconds.
        """
        if not _is_number(duration) or not 0 <= duration <= MAX_DURATION:
            raise ConfigError(
                f"GroupStats.add({duration!r}): a run time is from 0 to {MAX_DURATION} seconds"
            )
        count = self.count + 1
        delta = duration - self.mean
        mean = self.mean + delta / count
        return GroupStats(count, mean, self.m2 + delta * (duration - mean))

    @property
    def stdev(self) -> float:
        """Sample standard deviation (0 for fewer than two runs)."""
        return math.sqrt(self.m2 / (self.count - 1)) if self.count > 1 else 0.0


def _group_stats(value: Any) -> GroupStats:
    """One group's entry of the statistics file; ``ConfigError`` when it is not one."""
    if not isinstance(value, dict) or set(value) != {"count", "mean", "m2"}:
        raise ConfigError(f"a group is {{'count': ..., 'mean': ..., 'm2': ...}}, not {value!r}")
    return GroupStats(value["count"], value["mean"], value["m2"])


#: The metric of run times in the learned store.
_WTIME = "wtime"


def _read_json(path: Path) -> dict[str, GroupStats]:
    """The groups of a JSON statistics file (what grainlike wrote before the learned store).

    Raises:
        ConfigError: the file cannot be read or holds anything but valid statistics.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read it ({error.strerror})") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not a grainlike statistics file ({error})") from None
    try:
        data = json.loads(text)
        if not isinstance(data, dict) or not isinstance(data.get("groups"), dict):
            raise ConfigError("expected {'groups': {NAME: {'count': ..., 'mean': ..., ...}}}")
        return {name: _group_stats(value) for name, value in data["groups"].items()}
    except (ValueError, KeyError) as error:  # ConfigError is a ValueError
        raise ConfigError(f"{path}: not a grainlike statistics file ({error})") from None


def _is_json(path: Path) -> bool:
    """Whether ``path`` holds something other than an SQLite database (an older JSON file)."""
    try:
        with path.open("rb") as file:
            head = file.read(len(SQLITE_MAGIC))
    except FileNotFoundError:
        return False
    except OSError as error:
        raise ConfigError(f"{path}: cannot read it ({error.strerror})") from None
    return bool(head) and head != SQLITE_MAGIC


def _migrate_json(json_file: Path, store: LearnedStore) -> None:
    """Fold a JSON statistics file into ``store`` once: the file is renamed ``.migrated``
    first, so that of two runs starting at once only one imports it."""
    groups = _read_json(json_file)
    migrated = json_file.with_name(json_file.name + ".migrated")
    try:
        json_file.rename(migrated)
    except FileNotFoundError:
        return  # another run took it
    except OSError as error:
        raise ConfigError(f"{json_file}: cannot migrate it ({error.strerror})") from None
    rows = {name: (s.count, s.mean, s.m2, 0.0) for name, s in groups.items()}
    try:
        store.merge(_WTIME, rows)
    except sqlite3.Error as error:
        migrated.rename(json_file)
        raise ConfigError(f"{store.path}: cannot migrate {json_file} into it ({error})") from None
    log.info(
        "migrated the learned time limits of %d group(s) from %s into %s (the JSON file is "
        "kept as %s)",
        len(rows),
        json_file,
        store.path,
        migrated,
    )


@attrs.define(eq=False)
class LearnedLimits:
    """Per-group statistics, the limits they imply, and the store they persist to.

    An implausible run time (not finite, negative, or longer than any ``WTime`` limit) is
    ignored and counted in ``rejected``; the first one is logged.  A store that cannot be
    written is logged once; the run goes on.  ``serve`` writes each counted run to the store
    as it is recorded; ``save`` writes what is pending at once.
    """

    rule: LearningRule = attrs.field(factory=LearningRule)
    path: Path | None = None
    _groups: dict[str, GroupStats] = attrs.field(factory=dict)
    version: int = 0
    #: How many reported run times were ignored as implausible.
    rejected: int = 0
    _save_failed: bool = False
    _store: LearnedStore | None = None
    _pending: list[Sample] = attrs.field(factory=list)
    _writer: BatchWriter[list[Sample], dict[tuple[str, str], Row]] = attrs.field(init=False)
    #: What the measured runs of each group used (``record_usage``).
    measured: Measurements = attrs.field(factory=Measurements, init=False)

    def __attrs_post_init__(self) -> None:
        self._writer = BatchWriter(self._take, self._fold, self._merge)

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str] | None,
        rule: LearningRule | None = None,
        *,
        legacy: str | os.PathLike[str] | None = None,
    ) -> LearnedLimits:
        """Load the learned store at ``path`` (missing file: nothing learned yet).

        A JSON statistics file of an earlier version at ``path`` is migrated in place (and
        kept as ``PATH.migrated``); so is one at ``legacy`` (the former default path) when
        ``path`` does not exist yet.

        Raises:
            ConfigError: the file cannot be read, holds anything but valid statistics, or is
                of a newer schema; the message names the file.
        """
        limits = cls(rule or LearningRule(), Path(path) if path is not None else None)
        if limits.path is None:
            return limits
        if _is_json(limits.path):
            store = LearnedStore(limits.path)
            _migrate_json(limits.path, store)
        else:
            store = LearnedStore.open(limits.path)
            if legacy is not None and not limits.path.exists() and Path(legacy).exists():
                _migrate_json(Path(legacy), store)
        limits._store = store
        try:
            limits._groups = {
                name: GroupStats(*row[:3]) for name, row in store.load(_WTIME).items()
            }
        except ConfigError as error:
            store.close()
            raise ConfigError(f"{limits.path}: not a grainlike statistics file ({error})") from None
        for metric in METRICS:
            for name, row in store.load(metric).items():
                if plausible_row(row):
                    limits.measured.set_row(metric, name, row)
            if metric in KEPT:
                for name, values in store.samples(metric).items():
                    limits.measured.set_kept(metric, name, values)
        return limits

    def record(self, group: str, duration: float) -> None:
        """Count one completed run of ``group`` (runs shorter than the minimum do not count)."""
        current = self._groups.get(group, GroupStats())
        try:
            updated = current.add(duration)
        except ConfigError:
            # A worker (any key holder) reports durations: one bad report must not poison the
            # group's limits, nor the store that the next run loads.
            self.rejected += 1
            if self.rejected == 1:
                log.warning(
                    "ignored an implausible run time of group %r: %r s (later ones are "
                    "ignored without a warning)",
                    group,
                    duration,
                )
            return
        if duration < self.rule.min_duration:
            return
        self._groups[group] = updated
        self.version += 1
        if self._store is not None:
            self._pending.append((_WTIME, group, duration))
            self._writer.poke()

    def record_usage(
        self,
        groups: Iterable[str],
        wall: float,
        cpu: float,
        peak_rss: int,
        peak_disk: int | None,
        *,
        memory: str | None = None,
        disk: str | None = None,
    ) -> None:
        """Count what one measured run used: its wall time and cores used for each of its
        ``groups``, its peak memory for its ``Memory`` group, its peak disk for its ``Disk``
        group.  A peak memory of 0 (no process ran) teaches nothing; implausible figures are
        ignored."""
        samples: list[Sample] = []
        for group in groups:
            samples.append((WALL, group, wall))
            if wall > 0:
                samples.append((CORES, group, cpu / wall))
        if memory is not None and peak_rss > 0:
            samples.append((MEM, memory, float(peak_rss)))
        if disk is not None and peak_disk is not None:
            samples.append((DISK, disk, float(peak_disk)))
        for metric, group, value in samples:
            if not plausible(metric, value):
                self.rejected += 1
                continue
            before = self.label(metric, group) if metric in KEPT else None
            self.measured.add(metric, group, value)
            if metric in KEPT and self.label(metric, group) != before:
                self.version += 1
            if self._store is not None:
                self._pending.append((metric, group, value))
        if self._store is not None and self._pending:
            self._writer.poke()

    def label(self, metric: str, group: str) -> int | None:
        """The learned size in KiB of a ``mem`` or ``disk`` group, once it has enough
        measured runs (``LearningRule.size_samples``); else ``None``."""
        rule = self.rule
        return self.measured.label(
            metric, group, rule.size_samples, rule.size_margin, rule.size_mode
        )

    def largest_label(self, metric: str, group: str) -> int | None:
        """The size in KiB that fits every measured run of the group: its largest peak plus
        the margin (what a task over a ``throughput`` label runs again with)."""
        return self.measured.largest_label(metric, group, self.rule.size_margin)

    def groups(self) -> list[str]:
        """Every group with learned time limits or measured runs, sorted."""
        return sorted({*self._groups, *self.measured.groups()})

    def stats(self, group: str) -> GroupStats:
        """The group's statistics so far."""
        return self._groups.get(group, GroupStats())

    def limits(self, group: str) -> tuple[float, float] | None:
        """(hard, soft) limits for ``group`` once learned, else ``None``.

        Both are at most ``MAX_DURATION``, the longest limit a ``WTime`` may have.
        """
        stats = self._groups.get(group)
        if stats is None or stats.count < self.rule.samples:
            return None
        rule = self.rule
        return (
            min(stats.mean + rule.hard_sigmas * stats.stdev, MAX_DURATION),
            min(stats.mean + rule.soft_sigmas * stats.stdev, MAX_DURATION),
        )

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Write each counted run to the store, off the event loop, until cancelled."""
        await self._writer.serve(task_status=task_status)

    def save(self) -> None:
        """Write what is pending to the store now (no-op without a path).

        It never raises for a store that cannot be written (a full disk, a missing
        directory): it logs one warning and the run's result stands.
        """
        merged = self._writer.write_now()
        if merged is not None:
            self._merge([], merged)

    def close(self) -> None:
        """Write what is pending and close the store."""
        self.save()
        if self._store is not None:
            self._store.close()

    def _take(self, final: bool) -> list[Sample] | None:
        pending, self._pending = self._pending, []
        return pending or None

    def _fold(self, samples: list[Sample]) -> dict[tuple[str, str], Row]:
        assert self._store is not None
        by_metric: dict[str, list[tuple[str, float]]] = {}
        for metric, group, value in samples:
            by_metric.setdefault(metric, []).append((group, value))
        merged: dict[tuple[str, str], Row] = {}
        try:
            for metric, values in by_metric.items():
                rows = self._store.fold(metric, values, keep=metric in KEPT)
                merged.update(((metric, name), row) for name, row in rows.items())
        except (sqlite3.Error, ConfigError, OSError) as error:
            if not self._save_failed:
                self._save_failed = True
                log.warning("learned limits and sizes not saved to %s: %s", self.path, error)
        return merged

    def _merge(self, _: list[Sample], merged: dict[tuple[str, str], Row]) -> None:
        """Take the stored statistics (with other runs' runs), plus this run's runs that are
        still pending."""
        for (metric, name), row in merged.items():
            if metric != _WTIME:
                self._merge_measured(metric, name, row)
                continue
            try:
                stats = GroupStats(*row[:3])
            except ConfigError:
                continue  # another writer's nonsense: keep what this run has
            for pending_metric, group, duration in self._pending:
                if pending_metric == _WTIME and group == name:
                    stats = stats.add(duration)
            if stats != self._groups.get(name):
                self._groups[name] = stats
                self.version += 1

    def _merge_measured(self, metric: str, name: str, row: Row) -> None:
        if not plausible_row(row):
            return
        for pending_metric, group, value in self._pending:
            if pending_metric == metric and group == name:
                row = combine(row, (1, value, 0.0, value))
        before = self.label(metric, name) if metric in KEPT else None
        self.measured.set_row(metric, name, row)
        if metric in KEPT and self.label(metric, name) != before:
            self.version += 1
