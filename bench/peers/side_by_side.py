# The table prints the multiplication sign and the en dash, as bench/README.md does.
# ruff: noqa: RUF001, RUF002
"""grainlike and Grain 0.17.1 side by side: the same benchmark definitions, interleaved.

Run from the repository root with the project's venv::

    .venv/bin/python bench/peers/side_by_side.py [--passes 4] [--only FIGURE ...]
        [--grainlike PATH] [--json FILE] [--schedulers gnaw,builtin]

Each figure is measured by a small driver per tool (``grainlike_driver.py``, ``grain_driver.py``)
in a fresh process, one process at a time, never two tools at once.  A pass runs every chosen
figure once for every tool, back to back; the tool that goes first alternates from pass to pass.
The table gives, per tool, the median over the passes and the range (min–max), and the median of
the per-pass ratios grainlike / Grain.  ``--grainlike PATH`` measures the grainlike package of
another checkout: it goes first on ``PYTHONPATH`` for the driver and its worker processes, so a
"before" and an "after" can be compared in one sitting.  Grain runs from its own venv,
``bench/peers/.venv-grain``, which ``setup.sh`` creates on first use.

Grain's cluster figures are measured with both of its schedulers: Gnaw (its default, a Go daemon
that Grain starts itself) and the built-in Python ``GrainExecutor`` (``head.gnaw.enabled =
false``).  Grain's embedded mode (``local=``) is always the built-in executor.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import psutil

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
GRAIN_PYTHON = HERE / ".venv-grain" / "bin" / "python"
GRAIN_VERSION = "0.17.1"

PEER_FIGURES = ("cluster", "memory", "latency", "mixed_cluster")  # cluster: both Grain schedulers
EMBEDDED_FIGURES = ("embedded", "embedded_latency", "mixed_embedded")
OWN_FIGURES = ("placement", "queued")  # grainlike only
ALL_FIGURES = (
    "cluster",
    "memory",
    "latency",
    "embedded",
    "embedded_latency",
    "mixed_cluster",
    "mixed_embedded",
    "placement",
    "queued",
)
GNAW_CANNOT = {
    # Found by running it: Grain's RemoteExecutor takes a request without Cores for a
    # specialised-worker task and sends it without its function, and Gnaw decodes Memory as an
    # integer; Memory(0.1) makes Gnaw drop the connection, Memory(1) hangs.
    "memory": "n/a: Gnaw cannot run a request without Cores",
}


@attrs.frozen
class Row:
    """One line of the table: a figure's metric, how to print it, and the goal."""

    label: str
    figure: str
    metric: str
    unit: str
    digits: int
    goal: str
    ratio: bool = True  # whether grainlike / Grain means anything for the goal


ROWS = (
    Row("cluster, tasks of `Cores(1)`", "cluster", "tasks_per_s", "tasks/s", 0, "≥ 8×"),
    Row(
        "cluster, tasks with a non-binding `Memory(0.1)` request",
        "memory",
        "tasks_per_s",
        "tasks/s",
        0,
        "≥ 8×, spread over both workers",
    ),
    Row("cluster round trip, median", "latency", "median_ms", "ms", 3, "≤ 0.4×"),
    Row("cluster round trip, p99", "latency", "p99_ms", "ms", 3, "≤ 0.5×"),
    Row("embedded, tasks of `Cores(1)`", "embedded", "tasks_per_s", "tasks/s", 0, "≥ 4×"),
    Row("embedded round trip, median", "embedded_latency", "median_ms", "ms", 3, "≤ 0.7×"),
    Row("embedded round trip, p99", "embedded_latency", "p99_ms", "ms", 3, ""),
    Row("dispatcher peak RSS during 10,000 tasks", "cluster", "peak_rss_mb", "MB", 1, "≤ 1.2×"),
    Row(
        "mixed `Cores(1)`/`Cores(2)` makespan / ideal, cluster (2 × `cores:2`)",
        "mixed_cluster",
        "ratio",
        "",
        2,
        "≤ 1.15",
        ratio=False,
    ),
    Row(
        "mixed `Cores(1)`/`Cores(2)` makespan / ideal, embedded (`cores:2`)",
        "mixed_embedded",
        "ratio",
        "",
        2,
        "≤ 1.10",
        ratio=False,
    ),
    Row(
        "placement, 1,000 workers × 100,000 queued",
        "placement",
        "us_per_task_1000",
        "µs per placed task",
        1,
        "≤ 20 µs, sub-linear in workers",
        ratio=False,
    ),
    Row(
        "placement, 100 workers × 100,000 queued",
        "placement",
        "us_per_task_100",
        "µs per placed task",
        1,
        "",
        ratio=False,
    ),
    Row(
        "memory per queued task, 1,000,000 queued",
        "queued",
        "bytes_per_task",
        "B",
        0,
        "≤ 1 KB",
        ratio=False,
    ),
)


