"""Hardening of the P3 service over real TCP (loopback) with the independent peers:
nonce hygiene, release of a plain RLRQ, the pre-association time-out, failed-login bounds and
invocation counter exhaustion. Network timers run on the rig's ManualClock, never on sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import socket

import pytest
from cryptography.hazmat.primitives.keywrap import aes_key_wrap
from dlms_cosem import exceptions, utils
from gurux_dlms import GXDLMSException
from gurux_dlms.objects import GXDLMSClock

from tests.unit.p3 import tcp_peers
from tests.unit.p3.helpers import CLOCK_VALUE, GAK, GUEK, SERVER_TITLE
from tests.unit.p3.test_p3_establish import GOOD_REQUEST, ciphered_initiate, hls_aarq
from tests.unit.p3.test_service import (  # noqa: F401
    ENERGY,
    KEYS,
    Rig,
    management_session,
    rig,
)
from twin.meter.events import EventCode, EventLog
from twin.p3.dlms.acse import Aare, AssociationResult
from twin.p3.dlms.security import SecurityKeys
from twin.p3.keys import COUNTER_SETTING, KeyStore
from twin.p3.objects.ports import KeyId, WrappedKey
from twin.ports import PortResult


@pytest.mark.parametrize("title", [SERVER_TITLE, bytes(8)], ids=["meter's own", "zeros"])
async def test_client_system_title_of_the_meter_or_zeros_is_a_failed_login(
    rig: Rig,  # noqa: F811
    title: bytes,
) -> None:
    def attempt() -> None:
        client = tcp_peers.management_client(rig.port, GUEK, GAK, client_system_title=title)
        client.connect()
        try:
            with pytest.raises(exceptions.DlmsClientException, match="REJECTED_PERMANENT"):
                client.associate()
        finally:
            client.disconnect()

    await asyncio.to_thread(attempt)
    await rig.service.wait_idle()
    assert rig.service.status()["failed_logins"] == 1
    assert rig.events(EventLog.FRAUD) == [EventCode.FAILED_LOGIN]  # P3 §4.2.1 event 46
    clock, _ = await asyncio.to_thread(management_session, rig.port)
    assert clock == CLOCK_VALUE


async def test_gurux_plain_release_gets_an_rlre(rig: Rig) -> None:  # noqa: F811
    def session() -> bool:
        peer = tcp_peers.gurux_management(rig.port, GUEK, GAK)
        try:
            peer.associate()
            assert not peer.client.useProtectedRelease  # gurux's default: RLRQ 62 03 80 01 00
            return peer.release()
        finally:
            peer.close()

    assert await asyncio.to_thread(session) is True
    await rig.service.wait_idle()
    assert rig.service.status()["aborted"] == 0
    assert rig.objects.releases == 1


async def test_exhausted_invocation_counter_refuses_ciphered_service_until_a_new_guek(
    rig: Rig,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    rig.store.put_setting(COUNTER_SETTING, 2**32 - 2)  # two counters left
    rig.service.keys = KeyStore(rig.store, KEYS)

    def gurux_session() -> None:
        peer = tcp_peers.gurux_management(rig.port, GUEK, GAK)
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # gurux prints on every decrypt
                peer.associate()  # AARE: 2^32 - 2, HLS pass 4: 2^32 - 1
                peer.read(GXDLMSClock("0.0.1.0.0.255"), 2)  # no counter left to answer
        finally:
            peer.close()

    with pytest.raises(ConnectionResetError):
        await asyncio.to_thread(gurux_session)
    await rig.service.wait_idle()
    with pytest.raises(GXDLMSException):  # the next AARQ is refused, never wraps to 0
        await asyncio.to_thread(gurux_session)
    await rig.service.wait_idle()

    def public_session() -> None:  # the public client needs no counter: it is served
        client = tcp_peers.public_client(rig.port)
        client.connect()
        client.associate()
        client.release_association()
        client.disconnect()

    await asyncio.to_thread(public_session)
    await rig.service.wait_idle()
    with pytest.raises(GXDLMSException):  # still exhausted: refused, and not logged again
        await asyncio.to_thread(gurux_session)
    await rig.service.wait_idle()
    status = rig.service.status()
    assert status["invocation_counter_exhausted"] is True
    assert status["failed_logins"] == 0  # the head-end did nothing wrong
    assert [r.levelname for r in caplog.records if "exhausted" in r.getMessage()] == ["ERROR"]
    # A new GUEK (here from the configuration's master key) lets the counter restart at 1.
    new_guek = bytes(range(16, 32))
    wrapped = WrappedKey(KeyId.GLOBAL_UNICAST_ENCRYPTION, aes_key_wrap(bytes(16), new_guek))
    assert rig.service.keys.global_key_transfer([wrapped]) is PortResult.SUCCESS

    def good_session() -> int:
        client = tcp_peers.management_client(rig.port, new_guek, GAK)
        client.connect()
        client.associate()
        server_ic = int(client.dlms_connection.meter_invocation_counter)
        client.release_association()
        client.disconnect()
        return server_ic

    assert await asyncio.to_thread(good_session) <= 3
    assert rig.service.status()["invocation_counter_exhausted"] is False


async def _connected(rig: Rig, first_bytes: bytes) -> socket.socket:  # noqa: F811
    sock = await asyncio.to_thread(socket.create_connection, ("127.0.0.1", rig.port))
    if first_bytes:
        sock.sendall(first_bytes)
    while rig.service.active is None:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)  # the connection's timers are armed
    return sock


@pytest.mark.parametrize(
    "first_bytes",
    [b"", b"\x00\x01\x00\x10", tcp_peers.wrap(b"\x60\x00", source=77)],
    ids=["silent", "half a header", "unknown client SAP"],
)
async def test_no_association_within_the_association_timeout_frees_the_slot(
    rig: Rig,  # noqa: F811
    first_bytes: bytes,
) -> None:
    rig.service.association_timeout_s = 5.0
    with await _connected(rig, first_bytes) as sock:
        await rig.net.advance(4)
        assert rig.service.active is not None
        await rig.net.advance(2)
        assert await asyncio.to_thread(tcp_peers.closed_by_peer, sock)
    await rig.service.wait_idle()
    assert rig.service.status()["association_timeouts"] == 1
    # The slot is free again well within the 300 s inactivity time-out.
    clock, _ = await asyncio.to_thread(management_session, rig.port)
    assert clock == CLOCK_VALUE


async def test_the_association_timeout_spares_an_association(rig: Rig) -> None:  # noqa: F811
    rig.service.association_timeout_s = 5.0
    client = tcp_peers.management_client(rig.port, GUEK, GAK)
    await asyncio.to_thread(client.connect)
    await asyncio.to_thread(client.associate)
    await rig.net.advance(60)
    assert utils.parse_as_dlms_data(await asyncio.to_thread(client.get, ENERGY)) == 123456
    await asyncio.to_thread(client.release_association)
    await asyncio.to_thread(client.disconnect)
    assert rig.service.status()["association_timeouts"] == 0


def wrong_key_aarq() -> bytes:
    initiate = ciphered_initiate(GOOD_REQUEST, keys=SecurityKeys(GUEK, bytes(range(16, 32))))
    return tcp_peers.wrap(hls_aarq(initiate).to_bytes())


def aarq_burst(port: int, count: int) -> list[Aare]:
    """`count` AARQs with a wrong GAK on one connection, as fast as the meter answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        answers = []
        for _ in range(count):
            sock.sendall(wrong_key_aarq())
            answers.append(Aare.from_bytes(tcp_peers.recv_pdu(sock)[8:]))
        return answers


