"""The simulated P1 data line: a pseudo-terminal that a reader opens like a serial port.

pyserial, dsmr_parser's SerialReader and socat open the stable symlink (e.g. state/p1), which
points at the pty slave. We keep the slave open ourselves, so the line exists with no reader
and bytes written to the master never fail. The slave reports the line speed (115200, P1 §5.1)
to a reader's tcgetattr, and with `pace` the bytes arrive at that speed (hardware/pacing.py).

Unlike a wire, a pty keeps what nobody reads; a real meter holds no old data, so a telegram's
worth of unread bytes is dropped before the next telegram when the reader has taken nothing
for `stale_after_s` (absent or stuck), and all of it when the pty is full (an overrun, as on a
wire). A reader that is only a little behind keeps its data, as with a real UART's receive
buffer: with a fast simulated clock telegrams come every few milliseconds. What a reader has
been sent is never taken back when Request falls: a wire cannot recall bytes (P1 §4.3 stops
only the rest of the telegram).
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import fcntl
import logging
import os
import termios
import time
import tty
from dataclasses import dataclass
from pathlib import Path

from hardware.pacing import P1_BAUDRATE, PacedLine
from hardware.ports import PortError

log = logging.getLogger(__name__)

DISCARD_CHUNK = 4096


def make_link(link: Path, target: str) -> None:
    """Point `link` at `target`, replacing an old symlink atomically (never a real file)."""
    if os.path.lexists(link) and not link.is_symlink():
        raise PortError(f"{link} exists and is not a symlink; refusing to replace it")
    link.parent.mkdir(parents=True, exist_ok=True)
    temporary = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    os.symlink(target, temporary)
    os.replace(temporary, link)


def remove_link(link: Path, target: str) -> None:
    """Remove `link` if it still points at `target` (another twin may have taken it over)."""
    with contextlib.suppress(OSError):
        if os.readlink(link) == target:
            link.unlink()


@dataclass(frozen=True, slots=True)
class LinkedPty:
    """A raw pseudo-terminal: our master end, the slave we keep open, and its device name."""

    master: int
    slave: int
    name: str


def open_linked_pty(link: Path, baudrate: int | None = None) -> LinkedPty:
    """A raw pty (bytes pass unchanged, nothing is echoed to the master), the master
    non-blocking, reachable through the symlink `link`, reporting `baudrate` (if given) to
    a reader's tcgetattr. Closes what it opened on failure."""
    master, slave = os.openpty()
    try:
        tty.setraw(slave)
        if baudrate is not None:
            set_speed(slave, baudrate)
        os.set_blocking(master, False)
        name = os.ttyname(slave)
        make_link(link, name)
    except BaseException:
        os.close(master)
        os.close(slave)
        raise
    return LinkedPty(master, slave, name)


def set_speed(fd: int, baudrate: int) -> None:
    """Set the terminal's input and output speed (a pty only reports it: no bits are timed)."""
    speed = getattr(termios, f"B{baudrate}", None)
    if speed is None:
        raise PortError(f"{baudrate} baud is not a terminal speed")
    attributes = termios.tcgetattr(fd)
    attributes[4] = attributes[5] = speed
    termios.tcsetattr(fd, termios.TCSANOW, attributes)


def close_linked_pty(link: Path, master: int, slave: int, name: str) -> None:
    """Undo `open_linked_pty` (any of the parts may already be gone: -1 or "")."""
    if name:
        remove_link(link, name)
    for fd in (master, slave):
        if fd >= 0:
            os.close(fd)


