"""Profile generic objects (P3 §5.5, §5.7-§5.10, §6.3): buffers from the store, capture
objects, and selective access by range (selector 1) and by entry (selector 2)."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from dlms_cosem import time as dlms_time
from dlms_cosem import utils
from dlms_cosem.cosem.capture_object import CaptureObject
from dlms_cosem.cosem.selective_access import RangeDescriptor
from gurux_dlms.objects import GXDLMSProfileGeneric

from tests.unit.p3.objects.conftest import (
    CoreGurux,
    Twin,
    advance,
    attr,
    gurux_rows,
    read,
    ref,
    set_time,
)
from twin.meter.events import EventCode
from twin.p3.dlms.cosem import DataAccessResult, SelectiveAccess
from twin.p3.objects import values as v
from twin.p3.objects.profile_generic import CLOCK, Column, capture_definition

CLOCK_COLUMN = CaptureObject(attr(8, "0-0:1.0.0", 2))


@dataclass
class Entries:
    """entry_descriptor (dlms-cosem 21.3.2 cannot encode one)."""

    first: int
    last: int = 0
    first_column: int = 1
    last_column: int = 0

    def to_bytes(self) -> bytes:
        value = v.struct(
            v.u32(self.first), v.u32(self.last), v.u16(self.first_column), v.u16(self.last_column)
        )
        return b"\x02" + v.encode(value)


def _times(rows: list[list[object]]) -> list[datetime]:
    return [dlms_time.datetime_from_bytes(bytes(r[0]))[0] for r in rows]  # type: ignore[arg-type]


def test_load_profile_buffer_and_attributes(twin: Twin) -> None:
    twin.meter.act(lambda m, now: m.set_load_override(now, 3600.0))
    advance(twin, 2 * 3600)
    client = twin.management()
    rows = read(client, 7, "1-0:99.1.0", 2)
    stored = twin.meter.store.load_profile()
    assert len(rows) == len(stored) == 8
    assert _times(rows) == [r.time for r in stored]
    assert [r[2:] for r in rows] == [[r.import_wh, r.export_wh] for r in stored]
    assert rows[-1][2] - rows[-2][2] == 900  # 3600 W for 15 minutes = 900 Wh
    assert read(client, 7, "1-0:99.1.0", 4) == 900
    assert read(client, 7, "1-0:99.1.0", 5) == 1  # FIFO
    assert read(client, 7, "1-0:99.1.0", 7) == 8
    assert read(client, 7, "1-0:99.1.0", 8) == 960
    captured = read(client, 7, "1-0:99.1.0", 3)
    assert [(c[0], bytes(c[1]).hex(), c[2], c[3]) for c in captured] == [
        (8, "0000010000ff", 2, 0),
        (1, "0000600a02ff", 2, 0),
        (3, "0100010800ff", 2, 0),
        (3, "0100020800ff", 2, 0),
    ]


def test_range_selection_on_the_clock_column(twin: Twin) -> None:
    advance(twin, 3 * 3600)
    client = twin.management()
    stored = twin.meter.store.load_profile()
    low, high = stored[2].time, stored[5].time
    descriptor = RangeDescriptor(CLOCK_COLUMN, low, high)
    rows = v.decode(client.get(attr(7, "1-0:99.1.0", 2), access_descriptor=descriptor))
    assert len(rows.items) == 4
    from_dlms = [v.parse_date_time(r.items[0].octets()) for r in rows.items]
    assert from_dlms == [r.time for r in stored[2:6]]
    empty = RangeDescriptor(CLOCK_COLUMN, high + timedelta(days=1), high + timedelta(days=2))
    assert client.get(attr(7, "1-0:99.1.0", 2), access_descriptor=empty) == b"\x01\x00"


def test_entry_selection_with_columns(twin: Twin) -> None:
    advance(twin, 3 * 3600)
    client = twin.management()
    stored = twin.meter.store.load_profile()
    rows = read_selected(client, Entries(2, 4, 3, 4))
    assert rows == [[r.import_wh, r.export_wh] for r in stored[1:4]]
    assert len(read_selected(client, Entries(10))) == len(stored) - 9  # to the last entry
    bad = SelectiveAccess(2, v.encode(v.struct(v.u32(0), v.u32(0), v.u16(1), v.u16(0))))
    assert (
        twin.objects.get(1, ref(7, "1-0:99.1.0", 2), bad)
        is DataAccessResult.SCOPE_OF_ACCESS_VIOLATED
    )
    other = SelectiveAccess(3, v.encode(v.null()))
    assert (
        twin.objects.get(1, ref(7, "1-0:99.1.0", 2), other)
        is DataAccessResult.SCOPE_OF_ACCESS_VIOLATED
    )


def read_selected(client: object, entries: Entries) -> list[list[int]]:
    from dlms_cosem import utils

    raw = client.get(attr(7, "1-0:99.1.0", 2), access_descriptor=entries)  # type: ignore[attr-defined]
    return utils.parse_as_dlms_data(raw)  # type: ignore[no-any-return]


@dataclass
class Range:
    """range_descriptor with bounds of any type (dlms-cosem 21.3.2 encodes date-times only)."""

    column: Column
    low: v.Data
    high: v.Data
    selected: tuple[Column, ...] = ()

    def to_bytes(self) -> bytes:
        value = v.struct(
            capture_definition(self.column),
            self.low,
            self.high,
            v.array([capture_definition(c) for c in self.selected]),
        )
        return b"\x01" + v.encode(value)


def test_a_range_is_restricted_by_any_capture_object_as_on_the_readout_lists(twin: Twin) -> None:
    """Blue Book §4.3.6: restricting_object is one of the buffer's capture objects (not only
    the clock); a row is in range when that column's value lies within [from_value,
    to_value]. The profiles refused every column but the clock, and bounds that are no
    date-time, where the readout lists (the other class 7 objects) answered."""
    twin.meter.set_time(twin.meter.now() + timedelta(minutes=5))  # standard events 4 and 5
    client = twin.management()
    code = (1, "0-0:96.11.0", 2)

    def select(descriptor: Range) -> object:
        return utils.parse_as_dlms_data(
            client.get(attr(7, "0-0:99.98.0", 2), access_descriptor=descriptor)
        )

    assert select(Range(code, v.u8(5), v.u8(5), (code,))) == [[5]]
    assert [row[1] for row in select(Range(code, v.u8(0), v.u8(255)))] == [4, 5]  # type: ignore[attr-defined]
    assert select(Range(code, v.u8(6), v.u8(255))) == []
    # Bounds of another kind than the column's values: no row is within them.
    assert select(Range(CLOCK, v.u8(0), v.u8(255))) == []
    # The restricting object must be one of the capture objects.
    outside = Range((3, "1-0:1.8.1", 2), v.u32(0), v.u32(1))
    assert (
        twin.objects.get(1, ref(7, "0-0:99.98.0", 2), SelectiveAccess(1, outside.to_bytes()[1:]))
        is DataAccessResult.SCOPE_OF_ACCESS_VIOLATED
    )


def test_gurux_reads_a_profile_by_entry_and_by_range(twin: Twin) -> None:
    """The readout lists' Gurux peer test (test_display_readouts.py), on a profile: the same
    class 7 selection serves both."""
    advance(twin, 3 * 3600)
    stored = twin.meter.store.load_profile()
    peer = CoreGurux(twin)
    profile = GXDLMSProfileGeneric("1.0.99.1.0.255")
    with contextlib.redirect_stdout(io.StringIO()):
        peer.associate()
        peer.read(profile, 3)
    by_entry = gurux_rows(peer, profile, peer.client.readRowsByEntry(profile, 2, 3))
    assert [row[2:] for row in by_entry] == [[r.import_wh, r.export_wh] for r in stored[1:4]]
    low, high = stored[2].time, stored[5].time
    by_range = gurux_rows(peer, profile, peer.client.readRowsByRange(profile, low, high))
    assert [row[2:] for row in by_range] == [[r.import_wh, r.export_wh] for r in stored[2:6]]


def test_daily_and_billing_profiles(twin: Twin) -> None:
    # from 2026-11-23 21:00 local to 2026-12-01 01:00: 8 midnights, one of them a month end
    set_time(twin, datetime(2026, 12, 1, 0, 0, tzinfo=UTC))
    client = twin.management()
    daily = read(client, 7, "1-0:99.2.0", 2)
    assert len(daily) == len(twin.meter.store.daily_profile()) == 8
    assert len(daily[0]) == 14  # clock, status, 4 registers, 4 x (M-Bus value, capture time)
    assert daily[-1][2:6] == list(twin.meter.store.daily_profile()[-1].energy_wh)
    monthly = read(client, 7, "0-0:98.1.0", 2)
    assert len(monthly) == 1
    assert len(monthly[0]) == 13
    assert read(client, 7, "0-0:98.1.0", 4) == 0
    assert read(client, 7, "0-0:98.1.0", 8) == 13
    assert read(client, 7, "1-0:99.2.0", 8) == 40
    schedule = read(client, 22, "0-0:15.0.0", 4)
    assert [bytes(x).hex() for x in schedule[0]] == ["00000000", "ffffff01ff"]


def test_event_logs(twin: Twin) -> None:
    twin.meter.act(lambda m, now: m.tamper(now, EventCode.METER_COVER_REMOVED))
    twin.meter.set_time(twin.meter.now() + timedelta(minutes=5))
    client = twin.management()
    standard = read(client, 7, "0-0:99.98.0", 2)
    assert [row[1] for row in standard] == [4, 5]
    assert [row[1] for row in read(client, 7, "0-0:99.98.1", 2)] == [44]
    assert read(client, 7, "0-0:99.98.0", 8) == 100
    assert read(client, 7, "0-0:99.98.1", 8) == 30
    assert read(client, 7, "0-0:99.98.4", 8) == 2190
    assert len(read(client, 7, "0-0:99.98.4", 3)) == 3  # clock, code, comlog counter
    assert read(client, 1, "0-0:96.11.0", 2) == 5  # the last standard event
    assert read(client, 7, "0-0:99.98.3", 2) == []
    # reset () leaves "event log cleared" (255) as the first entry (test_profile_reset.py)
    assert twin.objects.action(1, ref(7, "0-0:99.98.0", 1), b"\x0f\x00").result.name == "SUCCESS"
    assert [row[1] for row in read(client, 7, "0-0:99.98.0", 2)] == [255]


def test_event_time_is_meter_time(twin: Twin) -> None:
    when = twin.meter.now()
    twin.meter.act(lambda m, now: m.tamper(now))
    row = read(twin.management(), 7, "0-0:99.98.1", 2)[0]
    assert dlms_time.datetime_from_bytes(bytes(row[0]))[0] == when.replace(microsecond=0)
    assert when.tzinfo is UTC
