"""Display readout lists 0-0:21.0.1 / 21.0.2 / 21.0.3 (class 7, P3 §5.15, Annex B)."""

from __future__ import annotations

import contextlib
import io
import logging
import random
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from gurux_dlms.objects import GXDLMSProfileGeneric

from hardware.oled import SimulatedDisplay
from tests.support import steady_config
from tests.unit.p3.objects.conftest import (
    START,
    CoreGurux,
    FakeKeyService,
    FakeMbus,
    Twin,
    advance,
    gurux_rows,
    method,
    read,
    ref,
    write,
)
from twin.clock import ManualClock
from twin.display.service import DisplayService, ModuleStatus
from twin.meter.state import MbusReading
from twin.metering import Meter
from twin.p3.dlms.cosem import ActionResult, DataAccessResult, SelectiveAccess
from twin.p3.objects import build_objects
from twin.p3.objects import values as v
from twin.p3.objects.base import obis_bytes
from twin.p3.objects.readout import ReadoutList
from twin.readout_lists import DEFAULT_LISTS
from twin.store import Store

AUTO, ALTERNATE, SERVICE = "0-0:21.0.1", "0-0:21.0.2", "0-0:21.0.3"
ENERGY = [(3, f"1-0:{c}", 2) for c in ("1.8.1", "1.8.2", "2.8.1", "2.8.2")]
MBUS = [(72, f"0-{n}:24.1.0", i) for n in range(1, 5) for i in (6, 9)]  # serial, device type
# P3 Annex B, the numbered entries of each list, as (class, logical name, attribute)
ANNEX_B = {
    AUTO: [*ENERGY, (1, "0-0:96.13.1", 2)],
    ALTERNATE: [(1, "1-3:0.2.8", 2), *ENERGY, *MBUS, (7, "0-0:99.98.4", 7)],
    SERVICE: [
        (8, "0-0:1.0.0", 2),
        *ENERGY,
        *MBUS,
        *((1, c, 2) for c in ("1-0:0.2.0", "1-0:0.2.8", "1-1:0.2.0", "1-1:0.2.8")),
        *((3, f"1-0:{c}.7.0", 2) for c in (21, 22, 41, 42, 61, 62)),
    ],
}


def columns(client: Any, code: str) -> list[tuple[int, bytes, int]]:
    return [(c, bytes(name), i) for c, name, i, _ in read(client, 7, code, 3)]


def expected(entries: list[tuple[int, str, int]]) -> list[tuple[int, bytes, int]]:
    return [(c, obis_bytes(code), i) for c, code, i in entries]


def test_defaults_are_the_annex_b_lists(twin: Twin) -> None:
    client = twin.management()
    for code, entries in ANNEX_B.items():
        assert columns(client, code) == expected(entries), code
        assert read(client, 7, code, 4) == 10  # capture_period [s]
        assert read(client, 7, code, 5) == 1  # unsorted
        assert read(client, 7, code, 8) == 1  # profile_entries


