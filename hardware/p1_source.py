"""The reading end of a P1 line, for `dsmr-twin p1 record`: a serial port or a TCP dongle.

P1 §5.1: 115200 baud, 8N1. A twin's pty (its symlink) opens like a serial port. Reads block
for at most `timeout` seconds and return what arrived (possibly nothing), so a recorder can
stop on time; they run in the recorder's thread, never on an event loop.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Protocol

import serial

from hardware.pacing import P1_BAUDRATE
from hardware.ports import PortError
from hardware.registry import tcp_endpoint

SOURCE_FORMS = "serial:///dev/DEVICE, pty://PATH (a twin's P1 link) or tcp://HOST:PORT"
READ_CHUNK = 4096


class ByteSource(Protocol):
    """An input-only serial line: a P1 data line as a reader sees it."""

    @property
    def description(self) -> str: ...

    def read(self, timeout: float) -> bytes:
        """What arrived within `timeout` seconds (b"" if nothing); PortError if the line is gone."""
        ...

    def close(self) -> None: ...


class SerialSource:
    """A serial device (a P1 cable, or a pty) read at `baudrate` 8N1."""

    def __init__(self, device: str, baudrate: int = P1_BAUDRATE) -> None:
        self.device = device
        try:
            self._port = serial.Serial(
                device, baudrate, bytesize=8, parity="N", stopbits=1, timeout=0.1
            )
        except (OSError, ValueError) as exc:  # SerialException is an OSError
            raise PortError(f"cannot open {device}: {exc}") from exc

    @property
    def description(self) -> str:
        return f"serial {self.device} {self._port.baudrate} 8N1"

    def read(self, timeout: float) -> bytes:
        self._port.timeout = timeout
        try:
            first = bytes(self._port.read(1))
            return first + bytes(self._port.read(self._port.in_waiting)) if first else b""
        except (OSError, serial.SerialException) as exc:
            raise PortError(f"{self.description}: {exc}") from exc

    def close(self) -> None:
        self._port.close()


class TcpSource:
    """A network P1 dongle (or a twin's `tcp://` P1 port, or ser2net)."""

    def __init__(self, host: str, port: int, connect_timeout: float = 10.0) -> None:
        self.address = f"{host}:{port}"
        try:
            self._socket = socket.create_connection((host, port), timeout=connect_timeout)
        except OSError as exc:
            raise PortError(f"cannot connect to tcp {self.address}: {exc}") from exc

    @property
    def description(self) -> str:
        return f"tcp {self.address}"

    def read(self, timeout: float) -> bytes:
        self._socket.settimeout(timeout)
        try:
            data = self._socket.recv(READ_CHUNK)
        except TimeoutError:
            return b""
        except OSError as exc:
            raise PortError(f"{self.description}: {exc}") from exc
        if not data:
            raise PortError(f"{self.description}: the dongle closed the connection")
        return data

    def close(self) -> None:
        self._socket.close()


def open_p1_source(url: str, baudrate: int = P1_BAUDRATE) -> ByteSource:
    """The P1 line named by `url`, opened for reading."""
    scheme, _, rest = url.partition("://")
    if scheme in ("serial", "pty") and rest:
        return SerialSource(str(Path(rest)), baudrate)
    if scheme == "tcp":
        return TcpSource(*tcp_endpoint(url, SOURCE_FORMS))
    raise ValueError(f"bad P1 source {url!r}: expected {SOURCE_FORMS}")
