"""HLS mechanisms 3 (MD5) and 4 (SHA-1) for the management client (Green Book §9.2.7.4;
P3 §3.2.2: they use the HLS secret; P3 §8.3: only while HLS_3/4_on_P3_enable is set), with
the independent gurux-dlms client and with hand-built APDUs."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.keywrap import aes_key_wrap
from gurux_dlms.enums import Authentication
from gurux_dlms.GXDLMSException import GXDLMSException
from gurux_dlms.objects import GXDLMSRegister

from tests.unit.p3.gurux_session import management_client as gurux_client
from tests.unit.p3.helpers import (
    CLIENT_TITLE,
    GAK,
    GUEK,
    SERVER_TITLE,
    LinkClosedError,
    MemoryLink,
    Meter,
    make_meter,
    management_client,
    wrap,
)
from tests.unit.p3.test_p3_peer_gurux import GuruxPeer
from twin.config import P3Config
from twin.p3.dlms.acse import (
    HLS_MECHANISMS,
    Aare,
    Aarq,
    ApplicationContext,
    AssociationResult,
    Mechanism,
)
from twin.p3.dlms.acse import UserDiagnostic as Diag
from twin.p3.dlms.action import ActionRequestNormal, ActionResponseNormal, parse_action_response
from twin.p3.dlms.axdr import octet_string
from twin.p3.dlms.cosem import ActionResult, AttributeRef
from twin.p3.dlms.get import GetRequestNormal, GetResponseNormal, parse_get_response
from twin.p3.dlms.initiate import Conformance, InitiateRequest
from twin.p3.dlms.security import SC_AUTH_ENC, CipheredApdu, SecurityKeys, protect, unprotect
from twin.p3.keys import KeyStore
from twin.p3.server.association import State
from twin.p3.server.events import Associated, AuthenticationFailed, Released
from twin.p3.server.hls import REPLY_TO_HLS, secret_digest
from twin.p3.server.interfaces import FixedMechanisms
from twin.ports import PortResult
from twin.store import Store

SECRET = b"HLS secret 0-0:40.0.0"
KEYS = SecurityKeys(GUEK, GAK, SECRET)
ALL_HLS = FixedMechanisms(HLS_MECHANISMS)  # flags HLS_3/4/5_on_P3_enable all set
CTOS = bytes(range(0x40, 0x50))
ENERGY = AttributeRef(3, bytes([1, 0, 1, 8, 1, 255]), 2)
HASHES = {Mechanism.HLS_MD5: hashlib.md5, Mechanism.HLS_SHA1: hashlib.sha1}
GURUX = {Mechanism.HLS_MD5: Authentication.HIGH_MD5, Mechanism.HLS_SHA1: Authentication.HIGH_SHA1}
SECRET_MECHANISMS = [Mechanism.HLS_MD5, Mechanism.HLS_SHA1]
MASTER = bytes(range(16))


def hls_meter(mechanisms: Any = ALL_HLS, keys: SecurityKeys = KEYS) -> Meter:
    meter = make_meter(mechanisms=mechanisms)
    meter.keys.current = keys
    return meter


def f(mechanism: Mechanism, challenge: bytes, secret: bytes = SECRET) -> bytes:
    """The Green Book's f() of HLS 3 / 4, computed with hashlib (not our code)."""
    return HASHES[mechanism](challenge + secret).digest()


