"""The M-Bus on a pseudo-terminal: this end owns the pty, the other opens it like a UART.

The other end is a `dsmr-twin gasmeter` process or the libmbus `mbus-serial-*` tools, opening
the symlink to the pty's slave side (an `MbusLink`, see `hardware.mbus_link`).
"""

from __future__ import annotations

import logging
import termios
from pathlib import Path

from hardware.mbus_fd import drain, read_some, write_all
from hardware.ports import PortError
from hardware.pty_link import close_linked_pty, open_linked_pty

log = logging.getLogger(__name__)


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
        await write_all(self._fd(), data, self.description)

    async def receive(self, timeout_s: float | None) -> bytes:
        return await read_some(self._fd(), timeout_s, self.description)

    def discard_input(self) -> None:
        if self._master >= 0:
            drain(self._master)

    async def close(self) -> None:
        close_linked_pty(self.link, self._master, self._slave, self._slave_name)
        self._master = self._slave = -1
