"""Hardening of the P3 service over real TCP (loopback) with the independent peers:
nonce hygiene, release of a plain RLRQ, the pre-association time-out, failed-login bounds and
invocation counter exhaustion. Network timers run on the rig's ManualClock, never on sleeps.
"""

from __future__ import annotations

import asyncio

import pytest
from dlms_cosem import exceptions

from tests.unit.p3 import tcp_peers
from tests.unit.p3.helpers import CLOCK_VALUE, GAK, GUEK, SERVER_TITLE
from tests.unit.p3.test_service import Rig, management_session, rig  # noqa: F401
from twin.meter.events import EventCode, EventLog


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
