"""The P1 service as real readers see it: dsmr_parser (Home Assistant's parser) on every transport.

A reader opens the pty symlink with pyserial as dsmr_parser's SerialReader would (115200), a
socket client reads the TCP server (both paced at the line speed, so telegrams arrive in pieces
as on a wire), and a UART on a pty pair is read at the other end. Frames
are cut with dsmr_parser's own TelegramBuffer and parsed with the DSMR 4 spec, CRC checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import select
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

serial = pytest.importorskip("serial")
import dsmr_parser.parsers as dsmr_parsers  # noqa: E402 - the acceptance oracle, a test dependency
import dsmr_parser.telegram_specifications as specs  # noqa: E402
from dsmr_parser.clients import telegram_buffer  # noqa: E402

from hardware.ports import ByteSink  # noqa: E402
from hardware.pty_link import PtySink  # noqa: E402
from hardware.request_line import SimulatedRequestLine  # noqa: E402
from hardware.tcp_link import TcpSink  # noqa: E402
from hardware.uart import UartSink  # noqa: E402
from twin.clock import ManualClock  # noqa: E402
from twin.config import Config, P2Config  # noqa: E402
from twin.meter.state import MeterReading  # noqa: E402
from twin.metering import Meter  # noqa: E402
from twin.p1.service import P1Service  # noqa: E402
from twin.p1.telegram import TelegramEncoder  # noqa: E402
from twin.store import Store  # noqa: E402

# Early morning in March: import on tariff 1 overnight, then PV export once the sun is up.
START = datetime(2026, 3, 2, 4, 0, tzinfo=UTC)
SAFETY_S = 5.0
V4_NAMES = [obj["value_name"] for obj in specs.V4["objects"]]


class PublishSpy:
    """The meter, remembering every reading it published (what each telegram must show)."""

    def __init__(self, meter: Meter) -> None:
        self.meter = meter
        self.readings: list[MeterReading] = []

    async def publish_durable(self, at: datetime | None = None) -> MeterReading:
        self.readings.append(await self.meter.publish_durable(at))
        return self.readings[-1]

    def is_powered(self) -> bool:
        return self.meter.is_powered()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
async def meter(tmp_path: Path, clock: ManualClock) -> AsyncIterator[Meter]:
    store = Store.open(tmp_path)
    # P2 off: the gas stand-in puts the M-Bus lines on P1 without an M-Bus master.
    meter = Meter(Config(p2=P2Config(enabled=False)), clock, store, random.Random(1))
    # Give every field something to show: a long power failure, a sag, a message, gas hours.
    meter.act(lambda m, now: m.power_failure(now, 200))
    await clock.advance(3600)
    meter.act(lambda m, now: m.voltage_sag(now, 2))
    meter.act(lambda m, now: m.set_message("01234567", "Hallo twin"))
    await clock.advance(4 * 3600)
    yield meter
    store.close()


@contextlib.asynccontextmanager
async def p1_service(
    meter: Meter, clock: ManualClock, sink: ByteSink
) -> AsyncIterator[tuple[PublishSpy, SimulatedRequestLine, P1Service]]:
    spy, request = PublishSpy(meter), SimulatedRequestLine()
    service = P1Service(spy, TelegramEncoder("TWN", "DSMR-TWIN-422"), sink, request, clock)
    task = asyncio.create_task(service.run())
    try:
        await asyncio.wait_for(service.ready.wait(), SAFETY_S)
        yield spy, request, service
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def read_frames(read: Callable[[], bytes], count: int) -> list[str]:
    """Read until dsmr_parser's TelegramBuffer has cut `count` telegrams (worker thread)."""
    buffer = telegram_buffer.TelegramBuffer()
    frames: list[str] = []
    deadline = time.monotonic() + SAFETY_S
    while len(frames) < count and time.monotonic() < deadline:
        buffer.append(read().decode("ascii"))
        frames.extend(buffer.get_all())
    assert len(frames) == count, f"got {len(frames)} of {count} telegrams"
    return frames


