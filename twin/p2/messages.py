"""P2 control and encryption layers: the messages of P2 Table 5 <-> link frames.

Every wired message of P2 §4.1 Table 5 has a dataclass here. `decode_message` rejects every
other C/CI combination with `UnsupportedMessageError` ("shall be rejected (meaning: no
further processing of the message)", P2 §4.1). The FCB bit of master frames is ignored
(P2 §3.1.2) but kept, so frames round-trip.

Encrypted messages (CW mode 15, or mode 5 for comparison) are decoded to their plaintext
records; `key` is the AES key, `device` the Short ID that supplies IV bytes 0-7 where the
header has none (CI 5A), and `iv_version` overrides the IV's VER byte (P2 App. B1.3 was
encrypted with VER 40 while its header says 42; see tests).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from twin.p2.errors import RecordError, UnsupportedMessageError
from twin.p2.frames import Ack, Frame, LongFrame, ShortFrame, decode_frame, encode_frame
from twin.p2.headers import (
    LongHeader,
    ShortHeader,
    ShortId,
    decode_long_header,
    decode_short_header,
)
from twin.p2.payload import Keying, decode_clock, decode_payload, encode_clock, encode_payload
from twin.p2.records import Item, decode_records, encode_records

C_SND_NKE = 0x40
C_REQ_UD2 = 0x5B
C_REQ_UD1 = 0x5A
C_REQ_SKE = 0x59
C_SND_UD = 0x53
C_RSP_UD = 0x08
C_RSP_SKE = 0x0B
FCB = 0x20
CI_RSP_UD = 0x72
CI_READOUT = 0x5A
CI_CLOCK = 0x6C
CI_PLAIN = 0x51


@dataclass(frozen=True, slots=True)
class SndNke:
    """Normalisation / link reset `10 40 A CS 16` (P2 §4.3.1); answered with E5."""

    address: int


@dataclass(frozen=True, slots=True)
class ReqUd2:
    """Meter data request `10 5B A CS 16` (P2 §4.3.2); `fcb` is ignored (P2 §3.1.2)."""

    address: int
    fcb: bool = False


@dataclass(frozen=True, slots=True)
class ReqUd1:
    """REQ_UD1 (Table 5: 'not used, but standard'); answered with E5."""

    address: int
    fcb: bool = False


@dataclass(frozen=True, slots=True)
class ReqSke:
    """REQ_SKE status request (Table 5: 'not used, but standard')."""

    address: int
    fcb: bool = False


@dataclass(frozen=True, slots=True)
class RspSke:
    """RSP_SKE `10 xB A CS 16` status response; `flags` are the ACD/DFC bits 4-5."""

    address: int
    flags: int = 0


@dataclass(frozen=True, slots=True)
class RspUd:
    """Meter data `68 L L 68 08 A 72 <long header> <records> CS 16` (P2 §4.3.2).

    `records` are the (decrypted) data records; `frame_counter` is the clear 04 FD 08 record
    of mode 15; `tail` holds clear records after the encrypted blocks of mode 5.
    """

    address: int
    header: LongHeader
    records: tuple[Item, ...]
    frame_counter: int | None = None
    tail: tuple[Item, ...] = ()


@dataclass(frozen=True, slots=True)
class SndUdPlain:
    """Unencrypted SND_UD CI 51: set address, set key (P2 §4.3.5)."""

    address: int
    records: tuple[Item, ...]
    fcb: bool = False


@dataclass(frozen=True, slots=True)
class SndUdReadout:
    """Control message SND_UD CI 5A with short header (P2 §4.3.3), encrypted once keyed."""

    address: int
    header: ShortHeader
    records: tuple[Item, ...]
    frame_counter: int | None = None
    fcb: bool = False


@dataclass(frozen=True, slots=True)
class SndUdClock:
    """Clock synchronisation SND_UD CI 6C, long header with the target's Short ID (§4.3.4)."""

    address: int
    header: LongHeader
    time: datetime
    frame_counter: int | None = None
    fcb: bool = False


Message = (
    Ack
    | SndNke
    | ReqUd2
    | ReqUd1
    | ReqSke
    | RspSke
    | RspUd
    | SndUdPlain
    | SndUdReadout
    | SndUdClock
)


def decode_message(
    data: bytes | bytearray | memoryview | Frame,
    *,
    key: bytes | None = None,
    device: ShortId | None = None,
    iv_version: int | None = None,
) -> Message:
    """Decode one frame (or its bytes) into a P2 message, decrypting with `key` if needed."""
    frame = data if isinstance(data, Ack | ShortFrame | LongFrame) else decode_frame(bytes(data))
    if isinstance(frame, Ack):
        return frame
    if isinstance(frame, ShortFrame):
        return _decode_short(frame)
    return _decode_long(frame, Keying(key, device, iv_version))


