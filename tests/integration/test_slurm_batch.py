"""Worker job scripts on a real Slurm: the allocation the job sees, and cancelling jobs.

The production template is used unchanged; only the profile's ``python`` command is a small
Python one-liner that records what the worker would see instead of starting a worker.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from grainlike.batch import (
    Profile,
    cancel,
    check_key_file,
    forget_jobs,
    job_states,
    record_jobs,
    recorded_jobs,
    render_script,
    submit,
)

pytestmark = pytest.mark.slow

DISPATCHER = "127.0.0.1:4242"
ENDED = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY")

# Writes the affinity, the SLURM_* environment and the arguments the worker would get.
RECORD = (
    "import json, os, sys; "
    "env = {k: v for k, v in os.environ.items() if k.startswith('SLURM_')}; "
    "record = {'affinity': sorted(os.sched_getaffinity(0)), 'env': env, 'argv': sys.argv[2:]}; "
    "open(sys.argv[1], 'w').write(json.dumps(record))"
)


def _wait_for(job_id: str, wanted: tuple[str, ...], timeout: float = 60.0) -> str:
    """Poll Slurm until the job's state is one of ``wanted``; returns it."""
    deadline = time.monotonic() + timeout
    state = "unknown"
    while time.monotonic() < deadline:
        state = job_states([job_id], "slurm").get(job_id, "GONE")
        if state in wanted:
            return state
        time.sleep(0.2)  # a real batch system: no fake clock can speed it up
    raise AssertionError(f"job {job_id} is {state} after {timeout} s, not one of {wanted}")


@pytest.fixture
def job_dir(tmp_path: Path) -> Path:
    """A folder whose name has spaces, as users' folders do."""
    folder = tmp_path / "grainlike jobs"
    folder.mkdir()
    return folder


@pytest.fixture
def key_file(job_dir: Path) -> Path:
    path = job_dir / "shared key"
    path.write_text("0" * 64)
    path.chmod(0o600)
    return path


def test_a_one_core_job_sees_one_core_and_its_own_name(
    slurm: str, job_dir: Path, key_file: Path
) -> None:
    record = job_dir / "record.json"
    profile = Profile(
        partition=slurm,
        cores=1,
        memory="512M",
        walltime="00:05:00",
        job_name="gl-test",
        output=str(job_dir / "out-%j.txt"),
        setup=["export GRAINLIKE_SETUP_RAN=yes", 'test "$GRAINLIKE_SETUP_RAN" = yes'],
        python=[sys.executable, "-c", RECORD, str(record)],
    )
    key = check_key_file(key_file)
    script = render_script(profile, dispatcher=DISPATCHER, key_file=str(key))
    job_id = submit(script, "slurm")
    assert job_id.isdigit()
    state = _wait_for(job_id, ENDED)
    output = job_dir / f"out-{job_id}.txt"
    assert state == "COMPLETED", output.read_text() if output.exists() else "no output file"
    assert output.is_file()  # the quoted -o path with a space was understood
    seen = json.loads(record.read_text())
    assert len(seen["affinity"]) == 1
    assert seen["env"]["SLURM_JOB_ID"] == job_id
    assert seen["env"]["SLURM_CPUS_PER_TASK"] == "1"
    assert seen["env"]["SLURM_MEM_PER_NODE"] == "512"
    assert seen["env"]["SLURM_JOB_PARTITION"] == slurm
    assert seen["argv"] == [
        "worker",
        DISPATCHER,
        "--key-file",
        str(key_file),
        "--name",
        f"gl-test-{job_id}",
    ]


def test_cancel_removes_a_running_job_from_the_queue(
    slurm: str, job_dir: Path, key_file: Path, tmp_path: Path
) -> None:
    profile = Profile(
        partition=slurm,
        walltime="00:10:00",
        output=str(job_dir / "sleep-%j.txt"),
        python=[sys.executable, "-c", "import time; time.sleep(600)"],
    )
    script = render_script(profile, dispatcher=DISPATCHER, key_file=str(key_file))
    job_id = submit(script, "slurm")
    state_dir = tmp_path / "state"
    record_jobs(DISPATCHER, "slurm", [job_id], state_dir=state_dir)
    try:
        assert _wait_for(job_id, ("RUNNING",)) == "RUNNING"
        # What ``grainlike down`` does: cancel exactly the recorded jobs, then forget them.
        recorded = [job.job_id for job in recorded_jobs(DISPATCHER, state_dir=state_dir)]
        assert recorded == [job_id]
        cancel(recorded, "slurm")
        assert forget_jobs(DISPATCHER, recorded, state_dir=state_dir) == ()
        assert _wait_for(job_id, ("CANCELLED", "GONE")) in ("CANCELLED", "GONE")
        queue = subprocess.run(
            ["squeue", "-h", "-o", "%i"], capture_output=True, text=True, check=True, timeout=30
        )
        assert job_id not in queue.stdout.split()
    finally:
        cancel([job_id], "slurm")
    cancel([job_id], "slurm")  # cancelling an ended job again is not an error


def test_a_job_slurm_never_knew_has_no_state(slurm: str) -> None:
    assert job_states(["999999999"], "slurm") == {}
