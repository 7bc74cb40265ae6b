"""Primes: one step writes the primes below a limit to a file, the next reads that file.

The second step takes the first step's handle as an argument, so it is queued only once the
first succeeded, and it gets the first step's receipt (its return value) in its place.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import grainlike as gl
from grainlike import Cores


def receipt(step: str, started: float, value: Any, *wrote: Path) -> dict[str, Any]:
    """What a step did, where and when (wall-clock seconds), for the plan to report."""
    return {
        "step": step,
        "worker": gl.GVAR.instance,
        "cores": gl.GVAR.res.c,
        "started": started,
        "ended": time.time(),
        "value": value,
        "wrote": [str(path) for path in wrote],
    }


def sieve(limit: int, path: Path) -> dict[str, Any]:
    """Write the primes below ``limit``, one a line."""
    started = time.time()
    composite = bytearray(limit)
    primes = []
    for n in range(2, limit):
        if not composite[n]:
            primes.append(n)
            composite[n * n :: n] = b"\x01" * len(range(n * n, limit, n))
    path.write_text("".join(f"{p}\n" for p in primes))
    return receipt("sieve", started, len(primes), path)


def last_digits(primes: dict[str, Any], path: Path) -> dict[str, Any]:
    """Count the primes in the file that ``primes`` wrote by their last digit."""
    started = time.time()
    numbers = Path(primes["wrote"][0]).read_text().split()
    tally = Counter(int(n[-1]) for n in numbers)
    histogram = {str(digit): tally[digit] for digit in sorted(tally)}
    path.write_text(json.dumps(histogram) + "\n")
    return receipt("last_digits", started, histogram, path)


async def plan(out: Path) -> tuple[str, list[dict[str, Any]]]:
    """Submit this plan's steps; runs as a branch on the head (a ``ZERO`` request)."""
    out.mkdir(parents=True, exist_ok=True)
    primes = (sieve @ Cores(1))(1000, out / "primes.txt")
    digits = (last_digits @ Cores(1))(primes, out / "last-digits.json")  # waits for primes
    return gl.GVAR.instance, list(await gl.gather(primes, digits))
