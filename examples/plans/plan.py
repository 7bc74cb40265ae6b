"""A StepUp-style plan made of plans: each ``stepup/<name>/plan.py`` defines ``plan(out)``,
a coroutine that submits its own steps, and this script runs every such plan at once.

Each plan runs as a branch: a ``ZERO`` request that runs on the head, in the dispatcher's own
process, and takes no worker's slot while it submits its steps and waits for them.  Steps do
small real work on files under the output folder (a shared filesystem, on a cluster); a step
that takes another step's handle waits for it and gets its value.

On this machine (one core is enough: the plans take none, and ``tally`` lends its own)::

    grainlike run examples/plans/plan.py [-- OUT]

With remote workers only (a worker keeps trying until the dispatcher listens)::

    grainlike worker 127.0.0.1:4242 --name a &
    grainlike worker 127.0.0.1:4242 --name b &
    grainlike run examples/plans/plan.py --listen 127.0.0.1:4242 --no-local [-- OUT]

It prints where each plan and each step ran, when (seconds since the start) and its value.
"""

from __future__ import annotations

import json
import runpy
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grainlike as gl
from grainlike import ZERO

HERE = Path(__file__).resolve().parent

Plan = Callable[[Path], Awaitable[tuple[str, list[dict[str, Any]]]]]


def find_plans() -> dict[str, Plan]:
    """Every ``stepup/<name>/plan.py``'s ``plan``, by name.

    Each file runs as a module of its own name outside ``sys.modules``, so its functions
    travel to remote workers by value: the workers need grainlike, not this folder.
    """
    plans = {}
    for path in sorted(HERE.glob("stepup/*/plan.py")):
        namespace = runpy.run_path(str(path), run_name=f"stepup.{path.parent.name}")
        plans[path.parent.name] = namespace["plan"]
    return plans


def report(prefix: str, done: dict[str, Any], start: float) -> int:
    """Print one line for a step (and one for each step it made); returns how many."""
    name = f"{prefix}/{done['step']}"
    when = f"from {done['started'] - start:.3f}s to {done['ended'] - start:.3f}s"
    print(f"{name} on {done['worker']} cores {done['cores']} {when}: {json.dumps(done['value'])}")
    return 1 + sum(report(name, step, start) for step in done.get("steps", ()))


async def main() -> None:
    start = time.time()
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="plans-"))
    plans = find_plans()
    results = await gl.gather(*((plan @ ZERO)(out / name) for name, plan in plans.items()))
    steps = 0
    for name, (where, receipts) in zip(plans, results, strict=True):
        print(f"plan {name} ran on {where}")
        steps += sum(report(name, done, start) for done in receipts)
    files = sorted(path for path in out.rglob("*") if path.is_file())
    print(f"{steps} steps of {len(plans)} plans wrote {len(files)} files under {out}")


if __name__ == "__main__":
    gl.run(main)
