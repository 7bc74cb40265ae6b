"""A dispatcher with real ``grainlike worker`` processes on 127.0.0.1: placement, faults, auth."""

from __future__ import annotations

import itertools
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import cloudpickle
import pytest
import trio

import grainlike as gl
from grainlike import Cores, Counter, Token
from grainlike.dispatch import Event, TaskRetried, WorkerDrained, WorkerLost

pytestmark = pytest.mark.slow

# Workers cannot import this test module: send its functions by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

KEY = bytes(range(32))


class Cluster:
    """A dispatcher in this process and worker processes started on demand."""

    def __init__(self, session: gl.Session, nursery: trio.Nursery) -> None:
        self.session = session
        self.nursery = nursery
        self.workers: dict[str, trio.Process] = {}
        self.events: list[Event] = []
        session.dispatcher.events.subscribe(self.events.append)

    @property
    def address(self) -> str:
        assert self.session.address is not None
        return self.session.address

    async def start_worker(
        self,
        name: str,
        resources: str,
        *,
        key: bytes = KEY,
        join: bool = True,
        extra: tuple[str, ...] = (),
    ) -> trio.Process:
        env = dict(os.environ, GRAINLIKE_KEY=key.hex())
        command = [
            sys.executable,
            "-m",
            "grainlike",
            "worker",
            self.address,
            "--name",
            name,
            "--resources",
            resources,
            "--connect-timeout",
            "10",
            *extra,
        ]
        process = await trio.lowlevel.open_process(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self.workers[name] = process
        if join:
            await self.wait_for(lambda: name in self.session.dispatcher.worker_ids())
        return process

    async def wait_for(self, condition: Any, timeout: float = 20.0) -> None:
        with trio.fail_after(timeout):
            while not condition():
                await trio.sleep(0.02)


@asynccontextmanager
async def open_cluster(**options: Any) -> AsyncIterator[Cluster]:
    settings: dict[str, Any] = {
        "listen": "127.0.0.1:0",
        "local": False,
        "key": KEY,
        "stats": None,
        "heartbeat_interval": 0.2,
        "heartbeat_timeout": 2.0,
    }
    settings.update(options)
    async with gl.open_session(**settings) as session, trio.open_nursery() as nursery:
        cluster = Cluster(session, nursery)
        try:
            yield cluster
        finally:
            for process in cluster.workers.values():
                if process.returncode is None:
                    process.kill()
                    await process.wait()
            nursery.cancel_scope.cancel()


async def where() -> tuple[str, list[int]]:
    return gl.GVAR.instance, gl.GVAR.res.c


async def nap(seconds: float) -> str:
    await trio.sleep(seconds)
    return gl.GVAR.instance


def fail() -> None:
    raise LookupError("the remote task failed on purpose")


async def stamp(seconds: float) -> tuple[float, float]:
    start = time.time()  # wall clock: the workers are processes on one machine
    await trio.sleep(seconds)
    return start, time.time()


async def test_tasks_needing_a_token_run_only_on_the_worker_that_has_it() -> None:
    async with open_cluster() as cluster:
        await cluster.start_worker("plain", "cores:2,mem:2G")
        await cluster.start_worker("gpu-box", "cores:2,mem:2G,token:gpu")
        placed = await gl.gather(*((where @ Cores(1) & Token("gpu"))() for _ in range(6)))
        anywhere = await gl.gather(*((where @ Cores(1))() for _ in range(8)))
    assert {worker for worker, _ in placed} == {"gpu-box"}
    assert {worker for worker, _ in anywhere} <= {"plain", "gpu-box"}
    assert all(len(cores) == 1 and cores[0] in (0, 1) for _, cores in placed + anywhere)


async def test_a_task_on_a_killed_worker_completes_elsewhere_exactly_once() -> None:
    async with open_cluster() as cluster:
        victim = await cluster.start_worker("victim", "cores:1,mem:1G")
        handle = (nap @ Cores(1))(1.5)
        await cluster.wait_for(lambda: handle.task.worker == "victim")
        victim.send_signal(signal.SIGKILL)
        await cluster.start_worker("survivor", "cores:1,mem:1G")
        assert await handle == "survivor"
        lost = [e for e in cluster.events if isinstance(e, WorkerLost)]
        retried = [e for e in cluster.events if isinstance(e, TaskRetried)]
    assert [e.worker for e in lost] == ["victim"]
    assert [(e.task_id, e.worker) for e in retried] == [(handle.id, "victim")]


async def on_core(i: int) -> tuple[int, str, int, float, float]:
    start = time.time()
    await trio.sleep(0.001)
    return i, gl.GVAR.instance, gl.GVAR.res.c[0], start, time.time()


async def test_short_tasks_pipelined_to_workers_share_cores_in_turn_and_survive_a_kill() -> None:
    async with open_cluster() as cluster:
        await cluster.start_worker("steady", "cores:2,mem:2G")
        victim = await cluster.start_worker("victim", "cores:2,mem:2G")
        dispatcher = cluster.session.dispatcher
        bound = on_core @ Cores(1)
        await gl.gather(*(bound(i) for i in range(20)))  # their shape is now known to be short
        most_pipelined = 0

        async def watch() -> None:
            nonlocal most_pipelined
            while True:
                most_pipelined = max(most_pipelined, dispatcher.pipelined())
                await trio.sleep(0.005)

        async def kill_midway() -> None:
            await cluster.wait_for(lambda: dispatcher.completed > 600)
            victim.send_signal(signal.SIGKILL)

        cluster.nursery.start_soon(watch)
        cluster.nursery.start_soon(kill_midway)
        results = await gl.gather(*(bound(i) for i in range(3000)))
        lost = [e for e in cluster.events if isinstance(e, WorkerLost)]
        retried = [e for e in cluster.events if isinstance(e, TaskRetried)]
    assert [r[0] for r in results] == list(range(3000))  # each exactly once, in order
    assert [e.worker for e in lost] == ["victim"]
    assert retried and {e.worker for e in retried} == {"victim"}
    assert most_pipelined > 0
    # Tasks sent ahead run one after another in their allocation: never two on a core at once.
    by_core: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for _, worker, core, start, end in results:
        by_core.setdefault((worker, core), []).append((start, end))
    for spans in by_core.values():
        spans.sort()
        assert all(a_end <= b_start for (_, a_end), (b_start, _) in itertools.pairwise(spans))


async def test_a_worker_that_stops_heartbeating_is_lost_and_its_late_result_ignored() -> None:
    async with open_cluster() as cluster:
        frozen = await cluster.start_worker("frozen", "cores:1,mem:1G")
        handle = (nap @ Cores(1))(1.0)
        await cluster.wait_for(lambda: handle.task.worker == "frozen")
        frozen.send_signal(signal.SIGSTOP)
        await cluster.start_worker("healthy", "cores:1,mem:1G")
        result = await handle
        frozen.send_signal(signal.SIGCONT)
        await cluster.wait_for(lambda: frozen.returncode is not None)
        finished = [e for e in cluster.events if type(e).__name__ == "TaskFinished"]
    assert result == "healthy"
    assert [getattr(e, "worker", None) for e in finished] == ["healthy"]


async def test_a_worker_with_the_wrong_key_is_refused_and_gets_no_task() -> None:
    async with open_cluster() as cluster:
        intruder = await cluster.start_worker("intruder", "cores:2", key=b"x" * 32, join=False)
        await intruder.wait()
        assert intruder.returncode != 0
        assert intruder.stderr is not None
        message = (await intruder.stderr.receive_some()).decode()
        assert "key" in message
        assert KEY.hex() not in message
        assert cluster.session.dispatcher.worker_ids() == []


def _frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


@pytest.mark.parametrize(
    "garbage",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        struct.pack(">I", 2**31) + b"x" * 100,
        _frame(b"GRAINLIKE")[:6],
    ],
    ids=["not-grainlike", "oversized-frame", "truncated-frame"],
)
async def test_a_client_sending_garbage_is_disconnected_and_the_cluster_keeps_working(
    garbage: bytes,
) -> None:
    async with open_cluster() as cluster:
        await cluster.start_worker("steady", "cores:1,mem:1G")
        host, _, port_text = (cluster.session.address or ":0").rpartition(":")
        port = int(port_text)
        with socket.create_connection((host, port), timeout=10) as raw:
            raw.sendall(garbage)
            raw.shutdown(socket.SHUT_WR)
            closed = await trio.to_thread.run_sync(raw.recv, 65536)
            while closed:
                closed = await trio.to_thread.run_sync(raw.recv, 65536)
        assert await (where @ Cores(1))() == ("steady", [0])


