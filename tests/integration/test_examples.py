"""Every example in examples/ runs, as a user would run it."""

from __future__ import annotations

import itertools
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


#: The home of the examples that run without one of their own: none of the user's learned
#: store, key or job records is read or written.
_SHARED_HOME = Path(tempfile.mkdtemp(prefix="grainlike-examples-"))


def _run(*command: str, cwd: Path = EXAMPLES.parent, env: dict[str, str] | None = None) -> str:
    if env is None:
        env = dict(os.environ, HOME=str(_SHARED_HOME))
        env.pop("XDG_STATE_HOME", None)
    done = subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=180, env=env)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


AFFINITY = sorted(os.sched_getaffinity(0))  # what the examples' embedded worker detects


def _ids(text: str) -> list[int]:
    return [int(word) for word in re.findall(r"\d+", text)]


def test_quickstart_runs_with_grainlike_run_and_reports_cores() -> None:
    out = _run(sys.executable, "-m", "grainlike", "run", "examples/quickstart.py")
    lines = out.splitlines()
    assert lines[0] == f"this machine offers {len(AFFINITY)} core(s) to grainlike"
    simulated = [re.fullmatch(r"simulate (\d): cores (\[.*\]) on (\S+)", x) for x in lines[1:5]]
    assert [int(m[1]) for m in simulated if m] == [0, 1, 2, 3], out
    assert all(len(_ids(m[2])) == 1 and _ids(m[2])[0] in AFFINITY for m in simulated if m)
    crunched = [re.fullmatch(r"crunch (\d+): cores (\[.*\]) -> (\d+)", x) for x in lines[5:7]]
    for match in crunched:
        assert match is not None, out
        assert int(match[3]) == sum(i * i for i in range(int(match[1])))
        assert len(_ids(match[2])) == 1
    child = re.fullmatch(
        r"child process of a task on cores (\[.*\]) sees cores (\[.*\]), OMP_NUM_THREADS=(\d+)",
        lines[7],
    )
    assert child is not None, out
    assert child[1] == child[2]  # the child runs on exactly the task's cores
    assert int(child[3]) == len(_ids(child[1])) == min(2, len(AFFINITY))
    assert len(lines) == 8


PINNED = re.compile(
    r"(?P<label>wide|narrow \d+): allocated cores (?P<cores>\[[\d, ]*\]); "
    r"the child sees affinity (?P<seen>\[[\d, ]*\]), OMP_NUM_THREADS=(?P<threads>\d+), "
    r"CUDA_VISIBLE_DEVICES=(?P<gpus>'.*')"
)


def test_subprocess_pinning_children_see_exactly_their_cores() -> None:
    out = _run(sys.executable, "-m", "grainlike", "run", "examples/subprocess_pinning.py")
    matches = [PINNED.fullmatch(line) for line in out.splitlines()]
    assert all(matches), out  # every line as the example prints it, none garbled
    lines = [m for m in matches if m]
    labels = [m["label"] for m in lines]
    assert labels == ["wide", *(f"narrow {i}" for i in range(len(AFFINITY)))]
    for line in lines:
        assert line["cores"] == line["seen"], line[0]
        assert int(line["threads"]) == len(_ids(line["cores"])), line[0]
        assert line["gpus"] == "''", line[0]  # no GPU allocated: CUDA sees none
    assert _ids(lines[0]["cores"]) == AFFINITY  # wide: every core


def test_learned_walltime_gives_limits_after_eight_runs(tmp_path: Path) -> None:
    out = _run(sys.executable, "examples/learned_walltime.py", str(tmp_path / "stats.json"))
    rounds = [line for line in out.splitlines() if line.startswith("round")]
    assert "none" in rounds[0]
    assert "none" not in rounds[2]
    again = _run(sys.executable, "examples/learned_walltime.py", str(tmp_path / "stats.json"))
    assert "none" not in again.splitlines()[0]  # the second run starts learned


