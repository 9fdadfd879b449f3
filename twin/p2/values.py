"""The meaning of the records a DSMR gas meter sends or receives (P2 §6.2-§6.5).

`interpret()` maps a raw `Record` to one typed value; anything DSMR does not define becomes
`Unknown` (kept, never an error, so a new record type from a real meter is skipped safely).
The `*_record()` builders make the records the twin sends.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import IntFlag

from twin.p2.dtypes import (
    bcd_decode,
    bcd_encode,
    type_f_decode,
    type_i_decode,
    type_i_encode,
)
from twin.p2.errors import RecordError
from twin.p2.records import Record

VIF_EXT_FD = 0xFD
VIFE_FRAME_COUNTER = 0x08  # P2 §5.2 "VIF FDh, 08h"
VIFE_ERROR_FLAGS = 0x17  # P2 §6.3.3
VIFE_KEY = 0x19  # P2 §6.5.1 "Reserved -> AES 128 KEY exchange"
VIFE_VALVE = 0x1A  # DSMR 4.0 valve status "89 40 FD 1A" (P2 §9)
VIFE_METER_CONFIG = 0x67  # P2 §6.4.8
VIF_DATE_TIME = 0x6D  # type F (4 bytes) or type I (6 bytes)
VIF_EQUIPMENT_ID = 0x78  # P2 §6.4.1 ("fabrication no" in EN 13757-3)
VIF_ADDRESS = 0x7A  # P2 §6.2.2
VIFE_UNCORRECTED = 0x3A  # P2 App. A: 0C 93 3A = volume not temperature converted
EQUIPMENT_ID_LEN = 17
_BCD_CODINGS = frozenset({0x9, 0xA, 0xB, 0xC, 0xE})
_INT_CODINGS = frozenset({0x1, 0x2, 0x3, 0x4, 0x6, 0x7})


@dataclass(frozen=True, slots=True)
class Volume:
    """Gas volume in m3 (P2 §6.4.4); VIF 13 = 0.001 m3 (G4-G6), 14 = 0.01 m3 (G10-G25)."""

    m3: Decimal
    storage: int
    converted: bool


@dataclass(frozen=True, slots=True)
class Timestamp:
    """Date/time record; `when` is None when the device flags it invalid."""

    when: datetime | None
    storage: int


@dataclass(frozen=True, slots=True)
class EquipmentId:
    """The 17-character equipment identifier (P2 §6.4.1)."""

    text: str


@dataclass(frozen=True, slots=True)
class ErrorFlags:
    """Status byte of record 01 FD 17 (P2 §6.3.3)."""

    flags: int


@dataclass(frozen=True, slots=True)
class MeterConfig:
    """Meter configuration mask of record 01 FD 67 (P2 §6.4.8)."""

    flags: int


@dataclass(frozen=True, slots=True)
class FrameCounter:
    """The clear frame counter record 04 FD 08 (P2 §5.2)."""

    value: int


@dataclass(frozen=True, slots=True)
class ValveStatus:
    """DSMR 4.0 valve state 89 40 FD 1A (0 closed, 1 open, 2 released); P2 §9."""

    state: int


@dataclass(frozen=True, slots=True)
class NewAddress:
    """Set-address record 01 7A (P2 §6.2.2)."""

    address: int


@dataclass(frozen=True, slots=True)
class KeyHalf:
    """One of the two 07/47 FD 19 key-exchange records (P2 §6.5.1), 8 bytes as on the wire."""

    data: bytes
    storage: int


@dataclass(frozen=True, slots=True)
class Unknown:
    """A record DSMR does not define; skipped by the twin."""

    record: Record


Value = (
    Volume
    | Timestamp
    | EquipmentId
    | ErrorFlags
    | MeterConfig
    | FrameCounter
    | ValveStatus
    | NewAddress
    | KeyHalf
    | Unknown
)


def number(record: Record) -> int:
    """The record's data as an unsigned integer (type C) or BCD (type A)."""
    if record.coding in _BCD_CODINGS:
        return bcd_decode(record.data)
    if record.coding in _INT_CODINGS:
        return int.from_bytes(record.data, "little")
    raise RecordError(f"DIF {record.dif:02X} does not hold an integer")


