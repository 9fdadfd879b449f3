"""The meter model on a simulated clock: tariffs, DST, monotone registers, failures, profiles."""

from __future__ import annotations

import contextlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support import amsterdam, model_at, steady_config
from twin.config import Config
from twin.meter.events import EventCode, EventLog, log_of
from twin.meter.model import FAILURE_LOG_SIZE, MeterModel, ModelError
from twin.meter.profiles import STATUS_DNV, STATUS_DST, STATUS_PDN

QUARTER = timedelta(minutes=15)

T1_IN, T2_IN, T1_OUT, T2_OUT = "1-0:1.8.1", "1-0:1.8.2", "1-0:2.8.1", "1-0:2.8.2"


def steady(start: datetime, watts: float, phases: int = 3) -> MeterModel:
    model = model_at(start, steady_config(phases))
    model.set_load_override(start, watts)
    return model


def wh(model: MeterModel, code: str) -> float:
    return model.state.wh(code)


def test_tariff_switch_at_0700_and_2300_on_a_working_day() -> None:
    model = steady(amsterdam(2026, 11, 23, 6, 0), 1000)  # a Monday
    model.advance(amsterdam(2026, 11, 23, 8, 0))
    assert wh(model, T1_IN) == pytest.approx(1000)
    assert wh(model, T2_IN) == pytest.approx(1000)
    model.advance(amsterdam(2026, 11, 24, 0, 0))
    assert wh(model, T2_IN) == pytest.approx(16_000)  # 07:00-23:00
    assert wh(model, T1_IN) == pytest.approx(2_000)


def test_weekend_is_all_low_tariff_and_export_goes_to_2_8_1() -> None:
    model = steady(amsterdam(2026, 11, 21, 0, 0), -500)  # Saturday, exporting
    model.advance(amsterdam(2026, 11, 23, 0, 0))
    assert wh(model, T1_OUT) == pytest.approx(24_000)
    assert wh(model, T2_OUT) == 0
    assert wh(model, T1_IN) == wh(model, T2_IN) == 0


def test_spring_dst_day_has_23_hours() -> None:
    model = steady(amsterdam(2026, 3, 29, 0, 0), 1000)  # Sunday: all tariff 1
    model.advance(amsterdam(2026, 3, 30, 0, 0))
    assert wh(model, T1_IN) == pytest.approx(23_000)
    dst = [e for e in model.drain().events if e.code == EventCode.DST_CHANGE]
    assert len(dst) == 1
    assert dst[0].when == datetime(2026, 3, 29, 0, 59, 59, tzinfo=UTC)


def test_autumn_repeated_hour_counted_once_per_real_hour() -> None:
    model = steady(amsterdam(2026, 10, 25, 0, 0), 1000)
    rows_before = len(model.outbox.load_profile)
    model.advance(amsterdam(2026, 10, 26, 0, 0))
    # 25 hours of real time pass on that Sunday: 25 kWh, never double-counted or skipped.
    assert wh(model, T1_IN) == pytest.approx(25_000)
    rows = model.drain().load_profile[rows_before:]
    assert len(rows) == 25 * 4  # one profile entry per 15 minutes of real time
    assert len({r.time for r in rows}) == len(rows)
    dst_flags = [bool(r.status & STATUS_DST) for r in rows]
    # The status bit tells the clock at capture: 01:00 UTC is already winter time.
    assert dst_flags[:11] == [True] * 11
    assert dst_flags[11:] == [False] * (len(rows) - 11)


def test_registers_never_decrease_over_a_simulated_week() -> None:
    config = Config()
    start = amsterdam(2026, 6, 1, 0, 0)
    model = model_at(start, config, seed=7)
    previous = model.state.registers_wh()
    for step in range(1, 7 * 24 * 6 + 1):
        reading = model.reading(start + timedelta(minutes=10 * step))
        for code, value in reading.energy_wh.items():
            assert value >= previous[code]
        previous = model.state.registers_wh()
        # Totals are the net sum of the phases (rounding to whole W per value).
        net_total = reading.import_w - reading.export_w
        net_phases = sum(reading.import_w_phase) - sum(reading.export_w_phase)
        assert abs(net_total - net_phases) <= 3
        assert all(
            p == 0 or n == 0
            for p, n in zip(reading.import_w_phase, reading.export_w_phase, strict=True)
        )
    # A June week with 3.6 kWp of PV both imports and exports.
    assert sum(previous[c] for c in (T1_IN, T2_IN)) > 5_000
    assert sum(previous[c] for c in (T1_OUT, T2_OUT)) > 5_000


