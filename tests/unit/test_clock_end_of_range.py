"""The end of the meter clock's range: it stands still at TIME_MAX, no service fails or spins.

P2 type I dates end with 2099 (EN 13757-3 annex A) and a P1 timestamp has a two-digit year
(P1 Table 5-1), so the running meter must never carry a time after TIME_MAX, even when a fast
simulated clock runs into it without any clock set. A P3 clock set back into the range resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import shutil
import tempfile
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image

import twin.display.service as display_module
from hardware.oled import SimulatedDisplay
from hardware.request_line import AlwaysRequested
from tests.support import steady_config
from tests.unit.p2.test_service import Rig
from tests.unit.test_p1_service import FakeSink, next_telegram, running, sent_at, settle
from twin.app import build
from twin.clock import TIME_MAX, Clock, ManualClock, OffsetClock, SimulatedClock, floor_to
from twin.config import ClockConfig, Config
from twin.control import SOCKET_NAME, call
from twin.display.service import DisplayService, ModuleStatus
from twin.meter.state import MeterReading
from twin.metering import Meter
from twin.p1.service import P1Service
from twin.p1.telegram import TelegramEncoder, timestamp
from twin.p2.dtypes import type_i_encode
from twin.store import Store

LAST_STAMP = "991231235959W"  # TIME_MAX on P1: 2099-12-31 23:59:59 Dutch winter time
BACK = datetime(2099, 6, 1, 12, 0, tzinfo=UTC)  # a P3 clock set back into the range
FAST = 1_000_000.0  # --speed 1000000: 11.6 meter days per real second


class CountingClock:
    """A base clock that counts how often a waiter asked it to sleep (a spin shows here)."""

    def __init__(self, base: Clock) -> None:
        self.base = base
        self.sleeps = 0

    @property
    def speed(self) -> float:
        return self.base.speed

    @property
    def steps(self) -> int:
        return self.base.steps

    def now(self) -> datetime:
        return self.base.now()

    async def sleep_until(self, when: datetime) -> None:
        self.sleeps += 1
        await self.base.sleep_until(when)


def meter_at(tmp_path: Path, start: datetime) -> Meter:
    return Meter(Config(), ManualClock(start), Store.open(tmp_path), random.Random(1))


@pytest.fixture
def meter(tmp_path: Path) -> Meter:
    return meter_at(tmp_path, TIME_MAX - timedelta(seconds=25))


def base_of(meter: Meter) -> ManualClock:
    base = meter.clock.base
    assert isinstance(base, ManualClock)
    return base


async def test_the_meter_clock_stands_still_at_time_max_and_says_so_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    base = ManualClock(TIME_MAX - timedelta(seconds=5))
    clock = OffsetClock(base)
    assert not clock.stopped
    with caplog.at_level(logging.ERROR, logger="twin.clock"):
        await base.advance(3600)
        readings = [clock.now() for _ in range(3)]
        await base.advance(86400)
        readings.append(clock.now())
    assert readings == [TIME_MAX] * 4
    assert clock.stopped
    assert clock.status() == {"stopped": True, "time_max": TIME_MAX.isoformat()}
    assert len([r for r in caplog.records if "stands still" in r.getMessage()]) == 1


async def test_a_wait_beyond_time_max_ends_only_with_a_clock_set_and_never_spins() -> None:
    counting = CountingClock(SimulatedClock(TIME_MAX - timedelta(seconds=1), FAST))
    clock = OffsetClock(counting)
    waiter = asyncio.create_task(clock.sleep_until(TIME_MAX + timedelta(hours=1)))
    await asyncio.sleep(0.2)  # 2.3 meter days go by: far past TIME_MAX
    assert clock.stopped
    assert clock.now() == TIME_MAX
    assert not waiter.done()  # the time is never reached ...
    assert counting.sleeps <= 1  # ... and nobody polls the base clock for it
    await asyncio.wait_for(clock.sleep_until(TIME_MAX - timedelta(days=1)), 0.5)  # reached
    clock.set_now(BACK)
    await asyncio.wait_for(waiter, 0.5)  # a clock set ends it: the waiter re-plans
    assert not clock.stopped
    assert BACK <= clock.now() < BACK + timedelta(days=60)  # running again (5 real s at most)


async def test_a_meter_past_the_end_publishes_time_max_on_p1_and_p2(meter: Meter) -> None:
    await base_of(meter).advance(86400)
    encoder = TelegramEncoder("TWN", "DSMR-TWIN-422")
    for reading in (meter.publish(), meter.publish(at=TIME_MAX + timedelta(seconds=10))):
        assert reading.time == TIME_MAX
        assert f"0-0:1.0.0({LAST_STAMP})".encode() in encoder.encode(reading)
    type_i_encode(meter.now())  # a P2 clock sync at this time can be sent (no RecordError)
    meter.commit()
    checkpoint = meter.store.load()
    assert checkpoint is not None
    assert checkpoint.state.time == TIME_MAX


# The last slot before TIME_MAX, and a first start whose slot after it is prepared (50 ms
# ahead, PREPARE_AHEAD_S) before TIME_MAX: that slot is then never sent, not even after a set.
@pytest.mark.parametrize("before_s", [25.0, 29.98])
async def test_p1_stops_at_the_end_without_spinning_and_resumes_after_a_clock_set(
    tmp_path: Path, before_s: float
) -> None:
    meter = meter_at(tmp_path, TIME_MAX - timedelta(seconds=before_s))
    base = base_of(meter)
    sink = FakeSink()
    encoder = TelegramEncoder("TWN", "DSMR-TWIN-422")
    service = P1Service(meter, encoder, sink, AlwaysRequested(), meter.clock, interval_s=10)
    async with running(service) as task:
        stamps = [sent_at(await next_telegram(sink))]
        for _ in range(6):  # a minute: past TIME_MAX
            await base.advance(10)
            await settle_writes(meter)
            while not sink.written.empty():
                stamps.append(sent_at(sink.written.get_nowait()))
        slots = [TIME_MAX - timedelta(seconds=before_s - 10 * i) for i in range(3)]
        assert stamps == [timestamp(slot) for slot in slots]
        beats = service.heartbeat
        for _ in range(100):  # the clock stands still: nothing to send, nothing to spin on
            await base.advance(10)
        await settle_writes(meter)
        assert sink.written.empty()
        assert not task.done()
        assert service.heartbeat == beats  # no cadence loop ran
        meter.set_time(BACK)
        after = sent_at(await next_telegram(sink))
    assert after == timestamp(BACK)  # at once on the new grid; no slot of the old one


async def test_p2_and_the_gas_meter_keep_running_past_the_end(tmp_path: Path) -> None:
    rig = Rig(tmp_path, ManualClock(TIME_MAX - timedelta(hours=2)))
    await rig.start()
    try:
        for _ in range(4):
            await rig.advance(3600)
        assert not any(task.done() for task in rig.tasks)  # no RecordError ended a service
        assert rig.meter.model.state.mbus[1].capture == floor_to(TIME_MAX, 3600)
        await asyncio.sleep(0.05)
        assert rig.service.idle  # waiting for a clock set, not busy on the bus
        # The gas meter's own clock ran on into 2100: it answers the sync after a clock set.
        syncs = len(rig.service.sync_log)
        rig.meter.set_time(BACK)
        rig.service.clock_changed()
        async with asyncio.timeout(5):
            while len(rig.service.sync_log) == syncs:
                await asyncio.sleep(0.01)
        assert rig.gas.slave.clock(rig.clock.now()) == rig.meter.now() == BACK  # synced
        await rig.advance(3600)
        assert not any(task.done() for task in rig.tasks)
        assert rig.meter.model.state.mbus[1].capture == BACK + timedelta(hours=1)
    finally:
        await rig.stop()
        rig.store.close()


async def settle_writes(meter: Meter) -> None:
    """Let every task run, and the store's writer thread finish what they hand it (a P1 slot
    waits for its commit), until nothing is pending."""
    for _ in range(3):
        await settle()
        for _ in range(400):
            if not meter.store.writer.pending():
                break
            await asyncio.sleep(0.005)
    await settle()


class StoppedMeter:
    def __init__(self, clock: OffsetClock, reading: MeterReading) -> None:
        self.clock, self.reading = clock, reading

    def publish(self) -> MeterReading:
        return replace(self.reading, time=self.clock.now())

    async def publish_durable(self) -> MeterReading:
        return self.publish()


async def test_the_display_shows_time_max_and_its_heartbeat_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(display_module, "HEARTBEAT_S", 0.01)
    base = ManualClock(TIME_MAX - timedelta(seconds=1))
    clock = OffsetClock(base)
    store = Store.open(tmp_path)
    reading = Meter(Config(), base, store, random.Random(1)).publish()
    port = SimulatedDisplay()
    service = DisplayService(StoppedMeter(clock, reading), clock, port, ModuleStatus, refresh_s=1)
    task = asyncio.create_task(service.run())
    try:
        await asyncio.wait_for(service.drawn.wait(), 2)
        await base.advance(3600)
        await asyncio.sleep(0.05)
        frames, beat = service.frames, service.heartbeat
        await asyncio.sleep(0.1)
        assert service.frame_time == TIME_MAX
        assert service.frames == frames  # nothing new to show on a clock that stands still
        assert service.heartbeat > beat  # but waiting is not a hang for the watchdog
        assert isinstance(service.frame, Image.Image)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        store.close()


async def test_ctl_status_shows_the_stopped_clock() -> None:
    state_dir = Path(tempfile.mkdtemp(prefix="twin-"))  # short: a Unix socket path
    start = (TIME_MAX - timedelta(seconds=1)).isoformat()
    config = replace(steady_config(), clock=ClockConfig(speed=FAST, start=start))
    twin = build(config, state_dir, random.Random(1))
    task = asyncio.create_task(twin.control.run())
    try:
        path = state_dir / SOCKET_NAME
        for _ in range(100):
            if path.exists():
                break
            await asyncio.sleep(0.01)
        status = await call(path, {"cmd": "status"})
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        twin.store.close()
        shutil.rmtree(state_dir)
    assert status["meter_time"] == TIME_MAX.isoformat()
    assert status["ports"]["clock"] == {"stopped": True, "time_max": TIME_MAX.isoformat()}
