"""The P3 modem service: AtModem on the simulated modem's pty, as the twin runs it.

Polling runs on a ManualClock (`net`); the AT timeouts are real but short and the simulator
answers at once, so nothing here waits for a timer to run out.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hardware.at_codec import AtCommandError
from hardware.modem import AtModem, Registration
from hardware.modem_sim import ModemSim, SimState
from hardware.ports import PortError
from tests.support import steady_config
from twin.app import build
from twin.clock import ManualClock
from twin.config import ConfigError, P3Config, load_config
from twin.display.service import ModuleStatus
from twin.display.wiring import default_status, modem_status
from twin.p3.gprs.modem_service import (
    MAX_SMS_AGE,
    SIM_APN,
    ModemService,
    ModemUnavailableError,
    open_modem_service,
    rssi_for_dbm,
)
from twin.parts import Twin
from twin.ports import NetworkInfo
from twin.sdnotify import Notifier
from twin.supervisor import Service, Supervisor

FAST = 0.25  # s: AT command timeouts (the simulator answers in microseconds)
POLL_S = 10.0
SENDER = "+31612345678"
CALLER = "+31201234567"
START = datetime(2026, 11, 23, 21, 0, tzinfo=UTC)


async def until(check: Callable[[], object], attempts: int = 500) -> None:
    """Yield to the event loop until `check()` holds (a pty round trip takes microseconds)."""
    for _ in range(attempts):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


class Rig:
    def __init__(self, tmp_path: Path, *, apn: str = SIM_APN) -> None:
        self.net = ManualClock(START)
        # SMS time stamps come from the network clock, as in open_modem_service
        self.sim = ModemSim(tmp_path / "modem", SimState(rssi=rssi_for_dbm(-71)), now=self.net.now)
        driver = AtModem(self.sim.device, timeout_s=FAST, slow_timeout_s=FAST)
        self.service = ModemService(driver, self.net, sim=self.sim, apn=apn, poll_s=POLL_S)
        self.forwarded: list[tuple[str, str]] = []
        self.service.on_wakeup = self._wakeup

    def _wakeup(self, kind: str, sender: str) -> Mapping[str, Any]:
        self.forwarded.append((kind, sender))
        return {"accepted": True, "kind": kind, "sender": sender}

    async def polled(self, count: int) -> None:
        await until(lambda: self.service.polls >= count)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    rig = Rig(tmp_path)
    runner = asyncio.create_task(rig.service.run())
    await rig.polled(1)
    yield rig
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)
    assert not (tmp_path / "modem").exists()  # the simulator's link is gone with the service


# ---- snapshot: 0-1:94.31.4 and the display --------------------------------------------------


async def test_snapshot_feeds_network_info_and_the_display(rig: Rig) -> None:
    # P3 §8.4: signal dBm, base stations with medium/high signal, network id = MCC+MNC
    assert rig.service.network_info() == NetworkInfo(-71, 1, b"00101")
    assert {"AT+CSQ", "AT+CGREG?", "AT+COPS?"} <= set(rig.sim.commands)
    display = modem_status(rig.service)
    assert display() == ModuleStatus(comm_attached=True, signal_level=4)  # DSMR-M 4.3.36
    rig.sim.set_signal(rssi_for_dbm(-97))  # no URC for a signal change: the next poll sees it
    await rig.net.advance(POLL_S)
    await rig.polled(2)
    assert rig.service.network_info() == NetworkInfo(-97, 0, b"00101")  # low: not counted
    assert display() == ModuleStatus(comm_attached=True, signal_level=1)
    status = rig.service.status()
    assert (status["registration"], status["plmn"], status["signal_dbm"]) == ("home", "00101", -97)


async def test_registration_loss_is_reported_at_once(rig: Rig) -> None:
    rig.sim.set_registration(Registration.SEARCHING)  # +CGREG URC: a poll without the timer
    await rig.polled(2)
    assert rig.service.network_info() is None
    assert modem_status(rig.service)() == ModuleStatus(comm_attached=False, signal_level=0)
    rig.sim.set_registration(Registration.ROAMING)
    await rig.polled(3)
    assert rig.service.network_info() == NetworkInfo(-71, 1, b"00101")


# ---- wake-ups through the AT codec ----------------------------------------------------------


async def test_sms_wakeup_travels_through_cmti_and_cmgr(rig: Rig) -> None:
    result = await rig.service.inject_wakeup("sms", SENDER)
    assert result == {"accepted": True, "kind": "sms", "sender": SENDER}
    assert rig.forwarded == [("sms", SENDER)]
    assert {"AT+CMGR=1", "AT+CMGD=1"} <= set(rig.sim.commands)  # read, then deleted
    assert rig.sim.state.sms == {}


async def started(rig: Rig) -> asyncio.Task[None]:
    runner = asyncio.create_task(rig.service.run())
    await rig.polled(1)
    return runner


async def stopped(runner: asyncio.Task[None]) -> None:
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)


@pytest.mark.parametrize("age", [timedelta(0), timedelta(minutes=5), MAX_SMS_AGE])
async def test_a_wakeup_stored_while_the_twin_was_down_is_forwarded_once(
    tmp_path: Path, age: timedelta
) -> None:
    rig = Rig(tmp_path)
    rig.sim.store_sms(SENDER, at=START - age)  # arrived while nobody listened: no +CMTI
    runner = await started(rig)
    try:
        await until(lambda: rig.forwarded)
        assert rig.sim.state.sms == {}  # listed with AT+CMGL, then deleted
        await rig.service.inject_wakeup("sms", CALLER)  # a live one comes next, not a repeat
        assert rig.forwarded == [("sms", SENDER), ("sms", CALLER)]
        assert rig.service.status()["stale_sms"] == 0
    finally:
        await stopped(runner)


async def test_a_stale_stored_wakeup_is_deleted_but_not_honoured(tmp_path: Path) -> None:
    """A meter powered down for a day does not call the head-end for yesterday's SMS."""
    rig = Rig(tmp_path)
    sent = START - MAX_SMS_AGE - timedelta(seconds=1)
    rig.sim.store_sms(SENDER, at=sent)
    runner = await started(rig)
    try:
        await until(lambda: rig.service.stale_sms == 1)
        assert rig.forwarded == []
        assert rig.sim.state.sms == {}  # deleted all the same: the SIM must not fill
        assert rig.service.status()["recent_wakeups"] == [
            {
                "kind": "sms",
                "sender": SENDER,
                "accepted": False,
                "reason": f"stale: sent {sent.isoformat()}",
            }
        ]
    finally:
        await stopped(runner)