@dataclass
class HandClient:
    """Management client 1 from hand-built APDUs, ciphered with general-glo-ciphering."""

    meter: Meter
    ic: int = 100
    link: MemoryLink = field(init=False)

    def __post_init__(self) -> None:
        self.link = MemoryLink(self.meter.server, 1)

    def aarq(self, mechanism: int, ctos: bytes = CTOS) -> Aare:
        initiate = InitiateRequest(Conformance.GET | Conformance.ACTION, 1024).to_bytes()
        text = protect(KEYS, CLIENT_TITLE, self.ic, SC_AUTH_ENC, initiate)
        info = CipheredApdu(0x21, SC_AUTH_ENC, self.ic, text).to_bytes()
        self.ic += 1
        aarq = Aarq(ApplicationContext.LN_CIPHERED, CLIENT_TITLE, mechanism, ctos, info)
        return Aare.from_bytes(self.link.exchange(wrap(aarq.to_bytes(), source=1)))

    def request(self, plain: bytes, *, skip: int = 0) -> bytes:
        self.ic += skip
        text = protect(KEYS, CLIENT_TITLE, self.ic, SC_AUTH_ENC, plain)
        apdu = CipheredApdu(0xDB, SC_AUTH_ENC, self.ic, text, CLIENT_TITLE).to_bytes()
        self.ic += 1
        reply = CipheredApdu.from_bytes(self.link.send(apdu))
        ic = reply.invocation_counter
        return unprotect(KEYS, SERVER_TITLE, ic, SC_AUTH_ENC, reply.text)

    def reply_to_hls(self, f_stoc: bytes, *, skip: int = 0) -> ActionResponseNormal:
        request = ActionRequestNormal(0xC1, REPLY_TO_HLS, octet_string(f_stoc))
        answer = parse_action_response(self.request(request.to_bytes(), skip=skip))
        assert isinstance(answer, ActionResponseNormal)
        return answer


def gurux_peer(meter: Meter, mechanism: Mechanism, secret: bytes = SECRET) -> GuruxPeer:
    client = gurux_client(GUEK, GAK, authentication=GURUX[mechanism], secret=secret, max_pdu=256)
    return GuruxPeer(meter, client)


def assert_gmac_still_works(meter: Meter) -> None:
    meter.server.connection_lost()
    client = management_client(MemoryLink(meter.server, 1), invocation_counter=50_000)
    client.associate()
    assert meter.server.mechanism is Mechanism.HLS_GMAC
    client.release_association()


# ---- the independent peer ----------------------------------------------------------------
@pytest.mark.parametrize("mechanism", SECRET_MECHANISMS, ids=["md5", "sha1"])
def test_gurux_associates_with_the_hls_secret(mechanism: Mechanism) -> None:
    meter = hls_meter()
    peer = gurux_peer(meter, mechanism)
    peer.associate()  # gurux checks our f(CtoS) = H(CtoS || secret) itself
    assert Associated(1) in peer.events
    assert meter.server.state is State.ASSOCIATED
    assert meter.server.mechanism is mechanism
    assert meter.server.client_system_title == CLIENT_TITLE
    assert peer.read(GXDLMSRegister("1.0.1.8.1.255"), 2) == 123456


@pytest.mark.parametrize("mechanism", SECRET_MECHANISMS, ids=["md5", "sha1"])
def test_gurux_with_the_wrong_secret_fails_login(mechanism: Mechanism) -> None:
    meter = hls_meter()
    peer = gurux_peer(meter, mechanism, secret=b"not the HLS secret")
    with pytest.raises(Exception, match="Server to Client do not match"):
        peer.associate()  # our answer: read-write-denied, no f(CtoS)
    assert peer.events[-1] == AuthenticationFailed(1)
    assert meter.server.state is State.IDLE
    assert_gmac_still_works(meter)


def test_gurux_hls3_while_disabled_is_refused() -> None:
    meter = hls_meter(FixedMechanisms())  # the default: HLS 5 only
    peer = gurux_peer(meter, Mechanism.HLS_MD5)
    with pytest.raises(GXDLMSException, match="permanently rejected"):
        peer.associate()
    assert peer.events[-1] == AuthenticationFailed(1)
    assert meter.server.state is State.IDLE


# ---- hand-built APDUs --------------------------------------------------------------------
@pytest.mark.parametrize("mechanism", SECRET_MECHANISMS, ids=["md5", "sha1"])
def test_pass_3_and_4_by_hand(mechanism: Mechanism) -> None:
    meter = hls_meter()
    client = HandClient(meter)
    aare = client.aarq(mechanism)
    assert (aare.result, aare.diagnostic) == (
        AssociationResult.ACCEPTED,
        Diag.AUTHENTICATION_REQUIRED,
    )
    assert aare.mechanism == mechanism
    assert aare.responding_ap_title == SERVER_TITLE
    stoc = aare.responding_authentication_value
    assert stoc is not None
    assert 8 <= len(stoc) <= 64
    assert meter.server.state is State.AWAITING_HLS
    answer = client.reply_to_hls(f(mechanism, stoc))
    assert answer == ActionResponseNormal(
        0xC1, ActionResult.SUCCESS, octet_string(f(mechanism, CTOS))
    )
    assert meter.server.state is State.ASSOCIATED
    assert client.link.events[-1] == Associated(1)
    energy = parse_get_response(client.request(GetRequestNormal(0xC1, ENERGY).to_bytes()))
    assert energy == GetResponseNormal(0xC1, b"\x06" + (123456).to_bytes(4, "big"))