def test_short_power_failure_counts_without_log_entry() -> None:
    start = amsterdam(2026, 11, 23, 12, 0)
    model = steady(start, 1000)
    model.power_failure(start, 60)
    assert not model.reading(start + timedelta(seconds=30)).powered
    model.advance(start + timedelta(hours=1))
    assert model.state.failures_any == 1
    assert model.state.failures_long == 0
    assert model.state.failure_log == []
    assert wh(model, T2_IN) == pytest.approx(1000 * (3600 - 60) / 3600, abs=1)
    codes = [e.code for e in model.drain().events]
    assert codes == [EventCode.POWER_DOWN, EventCode.POWER_UP]


def test_long_power_failure_is_logged_with_end_time_and_duration() -> None:
    start = amsterdam(2026, 11, 23, 12, 0)
    model = steady(start, 1000)
    model.power_failure(start, 400)
    model.advance(start + timedelta(minutes=30))
    assert (model.state.failures_any, model.state.failures_long) == (1, 1)
    [entry] = model.state.failure_log
    assert entry.end == start + timedelta(seconds=400)
    assert entry.duration_s == 400
    rows = model.drain().load_profile
    assert rows[0].status & STATUS_PDN
    assert rows[0].status & STATUS_DNV


def test_failure_log_keeps_the_ten_most_recent_first() -> None:
    start = amsterdam(2026, 11, 23, 12, 0)
    model = steady(start, 100)
    for i in range(12):
        at = start + timedelta(hours=i)
        model.advance(at)
        model.power_failure(at, 200 + i)
    model.advance(start + timedelta(hours=13))
    assert model.state.failures_long == 12
    assert len(model.state.failure_log) == FAILURE_LOG_SIZE
    assert [f.duration_s for f in model.state.failure_log] == [211 - i for i in range(10)]


def test_threshold_is_configurable() -> None:
    config = steady_config()
    config = Config(
        meter=config.meter,
        load=config.load,
        pv=config.pv,
        quality=type(config.quality)(long_failure_threshold_s=30),
    )
    start = amsterdam(2026, 11, 23, 12, 0)
    model = model_at(start, config)
    model.power_failure(start, 60)
    model.advance(start + timedelta(minutes=2))
    assert model.state.failures_long == 1


def test_downtime_of_the_twin_is_a_power_failure_and_fills_the_profile() -> None:
    start = amsterdam(2026, 11, 23, 12, 0)
    model = steady(start, 1000)
    model.advance(start + timedelta(minutes=10))
    model.drain()
    model.record_downtime(start + timedelta(minutes=10), start + timedelta(hours=3))
    assert (model.state.failures_any, model.state.failures_long) == (1, 1)
    assert model.state.failure_log[0].duration_s == 3 * 3600 - 600
    out = model.drain()
    assert [e.code for e in out.events] == [EventCode.POWER_DOWN, EventCode.POWER_UP]
    times = [r.time for r in out.load_profile]
    assert len(times) == 12  # 12:15 .. 15:00 local, one per quarter, none skipped
    assert all(b - a == timedelta(minutes=15) for a, b in pairwise(times))
    assert all(r.status & STATUS_PDN for r in out.load_profile)
    assert wh(model, T2_IN) == pytest.approx(1000 * 10 / 60, abs=1)  # nothing metered while off


def test_daily_profile_at_local_midnight() -> None:
    model = steady(amsterdam(2026, 11, 23, 12, 0), 1000)
    model.advance(amsterdam(2026, 11, 26, 12, 0))
    days = model.drain().daily_profile
    assert [d.time for d in days] == [
        amsterdam(2026, 11, 24, 0, 0),
        amsterdam(2026, 11, 25, 0, 0),
        amsterdam(2026, 11, 26, 0, 0),
    ]
    assert days[1].energy_wh[1] - days[0].energy_wh[1] == 16_000  # a weekday's tariff 2
    assert days[0].mbus[0][0] == 1  # gas channel 1 with its hourly value


