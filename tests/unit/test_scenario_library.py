"""Every scenario shipped in docs/scenarios/ runs (at full speed) and does what it promises on
P1, read with dsmr_parser from the very bytes the run put on its P1 line; the logs P3 reads out
are read with dlms-cosem as P3 serves them, or checked in the store they are served from."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from dlms_cosem import cosem, enumerations, utils
from dlms_cosem.exceptions import DlmsClientException
from dlms_cosem.time import datetime_from_bytes

from tests.peers.test_p1_dsmr_parser import parse
from tests.support import amsterdam
from tests.unit.p3.helpers import Challenges, MemoryLink, management_client
from twin.meter.events import EventCode, EventLog
from twin.meter.profiles import STATUS_DNV, STATUS_DST
from twin.p1.capture import load_capture
from twin.p3.dlms.cosem import AttributeRef
from twin.p3.objects.base import obis_bytes
from twin.p3.server.association import ServerConfig
from twin.p3.server.connection import DlmsServer
from twin.scenario import load_scenario
from twin.scenario_run import ScenarioRunner, check_scenario
from twin.store import Store

SCENARIOS = Path(__file__).parents[2] / "docs" / "scenarios"


@dataclasses.dataclass
class Ran:
    telegrams: list[Any]  # dsmr_parser telegrams, CRC checked
    raw: list[str]
    store: Store
    runner: ScenarioRunner


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Any]:
    runners: list[ScenarioRunner] = []

    async def run_scenario(name: str) -> Ran:
        scenario = load_scenario(SCENARIOS / f"{name}.toml")
        check_scenario(scenario)
        # The line for a test: a TCP port nobody needs to connect to, no pacing.
        p1 = dataclasses.replace(scenario.config.p1, endpoint="tcp://127.0.0.1:0", pace=False)
        config = dataclasses.replace(scenario.config, p1=p1)
        capture = io.StringIO()
        runner = ScenarioRunner(
            dataclasses.replace(scenario, config=config), tmp_path / name, capture=capture
        )
        runners.append(runner)
        await runner.run()
        raw = [t.data.decode("ascii") for t in load_capture(capture.getvalue())]
        return Ran([parse(text) for text in raw], raw, runner.store, runner)

    yield run_scenario
    for runner in runners:
        runner.close()


def stamps(ran: Ran) -> list[datetime]:
    return [t.P1_MESSAGE_TIMESTAMP.value for t in ran.telegrams]


def flags(ran: Ran) -> list[str]:
    return [text.split("0-0:1.0.0(")[1][12] for text in ran.raw]


def test_every_shipped_scenario_is_tested() -> None:
    tested = {"dst-spring-week", "dst-autumn-week", "long-failures-month", "consumer-message"}
    tested |= {"tamper", "summer-pv-days", "gas-meter-removal", "tariff-program-change"}
    tested |= {"firmware-and-keys", "gas-meter-alarms"}
    tested |= {"gprs-pushes"}  # tests/unit/test_scenario_gprs.py
    assert {p.stem for p in SCENARIOS.glob("*.toml")} == tested


async def test_dst_spring_week(run: Any) -> None:
    ran = await run("dst-spring-week")
    # 01:55 CET to 03:05 CEST is 10 minutes of real time: 61 telegrams (the last one drops).
    assert len(ran.telegrams) == 60
    assert all(b - a == timedelta(seconds=10) for a, b in pairwise(stamps(ran)))
    change = stamps(ran).index(amsterdam(2026, 3, 29, 3, 0))
    assert ran.raw[change - 1].count("0-0:1.0.0(260329015950W)") == 1
    assert ran.raw[change].count("0-0:1.0.0(260329030000S)") == 1
    assert flags(ran) == ["W"] * change + ["S"] * (60 - change)
    events = ran.store.events(EventLog.STANDARD)
    dst = [e.when for e in events if e.code == EventCode.DST_CHANGE]
    assert dst == [datetime(2026, 3, 29, 0, 59, 59, tzinfo=UTC)]  # P3 §4.2.1: before the change
    rows = ran.store.load_profile()
    assert len(rows) == 7 * 96 - 4  # a week of quarters, one hour short
    # P3 §4.2.5: the DST bit on every capture from the change (01:00 UTC) to the end (22:00).
    assert [bool(r.status & STATUS_DST) for r in rows].count(True) == 93 * 4 + 1


async def test_dst_autumn_week(run: Any) -> None:
    ran = await run("dst-autumn-week")
    # 01:55 CEST to 03:05 CET is 130 minutes of real time: the repeated hour is sent twice.
    assert len(ran.telegrams) == 780
    assert all(b - a == timedelta(seconds=10) for a, b in pairwise(stamps(ran)))
    texts = [text.split("0-0:1.0.0(")[1][:13] for text in ran.raw]
    repeated = [t for t in texts if t.startswith("26102502")]
    assert len(repeated) == 2 * 360
    assert {t[:-1] for t in repeated if t.endswith("S")} == {
        t[:-1] for t in repeated if t[-1] == "W"
    }
    assert flags(ran) == ["S"] * 390 + ["W"] * 390
    assert len(ran.store.load_profile()) == 7 * 96 + 4


async def test_long_failures_month(run: Any) -> None:
    ran = await run("long-failures-month")
    last = ran.telegrams[-1]
    assert len(ran.telegrams) == 7  # 23:59:00 to the end at midnight
    assert last.SHORT_POWER_FAILURE_COUNT.value == 15
    assert last.LONG_POWER_FAILURE_COUNT.value == 12
    log = last.POWER_EVENT_FAILURE_LOG
    assert log.buffer_length == 10  # full: the newest 10 of 12, newest first
    durations = [entry.value for entry in log.buffer]
    assert durations == [600 + 60 * i for i in range(11, 1, -1)]
    ends = [entry.datetime for entry in log.buffer]
    assert ends[0] == amsterdam(2026, 1, 24, 14, 17) + timedelta(seconds=600 + 660)
    assert ends == sorted(ends, reverse=True)
    assert len(ran.store.daily_profile()) == 31
    assert len(ran.store.monthly_profile()) == 1


async def test_consumer_message(run: Any) -> None:
    ran = await run("consumer-message")
    shown = {(t.P1_MESSAGE_TIMESTAMP.value, t.TEXT_MESSAGE.value) for t in ran.telegrams}
    text = b"Onderhoud aan het net vandaag tot 17:00".hex().upper()
    before = [m for when, m in shown if when < amsterdam(2026, 5, 12, 14, 0)]
    during = [
        m for when, m in shown if amsterdam(2026, 5, 12, 14) <= when < amsterdam(2026, 5, 12, 17)
    ]
    after = [m for when, m in shown if when >= amsterdam(2026, 5, 12, 17, 0)]
    # Request raised 13:55-14:05 and 16:55-17:05.
    assert (len(before), len(during), len(after)) == (30, 60, 31)
    assert set(before) == set(after) == {None}
    assert set(during) == {text}
    codes = {t.TEXT_MESSAGE_CODE.value for t in ran.telegrams if t.TEXT_MESSAGE.value}
    assert codes == {int(b"01 61 81".hex())}


async def test_tamper(run: Any) -> None:
    ran = await run("tamper")
    # The fraud event log 0-0:99.98.1 (class 7, buffer) read by a dlms-cosem management client
    # with the keys the scenario's seed gave the meter: {0-0:1.0.0 time, 0-0:96.11.1 code}.
    keys = ran.runner.p3.keys.material
    client = management(ran, keys.guek.hex(), keys.gak.hex())
    buffer = client.get(
        cosem.CosemAttribute(
            enumerations.CosemInterface.PROFILE_GENERIC, cosem.Obis(0, 0, 99, 98, 1), 2
        )
    )
    rows = utils.parse_as_dlms_data(buffer)
    assert [(cosem_time(row[0]), row[1]) for row in rows] == [
        (amsterdam(2026, 9, 1, 10, 0), 40),
        (amsterdam(2026, 9, 1, 10, 4, 30), 41),
        (amsterdam(2026, 9, 1, 10, 30), 42),
        (amsterdam(2026, 9, 1, 10, 45), 43),
    ]
    assert len(ran.telegrams) == 60  # 09:55 to 10:05, P1 on through the cover events


def cosem_time(octets: Any) -> datetime:
    """A COSEM date-time (Blue Book §4.1.6.1) as dlms-cosem decodes it, as an aware time."""
    when, _status = datetime_from_bytes(bytes(octets))
    assert isinstance(when, datetime)
    return when


async def test_summer_pv_days(run: Any) -> None:
    ran = await run("summer-pv-days")
    sunday, monday = ran.telegrams[:30], ran.telegrams[30:]
    assert len(monday) == 30
    assert all(t.ELECTRICITY_ACTIVE_TARIFF.value == "0001" for t in sunday)  # low all Sunday
    assert all(t.CURRENT_ELECTRICITY_DELIVERY.value > Decimal("1.5") for t in sunday)
    assert all(t.CURRENT_ELECTRICITY_USAGE.value == 0 for t in sunday)
    assert (
        sunday[-1].ELECTRICITY_DELIVERED_TARIFF_1.value
        > sunday[0].ELECTRICITY_DELIVERED_TARIFF_1.value
    )
    mean = [sum(t.CURRENT_ELECTRICITY_DELIVERY.value for t in day) / 30 for day in (sunday, monday)]
    assert mean[1] < mean[0] * 3 / 4  # the clouds
    days = ran.store.daily_profile()
    assert [d.time for d in days] == [amsterdam(2026, 6, 22), amsterdam(2026, 6, 23)]
    exported = [
        days[0].energy_wh[2],
        days[1].energy_wh[2] + days[1].energy_wh[3] - days[0].energy_wh[2],
    ]
    assert exported[0] > 20_000  # Wh under a clear midsummer sky
    assert exported[1] < exported[0] / 2


async def test_gas_meter_removal(run: Any) -> None:
    ran = await run("gas-meter-removal")
    gas = [t.HOURLY_GAS_METER_READING for t in ran.telegrams[:6]]
    # Read out at 5 past each hour (P2 §4.3): at 09:10 the 09:00 value, at 10:10 (after the
    # key change) the 10:00 one, higher; off the bus from 10:30, so at 12:10 still 10:00's.
    captured = [reading.datetime for reading in gas[::2]]
    assert captured == [amsterdam(2026, 10, 5, h) for h in (9, 10, 10)]
    values = [reading.value for reading in gas[::2]]
    assert values[0] < values[1] == values[2]
    assert {reading.unit for reading in gas} == {"m3"}
    # The new User key is the one the gas meter now decrypts with (P2 §6.5).
    bus = ran.runner.p2
    assert bus is not None
    assert bus.gas is not None
    assert bus.gas.slave.snapshot.user_key == bytes.fromhex("F0E0D0C0B0A090807060504030201000")
    # Deinstalled at 12:30: no M-Bus lines on P1 any more (0-1:24.1.0 .. 0-1:24.2.1).
    assert len(ran.telegrams) == 8
    assert all("0-1:" not in text for text in ran.raw[6:])
    assert all("0-1:24.2.1(" in text for text in ran.raw[:6])
    # P3 §4.2.1: installed (105) at the start, the communication error (100) at the first
    # read-out it missed; its hourly rows (0-1:24.3.0) are DNV from then on and stop with the
    # deinstallation.
    events = ran.store.events(EventLog.MBUS)
    assert [(e.when, e.code) for e in events] == [
        (amsterdam(2026, 10, 5, 8), 105),
        (amsterdam(2026, 10, 5, 11, 5), 100),
    ]
    rows = ran.store.mbus_hourly(1)
    assert [(r.time, bool(r.status & STATUS_DNV)) for r in rows] == [
        (amsterdam(2026, 10, 5, 9), False),
        (amsterdam(2026, 10, 5, 10), False),
        (amsterdam(2026, 10, 5, 11), False),
        (amsterdam(2026, 10, 5, 12), True),
    ]


async def test_tariff_program_change(run: Any) -> None:
    ran = await run("tariff-program-change")
    shown = [
        (t.P1_MESSAGE_TIMESTAMP.value, t.ELECTRICITY_ACTIVE_TARIFF.value) for t in ran.telegrams
    ]
    assert shown == [
        (amsterdam(2026, 11, 23, 21), "0002"),  # the old program: normal until 23:00
        (amsterdam(2026, 11, 24, 7, 30), "0001"),  # the new one: low until 08:00
        (amsterdam(2026, 11, 24, 12), "0002"),
        (amsterdam(2026, 11, 24, 21), "0001"),  # low from 20:00
    ]
    # P3 §5.4: event 9 at activate_passive_calendar_time, not at the next step after it.
    standard = ran.store.events(EventLog.STANDARD)
    assert [(e.when, e.code) for e in standard] == [
        (amsterdam(2026, 11, 24), EventCode.TARIFF_TIMES_ACTIVATED)
    ]
    # The active calendar 0-0:13.0.0 as P3 serves it, decoded by dlms-cosem.
    objects = ran.runner.p3.objects
    name = objects.get(1, AttributeRef(20, obis_bytes("0-0:13.0.0"), 2), None)
    days = objects.get(1, AttributeRef(20, obis_bytes("0-0:13.0.0"), 5), None)
    assert isinstance(name, bytes)
    assert isinstance(days, bytes)
    assert bytes(utils.parse_as_dlms_data(name)) == b"UC12"
    working = utils.parse_as_dlms_data(days)[0]
    switches = [(bytes(entry[0]).hex(), entry[2]) for entry in working[1]]
    assert switches == [("000000ff", 1), ("080000ff", 2), ("140000ff", 1)]


def management(ran: Ran, guek: str, gak: str) -> Any:
    """A dlms-cosem management client (HLS-GMAC, P3 §3.2) associated with the scenario's meter
    through the DLMS server core, with the meter's own key store."""
    head_end = ran.runner.p3
    keys = head_end.keys
    server = DlmsServer(
        ServerConfig(keys.material.system_title),
        head_end.objects.session(),
        keys=keys,
        counters=keys.counters,
        challenges=Challenges(),
    )
    client = management_client(
        MemoryLink(server, 1), guek=bytes.fromhex(guek), gak=bytes.fromhex(gak)
    )
    client.associate()
    return client


