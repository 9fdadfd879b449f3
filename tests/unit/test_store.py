"""The SQLite store and the commit-before-publish meter on top of it."""

from __future__ import annotations

import json
import random
import sqlite3
from dataclasses import fields
from datetime import timedelta
from pathlib import Path

import pytest

from tests.support import amsterdam, steady_config
from twin.clock import ManualClock
from twin.config import Config
from twin.meter.events import Event, EventCode, EventLog
from twin.meter.model import MeterModel, Outbox
from twin.meter.profiles import DailyProfileRow, LoadProfileRow, MbusHourRow
from twin.meter.state import MbusReading, MeterState
from twin.metering import TARIFF_SETTING, Meter, program_from_config, program_to_setting
from twin.store import Store, StoreError


def test_wal_and_full_sync(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    db = sqlite3.connect(tmp_path / "meter.sqlite3")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()


def test_a_meters_wal_stays_small_however_long_it_runs(tmp_path: Path) -> None:
    # A fleet keeps a store per meter: with SQLite's default (a WAL keeps the 1000 pages, 4 MB,
    # it grows to before its checkpoint) 1000 meters held 4 GB of WAL after a few hours
    # (docs/benchmarks.md, "Fleet store"). 300 checkpoints grew one WAL to 1.2 MB.
    store = Store.open(tmp_path)
    wal = tmp_path / "meter.sqlite3-wal"
    start = amsterdam(2026, 11, 23, 12, 0)
    largest = 0
    for seconds in range(300):
        store.commit(MeterState(time=start + timedelta(seconds=seconds)), Outbox())
        largest = max(largest, wal.stat().st_size)
    store.close()
    assert largest <= 300 * 1024
    reopened = Store.open(tmp_path)
    checkpoint = reopened.load()
    reopened.close()
    assert checkpoint is not None
    assert checkpoint.state.time == start + timedelta(seconds=299)


def test_state_round_trip_and_event_capacity(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    start = amsterdam(2026, 11, 23, 12, 0)
    meter_clock = ManualClock(start)
    meter = Meter(steady_config(), meter_clock, store, random.Random(1))
    meter.model.set_load_override(start, 1500)
    meter.model.advance(start + timedelta(hours=2))
    events = [Event.of(start + timedelta(seconds=i), 40 + i % 2) for i in range(35)]
    store.commit(meter.model.state, Outbox(events=events))
    store.close()

    reopened = Store.open(tmp_path)
    checkpoint = reopened.load()
    assert checkpoint is not None
    assert checkpoint.state.wh("1-0:1.8.2") == 3000
    fraud = reopened.events(EventLog.FRAUD)
    assert len(fraud) == EventLog.FRAUD.capacity == 30  # FIFO buffer of 30 (P3 §5.8)
    assert fraud[-1].when == start + timedelta(seconds=34)
    assert fraud[0].when == start + timedelta(seconds=5)


def test_load_profile_keeps_960_rows(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    start = amsterdam(2026, 11, 1, 0, 0)
    clock = ManualClock(start)
    meter = Meter(steady_config(), clock, store, random.Random(1))
    meter.model.advance(start + timedelta(days=11))
    meter.commit()
    rows = store.load_profile()
    assert len(rows) == 960
    assert rows[-1].time == start + timedelta(days=11)
    assert store.load_profile(since=rows[-4].time) == rows[-4:]
    assert len(store.daily_profile()) == 11


def test_unusable_state_dir_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match="cannot open the store"):
        Store.open(blocker / "state")


def _made_then_changed(state_dir: Path, sql: str) -> None:
    """A twin database, then `sql` run on it behind the store's back."""
    Store.open(state_dir).close()
    db = sqlite3.connect(state_dir / "meter.sqlite3")
    db.execute(sql)
    db.commit()
    db.close()


def test_schema_version_mismatch_is_refused(tmp_path: Path) -> None:
    _made_then_changed(tmp_path, "UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match="schema 99"):
        Store.open(tmp_path)


async def test_publish_commits_before_returning(tmp_path: Path) -> None:
    start = amsterdam(2026, 11, 23, 12, 0)
    clock = ManualClock(start)
    meter = Meter(steady_config(), clock, Store.open(tmp_path), random.Random(1))
    meter.act(lambda m, now: m.set_load_override(now, 2000))
    await clock.set(start + timedelta(minutes=45))
    published = meter.publish()
    # A second connection sees what was published: it is on disk.
    checkpoint = Store.open(tmp_path).load()
    assert checkpoint is not None
    assert checkpoint.state.registers_wh() == published.energy_wh
    assert published.energy_wh["1-0:1.8.2"] == 1500


async def test_restart_records_downtime_and_continues_registers(tmp_path: Path) -> None:
    start = amsterdam(2026, 11, 23, 12, 0)
    clock = ManualClock(start)
    meter = Meter(steady_config(), clock, Store.open(tmp_path), random.Random(1))
    meter.act(lambda m, now: m.set_load_override(now, 1000))
    await clock.set(start + timedelta(hours=1))
    before = meter.publish()
    meter.store.close()

    later = ManualClock(start + timedelta(hours=1, minutes=10))
    again = Meter(steady_config(), later, Store.open(tmp_path), random.Random(2))
    after = again.publish()
    assert after.failures_any == before.failures_any + 1
    assert after.failures_long == before.failures_long + 1
    assert after.failure_log[0].duration_s == 600
    assert all(after.energy_wh[c] >= before.energy_wh[c] for c in before.energy_wh)
    codes = [e.code for e in again.store.events(EventLog.STANDARD)]
    assert codes[-2:] == [EventCode.POWER_DOWN, EventCode.POWER_UP]


def test_tariff_program_written_over_p3_survives_restart(tmp_path: Path) -> None:
    config = Config()
    store = Store.open(tmp_path)
    program = program_from_config(config)
    shifted = type(program)(normal_start=program.normal_start.replace(hour=8))
    store.put_setting(TARIFF_SETTING, program_to_setting(shifted))
    meter = Meter(config, ManualClock(amsterdam(2026, 11, 23, 7, 30)), store, random.Random(1))
    assert meter.model.program == shifted
    assert meter.publish().tariff == 1  # 07:30 is still low with the 08:00 switch


def test_monthly_billing_rows_at_midnight_on_the_first(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    start = amsterdam(2026, 1, 20, 0, 0)
    meter = Meter(steady_config(), ManualClock(start), store, random.Random(1))
    meter.model.set_load_override(start, 1000)
    meter.model.advance(amsterdam(2026, 3, 2, 0, 0))
    meter.commit()
    months = store.monthly_profile()
    assert [m.time for m in months] == [amsterdam(2026, 2, 1, 0, 0), amsterdam(2026, 3, 1, 0, 0)]
    imported = [row.energy_wh[0] + row.energy_wh[1] for row in months]
    assert imported[1] - imported[0] == 28 * 24 * 1000  # February at a steady 1 kW


def test_monthly_profile_keeps_13_months(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    state = Meter(steady_config(), ManualClock(amsterdam(2026, 1, 1)), store, random.Random(1))
    rows = [
        DailyProfileRow(amsterdam(2025 + (m // 12), m % 12 + 1, 1, 0, 0), 0, (m, 0, 0, 0), ())
        for m in range(15)
    ]
    store.commit(state.model.state, Outbox(monthly_profile=rows))
    months = store.monthly_profile()
    assert len(months) == 13  # 0-0:98.1.0 keeps 13 months
    assert [m.energy_wh[0] for m in months] == list(range(2, 15))


def test_database_is_not_world_readable(tmp_path: Path) -> None:
    import stat

    store = Store.open(tmp_path / "state")
    store.put_setting("x", 1)
    for name in ("meter.sqlite3", "meter.sqlite3-wal"):
        mode = stat.S_IMODE((tmp_path / "state" / name).stat().st_mode)
        assert mode & 0o007 == 0, name


def _hours(channel: int, count: int) -> list[MbusHourRow]:
    start = amsterdam(2026, 11, 1, 0, 0)
    return [
        MbusHourRow(
            channel, start + timedelta(hours=h), h % 2, 1000 * h, start + timedelta(hours=h)
        )
        for h in range(count)
    ]


def _meter(store: Store) -> Meter:
    return Meter(steady_config(), ManualClock(amsterdam(2026, 11, 23)), store, random.Random(1))


def test_mbus_hourly_keeps_240_per_channel_and_survives_reopen(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    meter = _meter(store)
    unknown_capture = MbusHourRow(3, amsterdam(2026, 11, 2, 0, 0), 4, 7, None)
    rows = [*_hours(1, 250), *_hours(2, 5), unknown_capture]
    store.commit(meter.model.state, Outbox(mbus_hourly=rows))
    store.close()

    reopened = Store.open(tmp_path)
    one = reopened.mbus_hourly(1)
    assert len(one) == 240  # 0-x:24.3.0 profile_entries (P3 §7.4), per channel
    assert one == _hours(1, 250)[10:]  # oldest first, the oldest ten dropped
    assert reopened.mbus_hourly(2) == _hours(2, 5)
    assert reopened.mbus_hourly(3) == [unknown_capture]
    assert reopened.mbus_hourly(4) == []


def test_clears_are_durable_and_touch_only_their_buffer(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    meter = _meter(store)
    when = amsterdam(2026, 11, 23, 12, 0)
    day = DailyProfileRow(when, 0, (1, 2, 3, 4), ((1, 5, when),))
    outbox = Outbox(
        events=[
            Event.of(when, EventCode.POWER_DOWN),
            Event.of(when, EventCode.METER_COVER_REMOVED),
        ],
        load_profile=[LoadProfileRow(when, 0, 1, 2)],
        daily_profile=[day],
        monthly_profile=[day],
        mbus_hourly=[*_hours(1, 3), *_hours(2, 3)],
    )
    store.commit(meter.model.state, outbox)
    store.clear_load_profile()
    store.clear_daily_profile()
    store.clear_monthly_profile()
    store.clear_mbus_hourly(1)
    store.clear_events(EventLog.STANDARD, when + timedelta(minutes=1))
    store.close()

    reopened = Store.open(tmp_path)
    assert reopened.load_profile() == []
    assert reopened.daily_profile() == reopened.monthly_profile() == []
    assert reopened.mbus_hourly(1) == []
    assert reopened.mbus_hourly(2) == _hours(2, 3)  # another channel's buffer stays
    standard = reopened.events(EventLog.STANDARD)
    # P3 §4.2.1: "Event log cleared" is the first entry, only in the affected log
    assert [(e.when, e.code) for e in standard] == [(when + timedelta(minutes=1), 255)]
    assert [e.code for e in reopened.events(EventLog.FRAUD)] == [EventCode.METER_COVER_REMOVED]
    later = Event.of(when + timedelta(minutes=2), EventCode.POWER_UP)
    reopened.commit(meter.model.state, Outbox(events=[later]))
    assert [e.code for e in reopened.events(EventLog.STANDARD)] == [255, EventCode.POWER_UP]


def test_definable_entries_add_drop_clear(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    start = amsterdam(2026, 11, 23, 0, 0)
    for day in range(3):
        store.add_definable_entry(start + timedelta(days=day), bytes([2, 1, 17, day]))
    first, second, third = store.definable_entries()
    assert [e.entry[-1] for e in (first, second, third)] == [0, 1, 2]
    assert first.id < second.id < third.id  # capture order
    store.add_definable_entry(start + timedelta(days=3), b"\x02\x00", drop=[first.id])
    store.drop_definable_entries([second.id])
    store.close()

    reopened = Store.open(tmp_path)
    kept = reopened.definable_entries()
    assert [(e.time, e.entry) for e in kept] == [
        (start + timedelta(days=2), bytes([2, 1, 17, 2])),
        (start + timedelta(days=3), b"\x02\x00"),
    ]
    reopened.clear_definable_profile()
    reopened.close()
    assert Store.open(tmp_path).definable_entries() == []


def test_a_missing_database_with_leftovers_is_not_a_new_meter(tmp_path: Path) -> None:
    Store.open(tmp_path).close()
    (tmp_path / "meter.sqlite3").rename(tmp_path / "elsewhere")
    (tmp_path / "meter.sqlite3-wal").write_bytes(b"\x37\x7f\x06\x82" + bytes(28))
    with pytest.raises(StoreError, match=r"meter\.sqlite3-wal is there"):
        Store.open(tmp_path)
    (tmp_path / "meter.sqlite3-wal").unlink()
    (tmp_path / "backups").mkdir()
    (tmp_path / "backups" / "meter-20261201T000000Z.sqlite3").write_bytes(b"")
    with pytest.raises(StoreError, match="store restore"):
        Store.open(tmp_path)
    assert not (tmp_path / "meter.sqlite3").exists()


def test_a_table_added_since_the_database_was_made_is_created_at_open(tmp_path: Path) -> None:
    _made_then_changed(tmp_path, "DROP TABLE definable_profile")
    store = Store.open(tmp_path)
    assert store.definable_entries() == []
    store.close()


def test_the_m_bus_devices_of_the_state_round_trip_whole() -> None:
    """The record is built field by field (no deep copy on the loop): every field of an
    M-Bus device must still be in it."""
    start = amsterdam(2026, 11, 23, 12, 0)
    state = MeterModel.new_state(steady_config(), start)
    state.mbus[1] = MbusReading(1, 3, "G0099000000000019", 123_456, start)
    state.mbus[2] = MbusReading(2, 7, "W0099000000000020", 7, None)
    again = MeterState.from_record(json.loads(json.dumps(state.to_record())))
    assert again.mbus == state.mbus
    assert set(state.to_record()["mbus"]["1"]) == {f.name for f in fields(MbusReading)}