def test_sags_and_swells_per_phase() -> None:
    start = amsterdam(2026, 11, 23, 12, 0)
    model = steady(start, 1000)
    model.voltage_sag(start, 2)
    model.voltage_swell(start, 3)
    reading = model.reading(start + timedelta(seconds=1))
    assert reading.sags == (0, 1, 0)
    assert reading.swells == (0, 0, 1)
    assert reading.voltage_v[1] < 207
    assert reading.voltage_v[2] > 253
    with pytest.raises(ModelError, match="phase"):
        model.voltage_sag(start, 4)


def test_single_phase_meter_has_one_phase() -> None:
    start = amsterdam(2026, 11, 23, 12, 0)
    model = steady(start, 2300, phases=1)
    reading = model.reading(start + timedelta(minutes=1))
    assert reading.import_w_phase == (2300,)
    assert reading.current_a == (10,)
    with pytest.raises(ModelError):
        model.voltage_swell(start, 2)


def test_tamper_goes_to_the_fraud_log_and_reserved_codes_cannot_be_raised() -> None:
    start = amsterdam(2026, 11, 23, 12, 0)
    model = steady(start, 100)
    model.tamper(start)
    [event] = model.drain().events
    assert (event.code, event.log) == (EventCode.TERMINAL_COVER_REMOVED, EventLog.FRAUD)
    with pytest.raises(ModelError):
        model.tamper(start, 60)
    for reserved in (60, 67, 160, 194, 21):
        with pytest.raises(ValueError, match="not raised"):
            log_of(reserved)


def test_message_validation() -> None:
    model = steady(amsterdam(2026, 11, 23, 12, 0), 100)
    model.set_message("12345678", "Storing in uw wijk")
    assert model.state.message_text == "Storing in uw wijk"
    with pytest.raises(ModelError):
        model.set_message("123456789", "")
    with pytest.raises(ModelError):
        model.set_message("", "x" * 1025)
    # P1 §5.13 example 0-0:96.13.1(3031203631203831): digits grouped with spaces (P3 written
    # codes go through here too).
    model.set_message("01 61 81", "")
    assert model.state.message_code == "01 61 81"
    with pytest.raises(ModelError):
        model.set_message("12a", "")


@pytest.mark.parametrize("watts", [69_001, -69_001, float("nan"), float("inf"), 1e30])
def test_a_load_beyond_what_the_meter_carries_is_refused(watts: float) -> None:
    # 3 phases x 100 A (DSMR-M 4.3.38 Imax) x 230 V = 69 kW; more would wrap 1-0:1.7.0 on P1.
    start = amsterdam(2026, 11, 23, 12, 0)
    model = steady(start, 69_000)
    with pytest.raises(ModelError, match="69000"):
        model.set_load_override(start, watts)
    model.advance(start + timedelta(hours=1))
    assert wh(model, T2_IN) == pytest.approx(69_000)


def test_clock_adjust_logs_old_and_new_time_and_registers_hold() -> None:
    start = amsterdam(2026, 11, 23, 12, 0)
    model = steady(start, 1000)
    model.advance(start + timedelta(hours=1))
    before = model.state.registers_wh()
    model.clock_adjusted(start + timedelta(hours=1), start)
    model.advance(start + timedelta(minutes=30))
    codes = [e.code for e in model.drain().events]
    assert codes == [EventCode.CLOCK_ADJUSTED_OLD, EventCode.CLOCK_ADJUSTED_NEW]
    assert all(model.state.wh(c) >= before[c] for c in before)


def test_one_advance_over_days_captures_every_boundary_as_small_steps_do() -> None:
    # A fast clock: one metering step may span days; every quarter, hour and midnight in it
    # is captured, with the registers of that boundary (the same rows as minute steps give).
    start = amsterdam(2026, 10, 23, 9, 7)  # across the autumn DST change
    config = Config()
    big, small = model_at(start, config), model_at(start, config)
    end = start + timedelta(days=3, hours=5)
    big.advance(end)
    when = start
    while when < end:
        when = min(end, when + timedelta(seconds=37))
        small.advance(when)
    rows = big.drain()
    assert rows.load_profile == small.drain().load_profile
    assert all(b.time - a.time == QUARTER for a, b in pairwise(rows.load_profile))
    # Both ends lie 7 minutes past a quarter: one row per 15 minutes of UTC time (78 h here).
    assert len(rows.load_profile) == (end.astimezone(UTC) - start.astimezone(UTC)) // QUARTER
    assert len(rows.daily_profile) == 3