async def test_a_live_sms_delivered_late_is_stale_too(rig: Rig) -> None:
    """The time stamp is the service centre's: an SMS it kept retrying for hours is old."""
    await rig.net.advance((MAX_SMS_AGE + timedelta(minutes=1)).total_seconds())
    rig.sim.inject_sms(SENDER, at=START)  # +CMTI now, stamped when the SMSC first got it
    await until(lambda: rig.service.stale_sms == 1)
    assert rig.forwarded == []
    assert rig.sim.state.sms == {}
    rig.sim.inject_sms(SENDER)  # stamped now: honoured
    await until(lambda: rig.forwarded)
    assert rig.forwarded == [("sms", SENDER)]


async def test_csd_wakeup_is_rejected_then_forwarded(rig: Rig) -> None:
    result = await rig.service.inject_wakeup("csd", CALLER)
    assert result["accepted"] is True
    assert rig.forwarded == [("csd", CALLER)]
    # DSMR-G 4.3.4 / P3 §9.1.3: the call is rejected (ATH), never answered
    assert "ATH" in rig.sim.commands
    assert "ATA" not in rig.sim.commands
    assert (rig.sim.state.rejected_calls, rig.sim.state.ringing) == (1, False)
    assert rig.service.status()["recent_wakeups"][-1]["sender"] == CALLER


@pytest.mark.parametrize("sender", ['+31"6', "a,b", "", "+" + "1" * 21, "+31\u00e9"])
async def test_bad_senders_never_reach_the_modem(rig: Rig, sender: str) -> None:
    before = len(rig.sim.commands)
    with pytest.raises(ValueError, match="sender"):
        await rig.service.inject_wakeup("sms", sender)
    assert rig.sim.state.sms == {}
    assert len(rig.sim.commands) == before


async def test_a_real_modem_cannot_be_injected_into(tmp_path: Path) -> None:
    service = ModemService(AtModem(str(tmp_path / "ttyUSB2")), ManualClock(START))
    with pytest.raises(ModemUnavailableError, match="real modem"):
        await service.inject_wakeup("sms", SENDER)
    assert service.network_info() is None


async def test_a_closed_simulator_cannot_be_injected_into(tmp_path: Path) -> None:
    rig = Rig(tmp_path)  # not running
    with pytest.raises(ModemUnavailableError, match="not open"):
        await rig.service.inject_wakeup("sms", SENDER)


# ---- PDP context (GPRS CS §3 steps 1 and 7) -------------------------------------------------


