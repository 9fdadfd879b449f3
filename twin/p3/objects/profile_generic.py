"""Profile generic (class 7, Blue Book §4.3.6) with selective access by range (selector 1)
and by entry (selector 2), and reset () (method 1) through a callback.

`select` is the selective access of every class 7 buffer: the profiles here and the readout
lists (readout.py) alike. gurux-dlms 1.0.203's GXDLMSProfileGeneric cannot serve either
selector, so the selection is done here and only the values go through the encoder. The DSMR
profiles are in profiles.py, mbus.py and definable.py.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from twin.p3.dlms.cosem import DataAccessResult
from twin.p3.objects.base import CosemObject, ObjectError, Request, obis_bytes, obis_text
from twin.p3.objects.values import (
    DATE_TIME_LENGTH,
    Data,
    Tag,
    ValueTypeError,
    array,
    enum_,
    i8,
    octets,
    parse_date_time,
    struct,
    u16,
    u32,
)

CLOCK = (8, "0-0:1.0.0", 2)
FIFO, SORTED_LARGEST = 1, 3
RANGE, ENTRY = 1, 2
NO_SORT_OBJECT = struct(u16(0), octets(bytes(6)), i8(0), u16(0))  # sort_object "none"


@dataclass(frozen=True, slots=True)
class Row:
    time: datetime
    values: tuple[Data, ...]  # one per capture object, the clock column included


Column = tuple[int, str, int]  # class id, OBIS, attribute index


def capture_definition(column: Column) -> Data:
    class_id, code, index = column
    return struct(u16(class_id), octets(obis_bytes(code)), i8(index), u16(0))


Reset = Callable[[datetime], None]  # clears the buffer; the argument is the meter time


class Profile(CosemObject):
    """A profile whose columns are fixed by the spec; the buffer comes from `rows` (oldest
    first) and `reset` (method 1, Blue Book §4.3.6) clears it in the store."""

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
        reset: Reset,
        sort: int = FIFO,
        attributes: Mapping[int, str] | None = None,
        methods: Mapping[int, str] | None = None,
    ) -> None:
        # P3 tables: every profile is management read only; reset (method 1) is X.
        rights = attributes or dict.fromkeys(range(1, 9), "/R/")
        super().__init__(code, rights, methods or {1: "/X/"})
        self.columns = tuple(columns)
        self.rows = rows
        self.period, self.entries, self.sort = period, entries, sort
        self.reset = reset

    def buffer_columns(self) -> tuple[Column, ...]:
        return self.columns

    def buffer_rows(self) -> list[Row]:
        """The buffer in its order (attribute 2), at most profile_entries rows."""
        return self.rows()[-self.entries :]

    def read(self, index: int, request: Request) -> Data:
        getter = self.getters.get(index)
        return super().read(index, request) if getter is None else getter()

    @property
    def getters(self) -> dict[int, Callable[[], Data]]:
        """Attributes 2..8; subclasses replace some (the definable profile's settings)."""
        return {
            2: lambda: buffer_of(self.buffer_rows(), range(len(self.buffer_columns()))),
            3: lambda: array([capture_definition(c) for c in self.buffer_columns()]),
            4: lambda: u32(self.period),
            5: lambda: enum_(self.sort),
            6: lambda: capture_definition(CLOCK) if self.sort == SORTED_LARGEST else NO_SORT_OBJECT,
            7: lambda: u32(len(self.buffer_rows())),
            8: lambda: u32(self.entries),
        }

    def read_selected(self, index: int, selector: int, parameters: Data, request: Request) -> Data:
        if index != 2:
            raise ObjectError(DataAccessResult.SCOPE_OF_ACCESS_VIOLATED)
        # A profile row's time is its clock column's value (every profile's first column).
        return select(self.buffer_rows(), self.buffer_columns(), selector, parameters, CLOCK)

    def invoke(self, index: int, parameters: Data | None, request: Request) -> Data | None:
        # reset (data) (Blue Book §4.3.6 method 1): the parameter (integer 0) carries nothing.
        if index != 1:
            raise ObjectError(DataAccessResult.READ_WRITE_DENIED)
        self.reset(request.now)
        return None


def select(
    rows: Sequence[Row],
    columns: Sequence[Column],
    selector: int,
    parameters: Data,
    timed_by: Column | None = None,
) -> Data:
    """Selective access to a class 7 buffer of `rows` with `columns` (Blue Book §4.3.6):

    - by range (selector 1), range_descriptor {restricting_object, from_value, to_value,
      selected_values}: the restricting object is one of the capture objects; a row is in
      range when that column's value lies within [from_value, to_value], compared as
      date-times or as integers (a value of another kind, or a date-time with unspecified
      fields, is in no range); selected_values chooses the columns, all when empty;
    - by entry (selector 2), entry_descriptor {from_entry, to_entry, from_selected_value,
      to_selected_value}: 1-based, oldest entry first, 0 = up to the last.

    `timed_by` names the column whose value is each row's `time` (a profile's clock): a range
    on it compares the times the rows carry instead of decoding every row's date-time.
    """
    if selector == RANGE:
        return _by_range(rows, columns, parameters, timed_by)
    if selector == ENTRY:
        return select_by_entry(rows, len(columns), parameters)
    raise ObjectError(DataAccessResult.SCOPE_OF_ACCESS_VIOLATED, f"selector {selector}")


def _by_range(
    rows: Sequence[Row], columns: Sequence[Column], parameters: Data, timed_by: Column | None
) -> Data:
    """range_descriptor {restricting_object, from_value, to_value, selected_values}."""
    restricting, low, high, selected = descriptor_items(parameters)
    key = column_of(restricting)
    if key not in columns:
        raise ObjectError(DataAccessResult.SCOPE_OF_ACCESS_VIOLATED, "not a capture object")
    wanted = selected_columns(columns, selected)
    if key == timed_by:
        start, end = _ordinal(low), _ordinal(high)
        if not (isinstance(start, datetime) and isinstance(end, datetime)):
            return buffer_of([], wanted)  # no date-time bounds: no row's time is within
        return buffer_of([r for r in rows if start <= r.time <= end], wanted)
    at = columns.index(key)
    return buffer_of([r for r in rows if _within(r.values[at], low, high)], wanted)


def _within(value: Data, low: Data, high: Data) -> bool:
    bounds = [_ordinal(d) for d in (value, low, high)]
    if None in bounds or len({type(b) for b in bounds}) != 1:
        return False  # values of different kinds: never within the range
    found, start, end = bounds
    return bool(start <= found <= end)  # type: ignore[operator]


def _ordinal(value: Data) -> datetime | int | None:
    """A value's place in an order: a fully specified date-time or an integer; else None."""
    if value.tag is Tag.OCTET_STRING and len(value.octets()) == DATE_TIME_LENGTH:
        try:
            return parse_date_time(value.octets())
        except ValueTypeError:
            return None
    try:
        return value.integer()
    except ValueTypeError:
        return None


def buffer_of(rows: Sequence[Row], columns: Sequence[int]) -> Data:
    """The buffer (array of structures) of `rows`, only the columns at `columns`."""
    return array([struct(*(row.values[i] for i in columns)) for row in rows])


def descriptor_items(value: Data) -> tuple[Data, ...]:
    """The four fields of a range_descriptor or entry_descriptor (Blue Book §4.3.6)."""
    items = value.items
    if len(items) != 4:
        raise ObjectError(DataAccessResult.SCOPE_OF_ACCESS_VIOLATED, "descriptor size")
    return items


def select_by_entry(rows: Sequence[Row], width: int, parameters: Data) -> Data:
    """entry_descriptor {from_entry, to_entry, from_selected_value, to_selected_value};
    1-based, 0 = up to the last (Blue Book §4.3.6); `width` columns per row."""
    items = descriptor_items(parameters)
    tags = (Tag.DOUBLE_LONG_UNSIGNED,) * 2 + (Tag.LONG_UNSIGNED,) * 2
    first, last, first_col, last_col = (
        d.expect(t).integer() for d, t in zip(items, tags, strict=True)
    )
    if first < 1 or first_col < 1 or (last and last < first) or (last_col and last_col < first_col):
        raise ObjectError(DataAccessResult.SCOPE_OF_ACCESS_VIOLATED, "bad entry range")
    stop = last or len(rows)
    cols = range(first_col - 1, min(last_col or width, width))
    return buffer_of(rows[first - 1 : stop], cols)


def selected_columns(columns: Sequence[Column], selected: Data) -> Sequence[int]:
    """The indexes of the selected_values of a range_descriptor (empty: all columns)."""
    if not selected.items:
        return range(len(columns))
    wanted = [column_of(d) for d in selected.items]
    if any(w not in columns for w in wanted):
        raise ObjectError(DataAccessResult.SCOPE_OF_ACCESS_VIOLATED, "unknown column")
    return [columns.index(w) for w in wanted]


def column_of(definition: Data) -> Column:
    items = definition.items
    if len(items) != 4:
        raise ObjectError(DataAccessResult.SCOPE_OF_ACCESS_VIOLATED, "capture object definition")
    class_id, code, index, _data_index = items
    raw = code.octets()
    if len(raw) != 6:
        raise ObjectError(DataAccessResult.SCOPE_OF_ACCESS_VIOLATED, "logical name")
    return class_id.integer(), obis_text(raw), index.integer()
