"""Scenario files (twin/scenario.py) and runs (twin/scenario_run.py): validated before they
start, errors naming the key and the event; the same scenario gives the same bytes."""

from __future__ import annotations

import io
import time
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from twin.cli import main
from twin.cli_common import EXIT_CONFIG
from twin.clock import AMSTERDAM
from twin.meter.events import EventLog
from twin.meter.profiles import STATUS_CAD, STATUS_DNV, STATUS_PDN
from twin.p1.capture import load_capture
from twin.p3.dlms.cosem import AttributeRef
from twin.p3.objects.base import obis_bytes
from twin.scenario import Scenario, ScenarioError, scenario_from_mapping
from twin.scenario_run import ScenarioRunner, check_scenario
from twin.store import Store

# A day in March with the request line raised for the first and the last half hour, and most
# kinds of event in between, some at odd seconds (a power failure ending mid-minute).
BUSY_DAY = """
name = "busy day"
start = "2026-03-10T06:00:00+01:00"
duration = "1d"
seed = 11

[config.p1]
endpoint = "tcp://127.0.0.1:0"
request = "simulated"
pace = false

[weather]
"2026-03-11" = 0.95

[[event]]
after = "0s"
cmd = "request"
raised = true

[[event]]
after = "7m13s"
cmd = "power-failure"
seconds = 200.5

[[event]]
after = "12m"
cmd = "sag"
phase = 2
seconds = 31

[[event]]
after = "20m"
cmd = "message"
code = "01 61 81"
text = "Storing gepland"

[[event]]
after = "30m"
cmd = "request"
raised = false

[[event]]
at = "2026-03-10T18:03:07+01:00"
cmd = "load"
watts = 5400.0

[[event]]
at = "2026-03-10T19:00:00+01:00"
cmd = "load"
clear = true

[[event]]
after = "3h"
cmd = "gas"
battery_low = true
clock_drift_s = 120.0

[[event]]
after = "9h30m"
cmd = "gas"
attached = false

[[event]]
after = "12h30m"
cmd = "gas"
attached = true

[[event]]
after = "20h"
cmd = "tamper"
code = 41

[[event]]
after = "23h30m"
cmd = "request"
raised = true
"""


def scenario(text: str = BUSY_DAY, **changes: Any) -> Scenario:
    table = tomllib.loads(text)
    table.update(changes)
    return scenario_from_mapping(table)


async def run_once(
    state_dir: Path, chosen: Scenario, speed: float | None = None
) -> tuple[str, Any]:
    capture = io.StringIO()
    runner = ScenarioRunner(chosen, state_dir, speed=speed, capture=capture)
    try:
        await runner.run()
        store = runner.store
        rows = (
            store.load_profile(),
            store.daily_profile(),
            store.mbus_hourly(1),
            store.events(EventLog.MBUS),
        )
    finally:
        runner.close()
    return capture.getvalue(), rows


async def test_the_same_scenario_gives_the_same_telegrams_and_profiles(tmp_path: Path) -> None:
    busy = scenario()
    first, first_rows = await run_once(tmp_path / "a", busy)
    # Paced this time (very fast): pacing moves real time only, never what the meter does.
    second, second_rows = await run_once(tmp_path / "b", busy, speed=1e7)
    assert first == second  # every byte of every telegram, and when it was sent
    assert first_rows == second_rows
    telegrams = load_capture(first)
    # Request raised for 30 min (less the 200.5 s power failure) and for the last 30 min.
    # 0..1800 s less the slots of the outage (440..630 s), then 23:30..24:00 inclusive.
    assert len(telegrams) == 180 - 20 + 181
    load_profile, daily, mbus_hourly, mbus_events = first_rows
    assert len(load_profile) == 96
    assert len(daily) == 1
    # The gas meter on P2, read `read_delay_s` after every hour: off the bus from 15:30 to
    # 18:30 (its rows hold the last value, flagged DNV), then back.
    assert len(mbus_hourly) == 24
    values = [row.value for row in mbus_hourly]
    assert values == sorted(values)
    assert values[-1] > values[0]
    off = [row for row in mbus_hourly if row.status & STATUS_DNV and not row.status & STATUS_PDN]
    assert [row.time.hour for row in off] == [16, 17, 18, 20]  # UTC
    assert {row.value for row in off[:3]} == {mbus_hourly[9].value}  # the value before it left
    # Back on the bus its clock, 120 s off, is synchronised: the next row flags the adjustment.
    assert off[3].status & STATUS_CAD
    # P3 §4.2.1 M-Bus events of channel 1: installed, battery low (status bit 2, at the next
    # read-out), communication error and ok again, its clock adjusted (bit 5, P2 §6.2.1).
    assert [(event.when.hour, event.code) for event in mbus_events] == [
        (5, 105),
        (8, 102),
        (15, 100),
        (18, 101),
        (19, 104),
    ]