@attrs.frozen
class Tool:
    """A column: which driver, under which interpreter and environment."""

    name: str
    title: str
    python: Path
    driver: Path
    env: dict[str, str]


def tools_for(figure: str, tools: dict[str, Tool]) -> list[Tool]:
    names = ["grainlike"]
    if figure in PEER_FIGURES:
        names += [n for n in ("grain-gnaw", "grain-builtin") if n in tools]
        if figure in GNAW_CANNOT and "grain-gnaw" in names:
            names.remove("grain-gnaw")
    elif figure in EMBEDDED_FIGURES:
        names.append("grain-local")
    return [tools[n] for n in names if n in tools]


def make_tools(grainlike: Path, schedulers: Sequence[str]) -> dict[str, Tool]:
    base = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    tools = {
        "grainlike": Tool(
            "grainlike",
            "grainlike",
            Path(sys.executable),
            HERE / "grainlike_driver.py",
            dict(base, PYTHONPATH=str(grainlike)),
        ),
        "grain-local": Tool(
            "grain-local",
            f"Grain {GRAIN_VERSION}, built-in",
            GRAIN_PYTHON,
            HERE / "grain_driver.py",
            dict(base, GRAIN_SCHEDULER="builtin"),
        ),
    }
    for scheduler in schedulers:
        name = f"grain-{scheduler}"
        title = f"Grain {GRAIN_VERSION}, " + ("Gnaw" if scheduler == "gnaw" else "built-in")
        tools[name] = Tool(
            name,
            title,
            GRAIN_PYTHON,
            HERE / "grain_driver.py",
            dict(base, GRAIN_SCHEDULER=scheduler),
        )
    return tools


def end_leftovers(process: subprocess.Popen[bytes], pidfile: Path, timed_out: bool) -> None:
    """End what a driver left behind.  A driver ends its own workers on the way out; this is for
    one that did not get there: its process group when it ran out of time (it is still alive,
    so the group is surely its own), and every process it recorded that is still the same
    process (same id and start time), such as Gnaw, which runs in a session of its own."""
    if timed_out:
        with contextlib.suppress(OSError):
            os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        for line in pidfile.read_text().splitlines():
            pid, created = line.split()
            with contextlib.suppress(psutil.Error):
                leftover = psutil.Process(int(pid))
                if leftover.create_time() == float(created):
                    leftover.kill()