async def test_pdp_context_follows_the_controller(rig: Rig) -> None:
    await rig.service.connect()
    assert rig.service.pdp_active
    assert (rig.sim.state.contexts, rig.sim.state.active) == ({1: SIM_APN}, {1})
    await rig.service.connect()  # already up: no second activation
    assert rig.sim.commands.count("AT+CGACT=1,1") == 1
    await rig.service.disconnect()
    assert not rig.service.pdp_active
    assert rig.sim.state.active == set()


async def test_pdp_context_comes_up_once_the_network_is_back(rig: Rig) -> None:
    rig.sim.set_registration(Registration.DENIED)
    await rig.polled(2)
    await rig.service.connect()  # wanted, but not tried without a network
    assert not rig.service.pdp_active
    assert "AT+CGACT=1,1" not in rig.sim.commands
    rig.sim.set_registration(Registration.HOME)
    await until(lambda: rig.service.pdp_active)  # the registration URC's poll retries
    assert rig.sim.state.active == {1}


async def test_a_refused_pdp_context_is_retried_at_the_next_poll_only(rig: Rig) -> None:
    rig.sim.script("AT+CGACT=1,1", b"\r\n+CME ERROR: 30\r\n")  # e.g. a wrong APN
    await rig.service.connect()
    assert not rig.service.pdp_active
    await asyncio.sleep(0.1)  # no retry storm: nothing happens until the next poll
    assert rig.sim.commands.count("AT+CGACT=1,1") == 1
    await rig.net.advance(POLL_S)
    await until(lambda: rig.service.pdp_active)
    assert rig.sim.commands.count("AT+CGACT=1,1") == 2


async def test_without_apn_the_os_owns_the_data_link(tmp_path: Path) -> None:
    rig = Rig(tmp_path, apn="")
    runner = asyncio.create_task(rig.service.run())
    try:
        await rig.polled(1)
        await rig.service.connect()
        assert rig.service.pdp_active  # as wanted; pppd or ModemManager dials
        assert not any(c.startswith("AT+CGACT") for c in rig.sim.commands)
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)


# ---- a lost port: the supervisor restarts the service ---------------------------------------


async def test_lost_port_ends_the_run_with_port_error(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    runner = asyncio.create_task(rig.service.run())
    await rig.polled(1)
    rig.sim.vanish()  # USB unplugged: EIO on the driver's next read
    with pytest.raises(PortError, match="lost"):
        await asyncio.wait_for(runner, 5)
    assert rig.service.network_info() is None  # no network while the port is down
    runner = asyncio.create_task(rig.service.run())  # what the supervisor does after backoff
    try:
        await rig.polled(2)
        assert rig.service.network_info() == NetworkInfo(-71, 1, b"00101")
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)


