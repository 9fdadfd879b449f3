"""The part of a long frame after the data header: clear or encrypted records (P2 §5).

Encrypted layout (P2 §5.1-5.2)::

    mode 15: <N x 16 bytes AES-CBC of 2F 2F records 2F..> 04 FD 08 <FC>   (FC record clear)
    mode 5:  <N x 16 bytes AES-CBC of 2F 2F records 2F..> [clear records]

After a successful 2F 2F check the plaintext records are parsed strictly and any structural
error is reported as a `DecryptionError`: a wrong IV (frame counter, ID, VER) still passes
the 2F 2F check, because CBC only mixes the IV into the first block, but it garbles the
first records (P2 §5.2: the IV is MAN, ID, VER, DEV and the frame counter).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from twin.p2 import crypto
from twin.p2.dtypes import type_i_decode, type_i_encode
from twin.p2.errors import DecryptionError, HeaderError, RecordError
from twin.p2.headers import MODE_5, MODE_15, MODE_NONE, LongHeader, ShortHeader, ShortId
from twin.p2.records import Item, Record, decode_records, encode_records
from twin.p2.values import FrameCounter, frame_counter_record, interpret

Header = LongHeader | ShortHeader
TC_SET_TIME = 0x00  # P2 §6.2.1 "TC 00h Set time"
MAX_BLOCKS = 15  # NNNN has four bits


@dataclass(frozen=True, slots=True)
class Keying:
    """What encryption needs besides the header: key, IV source and the VER override."""

    key: bytes | None = field(repr=False)  # a key: out of logs
    device: ShortId | None
    iv_version: int | None = None


@dataclass(frozen=True, slots=True)
class Payload:
    """Decoded records, the clear frame counter (mode 15) and clear tail records (mode 5)."""

    records: tuple[Item, ...]
    frame_counter: int | None
    tail: tuple[Item, ...]


def _split_counter(tail: tuple[Item, ...]) -> int:
    # P2 §5.2: the FC record is "inserted between the (encrypted) filler bytes and CS";
    # nothing else may be in clear.
    if len(tail) == 1 and isinstance(tail[0], Record):
        value = interpret(tail[0])
        if isinstance(value, FrameCounter):
            return value.value
    raise DecryptionError("mode 15 needs exactly one clear 04 FD 08 frame counter record")


def _decrypt(
    data: bytes,
    header: Header,
    blocks: int,
    keying: Keying,
) -> tuple[bytes, int | None, tuple[Item, ...]]:
    size = blocks * crypto.BLOCK
    if len(data) < size:
        raise DecryptionError(f"CW announces {blocks} blocks but only {len(data)} bytes follow")
    tail = decode_records(data[size:])
    if keying.key is None:
        raise DecryptionError("message is encrypted but no key is set")
    if keying.device is None:
        raise DecryptionError("no Short ID to build the IV from")
    prefix = keying.device.iv_prefix(keying.iv_version)
    counter: int | None = None
    if header.mode == MODE_15:
        counter, tail = _split_counter(tail), ()
        iv = crypto.mode15_iv(prefix, counter)
    else:
        iv = crypto.mode5_iv(prefix, header.access_number)
    return crypto.cbc_decrypt(keying.key, iv, data[:size]), counter, tail


def decode_payload(
    data: bytes,
    header: Header,
    blocks: int,
    keying: Keying,
) -> Payload:
    """Records after the header; decrypted and strictly checked when the CW says so."""
    if header.mode == MODE_NONE:
        return Payload(decode_records(data), None, ())
    plain, counter, tail = _decrypt(data, header, blocks, keying)
    try:
        records = decode_records(plain[2:], strict=True)
        for record in records:
            if isinstance(record, Record):
                interpret(record)  # known records must also carry valid values
    except RecordError as error:
        raise DecryptionError(f"bad records after decryption (wrong key or IV?): {error}") from None
    return Payload(records, counter, tail)


def _encrypt(
    header: Header,
    plain: bytes,
    frame_counter: int | None,
    keying: Keying,
) -> tuple[bytes, bytes]:
    """(header bytes, ciphertext + clear FC record) for an encrypted header."""
    key, device = keying.key, keying.device
    if key is None or device is None:
        raise DecryptionError("encrypting needs a key and the device's Short ID")
    padded = crypto.pad(plain)
    blocks = len(padded) // crypto.BLOCK
    if blocks > MAX_BLOCKS:
        raise HeaderError(f"{blocks} encrypted blocks do not fit the CW (max 15)")
    prefix = device.iv_prefix(keying.iv_version)
    if header.mode == MODE_15:
        if frame_counter is None:
            raise DecryptionError("mode 15 needs a frame counter")
        iv = crypto.mode15_iv(prefix, frame_counter)
        clear = encode_records((frame_counter_record(frame_counter),))
    else:
        if frame_counter is not None:
            raise DecryptionError("mode 5 carries no frame counter")
        iv, clear = crypto.mode5_iv(prefix, header.access_number), b""
    return header.encode(blocks), crypto.cbc_encrypt(key, iv, padded) + clear


def encode_payload(
    header: Header,
    records: tuple[Item, ...],
    frame_counter: int | None,
    tail: tuple[Item, ...],
    keying: Keying,
) -> bytes:
    """Header and payload bytes; encrypts when `header.mode` is 15 or 5."""
    if tail and header.mode != MODE_5:
        raise RecordError("clear tail records exist only in mode 5")
    if header.mode == MODE_NONE:
        if frame_counter is not None:
            raise RecordError("unencrypted messages carry no frame counter (P2 §5.2)")
        return header.encode(0) + encode_records(records)
    head, body = _encrypt(header, encode_records(records), frame_counter, keying)
    return head + body + encode_records(tail)


def encode_clock(
    header: LongHeader,
    when: datetime,
    frame_counter: int | None,
    keying: Keying,
) -> bytes:
    """CI 6C payload: 2F 2F | 00 | type I UTC | 00 00 00 | 2F 2F 2F 2F (P2 §6.2.1)."""
    plain = bytes([TC_SET_TIME]) + type_i_encode(when) + bytes(3)
    if header.mode == MODE_NONE:
        if frame_counter is not None:
            raise RecordError("unencrypted messages carry no frame counter (P2 §5.2)")
        return header.encode(0) + crypto.pad(plain)
    head, body = _encrypt(header, plain, frame_counter, keying)
    return head + body


def decode_clock(
    data: bytes, header: LongHeader, blocks: int, keying: Keying
) -> tuple[datetime, int | None]:
    """The time and frame counter of a CI 6C payload (IV from the header's Short ID)."""
    counter: int | None = None
    plain = data
    if header.mode != MODE_NONE:
        plain, counter, tail = _decrypt(data, header, blocks, keying)
        if tail:
            raise RecordError("clear records after an encrypted clock message")
    body = plain.lstrip(bytes([crypto.FILLER]))
    if len(body) < 10 or body[0] != TC_SET_TIME:
        raise RecordError("clock message is not 'TC 00, type I time, 3 reserved bytes'")
    if body[10:].strip(bytes([crypto.FILLER])):
        raise RecordError("clock message has data after the reserved bytes")
    when = type_i_decode(body[1:7])
    if when is None:
        raise RecordError("clock message carries an invalid time")
    return when, counter
