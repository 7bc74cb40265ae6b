"""Units of the grammar (grainlike/resource/_units.py): sizes, durations, ID lists."""

from __future__ import annotations

import math
import re

import pytest

from grainlike import ResourceError
from grainlike.resource._units import (
    KIB_PER_GB,
    format_duration,
    format_ids,
    format_kib,
    parse_duration,
    parse_ids,
    parse_kib,
)


@pytest.mark.parametrize(
    ("value", "kib"),
    [
        (1, KIB_PER_GB),
        (0.5, KIB_PER_GB // 2),
        ("3K", 3),
        ("3k", 3),
        ("2M", 2048),
        ("2MiB", 2048),
        ("1.5G", 3 * KIB_PER_GB // 2),
        ("1T", 1024 * KIB_PER_GB),
        ("1e3M", 1000 * 1024),
        (" 4 G ", 4 * KIB_PER_GB),
    ],
)
def test_parse_kib(value: str | float, kib: int) -> None:
    assert parse_kib(value) == kib


def test_parse_kib_is_exact_for_huge_sizes() -> None:
    assert parse_kib(f"{2**60 + 1}K") == 2**60 + 1


def test_parse_kib_zero_only_when_allowed() -> None:
    assert parse_kib("0M", zero=True) == 0
    with pytest.raises(ResourceError, match=re.escape("Memory('0M'): memory must be positive")):
        parse_kib("0M")


@pytest.mark.parametrize(
    ("kib", "text"),
    [(1024**3, "1T"), (3 * 1024**2, "3G"), (1536 * 1024, "1536M"), (1000, "1000K"), (1, "1K")],
)
def test_format_kib_is_the_shortest_exact_spelling(kib: int, text: str) -> None:
    assert format_kib(kib) == text
    assert parse_kib(text) == kib


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (90, 90.0),
        (0.25, 0.25),
        ("90", 90.0),
        ("90s", 90.0),
        ("30m", 1800.0),
        ("2H", 7200.0),
        ("1d", 86400.0),
        ("1e2s", 100.0),
        ("00:01:30", 90.0),
        ("01:30", 90.0),
        ("2-00:00:01", 172801.0),
        ("inf", math.inf),
        ("unlimited", math.inf),
    ],
)
def test_parse_duration(value: str | float, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0, "WTime(0): a duration must be positive"),
        (-1.0, "WTime(-1.0): a duration must be positive"),
        (math.nan, "WTime(nan): a duration must be positive"),
        ("soon", "WTime('soon'): not a duration"),
        ("1:2:3:4", "WTime('1:2:3:4'): not a duration"),
        (True, "WTime(True): a duration must be seconds or a time string"),
    ],
)
def test_bad_durations_are_named(value: str | float, message: str) -> None:
    with pytest.raises(ResourceError, match=re.escape(message)):
        parse_duration(value)


def test_parse_duration_zero_only_when_allowed() -> None:
    assert parse_duration("00:00:00", zero=True) == 0.0
    with pytest.raises(ResourceError, match=re.escape("WTime(T='0s')")):
        parse_duration("0s", field="T=")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (172800.0, "2d"),
        (7200.0, "2h"),
        (5400.0, "90m"),
        (45.0, "45s"),
        (1.5, "1.5s"),
        (math.inf, "inf"),
        (1e20, "1e+20s"),
    ],
)
def test_format_duration_spells_back_exactly(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "ids"),
    [("[0-3,8]", (0, 1, 2, 3, 8)), ("0-1", (0, 1)), ("[5,1,5]", (1, 5)), ("[7]", (7,))],
)
def test_parse_ids(text: str, ids: tuple[int, ...]) -> None:
    assert parse_ids(text, what="Cores") == ids


@pytest.mark.parametrize("text", ["[a]", "[3-1]", "[1,,2]", "[-1]"])
def test_bad_id_lists_are_named(text: str) -> None:
    with pytest.raises(ResourceError, match=re.escape(f"Cores({text!r})")):
        parse_ids(text, what="Cores")


def test_format_ids_collapses_runs() -> None:
    assert format_ids([0, 1, 2, 3, 8, 10, 11]) == "[0-3,8,10-11]"
    assert format_ids([]) == "[]"
