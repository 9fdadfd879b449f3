"""GPRS in a scenario run (twin/scenario_gprs.py): a wake-up SMS through the simulated modem
and the pushes of P3 chapter 9 at their meter times, recorded, the same on every run."""

from __future__ import annotations

import io
import json
import tomllib
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from tests.support import amsterdam
from twin.cli import main
from twin.scenario import Scenario, scenario_from_mapping
from twin.scenario_run import ScenarioRunner

EQUIPMENT_ID = "E0099000000000018"
ALARM_DESTINATION = "192.0.2.7:4060"  # TEST-NET-1: never connected to in a scenario


# Three hours of a triggered-mode meter: a wake-up SMS at 10:00 whose push starts within a
# 10-minute randomisation, a power failure 11:00-11:05 (the factory alarm filter passes every
# alarm, P3 §4.2.4). The head-end gives the alarm setup a destination (0-1:25.9.0 attribute 3:
# TCP, "host:port", A-XDR) and the CSD/SMS setup a randomisation_start_interval of 600 s
# (0-2:25.9.0 attribute 5).
GPRS_SCENARIO = f"""
name = "wake-up and alarm"
start = "2026-05-04T09:00:00+02:00"
duration = "3h"
seed = 77

[config.p1]
endpoint = "tcp://127.0.0.1:0"
pace = false

[config.meter]
equipment_id = "{EQUIPMENT_ID}"

[config.p3]
gprs_mode = "triggered"
push_destination = "192.0.2.7:4059"

[config.p2]
enabled = false  # no gas meter: no "new M-Bus device" alarm at the start

[[event]]
after = "0s"
cmd = "p3-set"
class_id = 40
obis = "0-1:25.9.0"
attribute = 3
data = "0203160009{len(ALARM_DESTINATION):02X}{ALARM_DESTINATION.encode().hex()}1680"

[[event]]
after = "0s"
cmd = "p3-set"
class_id = 40
obis = "0-2:25.9.0"
attribute = 5
data = "120258"

[[event]]
after = "1h"
cmd = "wakeup"
kind = "sms"
sender = "+31612345678"

[[event]]
after = "2h"
cmd = "power-failure"
seconds = 300
"""


def gprs_scenario() -> Scenario:
    return scenario_from_mapping(tomllib.loads(GPRS_SCENARIO))


async def pushes(state_dir: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    record = io.StringIO()
    runner = ScenarioRunner(gprs_scenario(), state_dir, pushes=record)
    try:
        await runner.run()
        status = runner.status()
    finally:
        runner.close()
    return [json.loads(line) for line in record.getvalue().splitlines()], status


async def test_a_wakeup_sms_and_a_power_up_alarm_push_at_their_meter_times(
    tmp_path: Path,
) -> None:
    first, status = await pushes(tmp_path / "a")
    assert status["pushes"] == len(first) == 2
    wakeup, alarm = first
    # P3 §9.1.4: the SMS runs script 3, the CSD/SMS setup's push, at its randomised start
    # within 600 s of the wake-up (P3 §9.3); the message: equipment id, the trigger's name.
    assert wakeup["setup"] == "0-2:25.9.0"
    assert wakeup["destination"] == "192.0.2.7:4059"  # [config.p3] push_destination
    sent = datetime.fromisoformat(wakeup["at"])
    assert amsterdam(2026, 5, 4, 10) <= sent < amsterdam(2026, 5, 4, 10) + timedelta(seconds=600)
    # P3 §9.3: the push_object_list values joined by ','; the trigger is the message handler.
    handler = bytes([0, 0, 2, 3, 0, 255])
    assert bytes.fromhex(wakeup["message"]) == EQUIPMENT_ID.encode() + b"," + handler
    # P3 §9.1.2: the alarm register, compared afresh when the supply returns at 11:05, holds
    # the power-up alarm (bit 2, P3 §4.2.4): the alarm setup pushes at once (no randomisation)
    # its value (0-0:97.98.0, double-long-unsigned).
    assert alarm["setup"] == "0-1:25.9.0"
    assert alarm["destination"] == ALARM_DESTINATION
    assert datetime.fromisoformat(alarm["at"]) == amsterdam(2026, 5, 4, 11, 5)
    assert bytes.fromhex(alarm["message"]) == EQUIPMENT_ID.encode() + b"," + bytes([0, 0, 0, 4])
    second, _ = await pushes(tmp_path / "b")
    assert second == first


def test_run_scenario_pushes_writes_the_push_record(tmp_path: Path) -> None:
    path, record = tmp_path / "gprs.toml", tmp_path / "pushes.jsonl"
    path.write_text(GPRS_SCENARIO, encoding="utf-8")
    argv = ["run", "--scenario", str(path), "--state-dir", str(tmp_path / "s")]
    assert main([*argv, "--pushes", str(record)]) == 0
    lines = [json.loads(line) for line in record.read_text(encoding="utf-8").splitlines()]
    assert [line["setup"] for line in lines] == ["0-2:25.9.0", "0-1:25.9.0"]
