"""Every attribute of every object, for every client: readable where the tables allow, denied
elsewhere, and always a well-formed A-XDR value (decoded by gurux and by our strict parser)."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.unit.p3.objects.conftest import Twin, advance, gx_decode
from twin.meter.state import MbusReading
from twin.p3.dlms.cosem import AttributeRef, DataAccessResult, SelectiveAccess
from twin.p3.objects import values as v


def test_every_attribute_reads_or_is_denied(twin: Twin) -> None:
    capture = datetime(2026, 11, 23, 19, 0, tzinfo=UTC)
    twin.meter.act(lambda m, _n: m.set_mbus_value(MbusReading(1, 3, "G1", 5, capture)))
    advance(twin, 3600)
    objects = list(twin.objects.objects())
    assert len({o.obis for o in objects}) == len(objects)
    for obj in objects:
        for index, rights in obj.attributes.items():
            ref = AttributeRef(obj.class_id, obj.obis, index)
            for client in (16, 1, 102):
                result = twin.objects.get(client, ref, None)
                if not rights.allows(client, "R"):
                    assert result is DataAccessResult.READ_WRITE_DENIED, (obj.code, index, client)
                    continue
                assert isinstance(result, bytes), (obj.code, index, client, result)
                v.decode(result)
                gx_decode(result)
            if index == 1:
                assert twin.objects.get(1, ref, None) == v.encode(v.octets(obj.obis))


def test_no_object_is_open_to_the_pre_established_client(twin: Twin) -> None:
    objects = list(twin.objects.objects())
    assert not [o.code for o in objects if o.visible_to(102)]  # P3 §2.1.2
    assert all(o.visible_to(1) for o in objects)


def test_p0_setup_objects(twin: Twin) -> None:
    get = twin.objects.get
    hdlc = bytes([0, 0, 22, 0, 0, 255])
    assert get(1, AttributeRef(23, hdlc, 9), None) == v.encode(v.u16(17))
    assert get(1, AttributeRef(23, hdlc, 8), None) == v.encode(v.u16(120))
    local = bytes([0, 0, 20, 0, 0, 255])
    assert get(1, AttributeRef(19, local, 3), None) == v.encode(v.enum_(5))  # 9600 baud
    assert (
        twin.objects.set(1, AttributeRef(19, local, 3), None, b"\x16\x06")
        is DataAccessResult.READ_WRITE_DENIED
    )


GARBAGE = [
    v.null(),
    v.u8(1),
    v.i32(-1),
    v.octets(b"\xff" * 5),
    v.struct(v.u8(1)),
    v.array([v.u16(1)]),
    v.bits("1"),
]


def test_wrong_values_never_break_the_model(twin: Twin) -> None:
    """Every writable attribute and every method answers a result for any value: the
    core never sees an exception from the object model."""
    for obj in list(twin.objects.objects()):
        for index, rights in obj.attributes.items():
            if rights.allows(1, "W"):
                ref = AttributeRef(obj.class_id, obj.obis, index)
                for value in GARBAGE:
                    assert isinstance(
                        twin.objects.set(1, ref, None, v.encode(value)), DataAccessResult
                    )
        for index in obj.methods:
            ref = AttributeRef(obj.class_id, obj.obis, index)
            for value in [*GARBAGE, None]:
                parameters = None if value is None else v.encode(value)
                twin.objects.action(1, ref, parameters)  # returns an ActionOutcome, never raises


def test_wrong_selectors_never_break_the_model(twin: Twin) -> None:
    descriptors = [*GARBAGE, v.struct(v.u8(1), v.u8(2), v.u8(3), v.u8(4))]
    descriptors.append(v.struct(v.struct(v.u8(1)), v.octets(b""), v.octets(b""), v.array([])))
    for obj in list(twin.objects.objects()):
        if obj.class_id != 7:
            continue
        ref = AttributeRef(7, obj.obis, 2)
        for selector in (0, 1, 2, 3):
            for value in descriptors:
                access = SelectiveAccess(selector, v.encode(value))
                assert twin.objects.get(1, ref, access) is DataAccessResult.SCOPE_OF_ACCESS_VIOLATED
