"""Byte links for the wired M-Bus (P2): a simulated bus, a pty and a real UART at 2400 8E1.

One `MbusLink` Protocol serves both roles: the E meter's master and a gas meter (slave) each
hold one end. Timing (research/p2.md §1-2):

- P2 §3.1.4 Table 3: 2400 Bd, 8 data bits, even parity, 1 stop bit "at all times": with the
  start bit that is 11 bit times per byte.
- EN 13757-2 (via EN 60870-5-1, as quoted in libmbus `mbus-serial.c`): a slave answers between
  11 bit times and 330 bit times + 50 ms after the master's frame. `response_timeout_s()` is
  that upper bound; a master waits that long after its frame has left before it gives up.

Implementations:

- `SimulatedBus`: an in-process bus between one master end and any number of slave ends.
  Without `realtime` bytes arrive at once and a master's wait ends as soon as every slave is
  provably idle (listening with nothing to process), so tests never sleep; with `realtime`
  each byte occupies the line for 11 bit times (delivered in chunks of a few bytes as they
  would leave the line) and a missing answer costs the full EN 13757-2 response time.
- `PtyBusLink`: this end owns a pseudo-terminal; the other end (a `dsmr-twin gasmeter`
  process, libmbus `mbus-serial-*` tools) opens the symlink to its slave side like a UART.
- `UartBusLink`: a real serial device (e.g. the packom M-Bus master HAT on /dev/ttyAMA0, a
  PL011: the mini UART has no parity) through pyserial, with optional local-echo removal (some
  level converters hear their own transmission) and optional bus power on a GPIO pin.
- `GpioBusPower`: bus power switched by a BCM pin (packom HAT: GPIO26, off after boot) through
  the RPi.GPIO API, imported lazily; off a Pi it raises `PortError` saying what is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import termios
from collections import deque
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

from hardware.ports import PortError
from hardware.pty_link import close_linked_pty, open_linked_pty

log = logging.getLogger(__name__)

BAUD = 2400  # P2 §2.1 Table 1, §3.1.4
BITS_PER_BYTE = 11  # start + 8 data + even parity + stop (P2 §3.1.4 Table 3)
RESPONSE_BITS = 330  # EN 13757-2: answer within 330 bit times + 50 ms
RESPONSE_EXTRA_S = 0.050
READ_CHUNK = 4096
REALTIME_CHUNK = 8  # bytes delivered together on a realtime bus (37 ms at 2400 Bd)
HISTORY = 256  # frames kept per simulated bus for forensics and tests
PACKOM_POWER_PIN = 26  # research/p2.md §11: the packom HAT switches bus power on BCM 26
POWER_SETTLE_S = 0.5  # pyMbusHat: bus-powered meters may need more than 0.1 s


def byte_time_s(baud: int = BAUD) -> float:
    """Line time of one byte at `baud` with 8E1 framing."""
    return BITS_PER_BYTE / baud


def frame_time_s(size: int, baud: int = BAUD) -> float:
    """Line time of `size` bytes sent back to back (M-Bus has no pauses inside a frame)."""
    return size * byte_time_s(baud)


def response_timeout_s(baud: int = BAUD) -> float:
    """EN 13757-2 answer window: 330 bit times + 50 ms (0.1875 s at 2400 Bd)."""
    return RESPONSE_BITS / baud + RESPONSE_EXTRA_S


class MbusLink(Protocol):
    """One end of a wired M-Bus: bytes out, bytes in (half duplex, the master speaks first)."""

    @property
    def description(self) -> str:
        """Where the bus is, for logs and `ctl status`."""
        ...

    async def open(self) -> None: ...

    async def send(self, data: bytes) -> None:
        """Put `data` on the bus; returns once it has left the line (or would have)."""
        ...

    async def receive(self, timeout_s: float | None) -> bytes:
        """The next bytes from the bus (at least one), or b"" if none came within `timeout_s`.

        `None` waits for ever. A simulated bus may also return b"" early when it knows no
        answer can come (every slave is idle).
        """
        ...

    def discard_input(self) -> None:
        """Drop whatever was received and not read yet."""
        ...

    async def close(self) -> None: ...


# --------------------------------------------------------------------------- simulated bus


class SimulatedBus:
    """An in-process wired M-Bus: one master end, any number of slave ends.

    What the master sends reaches every open slave end; what a slave sends reaches the master
    (two slaves answering at once simply interleave, as a collision garbles a real bus).
    `history` keeps what was sent as (sender, bytes), one entry per delivery: a whole frame on
    an instant bus, chunks of `REALTIME_CHUNK` bytes on a realtime one.
    """

    def __init__(self, *, realtime: bool = False, baud: int = BAUD) -> None:
        self.realtime = realtime
        self.baud = baud
        self.history: deque[tuple[str, bytes]] = deque(maxlen=HISTORY)
        self._master: SimulatedEnd | None = None
        self._slaves: list[SimulatedEnd] = []
        self._in_flight = 0

    def master_end(self) -> SimulatedEnd:
        """The E meter's end (one per bus)."""
        if self._master is not None:
            raise PortError("a simulated M-Bus has one master")
        self._master = SimulatedEnd(self, "master", master=True)
        return self._master

    def slave_end(self, name: str = "slave") -> SimulatedEnd:
        """A new slave end (a gas meter's connection)."""
        end = SimulatedEnd(self, name)
        self._slaves.append(end)
        return end

    def quiet(self) -> bool:
        """True when no answer can come: nothing on the line, every slave idle and listening.

        A slave end that is connected but not listening yet (its task has not started) keeps
        the bus busy, so the master waits for it up to its response timeout.
        """
        slaves = [s for s in self._slaves if s.connected]
        return self._in_flight == 0 and all(s.idle for s in slaves)

    def _deliver(self, sender: SimulatedEnd, data: bytes) -> None:
        self.history.append((sender.name, data))
        targets = self._slaves if sender is self._master else [self._master]
        for end in targets:
            if end is not None and end.connected:
                end.put(data)

    def _changed(self) -> None:
        """A slave went idle: a master waiting for an answer may conclude there is none."""
        if self._master is not None:
            self._master.wake()


