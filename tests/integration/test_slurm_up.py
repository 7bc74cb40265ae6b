"""``grainlike up`` on a real one-node Slurm: workers as jobs, their cores, drain, ``down``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import cloudpickle
import pytest
import trio

import grainlike as gl
from grainlike import Cores
from grainlike.dispatch import WorkerDrained

pytestmark = pytest.mark.slow

cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _write_key(path: Path) -> bytes:
    key = os.urandom(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(key.hex() + "\n")
    return key


def _profile(path: Path, partition: str, *, walltime: str, extra: str = "") -> Path:
    python = ", ".join(f'"{part}"' for part in (sys.executable, "-m", "grainlike"))
    path.write_text(
        f'system = "slurm"\npartition = "{partition}"\ncores = 1\nmemory = "512M"\n'
        f'walltime = "{walltime}"\njob_name = "gltest"\noutput = "{path.parent}/job-%j.out"\n'
        f"python = [{python}]\n{extra}"
    )
    return path


def _grainlike(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "grainlike", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _queue(job_ids: list[str]) -> list[str]:
    done = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True, timeout=30)
    return [job for job in done.stdout.split() if job in job_ids]


async def report() -> dict[str, Any]:
    await trio.sleep(0.2)
    return {
        "worker": gl.GVAR.instance,
        "cores": gl.GVAR.res.c,
        "affinity": sorted(os.sched_getaffinity(0)),
        "job": os.environ.get("SLURM_JOB_ID"),
    }


async def _wait_for(condition: Any, timeout: float) -> None:
    with trio.fail_after(timeout):
        while not condition():
            await trio.sleep(0.2)


async def test_up_runs_workers_as_slurm_jobs_that_report_their_cpuset_and_down_cancels_them(
    slurm: str, tmp_path: Path
) -> None:
    key_file = tmp_path / "key"
    key = _write_key(key_file)
    profile = _profile(tmp_path / "profile.toml", slurm, walltime="00:10:00")
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"))
    async with gl.open_session(listen="127.0.0.1:0", local=False, key=key, stats=None) as session:
        assert session.address is not None
        address = session.address
        dry = _grainlike(
            "up",
            "--slurm",
            "--profile",
            str(profile),
            "--dispatcher",
            address,
            "--key-file",
            str(key_file),
            "--dry",
            env=env,
        )
        assert "#SBATCH -c 1" in dry and key.hex() not in dry
        job_ids = _grainlike(
            "up",
            "--slurm",
            "-n",
            "2",
            "--profile",
            str(profile),
            "--dispatcher",
            address,
            "--key-file",
            str(key_file),
            env=env,
        ).split()
        assert len(job_ids) == 2
        dispatcher = session.dispatcher
        await _wait_for(lambda: len(dispatcher.worker_ids()) == 2, 90)
        assert sorted(dispatcher.worker_ids()) == sorted(f"gltest-{job}" for job in job_ids)
        results = await gl.gather(*((report @ Cores(1))() for _ in range(6)))
        for result in results:
            assert result["worker"] == f"gltest-{result['job']}"
            assert result["cores"] == result["affinity"]  # GVAR.res.c is the job's cpuset
        assert {r["job"] for r in results} <= set(job_ids)
        _grainlike("down", "--dispatcher", address, "--key-file", str(key_file), env=env)
        await _wait_for(lambda: not dispatcher.worker_ids(), 60)
    with trio.fail_after(60):
        while _queue(job_ids):
            await trio.sleep(0.5)


async def test_a_walltime_limited_worker_drains_before_its_job_ends(
    slurm: str, tmp_path: Path
) -> None:
    key_file = tmp_path / "key"
    key = _write_key(key_file)
    profile = _profile(
        tmp_path / "profile.toml",
        slurm,
        walltime="00:01:00",
        extra='worker_args = ["--drain-margin", "50", "--exit-margin", "5"]\n',
    )
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"))
    events: list[Any] = []
    async with gl.open_session(listen="127.0.0.1:0", local=False, key=key, stats=None) as session:
        session.dispatcher.events.subscribe(events.append)
        assert session.address is not None
        address = session.address
        start = trio.current_time()
        (job_id,) = _grainlike(
            "up",
            "--slurm",
            "-n",
            "1",
            "--profile",
            str(profile),
            "--dispatcher",
            address,
            "--key-file",
            str(key_file),
            env=env,
        ).split()
        await _wait_for(lambda: bool(session.dispatcher.worker_ids()), 90)
        assert (await (report @ Cores(1))())["job"] == job_id
        await _wait_for(lambda: any(isinstance(e, WorkerDrained) for e in events), 90)
        assert trio.current_time() - start < 60
        drained = [e for e in events if isinstance(e, WorkerDrained)]
        assert drained[0].worker == f"gltest-{job_id}"
    with trio.fail_after(60):
        while _queue([job_id]):
            await trio.sleep(0.5)


async def test_up_gives_the_jobs_the_environment_key_not_an_older_key_file(
    slurm: str, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    stale = home / ".config" / "grainlike" / "key"
    stale.parent.mkdir(parents=True)
    _write_key(stale)  # an older key, where a job would look by default
    key = os.urandom(32)
    profile = _profile(tmp_path / "profile.toml", slurm, walltime="00:10:00")
    env = dict(os.environ, HOME=str(home), XDG_STATE_HOME=str(tmp_path / "state"))
    env["GRAINLIKE_KEY"] = key.hex()
    async with gl.open_session(listen="127.0.0.1:0", local=False, key=key, stats=None) as session:
        assert session.address is not None
        address = session.address
        (job_id,) = _grainlike(
            "up", "--slurm", "--profile", str(profile), "--dispatcher", address, env=env
        ).split()
        await _wait_for(lambda: bool(session.dispatcher.worker_ids()), 90)
        assert (await (report @ Cores(1))())["job"] == job_id
        key_file = tmp_path / "state" / "grainlike" / f"key-{address.replace(':', '_')}"
        assert key_file.stat().st_mode & 0o777 == 0o600
        assert key_file.read_text().strip() == key.hex()
        _grainlike("down", "--dispatcher", address, env=env)
        await _wait_for(lambda: not session.dispatcher.worker_ids(), 60)
    with trio.fail_after(60):
        while _queue([job_id]):
            await trio.sleep(0.5)


async def nap(seconds: float) -> None:
    await trio.sleep(seconds)


async def test_the_autoscaler_cancels_its_jobs_and_exits_0_when_the_dispatcher_ends(
    slurm: str, tmp_path: Path
) -> None:
    key_file = tmp_path / "key"
    key = _write_key(key_file)
    profile = _profile(tmp_path / "profile.toml", slurm, walltime="00:10:00")
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"))
    async with gl.open_session(listen="127.0.0.1:0", local=False, key=key, stats=None) as session:
        assert session.address is not None
        address = session.address
        scale = ["--min", "0", "--max", "1", "--period", "0.5", "--profile", str(profile)]
        where = ["--dispatcher", address, "--key-file", str(key_file)]
        autoscaler = subprocess.Popen(
            [sys.executable, "-m", "grainlike", "up", "--slurm", *scale, *where],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        handle = (nap @ Cores(1))(300)  # queued work that fits: the autoscaler submits a job
        await _wait_for(lambda: handle.task.worker is not None, 90)
        (worker,) = session.dispatcher.worker_ids()
        job_id = worker.removeprefix("gltest-")
    _, err = await trio.to_thread.run_sync(lambda: autoscaler.communicate(timeout=60))
    assert autoscaler.returncode == 0, err
    assert err.strip().splitlines()[-1] == (
        f"grainlike up: the dispatcher at {address} has gone: cancelled worker jobs {job_id}"
    )
    with trio.fail_after(60):
        while _queue([job_id]):
            await trio.sleep(0.5)
