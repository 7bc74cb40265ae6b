"""``grainlike report``: a run's events as an HTML timeline report and as a Chrome trace.

``load_run`` reads the events (``_records``) and folds them (``_build``) into a ``RunModel``
(``_model``); ``write_html`` and ``write_trace`` turn the model into files (``_html``,
``_trace``), with the figures of ``_summary``.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .._exceptions import ConfigError
from ._build import build_model
from ._html import render_html, summary_line
from ._model import Run, RunModel, TaskSummary, WorkerSpan
from ._records import EventRecords, read_records
from ._summary import Counts, Row, counts, pool_peaks, table, utilisation
from ._trace import trace_events

__all__ = [
    "Counts",
    "EventRecords",
    "Row",
    "Run",
    "RunModel",
    "TaskSummary",
    "WorkerSpan",
    "build_model",
    "counts",
    "load_run",
    "pool_peaks",
    "read_records",
    "summary_line",
    "table",
    "utilisation",
    "write_html",
    "write_trace",
]


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector: a big log makes millions of small objects, none in
    a cycle, and the collector's passes over them took half the time of building a report."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def load_run(path: str | Path) -> RunModel:
    """The run whose events ``path`` holds (an event log of ``grainlike run --events``).

    Raises:
        ConfigError: the file is missing or malformed (naming the file and the line).
    """
    with _collector_paused():
        return build_model(read_records(path))


def _write(path: str | Path, text: str) -> Path:
    path = Path(path)
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot write it ({error.strerror})") from None
    return path


def write_html(model: RunModel, path: str | Path) -> Path:
    """Write the self-contained HTML report of ``model`` to ``path``."""
    with _collector_paused():
        return _write(path, render_html(model))


def write_trace(model: RunModel, path: str | Path) -> Path:
    """Write ``model`` in the Chrome Trace Event format (JSON) to ``path``."""
    with _collector_paused():
        return _write(path, json.dumps(trace_events(model), separators=(",", ":")))
