"""Events of the E meter's M-Bus master, including the DSMR M-Bus event codes.

P3 §4.2.1 (M-Bus event log 0-0:99.98.3.255): code = 100 + 10 * (channel - 1) + k with
k = 0 communication error, 1 communication ok, 2 replace battery, 3 fraud attempt,
4 clock adjusted, 5 new M-Bus device, 6 permanent error. Channel 2 is 110..116 and so on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import IntEnum

from twin.p2.headers import ShortId


class MbusEventKind(IntEnum):
    """The k of the event code."""

    COMMUNICATION_ERROR = 0
    COMMUNICATION_OK = 1
    REPLACE_BATTERY = 2
    FRAUD_ATTEMPT = 3
    CLOCK_ADJUSTED = 4
    NEW_DEVICE = 5
    PERMANENT_ERROR = 6


def event_code(channel: int, kind: MbusEventKind) -> int:
    """DSMR event code for `kind` on M-Bus channel 1..4."""
    if not 1 <= channel <= 4:
        raise ValueError(f"M-Bus channel {channel} is not 1..4")
    return 100 + 10 * (channel - 1) + int(kind)


@dataclass(frozen=True, slots=True)
class MbusEvent:
    """An entry for the M-Bus event log."""

    channel: int
    kind: MbusEventKind

    @property
    def code(self) -> int:
        """The DSMR event code (100..136)."""
        return event_code(self.channel, self.kind)


@dataclass(frozen=True, slots=True)
class DeviceInstalled:
    """A new device got `address` and channel `channel` (P2 §8.3.1)."""

    channel: int
    address: int
    device: ShortId


@dataclass(frozen=True, slots=True)
class ScanFinished:
    """No (more) device answered on address 0."""

    installed: int


@dataclass(frozen=True, slots=True)
class Reading:
    """A validated hourly value from channel `channel`.

    `volume_m3`/`capture_time` are None if the meter sent none; `status` is the 01 FD 17
    byte with the DSMR 4.0 valve-alarm bit 7 masked off (P2 §9).
    """

    channel: int
    device: ShortId
    volume_m3: Decimal | None
    capture_time: datetime | None
    status: int
    frame_counter: int | None
    equipment_id: str | None


@dataclass(frozen=True, slots=True)
class CommandAcknowledged:
    """A command (`"key"`, `"clock"`, `"clear_status"`, `"address"`) was answered E5."""

    channel: int
    command: str


@dataclass(frozen=True, slots=True)
class ResponseRejected:
    """A response failed validation (counted as a failed attempt)."""

    channel: int
    reason: str


MasterEvent = (
    MbusEvent | DeviceInstalled | ScanFinished | Reading | CommandAcknowledged | ResponseRejected
)


@dataclass(frozen=True, slots=True)
class MasterOutput:
    """Bytes to put on the bus now (may be empty) and what happened."""

    send: bytes
    events: tuple[MasterEvent, ...]
