"""AtModem against the simulated modem over a real pty, and contract tests for every Modem.

A real modem joins the contract tests when DSMR_TWIN_MODEM_DEVICE names its AT tty (e.g.
/dev/ttyUSB2 on the Pi); they only read, never dial or send.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hardware.at_codec import (
    AtCommandError,
    AtGarbageError,
    AtTimeoutError,
    CmeError,
    RemoteAtError,
)
from hardware.modem import (
    AccessTechnology,
    AtModem,
    Domain,
    IncomingCall,
    Modem,
    ModemEvent,
    NetworkInfo,
    Registration,
    RegistrationChanged,
    SignalLevel,
    SignalQuality,
    SmsReceived,
    signal_level,
)
from hardware.modem_sim import ModemSim
from hardware.ports import PortError
from twin.clock import ManualClock

FAST = 0.25  # seconds: the protocol's own timeouts, made small (the sim answers at once)
EVENT_WAIT = 2.0  # an upper bound only: events arrive within milliseconds
SENDER = "+31612345678"
OTHER = "+31687654321"
CALLER = "+31201234567"
START = datetime(2026, 11, 23, 21, 0, tzinfo=UTC)  # the simulator's clock: SMS time stamps
LIST = 'AT+CMGL="REC UNREAD"'


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[ModemSim]:
    clock = ManualClock(START)
    modem_sim = ModemSim(tmp_path / "modem", now=clock.now)
    await modem_sim.open()
    yield modem_sim
    await modem_sim.close()


@pytest.fixture
async def modem(sim: ModemSim) -> AsyncIterator[AtModem]:
    driver = AtModem(sim.device, timeout_s=FAST, slow_timeout_s=FAST)
    await driver.open()
    yield driver
    await driver.close()


async def next_event(modem: Modem) -> ModemEvent:
    async with asyncio.timeout(EVENT_WAIT):
        return await anext(aiter(modem.events()))


# -- contract: every Modem implementation that can load here ----------------------------------

OpenModem = Callable[[Path], Coroutine[Any, Any, tuple[Modem, ModemSim | None]]]


async def _sim_modem(tmp_path: Path) -> tuple[Modem, ModemSim | None]:
    modem_sim = ModemSim(tmp_path / "modem")
    await modem_sim.open()
    return AtModem(modem_sim.device, timeout_s=FAST, slow_timeout_s=FAST), modem_sim


async def _real_modem(_tmp_path: Path) -> tuple[Modem, ModemSim | None]:
    device = os.environ.get("DSMR_TWIN_MODEM_DEVICE", "")
    if not device:
        pytest.skip("no real modem: set DSMR_TWIN_MODEM_DEVICE=/dev/ttyUSBn")
    return AtModem(device), None


@pytest.fixture(params=[_sim_modem, _real_modem], ids=["at-over-sim-pty", "at-real-device"])
async def any_modem(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Modem]:
    opener: OpenModem = request.param
    driver, modem_sim = await opener(tmp_path)
    await driver.open()
    yield driver
    await driver.close()
    if modem_sim is not None:
        await modem_sim.close()


async def test_contract_queries(any_modem: Modem) -> None:
    assert any_modem.description
    state = await any_modem.registration(Domain.PACKET)
    assert isinstance(state, Registration)
    quality = await any_modem.signal_quality()
    assert 0 <= quality.rssi <= 31 or quality.rssi == 99
    assert quality.level == signal_level(quality.dbm)
    info = await any_modem.network_info()
    assert info is None or (isinstance(info, NetworkInfo) and info.plmn.isdigit())


async def test_contract_close_and_reopen(any_modem: Modem) -> None:
    await any_modem.close()
    with pytest.raises(PortError):
        await any_modem.signal_quality()
    await any_modem.open()
    assert isinstance(await any_modem.signal_quality(), SignalQuality)


def test_at_modem_is_a_modem() -> None:
    implementation: Modem = AtModem("/dev/null")  # mypy checks the Protocol here
    assert implementation.description == "AT modem /dev/null"


# -- registration ------------------------------------------------------------------------------


@pytest.mark.parametrize("state", list(Registration))
@pytest.mark.parametrize("domain", list(Domain))
async def test_registration_states(
    sim: ModemSim, modem: AtModem, domain: Domain, state: Registration
) -> None:
    sim.set_registration(state, domain)
    assert await modem.registration(domain) is state
    assert state.registered == (state in (Registration.HOME, Registration.ROAMING))


async def test_registration_change_is_reported(sim: ModemSim, modem: AtModem) -> None:
    sim.set_registration(Registration.SEARCHING, Domain.PACKET)
    assert await next_event(modem) == RegistrationChanged(Domain.PACKET, Registration.SEARCHING)


async def test_network_info(sim: ModemSim, modem: AtModem) -> None:
    info = await modem.network_info()
    assert info == NetworkInfo(
        "Twin Test Network", "00101", sim.state.technology, "00C3", "0000A13F"
    )
    sim.state.technology = AccessTechnology.E_UTRAN
    sim.state.area, sim.state.cell_id = "1A2B", "01ABCDEF"
    info = await modem.network_info()
    assert info is not None
    assert (info.technology, info.area, info.cell_id) == (
        AccessTechnology.E_UTRAN,
        "1A2B",
        "01ABCDEF",
    )
    assert sim.commands[-1] == "AT+CEREG?"  # LTE: the EPS registration carries the cell
    sim.set_registration(Registration.NOT_REGISTERED)
    assert await modem.network_info() is None


# -- signal: CSQ -> dBm -> the 4 display levels of DSMR-G 4.2.12 -------------------------------


@pytest.mark.parametrize(
    ("rssi", "dbm", "level"),
    [
        (0, -113, SignalLevel.NONE),  # 27.007 §8.5: -113 dBm or less
        (6, -101, SignalLevel.NONE),  # DSMR-G 4.2.12: no reception below -100
        (7, -99, SignalLevel.LOW),
        (8, -97, SignalLevel.LOW),
        (9, -95, SignalLevel.MEDIUM),  # "-95 dBm or better" is sufficient for GPRS
        (14, -85, SignalLevel.MEDIUM),
        (15, -83, SignalLevel.HIGH),  # above -85
        (31, -51, SignalLevel.HIGH),  # -51 dBm or more
        (99, None, SignalLevel.NONE),  # not known or not detectable
    ],
)
async def test_csq_to_dbm_and_level(
    sim: ModemSim, modem: AtModem, rssi: int, dbm: int | None, level: SignalLevel
) -> None:
    sim.set_signal(rssi, 3)
    quality = await modem.signal_quality()
    assert quality == SignalQuality(rssi, 3)
    assert quality.dbm == dbm
    assert quality.level is level


@pytest.mark.parametrize(
    ("dbm", "level"),
    [(-101, 0), (-100, 1), (-96, 1), (-95, 2), (-85, 2), (-84, 3), (None, 0)],
)
def test_level_edges_are_ours(dbm: int | None, level: int) -> None:
    """DSMR-G 4.2.12 leaves -100, -95 and -85 open; hardware/modem.py documents our choice."""
    assert signal_level(dbm) == level


# -- PDP context ------------------------------------------------------------------------------


async def test_activate_and_deactivate_pdp(sim: ModemSim, modem: AtModem) -> None:
    context = await modem.activate_pdp("dsmr.example")
    assert (context.cid, context.apn, context.address) == (1, "dsmr.example", "10.64.0.2")
    assert sim.state.contexts == {1: "dsmr.example"}
    assert sim.state.active == {1}
    await modem.deactivate_pdp()
    assert sim.state.active == set()


async def test_pdp_needs_the_network(sim: ModemSim, modem: AtModem) -> None:
    sim.set_registration(Registration.DENIED)
    with pytest.raises(CmeError) as caught:
        await modem.activate_pdp("dsmr.example")
    assert caught.value.code == 30  # 27.007 §9.2.1: no network service


@pytest.mark.parametrize("apn", ["", 'a"b', "x" * 101])
async def test_bad_apn_is_refused_before_the_modem(modem: AtModem, apn: str) -> None:
    with pytest.raises(ValueError, match="bad APN"):
        await modem.activate_pdp(apn)


# -- wake-up: SMS and CSD ---------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "wake up", "OK", "RING"])
async def test_sms_wakeup_delivers_sender_and_text(
    sim: ModemSim, modem: AtModem, text: str
) -> None:
    sim.inject_sms(SENDER, text)
    assert await next_event(modem) == SmsReceived(SENDER, text, START)
    assert sim.state.sms == {}  # read with AT+CMGR, then deleted with AT+CMGD
    assert sim.commands[-2:] == ["AT+CMGR=1", "AT+CMGD=1"]


async def test_csd_wakeup_delivers_the_caller_and_is_rejected(
    sim: ModemSim, modem: AtModem
) -> None:
    sim.inject_call(CALLER)
    assert await next_event(modem) == IncomingCall(CALLER)
    await modem.reject_call()
    assert sim.state.rejected_calls == 1
    assert not sim.state.ringing


async def test_urc_in_the_middle_of_a_response(sim: ModemSim, modem: AtModem) -> None:
    sim.state.sms[1] = (SENDER, "", "26/11/23,21:00:00+00")
    sim.script("AT+CSQ", b'\r\n+CSQ: 12,99\r\n\r\n+CMTI: "SM",1\r\n\r\nOK\r\n')
    assert (await modem.signal_quality()).rssi == 12
    assert await next_event(modem) == SmsReceived(SENDER, "", START)


async def test_a_live_sms_is_reported_even_if_it_cannot_be_deleted(
    sim: ModemSim, modem: AtModem
) -> None:
    sim.script("AT+CMGD=1", b"\r\n+CMS ERROR: 500\r\n")
    sim.inject_sms(SENDER)
    assert await next_event(modem) == SmsReceived(SENDER, "", START)
    assert list(sim.state.sms) == [1]  # read, so the next start's AT+CMGD=1,3 removes it
    assert sim.state.read == {1}


# -- SMS stored while nobody listened: the start-up sweep (AT+CMGL, AT+CMGD) -------------------


@contextlib.asynccontextmanager
async def opened(sim: ModemSim) -> AsyncIterator[AtModem]:
    driver = AtModem(sim.device, timeout_s=FAST, slow_timeout_s=FAST)
    await driver.open()
    try:
        yield driver
    finally:
        await driver.close()


async def test_stored_sms_are_reported_once_and_deleted_at_start(sim: ModemSim) -> None:
    earlier = START - timedelta(hours=3)
    sim.store_sms(SENDER, at=earlier)  # the twin was down: no +CMTI for either
    sim.store_sms(OTHER, "hi, there")
    async with opened(sim) as modem:
        assert sim.state.sms == {}  # gone before open() returns
        assert await next_event(modem) == SmsReceived(SENDER, "", earlier, stored=True)
        assert await next_event(modem) == SmsReceived(OTHER, "hi, there", START, stored=True)
        sim.inject_sms(CALLER)  # the next event is this live one: nothing was reported twice
        assert await next_event(modem) == SmsReceived(CALLER, "", START)
    sweep = sim.commands[sim.commands.index(LIST) :][:4]
    assert sweep == [LIST, "AT+CMGD=1", "AT+CMGD=2", "AT+CMGD=1,3"]
    assert sim.commands.index("AT+CNMI=2,1,0,0,0") < sim.commands.index(LIST)


async def test_read_leftovers_are_deleted_and_not_reported(sim: ModemSim) -> None:
    """A run that died between AT+CMGR and AT+CMGD left a read SMS: it was reported then."""
    sim.store_sms(SENDER)
    sim.state.read.add(1)
    sim.store_sms(OTHER)
    async with opened(sim) as modem:
        assert sim.state.sms == {}
        assert await next_event(modem) == SmsReceived(OTHER, "", START, stored=True)
        sim.inject_sms(CALLER)
        assert await next_event(modem) == SmsReceived(CALLER, "", START)


async def test_a_cmti_nobody_read_is_flushed_and_the_sweep_reports_the_sms(
    sim: ModemSim,
) -> None:
    """The +CMTI sent while nobody listened is dropped by the open (as a tty flushes input)."""
    sim.state.cnmi_mt = 1  # set by the previous run
    sim.inject_sms(SENDER)
    async with opened(sim) as modem:
        assert await next_event(modem) == SmsReceived(SENDER, "", START, stored=True)
        sim.inject_sms(OTHER)  # takes the free index 1 again
        assert await next_event(modem) == SmsReceived(OTHER, "", START)
    assert sim.commands.count("AT+CMGR=1") == 1  # OTHER's own


async def test_a_cmti_during_the_sweep_does_not_report_the_sms_twice(
    sim: ModemSim, caplog: pytest.LogCaptureFixture
) -> None:
    """An SMS that arrives while the listing runs is in it and has a +CMTI: reported once."""
    sim.store_sms(SENDER)
    header = f'+CMGL: 1,"REC UNREAD","{SENDER}",,"26/11/23,21:00:00+00",145,0'
    sim.script(LIST, f'\r\n+CMTI: "SM",1\r\n\r\n{header}\r\n\r\nOK\r\n'.encode())
    caplog.set_level(logging.INFO, "hardware.modem")
    async with opened(sim) as modem:
        assert await next_event(modem) == SmsReceived(SENDER, "", START, stored=True)
        async with asyncio.timeout(EVENT_WAIT):
            while "AT+CMGR=1" not in sim.commands:  # the +CMTI's read: +CMS ERROR 321
                await asyncio.sleep(0)  # yield until the URC task got to it; no timing involved
        sim.inject_sms(OTHER)
        assert await next_event(modem) == SmsReceived(OTHER, "", START)  # not SENDER again
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize(
    "reply",
    [
        b"\r\nERROR\r\n",
        b"\r\n+CMS ERROR: 302\r\n",
        b'\r\n+CMGL: x,"REC UNREAD"\r\n\r\nOK\r\n',  # malformed
        b"\r\n+CMGL: 1\x00\xff\r\n\r\nOK\r\n",  # garbage
    ],
)
async def test_a_refused_listing_does_not_stop_start_up(
    sim: ModemSim, caplog: pytest.LogCaptureFixture, reply: bytes
) -> None:
    sim.store_sms(SENDER)
    sim.script(LIST, reply)
    async with opened(sim) as modem:
        assert "cannot list stored SMS" in caplog.text
        assert "AT+CMGD=1,3" not in sim.commands  # what the listing marked read is kept
        assert (await modem.signal_quality()).rssi == sim.state.rssi
        sim.inject_sms(OTHER)  # live SMS still work
        assert await next_event(modem) == SmsReceived(OTHER, "", START)


async def test_a_refused_bulk_delete_does_not_stop_start_up(
    sim: ModemSim, caplog: pytest.LogCaptureFixture
) -> None:
    sim.store_sms(SENDER)
    sim.script("AT+CMGD=1,3", b"\r\n+CMS ERROR: 302\r\n")
    async with opened(sim) as modem:
        assert await next_event(modem) == SmsReceived(SENDER, "", START, stored=True)
    assert sim.state.sms == {}  # its own AT+CMGD=1 worked
    assert "cannot delete read SMS" in caplog.text


# -- errors ------------------------------------------------------------------------------------


async def test_no_answer_times_out_and_the_driver_recovers(sim: ModemSim, modem: AtModem) -> None:
    sim.script("AT+CSQ", None)
    with pytest.raises(AtTimeoutError):
        await modem.signal_quality()
    assert (await modem.signal_quality()).rssi == sim.state.rssi


async def test_garbage_in_a_response(sim: ModemSim, modem: AtModem) -> None:
    sim.script("AT+CSQ", b"\r\n+CSQ: 2\x00\xff0,99\r\n\r\nOK\r\n")
    with pytest.raises(AtGarbageError):
        await modem.signal_quality()
    assert modem.garbage == 1
    assert (await modem.signal_quality()).rssi == sim.state.rssi


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (b"\r\nERROR\r\n", AtCommandError),
        (b"\r\n+CME ERROR: 10\r\n", CmeError),
        (b"\r\n+CSQ: many\r\n\r\nOK\r\n", RemoteAtError),  # malformed
        (b"\r\nOK\r\n", RemoteAtError),  # the +CSQ line is missing
    ],
)
async def test_bad_replies_raise_typed_errors(
    sim: ModemSim, modem: AtModem, reply: bytes, error: type[PortError]
) -> None:
    sim.script("AT+CSQ", reply)
    with pytest.raises(error):
        await modem.signal_quality()


async def test_missing_device_is_a_port_error(tmp_path: Path) -> None:
    with pytest.raises(PortError, match="cannot open"):
        await AtModem(str(tmp_path / "absent")).open()


async def test_vanished_port_while_idle(sim: ModemSim, modem: AtModem) -> None:
    events = aiter(modem.events())
    sim.vanish()
    with pytest.raises(PortError, match="lost"):
        async with asyncio.timeout(EVENT_WAIT):
            await anext(events)
    with pytest.raises(PortError, match="lost"):
        await modem.signal_quality()
    await modem.close()
    await sim.open()  # plugged in again (a new pty behind the same link)
    await modem.open()
    assert (await modem.signal_quality()).rssi == sim.state.rssi


async def test_vanished_port_during_a_command(sim: ModemSim, modem: AtModem) -> None:
    sim.script("AT+CSQ", None)
    query = asyncio.create_task(modem.signal_quality())
    async with asyncio.timeout(EVENT_WAIT):
        while "AT+CSQ" not in sim.commands:
            await asyncio.sleep(0)  # yield until the command reaches the sim; no timing involved
    sim.vanish()
    with pytest.raises(PortError, match="lost") as caught:
        await query
    assert not isinstance(caught.value, AtTimeoutError)


async def test_open_fails_cleanly_when_the_modem_is_silent(sim: ModemSim) -> None:
    sim.script("AT", None)
    driver = AtModem(sim.device, timeout_s=FAST)
    with pytest.raises(AtTimeoutError):
        await driver.open()
    await driver.open()  # closed after the failure, so it can be opened again
    await driver.close()


async def test_reopen_after_loss_without_close(sim: ModemSim, modem: AtModem) -> None:
    """The supervisor's restart loop may just call open() again on a lost port."""
    sim.vanish()
    with pytest.raises(PortError, match="lost"):
        await modem.signal_quality()
    await sim.open()
    await modem.open()
    assert (await modem.signal_quality()).rssi == sim.state.rssi


