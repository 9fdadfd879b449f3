"""The model's power trace: the steps the web console's chart draws, keyed by meter time."""

from __future__ import annotations

from datetime import timedelta

from tests.support import amsterdam, model_at
from twin.config import Config
from twin.meter.model import POWER_TRACE_SIZE, MeterModel
from twin.web.views import power_chart

START = amsterdam(2026, 6, 21, 11, 0)  # midsummer noon: the PV generates


def _trace(model: MeterModel) -> list[tuple[object, ...]]:
    return [(s.time, s.consumed, s.generated) for s in model.power_trace]


def test_the_trace_holds_one_step_per_minute_keyed_by_meter_time() -> None:
    model = model_at(START)
    model.advance(START + timedelta(minutes=30))
    times = [s.time for s in model.power_trace]
    # The household draws anew every minute (a minute with the same power adds no step).
    assert times[0] == START
    assert all(t.second == 0 for t in times)
    assert len(times) >= 25
    assert times == sorted(times)
    assert any(sum(s.generated) > 0 for s in model.power_trace)  # the PV is in it


def test_the_trace_is_the_same_whatever_the_steps_of_the_clock() -> None:
    """A fast clock integrates in big steps, a slow one in 0.5 s ticks: the same chart."""
    end = START + timedelta(minutes=45)
    coarse = model_at(START)
    coarse.advance(end)
    fine = model_at(START)
    now = START
    while now < end:
        now += timedelta(seconds=7)
        fine.advance(min(now, end))
    assert _trace(fine) == _trace(coarse)


def test_a_power_failure_is_a_zero_step_and_the_power_returns_with_the_supply() -> None:
    model = model_at(START, Config())
    cut = START + timedelta(minutes=5, seconds=30)
    model.advance(cut)
    model.power_failure(cut, 90)
    model.advance(START + timedelta(minutes=10))
    steps = list(model.power_trace)
    dead = [s for s in steps if s.time == cut]
    assert len(dead) == 1
    assert not any(dead[0].consumed)
    assert not any(dead[0].generated)
    back = steps[steps.index(dead[0]) + 1]
    assert back.time == cut + timedelta(seconds=90)  # mid-minute: where the supply returns
    assert sum(back.consumed) > 0


def test_a_load_override_is_a_step_at_once_and_the_trace_is_bounded() -> None:
    model = model_at(START)
    at = START + timedelta(minutes=2, seconds=20)
    model.advance(at)
    model.set_load_override(at, 3000.0)
    model.advance(at + timedelta(seconds=10))
    step = model.power_trace[-1]
    assert step.time == at
    assert sum(step.consumed) - sum(step.generated) == 3000.0
    model.set_load_override(at, None)
    model.advance(START + timedelta(hours=5))
    assert len(model.power_trace) == POWER_TRACE_SIZE


def test_after_the_clock_is_set_back_the_trace_and_its_chart_stay_in_time_order() -> None:
    """A P3 clock set back (events 4 and 5): the steps after the new time did not happen on
    the meter's new time line, so the trace (and the chart of its last hour) holds only what
    led up to it, in order, then what comes after."""
    model = model_at(START)
    model.advance(START + timedelta(minutes=40))
    back = START + timedelta(minutes=10)
    model.clock_adjusted(START + timedelta(minutes=40), back)
    model.advance(back + timedelta(minutes=20))
    times = [s.time for s in model.power_trace]
    assert times == sorted(set(times))
    assert times[-1] <= back + timedelta(minutes=20)
    chart = power_chart(model.power_trace, model.time)
    shown = [step["t"] for step in chart["steps"]]
    assert shown == sorted(set(shown))
    assert len(shown) >= 25  # the half hour since START: no step lost


def test_a_small_clock_synchronisation_back_keeps_the_trace_in_order() -> None:
    model = model_at(START)
    model.advance(START + timedelta(minutes=5, seconds=20))
    model.clock_moved(START + timedelta(minutes=4, seconds=50))
    model.advance(START + timedelta(minutes=8))
    times = [s.time for s in model.power_trace]
    assert times == sorted(set(times))
