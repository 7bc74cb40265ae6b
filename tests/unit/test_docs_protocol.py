"""docs/protocol.md names every wire message and every field it carries."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest

from grainlike.wire import (
    MESSAGE_TYPES,
    PROTOCOL_VERSION,
    Goodbye,
    Heartbeat,
    SharedResult,
    Subtask,
    SubtaskResult,
    TaskOutcome,
    TaskSpec,
    Usage,
)

PAGE = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"

#: The records that travel inside messages, documented in tables of their own.
RECORDS: tuple[type, ...] = (TaskSpec, TaskOutcome, Usage, Subtask, SubtaskResult, SharedResult)


def rows(text: str) -> dict[str, str]:
    """Table rows by their first cell, when that cell is one name in backticks."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("| `") and cells[0].startswith("`") and cells[0].endswith("`"):
            found.setdefault(cells[0].strip("`"), line)
    return found


def undocumented(cls: type, table: dict[str, str]) -> list[str]:
    """What of ``cls`` the page leaves out: its row, or the fields its row does not name."""
    row = table.get(cls.__name__)
    if row is None:
        return [cls.__name__]
    return [f"{cls.__name__}.{f.name}" for f in attrs.fields(cls) if f"`{f.name}:" not in row]


@pytest.mark.parametrize("cls", [*MESSAGE_TYPES, *RECORDS], ids=lambda cls: cls.__name__)
def test_each_message_and_record_has_a_row_naming_all_its_fields(cls: type) -> None:
    assert undocumented(cls, rows(PAGE.read_text(encoding="utf-8"))) == []


def test_the_page_describes_the_protocol_version_the_code_speaks() -> None:
    text = PAGE.read_text(encoding="utf-8")
    assert f"The protocol version described here is {PROTOCOL_VERSION} " in text


def test_the_check_fails_for_a_message_or_field_the_page_leaves_out() -> None:
    """A message without a row, and a row without one of its fields, are both reported."""
    table = rows("| `Heartbeat` | either side | none | still alive |\n")
    assert undocumented(Heartbeat, table) == ["Heartbeat.sent"]
    assert undocumented(Goodbye, table) == ["Goodbye"]
