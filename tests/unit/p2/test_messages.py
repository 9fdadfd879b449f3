"""Control and encryption layers: P2 Table 5 messages, headers, clock sync, read-out list."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.unit.p2.vectors import DEFAULT_KEY, USER_KEY, V1
from twin.p2.errors import DecryptionError, HeaderError, MbusError, UnsupportedMessageError
from twin.p2.frames import Ack, LongFrame, ShortFrame, checksum, encode_frame
from twin.p2.headers import MODE_15, MODE_NONE, LongHeader, ShortHeader, ShortId
from twin.p2.messages import (
    ReqSke,
    ReqUd1,
    ReqUd2,
    RspSke,
    RspUd,
    SndNke,
    SndUdClock,
    SndUdPlain,
    SndUdReadout,
    decode_message,
    encode_message,
)
from twin.p2.records import Record
from twin.p2.values import address_record, error_flags_record

GAS = ShortId(23456789, "NET")
NOON = datetime(2013, 7, 16, 13, 0, tzinfo=UTC)

SHORT_ALLOWED = {0x40, 0x5B, 0x7B, 0x5A, 0x7A, 0x59, 0x79, 0x0B, 0x1B, 0x2B, 0x3B}
LONG_ALLOWED = {(0x08, 0x72)} | {(c, ci) for c in (0x53, 0x73) for ci in (0x51, 0x5A, 0x6C)}


@pytest.mark.parametrize("c", range(256))
def test_table5_short_frames(c: int) -> None:
    data = encode_frame(ShortFrame(c, 1))
    if c in SHORT_ALLOWED:
        assert decode_message(data) is not None
    else:
        with pytest.raises(UnsupportedMessageError):
            decode_message(data)


def _pairs() -> set[tuple[int, int]]:
    """Every C with the Table 5 CIs, and every CI with the Table 5 Cs (and a few others)."""
    cis = {ci for _, ci in LONG_ALLOWED} | {0x52, 0x7A, 0x80}
    cs = {c for c, _ in LONG_ALLOWED} | {0x40, 0x5B, 0x18}
    return {(c, ci) for c in range(256) for ci in cis} | {(c, ci) for c in cs for ci in range(256)}


def test_table5_long_frames() -> None:
    for c, ci in sorted(_pairs()):
        frame = LongFrame(c, 1, ci)
        if (c, ci) in LONG_ALLOWED:
            try:
                decode_message(frame)
            except UnsupportedMessageError:  # pragma: no cover - the failure case
                pytest.fail(f"C={c:02X} CI={ci:02X} is in Table 5")
            except MbusError:
                pass  # allowed pair, but an empty body is malformed
        else:
            with pytest.raises(UnsupportedMessageError):
                decode_message(frame)


@pytest.mark.parametrize(
    ("message", "wire"),
    [
        (SndNke(0), "10 40 00 40 16"),
        (ReqUd2(1), "10 5B 01 5C 16"),
        (ReqUd2(1, fcb=True), "10 7B 01 7C 16"),
        (ReqUd1(1), "10 5A 01 5B 16"),
        (ReqSke(1), "10 59 01 5A 16"),
        (RspSke(1), "10 0B 01 0C 16"),
        (Ack(), "E5"),
        # set address 0 -> 1 (P2 §6.2.2)
        (SndUdPlain(0, (address_record(1),)), "68 06 06 68 53 00 51 01 7A 01 20 16"),
    ],
)
def test_simple_messages(message: object, wire: str) -> None:
    data = bytes.fromhex(wire)
    assert encode_message(message) == data  # type: ignore[arg-type]
    assert decode_message(data) == message


def test_clear_clock_sync_matches_p2_6_2_1_layout() -> None:
    message = SndUdClock(5, LongHeader(GAS, access_number=0x11), NOON)
    data = encode_message(message)
    payload = data[7 + 12 : -2]
    assert payload == bytes.fromhex("2F2F 00 00004D B0 17 00 000000 2F2F2F2F")
    assert decode_message(data) == message


def test_encrypted_clock_sync_round_trip_and_iv_from_the_header() -> None:
    header = LongHeader(GAS, access_number=0x22, mode=MODE_15)
    message = SndUdClock(5, header, NOON, frame_counter=7)
    data = encode_message(message, key=USER_KEY)
    assert data[17:19] == bytes([0x10, 0x0F])  # one block, mode 15 (P2 §6.2.1: CW 10 0F)
    assert data[-9:-2] == bytes.fromhex("04FD0807000000")
    assert decode_message(data, key=USER_KEY) == message
    with pytest.raises(DecryptionError):
        decode_message(data, key=DEFAULT_KEY)


def test_encrypted_readout_list_uses_the_given_device_for_the_iv() -> None:
    records = (Record(0x08, 0xFD, vifes=(0x0D,)), Record(0x08, 0xFD, vifes=(0x0E,)))
    message = SndUdReadout(5, ShortHeader(0x33, mode=MODE_15), records, frame_counter=9)
    data = encode_message(message, key=USER_KEY, device=GAS)
    assert decode_message(data, key=USER_KEY, device=GAS) == message
    other = ShortId(23456789, "LGB")
    with pytest.raises(DecryptionError):
        decode_message(data, key=USER_KEY, device=other)  # MAN is in IV bytes 0-1
    with pytest.raises(DecryptionError, match="Short ID"):
        decode_message(data, key=USER_KEY)


def _refit(frame: bytes, index: int, value: int) -> bytes:
    data = bytearray(frame)
    data[index] = value
    data[-2] = checksum(bytes(data[4:-2]))
    return bytes(data)


@pytest.mark.parametrize("counter", [0, 2, 3, 0xFF])
def test_tampered_clear_frame_counter_is_caught_by_strict_parsing(counter: int) -> None:
    with pytest.raises(DecryptionError):
        decode_message(_refit(V1, -6, counter), key=USER_KEY, iv_version=0x40)


@pytest.mark.parametrize(
    ("index", "value", "error"),
    [
        (17, 0x31, HeaderError),  # CW bit 0 set (hop counter): not allowed wired (P2 §4.2.6)
        (18, 0x07, HeaderError),  # mode 7 is not P2
        (17, 0x00, HeaderError),  # mode 15 with zero blocks
        (17, 0x50, DecryptionError),  # 5 blocks announced, only 3 present
        (7, 0x8A, HeaderError),  # ID not BCD
    ],
)
def test_bad_headers(index: int, value: int, error: type[Exception]) -> None:
    with pytest.raises(error):
        decode_message(_refit(V1, index, value), key=USER_KEY, iv_version=0x40)


def test_mode15_needs_exactly_the_frame_counter_in_clear() -> None:
    message = decode_message(V1, key=USER_KEY, iv_version=0x40)
    assert isinstance(message, RspUd)
    extra = bytes(V1[4:-2]) + bytes.fromhex("01FD1700")
    frame = LongFrame(extra[0], extra[1], extra[2], extra[3:])
    with pytest.raises(DecryptionError, match="exactly one"):
        decode_message(frame, key=USER_KEY, iv_version=0x40)


def test_clear_message_with_a_frame_counter_cannot_be_built() -> None:
    header = LongHeader(GAS, 1, mode=MODE_NONE)
    with pytest.raises(MbusError):
        encode_message(RspUd(1, header, (error_flags_record(0),), frame_counter=1))
    with pytest.raises(DecryptionError):
        encode_message(RspUd(1, LongHeader(GAS, 1, mode=MODE_15), (), frame_counter=1))


def test_too_many_blocks_for_the_cw() -> None:
    records = tuple(error_flags_record(0) for _ in range(61))  # 2 + 244 bytes -> 16 blocks
    header = LongHeader(GAS, 1, mode=MODE_15)
    with pytest.raises(HeaderError):
        encode_message(RspUd(1, header, records, frame_counter=1), key=USER_KEY)
