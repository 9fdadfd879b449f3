"""What the DSMR object model needs from the rest of the twin: its ports, small Protocols.

The object model (`twin.p3.objects.build_objects`) calls these Protocols; other services
implement them:

- `KeyService` (the P3 service): security setup 0-0:43.0.0 and the HLS secret of the
  association 0-0:40.0.0 (P3 §3.2, §5.1). Key material arrives wrapped with the master key
  (RFC 3394, security suite 0); unwrapping, storage, persistence and "the new key is used from
  the next message on" (P3 §5.1 footnote 4) are the implementer's.
- `twin.ports.MbusPort` (the P2 service): the methods of M-Bus client setup 0-x:24.1.0 (P3 §7.1)
  and the short-ID details only the M-Bus link knows, and `twin.ports.ModemStatus` (the modem):
  GPRS network information 0-1:94.31.4 (P3 §8.4). Both live in the neutral `twin.ports` with
  `PortResult`: P2 and the display use them without loading the object model.
- `PushPort` (the GPRS controller, twin/p3/gprs/controller.py): the push method of the push setups
  0-x:25.9.0 (P3 §9.3), invoked by the CS, the push script table or a trigger. The objects are
  built before the controller, so the wiring hands them a `PushRelay` that the controller
  attaches to once it exists.

Every call is synchronous and must return quickly (the DLMS core is sans-IO and answers from
memory): a port that needs I/O queues the work and answers `PortResult.SUCCESS` "on receipt"
(P3 §3.5: actions that complete after the session return success). Ports never raise for an
expected refusal; they answer a `PortResult`.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from twin.ports import PortResult


class KeyId(enum.IntEnum):
    """key_id of global_key_transfer (Blue Book class 64, method 2)."""

    GLOBAL_UNICAST_ENCRYPTION = 0  # GUEK
    GLOBAL_BROADCAST_ENCRYPTION = 1  # GBEK (not used by DSMR 4.2.2)
    AUTHENTICATION = 2  # AK


@dataclass(frozen=True, slots=True)
class WrappedKey:
    """One key_data of global_key_transfer: the key id and the RFC 3394-wrapped key (KEK =
    master key, P3 §3.2.1 security suite 0)."""

    key_id: KeyId
    wrapped: bytes


class KeyService(Protocol):
    """Security setup 0-0:43.0.0 (class 64) and the association's HLS secret (P3 §5.1)."""

    def security_policy(self) -> int:
        """Attribute 2: 0 none .. 3 authenticated and encrypted (P3 §3.2.3: 3 after
        commissioning)."""
        ...

    def server_system_title(self) -> bytes:
        """Attribute 5: the meter's 8-byte system title."""
        ...

    def client_system_title(self) -> bytes:
        """Attribute 4: the system title of the current (or last) ciphered client; empty if
        none yet."""
        ...

    def security_activate(self, policy: int) -> PortResult:
        """Method 1: raise the security policy (never lower it; P3 §3.2.3)."""
        ...

    def global_key_transfer(self, keys: Sequence[WrappedKey]) -> PortResult:
        """Method 2: unwrap with the master key and install; effective from the next message
        (P3 §5.1 footnote 4). Answer TYPE_UNMATCHED when a key does not unwrap."""
        ...

    def change_hls_secret(self, wrapped: bytes) -> PortResult:
        """Association LN 0-0:40.0.0 method 2: the new HLS secret, key-wrapped with the
        master key (P3 §5.1 footnote 3; at least 16 bytes once unwrapped)."""
        ...


class PushPort(Protocol):
    """Push setup (class 40) method 1 "push" (P3 §9.3)."""

    def push(self, setup_logical_name: bytes) -> PortResult:
        """Start the push of that setup: queued, answered on receipt (SUCCESS); the push
        itself (windows, randomisation, retries) runs later."""
        ...


class PushRelay:
    """A `PushPort` for the object model that forwards to a target attached later (the GPRS
    controller); TEMPORARY_FAILURE until one is attached."""

    def __init__(self) -> None:
        self._target: PushPort | None = None

    def attach(self, target: PushPort) -> None:
        self._target = target

    def push(self, setup_logical_name: bytes) -> PortResult:
        if self._target is None:
            return PortResult.TEMPORARY_FAILURE
        return self._target.push(setup_logical_name)
