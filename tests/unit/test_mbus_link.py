"""Contract tests for the M-Bus byte links: every link that can load here, same behaviour.

The UART runs through pyserial on a pty (a pty accepts 2400 8E1 settings and ignores them);
the real bus-power GPIO is tried and skipped with its reason off a Pi.
"""

from __future__ import annotations

import asyncio
import os
import time
import tty
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from hardware.mbus_link import BAUD, MbusLink, frame_time_s, response_timeout_s
from hardware.mbus_power import GpioBusPower
from hardware.mbus_pty import PtyBusLink
from hardware.mbus_sim import SimulatedBus
from hardware.mbus_uart import UartBusLink
from hardware.ports import PortError
from hardware.registry import open_mbus_link

REQ_UD2 = bytes.fromhex("105B015C16")  # to address 1 (P2 §3.1.2, Table 5; CS = C + A)
ACK = b"\xe5"
Pair = tuple[MbusLink, MbusLink]


async def _read(link: MbusLink, size: int, timeout_s: float = 2.0) -> bytes:
    data = b""
    async with asyncio.timeout(timeout_s):
        while len(data) < size:
            data += await link.receive(timeout_s)
    return data


async def _simulated() -> Pair:
    bus = SimulatedBus()
    return bus.master_end(), bus.slave_end()


async def _simulated_realtime() -> Pair:
    bus = SimulatedBus(realtime=True)
    return bus.master_end(), bus.slave_end()


def _pty_factory(tmp_path: Path) -> Callable[[], Any]:
    async def make() -> Pair:
        owner = PtyBusLink(tmp_path / "mbus")
        await owner.open()
        # The far end opens the symlink like a serial device: pyserial at 2400 8E1.
        return owner, UartBusLink(str(tmp_path / "mbus"))

    return make


@pytest.fixture(params=["simulated", "simulated-realtime", "pty+uart"])
async def pair(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Pair]:
    factories: dict[str, Callable[[], Any]] = {
        "simulated": _simulated,
        "simulated-realtime": _simulated_realtime,
        "pty+uart": _pty_factory(tmp_path),
    }
    a, b = await factories[request.param]()
    await a.open()
    await b.open()
    yield a, b
    await b.close()
    await a.close()


async def test_bytes_go_both_ways(pair: Pair) -> None:
    master, slave = pair
    reader = asyncio.create_task(_read(slave, len(REQ_UD2)))
    await master.send(REQ_UD2)
    assert await reader == REQ_UD2
    reader = asyncio.create_task(_read(master, 1))
    await slave.send(ACK)
    assert await reader == ACK


async def test_receive_times_out_with_nothing(pair: Pair) -> None:
    master, slave = pair
    started = time.monotonic()
    assert await slave.receive(0.05) == b""
    assert await master.receive(0.05) == b""
    assert time.monotonic() - started < 1.0


async def test_discard_input_drops_what_was_not_read(pair: Pair) -> None:
    master, slave = pair
    await master.send(REQ_UD2)
    await asyncio.sleep(0.1)  # let it arrive on a real line
    slave.discard_input()
    assert await slave.receive(0.05) == b""


async def test_a_closed_link_refuses_to_send(pair: Pair) -> None:
    master, _ = pair
    await master.close()
    with pytest.raises(PortError):
        await master.send(REQ_UD2)


def test_en_13757_2_timing_figures() -> None:
    assert BAUD == 2400
    assert response_timeout_s() == pytest.approx(330 / 2400 + 0.050)  # 0.1875 s
    assert frame_time_s(5) == pytest.approx(5 * 11 / 2400)  # 8E1: 11 bits per byte


async def test_realtime_bus_keeps_2400_baud_timing() -> None:
    bus = SimulatedBus(realtime=True)
    master, slave = bus.master_end(), bus.slave_end()
    await master.open()
    await slave.open()
    frame = bytes(100)
    started = time.monotonic()
    await master.send(frame)
    assert time.monotonic() - started >= frame_time_s(len(frame)) * 0.95
    assert await slave.receive(0) == frame
    # No slave answers: the master waits the whole EN 13757-2 response time.
    started = time.monotonic()
    assert await master.receive(response_timeout_s()) == b""
    assert time.monotonic() - started >= response_timeout_s() * 0.95


