"""Learned sizes in the dispatcher: ``Memory(group=...)`` and ``Disk(group=...)`` requests are
sized by the largest worker, then their first guess, then their learned label; a task over its
label is retried once with twice it."""

from __future__ import annotations

import math
from pathlib import Path

import outcome
import pytest

from grainlike import ConfigError, Cores, Disk, LearningRule, Memory, MemoryLimitError
from grainlike.dispatch import Dispatcher, LearnedLimits, TaskRetried
from grainlike.dispatch._measured import first_size
from grainlike.dispatch._records import Task
from grainlike.wire import Usage

from .test_dispatcher import FakeLink, attach, serving, settle, submit

MB = 2**20


def measured(
    dispatcher: Dispatcher, worker: str, task: Task, peak: int, disk: int | None = None
) -> None:
    usage = Usage(1.0, 0.5, peak, disk)
    dispatcher.task_done(worker, task.id, task.attempt, outcome.Value(None), 1.0, usage)


def memory_of(task: Task) -> float:
    assert task.allocation is not None
    return task.allocation.M


def disk_of(task: Task) -> float:
    disk = task.allocation.get(Disk) if task.allocation is not None else None
    assert disk is not None
    return disk.gb


async def test_an_unlabelled_group_takes_the_largest_workers_memory_until_it_is_learned() -> None:
    async with serving() as dispatcher:
        small = attach(dispatcher, "small", "cores:4,mem:4G")
        big = attach(dispatcher, "big", "cores:4,mem:8G")
        request = Cores(1) & Memory(group="relax")
        first = [submit(dispatcher, request) for _ in range(5)]
        await settle()
        # Each takes 8G, all the big worker has: one at a time, never on the small one.
        assert [memory_of(t) for t in big.started] == [8.0] and small.started == []
        for n in range(5):
            measured(dispatcher, "big", big.started[n], 150 * MB)
            await settle()
        assert all(handle.done() for handle in first)
        assert dispatcher.learned.label("mem", "relax") == 165 * 1024  # 150M + 10 %
        later = [submit(dispatcher, request) for _ in range(6)]
        await settle()
        # Labelled, they pack by the label, on both workers.
        assert len(small.started) + len(big.started) - 5 == 6
        assert {memory_of(t) for t in small.started} == {165 / 1024}
        for handle in later:
            handle.cancel()


async def test_a_first_guess_is_used_until_the_group_is_learned() -> None:
    async with serving() as dispatcher:
        link = attach(dispatcher, "w", "cores:8,mem:8G")
        handles = [submit(dispatcher, Cores(1) & Memory(2, group="g")) for _ in range(5)]
        await settle()
        assert [memory_of(t) for t in link.started] == [2.0] * 4  # 4 of 2G on 8G
        for task in list(link.started):
            measured(dispatcher, "w", task, 100 * MB)
        await settle()
        measured(dispatcher, "w", link.started[4], 100 * MB)
        await settle()
        assert all(h.done() for h in handles)
        assert dispatcher.learned.label("mem", "g") == 110 * 1024
        submit(dispatcher, Cores(1) & Memory(2, group="g"))
        await settle()
        assert memory_of(link.started[-1]) == pytest.approx(110 / 1024)
        dispatcher.cancel_all()


async def test_a_disk_group_is_learned_from_the_peak_of_its_scratch_directory() -> None:
    async with serving() as dispatcher:
        link = attach(dispatcher, "w", "cores:8,mem:8G,disk:100G")
        for n in range(5):
            submit(dispatcher, Cores(1) & Disk(group="scratchy"))
            await settle()
            assert disk_of(link.started[n]) == 100
            measured(dispatcher, "w", link.started[n], 10 * MB, disk=2 * 1024 * MB)
            await settle()
        assert dispatcher.learned.label("disk", "scratchy") == math.ceil(2 * 1024**2 * 1.1)
        submit(dispatcher, Cores(1) & Disk(group="scratchy"))
        await settle()
        assert disk_of(link.started[-1]) == pytest.approx(2.2)
        dispatcher.cancel_all()


