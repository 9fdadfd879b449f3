"""The P3 service over TCP with the real object model (build_objects): what depends on the
service and the object model together — the session of each connection (comlog counters and
the communication session log, P3 §5.10/§8.7) and the HLS mechanisms the configuration object
0-1:94.31.3 enables (P3 §8.3)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from dlms_cosem import utils
from gurux_dlms.enums import Authentication
from gurux_dlms.objects import GXDLMSRegister

from tests.support import amsterdam, steady_config
from tests.unit.p3 import tcp_peers
from tests.unit.p3.helpers import GAK, GUEK, SERVER_TITLE
from twin.clock import ManualClock
from twin.config import P3Config
from twin.meter.events import EventLog
from twin.metering import Meter
from twin.p3.dlms.cosem import AttributeRef, DataAccessResult
from twin.p3.keys import KeyStore
from twin.p3.objects import build_objects
from twin.p3.objects import values as v
from twin.p3.objects.base import MANAGEMENT_SAP, obis_bytes
from twin.p3.service import P3Service
from twin.store import Store

START = amsterdam(2026, 11, 23, 12, 0)
KEYS = P3Config(
    system_title=SERVER_TITLE.hex(), guek=GUEK.hex(), gak=GAK.hex(), master_key="00" * 16
)
ENERGY = tcp_peers.attribute(3, "1-0:1.8.1", 2)
READINGS_E_COUNTER = tcp_peers.attribute(1, "0-1:94.31.7", 2)
SESSION_LOG = tcp_peers.attribute(7, "0-0:99.98.4", 2)
CONFIGURATION = tcp_peers.attribute(1, "0-1:94.31.3", 2)


@dataclass
class Rig:
    service: P3Service
    meter: Meter
    keys: KeyStore

    @property
    def port(self) -> int:
        return self.service.bound_port

    def management(self, ic: int) -> object:
        client = tcp_peers.management_client(self.port, GUEK, GAK, invocation_counter=ic)
        client.connect()
        client.associate()
        return client


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    store = Store.open(tmp_path)
    meter = Meter(steady_config(), ManualClock(START), store, random.Random(1))
    keys = KeyStore(store, KEYS)
    objects = build_objects(meter, keys=keys, mbus=None, modem=None, state_dir=tmp_path)
    service = P3Service(meter, keys, objects, "127.0.0.1", 0, net_clock=ManualClock(START))
    await service.start_listening()
    yield Rig(service, meter, keys)
    await service.stop_listening()
    store.close()


async def test_comlog_counters_run_in_the_session_and_are_logged_at_release(rig: Rig) -> None:
    def session() -> int:
        client: object = rig.management(ic=1)
        client.get(ENERGY)  # type: ignore[attr-defined]
        client.get(ENERGY)  # type: ignore[attr-defined]
        counted = utils.parse_as_dlms_data(client.get(READINGS_E_COUNTER))  # type: ignore[attr-defined]
        client.release_association()  # type: ignore[attr-defined]
        client.disconnect()  # type: ignore[attr-defined]
        return int(counted)

    assert await asyncio.to_thread(session) == 2  # P3 §8.7: live during the association
    await rig.service.wait_idle()
    logged = [(e.code) for e in rig.meter.store.events(EventLog.COMMUNICATION)]
    assert logged == [71, 73]  # the counter read itself is maintenance (71)

    def next_session() -> tuple[int, list[object]]:
        client: object = rig.management(ic=100)
        counted = utils.parse_as_dlms_data(client.get(READINGS_E_COUNTER))  # type: ignore[attr-defined]
        rows = utils.parse_as_dlms_data(client.get(SESSION_LOG))  # type: ignore[attr-defined]
        client.release_association()  # type: ignore[attr-defined]
        client.disconnect()  # type: ignore[attr-defined]
        return int(counted), rows

    counted, rows = await asyncio.to_thread(next_session)
    assert counted == 0  # reset at the release (P3 §8.7)
    assert [(row[1], row[2]) for row in rows] == [(71, 0), (73, 2)]  # code, counter (§5.10)


async def test_an_aborted_session_is_logged_too(rig: Rig) -> None:
    def aborted() -> None:
        client: object = rig.management(ic=1)
        client.get(ENERGY)  # type: ignore[attr-defined]
        client.disconnect()  # type: ignore[attr-defined]  # no RLRQ: the connection just ends

    await asyncio.to_thread(aborted)
    await rig.service.wait_idle()
    assert [e.code for e in rig.meter.store.events(EventLog.COMMUNICATION)] == [73]


async def test_hls_md5_only_once_the_configuration_object_enables_it(rig: Rig) -> None:
    secret = rig.keys.material.hls_secret

    def md5_login() -> int:
        peer = tcp_peers.gurux_management(
            rig.port, GUEK, GAK, 200, authentication=Authentication.HIGH_MD5, secret=secret
        )
        try:
            peer.associate()
            return int(peer.read(GXDLMSRegister("1.0.1.8.1.255"), 2))
        finally:
            peer.close()

    with pytest.raises(Exception):  # noqa: B017, PT011 - gurux raises on the refusing AARE
        await asyncio.to_thread(md5_login)
    await rig.service.wait_idle()
    assert rig.service.counters.auth_failures == 1

    def enable_md5() -> None:
        client: object = rig.management(ic=300)
        # GPRS mode 1; flags: bit 1 (factory default) and bits 4 (HLS 3) and 6 (HLS 5).
        flags = v.struct(v.enum_(1), v.bits("0100101000000000"))
        client.set(CONFIGURATION, v.encode(flags))  # type: ignore[attr-defined]
        client.release_association()  # type: ignore[attr-defined]
        client.disconnect()  # type: ignore[attr-defined]

    await asyncio.to_thread(enable_md5)
    await rig.service.wait_idle()
    assert await asyncio.to_thread(md5_login) == rig.meter.publish().energy_wh["1-0:1.8.1"]


async def test_the_object_model_ticker_sleeps_until_a_capture_and_replans_after_a_set(
    tmp_path: Path,
) -> None:
    """The "p3-objects" service wakes when a definable profile capture is due (P3 §8.6), not
    on a timer: a SET of capture_period moves that time, and the ticker follows it."""
    store = Store.open(tmp_path)
    clock = ManualClock(START)
    meter = Meter(steady_config(), clock, store, random.Random(1))
    keys = KeyStore(store, KEYS)
    objects = build_objects(meter, keys=keys, mbus=None, modem=None, state_dir=tmp_path)
    service = P3Service(meter, keys, objects, "127.0.0.1", 0, net_clock=ManualClock(START))
    ticker = asyncio.create_task(service.run_ticks())
    try:
        await clock.advance(0)  # the ticker plans: the daily capture at local midnight
        assert objects.next_due() == amsterdam(2026, 11, 24, 0, 0)
        period = AttributeRef(7, obis_bytes("0-1:94.31.6"), 4)
        assert objects.set(MANAGEMENT_SAP, period, None, v.encode(v.u32(900))) is (
            DataAccessResult.SUCCESS
        )
        await clock.advance(15 * 60)  # to 12:15, long before midnight
        async with asyncio.timeout(5):
            while not store.definable_entries():
                await asyncio.sleep(0.01)
        assert [e.time for e in store.definable_entries()] == [amsterdam(2026, 11, 23, 12, 15)]
    finally:
        ticker.cancel()
        await asyncio.gather(ticker, return_exceptions=True)
        store.close()
