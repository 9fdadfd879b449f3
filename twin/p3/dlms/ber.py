"""Minimal BER TLV codec for the ACSE APDUs (ISO 8650 / Green Book §9.4.2).

Only what AARQ/AARE/RLRQ/RLRE need: single-byte tags, definite lengths in short or long form
(X.690 §8.1.3). Indefinite lengths are not used by DLMS and are rejected.
"""

from __future__ import annotations

from twin.p3.dlms.axdr import Reader, encode_length
from twin.p3.dlms.errors import ApduError


def encode(tag: int, value: bytes) -> bytes:
    # A definite BER length (X.690 §8.1.3) is written like an A-XDR length: one codec for both.
    return bytes([tag]) + encode_length(len(value)) + value


def decode_one(data: bytes, pos: int = 0) -> tuple[int, bytes, int]:
    """Return `(tag, value, next_pos)` of the TLV at `pos`."""
    if pos + 2 > len(data):
        raise ApduError("truncated BER header")
    reader = Reader(data, pos)
    tag = reader.u8()
    length = reader.length()  # the indefinite form 0x80 has no length bytes: refused
    if length > reader.remaining:
        raise ApduError(f"BER value of tag 0x{tag:02X} truncated")
    return tag, reader.take(length), reader.pos


def decode_all(data: bytes) -> list[tuple[int, bytes]]:
    """Split `data` into consecutive TLVs; the whole buffer must be consumed."""
    out: list[tuple[int, bytes]] = []
    pos = 0
    while pos < len(data):
        tag, value, pos = decode_one(data, pos)
        out.append((tag, value))
    return out


def decode_outer(data: bytes, tag: int) -> list[tuple[int, bytes]]:
    """Decode an APDU `[tag] { TLV... }` that must fill `data` exactly."""
    got, value, end = decode_one(data)
    if got != tag:
        raise ApduError(f"expected BER tag 0x{tag:02X}, got 0x{got:02X}")
    if end != len(data):
        raise ApduError(f"{len(data) - end} bytes after the APDU")
    return decode_all(value)
