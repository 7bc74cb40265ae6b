"""Words: split a text into chunk files, then count the words of each chunk and merge them.

``tally`` is a step that makes steps: it holds a core, gives it back with ``gl.released()``
while its own steps (one ``count`` per chunk, then ``merge``, which takes their handles) run,
and takes a core again to finish.  On a remote worker its steps go through that worker's
connection to the dispatcher and may run on any worker.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import grainlike as gl
from grainlike import Cores

TEXT = """\
A plan is a list of steps, and a step is a function with the resources it needs.
Some steps make files, and some steps read the files that other steps made.
A step that reads a file waits for the step that makes it, and no longer.
A plan that only submits steps and waits for them needs no core of its own.
A step that makes steps can give its core back while it waits for them.
"""


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


def split(text: str, out: Path, parts: int) -> dict[str, Any]:
    """Write the lines of ``text`` to ``parts`` chunk files, in turn."""
    started = time.time()
    lines = text.splitlines(keepends=True)
    paths = [out / f"chunk-{i}.txt" for i in range(parts)]
    for i, path in enumerate(paths):
        path.write_text("".join(lines[i::parts]))
    return receipt("split", started, len(lines), *paths)


def count(path: Path, into: Path) -> dict[str, Any]:
    """Count the words of one chunk file."""
    started = time.time()
    words = Counter(re.findall(r"[a-z]+", path.read_text().lower()))
    into.write_text(json.dumps(dict(sorted(words.items()))) + "\n")
    return receipt(f"count({path.name})", started, words.total(), into)


def merge(counts: list[dict[str, Any]], into: Path) -> dict[str, Any]:
    """Add up the counts that the ``count`` steps wrote."""
    started = time.time()
    words: Counter[str] = Counter()
    for done in counts:
        words.update(json.loads(Path(done["wrote"][0]).read_text()))
    top = sorted(words.items(), key=lambda item: (-item[1], item[0]))[:3]
    summary = {"words": words.total(), "distinct": len(words), "top": top}
    into.write_text(json.dumps(summary) + "\n")
    return receipt("merge", started, summary, into)


async def tally(chunks: dict[str, Any], out: Path) -> dict[str, Any]:
    """Count each chunk in a step of its own and merge the counts, holding no core meanwhile."""
    started = time.time()
    async with gl.released():
        counts = [
            (count @ Cores(1))(Path(path), out / f"count-{i}.json")
            for i, path in enumerate(chunks["wrote"])
        ]
        merged = (merge @ Cores(1))(counts, out / "words.json")  # waits for every count
        steps = await gl.gather(*counts, merged)
    done = receipt("tally", started, steps[-1]["value"]["words"])
    done["steps"] = steps
    return done


async def plan(out: Path) -> tuple[str, list[dict[str, Any]]]:
    """Submit this plan's steps; runs as a branch on the head (a ``ZERO`` request)."""
    out.mkdir(parents=True, exist_ok=True)
    chunks = (split @ Cores(1))(TEXT, out, 3)
    counted = (tally @ Cores(1))(chunks, out)  # waits for the chunk files
    return gl.GVAR.instance, list(await gl.gather(chunks, counted))