def queued_input(fd: int) -> int:
    """Bytes waiting in the terminal's input queue, unread by the reader (FIONREAD)."""
    count = array.array("i", [0])
    fcntl.ioctl(fd, termios.FIONREAD, count)
    return count[0]


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class PtySink:
    """A pty whose slave is reachable through the symlink `link`."""

    def __init__(
        self,
        link: Path,
        stale_after_s: float = 1.0,
        *,
        baudrate: int = P1_BAUDRATE,
        pace: bool = False,
    ) -> None:
        self.link = link
        self.stale_after_s = stale_after_s
        self.line = PacedLine(baudrate, paced=pace)
        self._master = -1
        self._slave = -1
        self._slave_name = ""
        self.stale_drops = 0  # times unread data was dropped before a telegram
        self.overruns = 0  # times the pty was full and everything unread was dropped
        self._expected = 0  # bytes unread right after our last write, if nobody read since
        self._progress_at = time.monotonic()  # when the reader was last seen taking data

    @property
    def description(self) -> str:
        target = f" -> {self._slave_name}" if self._slave_name else ""
        return f"pty {self.link}{target}"

    def status(self) -> dict[str, object]:
        return {**self.line.status(), "stale_drops": self.stale_drops, "overruns": self.overruns}

    @property
    def slave_name(self) -> str:
        return self._slave_name

    async def open(self) -> None:
        try:
            # Raw: CR LF pass unchanged (P1 §5.12) and nothing is echoed back to the master.
            pty = open_linked_pty(self.link, self.line.baudrate)
        except (OSError, termios.error) as exc:
            raise PortError(f"cannot open the P1 pty at {self.link}: {exc}") from exc
        self._master, self._slave, self._slave_name = pty.master, pty.slave, pty.name
        # P1 is output-only: whatever a reader sends (or echoes) is read and dropped, so it
        # can never fill the master's queue and stall the reader.
        asyncio.get_running_loop().add_reader(self._master, self._discard)
        self._expected, self._progress_at = 0, time.monotonic()
        log.info("P1 on %s", self.description)

    def _discard(self) -> None:
        try:
            os.read(self._master, DISCARD_CHUNK)
        except BlockingIOError:
            return
        except OSError as exc:
            # Not expected while we hold the slave; stop watching rather than spin on it.
            log.warning("%s: reading the master failed: %s", self.description, exc)
            asyncio.get_running_loop().remove_reader(self._master)

    async def write(self, data: bytes) -> None:
        if self._master < 0:
            raise PortError(f"{self.description} is not open")
        queued = self._queued()
        if self._stale(queued, len(data)):
            self._drop_unread()
            self.stale_drops += 1
            log.debug("P1 reader on %s is absent or behind: unread data dropped", self.link)
            queued = 0
        try:
            await self.line.write(data, self._send)
        finally:
            self._note_reader(queued + len(data))

    def _queued(self) -> int:
        try:
            return queued_input(self._slave)
        except OSError as exc:
            raise PortError(f"{self.description}: {exc}") from exc

    def _note_reader(self, unread_if_idle: int) -> None:
        """After a write: remember what is unread, and whether the reader took some meanwhile."""
        if self._slave < 0:
            return
        self._expected = self._queued()
        if self._expected < unread_if_idle:
            self._progress_at = time.monotonic()

    async def _send(self, view: memoryview) -> None:
        while view:
            try:
                view = view[os.write(self._master, view) :]
            except BlockingIOError:
                # The pty is full (FIONREAD does not see all of it): overrun, as on a wire.
                self.overruns += 1
                self._drop_unread()
                await self._writable()
            except OSError as exc:
                raise PortError(f"{self.description}: write failed: {exc}") from exc

    def _stale(self, queued: int, size: int) -> bool:
        """True if a telegram's worth is unread and the reader has taken nothing for a while."""
        now = time.monotonic()
        if queued < self._expected or queued == 0:
            self._progress_at = now
        return queued >= size and now - self._progress_at >= self.stale_after_s

    async def _writable(self) -> None:
        loop = asyncio.get_running_loop()
        ready = loop.create_future()
        loop.add_writer(self._master, _resolve, ready)
        try:
            await ready
        finally:
            loop.remove_writer(self._master)

    def _drop_unread(self) -> None:
        """Drop what the reader has not taken: it is stale or lost to an overrun."""
        try:
            termios.tcflush(self._slave, termios.TCIFLUSH)
        except termios.error as exc:
            log.warning("%s: cannot drop unread data: %s", self.description, exc)
        self._expected = 0

    def abort_output(self) -> None:
        # Nothing waits in user space: a cancelled write stops handing over bytes (and counts
        # the rest as cut); what the reader was already sent stays in its queue (P1 §4.3).
        return

    async def close(self) -> None:
        if self._master >= 0:
            asyncio.get_running_loop().remove_reader(self._master)
        close_linked_pty(self.link, self._master, self._slave, self._slave_name)
        self._master = self._slave = -1
