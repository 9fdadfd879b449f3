"""The one error family of the P2 codec.

Every decoder in `twin.p2` raises only `MbusError` subclasses on bad input, so a caller that
reads bytes off a bus (which may carry noise, collisions or a hostile peer) needs exactly one
`except MbusError`. `MbusError` is a `ValueError` because bad input is a bad value.
"""

from __future__ import annotations


class MbusError(ValueError):
    """Base class of every error raised by the P2 codec and state machines."""


class FramingError(MbusError):
    """Start/stop byte, length field or overall size of a link frame is wrong."""


class ChecksumError(FramingError):
    """The FT1.2 checksum does not match (EN 60870-5-1, P2 §3.1)."""


class UnsupportedMessageError(MbusError):
    """A C/CI combination outside P2 Table 5 (P2 §4.1: 'shall be rejected')."""


class HeaderError(MbusError):
    """A data header field (ID, MAN, CW ...) is malformed (P2 §4.2)."""


class RecordError(MbusError):
    """A DIF/DIFE/VIF/VIFE data record is malformed or truncated (EN 13757-3, P2 §6.4)."""


class DecryptionError(MbusError):
    """Mode 15/5 decryption failed: no key, bad block count or missing 2F 2F (P2 §5.1)."""


class ReplayError(MbusError):
    """The frame counter is not above the last validated one (P2 §5.2 rule 1)."""
