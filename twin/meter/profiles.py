"""Load profile rows (P3 §6.3), M-Bus hourly rows (§7.4) and the AMR profile status byte
(P3 §4.2.5)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from twin.clock import is_dst
from twin.meter.state import MbusReading

LOAD_PROFILE_PERIOD_S = 900  # 1-0:99.1.0 capture_period
LOAD_PROFILE_ENTRIES = 960  # 10 days of 15 minutes
DAILY_PROFILE_ENTRIES = 40  # 1-0:99.2.0
MONTHLY_PROFILE_ENTRIES = 13  # 0-0:98.1.0, captured at 00:00 on the 1st (0-0:15.0.0)

# AMR profile status bits (P3 §4.2.5).
STATUS_ERR = 0x01  # critical error
STATUS_CIV = 0x02  # clock invalid
STATUS_DNV = 0x04  # data not valid
STATUS_DST = 0x08  # daylight saving time active
STATUS_CAD = 0x20  # clock adjusted
STATUS_PDN = 0x80  # power down during the period


@dataclass(frozen=True, slots=True)
class LoadProfileRow:
    """One 15-minute entry: clock, AMR status, +A total, -A total (Wh)."""

    time: datetime
    status: int
    import_wh: int
    export_wh: int


@dataclass(frozen=True, slots=True)
class DailyProfileRow:
    """A daily entry at local midnight (1-0:99.2.0) or a monthly billing entry (0-0:98.1.0):
    clock, status, the four tariff registers, M-Bus values with their capture times.
    The monthly profile has no status column on P3; the value is kept for uniformity."""

    time: datetime
    status: int
    energy_wh: tuple[int, int, int, int]  # 1.8.1, 1.8.2, 2.8.1, 2.8.2
    mbus: tuple[tuple[int, int, datetime | None], ...]  # (channel, value, capture time)


MBUS_HOURLY_ENTRIES = 240  # 0-x:24.3.0 profile_entries: 10 days of hours (P3 §7.4)
MBUS_HOUR_S = 3600
_MBUS_EVENT_FLAGS = {  # M-Bus event offset (P3 §4.2.1, codes 1n4 / 1n6) -> status bits
    4: STATUS_CAD | STATUS_DNV,  # clock adjusted (large adjustment) on that channel
    6: STATUS_ERR | STATUS_DNV,  # permanent error from the device
}


@dataclass(frozen=True, slots=True)
class MbusHourRow:
    """One hourly entry of 0-x:24.3.0 (P3 §7.4): the E meter's clock, the AMR profile status
    of the channel, the M-Bus value (m3 x 1000) and the device's capture time of that value."""

    channel: int
    time: datetime
    status: int
    value: int
    capture: datetime | None


class MbusHourStatus:
    """AMR profile status bits (P3 §4.2.5, 0-x:96.10.3) gathered for the running hour.

    The E meter's own bits of the hour (PDN, CAD, DNV) hold for every channel: its hourly
    profile has the same gaps and clock jumps. Per channel, M-Bus events add CAD (1n4) or ERR
    (1n6), and DNV marks a value that was not refreshed within the hour (no successful
    read-out: "no values have been recorded during the capture period"). DST is the state
    at the capture time, as in the 15-minute profile.
    """

    def __init__(self) -> None:
        self.meter_flags = 0
        self.channel_flags: dict[int, int] = {}

    def add(self, flags: int) -> None:
        """Bits of the E meter (power down, clock adjusted) for the running hour."""
        self.meter_flags |= flags

    def event(self, code: int) -> None:
        """An event was logged; M-Bus events that make a channel's values suspect count."""
        if 100 <= code <= 136 and code % 10 in _MBUS_EVENT_FLAGS:
            channel = (code - 100) // 10 + 1
            flags = self.channel_flags.get(channel, 0) | _MBUS_EVENT_FLAGS[code % 10]
            self.channel_flags[channel] = flags

    def status(self, channel: int, when: datetime, capture: datetime | None, pending: int) -> int:
        """The status byte of `channel` at `when`; `pending` = the E meter's bits not yet
        added (those of its running 15-minute period)."""
        flags = self.meter_flags | pending | self.channel_flags.get(channel, 0)
        if capture is None or (when - capture).total_seconds() > MBUS_HOUR_S:
            flags |= STATUS_DNV
        return flags | (STATUS_DST if is_dst(when) else 0)

    def capture(
        self, when: datetime, readings: Iterable[MbusReading], pending: int
    ) -> list[MbusHourRow]:
        """One row per installed channel at the whole hour `when`; the bits start again."""
        rows = [
            MbusHourRow(
                d.channel,
                when,
                self.status(d.channel, when, d.capture, pending),
                d.value_thousandths,
                d.capture,
            )
            for d in readings
        ]
        self.meter_flags = 0
        self.channel_flags.clear()
        return rows
