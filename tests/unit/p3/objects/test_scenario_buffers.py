"""The P3 side of a scenario's determinism: two runs of one scenario give byte-identical
profile buffers and logs as the COSEM objects serve them (attribute 2 of each profile
generic, A-XDR), and dlms-cosem reads them as the scenario made them."""

from __future__ import annotations

import io
from pathlib import Path

from dlms_cosem import utils

from tests.unit.p3.objects.conftest import FakeKeyService, FakeModem, ref
from tests.unit.test_scenario import scenario
from twin.p3.objects import build_objects
from twin.scenario_run import ScenarioRunner

BUFFERS = {
    "1-0:99.1.0": "load profile",
    "1-0:99.2.0": "daily values",
    "0-0:98.1.0": "monthly billing values",
    "0-0:99.98.0": "standard event log",
    "0-0:99.98.1": "fraud event log",
    "1-0:99.97.0": "power failure event log",
    "0-1:24.3.0": "M-Bus hourly values of channel 1 (the gas meter on P2)",
    "0-0:99.98.3": "M-Bus event log",
}


async def buffers(state_dir: Path) -> dict[str, bytes]:
    runner = ScenarioRunner(scenario(), state_dir, capture=io.StringIO())
    try:
        await runner.run()
        objects = build_objects(
            runner.meter, keys=FakeKeyService(), mbus=None, modem=FakeModem(), state_dir=state_dir
        )
        read = {code: objects.get(1, ref(7, code, 2), None) for code in BUFFERS}
    finally:
        runner.close()
    assert all(isinstance(value, bytes) for value in read.values()), read
    return {code: value for code, value in read.items() if isinstance(value, bytes)}


async def test_a_scenario_gives_the_same_p3_buffers_on_every_run(tmp_path: Path) -> None:
    first = await buffers(tmp_path / "a")
    second = await buffers(tmp_path / "b")
    assert first == second
    load_profile = utils.parse_as_dlms_data(first["1-0:99.1.0"])
    assert len(load_profile) == 96  # the day of the scenario, every quarter
    failures = utils.parse_as_dlms_data(first["1-0:99.97.0"])
    assert [row[1] for row in failures] == [200]  # the 200.5 s failure, in whole seconds
    fraud = utils.parse_as_dlms_data(first["0-0:99.98.1"])
    assert [row[1] for row in fraud] == [41]
    gas = utils.parse_as_dlms_data(first["0-1:24.3.0"])
    assert len(gas) == 24  # read out hourly by the P2 master, every hour of the day
    values = [row[2] for row in gas]
    assert values == sorted(values)
    assert values[-1] > values[0]
    mbus_events = utils.parse_as_dlms_data(first["0-0:99.98.3"])
    assert [row[1] for row in mbus_events] == [105, 102, 100, 101, 104]


async def test_the_definable_profile_captures_at_its_boundaries_in_a_scenario(
    tmp_path: Path,
) -> None:
    events = [
        # P3 §8.6: the head-end sets capture_period to 900 s (clock only, the default columns).
        {
            "after": "0s",
            "cmd": "p3-set",
            "class_id": 7,
            "obis": "0-1:94.31.6",
            "attribute": 4,
            "data": "0600000384",
        },
        # Steps an hour apart from an odd time on (07:10:07 local): none falls on a quarter.
        {"after": "1h10m7s", "cmd": "tamper", "code": 42},
    ]
    runner = ScenarioRunner(
        scenario(duration="3h", event=events, weather={}), tmp_path, capture=io.StringIO()
    )
    try:
        await runner.run()
        buffer = runner.p3.objects.get(1, ref(7, "0-1:94.31.6", 2), None)
    finally:
        runner.close()
    assert isinstance(buffer, bytes)
    rows = utils.parse_as_dlms_data(buffer)
    # Every quarter from 06:15 to 09:00 (local), none skipped between the steps: the runner
    # steps to each boundary as a real meter's tick would reach it.
    stamps = [bytes(row[0])[5:7] for row in rows]
    assert stamps == [bytes([6 + m // 60, m % 60]) for m in range(180, 0, -15)]  # newest first
