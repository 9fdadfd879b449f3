"""Hardening of the P3 service over real TCP (loopback) with the independent peers:
nonce hygiene, release of a plain RLRQ, the pre-association time-out, failed-login bounds and
invocation counter exhaustion. Network timers run on the rig's ManualClock, never on sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import io

import pytest
from cryptography.hazmat.primitives.keywrap import aes_key_wrap
from dlms_cosem import exceptions
from gurux_dlms import GXDLMSException
from gurux_dlms.objects import GXDLMSClock

from tests.unit.p3 import tcp_peers
from tests.unit.p3.helpers import CLOCK_VALUE, GAK, GUEK, SERVER_TITLE
from tests.unit.p3.test_service import KEYS, Rig, management_session, rig  # noqa: F401
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
