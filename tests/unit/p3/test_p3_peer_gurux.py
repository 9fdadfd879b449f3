"""A second independent peer: the gurux-dlms 1.0.203 client (GXDLMSSecureClient, WRAPPER).

Gurux and dlms-cosem differ where the Green Book leaves room (service-specific glo APDUs,
an own invocation counter for f(StoC)), which is exactly what the core must tolerate.
"""

from __future__ import annotations

from typing import Any

import pytest
from gurux_dlms.enums import Authentication, InterfaceType
from gurux_dlms.objects import GXDLMSClock, GXDLMSData, GXDLMSRegister
from gurux_dlms.secure import GXDLMSSecureClient

from tests.unit.p3.gurux_session import GuruxSession, management_client
from tests.unit.p3.helpers import GAK, GUEK, Meter, make_meter
from twin.p3.server.association import State
from twin.p3.server.events import Associated, CloseConnection, Released, ServerEvent, Transmit


class GuruxPeer(GuruxSession):
    """The gurux client wired straight to the server core, keeping the core's events."""

    def __init__(self, meter: Meter, client: Any) -> None:
        super().__init__(client)
        self.meter = meter
        self.events: list[ServerEvent] = []

    def _transfer(self, request: bytes) -> bytes:
        events = self.meter.server.receive_data(request)
        self.events += events
        answer = b"".join(e.data for e in events if isinstance(e, Transmit))
        if not answer:
            raise ConnectionResetError(events)
        return answer


def public(meter: Meter) -> GuruxPeer:
    client = GXDLMSSecureClient(True, 16, 1, Authentication.NONE, None, InterfaceType.WRAPPER)
    client.maxReceivePDUSize = 256
    return GuruxPeer(meter, client)


def management(meter: Meter, *, protected_release: bool = True) -> GuruxPeer:
    client = management_client(GUEK, GAK, max_pdu=256)
    client.useProtectedRelease = protected_release
    return GuruxPeer(meter, client)


def test_gurux_public_client() -> None:
    meter = make_meter()
    peer = public(meter)
    peer.associate()
    clock = GXDLMSClock("0.0.1.0.0.255")
    peer.read(clock, 2)
    assert clock.time.value.year == 2026
    register = GXDLMSRegister("1.0.1.8.1.255")
    peer.read(register, 3)
    assert int(register.unit) == 30  # Wh
    assert bytes(peer.read(GXDLMSData("0.0.96.13.0.255"), 2)) == meter.objects.message  # blocks
    peer.run(peer.client.releaseRequest())
    assert peer.events[-1] == Released(16, graceful=True)


@pytest.mark.parametrize("protected_release", [True, False])
def test_gurux_management_client_hls_gmac(protected_release: bool) -> None:
    meter = make_meter()
    peer = management(meter, protected_release=protected_release)
    peer.associate()
    assert Associated(1) in peer.events
    register = GXDLMSRegister("1.0.1.8.1.255")
    assert peer.read(register, 2) == 123456
    assert bytes(peer.read(GXDLMSData("0.0.96.13.0.255"), 2)) == meter.objects.message
    if protected_release:
        # Gurux skips an invocation counter before a protected RLRQ: P3 §3.2.3 makes that
        # a silent release instead of an RLRE.
        with pytest.raises(ConnectionResetError):
            peer.run(peer.client.releaseRequest())
        assert peer.events[-2] == Released(1, graceful=False)
        assert isinstance(peer.events[-1], CloseConnection)
    else:
        # Its plain RLRQ (no user-information) gets a plain RLRE (Green Book §9.3.3).
        peer.run(peer.client.releaseRequest())
        assert peer.events[-1] == Released(1, graceful=True)
    assert meter.server.state is State.IDLE
    assert meter.counters.issued == sorted(set(meter.counters.issued))
