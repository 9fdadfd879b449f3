"""What the DSMR object model needs from the rest of the twin: its ports, small Protocols.

The object model (`twin.p3.objects.build_objects`) calls these Protocols; other services
implement them:

- `KeyService` (the P3 service): security setup 0-0:43.0.0 and the HLS secret of the
  association 0-0:40.0.0 (P3 §3.2, §5.1). Key material arrives wrapped with the master key
  (RFC 3394, security suite 0); unwrapping, storage, persistence and "the new key is used from
  the next message on" (P3 §5.1 footnote 4) are the implementer's.
- `MbusPort` (the P2 service): the methods of M-Bus client setup 0-x:24.1.0 (P3 §7.1) and the
  short-ID details only the M-Bus link knows.
- `ModemStatus` (the GPRS side): GPRS network information 0-1:94.31.4 (P3 §8.4).
- `PushPort` (the GPRS controller, twin/p3/gprs.py): the push method of the push setups
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


class PortResult(enum.IntEnum):
    """How a port answered; the object model maps it onto the DLMS Action-Result."""

    SUCCESS = 0
    TEMPORARY_FAILURE = 2  # e.g. no M-Bus link right now; the CS may retry
    DENIED = 3  # not allowed in the current state (read-write-denied)
    TYPE_UNMATCHED = 12  # parameters malformed (e.g. wrong key length, unwrap failed)
    OTHER_REASON = 250


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


@dataclass(frozen=True, slots=True)
class MbusDevice:
    """Short ID and link status of one installed M-Bus device (P3 §7.1, class 72 attrs 5-14),
    as the M-Bus master last learned it from the device's telegrams."""

    primary_address: int
    identification_number: int  # 8 BCD digits as an int, e.g. 0x12345678
    manufacturer_id: int  # EN 13757-3 3-letter code packed in 16 bits
    version: int
    device_type: int  # 3 = gas
    access_number: int = 0
    status: int = 0
    alarm: int = 0
    configuration: int = 99  # 99 unknown, 0 unencrypted, 15 AES (P3 §7.1 attr 13)
    encryption_key_status: int = 0  # 0 none .. 4 in use (P3 §7.1 attr 14)


class MbusPort(Protocol):
    """M-Bus client setup 0-x:24.1.0 methods, channel x = 1..4 (P3 §7.1)."""

    def device(self, channel: int) -> MbusDevice | None:
        """What the master knows of the device on `channel`, or None if none is installed."""
        ...

    def slave_install(self, channel: int, primary_address: int) -> PortResult:
        """Method 1 (parameter: primary address; 0 = let the meter choose)."""
        ...

    def slave_deinstall(self, channel: int) -> PortResult:
        """Method 2: address 0, transferred key destroyed, configuration 99, key status 0."""
        ...

    def capture(self, channel: int) -> PortResult:
        """Method 3: read the device now."""
        ...

    def reset_alarm(self, channel: int) -> PortResult:
        """Method 4."""
        ...

    def synchronize_clock(self, channel: int) -> PortResult:
        """Method 5."""
        ...

    def data_send(self, channel: int, data: bytes) -> PortResult:
        """Method 6: the encoded A-XDR parameter (array of data definition elements)."""
        ...

    def set_encryption_key(self, channel: int, key: bytes) -> PortResult:
        """Method 7: the key the master uses for this device; empty = remove the key."""
        ...

    def transfer_key(self, channel: int, wrapped_key: bytes) -> PortResult:
        """Method 8: the wrapped key exactly as received on P3, MSB first; the P2 side turns
        it LSB first before sending it to the device (P3 §3.2.3 "Transfer Key handling")."""
        ...


@dataclass(frozen=True, slots=True)
class NetworkInfo:
    """GPRS network information 0-1:94.31.4 attribute 2 (P3 §8.4)."""

    signal_strength_dbm: int  # integer (-128..127)
    base_stations: int  # number of base stations with medium/high signal
    network_id: bytes  # e.g. MCC+MNC as text bytes


class ModemStatus(Protocol):
    """The GPRS modem as far as the objects report it."""

    def network_info(self) -> NetworkInfo | None:
        """Current values, or None while the modem has no network."""
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
