"""General local port readout 0-0:21.0.0 (class 7, P3 §5.11): the objects sent on P1.

capture_objects defaults to the P1 objects of the OBIS catalogue (the Standard Readout
Object List, P3 Annex B) and may be rewritten by the management client (array[64]); the
buffer is one entry: the current values of the captured attributes, read through the object
registry itself, so P1 and P3 show the same values. A capture object the meter does not
have reads as null-data.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from twin.catalogue import CATALOGUE
from twin.p3.cosem import AttributeRef, DataAccessResult
from twin.p3.objects.base import MANAGEMENT_SAP, CosemObject, ObjectError, Request, obis_bytes
from twin.p3.objects.env import Env
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

Reader = Callable[[AttributeRef], bytes | DataAccessResult]
MAX_CAPTURE_OBJECTS = 64
P1_PERIOD_S = 10


def definition(class_id: int, code: bytes, index: int) -> Data:
    return struct(u16(class_id), octets(code), i8(index), u16(0))


class ReadoutList(CosemObject):
    class_id: ClassVar[int] = 7
    version: ClassVar[int] = 1

    def __init__(self, env: Env, read: Reader, phases: int) -> None:
        rights = dict.fromkeys(range(1, 9), "/R/") | {3: "/RW/"}
        super().__init__("0-0:21.0.0", rights, {})
        p1 = [o for o in CATALOGUE if o.p1 is not None and phases >= o.min_phases]
        default = array([definition(o.cosem_class, obis_bytes(o.code), 2) for o in p1])
        self.columns = Stored(env.attrs, "0-0:21.0.0#3", default)
        self.read_attribute = read
        self.getters: dict[int, Callable[[], Data]] = {
            2: lambda: array([struct(*self._row())]),
            3: self.columns.get,
            4: lambda: u32(P1_PERIOD_S),
            5: lambda: enum_(1),
            6: lambda: struct(u16(0), octets(bytes(6)), i8(0), u16(0)),
            7: lambda: u32(1),
            8: lambda: u32(1),
        }

    def read(self, index: int, request: Request) -> Data:
        getter = self.getters.get(index)
        return super().read(index, request) if getter is None else getter()

    def write(self, index: int, value: Data, request: Request) -> None:
        if value.tag is not Tag.ARRAY or len(value.items) > MAX_CAPTURE_OBJECTS:
            raise ObjectError(DataAccessResult.TYPE_UNMATCHED, "array[64] of capture objects")
        for item in value.items:
            _ref_of(item)
        self.columns.put(value)

    def _row(self) -> list[Data]:
        values = []
        for item in self.columns.get().items:
            ref = _ref_of(item)
            if ref.obis == self.obis:
                values.append(null())  # a readout of itself would never end
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
    return ReadoutList(env, lambda ref: read(MANAGEMENT_SAP, ref), phases)