class SimulatedEnd:
    """One end of a `SimulatedBus` (an `MbusLink`)."""

    def __init__(self, bus: SimulatedBus, name: str, *, master: bool = False) -> None:
        self.bus = bus
        self.name = name
        self.master = master
        self.connected = True  # on the bus from creation until closed, like a wired device
        self.is_open = False
        self._inbox = bytearray()
        self._wake = asyncio.Event()
        self._listening = False

    @property
    def description(self) -> str:
        timing = f"{self.bus.baud} Bd timing" if self.bus.realtime else "instant"
        return f"simulated M-Bus ({self.name}, {timing})"

    @property
    def idle(self) -> bool:
        """Listening with nothing left to process."""
        return self._listening and not self._inbox

    async def open(self) -> None:
        self.is_open = self.connected = True

    def put(self, data: bytes) -> None:
        self._inbox += data
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    async def send(self, data: bytes) -> None:
        if not self.is_open:
            raise PortError(f"{self.description} is not open")
        if not self.bus.realtime:
            self.bus._deliver(self, bytes(data))
            return
        # Bytes arrive as they leave the line, a few at a time: the receiver sees the first
        # byte within its answer window and the rest without an inter-byte pause.
        self.bus._in_flight += 1
        try:
            for start in range(0, len(data), REALTIME_CHUNK):
                chunk = bytes(data[start : start + REALTIME_CHUNK])
                await asyncio.sleep(frame_time_s(len(chunk), self.bus.baud))
                self.bus._deliver(self, chunk)
        finally:
            self.bus._in_flight -= 1

    async def receive(self, timeout_s: float | None) -> bytes:
        if not self.is_open:
            raise PortError(f"{self.description} is not open")
        loop = asyncio.get_running_loop()
        deadline = None if timeout_s is None else loop.time() + timeout_s
        while not self._inbox:
            if self.master and not self.bus.realtime and self.bus.quiet():
                return b""  # no slave will answer: skip the wait a real bus would take
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return b""
            self._wake.clear()
            self._listening = True
            if not self.master:
                self.bus._changed()  # a waiting master may now conclude nobody will answer
            try:
                async with asyncio.timeout(remaining):
                    await self._wake.wait()
            except TimeoutError:
                return b""
            finally:
                self._listening = False
        data = bytes(self._inbox)
        self._inbox.clear()
        return data

    def discard_input(self) -> None:
        self._inbox.clear()

    async def close(self) -> None:
        self.is_open = self.connected = False
        self._inbox.clear()
        self.bus._changed()


