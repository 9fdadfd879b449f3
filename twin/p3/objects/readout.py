"""Readout lists (class 7): the general local port readout 0-0:21.0.0 (P3 §5.11, what P1
sends) and the display readout lists 0-0:21.0.1 auto scroll, 0-0:21.0.2 alternate (manual
scroll) and 0-0:21.0.3 service mode (§5.15).

capture_objects defaults to the Standard Readout Object List (P3 Annex B) and may be rewritten
by the management client (array[64]); the buffer is one entry: the current values of the
captured attributes, read through the object registry itself, so P1, the display lists and P3
show the same values. A capture object the meter does not have, or another readout list (a
readout of a readout would never end), reads as null-data. "The values are not stored in the
Display Readout Objects" (§5.15): the buffer is the last readout, taken every capture_period
(10 s); reset() empties it until the next one.

The Annex B defaults are in twin/readout_lists.py, shared with the display, which reads the
lists through `DisplayLists` (a `twin.readout_lists.ReadoutLists`) when P3 runs.

The buffer (attribute 2) allows the selective access class 7 defines (Blue Book §4.3.6),
the profiles' own (`profile_generic.select`): by entry (selector 2, also choosing columns) and
by range (selector 1), restricted by one of the capture objects. A value of another kind than
the bounds (a register against a time range, as Gurux sends with the first capture object) is
in no range: the answer is an empty buffer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import ClassVar

from twin.catalogue import CATALOGUE
from twin.p3.dlms.cosem import AttributeRef, DataAccessResult
from twin.p3.objects.base import (
    MANAGEMENT_SAP,
    CosemObject,
    ObjectError,
    Request,
    obis_bytes,
    obis_text,
)
from twin.p3.objects.env import Env
from twin.p3.objects.profile_generic import (
    ENTRY,
    RANGE,
    Row,
    column_of,
    select,
)
from twin.p3.objects.simple import Stored
from twin.p3.objects.values import (
    Data,
    Tag,
    array,
    decode,
    enum_,
    i8,
    null,
    octets,
    struct,
    u16,
    u32,
)
from twin.readout_lists import DISPLAY_LISTS, Column, annex_b

Reader = Callable[[AttributeRef], bytes | DataAccessResult]
MAX_CAPTURE_OBJECTS = 64
CAPTURE_PERIOD_S = 10  # P1 update period and display readout period (P3 §5.11, §5.15)
P1_PERIOD_S = CAPTURE_PERIOD_S
P1_READOUT = "0-0:21.0.0"
READOUT_LISTS = frozenset(obis_bytes(f"0-0:21.0.{i}") for i in range(4))


def definition(class_id: int, code: bytes, index: int) -> Data:
    return struct(u16(class_id), octets(code), i8(index), u16(0))


def columns_of(entries: tuple[Column, ...] | list[Column]) -> Data:
    return array([definition(c, obis_bytes(code), index) for c, code, index in entries])


class ReadoutList(CosemObject):
    class_id: ClassVar[int] = 7
    version: ClassVar[int] = 1
    selectors: ClassVar[dict[int, tuple[int, ...]]] = {2: (RANGE, ENTRY)}

    def __init__(
        self,
        env: Env,
        code: str,
        default: Data,
        read: Reader,
        methods: Mapping[int, str] | None = None,
    ) -> None:
        rights = dict.fromkeys(range(1, 9), "/R/") | {3: "/RW/"}
        super().__init__(code, rights, methods or {})
        self.columns = Stored(env.attrs, f"{code}#3", default)
        self.read_attribute = read
        self._empty_until: datetime | None = None  # after reset(): no readout until then
        self.getters: dict[int, Callable[[Request], Data]] = {
            2: lambda r: array([struct(*self._row())] if self._captured(r.now) else []),
            3: lambda _r: self.columns.get(),
            4: lambda _r: u32(CAPTURE_PERIOD_S),
            5: lambda _r: enum_(1),  # unsorted (FIFO)
            6: lambda _r: struct(u16(0), octets(bytes(6)), i8(0), u16(0)),  # none
            7: lambda r: u32(1 if self._captured(r.now) else 0),
            8: lambda _r: u32(1),
        }

    def read(self, index: int, request: Request) -> Data:
        getter = self.getters.get(index)
        return super().read(index, request) if getter is None else getter(request)

    def read_selected(self, index: int, selector: int, parameters: Data, request: Request) -> Data:
        if index != 2:
            raise ObjectError(DataAccessResult.SCOPE_OF_ACCESS_VIOLATED)
        columns = [column_of(item) for item in self.columns.get().items]
        rows = [Row(request.now, tuple(self._row()))] if self._captured(request.now) else []
        return select(rows, columns, selector, parameters)

    def write(self, index: int, value: Data, request: Request) -> None:
        if value.tag is not Tag.ARRAY or len(value.items) > MAX_CAPTURE_OBJECTS:
            raise ObjectError(DataAccessResult.TYPE_UNMATCHED, "array[64] of capture objects")
        for item in value.items:
            _ref_of(item)
        self.columns.put(value)

    def invoke(self, index: int, parameters: Data | None, request: Request) -> Data | None:
        """reset() (data: integer 0): the buffer is empty until the next capture; capture()
        has no access rights in §5.15 (the meter captures every capture_period itself)."""
        period = CAPTURE_PERIOD_S
        self._empty_until = datetime.fromtimestamp(
            (request.now.timestamp() // period + 1) * period, request.now.tzinfo
        )
        return None

    def codes(self) -> tuple[str, ...]:
        """The OBIS codes of the capture objects, in order (read-only view for the display)."""
        return tuple(obis_text(_ref_of(item).obis) for item in self.columns.get().items)

    def _captured(self, now: datetime) -> bool:
        return self._empty_until is None or now >= self._empty_until

    def _row(self) -> list[Data]:
        values = []
        for item in self.columns.get().items:
            ref = _ref_of(item)
            if ref.obis in READOUT_LISTS:
                values.append(null())  # a readout of a readout list would never end
                continue
            raw = self.read_attribute(ref)
            values.append(null() if isinstance(raw, DataAccessResult) else decode(raw))
        return values


def _ref_of(item: Data) -> AttributeRef:
    """capture_object_definition {class_id, logical_name, attribute_index, data_index}."""
    if item.tag is not Tag.STRUCTURE or len(item.items) != 4:
        raise ObjectError(DataAccessResult.TYPE_UNMATCHED, "capture object definition")
    class_id, code, index, _data_index = item.items
    raw = code.octets()
    if len(raw) != 6:
        raise ObjectError(DataAccessResult.TYPE_UNMATCHED, "logical name")
    return AttributeRef(
        class_id.expect(Tag.LONG_UNSIGNED).integer(), raw, index.expect(Tag.INTEGER).integer()
    )


def p1_readout(
    env: Env, read: Callable[[int, AttributeRef], bytes | DataAccessResult]
) -> ReadoutList:
    phases = env.meter.config.meter.phases
    p1 = [o for o in CATALOGUE if o.p1 is not None and phases >= o.min_phases]
    default = columns_of([(o.cosem_class, o.code, 2) for o in p1])
    return ReadoutList(env, P1_READOUT, default, lambda ref: read(MANAGEMENT_SAP, ref))


def display_readouts(
    env: Env, read: Callable[[int, AttributeRef], bytes | DataAccessResult]
) -> list[ReadoutList]:
    """0-0:21.0.1..3 (P3 §5.15): reset() for management; capture() is listed without rights."""
    lists = annex_b(env.meter.config.meter.phases)
    return [
        ReadoutList(
            env,
            code,
            columns_of(columns),
            lambda ref: read(MANAGEMENT_SAP, ref),
            {1: "/X/", 2: "//"},
        )
        for code, columns in lists.items()
    ]


class DisplayLists:
    """The display's read-only view of 0-0:21.0.1..3 (a `twin.readout_lists.ReadoutLists`):
    what the management client wrote, else the Annex B default."""

    def __init__(self, lists: list[ReadoutList]) -> None:
        self._lists = {obj.code: obj for obj in lists if obj.code in DISPLAY_LISTS}

    def codes(self, list_code: str) -> tuple[str, ...]:
        return self._lists[list_code].codes()
