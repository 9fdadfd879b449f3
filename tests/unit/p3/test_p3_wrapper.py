from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from twin.p3.dlms.errors import FramingError, LocalP3Error
from twin.p3.dlms.wrapper import WrapperFramer, WrapperPdu

# AARQ header example: client 16 -> server 1, 3-byte APDU
PDU = WrapperPdu(source=16, destination=1, apdu=b"\x60\x01\x00")
WIRE = bytes.fromhex("0001 0010 0001 0003 600100".replace(" ", ""))


def test_round_trip() -> None:
    assert PDU.to_bytes() == WIRE
    assert WrapperPdu.from_bytes(WIRE) == PDU


def test_whole_byte_by_byte_and_trailing() -> None:
    assert WrapperFramer().feed(WIRE) == [PDU]
    framer = WrapperFramer()
    got = [pdu for byte in WIRE for pdu in framer.feed(bytes([byte]))]
    assert got == [PDU]
    framer = WrapperFramer()
    assert framer.feed(WIRE + WIRE[:5]) == [PDU]
    assert framer.buffered == 5
    assert framer.feed(WIRE[5:]) == [PDU]


def test_need_more() -> None:
    framer = WrapperFramer()
    assert framer.feed(WIRE[:7]) == []
    assert framer.feed(WIRE[7:9]) == []
    assert framer.feed(WIRE[9:]) == [PDU]


def test_empty_apdu_is_a_pdu() -> None:
    assert WrapperFramer().feed(bytes.fromhex("0001001000010000")) == [WrapperPdu(16, 1, b"")]


def test_bad_version_poisons_the_framer() -> None:
    framer = WrapperFramer()
    with pytest.raises(FramingError, match="version 2"):
        framer.feed(b"\x00\x02" + WIRE[2:])
    with pytest.raises(FramingError):
        framer.feed(WIRE)


def test_oversized_length() -> None:
    with pytest.raises(FramingError, match="exceeds"):
        WrapperFramer(max_length=2).feed(WIRE)


def test_from_bytes_requires_exactly_one_pdu() -> None:
    with pytest.raises(FramingError):
        WrapperPdu.from_bytes(WIRE + b"\x00")
    with pytest.raises(FramingError):
        WrapperPdu.from_bytes(WIRE[:-1])


def test_local_errors() -> None:
    with pytest.raises(LocalP3Error):
        WrapperPdu(0x10000, 1, b"").to_bytes()
    with pytest.raises(LocalP3Error):
        WrapperFramer(max_length=0)


@given(st.binary(max_size=64))
def test_garbage_only_raises_framing_error(data: bytes) -> None:
    framer = WrapperFramer()
    try:
        for pdu in framer.feed(data):
            assert len(pdu.apdu) <= 4096
    except FramingError:
        pass


@given(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.binary(max_size=300))
def test_round_trip_property(source: int, destination: int, apdu: bytes) -> None:
    pdu = WrapperPdu(source, destination, apdu)
    assert WrapperPdu.from_bytes(pdu.to_bytes()) == pdu