def test_single_phase_service_list_has_l1_powers_only(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    meter = Meter(steady_config(phases=1), ManualClock(START), store, random.Random(1))
    objects = build_objects(
        meter, keys=FakeKeyService(), mbus=FakeMbus(), modem=None, state_dir=tmp_path
    )
    raw = objects.get(1, ref(7, SERVICE, 3), None)
    assert isinstance(raw, bytes)
    codes = [bytes(item.items[1].octets()) for item in v.decode(raw).items]
    assert codes[-2:] == [obis_bytes("1-0:21.7.0"), obis_bytes("1-0:22.7.0")]
    assert obis_bytes("1-0:41.7.0") not in codes
    store.close()


def test_buffer_is_one_readout_equal_to_the_registers_read_directly(twin: Twin) -> None:
    twin.meter.act(lambda m, now: m.set_load_override(now, 4500))
    twin.meter.act(lambda m, _n: m.set_mbus_value(MbusReading(1, 3, "G1", 5, None)))
    advance(twin, 3600)
    client = twin.management()
    for code, entries in ANNEX_B.items():
        (row,) = read(client, 7, code, 2)
        direct = []
        for class_id, name, index in entries:
            result = twin.objects.get(1, ref(class_id, name, index), None)
            assert isinstance(result, bytes), (name, index)
            direct.append(v.decode(result))
        raw = twin.objects.get(1, ref(7, code, 2), None)
        assert isinstance(raw, bytes)
        assert list(v.decode(raw).items[0].items) == direct, code
        assert len(row) == len(entries)
        assert None not in row  # every capture object exists
        assert read(client, 7, code, 7) == 1  # entries_in_use
    (auto,) = read(client, 7, AUTO, 2)
    assert auto[1] == twin.meter.publish().energy_wh["1-0:1.8.2"] == 4500  # tariff 2 hour


def test_capture_objects_are_writable_and_reset_empties_the_buffer(twin: Twin) -> None:
    client = twin.management()
    mine = v.array(
        [
            v.struct(v.u16(3), v.octets(obis_bytes("1-0:1.7.0")), v.i8(2), v.u16(0)),
            v.struct(v.u16(7), v.octets(obis_bytes(AUTO)), v.i8(2), v.u16(0)),  # a readout list
        ]
    )
    assert write(client, 7, ALTERNATE, 3, v.encode(mine)) == 0
    assert columns(client, ALTERNATE) == [(3, obis_bytes("1-0:1.7.0"), 2), (7, obis_bytes(AUTO), 2)]
    (row,) = read(client, 7, ALTERNATE, 2)
    assert row[1] is None  # a readout of a readout list would never end
    assert write(client, 7, AUTO, 3, v.encode(v.array([v.u8(1)]))) == 12
    too_many = v.array([mine.items[0]] * 65)
    assert twin.objects.set(1, ref(7, AUTO, 3), None, v.encode(too_many)) is (
        DataAccessResult.TYPE_UNMATCHED
    )
    client.action(method(7, ALTERNATE, 1), v.encode(v.i8(0)))  # reset()
    assert read(client, 7, ALTERNATE, 2) == []
    assert read(client, 7, ALTERNATE, 7) == 0
    advance(twin, 10)  # the next capture (every 10 s)
    assert len(read(client, 7, ALTERNATE, 2)) == 1
    assert twin.objects.action(1, ref(7, ALTERNATE, 2), v.encode(v.i8(0))).result is (
        ActionResult.READ_WRITE_DENIED  # capture() has no access rights in §5.15
    )
    listed = twin.objects.registry.find(7, obis_bytes(ALTERNATE))
    assert isinstance(listed, ReadoutList)
    assert listed.codes() == ("1-0:1.7.0", AUTO)


def test_the_display_lists_are_the_capture_objects(twin: Twin) -> None:
    for code in (AUTO, ALTERNATE, SERVICE):
        assert twin.objects.display_lists.codes(code) == DEFAULT_LISTS.codes(code)
        assert DEFAULT_LISTS.codes(code) == tuple(name for _c, name, _i in ANNEX_B[code])


async def test_a_list_written_by_the_head_end_drives_the_display(twin: Twin) -> None:
    """P3 §5.15: the display shows what the management client wrote, from the next page on."""
    display = DisplayService(
        twin.meter,
        twin.clock,
        SimulatedDisplay(),
        ModuleStatus,
        lists=twin.objects.display_lists,
        scroll_s=10,
    )
    assert display.status()["register"] == "1-0:1.8.1"
    mine = v.array(
        [
            v.struct(v.u16(3), v.octets(obis_bytes(code)), v.i8(2), v.u16(0))
            for code in ("1-0:1.7.0", "1-0:99.99.9", "1-0:2.7.0")  # an unknown code between
        ]
    )
    assert write(twin.management(), 7, AUTO, 3, v.encode(mine)) == 0
    assert display.status()["register"] == "1-0:1.8.1"  # the page shown stays
    await twin.clock.advance(10)
    assert (display.status()["register"], display.status()["pages"]) == ("1-0:2.7.0", 2)
    await twin.clock.advance(10)
    assert display.status()["register"] == "1-0:1.7.0"
    assert write(twin.management(), 7, AUTO, 3, v.encode(v.array([]))) == 0
    await twin.clock.advance(10)
    assert display.status()["pages"] == 4  # an empty list: the energy registers


def test_gurux_reads_the_lists_by_entry_and_by_range(twin: Twin) -> None:
    """Blue Book class 7 buffer: entry_descriptor (selector 2) and range_descriptor (1), as
    Gurux's read-all uses them (range restricted by the first capture object)."""
    peer = CoreGurux(twin)
    with contextlib.redirect_stdout(io.StringIO()):
        peer.associate()
    now = twin.clock.now()
    for code in (AUTO, ALTERNATE, SERVICE):
        profile = GXDLMSProfileGeneric(code.replace("-", ".").replace(":", ".") + ".255")
        with contextlib.redirect_stdout(io.StringIO()):
            peer.read(profile, 3)
        (row,) = gurux_rows(peer, profile, peer.client.readRowsByEntry(profile, 1, 1))
        assert len(row) == len(ANNEX_B[code])
        assert gurux_rows(peer, profile, peer.client.readRowsByEntry(profile, 2, 1)) == []
        around_now = peer.client.readRowsByRange(
            profile, now - timedelta(minutes=1), now + timedelta(minutes=1)
        )
        # Only the service list starts with the clock; a register or a version string is
        # never within a time range.
        assert len(gurux_rows(peer, profile, around_now)) == (1 if code == SERVICE else 0)
        earlier = peer.client.readRowsByRange(
            profile, now - timedelta(hours=2), now - timedelta(hours=1)
        )
        assert gurux_rows(peer, profile, earlier) == []


def test_selective_access_needs_a_capture_object_and_the_buffer(twin: Twin) -> None:
    entry = v.struct(v.u32(1), v.u32(0), v.u16(1), v.u16(0))
    second_column = v.struct(v.u32(1), v.u32(1), v.u16(2), v.u16(2))
    raw = twin.objects.get(1, ref(7, AUTO, 2), SelectiveAccess(2, v.encode(second_column)))
    assert isinstance(raw, bytes)
    register = twin.objects.get(1, ref(3, "1-0:1.8.2", 2), None)
    assert isinstance(register, bytes)
    assert v.decode(raw) == v.array([v.struct(v.decode(register))])  # 2nd column only
    assert isinstance(
        twin.objects.get(1, ref(7, AUTO, 2), SelectiveAccess(2, v.encode(entry))), bytes
    )
    clock_range = v.struct(
        v.struct(v.u16(8), v.octets(obis_bytes("0-0:1.0.0")), v.i8(2), v.u16(0)),
        v.date_time(twin.clock.now()),
        v.date_time(twin.clock.now()),
        v.array([]),
    )
    # The clock is no capture object of the auto scroll list (Blue Book: restricting_object
    # is one of the capture objects).
    assert twin.objects.get(1, ref(7, AUTO, 2), SelectiveAccess(1, v.encode(clock_range))) is (
        DataAccessResult.SCOPE_OF_ACCESS_VIOLATED
    )
    assert twin.objects.get(1, ref(7, AUTO, 3), SelectiveAccess(2, v.encode(entry))) is (
        DataAccessResult.SCOPE_OF_ACCESS_VIOLATED
    )


def test_a_malformed_access_descriptor_is_refused_without_an_info_line(
    twin: Twin, caplog: pytest.LogCaptureFixture
) -> None:
    """Anyone may associate as public client 16: what it can cause per request stays out of
    the INFO log (a flood would wear the SD card), the answer says what went wrong."""
    caplog.set_level(logging.INFO)
    for _ in range(3):
        result = twin.objects.get(16, ref(8, "0-0:1.0.0", 2), SelectiveAccess(2, b"\x02\x04\x06"))
        assert result is DataAccessResult.SCOPE_OF_ACCESS_VIOLATED
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO] == []
