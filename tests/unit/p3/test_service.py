"""The asyncio P3 service on loopback against dlms-cosem 21.3.2 and gurux-dlms, and GPRS.

Network timers run on a ManualClock (`net`): inactivity is tested by advancing it, never by
sleeping. The object model is the small one of helpers.py (clock, 1-0:1.8.1, a message).
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from dlms_cosem import utils
from dlms_cosem.clients.dlms_client import DataResultError
from gurux_dlms.objects import GXDLMSClock, GXDLMSRegister

from hardware.modem import AtModem
from hardware.modem_sim import ModemSim
from tests.support import amsterdam, steady_config
from tests.unit.p3 import tcp_peers
from tests.unit.p3.helpers import (
    CLOCK_VALUE,
    GAK,
    GUEK,
    SERVER_TITLE,
    FakeObjects,
)
from twin.clock import ManualClock
from twin.config import ConfigError, P3Config
from twin.meter.events import EventCode, EventLog
from twin.metering import Meter
from twin.p3.dlms.cosem import AttributeRef, DataAccessResult, SelectiveAccess
from twin.p3.gprs.controller import GprsController, Mode
from twin.p3.gprs.modem_service import SIM_APN, ModemService
from twin.p3.keys import KeyStore
from twin.p3.objects.base import obis_bytes
from twin.p3.service import ENDING_GRACE_S, P3Service
from twin.p3.wiring import parse_endpoint
from twin.store import Store

START = amsterdam(2026, 11, 23, 12, 0)
CLOCK = tcp_peers.attribute(8, "0-0:1.0.0", 2)
ENERGY = tcp_peers.attribute(3, "1-0:1.8.1", 2)
KEYS = P3Config(
    system_title=SERVER_TITLE.hex(), guek=GUEK.hex(), gak=GAK.hex(), master_key="00" * 16
)


@dataclass
class Objects(FakeObjects):
    """FakeObjects plus settings the service and GPRS read (TCP-UDP setup, watchdog)."""

    extra: dict[AttributeRef, bytes] = field(default_factory=dict)
    reads: list[AttributeRef] = field(default_factory=list)  # of the `extra` attributes
    releases: int = 0  # association ends the service reported
    mechanisms: list[int] = field(default_factory=list)  # of the associations reported
    ticks: int = 0
    listeners: list[Callable[[], None]] = field(default_factory=list)

    def session(self) -> Objects:
        return self

    def associated(self, mechanism: int) -> None:
        self.mechanisms.append(mechanism)

    def released(self) -> None:
        self.releases += 1

    def tick(self) -> None:
        self.ticks += 1

    def next_due(self) -> datetime | None:
        return None

    @property
    def on_change(self) -> list[Callable[[], None]]:
        return self.listeners

    def get(
        self, client: int, ref: AttributeRef, access: SelectiveAccess | None
    ) -> bytes | DataAccessResult:
        if ref in self.extra:
            self.reads.append(ref)
            return self.extra[ref]
        return super().get(client, ref, access)


INACTIVITY = AttributeRef(41, obis_bytes("0-0:25.0.0"), 6)
WATCHDOG = AttributeRef(1, obis_bytes("0-1:94.31.2"), 2)


@dataclass
class Rig:
    service: P3Service
    meter: Meter
    store: Store
    objects: Objects
    net: ManualClock
    meter_clock: ManualClock

    @property
    def port(self) -> int:
        return self.service.bound_port

    def events(self, log: EventLog) -> list[int]:
        return [e.code for e in self.store.events(log)]


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    store = Store.open(tmp_path)
    meter_clock = ManualClock(START)
    meter = Meter(steady_config(), meter_clock, store, random.Random(1))
    objects = Objects()
    net = ManualClock(START)
    keys = KeyStore(store, KEYS)
    service = P3Service(meter, keys, objects, "127.0.0.1", 0, net_clock=net)
    await service.start_listening()
    yield Rig(service, meter, store, objects, net, meter_clock)
    await service.stop_listening()
    store.close()


def management_session(port: int, ic: int = 1) -> tuple[bytes, int]:
    client = tcp_peers.management_client(port, GUEK, GAK, invocation_counter=ic)
    client.connect()
    client.associate()
    clock = utils.parse_as_dlms_data(client.get(CLOCK))
    energy = utils.parse_as_dlms_data(client.get(ENERGY))
    client.release_association()
    client.disconnect()
    return clock, energy


async def test_management_session_over_tcp_reports_the_release(rig: Rig) -> None:
    clock, energy = await asyncio.to_thread(management_session, rig.port)
    assert clock == CLOCK_VALUE
    assert energy == 123456
    await rig.service.wait_idle()
    # The object model writes the comlog entries when told the association ended (P3 §5.10).
    assert rig.objects.releases == 1
    assert rig.objects.mechanisms == [5]  # HLS-GMAC
    status = rig.service.status()
    assert status["associations_by_client"] == {"1": 1}
    assert status["last_contact"] is not None


async def test_public_client_and_gurux_client(rig: Rig) -> None:
    def public() -> None:
        client = tcp_peers.public_client(rig.port)
        client.connect()
        client.associate()
        assert utils.parse_as_dlms_data(client.get(CLOCK)) == CLOCK_VALUE
        with pytest.raises(DataResultError, match="READ_WRITE_DENIED"):
            client.get(ENERGY)  # P3 §2.1.1: no metering data for the public client
        client.release_association()
        client.disconnect()

    def gurux() -> object:
        peer = tcp_peers.gurux_management(rig.port, GUEK, GAK)
        try:
            peer.associate()
            peer.read(GXDLMSClock("0.0.1.0.0.255"), 2)
            value = peer.read(GXDLMSRegister("1.0.1.8.1.255"), 2)
            assert peer.release() is True  # its plain RLRQ gets an RLRE (Green Book §9.3.3)
            return value
        finally:
            peer.close()

    await asyncio.to_thread(public)
    await rig.service.wait_idle()
    assert await asyncio.to_thread(gurux) == 123456


async def test_second_connection_is_refused_and_the_first_goes_on(rig: Rig) -> None:
    client = tcp_peers.management_client(rig.port, GUEK, GAK)
    await asyncio.to_thread(client.connect)
    await asyncio.to_thread(client.associate)
    second = await asyncio.to_thread(socket.create_connection, ("127.0.0.1", rig.port))
    with second:
        assert await asyncio.to_thread(tcp_peers.closed_by_peer, second)
    assert utils.parse_as_dlms_data(await asyncio.to_thread(client.get, ENERGY)) == 123456
    await asyncio.to_thread(client.release_association)
    await asyncio.to_thread(client.disconnect)
    assert rig.service.counters.refused == 1


async def released_on_a_slow_store(rig: Rig) -> threading.Event:
    """A management session released and closed while the store is slow to write its log
    entries; the store goes on when the returned event is set."""
    written = threading.Event()
    client = tcp_peers.management_client(rig.port, GUEK, GAK)
    await asyncio.to_thread(client.connect)
    await asyncio.to_thread(client.associate)
    rig.store.writer.submit(lambda _db: written.wait(5))
    await asyncio.to_thread(client.release_association)
    await asyncio.to_thread(client.disconnect)
    return written


async def test_a_head_end_connecting_again_right_after_its_release_is_served(rig: Rig) -> None:
    """After a release the connection reads on (and so sees its client's FIN) only once the
    session's log entries are durable (P3 §5.10). A head-end that released, closed and
    connects again meanwhile is no second connection: it is served when the first one ends,
    not refused unanswered (its AARQ unread, so the close reaches it as a reset) because the
    store took longer than the short grace a closing connection gets."""
    written = await released_on_a_slow_store(rig)

    def session_again() -> object:
        peer = tcp_peers.gurux_management(rig.port, GUEK, GAK, invocation_counter=500)
        try:
            peer.associate()  # the AARQ goes at once, as a head-end sends it
            value = peer.read(GXDLMSRegister("1.0.1.8.1.255"), 2)
            assert peer.release() is True
            return value
        finally:
            peer.close()

    again = asyncio.create_task(asyncio.to_thread(session_again))
    # The store, not the network: real time, longer than ENDING_GRACE_S and shorter than
    # the time after which a write counts as stalled (STALLED_AFTER_S).
    await asyncio.sleep(2 * ENDING_GRACE_S)
    written.set()
    assert await again == 123456
    await rig.service.wait_idle()
    assert rig.service.counters.refused == 0
    assert rig.service.counters.associations == 2


async def test_a_connection_waiting_for_the_last_one_is_closed_when_listening_stops(
    rig: Rig,
) -> None:
    """The wait for a released connection to end is no way past stop_listening (the GPRS
    context went): the waiting connection is closed, not served by a stopped listener."""
    written = await released_on_a_slow_store(rig)
    with socket.create_connection(("127.0.0.1", rig.port)) as sock:

        def accepted() -> int:  # the released connection's and this one's
            return sum(t.get_name() == "dsmr-twin.p3.conn" for t in asyncio.all_tasks())

        await _eventually(lambda: accepted() == 2)
        stopping = asyncio.create_task(rig.service.stop_listening())
        await _eventually(lambda: not rig.service.listening)
        written.set()
        await stopping
        assert await asyncio.to_thread(tcp_peers.closed_by_peer, sock)
    assert rig.service.active is None
    assert rig.service.counters.connections == 1


async def test_every_connection_end_is_counted_with_its_cause(rig: Rig) -> None:
    """`ctl status` ports.p3.closes names who ended each connection and why, so a head-end's
    reset can be traced to the meter's reason (or to the head-end's own side)."""
    rig.objects.extra[INACTIVITY] = b"\x12\x00\x3c"  # 60 s
    await asyncio.to_thread(management_session, rig.port)  # the head-end closes after its RLRE
    await rig.service.wait_idle()
    with socket.create_connection(("127.0.0.1", rig.port)) as sock:  # it resets the connection
        await _eventually(lambda: rig.service.active is not None)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    await rig.service.wait_idle()
    with socket.create_connection(("127.0.0.1", rig.port)) as sock:  # garbage: core aborts
        sock.sendall(b"\xff" * 40)
        assert await asyncio.to_thread(tcp_peers.closed_by_peer, sock)
    await rig.service.wait_idle()
    with socket.create_connection(("127.0.0.1", rig.port)) as sock:  # silent: no association
        await _eventually(lambda: rig.service.active is not None)
        await rig.net.advance(rig.service.association_timeout_s + 1)
        assert await asyncio.to_thread(tcp_peers.closed_by_peer, sock)
    await rig.service.wait_idle()
    client = tcp_peers.management_client(rig.port, GUEK, GAK, invocation_counter=500)
    await asyncio.to_thread(client.connect)
    await asyncio.to_thread(client.associate)
    await rig.net.advance(61)
    await _eventually(lambda: rig.service.counters.inactivity_closes == 1)
    await asyncio.to_thread(client.disconnect)
    await rig.service.wait_idle()
    with socket.create_connection(("127.0.0.1", rig.port)) as sock:  # GPRS context gone
        await _eventually(lambda: rig.service.active is not None)
        await rig.service.stop_listening()
        assert await asyncio.to_thread(tcp_peers.closed_by_peer, sock)
    assert rig.service.status()["closes"] == {
        "peer-closed": 1,
        "peer-lost": 1,
        "protocol": 1,
        "association-timeout": 1,
        "inactivity": 1,
        "stopped": 1,
    }


async def test_wrong_key_is_a_failed_login_and_the_next_session_works(rig: Rig) -> None:
    def bad() -> None:
        client = tcp_peers.management_client(rig.port, GUEK, bytes(16))
        client.connect()
        with pytest.raises(Exception):  # noqa: B017, PT011 - rejected AARE or failed HLS
            client.associate()
        client.disconnect()

    await asyncio.to_thread(bad)
    await rig.service.wait_idle()
    assert EventCode.FAILED_LOGIN in rig.events(EventLog.FRAUD)  # P3 §4.2.1 event 46
    clock, _energy = await asyncio.to_thread(management_session, rig.port, 500)
    assert clock == CLOCK_VALUE


async def test_garbage_never_stops_the_service(rig: Rig) -> None:
    def garbage(data: bytes) -> None:
        with socket.create_connection(("127.0.0.1", rig.port), timeout=5) as sock:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            sock.settimeout(5)
            while sock.recv(4096):
                pass

    for data in (b"\xff" * 40, tcp_peers.wrap(b"\x60\x05\x01"), tcp_peers.wrap(b"", 16)):
        await asyncio.to_thread(garbage, data)
        await rig.service.wait_idle()
    clock, _ = await asyncio.to_thread(management_session, rig.port)
    assert clock == CLOCK_VALUE
    assert rig.service.counters.errors == 0


async def test_inactivity_time_out_closes_the_connection(rig: Rig) -> None:
    rig.objects.extra[INACTIVITY] = b"\x12\x00\x3c"  # 60 s, written by the CS
    rig.service.association_timeout_s = 600  # only inactivity here (see test_p3_hardening)
    sock = await asyncio.to_thread(socket.create_connection, ("127.0.0.1", rig.port))
    with sock:
        while rig.service.active is None:
            await asyncio.sleep(0.01)
        await rig.net.advance(59)
        assert rig.service.active is not None
        await rig.net.advance(2)
        assert await asyncio.to_thread(tcp_peers.closed_by_peer, sock)
    await rig.service.wait_idle()
    assert rig.service.counters.inactivity_closes == 1


async def test_a_new_connection_readies_its_session_before_the_first_request(rig: Rig) -> None:
    """The next block of invocation counters and the registers are made durable when the
    connection opens, in the background, so no request waits for an fsync on the loop."""
    assert rig.service.keys.reserved_limit() == 0  # a new meter: nothing reserved yet
    rig.meter.act(lambda m, now: m.set_load_override(now, 3600))  # 1 Wh a second
    await rig.meter_clock.advance(10)

    def on_disk() -> dict[str, int]:
        checkpoint = rig.store.load()
        assert checkpoint is not None
        return checkpoint.state.registers_wh()

    before = on_disk()
    sock = await asyncio.to_thread(socket.create_connection, ("127.0.0.1", rig.port))
    with sock:  # nothing is sent
        await _eventually(lambda: rig.service.keys.reserved_limit() > 0)
        await _eventually(lambda: on_disk() != before)
        assert on_disk() == rig.meter.published_energy()
    await rig.service.wait_idle()
    clock, _energy = await asyncio.to_thread(management_session, rig.port)
    assert clock == CLOCK_VALUE


async def test_the_connection_watchdog_sleeps_until_its_deadline(rig: Rig) -> None:
    """No wake-up every few seconds: it sleeps until the first deadline, plans again at the
    end of an association (the association time-out applies again) and after a SET."""
    rig.objects.extra[INACTIVITY] = b"\x12\x00\x3c"  # 60 s, written by the CS
    client = tcp_peers.management_client(rig.port, GUEK, GAK)
    await asyncio.to_thread(client.connect)
    await asyncio.to_thread(client.associate)
    rig.objects.reads.clear()
    for _ in range(50):  # 50 s of network time, in steps
        await rig.net.advance(1)
    # It looked once, at the association deadline planned before the AA: then asleep until
    # t = 60 s (every 5 s before).
    assert rig.objects.reads == [INACTIVITY]
    assert utils.parse_as_dlms_data(await asyncio.to_thread(client.get, ENERGY)) == 123456
    await rig.net.advance(11)  # the planned deadline: it looks, and sleeps on (activity at 50)
    await _eventually(lambda: len(rig.objects.reads) == 2)
    assert rig.service.active is not None
    await asyncio.to_thread(client.release_association)
    await _eventually(lambda: rig.objects.releases == 1)
    await rig.net.advance(rig.service.association_timeout_s + 1)
    await _eventually(lambda: rig.service.counters.association_timeouts == 1)
    await asyncio.to_thread(client.disconnect)
    await rig.service.wait_idle()
    assert rig.service.counters.inactivity_closes == 0


async def test_a_shorter_inactivity_time_out_set_meanwhile_applies_at_once(rig: Rig) -> None:
    rig.objects.extra[INACTIVITY] = b"\x12\x01\x2c"  # 300 s
    client = tcp_peers.management_client(rig.port, GUEK, GAK)
    await asyncio.to_thread(client.connect)
    await asyncio.to_thread(client.associate)
    await rig.net.advance(11)  # past the association deadline planned before the AA
    rig.objects.extra[INACTIVITY] = b"\x12\x00\x1e"  # the CS SETs 30 s
    for changed in rig.objects.listeners:  # as the object model reports a SET
        changed()
    await rig.net.advance(20)
    await _eventually(lambda: rig.service.counters.inactivity_closes == 1)  # 31 s idle
    await asyncio.to_thread(client.disconnect)
    await rig.service.wait_idle()


# ---- GPRS ---------------------------------------------------------------------------------


async def _eventually(check: object, attempts: int = 500) -> None:
    for _ in range(attempts):
        if callable(check) and check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


async def test_triggered_mode_wakeup_push_and_session(rig: Rig) -> None:
    pushes: list[bytes] = []

    async def cs(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        pushes.append(await reader.read())
        writer.close()

    head_end = await asyncio.start_server(cs, "127.0.0.1", 0)
    port = head_end.sockets[0].getsockname()[1]
    await rig.service.stop_listening()
    config = P3Config(gprs_mode="triggered", push_destination=f"127.0.0.1:{port}")
    gprs = GprsController(
        rig.service, config, meter_clock=rig.meter_clock, net_clock=rig.net, equipment_id="E0099"
    )
    runner = asyncio.create_task(gprs.run())
    try:
        await asyncio.sleep(0.05)
        assert gprs.mode() is Mode.TRIGGERED
        assert not rig.service.listening  # GPRS CS §3.1: offline until woken
        assert gprs.wakeup("sms", "+31600000000")["accepted"]
        await _eventually(lambda: rig.service.listening and pushes)
        # P3 §9.3: equipment id ',' logical name of the trigger (message handler 0-0:2.3.0)
        assert pushes == [b"E0099," + obis_bytes("0-0:2.3.0")]
        clock, _ = await asyncio.to_thread(management_session, rig.service.bound_port)
        assert clock == CLOCK_VALUE
        await _eventually(lambda: not rig.service.listening)  # session over: offline again
        assert gprs.status()["wakeup_sessions"] == 1
        # a wake-up with no CS connection ends after inactivity_time_out
        assert gprs.wakeup("csd", "+31600000001")["accepted"]
        await _eventually(lambda: rig.service.listening)
        await rig.net.advance(301)
        await _eventually(lambda: not rig.service.listening)
        assert pushes[-1] == b"E0099," + obis_bytes("0-0:2.2.0")
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        head_end.close()


@pytest.fixture
async def modem(tmp_path: Path, rig: Rig) -> AsyncIterator[tuple[ModemService, ModemSim]]:
    """The modem service as the twin runs it: AtModem on the simulator's pty (net clock)."""
    sim = ModemSim(tmp_path / "modem")
    driver = AtModem(sim.device, timeout_s=0.25, slow_timeout_s=0.25)
    service = ModemService(driver, rig.net, sim=sim, apn=SIM_APN)
    runner = asyncio.create_task(service.run())
    await _eventually(lambda: service.polls >= 1)
    yield service, sim
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)