def test_clouds_dim_the_pv_from_the_time_they_are_set() -> None:
    """The weather lever of scenarios: heavy clouds from 08:00 on a June day export less than
    clear skies, with the same random stream (the household draws the same)."""
    config = Config(load=replace(Config().load, appliances=False))
    exported = []
    for cloudiness in (0.0, 1.0):
        model = model_at(amsterdam(2026, 6, 21, 6, 0), config, seed=3)
        model.set_cloudiness(amsterdam(2026, 6, 21, 8, 0), cloudiness)
        model.advance(amsterdam(2026, 6, 21, 16, 0))
        e = model.state.registers_wh()
        exported.append(e["1-0:2.8.1"] + e["1-0:2.8.2"])
    assert exported[1] < 0.6 * exported[0]
    with pytest.raises(ModelError, match="cloudiness is from 0 to 1"):
        model.set_cloudiness(amsterdam(2026, 6, 21, 16, 0), float("nan"))


def test_the_registers_do_not_depend_on_how_time_was_stepped_over_a_power_failure() -> None:
    """A failure that ends mid-step (200.5 s from 10:07:13) is metered the same whether the
    model is advanced in one step, in 10 s steps or in 0.5 s ticks: the steps are cut where
    the supply returns, so the powered rest of the step is not lost."""
    start = amsterdam(2026, 3, 10, 10, 0)
    energies = []
    for step_s in (3600.0, 10.0, 0.5):
        model = model_at(start, seed=5)
        model.power_failure(start + timedelta(seconds=433), 200.5)
        now = start + timedelta(seconds=433)
        while now < start + timedelta(hours=1):
            now = min(now + timedelta(seconds=step_s), start + timedelta(hours=1))
            model.advance(now)
        energies.append(dict(model.state.energy_nj))
    assert energies[0] == energies[1] == energies[2]


@settings(max_examples=25, deadline=None)
@given(
    cuts=st.lists(st.floats(2, 1800, allow_nan=False), min_size=1, max_size=40),
    failure_at=st.floats(0, 2 * 3600, allow_nan=False),
    failure_s=st.floats(1, 1500, allow_nan=False),
    sag_at=st.floats(0, 2 * 3600, allow_nan=False),
    load_at=st.floats(0, 2 * 3600, allow_nan=False),
)
def test_how_time_is_stepped_never_changes_what_the_meter_measures(
    cuts: list[float], failure_at: float, failure_s: float, sag_at: float, load_at: float
) -> None:
    """The same actions at the same meter times give the same registers, profiles, events
    and reading, whether the model is advanced only to the action times or in any steps
    between them (a 0.5 s tick, a scenario's due points, a slow event loop)."""
    start = amsterdam(2026, 3, 29, 1, 15).astimezone(UTC)  # over the spring DST change
    end = 2.5 * 3600
    actions = sorted(
        [
            (failure_at, lambda m, t: m.power_failure(t, failure_s)),
            (sag_at, lambda m, t: m.voltage_sag(t, 2, 45.5)),
            (load_at, lambda m, t: m.set_load_override(t, 2500.0)),
        ],
        key=lambda action: action[0],
    )

    def run(stepped: bool) -> tuple[object, ...]:
        model = model_at(start, seed=9)
        at, cut = 0.0, 0
        for when, action in [*actions, (end, None)]:
            while stepped and at + cuts[cut % len(cuts)] < when:
                at += cuts[cut % len(cuts)]
                cut += 1
                model.advance(start + timedelta(seconds=at))
            at = when
            if action is not None:
                with contextlib.suppress(ModelError):  # a failure already in progress
                    action(model, start + timedelta(seconds=at))
        model.advance(start + timedelta(seconds=end))
        reading = model.reading(start + timedelta(seconds=end))
        return dict(model.state.energy_nj), model.drain(), reading

    assert run(stepped=True) == run(stepped=False)
