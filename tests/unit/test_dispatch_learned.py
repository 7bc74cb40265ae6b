"""Learned time limits: Grain's rule over a group's runs, configurable, persisted to the store."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import sqlite3
import stat
import statistics
from pathlib import Path

import pytest
import trio
import trio.testing

import grainlike as gl
from grainlike import ConfigError, Cores, LearningRule, WTime
from grainlike.dispatch import GroupStats, LearnedLimits
from grainlike.resource import MAX_DURATION

RUNS = [10.5, 12.0, 11.0, 14.5, 13.0, 10.0, 16.0, 12.5]


def test_group_stats_match_the_sample_mean_and_stdev() -> None:
    stats = GroupStats()
    for duration in RUNS:
        stats = stats.add(duration)
    assert stats.count == len(RUNS)
    assert stats.mean == pytest.approx(statistics.mean(RUNS))
    assert stats.stdev == pytest.approx(statistics.stdev(RUNS))


def test_the_stdev_of_fewer_than_two_runs_is_zero() -> None:
    assert GroupStats().stdev == 0.0
    assert GroupStats().add(12.0).stdev == 0.0


def test_nothing_is_learned_before_eight_runs() -> None:
    learned = LearnedLimits()
    for duration in RUNS[:7]:
        learned.record("sim", duration)
    assert learned.limits("sim") is None
    assert learned.limits("never-ran") is None


def test_after_eight_runs_hard_is_mean_plus_5_sigma_and_soft_mean_plus_2_sigma() -> None:
    learned = LearnedLimits()
    for duration in RUNS:
        learned.record("sim", duration)
    mean, sigma = statistics.mean(RUNS), statistics.stdev(RUNS)
    assert learned.limits("sim") == pytest.approx((mean + 5 * sigma, mean + 2 * sigma))


def test_runs_shorter_than_ten_seconds_do_not_count() -> None:
    learned = LearnedLimits()
    for duration in [*RUNS[:7], 9.99]:
        learned.record("sim", duration)
    assert learned.stats("sim").count == 7
    assert learned.limits("sim") is None


def test_groups_are_learned_separately() -> None:
    learned = LearnedLimits()
    for duration in RUNS:
        learned.record("a", duration)
    learned.record("b", 20.0)
    assert learned.limits("a") is not None
    assert learned.stats("b").count == 1
    assert learned.limits("b") is None


def test_the_rule_is_configurable() -> None:
    rule = LearningRule(samples=3, min_duration=1.0, hard_sigmas=3.0, soft_sigmas=1.0)
    learned = LearnedLimits(rule)
    runs = [2.0, 4.0, 0.5, 6.0]
    for duration in runs:
        learned.record("quick", duration)
    counted = [2.0, 4.0, 6.0]
    mean, sigma = statistics.mean(counted), statistics.stdev(counted)
    assert learned.limits("quick") == pytest.approx((mean + 3 * sigma, mean + sigma))


def test_a_rule_needs_at_least_two_samples() -> None:
    with pytest.raises(ConfigError, match="samples=1"):
        LearningRule(samples=1)


def test_recording_a_counted_run_bumps_the_version() -> None:
    learned = LearnedLimits()
    learned.record("sim", 1.0)
    assert learned.version == 0
    learned.record("sim", 11.0)
    assert learned.version == 1


def test_statistics_survive_save_and_open(tmp_path: Path) -> None:
    path = tmp_path / "state" / "wtime-stats.json"
    learned = LearnedLimits.open(path)
    for duration in RUNS:
        learned.record("sim", duration)
    learned.save()
    reloaded = LearnedLimits.open(path)
    assert reloaded.stats("sim") == learned.stats("sim")
    assert reloaded.limits("sim") == learned.limits("sim")


def test_the_store_is_sqlite_with_a_row_per_group(tmp_path: Path) -> None:
    path = tmp_path / "learned.db"
    learned = LearnedLimits.open(path)
    learned.record("sim", 12.0)
    learned.record("sim", 14.0)
    learned.close()
    with contextlib.closing(sqlite3.connect(path)) as connection:
        rows = connection.execute("SELECT metric, name, count, mean, m2, largest FROM groups")
        assert list(rows) == [("wtime", "sim", 2, 13.0, 2.0, 14.0)]
    assert [p.name for p in tmp_path.iterdir()] == ["learned.db"]


def test_opening_a_missing_file_learns_nothing(tmp_path: Path) -> None:
    learned = LearnedLimits.open(tmp_path / "missing.json")
    assert learned.stats("sim") == GroupStats()


def test_opening_a_file_that_is_not_a_statistics_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "stats.json"
    path.write_text('{"something": "else"}')
    with pytest.raises(ConfigError, match=r"stats\.json: not a grainlike statistics file"):
        LearnedLimits.open(path)


def test_open_passes_the_rule_on(tmp_path: Path) -> None:
    rule = LearningRule(samples=2)
    assert LearnedLimits.open(tmp_path / "s.json", rule).rule == rule


def test_saving_without_a_path_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    learned = LearnedLimits.open(None)
    learned.record("sim", 12.0)
    learned.save()
    assert list(tmp_path.iterdir()) == []


# -- hardening: implausible statistics never reach placement -------------------------------------


@pytest.mark.parametrize(
    ("count", "mean", "m2", "named"),
    [
        (8, math.nan, 1.0, "mean=nan"),
        (8, math.inf, 1.0, "mean=inf"),
        (8, 12.0, math.nan, "m2=nan"),
        (8, 12.0, -1.0, "m2=-1.0"),
        (8, -12.0, 1.0, "mean=-12.0"),
        (-1, 12.0, 1.0, "count=-1"),
        (8, 4e9, 1.0, "mean=4000000000.0"),
    ],
)
def test_implausible_group_statistics_are_refused_at_construction(
    count: int, mean: float, m2: float, named: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(named)):
        GroupStats(count, mean, m2)


@pytest.mark.parametrize("duration", [math.nan, math.inf, -math.inf, -12.0, 1e300])
def test_an_implausible_run_time_is_ignored_and_warned_about_once(
    duration: float, caplog: pytest.LogCaptureFixture
) -> None:
    learned = LearnedLimits(LearningRule(samples=2, min_duration=0.0))
    for seconds in RUNS:
        learned.record("sim", seconds)
    before = (learned.stats("sim"), learned.limits("sim"), learned.version)
    with caplog.at_level(logging.WARNING, logger="grainlike"):
        learned.record("sim", duration)
        learned.record("sim", duration)
    assert (learned.stats("sim"), learned.limits("sim"), learned.version) == before
    assert learned.rejected == 2
    (warning,) = caplog.records
    assert "sim" in warning.getMessage()
    assert repr(duration) in warning.getMessage()


def test_learned_limits_stay_within_the_longest_limit_a_wtime_may_have() -> None:
    learned = LearnedLimits(LearningRule(samples=2, min_duration=0.0))
    learned.record("wild", 1.0)
    learned.record("wild", MAX_DURATION)
    assert learned.limits("wild") == (MAX_DURATION, MAX_DURATION)
    # Placement builds this request from them.
    assert WTime(group="wild").with_limits(MAX_DURATION, MAX_DURATION).T == MAX_DURATION


def write_stats(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "text",
    [
        '{"groups": {"sim": {"count": 8, "mean": NaN, "m2": 1.0}}}',
        '{"groups": {"sim": {"count": 8, "mean": Infinity, "m2": 1.0}}}',
        '{"groups": {"sim": {"count": 8, "mean": 12.0, "m2": -4.0}}}',
        '{"groups": {"sim": {"count": 8, "mean": -12.0, "m2": 4.0}}}',
        '{"groups": {"sim": {"count": 8.5, "mean": 12.0, "m2": 4.0}}}',
        '{"groups": {"sim": {"count": true, "mean": 12.0, "m2": 4.0}}}',
        '{"groups": {"sim": {"count": 8, "mean": "12", "m2": 4.0}}}',
        '{"groups": {"sim": [8, 12.0, 4.0]}}',
        '{"groups": []}',
        "[]",
        "not json",
    ],
)
def test_a_corrupt_statistics_file_is_a_config_error_naming_it(tmp_path: Path, text: str) -> None:
    path = write_stats(tmp_path / "stats.json", text)
    with pytest.raises(ConfigError, match=rf"{re.escape(str(path))}: not a grainlike statistics"):
        LearnedLimits.open(path)


def test_a_directory_at_the_statistics_path_is_a_config_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "stats.json"
    path.mkdir()
    with pytest.raises(ConfigError, match=rf"{re.escape(str(path))}: cannot read it"):
        LearnedLimits.open(path)


def test_a_statistics_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "stats.json"
    path.write_bytes(b"\xff\xfe{}")
    with pytest.raises(ConfigError, match=r"stats\.json: not a grainlike statistics"):
        LearnedLimits.open(path)


def test_a_save_that_cannot_write_warns_once_and_does_not_raise(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "state" / "stats.json"
    learned = LearnedLimits.open(path)
    learned.record("sim", 12.0)
    (tmp_path / "state").write_text("")  # where the directory should be: every write fails
    with caplog.at_level(logging.WARNING, logger="grainlike"):
        learned.save()
        learned.save()
    (warning,) = caplog.records
    assert str(path) in warning.getMessage()
    assert "not saved" in warning.getMessage()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state"]


def test_a_statistics_path_under_a_file_is_a_config_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("")
    path = tmp_path / "state" / "stats.json"
    with pytest.raises(ConfigError, match=rf"{re.escape(str(path))}: cannot read it"):
        LearnedLimits.open(path)


def test_the_statistics_file_is_created_0600_whatever_the_umask(tmp_path: Path) -> None:
    path = tmp_path / "learned.db"
    learned = LearnedLimits.open(path)
    learned.record("sim", 12.0)
    previous = os.umask(0)
    try:
        learned.save()
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    finally:
        os.umask(previous)
        learned.close()
    assert modes == {"learned.db": 0o600, "learned.db-wal": 0o600, "learned.db-shm": 0o600}


def test_a_save_never_writes_a_value_that_open_would_refuse(tmp_path: Path) -> None:
    path = tmp_path / "stats.json"
    learned = LearnedLimits.open(path, LearningRule(samples=2, min_duration=0.0))
    for seconds in [math.inf, 11.0, math.nan, 12.0, -1.0]:
        learned.record("sim", seconds)
    learned.save()
    assert LearnedLimits.open(path).stats("sim") == GroupStats().add(11.0).add(12.0)


# -- in a run ------------------------------------------------------------------------------------


async def sleep_for(seconds: float) -> float | None:
    await trio.sleep(seconds)
    return gl.GVAR.res.T


@pytest.mark.usefixtures("local_capacity")
async def test_implausible_reported_run_times_leave_the_group_running(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rule = LearningRule(samples=2, min_duration=0.0)
    async with gl.open_session(stats=None, learning=rule) as session:
        for seconds in [math.nan, math.inf, -5.0, 1e300]:  # what a lying worker may report
            session.dispatcher.learned.record("sim", seconds)
        assert await (sleep_for @ Cores(1) & WTime(group="sim"))(1.0) is None
        assert await (sleep_for @ Cores(1) & WTime(group="sim"))(1.0) is None
        assert await (sleep_for @ Cores(1) & WTime(group="sim"))(0.5) == pytest.approx(1.0)


@pytest.mark.usefixtures("local_capacity")
def test_a_run_whose_statistics_cannot_be_saved_returns_its_result(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "state"

    async def main() -> str:
        state.rmdir()
        state.write_text("")  # the directory is gone: the store cannot be created
        await (sleep_for @ Cores(1) & WTime(group="sim"))(0.0)
        return "result"

    state.mkdir()
    rule = LearningRule(samples=2, min_duration=0.0)
    with caplog.at_level(logging.WARNING, logger="grainlike"):
        assert gl.run(main, stats=state / "learned.db", learning=rule) == "result"
    assert [r.getMessage() for r in caplog.records if "not saved" in r.getMessage()] != []


@pytest.mark.usefixtures("local_capacity")
async def test_a_run_refuses_a_poisoned_statistics_file_by_name(tmp_path: Path) -> None:
    path = write_stats(
        tmp_path / "stats.json", '{"groups": {"sim": {"count": 8, "mean": NaN, "m2": 1}}}'
    )
    with pytest.raises(ConfigError, match=r"stats\.json: not a grainlike statistics file"):
        async with gl.open_session(stats=path):
            pass


# -- the learned store: merged updates, migration, versions ---------------------------------------


def test_two_runs_sharing_the_store_keep_each_others_groups(tmp_path: Path) -> None:
    path = tmp_path / "learned.db"
    first, second = LearnedLimits.open(path), LearnedLimits.open(path)
    first.record("a", 11.0)
    second.record("b", 21.0)
    first.save()
    second.save()
    first.close()
    second.close()
    assert stored(path, "a") == GroupStats().add(11.0)
    assert stored(path, "b") == GroupStats().add(21.0)


def test_two_runs_learning_one_group_both_count(tmp_path: Path) -> None:
    path = tmp_path / "learned.db"
    first, second = LearnedLimits.open(path), LearnedLimits.open(path)
    for duration in RUNS[:4]:
        first.record("sim", duration)
    for duration in RUNS[4:]:
        second.record("sim", duration)
    first.save()
    second.save()
    # Each update brings back what the other run added: the second has all eight runs.
    assert second.stats("sim").count == len(RUNS)
    assert second.stats("sim").mean == pytest.approx(statistics.mean(RUNS))
    assert second.stats("sim").stdev == pytest.approx(statistics.stdev(RUNS))
    first.close()
    second.close()


def test_a_json_statistics_file_is_migrated_in_place_once(tmp_path: Path) -> None:
    path = write_stats(
        tmp_path / "stats.json", '{"groups": {"sim": {"count": 8, "mean": 12.0, "m2": 4.0}}}'
    )
    learned = LearnedLimits.open(path)
    learned.close()
    assert learned.stats("sim") == GroupStats(8, 12.0, 4.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stats.json", "stats.json.migrated"]
    assert path.read_bytes().startswith(b"SQLite format 3\x00")
    assert stored(path, "sim") == GroupStats(8, 12.0, 4.0)


def test_the_former_default_json_file_is_folded_into_a_new_store(tmp_path: Path) -> None:
    legacy = write_stats(
        tmp_path / "wtime-stats.json", '{"groups": {"old": {"count": 3, "mean": 20.0, "m2": 2.0}}}'
    )
    learned = LearnedLimits.open(tmp_path / "learned.db", legacy=legacy)
    learned.close()
    assert learned.stats("old") == GroupStats(3, 20.0, 2.0)
    assert not legacy.exists()
    assert (tmp_path / "wtime-stats.json.migrated").exists()
    # Once: a store that exists already does not look at the former file again.
    write_stats(legacy, '{"groups": {"new": {"count": 1, "mean": 30.0, "m2": 0.0}}}')
    again = LearnedLimits.open(tmp_path / "learned.db", legacy=legacy)
    again.close()
    assert again.stats("new") == GroupStats()


def test_a_store_of_a_newer_schema_is_a_config_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "learned.db"
    learned = LearnedLimits.open(path)
    learned.record("sim", 12.0)
    learned.close()
    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.execute("PRAGMA user_version = 7")
    with pytest.raises(ConfigError, match=rf"{re.escape(str(path))}: .*schema version 7, newer"):
        LearnedLimits.open(path)


def test_another_programs_database_is_not_taken_for_a_store(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.execute("CREATE TABLE things (x)")
    with pytest.raises(ConfigError, match=r"other\.db: not a grainlike statistics file"):
        LearnedLimits.open(path)


def test_an_empty_file_is_an_empty_store(tmp_path: Path) -> None:
    path = write_stats(tmp_path / "learned.db", "")
    learned = LearnedLimits.open(path)
    learned.record("sim", 12.0)
    learned.close()
    assert stored(path, "sim").count == 1


def stored(path: Path, group: str) -> GroupStats:
    """What another run opening the store now would find for ``group``."""
    learned = LearnedLimits.open(path)
    learned.close()
    return learned.stats(group)


@pytest.mark.usefixtures("local_capacity")
async def test_a_counted_run_is_in_the_store_before_the_session_ends(tmp_path: Path) -> None:
    path = tmp_path / "learned.db"
    async with gl.open_session(stats=path, learning=LearningRule(samples=2, min_duration=0.0)):
        await (sleep_for @ Cores(1) & WTime(group="sim"))(0.01)
        with trio.fail_after(10):  # a thread writes it: real time
            while stored(path, "sim").count == 0:
                await trio.sleep(0.01)