async def test_always_on_listens_and_the_watchdog_resets_the_modem(
    rig: Rig, modem: tuple[ModemService, ModemSim]
) -> None:
    service, sim = modem
    rig.objects.extra[WATCHDOG] = b"\x12\x00\x01"  # 1 hour (P3 §8.2)
    gprs = GprsController(
        rig.service,
        P3Config(),
        meter_clock=rig.meter_clock,
        net_clock=rig.net,
        equipment_id="E",
        modem=service,
    )
    runner = asyncio.create_task(gprs.run())
    try:
        await _eventually(lambda: rig.service.listening and sim.state.active == {1})
        assert gprs.mode() is Mode.ALWAYS_ON
        assert gprs.wakeup("sms", "+31")["accepted"] is False
        assert gprs.status()["signal_dbm"] == -73  # the simulator's +CSQ: 20
        await asyncio.sleep(0.05)  # the controller is waiting for its next round
        await rig.meter_clock.advance(timedelta(hours=1, seconds=1).total_seconds())
        await rig.net.advance(5)
        await _eventually(lambda: gprs.modem.resets == 1)
        # the PDP context is closed (GPRS CS §3 step 7) ...
        await _eventually(lambda: sim.commands.count("AT+CGACT=0,1") == 1)
        await asyncio.sleep(0.05)
        await rig.net.advance(5)
        await _eventually(lambda: rig.service.listening and sim.state.active == {1})
        assert sim.commands.count("AT+CGACT=1,1") == 2  # ... and activated again
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    assert sim.state.active == set()  # stopping the controller closes the PDP context


