"""P1 ports: contract tests over every ByteSink and RequestLine that loads here, then specifics."""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import socket
import termios
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from hardware.gpio import GpioRequestLine
from hardware.ports import ByteSink, PortError, RequestLine
from hardware.pty_link import PtySink, queued_input
from hardware.registry import open_p1_sink, open_request_line
from hardware.request_line import AlwaysRequested, SimulatedRequestLine
from hardware.tcp_link import TcpSink
from hardware.uart import UartSink

SAFETY_S = 5.0
TELEGRAM = b"/TWN5DSMR-TWIN-422\r\n\r\n1-3:0.2.8(42)\r\n!ABCD\r\n"

Receive = Callable[[int], Awaitable[bytes]]


def read_exactly(fd: int, size: int) -> bytes:
    """Blocking read of `size` bytes from `fd` (worker thread), bounded by SAFETY_S."""
    data = b""
    deadline = time.monotonic() + SAFETY_S
    while len(data) < size and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            data += os.read(fd, size - len(data))
    return data


def read_until_quiet(fd: int, quiet_s: float = 0.3) -> bytes:
    """Blocking read of `fd` (worker thread) until nothing arrives for `quiet_s`."""
    data = b""
    deadline = time.monotonic() + SAFETY_S
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], quiet_s)
        if not ready:
            break
        data += os.read(fd, 65536)
    return data


def read_waiting(fd: int) -> bytes:
    """Whatever is waiting on `fd`, without blocking."""
    data = b""
    while select.select([fd], [], [], 0)[0]:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        data += chunk
    return data


def drain(fd: int) -> int:
    """Read and count whatever is waiting on `fd` without blocking."""
    return len(read_waiting(fd))


@contextlib.contextmanager
def pty_pair() -> Iterator[tuple[int, str]]:
    master, slave = os.openpty()
    try:
        yield master, os.ttyname(slave)
    finally:
        os.close(master)
        os.close(slave)


