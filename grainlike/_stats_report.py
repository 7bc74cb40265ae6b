"""``grainlike stats``: what the learned store knows of each group, for people and for tools.

Per group: its measured runs (wall time mean and max, CPU cores used, peak memory and disk with
their medians), the labels its ``Memory`` and ``Disk`` requests get now, and its learned
``WTime`` limits.  Rich tables on a terminal, else plain lines; ``--json`` for tools.
"""

from __future__ import annotations

from typing import IO, Any

import attrs

from .dispatch import LearnedLimits
from .dispatch._measured import CORES, DISK, MEM, WALL
from .resource._units import format_gb, format_seconds

__all__ = ["GroupReport", "group_reports", "render_stats"]

_GB = 2**30


@attrs.frozen
class GroupReport:
    """One group as ``grainlike stats`` shows it (bytes, seconds and cores; ``None``: not
    measured)."""

    group: str
    measured_runs: int  # runs with measurements (wall time, CPU, memory, disk)
    wall_mean: float | None
    wall_max: float | None
    cores_used: float | None
    memory_median: float | None
    memory_max: float | None
    disk_median: float | None
    disk_max: float | None
    memory_label: int | None
    disk_label: int | None
    wtime_runs: int
    wtime_limits: tuple[float, float] | None

    def to_json(self) -> dict[str, Any]:
        """The report as JSON-ready values (``wtime_limits`` as ``{"hard", "soft"}``)."""
        data = attrs.asdict(self)
        limits = self.wtime_limits
        data["wtime_limits"] = None if limits is None else {"hard": limits[0], "soft": limits[1]}
        return data


def group_reports(learned: LearnedLimits) -> list[GroupReport]:
    """A report for every group ``learned`` knows, sorted by name."""
    measured = learned.measured
    reports = []
    for group in learned.groups():
        wall, cores = measured.row(WALL, group), measured.row(CORES, group)
        memory, disk = measured.row(MEM, group), measured.row(DISK, group)
        memory_label, disk_label = learned.label(MEM, group), learned.label(DISK, group)
        reports.append(
            GroupReport(
                group,
                wall[0] if wall is not None else 0,
                wall[1] if wall is not None else None,
                wall[3] if wall is not None else None,
                cores[1] if cores is not None else None,
                measured.median(MEM, group),
                memory[3] if memory is not None else None,
                measured.median(DISK, group),
                disk[3] if disk is not None else None,
                memory_label * 1024 if memory_label is not None else None,
                disk_label * 1024 if disk_label is not None else None,
                learned.stats(group).count,
                learned.limits(group),
            )
        )
    return reports


def _seconds(value: float | None) -> str:
    return "-" if value is None else format_seconds(value)


def _bytes(value: float | None) -> str:
    return "-" if value is None else format_gb(value / _GB)


def _cores(value: float | None) -> str:
    return "-" if value is None else f"{value:.2g}"


def _limits(report: GroupReport) -> str:
    if report.wtime_limits is None:
        # Counted are the runs long enough for the learning rule of the run they were in.
        return f"- ({report.wtime_runs} runs counted)" if report.wtime_runs else "-"
    hard, soft = report.wtime_limits
    return f"{format_seconds(hard)} (soft {format_seconds(soft)})"


_COLUMNS = (
    "group",
    "measured runs",
    "wall mean",
    "wall max",
    "cores used",
    "mem median",
    "mem max",
    "disk median",
    "disk max",
    "mem label",
    "disk label",
    "wtime limit",
)


def _cells(report: GroupReport) -> tuple[str, ...]:
    return (
        report.group,
        str(report.measured_runs),
        _seconds(report.wall_mean),
        _seconds(report.wall_max),
        _cores(report.cores_used),
        _bytes(report.memory_median),
        _bytes(report.memory_max),
        _bytes(report.disk_median),
        _bytes(report.disk_max),
        _bytes(report.memory_label),
        _bytes(report.disk_label),
        _limits(report),
    )


def render_stats(reports: list[GroupReport], title: str, file: IO[str], *, terminal: bool) -> None:
    """Write ``reports`` to ``file``: a rich table when ``terminal``, else one line a group."""
    if terminal:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title)
        for column in _COLUMNS:
            table.add_column(column, justify="left" if column == "group" else "right")
        for report in reports:
            table.add_row(*_cells(report))
        Console(file=file).print(table)
        return
    lines = [f"{title}: {len(reports)} group(s)"]
    for report in reports:
        cells = _cells(report)
        lines.append(
            f"  {cells[0]}: "
            + ", ".join(
                f"{name} {cell}" for name, cell in zip(_COLUMNS[1:], cells[1:], strict=True)
            )
        )
    file.write("\n".join(lines) + "\n")