async def test_a_different_seed_gives_a_different_household(tmp_path: Path) -> None:
    first, _ = await run_once(tmp_path / "a", scenario())
    other, _ = await run_once(tmp_path / "b", scenario(seed=12))
    assert first != other


BAD = [
    ({"colour": "red"}, "unknown key 'colour'"),
    ({"start": "2026-03-10T06:00:00"}, "'start' = '2026-03-10T06:00:00' is not allowed"),
    ({"start": "2100-01-02T00:00:00+01:00"}, "'start'"),
    ({"start": "0001-01-01T00:10:00+01:00"}, "'start'"),  # overflows in UTC
    ({"duration": "9999999999d"}, "'duration' = '9999999999d'"),  # beyond any timedelta
    ({"weather": {"0001-01-01": 0.5}}, "'weather.0001-01-01'"),
    ({"end": "2026-03-11T06:00:00+01:00"}, "either 'end'"),
    ({"duration": "3 days"}, "'duration' = '3 days'"),
    ({"seed": 1.5}, "'seed' must be a whole number"),
    ({"config": {"p3": {"endpoint": "tcp://127.0.0.1:4059"}}}, "'config.p3.endpoint' cannot"),
    ({"config": {"p3": {"master_key": "00"}}}, "config: 'p3.master_key' = '00' is not allowed"),
    ({"config": {"display": {"device": "none"}}}, "'config.display' cannot be set"),
    ({"config": {"p2": {"bus": "pty://mbus"}}}, "'config.p2.bus' cannot be set in a scenario"),
    ({"config": {"p2": {"read_delay_s": 900}}}, "config: 'p2.read_delay_s' = 900 is not allow"),
    ({"config": {"p1": {"interval_s": 0}}}, "config: 'p1.interval_s' = 0 is not allowed"),
    ({"config": {"load": {"fridge": True}}}, "config: unknown key 'load.fridge'"),
    ({"weather": {"2026-13-01": 0.5}}, "'weather.2026-13-01': not a date"),
    ({"event": [{"cmd": "tamper"}]}, "event 1: give either 'at'"),
    ({"event": [{"after": "2d", "cmd": "tamper"}]}, "event 1: .* lies outside"),
    ({"event": [{"after": "1h", "cmd": "tamper"}, {"after": "1x"}]}, "event 2: 'after' = '1x'"),
    ({"event": [{"after": "1h"}]}, "event 1: 'cmd' is required"),
]


@pytest.mark.parametrize(("changes", "error"), BAD)
def test_a_bad_scenario_is_refused_naming_the_key(changes: dict[str, Any], error: str) -> None:
    with pytest.raises(ScenarioError, match=error):
        scenario(**changes)


# calendar_name_passive of the activity calendar (P3 §5.4) = "UC12", as the head-end sets it.
CALENDAR_NAME = {
    "after": "1h",
    "cmd": "p3-set",
    "class_id": 20,
    "obis": "0-0:13.0.0",
    "attribute": 6,
    "data": "090455433132",
}

CHECKED = [
    ({"after": "1h", "cmd": "explode"}, "event 2: unknown command 'explode'; known: admin,"),
    ({"after": "1h", "cmd": "power-failure", "seconds": -5}, "event 2: 'seconds' must be a num"),
    ({"after": "1h", "cmd": "power-failure"}, "event 2: 'seconds' is required"),
    ({"after": "1h", "cmd": "sag", "phase": 4}, "event 2: 'phase' must be a whole number from 1"),
    ({"after": "1h", "cmd": "tamper", "colour": 1}, "event 2: unknown field 'colour' for 'tamper'"),
    ({"after": "1h", "cmd": "clock-set", "time": "noon"}, "event 2: 'time' must be an ISO time"),
    (
        {"after": "1h", "cmd": "clock-set", "time": "0001-01-01T00:10:00+01:00"},
        "event 2: 'time' must be an ISO time",
    ),
    ({"after": "1h", "cmd": "weather", "cloudiness": 2}, "event 2: 'cloudiness' must be a num"),
    ({"after": "1h", "cmd": "gas", "attached": "no"}, "event 2: 'attached' must be true or"),
    ({"after": "1h", "cmd": "mbus", "action": "explode"}, "event 2: 'action' must be one of"),
    ({**CALENDAR_NAME, "data": "0904554331"}, "event 2: 'data' must be hex of one A-XDR Data"),
    ({**CALENDAR_NAME, "data": "09045543313200"}, "event 2: 'data' must be hex of one A-XDR"),
    ({**CALENDAR_NAME, "obis": "0-0:13.0"}, "event 2: 'obis' must be an OBIS code"),
    ({**CALENDAR_NAME, "obis": "0-0:13.0.256"}, "event 2: 'obis' must be an OBIS code"),
    ({**CALENDAR_NAME, "attribute": 0}, "event 2: 'attribute' must be a whole number from 1"),
    ({**CALENDAR_NAME, "cmd": "p3-action"}, "event 2: unknown field 'attribute' for 'p3-act"),
]


