"""The one error family of the P3 DLMS/COSEM server core.

h11-style split: `LocalP3Error` means *we* broke a rule (a programming error or a bad
argument from the service layer / object model), `RemoteP3Error` means the peer sent bytes
that break the protocol. Every decoder in `twin.p3` raises only `RemoteP3Error` subclasses on
bad input, so the server loop needs exactly one `except RemoteP3Error`. Both are `ValueError`s
because bad input is a bad value.
"""

from __future__ import annotations


class P3Error(ValueError):
    """Base class of every error raised by the P3 core."""


class LocalP3Error(P3Error):
    """We (the service layer, the object model or the core itself) violated a rule."""


class RemoteP3Error(P3Error):
    """The peer sent something that is not valid DLMS/COSEM for this server."""


class FramingError(RemoteP3Error):
    """The COSEM wrapper header is invalid (IEC 62056-47 §5): version or length."""


class ApduError(RemoteP3Error):
    """An APDU is truncated, has trailing bytes or a field out of range."""


class UnknownApduError(ApduError):
    """The APDU tag (or its CHOICE) is not one this server knows."""

    def __init__(self, tag: int, message: str = "") -> None:
        super().__init__(message or f"unknown APDU tag 0x{tag:02X}")
        self.tag = tag


class SecurityError(RemoteP3Error):
    """Ciphering failed: wrong key, bad tag, wrong security control or system title."""


class CounterExhaustedError(P3Error):
    """Every server invocation counter of the current GUEK has been used (2^32 values). The
    counter never wraps (that would reuse AES-GCM nonces): ciphered service is refused until
    a new GUEK is installed. Neither side broke a rule, so it is neither Local nor Remote."""
