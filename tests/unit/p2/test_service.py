"""The P2 master service and the gas-meter twin on the simulated bus, on a ManualClock.

Nothing sleeps: the simulated bus ends a master's wait as soon as every slave is idle, and
`Rig.settle()` returns once the service waits for its next due time.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from dsmr_parser import telegram_specifications
from dsmr_parser.parsers import TelegramParser

from hardware.mbus_sim import SimulatedBus
from twin.clock import ManualClock, floor_to
from twin.config import Config
from twin.meter.events import EventLog
from twin.metering import Meter
from twin.p1.telegram import TelegramEncoder
from twin.p2.aio.gasmeter import GasMeterTwin
from twin.p2.aio.service import P2Service
from twin.p2.crypto import wrap_user_key
from twin.p2.frames import LongFrame, decode_frame
from twin.p2.headers import MODE_15, MODE_NONE, decode_long_header
from twin.p2.keys import KeyStatus
from twin.p2.port import P2MbusPort
from twin.p2.slave_state import GasMeterIdentity, SlaveState
from twin.p2.values import Status
from twin.ports import PortResult
from twin.store import Store

# Two days before the end of summer time 2026 (Sunday 25 October, 01:00 UTC).
START = datetime(2026, 10, 23, 12, 0, tzinfo=UTC)
DEFAULT_KEY = bytes.fromhex("00112233445566778899AABBCCDDEEFF")
IDENTITY = GasMeterIdentity(19, "TWN", "G0099000000000019", DEFAULT_KEY)
COMM_ERROR_BIT, FRAUD_BIT, NEW_DEVICE_BIT = 1 << 16, 1 << 20, 1 << 24  # P3 §4.2.4, channel 1
SETTLE_S = 10.0  # a safety net only


class Rig:
    """A meter with the P2 service and one gas-meter twin on a simulated bus."""

    def __init__(
        self, tmp_path: Path, clock: ManualClock, *, auto_key: bool = True, dsmr40: bool = False
    ) -> None:
        self.tmp_path, self.clock = tmp_path, clock
        self.identity = replace(IDENTITY, dsmr40=dsmr40)
        self.auto_key = auto_key
        self.store = Store.open(tmp_path)
        self.meter = Meter(Config(), clock, self.store, random.Random(1))
        self.tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self.bus = SimulatedBus()
        known = self.identity if self.auto_key else None
        self.gas = GasMeterTwin(
            self.identity,
            self.bus.slave_end("gas"),
            self.clock,
            self.store,
            rng=random.Random(2),
            start_litres=1_234_567,
            answer_delay_s=0.0,  # the instant bus, as wired (test_gasmeter_timing.py: 11 bits)
        )
        self.service = P2Service(
            self.meter,
            self.bus.master_end(),
            default_key_for=lambda d: known.default_key if known and d == known.device else None,
        )
        self.tasks = [
            asyncio.create_task(self.service.run()),
            asyncio.create_task(self.gas.run()),
        ]
        await self.settle()

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def settle(self) -> None:
        async with asyncio.timeout(SETTLE_S):
            while not (self.service.idle and self.bus.quiet()):
                await asyncio.sleep(0)

    async def advance(self, seconds: float) -> None:
        await self.clock.advance(seconds)
        await self.settle()

    async def hours(self, count: int) -> None:
        for _ in range(count):
            await self.advance(3600)

    def mbus_codes(self) -> list[int]:
        return [e.code for e in self.store.events(EventLog.MBUS)]

    def responses(self) -> list[LongFrame]:
        """The RSP_UD frames the gas meter sent."""
        frames = [decode_frame(data) for who, data in self.bus.history if who == "gas"]
        return [f for f in frames if isinstance(f, LongFrame)]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
async def rig(tmp_path: Path, clock: ManualClock) -> AsyncIterator[Rig]:
    running = Rig(tmp_path, clock)
    await running.start()
    yield running
    await running.stop()
    running.store.close()


def _mode(frame: LongFrame) -> int:
    return decode_long_header(frame.data)[0].mode


def _p1_gas(meter: Meter) -> tuple[str, Decimal, datetime]:
    encoder = TelegramEncoder("TWN", "DSMR-TWIN-422")
    text = encoder.encode(meter.publish()).decode("ascii")
    parsed = TelegramParser(telegram_specifications.V4).parse(text)
    device = parsed.MBUS_DEVICES[0]
    return (
        device.EQUIPMENT_IDENTIFIER_GAS.value,
        device.HOURLY_GAS_METER_READING.value,
        (device.HOURLY_GAS_METER_READING.datetime),
    )


async def test_installs_on_channel_1_keys_it_and_reads_in_mode_15(rig: Rig) -> None:
    (channel,) = rig.service.channels
    assert (channel.number, channel.address, channel.device) == (1, 1, IDENTITY.device)
    assert rig.service.key_status(1) is KeyStatus.IN_USE
    assert rig.gas.slave.state is SlaveState.KEYED
    assert channel.user_key == rig.gas.slave.snapshot.user_key
    assert rig.mbus_codes()[:1] == [105]  # new device on channel 1 (P3 §4.2.1)
    assert rig.meter.model.state.alarm_register & NEW_DEVICE_BIT
    modes = [_mode(f) for f in rig.responses()]
    assert modes[0] == MODE_NONE  # identification before the key
    assert modes[-1] == MODE_15  # everything after the key change is encrypted
    # Read once right after installation: P1 has the value at once.
    reading = rig.meter.model.state.mbus[1]
    assert (reading.value_thousandths, reading.capture) == (1_234_567, START)
    equipment, value, captured = _p1_gas(rig.meter)
    assert equipment == IDENTITY.equipment_id.encode().hex().upper()
    assert (value, captured) == (Decimal("1234.567"), START)


async def test_hourly_values_over_several_days(rig: Rig) -> None:
    values = []
    for _ in range(3 * 24):
        await rig.advance(3600)
        reading = rig.meter.model.state.mbus[1]
        now = rig.clock.now()
        assert reading.capture == floor_to(now, 3600)  # the G meter's UTC whole hour
        assert reading.value_thousandths == rig.gas.slave.snapshot.reading[0]  # type: ignore[index]
        values.append(reading.value_thousandths)
    assert values == sorted(values)
    assert values[-1] - 1_234_567 > 3 * 24 * 25 * 0.6  # the household used gas every hour
    assert rig.service.no_answer == rig.service.rejected  # no garbled frame, only scan probes
    _, value, captured = _p1_gas(rig.meter)
    assert value == Decimal(values[-1]) / 1000
    assert captured == floor_to(rig.clock.now(), 3600)
    channel = rig.service.channels[0]
    assert channel.frame_counter == rig.gas.slave.snapshot.frame_counter  # tracked


async def test_clock_sync_daily_across_dst_and_after_an_e_meter_clock_set(rig: Rig) -> None:
    await rig.hours(2 * 24)  # through Sunday 25 October 01:00 UTC, CEST -> CET
    syncs = [when for channel, when in rig.service.sync_log if channel == 1]
    dst_change = datetime(2026, 10, 25, 1, 0, tzinfo=UTC)
    assert any(dst_change <= t < dst_change + timedelta(minutes=10) for t in syncs)
    assert len(syncs) >= 3  # after installation, daily, after the DST change
    # Small corrections are no event: 104 is for a large adjustment only (P3 §4.2.1).
    assert 104 not in rig.mbus_codes()
    # The E meter's clock is set 5 minutes ahead (P3): the gas meter follows at once.
    rig.meter.set_time(rig.clock.now() + timedelta(minutes=5))
    rig.service.clock_changed()
    await rig.settle()
    assert rig.gas.slave.clock(rig.clock.now()) == rig.meter.now()
    assert rig.gas.slave.snapshot.status & Status.CLOCK_SYNC_ERROR  # > 60 s off (P2 §6.2.1)


async def test_detach_raises_100_and_the_alarm_bit_attach_raises_101(rig: Rig) -> None:
    rig.gas.set_attached(False)
    await rig.hours(1)
    assert rig.mbus_codes()[-1] == 100
    assert rig.meter.model.state.alarm_register & COMM_ERROR_BIT
    assert not rig.service.channels[0].comm_ok
    await rig.hours(2)
    assert rig.mbus_codes().count(100) == 1  # logged once, not every hour
    rig.gas.set_attached(True)
    await rig.hours(1)
    codes = rig.mbus_codes()
    assert codes[codes.index(100) + 1 :][:1] == [101]  # ok again
    syncs = [when for channel, when in rig.service.sync_log if channel == 1]
    ok_at = [e.when for e in rig.store.events(EventLog.MBUS) if e.code == 101][-1]
    assert syncs[-1] >= ok_at  # a clock sync after the communication restart (P2 §6.2.1)
    assert rig.meter.model.state.mbus[1].capture == floor_to(rig.clock.now(), 3600)


async def test_battery_low_and_fraud_become_events_and_alarm_bits(rig: Rig) -> None:
    rig.gas.set_battery_low(True)
    rig.gas.set_fraud(True)
    await rig.hours(1)
    assert {102, 103} <= set(rig.mbus_codes())
    assert rig.meter.model.state.alarm_register & FRAUD_BIT
    # P2 §6.2.3: the E meter clears the non-permanent fraud bit; battery low stays.
    status = rig.gas.slave.snapshot.status
    assert (status & Status.FRAUD_ATTEMPT, status & Status.POWER_LOW) == (0, Status.POWER_LOW)


async def test_a_restart_keeps_the_installation_and_the_counters(rig: Rig) -> None:
    await rig.hours(2)
    counter = rig.gas.slave.snapshot.frame_counter
    await rig.stop()
    await rig.start()  # same store: master and gas meter come back from their settings
    assert rig.mbus_codes().count(105) == 1
    assert rig.service.key_status(1) is KeyStatus.IN_USE
    assert rig.gas.slave.snapshot.frame_counter > counter  # read at once after the restart
    await rig.hours(1)
    assert rig.meter.model.state.mbus[1].capture == floor_to(rig.clock.now(), 3600)


async def test_without_a_known_default_key_the_operator_keys_it(
    tmp_path: Path, clock: ManualClock
) -> None:
    rig = Rig(tmp_path, clock, auto_key=False)
    await rig.start()
    try:
        assert rig.service.key_status(1) is KeyStatus.SET  # generated at installation
        assert {_mode(f) for f in rig.responses()} == {MODE_NONE}
        assert 1 in rig.meter.model.state.mbus  # read in clear straight away
        rig.service.key_with_default(1, DEFAULT_KEY, None)  # `ctl mbus key`
        await rig.settle()
        assert rig.service.key_status(1) is KeyStatus.IN_USE
        assert _mode(rig.responses()[-1]) == MODE_15
    finally:
        await rig.stop()
        rig.store.close()


async def test_p3_class_72_port_transfers_the_head_ends_key(rig: Rig) -> None:
    port = P2MbusPort(rig.service)
    device = port.device(1)
    assert device is not None
    assert (device.identification_number, device.manufacturer_id) == (
        0x19,
        (20 << 10) | (23 << 5) | 14,
    )  # "TWN"
    assert (device.configuration, device.encryption_key_status) == (15, 4)
    assert port.device(2) is None
    new_key = bytes(range(16, 32))
    wrapped = wrap_user_key(DEFAULT_KEY, new_key)[::-1]  # as P3 carries it, MSB first
    assert port.transfer_key(1, wrapped) is PortResult.SUCCESS
    assert rig.service.key_status(1) is KeyStatus.TRANSFERRED
    assert port.set_encryption_key(1, new_key) is PortResult.SUCCESS
    await rig.settle()
    assert rig.gas.slave.snapshot.user_key == new_key
    assert rig.service.channels[0].user_key == new_key
    assert port.transfer_key(1, b"short") is PortResult.TYPE_UNMATCHED
    assert port.transfer_key(3, wrapped) is PortResult.DENIED
    assert port.data_send(1, b"\x00") is PortResult.DENIED  # no valve commands (P2 §9)


async def test_deinstall_forgets_the_device(rig: Rig) -> None:
    rig.service.slave_deinstall(1)
    await rig.settle()
    assert rig.service.channels == ()
    assert 1 not in rig.meter.model.state.mbus
    assert rig.service.key_status(1) is KeyStatus.NO_KEY


async def test_a_dsmr40_gas_meter_is_read_and_its_valve_block_discarded(
    tmp_path: Path, clock: ManualClock
) -> None:
    rig = Rig(tmp_path, clock, dsmr40=True)
    await rig.start()
    try:
        rig.gas.slave.set_status(Status.VALVE_ALARM_40)  # the old valve alarm bit (P2 §9)
        await rig.hours(2)
        assert rig.service.channels[0].device.version == 0x40
        assert rig.meter.model.state.mbus[1].capture == floor_to(rig.clock.now(), 3600)
        assert rig.service.channels[0].status == 0  # bit 7 ignored
        assert set(rig.mbus_codes()) <= {104, 105}  # no error event for the valve
    finally:
        await rig.stop()
        rig.store.close()


async def test_an_e_meter_clock_jump_is_noticed_without_being_told(rig: Rig) -> None:
    syncs = len(rig.service.sync_log)
    rig.meter.set_time(rig.clock.now() - timedelta(minutes=3))
    async with asyncio.timeout(SETTLE_S):  # the service polls the offset once a real second
        while len(rig.service.sync_log) == syncs:
            await asyncio.sleep(0.05)
    assert rig.gas.slave.clock(rig.clock.now()) == rig.meter.now()


def test_power_up_discovery_on_the_instant_bus_runs_before_any_service(
    tmp_path: Path, clock: ManualClock
) -> None:
    """What `dsmr-twin run` does at build time: the first P1 telegram already has the gas."""
    store = Store.open(tmp_path)
    meter = Meter(Config(), clock, store, random.Random(1))
    bus = SimulatedBus()
    gas = GasMeterTwin(
        IDENTITY, bus.slave_end(), clock, store, rng=random.Random(2), start_litres=1_000
    )
    service = P2Service(
        meter,
        bus.master_end(),
        default_key_for=lambda d: DEFAULT_KEY if d == IDENTITY.device else None,
    )
    service.discover(gas.answer)
    assert service.key_status(1) is KeyStatus.IN_USE
    assert gas.slave.state is SlaveState.KEYED
    assert meter.model.state.mbus[1].capture == START
    assert [e.code for e in store.events(EventLog.MBUS)][:1] == [105]
    assert meter.model.state.alarm_register & NEW_DEVICE_BIT
    assert gas.slave.clock(clock.now()) == START  # synced
    store.close()
