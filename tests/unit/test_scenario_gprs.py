"""GPRS in a scenario run (twin/scenario_gprs.py): a wake-up SMS through the simulated modem
and the pushes of P3 chapter 9 at their meter times, recorded, the same on every run."""

from __future__ import annotations

import dataclasses
import io
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from tests.support import amsterdam
from twin.cli import main
from twin.scenario import Scenario, load_scenario
from twin.scenario_run import ScenarioRunner

EQUIPMENT_ID = "E0099000000000018"
ALARM_DESTINATION = "192.0.2.7:4060"  # TEST-NET-1: a scenario never connects to it


SCENARIO = Path(__file__).parents[2] / "docs" / "scenarios" / "gprs-pushes.toml"


def gprs_scenario() -> Scenario:
    """The ready scenario on a P1 line for a test: a TCP port nobody connects to, no pacing."""
    scenario = load_scenario(SCENARIO)
    p1 = dataclasses.replace(scenario.config.p1, endpoint="tcp://127.0.0.1:0", pace=False)
    return dataclasses.replace(scenario, config=dataclasses.replace(scenario.config, p1=p1))


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
    assert status["pushes"] == len(first) == 3
    wakeup, alarm, scheduled = first
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
    # P3 §9.1.1: the push scheduler's execution time; the scheduler is the trigger.
    assert scheduled["setup"] == "0-0:25.9.0"
    assert scheduled["destination"] == "192.0.2.7:4061"
    assert datetime.fromisoformat(scheduled["at"]) == amsterdam(2026, 5, 4, 11, 30)
    scheduler = bytes([0, 0, 15, 0, 4, 255])
    assert bytes.fromhex(scheduled["message"]) == EQUIPMENT_ID.encode() + b"," + scheduler
    second, _ = await pushes(tmp_path / "b")
    assert second == first


def test_run_scenario_pushes_writes_the_push_record(tmp_path: Path) -> None:
    record = tmp_path / "pushes.jsonl"
    argv = ["run", "--scenario", str(SCENARIO), "--state-dir", str(tmp_path / "s")]
    argv += ["--p1", "tcp://127.0.0.1:0"]
    assert main([*argv, "--pushes", str(record)]) == 0
    lines = [json.loads(line) for line in record.read_text(encoding="utf-8").splitlines()]
    assert [line["setup"] for line in lines] == ["0-2:25.9.0", "0-1:25.9.0", "0-0:25.9.0"]
