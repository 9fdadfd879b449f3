"""`dsmr-twin ctl advance --days 30` against the real twin process: the month is lived through
(2880 quarter hours wrap to the 960 kept, daily and monthly values, M-Bus hourly values of the
simulated gas meter that keep increasing), `ctl status` answers while it runs, and afterwards
the P1 telegrams read by dsmr_parser carry the new time."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

from tests.e2e.test_twin_process import RunningTwin, state_dir, twin
from tests.support import REGISTERS
from twin.control import call
from twin.meter.events import EventCode, EventLog
from twin.store import Store

__all__ = ["state_dir", "twin"]  # the fixtures this module uses

DAYS = 30
STATUS_DURING_S = 0.2  # the brief's bound for a status answer while the model runs


async def _statuses_during(socket_path: Path, advance: subprocess.Popen[str]) -> list[float]:
    """Answer times of `status` requests sent while the advance runs."""
    latencies: list[float] = []
    while advance.poll() is None:
        began = time.monotonic()
        status = await call(socket_path, {"cmd": "status"})
        if status["ports"]["advance"]["running"]:
            latencies.append(time.monotonic() - began)
        await asyncio.sleep(0.02)
    return latencies


def _advance(running: RunningTwin) -> tuple[dict[str, Any], list[float]]:
    command = [sys.executable, "-m", "twin", "ctl", "--state-dir", str(running.state_dir)]
    advance = subprocess.Popen(
        [*command, "advance", "--days", str(DAYS)], stdout=subprocess.PIPE, text=True
    )
    latencies = asyncio.run(_statuses_during(running.state_dir / "control.sock", advance))
    out, _ = advance.communicate(timeout=60)
    assert advance.returncode == 0
    return json.loads(out), latencies


def test_advance_30_days_fills_a_month_and_p1_goes_on_at_the_new_time(
    twin: RunningTwin,
) -> None:
    before = twin.status()
    start = datetime.fromisoformat(str(before["meter_time"]))
    result, latencies = _advance(twin)
    assert result["days"] >= DAYS
    # ctl status answered while the model ran (the advance yields between steps).
    assert latencies, "no status was answered during the advance"
    assert sorted(latencies)[len(latencies) // 2] < STATUS_DURING_S, latencies
    after = twin.status()
    assert datetime.fromisoformat(str(after["meter_time"])) >= start + timedelta(days=DAYS)
    for code in REGISTERS:
        assert float(after[code]) >= float(before[code])  # type: ignore[arg-type]
    # P1 goes on at the new time: the latest slot only, stamped after the span.
    stamps = [t.P1_MESSAGE_TIMESTAMP.value for t in twin.telegrams(2)]
    assert all(s >= start + timedelta(days=DAYS) for s in stamps), stamps
    gas_before = after["mbus"][0]["value"]  # type: ignore[index]
    assert twin.kill(signal.SIGTERM) == 0
    store = Store.open(twin.state_dir)
    try:
        _check_profiles(store, start)
    finally:
        store.close()
    # A restart continues from the advanced time, the gas meter from its advanced index.
    again = RunningTwin(twin.state_dir, "--speed", "60", "--p1", "pty://p1", "--p3", "none")
    try:
        resumed = again.status()
        assert datetime.fromisoformat(str(resumed["meter_time"])) >= start + timedelta(days=DAYS)
        assert resumed["mbus"][0]["value"] >= gas_before  # type: ignore[index]
        for code in REGISTERS:
            assert float(resumed[code]) >= float(after[code])  # type: ignore[arg-type]
    finally:
        again.kill(signal.SIGTERM)


def _check_profiles(store: Store, start: datetime) -> None:
    rows = store.load_profile()
    assert len(rows) == 960  # 2880 quarter hours of the month, the last 960 kept (P3 §6.3)
    assert all(b.time - a.time == timedelta(minutes=15) for a, b in pairwise(rows))
    assert all(b.import_wh >= a.import_wh for a, b in pairwise(rows))
    assert all(b.export_wh >= a.export_wh for a, b in pairwise(rows))
    daily = store.daily_profile()
    assert len(daily) >= DAYS
    assert all(b.time - a.time <= timedelta(hours=25) for a, b in pairwise(daily))
    assert all(b.energy_wh >= a.energy_wh for a, b in pairwise(daily))
    assert store.monthly_profile(), "the month's end of billing period was not captured"
    hourly = [r for r in store.mbus_hourly(1) if r.time > start]
    assert len(hourly) == 240  # the last ten days of hours, the buffer's size (P3 §7.4)
    assert all(b.value > a.value for a, b in pairwise(hourly)), "stale M-Bus values"
    assert all(b.capture > a.capture for a, b in pairwise(hourly))  # type: ignore[operator]
    codes = {e.code for e in store.events(EventLog.STANDARD)}
    assert EventCode.CLOCK_ADJUSTED_OLD not in codes
    assert EventCode.CLOCK_ADJUSTED_NEW not in codes
