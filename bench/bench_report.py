"""Building a report (issue 16): ``grainlike report`` of a made-up log of many tasks.

Run: ``.venv/bin/python bench/bench_report.py [--tasks 100000] [--repeats 3]``.  Writes the log
of ``tests/unit/test_report.py``'s ``write_synthetic_log`` (4 workers of 8 cores, about 1 %
retried and 1 % failed) to a temporary directory, then times, in CPU seconds (the machine is
shared, so wall time varies more), reading the log into a ``RunModel``, writing the HTML
report and writing the trace, and prints the sizes of the files.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from grainlike._report import load_run, write_html, write_trace
from tests.unit.test_report import write_synthetic_log


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        log = Path(scratch) / "run.jsonl"
        runs = write_synthetic_log(log, args.tasks)
        lines = len(log.read_text().splitlines())
        size = log.stat().st_size / 1e6
        print(f"{args.tasks} tasks, {runs} runs, {lines} events, log {size:.1f} MB")
        figures: dict[str, list[float]] = {"load": [], "html": [], "trace": []}
        for _ in range(args.repeats):
            began = time.process_time()
            model = load_run(log)
            loaded = time.process_time()
            page = write_html(model, Path(scratch) / "report.html")
            written = time.process_time()
            trace = write_trace(model, Path(scratch) / "trace.json")
            traced = time.process_time()
            figures["load"].append(loaded - began)
            figures["html"].append(written - loaded)
            figures["trace"].append(traced - written)
        for name, seconds in figures.items():
            print(f"{name:>5}: median {statistics.median(seconds):.2f} s (best {min(seconds):.2f})")
        print(
            f"report.html {page.stat().st_size / 1e6:.2f} MB, trace.json "
            f"{trace.stat().st_size / 1e6:.1f} MB"
        )


if __name__ == "__main__":
    main()