def test_autolabel_packs_tighter_once_the_groups_are_learned_and_starts_learned_again(
    tmp_path: Path,
) -> None:
    store = str(tmp_path / "learned.db")
    first = _run(sys.executable, "examples/autolabel.py", store).splitlines()
    relax = re.fullmatch(r"relax label: (\d+)M", first[2])
    scan = re.fullmatch(r"scan label: (\d+)M", first[3])
    assert relax is not None and scan is not None, first
    label = f"{relax[1]}M"
    # Unlabelled, each relax task takes all of the worker's 1G: one at a time; the sixth, run
    # after five measured runs, already takes the label.
    assert first[0] == (
        f"round 0: relax tasks were given {'1024M ' * 5}{label}, at most 1 at once; "
        "scan built 60M each"
    )
    assert first[1] == f"round 1: relax tasks were given {' '.join([label] * 6)}, at most 2 " + (
        "at once; scan built 60M each"
    )
    # A 150M child plus its interpreter, plus 10 %; a 60M block in a worker process, plus 10 %.
    assert 165 <= int(relax[1]) <= 200
    assert 66 <= int(scan[1]) <= 130
    again = _run(sys.executable, "examples/autolabel.py", store).splitlines()
    assert again[0].startswith(
        f"round 0: relax tasks were given {' '.join([label] * 6)}, at most 2"
    )
    stats = json.loads(_run(sys.executable, "-m", "grainlike", "stats", "--stats", store, "--json"))
    assert [group["group"] for group in stats] == ["relax", "scan"]
    assert stats[0]["measured_runs"] == 24
    assert stats[0]["memory_label"] / 2**20 == pytest.approx(int(relax[1]), abs=0.5)


def test_cluster_local_sends_token_tasks_only_to_the_worker_with_the_token() -> None:
    out = _run(sys.executable, "examples/cluster_local.py")
    assert "token:gpu tasks ran on: {'gpu-node': 4}" in out
    assert "5000 short tasks: all results right" in out
    assert "pipelined at most" in out


def test_resume_runs_again_only_what_the_killed_run_did_not_record() -> None:
    out = _run(sys.executable, "examples/resume.py").splitlines()
    first = json.loads(out[0].removeprefix("first run, killed: ran "))
    second = json.loads(out[1].removeprefix("second run: ran "))
    assert 10 <= len(first) < 20
    assert sorted(set(first) | set(second)) == list(range(20))
    # A task the killed run finished but had not recorded yet runs again; no other does.
    assert len(set(first) & set(second)) <= 2
    assert out[2] == "second run: sum of the squares of 0..19: 2470"
    assert out[3].endswith("20 tasks: 20 succeeded, 0 failed, 0 cancelled, 0 unfinished")


def test_report_writes_an_event_log_a_report_and_a_trace_of_a_run_on_two_workers(
    tmp_path: Path,
) -> None:
    out = _run(sys.executable, "examples/report.py", str(tmp_path))
    assert "one task failed, as it should: bad input 42" in out
    summary = out.splitlines()[-1]
    assert summary.startswith("19 tasks: 18 finished, 1 failed; 20 runs (1 retried); 2 workers")
    page = (tmp_path / "report.html").read_text()
    assert "ValueError: bad input 42" in page
    assert "drained: the example is done with it" in page
    trace = json.loads((tmp_path / "trace.json").read_text())
    runs = [event for event in trace["traceEvents"] if event["ph"] == "X"]
    assert len(runs) == 20
    assert {event["pid"] for event in runs} == {1, 2}
    records = [json.loads(line) for line in (tmp_path / "run.jsonl").read_text().splitlines()]
    assert [r["event"] for r in records].count("TaskPlaced") == 20


def test_cpu_bound_runs_tasks_in_parallel_in_worker_processes() -> None:
    out = _run(sys.executable, "-m", "grainlike", "run", "examples/cpu_bound.py")
    speedups = {
        line.split(":")[0]: float(line.rsplit("speed-up ", 1)[1].rstrip("x"))
        for line in out.splitlines()
        if "speed-up" in line
    }
    assert set(speedups) == {"worker processes", "worker threads"}
    cores = len(os.sched_getaffinity(0))
    ran = {
        where: re.fullmatch(
            rf"{where}: {cores} at once ran in (\d+) process\(es\), on cores (.*), "
            r"and used ([\d.]+) s of CPU in ([\d.]+) s",
            line,
        )
        for line in out.splitlines()
        for where in ("worker processes", "worker threads")
        if line.startswith(f"{where}: {cores} at once ran")
    }
    processes, threads = ran["worker processes"], ran["worker threads"]
    assert processes is not None and threads is not None, out
    # Each task in a process of its own, pinned to a core of its own; threads share one.
    assert int(processes[1]) == cores and int(threads[1]) == 1, out
    assert sorted(processes[2].split()) == sorted(f"[{core}]" for core in range(cores)), out
    if cores >= 2:
        # Side by side: together they used more CPU time than the time they took, which
        # threads under the interpreter lock cannot (the speed-up itself is in bench_pool).
        assert float(processes[3]) > 1.05 * float(processes[4]), out
        assert float(threads[3]) <= 1.05 * float(threads[4]), out


