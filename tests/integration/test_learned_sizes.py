"""Learned memory labels with real processes: children that touch about 150 MB teach their group a
label, tasks then pack by it, and an outlier over it is killed and retried once with twice it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import trio

import grainlike as gl
from grainlike import Cores, Memory, MemoryLimitError
from grainlike.dispatch import TaskRetried

pytestmark = pytest.mark.slow

MB = 2**20

#: A child that holds ``MB`` megabytes resident for a while.
FILL = "import sys, time; block = b'x' * (int(sys.argv[1]) * 2**20); time.sleep(float(sys.argv[2]))"

spans: list[tuple[float, float]] = []


async def fill(mb: int, seconds: float = 1.2) -> int:
    start = trio.current_time()
    await gl.run_process([sys.executable, "-c", FILL, str(mb), str(seconds)])
    spans.append((start, trio.current_time()))
    return mb


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


async def test_a_group_learns_its_label_and_then_three_fit_where_one_did(tmp_path: Path) -> None:
    store = tmp_path / "learned.db"
    relax = fill @ Cores(1) & Memory(group="relax")
    async with gl.open_session(stats=store, resources="cores:3,mem:1G") as session:
        spans.clear()
        assert await gl.gather(*[relax(150) for _ in range(5)]) == [150] * 5
        assert most_at_once(spans) == 1  # unlabelled, each took the whole 1G
        label = session.dispatcher.learned.label("mem", "relax")
        assert label is not None
        # The largest tree peak (the child, ~150M, and Python's own ~10-20M), plus 10 %.
        assert 150 * 1.1 * 1024 <= label <= 200 * 1.1 * 1024
        spans.clear()
        await gl.gather(*[relax(150) for _ in range(6)])
        assert most_at_once(spans) == 3  # labelled: three at once on 3 cores and 1G
        # Those six were measured too: a larger peak among them raises the label.
        label = session.dispatcher.learned.label("mem", "relax")
    # A new run reads the label from the store.
    async with gl.open_session(stats=store, resources="cores:3,mem:1G") as session:
        assert session.dispatcher.learned.label("mem", "relax") == label


async def test_an_outlier_over_its_label_is_killed_and_retried_once_with_twice_it(
    tmp_path: Path,
) -> None:
    relax = fill @ Cores(1) & Memory(group="relax")
    retried: list[TaskRetried] = []
    async with gl.open_session(stats=tmp_path / "learned.db", resources="cores:2,mem:4G") as s:
        s.dispatcher.events.subscribe(
            lambda event: retried.append(event) if isinstance(event, TaskRetried) else None
        )
        await gl.gather(*[relax(100, 0.8) for _ in range(5)])
        label = s.dispatcher.learned.label("mem", "relax")
        assert label is not None and label < 150 * 1024
        # About 1.7 times the label: killed at the label, runs within twice it.
        assert await relax(round(label / 1024 * 1.7) - 20) > 0
        assert len(retried) == 1 and retried[0].reason.startswith("over its memory label")
        with pytest.raises(MemoryLimitError, match="after one retry with twice its label"):
            await relax(round(label / 1024 * 4))
        assert len(retried) == 2  # exactly one retry each
