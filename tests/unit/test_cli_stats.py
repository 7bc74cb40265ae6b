"""``grainlike stats``: the learned store per group, as lines, a rich table, or JSON."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from grainlike._stats_report import group_reports, render_stats
from grainlike.cli import main
from grainlike.dispatch import LearnedLimits, LearningRule

MB = 2**20


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "learned.db"
    learned = LearnedLimits.open(path)
    for peak in (100, 140, 120, 90, 130):  # a Cores(2) group that uses 0.65 of its cores
        learned.record_usage(["relax"], 2.0, 1.3, peak * MB, None, memory="relax")
    for run in range(8):
        learned.record("relax", 11.0 + run)
    learned.record_usage(["io"], 5.0, 0.5, 10 * MB, 3 * 2**30, disk="io")
    learned.close()
    return path


def test_stats_prints_one_line_a_group(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stats", "--stats", str(store)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{store}: 2 group(s)"
    assert lines[2] == (
        "  relax: measured runs 5, wall mean 2s, wall max 2s, cores used 0.65, mem median 120M, "
        "mem max 140M, disk median -, disk max -, mem label 154M, disk label -, "
        "wtime limit 27s (soft 19s)"
    )
    assert "disk max 3G" in lines[1] and "mem label -" in lines[1]


def test_stats_json_has_every_figure_in_bytes_and_seconds(
    store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["stats", "--stats", str(store), "--json"]) == 0
    io_group, relax = json.loads(capsys.readouterr().out)
    assert relax["group"] == "relax" and relax["measured_runs"] == 5
    assert relax["memory_median"] == 120 * MB and relax["memory_max"] == 140 * MB
    assert relax["memory_label"] == 154 * MB
    assert relax["cores_used"] == pytest.approx(0.65)
    assert relax["wtime_runs"] == 8 and set(relax["wtime_limits"]) == {"hard", "soft"}
    assert io_group["disk_max"] == 3 * 2**30 and io_group["wtime_limits"] is None


def test_on_a_terminal_stats_draws_a_table(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    learned = LearnedLimits.open(store)
    out = io.StringIO()
    render_stats(group_reports(learned), "learned", out, terminal=True)
    learned.close()
    text = out.getvalue()
    assert "┃ group" in text and "mem label" in text
    assert any(line.startswith("│ relax ") for line in text.splitlines())
    assert "154M" in text


def test_a_missing_store_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["stats", "--stats", str(tmp_path / "none.db")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (
        f"grainlike stats: {tmp_path / 'none.db'}: no learned store there yet "
        "(a run with --stats PATH makes one)"
    )


def test_a_group_timed_but_never_measured_says_what_it_counted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Async tasks on the embedded worker run no process of their own: nothing is measured,
    # yet their durations count towards the WTime limits under a short min_duration.
    path = tmp_path / "learned.db"
    learned = LearnedLimits.open(path, LearningRule(min_duration=0.01))
    for _ in range(2):
        learned.record("g", 0.05)
    learned.close()
    assert main(["stats", "--stats", str(path)]) == 0
    line = capsys.readouterr().out.splitlines()[1]
    assert line.startswith("  g: measured runs 0, wall mean -,")
    assert line.endswith("wtime limit - (2 runs counted)")
