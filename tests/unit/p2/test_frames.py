"""Link layer (P2 §3.1): frame encoding, strict decoding and the stream framer."""

from __future__ import annotations

import pytest

from tests.unit.p2.vectors import ALL, V1, V4
from twin.p2.errors import ChecksumError, FramingError
from twin.p2.frames import (
    Ack,
    Framer,
    LongFrame,
    Rejected,
    ShortFrame,
    decode_frame,
    encode_frame,
    parse_frame,
)

# Short frames 10 C A CS 16 with CS = C + A (P2 §3.1, EN 13757-2): SND_NKE, REQ_UD2
SHORT_CASES = [
    (ShortFrame(0x40, 0x00), "10 40 00 40 16"),
    (ShortFrame(0x40, 0x01), "10 40 01 41 16"),
    (ShortFrame(0x5B, 0x01), "10 5B 01 5C 16"),
    (ShortFrame(0x7B, 0x01), "10 7B 01 7C 16"),
    (LongFrame(0x53, 0x00, 0x51, bytes.fromhex("017A01")), "68 06 06 68 53 00 51 01 7A 01 20 16"),
    (LongFrame(0x53, 0x05, 0x51), "68 03 03 68 53 05 51 A9 16"),
    (Ack(), "E5"),
]


@pytest.mark.parametrize(("frame", "wire"), SHORT_CASES)
def test_encode_and_decode_known_frames(frame: Ack | ShortFrame | LongFrame, wire: str) -> None:
    data = bytes.fromhex(wire)
    assert encode_frame(frame) == data
    assert decode_frame(data) == frame


def test_v1_long_frame_fields() -> None:
    frame = decode_frame(V1)
    assert isinstance(frame, LongFrame)
    assert (frame.c, frame.a, frame.ci, len(frame.data)) == (0x08, 0x01, 0x72, 0x46 - 3)


@pytest.mark.parametrize(
    ("wire", "error", "match"),
    [
        ("10 40 01 42 16", ChecksumError, "checksum"),
        ("10 40 01 41 17", FramingError, "stop"),
        ("68 03 04 68 53 05 51 A9 16", FramingError, "differ"),
        ("68 03 03 69 53 05 51 A9 16", FramingError, "second start"),
        ("68 02 02 68 53 05 58 16", FramingError, "shorter"),
        ("68 03 03 68 53 05 51 AA 16", ChecksumError, "checksum"),
        ("68 03 03 68 53 05 51 A9 00", FramingError, "stop"),
        ("00", FramingError, "start byte"),
        ("10 40 01", FramingError, "incomplete"),
        ("E5 E5", FramingError, "trailing"),
    ],
)
def test_bad_frames_are_rejected(wire: str, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        decode_frame(bytes.fromhex(wire))


def test_printed_v1_length_3f_is_rejected() -> None:
    # P2 App. B1.3 prints L = 3F although the checksum covers the FC record (L = 46).
    printed = bytes([0x68, 0x3F, 0x3F]) + V1[3:]
    with pytest.raises(FramingError):
        decode_frame(printed)


def test_printed_v4_checksum_4e_is_rejected() -> None:
    with pytest.raises(ChecksumError):
        decode_frame(V4[:-2] + bytes([0x4E, 0x16]))


def test_data_longer_than_l_255_cannot_be_built() -> None:
    LongFrame(0x08, 1, 0x72, bytes(252))
    with pytest.raises(FramingError):
        LongFrame(0x08, 1, 0x72, bytes(253))


@pytest.mark.parametrize("name", sorted(ALL))
def test_framer_whole_byte_by_byte_and_with_trailing_garbage(name: str) -> None:
    wire = ALL[name]
    expected = decode_frame(wire)
    assert Framer().feed(wire) == [expected]
    framer = Framer()
    out = [item for byte in wire for item in framer.feed(bytes([byte]))]
    assert out == [expected]
    assert framer.pending == b""
    framer = Framer()
    assert framer.feed(wire + b"\x68\x10") == [expected]
    assert framer.pending == b"\x68\x10"  # a possible frame start is held back
    assert parse_frame(wire + b"\x00\xff") == (expected, len(wire))


def test_framer_skips_noise_and_resyncs_inside_a_corrupted_frame() -> None:
    framer = Framer()
    noise = b"\x00\xff"
    out = framer.feed(noise + bytes.fromhex("10 40 01 42 16") + bytes.fromhex("10 5B 01 5C 16"))
    assert isinstance(out[0], Rejected)
    assert out[0].data.startswith(noise)
    assert out[-1] == ShortFrame(0x5B, 0x01)
    assert framer.pending == b""


def test_framer_reset_drops_a_partial_frame() -> None:
    framer = Framer()
    assert framer.feed(V1[:10]) == []
    framer.reset()
    assert framer.feed(bytes.fromhex("E5")) == [Ack()]
