"""Learned time limits per ``WTime(group=...)``: Grain's rule, persisted across runs."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import attrs

from .._exceptions import ConfigError

__all__ = ["GroupStats", "LearnedLimits", "LearningRule"]


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


@attrs.frozen
class GroupStats:
    """Running mean and variance (Welford) of a group's qualifying run times."""

    count: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def add(self, duration: float) -> GroupStats:
        """The statistics with one more run."""
        count = self.count + 1
        delta = duration - self.mean
        mean = self.mean + delta / count
        return GroupStats(count, mean, self.m2 + delta * (duration - mean))

    @property
    def stdev(self) -> float:
        """Sample standard deviation (0 for fewer than two runs)."""
        return math.sqrt(self.m2 / (self.count - 1)) if self.count > 1 else 0.0


@attrs.define(eq=False)
class LearnedLimits:
    """Per-group statistics, the limits they imply, and the file they persist to."""

    rule: LearningRule = attrs.field(factory=LearningRule)
    path: Path | None = None
    _groups: dict[str, GroupStats] = attrs.field(factory=dict)
    version: int = 0

    @classmethod
    def open(
        cls, path: str | os.PathLike[str] | None, rule: LearningRule | None = None
    ) -> LearnedLimits:
        """Load the statistics file at ``path`` (missing file: nothing learned yet)."""
        limits = cls(rule or LearningRule(), Path(path) if path is not None else None)
        if limits.path is not None and limits.path.exists():
            try:
                data = json.loads(limits.path.read_text())
                limits._groups = {
                    name: GroupStats(int(v["count"]), float(v["mean"]), float(v["m2"]))
                    for name, v in data["groups"].items()
                }
            except (ValueError, KeyError, TypeError) as error:
                raise ConfigError(
                    f"{limits.path}: not a grainlike statistics file ({error})"
                ) from None
        return limits

    def record(self, group: str, duration: float) -> None:
        """Count one completed run of ``group`` (runs shorter than the minimum do not count)."""
        if duration < self.rule.min_duration:
            return
        self._groups[group] = self._groups.get(group, GroupStats()).add(duration)
        self.version += 1

    def stats(self, group: str) -> GroupStats:
        """The group's statistics so far."""
        return self._groups.get(group, GroupStats())

    def limits(self, group: str) -> tuple[float, float] | None:
        """(hard, soft) limits for ``group`` once learned, else ``None``."""
        stats = self._groups.get(group)
        if stats is None or stats.count < self.rule.samples:
            return None
        rule = self.rule
        return (
            stats.mean + rule.hard_sigmas * stats.stdev,
            stats.mean + rule.soft_sigmas * stats.stdev,
        )

    def save(self) -> None:
        """Write the statistics file atomically (no-op without a path)."""
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "groups": {
                name: {"count": s.count, "mean": s.mean, "m2": s.m2}
                for name, s in sorted(self._groups.items())
            }
        }
        scratch = self.path.with_suffix(self.path.suffix + ".tmp")
        scratch.write_text(json.dumps(data, indent=1) + "\n")
        scratch.replace(self.path)