def over(dispatcher: Dispatcher, worker: str, task: Task) -> None:
    error = MemoryLimitError(f"task {task.id} used too much")
    dispatcher.task_done(worker, task.id, task.attempt, outcome.Error(error), 1.0)


async def labelled(dispatcher: Dispatcher, link: FakeLink, label_mb: int) -> None:
    """Teach group ``g`` a label of ``label_mb`` (peaks of label_mb / 1.1)."""
    for _ in range(5):
        submit(dispatcher, Cores(1) & Memory(group="g"))
        await settle()
        measured(dispatcher, "w", link.started[-1], round(label_mb * MB / 1.1))
        await settle()


async def test_a_task_over_its_label_is_retried_once_with_twice_it_and_may_then_succeed() -> None:
    async with serving() as dispatcher:
        retried: list[TaskRetried] = []
        dispatcher.events.subscribe(
            lambda e: retried.append(e) if isinstance(e, TaskRetried) else None
        )
        link = attach(dispatcher, "w", "cores:4,mem:8G")
        await labelled(dispatcher, link, 1024)
        handle = submit(dispatcher, Cores(1) & Memory(group="g"))
        await settle()
        task = link.started[-1]
        assert memory_of(task) == pytest.approx(1.0, rel=1e-3)
        over(dispatcher, "w", task)
        await settle()
        assert link.started[-1] is task and memory_of(task) == pytest.approx(2.0, rel=1e-3)
        assert [r.reason for r in retried] == ["over its memory label: retried once with 2G"]
        measured(dispatcher, "w", task, 1900 * MB)  # the outlier's peak teaches the group
        await settle()
        assert await handle is None
        assert dispatcher.learned.label("mem", "g") == 2090 * 1024
        # Others of the group are not held at twice the label by that retry.
        submit(dispatcher, Cores(1) & Memory(group="g"))
        await settle()
        assert memory_of(link.started[-1]) == pytest.approx(2090 / 1024)
        dispatcher.cancel_all()


async def test_a_task_over_twice_its_label_fails_after_exactly_one_retry() -> None:
    async with serving() as dispatcher:
        link = attach(dispatcher, "w", "cores:4,mem:8G")
        await labelled(dispatcher, link, 1024)
        handle = submit(dispatcher, Cores(1) & Memory(group="g"))
        await settle()
        task = link.started[-1]
        over(dispatcher, "w", task)
        await settle()
        over(dispatcher, "w", task)
        await settle()
        with pytest.raises(MemoryLimitError, match="after one retry with twice its label"):
            await handle
        assert task.attempt == 2


async def test_the_retry_is_capped_at_the_largest_workers_memory() -> None:
    async with serving() as dispatcher:
        link = attach(dispatcher, "w", "cores:4,mem:3G")
        await labelled(dispatcher, link, 2048)
        handle = submit(dispatcher, Cores(1) & Memory(group="g"))
        await settle()
        over(dispatcher, "w", link.started[-1])
        await settle()
        assert memory_of(link.started[-1]) == pytest.approx(3.0)
        handle.cancel()


async def test_a_task_that_held_all_of_the_largest_worker_is_not_retried() -> None:
    async with serving() as dispatcher:
        link = attach(dispatcher, "w", "cores:4,mem:3G")
        handle = submit(dispatcher, Cores(1) & Memory(group="g"))  # no label: takes all 3G
        await settle()
        over(dispatcher, "w", link.started[-1])
        with pytest.raises(MemoryLimitError, match=r"used too much$"):
            await handle


async def test_a_label_is_never_more_than_the_largest_worker_has() -> None:
    async with serving() as dispatcher:
        link = attach(dispatcher, "w", "cores:4,mem:1G")
        await labelled(dispatcher, link, 1100)  # peaks of 1000M: the label would be 1100M
        submit(dispatcher, Cores(1) & Memory(group="g"))
        await settle()
        assert memory_of(link.started[-1]) == pytest.approx(1.0)
        dispatcher.cancel_all()