async def test_supervisor_restarts_the_modem_and_keeps_the_rest_running(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    ticks = 0

    async def meter() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    modem = Service("modem", rig.service.run, heartbeat=lambda: rig.service.heartbeat)
    services = [Service("meter", meter), modem]
    supervisor = Supervisor(services, Notifier(""), lambda: True, random.Random(1), 0.05)
    stop = asyncio.Event()
    runner = asyncio.create_task(supervisor.run(stop))
    try:
        await rig.polled(1)
        rig.sim.vanish()
        await until(lambda: modem.restarts == 1)
        assert "PortError" in (modem.last_error or "")
        before = ticks
        await until(lambda: rig.service.polls >= 2 and rig.service.up)
        assert ticks > before  # the meter kept going
        assert (await rig.service.inject_wakeup("sms", SENDER))["accepted"] is True
    finally:
        stop.set()
        await asyncio.wait_for(runner, 5)


async def test_one_bad_answer_keeps_the_snapshot_three_restart_the_port(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    runner = asyncio.create_task(rig.service.run())
    await rig.polled(1)
    for _ in range(3):
        rig.sim.script("AT+CSQ", b"\r\nERROR\r\n")
    await rig.net.advance(POLL_S)
    await until(lambda: rig.service.poll_errors == 1)
    assert rig.service.up
    assert rig.service.network_info() == NetworkInfo(-71, 1, b"00101")  # the last good one
    for _ in range(2):
        await rig.net.advance(POLL_S)
        await asyncio.sleep(0.05)
    with pytest.raises(AtCommandError, match=r"AT\+CSQ"):
        await asyncio.wait_for(runner, 5)
    assert rig.service.poll_errors == 3
    assert rig.service.network_info() is None


# ---- config and wiring ----------------------------------------------------------------------


@pytest.mark.parametrize("value", ["none", "simulated", "/dev/ttyUSB2", "/dev/serial/by-id/x"])
def test_modem_config_accepts(tmp_path: Path, value: str) -> None:
    path = tmp_path / "twin.toml"
    path.write_text(f'[p3]\nmodem = "{value}"\napn = "internet.example"\n')
    assert load_config(path).p3 == P3Config(modem=value, apn="internet.example")


@pytest.mark.parametrize(
    ("key", "value"),
    [("modem", "sim"), ("modem", "ttyUSB2"), ("apn", 'a"b'), ("apn", "x" * 101)],
)
def test_modem_config_rejects(tmp_path: Path, key: str, value: str) -> None:
    path = tmp_path / "twin.toml"
    path.write_text(f"[p3]\n{key} = {json.dumps(value)}\n")
    with pytest.raises(ConfigError, match=rf"p3\.{key}"):
        load_config(path)


def test_open_modem_service_by_name(tmp_path: Path) -> None:
    clock = ManualClock(START)
    assert open_modem_service(P3Config(modem="none"), tmp_path, clock) is None
    simulated = open_modem_service(P3Config(signal_dbm=-97), tmp_path, clock)
    assert simulated is not None
    assert simulated.sim is not None
    assert simulated.sim.device == str(tmp_path / "modem")
    assert simulated.sim.state.rssi == 8  # 27.007 §8.5: -97 dBm
    assert simulated.apn == SIM_APN
    real = open_modem_service(P3Config(modem="/dev/ttyUSB2", apn="a.b"), tmp_path, clock)
    assert real is not None
    assert real.sim is None
    assert (real.description, real.apn) == ("AT modem /dev/ttyUSB2", "a.b")


def _twin(tmp_path: Path, **p3: Any) -> Twin:
    config = steady_config()
    return build(replace(config, p3=P3Config(endpoint="tcp://127.0.0.1:0", **p3)), tmp_path)


async def _ctl(twin: Twin, request: dict[str, Any]) -> dict[str, Any]:
    return await twin.control.dispatch(json.dumps(request).encode())


async def test_ctl_wakeup_goes_through_the_simulated_modem(tmp_path: Path) -> None:
    twin = _twin(tmp_path)
    modem = next(s for s in twin.services if s.name == "modem")
    runner = asyncio.ensure_future(modem.run())
    try:
        status = default_status(twin)  # the display reads the modem, not a stand-in
        await until(lambda: status().comm_attached)
        assert status() == ModuleStatus(comm_attached=True, signal_level=4)
        answer = await _ctl(twin, {"cmd": "wakeup", "kind": "sms", "sender": SENDER})
        # the factory configuration is always-on (0-1:94.31.3): nothing to wake
        assert answer == {
            "ok": True,
            "result": {"accepted": False, "reason": "always-on: already online"},
        }
        assert twin.control.ports["modem"]()["recent_wakeups"][-1]["sender"] == SENDER
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        twin.store.close()


@pytest.mark.parametrize(
    ("modem", "error"),
    [("none", "p3.modem is 'none'"), ("/dev/ttyUSB2", "real modem")],
)
async def test_ctl_wakeup_without_a_simulated_modem_is_a_clear_error(
    tmp_path: Path, modem: str, error: str
) -> None:
    twin = _twin(tmp_path, modem=modem)
    try:
        answer = await _ctl(twin, {"cmd": "wakeup", "kind": "csd", "sender": CALLER})
        assert answer["ok"] is False
        assert error in answer["error"]
        if modem == "none":  # no modem: the display falls back to "P3 served, signal unknown"
            assert default_status(twin)() == ModuleStatus(comm_attached=True)
    finally:
        twin.store.close()


@pytest.mark.parametrize(
    ("request_", "error"),
    [
        ({"kind": "fax", "sender": SENDER}, "'kind' must be one of 'sms', 'csd'; got 'fax'"),
        ({"kind": ["sms"], "sender": SENDER}, "'kind' must be one of 'sms', 'csd'; got ['sms']"),
        ({"kind": "sms"}, "'sender' is required: 1 to 20 printable ASCII characters"),
    ],
)
async def test_ctl_wakeup_rejects_malformed_requests(
    tmp_path: Path, request_: dict[str, Any], error: str
) -> None:
    twin = _twin(tmp_path)
    try:
        answer = await _ctl(twin, {"cmd": "wakeup", **request_})
        assert answer["ok"] is False
        assert answer["kind"] == "field"
        assert answer["error"].startswith(error)
    finally:
        twin.store.close()