# -- examples/plans: run as a user would, on the embedded worker and on remote workers ------

GRAINLIKE = (sys.executable, "-m", "grainlike")


def _home(tmp_path: Path) -> dict[str, str]:
    """An environment with a home of its own (no learned store or key of the user's) and the
    shared key that the dispatcher and its workers read."""
    home = tmp_path / "home"
    home.mkdir()
    return dict(os.environ, HOME=str(home), GRAINLIKE_KEY=bytes(range(32)).hex())


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def _workers(env: dict[str, str], *names: str) -> Iterator[str]:
    """``grainlike worker`` processes of one core each, started before their dispatcher (each
    keeps trying until it listens) and leaving when its run ends; yields the address."""
    address = f"127.0.0.1:{_free_port()}"
    command = [*GRAINLIKE, "worker", address, "--resources", "cores:1", "--reconnect-timeout", "0"]
    processes = [
        subprocess.Popen([*command, "--name", name], env=env, stderr=subprocess.PIPE, text=True)
        for name in names
    ]
    try:
        yield address
        for process in processes:
            _, errors = process.communicate(timeout=30)
            assert process.returncode == 0, errors
            assert "the dispatcher said goodbye: its run ended" in errors
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()


def _run_plan(script: str, env: dict[str, str], *options: str, args: tuple[str, ...] = ()) -> str:
    return _run(*GRAINLIKE, "run", script, "--no-progress", *options, "--", *args, env=env)


STEP = re.compile(
    r"(?P<name>\S+) on (?P<worker>\S+) cores (?P<cores>\[[\d, ]*\]) "
    r"from (?P<started>\d+\.\d+)s to (?P<ended>\d+\.\d+)s: (?P<value>.*)"
)


def _primes_below(limit: int) -> list[int]:
    return [n for n in range(2, limit) if all(n % d for d in range(2, int(n**0.5) + 1))]


def _check_stepup_plan(out: str, folder: Path, workers: set[str]) -> None:
    lines = out.splitlines()
    assert lines[0] == "plan primes ran on head", out
    assert lines[3] == "plan words ran on head", out
    assert lines[-1] == f"8 steps of 2 plans wrote 9 files under {folder}", out
    found = [STEP.fullmatch(line) for line in lines[1:3] + lines[4:-1]]
    assert all(found), out
    steps = {m["name"]: m for m in found if m}
    counts = [f"words/tally/count(chunk-{i}.txt)" for i in range(3)]
    assert set(steps) == {
        *("primes/sieve", "primes/last_digits", "words/split", "words/tally"),
        *(*counts, "words/tally/merge"),
    }
    assert {m["worker"] for m in steps.values()} <= workers, out
    assert all(len(_ids(m["cores"])) == 1 for m in steps.values()), out
    value = {name: json.loads(m["value"]) for name, m in steps.items()}
    started = {name: float(m["started"]) for name, m in steps.items()}
    ended = {name: float(m["ended"]) for name, m in steps.items()}

    # primes: a file of the primes below 1000, then a count of their last digits.
    primes = _primes_below(1000)
    assert value["primes/sieve"] == len(primes) == 168
    assert (folder / "primes" / "primes.txt").read_text().split() == [str(p) for p in primes]
    digits = Counter(str(p % 10) for p in primes)
    assert value["primes/last_digits"] == dict(digits)
    assert json.loads((folder / "primes" / "last-digits.json").read_text()) == dict(digits)
    assert started["primes/last_digits"] >= ended["primes/sieve"]  # it took sieve's handle

    # words: three chunk files, a count of each (steps of tally), and their sum.
    chunks = [(folder / "words" / f"chunk-{i}.txt").read_text() for i in range(3)]
    assert value["words/split"] == sum(len(chunk.splitlines()) for chunk in chunks) == 5
    words = [Counter(re.findall(r"[a-z]+", chunk.lower())) for chunk in chunks]
    for i, name in enumerate(counts):
        assert value[name] == words[i].total() > 0
        assert json.loads((folder / "words" / f"count-{i}.json").read_text()) == words[i]
        assert started[name] >= ended["words/split"]
        assert started["words/tally/merge"] >= ended[name]  # it took every count's handle
    total = sum(words, Counter[str]())
    top = sorted(total.items(), key=lambda item: (-item[1], item[0]))[:3]
    summary = {"words": total.total(), "distinct": len(total), "top": [list(t) for t in top]}
    assert value["words/tally/merge"] == summary
    assert json.loads((folder / "words" / "words.json").read_text()) == summary
    assert value["words/tally"] == summary["words"]
    assert started["words/tally"] >= ended["words/split"]  # it took split's handle
    assert ended["words/tally"] >= ended["words/tally/merge"]


