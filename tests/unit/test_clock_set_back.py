"""The profile buffers after the meter clock was set back (docs/meter-model.md, "Clock sets").

The buffers keep the rows captured before the set and capture nothing until the clock passes
the time it had reached; the first row after that carries CAD|DNV. So every buffer holds one
row per capture period, in time order, and the interval energy between consecutive rows is
never negative (P3 §6.3, §7.4: "filled monotonously ... exactly one entry per capture period").
"""

from __future__ import annotations

import asyncio
import random
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support import amsterdam, model_at, steady_config
from twin.clock import ManualClock, floor_to
from twin.meter.profiles import STATUS_CAD, STATUS_DNV
from twin.metering import Meter
from twin.store import Store

CONFIG = steady_config()


def meter_at(state_dir: Path, when: datetime) -> tuple[Meter, ManualClock]:
    clock = ManualClock(when)
    meter = Meter(CONFIG, clock, Store.open(state_dir), random.Random(1))
    meter.act(lambda model, now: model.set_load_override(now, 1000))
    return meter, clock


def run_to(meter: Meter, clock: ManualClock, when: datetime) -> None:
    """Let meter time pass in 5-minute steps, committing like the meter loop does."""
    while meter.now() < when:
        step = min(300.0, (when - meter.now()).total_seconds())
        asyncio.run(clock.advance(step))
        meter.commit()


def assert_one_row_per_time_and_no_negative_interval(meter: Meter) -> None:
    store = meter.store
    load = store.load_profile()
    assert all(a.time < b.time for a, b in pairwise(load))
    assert all(b.import_wh - a.import_wh >= 0 for a, b in pairwise(load))
    for rows in (store.daily_profile(), store.monthly_profile()):
        assert all(a.time < b.time for a, b in pairwise(rows))
        assert all(
            all(y >= x for x, y in zip(a.energy_wh, b.energy_wh, strict=True))
            for a, b in pairwise(rows)
        )
    hourly = store.mbus_hourly(1)  # the gas stand-in on channel 1
    assert all(a.time < b.time and b.value >= a.value for a, b in pairwise(hourly))


def test_a_clock_set_back_keeps_every_buffer_in_order_with_no_negative_interval(
    tmp_path: Path,
) -> None:
    start = amsterdam(2026, 11, 30, 22, 0)
    reached = amsterdam(2026, 12, 1, 2, 0)  # past midnight on the 1st: daily and monthly rows
    meter, clock = meter_at(tmp_path, start)
    run_to(meter, clock, reached)
    before = meter.store.load_profile()
    meter.set_time(amsterdam(2026, 11, 30, 21, 0))
    run_to(meter, clock, amsterdam(2026, 12, 1, 4, 0))
    assert_one_row_per_time_and_no_negative_interval(meter)
    rows = meter.store.load_profile()
    assert rows[: len(before)] == before  # the rows captured before the set are kept as they were
    first_after = rows[len(before)]
    assert first_after.time == reached + timedelta(minutes=15)
    assert first_after.status & (STATUS_CAD | STATUS_DNV) == STATUS_CAD | STATUS_DNV
    # The energy of the repeated hours is in the first interval after the set, not lost.
    assert first_after.import_wh - before[-1].import_wh == 5 * 1000 + 250
    assert [r.time for r in meter.store.daily_profile()] == [amsterdam(2026, 12, 1, 0, 0)]
    assert [r.time for r in meter.store.monthly_profile()] == [amsterdam(2026, 12, 1, 0, 0)]
    meter.store.close()


def test_the_hold_survives_a_restart(tmp_path: Path) -> None:
    start = amsterdam(2026, 11, 23, 12, 0)
    meter, clock = meter_at(tmp_path, start)
    run_to(meter, clock, start + timedelta(hours=3))
    before = meter.store.load_profile()
    meter.set_time(start + timedelta(hours=1))
    run_to(meter, clock, start + timedelta(hours=2))
    meter.store.close()
    meter, clock = meter_at(tmp_path, meter.now())
    run_to(meter, clock, start + timedelta(hours=2, minutes=50))
    assert meter.store.load_profile() == before  # still held after the restart
    run_to(meter, clock, start + timedelta(hours=4))
    assert_one_row_per_time_and_no_negative_interval(meter)
    rows = meter.store.load_profile()
    assert [r.time for r in rows] == [start + timedelta(minutes=15 * n) for n in range(1, 17)]
    assert rows[len(before)].status & STATUS_CAD
    meter.store.close()


def test_a_small_synchronisation_back_over_a_quarter_does_not_capture_it_twice(
    tmp_path: Path,
) -> None:
    start = amsterdam(2026, 11, 23, 12, 0)
    meter, clock = meter_at(tmp_path, start)
    run_to(meter, clock, start + timedelta(minutes=15, seconds=20))
    captured = meter.store.load_profile()[-1]
    meter.set_time(start + timedelta(minutes=14, seconds=50), event=False)  # within 60 s
    run_to(meter, clock, start + timedelta(minutes=45))
    rows = meter.store.load_profile()
    assert rows[0] == captured  # not overwritten by a second capture of 12:15
    assert_one_row_per_time_and_no_negative_interval(meter)
    meter.store.close()


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["run", "set", "sync"]),
            st.integers(min_value=-86400, max_value=86400),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_any_clock_sets_leave_every_buffer_in_capture_order_by_time(
    steps: list[tuple[str, int]],
) -> None:
    """Captures, in the order the model makes them, have strictly increasing times and
    never-decreasing values, whatever the clock sets between them."""
    start = amsterdam(2026, 11, 30, 20, 0)
    model = model_at(start, CONFIG)
    model.set_load_override(start, 1000)
    now = reached = start
    for kind, seconds in steps:
        if kind == "run":
            now += timedelta(seconds=abs(seconds) % 10_800)
            model.advance(now)
        elif kind == "set":
            new = now + timedelta(seconds=seconds)
            model.clock_adjusted(now, new)
            now = new
        else:
            new = now + timedelta(seconds=seconds % 121 - 60)  # within the time shift limit
            model.advance(now)
            model.clock_moved(new)
            now = new
        reached = max(reached, now)
    end = max(reached, model.time) + timedelta(hours=1)  # past every time reached before
    model.advance(end)
    out = model.drain()
    load = out.load_profile
    assert all(a.time < b.time and a.import_wh <= b.import_wh for a, b in pairwise(load))
    for rows in (out.daily_profile, out.monthly_profile):
        assert all(a.time < b.time and a.energy_wh <= b.energy_wh for a, b in pairwise(rows))
    hourly = [r for r in out.mbus_hourly if r.channel == 1]
    assert all(a.time < b.time and a.value <= b.value for a, b in pairwise(hourly))
    assert load[-1].time == floor_to(end, 900)  # and capturing again
