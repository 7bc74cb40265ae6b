"""Learned time limits per ``WTime(group=...)``: Grain's rule, persisted across runs."""

from __future__ import annotations

import json
import logging
import math
import os
import secrets
from pathlib import Path
from typing import Any

import attrs

from .._exceptions import ConfigError
from ..resource import MAX_DURATION

__all__ = ["GroupStats", "LearnedLimits", "LearningRule"]

log = logging.getLogger("grainlike.learned")


@attrs.frozen
class LearningRule:
    """When and how a group's limits are learned.

    After ``samples`` runs that each took at least ``min_duration`` seconds, the group's hard
    limit is ``mean + hard_sigmas * stdev`` and its soft limit ``mean + soft_sigmas * stdev``.
    """

    samples: int = attrs.field(default=8)
    min_duration: float = 10.0
    hard_sigmas: float = 5.0
    soft_sigmas: float = 2.0

    @samples.validator
    def _check_samples(self, _: object, value: int) -> None:
        if value < 2:
            raise ConfigError(f"LearningRule(samples={value}): at least 2 runs are needed")


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


@attrs.define(eq=False)
class LearnedLimits:
    """Per-group statistics, the limits they imply, and the file they persist to.

    An implausible run time (not finite, negative, or longer than any ``WTime`` limit) is
    ignored and counted in ``rejected``; the first one is logged.  A file that cannot be
    saved is logged once; the run goes on.
    """

    rule: LearningRule = attrs.field(factory=LearningRule)
    path: Path | None = None
    _groups: dict[str, GroupStats] = attrs.field(factory=dict)
    version: int = 0
    #: How many reported run times were ignored as implausible.
    rejected: int = 0
    _save_failed: bool = False

    @classmethod
    def open(
        cls, path: str | os.PathLike[str] | None, rule: LearningRule | None = None
    ) -> LearnedLimits:
        """Load the statistics file at ``path`` (missing file: nothing learned yet).

        Raises:
            ConfigError: the file cannot be read or holds anything but valid statistics; the
                message names the file.
        """
        limits = cls(rule or LearningRule(), Path(path) if path is not None else None)
        if limits.path is None:
            return limits
        try:
            text = limits.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return limits
        except OSError as error:
            raise ConfigError(f"{limits.path}: cannot read it ({error.strerror})") from None
        except UnicodeDecodeError as error:
            raise ConfigError(f"{limits.path}: not a grainlike statistics file ({error})") from None
        try:
            data = json.loads(text)
            if not isinstance(data, dict) or not isinstance(data.get("groups"), dict):
                raise ConfigError("expected {'groups': {NAME: {'count': ..., 'mean': ..., ...}}}")
            limits._groups = {name: _group_stats(value) for name, value in data["groups"].items()}
        except (ValueError, KeyError) as error:  # ConfigError is a ValueError
            raise ConfigError(f"{limits.path}: not a grainlike statistics file ({error})") from None
        return limits

    def record(self, group: str, duration: float) -> None:
        """Count one completed run of ``group`` (runs shorter than the minimum do not count)."""
        current = self._groups.get(group, GroupStats())
        try:
            updated = current.add(duration)
        except ConfigError:
            # A worker (any key holder) reports durations: one bad report must not poison the
            # group's limits, nor the file that the next run loads.
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

    def save(self) -> None:
        """Write the statistics file atomically, mode 0600 (no-op without a path).

        It never raises for a file that cannot be written (a full disk, a missing
        directory): it logs one warning and the run's result stands.
        """
        if self.path is None:
            return
        data = {
            "groups": {
                name: {"count": s.count, "mean": s.mean, "m2": s.m2}
                for name, s in sorted(self._groups.items())
            }
        }
        text = json.dumps(data, indent=1) + "\n"
        # A name of its own: concurrent runs sharing the file never write into one temporary.
        scratch = self.path.with_name(f".{self.path.name}.{secrets.token_hex(8)}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # 0600 from the start: the file names the user's task groups.
            descriptor = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with os.fdopen(descriptor, "w", encoding="utf-8") as file:
                    file.write(text)
                scratch.replace(self.path)
            finally:
                scratch.unlink(missing_ok=True)
        except OSError as error:
            if not self._save_failed:
                self._save_failed = True
                log.warning("learned time limits not saved to %s: %s", self.path, error)
