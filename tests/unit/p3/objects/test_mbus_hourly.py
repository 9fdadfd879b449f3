"""The M-Bus hourly profiles 0-x:24.3.0 (P3 §7.4) and the channel status 0-x:96.10.3 over
P3: rows from the store, selective access, reset ()."""

from __future__ import annotations

from datetime import UTC, datetime

from dlms_cosem import time as dlms_time
from dlms_cosem import utils
from dlms_cosem.cosem.capture_object import CaptureObject
from dlms_cosem.cosem.selective_access import RangeDescriptor

from tests.unit.p3.objects.conftest import Twin, advance, attr, method, read
from tests.unit.p3.objects.test_profiles import Entries
from twin.meter.events import mbus_event_code
from twin.meter.profiles import STATUS_CAD, STATUS_DNV
from twin.meter.state import MbusReading
from twin.p3.objects import values as v

HOURLY = "0-1:24.3.0"
CLOCK_COLUMN = CaptureObject(attr(8, "0-0:1.0.0", 2))


def _time(raw: object) -> datetime:
    return dlms_time.datetime_from_bytes(bytes(raw))[0]  # type: ignore[arg-type]


def test_hourly_rows_from_the_store(twin: Twin) -> None:
    advance(twin, 3 * 3600)  # the gas stand-in on channel 1 (no P2 master in the fixture)
    client = twin.management()
    rows = read(client, 7, HOURLY, 2)
    stored = twin.meter.store.mbus_hourly(1)
    assert len(rows) == len(stored) == 3
    assert [_time(r[0]) for r in rows] == [r.time for r in stored]
    assert [r[1:3] for r in rows] == [[r.status, r.value] for r in stored]
    assert [_time(r[3]) for r in rows] == [r.capture for r in stored]
    assert read(client, 7, HOURLY, 7) == 3
    assert read(client, 7, HOURLY, 4) == 3600
    assert read(client, 7, "0-2:24.3.0", 2) == []  # nothing installed on channel 2


def test_range_and_entry_selection(twin: Twin) -> None:
    advance(twin, 5 * 3600)
    client = twin.management()
    stored = twin.meter.store.mbus_hourly(1)
    descriptor = RangeDescriptor(CLOCK_COLUMN, stored[1].time, stored[3].time)
    picked = v.decode(client.get(attr(7, HOURLY, 2), access_descriptor=descriptor))
    times = [v.parse_date_time(r.items[0].octets()) for r in picked.items]
    assert times == [r.time for r in stored[1:4]]
    raw = client.get(attr(7, HOURLY, 2), access_descriptor=Entries(4, 0, 3, 3))
    assert utils.parse_as_dlms_data(raw) == [[r.value] for r in stored[3:]]


def test_stale_value_and_unknown_capture_time(twin: Twin) -> None:
    twin.meter.act(lambda m, _n: m.set_mbus_value(MbusReading(2, 3, "G2", 777, None)))
    advance(twin, 3600)
    client = twin.management()
    row = read(client, 7, "0-2:24.3.0", 2)[0]
    assert row[1] == STATUS_DNV  # no value read out in the hour (P3 §4.2.5)
    assert row[2] == 777
    assert bytes(row[3]) == bytes.fromhex("FFFFFFFFFFFFFFFFFF8000FF")  # not specified


def test_channel_status_object_shows_the_running_hour(twin: Twin) -> None:
    advance(twin, 3600)
    client = twin.management()
    assert read(client, 1, "0-1:96.10.3", 2) == 0
    twin.meter.act(lambda m, now: m.log_event(now, mbus_event_code(1, 4)))
    assert read(client, 1, "0-1:96.10.3", 2) == STATUS_CAD | STATUS_DNV
    advance(twin, 3600)
    rows = read(client, 7, HOURLY, 2)
    assert rows[-1][1] == STATUS_CAD | STATUS_DNV  # that hour's entry keeps the bits
    assert read(client, 1, "0-1:96.10.3", 2) == 0


def test_reset_clears_one_channel(twin: Twin) -> None:
    twin.meter.act(
        lambda m, _n: m.set_mbus_value(
            MbusReading(2, 3, "G2", 5, datetime(2026, 11, 23, 20, tzinfo=UTC))
        )
    )
    advance(twin, 2 * 3600)
    client = twin.management()
    client.action(method(7, HOURLY, 1), v.encode(v.i8(0)))
    assert read(client, 7, HOURLY, 2) == []
    assert read(client, 7, HOURLY, 7) == 0
    assert len(read(client, 7, "0-2:24.3.0", 2)) == 2  # the other channel keeps its rows
    advance(twin, 3600)
    after = [_time(r[0]) for r in read(client, 7, HOURLY, 2)]
    assert after == [datetime(2026, 11, 23, 23, tzinfo=UTC)]  # only the hour after the reset
