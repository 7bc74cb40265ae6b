"""``gl.run_process`` with real subprocesses: bound to the allocation, killed with its group.

Each child is a small Python program.  Waiting here is on real processes, always bounded.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import trio

import grainlike as gl
import grainlike._session
from grainlike import GPU, Cores, Memory, MemoryLimitError, Resources, WTime, parse_resources
from grainlike.resource import ResourceSpec, with_overrides

pytestmark = pytest.mark.slow

PYTHON = sys.executable

REPORT = """
import json, os
print(json.dumps({
    "affinity": sorted(os.sched_getaffinity(0)),
    "cuda": os.environ.get("CUDA_VISIBLE_DEVICES"),
    "omp": os.environ.get("OMP_NUM_THREADS"),
    "cores": os.environ.get("GRAINLIKE_CORES"),
    "extra": os.environ.get("EXTRA"),
}))
"""

#: A child that starts a grandchild (which ignores SIGTERM when asked), writes both pids to
#: argv[1] once the grandchild is ready, and sleeps.
FAMILY = r"""
import os, subprocess, sys, time
ignore = sys.argv[2] == "ignore-term"
code = (
    "import signal, time\n"
    + ("signal.signal(signal.SIGTERM, signal.SIG_IGN)\n" if ignore else "")
    + "print('ready', flush=True)\n"
    + "time.sleep(60)\n"
)
grandchild = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
grandchild.stdout.readline()
with open(sys.argv[1] + ".tmp", "w") as out:
    out.write(f"{os.getpid()} {grandchild.pid}")
os.replace(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(60)
"""

#: Touches 256 MiB, then sleeps.
HOG = "import time; block = b'x' * (256 * 2**20); time.sleep(60)"


@pytest.fixture(autouse=True)
def this_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """The embedded worker owns this process's real cores (so affinity can be set) and two
    pretend GPUs (only ``CUDA_VISIBLE_DEVICES`` is checked)."""
    cores = Cores(sorted(os.sched_getaffinity(0)))
    base = parse_resources("mem:4G,gpu:2,wtime:inf", capacity=True) & cores

    def capacity(resources: ResourceSpec | None) -> Resources:
        return with_overrides(base, resources)

    monkeypatch.setattr(grainlike._session, "_local_capacity", capacity)


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture
def family(tmp_path: Path) -> Iterator[Path]:
    """Where a FAMILY child writes its pids; whatever is still alive afterwards is killed."""
    path = tmp_path / "pids"
    yield path
    if path.exists():
        for pid in map(int, path.read_text().split()):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


async def pids_of(path: Path) -> list[int]:
    with trio.fail_after(20):
        while not path.exists():
            await trio.sleep(0.05)
    return [int(pid) for pid in path.read_text().split()]


async def all_gone(pids: list[int], within: float = 5.0) -> bool:
    with trio.move_on_after(within):
        while any(alive(pid) for pid in pids):
            await trio.sleep(0.05)
        return True
    return False


async def report(extra_env: dict[str, str] | None = None) -> dict[str, object]:
    options: dict[str, object] = {"capture_stdout": True}
    if extra_env is not None:
        options["env"] = {**os.environ, **extra_env}
    done = await gl.run_process([PYTHON, "-c", REPORT], **options)
    seen: dict[str, object] = json.loads(done.stdout)
    seen["allocated"] = gl.GVAR.res.c
    seen["gpus"] = gl.GVAR.res.gpus if gl.GVAR.res.get(GPU) is not None else []
    return seen


async def test_a_child_runs_on_the_tasks_cores_with_its_gpus_and_thread_count() -> None:
    async with gl.open_session(stats=None):
        seen = await (report @ Cores(1) & GPU(1))()
    assert seen["affinity"] == seen["allocated"]
    assert len(seen["allocated"]) == 1
    assert seen["cuda"] == ",".join(str(i) for i in seen["gpus"])
    assert seen["omp"] == "1"
    assert seen["cores"] == str(seen["allocated"][0])


async def test_a_child_of_a_task_without_gpus_sees_no_cuda_devices() -> None:
    async with gl.open_session(stats=None):
        seen = await (report @ Cores(len(os.sched_getaffinity(0))))({"EXTRA": "kept"})
    assert seen["affinity"] == sorted(os.sched_getaffinity(0))
    assert seen["cuda"] == ""
    assert seen["omp"] == str(len(os.sched_getaffinity(0)))
    assert seen["extra"] == "kept"


async def test_two_tasks_children_are_pinned_to_different_cores() -> None:
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs at least two usable cores")
    async with gl.open_session(stats=None):
        first, second = await gl.gather((report @ Cores(1))(), (report @ Cores(1))())
    assert first["affinity"] == first["allocated"]
    assert second["affinity"] == second["allocated"]


async def run_family(pidfile: Path, mode: str) -> None:
    await gl.run_process([PYTHON, "-c", FAMILY, str(pidfile), mode])


@pytest.mark.parametrize("mode", ["plain", "ignore-term"])
async def test_cancelling_the_caller_kills_the_childs_whole_process_group(
    family: Path, mode: str
) -> None:
    async with gl.open_session(stats=None) as session:
        with trio.CancelScope() as scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(gl.exec1, Cores(1), run_family, family, mode)
                pids = await pids_of(family)
                assert all(alive(pid) for pid in pids)
                scope.cancel()
        assert await all_gone(pids), f"still alive: {[p for p in pids if alive(p)]}"
        with trio.fail_after(10):
            while session.dispatcher.running():
                await trio.sleep(0.05)


async def test_a_hard_time_limit_kills_the_childs_whole_process_group(family: Path) -> None:
    async with gl.open_session(stats=None):
        with trio.fail_after(30), pytest.raises(trio.TooSlowError):
            await gl.exec1(Cores(1) & WTime(T=3), run_family, family, "plain")
        pids = [int(pid) for pid in family.read_text().split()]
        assert await all_gone(pids), f"still alive: {[p for p in pids if alive(p)]}"
        # The worker keeps serving.
        assert await gl.exec1(Cores(1), report) is not None


#: A child that starts a grandchild ignoring SIGTERM in its group, writes both pids, and exits.
LEAVER = r"""
import os, subprocess, sys
code = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print(flush=True); time.sleep(60)"
)
grandchild = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
grandchild.stdout.readline()
with open(sys.argv[1], "w") as out:
    out.write(f"{os.getpid()} {grandchild.pid}")