async def test_firmware_and_keys(run: Any) -> None:
    ran = await run("firmware-and-keys")
    # P3 §5.12: verified after the last block (17), activated when the association of the
    # activation ended (18, then the self check 20).
    standard = ran.store.events(EventLog.STANDARD)
    assert [(e.when, e.code) for e in standard] == [
        (amsterdam(2026, 4, 7, 10, 16), EventCode.FIRMWARE_READY),
        (amsterdam(2026, 4, 7, 10, 20), EventCode.FIRMWARE_ACTIVATED),
        (amsterdam(2026, 4, 7, 10, 20), EventCode.SELFCHECK_AFTER_FIRMWARE_OK),
    ]
    # The head-end's next association needs the transferred keys; the old ones are refused.
    new = management(ran, "00112233445566778899AABBCCDDEEFF", "C0C1C2C3C4C5C6C7C8C9CACBCCCDCECF")
    firmware = new.get(
        cosem.CosemAttribute(enumerations.CosemInterface.DATA, cosem.Obis(1, 0, 0, 2, 0), 2)
    )
    assert bytes(utils.parse_as_dlms_data(firmware)) == b"TWN-FW-5.1"
    with pytest.raises(DlmsClientException, match="REJECTED_PERMANENT"):
        management(ran, "000102030405060708090A0B0C0D0E0F", "D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF")
    assert len(ran.telegrams) == 6  # P1 sends on: 11:55:00 to 11:55:50


async def test_gas_meter_alarms(run: Any) -> None:
    ran = await run("gas-meter-alarms")
    gas = [t.HOURLY_GAS_METER_READING for t in ran.telegrams]
    assert len(gas) == 2  # Request raised 07:10:00 to 07:10:20
    assert {(g.datetime, g.unit) for g in gas} == {(amsterdam(2026, 2, 3, 7), "m3")}
    # The M-Bus event log 0-0:99.98.3 as P3 serves it, decoded by dlms-cosem: {time, code}.
    log = ran.runner.p3.objects.get(1, AttributeRef(7, obis_bytes("0-0:99.98.3"), 2), None)
    assert isinstance(log, bytes)
    rows = utils.parse_as_dlms_data(log)
    assert [row[1] for row in rows] == [105, 102, 103, 104]  # installed, battery, fraud, clock
    # Each at the first read-out after it happened (5 past the hour, P2 §4.3); the clock one
    # after the daily synchronisation at 06:05 found the clock off (P2 §6.2.1).
    assert [bytes(row[0])[5:7] for row in rows] == [
        bytes([6, 0]),
        bytes([9, 5]),
        bytes([12, 5]),
        bytes([7, 5]),
    ]
