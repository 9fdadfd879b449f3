"""The M-Bus on a real serial device at 2400 8E1, through pyserial.

For example the packom M-Bus master HAT on /dev/ttyAMA0 (a PL011: the mini UART has no
parity). Optional local-echo removal (some level converters hear their own transmission) and
optional bus power (`hardware.mbus_power`). pyserial is imported when the port is opened, so
importing this module needs no device library.
"""

from __future__ import annotations

import asyncio
import logging
import os
import termios
from typing import Any

from hardware.mbus_fd import drain, read_some, write_all
from hardware.mbus_link import BAUD
from hardware.mbus_power import BusPower
from hardware.ports import PortError

log = logging.getLogger(__name__)


class UartBusLink:
    """A serial device at 2400 8E1 (pyserial), optionally with echo removal and bus power."""

    def __init__(
        self,
        device: str,
        *,
        baud: int = BAUD,
        echo: bool = False,
        power: BusPower | None = None,
    ) -> None:
        self.device = device
        self.baud = baud
        self.echo = echo
        self.power = power
        self._serial: Any = None
        self._echo_left = bytearray()
        self.echo_mismatches = 0

    @property
    def description(self) -> str:
        extra = " echo-removal" if self.echo else ""
        power = f" {self.power.description}" if self.power else ""
        return f"M-Bus uart {self.device} {self.baud} 8E1{extra}{power}"

    async def open(self) -> None:
        if self.power is not None:
            await self.power.on()
        try:
            port = self._open_serial()
        except PortError:
            if self.power is not None:
                await self.power.off()
            raise
        os.set_blocking(port.fileno(), False)
        port.reset_input_buffer()
        self._serial = port
        log.info("P2 on %s", self.description)

    def _open_serial(self) -> Any:
        import serial  # lazily: only a real UART needs pyserial at start-up

        def attempt() -> Any:
            return serial.Serial(
                port=self.device,
                baudrate=self.baud,
                bytesize=serial.EIGHTBITS,
                parity=serial.PARITY_EVEN,  # P2 §3.1.4: even parity "at all times"
                stopbits=serial.STOPBITS_ONE,
                timeout=0,
                exclusive=True,
            )

        try:
            try:
                return attempt()
            except termios.error:
                # Linux 6.x ptys refuse pyserial's tcsetattr once a previous user left them
                # at the same speed (EINVAL); a pty has no line to harm, so reset and retry.
                if not _reset_pty_speed(self.device):
                    raise
                return attempt()
        except (serial.SerialException, termios.error, OSError, ValueError) as exc:
            raise PortError(f"cannot open {self.description}: {exc}") from exc

    def _fd(self) -> int:
        if self._serial is None:
            raise PortError(f"{self.description} is not open")
        return int(self._serial.fileno())

    async def send(self, data: bytes) -> None:
        fd = self._fd()
        if self.echo:
            self._echo_left += data
        await write_all(fd, data, self.description)
        # tcdrain in a worker: returns once the bytes have left the UART, so the caller's
        # response timer starts at the end of its frame (EN 13757-2).
        port = self._serial
        try:
            await asyncio.get_running_loop().run_in_executor(None, port.flush)
        except OSError as exc:
            raise PortError(f"{self.description}: drain failed: {exc}") from exc

    async def receive(self, timeout_s: float | None) -> bytes:
        fd = self._fd()
        loop = asyncio.get_running_loop()
        deadline = None if timeout_s is None else loop.time() + timeout_s
        while True:
            remaining = None if deadline is None else max(0.0, deadline - loop.time())
            data = await read_some(fd, remaining, self.description)
            if not data:
                return b""
            data = self._strip_echo(data)
            if data:
                return data

    def _strip_echo(self, data: bytes) -> bytes:
        """Drop our own bytes heard back on a converter that echoes (pyMeterBus `read_echo`)."""
        index = 0
        while self._echo_left and index < len(data):
            if data[index] != self._echo_left[0]:
                # The echo was lost or garbled: stop expecting it rather than eat an answer.
                self.echo_mismatches += 1
                self._echo_left.clear()
                break
            del self._echo_left[0]
            index += 1
        return data[index:]

    def discard_input(self) -> None:
        self._echo_left.clear()
        if self._serial is not None:
            drain(self._fd())

    async def close(self) -> None:
        port, self._serial = self._serial, None
        if port is not None:
            port.close()
        if self.power is not None:
            await self.power.off()


def _reset_pty_speed(device: str) -> bool:
    """Put a pty slave back to the kernel's default speed; False if `device` is no pty."""
    if not os.path.realpath(device).startswith("/dev/pts/"):
        return False
    fd = os.open(device, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        attrs = termios.tcgetattr(fd)
        attrs[2] = (attrs[2] & ~termios.CBAUD) | termios.B38400
        attrs[4] = attrs[5] = termios.B38400
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
    finally:
        os.close(fd)
    return True
