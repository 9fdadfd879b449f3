"""General local port readout 0-0:21.0.0 (P3 §5.11): the P1 objects with their values."""

from __future__ import annotations

from dlms_cosem import time as dlms_time

from tests.unit.p3.objects.conftest import Twin, big_set, read
from twin.catalogue import CATALOGUE
from twin.p3.objects import values as v


def _code(raw: bytes) -> str:
    return f"{raw[0]}-{raw[1]}:{raw[2]}.{raw[3]}.{raw[4]}"


def test_readout_list_is_the_p1_list_with_live_values(twin: Twin) -> None:
    twin.meter.act(lambda m, now: m.set_load_override(now, 1500.0))
    client = twin.management()
    columns = read(client, 7, "0-0:21.0.0", 3)
    p1 = [o.code for o in CATALOGUE if o.p1 is not None]
    assert [_code(bytes(c[1])) for c in columns] == p1
    (row,) = read(client, 7, "0-0:21.0.0", 2)
    values = dict(zip(p1, row, strict=True))
    reading = twin.meter.publish()
    assert values["1-0:1.8.1"] == reading.energy_wh["1-0:1.8.1"]
    assert values["1-0:1.7.0"] == reading.import_w == 1500
    assert bytes(values["0-0:96.1.1"]) == b"E0099000000000018"
    assert dlms_time.datetime_from_bytes(bytes(values["0-0:1.0.0"]))[0] == twin.meter.now()
    assert None not in row
    assert read(client, 7, "0-0:21.0.0", 4) == 10
    assert read(client, 7, "0-0:21.0.0", 8) == 1


def test_readout_list_can_be_rewritten(twin: Twin) -> None:
    client = twin.management()
    mine = v.array(
        [
            v.struct(v.u16(1), v.octets(bytes([0, 0, 96, 1, 1, 255])), v.i8(2), v.u16(0)),
            v.struct(v.u16(7), v.octets(bytes([0, 0, 21, 0, 0, 255])), v.i8(2), v.u16(0)),
            v.struct(v.u16(3), v.octets(bytes([1, 0, 99, 9, 9, 255])), v.i8(2), v.u16(0)),
        ]
    )
    assert big_set(client, 7, "0-0:21.0.0", 3, v.encode(mine)) == 0
    (row,) = read(client, 7, "0-0:21.0.0", 2)
    assert row == [bytearray(b"E0099000000000018"), None, None]  # itself and unknown: null
    assert big_set(client, 7, "0-0:21.0.0", 3, v.encode(v.array([v.u8(1)]))) == 12
