"""Events the gas-meter slave reports to the rest of the twin (display, logs, tests)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class LinkReset:
    """SND_NKE received and acknowledged (read-out list back to default)."""


@dataclass(frozen=True, slots=True)
class DataSent:
    """An RSP_UD was sent with this access number and frame counter (None: unencrypted)."""

    access_number: int
    frame_counter: int | None


@dataclass(frozen=True, slots=True)
class AddressChanged:
    """The primary address was set (P2 §6.2.2)."""

    old: int
    new: int


@dataclass(frozen=True, slots=True)
class KeyChanged:
    """A new User key was accepted; `keyed` is False for the all-zero key (P2 §6.5)."""

    keyed: bool


@dataclass(frozen=True, slots=True)
class ClockSynchronised:
    """The clock was set from `old` to `new`; `deviation_exceeded` if off by > 60 s."""

    old: datetime
    new: datetime
    deviation_exceeded: bool


@dataclass(frozen=True, slots=True)
class StatusCleared:
    """Status bits in `mask` were cleared by the E meter (P2 §6.2.3)."""

    mask: int


@dataclass(frozen=True, slots=True)
class ReadoutSelected:
    """The read-out list now adds these FD VIFEs (P2 §6.3.1)."""

    vifes: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Ignored:
    """A frame was rejected without an answer, and why."""

    reason: str


SlaveEvent = (
    LinkReset
    | DataSent
    | AddressChanged
    | KeyChanged
    | ClockSynchronised
    | StatusCleared
    | ReadoutSelected
    | Ignored
)


@dataclass(frozen=True, slots=True)
class SlaveOutput:
    """Result of feeding bytes to the slave."""

    reply: bytes
    events: tuple[SlaveEvent, ...]