def run_driver(
    tool: Tool, figure: str, args: argparse.Namespace, scratch: Path, log: Path
) -> dict[str, Any]:
    """Run one driver in a fresh process (in its own process group, from an empty directory)
    and return its figures, or ``{"error": ...}``."""
    out = scratch / f"{tool.name}-{figure}.json"
    pidfile = scratch / f"{tool.name}-{figure}.pids"
    for stale in (out, pidfile):
        stale.unlink(missing_ok=True)
    command = [str(tool.python), str(tool.driver), figure, "--out", str(out)]
    command += ["--scale", str(args.scale), "--pidfile", str(pidfile)]
    started = time.perf_counter()
    with log.open("ab") as sink:
        sink.write(f"\n=== {tool.name} {figure}: {' '.join(command)}\n".encode())
        sink.flush()
        process = subprocess.Popen(
            command,
            cwd=scratch,
            env=tool.env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=sink,
            start_new_session=True,
        )
        rc: int | None = None
        try:
            rc = process.wait(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            pass
        finally:
            end_leftovers(process, pidfile, timed_out=rc is None)
            process.wait()
    took = time.perf_counter() - started
    if rc is None:
        return {"error": f"timed out after {args.timeout:g} s", "wall_s": took}
    if rc != 0 or not out.exists():
        return {"error": f"exit status {rc} (see {log})", "wall_s": took}
    figures: dict[str, Any] = json.loads(out.read_text())
    figures["wall_s"] = took
    return figures


def fmt(value: float, digits: int) -> str:
    return f"{value:,.{digits}f}"


def spread(run: dict[str, Any]) -> float | None:
    """Share of the busiest worker, in per cent (100: all on one)."""
    counts: dict[str, int] | None = run.get("per_worker")
    if not counts:
        return None
    shares = [*counts.values(), *[0] * (2 - len(counts))]
    return 100 * max(shares) / sum(shares)


def cell(runs: list[dict[str, Any]], row: Row) -> str:
    values = [r[row.metric] for r in runs if row.metric in r]
    if not values:
        errors = {r["error"] for r in runs if "error" in r}
        return "failed: " + "; ".join(sorted(errors)) if errors else "–"
    text = fmt(statistics.median(values), row.digits)
    if len(values) > 1:
        text += f" ({fmt(min(values), row.digits)}–{fmt(max(values), row.digits)})"
    if row.figure == "memory":
        shares = [s for s in map(spread, runs) if s is not None]
        if shares:
            busiest = statistics.median(shares)
            text += "; all on one worker" if busiest >= 99.95 else f"; busiest {busiest:.0f} %"
    failed = sum("error" in r for r in runs)
    if failed:
        text += f" [{failed} failed]"
    return text


def ratio_cell(mine: list[dict[str, Any]], theirs: list[dict[str, Any]], row: Row) -> str:
    """The median of the per-pass ratios grainlike / Grain (paired by pass)."""
    ratios = [
        a[row.metric] / b[row.metric]
        for a, b in zip(mine, theirs, strict=False)
        if row.metric in a and row.metric in b and b[row.metric]
    ]
    if not ratios:
        return ""
    text = f"{statistics.median(ratios):.2f}×"
    if len(ratios) > 1:
        text += f" ({min(ratios):.2f}–{max(ratios):.2f})"
    return text


def table(
    results: dict[tuple[str, str], list[dict[str, Any]]],
    figures: Sequence[str],
    tools: dict[str, Tool],
) -> str:
    peers = [n for n in ("grain-gnaw", "grain-builtin") if n in tools]
    titles = [tools[n].title for n in peers]
    head = ["figure", "unit", "grainlike", *titles]
    head += [f"ratio vs {t.split(', ')[1]}" for t in titles] + ["goal"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in ROWS:
        if row.figure not in figures:
            continue
        mine = results.get(("grainlike", row.figure), [])
        cells = [row.label, row.unit, cell(mine, row)]
        ratios = []
        for peer in peers:
            name: str = peer
            if row.figure in EMBEDDED_FIGURES:
                name = "grain-local" if peer == "grain-builtin" else ""
            theirs = results.get((name, row.figure), [])
            if row.figure in OWN_FIGURES:
                cells.append("")
            elif peer == "grain-gnaw" and row.figure in GNAW_CANNOT:
                cells.append(GNAW_CANNOT[row.figure])
            elif not name:
                cells.append("n/a: `local=` is the built-in executor")
            else:
                cells.append(cell(theirs, row))
            ratios.append(ratio_cell(mine, theirs, row) if row.ratio and theirs else "")
        lines.append("| " + " | ".join([*cells, *ratios, row.goal]) + " |")
    return "\n".join(lines)


def describe(grainlike: Path) -> list[str]:
    model = "unknown"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        for line in subprocess.run(
            ["lscpu"], capture_output=True, text=True, timeout=10
        ).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    commit = "?"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(
            ["git", "-C", str(grainlike), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    return [
        f"machine: {platform.node()}, `lscpu` model name {model!r}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}",
        f"grainlike: {grainlike} at {commit}; Grain {GRAIN_VERSION} from {GRAIN_PYTHON.parent}",
    ]


def ensure_grain() -> None:
    if not GRAIN_PYTHON.exists():
        print("creating Grain's venv with bench/peers/setup.sh ...", file=sys.stderr)
        subprocess.run(["bash", str(HERE / "setup.sh")], check=True, timeout=600)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--grainlike", type=Path, default=ROOT, help="a grainlike checkout")
    parser.add_argument("--passes", type=int, default=4)
    parser.add_argument("--only", nargs="+", choices=ALL_FIGURES, help="run these figures only")
    parser.add_argument("--json", type=Path, help="save every run's raw figures here")
    parser.add_argument(
        "--schedulers", default="gnaw,builtin", help="Grain schedulers for cluster figures"
    )
    parser.add_argument("--scale", type=float, default=1.0, help="shrink counts (trials only)")
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="seconds for one driver run, then killed"
    )
    args = parser.parse_args(argv)
    grainlike = args.grainlike.resolve()
    if not (grainlike / "grainlike" / "__init__.py").exists():
        parser.error(f"--grainlike {grainlike}: no grainlike package there")
    schedulers = [s for s in args.schedulers.split(",") if s]
    if not set(schedulers) <= {"gnaw", "builtin"}:
        parser.error(f"--schedulers {args.schedulers}: choose from gnaw, builtin")
    figures = [f for f in ALL_FIGURES if not args.only or f in args.only]
    ensure_grain()
    tools = make_tools(grainlike, schedulers)
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    runs: list[dict[str, Any]] = []
    header = describe(grainlike)
    command = "bench/peers/side_by_side.py " + " ".join(sys.argv[1:] if argv is None else argv)
    with tempfile.TemporaryDirectory(prefix="side-by-side-") as directory:
        scratch = Path(directory)
        log = Path(tempfile.gettempdir()) / f"side_by_side-{os.getpid()}.log"
        log.write_bytes(b"")
        print(f"driver output goes to {log}", file=sys.stderr)
        for number in range(args.passes):
            for figure in figures:
                order = tools_for(figure, tools)
                if number % 2:
                    order.reverse()
                for tool in order:
                    figures_of_run = run_driver(tool, figure, args, scratch, log)
                    results.setdefault((tool.name, figure), []).append(figures_of_run)
                    runs.append({"pass": number, **figures_of_run, "tool": tool.name})
                    report = summary(figures_of_run)
                    print(
                        f"pass {number + 1}/{args.passes} {figure} {tool.name}: {report}",
                        file=sys.stderr,
                        flush=True,
                    )
    text = "\n".join([*header, f"command: `{command}`", "", table(results, figures, tools)])
    print(text)
    if args.json:
        args.json.write_text(
            json.dumps(
                {"header": header, "command": command, "runs": runs, "table": text}, indent=1
            )
        )


def summary(run: dict[str, Any]) -> str:
    """One line of progress: a run's figures, without the bookkeeping."""
    if "error" in run:
        return "FAILED " + str(run["error"])
    skip = {"figure", "tool", "python", "finished", "scale", "package", "script"}
    return ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in run.items()
        if k not in skip
    )


if __name__ == "__main__":
    main()