def _decode_short(frame: ShortFrame) -> Message:
    c, fcb = frame.c & ~FCB, bool(frame.c & FCB)
    if frame.c == C_SND_NKE:
        return SndNke(frame.a)
    if c == C_REQ_UD2:
        return ReqUd2(frame.a, fcb)
    if c == C_REQ_UD1:
        return ReqUd1(frame.a, fcb)
    if c == C_REQ_SKE:
        return ReqSke(frame.a, fcb)
    if frame.c & 0xCF == C_RSP_SKE:
        return RspSke(frame.a, frame.c & 0x30)
    raise UnsupportedMessageError(f"short frame C={frame.c:02X} is not in P2 Table 5")


def _decode_long(frame: LongFrame, keying: Keying) -> Message:
    fcb = bool(frame.c & FCB)
    if frame.c == C_RSP_UD and frame.ci == CI_RSP_UD:
        header, blocks = decode_long_header(frame.data)
        body = decode_payload(frame.data[12:], header, blocks, _for(keying, header.device))
        return RspUd(frame.a, header, body.records, body.frame_counter, body.tail)
    if frame.c & ~FCB != C_SND_UD:
        raise UnsupportedMessageError(
            f"long frame C={frame.c:02X} CI={frame.ci:02X} is not in P2 Table 5"
        )
    if frame.ci == CI_PLAIN:
        return SndUdPlain(frame.a, decode_records(frame.data), fcb)
    if frame.ci == CI_READOUT:
        short, blocks = decode_short_header(frame.data)
        body = decode_payload(frame.data[4:], short, blocks, keying)
        _no_tail(body.tail)
        return SndUdReadout(frame.a, short, body.records, body.frame_counter, fcb)
    if frame.ci == CI_CLOCK:
        header, blocks = decode_long_header(frame.data)
        when, counter = decode_clock(frame.data[12:], header, blocks, _for(keying, header.device))
        return SndUdClock(frame.a, header, when, counter, fcb)
    raise UnsupportedMessageError(f"SND_UD CI={frame.ci:02X} is not in P2 Table 5")


def _no_tail(tail: tuple[Item, ...]) -> None:
    if tail:
        raise RecordError("clear records after the encrypted part of a command")


def to_frame(
    message: Message,
    *,
    key: bytes | None = None,
    device: ShortId | None = None,
    iv_version: int | None = None,
) -> Frame:
    """The link frame of `message`, encrypting its records when its header says so."""
    if isinstance(message, Ack):
        return message
    if isinstance(message, SndNke):
        return ShortFrame(C_SND_NKE, message.address)
    if isinstance(message, ReqUd2 | ReqUd1 | ReqSke):
        base = {ReqUd2: C_REQ_UD2, ReqUd1: C_REQ_UD1, ReqSke: C_REQ_SKE}[type(message)]
        return ShortFrame(base | (FCB if message.fcb else 0), message.address)
    if isinstance(message, RspSke):
        return ShortFrame(C_RSP_SKE | (message.flags & 0x30), message.address)
    return _long_frame(message, Keying(key, device, iv_version))


def _long_frame(
    message: RspUd | SndUdPlain | SndUdReadout | SndUdClock, keying: Keying
) -> LongFrame:
    if isinstance(message, RspUd):
        header = message.header
        data = encode_payload(
            header,
            message.records,
            message.frame_counter,
            message.tail,
            _for(keying, header.device),
        )
        return LongFrame(C_RSP_UD, message.address, CI_RSP_UD, data)
    c = C_SND_UD | (FCB if message.fcb else 0)
    if isinstance(message, SndUdPlain):
        return LongFrame(c, message.address, CI_PLAIN, encode_records(message.records))
    if isinstance(message, SndUdReadout):
        data = encode_payload(message.header, message.records, message.frame_counter, (), keying)
        return LongFrame(c, message.address, CI_READOUT, data)
    clock_keying = _for(keying, message.header.device)
    data = encode_clock(message.header, message.time, message.frame_counter, clock_keying)
    return LongFrame(c, message.address, CI_CLOCK, data)


def _for(keying: Keying, device: ShortId) -> Keying:
    """IV bytes 0-7 come from the long header's Short ID when there is one (P2 §5.2)."""
    return Keying(keying.key, device, keying.iv_version)


def encode_message(
    message: Message,
    *,
    key: bytes | None = None,
    device: ShortId | None = None,
    iv_version: int | None = None,
) -> bytes:
    """The wire bytes of `message` (see `to_frame`)."""
    return encode_frame(to_frame(message, key=key, device=device, iv_version=iv_version))
