"""When a chapter 9 push runs: wildcard date-times, communication windows, the push
scheduler's execution times and the randomised push moment (P3 §9, §9.1.1, §9.3). Sans-IO.

- Dates and times are the Blue Book §4.1.6.1 octet-strings: date[5] (year hi/lo, month, day of
  month, day of week), time[4] (hour, minute, second, hundredths), date-time[12] (date, time,
  deviation, clock status). 0xFF (0xFFFF for the year) is a wildcard; day 0xFE / 0xFD is the
  last / second-last day of the month, month 0xFE / 0xFD the month DST begins / ends. A
  wildcard second is read as second 0 and hundredths are ignored: pushes run on whole
  seconds. Times are Dutch local time unless a date-time gives its deviation.
- Communication windows (class 40 attribute 4, P3 §9 intro): an empty array is always active;
  a window whose start time is "unspecified" (hour and minute wildcards, or an empty
  octet-string) is never active, so a list of only such windows never lets a push start.
- Randomisation (P3 §9.3): a trigger before a window draws its delay from the window start, a
  trigger inside a window from the trigger itself; a moment that falls outside the window is
  drawn again in the next window.

Nothing here reads a clock or global randomness: callers pass the time and a `random.Random`.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo

from twin.clock import AMSTERDAM

ANY = 0xFF
LAST_DAY, SECOND_LAST_DAY = 0xFE, 0xFD
DST_BEGIN, DST_END = 0xFE, 0xFD  # month values; in the Netherlands March and October
_DST_MONTHS = {DST_BEGIN: 3, DST_END: 10}
DEVIATION_UNSPECIFIED = -0x8000
HORIZON_DAYS = 1500  # covers a 29 February pattern (every 4 years) with room to spare
MAX_WINDOWS = 16  # windows tried for a randomised moment before settling for a window start


class PatternError(ValueError):
    """A date, time or date-time octet-string that is not Blue Book §4.1.6.1."""


@dataclass(frozen=True, slots=True)
class Pattern:
    """A repeating moment; None is a wildcard. `zone` is AMSTERDAM (local time) or the fixed
    offset a date-time's deviation gives."""

    year: int | None
    month: int | None
    day: int | None
    weekday: int | None  # ISO: Monday 1
    hour: int | None
    minute: int | None
    second: int
    zone: tzinfo = AMSTERDAM

    @property
    def unspecified_time(self) -> bool:
        return self.hour is None and self.minute is None

    def matches_date(self, d: date) -> bool:
        if self.year is not None and d.year != self.year:
            return False
        if self.month is not None and d.month != _DST_MONTHS.get(self.month, self.month):
            return False
        if self.weekday is not None and d.isoweekday() != self.weekday:
            return False
        if self.day is None:
            return True
        if self.day in (LAST_DAY, SECOND_LAST_DAY):
            last = _days_in_month(d)
            return d.day == (last if self.day == LAST_DAY else last - 1)
        return d.day == self.day

    def times(self, d: date, *, descending: bool = False) -> Iterator[datetime]:
        """The pattern's moments on local date `d` (as UTC), in order."""
        hours = list(range(24)) if self.hour is None else [self.hour]
        minutes = list(range(60)) if self.minute is None else [self.minute]
        if descending:
            hours.reverse()
            minutes.reverse()
        for h in hours:
            for m in minutes:
                yield _utc(d, h, m, self.second, self.zone)

    def fixed_date(self) -> date | None:
        """The one date of a pattern with year, month and day all given."""
        year, month, day = self.year, self.month, self.day
        if year is None or month is None or day is None or day in (LAST_DAY, SECOND_LAST_DAY):
            return None
        try:
            return date(year, _DST_MONTHS.get(month, month), day)
        except ValueError:
            return None

    def latest(self, at_or_before: datetime, after: datetime) -> datetime | None:
        """The latest moment in (after, at_or_before], or None."""
        if at_or_before <= after:
            return None
        last = _local_date(at_or_before, self.zone)
        first = max(_local_date(after, self.zone), last - timedelta(days=HORIZON_DAYS))
        for d in self._dates(last, first, step=-1):
            for moment in self.times(d, descending=True):
                if moment <= after:
                    break
                if moment <= at_or_before:
                    return moment
        return None

    def earliest(self, after: datetime) -> datetime | None:
        """The earliest moment strictly after `after` (within HORIZON_DAYS), or None."""
        start = _local_date(after, self.zone)
        for d in self._dates(start, start + timedelta(days=HORIZON_DAYS), step=1):
            for moment in self.times(d):
                if moment > after:
                    return moment
        return None

    def _dates(self, begin: date, end: date, *, step: int) -> Iterator[date]:
        """Matching dates from `begin` towards `end` (inclusive), in steps of +1 or -1 day."""
        fixed = self.fixed_date()
        if fixed is not None:
            low, high = min(begin, end), max(begin, end)
            if low <= fixed <= high and self.matches_date(fixed):
                yield fixed
            return
        d, one = begin, timedelta(days=step)
        while (d <= end) if step > 0 else (d >= end):
            if self.matches_date(d):
                yield d
            d += one


