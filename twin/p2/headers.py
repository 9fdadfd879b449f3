"""Data headers of P2 §4.2: Short ID, the 12-byte long header and the 4-byte short header.

Wire layouts (all multi-byte fields low byte first)::

    long header  ID(4, BCD) MAN(2) VER DEV ACC ST CW(2)     CI 72 and 6C
    short header ACC ST CW(2)                               CI 5A

CW (EN 13757-3 configuration word): wired P2 uses only MMMM = encryption method (bits 8-11)
and NNNN = number of encrypted 16-byte blocks (bits 4-7); every other bit is 0 (P2 §4.2.6).
The block count is derived from the payload when encoding, so headers only carry the mode.
"""

from __future__ import annotations

from dataclasses import dataclass

from twin.p2.dtypes import bcd_decode, bcd_encode, manufacturer_decode, manufacturer_encode
from twin.p2.errors import HeaderError, MbusError

MODE_NONE = 0
MODE_5 = 5  # EN 13757-3 AES-CBC, IV tail = ACC x 8 (for comparison/regression only)
MODE_15 = 15  # P2 §5.1 "AES128 CBC Mode 15"
MODES = (MODE_NONE, MODE_5, MODE_15)
LONG_HEADER_LEN = 12
SHORT_HEADER_LEN = 4
DEVICE_GAS = 0x03
DSMR_42 = 0x42  # P2 §4.2.3: major version in the high nibble
DSMR_40 = 0x40


def _byte(name: str, value: int) -> None:
    if not 0 <= value <= 0xFF:
        raise HeaderError(f"{name} {value!r} is not a byte")


@dataclass(frozen=True, slots=True)
class ShortId:
    """Short equipment identifier ID|MAN|VER|DEV (P2 §4.2.2)."""

    ident: int
    manufacturer: str
    version: int = DSMR_42
    device_type: int = DEVICE_GAS

    def __post_init__(self) -> None:
        if not 0 <= self.ident <= 99_999_999:
            raise HeaderError(f"identification number {self.ident} is not 8 BCD digits")
        manufacturer_encode(self.manufacturer)
        _byte("version", self.version)
        _byte("device type", self.device_type)

    def encode(self) -> bytes:
        """ID|MAN|VER|DEV as in the long header."""
        return (
            bcd_encode(self.ident, 4)
            + manufacturer_encode(self.manufacturer)
            + bytes([self.version, self.device_type])
        )

    def iv_prefix(self, version: int | None = None) -> bytes:
        """IV bytes 0-7, MAN|ID|VER|DEV (P2 §5.2); `version` overrides VER (App. B1.3 quirk)."""
        ver = self.version if version is None else version
        _byte("IV version", ver)
        return (
            manufacturer_encode(self.manufacturer)
            + bcd_encode(self.ident, 4)
            + bytes([ver, self.device_type])
        )

    @classmethod
    def decode(cls, data: bytes) -> ShortId:
        """From the 8 bytes ID|MAN|VER|DEV."""
        try:
            ident = bcd_decode(data[0:4])
        except MbusError as error:
            raise HeaderError(f"identification number: {error}") from None
        return cls(ident, manufacturer_decode(data[4:6]), data[6], data[7])


@dataclass(frozen=True, slots=True)
class LongHeader:
    """The 12-byte long data header; `mode` is the CW encryption method."""

    device: ShortId
    access_number: int
    status: int = 0  # P2 §4.2.5: "not used and its value is set to 0"
    mode: int = MODE_NONE

    def __post_init__(self) -> None:
        _byte("access number", self.access_number)
        _byte("status", self.status)
        _check_mode(self.mode)

    def encode(self, blocks: int) -> bytes:
        """Header bytes with `blocks` encrypted blocks announced in CW."""
        return (
            self.device.encode() + bytes([self.access_number, self.status]) + cw(self.mode, blocks)
        )


@dataclass(frozen=True, slots=True)
class ShortHeader:
    """The 4-byte short data header of CI 5A."""

    access_number: int
    status: int = 0
    mode: int = MODE_NONE

    def __post_init__(self) -> None:
        _byte("access number", self.access_number)
        _byte("status", self.status)
        _check_mode(self.mode)

    def encode(self, blocks: int) -> bytes:
        """Header bytes with `blocks` encrypted blocks announced in CW."""
        return bytes([self.access_number, self.status]) + cw(self.mode, blocks)


def _check_mode(mode: int) -> None:
    if mode not in MODES:
        raise HeaderError(f"encryption method {mode} is not 0, 5 or 15 (P2 §5.1)")


def cw(mode: int, blocks: int) -> bytes:
    """Configuration word bytes: CW-0 = NNNN0000, CW-1 = 0000MMMM (P2 §4.2.6)."""
    _check_mode(mode)
    if not 0 <= blocks <= 15 or (mode == MODE_NONE) != (blocks == 0):
        raise HeaderError(f"{blocks} encrypted blocks do not fit mode {mode}")
    return bytes([blocks << 4, mode])


def decode_cw(data: bytes) -> tuple[int, int]:
    """(mode, blocks) from the two CW bytes; wired P2 allows no other bits (P2 §4.2.6)."""
    word = int.from_bytes(data, "little")
    if word & ~0x0FF0:
        raise HeaderError(f"configuration word {word:04X} sets bits other than MMMM/NNNN")
    mode, blocks = (word >> 8) & 0x0F, (word >> 4) & 0x0F
    _check_mode(mode)
    if (mode == MODE_NONE) != (blocks == 0):
        raise HeaderError(f"configuration word {word:04X}: mode {mode} with {blocks} blocks")
    return mode, blocks


def decode_long_header(data: bytes) -> tuple[LongHeader, int]:
    """The long header at the start of `data`, and the announced number of blocks."""
    if len(data) < LONG_HEADER_LEN:
        raise HeaderError(f"long header needs 12 bytes, got {len(data)}")
    mode, blocks = decode_cw(data[10:12])
    return LongHeader(ShortId.decode(data[0:8]), data[8], data[9], mode), blocks


def decode_short_header(data: bytes) -> tuple[ShortHeader, int]:
    """The short header at the start of `data`, and the announced number of blocks."""
    if len(data) < SHORT_HEADER_LEN:
        raise HeaderError(f"short header needs 4 bytes, got {len(data)}")
    mode, blocks = decode_cw(data[2:4])
    return ShortHeader(data[0], data[1], mode), blocks
