"""A-XDR values: gurux-dlms encoding pinned byte for byte, strict decoding (P3 §3.4)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.unit.p3.objects.conftest import gx_decode
from twin.p3.objects import values as v
from twin.p3.objects.values import ValueTypeError, decode, encode


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        (v.u8(200), "11c8"),
        (v.u16(4059), "120fdb"),
        (v.u32(123456), "060001e240"),
        (v.i8(-128), "0f80"),
        (v.i16(-60), "10ffc4"),
        (v.i32(-5), "05fffffffb"),
        (v.enum_(3), "1603"),
        (v.boolean(True), "0301"),
        (v.octets(b""), "0900"),  # P3 Table 3-5: empty octet-string is 09 00
        (v.array([]), "0100"),  # and array[0] is 01 00
        (v.null(), "00"),
        (v.bits("0100001000000000"), "04104200"),
        (v.scaler_unit(0, 30), "02020f00161e"),  # {0, Wh} (P3 §6.2)
        (v.scaler_unit(-3, 14), "02020ffd160e"),
    ],
)
def test_encoding_is_pinned(value: v.Data, wire: str) -> None:
    assert encode(value).hex() == wire
    assert decode(bytes.fromhex(wire)) == value


def test_date_time_has_weekday_deviation_and_dst_status() -> None:
    winter = encode(v.date_time(datetime(2026, 11, 23, 20, 0, 5, 999, tzinfo=UTC)))
    # 2026-11-23 is a Monday (1); local 21:00:05 CET, deviation -60, status 0
    assert winter.hex() == "090c07ea0b1701150005" + "00ffc400"
    summer = encode(v.date_time(datetime(2026, 7, 1, 10, 0, tzinfo=UTC)))
    # Wednesday (3); local 12:00 CEST, deviation -120, status 0x80 daylight saving active
    assert summer.hex() == "090c07ea0701030c0000" + "00ff8880"
    assert v.parse_date_time(summer[2:]) == datetime(2026, 7, 1, 10, 0, tzinfo=UTC)


def test_date_time_with_wildcards_is_not_a_time() -> None:
    assert v.parse_date_time(bytes.fromhex("FFFF03FE07020000FF8000FF")) is None
    with pytest.raises(ValueTypeError):
        v.parse_date_time(b"\x07\xea")


def test_gurux_decodes_what_we_encode() -> None:
    value = v.struct(v.u16(8), v.octets(bytes([0, 0, 1, 0, 0, 255])), v.i8(2), v.u16(0))
    assert list(gx_decode(encode(value))) == [8, bytearray(b"\x00\x00\x01\x00\x00\xff"), 2, 0]


@pytest.mark.parametrize("wire", ["11", "0901", "110000", "07", "0203110111"])
def test_decoding_is_strict(wire: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        decode(bytes.fromhex(wire))


def test_range_is_checked() -> None:
    with pytest.raises(ValueTypeError):
        v.u8(256)
    with pytest.raises(ValueTypeError):
        v.u32(-1)


def test_gurux_date_time_defect_is_still_there() -> None:
    """gurux-dlms 1.0.203 leaves day-of-week 'not specified' (0xFF) unless told otherwise;
    the reference (gurux_reference.gurux_date_time) relies on clearing it. If an upgrade
    changes this, revisit the reference."""
    from gurux_dlms import GXDateTime

    assert GXDateTime(datetime(2026, 1, 1, tzinfo=UTC)).dayOfWeek == 0xFF
