"""The simulated P1 data line: a pseudo-terminal that a reader opens like a serial port.

pyserial, dsmr_parser's SerialReader and socat open the stable symlink (e.g. state/p1), which
points at the pty slave. We keep the slave open ourselves, so the line exists with no reader
and bytes written to the master never fail; what the reader has not read yet is dropped
before the next telegram, because a real meter holds no old data.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import fcntl
import logging
import os
import termios
import tty
from pathlib import Path

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

    def __init__(self, link: Path) -> None:
        self.link = link
        self._master = -1
        self._slave = -1
        self._slave_name = ""

    @property
    def description(self) -> str:
        target = f" -> {self._slave_name}" if self._slave_name else ""
        return f"pty {self.link}{target}"

    @property
    def slave_name(self) -> str:
        return self._slave_name

    async def open(self) -> None:
        try:
            self._master, self._slave = os.openpty()
            # Raw: CR LF pass unchanged (P1 §5.12) and nothing is echoed back to the master.
            tty.setraw(self._slave)
            os.set_blocking(self._master, False)
            self._slave_name = os.ttyname(self._slave)
            make_link(self.link, self._slave_name)
        except OSError as exc:
            self._close_fds()
            raise PortError(f"cannot open the P1 pty at {self.link}: {exc}") from exc
        # P1 is output-only: whatever a reader sends (or echoes) is read and dropped, so it
        # can never fill the master's queue and stall the reader.
        asyncio.get_running_loop().add_reader(self._master, self._discard)
        log.info("P1 on %s", self.description)

    def _discard(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.read(self._master, DISCARD_CHUNK)

    async def write(self, data: bytes) -> None:
        if self._master < 0:
            raise PortError(f"{self.description} is not open")
        if queued_input(self._slave) >= len(data):
            # The reader is absent or too slow: a whole telegram is still unread. Drop it.
            termios.tcflush(self._slave, termios.TCIFLUSH)
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self._master, view) :]
            except BlockingIOError:
                await self._writable()
            except OSError as exc:
                raise PortError(f"{self.description}: write failed: {exc}") from exc

    async def _writable(self) -> None:
        loop = asyncio.get_running_loop()
        ready = loop.create_future()
        loop.add_writer(self._master, _resolve, ready)
        try:
            await ready
        finally:
            loop.remove_writer(self._master)

    def abort_output(self) -> None:
        if self._slave >= 0:
            termios.tcflush(self._slave, termios.TCIFLUSH)

    async def close(self) -> None:
        if self._master >= 0:
            asyncio.get_running_loop().remove_reader(self._master)
        if self._slave_name:
            remove_link(self.link, self._slave_name)
        self._close_fds()

    def _close_fds(self) -> None:
        for fd in (self._master, self._slave):
            if fd >= 0:
                os.close(fd)
        self._master = self._slave = -1
