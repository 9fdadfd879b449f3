"""A-XDR plumbing for APDU codecs (IEC 61334-6 / Green Book §9.5): a bounds-checked reader,
length encoding, and a skipper that finds where one encoded `Data` value ends.

Attribute *values* are opaque encoded bytes to the core: the object model encodes them
(`twin.p3.objects.values`) and the core only needs to know where one `Data` ends, e.g. to
split the value list of a SET-with-list or to step over the access parameters of a selective
access.
"""

from __future__ import annotations

from twin.p3.dlms.errors import ApduError

# Data CHOICE tag -> fixed content size in bytes (Green Book §9.5, "Data" type).
_FIXED_SIZE: dict[int, int] = {
    0: 0,  # null-data
    3: 1,  # boolean
    5: 4,  # double-long
    6: 4,  # double-long-unsigned
    13: 1,  # bcd
    15: 1,  # integer
    16: 2,  # long
    17: 1,  # unsigned
    18: 2,  # long-unsigned
    20: 8,  # long64
    21: 8,  # long64-unsigned
    22: 1,  # enum
    23: 4,  # float32
    24: 8,  # float64
    25: 12,  # date-time
    26: 5,  # date
    27: 4,  # time
    255: 0,  # dont-care
}
_OCTETS = frozenset({9, 10, 12})  # octet-string, visible-string, utf8-string
_CONTAINERS = frozenset({1, 2})  # array, structure
_BIT_STRING = 4
_MAX_DEPTH = 16


class Reader:
    """Consumes bytes front to back; every short read raises `ApduError`."""

    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self._data = data
        self._pos = pos

    @property
    def pos(self) -> int:
        return self._pos

    @property
    def remaining(self) -> int:
        return len(self._data) - self._pos

    def take(self, n: int) -> bytes:
        if n < 0 or self._pos + n > len(self._data):
            raise ApduError(f"truncated: need {n} bytes at offset {self._pos}")
        out = self._data[self._pos : self._pos + n]
        self._pos += n
        return out

    def u8(self) -> int:
        pos = self._pos  # the most frequent read: indexed directly, not sliced
        if pos >= len(self._data):
            raise ApduError(f"truncated: need 1 bytes at offset {pos}")
        self._pos = pos + 1
        return self._data[pos]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def u32(self) -> int:
        return int.from_bytes(self.take(4), "big")

    def length(self) -> int:
        """A-XDR variable-length integer: one byte < 0x80, else 0x8N + N bytes."""
        first = self.u8()
        if first < 0x80:
            return first
        size = first & 0x7F
        if not 0 < size <= 4:
            raise ApduError(f"A-XDR length with {size} length bytes")
        return int.from_bytes(self.take(size), "big")

    def rest(self) -> bytes:
        return self.take(self.remaining)

    def data(self) -> bytes:
        """One encoded `Data` value, returned whole (tag included)."""
        start = self._pos
        self._skip_data(0)
        return self._data[start : self._pos]

    def expect_end(self) -> None:
        if self.remaining:
            raise ApduError(f"{self.remaining} trailing bytes at offset {self._pos}")

    def _skip_data(self, depth: int) -> None:
        if depth > _MAX_DEPTH:
            raise ApduError("Data nested too deeply")
        tag = self.u8()
        if tag in _FIXED_SIZE:
            self.take(_FIXED_SIZE[tag])
        elif tag in _OCTETS:
            self.take(self.length())
        elif tag == _BIT_STRING:
            self.take((self.length() + 7) // 8)
        elif tag in _CONTAINERS:
            for _ in range(self.length()):
                self._skip_data(depth + 1)
        else:
            # compact-array (19) and unknown tags: not used by DSMR 4.2.2 objects.
            raise ApduError(f"unsupported Data tag {tag}")


def encode_length(n: int) -> bytes:
    """A-XDR variable-length integer (inverse of `Reader.length`)."""
    if n < 0:
        raise ValueError(f"negative length {n}")
    if n < 0x80:
        return bytes([n])
    size = (n.bit_length() + 7) // 8
    return bytes([0x80 | size]) + n.to_bytes(size, "big")


def octet_string(value: bytes) -> bytes:
    """Encode `value` as Data octet-string (tag 9)."""
    return b"\x09" + encode_length(len(value)) + value