async def test_instant_bus_ends_the_wait_when_every_slave_is_idle() -> None:
    bus = SimulatedBus()
    master, slave = bus.master_end(), bus.slave_end()
    await master.open()
    await slave.open()

    async def deaf_slave() -> None:
        while True:
            await slave.receive(None)  # hears the frame, answers nothing

    listener = asyncio.create_task(deaf_slave())
    await asyncio.sleep(0)
    started = time.monotonic()
    await master.send(REQ_UD2)
    assert await master.receive(5.0) == b""
    assert time.monotonic() - started < 1.0
    assert list(bus.history) == [("master", REQ_UD2)]
    listener.cancel()


async def test_uart_removes_local_echo(tmp_path: Path) -> None:
    far, near = os.openpty()
    tty.setraw(near)
    uart = UartBusLink(os.ttyname(near), echo=True)
    await uart.open()
    try:
        await uart.send(REQ_UD2)
        assert os.read(far, 64) == REQ_UD2
        os.write(far, REQ_UD2 + ACK)  # a converter that echoes, then the slave's answer
        assert await _read(uart, 1) == ACK
        assert "echo-removal" in uart.description
    finally:
        await uart.close()
        os.close(far)
        os.close(near)


async def test_uart_that_cannot_open_raises_port_error(tmp_path: Path) -> None:
    with pytest.raises(PortError, match="cannot open"):
        await UartBusLink(str(tmp_path / "no-such-tty")).open()


class FakeGpio:
    """The part of the RPi.GPIO API bus power uses, recording what happens to the pins."""

    BCM, OUT, HIGH, LOW = "BCM", "OUT", 1, 0

    def __init__(self) -> None:
        self.levels: dict[int, int] = {}
        self.cleaned: list[int] = []

    def setmode(self, mode: str) -> None:
        assert mode == self.BCM

    def setup(self, pin: int, direction: str, initial: int) -> None:
        assert direction == self.OUT
        self.levels[pin] = initial

    def output(self, pin: int, level: int) -> None:
        self.levels[pin] = level

    def cleanup(self, pin: int) -> None:
        self.cleaned.append(pin)


async def test_bus_power_is_on_while_the_uart_is_open(tmp_path: Path) -> None:
    gpio = FakeGpio()
    owner = PtyBusLink(tmp_path / "hat")
    await owner.open()
    uart = UartBusLink(str(tmp_path / "hat"), power=GpioBusPower(26, settle_s=0, gpio=gpio))
    await uart.open()
    assert gpio.levels == {26: FakeGpio.HIGH}  # packom HAT: GPIO26 switches bus power
    assert "GPIO26" in uart.description
    await uart.close()
    assert (gpio.levels, gpio.cleaned) == ({26: FakeGpio.LOW}, [26])
    await owner.close()


async def test_real_bus_power_gpio_or_a_clear_reason() -> None:
    power = GpioBusPower(26, settle_s=0)
    try:
        await power.on()
    except PortError as exc:
        reason = str(exc)
    else:
        await power.off()  # on a Pi: the pin really switched
        return
    assert "RPi.GPIO" in reason or "GPIO26" in reason  # says what is missing
    pytest.skip(f"no GPIO here: {reason}")


def test_endpoints_choose_the_link(tmp_path: Path) -> None:
    pty = open_mbus_link("pty://mbus", tmp_path)
    assert isinstance(pty, PtyBusLink)
    assert pty.link == tmp_path / "mbus"
    uart = open_mbus_link("uart:///dev/ttyAMA0", tmp_path, echo=True, power_gpio=26)
    assert isinstance(uart, UartBusLink)
    assert (uart.device, uart.echo, uart.power is not None) == ("/dev/ttyAMA0", True, True)
    with pytest.raises(ValueError, match="M-Bus endpoint"):
        open_mbus_link("tcp://host:1", tmp_path)


async def test_a_pty_can_be_reopened_by_a_new_far_end(tmp_path: Path) -> None:
    """A gas meter process stopped and started again opens the same pty once more."""
    owner = PtyBusLink(tmp_path / "mbus")
    await owner.open()
    try:
        for _ in range(3):
            far = UartBusLink(str(tmp_path / "mbus"))
            await far.open()
            await far.send(ACK)
            assert await _read(owner, 1) == ACK
            await far.close()
    finally:
        await owner.close()
