"""``grainlike detect`` as a real process, under taskset, a real memory cgroup and real Slurm."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

import psutil
import pytest

from grainlike import GPU, Cores, Memory, Resources, WTime, parse_resources
from grainlike.worker import Headroom

from ..unit.test_detect_cgroup import _expected_limit_of_this_machine
from ..unit.test_detect_nvml import nvidia_driver_present

REPO = Path(__file__).resolve().parents[2]
AFFINITY = sorted(os.sched_getaffinity(0))


def clean_environ() -> dict[str, str]:
    """This environment without batch-job or GPU variables, so detection sees a plain machine."""
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("SLURM_", "CUDA_"))
    }


def run_detect(
    *args: str, prefix: tuple[str, ...] = (), environ: Mapping[str, str] | None = None
) -> str:
    done = subprocess.run(
        [*prefix, sys.executable, "-m", "grainlike", "detect", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env=clean_environ() if environ is None else dict(environ),
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def expected_memory() -> Memory:
    physical = psutil.virtual_memory().total // 1024
    cgroup = _expected_limit_of_this_machine()
    limit = physical if cgroup is None else min(physical, cgroup // 1024)
    return Memory.from_kib(Headroom().usable(limit))


@pytest.mark.slow
@pytest.mark.parametrize("cpu", AFFINITY[:2])
def test_taskset_limits_the_detected_cores(cpu: int) -> None:
    out = run_detect(prefix=("taskset", "-c", str(cpu)))
    capacity = parse_resources(out, capacity=True)
    assert capacity[Cores].c == [cpu]
    assert capacity[Memory] == expected_memory()
    assert capacity[WTime] == WTime(T="inf", countdown=True)
    assert (capacity.get(GPU) is None) == (not nvidia_driver_present())


@pytest.mark.slow
def test_without_taskset_every_cpu_of_the_affinity_is_detected() -> None:
    capacity = parse_resources(run_detect(), capacity=True)
    assert capacity[Cores].c == AFFINITY


@pytest.mark.slow
def test_resources_override_detection_per_kind() -> None:
    out = run_detect("--resources", "cores:1,gpu:0,mem:3G,disk:2G")
    assert out == "cores:1,mem:3G,disk:2G,wtime:inf"
    out = run_detect("--resources", "token:bigmem,wtime:0")
    capacity = parse_resources(out, capacity=True)
    assert capacity.get(WTime) is None
    assert capacity[Cores].c == AFFINITY
    assert str(capacity["token"]) == "token:bigmem"


@pytest.mark.slow
def test_json_reports_available_and_total_per_kind() -> None:
    report = json.loads(run_detect("--json"))
    available = report["available"]
    assert available["cores"] == [float(len(AFFINITY))] * 2
    assert available["mem"] == [expected_memory().M] * 2
    assert available["wtime"] == [None, None]  # unlimited: JSON has no infinity
    assert set(available) - {"gpu", "disk"} == {"cores", "mem", "wtime"}
    assert report["scratch"]["source"] == "tempdir"
    assert report["capacity"].startswith("cores:")


def _own_memory_cgroup() -> tuple[Path, str] | None:
    """The process's memory cgroup directory and its limit file, v2 or v1."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        hierarchy, controllers, path = line.split(":", 2)
        if hierarchy == "0":
            base = Path("/sys/fs/cgroup")
            if (base / "cgroup.controllers").exists():
                return base / path.lstrip("/"), "memory.max"
        elif "memory" in controllers.split(","):
            return Path("/sys/fs/cgroup/memory") / path.lstrip("/"), "memory.limit_in_bytes"
    return None


@pytest.fixture
def memory_cgroup() -> Iterator[Path]:
    """A child memory cgroup of this process's own, limited to 512 MiB; removed afterwards."""
    own = _own_memory_cgroup()
    if own is None:
        pytest.skip("this machine has no memory cgroup hierarchy")
    parent, limit_file = own
    child = parent / f"grainlike-test-{uuid.uuid4().hex[:8]}"
    try:
        child.mkdir()
    except OSError as error:
        pytest.skip(f"cannot create a cgroup under {parent}: {error}")
    try:
        try:
            (child / limit_file).write_text(str(512 << 20))
        except OSError as error:
            pytest.skip(f"cannot limit memory in {child}: {error}")
        yield child
    finally:
        child.rmdir()


@pytest.mark.slow
def test_a_memory_cgroup_limit_is_detected(memory_cgroup: Path) -> None:
    # The shell moves itself into the cgroup, then becomes the detecting process.
    command = (
        f"echo $$ > {shlex.quote(str(memory_cgroup / 'cgroup.procs'))} && "
        f"exec {shlex.quote(sys.executable)} -m grainlike detect"
    )
    out = run_detect(prefix=("sh", "-c", command, "sh"))
    capacity = parse_resources(out, capacity=True)
    assert capacity[Memory] == Memory("448M")  # 512 MiB less the 64 MiB minimum headroom


@pytest.mark.slow
def test_inside_a_slurm_job_its_cpus_memory_and_time_left_are_detected(
    slurm: str, tmp_path: Path
) -> None:
    name = f"grainlike-detect-{uuid.uuid4().hex[:8]}"
    script = tmp_path / "job.sh"
    script.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -m grainlike detect\n")
    output, errors = tmp_path / "out.txt", tmp_path / "err.txt"
    argv = [
        "sbatch", "--wait", "--quiet", f"--partition={slurm}", f"--job-name={name}",
        "-c", "1", "--mem=300M", "-t", "5", f"--output={output}", f"--error={errors}",
        f"--chdir={REPO}", str(script),
    ]  # fmt: skip
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=120, env=clean_environ(), check=False
        )
    except subprocess.TimeoutExpired:
        subprocess.run(["scancel", "--name", name], check=False, timeout=30)
        pytest.fail(f"the Slurm job {name} did not finish within 120 s")
    assert done.returncode == 0, done.stderr + output.read_text() + errors.read_text()
    # The scratch line goes to stderr, so stdout holds the resource line alone.
    assert errors.read_text().startswith("scratch: "), errors.read_text()
    capacity: Resources = parse_resources(output.read_text().strip(), capacity=True)
    assert capacity[Cores].N == 1
    assert capacity[Memory] == Memory("236M")  # 300 MB less the 64 MiB minimum headroom
    remaining = capacity[WTime].T
    assert remaining is not None and 240 <= remaining <= 300
