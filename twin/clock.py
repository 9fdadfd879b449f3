"""Meter time: the real clock, a simulated clock with a speed factor, and a manual clock for tests.

Every part of the twin reads time through a `Clock`; nothing else calls `time.time()`. Meter time
is a timezone-aware UTC `datetime`; local time (Europe/Amsterdam) and the DST flag are derived
from it, so the repeated October hour is never ambiguous inside the twin.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

log = logging.getLogger(__name__)

AMSTERDAM = ZoneInfo("Europe/Amsterdam")

# The times the meter can carry on every port. P2 dates (UTC, date and time type I, EN 13757-3
# annex A) have no century, so P2 devices live in 2000-2099, and P1 timestamps have a two-digit
# year (P1 Table 5-1, TST "YYMMDDhhmmssX"), so the meter clock stays within 2000-01-01 and
# 2099-12-31 in UTC and in Dutch local time alike (local 2099-12-31 23:59:59 is 22:59:59 UTC).
TIME_MIN = datetime(2000, 1, 1, tzinfo=UTC)
TIME_MAX = datetime(2099, 12, 31, 22, 59, 59, tzinfo=UTC)
TIME_SHIFT_LIMIT_S = 60  # 1-0:0.9.11 default: larger clock sets log events 4/5 (P3 §5.3)


class TimeRangeError(ValueError):
    """A meter time outside TIME_MIN..TIME_MAX: no port could carry it."""


def carryable(when: datetime) -> bool:
    """True for a time the meter can keep and publish on every port."""
    return TIME_MIN <= when <= TIME_MAX


def check_carryable(when: datetime) -> datetime:
    """`when`, or TimeRangeError when the meter cannot carry it."""
    if not carryable(when):
        raise TimeRangeError(
            f"{when.isoformat()} is outside the meter's range"
            f" {TIME_MIN.isoformat()} .. {TIME_MAX.isoformat()}"
        )
    return when


def parse_aware_time(value: object) -> datetime | None:
    """An ISO 8601 time with its UTC offset (a string, or an aware datetime), in UTC; None for
    anything else, never an exception (0001-01-01 or 9999-12-31 with an offset overflow in
    UTC: None too). Without an offset a time is ambiguous in the repeated October hour."""
    if isinstance(value, str):
        if len(value) > 64:
            return None
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, datetime) or value.tzinfo is None:
        return None
    try:
        return value.astimezone(UTC)
    except OverflowError:
        return None


def parse_meter_time(value: object) -> datetime | None:
    """`parse_aware_time`, if the meter clock can carry it (`carryable`), else None."""
    parsed = parse_aware_time(value)
    return parsed if parsed is not None and carryable(parsed) else None


def clamp_carryable(when: datetime) -> datetime:
    """The nearest time the meter can carry."""
    return min(max(when, TIME_MIN), TIME_MAX)


class Clock(Protocol):
    """A source of meter time that services can also wait on."""

    @property
    def speed(self) -> float:
        """Meter seconds per real second."""
        ...

    @property
    def steps(self) -> int:
        """How often the clock was set; waiters on the old time re-plan when it changes."""
        ...

    def now(self) -> datetime:
        """The current meter time, timezone-aware UTC."""
        ...

    async def sleep_until(self, when: datetime) -> None:
        """Return once meter time has reached `when` (at once if it already has)."""
        ...


def local(when: datetime) -> datetime:
    """Meter time as Dutch local time."""
    return when.astimezone(AMSTERDAM)


def is_dst(when: datetime) -> bool:
    """True while Dutch summer time is in force (P1 'S' flag), False in winter time ('W')."""
    offset = local(when).dst()
    return offset is not None and offset != timedelta(0)


def floor_to(when: datetime, period_s: int) -> datetime:
    """The start of the UTC-aligned period of `period_s` seconds that contains `when`."""
    epoch = int(when.timestamp())
    return datetime.fromtimestamp(epoch - epoch % period_s, UTC)


class SystemClock:
    """The real wall clock (speed 1)."""

    speed = 1.0
    steps = 0

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until(self, when: datetime) -> None:
        await _sleep_real(self, when)


class SimulatedClock:
    """Meter time that starts at `start` and runs `speed` times faster than real time.

    Real time is read from `time.monotonic`, so a wall-clock step on the host does not move
    meter time; 3600 means an hour of meter time per real second.
    """

    def __init__(self, start: datetime, speed: float) -> None:
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        if speed <= 0:
            raise ValueError("speed must be positive")
        self._start = start.astimezone(UTC)
        self._speed = float(speed)
        self._anchor = time.monotonic()
        self.steps = 0

    @property
    def speed(self) -> float:
        return self._speed

    def now(self) -> datetime:
        elapsed = (time.monotonic() - self._anchor) * self._speed
        return self._start + timedelta(seconds=elapsed)

    async def sleep_until(self, when: datetime) -> None:
        await _sleep_real(self, when)


async def _sleep_real(clock: Clock, when: datetime) -> None:
    # Re-check after each sleep: the event loop may wake early by a fraction of a tick.
    while (remaining := (when - clock.now()).total_seconds()) > 0:
        await asyncio.sleep(remaining / clock.speed)


class ManualClock:
    """A clock that only moves when told to: the test clock.

    `sleep_until` waiters wake when `advance` or `set` passes their deadline, so services can
    be driven step by step with no real waiting.
    """

    speed = 1.0
    steps = 0  # advancing a test clock is time passing, not a clock set

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        self._now = start.astimezone(UTC)
        self._changed = asyncio.Condition()

    def now(self) -> datetime:
        return self._now

    async def sleep_until(self, when: datetime) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self._now >= when)

    async def advance(self, seconds: float) -> None:
        await self.set(self._now + timedelta(seconds=seconds))

    async def set(self, when: datetime) -> None:
        self._now = when.astimezone(UTC)
        async with self._changed:
            self._changed.notify_all()
        # Let woken tasks run up to their next await before the caller continues.
        for _ in range(5):
            await asyncio.sleep(0)


class OffsetClock:
    """The meter's own clock: a base clock plus an offset that a clock set can change.

    P3 can set the meter clock (class 8 attribute 2, adjust_to_quarter, shift_time); the host's
    clock stays untouched, the meter runs `offset` ahead of (or behind) it.
    """

    def __init__(self, base: Clock, offset_s: float = 0.0) -> None:
        self.base = base
        self.offset = timedelta(seconds=offset_s)
        self.steps = 0  # how often the clock was set; a waiter that sees it change re-plans
        self._stepped = asyncio.Event()
        self._stop_logged = False  # the stop at TIME_MAX is logged once per stop

    @property
    def speed(self) -> float:
        return self.base.speed

    def now(self) -> datetime:
        """The meter time; it stands still at TIME_MAX (see `stopped`)."""
        running = self.base.now() + self.offset
        if running <= TIME_MAX:
            return clamp_carryable(running)
        if not self._stop_logged:
            self._stop_logged = True
            log.error(
                "the meter clock reached %s, the last time every port can carry: it stands"
                " still until a clock set (P3) moves it back",
                TIME_MAX.isoformat(),
            )
        return TIME_MAX

    @property
    def stopped(self) -> bool:
        """True while the clock stands still at the end of its range (TIME_MAX)."""
        return self.base.now() + self.offset > TIME_MAX

    def status(self) -> dict[str, object]:
        """For `ctl status`: whether the meter clock stands still at the end of its range."""
        return {"stopped": self.stopped, "time_max": TIME_MAX.isoformat()}

    async def sleep_until(self, when: datetime) -> None:
        """Return once `when` is reached, or early when the clock is set meanwhile.

        After a clock set the wait may be an hour too long or already over: the caller
        compares `steps` and plans again (the P1 cadence restarts its grid). A time beyond
        TIME_MAX is never reached: that wait ends only with a clock set, so no waiter spins
        on a clock that stands still.
        """
        steps = self.steps
        if when > TIME_MAX:
            await self._stepped.wait()
            return
        while self.now() < when and self.steps == steps:
            stepped = asyncio.ensure_future(self._stepped.wait())
            sleeper = asyncio.ensure_future(self.base.sleep_until(when - self.offset))
            try:
                await asyncio.wait({stepped, sleeper}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stepped.cancel()
                sleeper.cancel()

    async def stepped(self) -> None:
        """Return at the next clock set or `pass_time`."""
        await self._stepped.wait()

    def pass_time(self, span: timedelta) -> None:
        """Time passed at once (`ctl advance`, twin/fast_forward.py): `now()` moves `span`
        ahead. No clock was set, so nobody logs events 4/5; but every wait planned on the old
        time is over or mistimed, so waiters wake and re-plan as after a set (`steps`)."""
        self.offset += span
        self._wake_waiters()

    def set_now(self, when: datetime) -> timedelta:
        """Make `now()` read `when`; returns the step (new minus old) and wakes waiters."""
        step = when - self.now()
        # From the running time, not the shown one: at the end of the range they differ.
        self.offset = when - self.base.now()
        self._wake_waiters()
        return step

    def _wake_waiters(self) -> None:
        self._stop_logged = False
        self.steps += 1
        self._stepped.set()
        self._stepped = asyncio.Event()
