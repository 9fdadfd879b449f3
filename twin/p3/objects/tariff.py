"""Activity calendar 0-0:13.0.0 (class 20), special days 0-0:11.0.0 (class 11), end of
billing period 0-0:15.0.0 (class 22) and the tariffication script table 0-0:10.0.100
(class 9), P3 §5.4-§5.5; main document use case 12 (change of tariff switching times).

The active calendar is rendered from the meter's `TariffProgram`: one season, one week
profile, four day profiles (1 working day, 2 Saturday, 3 Sunday, 4 special day; P3 §5.4) whose
switch points run script 0-0:10.0.100 with selector 1 (tariff 1, low) or 2 (tariff 2, normal).
The passive calendar is kept as the CS wrote it; activating it (method 1, or when
activate_passive_calendar_time passes) turns it back into a `TariffProgram`, which changes the
tariff P1 shows, and persists it in the store.

Resolved here: the special days table takes effect with the next calendar activation (the twin
cannot change its program without logging event 9, "passive tariff times activated"); entries
with a wildcard year (0xFFFF) recur every year.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, date, datetime, time
from typing import ClassVar

from twin.meter.tariff import LOW, NORMAL, TariffProgram
from twin.metering import TARIFF_SETTING, program_to_setting
from twin.p3.dlms.cosem import DataAccessResult
from twin.p3.objects.base import CosemObject, ObjectError, Request, obis_bytes
from twin.p3.objects.env import Env
from twin.p3.objects.simple import Generic, Stored, conform
from twin.p3.objects.values import (
    NOT_SPECIFIED,
    Data,
    Tag,
    ValueTypeError,
    array,
    enum_,
    octets,
    parse_date_time,
    struct,
    u8,
    u16,
)

log = logging.getLogger(__name__)

SCRIPT_TABLE = "0-0:10.0.100"
WORKING, SATURDAY, SUNDAY, SPECIAL = 1, 2, 3, 4
MAX_SPECIAL_DAYS = 30


def time_of_day(t: time) -> Data:
    return octets(bytes([t.hour, t.minute, t.second, 0xFF]))


def parse_time_of_day(value: Data) -> time:
    raw = value.octets()
    if len(raw) != 4 or raw[0] > 23 or raw[1] > 59 or 59 < raw[2] < 0xFF:
        raise ValueTypeError("time is octet-string[4] hh mm ss hundredths")
    return time(raw[0], raw[1], raw[2] if raw[2] != 0xFF else 0)


def switch(at: time, tariff: int) -> Data:
    return struct(time_of_day(at), octets(obis_bytes(SCRIPT_TABLE)), u16(tariff))


# ---------------------------------------------------------------- program <-> calendar


def calendar_of(program: TariffProgram) -> tuple[Data, Data, Data]:
    """(season_profile, week_profile_table, day_profile_table) describing `program`."""
    season = array([struct(octets(b"DSMR"), octets(NOT_SPECIFIED), octets(b"WEEK"))])
    days = [
        WORKING if d in program.working_days else (SATURDAY if d == 5 else SUNDAY) for d in range(7)
    ]
    week = array([struct(octets(b"WEEK"), *(u8(d) for d in days))])
    working = [
        switch(time(0, 0), LOW),
        switch(program.normal_start, NORMAL),
        switch(program.normal_end, LOW),
    ]
    low = [switch(time(0, 0), LOW)]
    table = array([struct(u8(i), array(working if i == WORKING else low)) for i in (1, 2, 3, 4)])
    return season, week, table


def program_of(week: Data, days: Data, special: Data, base: TariffProgram) -> TariffProgram:
    """The TariffProgram a passive calendar describes; TYPE_UNMATCHED-worthy if the twin's
    program (one normal window on working days) cannot express it."""
    if not week.items:
        raise ValueTypeError("empty week profile table")
    day_ids = [d.integer() for d in week.items[0].items[1:8]]
    schedules = {d.items[0].integer(): _window(d.items[1]) for d in days.items}
    if any(i not in schedules for i in day_ids):
        raise ValueTypeError("week profile names an undefined day profile")
    windows: set[tuple[time, time]] = set()
    for i in day_ids:
        window = schedules[i]
        if window is not None:
            windows.add(window)
    if len(windows) > 1:
        raise ValueTypeError("working days with different switch times")
    start, end = windows.pop() if windows else (base.normal_start, base.normal_end)
    working = frozenset(d for d, i in enumerate(day_ids) if schedules[i] is not None)
    dates, recurring = special_dates(special)
    return TariffProgram(start, end, working, base.use_dutch_holidays, dates, recurring)


def _window(schedule: Data) -> tuple[time, time] | None:
    """(start, end) of tariff 2 in a day schedule, None if the day is all tariff 1."""
    points = sorted((parse_time_of_day(s.items[0]), s.items[2].integer()) for s in schedule.items)
    normal = [t for t, script in points if script == NORMAL]
    if not normal:
        return None
    after = [t for t, script in points if script == LOW and t > normal[0]]
    if len(normal) != 1 or len(after) != 1:
        raise ValueTypeError("a day may switch to tariff 2 once and back once")
    return normal[0], after[0]


def special_dates(entries: Data) -> tuple[frozenset[date], frozenset[tuple[int, int]]]:
    """The dated special days and the (month, day) of those that recur every year."""
    dates: set[date] = set()
    recurring: set[tuple[int, int]] = set()
    for entry in entries.items:
        raw = _special_date(entry)
        year = int.from_bytes(raw[:2], "big")
        try:
            # A leap year checks a recurring day: 29 February recurs in the years that have it.
            day = date(2000 if year == 0xFFFF else year, raw[2], raw[3])
        except ValueError as exc:  # e.g. 30 February: not a date
            raise ValueTypeError(f"special day {year}-{raw[2]}-{raw[3]} is not a date") from exc
        if year == 0xFFFF:
            recurring.add((day.month, day.day))
        else:
            dates.add(day)
    return frozenset(dates), frozenset(recurring)


def _special_date(entry: Data) -> bytes:
    """specialday_date octet-string[5] (date): a year or 0xFFFF, a real month and day."""
    raw = entry.items[1].octets()
    if len(raw) != 5 or not 1 <= raw[2] <= 12 or not 1 <= raw[3] <= 31:
        raise ValueTypeError("special day date is octet-string[5] with a month and a day")
    return raw


# ---------------------------------------------------------------- objects


class ActivityCalendar(CosemObject):
    class_id: ClassVar[int] = 20

    def __init__(self, env: Env, special_days: Stored) -> None:
        rights = {1: "/R/", 2: "/R/", 3: "/R/", 4: "/R/", 5: "/R/"}
        super().__init__("0-0:13.0.0", rights | dict.fromkeys(range(6, 11), "/RW/"), {1: "/X/"})
        self.env = env
        self.special_days = special_days
        active = calendar_of(env.meter.model.program)
        a = env.attrs
        self.active_name = Stored(a, "calendar.active_name", octets(b"DSMR"))
        self.passive = {
            6: Stored(a, "calendar.passive_name", octets(b"DSMR"), 32),
            7: Stored(a, "calendar.passive_season", active[0]),
            8: Stored(a, "calendar.passive_week", active[1]),
            9: Stored(a, "calendar.passive_days", active[2]),
            10: Stored(a, "calendar.activate_time", octets(NOT_SPECIFIED), 12),
        }
        # A scheduled activation the twin could not run (its time, and why): not tried again
        # until the CS writes the passive calendar anew. The meter keeps its program.
        self.refused: tuple[datetime, str] | None = None

    def read(self, index: int, request: Request) -> Data:
        self.activate_if_due(request.now)
        if index == 2:
            return self.active_name.get()
        if 3 <= index <= 5:
            return calendar_of(self.env.meter.model.program)[index - 3]
        if index in self.passive:
            return self.passive[index].get()
        return super().read(index, request)

    def write(self, index: int, value: Data, request: Request) -> None:
        if index not in self.passive:
            raise ObjectError(DataAccessResult.READ_WRITE_DENIED)
        if index in (7, 8, 9):
            _check_shape(index, value)
        if index == 10:
            parse_date_time(value.octets())  # a date-time octet-string[12], wildcards allowed
        self.passive[index].set(value)
        self.refused = None
        if self._due(request.now):
            self.activate(request.now)  # refused: the SET's answer says so (other-reason)

    def invoke(self, index: int, parameters: Data | None, request: Request) -> Data | None:
        self.activate(request.now)  # activate_passive_calendar (data: integer 0)
        return None

    def activation_due(self) -> datetime | None:
        """activate_passive_calendar_time (UTC), or None while it is not specified."""
        raw = self.passive[10].get().octets()
        if raw == NOT_SPECIFIED:
            return None
        due = parse_date_time(raw)
        return None if self.refused is not None and self.refused[0] == due else due

    def _due(self, now: datetime) -> bool:
        due = self.activation_due()
        return due is not None and due <= now.astimezone(UTC)

    def activate_if_due(self, now: datetime) -> None:
        """P3 §5.4: activation at activate_passive_calendar_time ("immediate activation can be
        done by setting the activation date to the current date"). Scheduled: a calendar the
        twin cannot run is refused once (logged), never raised into every request's tick."""
        if self._due(now):
            self._scheduled(lambda: self.activate(now))

    def activate(self, now: datetime) -> None:
        program = self._passive_program()
        self.env.meter.act(lambda m, at: m.set_tariff_program(at, program))  # logs event 9
        self._activated(program)

    def activate_at(self, when: datetime) -> None:
        """Activate at meter time `when` while `ctl advance` integrates the model ahead of
        the clock (twin/fast_forward.py): event 9 and the new program at `when` itself."""

        def activate() -> None:
            program = self._passive_program()
            self.env.meter.model.set_tariff_program(when, program)
            self._activated(program)

        self._scheduled(activate)

    def _scheduled(self, activate: Callable[[], None]) -> None:
        due = self.activation_due()
        try:
            activate()
        except ObjectError as err:
            assert due is not None
            log.warning("passive calendar not activated at %s: %s", due.isoformat(), err)
            self.refused = (due, str(err))

    def _passive_program(self) -> TariffProgram:
        try:
            return program_of(
                self.passive[8].get(),
                self.passive[9].get(),
                self.special_days.get(),
                self.env.meter.model.program,
            )
        except ValueTypeError as err:
            raise ObjectError(DataAccessResult.OTHER_REASON, str(err)) from err

    def _activated(self, program: TariffProgram) -> None:
        self.env.meter.store.put_setting(TARIFF_SETTING, program_to_setting(program))
        self.active_name.set(self.passive[6].get())
        self.passive[10].set(octets(NOT_SPECIFIED))


_SEASON = struct(octets(b""), octets(NOT_SPECIFIED), octets(b""))
_WEEK = struct(octets(b""), *(u8(1) for _ in range(7)))
_DAY = struct(u8(1), array([switch(time(0, 0), LOW)]))


def _check_shape(index: int, value: Data) -> None:
    template = {7: _SEASON, 8: _WEEK, 9: _DAY}[index]
    if value.tag is not Tag.ARRAY or not 1 <= len(value.items) <= 4:
        raise ValueTypeError("calendar tables are array[1..4]")
    for item in value.items:
        conform(template, item) if index != 9 else _check_day(item)


def _check_day(item: Data) -> None:
    conform(struct(u8(0), array([])), item)
    for point in item.items[1].items:
        conform(switch(time(0, 0), LOW), point)
        parse_time_of_day(point.items[0])


class SpecialDays(CosemObject):
    """0-0:11.0.0: entries array[30] of {index, date os[5], day_id}; insert and delete."""

    class_id: ClassVar[int] = 11
    ENTRY = struct(u16(0), octets(bytes(5)), u8(0))

    def __init__(self, stored: Stored) -> None:
        super().__init__("0-0:11.0.0", {1: "/R/", 2: "/RW/"}, {1: "/X/", 2: "/X/"})
        self.stored = stored

    def read(self, index: int, request: Request) -> Data:
        return self.stored.get() if index == 2 else super().read(index, request)

    def write(self, index: int, value: Data, request: Request) -> None:
        self._save(list(value.items))

    def invoke(self, index: int, parameters: Data | None, request: Request) -> Data | None:
        if parameters is None:
            raise ValueTypeError("insert/delete need a parameter")
        entries = list(self.stored.get().items)
        if index == 1:
            new = conform(self.ENTRY, parameters)
            entries = [e for e in entries if e.items[0] != new.items[0]] + [new]
        else:
            index_ = parameters.expect(Tag.LONG_UNSIGNED).integer()
            entries = [e for e in entries if e.items[0].integer() != index_]
        self._save(entries)
        return None

    def _save(self, entries: list[Data]) -> None:
        if len(entries) > MAX_SPECIAL_DAYS:
            raise ObjectError(DataAccessResult.OTHER_REASON, "more than 30 special days")
        for entry in entries:
            conform(self.ENTRY, entry)
            _special_date(entry)
        self.stored.set(array(sorted(entries, key=lambda e: e.items[0].integer())))


def billing_schedule() -> CosemObject:
    """0-0:15.0.0 end of billing period 1 (class 22): midnight of the 1st of every month."""

    class SingleActionSchedule(Generic):
        class_id: ClassVar[int] = 22

    script = struct(octets(obis_bytes("0-0:10.0.1")), u16(1))
    when = array([struct(octets(bytes(4)), octets(bytes.fromhex("FFFFFF01FF")))])
    getters = {2: lambda _r: script, 3: lambda _r: enum_(1), 4: lambda _r: when}
    return SingleActionSchedule("0-0:15.0.0", dict.fromkeys(range(1, 5), "/R/"), getters)


def tariff_script_table() -> CosemObject:
    """0-0:10.0.100 (class 9): script 1 = tariff 1, script 2 = tariff 2 (P3 §5.4)."""

    class ScriptTable(Generic):
        class_id: ClassVar[int] = 9

    scripts = array([struct(u16(i), array([])) for i in (LOW, NORMAL)])
    return ScriptTable(
        SCRIPT_TABLE, {1: "/R/", 2: "/R/"}, {2: lambda _r: scripts}, methods={1: "/X/"}
    )


def tariff_objects(env: Env) -> tuple[ActivityCalendar, list[CosemObject]]:
    special = Stored(env.attrs, "special_days.entries", array([]))
    calendar = ActivityCalendar(env, special)
    return calendar, [calendar, SpecialDays(special), billing_schedule(), tariff_script_table()]
