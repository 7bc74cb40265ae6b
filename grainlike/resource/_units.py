"""Units of the shorthand grammar: memory sizes, durations and ID lists, both directions."""

from __future__ import annotations

import math
import re
from decimal import Decimal
from fractions import Fraction
from typing import Final

from .._exceptions import ResourceError

__all__ = [
    "KIB_PER_GB",
    "MAX_COUNT",
    "MAX_DURATION",
    "MAX_ID",
    "MAX_IDS",
    "MAX_KIB",
    "clipped",
    "format_duration",
    "format_gb",
    "format_ids",
    "format_kib",
    "format_seconds",
    "parse_duration",
    "parse_ids",
    "parse_kib",
    "shown",
]

#: Memory is counted in whole KiB so that alloc/dealloc arithmetic is exact; 1 G = 1024**3 bytes.
KIB_PER_GB = 1024**2

# Limits: far above any machine, low enough that a value is cheap to hold, print and send,
# and that ``.M`` and ``stat()`` stay exact floats.
#: The most core or GPU IDs one ``Cores``/``GPU`` holds (a request's count or a capacity's IDs).
MAX_IDS: Final = 2**20
#: The largest core or GPU ID.
MAX_ID: Final = 2**20 - 1
#: The largest memory size, in KiB: 1 EiB (``1048576T``).
MAX_KIB: Final = 2**50
#: The largest count of a ``Counter``: every count up to it is an exact float in ``stat()``
#: and an exact number for JSON readers.
MAX_COUNT: Final = 2**53
#: The longest finite duration, in seconds: 100 years of 365.25 days (``36525d``).
MAX_DURATION: Final = 36525 * 86400
#: Size and duration strings longer than this are refused before they are parsed.
_MAX_TEXT: Final = 64


def shown(value: object) -> str:
    """``repr(value)`` for an error message, cut short when it would be huge."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 256:
        return f"<an integer of {math.floor(value.bit_length() * math.log10(2)) + 1} digits>"
    if isinstance(value, str) and len(value) > _MAX_TEXT:
        return f"{value[:_MAX_TEXT]!r}... ({len(value)} characters)"
    if isinstance(value, list | tuple) and len(value) > 16:
        head = ", ".join(shown(item) for item in value[:8])
        return f"[{head}, ...] ({len(value)} items)"
    return repr(value)


def clipped(text: str) -> str:
    """``text`` for an error message that quotes it as written, cut short when it is long."""
    return text if len(text) <= _MAX_TEXT else f"{text[:_MAX_TEXT]}... ({len(text)} characters)"


_MEMORY_UNITS = {"K": 1, "M": 1024, "G": 1024**2, "T": 1024**3}
_MEMORY = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]{1,6})?)\s*([KMGT]?)(?:I?B)?\s*$", re.I)
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([smhd]?)\s*$", re.I)
_CLOCK = re.compile(r"^\s*(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+(?:\.\d+)?)\s*$")


def parse_kib(
    value: str | float, *, what: str = "Memory", noun: str = "memory", zero: bool = False
) -> int:
    """Parse ``16G``, ``512M``, ``0.5`` (GB) or a number of GB into whole KiB.

    Exact for any size (no float rounding on the way), so that formatting and parsing again
    gives the same count.  With ``zero``, a size of 0 is returned as 0 instead of rejected.
    Messages read ``{what}({value!r}): {noun} must ...``, e.g. ``Disk(-1): disk must ...``.

    Raises:
        ResourceError: not a size, not positive, below 1K or above ``MAX_KIB`` KiB.
    """
    if isinstance(value, bool):
        raise ResourceError(f"{what}({value!r}): {noun} must be a number of GB or a size string")
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise ResourceError(f"{what}({value!r}): {noun} must be positive and finite")
        kib = Fraction(value) * KIB_PER_GB
    elif isinstance(value, str):
        match = _MEMORY.match(value) if len(value) <= _MAX_TEXT else None
        if match is None:
            raise ResourceError(
                f"{what}({shown(value)}): not a {noun} size (use e.g. 16G, 512M, 0.5 for GB)"
            )
        number, unit = match.groups()
        # A Fraction of "1e99999999" would build a 100-million-digit integer: look at the
        # magnitude first, which a Decimal knows without expanding the exponent.
        decimal = Decimal(number)
        if decimal.is_zero():
            kib = Fraction(0)
        elif decimal.adjusted() > 30:
            raise ResourceError(f"{what}({value!r}): {noun} is at most {format_kib(MAX_KIB)}")
        elif decimal.adjusted() < -30:
            raise ResourceError(f"{what}({value!r}): {noun} must be at least 1K")
        else:
            kib = Fraction(decimal) * _MEMORY_UNITS[(unit or "G").upper()]
    else:
        raise ResourceError(
            f"{what}({shown(value)}): {noun} must be a number of GB or a size string"
        )
    if kib == 0 and zero:
        return 0
    if kib <= 0:
        raise ResourceError(f"{what}({shown(value)}): {noun} must be positive and finite")
    if kib < 1:
        raise ResourceError(f"{what}({shown(value)}): {noun} must be at least 1K")
    if kib > MAX_KIB:
        raise ResourceError(f"{what}({shown(value)}): {noun} is at most {format_kib(MAX_KIB)}")
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
    duration of 0 is returned as 0.0 instead of rejected.  Infinity is returned only when
    asked for (``inf``, ``unlimited``, or the float); callers decide where it is allowed.

    Raises:
        ResourceError: not a duration, not positive, or longer than ``MAX_DURATION``.
    """
    if isinstance(value, bool):
        raise ResourceError(
            f"{what}({field}{value!r}): a duration must be seconds or a time string"
        )
    if isinstance(value, int | float):
        if isinstance(value, float) and math.isinf(value) and value > 0:
            return math.inf
        # An int too large for a float only needs to stay too large.
        seconds = float(min(max(value, -1), MAX_DURATION + 1))
    elif isinstance(value, str):
        text = value.strip().lower()
        if text in ("inf", "unlimited", "infinite"):
            return math.inf
        match = _DURATION.match(text) if len(text) <= _MAX_TEXT else None
        clock = _CLOCK.match(text) if len(text) <= _MAX_TEXT else None
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
                f"{what}({field}{shown(value)}): not a duration (use e.g. 90, 30m, 2h, 1-00:00:00)"
            )
    else:
        raise ResourceError(
            f"{what}({field}{shown(value)}): a duration must be seconds or a time string"
        )
    if seconds == 0 and zero:
        return 0.0
    if math.isnan(seconds) or seconds <= 0:
        raise ResourceError(f"{what}({field}{shown(value)}): a duration must be positive")
    if seconds > MAX_DURATION:
        raise ResourceError(
            f"{what}({field}{shown(value)}): a duration is at most "
            f"{format_duration(MAX_DURATION)} (100 years)"
        )
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
    """Parse ``[0-3,8]`` (brackets optional) into sorted unique IDs.

    Raises:
        ResourceError: not an ID list, or an ID above ``MAX_ID`` (so that a range never
            expands into more than ``MAX_IDS`` IDs).
    """
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
            else:
                low = high = int(piece)
        except ValueError:
            raise ResourceError(
                f"{what}({shown(text)}): not an ID list (use e.g. [0-3,8])"
            ) from None
        if low < 0:
            raise ResourceError(f"{what}({shown(text)}): IDs must be non-negative")
        if high > MAX_ID:
            raise ResourceError(f"{what}({shown(text)}): an ID is at most {MAX_ID}")
        ids.update(range(low, high + 1))
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
