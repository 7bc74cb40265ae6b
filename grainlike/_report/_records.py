"""Reading a run's events from a file: the JSON-lines event log of ``grainlike run --events``,
or the journal of ``grainlike run --journal`` (its last run).

``read_records`` looks at the file's first bytes to tell its format, so that another source of
the same events (the SQLite journal of a durable run) plugs in beside the event log.
Each record is checked against the schema in ``grainlike.dispatch``: the fields an event needs
are there, times are numbers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs

from .._exceptions import ConfigError
from ..dispatch import (
    TaskCancelled,
    TaskFailed,
    TaskFinished,
    TaskPlaced,
    TaskRetried,
    TaskStarted,
    TaskSubmitted,
    WorkerDrained,
    WorkerJoined,
    WorkerLost,
    journal_events,
)

__all__ = ["EventRecords", "read_records"]

_SQLITE_MAGIC = b"SQLite format 3\x00"

_EVENTS = (
    TaskSubmitted,
    TaskPlaced,
    TaskStarted,
    TaskFinished,
    TaskFailed,
    TaskCancelled,
    TaskRetried,
    WorkerJoined,
    WorkerLost,
    WorkerDrained,
)


_NONE = type(None)

#: The JSON types a field may have, by the annotation of the event class's field (JSON gives
#: ``bool`` for true and false, which is not a number here).
_TYPES: dict[str, frozenset[type]] = {
    "float": frozenset({int, float}),
    "float | None": frozenset({int, float, _NONE}),
    "int": frozenset({int}),
    "int | None": frozenset({int, _NONE}),
    "str": frozenset({str}),
    "str | None": frozenset({str, _NONE}),
    "tuple[int, ...]": frozenset({list}),
    "Usage | None": frozenset({dict, _NONE}),
}


class _Missing:
    """The value of a field a record lacks."""


_MISSING = _Missing()


@attrs.frozen
class _EventSchema:
    """What a record of one event type must look like, read off its event class."""

    required: frozenset[str]
    fields: tuple[str, ...]
    annotations: tuple[str, ...]
    types: tuple[frozenset[type], ...]
    lists: tuple[str, ...]

    @classmethod
    def of(cls, event: type) -> _EventSchema:
        checked = [f for f in attrs.fields(event) if str(f.type) in _TYPES]
        return cls(
            frozenset({f.name for f in attrs.fields(event) if f.default is attrs.NOTHING} | {"at"}),
            tuple(f.name for f in checked),
            tuple(str(f.type) for f in checked),
            tuple(_TYPES[str(f.type)] for f in checked),
            tuple(f.name for f in checked if list in _TYPES[str(f.type)]),
        )

    def signature(self, record: dict[str, Any]) -> tuple[type, ...]:
        """The types of the record's fields (``_Missing`` for those it lacks)."""
        return tuple(map(type, map(record.get, self.fields, (_MISSING,) * len(self.fields))))

    def problem(self, record: dict[str, Any]) -> str | None:
        """What is wrong with a record whose signature was not seen before, if anything."""
        missing = sorted(self.required - record.keys())
        if missing:
            return f"without {', '.join(missing)}"
        for field, annotation, types in zip(self.fields, self.annotations, self.types, strict=True):
            if field in record and type(record[field]) not in types:
                return f"has {field}={record[field]!r}, not {annotation}"
        return None


_SCHEMA = {event.__name__: _EventSchema.of(event) for event in _EVENTS}
_INT = frozenset({int})


@attrs.frozen
class EventRecords:
    """The events of one run as JSON-ready dicts (``event_record``'s form), in order.

    Attributes:
        source: The file they came from.
        records: One dict per event, with its type under ``"event"``.
        notes: What the reader skipped and why (for the report to show).
    """

    source: str
    records: tuple[dict[str, Any], ...]
    notes: tuple[str, ...] = ()


def read_records(path: str | Path) -> EventRecords:
    """The events stored in ``path``, checked against the event schema.

    Raises:
        ConfigError: the file is missing, not an event log, or a line is malformed; the
            message names the file and the line.
    """
    path = Path(path)
    try:
        with path.open("rb") as stream:
            head = stream.read(len(_SQLITE_MAGIC))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot read it ({error.strerror})") from None
    if head == _SQLITE_MAGIC:  # the journal of a durable run (docs/durable-runs.md)
        events = journal_events(path)
        if not events:
            raise ConfigError(f"{path}: the journal's last run recorded no events")
        return EventRecords(str(path), tuple(events))
    records, notes = _read_json_lines(path)
    if not records:
        raise ConfigError(f"{path}: no events (write them with `grainlike run --events FILE`)")
    return EventRecords(str(path), tuple(records), tuple(notes))


def _read_json_lines(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.split("\n")
    numbers = [number for number, line in enumerate(lines, start=1) if line.strip()]
    # One call of the JSON decoder for the whole file is several times faster than one per
    # line; when it fails, the lines are decoded one by one to find the one at fault.
    try:
        records = json.loads("[" + ",".join(lines[number - 1] for number in numbers) + "]")
    except ValueError:
        records = []
    notes: list[str] = []
    if len(records) != len(numbers):
        records, numbers, notes = _decode_each(path, lines, numbers)
    kept = []
    # Records of one event type nearly all have the same field types: each new combination
    # is checked once, and then only the elements of lists (core and GPU IDs) are.
    valid: set[tuple[str, tuple[type, ...]]] = set()
    for number, record in zip(numbers, records, strict=True):
        name = record.get("event") if type(record) is dict else None
        if type(name) is not str:
            line = lines[number - 1].strip()[:80]
            raise ConfigError(f"{path}:{number}: not an event (no event name): {line}")
        schema = _SCHEMA.get(name)
        if schema is None:
            continue  # an event this version does not know: the log stays readable
        signature = (name, schema.signature(record))
        if signature not in valid:
            problem = schema.problem(record)
            if problem is not None:
                raise ConfigError(f"{path}:{number}: {name} {problem}")
            valid.add(signature)
        for field in schema.lists:
            items = record.get(field)
            if items and not set(map(type, items)) <= _INT:
                raise ConfigError(f"{path}:{number}: {name} has {field}={items!r}, not IDs")
        kept.append(record)
    return kept, notes


def _decode_each(
    path: Path, lines: list[str], numbers: list[int]
) -> tuple[list[Any], list[int], list[str]]:
    records, kept, notes = [], [], []
    for number in numbers:
        try:
            records.append(json.loads(lines[number - 1]))
        except ValueError as error:
            if number == len(lines):  # no newline after it: the run was killed mid-write
                notes.append(f"line {number} was cut short and is left out")
                break
            raise ConfigError(f"{path}:{number}: not a JSON event ({error})") from None
        kept.append(number)
    return records, kept, notes
