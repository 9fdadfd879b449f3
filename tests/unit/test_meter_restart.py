"""The meter clock across restarts: real Meters built, closed and built again over one store.

A restart must neither apply a P3 clock set a second time nor fall back to the host's clock:
the meter keeps its own timeline (checkpointed meter time plus the real downtime times the
speed), as a real meter's clock runs on through a power failure. Only `[clock] resync` moves
it, and then as a clock set with events 4 and 5.
"""

from __future__ import annotations

import logging
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support import steady_config
from twin.app import build
from twin.clock import TIME_MAX
from twin.config import ClockConfig, Config
from twin.meter.events import EventCode, EventLog
from twin.meter.model import MeterModel
from twin.metering import Meter
from twin.store import Store

START = "2030-06-01T12:00:00+00:00"  # far from the host's clock: a fall-back to it shows
# Real time passes between close and build (milliseconds, more on a busy CPU); at the speeds
# used here that is well under this much meter time, and far under the shifts tested.
SLACK = timedelta(minutes=5)


def config_at(speed: float, start: str = START, *, resync: bool = False) -> Config:
    config = steady_config()
    return replace(config, clock=ClockConfig(speed=speed, start=start, resync=resync))


def open_meter(config: Config, state_dir: Path) -> Meter:
    """The meter of a twin built as `dsmr-twin run` builds it: store, clock, meter, ports."""
    return build(config, state_dir, random.Random(1)).meter


def restart(meter: Meter, config: Config, state_dir: Path) -> Meter:
    """Stop as `twin.app.serve` stops (checkpoint, close the store), then build again."""
    meter.commit()
    meter.store.close()
    return open_meter(config, state_dir)


def clock_events(meter: Meter) -> list[int]:
    codes = (EventCode.CLOCK_ADJUSTED_OLD, EventCode.CLOCK_ADJUSTED_NEW)
    return [e.code for e in meter.store.events(EventLog.STANDARD) if e.code in codes]


@pytest.mark.parametrize("speed", [1.0, 20.0])
@pytest.mark.parametrize("shift", [timedelta(days=1), timedelta(days=-3)])
def test_a_clock_set_is_applied_once_across_restarts(
    tmp_path: Path, speed: float, shift: timedelta
) -> None:
    config = config_at(speed)
    meter = open_meter(config, tmp_path)
    meter.set_time(meter.now() + shift)
    for _ in range(3):
        before = meter.now()
        registers = meter.publish().energy_wh
        meter = restart(meter, config, tmp_path)
        after = meter.now()
        assert before <= after < before + SLACK  # not another day on, not back to the start
        reading = meter.publish()
        assert reading.time >= before  # P1 timestamps never run back
        assert all(reading.energy_wh[c] >= registers[c] for c in registers)
        assert meter.model.state.failures_long == 0  # no day-long "power failure"
    assert clock_events(meter) == [EventCode.CLOCK_ADJUSTED_OLD, EventCode.CLOCK_ADJUSTED_NEW]
    meter.store.close()


def test_a_meter_that_ran_ahead_keeps_its_time_when_restarted_at_speed_1(tmp_path: Path) -> None:
    meter = open_meter(config_at(3600.0), tmp_path)
    meter.set_time(meter.now() + timedelta(days=13))  # as if it had run 13 days ahead
    before = meter.now()
    meter = restart(meter, config_at(1.0, "now"), tmp_path)
    assert before <= meter.now() < before + SLACK  # not the host's clock
    assert meter.clock.speed == 1.0
    assert clock_events(meter) == [EventCode.CLOCK_ADJUSTED_OLD, EventCode.CLOCK_ADJUSTED_NEW]
    meter.store.close()


def test_resync_moves_the_meter_to_the_host_clock_as_a_clock_set(tmp_path: Path) -> None:
    meter = open_meter(config_at(3600.0), tmp_path)
    ahead = meter.now()
    meter = restart(meter, config_at(1.0, "now", resync=True), tmp_path)
    host = datetime.now(UTC)
    assert abs(meter.now() - host) < timedelta(seconds=5)
    events = [
        e
        for e in meter.store.events(EventLog.STANDARD)
        if e.code in (EventCode.CLOCK_ADJUSTED_OLD, EventCode.CLOCK_ADJUSTED_NEW)
    ]
    assert [e.code for e in events] == [EventCode.CLOCK_ADJUSTED_OLD, EventCode.CLOCK_ADJUSTED_NEW]
    assert abs(events[0].when - ahead) < SLACK
    assert abs(events[1].when - host) < timedelta(seconds=5)
    meter.store.close()


def test_a_store_with_a_brick_making_clock_still_starts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A store written before clock sets were range-checked: the checkpoint and the offset
    say 9999-12-31. The meter starts on its configured clock, logs the error and a clock
    set, and drops the profile rows stamped with the time it cannot carry."""
    config = config_at(60.0)
    meter = open_meter(config, tmp_path)
    meter.store.close()
    store = Store.open(tmp_path)
    brick = datetime(9999, 12, 31, tzinfo=UTC)
    state = MeterModel.new_state(config, brick)
    model = MeterModel(config, random.Random(1), state, meter.model.program)
    model.advance(brick + timedelta(minutes=30))  # two load profile rows in year 9999
    store.commit(model.state, model.drain())
    store.put_setting("clock_offset_s", (brick - datetime.now(UTC)).total_seconds())
    store.close()
    with caplog.at_level(logging.ERROR):
        meter = open_meter(config, tmp_path)
    assert "9999" in caplog.text
    now = meter.now()
    assert datetime.fromisoformat(START) <= now < datetime.fromisoformat(START) + SLACK
    assert all(r.time <= TIME_MAX for r in meter.store.load_profile())
    old, new = [
        e
        for e in meter.store.events(EventLog.STANDARD)
        if e.code in (EventCode.CLOCK_ADJUSTED_OLD, EventCode.CLOCK_ADJUSTED_NEW)
    ]
    assert old.when == TIME_MAX  # the stored time, clamped: every port can show the event
    assert abs(new.when - now) < SLACK
    meter.publish()
    meter.store.close()
    assert open_meter(config, tmp_path).now() >= now  # and the next start continues from here