async def test_a_task_exception_reaches_the_caller_with_the_remote_traceback() -> None:
    async with open_cluster() as cluster:
        await cluster.start_worker("thrower", "cores:1,mem:1G")
        with pytest.raises(LookupError, match="on purpose") as caught:
            await (fail @ Cores(1))()
        assert "Remote traceback" in "".join(caught.value.__notes__)
        assert "fail" in "".join(caught.value.__notes__)
        assert await (where @ Cores(1))() == ("thrower", [0])  # the worker stays healthy


async def test_quit_drains_matching_workers_after_their_tasks_finish() -> None:
    async with open_cluster() as cluster:
        leaving = await cluster.start_worker("leaving-1", "cores:1,mem:1G")
        await cluster.start_worker("staying", "cores:1,mem:1G")
        handle = (nap @ Cores(1))(0.5)
        await cluster.wait_for(lambda: handle.task.worker is not None)
        runner = handle.task.worker
        from grainlike._client import quit_workers

        assert await quit_workers(cluster.address, KEY, "leaving-*") == ("leaving-1",)
        assert await handle == runner
        await cluster.wait_for(lambda: leaving.returncode is not None)
        assert leaving.returncode == 0
        assert cluster.session.dispatcher.worker_ids() == ["staying"]
        drained = [e.worker for e in cluster.events if isinstance(e, WorkerDrained)]
    assert drained == ["leaving-1"]


