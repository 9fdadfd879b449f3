"""Definable load profile 0-1:94.31.6 (P3 §8.6, class 7) over P3: the CS's columns, automatic
capture at capture_period boundaries of the meter clock, capture (), sorting, selective access,
and refusals of bad settings."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from dlms_cosem import time as dlms_time
from dlms_cosem import utils
from dlms_cosem.cosem.capture_object import CaptureObject
from dlms_cosem.cosem.selective_access import RangeDescriptor
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support import amsterdam, steady_config
from tests.unit.p3.objects.conftest import (
    FakeKeyService,
    FakeModem,
    Twin,
    advance,
    attr,
    big_set,
    make_twin,
    method,
    read,
    ref,
    run,
    set_time,
    write,
)
from tests.unit.p3.objects.test_profiles import Entries
from twin.metering import Meter
from twin.p3.dlms.cosem import DataAccessResult
from twin.p3.objects import build_objects
from twin.p3.objects import values as v
from twin.p3.objects.base import obis_bytes
from twin.p3.objects.definable import latest_boundary, next_boundary
from twin.store import Store

DEF = "0-1:94.31.6"
OK, TYPE_UNMATCHED, OTHER = 0, 12, 250
CLOCK = (8, "0-0:1.0.0", 2)
ENERGY, POWER, TARIFF = (3, "1-0:1.8.0", 2), (3, "1-0:1.7.0", 2), (1, "0-0:96.14.0", 2)


def definition(class_id: int, code: str, index: int, data_index: int = 0) -> v.Data:
    return v.struct(v.u16(class_id), v.octets(obis_bytes(code)), v.i8(index), v.u16(data_index))


def columns(*cols: tuple[int, str, int]) -> bytes:
    return v.encode(v.array([definition(*c) for c in (CLOCK, *cols)]))


def configure(client: Any, *cols: tuple[int, str, int], period: int, sort: int = 1) -> None:
    assert write(client, 7, DEF, 3, columns(*cols)) == OK
    assert write(client, 7, DEF, 4, v.encode(v.u32(period))) == OK
    assert write(client, 7, DEF, 5, v.encode(v.enum_(sort))) == OK


def times(rows: list[list[Any]]) -> list[datetime]:
    return [dlms_time.datetime_from_bytes(bytes(r[0]))[0] for r in rows]


def capture(client: Any) -> None:
    client.action(method(7, DEF, 2), v.encode(v.i8(0)))


def override(twin: Twin, watts: float) -> None:
    twin.meter.act(lambda m, now: m.set_load_override(now, watts))


def test_defaults_and_the_daily_capture_at_local_midnight(twin: Twin) -> None:
    client = twin.management()
    assert [[c[0], bytes(c[1]).hex(), c[2], c[3]] for c in read(client, 7, DEF, 3)] == [
        [8, "0000010000ff", 2, 0]
    ]
    assert read(client, 7, DEF, 4) == 86400
    assert read(client, 7, DEF, 5) == 3  # sorted (largest) by the clock
    assert bytes(read(client, 7, DEF, 6)[1]).hex() == "0000010000ff"
    assert read(client, 7, DEF, 7) == 0
    assert read(client, 7, DEF, 8) == 960
    set_time(twin, amsterdam(2026, 11, 24, 0, 0, 30))
    assert read(client, 7, DEF, 7) == 1  # the request ticked the object model: captured
    set_time(twin, amsterdam(2026, 11, 25, 0, 5))
    rows = read(client, 7, DEF, 2)
    # largest clock first: the newest entry leads
    assert times(rows) == [amsterdam(2026, 11, 25), amsterdam(2026, 11, 24)]
    assert read(client, 7, DEF, 7) == 2


def test_values_are_read_through_the_object_model_at_each_boundary(twin: Twin) -> None:
    client = twin.management()
    configure(client, ENERGY, POWER, TARIFF, period=900)
    override(twin, 3600)
    for _ in range(3):
        advance(twin, 900)
        read(client, 1, "0-0:96.14.0", 2)  # any request ticks the object model
    rows = read(client, 7, DEF, 2)
    start = datetime(2026, 11, 23, 20, 15, tzinfo=UTC)
    assert times(rows) == [start + timedelta(minutes=15 * i) for i in range(3)]  # FIFO
    assert rows[-1][1] == read(client, 3, "1-0:1.8.0", 2)
    assert rows[1][1] - rows[0][1] == 900  # 3600 W for a quarter
    assert [r[2] for r in rows] == [read(client, 3, "1-0:1.7.0", 2)] * 3
    assert bytes(rows[0][3]) == bytes(read(client, 1, "0-0:96.14.0", 2))


def test_after_a_jump_one_entry_for_the_latest_boundary(twin: Twin) -> None:
    client = twin.management()
    configure(client, ENERGY, period=900)
    set_time(twin, datetime(2026, 11, 23, 22, 5, tzinfo=UTC))  # eight boundaries passed
    rows = read(client, 7, DEF, 2)
    assert times(rows) == [datetime(2026, 11, 23, 22, 0, tzinfo=UTC)]
    assert rows[0][1] == read(client, 3, "1-0:1.8.0", 2)  # values of now: no back-filling
    set_time(twin, datetime(2026, 11, 23, 22, 14, tzinfo=UTC))
    assert read(client, 7, DEF, 7) == 1  # the same boundary is never captured twice


def test_capture_method_and_writes_that_clear_the_buffer(twin: Twin) -> None:
    client = twin.management()
    capture(client)
    capture(client)
    assert read(client, 7, DEF, 7) == 2
    assert times(read(client, 7, DEF, 2)) == [twin.meter.now()] * 2
    assert write(client, 7, DEF, 4, v.encode(v.u32(3600))) == OK  # Blue Book: clears
    assert read(client, 7, DEF, 2) == []
    capture(client)
    assert write(client, 7, DEF, 3, columns(POWER)) == OK
    assert read(client, 7, DEF, 7) == 0
    advance(twin, 3600)  # 20:00 was before the write: the first entry is 21:00
    assert times(read(client, 7, DEF, 2)) == [datetime(2026, 11, 23, 21, tzinfo=UTC)]
    client.action(method(7, DEF, 1), v.encode(v.i8(0)))  # reset ()
    assert read(client, 7, DEF, 2) == []
    advance(twin, 1800)
    assert read(client, 7, DEF, 2) == []  # 21:00 is not captured again after the reset


def test_sorted_by_a_value_the_smallest_entry_drops(twin: Twin) -> None:
    client = twin.management()
    configure(client, POWER, period=0, sort=3)
    assert write(client, 7, DEF, 6, v.encode(definition(*POWER))) == OK
    assert write(client, 7, DEF, 8, v.encode(v.u32(2))) == OK
    for watts in (1000, 3000, 2000, 500):
        override(twin, watts)
        capture(client)
        advance(twin, 60)
    assert [r[1] for r in read(client, 7, DEF, 2)] == [3000, 2000]  # the two largest kept
    assert write(client, 7, DEF, 8, v.encode(v.u32(1))) == OK
    assert [r[1] for r in read(client, 7, DEF, 2)] == [3000]
    assert write(client, 7, DEF, 5, v.encode(v.enum_(1))) == OK
    assert write(client, 7, DEF, 8, v.encode(v.u32(3))) == OK
    override(twin, 100)
    capture(client)
    assert [r[1] for r in read(client, 7, DEF, 2)] == [3000, 100]  # FIFO: capture order


def test_fifo_buffer_drops_the_oldest_and_selective_access(twin: Twin) -> None:
    client = twin.management()
    configure(client, ENERGY, POWER, period=900)
    assert write(client, 7, DEF, 8, v.encode(v.u32(4))) == OK
    override(twin, 1000)
    for _ in range(6):
        advance(twin, 900)
        read(client, 1, "0-0:96.14.0", 2)
    stamps = times(read(client, 7, DEF, 2))
    assert stamps == [
        datetime(2026, 11, 23, 20, 45, tzinfo=UTC) + timedelta(minutes=15 * i) for i in range(4)
    ]
    clock_column = CaptureObject(attr(8, "0-0:1.0.0", 2))
    picked = client.get(
        attr(7, DEF, 2), access_descriptor=RangeDescriptor(clock_column, stamps[1], stamps[2])
    )
    assert [v.parse_date_time(r.items[0].octets()) for r in v.decode(picked).items] == stamps[1:3]
    raw = client.get(attr(7, DEF, 2), access_descriptor=Entries(3, 0, 3, 3))
    assert utils.parse_as_dlms_data(raw) == [[1000], [1000]]


def test_bad_settings_are_refused_and_the_meter_goes_on(twin: Twin) -> None:
    client = twin.management()
    configure(client, ENERGY, period=900)
    before = read(client, 7, DEF, 3)
    refused = {
        "not an array": (v.encode(v.u32(1)), TYPE_UNMATCHED),
        "short definition": (v.encode(v.array([v.struct(v.u16(8))])), TYPE_UNMATCHED),
        "unknown object": (columns((3, "1-0:99.99.0", 2)), OTHER),
        "unknown attribute": (columns((3, "1-0:1.8.1", 9)), OTHER),
        "wrong class": (columns((1, "1-0:1.8.0", 2)), OTHER),
        "a profile buffer": (columns((7, "1-0:99.1.0", 2)), OTHER),
        "too large a value": (columns((15, "0-0:40.0.0", 2)), OTHER),
        "clock not first": (v.encode(v.array([definition(*ENERGY), definition(*CLOCK)])), OTHER),
        "no clock": (v.encode(v.array([])), OTHER),
        "F not 255": (v.encode(v.array([definition(*CLOCK), _with_f(ENERGY, 1)])), OTHER),
        "data_index": (v.encode(v.array([definition(*CLOCK), definition(*ENERGY, 1)])), OTHER),
    }
    for name, (value, result) in refused.items():
        assert write(client, 7, DEF, 3, value) == result, name
    assert big_set(client, 7, DEF, 3, columns(*[ENERGY] * 21)) == OTHER  # 20 values at most
    assert big_set(client, 7, DEF, 3, columns(*[ENERGY] * 20)) == OK
    assert write(client, 7, DEF, 3, columns(ENERGY)) == OK
    assert write(client, 7, DEF, 4, v.encode(v.u16(900))) == TYPE_UNMATCHED
    assert write(client, 7, DEF, 5, v.encode(v.enum_(2))) == OTHER  # 1 or 3 (P3 §8.6)
    assert write(client, 7, DEF, 5, v.encode(v.u8(1))) == TYPE_UNMATCHED
    assert write(client, 7, DEF, 6, v.encode(definition(*POWER))) == OTHER  # not captured
    assert write(client, 7, DEF, 8, v.encode(v.u32(961))) == OTHER
    assert write(client, 7, DEF, 8, v.encode(v.u32(0))) == OTHER
    assert write(client, 7, DEF, 7, v.encode(v.u32(0))) == DataAccessResult.READ_WRITE_DENIED
    denied = twin.objects.set(16, ref(7, DEF, 3), None, columns())  # the public client
    assert denied is DataAccessResult.READ_WRITE_DENIED
    assert read(client, 7, DEF, 3) == before
    assert read(client, 7, DEF, 4) == 900
    advance(twin, 900)
    assert len(read(client, 7, DEF, 2)) == 1  # still capturing
    assert read(client, 3, "1-0:1.8.0", 2) >= 0


def _with_f(column: tuple[int, str, int], f: int) -> v.Data:
    class_id, code, index = column
    name = obis_bytes(code)[:5] + bytes([f])
    return v.struct(v.u16(class_id), v.octets(name), v.i8(index), v.u16(0))


def test_settings_and_buffer_survive_a_restart(tmp_path: Path) -> None:
    twin = make_twin(tmp_path)
    client = twin.management()
    configure(client, ENERGY, period=900)
    advance(twin, 1800)
    read(client, 1, "0-0:96.14.0", 2)
    assert read(client, 7, DEF, 7) == 1  # 20:30 (20:15 passed without a request)
    twin.meter.store.close()

    meter = Meter(steady_config(), twin.clock, Store.open(tmp_path), random.Random(1))
    objects = build_objects(
        meter, keys=FakeKeyService(), mbus=None, modem=FakeModem(), state_dir=tmp_path
    )

    def get(index: int) -> v.Data:
        answer = objects.get(1, ref(7, DEF, index), None)
        assert isinstance(answer, bytes)
        return v.decode(answer)

    assert get(4) == v.u32(900)
    assert get(7) == v.u32(1)  # the same boundary is not captured again
    run(twin.clock.advance(900))
    assert get(7) == v.u32(2)
    meter.store.close()


def test_boundaries_in_local_time_across_dst() -> None:
    # daily: local midnight in summer and winter
    assert latest_boundary(datetime(2026, 7, 1, 21, 59, tzinfo=UTC), 86400) == datetime(
        2026, 6, 30, 22, tzinfo=UTC
    )
    assert latest_boundary(datetime(2026, 12, 1, 23, 0, tzinfo=UTC), 86400) == datetime(
        2026, 12, 1, 23, tzinfo=UTC
    )
    # the repeated October hour: both 02:00 are boundaries of an hourly period
    first, second = (
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
        datetime(2026, 10, 25, 1, 30, tzinfo=UTC),
    )
    assert latest_boundary(first, 3600) == datetime(2026, 10, 25, 0, tzinfo=UTC)
    assert latest_boundary(second, 3600) == datetime(2026, 10, 25, 1, tzinfo=UTC)
    # a two-hour boundary at 02:00 in the skipped March hour falls on the switch
    switch = datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    assert latest_boundary(switch + timedelta(minutes=5), 7200) == switch


@pytest.mark.parametrize(
    ("now", "period", "expected"),
    [
        (datetime(2026, 3, 10, 22, 10, 7, tzinfo=UTC), 86400, amsterdam(2026, 3, 11)),
        (datetime(2026, 3, 10, 22, 10, 7, tzinfo=UTC), 900, amsterdam(2026, 3, 10, 23, 15)),
        # Spring: 02:00 local does not exist; the boundary falls on the switch (03:00 CEST).
        (datetime(2026, 3, 29, 0, 30, tzinfo=UTC), 3600, datetime(2026, 3, 29, 1, tzinfo=UTC)),
        # Autumn: both 02:00s are boundaries (00:00 and 01:00 UTC), then 03:00 CET.
        (datetime(2026, 10, 24, 23, 30, tzinfo=UTC), 3600, datetime(2026, 10, 25, 0, tzinfo=UTC)),
        (datetime(2026, 10, 25, 0, 0, tzinfo=UTC), 3600, datetime(2026, 10, 25, 1, tzinfo=UTC)),
        (datetime(2026, 10, 25, 1, 0, tzinfo=UTC), 3600, datetime(2026, 10, 25, 2, tzinfo=UTC)),
    ],
)
def test_next_capture_is_the_next_wall_clock_boundary(
    twin: Twin, now: datetime, period: int, expected: datetime
) -> None:
    definable = twin.objects.definable
    assert write(twin.management(), 7, DEF, 4, v.encode(v.u32(period))) == 0
    assert definable.next_capture(now) == expected
    assert latest_boundary(expected, period) == expected  # it is a boundary
    assert latest_boundary(expected - timedelta(seconds=1), period) <= now  # the first after


def test_no_next_capture_while_capture_period_is_zero(twin: Twin) -> None:
    assert write(twin.management(), 7, DEF, 4, v.encode(v.u32(0))) == 0
    assert twin.objects.definable.next_capture(datetime(2026, 3, 10, tzinfo=UTC)) is None


@settings(max_examples=600, deadline=None)
@given(
    st.datetimes(
        min_value=datetime(2026, 3, 28), max_value=datetime(2026, 10, 26), timezones=st.just(UTC)
    ).map(lambda t: t.replace(microsecond=0)),
    st.sampled_from([60, 900, 1800, 3600, 7200, 10800, 86400]),
)
def test_the_object_model_sleeps_until_no_later_than_the_next_boundary(
    now: datetime, period: int
) -> None:
    """The P3 ticker sleeps until `next_boundary`: it lies ahead, and no boundary is skipped,
    also in the repeated October hour (both 02:00 of an hourly period) and the skipped March
    one."""
    due = next_boundary(now, period)
    assert due > now
    assert latest_boundary(max(now, due - timedelta(seconds=1)), period) == latest_boundary(
        now, period
    )


def test_the_object_model_is_next_due_at_the_capture_period_boundary(twin: Twin) -> None:
    client = twin.management()
    assert twin.objects.next_due() == datetime(2026, 11, 23, 23, 0, tzinfo=UTC)  # midnight
    configure(client, ENERGY, period=900)
    assert twin.objects.next_due() == datetime(2026, 11, 23, 20, 15, tzinfo=UTC)
    configure(client, ENERGY, period=0)
    assert twin.objects.next_due() is None
