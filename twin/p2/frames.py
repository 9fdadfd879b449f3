"""M-Bus link layer: FT1.2 frames of EN 60870-5-1/-2 as used on wired P2 (P2 §3.1).

Frame formats::

    single char  E5
    short frame  10 C A CS 16               CS = (C + A) mod 256
    long frame   68 L L 68 C A CI data CS 16 L = len(C A CI data), CS = sum(C..data) mod 256

A *control frame* is a long frame without data (L = 3); it is represented as a `LongFrame`
with empty `data`. This module knows nothing about what C, A or CI mean; see `messages`.
"""

from __future__ import annotations

from dataclasses import dataclass

from twin.p2.errors import ChecksumError, FramingError

ACK_BYTE = 0xE5
SHORT_START = 0x10
LONG_START = 0x68
STOP = 0x16
# P2 §3.1.1: "The maximum length of a single telegram is 255 bytes" -> L <= 255, so at most
# 252 bytes of data after C, A and CI.
MAX_L = 255
SHORT_LEN = 5
LONG_OVERHEAD = 6  # 68 L L 68 ... CS 16


@dataclass(frozen=True, slots=True)
class Ack:
    """The single control character E5 (positive acknowledge)."""


@dataclass(frozen=True, slots=True)
class ShortFrame:
    """`10 C A CS 16`: SND_NKE, REQ_UD2 and the other field-less requests."""

    c: int
    a: int

    def __post_init__(self) -> None:
        _check_byte("C", self.c)
        _check_byte("A", self.a)


@dataclass(frozen=True, slots=True)
class LongFrame:
    """`68 L L 68 C A CI data CS 16`; with empty `data` this is a control frame."""

    c: int
    a: int
    ci: int
    data: bytes = b""

    def __post_init__(self) -> None:
        _check_byte("C", self.c)
        _check_byte("A", self.a)
        _check_byte("CI", self.ci)
        if len(self.data) + 3 > MAX_L:
            raise FramingError(f"long frame data of {len(self.data)} bytes exceeds L=255")


Frame = Ack | ShortFrame | LongFrame


def _check_byte(name: str, value: int) -> None:
    if not 0 <= value <= 0xFF:
        raise FramingError(f"{name} field {value!r} is not a byte")


def checksum(data: bytes) -> int:
    """FT1.2 checksum: arithmetic sum modulo 256 (EN 60870-5-1, P2 §4.3.1 'CS-0')."""
    return sum(data) & 0xFF


def encode_frame(frame: Frame) -> bytes:
    """The wire bytes of `frame`."""
    if isinstance(frame, Ack):
        return bytes([ACK_BYTE])
    if isinstance(frame, ShortFrame):
        return bytes([SHORT_START, frame.c, frame.a, checksum(bytes([frame.c, frame.a])), STOP])
    body = bytes([frame.c, frame.a, frame.ci]) + frame.data
    length = len(body)
    return bytes([LONG_START, length, length, LONG_START]) + body + bytes([checksum(body), STOP])


def parse_frame(buffer: bytes) -> tuple[Frame, int] | None:
    """Parse one frame at the start of `buffer`.

    Returns the frame and the number of bytes it used, or None when `buffer` is a valid but
    incomplete prefix. Bytes after the frame are left alone. Raises `FramingError` (or its
    subclass `ChecksumError`) when the prefix can never become a valid frame.
    """
    if not buffer:
        return None
    start = buffer[0]
    if start == ACK_BYTE:
        return Ack(), 1
    if start == SHORT_START:
        return _parse_short(buffer)
    if start == LONG_START:
        return _parse_long(buffer)
    raise FramingError(f"unexpected start byte {start:02X}")


def _parse_short(buffer: bytes) -> tuple[Frame, int] | None:
    if len(buffer) < SHORT_LEN:
        return None
    _, c, a, cs, stop = buffer[:SHORT_LEN]
    if stop != STOP:
        raise FramingError(f"short frame stop byte {stop:02X}, expected 16")
    if checksum(bytes([c, a])) != cs:
        raise ChecksumError(
            f"short frame checksum {cs:02X}, expected {checksum(bytes([c, a])):02X}"
        )
    return ShortFrame(c, a), SHORT_LEN


def _parse_long(buffer: bytes) -> tuple[Frame, int] | None:
    if len(buffer) < 4:
        return None
    length, length2, start2 = buffer[1], buffer[2], buffer[3]
    if length != length2:
        raise FramingError(f"long frame length fields differ: {length:02X} {length2:02X}")
    if start2 != LONG_START:
        raise FramingError(f"second start byte {start2:02X}, expected 68")
    if length < 3:
        # C, A and CI are always present in a long or control frame (EN 13757-2).
        raise FramingError(f"long frame L={length} is shorter than C A CI")
    total = length + LONG_OVERHEAD
    if len(buffer) < total:
        return None
    body = buffer[4 : 4 + length]
    cs, stop = buffer[4 + length], buffer[5 + length]
    if stop != STOP:
        raise FramingError(f"long frame stop byte {stop:02X}, expected 16")
    if checksum(body) != cs:
        raise ChecksumError(f"long frame checksum {cs:02X}, expected {checksum(body):02X}")
    return LongFrame(body[0], body[1], body[2], bytes(body[3:])), total


def decode_frame(data: bytes) -> Frame:
    """Decode exactly one complete frame; incomplete input or trailing bytes are errors."""
    parsed = parse_frame(data)
    if parsed is None:
        raise FramingError(f"incomplete frame ({len(data)} bytes)")
    frame, used = parsed
    if used != len(data):
        raise FramingError(f"{len(data) - used} trailing bytes after the frame")
    return frame


@dataclass(frozen=True, slots=True)
class Rejected:
    """Bytes the framer dropped, and why (noise, collision, a corrupted frame)."""

    data: bytes
    error: FramingError


class Framer:
    """Cuts a byte stream into frames (sans-IO: the caller feeds whatever the UART gave).

    A corrupted frame is reported as `Rejected` and hunting restarts one byte later, so a
    frame that starts inside garbage is still found. A caller that times out waiting (the
    line went idle mid-frame) calls `reset()`.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()

    @property
    def pending(self) -> bytes:
        """Bytes held back as the start of a frame not yet complete."""
        return bytes(self._buffer)

    def reset(self) -> None:
        """Forget any partial frame (after an inter-byte timeout)."""
        self._buffer.clear()

    def feed(self, data: bytes) -> list[Frame | Rejected]:
        """Add received bytes; return the frames (and rejections) they completed, in order."""
        self._buffer += data
        out: list[Frame | Rejected] = []
        while self._buffer:
            try:
                parsed = parse_frame(bytes(self._buffer))
            except FramingError as error:
                _reject(out, self._buffer[0], error)
                del self._buffer[:1]
                continue
            if parsed is None:
                break
            frame, used = parsed
            out.append(frame)
            del self._buffer[:used]
        return out


def _reject(out: list[Frame | Rejected], byte: int, error: FramingError) -> None:
    """Merge a run of dropped bytes into one `Rejected`, keeping the first error."""
    if out and isinstance(out[-1], Rejected):
        out[-1] = Rejected(out[-1].data + bytes([byte]), out[-1].error)
    else:
        out.append(Rejected(bytes([byte]), error))
