"""Typed A-XDR `Data` values for the object model (Green Book §9.5 "Data"; P3 §3.4 Table 3-5).

Encoding goes through gurux-dlms 1.0.203 (`_GXCommon.setData`), the one place the untyped
library is touched for values; decoding of what clients send (SET values, ACTION parameters,
selective-access parameters) is a small strict parser over `twin.p3.axdr.Reader`, because the
object model must check the exact type tags (TYPE_UNMATCHED) that gurux's decoder erases.

Gurux is wrong in one place here: `GXDateTime` leaves day-of-week at 0xFF ("not specified");
DSMR clocks give it, so `date_time` clears it (Blue Book §4.1.6.1 date-time).
"""

from __future__ import annotations

import enum
import struct as _struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import cast

from gurux_dlms import GXByteBuffer, GXDateTime  # type: ignore[import-untyped]
from gurux_dlms.enums import DataType  # type: ignore[import-untyped]
from gurux_dlms.internal._GXCommon import _GXCommon  # type: ignore[import-untyped]

from twin.clock import local
from twin.p3.axdr import Reader
from twin.p3.errors import ApduError

DATE_TIME_LENGTH = 12


class Tag(enum.IntEnum):
    """Data CHOICE tags used by DSMR 4.2.2 (P3 Table 3-5 plus the Blue Book complex types)."""

    NULL = 0
    ARRAY = 1
    STRUCTURE = 2
    BOOLEAN = 3
    BIT_STRING = 4
    DOUBLE_LONG = 5
    DOUBLE_LONG_UNSIGNED = 6
    OCTET_STRING = 9
    VISIBLE_STRING = 10
    INTEGER = 15
    LONG = 16
    UNSIGNED = 17
    LONG_UNSIGNED = 18
    LONG64 = 20
    LONG64_UNSIGNED = 21
    ENUM = 22


# Fixed-size integer tags: (size in bytes, signed).
_INTEGERS: dict[Tag, tuple[int, bool]] = {
    Tag.DOUBLE_LONG: (4, True),
    Tag.DOUBLE_LONG_UNSIGNED: (4, False),
    Tag.INTEGER: (1, True),
    Tag.LONG: (2, True),
    Tag.UNSIGNED: (1, False),
    Tag.LONG_UNSIGNED: (2, False),
    Tag.LONG64: (8, True),
    Tag.LONG64_UNSIGNED: (8, False),
    Tag.ENUM: (1, False),
}
_GX_TYPE: dict[Tag, int] = {
    Tag.NULL: DataType.NONE,
    Tag.BOOLEAN: DataType.BOOLEAN,
    Tag.BIT_STRING: DataType.BITSTRING,
    Tag.DOUBLE_LONG: DataType.INT32,
    Tag.DOUBLE_LONG_UNSIGNED: DataType.UINT32,
    Tag.OCTET_STRING: DataType.OCTET_STRING,
    Tag.VISIBLE_STRING: DataType.STRING,
    Tag.INTEGER: DataType.INT8,
    Tag.LONG: DataType.INT16,
    Tag.UNSIGNED: DataType.UINT8,
    Tag.LONG_UNSIGNED: DataType.UINT16,
    Tag.LONG64: DataType.INT64,
    Tag.LONG64_UNSIGNED: DataType.UINT64,
    Tag.ENUM: DataType.ENUM,
}

Scalar = int | bool | bytes | str | None


class ValueTypeError(ApduError):
    """A value does not have the type or range an attribute needs (-> TYPE_UNMATCHED)."""


@dataclass(frozen=True, slots=True)
class Data:
    """One A-XDR Data value: a tag and a Python value (items for array/structure)."""

    tag: Tag
    value: Scalar | tuple[Data, ...] = None

    @property
    def items(self) -> tuple[Data, ...]:
        if self.tag not in (Tag.ARRAY, Tag.STRUCTURE):
            raise ValueTypeError(f"{self.tag.name} is not a container")
        return cast(tuple[Data, ...], self.value)

    def expect(self, tag: Tag) -> Data:
        """This value if it has exactly `tag` (an attribute's declared type), else raise."""
        if self.tag is not tag:
            raise ValueTypeError(f"{self.tag.name} where {tag.name} is required")
        return self

    def integer(self) -> int:
        if self.tag not in _INTEGERS:
            raise ValueTypeError(f"{self.tag.name} is not an integer")
        return cast(int, self.value)

    def octets(self) -> bytes:
        if self.tag is not Tag.OCTET_STRING:
            raise ValueTypeError(f"{self.tag.name} is not an octet-string")
        return cast(bytes, self.value)

    def boolean(self) -> bool:
        if self.tag is not Tag.BOOLEAN:
            raise ValueTypeError(f"{self.tag.name} is not a boolean")
        return bool(self.value)


