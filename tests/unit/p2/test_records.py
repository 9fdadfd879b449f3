"""Data records (EN 13757-3) and their DSMR meaning (P2 §6)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from twin.p2.errors import RecordError
from twin.p2.records import ManufacturerData, Record, decode_records, encode_record, encode_records
from twin.p2.values import (
    EquipmentId,
    ErrorFlags,
    FrameCounter,
    KeyHalf,
    MeterConfig,
    NewAddress,
    Timestamp,
    Unknown,
    ValveStatus,
    Volume,
    address_record,
    equipment_id_record,
    error_flags_record,
    frame_counter_record,
    interpret,
    key_records,
    meter_config_record,
    timestamp_record,
    valve_status_record,
    volume_record,
)


def _one(wire: str) -> Record:
    (item,) = decode_records(bytes.fromhex(wire))
    assert isinstance(item, Record)
    return item


@pytest.mark.parametrize(
    ("record", "wire", "value"),
    [
        (volume_record(31412743), "4C 13 43 27 41 31", Volume(Decimal("31412.743"), 1, True)),
        # P2 §6.4.4 G10-G25: 0.01 m3 steps, e.g. 314127.43 m3
        (
            volume_record(314127439, large_meter=True),
            "4C 14 43 27 41 31",
            Volume(Decimal("314127.43"), 1, True),
        ),
        (error_flags_record(0x24), "01 FD 17 24", ErrorFlags(0x24)),
        (meter_config_record(0x05), "01 FD 67 05", MeterConfig(0x05)),
        (frame_counter_record(0x01020304), "04 FD 08 04 03 02 01", FrameCounter(0x01020304)),
        (valve_status_record(1), "89 40 FD 1A 01", ValveStatus(1)),
        (address_record(7), "01 7A 07", NewAddress(7)),
        (
            equipment_id_record("ABCD1234567891234"),
            "0D 78 11 34 33 32 31 39 38 37 36 35 34 33 32 31 44 43 42 41",  # P2 §6.4.1
            EquipmentId("ABCD1234567891234"),
        ),
        (
            timestamp_record(datetime(2009, 6, 18, 11, tzinfo=UTC)),
            # P2 §6.2.1 fn 4: day of week is filled in (Thursday = 4 -> 8B); App. B1.3 left it 0
            "46 6D 00 00 8B 32 16 00",
            Timestamp(datetime(2009, 6, 18, 11, tzinfo=UTC), 1),
        ),
    ],
)
def test_builders_wire_and_meaning(record: Record, wire: str, value: object) -> None:
    data = bytes.fromhex(wire)
    assert encode_record(record) == data
    assert decode_records(data) == (record,)
    assert interpret(record) == value


def test_unconverted_volume_and_binary_volume() -> None:
    # P2 App. A: 0C 93 3A = not temperature converted
    record = _one("0C 93 3A 78 56 34 12")
    assert interpret(record) == Volume(Decimal("12345.678"), 0, converted=False)
    record = _one("04 13 E8 03 00 00")
    assert interpret(record) == Volume(Decimal("1.000"), 0, converted=True)


def test_key_records_split_the_wire_bytes() -> None:
    wire = bytes(range(16))
    low, high = key_records(wire)
    assert encode_records((low, high)) == bytes.fromhex(
        "07 FD 19 0001020304050607 47 FD 19 08090A0B0C0D0E0F"
    )
    assert interpret(low) == KeyHalf(wire[:8], 0)
    assert interpret(high) == KeyHalf(wire[8:], 1)


def test_fillers_are_skipped_and_unknown_records_kept() -> None:
    data = bytes.fromhex("2F 2F 84 10 FB 82 01 11 22 33 44 2F 01 FD 17 00 2F")
    first, second = decode_records(data)
    assert isinstance(first, Record)
    assert first.difes == (0x10,)
    assert first.vifes == (0x82, 0x01)
    assert first.tariff == 1
    assert interpret(first) == Unknown(first)
    assert isinstance(second, Record)
    assert interpret(second) == ErrorFlags(0)


def test_storage_tariff_subunit_from_difes() -> None:
    record = _one("C4 C1 51 13 00 00 00 00")
    assert isinstance(record, Record)
    assert (record.storage, record.tariff, record.subunit) == (1 | 1 << 1 | 1 << 5, 1 << 2, 1 | 2)


def test_manufacturer_data_takes_the_rest() -> None:
    items = decode_records(bytes.fromhex("01 FD 17 00 1F AA BB"))
    assert items[1] == ManufacturerData(bytes.fromhex("AABB"), more_records_follow=True)
    with pytest.raises(RecordError):
        decode_records(bytes.fromhex("0F AA"), strict=True)


@pytest.mark.parametrize(
    "wire",
    [
        "0C 13 01 02 03",  # truncated data
        "8C",  # DIFE missing
        "0C",  # VIF missing
        "0C 93",  # VIFE missing
        "0D 78",  # LVAR missing
        "0D 78 05 41",  # LVAR longer than data
        "0D 78 F5",  # unsupported LVAR
        "3F 13",  # reserved special DIF
        "7F",  # global readout request
        "01 7C 01 41 00",  # plain-text VIF
        "84" + " 80" * 11 + " 13 00 00 00 00",  # more than 10 DIFEs
    ],
)
def test_malformed_records_raise_record_error(wire: str) -> None:
    with pytest.raises(RecordError):
        decode_records(bytes.fromhex(wire))


@pytest.mark.parametrize(
    "record",
    [
        Record(0x0C, 0x13, b"\x00"),  # data size does not match DIF
        Record(0x8C, 0x13, bytes(4)),  # extension bit without DIFE
        Record(0x0C, 0x93, bytes(4)),  # extension bit without VIFE
        Record(0x0C, 0x13, bytes(4), difes=(0x01,)),  # DIFE without extension bit
        Record(0x1FF, 0x13),
    ],
)
def test_inconsistent_records_cannot_be_encoded(record: Record) -> None:
    with pytest.raises(RecordError):
        encode_record(record)


def test_builder_limits() -> None:
    for build in (
        lambda: address_record(0),
        lambda: address_record(251),
        lambda: volume_record(-1),
        lambda: equipment_id_record("short"),
        lambda: frame_counter_record(-1),
        lambda: valve_status_record(3),
        lambda: key_records(bytes(15)),
        lambda: error_flags_record(256),
        lambda: volume_record(1, storage=2),
    ):
        with pytest.raises(RecordError):
            build()


def test_bad_values_in_known_records() -> None:
    record = _one("0D 78 02 FF FF")
    with pytest.raises(RecordError):
        interpret(record)
    record = _one("0C 13 0A 00 00 00")
    with pytest.raises(RecordError):
        interpret(record)