def _days_in_month(d: date) -> int:
    following = date(d.year + d.month // 12, d.month % 12 + 1, 1)
    return (following - timedelta(days=1)).day


def _local_date(when: datetime, zone: tzinfo) -> date:
    return when.astimezone(zone).date()


def _utc(d: date, hour: int, minute: int, second: int, zone: tzinfo) -> datetime:
    # A local time skipped by the spring DST change maps forward (zoneinfo, fold 0).
    return datetime(d.year, d.month, d.day, hour, minute, second, tzinfo=zone).astimezone(UTC)


# ---- parsing ---------------------------------------------------------------------------------


def _field(value: int, low: int, high: int, extra: Sequence[int] = ()) -> int | None:
    if value == ANY:
        return None
    if low <= value <= high or value in extra:
        return value
    raise PatternError(f"value {value:#04x} outside {low}..{high}")


def _date_part(raw: bytes) -> tuple[int | None, int | None, int | None, int | None]:
    year = int.from_bytes(raw[0:2], "big")
    return (
        None if year == 0xFFFF else year,
        _field(raw[2], 1, 12, (DST_BEGIN, DST_END)),
        _field(raw[3], 1, 31, (LAST_DAY, SECOND_LAST_DAY)),
        _field(raw[4], 1, 7),
    )


def _time_part(raw: bytes) -> tuple[int | None, int | None, int]:
    hour, minute = _field(raw[0], 0, 23), _field(raw[1], 0, 59)
    second = _field(raw[2], 0, 59)
    _field(raw[3], 0, 99)
    return hour, minute, second or 0


def _length(raw: bytes, length: int, what: str) -> None:
    if len(raw) != length:
        raise PatternError(f"{what} is {length} bytes, got {len(raw)}")


def parse_execution_time(time_raw: bytes, date_raw: bytes) -> Pattern:
    """One execution_time entry of the single action scheduler (class 22 attribute 4):
    structure {time octet-string[4], date octet-string[5]} in local time (P3 §9.1.1)."""
    _length(time_raw, 4, "time")
    _length(date_raw, 5, "date")
    return Pattern(*_date_part(date_raw), *_time_part(time_raw))


def parse_date_time(raw: bytes) -> Pattern | None:
    """A date-time[12] as a pattern; None for an empty octet-string (unspecified)."""
    if not raw:
        return None
    _length(raw, 12, "date-time")
    deviation = int.from_bytes(raw[9:11], "big", signed=True)
    if deviation == DEVIATION_UNSPECIFIED:
        zone: tzinfo = AMSTERDAM
    elif -720 <= deviation <= 720:  # Blue Book: UTC = local + deviation (minutes)
        zone = timezone(timedelta(minutes=-deviation))
    else:
        raise PatternError(f"deviation {deviation} outside -720..720")
    return Pattern(*_date_part(raw[0:5]), *_time_part(raw[5:9]), zone=zone)


# ---- communication windows -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Span:
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class Window:
    """One window_element {start_time, end_time}: active from a start moment until the first
    end moment after it."""

    start: Pattern
    end: Pattern

    def around(self, at: datetime) -> Span | None:
        """The occurrence that contains `at` (start <= at < end)."""
        start = self.start.latest(at, at - timedelta(days=HORIZON_DAYS))
        if start is None:
            return None
        end = self.end.earliest(start)
        return Span(start, end) if end is not None and at < end else None

    def after(self, at: datetime) -> Span | None:
        """The first occurrence that starts strictly after `at`."""
        start = self.start.earliest(at)
        end = None if start is None else self.end.earliest(start)
        return None if start is None or end is None else Span(start, end)


@dataclass(frozen=True, slots=True)
class Windows:
    """communication_window: `always` for array[0]; otherwise the windows that can open."""

    always: bool
    windows: tuple[Window, ...] = ()

    def around(self, at: datetime) -> Span | None:
        if self.always:
            return Span(at, datetime.max.replace(tzinfo=UTC))
        spans = [s for w in self.windows if (s := w.around(at)) is not None]
        return max(spans, key=lambda s: s.end, default=None)

    def after(self, at: datetime) -> Span | None:
        spans = [s for w in self.windows if (s := w.after(at)) is not None]
        return min(spans, key=lambda s: s.start, default=None)

    def active(self, at: datetime) -> bool:
        return self.around(at) is not None


ALWAYS = Windows(always=True)


def parse_windows(elements: Sequence[tuple[bytes, bytes]]) -> Windows:
    """communication_window as (start_time, end_time) octet-strings (P3 §9 intro, §9.3)."""
    if not elements:
        return ALWAYS
    windows = []
    for start_raw, end_raw in elements:
        start, end = parse_date_time(start_raw), parse_date_time(end_raw)
        if start is None or start.unspecified_time:
            continue  # "never active": start_time unspecified, end a dummy
        if end is None or end.unspecified_time:
            raise PatternError("a window that starts needs an end time")
        windows.append(Window(start, end))
    return Windows(always=False, windows=tuple(windows))


# ---- push moment and retries -----------------------------------------------------------------


def push_time(
    windows: Windows, trigger: datetime, randomisation_s: int, rng: random.Random
) -> datetime | None:
    """The moment a push triggered at `trigger` starts (P3 §9.3), or None when no window will
    ever open. The delay is uniform in 0..randomisation_s whole seconds; a moment past its
    window's end is drawn again in the next window. After MAX_WINDOWS such draws the push
    starts at the next window's start, so an interval much longer than the windows (a
    misconfiguration) still pushes."""
    span = windows.around(trigger)
    origin = trigger
    if span is None:
        span = windows.after(trigger)
        if span is None:
            return None
        origin = span.start
    for _ in range(MAX_WINDOWS):
        delay = rng.randint(0, randomisation_s) if randomisation_s > 0 else 0
        moment = origin + timedelta(seconds=delay)
        if moment < span.end:
            return moment
        following = windows.after(span.start)
        if following is None:
            return None
        span = following
        origin = span.start
    return origin


@dataclass(frozen=True, slots=True)
class RetryPlan:
    """number_of_retries and repetition_delay (class 40 attributes 6-7, P3 §9.3)."""

    retries: int
    delay: timedelta

    @property
    def attempts(self) -> int:
        return 1 + self.retries

    def delays(self) -> list[timedelta]:
        """Wait before each attempt: none before the first, repetition_delay before a retry."""
        return [timedelta(0)] + [self.delay] * self.retries
