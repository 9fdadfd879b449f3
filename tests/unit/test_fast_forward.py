"""`ctl advance` (twin/fast_forward.py): the request checked at the authority, and the span
lived through as time passing (profiles filled, no clock-set events), on an injected clock."""

from __future__ import annotations

import asyncio
import random
import tempfile
from datetime import timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from tests.support import amsterdam, steady_config
from tests.unit.test_control_socket import running
from twin.clock import TIME_MAX, ManualClock
from twin.control_fields import FieldError
from twin.fast_forward import (
    MAX_DAYS,
    AdvanceBusyError,
    FastForward,
    add_advance_command,
    target_of,
)
from twin.meter.events import EventCode, EventLog
from twin.meter.profiles import STATUS_CAD
from twin.metering import Meter
from twin.store import Store

NOW = amsterdam(2026, 11, 23, 12, 0)


@pytest.mark.parametrize(
    ("request_fields", "named"),
    [
        ({"days": float("nan")}, "days"),
        ({"days": float("inf")}, "days"),
        ({"days": -1}, "days"),
        ({"days": 0}, "days"),
        ({"days": MAX_DAYS + 1}, "days"),
        ({"hours": float("nan")}, "hours"),
        ({"hours": -0.5}, "hours"),
        ({"days": 1e-300}, "days"),  # no span at the clock's resolution
        ({"days": True}, "days"),
        ({"until": "2026-12-01T00:00:00"}, "until"),  # no offset: ambiguous in October
        ({"until": "next week"}, "until"),
        ({"until": "0001-01-01T00:10:00+01:00"}, "until"),  # overflows in UTC
        ({"until": "9999-12-31T23:50:00-01:00"}, "until"),  # overflows in UTC
        ({"until": "2026-11-01T00:00:00+01:00"}, "until"),  # before the meter time
        ({"days": 1, "hours": 2}, "exactly one"),
        ({}, "exactly one"),
    ],
)
def test_a_bad_advance_is_refused_naming_the_field_and_the_meter_is_untouched(
    request_fields: dict[str, Any], named: str
) -> None:
    async def scenario() -> None:
        async with running() as run:
            add_advance_command(run.server, FastForward(run.meter))
            before = run.meter.clock.now()
            answer = await run.request({"cmd": "advance", **request_fields})
            assert answer["ok"] is False
            assert answer["kind"] == "field", answer
            assert named in answer["error"]
            assert run.meter.clock.now() == before
            assert run.meter.clock.steps == 0

    asyncio.run(scenario())


def test_a_target_past_the_clock_range_is_refused_naming_the_field() -> None:
    near_end = TIME_MAX - timedelta(days=10)
    with pytest.raises(FieldError, match=r"'days'.*past 2099-12-31T22:59:59"):
        target_of(near_end, days=30, hours=None, until=None)
    with pytest.raises(FieldError, match=r"'until'.*past"):
        target_of(near_end, days=None, hours=None, until=TIME_MAX + timedelta(hours=1))
    assert target_of(near_end, days=10, hours=None, until=None) == TIME_MAX


def test_until_further_than_the_bound_is_refused() -> None:
    with pytest.raises(FieldError, match=f"'until' must be at most {MAX_DAYS} days"):
        target_of(NOW, days=None, hours=None, until=NOW + timedelta(days=MAX_DAYS + 1))


class Fixture:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="twin-ff-"))
        self.clock = ManualClock(NOW)
        self.store = Store.open(self.dir)
        self.meter = Meter(steady_config(), self.clock, self.store, random.Random(1))
        self.fast = FastForward(self.meter)


def test_two_days_pass_without_clock_set_events_and_fill_the_profiles() -> None:
    async def scenario() -> None:
        f = Fixture()
        try:
            before = f.meter.publish().energy_wh
            result = await f.fast.advance(NOW + timedelta(days=2))
            assert result["days"] == 2.0
            # The clock moved as time passing: waiters re-plan (steps), nothing was set.
            assert f.meter.clock.now() == NOW + timedelta(days=2)
            assert f.meter.clock.steps == 1
            codes = [e.code for e in f.store.events(EventLog.STANDARD)]
            assert EventCode.CLOCK_ADJUSTED_OLD not in codes
            assert EventCode.CLOCK_ADJUSTED_NEW not in codes
            rows = f.store.load_profile()
            assert len(rows) == 2 * 96
            assert all(b.time - a.time == timedelta(minutes=15) for a, b in pairwise(rows))
            assert all(r.status & STATUS_CAD == 0 for r in rows)
            assert all(b.import_wh >= a.import_wh for a, b in pairwise(rows))
            assert len(f.store.daily_profile()) == 2
            after = f.meter.publish().energy_wh
            assert all(after[code] >= before[code] for code in before)
            assert sum(after.values()) > sum(before.values())
        finally:
            f.store.close()

    asyncio.run(scenario())


def test_a_second_advance_while_one_runs_is_refused() -> None:
    async def scenario() -> None:
        f = Fixture()
        try:
            first = asyncio.create_task(f.fast.advance(NOW + timedelta(days=5)))
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            assert f.fast.status()["running"] is True
            with pytest.raises(AdvanceBusyError, match="is running"):
                await f.fast.advance(NOW + timedelta(days=1))
            await first
            assert f.meter.clock.now() == NOW + timedelta(days=5)
        finally:
            f.store.close()

    asyncio.run(scenario())


def test_injections_are_refused_while_an_advance_runs_and_accepted_after() -> None:
    async def scenario() -> None:
        async with running() as run:
            fast = FastForward(run.meter)
            add_advance_command(run.server, fast)
            advance = asyncio.create_task(fast.advance(NOW + timedelta(days=20)))
            await asyncio.sleep(0)
            answer = await run.request({"cmd": "power-failure", "seconds": 300})
            assert run.meter.advancing, "the advance ended before the request was answered"
            assert answer["ok"] is False
            assert answer["kind"] == "refused"
            assert "advancing" in answer["error"]
            await advance
            assert (await run.request({"cmd": "power-failure", "seconds": 300}))["ok"] is True

    asyncio.run(scenario())