# ---------------------------------------------------------------- constructors


def null() -> Data:
    return Data(Tag.NULL)


def u8(value: int) -> Data:
    return _int(Tag.UNSIGNED, value)


def u16(value: int) -> Data:
    return _int(Tag.LONG_UNSIGNED, value)


def u32(value: int) -> Data:
    return _int(Tag.DOUBLE_LONG_UNSIGNED, value)


def i8(value: int) -> Data:
    return _int(Tag.INTEGER, value)


def i16(value: int) -> Data:
    return _int(Tag.LONG, value)


def i32(value: int) -> Data:
    return _int(Tag.DOUBLE_LONG, value)


def enum_(value: int) -> Data:
    return _int(Tag.ENUM, value)


def boolean(value: bool) -> Data:
    return Data(Tag.BOOLEAN, bool(value))


def octets(value: bytes | str) -> Data:
    return Data(Tag.OCTET_STRING, value.encode("ascii") if isinstance(value, str) else value)


def bits(value: str) -> Data:
    """A bit-string given as '0'/'1' characters, first bit first."""
    if value.strip("01"):
        raise ValueTypeError(f"bit-string {value!r}")
    return Data(Tag.BIT_STRING, value)


def struct(*items: Data) -> Data:
    return Data(Tag.STRUCTURE, tuple(items))


def array(items: list[Data] | tuple[Data, ...]) -> Data:
    return Data(Tag.ARRAY, tuple(items))


def obis(code: bytes) -> Data:
    return octets(code)


_DATE_TIME = _struct.Struct(">HBBBBBBBhB")
CLOCK_STATUS_DST = 0x80  # Blue Book clock_status bit 7: daylight saving active