# --------------------------------------------------------------------------- file descriptors


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def _wait_fd(fd: int, *, write: bool, timeout_s: float | None) -> bool:
    """Wait until `fd` is readable (or writable); False on timeout."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()
    if write:
        loop.add_writer(fd, _resolve, ready)
    else:
        loop.add_reader(fd, _resolve, ready)
    try:
        async with asyncio.timeout(timeout_s):
            await ready
    except TimeoutError:
        return False
    finally:
        if write:
            loop.remove_writer(fd)
        else:
            loop.remove_reader(fd)
    return True


async def _write_all(fd: int, data: bytes, what: str) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            await _wait_fd(fd, write=True, timeout_s=None)
        except OSError as exc:
            raise PortError(f"{what}: write failed: {exc}") from exc


async def _read_some(fd: int, timeout_s: float | None, what: str) -> bytes:
    loop = asyncio.get_running_loop()
    deadline = None if timeout_s is None else loop.time() + timeout_s
    ready = False
    while True:
        try:
            data = os.read(fd, READ_CHUNK)
        except BlockingIOError:
            data = None
        except OSError as exc:
            raise PortError(f"{what}: read failed: {exc}") from exc
        if data:
            return data
        if data == b"" and ready:
            # Readable yet nothing to read: the device hung up (a USB adapter pulled out).
            raise PortError(f"{what}: the line hung up")
        # Otherwise b"" is no data, not end of file: pyserial sets VMIN=0, VTIME=0.
        remaining = None if deadline is None else deadline - loop.time()
        if remaining is not None and remaining <= 0:
            return b""
        ready = await _wait_fd(fd, write=False, timeout_s=remaining)
        if not ready:
            # A busy event loop may run the timeout before the reader callback: look once
            # more, so an answer that did arrive in time is not reported as missing.
            return _read_now(fd, what)


def _read_now(fd: int, what: str) -> bytes:
    try:
        return os.read(fd, READ_CHUNK)
    except BlockingIOError:
        return b""
    except OSError as exc:
        raise PortError(f"{what}: read failed: {exc}") from exc


def _drain(fd: int) -> None:
    with contextlib.suppress(BlockingIOError, OSError):
        while os.read(fd, READ_CHUNK):
            pass


# --------------------------------------------------------------------------- pty


class PtyBusLink:
    """This end owns a pty; the other end opens the symlink `link` as a serial device.

    We keep the slave side open ourselves so the line survives the peer closing and
    reopening it (a gas meter taken off the bus and put back), as a wire would.
    """

    def __init__(self, link: Path) -> None:
        self.link = link
        self._master = -1
        self._slave = -1
        self._slave_name = ""

    @property
    def description(self) -> str:
        target = f" -> {self._slave_name}" if self._slave_name else ""
        return f"M-Bus pty {self.link}{target}"

    @property
    def slave_name(self) -> str:
        """The pty device the other end opens (also reachable through `link`)."""
        return self._slave_name

    async def open(self) -> None:
        try:
            pty = open_linked_pty(self.link)  # binary frames pass unchanged, nothing is echoed
        except (OSError, termios.error) as exc:
            raise PortError(f"cannot open the M-Bus pty at {self.link}: {exc}") from exc
        self._master, self._slave, self._slave_name = pty.master, pty.slave, pty.name
        log.info("P2 on %s", self.description)

    def _fd(self) -> int:
        if self._master < 0:
            raise PortError(f"{self.description} is not open")
        return self._master

    async def send(self, data: bytes) -> None:
        await _write_all(self._fd(), data, self.description)

    async def receive(self, timeout_s: float | None) -> bytes:
        return await _read_some(self._fd(), timeout_s, self.description)

    def discard_input(self) -> None:
        if self._master >= 0:
            _drain(self._master)

    async def close(self) -> None:
        close_linked_pty(self.link, self._master, self._slave, self._slave_name)
        self._master = self._slave = -1


# --------------------------------------------------------------------------- bus power


class BusPower(Protocol):
    """Switches the M-Bus supply (the master's 36 V/24 V line driver)."""

    @property
    def description(self) -> str: ...

    async def on(self) -> None: ...

    async def off(self) -> None: ...


def _load_gpio() -> ModuleType:
    from hardware.gpio import load_rpi_gpio  # raises PortError off a Pi

    return load_rpi_gpio()


class GpioBusPower:
    """Bus power on BCM pin `pin`, high = on (packom HAT: GPIO26, research/p2.md §11)."""

    def __init__(
        self, pin: int = PACKOM_POWER_PIN, settle_s: float = POWER_SETTLE_S, gpio: Any = None
    ) -> None:
        self.pin = pin
        self.settle_s = settle_s
        self._injected = gpio  # a stand-in module for tests; RPi.GPIO is loaded on `on()`
        self._gpio: Any = None

    @property
    def description(self) -> str:
        return f"bus power GPIO{self.pin} (BCM)"

    async def on(self) -> None:
        gpio = self._injected or _load_gpio()
        try:
            gpio.setmode(gpio.BCM)
            gpio.setup(self.pin, gpio.OUT, initial=gpio.HIGH)
            gpio.output(self.pin, gpio.HIGH)
        except Exception as exc:
            # lgpio raises its own `lgpio.error` when no gpiochip can be opened.
            raise PortError(f"{self.description}: cannot drive the pin: {exc}") from exc
        self._gpio = gpio
        # MAIN DSMR-M 4.3.16: transmitters are on during discovery; give the slaves time to
        # power up before the first frame.
        await asyncio.sleep(self.settle_s)

    async def off(self) -> None:
        gpio, self._gpio = self._gpio, None
        if gpio is None:
            return
        gpio.output(self.pin, gpio.LOW)
        gpio.cleanup(self.pin)


# --------------------------------------------------------------------------- UART


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
        await _write_all(fd, data, self.description)
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
            data = await _read_some(fd, remaining, self.description)
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
            _drain(self._fd())

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


def open_mbus_link(
    spec: str, base_dir: Path, *, echo: bool = False, power_gpio: int = -1
) -> MbusLink:
    """The bus end named by `spec`: pty://LINK (relative to `base_dir`) or uart:///dev/X.

    The simulated bus is not built here: it needs both ends (see `SimulatedBus`).
    """
    scheme, _, rest = spec.partition("://")
    if scheme == "pty" and rest:
        link = Path(rest)
        return PtyBusLink(link if link.is_absolute() else base_dir / link)
    if scheme == "uart" and rest.startswith("/") and len(rest) > 1:
        power = GpioBusPower(power_gpio) if power_gpio >= 0 else None
        return UartBusLink(rest, echo=echo, power=power)
    raise ValueError(f"bad M-Bus endpoint {spec!r}: expected pty://LINK or uart:///dev/DEVICE")