def test_the_stepup_plan_runs_its_plans_as_branches_on_one_embedded_core(tmp_path: Path) -> None:
    # One core: the plans take none (ZERO) and tally lends its core to its own steps.
    env = _home(tmp_path)
    folder = tmp_path / "out"
    out = _run_plan("examples/plans/plan.py", env, "--resources", "cores:1", args=(str(folder),))
    local = {line.split()[2] for line in out.splitlines() if STEP.fullmatch(line)}
    assert len(local) == 1 and local != {"head"}, out  # every step on the embedded worker
    _check_stepup_plan(out, folder, local)


def test_the_stepup_plan_runs_its_steps_on_remote_workers_and_its_plans_on_the_head(
    tmp_path: Path,
) -> None:
    env = _home(tmp_path)
    folder = tmp_path / "out"
    with _workers(env, "a", "b") as address:
        options = ("--listen", address, "--no-local")
        out = _run_plan("examples/plans/plan.py", env, *options, args=(str(folder),))
    _check_stepup_plan(out, folder, {"a", "b"})


BRANCH = re.compile(
    r"branch (?P<i>\d) (?P<xs>\[[\d, ]*\]) on (?P<worker>\S+) "
    r"from (?P<started>\d+\.\d+)s to (?P<ended>\d+\.\d+)s: sum of squares (?P<total>\d+)"
)
LEAF = re.compile(
    r"  leaf (?P<x>\d+) on (?P<worker>\S+) cores (?P<cores>\[[\d, ]*\]) "
    r"from (?P<started>\d+\.\d+)s to (?P<ended>\d+\.\d+)s"
)


def _check_branches(out: str) -> tuple[list[re.Match[str]], list[re.Match[str]]]:
    """The branches and leaves ``branches.py`` printed, checked against what it claims."""
    lines = out.splitlines()
    assert lines[-1] == "4 branches: sum of squares of 1..11 = 506", out
    branches: list[re.Match[str]] = []
    leaves: list[re.Match[str]] = []
    for line in lines[:-1]:
        branch, leaf = BRANCH.fullmatch(line), LEAF.fullmatch(line)
        assert branch or leaf, line
        if branch:
            branches.append(branch)
            continue
        assert leaf is not None
        leaves.append(leaf)
        mine = branches[-1]
        assert int(leaf["x"]) in _ids(mine["xs"])
        assert float(leaf["started"]) >= float(mine["started"])
        assert float(leaf["ended"]) <= float(mine["ended"])
    assert [_ids(b["xs"]) for b in branches] == [[1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11]]
    assert sorted(int(leaf["x"]) for leaf in leaves) == list(range(1, 12))
    for branch in branches:
        assert int(branch["total"]) == sum(x * x for x in _ids(branch["xs"]))
    assert {b["worker"] for b in branches} == {"head"}
    # The branches ran at once: each had started before the first of them ended.
    assert max(float(b["started"]) for b in branches) < min(float(b["ended"]) for b in branches)
    return branches, leaves


def test_branches_wait_for_their_leaves_together_on_one_embedded_core(tmp_path: Path) -> None:
    out = _run_plan("examples/plans/branches.py", _home(tmp_path), "--resources", "cores:1")
    _, leaves = _check_branches(out)
    assert len({leaf["worker"] for leaf in leaves}) == 1
    assert {leaf["worker"] for leaf in leaves} != {"head"}
    assert {leaf["cores"] for leaf in leaves} == {"[0]"}
    # One core: the leaves ran one after another, 11 of them, none while another did.
    spans = sorted((float(leaf["started"]), float(leaf["ended"])) for leaf in leaves)
    assert all(end <= start for (_, end), (start, _) in itertools.pairwise(spans))


def test_branches_run_on_the_head_and_their_leaves_on_remote_workers(tmp_path: Path) -> None:
    env = _home(tmp_path)
    with _workers(env, "a", "b") as address:
        out = _run_plan("examples/plans/branches.py", env, "--listen", address, "--no-local")
    _, leaves = _check_branches(out)
    # On the remote workers only (the second to join may find every leaf taken).
    assert {leaf["worker"] for leaf in leaves} <= {"a", "b"}
