"""The push planner's time rules: wildcard date-times, communication windows, randomisation
(P3 §9 intro, §9.3 figures), the scheduler's execution times (§9.1.1) and the retry plan."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from twin.clock import AMSTERDAM
from twin.p3.gprs.push_time import (
    ALWAYS,
    MAX_WINDOWS,
    PatternError,
    RetryPlan,
    parse_date_time,
    parse_execution_time,
    parse_windows,
    push_time,
)

ANY_DATE = b"\xff\xff\xff\xff\xff"


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=AMSTERDAM).astimezone(UTC)  # type: ignore[misc,arg-type]


def time_of_day(hour: int, minute: int = 0, second: int = 0) -> bytes:
    return bytes([hour, minute, second, 0])


def date_time(
    hour: int, minute: int = 0, *, day: bytes = ANY_DATE, deviation: int = -0x8000
) -> bytes:
    """date-time[12]: a date (wildcards by default), a time, deviation, status."""
    return day + time_of_day(hour, minute) + deviation.to_bytes(2, "big", signed=True) + b"\xff"


NEVER = b"\xff\xff\xff\xff\xff" + b"\xff\xff\xff\xff" + b"\x80\x00\xff"  # "unspecified"
NIGHT = parse_windows([(date_time(2), date_time(4))])  # 02:00-04:00 local, every day


class Scripted(random.Random):
    """Randomness with scripted draws, to put a moment exactly where a test needs it."""

    def __init__(self, *draws: int) -> None:
        super().__init__(0)
        self.draws = list(draws)

    def randint(self, a: int, b: int) -> int:
        value = self.draws.pop(0)
        assert a <= value <= b
        return value


# ---- windows ------------------------------------------------------------------------------


def test_empty_window_list_is_always_active() -> None:
    trigger = local(2026, 11, 23, 13, 7)
    assert parse_windows([]) == ALWAYS
    assert push_time(ALWAYS, trigger, 0, random.Random(1)) == trigger
    expected = trigger + timedelta(seconds=random.Random(7).randint(0, 600))
    assert push_time(ALWAYS, trigger, 600, random.Random(7)) == expected


def test_trigger_before_the_window_randomises_from_its_start() -> None:
    # P3 §9.3 figure "Trigger before communication-window"
    trigger = local(2026, 11, 23, 1, 0)
    assert push_time(NIGHT, trigger, 0, random.Random(1)) == local(2026, 11, 23, 2, 0)
    moment = push_time(NIGHT, trigger, 1800, Scripted(1234))
    assert moment == local(2026, 11, 23, 2, 0) + timedelta(seconds=1234)


def test_trigger_inside_the_window_randomises_from_the_trigger() -> None:
    # P3 §9.3 figure "Trigger within communication-window"
    trigger = local(2026, 11, 23, 3, 0, 30)
    moment = push_time(NIGHT, trigger, 1800, Scripted(600))
    assert moment == trigger + timedelta(seconds=600)


def test_a_moment_past_the_window_end_is_drawn_again_in_the_next_window() -> None:
    trigger = local(2026, 11, 23, 3, 50)
    moment = push_time(NIGHT, trigger, 1800, Scripted(900, 60))  # 04:05 is outside
    assert moment == local(2026, 11, 24, 2, 1)


def test_trigger_after_the_window_waits_for_the_next_one() -> None:
    moment = push_time(NIGHT, local(2026, 11, 23, 5, 0), 0, random.Random(1))
    assert moment == local(2026, 11, 24, 2, 0)


def test_an_interval_longer_than_every_window_settles_for_a_window_start() -> None:
    short = parse_windows([(date_time(2), date_time(2, 10))])
    draws = [3000] * MAX_WINDOWS
    moment = push_time(short, local(2026, 11, 23, 1, 0), 3600, Scripted(*draws))
    assert moment == local(2026, 11, 23, 2, 0) + timedelta(days=MAX_WINDOWS)


def test_unspecified_start_is_never_active() -> None:
    # P3 §9 intro: start "unspecified" and a dummy end 23:59:59.99 = never active
    never = parse_windows([(NEVER, bytes(ANY_DATE) + b"\x17\x3b\x3b\x63\x80\x00\xff")])
    assert never.windows == ()
    assert push_time(never, local(2026, 11, 23, 1, 0), 0, random.Random(1)) is None
    assert not never.active(local(2026, 11, 23, 1, 0))


def test_a_window_that_spans_midnight_and_several_windows() -> None:
    windows = parse_windows([(date_time(22), date_time(1)), (date_time(12), date_time(13))])
    assert windows.active(local(2026, 11, 23, 0, 30))  # opened the evening before
    assert not windows.active(local(2026, 11, 23, 11, 0))
    assert push_time(windows, local(2026, 11, 23, 11, 0), 0, random.Random(1)) == local(
        2026, 11, 23, 12, 0
    )


def test_fixed_date_with_deviation_is_taken_as_given() -> None:
    day = (2026).to_bytes(2, "big") + bytes([12, 1, 0xFF])
    start = date_time(10, day=day, deviation=0)  # deviation 0: the time is UTC
    end = date_time(11, day=day, deviation=0)
    windows = parse_windows([(start, end)])
    at = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    assert push_time(windows, at, 0, random.Random(1)) == datetime(2026, 12, 1, 10, tzinfo=UTC)
    assert push_time(windows, datetime(2026, 12, 2, tzinfo=UTC), 0, random.Random(1)) is None


@pytest.mark.parametrize(
    "raw",
    [
        date_time(24),  # hour 24
        bytes(11),  # too short
        ANY_DATE[:2] + b"\x0d\xff\xff" + time_of_day(1) + b"\x80\x00\xff",  # month 13
        date_time(1, deviation=900),  # deviation outside -720..720
    ],
)
def test_bad_date_times_are_refused(raw: bytes) -> None:
    with pytest.raises(PatternError):
        parse_date_time(raw)


def test_a_window_needs_an_end() -> None:
    with pytest.raises(PatternError):
        parse_windows([(date_time(2), b"")])


# ---- scheduler execution times --------------------------------------------------------------


def test_daily_execution_time_between_polls() -> None:
    daily = parse_execution_time(time_of_day(2, 0), ANY_DATE)
    assert daily.latest(local(2026, 11, 23, 2, 0, 5), local(2026, 11, 23, 1, 59, 55)) == local(
        2026, 11, 23, 2, 0
    )
    assert daily.latest(local(2026, 11, 23, 1, 59), local(2026, 11, 23, 1, 0)) is None
    # a long gap (clock set forward): the latest execution only
    assert daily.latest(local(2026, 11, 30, 3, 0), local(2026, 11, 23, 1, 0)) == local(
        2026, 11, 30, 2, 0
    )
    assert daily.earliest(local(2026, 11, 23, 2, 0)) == local(2026, 11, 24, 2, 0)


def test_wildcard_hour_and_special_days() -> None:
    hourly = parse_execution_time(bytes([0xFF, 30, 0, 0]), ANY_DATE)
    assert hourly.earliest(local(2026, 11, 23, 13, 31)) == local(2026, 11, 23, 14, 30)
    last_day = parse_execution_time(time_of_day(23), b"\xff\xff\xff\xfe\xff")
    assert last_day.earliest(local(2026, 2, 1)) == local(2026, 2, 28, 23, 0)
    mondays = parse_execution_time(time_of_day(6), b"\xff\xff\xff\xff\x01")
    assert mondays.earliest(local(2026, 11, 24)) == local(2026, 11, 30, 6, 0)  # a Monday


def test_execution_time_across_the_dst_change() -> None:
    # 02:30 does not exist on 29 March 2026: that day it runs at 03:30 summer time
    daily = parse_execution_time(time_of_day(2, 30), ANY_DATE)
    moment = daily.earliest(local(2026, 3, 29, 0, 0))
    assert moment == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)


def test_bad_execution_times_are_refused() -> None:
    with pytest.raises(PatternError):
        parse_execution_time(time_of_day(2), b"\xff\xff\xff")
    with pytest.raises(PatternError):
        parse_execution_time(bytes([2, 60, 0, 0]), ANY_DATE)


# ---- retries --------------------------------------------------------------------------------


def test_retry_plan() -> None:
    plan = RetryPlan(2, timedelta(seconds=60))
    assert plan.attempts == 3
    assert plan.delays() == [timedelta(0), timedelta(seconds=60), timedelta(seconds=60)]
    assert RetryPlan(0, timedelta(seconds=60)).delays() == [timedelta(0)]  # "0: no repetitions"