async def test_triggered_wakeup_by_sms_through_the_modem(
    rig: Rig, modem: tuple[ModemService, ModemSim]
) -> None:
    service, sim = modem
    await rig.service.stop_listening()
    gprs = GprsController(
        rig.service,
        P3Config(gprs_mode="triggered"),
        meter_clock=rig.meter_clock,
        net_clock=rig.net,
        equipment_id="E",
        modem=service,
    )
    service.on_wakeup = gprs.wakeup
    runner = asyncio.create_task(gprs.run())
    try:
        await asyncio.sleep(0.05)
        assert not rig.service.listening
        assert sim.state.active == set()  # GPRS CS §3.1: no PDP context until woken
        answer = await service.inject_wakeup("sms", "+31600000000")  # +CMTI -> AT+CMGR
        assert answer == {"accepted": True, "kind": "sms", "sender": "+31600000000"}
        await _eventually(lambda: rig.service.listening and sim.state.active == {1})
        await rig.net.advance(301)  # no CS within inactivity_time_out
        await _eventually(lambda: not rig.service.listening and sim.state.active == set())
        assert gprs.status()["wakeup_sessions"] == 1
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        ("tcp://127.0.0.1:4059", ("127.0.0.1", 4059)),
        ("tcp://0.0.0.0", ("0.0.0.0", 4059)),  # P3 §3: the default port
        ("tcp://[::1]:14059", ("::1", 14059)),
    ],
)
def test_endpoints(endpoint: str, expected: tuple[str, int]) -> None:
    assert parse_endpoint(endpoint) == expected


@pytest.mark.parametrize("endpoint", ["udp://1.2.3.4:4059", "tcp://:4059", "tcp://h:99999"])
def test_bad_endpoints(endpoint: str) -> None:
    with pytest.raises(ConfigError, match=r"p3\.endpoint"):
        parse_endpoint(endpoint)
