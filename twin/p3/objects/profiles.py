"""Profile generic (class 7): load profiles, billing profile and event logs (P3 §5.5, §5.7-
§5.10, §6.3, §7.4-§7.5), with selective access by range (selector 1, on the clock column) and
by entry (selector 2), Blue Book §4.3.6. Buffers are oldest entry first (FIFO, sort_method 1).

gurux's GXDLMSProfileGeneric cannot serve either selector (p3.md §2.4 N), so the selection is
done here and only the values go through the gurux encoder.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from twin.meter.events import EventLog
from twin.meter.profiles import DAILY_PROFILE_ENTRIES, LOAD_PROFILE_ENTRIES, MONTHLY_PROFILE_ENTRIES
from twin.p3.cosem import DataAccessResult
from twin.p3.objects.base import CosemObject, ObjectError, Request, obis_bytes
from twin.p3.objects.env import Env
from twin.p3.objects.simple import DataObject
from twin.p3.objects.values import (
    Data,
    Tag,
    array,
    date_time,
    enum_,
    i8,
    null,
    octets,
    parse_date_time,
    struct,
    u8,
    u16,
    u32,
)

CLOCK = (8, "0-0:1.0.0", 2)
FIFO, SORTED_LARGEST = 1, 3
RANGE, ENTRY = 1, 2


@dataclass(frozen=True, slots=True)
class Row:
    time: datetime
    values: tuple[Data, ...]  # one per capture object, the clock column included


Column = tuple[int, str, int]  # class id, OBIS, attribute index


def capture_definition(column: Column) -> Data:
    class_id, code, index = column
    return struct(u16(class_id), octets(obis_bytes(code)), i8(index), u16(0))


class Profile(CosemObject):
    class_id: ClassVar[int] = 7
    version: ClassVar[int] = 1
    selectors: ClassVar[dict[int, tuple[int, ...]]] = {2: (RANGE, ENTRY)}

    def __init__(
        self,
        code: str,
        columns: Sequence[Column],
        rows: Callable[[], list[Row]],
        *,
        period: int,
        entries: int,
        sort: int = FIFO,
    ) -> None:
        # P3 tables: every profile is management read only; reset (method 1) is X.
        rights = dict.fromkeys(range(1, 9), "/R/")
        super().__init__(code, rights, {1: "/X/"})
        self.columns = tuple(columns)
        self.rows = rows
        self.period, self.entries, self.sort = period, entries, sort

        self.getters: dict[int, Callable[[], Data]] = {
            2: lambda: _buffer(self.rows()[-self.entries :], range(len(self.columns))),
            3: lambda: array([capture_definition(c) for c in self.columns]),
            4: lambda: u32(self.period),
            5: lambda: enum_(self.sort),
            6: lambda: capture_definition(CLOCK) if self.sort == SORTED_LARGEST else _no_sort(),
            7: lambda: u32(min(len(self.rows()), self.entries)),
            8: lambda: u32(self.entries),
        }

    def read(self, index: int, request: Request) -> Data:
        getter = self.getters.get(index)
        return super().read(index, request) if getter is None else getter()

    def read_selected(self, index: int, selector: int, parameters: Data, request: Request) -> Data:
        if index != 2:
            raise ObjectError(DataAccessResult.SCOPE_OF_ACCESS_VIOLATED)
        rows = self.rows()[-self.entries :]
        if selector == RANGE:
            return self._by_range(rows, parameters)
        if selector == ENTRY:
            return self._by_entry(rows, parameters)
        raise ObjectError(DataAccessResult.SCOPE_OF_ACCESS_VIOLATED, f"selector {selector}")

    def _by_range(self, rows: list[Row], parameters: Data) -> Data:
        """range_descriptor {restricting_object, from_value, to_value, selected_values}."""
        restricting, low, high, selected = _items(parameters, 4)
        if _column_of(restricting) != CLOCK:
            raise ObjectError(DataAccessResult.SCOPE_OF_ACCESS_VIOLATED, "range not on clock")
        start, end = _when(low), _when(high)
        picked = [r for r in rows if start <= r.time <= end]
        return _buffer(picked, self._selected_columns(selected))

    def _by_entry(self, rows: list[Row], parameters: Data) -> Data:
        """entry_descriptor {from_entry, to_entry, from_selected_value, to_selected_value};
        1-based, 0 = up to the last (Blue Book §4.3.6)."""
        items = _items(parameters, 4)
        tags = (Tag.DOUBLE_LONG_UNSIGNED,) * 2 + (Tag.LONG_UNSIGNED,) * 2
        first, last, first_col, last_col = (
            d.expect(t).integer() for d, t in zip(items, tags, strict=True)
        )
        if (
            first < 1
            or first_col < 1
            or (last and last < first)
            or (last_col and last_col < first_col)
        ):
            raise ObjectError(DataAccessResult.SCOPE_OF_ACCESS_VIOLATED, "bad entry range")
        stop = last or len(rows)
        cols = range(first_col - 1, min(last_col or len(self.columns), len(self.columns)))
        return _buffer(rows[first - 1 : stop], cols)

    def _selected_columns(self, selected: Data) -> Sequence[int]:
        if not selected.items:
            return range(len(self.columns))
        wanted = [_column_of(d) for d in selected.items]
        if any(w not in self.columns for w in wanted):
            raise ObjectError(DataAccessResult.SCOPE_OF_ACCESS_VIOLATED, "unknown column")
        return [self.columns.index(w) for w in wanted]

    def invoke(self, index: int, parameters: Data | None, request: Request) -> Data | None:
        # reset (method 1): the store keeps the history and has no way to clear it yet.
        raise ObjectError(DataAccessResult.OTHER_REASON, "profile reset not supported")


def _buffer(rows: Sequence[Row], columns: Sequence[int]) -> Data:
    return array([struct(*(row.values[i] for i in columns)) for row in rows])


def _no_sort() -> Data:
    return struct(u16(0), octets(bytes(6)), i8(0), u16(0))


def _items(value: Data, count: int) -> tuple[Data, ...]:
    items = value.items
    if len(items) != count:
        raise ObjectError(DataAccessResult.SCOPE_OF_ACCESS_VIOLATED, "descriptor size")
    return items


def _column_of(definition: Data) -> Column:
    items = definition.items
    if len(items) != 4:
        raise ObjectError(DataAccessResult.SCOPE_OF_ACCESS_VIOLATED, "capture object definition")
    class_id, code, index, _data_index = items
    raw = code.octets()
    if len(raw) != 6:
        raise ObjectError(DataAccessResult.SCOPE_OF_ACCESS_VIOLATED, "logical name")
    text = f"{raw[0]}-{raw[1]}:{raw[2]}.{raw[3]}.{raw[4]}"
    return class_id.integer(), text, index.integer()


def _when(value: Data) -> datetime:
    when = parse_date_time(value.octets())
    if when is None:
        raise ObjectError(DataAccessResult.SCOPE_OF_ACCESS_VIOLATED, "range bound not a time")
    return when


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

    return Profile("1-0:99.1.0", columns, rows, period=900, entries=LOAD_PROFILE_ENTRIES)


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

    return Profile("1-0:99.2.0", columns, rows, period=86400, entries=DAILY_PROFILE_ENTRIES)


def billing_profile(env: Env) -> Profile:
    """0-0:98.1.0: monthly, triggered by 0-0:15.0.0 (period 0), 13 entries (P3 §5.5)."""
    energy = [(3, c, 2) for c in ("1-0:1.8.1", "1-0:1.8.2", "1-0:2.8.1", "1-0:2.8.2")]
    columns = [CLOCK, *energy, *mbus_columns(range(1, 5))]

    def rows() -> list[Row]:
        return [
            Row(r.time, (date_time(r.time), *map(u32, r.energy_wh), *mbus_values(r.mbus)))
            for r in env.store().monthly_profile()[-MONTHLY_PROFILE_ENTRIES:]
        ]

    return Profile("0-0:98.1.0", columns, rows, period=0, entries=MONTHLY_PROFILE_ENTRIES)


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

    return Profile(log.obis, columns, rows, period=0, entries=log.capacity)


def power_failure_log(env: Env) -> Profile:
    """1-0:99.97.0: {clock = end of failure; duration 0-0:96.7.19}, 10 entries (§5.9)."""
    columns = [CLOCK, (3, "0-0:96.7.19", 2)]

    def rows() -> list[Row]:
        log = reversed(env.reading().failure_log)  # the reading keeps the newest first
        return [Row(f.end, (date_time(f.end), u32(f.duration_s))) for f in log]

    return Profile("1-0:99.97.0", columns, rows, period=0, entries=10)


def event_code_objects(env: Env) -> list[CosemObject]:
    """0-0:96.11.x (class 1, unsigned): the last event code of each log."""

    def last(log: EventLog) -> Callable[[Request], Data]:
        def read(_r: Request) -> Data:
            events = env.store().events(log, 1)
            return u8(events[-1].code if events else 0)

        return read

    return [DataObject(code, "/R/", last(log)) for log, code in EVENT_CODE_OBJECTS.items()]