def date_time(when: datetime) -> Data:
    """date-time as octet-string[12] in Dutch local time (Blue Book §4.1.6.1): year, month,
    day, day of week (Monday 1), hour, minute, second, hundredths, deviation (minutes, UTC =
    local + deviation, so -60 in winter), clock status (0x80 while DST is active).

    Written directly: this is the hot path of every profile row (gurux's setDateTime costs
    about 0.3 ms a value); `gurux_date_time` below is the reference it is tested against.
    """
    t = local(when)
    offset = t.utcoffset()
    deviation = -int(offset.total_seconds() // 60) if offset is not None else 0
    status = CLOCK_STATUS_DST if t.dst() else 0
    raw = _DATE_TIME.pack(
        t.year, t.month, t.day, t.isoweekday(), t.hour, t.minute, t.second, 0, deviation, status
    )
    return octets(raw)


def gurux_date_time(when: datetime) -> Data:
    """The same value encoded by gurux (the reference for `date_time`)."""
    gx = GXDateTime(local(when).replace(microsecond=0))
    gx.dayOfWeek = 0  # gurux default 0xFF ("not specified"); 0 makes it write the weekday
    buffer = GXByteBuffer()
    _GXCommon.setDateTime(None, buffer, gx)
    return octets(bytes(buffer.array()))


def scaler_unit(scaler: int, unit: int) -> Data:
    """scal_unit_type ::= structure {scaler integer, unit enum} (Blue Book §4.3.2)."""
    return struct(i8(scaler), enum_(unit))


def _int(tag: Tag, value: int) -> Data:
    size, signed = _INTEGERS[tag]
    low = -(1 << (8 * size - 1)) if signed else 0
    high = (1 << (8 * size - (1 if signed else 0))) - 1
    if not low <= value <= high:
        raise ValueTypeError(f"{value} out of range for {tag.name}")
    return Data(tag, int(value))


# ---------------------------------------------------------------- encoding (gurux)


def encode(value: Data) -> bytes:
    """A-XDR of `value`. Containers, integers and octet-strings (all of a profile row) are
    written directly: gurux's byte-at-a-time buffer made the 960-row load profile cost over
    100 ms. Every other type goes through gurux; `gurux_encode` is the reference the direct
    path is tested against."""
    out = bytearray()
    _encode_fast(out, value)
    return bytes(out)


def gurux_encode(value: Data) -> bytes:
    buffer = GXByteBuffer()
    _encode_into(buffer, value)
    return bytes(buffer.array())


def _length(count: int) -> bytes:
    """A-XDR length: one byte below 0x80, else 0x8N followed by N big-endian bytes."""
    if count < 0x80:
        return bytes((count,))
    size = (count.bit_length() + 7) // 8
    return bytes((0x80 | size,)) + count.to_bytes(size, "big")


def _encode_fast(out: bytearray, value: Data) -> None:
    tag = value.tag
    if tag in (Tag.ARRAY, Tag.STRUCTURE):
        items = value.items
        out.append(tag)
        out += _length(len(items))
        for item in items:
            _encode_fast(out, item)
        return
    integer = _INTEGERS.get(tag)
    if integer is not None:
        out.append(tag)
        out += cast(int, value.value).to_bytes(integer[0], "big", signed=integer[1])
        return
    if tag is Tag.OCTET_STRING:
        raw = cast(bytes, value.value)
        out.append(tag)
        out += _length(len(raw))
        out += raw
        return
    out += gurux_encode(value)


def _encode_into(buffer: object, value: Data) -> None:
    if value.tag in (Tag.ARRAY, Tag.STRUCTURE):
        buffer.setUInt8(int(value.tag))  # type: ignore[attr-defined]
        _GXCommon.setObjectCount(len(value.items), buffer)
        for item in value.items:
            _encode_into(buffer, item)
        return
    raw = value.value
    if value.tag in (Tag.LONG, Tag.DOUBLE_LONG, Tag.LONG64) and isinstance(raw, int) and raw < 0:
        size = _INTEGERS[value.tag][0]
        raw = raw + (1 << (8 * size))  # gurux writes these with its unsigned setters
    _GXCommon.setData(None, buffer, _GX_TYPE[value.tag], raw)


# ---------------------------------------------------------------- decoding (strict)


def decode(data: bytes) -> Data:
    """Parse exactly one Data value; trailing bytes or an unknown tag are an error."""
    reader = Reader(data)
    value = _read(reader, 0)
    if reader.remaining:
        raise ValueTypeError(f"{reader.remaining} bytes after the value")
    return value


def _read(reader: Reader, depth: int) -> Data:
    if depth > 8:
        raise ValueTypeError("value nested too deep")
    try:
        tag = Tag(reader.u8())
    except ValueError as exc:
        raise ValueTypeError(f"unsupported data tag: {exc}") from exc
    if tag in (Tag.ARRAY, Tag.STRUCTURE):
        count = reader.length()
        return Data(tag, tuple(_read(reader, depth + 1) for _ in range(count)))
    if tag in _INTEGERS:
        size, signed = _INTEGERS[tag]
        return Data(tag, int.from_bytes(reader.take(size), "big", signed=signed))
    if tag is Tag.NULL:
        return Data(tag)
    if tag is Tag.BOOLEAN:
        return Data(tag, reader.u8() != 0)
    if tag is Tag.BIT_STRING:
        count = reader.length()
        raw = reader.take((count + 7) // 8)
        return Data(tag, "".join(format(b, "08b") for b in raw)[:count])
    text = reader.take(reader.length())
    return Data(tag, text if tag is Tag.OCTET_STRING else text.decode("ascii", "replace"))


def parse_date_time(raw: bytes) -> datetime | None:
    """A date-time octet-string[12] as an aware UTC datetime; None if not fully specified
    (wildcards). Deviation is minutes UTC minus local (Blue Book §4.1.6.1)."""
    if len(raw) != DATE_TIME_LENGTH:
        raise ValueTypeError(f"date-time is {DATE_TIME_LENGTH} bytes, got {len(raw)}")
    year = int.from_bytes(raw[0:2], "big")
    month, day, _dow, hour, minute, second = raw[2:8]
    deviation = int.from_bytes(raw[9:11], "big", signed=True)
    if year == 0xFFFF or 0xFF in (month, day, hour, minute, second) or deviation == -0x8000:
        return None
    if month > 12 or day > 31:
        return None
    try:
        local = datetime(year, month, day, hour, minute, second)
        zone = timezone(timedelta(minutes=-deviation))
        return local.replace(tzinfo=zone).astimezone(UTC)
    except (ValueError, OverflowError) as exc:  # no such day, or outside years 1..9999 in UTC
        raise ValueTypeError(f"date-time {raw.hex()}: {exc}") from exc
