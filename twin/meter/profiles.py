"""Load profile rows (P3 §6.3) and the AMR profile status byte (P3 §4.2.5)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

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