@pytest.mark.parametrize(("event", "error"), CHECKED)
def test_commands_and_fields_are_checked_before_the_start(
    tmp_path: Path, event: dict[str, Any], error: str
) -> None:
    chosen = scenario(event=[{"after": "0s", "cmd": "tamper"}, event])
    with pytest.raises(ScenarioError, match=error):
        check_scenario(chosen)


@pytest.mark.parametrize(
    ("event", "error"),
    [
        # 1-0:1.8.1 is read-only for every client (P3 §2.2): the meter's answer ends the run.
        (
            {**CALENDAR_NAME, "class_id": 3, "obis": "1-0:1.8.1", "attribute": 2},
            r"event 1 \('p3-set' at 2026-03-10T05:00:00\+00:00\): refused: the meter answered"
            " the SET with READ_WRITE_DENIED",
        ),
        (
            {"after": "0s", "cmd": "p3-action", "class_id": 20, "obis": "0-0:13.0.1", "method": 1},
            "event 1 .*: refused: the meter answered the ACTION with OBJECT_UNDEFINED",
        ),
    ],
)
async def test_a_p3_request_the_meter_refuses_ends_the_run_naming_the_event(
    tmp_path: Path, event: dict[str, Any], error: str
) -> None:
    chosen = scenario(event=[{**event, "after": "0s"}], duration="1h", weather={})
    with pytest.raises(ScenarioError, match=error):
        await run_once(tmp_path, chosen)


async def test_a_p3_set_as_the_management_client_changes_the_object_model(
    tmp_path: Path,
) -> None:
    chosen = scenario(event=[CALENDAR_NAME], duration="2h", weather={})
    runner = ScenarioRunner(chosen, tmp_path, capture=io.StringIO())
    try:
        await runner.run()
        name = runner.p3.objects.get(1, AttributeRef(20, obis_bytes("0-0:13.0.0"), 6), None)
        sessions = runner.store.events(EventLog.COMMUNICATION)
    finally:
        runner.close()
    assert name == bytes.fromhex("090455433132")
    # One short association of the management client, in the communication log (P3 §5.10).
    assert [e.when for e in sessions] == [datetime(2026, 3, 10, 6, 0, tzinfo=UTC)]


def test_the_cli_refuses_a_bad_scenario_before_touching_the_state_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(BUSY_DAY.replace('cmd = "sag"', 'cmd = "sog"'), encoding="utf-8")
    state = tmp_path / "state"
    assert main(["run", "--scenario", str(path), "--state-dir", str(state)]) == EXIT_CONFIG
    assert "event 3: unknown command 'sog'" in capsys.readouterr().err
    assert not state.exists()


async def test_a_scenario_starts_a_new_meter_only(tmp_path: Path) -> None:
    short = scenario(duration="10s", event=[], weather={})
    await run_once(tmp_path, short)
    with pytest.raises(ScenarioError, match="holds a meter already"):
        ScenarioRunner(short, tmp_path)


CLOCK_SETS = """
start = "2026-06-01T12:00:00+02:00"
duration = "1h"

[config.p1]
endpoint = "tcp://127.0.0.1:0"
pace = false

[[event]]
after = "10m"
cmd = "clock-set"
time = "2026-06-01T14:10:00+02:00"

[[event]]
after = "20m"
cmd = "clock-set"
time = "2026-06-01T14:20:30+02:00"
"""


async def test_a_clock_set_in_a_scenario_moves_the_meter_clock_as_p3_would(
    tmp_path: Path,
) -> None:
    capture, _ = await run_once(tmp_path, scenario(CLOCK_SETS))
    stamps = [t.data.split(b"0-0:1.0.0(")[1][:13].decode() for t in load_capture(capture)]
    # The telegrams go on every 10 s of the run; their stamps follow the meter's clock.
    assert stamps[59:62] == ["260601120950S", "260601141000S", "260601141010S"]
    assert stamps[119:122] == ["260601141950S", "260601142030S", "260601142040S"]
    assert stamps[-1] == "260601150030S"  # the end: 13:00 on the run, +2 h 30 s on the meter
    store = Store.open(tmp_path)
    try:
        events = [(e.when, e.code) for e in store.events(EventLog.STANDARD)]
        rows = store.load_profile()
    finally:
        store.close()
    # P3 §5.3: beyond the time shift limit (60 s) events 4 and 5; the 30 s shift logs nothing.
    jump = datetime(2026, 6, 1, 10, 10, tzinfo=UTC)
    assert events == [(jump, 4), (datetime(2026, 6, 1, 12, 10, tzinfo=UTC), 5)]
    # 12:15 never came; the first row after the jump carries CAD|DNV (P3 §4.2.5).
    times = [r.time.astimezone(AMSTERDAM).strftime("%H:%M") for r in rows]
    assert times == ["14:15", "14:30", "14:45", "15:00"]
    assert rows[0].status & (STATUS_CAD | STATUS_DNV) == STATUS_CAD | STATUS_DNV
    assert not rows[1].status & STATUS_CAD


