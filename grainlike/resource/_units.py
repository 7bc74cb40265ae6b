"""Units of the shorthand grammar: memory sizes, durations and ID lists, both directions."""

from __future__ import annotations

import math
import re
from fractions import Fraction

from .._exceptions import ResourceError

__all__ = [
    "KIB_PER_GB",
    "format_duration",
    "format_gb",
    "format_ids",
    "format_kib",
    "format_seconds",
    "parse_duration",
    "parse_ids",
    "parse_kib",
]

#: Memory is counted in whole KiB so that alloc/dealloc arithmetic is exact; 1 G = 1024**3 bytes.
KIB_PER_GB = 1024**2
_MEMORY_UNITS = {"K": 1, "M": 1024, "G": 1024**2, "T": 1024**3}
_MEMORY = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([KMGT]?)(?:I?B)?\s*$", re.I)
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([smhd]?)\s*$", re.I)
_CLOCK = re.compile(r"^\s*(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+(?:\.\d+)?)\s*$")


def parse_kib(value: str | float, *, what: str = "Memory", zero: bool = False) -> int:
    """Parse ``16G``, ``512M``, ``0.5`` (GB) or a number of GB into whole KiB.

    Exact for any size (no float rounding on the way), so that formatting and parsing again
    gives the same count.  With ``zero``, a size of 0 is returned as 0 instead of rejected.
    """
    if isinstance(value, bool):
        raise ResourceError(f"{what}({value!r}): memory must be a number of GB or a size string")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ResourceError(f"{what}({value!r}): memory must be positive and finite")
        kib = Fraction(value) * KIB_PER_GB
    elif isinstance(value, str):
        match = _MEMORY.match(value)
        if match is None:
            raise ResourceError(
                f"{what}({value!r}): not a memory size (use e.g. 16G, 512M, 0.5 for GB)"
            )
        number, unit = match.groups()
        kib = Fraction(number) * _MEMORY_UNITS[(unit or "G").upper()]
    else:
        raise ResourceError(f"{what}({value!r}): memory must be a number of GB or a size string")
    if kib == 0 and zero:
        return 0
    if kib <= 0:
        raise ResourceError(f"{what}({value!r}): memory must be positive and finite")
    if kib < 1:
        raise ResourceError(f"{what}({value!r}): memory must be at least 1K")
    return round(kib)


def format_kib(kib: int) -> str:
    """The shortest exact spelling of a KiB count: ``16G``, ``512M``, ``100K``."""
    for unit in ("T", "G", "M"):
        size = _MEMORY_UNITS[unit]
        if kib % size == 0:
            return f"{kib // size}{unit}"
    return f"{kib}K"


def parse_duration(
    value: str | float, *, what: str = "WTime", field: str = "", zero: bool = False
) -> float:
    """Parse seconds, ``90s``/``30m``/``2h``/``1d``, ``[d-]hh:mm:ss``, or ``inf``.

    Messages read ``{what}({field}{value!r})``, e.g. ``WTime(T=-5)``.  With ``zero``, a
    duration of 0 is returned as 0.0 instead of rejected.
    """
    if isinstance(value, bool):
        raise ResourceError(
            f"{what}({field}{value!r}): a duration must be seconds or a time string"
        )
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        if text in ("inf", "unlimited", "infinite"):
            return math.inf
        match = _DURATION.match(text)
        clock = _CLOCK.match(text)
        if match is not None:
            number, unit = match.groups()
            seconds = float(number) * _DURATION_UNITS[unit or "s"]
        elif clock is not None:
            days, hours, minutes, secs = clock.groups()
            seconds = (
                int(days or 0) * 86400 + int(hours or 0) * 3600 + int(minutes) * 60 + float(secs)
            )
        else:
            raise ResourceError(
                f"{what}({field}{value!r}): not a duration (use e.g. 90, 30m, 2h, 1-00:00:00)"
            )
    else:
        raise ResourceError(
            f"{what}({field}{value!r}): a duration must be seconds or a time string"
        )
    if seconds == 0 and zero:
        return 0.0
    if math.isnan(seconds) or seconds <= 0:
        raise ResourceError(f"{what}({field}{value!r}): a duration must be positive")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest exact spelling of a duration: ``2h``, ``90m``, ``45s``, ``1.5s``, ``inf``."""
    if math.isinf(seconds):
        return "inf"
    if seconds == int(seconds):
        whole = int(seconds)
        for unit in ("d", "h", "m"):
            size = _DURATION_UNITS[unit]
            # Huge values are spelled in seconds unless the unit gives back the same float.
            if whole % size == 0 and float(whole // size) * size == seconds:
                return f"{whole // size}{unit}"
        if float(whole) == seconds and whole < 10**16:
            return f"{whole}s"
    return f"{seconds!r}s"


def parse_ids(text: str, *, what: str) -> tuple[int, ...]:
    """Parse ``[0-3,8]`` (brackets optional) into sorted unique IDs."""
    body = text.strip()
    if body.startswith("[") and body.endswith("]"):
        body = body[1:-1]
    ids: set[int] = set()
    for part in body.split(","):
        piece = part.strip()
        try:
            if "-" in piece:
                low, high = (int(x) for x in piece.split("-", 1))
                if low > high:
                    raise ValueError(piece)
                ids.update(range(low, high + 1))
            else:
                ids.add(int(piece))
        except ValueError:
            raise ResourceError(f"{what}({text!r}): not an ID list (use e.g. [0-3,8])") from None
    if any(i < 0 for i in ids):
        raise ResourceError(f"{what}({text!r}): IDs must be non-negative")
    return tuple(sorted(ids))


def format_ids(ids: tuple[int, ...] | list[int]) -> str:
    """``[0-3,8]``: sorted IDs with runs collapsed."""
    parts: list[str] = []
    index = 0
    while index < len(ids):
        start = index
        while index + 1 < len(ids) and ids[index + 1] == ids[index] + 1:
            index += 1
        low, high = ids[start], ids[index]
        parts.append(str(low) if low == high else f"{low}-{high}")
        index += 1
    return "[" + ",".join(parts) + "]"


def format_seconds(seconds: float) -> str:
    """A duration for people, rounded: ``0.25s``, ``12s``, ``4m05s``, ``2h10m``, ``3d04h``, ``inf``.

    Unlike ``format_duration`` this is not exact: it is what status lines and messages print.
    """
    if math.isinf(seconds):
        return "inf"
    if seconds < 10:
        return f"{seconds:.2g}s" if seconds < 1 else f"{seconds:.1f}".rstrip("0").rstrip(".") + "s"
    whole = round(seconds)
    for size, unit, smaller, small_unit in (
        (86400, "d", 3600, "h"),
        (3600, "h", 60, "m"),
        (60, "m", 1, "s"),
    ):
        if whole >= size:
            major, rest = divmod(whole, size)
            return f"{major}{unit}{rest // smaller:02d}{small_unit}"
    return f"{whole}s"


def format_gb(gb: float) -> str:
    """A memory size in GB for people, to three significant digits: ``22.4G``, ``512M``."""
    if math.isinf(gb):
        return "inf"
    for unit, size in (("T", 1024.0), ("G", 1.0), ("M", 1 / 1024), ("K", 1 / 1024**2)):
        if gb >= size or unit == "K":
            value = gb / size
            text = f"{value:.3g}" if value < 1000 else f"{value:.0f}"
            return f"{text}{unit}"
    raise AssertionError("unreachable")  # pragma: no cover