async def test_failed_login_burst_logs_one_event_46_and_locks_out(
    rig: Rig,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    rig.meter.act(lambda m, now: m.log_event(now, EventCode.METER_COVER_REMOVED))
    answers = await asyncio.to_thread(aarq_burst, rig.port, 30)
    # Five wrong logins are evaluated; then the management client is locked out and
    # refused without deciphering (rejected-transient: try later).
    assert [a.result for a in answers[:5]] == [AssociationResult.REJECTED_PERMANENT] * 5
    assert {a.result for a in answers[5:]} == {AssociationResult.REJECTED_TRANSIENT}
    await rig.service.wait_idle()
    # The real tamper event stays; the burst is one event 46 (one fsync), not thirty.
    assert rig.events(EventLog.FRAUD) == [EventCode.METER_COVER_REMOVED, EventCode.FAILED_LOGIN]
    status = rig.service.status()
    assert (status["failed_logins"], status["logins_refused_locked"]) == (5, 25)
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 2, warnings  # the first failure and the lock-out
    assert not [r for r in caplog.records if r.levelname == "INFO" and "P3" in r.getMessage()]
    # After the lock-out (60 s, network clock) the head-end gets in; that ends the burst.
    await rig.net.advance(61)
    clock, _ = await asyncio.to_thread(management_session, rig.port)
    assert clock == CLOCK_VALUE
    await rig.service.wait_idle()
    await asyncio.to_thread(aarq_burst, rig.port, 1)
    await rig.service.wait_idle()
    assert rig.events(EventLog.FRAUD)[-2:] == [EventCode.FAILED_LOGIN] * 2


async def test_lock_out_grows_after_each_further_burst(rig: Rig) -> None:  # noqa: F811
    await asyncio.to_thread(aarq_burst, rig.port, 5)
    await rig.service.wait_idle()
    await rig.net.advance(61)
    answers = await asyncio.to_thread(aarq_burst, rig.port, 2)
    # One more failure after a lock-out locks again, for twice as long (120 s).
    assert [a.result for a in answers] == [
        AssociationResult.REJECTED_PERMANENT,
        AssociationResult.REJECTED_TRANSIENT,
    ]
    await rig.service.wait_idle()
    await rig.net.advance(100)
    assert (await asyncio.to_thread(aarq_burst, rig.port, 1))[0].result is (
        AssociationResult.REJECTED_TRANSIENT
    )
    await rig.service.wait_idle()
    assert rig.events(EventLog.FRAUD) == [EventCode.FAILED_LOGIN]
