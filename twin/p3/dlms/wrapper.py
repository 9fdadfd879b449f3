"""COSEM wrapper framing over TCP (IEC 62056-47 §5, DSMR P3 §3: port 4059).

Each APDU travels in one wrapper PDU::

    +---------+-------------+------------------+--------+-----------------+
    | version | source wPort| destination wPort| length |  APDU (length)  |
    | 0x0001  |   2 bytes   |     2 bytes      | 2 bytes|                 |
    +---------+-------------+------------------+--------+-----------------+

All header fields are big-endian unsigned 16-bit integers. TCP is a byte stream, so the
framer buffers input and returns whole PDUs.

Contract of `WrapperFramer.feed(data)`: it appends `data` to the buffer and returns every
complete PDU now available, in order (an empty list means "need more"). A header with a
version other than 1 or a length above `max_length` raises `FramingError`; there is no way to
re-synchronise a TCP byte stream after that, so the caller closes the connection. After an
error the framer stays poisoned (every later `feed` raises again).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from twin.p3.dlms.errors import FramingError, LocalP3Error

WRAPPER_VERSION = 1
HEADER_SIZE = 8
# The 16-bit length field allows 65535; the framer's own default cap is far lower because
# DSMR fixes server_max_receive_pdu_size at 1024 (P3 §2.1.3) and a ciphered APDU adds only
# a few dozen bytes. Anything larger is treated as a broken or hostile stream.
DEFAULT_MAX_LENGTH = 4096


@dataclass(frozen=True, slots=True)
class WrapperPdu:
    """One wrapper PDU: addressing plus the APDU it carries."""

    source: int
    destination: int
    apdu: bytes

    VERSION: ClassVar[int] = WRAPPER_VERSION

    def to_bytes(self) -> bytes:
        for name, value in (("source", self.source), ("destination", self.destination)):
            if not 0 <= value <= 0xFFFF:
                raise LocalP3Error(f"wPort {name}={value} does not fit 16 bits")
        if len(self.apdu) > 0xFFFF:
            raise LocalP3Error(f"APDU of {len(self.apdu)} bytes does not fit one wrapper PDU")
        header = (
            self.VERSION.to_bytes(2, "big")
            + self.source.to_bytes(2, "big")
            + self.destination.to_bytes(2, "big")
            + len(self.apdu).to_bytes(2, "big")
        )
        return header + self.apdu

    @classmethod
    def from_bytes(cls, data: bytes) -> WrapperPdu:
        """Decode exactly one PDU (no more, no less)."""
        framer = WrapperFramer(max_length=0xFFFF)
        pdus = framer.feed(data)
        if len(pdus) != 1 or framer.buffered:
            raise FramingError("bytes are not exactly one wrapper PDU")
        return pdus[0]


class WrapperFramer:
    """Incremental wrapper de-framer; see the module docstring for the contract."""

    def __init__(self, max_length: int = DEFAULT_MAX_LENGTH) -> None:
        if not 0 < max_length <= 0xFFFF:
            raise LocalP3Error(f"max_length {max_length} outside 1..65535")
        self._max_length = max_length
        self._buffer = bytearray()
        self._error: FramingError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as a PDU."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[WrapperPdu]:
        if self._error is not None:
            raise self._error
        self._buffer += data
        out: list[WrapperPdu] = []
        while (pdu := self._next()) is not None:
            out.append(pdu)
        return out

    def _next(self) -> WrapperPdu | None:
        if len(self._buffer) < HEADER_SIZE:
            return None
        version = int.from_bytes(self._buffer[0:2], "big")
        length = int.from_bytes(self._buffer[6:8], "big")
        if version != WRAPPER_VERSION:
            self._fail(f"wrapper version {version}, expected {WRAPPER_VERSION}")
        if length > self._max_length:
            self._fail(f"wrapper length {length} exceeds limit {self._max_length}")
        end = HEADER_SIZE + length
        if len(self._buffer) < end:
            return None
        pdu = WrapperPdu(
            source=int.from_bytes(self._buffer[2:4], "big"),
            destination=int.from_bytes(self._buffer[4:6], "big"),
            apdu=bytes(self._buffer[HEADER_SIZE:end]),
        )
        del self._buffer[:end]
        return pdu

    def _fail(self, message: str) -> None:
        self._error = FramingError(message)
        raise self._error
