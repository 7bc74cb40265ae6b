"""A dispatcher and two heterogeneous worker processes on this machine.

The dispatcher listens on 127.0.0.1; two ``grainlike worker`` processes join it, one of them
with a ``gpu`` token.  Tasks that ask for the token run only there; the rest go anywhere.
Run it with ``python examples/cluster_local.py``.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections import Counter as Tally

import trio

import grainlike as gl
from grainlike import Cores, Token

KEY = secrets.token_bytes(32)


async def where(i: int) -> str:
    await trio.sleep(0.05)
    return f"{gl.GVAR.instance} cores {gl.GVAR.res.c}"


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
    finally:
        for process in workers:
            process.terminate()
            await process.wait()


if __name__ == "__main__":
    gl.run(main, listen="127.0.0.1:0", local=False, key=KEY, stats=None)
