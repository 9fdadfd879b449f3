"""What `DlmsServer.receive_data` hands back to the service layer, in order."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Transmit:
    """Write these bytes (one whole wrapper PDU) to the connection."""

    data: bytes


@dataclass(frozen=True, slots=True)
class CloseConnection:
    """Close the TCP connection now, without sending anything more (P3 §3.2.3 silent
    release, or a wrapper stream that cannot be re-synchronised)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Associated:
    """An application association is established (after HLS pass 4 for client 1)."""

    client: int


@dataclass(frozen=True, slots=True)
class Released:
    """The association ended: `graceful` after RLRQ/RLRE, otherwise aborted. The service
    layer writes the communication-session log entry here (P3 §5: entries at AA release)."""

    client: int
    graceful: bool


@dataclass(frozen=True, slots=True)
class AuthenticationFailed:
    """A management client failed HLS or sent an AARQ that does not decipher; the object
    model logs it as fraud event 46 'failed login attempt' (P3 §4.2.1)."""

    client: int


@dataclass(frozen=True, slots=True)
class CounterExhausted:
    """The server invocation counter of the current GUEK is used up: ciphered service was
    refused (AARE rejected, or the association released silently) until a new GUEK."""


ServerEvent = (
    Transmit | CloseConnection | Associated | Released | AuthenticationFailed | CounterExhausted
)
