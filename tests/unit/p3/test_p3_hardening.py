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
from tests.unit.p3.test_service import (  # noqa: F401
    ENERGY,
    KEYS,
    Rig,
    management_session,
    rig,
)
from twin.meter.events import EventCode, EventLog
from twin.p3.keys import COUNTER_SETTING, KeyStore
from twin.p3.objects.ports import KeyId, PortResult, WrappedKey


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
