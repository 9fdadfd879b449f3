"""P1 service timing and Request handling, on a ManualClock (no real waiting)."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import twin.p1.service as service_module
from hardware.ports import PortError
from hardware.request_line import AlwaysRequested, SimulatedRequestLine
from twin.clock import ManualClock, SimulatedClock
from twin.config import Config
from twin.metering import Meter
from twin.p1.capture import CapturedTelegram
from twin.p1.crc import crc16_arc
from twin.p1.replay import ReplayService
from twin.p1.service import P1Service
from twin.p1.telegram import TelegramEncoder, timestamp
from twin.store import Store

START = datetime(2026, 3, 2, 11, 0, tzinfo=UTC)
SAFETY_S = 5.0  # only a safety net: every wait below ends as soon as the event happens


class FakeSink:
    """A ByteSink that records telegrams; with `block`, write waits until `gate` is set."""

    def __init__(self, block: bool = False) -> None:
        self.started: asyncio.Queue[bytes] = asyncio.Queue()
        self.written: asyncio.Queue[bytes] = asyncio.Queue()
        self.gate = asyncio.Event()
        if not block:
            self.gate.set()
        self.aborts = 0
        self.cancelled_writes = 0
        self.cancel_seen = asyncio.Event()
        self.opened = self.closed = False
        self.fail: Exception | None = None

    @property
    def description(self) -> str:
        return "fake sink"

    async def open(self) -> None:
        self.opened = True

    async def write(self, data: bytes) -> None:
        self.started.put_nowait(data)
        if self.fail is not None:
            raise self.fail
        try:
            await self.gate.wait()
        except asyncio.CancelledError:
            self.cancelled_writes += 1
            self.cancel_seen.set()
            raise
        self.written.put_nowait(data)

    def abort_output(self) -> None:
        self.aborts += 1

    async def close(self) -> None:
        self.closed = True


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def meter(tmp_path: Path, clock: ManualClock) -> Iterator[Meter]:
    store = Store.open(tmp_path)
    yield Meter(Config(), clock, store, random.Random(1))
    store.close()


def make_service(meter: Meter, clock: ManualClock, sink: FakeSink, request: object) -> P1Service:
    encoder = TelegramEncoder("TWN", "DSMR-TWIN-422")
    return P1Service(meter, encoder, sink, request, clock, interval_s=10)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def running(service: P1Service) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(service.run())
    await asyncio.wait_for(service.ready.wait(), SAFETY_S)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def settle() -> None:
    """Let every task run until it waits on something again (no time passes)."""
    for _ in range(50):
        await asyncio.sleep(0)


async def next_telegram(sink: FakeSink) -> bytes:
    return await asyncio.wait_for(sink.written.get(), SAFETY_S)


def sent_at(telegram: bytes) -> str:
    for line in telegram.decode("ascii").split("\r\n"):
        if line.startswith("0-0:1.0.0("):
            return line[len("0-0:1.0.0(") : -1]
    raise AssertionError("no 0-0:1.0.0 line")


def at(seconds: float) -> str:
    return timestamp(START + timedelta(seconds=seconds))


async def test_rise_sends_at_once_then_every_interval(meter: Meter, clock: ManualClock) -> None:
    sink, request = FakeSink(), SimulatedRequestLine()
    service = make_service(meter, clock, sink, request)
    async with running(service):
        await settle()
        assert sink.written.empty()  # nothing while Request is low

        await clock.advance(3)
        request.set(True)
        assert sent_at(await next_telegram(sink)) == at(3)  # P1 §5.2 immediately

        await clock.advance(9.999)
        await settle()
        assert sink.written.empty()
        await clock.advance(0.001)
        assert sent_at(await next_telegram(sink)) == at(13)  # P1 §4.5 every 10 s
        await clock.advance(10)
        assert sent_at(await next_telegram(sink)) == at(23)
        # The ring of recent telegrams (the web console's view), newest first, as written.
        recent = service.recent.newest_first()
        assert [sent_at(t.data) for t in recent] == [at(23), at(13), at(3)]
        for telegram in recent:  # P1 §6.2: CRC-16/ARC from "/" to "!", as four hex digits
            assert telegram.outcome == "sent"
            body = telegram.data[: telegram.data.rindex(b"!") + 1]
            assert telegram.crc == f"{crc16_arc(body):04X}"


async def test_fall_stops_the_telegrams(meter: Meter, clock: ManualClock) -> None:
    sink, request = FakeSink(), SimulatedRequestLine()
    service = make_service(meter, clock, sink, request)
    async with running(service):
        request.set(True)
        await next_telegram(sink)
        await clock.advance(4)
        request.set(False)
        await settle()
        for _ in range(6):
            await clock.advance(10)
        await settle()
        assert sink.written.empty()
        assert sink.aborts >= 1  # queued output is dropped on the fall
        assert service.status()["telegrams_sent"] == 1
        assert service.status()["requested"] is False


async def test_fall_mid_telegram_aborts_the_write(meter: Meter, clock: ManualClock) -> None:
    sink, request = FakeSink(block=True), SimulatedRequestLine()
    service = make_service(meter, clock, sink, request)
    async with running(service):
        request.set(True)
        await asyncio.wait_for(sink.started.get(), SAFETY_S)  # the telegram is on its way
        request.set(False)
        await settle()
        assert sink.cancelled_writes == 1
        assert sink.aborts >= 1
        sink.gate.set()
        await settle()
        assert sink.written.empty()
        status = service.status()
        assert (status["telegrams_sent"], status["telegrams_aborted"]) == (0, 1)
        # The web console's ring shows it as cut, with its slot and CRC.
        (cut,) = service.recent.newest_first()
        assert (cut.outcome, sent_at(cut.data)) == ("aborted", at(0))


async def test_a_new_rise_restarts_the_grid(meter: Meter, clock: ManualClock) -> None:
    sink, request = FakeSink(), SimulatedRequestLine()
    async with running(make_service(meter, clock, sink, request)):
        request.set(True)
        assert sent_at(await next_telegram(sink)) == at(0)
        await clock.advance(3)
        request.set(False)
        await settle()
        await clock.advance(1)
        request.set(True)
        assert sent_at(await next_telegram(sink)) == at(4)
        await clock.advance(10)
        assert sent_at(await next_telegram(sink)) == at(14)


async def test_a_short_pulse_low_is_seen(meter: Meter, clock: ManualClock) -> None:
    """Fall and rise before the service runs: it still stops and starts afresh (both edges)."""
    sink, request = FakeSink(), SimulatedRequestLine()
    service = make_service(meter, clock, sink, request)
    async with running(service):
        request.set(True)
        await next_telegram(sink)
        await clock.advance(5)
        request.set(False)
        request.set(True)
        assert sent_at(await next_telegram(sink)) == at(5)
        assert service.status()["requests"] == 2


async def test_always_requested_and_missed_slots_are_skipped(
    meter: Meter, clock: ManualClock
) -> None:
    sink = FakeSink()
    async with running(make_service(meter, clock, sink, AlwaysRequested())):
        assert sent_at(await next_telegram(sink)) == at(0)
        await clock.advance(10)
        assert sent_at(await next_telegram(sink)) == at(10)
        await clock.advance(25)  # slots 20 and 30 are both due: one telegram, no burst
        assert sent_at(await next_telegram(sink)) == at(30)  # stamped with its slot
        await settle()
        assert sink.written.empty()
        await clock.advance(5)
        assert sent_at(await next_telegram(sink)) == at(40)


async def test_no_telegrams_during_a_power_failure(meter: Meter, clock: ManualClock) -> None:
    sink = FakeSink()
    service = make_service(meter, clock, sink, AlwaysRequested())
    async with running(service):
        await next_telegram(sink)
        meter.act(lambda m, now: m.power_failure(now, 60))
        for _ in range(5):
            await clock.advance(10)
        await settle()
        assert sink.written.empty()
        await clock.advance(10)  # power is back at +60 s
        assert sent_at(await next_telegram(sink)) == at(60)
        assert service.status()["slots_unpowered"] == 5


async def test_status_heartbeat_and_cleanup(meter: Meter, clock: ManualClock) -> None:
    sink = FakeSink()
    service = make_service(meter, clock, sink, AlwaysRequested())
    before = service.heartbeat
    async with running(service):
        await next_telegram(sink)
        assert sink.opened
        assert service.heartbeat >= before
        status = service.status()
        assert status["sink"] == "fake sink"
        assert status["request"] == "always requested"
        assert status["telegrams_sent"] == 1
        assert status["last_sent"] == START.isoformat()
    assert sink.closed


async def test_a_port_failure_ends_run_and_closes_the_sink(
    meter: Meter, clock: ManualClock
) -> None:
    sink = FakeSink()
    sink.fail = PortError("line gone")
    service = make_service(meter, clock, sink, AlwaysRequested())
    with pytest.raises(PortError, match="line gone"):
        await asyncio.wait_for(service.run(), SAFETY_S)
    assert sink.closed


async def test_a_stuck_write_is_abandoned(
    meter: Meter, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The 8 s limit (P1 §4.5) is real time by nature; shrink it for the test.
    monkeypatch.setattr(service_module, "WRITE_TIMEOUT_S", 0.01)
    sink = FakeSink(block=True)
    service = make_service(meter, clock, sink, AlwaysRequested())
    async with running(service):
        await asyncio.wait_for(sink.started.get(), SAFETY_S)
        await asyncio.wait_for(sink.cancel_seen.wait(), SAFETY_S)
        await settle()
        assert service.status()["telegrams_timed_out"] == 1
        assert service.status()["telegrams_aborted"] == 0
        assert sink.aborts == 1
        assert [t.outcome for t in service.recent.newest_first()] == ["timed-out"]


async def test_a_replay_abandons_a_stuck_write_as_the_service_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # `p1 replay` writes through the service's write path: the same 8 s limit (P1 §4.5), the
    # output aborted, and counted as timed out, not as cut by Request (P1 §4.3).
    monkeypatch.setattr(service_module, "WRITE_TIMEOUT_S", 0.01)
    sink = FakeSink(block=True)
    replay = ReplayService([CapturedTelegram(0.0, b"/TWN5\r\n")], sink, AlwaysRequested())
    await asyncio.wait_for(replay.run(), SAFETY_S)
    assert replay.status()["telegrams_timed_out"] == 1
    assert replay.status()["telegrams_aborted"] == 0
    assert replay.status()["telegrams_sent"] == 0
    assert sink.aborts == 1


async def test_a_slot_that_passed_during_a_slow_write_still_goes_out(
    meter: Meter, clock: ManualClock
) -> None:
    sink = FakeSink(block=True)
    service = make_service(meter, clock, sink, AlwaysRequested())
    async with running(service):
        await asyncio.wait_for(sink.started.get(), SAFETY_S)
        await clock.advance(12)  # the first write is still going when slot 10 s comes
        sink.gate.set()
        assert sent_at(await next_telegram(sink)) == at(0)
        assert sent_at(await next_telegram(sink)) == at(10)  # late, not skipped
        await clock.advance(8)
        assert sent_at(await next_telegram(sink)) == at(20)
        assert service.status()["slots_missed"] == 0


async def test_slots_more_than_an_interval_behind_are_skipped_and_counted(
    meter: Meter, clock: ManualClock
) -> None:
    sink = FakeSink(block=True)
    service = make_service(meter, clock, sink, AlwaysRequested())
    async with running(service):
        await asyncio.wait_for(sink.started.get(), SAFETY_S)
        await clock.advance(25)  # slots 10 s and 20 s are due when the write ends
        sink.gate.set()
        assert sent_at(await next_telegram(sink)) == at(0)
        assert sent_at(await next_telegram(sink)) == at(20)  # only the latest due slot
        await settle()
        assert sink.written.empty()
        assert service.status()["slots_missed"] == 1


async def test_a_meter_clock_set_back_restarts_the_cadence_at_the_new_time(
    meter: Meter, clock: ManualClock
) -> None:
    from twin.clock import OffsetClock

    meter_clock = OffsetClock(clock)
    sink = FakeSink()
    encoder = TelegramEncoder("TWN", "DSMR-TWIN-422")
    service = P1Service(meter, encoder, sink, AlwaysRequested(), meter_clock, interval_s=10)
    async with running(service):
        first = await next_telegram(sink)
        meter_clock.set_now(meter_clock.now() - timedelta(hours=1))  # a head end sets it back
        second = await next_telegram(sink)  # at once on the new grid, not an hour later
        await clock.advance(10)
        third = await next_telegram(sink)
    assert sent_at(first) == timestamp(START)
    assert sent_at(second) == timestamp(START - timedelta(hours=1))
    assert sent_at(third) == timestamp(START - timedelta(hours=1) + timedelta(seconds=10))


async def test_after_ctl_advance_p1_sends_the_latest_slot_once_and_no_backlog(
    meter: Meter, clock: ManualClock
) -> None:
    from twin.fast_forward import FastForward

    sink = FakeSink()
    encoder = TelegramEncoder("TWN", "DSMR-TWIN-422")
    service = P1Service(meter, encoder, sink, AlwaysRequested(), meter.clock, interval_s=10)
    async with running(service):
        first = await next_telegram(sink)
        await FastForward(meter).advance(START + timedelta(days=1))
        second = await next_telegram(sink)  # at once, on a grid from the new time
        await settle()
        assert sink.written.empty()  # not the 8640 slots the day held
        await clock.advance(10)
        third = await next_telegram(sink)
    assert sent_at(first) == timestamp(START)
    assert sent_at(second) == timestamp(START + timedelta(days=1))
    assert sent_at(third) == timestamp(START + timedelta(days=1, seconds=10))
    assert service.status()["slots_missed"] == 0


async def test_a_fast_clock_sends_no_more_than_the_line_carries(tmp_path: Path) -> None:
    # 11.6 days a second: 8640 slots a real second are due; the line carries ~14 telegrams.
    fast = SimulatedClock(START, 1_000_000)
    store = Store.open(tmp_path / "fast")
    meter = Meter(Config(), fast, store, random.Random(1))
    sink = FakeSink()
    service = make_service(meter, meter.clock, sink, AlwaysRequested())  # type: ignore[arg-type]
    lags: list[float] = []

    async def ticker() -> None:  # another task on the loop: how late its wake-ups come
        while True:
            began = time.monotonic()
            await asyncio.sleep(0.01)
            lags.append(time.monotonic() - began - 0.01)

    probe = asyncio.create_task(ticker())
    async with running(service):
        await asyncio.sleep(1.0)
    probe.cancel()
    store.close()
    line_s = len(await next_telegram(sink)) * 10 / 115200  # P1 §5.1: 115200 baud, 8N1
    assert 1 <= service.sent <= 1.0 / line_s + 2
    assert service.missed > 1000  # the latest due slot goes out, never a burst
    # A starved loop (the old cadence sent all 8640 slots a second) lags by seconds; a busy
    # shared host adds tens of milliseconds now and then, which is not starvation.
    assert max(lags) < 0.5
    assert sorted(lags)[len(lags) // 2] < 0.05


async def test_a_fast_clock_on_a_slower_line_sends_no_more_than_that_line_carries(
    tmp_path: Path,
) -> None:
    # [p1] baudrate = 9600 (P1 §5.1 allows the meter to be set slower): a telegram takes 12
    # times longer on the line than at 115200, so at most that many go out a second.
    fast = SimulatedClock(START, 1_000_000)
    store = Store.open(tmp_path / "slow-line")
    meter = Meter(Config(), fast, store, random.Random(1))
    sink = FakeSink()
    encoder = TelegramEncoder("TWN", "DSMR-TWIN-422")
    service = P1Service(meter, encoder, sink, AlwaysRequested(), meter.clock, baudrate=9600)
    async with running(service):
        await asyncio.sleep(1.0)
    store.close()
    line_s = len(await next_telegram(sink)) * 10 / 9600
    assert 1 <= service.sent <= 1.0 / line_s + 2
