"""EN 13757-2 answer timing of the gas-meter twin: never sooner than 11 bit times.

A slave answers between 11 bit times and 330 bit times + 50 ms after the end of the master's
frame (4.58 ms .. 187.5 ms at 2400 Bd). The minimum is measured from the request's last byte,
so time spent on the answer (the state saved before it leaves) counts towards it.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from hardware.mbus_link import MbusLink, byte_time_s, min_answer_delay_s
from hardware.mbus_pty import PtyBusLink
from hardware.mbus_sim import SimulatedBus
from hardware.mbus_uart import UartBusLink
from twin.clock import ManualClock
from twin.p2.aio.gasmeter import GasMeterTwin
from twin.p2.frames import Ack, encode_frame
from twin.p2.messages import ReqUd2, SndNke, encode_message
from twin.p2.slave_state import GasMeterIdentity
from twin.store import Store

START = datetime(2026, 10, 23, 12, 0, tzinfo=UTC)
IDENTITY = GasMeterIdentity(19, "TWN", "G0099000000000019", bytes(range(16)))
SND_NKE = encode_message(SndNke(0))
REQ_UD2 = encode_message(ReqUd2(0))
ELEVEN_BITS = 11 / 2400


class FakeTime:
    """A monotonic clock that moves only when told (by `sleep` or a slow store)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


class SlowSettings:
    """An in-memory store whose every write takes `write_s` of `FakeTime` (a slow disk)."""

    def __init__(self, fake: FakeTime, write_s: float) -> None:
        self.fake, self.write_s = fake, write_s
        self.values: dict[str, Any] = {}

    def setting(self, key: str) -> Any:
        return self.values.get(key)

    def put_setting(self, key: str, value: Any) -> None:
        self.fake.now += self.write_s
        self.values[key] = value

    async def put_setting_async(self, key: str, value: Any) -> None:
        self.put_setting(key, value)  # the gas meter awaits its write before it answers


def test_eleven_bit_times_at_2400_baud() -> None:
    assert min_answer_delay_s() == pytest.approx(ELEVEN_BITS)  # 4.58 ms
    assert min_answer_delay_s() == pytest.approx(byte_time_s())  # one 8E1 character


async def _exchange(master: MbusLink, request: bytes) -> bytes:
    await master.send(request)
    async with asyncio.timeout(5):
        return await master.receive(5)


@pytest.mark.parametrize("write_s", [0.0, 0.003, 0.010])
async def test_answer_waits_11_bit_times_from_the_end_of_the_request(write_s: float) -> None:
    fake = FakeTime()
    bus = SimulatedBus()
    master = bus.master_end()
    await master.open()
    gas = GasMeterTwin(
        IDENTITY,
        bus.slave_end("gas"),
        ManualClock(START),
        SlowSettings(fake, write_s),
        rng=random.Random(1),
        monotonic=fake.monotonic,
        sleep=fake.sleep,
    )
    task = asyncio.create_task(gas.run())
    try:
        for request in (SND_NKE, REQ_UD2):
            fake.sleeps.clear()
            received = fake.now
            reply = await _exchange(master, request)
            assert reply
            # Sent 11 bit times after the request at the earliest; the store's write counts.
            assert fake.now - received >= ELEVEN_BITS - 1e-12
            wanted = [pytest.approx(ELEVEN_BITS - write_s)] if write_s < ELEVEN_BITS else []
            assert fake.sleeps == wanted
        assert reply[0] == 0x68  # the RSP_UD (the first reply was the E5)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture
async def pty_gas(tmp_path: Path) -> AsyncIterator[PtyBusLink]:
    master = PtyBusLink(tmp_path / "mbus")
    await master.open()
    store = Store.open(tmp_path / "gas")
    gas = GasMeterTwin(
        IDENTITY,
        UartBusLink(str(tmp_path / "mbus")),  # the far end, as `dsmr-twin gasmeter` opens it
        ManualClock(START),
        store,
        rng=random.Random(1),
    )
    task = asyncio.create_task(gas.run())
    try:
        yield master
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await master.close()
        store.close()


async def test_over_a_pty_no_answer_comes_sooner_than_11_bit_times(pty_gas: PtyBusLink) -> None:
    assert await _exchange(pty_gas, SND_NKE) == encode_frame(Ack())  # the far end is up
    gaps = []
    for request in [SND_NKE, REQ_UD2] * 10:
        # A pty has no line time: the request is all there when send() returns, so the gap
        # to the answer's first byte is what the slave waited (plus scheduling, never less).
        await pty_gas.send(request)
        started = time.monotonic()
        async with asyncio.timeout(5):
            first = await pty_gas.receive(5)
        gaps.append(time.monotonic() - started)
        if first[0] == 0x68:
            await asyncio.sleep(0.05)
            pty_gas.discard_input()  # the rest of the RSP_UD
    assert min(gaps) >= ELEVEN_BITS * 0.98, [round(g * 1000, 2) for g in gaps]
