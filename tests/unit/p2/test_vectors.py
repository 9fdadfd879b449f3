"""The published frames V1-V7 decode to their documented values (sources: tests/fixtures/p2)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tests.unit.p2.vectors import DEFAULT_KEY, USER_KEY, V1, V2, V3, V4, V5, V6, V7
from twin.p2 import commands as cmd
from twin.p2.crypto import unwrap_user_key
from twin.p2.errors import DecryptionError
from twin.p2.headers import MODE_5, MODE_15, MODE_NONE, LongHeader, ShortId
from twin.p2.messages import RspUd, SndUdPlain, decode_message, encode_message
from twin.p2.records import Record
from twin.p2.values import (
    EquipmentId,
    ErrorFlags,
    KeyHalf,
    MeterConfig,
    Timestamp,
    Unknown,
    ValveStatus,
    Volume,
    equipment_id_record,
    error_flags_record,
    interpret,
    meter_config_record,
    volume_record,
)

NET_METER = ShortId(23456789, "NET", 0x42, 0x03)
B13_TIME = datetime(2009, 6, 18, 11, 0, tzinfo=UTC)
B13_VALUES = [
    ErrorFlags(0),
    EquipmentId("XXXXX110123456789"),
    Timestamp(B13_TIME, 1),
    Volume(Decimal("0.391"), 1, converted=True),
    MeterConfig(0x05),
]


def _rsp(data: bytes, **kwargs: object) -> RspUd:
    message = decode_message(data, **kwargs)  # type: ignore[arg-type]
    assert isinstance(message, RspUd)
    return message


def _values(message: RspUd) -> list[object]:
    return [interpret(item) for item in message.records if isinstance(item, Record)]


def test_v1_decodes_with_the_documented_key_and_the_40_iv() -> None:
    message = _rsp(V1, key=USER_KEY, iv_version=0x40)
    assert message.address == 1
    assert message.header == LongHeader(NET_METER, access_number=0xF6, status=0, mode=MODE_15)
    assert message.frame_counter == 1
    assert _values(message) == B13_VALUES


def test_v1_iv_quirk_header_version_iv_is_rejected_by_strict_parsing() -> None:
    # P2 §5.2 says the IV takes VER from the header (42), but App. B1.3 was encrypted with 40.
    # 2F 2F still decrypts (CBC mixes the IV into block 1 only); block 1 turns the
    # equipment-ID DIF 0D into 0F, which strict post-decryption parsing refuses.
    with pytest.raises(DecryptionError, match="manufacturer-specific"):
        decode_message(V1, key=USER_KEY)


def test_v1_is_reproduced_exactly_by_the_encoder_with_the_40_iv() -> None:
    message = _rsp(V1, key=USER_KEY, iv_version=0x40)
    assert encode_message(message, key=USER_KEY, iv_version=0x40) == V1


def test_v1_spec_conformant_encoding_uses_the_header_version() -> None:
    message = _rsp(V1, key=USER_KEY, iv_version=0x40)
    ours = encode_message(message, key=USER_KEY)
    assert ours != V1
    assert ours[19:23] == bytes.fromhex("5D89BC44")  # first block with the IV's VER 42 (P2 §5.2)
    assert _rsp(ours, key=USER_KEY) == message


def test_v1_with_a_wrong_key_fails_the_2f2f_check() -> None:
    with pytest.raises(DecryptionError, match="2F 2F"):
        decode_message(V1, key=DEFAULT_KEY, iv_version=0x40)


def test_v1_without_a_key_is_a_decryption_error() -> None:
    with pytest.raises(DecryptionError, match="no key"):
        decode_message(V1)


def test_v2_clear_frame_has_the_same_records_as_v1() -> None:
    message = _rsp(V2)
    assert message.header.mode == MODE_NONE
    assert message.frame_counter is None
    assert _values(message) == B13_VALUES


def test_v3_dsmr40_frame_carries_the_valve_block() -> None:
    message = _rsp(V3, key=USER_KEY)
    assert message.header.device.version == 0x40
    assert _values(message) == [
        *B13_VALUES[:4],
        ValveStatus(1),
        MeterConfig(0x07),
    ]
    assert encode_message(message, key=USER_KEY) == V3


def test_v4_key_change_unwraps_to_the_user_key() -> None:
    message = decode_message(V4)
    assert isinstance(message, SndUdPlain)
    assert message.address == 1
    halves = [interpret(item) for item in message.records if isinstance(item, Record)]
    assert [h.storage for h in halves if isinstance(h, KeyHalf)] == [0, 1]
    wire = b"".join(h.data for h in halves if isinstance(h, KeyHalf))
    assert unwrap_user_key(DEFAULT_KEY, wire) == USER_KEY
    assert encode_message(message) == V4


def test_v5_real_lgb_g350() -> None:
    message = _rsp(V5)
    assert message.header.device == ShortId(12082058, "LGB", 0x40, 0x03)
    assert _values(message) == [
        Volume(Decimal("10834.092"), 1, converted=True),
        Timestamp(datetime(2016, 7, 22, 8, 0, tzinfo=UTC), 1),
        EquipmentId("G0017591208205814"),
        ValveStatus(1),
        ErrorFlags(0),
        MeterConfig(0x0F),
    ]


def test_v6_oms_mode5_partial_encryption() -> None:
    message = _rsp(V6, key=USER_KEY)
    assert message.address == 0xFD
    assert message.header.mode == MODE_5
    assert message.header.device == ShortId(55667788, "QDS", 0x55, 0x08)
    assert message.records[0] == Record(0x0B, 0x6E, bytes.fromhex("341200"))
    assert message.records[1] == Record(0x42, 0x6C, bytes.fromhex("FE04"))
    assert message.records[2] == Record(0x4B, 0x6E, bytes.fromhex("563402"))
    assert len(message.tail) == 2
    assert encode_message(message, key=USER_KEY) == V6


def test_v7_oms_gas_type_f() -> None:
    message = _rsp(V7)
    assert message.header.device.manufacturer == "ELS"
    values = _values(message)
    assert values[0] == Volume(Decimal("28504.27"), 0, converted=True)
    assert values[1] == Timestamp(datetime(2008, 5, 31, 23, 50, tzinfo=UTC), 0)
    assert isinstance(values[2], Unknown)  # 02 FD 17: two-byte error flags, not P2's 01 FD 17


def test_v7_round_trips_exactly() -> None:
    assert encode_message(decode_message(V7)) == V7


@pytest.mark.parametrize("frame", [V2, V5])
def test_clear_vectors_with_fillers_round_trip_without_them(frame: bytes) -> None:
    # Idle fillers (2F) are not records, so the re-encoded frame omits them; the records,
    # header and the decoded message are unchanged.
    message = decode_message(frame)
    again = encode_message(message)
    assert again[7:19] == frame[7:19]
    assert again[19:-2] == frame[19:-2].strip(b"\x2f")
    assert decode_message(again) == message


def test_v1_built_from_scratch_with_the_40_iv() -> None:
    # App. B1.3 leaves the day of week 0 in its time stamp, so that record is given raw.
    records = (
        error_flags_record(0),
        equipment_id_record("XXXXX110123456789"),
        Record(0x46, 0x6D, bytes.fromhex("00000B321600")),
        volume_record(391),
        meter_config_record(0x05),
    )
    header = LongHeader(NET_METER, access_number=0xF6, mode=MODE_15)
    built = encode_message(RspUd(1, header, records, 1), key=USER_KEY, iv_version=0x40)
    assert built == V1


def test_v4_built_from_scratch() -> None:
    message = SndUdPlain(1, cmd.set_key_records(DEFAULT_KEY, USER_KEY))
    assert encode_message(message) == V4
