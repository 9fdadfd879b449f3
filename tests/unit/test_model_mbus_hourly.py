"""The M-Bus hourly profiles 0-x:24.3.0 in the meter model (P3 §7.4, status bits §4.2.5)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

from tests.support import amsterdam, model_at, steady_config
from twin.clock import ManualClock
from twin.meter.events import mbus_event_code
from twin.meter.model import MeterModel
from twin.meter.profiles import (
    STATUS_CAD,
    STATUS_DNV,
    STATUS_DST,
    STATUS_ERR,
    STATUS_PDN,
    MbusHourRow,
)
from twin.meter.state import MbusReading
from twin.metering import Meter
from twin.store import Store

HOUR = timedelta(hours=1)


def steady(start: datetime) -> MeterModel:
    """Gas stand-in on channel 1 (no P2 master): a fresh hourly value at every whole hour."""
    model = model_at(start, steady_config())
    model.set_load_override(start, 1000)
    return model


def hourly(model: MeterModel, channel: int = 1) -> list[MbusHourRow]:
    return [r for r in model.drain().mbus_hourly if r.channel == channel]


def test_one_row_per_whole_hour_with_the_value_and_its_capture_time() -> None:
    start = amsterdam(2026, 11, 23, 12, 20)
    model = steady(start)
    model.advance(start + timedelta(hours=3))
    rows = hourly(model)
    assert [r.time for r in rows] == [amsterdam(2026, 11, 23, h, 0) for h in (13, 14, 15)]
    gas = model.state.gas
    assert gas is not None
    assert rows[-1].value == gas.captured_litres
    assert rows[-1].capture == rows[-1].time  # the stand-in captures on the hour
    assert all(r.status == 0 for r in rows)  # winter, powered, fresh values


def test_each_installed_channel_gets_its_row_and_a_stale_value_is_not_valid() -> None:
    start = amsterdam(2026, 11, 23, 12, 30)
    model = steady(start)
    old = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    model.set_mbus_value(MbusReading(3, 3, "G3", 4567, old))
    model.advance(start + HOUR)
    out = model.drain().mbus_hourly
    assert [(r.channel, r.value, r.capture) for r in out][1:] == [(3, 4567, old)]
    assert out[1].status == STATUS_DNV  # no value read out during the hour (P3 §4.2.5)
    model.set_mbus_value(MbusReading(3, 3, "G3", 4600, amsterdam(2026, 11, 23, 13, 30)))
    model.advance(start + 2 * HOUR)
    assert hourly(model, 3)[0].status == 0
    model.remove_mbus_device(3)
    model.advance(start + 3 * HOUR)
    assert hourly(model, 3) == []


def test_power_failure_and_device_events_flag_only_their_hour() -> None:
    start = amsterdam(2026, 11, 23, 12, 0)
    model = steady(start)
    model.power_failure(start + timedelta(minutes=10), 60)
    model.log_event(start + timedelta(minutes=20), mbus_event_code(1, 6))  # permanent error
    model.log_event(start + timedelta(minutes=20), mbus_event_code(2, 4))  # other channel
    model.advance(start + 2 * HOUR)
    first, second = hourly(model)
    assert first.status == STATUS_PDN | STATUS_ERR | STATUS_DNV
    assert second.status == 0


def test_clock_adjustment_sets_cad_and_summer_rows_dst() -> None:
    start = amsterdam(2026, 6, 1, 12, 0)
    model = steady(start)
    model.advance(start + HOUR)
    assert hourly(model)[0].status == STATUS_DST
    now = start + HOUR + timedelta(minutes=5)
    model.clock_adjusted(now, now + timedelta(minutes=5))
    model.advance(start + 2 * HOUR)
    assert hourly(model)[0].status == STATUS_DST | STATUS_CAD | STATUS_DNV


def test_live_channel_status_follows_the_running_hour() -> None:
    start = amsterdam(2026, 11, 23, 12, 0)
    model = steady(start)
    assert model.mbus_period_status(1, start + timedelta(minutes=5)) == STATUS_DNV  # no value yet
    assert model.mbus_period_status(2, start) == 0  # nothing installed
    now = start + HOUR + timedelta(minutes=5)
    model.advance(now)
    assert model.mbus_period_status(1, now) == 0
    model.log_event(now, mbus_event_code(1, 4))  # clock adjusted on channel 1
    assert model.mbus_period_status(1, now) == STATUS_CAD | STATUS_DNV
    model.advance(start + 2 * HOUR)
    assert model.mbus_period_status(1, start + 2 * HOUR) == 0


def test_downtime_fills_every_missed_hour_in_order(tmp_path: Path) -> None:
    """ "Filled monotonously" (P3 §7.4): a restart after downtime replays the missed hours
    as PDN|DNV rows, up to the 240 the buffer keeps."""
    start = amsterdam(2026, 11, 23, 12, 10)
    clock = ManualClock(start)
    meter = Meter(steady_config(), clock, Store.open(tmp_path), random.Random(1))
    meter.store.close()
    later = start + timedelta(days=12)
    again = Meter(steady_config(), ManualClock(later), Store.open(tmp_path), random.Random(1))
    rows = again.store.mbus_hourly(1)
    assert len(rows) == 240
    assert rows[-1].time == amsterdam(2026, 12, 5, 12, 0)
    assert all(b.time - a.time == HOUR for a, b in pairwise(rows))
    assert all(r.status & (STATUS_PDN | STATUS_DNV) == STATUS_PDN | STATUS_DNV for r in rows)
