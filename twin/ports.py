"""Interfaces the ports share, owned by none (so P2 and the display run without loading P3).

- `MbusPort`: the methods of M-Bus client setup 0-x:24.1.0 (P3 §7.1, class 72), which the P3
  object model calls and the P2 service implements (`twin.p2.port.P2MbusPort`), with the
  `MbusDevice` details only the M-Bus link knows.
- `PortResult`: how any port answers the object model (mapped onto the DLMS Action-Result).
- `ModemStatus` and `NetworkInfo`: the communication module's network state, which the P3 object
  model reports (GPRS network information 0-1:94.31.4, P3 §8.4) and the display shows (its
  CM flag and signal bars), implemented by the P3 modem service.

Every call is synchronous and must return quickly (the DLMS core is sans-IO and answers from
memory): a port that needs I/O queues the work and answers `PortResult.SUCCESS` "on receipt"
(P3 §3.5). Ports never raise for an expected refusal; they answer a `PortResult`.

The P3-only ports (keys, pushes) are in `twin.p3.objects.ports`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol


class PortResult(enum.IntEnum):
    """How a port answered; the object model maps it onto the DLMS Action-Result."""

    SUCCESS = 0
    TEMPORARY_FAILURE = 2  # e.g. no M-Bus link right now; the CS may retry
    DENIED = 3  # not allowed in the current state (read-write-denied)
    TYPE_UNMATCHED = 12  # parameters malformed (e.g. wrong key length, unwrap failed)
    OTHER_REASON = 250


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