def port_reader(port: Any) -> Callable[[], bytes]:
    # Up to the port timeout (0.1 s) for the first byte, then whatever is waiting.
    return lambda: bytes(port.read(max(1, port.in_waiting)))


def fd_reader(fd: int) -> Callable[[], bytes]:
    def read() -> bytes:
        ready, _, _ = select.select([fd], [], [], 0.1)
        return os.read(fd, 4096) if ready else b""

    return read


def parse(frame: str) -> Any:
    parser = dsmr_parsers.TelegramParser(specs.V4, apply_checksum_validation=True)
    return parser.parse(frame, throw_ex=True)


def hexed(text: str) -> str:
    return text.encode("ascii").hex().upper()


def kilo(value: int) -> Decimal:
    return Decimal(value) / 1000


def expected_values(r: MeterReading) -> dict[str, object]:
    """Every DSMR 4 field dsmr_parser knows, as the reading says it should be."""
    gas = r.mbus[0]
    values: dict[str, object] = {
        "P1_MESSAGE_HEADER": "42",
        "P1_MESSAGE_TIMESTAMP": r.time.replace(microsecond=0),
        "EQUIPMENT_IDENTIFIER": hexed(r.equipment_id),
        "ELECTRICITY_USED_TARIFF_1": kilo(r.energy_wh["1-0:1.8.1"]),
        "ELECTRICITY_USED_TARIFF_2": kilo(r.energy_wh["1-0:1.8.2"]),
        "ELECTRICITY_DELIVERED_TARIFF_1": kilo(r.energy_wh["1-0:2.8.1"]),
        "ELECTRICITY_DELIVERED_TARIFF_2": kilo(r.energy_wh["1-0:2.8.2"]),
        "ELECTRICITY_ACTIVE_TARIFF": f"{int(r.tariff):04d}",
        "CURRENT_ELECTRICITY_USAGE": kilo(r.import_w),
        "CURRENT_ELECTRICITY_DELIVERY": kilo(r.export_w),
        "SHORT_POWER_FAILURE_COUNT": r.failures_any,
        "LONG_POWER_FAILURE_COUNT": r.failures_long,
        "TEXT_MESSAGE_CODE": int(hexed(r.message_code)),
        "TEXT_MESSAGE": hexed(r.message_text),
        "DEVICE_TYPE": gas.device_type,
        "EQUIPMENT_IDENTIFIER_GAS": hexed(gas.equipment_id),
        "HOURLY_GAS_METER_READING": kilo(gas.value_thousandths),
    }
    for i, phase in enumerate(("L1", "L2", "L3")):
        values[f"VOLTAGE_SAG_{phase}_COUNT"] = r.sags[i]
        values[f"VOLTAGE_SWELL_{phase}_COUNT"] = r.swells[i]
        values[f"INSTANTANEOUS_CURRENT_{phase}"] = r.current_a[i]
        values[f"INSTANTANEOUS_ACTIVE_POWER_{phase}_POSITIVE"] = kilo(r.import_w_phase[i])
        values[f"INSTANTANEOUS_ACTIVE_POWER_{phase}_NEGATIVE"] = kilo(r.export_w_phase[i])
    return values


def check_telegram(frame: str, reading: MeterReading) -> None:
    telegram = parse(frame)
    missing = [name for name in V4_NAMES if not hasattr(telegram, name)]
    assert missing == []
    expected = expected_values(reading)
    assert set(expected) | {"POWER_EVENT_FAILURE_LOG"} == set(V4_NAMES)
    actual = {name: getattr(telegram, name).value for name in expected}
    assert actual == expected
    gas = telegram.HOURLY_GAS_METER_READING
    assert (gas.datetime, gas.unit) == (reading.mbus[0].capture, "m3")
    log = telegram.POWER_EVENT_FAILURE_LOG
    assert log.buffer_length == len(reading.failure_log) == 1
    entries = [(e.datetime, e.value, e.unit) for e in log.buffer]
    assert entries == [(f.end, f.duration_s, "s") for f in reading.failure_log]
    assert telegram.ELECTRICITY_USED_TARIFF_1.unit == "kWh"


