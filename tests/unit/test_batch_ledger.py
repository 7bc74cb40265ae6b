"""The record of submitted worker jobs that lets ``grainlike down`` cancel exactly those."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from grainlike import ConfigError
from grainlike.batch import (
    default_state_dir,
    forget_jobs,
    job_key_file,
    jobs_file,
    record_jobs,
    recorded_jobs,
    write_job_key,
)
from grainlike.wire import load_key


def test_nothing_is_recorded_for_a_new_dispatcher(tmp_path: Path) -> None:
    assert recorded_jobs("login1:4242", state_dir=tmp_path) == ()


def test_recorded_jobs_come_back_in_order_per_dispatcher(tmp_path: Path) -> None:
    record_jobs("login1:4242", "slurm", ["11", "12"], state_dir=tmp_path)
    record_jobs("login1:4242", "slurm", ["13", "12"], state_dir=tmp_path)
    record_jobs("login2:4242", "pbs", ["7.pbs1"], state_dir=tmp_path)
    jobs = recorded_jobs("login1:4242", state_dir=tmp_path)
    assert [(job.job_id, job.system) for job in jobs] == [
        ("11", "slurm"),
        ("12", "slurm"),
        ("13", "slurm"),
    ]
    assert jobs[0].submitted <= jobs[2].submitted
    other = recorded_jobs("login2:4242", state_dir=tmp_path)
    assert [(job.job_id, job.system) for job in other] == [("7.pbs1", "pbs")]


def test_forgetting_jobs_keeps_the_rest_and_removes_an_empty_record(tmp_path: Path) -> None:
    record_jobs("h:1", "slurm", ["1", "2", "3"], state_dir=tmp_path)
    remaining = forget_jobs("h:1", ["2", "99"], state_dir=tmp_path)
    assert [job.job_id for job in remaining] == ["1", "3"]
    assert [job.job_id for job in recorded_jobs("h:1", state_dir=tmp_path)] == ["1", "3"]
    assert forget_jobs("h:1", ["1", "3"], state_dir=tmp_path) == ()
    assert not jobs_file("h:1", state_dir=tmp_path).exists()


def test_the_record_is_a_json_file_named_after_the_dispatcher(tmp_path: Path) -> None:
    record_jobs("[::1]:4242", "slurm", ["5"], state_dir=tmp_path / "state")
    file = jobs_file("[::1]:4242", state_dir=tmp_path / "state")
    assert file == tmp_path / "state" / "jobs-___1__4242.json"
    data = json.loads(file.read_text())
    assert data["dispatcher"] == "[::1]:4242"
    assert [entry["job_id"] for entry in data["jobs"]] == ["5"]
    assert list(file.parent.iterdir()) == [file]  # no temporary file left behind


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        '{"jobs": 3}',
        '{"jobs": [{"job_id": 1, "system": "slurm", "submitted": 0}]}',
    ],
)
def test_a_damaged_record_is_a_config_error_naming_the_file(tmp_path: Path, text: str) -> None:
    file = jobs_file("h:1", state_dir=tmp_path)
    file.write_text(text)
    with pytest.raises(ConfigError, match="job record"):
        recorded_jobs("h:1", state_dir=tmp_path)


def test_the_default_state_dir_follows_xdg_state_home(tmp_path: Path) -> None:
    assert default_state_dir({"XDG_STATE_HOME": str(tmp_path)}) == tmp_path / "grainlike"
    assert default_state_dir({}) == Path.home() / ".local" / "state" / "grainlike"


def test_a_job_key_is_written_for_the_owner_only_and_replaced_by_a_newer_one(
    tmp_path: Path,
) -> None:
    first = write_job_key("login1:4242", bytes(range(32)), state_dir=tmp_path)
    assert first == job_key_file("login1:4242", state_dir=tmp_path) == tmp_path / "key-login1_4242"
    assert first.stat().st_mode & 0o777 == 0o600
    assert load_key(first) == bytes(range(32))
    again = write_job_key("login1:4242", bytes(range(1, 33)), state_dir=tmp_path)
    assert again == first
    assert load_key(first) == bytes(range(1, 33))
    assert sorted(path.name for path in tmp_path.iterdir()) == ["key-login1_4242"]
