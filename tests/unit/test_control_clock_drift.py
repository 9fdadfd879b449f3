"""`ctl clock-drift`: the meter's clock runs off by S seconds, as a real meter's RTC drifts,
so a head-end's clock synchronisation (P3 §5.3) has something to correct; over the real socket."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.unit.test_control_socket import running
from twin import cli
from twin.meter.events import EventCode, EventLog


async def _meter_time(run: Any) -> datetime:
    status = (await run.request({"cmd": "status"}))["result"]
    return datetime.fromisoformat(status["meter_time"])


@pytest.mark.parametrize("seconds", [120, -90, 0.5])
async def test_a_drift_moves_the_meter_clock_only(seconds: float) -> None:
    async with running() as run:
        before = await _meter_time(run)
        answer = await run.request({"cmd": "clock-drift", "seconds": seconds})
        assert answer["ok"], answer
        after = await _meter_time(run)
        assert after - before == timedelta(seconds=seconds)
        # Nothing logged: a drifting meter does not know it drifted (no events 4/5, P3 §5.7).
        logged = {e.code for e in run.meter.store.events(EventLog.STANDARD)}
        assert not logged & {EventCode.CLOCK_ADJUSTED_OLD, EventCode.CLOCK_ADJUSTED_NEW}


@pytest.mark.parametrize(
    "request_",
    [
        {"cmd": "clock-drift", "seconds": float("nan")},
        {"cmd": "clock-drift", "seconds": 86_400 * 8},
        {"cmd": "clock-drift", "seconds": -86_400 * 8},
        {"cmd": "clock-drift", "seconds": "60"},
        {"cmd": "clock-drift"},
    ],
)
async def test_a_bad_drift_is_a_typed_error_and_changes_nothing(request_: dict[str, Any]) -> None:
    async with running() as run:
        before = await _meter_time(run)
        answer = await run.request(request_)
        assert answer["ok"] is False
        assert answer["kind"] == "field"
        assert "'seconds'" in answer["error"]
        assert await _meter_time(run) == before


def test_the_cli_sends_it() -> None:
    args = cli._parser().parse_args(["ctl", "clock-drift", "--seconds", "-30"])
    assert cli._ctl_request(args) == {"cmd": "clock-drift", "seconds": -30.0}
