"""10-minute average values (P3 §6.4, averaging scheme 3) and the household's reactive power."""

from __future__ import annotations

import asyncio
import json
import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.support import model_at, steady_config
from twin.clock import ManualClock
from twin.config import Config, LoadConfig, PvConfig
from twin.meter.averages import AverageValues
from twin.meter.household import POWER_FACTOR, Household
from twin.meter.model import MeterModel
from twin.meter.state import MeterState
from twin.metering import Meter
from twin.store import Store

START = datetime(2026, 11, 23, 20, 0, tzinfo=UTC)  # a period boundary (xx:00)
TAN_BASE = math.tan(math.acos(0.95))  # the override load draws like the base load


def at(minutes: float) -> datetime:
    return START + timedelta(minutes=minutes)


def steady(watts: float, phases: int = 3) -> MeterModel:
    model = model_at(START, steady_config(phases))
    model.set_load_override(START, watts)
    return model


def half_up(value: float) -> int:
    return math.floor(value + 0.5)


def volts_each_minute(model: MeterModel, minutes: range) -> list[tuple[float, ...]]:
    """The instantaneous voltages, sampled once per minute (constant within a minute)."""
    return [model.reading(at(m)).voltage_v for m in minutes]


def test_constant_load_averages_exactly_over_the_last_completed_period() -> None:
    model = steady(3000)
    volts = volts_each_minute(model, range(10))
    t = START
    while t < at(10):  # uneven steps: the sums must not depend on how the model is advanced
        t = min(t + timedelta(seconds=7.3), at(10))
        model.advance(t)
    assert model.reading(at(10) - timedelta(seconds=1)).averages == AverageValues.zero()
    avg = model.reading(at(10)).averages
    assert avg.import_w == (1000, 1000, 1000)
    assert avg.export_w == (0, 0, 0)
    assert avg.import_var == (half_up(1000 * TAN_BASE),) * 3 == (329, 329, 329)
    assert avg.export_var == (0, 0, 0)
    for phase in range(3):
        mean_u = sum(v[phase] for v in volts) / 10
        assert avg.voltage_v[phase] == half_up(mean_u)
        assert avg.current_a[phase] == half_up(sum(1000 / v[phase] for v in volts) / 10)
    assert model.reading(at(19.99)).averages == avg  # shown until the next period ends


def test_a_period_boundary_separates_the_averages() -> None:
    model = steady(3000)
    model.set_load_override(at(5), -1500)  # from 20:05 the meter exports 500 W per phase
    first = model.reading(at(10)).averages
    assert first.import_w == (500, 500, 500)  # 1000 W for half the period
    assert first.export_w == (250, 250, 250)
    assert first.import_var == (half_up(500 * TAN_BASE),) * 3  # generation: unity PF
    second = model.reading(at(20)).averages
    assert (second.import_w, second.export_w) == ((0, 0, 0), (500, 500, 500))
    assert second.import_var == second.export_var == (0, 0, 0)


def test_single_phase_meter_has_l1_averages_only() -> None:
    model = steady(2300, phases=1)
    avg = model.reading(at(10)).averages
    assert avg.import_w == (2300,)
    assert len(avg.voltage_v) == len(avg.current_a) == 1


def test_a_sag_ending_mid_minute_is_weighted_by_its_seconds() -> None:
    model = steady(3000)
    volts = volts_each_minute(model, range(1))
    model.voltage_sag(at(0.5), 1, seconds=10)  # 176.0 V on L1 from 20:00:30 to 20:00:40
    volts += volts_each_minute(model, range(1, 10))
    sag = round(207 * 0.85, 1)
    total_u = sum(v[0] * 60 for v in volts) - volts[0][0] * 10 + sag * 10
    total_i = sum(1000 / v[0] * 60 for v in volts) - 1000 / volts[0][0] * 10 + 1000 / sag * 10
    avg = model.reading(at(10)).averages
    assert avg.voltage_v[0] == half_up(total_u / 600)
    assert avg.current_a[0] == half_up(total_i / 600)


