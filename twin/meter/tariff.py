"""The Dutch tariff calendar.

P1 §6.1 note: tariff 1 is "low" (nights, weekends, holidays) and tariff 2 is "normal".
Main document use case 12: the grid operator sets two tariff shift times and a special-days
table; a changed program is activated by the head end, so it is a value, not configuration.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import IntEnum
from functools import lru_cache

from twin.clock import local

LOW = 1
NORMAL = 2


class Tariff(IntEnum):
    LOW = LOW
    NORMAL = NORMAL


def easter_sunday(year: int) -> date:
    """Gregorian Easter (the anonymous Meeus/Jones/Butcher algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    g = (8 * b + 13) // 25
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    m = (32 + 2 * e + 2 * i - h - k) % 7
    n = (a + 11 * h + 22 * m) // 451
    month, day = divmod(h + m - 7 * n + 114, 31)
    return date(year, month, day + 1)


@lru_cache(maxsize=8)
def dutch_holidays(year: int) -> frozenset[date]:
    """The public holidays Dutch grid operators bill at the low tariff."""
    easter = easter_sunday(year)
    kings_day = date(year, 4, 27)
    if kings_day.weekday() == 6:  # on a Sunday it moves to Saturday the 26th
        kings_day = date(year, 4, 26)
    return frozenset(
        {
            date(year, 1, 1),
            easter + timedelta(days=1),  # Easter Monday
            kings_day,
            easter + timedelta(days=39),  # Ascension Day
            easter + timedelta(days=50),  # Whit Monday
            date(year, 12, 25),
            date(year, 12, 26),
        }
    )


@dataclass(frozen=True, slots=True)
class TariffProgram:
    """When tariff 2 applies: working days from `normal_start` to `normal_end`, local time."""

    normal_start: time = time(7, 0)
    normal_end: time = time(23, 0)
    working_days: frozenset[int] = frozenset(range(5))  # Monday = 0
    use_dutch_holidays: bool = True
    special_days: frozenset[date] = frozenset()
    # (month, day) of special days that recur every year: the CS writes them with the year
    # "not specified" (0xFFFF) in the special days table (P3 §5.4, Blue Book class 11).
    recurring_days: frozenset[tuple[int, int]] = frozenset()

    def is_holiday(self, day: date) -> bool:
        return (
            day in self.special_days
            or (day.month, day.day) in self.recurring_days
            or (self.use_dutch_holidays and day in dutch_holidays(day.year))
        )

    def tariff_at(self, when: datetime) -> Tariff:
        return self.tariff_at_local(local(when))

    def tariff_at_local(self, here: datetime) -> Tariff:
        """The tariff at a Dutch local time (already converted by the caller)."""
        day = here.date()
        if day.weekday() not in self.working_days or self.is_holiday(day):
            return Tariff.LOW
        now = here.time().replace(tzinfo=None)
        if self.normal_start <= now < self.normal_end:
            return Tariff.NORMAL
        return Tariff.LOW
