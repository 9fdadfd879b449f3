"""ACSE and Initiate codecs: round trips, and agreement with dlms-cosem's encoder."""

from __future__ import annotations

import pytest
from dlms_cosem import enumerations
from dlms_cosem.protocol import acse as dc_acse
from dlms_cosem.protocol import xdlms as dc_xdlms

from twin.p3.dlms.acse import (
    Aare,
    Aarq,
    ApplicationContext,
    AssociationResult,
    Mechanism,
    Rlre,
    Rlrq,
    UserDiagnostic,
)
from twin.p3.dlms.errors import ApduError
from twin.p3.dlms.initiate import (
    ConfirmedServiceError,
    Conformance,
    ExceptionResponse,
    InitiateError,
    InitiateRequest,
    InitiateResponse,
    ServiceError,
    StateError,
)

# Green Book-style public AARQ: LN context, no authentication, InitiateRequest
AARQ_PUBLIC = bytes.fromhex("601DA109060760857405080101BE10040E01000000065F1F0400001E1DFFFF")
CONFORMANCE = Conformance.GET | Conformance.SET | Conformance.ACTION | Conformance.SELECTIVE_ACCESS


def test_public_aarq_decodes() -> None:
    aarq = Aarq.from_bytes(AARQ_PUBLIC)
    assert aarq.context == ApplicationContext.LN
    assert aarq.mechanism is None
    request = InitiateRequest.from_bytes(aarq.user_information or b"")
    assert request.client_max_receive_pdu_size == 0xFFFF
    assert Conformance.GET in request.proposed_conformance
    assert Conformance.BLOCK_TRANSFER_WITH_GET in request.proposed_conformance
    assert aarq.to_bytes() == AARQ_PUBLIC


def test_hls_aarq_matches_dlms_cosem() -> None:
    initiate = dc_xdlms.InitiateRequest(
        proposed_conformance=dc_xdlms.Conformance(get=True, set=True, action=True),
        client_max_receive_pdu_size=512,
    )
    theirs = dc_acse.ApplicationAssociationRequest(
        ciphered=True,
        system_title=b"ABCDEFGH",
        authentication=enumerations.AuthenticationMechanism.HLS_GMAC,
        authentication_value=bytes(range(32)),
        user_information=dc_acse.UserInformation(content=initiate),
    ).to_bytes()
    ours = Aarq(
        ApplicationContext.LN_CIPHERED,
        b"ABCDEFGH",
        Mechanism.HLS_GMAC,
        bytes(range(32)),
        InitiateRequest(Conformance.GET | Conformance.SET | Conformance.ACTION, 512).to_bytes(),
    )
    assert Aarq.from_bytes(theirs) == ours
    assert ours.to_bytes() == theirs


def test_aare_round_trip_and_dlms_cosem_parses_it() -> None:
    ui = InitiateResponse(CONFORMANCE, 1024).to_bytes()
    aare = Aare(
        ApplicationContext.LN_CIPHERED,
        AssociationResult.ACCEPTED,
        UserDiagnostic.AUTHENTICATION_REQUIRED,
        responding_ap_title=b"KFM\x10\x20\x00\x00\x01",
        mechanism=Mechanism.HLS_GMAC,
        responding_authentication_value=bytes(16),
        user_information=ui,
    )
    assert Aare.from_bytes(aare.to_bytes()) == aare
    theirs = dc_acse.ApplicationAssociationResponse.from_bytes(aare.to_bytes())
    assert theirs.system_title == b"KFM\x10\x20\x00\x00\x01"
    assert theirs.authentication == enumerations.AuthenticationMechanism.HLS_GMAC
    assert theirs.user_information.content.server_max_receive_pdu_size == 1024


def test_rejected_aare_with_confirmed_service_error() -> None:
    cse = ConfirmedServiceError.deciphering()
    aare = Aare(
        ApplicationContext.LN,
        AssociationResult.REJECTED_PERMANENT,
        1,
        user_information=cse.to_bytes(),
    )
    assert Aare.from_bytes(aare.to_bytes()) == aare
    theirs = dc_acse.ApplicationAssociationResponse.from_bytes(aare.to_bytes())
    assert theirs.result == enumerations.AssociationResult.REJECTED_PERMANENT
    error = theirs.user_information.content.error
    assert error == enumerations.ApplicationReferenceError.DECIPHERING_ERROR
    assert ConfirmedServiceError.from_bytes(cse.to_bytes()) == cse


def test_release_round_trips() -> None:
    rlrq = Rlrq(0, InitiateRequest(CONFORMANCE, 1024).to_bytes())
    assert Rlrq.from_bytes(rlrq.to_bytes()) == rlrq
    rlre = Rlre(0, InitiateResponse(CONFORMANCE, 1024).to_bytes())
    assert Rlre.from_bytes(rlre.to_bytes()) == rlre
    theirs = dc_acse.ReleaseResponse.from_bytes(rlre.to_bytes())
    assert theirs.reason == enumerations.ReleaseResponseReason.NORMAL
    assert Rlrq.from_bytes(b"\x62\x00") == Rlrq()


def test_initiate_round_trips() -> None:
    request = InitiateRequest(CONFORMANCE, 1200, dedicated_key=bytes(16), quality_of_service=1)
    assert InitiateRequest.from_bytes(request.to_bytes()) == request
    response = InitiateResponse(CONFORMANCE, 1024)
    assert response.to_bytes() == bytes.fromhex("0800065F1F040000001D04000007")
    assert InitiateResponse.from_bytes(response.to_bytes()) == response
    theirs = dc_xdlms.InitiateResponse.from_bytes(response.to_bytes())
    assert theirs.negotiated_conformance.selective_access


def test_exception_response_round_trip() -> None:
    for value in (
        ExceptionResponse(StateError.SERVICE_NOT_ALLOWED, ServiceError.PDU_TOO_LONG),
        ExceptionResponse(StateError.SERVICE_UNKNOWN, ServiceError.INVOCATION_COUNTER_ERROR, 7),
    ):
        assert ExceptionResponse.from_bytes(value.to_bytes()) == value
    assert ConfirmedServiceError.initiate(
        InitiateError.PDU_SIZE_TOO_SHORT
    ).to_bytes() == bytes.fromhex("0E010603")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x60",
        b"\x60\x05\xa1\x03\x06\x01\x00",
        AARQ_PUBLIC[:-1],
        AARQ_PUBLIC + b"\x00",
        b"\x60\x03\x8b\x01\x00",
        b"\x60\x84\x00\x00\x00\x00",
        bytes.fromhex("600BA109060760857405080201"),  # mechanism arc used as context
    ],
)
def test_bad_aarq_raises_apdu_error(data: bytes) -> None:
    with pytest.raises(ApduError):
        Aarq.from_bytes(data)


@pytest.mark.parametrize(
    "data", [b"", b"\x01", b"\x01\x00\x00\x00\x06\x5f\x1f\x04\x00", b"\x08\x00"]
)
def test_truncated_initiate_raises_apdu_error(data: bytes) -> None:
    with pytest.raises(ApduError):
        InitiateRequest.from_bytes(data) if data[:1] != b"\x08" else InitiateResponse.from_bytes(
            data
        )