@pytest.mark.parametrize("mechanism", SECRET_MECHANISMS, ids=["md5", "sha1"])
def test_hls_while_disabled_is_a_failed_login(mechanism: Mechanism) -> None:
    meter = hls_meter(FixedMechanisms())  # P3 §8.3 flags: HLS 5 only
    client = HandClient(meter)
    aare = client.aarq(mechanism)
    assert aare.result is AssociationResult.REJECTED_PERMANENT
    assert aare.diagnostic == Diag.AUTHENTICATION_MECHANISM_NAME_NOT_RECOGNISED
    assert aare.user_information is None
    assert client.link.events[-1] == AuthenticationFailed(1)
    assert meter.counters.issued == []  # a refusal is never ciphered
    assert_gmac_still_works(meter)


def test_each_mechanism_has_its_own_flag() -> None:
    meter = hls_meter(FixedMechanisms(frozenset({Mechanism.HLS_SHA1})))
    assert HandClient(meter).aarq(Mechanism.HLS_MD5).result is AssociationResult.REJECTED_PERMANENT
    meter.server.connection_lost()
    assert HandClient(meter).aarq(Mechanism.HLS_SHA1).result is AssociationResult.ACCEPTED
    meter.server.connection_lost()
    # HLS 5 follows its own flag as well (P3 §8.3 HLS_5_on_P3_enable).
    aare = HandClient(meter).aarq(Mechanism.HLS_GMAC)
    assert aare.diagnostic == Diag.AUTHENTICATION_MECHANISM_NAME_NOT_RECOGNISED


def test_the_policy_is_asked_at_every_aarq() -> None:
    @dataclass
    class Switch:
        enabled: frozenset[Mechanism] = frozenset()

        def enabled_mechanisms(self) -> frozenset[Mechanism]:
            return self.enabled

    switch = Switch()
    meter = hls_meter(switch)
    client = HandClient(meter)
    assert client.aarq(Mechanism.HLS_MD5).result is AssociationResult.REJECTED_PERMANENT
    switch.enabled = frozenset({Mechanism.HLS_MD5})  # the configuration object was written
    assert client.aarq(Mechanism.HLS_MD5).result is AssociationResult.ACCEPTED


@pytest.mark.parametrize("mechanism", SECRET_MECHANISMS, ids=["md5", "sha1"])
def test_wrong_response_fails_hls(mechanism: Mechanism) -> None:
    meter = hls_meter()
    client = HandClient(meter)
    stoc = client.aarq(mechanism).responding_authentication_value or b""
    other = Mechanism.HLS_SHA1 if mechanism is Mechanism.HLS_MD5 else Mechanism.HLS_MD5
    answer = client.reply_to_hls(f(other, stoc)[:16])  # the other hash: wrong
    assert answer == ActionResponseNormal(0xC1, ActionResult.READ_WRITE_DENIED)
    assert client.link.events[-1] == AuthenticationFailed(1)
    assert meter.server.state is State.IDLE
    assert_gmac_still_works(meter)


def test_response_over_the_wrong_challenge_fails() -> None:
    meter = hls_meter()
    client = HandClient(meter)
    client.aarq(Mechanism.HLS_MD5)
    answer = client.reply_to_hls(f(Mechanism.HLS_MD5, CTOS))  # CtoS instead of StoC
    assert answer.result is ActionResult.READ_WRITE_DENIED
    assert meter.server.state is State.IDLE


def test_without_an_hls_secret_the_mechanism_is_unavailable() -> None:
    meter = hls_meter(keys=SecurityKeys(GUEK, GAK))
    aare = HandClient(meter).aarq(Mechanism.HLS_MD5)
    assert aare.diagnostic == Diag.AUTHENTICATION_MECHANISM_NAME_NOT_RECOGNISED


