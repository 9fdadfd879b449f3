"""Meter reset to factory setting 0-1:94.31.5 (class 9, P3 §8.5): after the association ends,
written settings are back to their defaults; energy registers, keys and firmware are kept."""

from __future__ import annotations

from datetime import time
from pathlib import Path
from typing import Any

from tests.unit.p3.objects.conftest import (
    Twin,
    advance,
    big_set,
    make_twin,
    method,
    read,
    ref,
    write,
)
from twin.meter.events import EventCode, EventLog
from twin.metering import TARIFF_SETTING
from twin.p3.dlms.cosem import ActionResult
from twin.p3.objects import values as v
from twin.p3.objects.base import obis_bytes
from twin.p3.objects.tariff import switch

RESET = "0-1:94.31.5"
DEFINABLE = "0-1:94.31.6"
ENERGY = ("1-0:1.8.1", "1-0:1.8.2", "1-0:2.8.1", "1-0:2.8.2")


def day_table(start: time, end: time) -> v.Data:
    working = v.array([switch(time(0, 0), 1), switch(start, 2), switch(end, 1)])
    low = v.array([switch(time(0, 0), 1)])
    return v.array([v.struct(v.u8(i), working if i == 1 else low) for i in (1, 2, 3, 4)])


def configure(twin: Twin, client: Any) -> None:
    """What a head-end may have written since installation."""
    assert write(client, 1, "0-0:96.1.3", 2, v.encode(v.octets(b"Meterkast"))) == 0
    assert write(client, 3, "1-0:12.31.0", 2, v.encode(v.u16(200))) == 0
    assert write(client, 8, "0-0:1.0.0", 3, v.encode(v.i16(0))) == 0
    assert write(client, 1, "0-1:94.31.0", 2, v.encode(v.enum_(1))) == 0
    assert write(client, 1, "0-0:96.13.1", 2, v.encode(v.octets(b"42"))) == 0
    only_energy = v.array([v.struct(v.u16(3), v.octets(obis_bytes(ENERGY[0])), v.i8(2), v.u16(0))])
    assert write(client, 7, "0-0:21.0.1", 3, v.encode(only_energy)) == 0
    masks = v.array([v.struct(v.octets(b"\x00\x01"), v.array([v.u8(1)]))])
    assert write(client, 6, "0-0:14.0.0", 3, v.encode(masks)) == 0
    assert big_set(client, 20, "0-0:13.0.0", 9, v.encode(day_table(time(8), time(20)))) == 0
    client.action(method(20, "0-0:13.0.0", 1), v.encode(v.i8(0)))
    assert twin.meter.model.program.normal_start == time(8, 0)


def energy(client: Any) -> list[int]:
    return [read(client, 3, code, 2) for code in ENERGY]


def test_reset_after_release_restores_factory_settings_and_keeps_the_registers(
    tmp_path: Path,
) -> None:
    twin = make_twin(tmp_path)
    twin.meter.act(lambda m, now: m.set_load_override(now, 2500))
    advance(twin, 3600)
    client = twin.management()
    configure(twin, client)
    # The active firmware identifier, as an image activation (P3 §5.12) leaves it.
    twin.objects.env.attrs.put("firmware.active", v.octets(b"FW-2"))
    before = energy(client)
    assert before[1] == 2500
    client.action(method(7, DEFINABLE, 2), None)  # capture (): one entry of the clock
    assert read(client, 7, DEFINABLE, 7) == 1
    client.action(method(9, RESET, 1), v.encode(v.u16(1)))
    assert bytes(read(client, 1, "0-0:96.1.3", 2)) == b"Meterkast"  # not before the release
    twin.keys.calls.clear()
    twin.objects.association_released()

    client = twin.management()
    assert energy(client) == before
    assert bytes(read(client, 1, "0-0:96.1.3", 2)) == b""
    assert read(client, 3, "1-0:12.31.0", 2) == 207
    assert read(client, 8, "0-0:1.0.0", 3) == -60
    assert read(client, 1, "0-1:94.31.0", 2) == 2  # administratively on
    assert bytes(read(client, 1, "0-0:96.13.1", 2)) == b""
    assert len(read(client, 7, "0-0:21.0.1", 3)) == 5  # Annex B again
    assert read(client, 7, DEFINABLE, 7) == 0  # its capture objects reset: buffer emptied
    assert [bytes(m[0]) for m in read(client, 6, "0-0:14.0.0", 3)] == [b"\x00\x01", b"\x00\x02"]
    assert bytes(read(client, 1, "1-0:0.2.0", 2)) == b"FW-2"  # the running firmware stays
    # the configuration's tariff program, logged as changed tariff times (event 9)
    assert twin.meter.model.program.normal_start == time(7, 0)
    assert twin.meter.store.setting(TARIFF_SETTING) is None
    codes = [e.code for e in twin.meter.store.events(EventLog.STANDARD)]
    assert codes.count(EventCode.TARIFF_TIMES_ACTIVATED) == 2
    # security policy back to the factory value 3; no key was replaced
    assert twin.keys.calls == [("activate", 3)]
    twin.meter.store.close()

    again = make_twin(tmp_path)  # what the reset wrote is durable
    assert again.meter.model.program.normal_start == time(7, 0)
    assert bytes(read(again.management(), 1, "0-0:96.1.3", 2)) == b""
    again.meter.store.close()


def test_release_without_execute_changes_nothing(twin: Twin) -> None:
    client = twin.management()
    assert write(client, 1, "0-0:96.1.3", 2, v.encode(v.octets(b"Zolder"))) == 0
    twin.objects.association_released()
    assert bytes(read(twin.management(), 1, "0-0:96.1.3", 2)) == b"Zolder"
    assert twin.keys.calls == []


def test_execute_takes_script_1_only(twin: Twin) -> None:
    client = twin.management()
    script = read(client, 9, RESET, 2)
    assert script == [[1, []]]
    action = twin.objects.action
    assert action(1, ref(9, RESET, 1), v.encode(v.u16(2))).result is ActionResult.OTHER_REASON
    assert action(1, ref(9, RESET, 1), v.encode(v.u8(1))).result is ActionResult.TYPE_UNMATCHED
    assert action(16, ref(9, RESET, 1), v.encode(v.u16(1))).result is (
        ActionResult.READ_WRITE_DENIED  # management only
    )
    assert write(client, 1, "0-0:96.1.3", 2, v.encode(v.octets(b"Zolder"))) == 0
    twin.objects.association_released()
    assert bytes(read(twin.management(), 1, "0-0:96.1.3", 2)) == b"Zolder"
