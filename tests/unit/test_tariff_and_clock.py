from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from tests.support import amsterdam
from twin.clock import ManualClock, SimulatedClock, floor_to, is_dst, local
from twin.meter.tariff import Tariff, TariffProgram, dutch_holidays, easter_sunday
from twin.p1.telegram import timestamp


@pytest.mark.parametrize(
    ("year", "easter"),
    [(2024, date(2024, 3, 31)), (2025, date(2025, 4, 20)), (2026, date(2026, 4, 5))],
)
def test_easter(year: int, easter: date) -> None:
    assert easter_sunday(year) == easter


def test_kings_day_moves_to_saturday_when_on_sunday() -> None:
    assert date(2025, 4, 26) in dutch_holidays(2025)  # 27 April 2025 is a Sunday
    assert date(2025, 4, 27) not in dutch_holidays(2025)
    assert date(2026, 4, 27) in dutch_holidays(2026)


@pytest.mark.parametrize(
    ("when", "tariff"),
    [
        (amsterdam(2026, 11, 23, 6, 59), Tariff.LOW),  # Monday before 07:00
        (amsterdam(2026, 11, 23, 7, 0), Tariff.NORMAL),
        (amsterdam(2026, 11, 23, 22, 59), Tariff.NORMAL),
        (amsterdam(2026, 11, 23, 23, 0), Tariff.LOW),
        (amsterdam(2026, 11, 21, 12, 0), Tariff.LOW),  # Saturday
        (amsterdam(2026, 11, 22, 12, 0), Tariff.LOW),  # Sunday
        (amsterdam(2026, 12, 25, 12, 0), Tariff.LOW),  # Christmas, a Friday
        (amsterdam(2026, 5, 14, 12, 0), Tariff.LOW),  # Ascension Day
    ],
)
def test_dutch_tariff_calendar(when: datetime, tariff: Tariff) -> None:
    assert TariffProgram().tariff_at(when) == tariff


def test_shifted_program_and_special_days() -> None:
    # Use case 12: the head end moves the switch to 21:00 and adds a special day.
    program = TariffProgram(normal_end=time(21, 0), special_days=frozenset({date(2026, 11, 24)}))
    assert program.tariff_at(amsterdam(2026, 11, 23, 21, 30)) == Tariff.LOW
    assert program.tariff_at(amsterdam(2026, 11, 24, 12, 0)) == Tariff.LOW
    assert program.tariff_at(amsterdam(2026, 11, 25, 12, 0)) == Tariff.NORMAL


def test_dst_flag_and_the_repeated_october_hour() -> None:
    # 25 Oct 2026: 03:00 CEST becomes 02:00 CET; 00:30 and 01:30 UTC are both 02:30 local.
    first = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    second = datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
    assert local(first).hour == local(second).hour == 2
    assert timestamp(first) == "261025023000S"
    assert timestamp(second) == "261025023000W"
    assert is_dst(first)
    assert not is_dst(second)


def test_spring_forward_skips_the_hour() -> None:
    before = datetime(2026, 3, 29, 0, 59, 59, tzinfo=UTC)
    assert timestamp(before) == "260329015959W"
    assert timestamp(before + timedelta(seconds=1)) == "260329030000S"


def test_floor_to_quarter_hour() -> None:
    when = datetime(2026, 1, 1, 10, 14, 59, tzinfo=UTC)
    assert floor_to(when, 900) == datetime(2026, 1, 1, 10, 0, tzinfo=UTC)


def test_simulated_clock_runs_at_its_speed() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    clock = SimulatedClock(start, speed=3600)
    assert clock.speed == 3600
    assert clock.now() >= start
    with pytest.raises(ValueError, match="positive"):
        SimulatedClock(start, 0)
    with pytest.raises(ValueError, match="timezone"):
        SimulatedClock(datetime(2026, 1, 1), 1)


async def test_manual_clock_wakes_sleepers_when_advanced() -> None:
    import asyncio

    clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
    woke: list[datetime] = []

    async def sleeper() -> None:
        await clock.sleep_until(datetime(2026, 1, 1, 0, 0, 10, tzinfo=UTC))
        woke.append(clock.now())

    task = asyncio.create_task(sleeper())
    await clock.advance(9)
    assert woke == []
    await clock.advance(1)
    await asyncio.wait_for(task, 1)
    assert woke == [datetime(2026, 1, 1, 0, 0, 10, tzinfo=UTC)]