def test_secret_change_applies_from_the_next_association() -> None:
    meter = hls_meter()
    client = HandClient(meter)
    stoc = client.aarq(Mechanism.HLS_MD5).responding_authentication_value or b""
    new = b"a brand new HLS secret"
    meter.keys.current = SecurityKeys(GUEK, GAK, new)  # change_HLS_secret, P3 §5.1
    answer = client.reply_to_hls(f(Mechanism.HLS_MD5, stoc, new))
    assert answer.return_value == octet_string(f(Mechanism.HLS_MD5, CTOS, new))


def test_pass_3_may_skip_one_frame_counter_not_two() -> None:
    """Gurux skips one counter before the frame with f(StoC) for every HLS mechanism."""
    meter = hls_meter()
    client = HandClient(meter)
    stoc = client.aarq(Mechanism.HLS_SHA1).responding_authentication_value or b""
    assert client.reply_to_hls(f(Mechanism.HLS_SHA1, stoc), skip=1).result is ActionResult.SUCCESS
    meter.server.connection_lost()
    client = HandClient(meter, ic=500)
    stoc = client.aarq(Mechanism.HLS_SHA1).responding_authentication_value or b""
    with pytest.raises(LinkClosedError):
        client.reply_to_hls(f(Mechanism.HLS_SHA1, stoc), skip=2)  # P3 §3.2.3: silent release


def test_short_ctos_is_refused() -> None:
    aare = HandClient(hls_meter()).aarq(Mechanism.HLS_MD5, ctos=b"1234567")
    assert aare.diagnostic == Diag.AUTHENTICATION_FAILURE


def test_public_client_cannot_pick_hls3() -> None:
    meter = hls_meter()
    link = MemoryLink(meter.server, 16)
    initiate = InitiateRequest(Conformance.GET, 1024).to_bytes()
    aarq = Aarq(ApplicationContext.LN, None, Mechanism.HLS_MD5, CTOS, initiate)
    aare = Aare.from_bytes(link.exchange(wrap(aarq.to_bytes())))
    assert aare.diagnostic == Diag.AUTHENTICATION_MECHANISM_NAME_NOT_RECOGNISED
    assert not any(isinstance(e, AuthenticationFailed) for e in link.events)  # no login


def test_client_system_title_follows_the_association() -> None:
    meter = hls_meter()
    assert meter.server.client_system_title == b""
    assert meter.server.mechanism is None
    client = HandClient(meter)
    stoc = client.aarq(Mechanism.HLS_MD5).responding_authentication_value or b""
    assert meter.server.client_system_title == CLIENT_TITLE  # pending HLS already
    client.reply_to_hls(f(Mechanism.HLS_MD5, stoc))
    assert meter.server.client_system_title == CLIENT_TITLE
    assert meter.server.connection_lost() == [Released(1, graceful=False)]
    assert meter.server.client_system_title == b""


def test_management_client_with_lls_is_a_failed_login() -> None:
    meter = hls_meter()
    client = HandClient(meter)
    aare = client.aarq(Mechanism.LLS, ctos=b"12345678")  # P3 §3.2.2: LLS never
    assert aare.diagnostic == Diag.AUTHENTICATION_MECHANISM_NAME_NOT_RECOGNISED
    assert client.link.events[-1] == AuthenticationFailed(1)


def test_key_store_hands_the_hls_secret_to_the_core(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    keys = KeyStore(store, P3Config(master_key=MASTER.hex()))
    assert keys.keys().hls_secret == keys.material.hls_secret
    assert len(keys.keys().hls_secret) >= 16  # generated on first start (P3 §5.1)
    new = bytes(range(32))
    assert keys.change_hls_secret(aes_key_wrap(MASTER, new)) is PortResult.SUCCESS
    assert keys.keys().hls_secret == new
    store.close()


def test_secret_digest_known_answers() -> None:
    # RFC 1321 / FIPS 180-1 test vectors for "abc", split as challenge || secret.
    assert secret_digest(Mechanism.HLS_MD5, b"ab", b"c").hex() == "900150983cd24fb0d6963f7d28e17f72"
    sha1 = "a9993e364706816aba3e25717850c26c9cd0d89d"
    assert secret_digest(Mechanism.HLS_SHA1, b"a", b"bc").hex() == sha1