async def test_speed_paces_the_run_in_real_time(tmp_path: Path) -> None:
    """--speed 1200: 20 minutes of meter time take a real second, never less."""
    raise_request = [{"after": "0s", "cmd": "request", "raised": True}]
    short = scenario(duration="20m", event=raise_request, weather={})
    began = time.monotonic()
    paced, _ = await run_once(tmp_path / "paced", short, speed=1200)
    assert time.monotonic() - began >= 1.0
    unpaced, _ = await run_once(tmp_path / "unpaced", short)
    assert paced == unpaced
    assert len(load_capture(paced)) == 121


async def test_a_control_socket_that_cannot_be_served_does_not_end_the_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    too_long = tmp_path / ("d" * 120)  # no Unix socket path is that long (sockaddr_un)
    raise_request = [{"after": "0s", "cmd": "request", "raised": True}]
    capture, _ = await run_once(too_long, scenario(duration="1m", event=raise_request, weather={}))
    assert len(load_capture(capture)) == 7
    assert "the control socket could not be served" in caplog.text


def test_record_goes_with_a_scenario(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["run", "--state-dir", str(tmp_path), "--record", str(tmp_path / "c.jsonl")]
    assert main(argv) == EXIT_CONFIG
    assert "--record goes with --scenario" in capsys.readouterr().err
    argv = ["run", "--state-dir", str(tmp_path), "--pushes", str(tmp_path / "p.jsonl")]
    assert main(argv) == EXIT_CONFIG
    assert "--pushes goes with --scenario" in capsys.readouterr().err
    path = tmp_path / "s.toml"
    path.write_text(BUSY_DAY, encoding="utf-8")
    argv = ["run", "--scenario", str(path), "--config", str(path)]
    assert main(argv) == EXIT_CONFIG
    assert "no --config with it" in capsys.readouterr().err
    argv = ["run", "--scenario", str(path), "--p3", "udp://127.0.0.1:4059", "--check"]
    assert main(argv) == EXIT_CONFIG
    assert "'p3.endpoint' = 'udp://127.0.0.1:4059' is not allowed" in (capsys.readouterr().err)


def test_the_p3_keys_a_scenario_does_not_set_come_from_its_seed(tmp_path: Path) -> None:
    """A head-end set up for a scenario's meter (system title, GUEK, AK, master key, HLS
    secret; `dsmr-twin keys show`) reaches the same meter on every run."""

    def material(state_dir: Path, chosen: Scenario) -> Any:
        runner = ScenarioRunner(chosen, state_dir)
        try:
            return runner.p3.keys.material
        finally:
            runner.close()

    first = material(tmp_path / "a", scenario())
    assert material(tmp_path / "b", scenario()) == first
    other = material(tmp_path / "c", scenario(seed=12))
    assert other.system_title != first.system_title
    assert other.guek != first.guek
    given = scenario(config={"p3": {"guek": "000102030405060708090A0B0C0D0E0F"}})
    assert material(tmp_path / "d", given).guek == bytes(range(16))


async def test_a_passive_calendar_the_twin_cannot_run_ends_the_run_at_its_activation(
    tmp_path: Path,
) -> None:
    """Two normal-tariff windows a day are a valid calendar the twin's tariff program cannot
    express: the SET is taken, the activation at 08:00 (P3 §5.4) cannot happen."""
    calendar = {"cmd": "p3-set", "class_id": 20, "obis": "0-0:13.0.0", "after": "0s"}
    two_windows = (
        "010402021101010502030904000000FF090600000A0064FF12000102030904070000FF090600000A0064FF"
        "120002020309040C0000FF090600000A0064FF120001020309040D0000FF090600000A0064FF1200020203"
        "0904140000FF090600000A0064FF12000102021102010102030904000000FF090600000A0064FF12000102"
        "021103010102030904000000FF090600000A0064FF12000102021104010102030904000000FF090600000A"
        "0064FF120001"
    )
    events = [
        {**calendar, "attribute": 9, "data": two_windows},
        {**calendar, "attribute": 10, "data": "090C07EA030A0208000000FFC400"},  # 08:00 local
    ]
    chosen = scenario(event=events, duration="3h", weather={})
    with pytest.raises(ScenarioError, match=r"tick at 2026-03-10 07:00:00\+00:00: .*tariff 2 once"):
        await run_once(tmp_path, chosen)
