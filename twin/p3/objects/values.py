"""Typed A-XDR `Data` values for the object model (Green Book §9.5 "Data"; P3 §3.4 Table 3-5).

Encoding is written here for the few tags DSMR uses (A-XDR, IEC 61334-6): the tests pin it
byte for byte against gurux-dlms, an independent implementation that is a test peer only.
Decoding of what clients send (SET values, ACTION parameters, selective-access parameters) is
a small strict parser over `twin.p3.dlms.axdr.Reader`, because the object model must check the
exact type tags (TYPE_UNMATCHED).
"""

from __future__ import annotations

import enum
import struct as _struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import cast

from twin.clock import local
from twin.p3.dlms.axdr import Reader, encode_length
from twin.p3.dlms.errors import ApduError

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
# date-time octet-string[12] with every field "not specified" (Blue Book §4.1.6.1 wildcards)
NOT_SPECIFIED = bytes.fromhex("FFFFFFFFFFFFFFFFFF8000FF")


def date_time(when: datetime) -> Data:
    """date-time as octet-string[12] in Dutch local time (Blue Book §4.1.6.1): year, month,
    day, day of week (Monday 1), hour, minute, second, hundredths, deviation (minutes, UTC =
    local + deviation, so -60 in winter), clock status (0x80 while DST is active).

    Day of week is given (DSMR clocks know it), not 0xFF "not specified".
    """
    t = local(when)
    offset = t.utcoffset()
    deviation = -int(offset.total_seconds() // 60) if offset is not None else 0
    status = CLOCK_STATUS_DST if t.dst() else 0
    raw = _DATE_TIME.pack(
        t.year, t.month, t.day, t.isoweekday(), t.hour, t.minute, t.second, 0, deviation, status
    )
    return octets(raw)


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


# ---------------------------------------------------------------- encoding


def encode(value: Data) -> bytes:
    """A-XDR of `value` (tag, then the content; Green Book §9.5 "Data")."""
    out = bytearray()
    _encode(out, value)
    return bytes(out)


def _encode(out: bytearray, value: Data) -> None:
    tag = value.tag
    out.append(tag)
    if tag in (Tag.ARRAY, Tag.STRUCTURE):
        items = value.items
        out += encode_length(len(items))
        for item in items:
            _encode(out, item)
        return
    integer = _INTEGERS.get(tag)
    if integer is not None:
        out += cast(int, value.value).to_bytes(integer[0], "big", signed=integer[1])
    elif tag is Tag.OCTET_STRING:
        raw = cast(bytes, value.value)
        out += encode_length(len(raw)) + raw
    elif tag is Tag.VISIBLE_STRING:
        ascii_text = cast(str, value.value).encode("ascii")
        out += encode_length(len(ascii_text)) + ascii_text
    elif tag is Tag.BOOLEAN:
        out.append(1 if value.value else 0)
    elif tag is Tag.BIT_STRING:
        # The number of bits, then the bits first bit first, the last octet padded with zeros.
        text = cast(str, value.value)
        padded = text + "0" * (-len(text) % 8)
        out += encode_length(len(text))
        out += int(padded, 2).to_bytes(len(padded) // 8, "big") if padded else b""
    # NULL: the tag alone.


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