@contextlib.asynccontextmanager
async def pty_sink(tmp_path: Path) -> AsyncIterator[tuple[ByteSink, Receive]]:
    sink = PtySink(tmp_path / "p1")
    await sink.open()
    fd = os.open(tmp_path / "p1", os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        yield sink, lambda n: asyncio.to_thread(read_exactly, fd, n)
    finally:
        os.close(fd)
        await sink.close()


@contextlib.asynccontextmanager
async def tcp_sink(tmp_path: Path) -> AsyncIterator[tuple[ByteSink, Receive]]:
    sink = TcpSink("127.0.0.1", 0)
    await sink.open()
    reader, writer = await asyncio.open_connection("127.0.0.1", sink.port)
    await asyncio.wait_for(clients(sink, 1), SAFETY_S)
    try:
        yield sink, lambda n: asyncio.wait_for(reader.readexactly(n), SAFETY_S)
    finally:
        writer.close()
        await sink.close()


@contextlib.asynccontextmanager
async def uart_sink(tmp_path: Path) -> AsyncIterator[tuple[ByteSink, Receive]]:
    with pty_pair() as (master, device):
        sink = UartSink(device)
        await sink.open()
        try:
            yield sink, lambda n: asyncio.to_thread(read_exactly, master, n)
        finally:
            await sink.close()


async def clients(sink: TcpSink, count: int) -> None:
    while len(sink.clients) != count:  # accepts happen on later turns of the loop
        await asyncio.sleep(0)


SINKS = {"pty": pty_sink, "tcp": tcp_sink, "uart-on-pty": uart_sink}


@pytest.fixture(params=sorted(SINKS))
async def sink_pair(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[ByteSink, Receive]]:
    async with SINKS[request.param](tmp_path) as pair:
        yield pair


# ------------------------------------------------------------------ ByteSink contract


async def test_sink_delivers_the_bytes_unchanged(sink_pair: tuple[ByteSink, Receive]) -> None:
    sink, receive = sink_pair
    assert sink.description
    for _ in range(3):  # one at a time: a telegram left unread may be dropped (no old data)
        await sink.write(TELEGRAM)
        assert await receive(len(TELEGRAM)) == TELEGRAM  # CR LF intact (P1 §5.12)


async def test_sink_write_can_be_cancelled_and_aborted(
    sink_pair: tuple[ByteSink, Receive],
) -> None:
    sink, _ = sink_pair
    task = asyncio.create_task(sink.write(TELEGRAM * 50))
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(task, SAFETY_S)
    sink.abort_output()
    sink.abort_output()  # idempotent
    # Still usable afterwards; the frame start shows where the fresh telegram begins.
    await sink.write(b"/" + TELEGRAM[1:])


@pytest.mark.parametrize("factory", sorted(SINKS))
async def test_sink_write_after_close_is_a_port_error(factory: str, tmp_path: Path) -> None:
    async with SINKS[factory](tmp_path) as (sink, _):
        pass
    with pytest.raises(PortError):
        await sink.write(TELEGRAM)


# ------------------------------------------------------------------ RequestLine contract


def make_gpio_line() -> RequestLine:
    return GpioRequestLine(17, active_high=False)


LINES: dict[str, Callable[[], RequestLine]] = {
    "always": AlwaysRequested,
    "simulated": SimulatedRequestLine,
    "gpio": make_gpio_line,
}


@pytest.fixture(params=sorted(LINES))
async def line(request: pytest.FixtureRequest) -> AsyncIterator[RequestLine]:
    candidate = LINES[request.param]()
    try:
        await candidate.open()
    except PortError as exc:
        if "RPi.GPIO" in str(exc):
            pytest.skip(f"no GPIO here: {exc}")
        raise
    yield candidate
    await candidate.close()


async def test_request_line_reports_its_level(line: RequestLine) -> None:
    assert line.description
    raised = line.is_raised()
    assert isinstance(raised, bool)
    await asyncio.wait_for(line.wait_for(raised), SAFETY_S)  # at once: already there


async def test_request_line_wait_for_the_other_level_is_cancellable(line: RequestLine) -> None:
    waiter = asyncio.create_task(line.wait_for(not line.is_raised()))
    await asyncio.sleep(0)
    assert not waiter.done()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter


# ------------------------------------------------------------------ pty specifics


async def test_pty_link_points_at_the_slave_and_goes_away(tmp_path: Path) -> None:
    link = tmp_path / "p1"
    link.symlink_to("/dev/null-old-twin")  # a stale link from a crashed run
    sink = PtySink(link)
    await sink.open()
    try:
        assert os.readlink(link) == sink.slave_name
        assert sink.slave_name in sink.description
        fd = os.open(link, os.O_RDWR | os.O_NOCTTY)
        assert os.isatty(fd)
        os.close(fd)
    finally:
        await sink.close()
    assert not os.path.lexists(link)


async def test_pty_refuses_to_replace_a_real_file(tmp_path: Path) -> None:
    (tmp_path / "p1").write_text("not a link")
    with pytest.raises(PortError, match="not a symlink"):
        await PtySink(tmp_path / "p1").open()


async def test_pty_holds_no_old_data_without_a_reader(tmp_path: Path) -> None:
    # stale_after_s=0: a telegram's worth unread with no progress is dropped at once.
    sink = PtySink(tmp_path / "p1", stale_after_s=0)
    await sink.open()
    # Watches the reader's queue without reading it (FIONREAD).
    fd = os.open(tmp_path / "p1", os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        for _ in range(200):  # far more than the pty can buffer: never blocks
            await asyncio.wait_for(sink.write(TELEGRAM), SAFETY_S)
            # The kernel moves bytes from the master to the reader's queue a moment after the
            # write; on a line the next telegram comes at least a line time later. Let them
            # land before the next write, as they would have.
            await _until_queued(fd, len(TELEGRAM))
        assert queued_input(fd) <= len(TELEGRAM)  # at most the latest telegram
    finally:
        os.close(fd)
        await sink.close()


async def _until_queued(fd: int, size: int) -> None:
    for _ in range(2000):
        if queued_input(fd) >= size:
            return
        await asyncio.sleep(0.0005)
    raise AssertionError("the written telegram never reached the reader's queue")


async def test_pty_overruns_instead_of_blocking(tmp_path: Path) -> None:
    sink = PtySink(tmp_path / "p1", stale_after_s=3600)  # the reader is never deemed absent
    await sink.open()
    try:
        for _ in range(200):  # about 300 kB, far more than a pty holds: never a block
            await asyncio.wait_for(sink.write(TELEGRAM * 30), SAFETY_S)
        assert (sink.stale_drops, sink.overruns > 0) == (0, True)
    finally:
        await sink.close()


async def test_pty_reader_a_little_behind_keeps_its_data(tmp_path: Path) -> None:
    sink = PtySink(tmp_path / "p1", stale_after_s=3600)
    await sink.open()
    fd = os.open(tmp_path / "p1", os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        await sink.write(TELEGRAM)
        head = await asyncio.to_thread(read_exactly, fd, 10)  # busy with the first bytes...
        await sink.write(TELEGRAM)  # ...but it is reading, so nothing is dropped
        rest = await asyncio.to_thread(read_exactly, fd, 2 * len(TELEGRAM) - 10)
        assert head + rest == 2 * TELEGRAM
    finally:
        os.close(fd)
        await sink.close()


async def test_pty_ignores_what_a_reader_sends(tmp_path: Path) -> None:
    async with pty_sink(tmp_path) as (sink, receive):
        fd = os.open(tmp_path / "p1", os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            os.write(fd, b"/?!\r\n" * 100)
        finally:
            os.close(fd)
        await sink.write(TELEGRAM)
        assert await receive(len(TELEGRAM)) == TELEGRAM


# ------------------------------------------------------------------ TCP specifics


async def test_tcp_every_client_gets_every_telegram_and_a_dead_one_is_dropped() -> None:
    sink = TcpSink("127.0.0.1", 0)
    await sink.open()
    assert sink.port > 0
    dead = socket.socket()
    dead.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a reader that never reads
    dead.connect(("127.0.0.1", sink.port))
    readers = [await asyncio.open_connection("127.0.0.1", sink.port) for _ in range(2)]
    try:
        await asyncio.wait_for(clients(sink, 3), SAFETY_S)
        for _ in range(200):
            await sink.write(TELEGRAM * 20)
            for reader, _ in readers:
                got = await asyncio.wait_for(reader.readexactly(20 * len(TELEGRAM)), SAFETY_S)
                assert got == TELEGRAM * 20
            if len(sink.clients) == 2:
                break
        assert len(sink.clients) == 2  # the dead one went, the live ones stayed
    finally:
        dead.close()
        for _, writer in readers:
            writer.close()
        await sink.close()


async def test_tcp_a_client_joining_mid_telegram_gets_whole_telegrams_only() -> None:
    # A dongle that connects while a telegram is on the (paced) line starts with the next
    # telegram, as a reader joining a real line at a telegram's start would: never a headless
    # tail of the one in flight.
    sink = TcpSink("127.0.0.1", 0, baudrate=9600, pace=True)  # 44 bytes: ~46 ms on the line
    await sink.open()
    try:
        writing = asyncio.create_task(sink.write(TELEGRAM))
        await asyncio.sleep(0.015)  # mid-telegram
        reader, writer = await asyncio.open_connection("127.0.0.1", sink.port)
        await asyncio.wait_for(clients(sink, 1), SAFETY_S)
        await writing
        second = TELEGRAM.replace(b"ABCD", b"1234")
        await sink.write(second)
        got = await asyncio.wait_for(reader.readexactly(len(second)), SAFETY_S)
        assert got == second
        writer.close()
    finally:
        await sink.close()


async def test_tcp_port_in_use_is_a_port_error() -> None:
    first = TcpSink("127.0.0.1", 0)
    await first.open()
    try:
        with pytest.raises(PortError, match="cannot listen"):
            await TcpSink("127.0.0.1", first.port).open()
    finally:
        await first.close()


# ------------------------------------------------------------------ UART specifics


async def test_uart_is_115200_8n1() -> None:
    with pty_pair() as (_, device):
        sink = UartSink(device)
        await sink.open()
        try:
            assert sink._serial is not None
            _, oflag, cflag, _, ispeed, ospeed, _ = termios.tcgetattr(sink._serial.fileno())
            assert (ispeed, ospeed) == (termios.B115200, termios.B115200)
            assert cflag & termios.CSIZE == termios.CS8
            assert not cflag & (termios.PARENB | termios.CSTOPB)
            assert not oflag & termios.OPOST  # raw: CR LF leave unchanged
        finally:
            await sink.close()


async def test_uart_abort_abandons_a_write_in_progress() -> None:
    big = TELEGRAM * 20_000  # about 1 MB: far more than a pty takes without a reader
    with pty_pair() as (master, device):
        sink = UartSink(device)
        await sink.open()
        try:
            task = asyncio.create_task(sink.write(big))
            started = await asyncio.to_thread(read_exactly, master, len(TELEGRAM))  # under way
            sink.abort_output()
            await asyncio.wait_for(task, SAFETY_S)
            delivered = started + await asyncio.to_thread(read_until_quiet, master)
            # What left stays delivered and nothing of the telegram follows the cut: the reader
            # has an unbroken start of it, no fragment after a gap.
            assert 0 < len(delivered) < len(big)
            assert delivered == big[: len(delivered)]
            # The cut is counted: at least the bytes never handed to the driver (a pty's buffer,
            # dropped too, is not reported by TIOCOUTQ, so the count cannot be exact here).
            status = sink.status()
            assert status["telegrams_cut"] == 1
            assert 0 < status["bytes_cut"] <= len(big) - len(delivered)
            await sink.write(TELEGRAM)  # the next telegram goes out whole, and alone
            assert await asyncio.to_thread(read_until_quiet, master) == TELEGRAM
        finally:
            await sink.close()


async def test_uart_missing_device_is_a_port_error(tmp_path: Path) -> None:
    with pytest.raises(PortError, match="cannot open"):
        await UartSink(str(tmp_path / "ttyNONE")).open()


# ------------------------------------------------------------------ request lines


async def test_simulated_line_wakes_waiters_on_each_edge() -> None:
    line = SimulatedRequestLine()
    rise = asyncio.create_task(line.wait_for(True))
    await asyncio.sleep(0)
    line.set(True)
    await asyncio.wait_for(rise, SAFETY_S)
    assert "raised" in line.description
    fall = asyncio.create_task(line.wait_for(False))
    await asyncio.sleep(0)
    line.set(False)
    line.set(True)  # a short pulse low before the waiter runs is still a fall
    await asyncio.wait_for(fall, SAFETY_S)
    assert line.is_raised()


class FakeGpio(SimpleNamespace):
    """The part of the RPi.GPIO API the request line uses; `level` is the pin's level."""

    BCM, IN, BOTH, PUD_UP, PUD_DOWN = "BCM", "IN", "BOTH", "PUD_UP", "PUD_DOWN"

    def __init__(self, level: int) -> None:
        super().__init__(level=level, calls=[], callback=None)

    def setmode(self, mode: str) -> None:
        self.calls.append(("setmode", mode))

    def setup(self, pin: int, direction: str, pull_up_down: str) -> None:
        self.calls.append(("setup", pin, direction, pull_up_down))

    def input(self, pin: int) -> int:
        return int(self.level)

    def add_event_detect(self, pin: int, edge: str, callback: Callable[[int], None]) -> None:
        self.calls.append(("add_event_detect", pin, edge))
        self.callback = callback

    def remove_event_detect(self, pin: int) -> None:
        self.calls.append(("remove_event_detect", pin))

    def cleanup(self, pin: int) -> None:
        self.calls.append(("cleanup", pin))


def edge_from_library_thread(gpio: FakeGpio, level: int) -> None:
    gpio.level = level
    thread = threading.Thread(target=gpio.callback, args=(17,))
    thread.start()
    thread.join()


async def test_gpio_active_low_through_an_opto() -> None:
    gpio = FakeGpio(level=1)  # opto off: pin pulled up = Request released
    line = GpioRequestLine(17, active_high=False, gpio=gpio)  # type: ignore[arg-type]
    await line.open()
    assert ("setup", 17, "IN", "PUD_UP") in gpio.calls
    assert ("add_event_detect", 17, "BOTH") in gpio.calls
    assert not line.is_raised()
    edge_from_library_thread(gpio, 0)
    await asyncio.wait_for(line.wait_for(True), SAFETY_S)
    edge_from_library_thread(gpio, 1)
    await asyncio.wait_for(line.wait_for(False), SAFETY_S)
    await line.close()
    assert gpio.calls[-2:] == [("remove_event_detect", 17), ("cleanup", 17)]


async def test_gpio_active_high_through_a_divider() -> None:
    gpio = FakeGpio(level=1)
    line = GpioRequestLine(4, active_high=True, gpio=gpio)  # type: ignore[arg-type]
    await line.open()
    assert ("setup", 4, "IN", "PUD_DOWN") in gpio.calls
    assert line.is_raised()
    await line.close()


async def test_gpio_setup_failure_is_a_port_error() -> None:
    gpio = FakeGpio(level=1)

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("Failed to add edge detection")

    gpio.add_event_detect = broken  # type: ignore[method-assign]
    with pytest.raises(PortError, match="Failed to add edge detection"):
        await GpioRequestLine(17, False, gpio=gpio).open()  # type: ignore[arg-type]


async def test_gpio_off_pi_says_what_is_missing() -> None:
    try:
        import RPi.GPIO  # noqa: F401
    except (ImportError, RuntimeError):
        pass
    else:
        pytest.skip("RPi.GPIO loads here: this is a Pi")
    with pytest.raises(PortError, match=r"RPi\.GPIO"):
        await GpioRequestLine(17, False).open()


# ------------------------------------------------------------------ registry


def test_registry_builds_sinks(tmp_path: Path) -> None:
    pty = open_p1_sink("pty://p1", tmp_path)
    assert isinstance(pty, PtySink)
    assert pty.link == tmp_path / "p1"
    absolute = open_p1_sink("pty:///run/dsmr-twin/p1", tmp_path)
    assert isinstance(absolute, PtySink)
    assert absolute.link == Path("/run/dsmr-twin/p1")
    tcp = open_p1_sink("tcp://0.0.0.0:2323", tmp_path)
    assert isinstance(tcp, TcpSink)
    assert (tcp.host, tcp.port) == ("0.0.0.0", 2323)
    v6 = open_p1_sink("tcp://[::1]:0", tmp_path)
    assert isinstance(v6, TcpSink)
    assert (v6.host, v6.port) == ("::1", 0)
    uart = open_p1_sink("uart:///dev/ttyAMA0", tmp_path)
    assert isinstance(uart, UartSink)
    assert uart.device == "/dev/ttyAMA0"


@pytest.mark.parametrize(
    "url",
    [
        "",
        "p1",
        "pty://",
        "tcp://host",
        "tcp://:23",
        "tcp://h:99999",
        "tcp://h:x",
        "uart://ttyAMA0",
        "uart://",
        "serial:///dev/ttyS0",
    ],
)
def test_registry_rejects_bad_endpoints(url: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="pty://LINK") as caught:
        open_p1_sink(url, tmp_path)
    assert repr(url) in str(caught.value)


def test_registry_builds_request_lines() -> None:
    assert isinstance(open_request_line("always", False), AlwaysRequested)
    assert isinstance(open_request_line("simulated", False), SimulatedRequestLine)
    gpio = open_request_line("gpio:27", True)
    assert isinstance(gpio, GpioRequestLine)
    assert (gpio.pin, gpio.active_high) == (27, True)
    with pytest.raises(ValueError, match=r"'gpio:x'.*gpio:N"):
        open_request_line("gpio:x", False)


# ------------------------------------------------------------------ line timing (P1 §5.1)

# An 800-byte telegram, about the size of a three-phase DSMR 4.2.2 one with gas.
LONG_TELEGRAM = b"/TWN5DSMR-TWIN-422\r\n\r\n" + b"1-0:1.8.1(000123.456*kWh)\r\n" * 28 + b"!ABCD\r\n"
BYTE_S_115200_8N1 = 10 / 115200  # start bit, 8 data bits, stop bit


def arrivals(fd: int, size: int, ready: threading.Event) -> list[tuple[float, int]]:
    """(monotonic time, byte count) of every read until `size` bytes came (worker thread)."""
    seen: list[tuple[float, int]] = []
    total = 0
    deadline = time.monotonic() + SAFETY_S
    ready.set()
    while total < size and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.1)[0]:
            total += len(os.read(fd, 65536))
            seen.append((time.monotonic(), total))
    return seen


@contextlib.asynccontextmanager
async def paced_pty(tmp_path: Path) -> AsyncIterator[tuple[ByteSink, Receive, int]]:
    sink = PtySink(tmp_path / "p1", pace=True)
    await sink.open()
    fd = os.open(tmp_path / "p1", os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        yield sink, lambda n: asyncio.to_thread(read_exactly, fd, n), fd
    finally:
        os.close(fd)
        await sink.close()


async def test_pty_reports_the_p1_line_speed_to_a_reader(tmp_path: Path) -> None:
    async with paced_pty(tmp_path) as (_, _, fd):
        _, _, _, _, ispeed, ospeed, _ = termios.tcgetattr(fd)
        assert (ispeed, ospeed) == (termios.B115200, termios.B115200)  # P1 §5.1


@pytest.mark.parametrize("kind", ["pty", "tcp"])
async def test_paced_sink_takes_the_wire_time_of_115200_8n1(kind: str, tmp_path: Path) -> None:
    wire_s = len(LONG_TELEGRAM) * BYTE_S_115200_8N1  # about 70 ms
    if kind == "pty":
        sink: ByteSink = PtySink(tmp_path / "p1", pace=True)
        await sink.open()
        reader_fd = os.open(tmp_path / "p1", os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
        client = None
    else:
        sink = TcpSink("127.0.0.1", 0, pace=True)
        await sink.open()
        client = socket.create_connection(("127.0.0.1", sink.port))
        await asyncio.wait_for(clients(sink, 1), SAFETY_S)
        reader_fd = client.fileno()
    try:
        ready = threading.Event()
        reading = asyncio.create_task(
            asyncio.to_thread(arrivals, reader_fd, len(LONG_TELEGRAM), ready)
        )
        await asyncio.to_thread(ready.wait, SAFETY_S)  # the reader watches before the first byte
        started = time.monotonic()
        await sink.write(LONG_TELEGRAM)
        took = time.monotonic() - started
        seen = await reading
    finally:
        if client is None:
            os.close(reader_fd)
        else:
            client.close()
        await sink.close()
    assert seen[-1][1] == len(LONG_TELEGRAM)
    # The write returns when the last byte would have left the wire, as tcdrain does on a UART.
    assert 0.97 * wire_s <= took <= 2 * wire_s  # (the upper bound allows a loaded machine)
    # The reader sees the telegram in pieces, spread over (nearly) the wire time, the last byte
    # no sooner than the wire would bring it (a reader's scheduling can only delay its reads).
    assert seen[-1][0] - started >= 0.95 * wire_s
    assert 0.75 * wire_s <= seen[-1][0] - seen[0][0] <= 2 * wire_s
    assert len(seen) >= 5


async def test_pty_request_off_keeps_a_telegram_already_written(tmp_path: Path) -> None:
    async with paced_pty(tmp_path) as (sink, receive, _):
        await sink.write(TELEGRAM)
        sink.abort_output()  # Request fell after the telegram was out: a wire cannot take back
        assert await receive(len(TELEGRAM)) == TELEGRAM
        assert line_counters(sink) == (0, 0)


def line_counters(sink: ByteSink) -> tuple[object, object]:
    status = sink.status()
    return status["telegrams_cut"], status["bytes_cut"]


async def test_pty_request_off_mid_telegram_cuts_it_and_counts_the_rest(tmp_path: Path) -> None:
    async with paced_pty(tmp_path) as (sink, _, fd):
        big = LONG_TELEGRAM * 10  # 0.7 s on the wire: cut well before its end on any machine
        writing = asyncio.create_task(sink.write(big))
        await asyncio.sleep(0.02)
        writing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writing
        sink.abort_output()
        got = read_waiting(fd)  # all that was written is in the pty by now
        assert 0 < len(got) < len(big)
        assert big.startswith(got)  # what was on the wire stays, the rest never comes
        assert line_counters(sink) == (1, len(big) - len(got))
        await sink.write(TELEGRAM)  # the next telegram goes out whole
        assert await asyncio.to_thread(read_exactly, fd, len(TELEGRAM)) == TELEGRAM
