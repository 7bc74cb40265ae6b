"""Units of the grammar (grainlike/resource/_units.py): sizes, durations, ID lists."""

from __future__ import annotations

import math
import re

import pytest

from grainlike import ResourceError
from grainlike.resource._units import (
    KIB_PER_GB,
    MAX_DURATION,
    MAX_ID,
    MAX_KIB,
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


def test_parse_kib_is_exact_up_to_the_largest_size() -> None:
    assert parse_kib(f"{MAX_KIB - 1}K") == MAX_KIB - 1
    assert parse_kib(f"{MAX_KIB}K") == MAX_KIB
    assert parse_kib("1048576T") == MAX_KIB


@pytest.mark.parametrize(
    "value",
    [
        f"{MAX_KIB + 1}K",
        "1048577T",
        "82e888",
        "1e5000",
        "1e999999",
        1e300,
        2**60,
        pytest.param(10**5000, id="10**5000"),
    ],
)
def test_parse_kib_refuses_more_than_1_eib_quickly(value: str | float) -> None:
    with pytest.raises(ResourceError, match=r"memory is at most 1048576T"):
        parse_kib(value)


@pytest.mark.parametrize("value", ["1e-999999K", "1e-40"])
def test_parse_kib_refuses_tiny_sizes_quickly(value: str) -> None:
    with pytest.raises(ResourceError, match="at least 1K"):
        parse_kib(value)


def test_a_size_string_too_long_to_be_one_is_refused_without_echoing_it() -> None:
    text = "1" * 10_000 + "K"
    with pytest.raises(ResourceError, match=r"not a memory size") as info:
        parse_kib(text)
    assert "10001 characters" in str(info.value)
    assert len(str(info.value)) < 200


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
        (float(MAX_DURATION), "36525d"),
        (1e9 + 0.5, "1000000000.5s"),
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


def test_durations_up_to_100_years_are_accepted() -> None:
    assert MAX_DURATION == 36525 * 86400
    assert parse_duration(MAX_DURATION) == MAX_DURATION
    assert parse_duration("36525d") == MAX_DURATION
    assert parse_duration("36525-00:00:00") == MAX_DURATION


@pytest.mark.parametrize(
    "value",
    [MAX_DURATION + 1, "36526d", "36525-00:00:01", "1e5000", "1e308d", 1e300, 10**400],
)
def test_a_duration_longer_than_100_years_is_refused(value: str | float) -> None:
    with pytest.raises(ResourceError, match=r"a duration is at most 36525d \(100 years\)"):
        parse_duration(value, field="T=")


def test_infinity_is_returned_only_when_asked_for() -> None:
    assert parse_duration("inf") == math.inf
    assert parse_duration(math.inf) == math.inf
    with pytest.raises(ResourceError, match="must be positive"):
        parse_duration(-math.inf)
    with pytest.raises(ResourceError, match="must be positive"):
        parse_duration(-(10**400))


def test_a_duration_string_too_long_to_be_one_is_refused() -> None:
    with pytest.raises(ResourceError, match="not a duration"):
        parse_duration("9" * 5000 + "-00:00:00")


def test_ids_up_to_the_largest_are_parsed_and_beyond_refused() -> None:
    assert parse_ids(f"[{MAX_ID}]", what="Cores") == (MAX_ID,)
    assert len(parse_ids(f"[0-{MAX_ID}]", what="Cores")) == MAX_ID + 1
    for text in (f"[{MAX_ID + 1}]", f"[0-{MAX_ID + 1}]", "[0-1000000000000]"):
        with pytest.raises(ResourceError, match=f"an ID is at most {MAX_ID}"):
            parse_ids(text, what="Cores")


def test_an_id_too_long_to_be_a_number_is_not_an_id_list() -> None:
    with pytest.raises(ResourceError, match="not an ID list"):
        parse_ids("[" + "1" * 5000 + "]", what="Cores")
