"""Activity calendar and special days (P3 §5.4; main document use case 12): activating new
passive switch times changes the tariff on P1 and survives a restart."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest

from tests.support import steady_config
from tests.unit.p3.objects.conftest import (
    Twin,
    advance,
    big_set,
    make_twin,
    method,
    read,
    ref,
    set_time,
    write,
)
from twin.clock import ManualClock
from twin.fast_forward import FastForward
from twin.meter.events import EventCode, EventLog
from twin.metering import TARIFF_SETTING, Meter
from twin.p1.telegram import TelegramEncoder
from twin.p3.objects import values as v
from twin.p3.objects.fast_forward import CalendarFastForward
from twin.p3.objects.tariff import switch

CALENDAR = "0-0:13.0.0"
TUESDAY_0730 = datetime(2026, 11, 24, 6, 30, tzinfo=UTC)  # 07:30 local


def day_table(start: time, end: time) -> v.Data:
    working = v.array([switch(time(0, 0), 1), switch(start, 2), switch(end, 1)])
    low = v.array([switch(time(0, 0), 1)])
    return v.array([v.struct(v.u8(i), working if i == 1 else low) for i in (1, 2, 3, 4)])


def p1_tariff(twin: Twin) -> str:
    telegram = TelegramEncoder("TWN", "DSMR-TWIN-422").encode(twin.meter.publish()).decode()
    line = next(x for x in telegram.splitlines() if x.startswith("0-0:96.14.0"))
    return line[len("0-0:96.14.0") :]


def test_active_calendar_describes_the_program(twin: Twin) -> None:
    client = twin.management()
    days = read(client, 20, CALENDAR, 5)
    working = days[0]
    assert working[0] == 1
    assert [(bytes(p[0]).hex(), p[2]) for p in working[1]] == [
        ("000000ff", 1), ("070000ff", 2), ("170000ff", 1),
    ]  # fmt: skip
    week = read(client, 20, CALENDAR, 4)[0]
    assert week[1:] == [1, 1, 1, 1, 1, 2, 3]  # Monday..Sunday
    assert bytes(read(client, 20, CALENDAR, 2)) == b"DSMR"


def test_activate_passive_calendar_moves_p1_switch_times(twin: Twin) -> None:
    client = twin.management()
    assert big_set(client, 20, CALENDAR, 9, v.encode(day_table(time(8, 0), time(20, 0)))) == 0
    assert write(client, 20, CALENDAR, 6, v.encode(v.octets(b"NEW"))) == 0
    assert twin.meter.model.program.normal_start == time(7, 0)  # not active yet
    client.action(method(20, CALENDAR, 1), v.encode(v.i8(0)))
    program = twin.meter.model.program
    assert (program.normal_start, program.normal_end) == (time(8, 0), time(20, 0))
    assert twin.meter.store.setting(TARIFF_SETTING)["normal_start"] == "08:00"
    assert EventCode.TARIFF_TIMES_ACTIVATED in [
        e.code for e in twin.meter.store.events(EventLog.STANDARD)
    ]
    assert bytes(read(client, 20, CALENDAR, 2)) == b"NEW"
    set_time(twin, TUESDAY_0730)
    assert p1_tariff(twin) == "(0001)"  # was normal from 07:00, now low until 08:00
    set_time(twin, TUESDAY_0730 + timedelta(hours=1))
    assert p1_tariff(twin) == "(0002)"


def test_activation_at_the_activation_time(twin: Twin) -> None:
    client = twin.management()
    big_set(client, 20, CALENDAR, 9, v.encode(day_table(time(6, 0), time(22, 0))))
    due = twin.meter.now() + timedelta(hours=1)
    assert write(client, 20, CALENDAR, 10, v.encode(v.date_time(due))) == 0
    twin.objects.tick()
    assert twin.meter.model.program.normal_start == time(7, 0)
    set_time(twin, due + timedelta(minutes=1))
    twin.objects.tick()  # the P3 service ticks, with or without a CS connected
    assert twin.meter.model.program.normal_start == time(6, 0)
    assert bytes(read(twin.management(), 20, CALENDAR, 10)).hex() == "ffffffffffffffffff8000ff"


def test_special_days_apply_with_the_next_activation(twin: Twin) -> None:
    client = twin.management()
    entry = v.struct(v.u16(1), v.octets(bytes.fromhex("07EA0B19FF")), v.u8(4))  # 2026-11-25
    client.action(method(11, "0-0:11.0.0", 1), v.encode(entry))
    assert len(read(client, 11, "0-0:11.0.0", 2)) == 1
    client.action(method(20, CALENDAR, 1), v.encode(v.i8(0)))
    wednesday_noon = datetime(2026, 11, 25, 11, 0, tzinfo=UTC)
    assert twin.meter.model.program.tariff_at(wednesday_noon) == 1
    client.action(method(11, "0-0:11.0.0", 2), v.encode(v.u16(1)))
    assert read(client, 11, "0-0:11.0.0", 2) == []


def test_a_special_day_without_a_year_recurs_every_year(tmp_path: Path) -> None:
    twin = make_twin(tmp_path)
    client = twin.management()
    every_year = v.struct(v.u16(1), v.octets(bytes.fromhex("FFFF0B19FF")), v.u8(4))  # 25 Nov
    leap_day = v.struct(v.u16(2), v.octets(bytes.fromhex("FFFF021DFF")), v.u8(4))  # 29 Feb
    for entry in (every_year, leap_day):
        client.action(method(11, "0-0:11.0.0", 1), v.encode(entry))
    client.action(method(20, CALENDAR, 1), v.encode(v.i8(0)))
    program = twin.meter.model.program
    for year in (2026, 2031, 2099):  # 25 November is a weekday in these years: low all day
        assert program.tariff_at(datetime(year, 11, 25, 11, 0, tzinfo=UTC)) == 1
    assert program.tariff_at(datetime(2028, 2, 29, 11, 0, tzinfo=UTC)) == 1  # a Tuesday
    assert program.tariff_at(datetime(2027, 11, 24, 11, 0, tzinfo=UTC)) == 2  # the day before
    twin.meter.store.close()
    from twin.store import Store

    again = Meter(
        steady_config(), ManualClock(twin.meter.now()), Store.open(tmp_path), random.Random(1)
    )
    assert again.model.program.recurring_days == {(11, 25), (2, 29)}
    again.store.close()


def test_a_special_day_that_is_no_date_is_refused(twin: Twin) -> None:
    client = twin.management()
    entry = v.struct(v.u16(1), v.octets(bytes.fromhex("07EA021EFF")), v.u8(4))  # 30 Feb 2026
    client.action(method(11, "0-0:11.0.0", 1), v.encode(entry))
    outcome = twin.objects.action(1, ref(20, CALENDAR, 1), v.encode(v.i8(0)))
    assert outcome.result.name == "OTHER_REASON"
    assert twin.meter.model.program.special_days == frozenset()


def two_windows() -> v.Data:
    """A day table with two normal-tariff windows a day: no `TariffProgram` expresses it."""
    twice = [switch(time(0, 0), 1), switch(time(6, 0), 2), switch(time(9, 0), 1)]
    return v.array([v.struct(v.u8(1), v.array([*twice, switch(time(17, 0), 2)]))])


def test_unexpressible_calendars_are_refused(twin: Twin) -> None:
    client = twin.management()
    assert big_set(client, 20, CALENDAR, 9, v.encode(two_windows())) == 0
    outcome = twin.objects.action(1, ref(20, CALENDAR, 1), v.encode(v.i8(0)))
    assert outcome.result.name == "OTHER_REASON"
    assert write(client, 20, CALENDAR, 9, v.encode(v.u8(1))) == 12  # type-unmatched
    assert twin.meter.model.program.normal_start == time(7, 0)


def test_an_unusable_calendar_falling_due_is_tried_once_and_the_object_model_goes_on(
    twin: Twin, caplog: pytest.LogCaptureFixture
) -> None:
    # A CS wrote a calendar the twin cannot run (two normal windows a day) with a later
    # activation time: at that time the activation fails once, logged, the meter keeps its
    # program, and the object model's tick (run before every request) keeps working.
    client = twin.management()
    assert big_set(client, 20, CALENDAR, 9, v.encode(two_windows())) == 0
    due = (twin.meter.now() + timedelta(hours=1)).replace(microsecond=0)
    assert write(client, 20, CALENDAR, 10, v.encode(v.date_time(due))) == 0
    advance(twin, 2 * 3600)
    twin.objects.tick()
    twin.objects.tick()
    assert twin.meter.model.program.normal_start == time(7, 0)
    refused = [r for r in caplog.records if "passive calendar not activated" in r.message]
    assert len(refused) == 1
    assert twin.objects.next_due() != due  # the ticker does not wake for it again and again
    assert read(twin.management(), 20, CALENDAR, 10) is not None  # requests go on


def test_activated_program_survives_a_restart(tmp_path: Path) -> None:
    twin = make_twin(tmp_path)
    client = twin.management()
    big_set(client, 20, CALENDAR, 9, v.encode(day_table(time(9, 0), time(18, 0))))
    client.action(method(20, CALENDAR, 1), v.encode(v.i8(0)))
    twin.meter.store.close()
    from twin.store import Store

    again = Meter(
        steady_config(), ManualClock(twin.meter.now()), Store.open(tmp_path), random.Random(1)
    )
    assert again.model.program.normal_start == time(9, 0)
    again.store.close()


def test_an_activation_time_beyond_any_datetime_is_refused(twin: Twin) -> None:
    """9999-12-31 23:30 at deviation +60 (UTC = local + 60 min) is year 10000 in UTC, and
    0001-01-01 00:00 at -60 is year 0: refused as type-unmatched, and the calendar keeps
    working (its activation check runs before every request)."""
    client = twin.management()
    for raw in ("270F0C1FFF171E0000003C00", "00010101FF00000000FFC400"):
        assert write(client, 20, CALENDAR, 10, v.encode(v.octets(bytes.fromhex(raw)))) == 12
    twin.objects.tick()
    assert bytes(read(client, 20, CALENDAR, 10)).hex() == "ffffffffffffffffff8000ff"


def test_an_activation_due_during_ctl_advance_happens_at_its_time(twin: Twin) -> None:
    client = twin.management()
    big_set(client, 20, CALENDAR, 9, v.encode(day_table(time(6, 0), time(22, 0))))
    due = (twin.meter.now() + timedelta(days=1)).replace(microsecond=0)
    assert write(client, 20, CALENDAR, 10, v.encode(v.date_time(due))) == 0
    fast = FastForward(twin.meter)
    fast.waypoints.append(CalendarFastForward(twin.objects.calendar))
    asyncio.run(fast.advance(twin.meter.now() + timedelta(days=3)))
    assert twin.meter.model.program.normal_start == time(6, 0)
    activated = [
        e.when
        for e in twin.meter.store.events(EventLog.STANDARD)
        if e.code == EventCode.TARIFF_TIMES_ACTIVATED
    ]
    assert activated == [due]  # at the activation time, not when the clock got there
    assert bytes(read(twin.management(), 20, CALENDAR, 10)).hex() == "ffffffffffffffffff8000ff"


def test_an_unusable_calendar_due_during_ctl_advance_is_tried_once(
    twin: Twin, caplog: pytest.LogCaptureFixture
) -> None:
    client = twin.management()
    assert big_set(client, 20, CALENDAR, 9, v.encode(two_windows())) == 0
    due = (twin.meter.now() + timedelta(hours=2)).replace(microsecond=0)
    assert write(client, 20, CALENDAR, 10, v.encode(v.date_time(due))) == 0
    fast = FastForward(twin.meter)
    fast.waypoints.append(CalendarFastForward(twin.objects.calendar))
    asyncio.run(fast.advance(twin.meter.now() + timedelta(days=2)))
    assert twin.meter.model.program.normal_start == time(7, 0)  # the twin keeps its program
    refused = [r for r in caplog.records if "passive calendar not activated" in r.message]
    assert len(refused) == 1