def interpret(record: Record) -> Value:
    """The DSMR meaning of `record`, or `Unknown`."""
    if record.vif == VIF_EXT_FD and record.vifes:
        return _interpret_fd(record)
    if record.vif & 0x78 == 0x10 and record.function == 0 and _is_number(record):
        return _volume(record)
    if record.vif == VIF_DATE_TIME and len(record.data) in (4, 6) and record.coding in (4, 6):
        decode = type_i_decode if record.coding == 6 else type_f_decode
        return Timestamp(decode(record.data), record.storage)
    if record.vif == VIF_EQUIPMENT_ID and record.coding == 0x0D:
        if len(record.value_bytes) != EQUIPMENT_ID_LEN:
            raise RecordError("equipment identifier is not 17 characters (P2 §6.4.1)")
        return EquipmentId(_ascii_reversed(record.value_bytes))
    if record.vif == VIF_ADDRESS and record.dif == 0x01:
        return NewAddress(record.data[0])
    return Unknown(record)


def _is_number(record: Record) -> bool:
    return record.coding in _BCD_CODINGS or record.coding in _INT_CODINGS


def _volume(record: Record) -> Volume:
    # VIF E001 0nnn: volume in 10^(nnn-6) m3 (EN 13757-3 Table 10).
    exponent = (record.vif & 0x07) - 6
    uncorrected = VIFE_UNCORRECTED in record.vifes
    return Volume(Decimal(number(record)).scaleb(exponent), record.storage, not uncorrected)


def _interpret_fd(record: Record) -> Value:
    if len(record.vifes) != 1:
        return Unknown(record)
    vife = record.vifes[0]
    if vife == VIFE_FRAME_COUNTER and record.coding == 0x4:
        return FrameCounter(number(record))
    if vife == VIFE_KEY and record.coding == 0x7 and record.function == 0:
        return KeyHalf(record.data, record.storage)
    maker = _FD_BYTES.get(vife)
    if maker is not None and record.coding in (0x1, 0x9) and not record.difes[1:]:
        return maker(record.data[0])
    return Unknown(record)


# One-byte FD records; the valve block is DIF 89 (BCD) + DIFE 40, the others DIF 01.
_FD_BYTES: dict[int, Callable[[int], Value]] = {
    VIFE_ERROR_FLAGS: ErrorFlags,
    VIFE_METER_CONFIG: MeterConfig,
    VIFE_VALVE: ValveStatus,
}


def _ascii_reversed(data: bytes) -> str:
    # P2 §6.4.1 example: 'ABCD1234567891234' is sent last character first.
    try:
        return data[::-1].decode("ascii")
    except UnicodeDecodeError:
        raise RecordError("equipment identifier is not ASCII") from None


# --- builders -------------------------------------------------------------------------------


