"""A hand-written codec for the messages that carry every task: ``RunTasks``, ``TasksStarted``
and ``TasksFinished``, and for subtasks ``SubmitTasks`` and ``SubtasksFinished``.

The general codec (cattrs, ``_converter.py``) spends more per task than a trivial task takes
to run.  These cross as positional arrays instead of maps, decoded with the same strict
checks (anything malformed is a ``ProtocolError``, never a coerced value).  An allocation
crosses as the msgpack bytes of its kinds, made once per allocation object on the sending side
and decoded once per distinct allocation on the receiving side: a worker sees the same few
allocations again and again (one per set of cores it has), and a chain sends one allocation
for many tasks.

Bodies:

- ``RunTasks``: ``[[task_id, payload, allocation, hard_limit, attempt, after], ...]``.
- ``TasksStarted``: ``[[task_id, ...], [attempt, ...]]``.
- ``TasksFinished``: ``[[task_id, attempt, ok, payload, duration, finished, usage], ...]``
  with ``usage`` ``None`` or ``[wall, cpu, peak_rss, peak_disk]``.
- ``SubmitTasks``: ``[[ref, parent, payload, request, name, priority, retries], ...]``, the
  request as the bytes of its kinds, like an allocation.
- ``SubtasksFinished``: ``[[ref, ok, payload], ...]``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import msgpack

from .._exceptions import ProtocolError
from ..resource import IdSet, Resources
from ._checks import check_float, check_int, check_list, check_optional_float, check_str, short
from ._kind_codec import KindCodec
from ._messages import (
    Message,
    RunTasks,
    SubmitTasks,
    Subtask,
    SubtaskResult,
    SubtasksFinished,
    TaskOutcome,
    TasksFinished,
    TaskSpec,
    TasksStarted,
    Usage,
)

__all__ = ["HotCodec", "mark_granted"]

#: Distinct allocations remembered on each side; a worker has a few, a dispatcher more.
_CACHE_SIZE: Final = 4096


def mark_granted(allocation: Resources) -> Resources:
    """Mark an allocation decoded from the wire as one, so that its cores and GPUs print as
    the IDs the task was given (``cores:[0]``), as they do where it was made."""
    for part in allocation.parts():
        if isinstance(part, IdSet):
            part.mark_received()
    return allocation


class _AllocationCodec:
    """Allocations as bytes, remembered both ways."""

    def __init__(self, kinds: KindCodec, *, granted: bool = False) -> None:
        self._kinds = kinds
        self._granted = granted  # allocations granted to tasks, not requests
        self._bytes: dict[int, tuple[Resources, bytes]] = {}
        self._values: dict[bytes, Resources] = {}

    def pack(self, allocation: Resources) -> bytes:
        cached = self._bytes.get(id(allocation))
        if cached is not None and cached[0] is allocation:
            return cached[1]
        data: bytes = msgpack.packb(self._kinds.unstructure_resources(allocation))
        if len(self._bytes) >= _CACHE_SIZE:
            self._bytes.clear()
        self._bytes[id(allocation)] = (allocation, data)
        return data

    def unpack(self, data: object) -> Resources:
        if type(data) is not bytes:
            raise ProtocolError(f"an allocation crosses as bytes, got {short(data)}")
        allocation = self._values.get(data)
        if allocation is None:
            try:
                raw = msgpack.unpackb(data, raw=False, strict_map_key=True)
            except Exception as exc:
                raise ProtocolError(f"an allocation of {len(data)} bytes is not msgpack") from exc
            allocation = self._kinds.structure_resources(raw)
            if self._granted:
                mark_granted(allocation)
            if len(self._values) >= _CACHE_SIZE:
                self._values.clear()
            self._values[data] = allocation
        return allocation


def _row(item: object, size: int, what: str) -> list[Any]:
    if type(item) is not list or len(item) != size:
        raise ProtocolError(f"{what}: expected a list of {size} fields, got {short(item)}")
    return item


def _bytes(value: object, what: str) -> bytes:
    if type(value) is not bytes:
        raise ProtocolError(f"{what}: expected bytes, got {short(value)}")
    return value


def _optional_int(value: object, what: str) -> int | None:
    return None if value is None else check_int(value, what)


class HotCodec:
    """Encoders and decoders of the hot messages, with one codec for the allocations that
    tasks are granted and one for the requests of subtasks."""

    def __init__(self, kinds: KindCodec) -> None:
        self._allocations = _AllocationCodec(kinds, granted=True)
        self._requests = _AllocationCodec(kinds)
        self.encoders: dict[type[Message], Callable[[Any], Any]] = {
            RunTasks: self._encode_run_tasks,
            TasksStarted: self._encode_started,
            TasksFinished: self._encode_finished,
            SubmitTasks: self._encode_submit,
            SubtasksFinished: self._encode_subtasks_finished,
        }
        self.decoders: dict[type[Message], Callable[[object], Message]] = {
            RunTasks: self._decode_run_tasks,
            TasksStarted: self._decode_started,
            TasksFinished: self._decode_finished,
            SubmitTasks: self._decode_submit,
            SubtasksFinished: self._decode_subtasks_finished,
        }

    def _encode_run_tasks(self, message: RunTasks) -> list[Any]:
        pack = self._allocations.pack
        return [
            [s.task_id, s.payload, pack(s.allocation), s.hard_limit, s.attempt, s.after]
            for s in message.tasks
        ]

    def _decode_run_tasks(self, body: object) -> RunTasks:
        unpack = self._allocations.unpack
        specs = []
        for item in check_list(body, "RunTasks tasks"):
            task_id, payload, allocation, hard_limit, attempt, after = _row(item, 6, "TaskSpec")
            specs.append(
                TaskSpec(
                    check_int(task_id, "TaskSpec task_id"),
                    _bytes(payload, "TaskSpec payload"),
                    unpack(allocation),
                    check_optional_float(hard_limit, "TaskSpec hard_limit"),
                    check_int(attempt, "TaskSpec attempt"),
                    _optional_int(after, "TaskSpec after"),
                )
            )
        return RunTasks(tuple(specs))

    def _encode_started(self, message: TasksStarted) -> list[Any]:
        return [list(message.task_ids), list(message.attempts)]

    def _decode_started(self, body: object) -> TasksStarted:
        ids, attempts = _row(body, 2, "TasksStarted")
        return TasksStarted(
            tuple(check_int(i, "TasksStarted task ID") for i in check_list(ids, "task IDs")),
            tuple(check_int(a, "TasksStarted attempt") for a in check_list(attempts, "attempts")),
        )

    def _encode_finished(self, message: TasksFinished) -> list[Any]:
        rows = []
        for o in message.outcomes:
            usage = o.usage
            packed = None
            if usage is not None:
                packed = [usage.wall, usage.cpu, usage.peak_rss, usage.peak_disk]
            rows.append([o.task_id, o.attempt, o.ok, o.payload, o.duration, o.finished, packed])
        return rows

    def _decode_finished(self, body: object) -> TasksFinished:
        outcomes = []
        for item in check_list(body, "TasksFinished outcomes"):
            task_id, attempt, ok, payload, duration, finished, usage = _row(item, 7, "TaskOutcome")
            if type(ok) is not bool:
                raise ProtocolError(f"TaskOutcome ok: expected a boolean, got {short(ok)}")
            outcomes.append(
                TaskOutcome(
                    check_int(task_id, "TaskOutcome task_id"),
                    check_int(attempt, "TaskOutcome attempt"),
                    ok,
                    _bytes(payload, "TaskOutcome payload"),
                    check_float(duration, "TaskOutcome duration"),
                    check_float(finished, "TaskOutcome finished"),
                    None if usage is None else _usage(usage),
                )
            )
        return TasksFinished(tuple(outcomes))

    def _encode_submit(self, message: SubmitTasks) -> list[Any]:
        pack = self._requests.pack
        return [
            [t.ref, t.parent, t.payload, pack(t.request), t.name, t.priority, t.retries]
            for t in message.tasks
        ]

    def _decode_submit(self, body: object) -> SubmitTasks:
        unpack = self._requests.unpack
        subtasks = []
        for item in check_list(body, "SubmitTasks tasks"):
            ref, parent, payload, request, name, priority, retries = _row(item, 7, "Subtask")
            retries = check_int(retries, "Subtask retries")
            if retries < 0:
                raise ProtocolError(f"Subtask retries: expected 0 or more, got {retries}")
            subtasks.append(
                Subtask(
                    check_int(ref, "Subtask ref"),
                    check_int(parent, "Subtask parent"),
                    _bytes(payload, "Subtask payload"),
                    unpack(request),
                    check_str(name, "Subtask name"),
                    check_int(priority, "Subtask priority"),
                    retries,
                )
            )
        return SubmitTasks(tuple(subtasks))

    def _encode_subtasks_finished(self, message: SubtasksFinished) -> list[Any]:
        return [[r.ref, r.ok, r.payload] for r in message.results]

    def _decode_subtasks_finished(self, body: object) -> SubtasksFinished:
        results = []
        for item in check_list(body, "SubtasksFinished results"):
            ref, ok, payload = _row(item, 3, "SubtaskResult")
            if type(ok) is not bool:
                raise ProtocolError(f"SubtaskResult ok: expected a boolean, got {short(ok)}")
            results.append(
                SubtaskResult(check_int(ref, "SubtaskResult ref"), ok, _bytes(payload, "payload"))
            )
        return SubtasksFinished(tuple(results))


def _usage(data: object) -> Usage:
    wall, cpu, peak_rss, peak_disk = _row(data, 4, "Usage")
    return Usage(
        check_float(wall, "Usage wall"),
        check_float(cpu, "Usage cpu"),
        check_int(peak_rss, "Usage peak_rss"),
        _optional_int(peak_disk, "Usage peak_disk"),
    )
