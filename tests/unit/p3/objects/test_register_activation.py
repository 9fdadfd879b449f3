"""Register activation 0-0:14.0.0 (class 6, P3 §5.4): the energy registers, one mask per tariff,
active_mask = the currently active tariff 0-0:96.14.0; writes and methods validated and kept."""

from __future__ import annotations

from pathlib import Path

from tests.unit.p3.objects.conftest import Twin, advance, make_twin, method, read, ref, write
from twin.p3.dlms.cosem import ActionResult, DataAccessResult
from twin.p3.objects import values as v
from twin.p3.objects.base import obis_bytes

ACT = "0-0:14.0.0"
T1, T2 = b"\x00\x01", b"\x00\x02"
ENERGY = ("1-0:1.8.1", "1-0:1.8.2", "1-0:2.8.1", "1-0:2.8.2")


def registers(*codes: str) -> v.Data:
    return v.array([v.struct(v.u16(3), v.octets(obis_bytes(c))) for c in codes])


def mask(name: bytes, *indices: int) -> v.Data:
    return v.struct(v.octets(name), v.array([v.u8(i) for i in indices]))


def set_attr(twin: Twin, index: int, value: v.Data) -> DataAccessResult:
    return twin.objects.set(1, ref(6, ACT, index), None, v.encode(value))


def call(twin: Twin, index: int, value: v.Data) -> ActionResult:
    return twin.objects.action(1, ref(6, ACT, index), v.encode(value)).result


def test_defaults_assign_the_energy_registers_to_one_mask_per_tariff(twin: Twin) -> None:
    client = twin.management()
    assigned = read(client, 6, ACT, 2)
    assert [(c, bytes(n)) for c, n in assigned] == [(3, obis_bytes(code)) for code in ENERGY]
    masks = read(client, 6, ACT, 3)
    assert [(bytes(n), i) for n, i in masks] == [(T1, [1, 3]), (T2, [2, 4])]


def test_active_mask_is_the_active_tariff(twin: Twin) -> None:
    client = twin.management()  # Monday 21:00 local: tariff 2
    assert bytes(read(client, 6, ACT, 4)) == T2 == bytes(read(client, 1, "0-0:96.14.0", 2))
    advance(twin, 2 * 3600)  # 23:00 local: tariff 1
    assert bytes(read(client, 6, ACT, 4)) == T1 == bytes(read(client, 1, "0-0:96.14.0", 2))


def test_writing_the_active_mask_cannot_overrule_the_calendar(twin: Twin) -> None:
    client = twin.management()
    assert write(client, 6, ACT, 4, v.encode(v.octets(T2))) == 0  # the active one: no-op
    assert write(client, 6, ACT, 4, v.encode(v.octets(T1))) == DataAccessResult.OTHER_REASON
    assert write(client, 6, ACT, 4, v.encode(v.u16(1))) == DataAccessResult.TYPE_UNMATCHED
    assert bytes(read(client, 6, ACT, 4)) == T2
    assert twin.meter.publish().tariff == 2


def test_written_lists_are_read_back_and_survive_a_restart(tmp_path: Path) -> None:
    twin = make_twin(tmp_path)
    client = twin.management()
    masks = v.array([mask(T1, 1), mask(T2, 2, 3), mask(b"ALL", 1, 2, 3)])
    assert write(client, 6, ACT, 3, v.encode(masks)) == 0
    twin.meter.store.close()
    again = make_twin(tmp_path)
    assert [bytes(n) for n, _ in read(again.management(), 6, ACT, 3)] == [T1, T2, b"ALL"]
    again.meter.store.close()


def test_bad_writes_are_refused_and_change_nothing(twin: Twin) -> None:
    unmatched, other = DataAccessResult.TYPE_UNMATCHED, DataAccessResult.OTHER_REASON
    assert set_attr(twin, 3, v.array([mask(T1, 1)] * 2)) is other  # a name used twice
    assert set_attr(twin, 3, v.array([mask(T1, 5)])) is other  # only 4 registers assigned
    assert set_attr(twin, 3, v.array([mask(T1, 0)])) is other
    assert set_attr(twin, 3, v.array([mask(bytes([i]), 1) for i in range(9)])) is unmatched
    assert set_attr(twin, 3, v.array([mask(T1, *([1] * 65))])) is unmatched  # index_list[64]
    assert set_attr(twin, 3, v.array([v.struct(v.octets(T1), v.array([v.u16(1)]))])) is unmatched
    assert set_attr(twin, 2, registers(*ENERGY[:2])) is other  # masks still name 3 and 4
    assert set_attr(twin, 2, registers(*ENERGY, ENERGY[0])) is other  # assigned twice
    assert set_attr(twin, 2, v.array([v.struct(v.u16(1), v.octets(bytes(6)))])) is other
    many = v.array([v.struct(v.u16(3), v.octets(bytes([1, 0, 1, 8, i, 255]))) for i in range(49)])
    assert set_attr(twin, 2, many) is unmatched  # register_assignment is array[48]
    assert set_attr(twin, 2, v.array([v.struct(v.u16(3), v.octets(b"\x01"))])) is unmatched
    client = twin.management()
    assert len(read(client, 6, ACT, 2)) == 4
    assert [bytes(n) for n, _ in read(client, 6, ACT, 3)] == [T1, T2]


def test_methods_work_on_the_persisted_lists(twin: Twin) -> None:
    client = twin.management()
    total = v.struct(v.u16(3), v.octets(obis_bytes("1-0:1.8.0")))
    client.action(method(6, ACT, 1), v.encode(total))  # add_register: appended
    assert bytes(read(client, 6, ACT, 2)[4][1]) == obis_bytes("1-0:1.8.0")
    assert call(twin, 2, mask(b"\x00\x03", 5)) is ActionResult.SUCCESS  # add_mask
    assert call(twin, 2, mask(T1, 1)) is ActionResult.SUCCESS  # same name: replaced
    masks = read(client, 6, ACT, 3)
    assert [(bytes(n), i) for n, i in masks] == [(T2, [2, 4]), (b"\x00\x03", [5]), (T1, [1])]
    assert call(twin, 3, v.octets(b"\x00\x03")) is ActionResult.SUCCESS  # delete_mask
    assert call(twin, 3, v.octets(b"\x00\x03")) is ActionResult.OTHER_REASON  # gone already
    assert call(twin, 2, mask(b"X", 6)) is ActionResult.OTHER_REASON  # no 6th register
    assert call(twin, 1, total) is ActionResult.OTHER_REASON  # already assigned
    assert call(twin, 1, v.u8(1)) is ActionResult.TYPE_UNMATCHED
    assert call(twin, 3, v.u16(1)) is ActionResult.TYPE_UNMATCHED
    assert [bytes(n) for n, _ in read(client, 6, ACT, 3)] == [T2, T1]
