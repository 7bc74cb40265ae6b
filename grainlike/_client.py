"""Short-lived authenticated clients of a dispatcher: ``grainlike status`` and ``quit``."""

from __future__ import annotations

import contextlib
import datetime
import math
import ssl
from typing import Any

import trio

from ._exceptions import GrainlikeError, ProtocolError
from .wire import (
    Message,
    QueryStatus,
    QuitAcknowledged,
    QuitWorkers,
    StatusReport,
    decode,
    encode,
    open_connection,
)

__all__ = ["query_status", "quit_workers", "status_table", "watch_status"]


async def _ask(address: str, key: bytes, question: Message, tls: ssl.SSLContext | None) -> Message:
    async with open_connection(address, key, tls=tls) as framed:
        try:
            await framed.send(encode(question))
            return decode(await framed.receive())
        except (trio.EndOfChannel, trio.BrokenResourceError) as error:
            raise GrainlikeError(
                f"the dispatcher at {address} closed the connection before answering "
                f"({type(error).__name__})"
            ) from None


async def query_status(address: str, key: bytes, tls: ssl.SSLContext | None = None) -> StatusReport:
    """The dispatcher's status report."""
    answer = await _ask(address, key, QueryStatus(), tls)
    if not isinstance(answer, StatusReport):
        raise ProtocolError(f"{address} answered a status query with {type(answer).__name__}")
    return answer


async def quit_workers(
    address: str, key: bytes, pattern: str, tls: ssl.SSLContext | None = None
) -> tuple[str, ...]:
    """Drain the workers whose id matches ``pattern``; returns the ids that matched."""
    answer = await _ask(address, key, QuitWorkers(pattern), tls)
    if not isinstance(answer, QuitAcknowledged):
        raise ProtocolError(f"{address} answered a quit request with {type(answer).__name__}")
    return answer.matched


def _amount(value: float | None) -> str:
    if value is None or value == math.inf:
        return "inf"
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def status_table(report: StatusReport, address: str = "") -> Any:
    """The status as ``rich`` renderables: workers with free/total per kind, the tasks, the
    queued shapes and why the oldest pending tasks wait."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    data = report.data
    workers = data.get("workers", [])
    kinds: list[str] = []
    for worker in workers:
        kinds.extend(kind for kind in worker["resources"] if kind not in kinds)
    now = datetime.datetime.now().strftime("%H:%M:%S")
    title = f"grainlike status {address} at {now} (free/total per kind)".replace("  ", " ")
    table = Table(title=title, title_justify="left", expand=False)
    table.add_column("worker")
    table.add_column("running", justify="right")
    table.add_column("pipelined", justify="right")
    for kind in kinds:
        table.add_column(kind, justify="right")
    for worker in workers:
        name = worker["id"] + ("" if worker.get("accepting", True) else " (draining)")
        cells = [name, str(worker["running"]), str(worker["pipelined"])]
        for kind in kinds:
            pair = worker["resources"].get(kind)
            cells.append(f"{_amount(pair[0])}/{_amount(pair[1])}" if pair else "")
        table.add_row(*cells)
    parts: list[Any] = [table]
    pipelined = f", {data['pipelined']} pipelined" if data.get("pipelined") else ""
    parts.append(
        Text(
            f"tasks: {data.get('queued', 0)} queued, {data.get('running', 0)} running"
            f"{pipelined}, {data.get('done', 0)} done"
        )
    )
    shapes = data.get("shapes", [])
    if shapes:
        queue = Table(title="queued shapes", title_justify="left")
        queue.add_column("request")
        queue.add_column("queued", justify="right")
        for shape in shapes:
            queue.add_row(shape["request"], str(shape["queued"]))
        parts.append(queue)
    pending = data.get("pending", [])
    if pending:
        oldest = Table(title="oldest pending", title_justify="left")
        for column in ("task", "name", "request", "why"):
            oldest.add_column(column)
        for item in pending:
            oldest.add_row(str(item["task_id"]), item["name"], item["request"], item["why"])
        parts.append(oldest)
    return Group(*parts)


async def watch_status(
    address: str,
    key: bytes,
    tls: ssl.SSLContext | None = None,
    *,
    interval: float = 1.0,
    count: int | None = None,
    console: Any = None,
) -> int:
    """Redraw the status every ``interval`` seconds, ``count`` times (``None``: until
    cancelled), with ``rich``'s ``Live`` on a terminal and one table after another elsewhere.

    Returns how many reports it drew.

    Raises:
        GrainlikeError: no dispatcher answers at ``address``, or it went away after
            answering.
    """
    from rich.console import Console
    from rich.live import Live

    console = console if console is not None else Console()
    report = await query_status(address, key, tls)
    drawn = 0
    live = Live(console=console, auto_refresh=False) if console.is_terminal else None
    with live if live is not None else contextlib.nullcontext():
        while True:
            if live is not None:
                live.update(status_table(report, address), refresh=True)
            else:  # a file or a pipe: one report after another, as a log
                console.print(status_table(report, address))
            drawn += 1
            if count is not None and drawn >= count:
                return drawn
            await trio.sleep(interval)
            gone = f"the dispatcher at {address} went away"
            try:
                report = await query_status(address, key, tls)
            except (GrainlikeError, OSError, trio.BrokenResourceError, trio.EndOfChannel) as error:
                raise GrainlikeError(f"{gone} ({error or type(error).__name__})") from None
