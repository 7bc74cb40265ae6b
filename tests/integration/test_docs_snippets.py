"""Every snippet in README.md and docs/*.md runs as written.

Each ```python block runs as a script of its own; a block that follows the comment
``<!-- continues the block above -->`` runs after the block before it, in one script.  Each
```bash block whose first command starts with ``grainlike `` or ``python `` runs line by line
in bash.  A block that cannot run here (it needs a Slurm cluster, a second machine, a
long-running dispatcher) follows a comment that says so: ``<!-- not run: REASON -->``.
Everything runs from the repository's root with a home directory of its own, so that no key,
statistics or job record of the user's is touched.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import attrs
import pytest

from grainlike import parse_resources

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

_FENCE = re.compile(r"^(?P<indent> *)```(?P<language>[A-Za-z0-9_+-]*)\s*$")
_NOT_RUN = re.compile(r"^<!-- not run: (?P<reason>\S.*\S) -->$")
_CONTINUES = "<!-- continues the block above -->"
_RUN_BASH = ("grainlike ", "python ")
GRAINLIKE = (sys.executable, "-m", "grainlike")


@attrs.frozen
class Block:
    page: Path
    line: int
    language: str
    code: str
    marker: str  # the HTML comment on the line before the fence, if any

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def _blocks(page: Path) -> list[Block]:
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks = []
    index = 0
    while index < len(lines):
        fence = _FENCE.match(lines[index])
        if fence is None:
            index += 1
            continue
        indent, start = len(fence["indent"]), index
        index += 1
        body = []
        while index < len(lines) and lines[index].strip() != "```":
            body.append(lines[index][indent:])
            index += 1
        marker = next((line.strip() for line in reversed(lines[:start]) if line.strip()), "")
        code = "\n".join(body) + "\n"
        blocks.append(Block(page, start + 1, fence["language"], code, marker))
        index += 1
    return blocks


BLOCKS = [block for page in PAGES for block in _blocks(page)]


def _runs(block: Block) -> bool:
    if _NOT_RUN.match(block.marker):
        return False
    if block.language == "python":
        return True
    first = next((line for line in block.code.splitlines() if line.strip()), "")
    return block.language == "bash" and first.startswith(_RUN_BASH)


def _script(block: Block) -> str:
    """The block's code, after the blocks it continues."""
    if block.marker != _CONTINUES:
        return block.code
    before = [b for b in BLOCKS if b.page == block.page and b.line < block.line and b.language]
    assert before and before[-1].language == block.language, f"{block.name} continues nothing"
    return _script(before[-1]) + block.code


def _environment(home: Path) -> dict[str, str]:
    venv_bin = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "HOME": str(home),
        "XDG_STATE_HOME": str(home / ".local" / "state"),
        "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
        "GRAINLIKE_KEY": bytes(range(32)).hex(),
    }


def _run(command: list[str], home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        cwd=ROOT,
        env=_environment(home),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.mark.parametrize("block", [b for b in BLOCKS if _runs(b)], ids=lambda b: b.name)
def test_the_snippet_runs_as_written(block: Block, tmp_path: Path) -> None:
    code = _script(block)
    if block.language == "bash":
        done = _run(["bash", "-euo", "pipefail", "-c", code], tmp_path)
        assert done.returncode == 0, f"{block.name} failed:\n{done.stdout}\n{done.stderr}"
        return
    script = tmp_path / "snippet.py"
    script.write_text(code, encoding="utf-8")
    done = _run([sys.executable, str(script)], tmp_path)
    assert done.returncode == 0, f"{block.name} failed:\n{done.stdout}\n{done.stderr}"
    if "async def main(" in code and "gl.run(" in code:
        # A script for `grainlike run` too: main runs once, not again from the module's own
        # gl.run, so it prints no more than `python script.py` does.
        again = _run([*GRAINLIKE, "run", str(script), "--no-progress"], tmp_path)
        assert again.returncode == 0, f"{block.name} failed:\n{again.stdout}\n{again.stderr}"
        assert 0 < len(again.stdout.splitlines()) <= len(done.stdout.splitlines()), again.stdout


def test_the_blocks_that_are_not_run_say_why_and_are_few() -> None:
    markers = [b for b in BLOCKS if b.marker.startswith("<!-- not run")]
    assert [b.name for b in markers if not _NOT_RUN.match(b.marker)] == []
    assert [b.name for b in markers if b.language not in ("python", "bash")] == []
    assert len(markers) <= 12


def test_blocks_are_found_in_every_page_that_has_them() -> None:
    counts = {page.name: sum(1 for b in BLOCKS if b.page == page) for page in PAGES}
    assert counts["README.md"] >= 2
    assert counts["tutorial.md"] >= 5
    assert counts["resources.md"] >= 5


def _console_outputs(page: Path, command: str) -> list[str]:
    """The lines that follow ``$ COMMAND`` in the page's console blocks."""
    prompt = f"$ {command}"
    outputs = []
    for block in _blocks(page):
        if block.language == "console":
            pairs = itertools.pairwise(block.code.splitlines())
            outputs += [after for line, after in pairs if line == prompt]
    return outputs


def test_the_json_that_detection_md_shows_has_the_shape_detect_prints(tmp_path: Path) -> None:
    (shown,) = _console_outputs(ROOT / "docs" / "detection.md", "grainlike detect --json")
    documented = json.loads(shown)
    done = _run([*GRAINLIKE, "detect", "--json"], tmp_path)
    assert done.returncode == 0, done.stderr
    real = json.loads(done.stdout)
    assert documented.keys() == real.keys()
    parse_resources(documented["capacity"], capacity=True)
    for kind, pair in documented["available"].items():
        assert [type(x) for x in pair] == [type(x) for x in real["available"][kind]], kind


def test_the_capacities_detection_md_shows_are_in_the_grammar() -> None:
    page = ROOT / "docs" / "detection.md"
    shown = _console_outputs(page, "grainlike detect")
    assert shown
    for text in shown:
        assert str(parse_resources(text, capacity=True)) == text