def test_labels_survive_a_restart_from_the_store(tmp_path: Path) -> None:
    path = tmp_path / "learned.db"
    learned = LearnedLimits.open(path)
    for peak in (100, 140, 120, 90, 130):
        learned.record_usage(["g"], 2.0, 1.0, peak * MB, None, memory="g")
    learned.close()
    again = LearnedLimits.open(path)
    assert again.label("mem", "g") == 154 * 1024
    assert again.measured.median("mem", "g") == 120 * MB
    row = again.measured.row("cores", "g")
    assert row is not None and row[0] == 5 and row[1] == pytest.approx(0.5)
    again.close()


def test_the_size_rule_is_configurable_and_checked() -> None:
    learned = LearnedLimits(LearningRule(size_samples=2, size_margin=0.5))
    learned.record_usage(["g"], 1.0, 1.0, 100 * MB, None, memory="g")
    assert learned.label("mem", "g") is None
    learned.record_usage(["g"], 1.0, 1.0, 80 * MB, None, memory="g")
    assert learned.label("mem", "g") == 150 * 1024
    with pytest.raises(ConfigError, match=r"size_samples=0"):
        LearningRule(size_samples=0)
    with pytest.raises(ConfigError, match=r"size_margin=-0.1"):
        LearningRule(size_margin=-0.1)


def test_implausible_measurements_are_ignored() -> None:
    learned = LearnedLimits(LearningRule(size_samples=1))
    learned.record_usage(["g"], float("nan"), 1.0, 100 * MB, None, memory="g")
    assert learned.rejected == 1
    assert learned.label("mem", "g") == 110 * 1024
    learned.record_usage(["g"], 1.0, 1.0, 0, None, memory="g")  # no process ran: no peak
    assert learned.measured.row("mem", "g") == (1, 100 * MB, 0.0, 100 * MB)


def test_the_throughput_mode_labels_a_group_below_its_rare_outliers() -> None:
    # Tovar et al.: when few tasks need much more, a label at the common size lets many more
    # run at once, and the few over it run again with the largest.
    peaks = [100.0] * 18 + [1000.0] * 2
    assert first_size(peaks, 1000.0) == 100.0
    # When half need a little more, reruns cost more than they save: the largest.
    assert first_size([600.0] * 10 + [1000.0] * 10, 1000.0) == 1000.0
    # Too few peaks to tell a tail from noise: the largest.
    assert first_size([100.0] * 8 + [1000.0], 1000.0) == 1000.0
    learned = LearnedLimits(LearningRule(size_mode="throughput"))
    for peak in peaks:
        learned.record_usage(["g"], 1.0, 1.0, int(peak * MB), None, memory="g")
    assert learned.label("mem", "g") == 110 * 1024
    assert learned.largest_label("mem", "g") == 1100 * 1024
    with pytest.raises(ConfigError, match="size_mode='best'"):
        LearningRule(size_mode="best")


async def test_in_throughput_mode_a_task_over_its_label_reruns_with_the_largest() -> None:
    rule = LearningRule(size_mode="throughput")
    async with serving() as dispatcher:
        dispatcher.learned = LearnedLimits(rule)
        link = attach(dispatcher, "w", "cores:4,mem:8G")
        for peak in [100] * 18 + [1000] * 2:
            dispatcher.learned.record_usage(["g"], 1.0, 1.0, peak * MB, None, memory="g")
        handle = submit(dispatcher, Cores(1) & Memory(group="g"))
        await settle()
        assert memory_of(link.started[-1]) == pytest.approx(110 / 1024)
        over(dispatcher, "w", link.started[-1])
        await settle()
        assert memory_of(link.started[-1]) == pytest.approx(1100 / 1024)  # not just twice
        handle.cancel()


async def test_the_next_task_of_a_group_is_sized_by_the_run_that_just_ended() -> None:
    async with serving() as dispatcher:
        link = attach(dispatcher, "w", "cores:1,mem:8G")
        handles = [submit(dispatcher, Cores(1) & Memory(group="g")) for _ in range(6)]
        given = []
        for _ in range(5):
            await settle()
            given.append(memory_of(link.started[-1]))
            measured(dispatcher, "w", link.started[-1], 100 * MB)
        await settle()
        assert given == [8.0] * 5
        # The sixth was handed the fifth's core as it ended: with the label, not all 8G.
        assert memory_of(link.started[5]) == pytest.approx(110 / 1024)
        handles[5].cancel()
