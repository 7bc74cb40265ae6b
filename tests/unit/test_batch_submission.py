"""Submitting, cancelling and watching jobs, without a batch server.

No PBS server can exist on the test machines, so the PBS commands here are small fake
executables on ``PATH`` that behave as OpenPBS's documented output says; real Slurm is
exercised in tests/integration/test_slurm_batch.py.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from grainlike import ConfigError
from grainlike.batch import cancel, job_states, parse_qstat_json, submit

QSTAT_JSON = {
    "timestamp": 1700000000,
    "pbs_version": "23.06.06",
    "pbs_server": "pbs1",
    "Jobs": {
        "101.pbs1": {"Job_Name": "grainlike", "job_state": "R"},
        "102.pbs1": {"Job_Name": "grainlike", "job_state": "Q"},
        "103.pbs1": {"Job_Name": "grainlike", "job_state": "F", "Exit_status": 0},
        "104.pbs1": {"Job_Name": "grainlike", "job_state": "F", "Exit_status": 271},
        "105.pbs1": {"Job_Name": "grainlike", "job_state": "H"},
    },
}


@pytest.fixture
def bin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH holding only the fake commands a test writes."""
    folder = tmp_path / "bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", str(folder))
    return folder


def _command(folder: Path, name: str, body: str) -> None:
    """A fake batch command: a Python script (the test's own interpreter) with ``body``."""
    path = folder / name
    path.write_text(f"#!{sys.executable}\nimport json, os, stat, sys\n{body}\n")
    path.chmod(0o755)


def test_qstat_json_states_are_spelled_as_slurm_spells_them() -> None:
    assert parse_qstat_json(json.dumps(QSTAT_JSON)) == {
        "101.pbs1": "RUNNING",
        "102.pbs1": "PENDING",
        "103.pbs1": "COMPLETED",
        "104.pbs1": "FAILED",
        "105.pbs1": "HELD",
    }
    assert parse_qstat_json("") == {}


def test_qstat_output_that_is_not_json_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="not its JSON"):
        parse_qstat_json("Job id  Name  User\n101.pbs1 grainlike me")


def test_an_unknown_system_is_refused() -> None:
    with pytest.raises(ConfigError, match="'lsf'"):
        submit("#!/bin/bash\n", "lsf")  # type: ignore[arg-type]


def test_nothing_to_cancel_or_watch_runs_no_command(bin_dir: Path) -> None:
    cancel([], "slurm")
    assert job_states([], "pbs") == {}


def test_a_missing_command_is_a_config_error_naming_it(bin_dir: Path) -> None:
    with pytest.raises(ConfigError, match="sbatch: command not found"):
        submit("#!/bin/bash\n", "slurm")
    with pytest.raises(ConfigError, match="qdel: command not found"):
        cancel(["1"], "pbs")
    with pytest.raises(ConfigError, match="squeue: command not found"):
        job_states(["1"], "slurm")


@pytest.mark.slow
def test_pbs_submission_hands_qsub_a_private_file_and_returns_its_id(
    bin_dir: Path, tmp_path: Path
) -> None:
    seen = tmp_path / "seen.json"
    _command(
        bin_dir,
        "qsub",
        f"mode = stat.S_IMODE(os.stat(sys.argv[1]).st_mode)\n"
        f"json.dump([sys.argv[1], mode, open(sys.argv[1]).read()], open({str(seen)!r}, 'w'))\n"
        f"print('4242.pbs1')",
    )
    job_id = submit("#!/bin/bash\n#PBS -N grainlike\n", "pbs")
    assert job_id == "4242.pbs1"
    path, mode, text = json.loads(seen.read_text())
    assert (mode, text) == (0o600, "#!/bin/bash\n#PBS -N grainlike\n")
    assert not os.path.exists(path)  # removed once qsub has taken its copy


@pytest.mark.slow
def test_a_refused_submission_carries_the_batch_systems_message(bin_dir: Path) -> None:
    _command(
        bin_dir,
        "sbatch",
        "print('sbatch: error: invalid partition specified: nope', file=sys.stderr)\nsys.exit(1)",
    )
    with pytest.raises(ConfigError) as caught:
        submit("#!/bin/bash\n#SBATCH -p nope\n", "slurm")
    message = str(caught.value)
    assert "invalid partition specified: nope" in message
    assert "exit status 1" in message


@pytest.mark.slow
def test_a_submission_that_prints_no_job_id_is_refused(bin_dir: Path) -> None:
    _command(bin_dir, "sbatch", "print('')")
    with pytest.raises(ConfigError, match="no job id"):
        submit("#!/bin/bash\n", "slurm")


@pytest.mark.slow
def test_pbs_states_come_from_qstat_json_even_when_some_ids_are_unknown(bin_dir: Path) -> None:
    _command(
        bin_dir,
        "qstat",
        f"assert sys.argv[1:5] == ['-x', '-f', '-F', 'json'], sys.argv\n"
        f"print(json.dumps({QSTAT_JSON!r}))\n"
        f"print('qstat: Unknown Job Id 999.pbs1', file=sys.stderr)\nsys.exit(153)",
    )
    assert job_states(["101.pbs1", "999.pbs1"], "pbs")["101.pbs1"] == "RUNNING"


@pytest.mark.slow
def test_cancelling_jobs_that_already_ended_is_not_an_error(bin_dir: Path) -> None:
    _command(
        bin_dir,
        "qdel",
        "print('qdel: Unknown Job Id 7.pbs1', file=sys.stderr)\n"
        "print('qdel: Job has finished 8.pbs1', file=sys.stderr)\nsys.exit(35)",
    )
    cancel(["7.pbs1", "8.pbs1"], "pbs")


@pytest.mark.slow
def test_cancelling_refused_for_another_reason_is_an_error(bin_dir: Path) -> None:
    _command(
        bin_dir,
        "scancel",
        "print('scancel: error: Kill job error on job id 7: Access/permission denied',"
        " file=sys.stderr)\nsys.exit(1)",
    )
    with pytest.raises(ConfigError, match="permission denied"):
        cancel(["7"], "slurm")
