"""The public namespace: what users import is curated, and each name is exported once.

After trio's own ``test_exports.py``: the top level re-exports the user API with ``__all__``,
no public name claims a private ``__module__`` it cannot be imported from, and the subpackages
the api level builds on export only what that level uses.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import grainlike
import grainlike.dispatch
import grainlike.resource
import grainlike.wire
import grainlike.worker

PACKAGE = Path(grainlike.__file__).parent


def test_the_top_level_exports_exactly_its_all() -> None:
    public = {name for name in vars(grainlike) if not name.startswith("_")}
    modules = {name for name in public if type(getattr(grainlike, name)).__name__ == "module"}
    assert sorted(public - modules) == sorted(grainlike.__all__)
    assert len(grainlike.__all__) == len(set(grainlike.__all__))


@pytest.mark.parametrize("name", grainlike.__all__)
def test_every_public_name_imports_from_where_it_says_it_lives(name: str) -> None:
    value = getattr(grainlike, name)
    module_name = getattr(value, "__module__", None)
    if module_name is None or not hasattr(value, "__qualname__"):
        return  # a plain value (``ZERO``, ``GVAR``)
    module = importlib.import_module(module_name)
    assert getattr(module, value.__qualname__.split(".")[0]) is not None


def _names_imported_from(subpackage: str) -> set[str]:
    """Every name the api level (and the cli) imports from ``grainlike.<subpackage>``."""
    used: set[str] = set()
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module == subpackage:
                used.update(alias.name for alias in node.names)
    return used


#: What users may import from the subpackages on purpose (events to subscribe to, configs).
DOCUMENTED = {
    "dispatch": {
        "TERMINAL_EVENTS",
        "Event",
        "EventBus",
        "TaskSubmitted",
        "TaskPlaced",
        "TaskStarted",
        "TaskFinished",
        "TaskFailed",
        "TaskCancelled",
        "TaskRetried",
        "WorkerJoined",
        "WorkerLost",
        "WorkerDrained",
        "GroupStats",
        "AsCompleted",
        "as_completed",
        "TaskHandle",
        "LearningRule",
        # a run's events rebuilt from its journal (docs/durable-runs.md), for grainlike report
        "journal_events",
    },
    "worker": {
        "GVAR",
        "TaskContext",
        "current_allocation",
        "current_task_context",
        # describe_node's result and its parts (docs/detection.md)
        "NodeInfo",
        "CoreInfo",
        "MemoryInfo",
        "Headroom",
        "GPUInfo",
        "GPUDevice",
        "WalltimeInfo",
        "ScratchInfo",
    },
}


@pytest.mark.parametrize("subpackage", ["dispatch", "worker"])
def test_a_subpackage_exports_only_what_the_layers_above_use(subpackage: str) -> None:
    module = importlib.import_module(f"grainlike.{subpackage}")
    exported = {name for name in vars(module) if not name.startswith("_")}
    exported -= {n for n in exported if type(getattr(module, n)).__name__ == "module"}
    used = _names_imported_from(subpackage) | DOCUMENTED.get(subpackage, set())
    assert sorted(exported - used) == []