def test_power_failures_average_only_powered_time() -> None:
    model = steady(3000)
    model.power_failure(at(5), 120)  # off 20:05-20:07: 8 powered minutes in this period
    powered = [*range(5), *range(7, 10)]
    volts = [model.reading(at(m)).voltage_v for m in powered]
    avg = model.reading(at(10)).averages
    assert avg.import_w == (1000, 1000, 1000)
    assert avg.voltage_v[0] == half_up(sum(v[0] for v in volts) / len(volts))
    model.power_failure(at(10), 900)  # off 20:10-20:25: the period 20:10-20:20 has no power
    assert model.reading(at(25)).averages == AverageValues.zero()
    assert model.reading(at(30)).averages.import_w == (1000, 1000, 1000)


def test_averages_survive_a_record_round_trip_and_old_records_load() -> None:
    model = steady(3000)
    model.advance(at(15))
    record = json.loads(json.dumps(model.state.to_record()))
    restored = MeterState.from_record(record)
    assert restored.averages == model.state.averages
    del record["averages"]  # a checkpoint written before the averages existed
    assert MeterState.from_record(record).averages.published(at(15).timestamp(), 3) == (
        AverageValues.zero()
    )


def _meter(tmp: Path, start: datetime) -> tuple[Meter, ManualClock]:
    clock = ManualClock(start)
    return Meter(steady_config(), clock, Store.open(tmp), random.Random(1)), clock


def test_a_restart_keeps_the_last_average_and_continues_the_running_period(
    tmp_path: Path,
) -> None:
    meter, clock = _meter(tmp_path, START)
    meter.act(lambda m, now: m.set_load_override(now, 3000))
    asyncio.run(clock.advance(300))
    meter.commit()
    meter.store.close()
    # Off 20:05-20:06 (a power failure), then 0 W: 5 of the 9 powered minutes at 1000 W.
    meter, clock = _meter(tmp_path, at(6))
    meter.act(lambda m, now: m.set_load_override(now, 0))
    asyncio.run(clock.advance(240))
    assert meter.publish().averages.import_w == (half_up(1000 * 5 / 9),) * 3 == (556,) * 3
    meter.commit()
    meter.store.close()
    meter, _clock = _meter(tmp_path, at(13))
    assert meter.publish().averages.import_w == (556, 556, 556)  # 20:00-20:10, after a restart
    meter.store.close()


def test_reactive_power_follows_each_loads_power_factor_without_drawing() -> None:
    config = Config(load=LoadConfig(appliances=False), pv=PvConfig(peak_w=4000))
    house = Household(config.load, config.pv, 1, random.Random(4))
    tan = {name: math.tan(math.acos(pf)) for name, pf in POWER_FACTOR.items()}
    start = datetime(2026, 6, 21, 9, 0, tzinfo=UTC)
    generated = 0.0
    for minute in range(100):
        power = house.minute(start + timedelta(minutes=minute))
        generated += power.generated[0]
        p, q = power.consumed[0], power.reactive[0]
        fridge_off = math.isclose(q, p * tan["base"])
        fridge_on = math.isclose(q, (p - 110) * tan["base"] + 110 * tan["fridge"])
        assert fridge_off or fridge_on, (minute, p, q)
    assert generated > 0  # PV ran and contributed no reactive power


def test_reactive_model_leaves_the_energy_registers_as_they_were() -> None:
    # Pinned before the reactive model existed: same seed, same two days, same nJ.
    model = model_at(datetime(2026, 6, 1, tzinfo=UTC), Config(), seed=3)
    model.advance(datetime(2026, 6, 3, tzinfo=UTC))
    assert model.state.energy_nj == {
        "1-0:1.8.1": 13024659900000000,
        "1-0:1.8.2": 33820525980000000,
        "1-0:2.8.1": 234961620000000,
        "1-0:2.8.2": 133163795400000000,
    }


def test_reads_within_a_minute_keep_one_averaging_step_and_the_same_sums() -> None:
    """A head-end reading a meter many times a minute advances the model in tiny steps: they
    merge into one step per minute (and power), and the sums are exactly those of one step."""
    fine, coarse = steady(3000), steady(3000)
    t = START
    for _ in range(600):  # a read every 100 ms over a minute
        t += timedelta(milliseconds=100)
        fine.advance(t)
    assert len(fine.state.averages.steps) == 1
    coarse.advance(t)
    assert fine.state.averages.to_record() == coarse.state.averages.to_record()
    fine.advance(at(1.5))  # the next minute starts a step of its own
    assert len(fine.state.averages.steps) == 1  # summed by to_record, then one new one
