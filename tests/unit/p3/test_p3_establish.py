"""AARQ refusals (Green Book §9.4.2 diagnostics; P3 §2.1, §3.2.2-3.2.3) and robustness."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.p3.helpers import (
    CLIENT_TITLE,
    GAK,
    GUEK,
    MemoryLink,
    make_meter,
    management_client,
    public_client,
    wrap,
)
from twin.p3.dlms.acse import (
    Aare,
    Aarq,
    ApplicationContext,
    AssociationResult,
    Mechanism,
    UserDiagnostic,
)
from twin.p3.dlms.initiate import ConfirmedServiceError, Conformance, InitiateError, InitiateRequest
from twin.p3.dlms.security import SC_AUTH_ENC, CipheredApdu, SecurityKeys, protect
from twin.p3.server.association import State
from twin.p3.server.events import CloseConnection, Transmit

PLAIN_INITIATE = InitiateRequest(
    Conformance.GET | Conformance.BLOCK_TRANSFER_WITH_GET, 1024
).to_bytes()


def ciphered_initiate(
    request: InitiateRequest, ic: int = 1, keys: SecurityKeys | None = None
) -> bytes:
    keys = keys or SecurityKeys(GUEK, GAK)
    text = protect(keys, CLIENT_TITLE, ic, SC_AUTH_ENC, request.to_bytes())
    return CipheredApdu(0x21, SC_AUTH_ENC, ic, text).to_bytes()


def hls_aarq(user_information: bytes, **changes: object) -> Aarq:
    fields: dict[str, object] = {
        "context": ApplicationContext.LN_CIPHERED,
        "calling_ap_title": CLIENT_TITLE,
        "mechanism": Mechanism.HLS_GMAC,
        "calling_authentication_value": bytes(16),
        "user_information": user_information,
    }
    fields.update(changes)
    return Aarq(**fields)  # type: ignore[arg-type]


def associate_raw(aarq: bytes, client: int) -> Aare:
    meter = make_meter()
    reply = MemoryLink(meter.server, client).exchange(wrap(aarq, source=client))
    aare = Aare.from_bytes(reply)
    if aare.result is not AssociationResult.ACCEPTED:
        assert meter.server.state is State.IDLE
    return aare


GOOD_REQUEST = InitiateRequest(Conformance.GET | Conformance.SET | Conformance.ACTION, 1024)

CASES = [
    (
        16,
        Aarq(ApplicationContext.LN_CIPHERED, user_information=PLAIN_INITIATE),
        UserDiagnostic.APPLICATION_CONTEXT_NAME_NOT_SUPPORTED,
        None,
    ),
    (
        16,
        Aarq(
            ApplicationContext.LN,
            mechanism=Mechanism.LLS,
            calling_authentication_value=b"12345678",
            user_information=PLAIN_INITIATE,
        ),
        UserDiagnostic.AUTHENTICATION_MECHANISM_NAME_NOT_RECOGNISED,
        None,
    ),
    (
        16,
        Aarq(ApplicationContext.SN, user_information=PLAIN_INITIATE),
        UserDiagnostic.APPLICATION_CONTEXT_NAME_NOT_SUPPORTED,
        None,
    ),
    (
        16,
        Aarq(ApplicationContext.LN),
        UserDiagnostic.NO_REASON_GIVEN,
        ConfirmedServiceError.initiate(InitiateError.OTHER),
    ),
    (
        16,
        Aarq(
            ApplicationContext.LN,
            user_information=InitiateRequest(Conformance.GET, 1024, dlms_version=5).to_bytes(),
        ),
        UserDiagnostic.NO_REASON_GIVEN,
        ConfirmedServiceError.initiate(InitiateError.DLMS_VERSION_TOO_LOW),
    ),
    (
        16,
        Aarq(
            ApplicationContext.LN,
            user_information=InitiateRequest(Conformance.DATA_NOTIFICATION, 1024).to_bytes(),
        ),
        UserDiagnostic.NO_REASON_GIVEN,
        ConfirmedServiceError.initiate(InitiateError.INCOMPATIBLE_CONFORMANCE),
    ),
    (
        16,
        Aarq(
            ApplicationContext.LN, user_information=InitiateRequest(Conformance.GET, 20).to_bytes()
        ),
        UserDiagnostic.NO_REASON_GIVEN,
        ConfirmedServiceError.initiate(InitiateError.PDU_SIZE_TOO_SHORT),
    ),
    (
        1,
        Aarq(
            ApplicationContext.LN_CIPHERED,
            CLIENT_TITLE,
            user_information=ciphered_initiate(GOOD_REQUEST),
        ),
        UserDiagnostic.AUTHENTICATION_MECHANISM_NAME_REQUIRED,
        None,
    ),
    (
        1,
        hls_aarq(ciphered_initiate(GOOD_REQUEST), calling_ap_title=b"short"),
        UserDiagnostic.CALLING_AP_TITLE_NOT_RECOGNIZED,
        None,
    ),
    (
        1,
        hls_aarq(ciphered_initiate(GOOD_REQUEST), calling_authentication_value=b"1234567"),
        UserDiagnostic.AUTHENTICATION_FAILURE,
        None,
    ),
    (
        1,
        hls_aarq(GOOD_REQUEST.to_bytes()),
        UserDiagnostic.NO_REASON_GIVEN,
        ConfirmedServiceError.initiate(InitiateError.OTHER),
    ),
    (
        1,
        hls_aarq(
            ciphered_initiate(InitiateRequest(Conformance.GET, 1024, dedicated_key=bytes(16)))
        ),
        UserDiagnostic.NO_REASON_GIVEN,
        ConfirmedServiceError.initiate(InitiateError.OTHER),
    ),
    (
        1,
        hls_aarq(ciphered_initiate(GOOD_REQUEST, keys=SecurityKeys(GUEK, bytes(16)))),
        UserDiagnostic.NO_REASON_GIVEN,
        ConfirmedServiceError.deciphering(),
    ),
    (
        102,
        Aarq(ApplicationContext.LN, user_information=PLAIN_INITIATE),
        UserDiagnostic.NO_REASON_GIVEN,
        None,
    ),
]


@pytest.mark.parametrize(("client", "aarq", "diagnostic", "info"), CASES)
def test_aarq_refusals(
    client: int, aarq: Aarq, diagnostic: UserDiagnostic, info: ConfirmedServiceError | None
) -> None:
    aare = associate_raw(aarq.to_bytes(), client)
    assert aare.result is AssociationResult.REJECTED_PERMANENT
    assert aare.diagnostic == diagnostic
    assert aare.user_information == (None if info is None else info.to_bytes())


def test_malformed_aarq_is_refused() -> None:
    aare = associate_raw(b"\x60\x03\xa1\x01\x00", 16)
    assert (aare.result, aare.diagnostic) == (
        AssociationResult.REJECTED_PERMANENT,
        UserDiagnostic.NO_REASON_GIVEN,
    )


def test_second_aarq_inside_association_is_refused() -> None:
    meter = make_meter()
    link = MemoryLink(meter.server, 16)
    public_client(link).associate()
    aarq = Aarq(ApplicationContext.LN, user_information=PLAIN_INITIATE)
    aare = Aare.from_bytes(link.exchange(wrap(aarq.to_bytes())))
    assert aare.result is AssociationResult.REJECTED_PERMANENT
    assert meter.server.state is State.ASSOCIATED


class AboveLastSeen:
    """A stricter `FirstCounterPolicy` than the meter's (P3 §3.2.3 checks nothing): the first
    counter must exceed every counter seen before."""

    def __init__(self, last: int) -> None:
        self.last = last

    def accept_first(self, counter: int) -> bool:
        return counter > self.last

    def seen(self, counter: int) -> None:
        self.last = max(self.last, counter)


def test_a_first_counter_policy_that_refuses_is_honoured() -> None:
    meter = make_meter(first_counter=AboveLastSeen(last=500))
    link = MemoryLink(meter.server, 1)
    aarq = hls_aarq(ciphered_initiate(GOOD_REQUEST, ic=500))
    aare = Aare.from_bytes(link.exchange(wrap(aarq.to_bytes(), source=1)))
    assert aare.user_information == ConfirmedServiceError.deciphering().to_bytes()
    management_client(link, invocation_counter=501).associate()
    assert meter.server.state is State.ASSOCIATED


def test_release_before_association() -> None:
    meter = make_meter()
    reply = MemoryLink(meter.server, 16).exchange(wrap(b"\x62\x03\x80\x01\x00"))
    assert reply[0] == 0xD8


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([1, 16, 102]), st.binary(min_size=1, max_size=80))
def test_garbage_apdus_never_crash_the_core(client_sap: int, apdu: bytes) -> None:
    meter = make_meter()
    if client_sap != 102:
        link = MemoryLink(meter.server, client_sap)
        client = management_client(link) if client_sap == 1 else public_client(link)
        client.associate()
    events = meter.server.receive_data(wrap(apdu, source=client_sap))
    assert len(events) <= 3
    transmits = [e for e in events if isinstance(e, Transmit)]
    closes = [e for e in events if isinstance(e, CloseConnection)]
    assert len(transmits) + len(closes) <= 1
    if client_sap == 1 and not closes:
        # survived in the ciphered context only if the garbage was a well-formed request
        assert meter.server.state is State.ASSOCIATED


AARQS = st.builds(
    Aarq,
    context=st.sampled_from(list(ApplicationContext)),
    calling_ap_title=st.one_of(st.none(), st.binary(max_size=10)),
    mechanism=st.one_of(st.none(), st.integers(0, 255)),
    calling_authentication_value=st.one_of(st.none(), st.binary(max_size=70)),
    user_information=st.one_of(st.none(), st.binary(max_size=60)),
)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from([1, 16]), AARQS)
def test_any_aarq_gets_an_aare(client_sap: int, aarq: Aarq) -> None:
    meter = make_meter()
    link = MemoryLink(meter.server, client_sap)
    aare = Aare.from_bytes(link.exchange(wrap(aarq.to_bytes(), source=client_sap)))
    accepted = aare.result is AssociationResult.ACCEPTED
    assert accepted == (meter.server.state is not State.IDLE)