def volume_record(litres: int, *, large_meter: bool = False, storage: int = 1) -> Record:
    """Converted volume `4C 13` (0.001 m3) or, for G10-G25, `4C 14` (0.01 m3); P2 §6.4.4.

    `litres` is the register in dm3 (= m3/1000); a G10-G25 meter shows 10 l steps, so the
    value is floored to whole 10 l there. Like the meter's index the 8 BCD digits roll over.
    """
    if litres < 0:
        raise RecordError("a volume register is never negative")
    vif, value = (0x14, litres // 10) if large_meter else (0x13, litres)
    return Record(_storage_dif(0x0C, storage), vif, bcd_encode(value % 10**8, 4))


def timestamp_record(when: datetime, *, storage: int = 1) -> Record:
    """Type I UTC time stamp `46 6D` (P2 §6.4.3), storage bit set for the hourly value."""
    return Record(_storage_dif(0x06, storage), VIF_DATE_TIME, type_i_encode(when))


def equipment_id_record(text: str) -> Record:
    """`0D 78 11` + the 17 characters last first (P2 §6.4.1)."""
    if len(text) != EQUIPMENT_ID_LEN or not text.isascii():
        raise RecordError(f"equipment identifier {text!r} is not 17 ASCII characters")
    return Record(0x0D, VIF_EQUIPMENT_ID, bytes([EQUIPMENT_ID_LEN]) + text.encode("ascii")[::-1])


def _fd_byte(vife: int, value: int) -> Record:
    if not 0 <= value <= 0xFF:
        raise RecordError(f"{value} is not a byte")
    return Record(0x01, VIF_EXT_FD, bytes([value]), vifes=(vife,))


def error_flags_record(flags: int) -> Record:
    """`01 FD 17 xx` status byte (P2 §6.3.3)."""
    return _fd_byte(VIFE_ERROR_FLAGS, flags)


def meter_config_record(flags: int) -> Record:
    """`01 FD 67 xx` meter configuration (P2 §6.4.8)."""
    return _fd_byte(VIFE_METER_CONFIG, flags)


def valve_status_record(state: int) -> Record:
    """DSMR 4.0 valve status `89 40 FD 1A xx` (DIF 89: 2-digit BCD + DIFE 40: subunit 1),
    as the 4.0.7 example and the Landis+Gyr G350 send it; P2 §9 says a 4.2 E meter drops it."""
    if not 0 <= state <= 2:
        raise RecordError(f"valve state {state} is not 0, 1 or 2")
    return Record(0x89, VIF_EXT_FD, bytes([state]), (0x40,), (VIFE_VALVE,))


def frame_counter_record(value: int) -> Record:
    """`04 FD 08` + 32-bit counter, least significant byte first (P2 §5.2)."""
    if not 0 <= value <= 0xFFFFFFFF:
        raise RecordError(f"frame counter {value} is not a 32-bit value")
    return Record(0x04, VIF_EXT_FD, value.to_bytes(4, "little"), vifes=(VIFE_FRAME_COUNTER,))


def address_record(address: int) -> Record:
    """Set primary address `01 7A xx` (P2 §6.2.2)."""
    if not 1 <= address <= 250:
        raise RecordError(f"primary address {address} is outside 1..250 (P2 §3.1.3)")
    return Record(0x01, VIF_ADDRESS, bytes([address]))


def key_records(wire: bytes) -> tuple[Record, Record]:
    """The `07 FD 19` and `47 FD 19` records carrying a 16-byte wrapped key in wire order."""
    if len(wire) != 16:
        raise RecordError("a wrapped key has 16 bytes")
    low = Record(0x07, VIF_EXT_FD, wire[:8], vifes=(VIFE_KEY,))
    return low, Record(0x47, VIF_EXT_FD, wire[8:], vifes=(VIFE_KEY,))


def _storage_dif(coding: int, storage: int) -> int:
    if storage not in (0, 1):
        raise RecordError("the twin only uses storage numbers 0 and 1")
    return storage << 6 | coding


class Status(IntFlag):
    """Bits of the 01 FD 17 status byte (P2 §6.3.3)."""

    APPLICATION_ERROR_1 = 0x01
    APPLICATION_ERROR_2 = 0x02
    POWER_LOW = 0x04  # battery replacement expected (permanent)
    PERMANENT_ERROR = 0x08
    TEMPORARY_ERROR = 0x10
    CLOCK_SYNC_ERROR = 0x20  # clock was off by more than 60 s (P2 §6.2.1)
    FRAUD_ATTEMPT = 0x40
    VALVE_ALARM_40 = 0x80  # DSMR 4.0 only; "reserved ... value = 0" in 4.2 (P2 §9)


PERMANENT = Status.POWER_LOW | Status.PERMANENT_ERROR  # P2 §6.2.3: not cleared by the E meter


class Config(IntFlag):
    """Bits of the 01 FD 67 meter configuration mask (P2 §6.4.8)."""

    CLOCK = 0x01
    VALVE = 0x02
    CONVERTED_VOLUME = 0x04
    VALVE_RELEASE = 0x08
    VALVE_OPEN_DIRECT = 0x10