def registers_are_interesting(readings: list[MeterReading]) -> None:
    assert any(r.energy_wh["1-0:1.8.1"] > 0 for r in readings)


async def test_pty_reader_parses_every_field(
    tmp_path: Path, meter: Meter, clock: ManualClock
) -> None:
    link = tmp_path / "p1"
    async with p1_service(meter, clock, PtySink(link, pace=True)) as (spy, request, _):
        # As dsmr_parser's SerialReader does: open the port at 115200 (8N1 here, P1 §5.1).
        with serial.Serial(str(link), 115200, timeout=0.1) as port:
            request.set(True)
            first = await asyncio.to_thread(read_frames, port_reader(port), 1)
            await clock.advance(10)
            second = await asyncio.to_thread(read_frames, port_reader(port), 1)
    check_telegram(first[0], spy.readings[0])
    check_telegram(second[0], spy.readings[1])
    registers_are_interesting(spy.readings)
    assert spy.readings[1].time == spy.readings[0].time.replace(second=10)


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(SAFETY_S):
        while not condition():
            await asyncio.sleep(0.005)


async def test_request_off_keeps_a_telegram_the_reader_already_has(
    tmp_path: Path, meter: Meter, clock: ManualClock
) -> None:
    """A telegram fully on the line, then Request falls: a wire cannot take it back (P1 §4.3
    stops only what is not sent yet), so the reader still parses it whole."""
    link = tmp_path / "p1"
    async with p1_service(meter, clock, PtySink(link, pace=True)) as (spy, request, service):
        fd = os.open(link, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            request.set(True)
            await until(lambda: service.sent == 1)
            request.set(False)
            await until(lambda: service.status()["requested"] is False)
            await asyncio.sleep(0.05)  # the service's release (and its abort) has run
            frames = await asyncio.to_thread(read_frames, fd_reader(fd), 1)
        finally:
            os.close(fd)
    check_telegram(frames[0], spy.readings[0])
    assert service.status()["telegrams_aborted"] == 0


@contextlib.contextmanager
def pty_pair() -> Iterator[tuple[int, str]]:
    master, slave = os.openpty()
    try:
        yield master, os.ttyname(slave)
    finally:
        os.close(master)
        os.close(slave)


async def test_uart_on_a_pty_pair(tmp_path: Path, meter: Meter, clock: ManualClock) -> None:
    with pty_pair() as (master, device):
        async with p1_service(meter, clock, UartSink(device)) as (spy, request, _):
            request.set(True)
            frames = await asyncio.to_thread(read_frames, fd_reader(master), 1)
    check_telegram(frames[0], spy.readings[0])


async def accepted(sink: TcpSink) -> None:
    while not sink.clients:  # the server accepts on a later turn of the loop
        await asyncio.sleep(0)


async def test_tcp_reader_parses_every_field(meter: Meter, clock: ManualClock) -> None:
    sink = TcpSink("127.0.0.1", 0, pace=True)  # at the wire's speed, as a serial bridge sends
    async with p1_service(meter, clock, sink) as (spy, request, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", sink.port)
        await asyncio.wait_for(accepted(sink), SAFETY_S)
        request.set(True)
        first = await asyncio.wait_for(reader.readuntil(b"!"), SAFETY_S)
        first += await asyncio.wait_for(reader.readuntil(b"\r\n"), SAFETY_S)
        writer.close()
    buffer = telegram_buffer.TelegramBuffer()
    buffer.append(first.decode("ascii"))
    frames = list(buffer.get_all())
    assert len(frames) == 1
    check_telegram(frames[0], spy.readings[0])
