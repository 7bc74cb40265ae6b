"""Learned time limits: Grain's rule over a group's runs, configurable, persisted to JSON."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from grainlike import ConfigError, LearningRule
from grainlike.dispatch import GroupStats, LearnedLimits

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


def test_the_saved_file_is_json_with_each_groups_statistics(tmp_path: Path) -> None:
    path = tmp_path / "stats.json"
    learned = LearnedLimits.open(path)
    learned.record("sim", 12.0)
    learned.save()
    assert json.loads(path.read_text()) == {
        "groups": {"sim": {"count": 1, "mean": 12.0, "m2": 0.0}}
    }
    assert [p.name for p in tmp_path.iterdir()] == ["stats.json"]


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
