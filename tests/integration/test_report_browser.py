"""The HTML report in a real browser: Debian's headless Chromium renders it offline.

``scripts/setup-chromium.sh`` (run by ``scripts/test.sh``) installs Chromium.  Without it these
tests skip, saying why, except under ``CI=true``, where they fail.  Chromium is driven two ways:
its command line (``--dump-dom``, ``--screenshot``) as a person would run it, and the DevTools
protocol over a pipe (``--remote-debugging-pipe``, no extra package) to hover, zoom and watch
every request the page makes.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import shutil
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from grainlike._report import load_run, write_html
from tests.unit.test_report import two_worker_run, write_log, write_synthetic_log

pytestmark = pytest.mark.slow

#: Headless flags that keep Chromium off the network (closed here) and out of the user's profile.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--host-resolver-rules=MAP * ~NOTFOUND",
)


@pytest.fixture(scope="session")
def chromium() -> str:
    """The Chromium executable; skips without one, but fails under CI=true."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        message = "Chromium is not installed; as root, run bash scripts/setup-chromium.sh"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


def run_chromium(chromium: str, profile: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    command = [chromium, *FLAGS, f"--user-data-dir={profile}", *arguments]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


@pytest.fixture
def report(tmp_path: Path) -> Path:
    """The report of a small run on two workers (see ``two_worker_run``)."""
    log = write_log(tmp_path / "run.jsonl", *two_worker_run())
    return write_html(load_run(log), tmp_path / "report.html")


def page_requests(net_log: Path) -> list[str]:
    """The URLs the page itself asked for, from Chromium's network log (``--log-net-log``):
    requests whose network isolation key is the page's own site (``file://``), unlike the
    browser's own background requests."""
    log = json.loads(net_log.read_text())
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [
        event["params"]["url"]
        for event in log["events"]
        if event["type"] == start_job
        and "file://" in event.get("params", {}).get("network_isolation_key", "")
    ]


# -- the command line ---------------------------------------------------------------------------


def test_the_rendered_page_has_one_bar_per_run_and_lists_the_failed_task_offline(
    chromium: str, report: Path, tmp_path: Path
) -> None:
    net_log = tmp_path / "net.json"
    dom = run_chromium(
        chromium,
        tmp_path / "profile",
        "--virtual-time-budget=5000",
        f"--log-net-log={net_log}",
        "--dump-dom",
        report.as_uri(),
    ).stdout
    assert re.search(r'<body[^>]* data-ready="1"', dom), "the script did not finish"
    bars = re.findall(r'<div class="bar ([a-z]+)[^"]*" data-task-id="(\d+)"', dom)
    assert sorted((int(task), outcome) for outcome, task in bars) == [
        (1, "finished"),
        (2, "finished"),
        (3, "finished"),
        (3, "retried"),
        (4, "failed"),
        (5, "cancelled"),
    ]
    assert len(re.findall(r"data-task-id=", dom)) == 6  # the bars, and only the bars
    failed = dom[dom.index('id="failed"') : dom.index('id="workers"')]
    assert "ValueError: bad input 42" in failed
    assert page_requests(net_log) == []


def test_the_network_check_catches_a_page_that_asks_for_something(
    chromium: str, tmp_path: Path
) -> None:
    page = tmp_path / "greedy.html"
    page.write_text('<img src="http://127.0.0.1:9/tracker.png"><p>hello</p>')
    net_log = tmp_path / "net.json"
    run_chromium(
        chromium,
        tmp_path / "profile",
        "--virtual-time-budget=2000",
        f"--log-net-log={net_log}",
        "--dump-dom",
        page.as_uri(),
    )
    assert page_requests(net_log) == ["http://127.0.0.1:9/tracker.png"]


def png_pixels(path: Path) -> tuple[int, int, list[bytes]]:
    """Width, height and the RGB(A) rows of an 8-bit truecolour PNG, decoded with the stdlib."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    offset, chunks, header = 8, b"", b""
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            chunks += body
        offset += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", header[:10])
    assert (depth, colour) in ((8, 2), (8, 6)), "an 8-bit RGB or RGBA PNG"
    channels = 3 if colour == 2 else 4
    raw = zlib.decompress(chunks)
    stride = width * channels
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        kind, line = (
            raw[y * (stride + 1)],
            bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)]),
        )
        for x in range(stride):
            left = line[x - channels] if x >= channels else 0
            up = previous[x]
            corner = previous[x - channels] if x >= channels else 0
            if kind == 1:
                line[x] = (line[x] + left) & 0xFF
            elif kind == 2:
                line[x] = (line[x] + up) & 0xFF
            elif kind == 3:
                line[x] = (line[x] + (left + up) // 2) & 0xFF
            elif kind == 4:
                guess = left + up - corner
                pa, pb, pc = abs(guess - left), abs(guess - up), abs(guess - corner)
                nearest = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[x] = (line[x] + nearest) & 0xFF
        rows.append(bytes(line[i] for i in range(stride) if i % channels < 3))
        previous = line
    return width, height, rows


def test_a_screenshot_of_the_report_shows_the_timeline_in_colour(
    chromium: str, report: Path, tmp_path: Path
) -> None:
    shot = tmp_path / "shot.png"
    run_chromium(
        chromium,
        tmp_path / "profile",
        "--virtual-time-budget=5000",
        "--window-size=1400,900",
        f"--screenshot={shot}",
        report.as_uri(),
    )
    width, height, rows = png_pixels(shot)
    assert (width, height) == (1400, 900)
    colours: dict[bytes, int] = {}
    for row in rows[::2]:
        for x in range(0, len(row), 6):
            pixel = row[x : x + 3]
            colours[pixel] = colours.get(pixel, 0) + 1
    assert len(colours) > 50, "a blank or nearly blank page"
    sampled = sum(colours.values())
    white = colours.get(b"\xff\xff\xff", 0)
    assert white < 0.95 * sampled
    # Bars of the first functions, in the palette's first colours (#4e79a7, #f28e2b).
    assert colours.get(bytes.fromhex("4e79a7"), 0) > 200
    assert colours.get(bytes.fromhex("f28e2b"), 0) > 50


@pytest.fixture(scope="module")
def big_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """The report of a made-up run of 100,000 tasks, and its number of runs."""
    directory = tmp_path_factory.mktemp("big")
    runs = write_synthetic_log(directory / "big.jsonl", 100_000)
    return write_html(load_run(directory / "big.jsonl"), directory / "big.html"), runs


def test_a_report_of_100000_runs_renders_with_a_bar_element_each(
    chromium: str, big_report: tuple[Path, int], tmp_path: Path
) -> None:
    page, runs = big_report
    dom = run_chromium(
        chromium, tmp_path / "profile", "--virtual-time-budget=20000", "--dump-dom", page.as_uri()
    ).stdout
    found = re.search(r'<body data-runs="(\d+)" data-render-ms="(\d+)" data-ready="1"', dom)
    assert found is not None
    assert int(found.group(1)) == runs
    assert dom.count("data-task-id=") == runs
    print(f"{runs} runs drawn in {found.group(2)} ms")


# -- the DevTools protocol: hover, zoom, requests ---------------------------------------------


class DevTools:
    """Chromium driven over ``--remote-debugging-pipe``: JSON messages ended by NUL, written to
    its fd 3 and read from its fd 4."""

    def __init__(self, chromium: str, profile: Path) -> None:
        to_browser, self._commands = os.pipe()
        self._replies, from_browser = os.pipe()

        def wire_fds() -> None:
            os.dup2(to_browser, 3)
            os.dup2(from_browser, 4)

        self.process = subprocess.Popen(
            [chromium, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-pipe"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(3, 4),
            preexec_fn=wire_fds,  # fds 3 and 4 are Chromium's pipe; nothing else is at 3, 4
        )
        os.close(to_browser)
        os.close(from_browser)
        self._buffer = b""
        self._next = 0
        self.events: list[dict[str, Any]] = []
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        for domain in ("Page", "Network", "Runtime"):
            self.send(f"{domain}.enable", session=True)

    def _message(self, timeout: float = 30.0) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self._replies], [], [], timeout)
            assert ready, "Chromium stopped answering"
            chunk = os.read(self._replies, 1 << 16)
            assert chunk, "Chromium closed the pipe"
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        decoded: dict[str, Any] = json.loads(message)
        return decoded

    def send(self, method: str, *, session: bool = False, **params: Any) -> dict[str, Any]:
        self._next += 1
        command: dict[str, Any] = {"id": self._next, "method": method, "params": params}
        if session:
            command["sessionId"] = self.session
        os.write(self._commands, json.dumps(command).encode() + b"\0")
        while True:
            message = self._message()
            if message.get("id") == self._next:
                assert "error" not in message, message["error"]
                result: dict[str, Any] = message.get("result", {})
                return result
            self.events.append(message)

    def wait_for(self, method: str) -> dict[str, Any]:
        for event in self.events:
            if event.get("method") == method:
                return event
        while True:
            message = self._message()
            self.events.append(message)
            if message.get("method") == method:
                return message

    def evaluate(self, expression: str) -> Any:
        result = self.send(
            "Runtime.evaluate",
            session=True,
            expression=expression,
            returnByValue=True,
            awaitPromise=True,
        )
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def mouse(self, kind: str, x: float, y: float, **more: Any) -> None:
        self.send("Input.dispatchMouseEvent", session=True, type=kind, x=x, y=y, **more)

    def close(self) -> None:
        with contextlib.suppress(AssertionError):  # it may close the pipe before it answers
            self.send("Browser.close")
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._commands)
        os.close(self._replies)


@pytest.fixture
def browser(chromium: str, tmp_path: Path) -> Iterator[DevTools]:
    devtools = DevTools(chromium, tmp_path / "devtools-profile")
    try:
        yield devtools
    finally:
        devtools.close()


def open_page(browser: DevTools, page: Path) -> None:
    browser.send(
        "Emulation.setDeviceMetricsOverride",
        session=True,
        width=1400,
        height=900,
        deviceScaleFactor=1,
        mobile=False,
    )
    browser.send("Page.navigate", session=True, url=page.as_uri())
    browser.wait_for("Page.loadEventFired")
    assert browser.evaluate("document.body.dataset.ready") == "1"


BAR_BOX = """(() => {
  const bar = [...document.querySelectorAll('.bar.shown')].find(b => b.dataset.taskId === '%s');
  const box = bar.getBoundingClientRect();
  return [box.left + box.width / 2, box.top + box.height / 2, box.width];
})()"""


def test_hovering_a_bar_tells_its_task_allocation_duration_and_outcome(
    browser: DevTools, report: Path
) -> None:
    open_page(browser, report)
    x, y, _ = browser.evaluate(BAR_BOX % 4)
    browser.mouse("mouseMoved", x, y)
    tip = browser.evaluate("document.getElementById('tip').hidden ? null : tip.textContent")
    assert tip is not None
    assert tip.startswith("task 4 · boom (attempt 1)")
    assert "outcome: failed — ValueError: bad input 42" in tip
    assert "worker a · cores 1" in tip
    assert "allocation cores:[1]" in tip
    assert "start +5.00 s · duration 500.0 ms" in tip
    # Where no bar is drawn, no tip.
    browser.mouse("mouseMoved", 300, y)
    assert browser.evaluate("document.getElementById('tip').hidden") is True


def test_the_wheel_zooms_around_the_pointer_and_a_double_click_shows_the_whole_run(
    browser: DevTools, report: Path
) -> None:
    open_page(browser, report)
    x, y, width = browser.evaluate(BAR_BOX % 4)
    browser.mouse("mouseWheel", x, y, deltaX=0, deltaY=-600)
    browser.evaluate("new Promise(done => setTimeout(done, 400))")
    zoomed_x, _, zoomed = browser.evaluate(BAR_BOX % 4)
    assert zoomed > 2 * width  # e^0.9 = 2.46 times as wide
    assert abs(zoomed_x - x) < zoomed / 2  # the bar under the pointer stays under it
    browser.mouse("mousePressed", x, y, button="left", clickCount=1)
    browser.mouse("mouseReleased", x, y, button="left", clickCount=1)
    browser.mouse("mousePressed", x, y, button="left", clickCount=2)
    browser.mouse("mouseReleased", x, y, button="left", clickCount=2)
    browser.evaluate("new Promise(done => setTimeout(done, 400))")
    assert browser.evaluate(BAR_BOX % 4)[2] == pytest.approx(width, abs=1)


def test_100000_runs_zoom_and_pan_and_show_their_bars_once_few_are_in_view(
    browser: DevTools, big_report: tuple[Path, int]
) -> None:
    page, _ = big_report
    open_page(browser, page)
    shown = "document.querySelectorAll('.bar.shown').length"
    assert browser.evaluate(shown) == 0  # 100,000 in view: the canvas alone draws them
    paints = []
    for delta in (-600, -600, -600, -600, -600, -600):
        browser.mouse("mouseWheel", 700, 300, deltaX=0, deltaY=delta)
        browser.evaluate("new Promise(done => requestAnimationFrame(done))")
        paints.append(int(browser.evaluate("timeline.dataset.paintMs")))
    browser.mouse("mouseWheel", 700, 300, deltaX=300, deltaY=0)  # pan
    browser.evaluate("new Promise(done => setTimeout(done, 400))")
    assert 0 < browser.evaluate(shown) <= 1500
    browser.mouse("mouseMoved", 700, 300)
    assert browser.evaluate("tip.hidden ? '' : tip.textContent").startswith("task ")
    print(f"paint times while zooming into 100,000 runs: {paints} ms")
    assert max(paints) < 2000  # about 20-70 ms on the project's shared 2-core machine


def test_the_page_asks_the_network_for_nothing_and_throws_no_error(
    browser: DevTools, report: Path
) -> None:
    open_page(browser, report)
    browser.evaluate("document.getElementById('colour-by').value = 'group'")
    browser.evaluate("document.getElementById('colour-by').dispatchEvent(new Event('change'))")
    browser.send("Page.captureScreenshot", session=True, format="png")
    requested = [
        event["params"]["request"]["url"]
        for event in browser.events
        if event.get("method") == "Network.requestWillBeSent"
    ]
    assert requested == [report.as_uri()]
    errors = [event for event in browser.events if event.get("method") == "Runtime.exceptionThrown"]
    assert errors == []


# -- the docs screenshot -----------------------------------------------------------------------


def test_the_docs_screenshot_script_takes_a_picture_of_a_real_run(
    chromium: str, tmp_path: Path
) -> None:
    root = Path(__file__).resolve().parents[2]
    shot = tmp_path / "report.png"
    done = subprocess.run(
        ["bash", "scripts/report-screenshot.sh", str(shot)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=240,
        env=dict(os.environ, PYTHON=sys.executable),
    )
    assert done.returncode == 0, done.stderr
    width, height, rows = png_pixels(shot)
    assert (width, height) == (1400, 900)
    assert len({row[x : x + 3] for row in rows[::4] for x in range(0, len(row), 12)}) > 50
