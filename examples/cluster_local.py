"""A dispatcher and two heterogeneous worker processes on this machine.

The dispatcher listens on 127.0.0.1; two ``grainlike worker`` processes join it, one of them
with a ``gpu`` token.  Tasks that ask for the token run only there; the rest go anywhere.
Then a stream of tiny tasks shows pipelining: once they are known to be short, the dispatcher
sends some ahead to wait on each worker behind the running one.
Run it with ``python examples/cluster_local.py``.
"""

from __future__ import annotations

import os
import secrets
import sys
import time
from collections import Counter as Tally

import trio

import grainlike as gl
from grainlike import Cores, Token

KEY = secrets.token_bytes(32)


async def where(i: int) -> str:
    await trio.sleep(0.05)
    return f"{gl.GVAR.instance} cores {gl.GVAR.res.c}"


async def square(i: int) -> int:
    return i * i


async def stream_of_short_tasks(n: int) -> None:
    dispatcher = gl.current_session().dispatcher
    most_ahead = 0

    async def watch() -> None:
        nonlocal most_ahead
        while True:
            most_ahead = max(most_ahead, dispatcher.pipelined())
            await trio.sleep(0.01)

    bound = square @ Cores(1)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch)
        start = time.perf_counter()
        results = await gl.gather(*(bound(i) for i in range(n)))
        took = time.perf_counter() - start
        nursery.cancel_scope.cancel()
    assert results == [i * i for i in range(n)]
    print(f"{n} short tasks: all results right, {n / took:,.0f} tasks/s")
    print(f"pipelined at most {most_ahead} tasks at once" if most_ahead else "none pipelined")


async def start_worker(address: str, name: str, resources: str) -> trio.Process:
    return await trio.lowlevel.open_process(
        [
            sys.executable,
            "-m",
            "grainlike",
            "worker",
            address,
            "--name",
            name,
            "--resources",
            resources,
        ],
        env=dict(os.environ, GRAINLIKE_KEY=KEY.hex()),
    )


async def main() -> None:
    session = gl.current_session()
    assert session.address is not None
    address = session.address
    workers = [
        await start_worker(address, "cpu-node", "cores:1,mem:1G"),
        await start_worker(address, "gpu-node", "cores:1,mem:1G,token:gpu"),
    ]
    try:
        gpu_work = await gl.gather(*((where @ Cores(1) & Token("gpu"))(i) for i in range(4)))
        any_work = await gl.gather(*((where @ Cores(1))(i) for i in range(8)))
        print("token:gpu tasks ran on:", dict(Tally(line.split()[0] for line in gpu_work)))
        print("other tasks ran on:   ", dict(Tally(line.split()[0] for line in any_work)))
        await stream_of_short_tasks(5000)
    finally:
        for process in workers:
            process.terminate()
            await process.wait()


if __name__ == "__main__":
    gl.run(main, listen="127.0.0.1:0", local=False, key=KEY, stats=None)