"""


@pytest.mark.parametrize("enforce", [False, True], ids=["plain", "enforced"])
async def test_what_a_child_leaves_in_its_group_is_killed_when_it_exits(
    family: Path, enforce: bool
) -> None:
    async with gl.open_session(stats=None, enforce_memory=enforce):
        await gl.exec1(Cores(1) & Memory("1G"), gl.run_process, [PYTHON, "-c", LEAVER, family])
        pids = [int(pid) for pid in family.read_text().split()]
        assert await all_gone(pids), f"still alive: {[p for p in pids if alive(p)]}"


async def test_a_child_over_its_memory_is_killed_with_memory_limit_error() -> None:
    async with gl.open_session(stats=None, enforce_memory=True):
        with trio.fail_after(30), pytest.raises(MemoryLimitError, match=r"more than its 0\.0625G"):
            await gl.exec1(Cores(1) & Memory("64M"), gl.run_process, [PYTHON, "-c", HOG])


async def test_a_child_within_its_memory_runs_to_completion_under_enforcement() -> None:
    async with gl.open_session(stats=None, enforce_memory=True):
        done = await gl.exec1(
            Cores(1) & Memory("1G"),
            gl.run_process,
            [PYTHON, "-c", "print('fine')"],
            capture_stdout=True,
        )
    assert (done.returncode, done.stdout) == (0, b"fine\n")


@pytest.mark.parametrize("enforce", [False, True], ids=["plain", "enforced"])
async def test_a_failing_child_raises_called_process_error_unless_check_is_off(
    enforce: bool,
) -> None:
    fail = [PYTHON, "-c", "raise SystemExit(3)"]
    async with gl.open_session(stats=None, enforce_memory=enforce):
        with pytest.raises(subprocess.CalledProcessError) as caught:
            await gl.exec1(Cores(1) & Memory("1G"), gl.run_process, fail)
        assert caught.value.returncode == 3
        done = await gl.exec1(Cores(1) & Memory("1G"), gl.run_process, fail, check=False)
        assert done.returncode == 3


async def test_run_process_outside_a_task_says_it_needs_one() -> None:
    with pytest.raises(RuntimeError, match="not inside a grainlike task"):
        await gl.run_process([PYTHON, "-c", "pass"])


def test_an_overcommitted_embedded_worker_warns_and_its_tasks_children_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    allowed = set(os.sched_getaffinity(0))
    count = len(allowed) + 2

    async def child() -> tuple[list[int], set[int]]:
        done = await gl.run_process(
            [sys.executable, "-c", "import os; print(sorted(os.sched_getaffinity(0)))"],
            capture_stdout=True,
        )
        return gl.GVAR.res.c, set(json.loads(done.stdout))

    async def main() -> list[tuple[list[int], set[int]]]:
        return await gl.gather(*[(child @ Cores(1))() for _ in range(count)])

    results = gl.run(main, resources=f"cores:{count}", stats=None)
    given = sorted(core for cores, _ in results for core in cores)
    assert given == list(range(count))  # each task saw the ID it was given
    for cores, ran_on in results:  # and its child ran on that core when it exists
        assert ran_on == ({cores[0]} if cores[0] in allowed else allowed)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("that this process may not run on" in w for w in warnings)
