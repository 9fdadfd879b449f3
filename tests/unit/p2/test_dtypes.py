"""EN 13757-3 data types: type I/F times, BCD and manufacturer codes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from twin.p2.dtypes import (
    bcd_decode,
    bcd_encode,
    manufacturer_decode,
    manufacturer_encode,
    type_f_decode,
    type_f_encode,
    type_i_decode,
    type_i_encode,
)
from twin.p2.errors import HeaderError, RecordError

UTC_TIMES = st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2099, 12, 31, 23, 59, 59),
    timezones=st.just(UTC),
)


def test_type_i_spec_example_16_july_2013_13_00() -> None:
    # P2 §6.2.1 footnote 4: Second=0 Minute=0 Hour=13 Day=16 Month=7 Year=13 Day of Week=2
    # (Tuesday) Week=0 Leap year=0, DST fields 0.
    data = type_i_encode(datetime(2013, 7, 16, 13, 0, tzinfo=UTC))
    assert data == bytes([0x00, 0x00, 2 << 5 | 13, (13 & 7) << 5 | 16, (13 >> 3) << 4 | 7, 0])
    assert type_i_decode(data) == datetime(2013, 7, 16, 13, 0, tzinfo=UTC)


def test_type_i_of_app_b13_is_not_read_as_type_f() -> None:
    # pyMeterBus 0.8.5 (PyPI) reads these 6 bytes as type F and gets 2024-02-11.
    data = bytes.fromhex("00000B321600")
    assert type_i_decode(data) == datetime(2009, 6, 18, 11, 0, tzinfo=UTC)
    # Reading the first four bytes as type F reproduces that misreading.
    assert type_f_decode(data[:4]) == datetime(2024, 2, 11, 0, 0, tzinfo=UTC)


def test_type_i_leap_year_and_converts_to_utc() -> None:
    amsterdam_summer = timezone(timedelta(hours=2))
    data = type_i_encode(datetime(2024, 2, 29, 1, 2, 3, tzinfo=amsterdam_summer))
    assert data[0] & 0x80  # leap year bit
    assert data[0] & 0x40 == 0  # summer-time bit never set: P2 time is UTC
    assert type_i_decode(data) == datetime(2024, 2, 28, 23, 2, 3, tzinfo=UTC)


def test_type_i_invalid_flag_and_bad_fields() -> None:
    assert type_i_decode(bytes([0, 0x80, 0, 0x21, 0x11, 0])) is None
    with pytest.raises(RecordError):
        type_i_decode(bytes([0, 0, 24, 0x21, 0x11, 0]))  # hour 24
    with pytest.raises(RecordError):
        type_i_decode(bytes([0, 0, 0, 0x3E, 0x12, 0]))  # 30 February 2009
    with pytest.raises(RecordError):
        type_i_decode(bytes(5))


def test_naive_times_are_refused() -> None:
    with pytest.raises(RecordError, match="timezone-aware"):
        type_i_encode(datetime(2020, 1, 1))


@given(UTC_TIMES)
def test_type_i_round_trip(when: datetime) -> None:
    assert type_i_decode(type_i_encode(when)) == when.replace(microsecond=0)


@given(UTC_TIMES)
def test_type_f_round_trip(when: datetime) -> None:
    assert type_f_decode(type_f_encode(when)) == when.replace(second=0, microsecond=0)


def test_type_f_v7_time() -> None:
    assert type_f_decode(bytes.fromhex("32371F15")) == datetime(2008, 5, 31, 23, 50, tzinfo=UTC)


def test_bcd() -> None:
    assert bcd_decode(bytes.fromhex("89674523")) == 23456789
    assert bcd_encode(391, 4) == bytes.fromhex("91030000")
    with pytest.raises(RecordError):
        bcd_decode(bytes([0x1A]))
    with pytest.raises(RecordError):
        bcd_encode(10**8, 4)


def test_manufacturer_codes() -> None:
    assert manufacturer_encode("NET") == bytes.fromhex("B438")
    assert manufacturer_encode("LGB") == bytes.fromhex("E230")
    assert manufacturer_decode(bytes.fromhex("9315")) == "ELS"
    with pytest.raises(HeaderError):
        manufacturer_decode(bytes.fromhex("0000"))
    with pytest.raises(HeaderError):
        manufacturer_encode("net")