async def test_a_pool_limits_concurrency_across_workers() -> None:
    async with open_cluster(pools={"license": 1}) as cluster:
        await cluster.start_worker("a", "cores:2,mem:1G")
        await cluster.start_worker("b", "cores:2,mem:1G")
        spans = await gl.gather(
            *((stamp @ Cores(1) & Counter("license", 1))(0.2) for _ in range(4))
        )
    spans.sort()
    overlaps = [(a, b) for a, b in itertools.pairwise(spans) if b[0] < a[1]]
    assert overlaps == []  # one license: never two tasks at once, though 4 cores are free


async def test_an_unsatisfiable_request_fails_after_the_grace_period() -> None:
    async with open_cluster(unsatisfiable_grace=0.5) as cluster:
        await cluster.start_worker("small", "cores:1,mem:1G")
        with pytest.raises(gl.UnsatisfiableError, match="cores") as caught:
            await (where @ Cores(4))()
        assert caught.value.short == ("cores",)


async def test_status_lists_workers_and_why_the_oldest_task_waits() -> None:
    async with open_cluster() as cluster:
        await cluster.start_worker("busy", "cores:1,mem:1G")
        running = (nap @ Cores(1))(1.0)
        waiting = (nap @ Cores(1))(0.1)
        await cluster.wait_for(lambda: running.task.worker == "busy")
        from grainlike._client import query_status

        report = await query_status(cluster.address, KEY)
        assert [w["id"] for w in report.data["workers"]] == ["busy"]
        assert report.data["running"] == 1
        assert report.data["queued"] == 1
        assert "busy is busy" in report.text
        await running
        await waiting


async def test_workers_join_over_tls_and_a_worker_without_the_ca_is_refused(
    tmp_path: Path,
) -> None:
    import trustme

    from grainlike.wire import tls_server_context

    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1")
    chain = tmp_path / "dispatcher.pem"
    certificate.private_key_and_cert_chain_pem.write_to_path(str(chain))
    ca_file = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    async with open_cluster(tls=tls_server_context(chain)) as cluster:
        await cluster.start_worker("secure", "cores:1,mem:1G", extra=("--tls-ca", str(ca_file)))
        assert await (where @ Cores(1))() == ("secure", [0])
        plain = await cluster.start_worker("plain", "cores:1,mem:1G", join=False)
        await plain.wait()
        assert plain.returncode != 0
        assert cluster.session.dispatcher.worker_ids() == ["secure"]
