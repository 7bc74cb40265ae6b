"""Heartbeats and silence (grainlike/wire/_liveness.py), on trio's autojump clock."""

from __future__ import annotations

import trio
import trio.testing

from grainlike.wire import Pulse, Silence


async def test_a_pulse_is_due_only_after_an_interval_without_a_write(
    autojump_clock: trio.testing.MockClock,
) -> None:
    due: list[float] = []
    pulse = Pulse(1.0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pulse.beat, lambda: due.append(trio.current_time()))
        for _ in range(5):  # a write every half interval: no heartbeat is needed
            await trio.sleep(0.5)
            pulse.sent()
        assert due == []
        await trio.sleep(3.5)  # idle: one heartbeat per interval
        nursery.cancel_scope.cancel()
    assert due == [3.5, 4.5, 5.5]


async def test_silence_cancels_the_receiver_only_after_the_timeout_without_a_message(
    autojump_clock: trio.testing.MockClock,
) -> None:
    silence = Silence(2.0)
    with trio.CancelScope() as receiving:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(silence.watch, receiving)
            for _ in range(4):
                await trio.sleep(1.5)
                silence.heard()
            assert not silence.expired
            await trio.sleep_forever()
    assert receiving.cancelled_caught
    assert silence.expired
    assert trio.current_time() == 6.0 + 2.0
