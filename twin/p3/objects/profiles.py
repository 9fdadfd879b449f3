"""The DSMR profile generic objects (P3 §5.5, §5.7-§5.10, §6.3): load profile, daily and
billing profiles, event logs and the power failure log. Buffers are oldest entry first (FIFO,
sort_method 1) and come from the store. reset () (method 1) clears a buffer durably in the
store; a cleared event log starts again with event 255 "Event log cleared" (P3 §4.2.1).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from twin.meter.events import EventLog
from twin.meter.profiles import DAILY_PROFILE_ENTRIES, LOAD_PROFILE_ENTRIES, MONTHLY_PROFILE_ENTRIES
from twin.p3.objects.base import CosemObject, Request
from twin.p3.objects.env import Env
from twin.p3.objects.profile_generic import (
    CLOCK,
    ENTRY,
    FIFO,
    NO_SORT_OBJECT,
    RANGE,
    SORTED_LARGEST,
    Column,
    Profile,
    Reset,
    Row,
    capture_definition,
    column_of,
)
from twin.p3.objects.simple import DataObject
from twin.p3.objects.values import Data, date_time, null, u8, u16, u32

__all__ = [  # the class-7 machinery is re-exported for the other profile builders
    "CLOCK",
    "ENTRY",
    "FIFO",
    "NO_SORT_OBJECT",
    "RANGE",
    "SORTED_LARGEST",
    "Column",
    "Profile",
    "Reset",
    "Row",
    "billing_profile",
    "capture_definition",
    "column_of",
    "daily_profile",
    "event_code_objects",
    "event_log",
    "load_profile",
    "power_failure_log",
]


# ---------------------------------------------------------------- the DSMR profiles


def mbus_columns(channels: range) -> list[Column]:
    return [(4, f"0-{c}:24.2.1", a) for c in channels for a in (2, 5)]


def mbus_values(mbus: tuple[tuple[int, int, datetime | None], ...]) -> tuple[Data, ...]:
    """Value and capture time of channels 1..4; null-data where no device is installed."""
    by_channel = {c: (v, t) for c, v, t in mbus}
    out: list[Data] = []
    for channel in range(1, 5):
        value, when = by_channel.get(channel, (None, None))
        out.append(null() if value is None else u32(value))
        out.append(null() if when is None else date_time(when))
    return tuple(out)


def load_profile(env: Env) -> Profile:
    """1-0:99.1.0: {clock; AMR status; +A; -A}, 900 s, 960 entries (P3 §6.3)."""
    columns = [CLOCK, (1, "0-0:96.10.2", 2), (3, "1-0:1.8.0", 2), (3, "1-0:2.8.0", 2)]

    def rows() -> list[Row]:
        return [
            Row(r.time, (date_time(r.time), u8(r.status), u32(r.import_wh), u32(r.export_wh)))
            for r in env.store().load_profile()[-LOAD_PROFILE_ENTRIES:]
        ]

    def reset(_now: datetime) -> None:
        env.store().clear_load_profile()  # env.store() commits first: nothing pending survives

    return Profile(
        "1-0:99.1.0", columns, rows, period=900, entries=LOAD_PROFILE_ENTRIES, reset=reset
    )


def daily_profile(env: Env) -> Profile:
    """1-0:99.2.0: clock, status, four tariff registers, M-Bus 1..4 value and capture time."""
    energy = [(3, c, 2) for c in ("1-0:1.8.1", "1-0:1.8.2", "1-0:2.8.1", "1-0:2.8.2")]
    columns = [CLOCK, (1, "0-0:96.10.2", 2), *energy, *mbus_columns(range(1, 5))]

    def rows() -> list[Row]:
        return [
            Row(
                r.time,
                (date_time(r.time), u8(r.status), *map(u32, r.energy_wh), *mbus_values(r.mbus)),
            )
            for r in env.store().daily_profile()[-DAILY_PROFILE_ENTRIES:]
        ]

    def reset(_now: datetime) -> None:
        env.store().clear_daily_profile()

    return Profile(
        "1-0:99.2.0", columns, rows, period=86400, entries=DAILY_PROFILE_ENTRIES, reset=reset
    )


def billing_profile(env: Env) -> Profile:
    """0-0:98.1.0: monthly, triggered by 0-0:15.0.0 (period 0), 13 entries (P3 §5.5)."""
    energy = [(3, c, 2) for c in ("1-0:1.8.1", "1-0:1.8.2", "1-0:2.8.1", "1-0:2.8.2")]
    columns = [CLOCK, *energy, *mbus_columns(range(1, 5))]

    def rows() -> list[Row]:
        return [
            Row(r.time, (date_time(r.time), *map(u32, r.energy_wh), *mbus_values(r.mbus)))
            for r in env.store().monthly_profile()[-MONTHLY_PROFILE_ENTRIES:]
        ]

    def reset(_now: datetime) -> None:
        env.store().clear_monthly_profile()

    return Profile(
        "0-0:98.1.0", columns, rows, period=0, entries=MONTHLY_PROFILE_ENTRIES, reset=reset
    )


EVENT_CODE_OBJECTS = {
    EventLog.STANDARD: "0-0:96.11.0",
    EventLog.FRAUD: "0-0:96.11.1",
    EventLog.MBUS: "0-0:96.11.3",
    EventLog.COMMUNICATION: "0-0:96.11.4",
}


def event_log(env: Env, log: EventLog) -> Profile:
    """Event logs {clock; event code} (+ comlog counter for 0-0:99.98.4), asynchronous."""
    columns: list[Column] = [CLOCK, (1, EVENT_CODE_OBJECTS[log], 2)]
    comm = log is EventLog.COMMUNICATION
    if comm:
        columns.append((1, "0-1:94.31.7", 2))  # counter column (0 for codes 71/72; §5.10)

    def rows() -> list[Row]:
        out = []
        for e in env.store().events(log):
            extra = (u16(env.comlog.counter_of(e.when, e.code)),) if comm else ()
            out.append(Row(e.when, (date_time(e.when), u8(e.code), *extra)))
        return out

    def reset(now: datetime) -> None:
        env.store().clear_events(log, now)  # event 255 first, stamped now (P3 §4.2.1)

    return Profile(log.obis, columns, rows, period=0, entries=log.capacity, reset=reset)


def power_failure_log(env: Env) -> Profile:
    """1-0:99.97.0: {clock = end of failure; duration 0-0:96.7.19}, 10 entries (§5.9)."""
    columns = [CLOCK, (3, "0-0:96.7.19", 2)]

    def rows() -> list[Row]:
        log = reversed(env.reading().failure_log)  # the reading keeps the newest first
        return [Row(f.end, (date_time(f.end), u32(f.duration_s))) for f in log]

    def reset(_now: datetime) -> None:
        # The log lives in the meter state (it is part of every checkpoint); the counters
        # 0-0:96.7.21 / 0-0:96.7.9 are not part of the buffer and keep counting.
        env.meter.act(lambda model, _at: model.state.failure_log.clear())

    return Profile("1-0:99.97.0", columns, rows, period=0, entries=10, reset=reset)


def event_code_objects(env: Env) -> list[CosemObject]:
    """0-0:96.11.x (class 1, unsigned): the last event code of each log."""

    def last(log: EventLog) -> Callable[[Request], Data]:
        def read(_r: Request) -> Data:
            events = env.store().events(log, 1)
            return u8(events[-1].code if events else 0)

        return read

    return [DataObject(code, "/R/", last(log)) for log, code in EVENT_CODE_OBJECTS.items()]
