"""EN 13757-3 data types used by DSMR gas meters: BCD, manufacturer code, date/time types I and F.

P2 §6.2.1 and §6.4.3: the time stamp is UTC in type I (6 bytes, `46 6D`); the daylight-saving
fields are coded 0 and ignored. Bit layout of type I (EN 13757-3 Annex A), byte by byte::

    b0: LY SU s5..s0       leap year, summer time, second
    b1: IV SS m5..m0       invalid, sign of DST deviation, minute
    b2: w2..w0 h4..h0      day of week (1 = Monday, 0 = unspecified), hour
    b3: y2..y0 d4..d0      year bits 0-2, day
    b4: y6..y3 M3..M0      year bits 3-6, month
    b5: D1 D0 W5..W0       DST deviation in hours, week number (0 = unspecified)

Type I is *not* type F with two bytes prepended (which is how pyMeterBus 0.8.5 reads it and
gets 2024-02-11 for the P2 App. B1.3 time 2009-06-18 11:00).
"""

from __future__ import annotations

import calendar
from datetime import UTC, datetime

from twin.p2.errors import HeaderError, RecordError

TYPE_I_LEN = 6
TYPE_F_LEN = 4


def bcd_decode(data: bytes) -> int:
    """Unsigned packed BCD, least significant byte first (EN 13757-3 type A)."""
    value = 0
    for byte in reversed(data):
        high, low = byte >> 4, byte & 0x0F
        if high > 9 or low > 9:
            raise RecordError(f"byte {byte:02X} is not packed BCD")
        value = value * 100 + high * 10 + low
    return value


def bcd_encode(value: int, size: int) -> bytes:
    """`value` as `size` bytes of packed BCD, least significant byte first."""
    if not 0 <= value < 10 ** (2 * size):
        raise RecordError(f"{value} does not fit in {2 * size} BCD digits")
    out = bytearray()
    for _ in range(size):
        value, pair = divmod(value, 100)
        out.append((pair // 10) << 4 | pair % 10)
    return bytes(out)


def manufacturer_decode(data: bytes) -> str:
    """Three-letter flag code from the 2-byte MAN field (EN 13757-3 §5.6, e.g. B4 38 = NET)."""
    value = int.from_bytes(data, "little")
    letters = [(value >> shift) & 0x1F for shift in (10, 5, 0)]
    if value & 0x8000 or not all(1 <= letter <= 26 for letter in letters):
        raise HeaderError(f"manufacturer field {data.hex(' ')} is not three letters A-Z")
    return "".join(chr(64 + letter) for letter in letters)


def manufacturer_encode(code: str) -> bytes:
    """The 2-byte MAN field of a three-letter code."""
    if len(code) != 3 or not all("A" <= ch <= "Z" for ch in code):
        raise HeaderError(f"manufacturer code {code!r} is not three letters A-Z")
    value = 0
    for ch in code:
        value = value << 5 | (ord(ch) - 64)
    return value.to_bytes(2, "little")


def _split_year(b_low: int, b_high: int) -> int:
    # Year bits 0-2 are the top of the "day" byte, bits 3-6 the top of the "month" byte.
    return (b_low & 0xE0) >> 5 | (b_high & 0xF0) >> 1


def _build(fields: tuple[int, int, int, int, int, int]) -> datetime:
    """UTC datetime from (year, month, day, hour, minute, second)."""
    try:
        return datetime(*fields, tzinfo=UTC)
    except ValueError as error:
        raise RecordError(f"invalid date/time field: {error}") from None


def type_i_decode(data: bytes) -> datetime | None:
    """Decode a type I date/time as UTC (P2 §6.4.3); None when the invalid flag is set."""
    if len(data) != TYPE_I_LEN:
        raise RecordError(f"type I date/time needs 6 bytes, got {len(data)}")
    if data[1] & 0x80:
        return None
    second, minute, hour = data[0] & 0x3F, data[1] & 0x3F, data[2] & 0x1F
    day, month = data[3] & 0x1F, data[4] & 0x0F
    # Type I carries no century; P2 devices live in 2000-2099.
    return _build((2000 + _split_year(data[3], data[4]), month, day, hour, minute, second))


def type_i_encode(when: datetime) -> bytes:
    """Encode a UTC time as type I the way P2 §6.2.1 footnote 4 prescribes.

    Day of week and leap year are filled in, week = 0 ("not specified"), and the summer-time
    and DST-deviation fields are 0 because P2 time is UTC.
    """
    utc = _require_utc(when)
    year = utc.year - 2000
    if not 0 <= year <= 99:
        raise RecordError(f"year {utc.year} is outside the type I range 2000-2099")
    leap = 0x80 if calendar.isleap(utc.year) else 0
    return bytes(
        [
            leap | utc.second,
            utc.minute,
            utc.isoweekday() << 5 | utc.hour,
            (year & 0x07) << 5 | utc.day,
            (year & 0x78) << 1 | utc.month,
            0,
        ]
    )


def type_f_decode(data: bytes) -> datetime | None:
    """Decode a type F (CP32) date/time; None when the invalid flag is set.

    Layout: b0 IV . m5..m0; b1 SU H1 H0 h4..h0 (H = hundred-year); b2 y2..y0 d4..d0;
    b3 y6..y3 M3..M0. Year = 1900 + 100*H + y; H = 0 with y < 81 is read as 20xx as most
    devices never set H.
    """
    if len(data) != TYPE_F_LEN:
        raise RecordError(f"type F date/time needs 4 bytes, got {len(data)}")
    if data[0] & 0x80:
        return None
    minute, hour = data[0] & 0x3F, data[1] & 0x1F
    hundred, year = (data[1] >> 5) & 0x03, _split_year(data[2], data[3])
    full_year = 1900 + 100 * hundred + year
    if hundred == 0 and year < 81:
        full_year += 100
    return _build((full_year, data[3] & 0x0F, data[2] & 0x1F, hour, minute, 0))


def type_f_encode(when: datetime) -> bytes:
    """Encode a UTC time (whole minutes) as type F."""
    utc = _require_utc(when)
    hundred, year = divmod(utc.year - 1900, 100)
    if not 0 <= hundred <= 3:
        raise RecordError(f"year {utc.year} is outside the type F range 1900-2299")
    return bytes(
        [
            utc.minute,
            hundred << 5 | utc.hour,
            (year & 0x07) << 5 | utc.day,
            (year & 0x78) << 1 | utc.month,
        ]
    )


def _require_utc(when: datetime) -> datetime:
    if when.tzinfo is None:
        raise RecordError("P2 times must be timezone-aware (P2 §6.2.1: UTC)")
    return when.astimezone(UTC)