async def test_a_cancelled_command_leaves_the_driver_usable(sim: ModemSim, modem: AtModem) -> None:
    sim.script("AT+CSQ", None)
    query = asyncio.create_task(modem.signal_quality())
    async with asyncio.timeout(EVENT_WAIT):
        while "AT+CSQ" not in sim.commands:
            await asyncio.sleep(0)  # yield until the command reaches the sim
    query.cancel()
    with pytest.raises(asyncio.CancelledError):
        await query
    assert (await modem.signal_quality()).rssi == sim.state.rssi


async def test_close_ends_a_waiting_consumer(modem: AtModem) -> None:
    waiter = asyncio.create_task(next_event(modem))
    await asyncio.sleep(0)  # let the consumer start waiting
    await modem.close()
    with pytest.raises(PortError, match="closed"):
        await waiter
    with pytest.raises(PortError, match="closed"):  # sticky for any later reader
        await next_event(modem)


async def test_a_directly_delivered_sms_keeps_its_time_stamp(sim: ModemSim, modem: AtModem) -> None:
    sim.state.cnmi_mt = 2  # 27.005 §3.4.1 <mt> 2: +CMT to the DTE, nothing stored or deleted
    sim.inject_sms(SENDER, "hi", at=START - timedelta(hours=2))
    assert await next_event(modem) == SmsReceived(SENDER, "hi", START - timedelta(hours=2))
    assert sim.state.sms == {}
