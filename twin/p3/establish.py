"""AARQ evaluation: turns an AARQ into an AARE and, when accepted, a `Session`
(Green Book §9.4.2 AA establishment; DSMR P3 §2.1 clients, §3.2.3 ciphered Initiate).
"""

from __future__ import annotations

from dataclasses import dataclass

from twin.p3.acse import Aare, Aarq, AssociationResult, Mechanism, UserDiagnostic
from twin.p3.association import ClientPolicy, ServerConfig, Session, Trigger
from twin.p3.errors import ApduError, LocalP3Error, SecurityError
from twin.p3.initiate import (
    DLMS_VERSION,
    ConfirmedServiceError,
    Conformance,
    InitiateError,
    InitiateRequest,
    InitiateResponse,
)
from twin.p3.interfaces import ChallengeSource, CounterReservation, FirstCounterPolicy
from twin.p3.security import (
    GLO_TAG,
    MAX_INVOCATION_COUNTER,
    SC_AUTH_ENC,
    CipheredApdu,
    SecurityKeys,
    protect,
    unprotect,
)

_GLO_INITIATE_REQUEST = GLO_TAG[InitiateRequest.TAG]
_GLO_INITIATE_RESPONSE = GLO_TAG[InitiateResponse.TAG]
_CORE_SERVICES = Conformance.GET | Conformance.SET | Conformance.ACTION


@dataclass(frozen=True, slots=True)
class Establishment:
    aare: Aare
    session: Session | None = None  # None when rejected
    trigger: Trigger | None = None


@dataclass(frozen=True, slots=True)
class Security:
    """Everything ciphering needs for one request: keys snapshot and counter source."""

    keys: SecurityKeys
    system_title: bytes
    counters: CounterReservation

    def next_ic(self) -> int:
        ic = self.counters.next_invocation_counter()
        if not 0 <= ic <= MAX_INVOCATION_COUNTER:
            raise LocalP3Error(f"counter store returned {ic}, outside 32 bits")
        return ic

    def cipher(self, glo_tag: int, plain: bytes, general: bool = False) -> bytes:
        ic = self.next_ic()
        text = protect(self.keys, self.system_title, ic, SC_AUTH_ENC, plain)
        title = self.system_title if general else None
        return CipheredApdu(glo_tag, SC_AUTH_ENC, ic, text, title).to_bytes()


class _RejectError(Exception):
    """Control flow inside this module only: the AARQ is refused."""

    def __init__(self, diagnostic: UserDiagnostic, info: ConfirmedServiceError | None) -> None:
        super().__init__(diagnostic.name)
        self.diagnostic = diagnostic
        self.info = info


def _initiate_failure(error: InitiateError) -> _RejectError:
    return _RejectError(UserDiagnostic.NO_REASON_GIVEN, ConfirmedServiceError.initiate(error))


def evaluate_aarq(
    apdu: bytes,
    policy: ClientPolicy,
    *,
    config: ServerConfig,
    security: Security,
    challenges: ChallengeSource,
    first_counter: FirstCounterPolicy,
) -> Establishment:
    try:
        aarq = Aarq.from_bytes(apdu)
        _check_acse(aarq, policy)
        session = Session(policy, Conformance.NONE, 0)
        request = _initiate_request(aarq, session, security, first_counter)
        _negotiate(request, session, config)
    except ApduError:
        return _rejected(policy, UserDiagnostic.NO_REASON_GIVEN, None)
    except _RejectError as reject:
        return _rejected(policy, reject.diagnostic, reject.info)
    return _accepted(session, config, security, challenges)


def _rejected(
    policy: ClientPolicy, diagnostic: UserDiagnostic, info: ConfirmedServiceError | None
) -> Establishment:
    # A refusal carries no ciphered content: the keys may be exactly what went wrong.
    user_info = info.to_bytes() if info is not None else None
    result = AssociationResult.REJECTED_PERMANENT
    return Establishment(Aare(policy.context, result, diagnostic, user_information=user_info))


def _check_acse(aarq: Aarq, policy: ClientPolicy) -> None:
    if policy.pre_established:
        # P3 §2.1.2: client 102 is pre-established; it never sends an AARQ.
        raise _RejectError(UserDiagnostic.NO_REASON_GIVEN, None)
    if aarq.context != policy.context:
        raise _RejectError(UserDiagnostic.APPLICATION_CONTEXT_NAME_NOT_SUPPORTED, None)
    mechanism = Mechanism.NONE if aarq.mechanism is None else aarq.mechanism
    if policy.mechanism is Mechanism.HLS_GMAC and aarq.mechanism is None:
        raise _RejectError(UserDiagnostic.AUTHENTICATION_MECHANISM_NAME_REQUIRED, None)
    if mechanism != policy.mechanism:
        # P3 §3.2.2: no LLS/HLS2 ever; no-security for the public client only.
        raise _RejectError(UserDiagnostic.AUTHENTICATION_MECHANISM_NAME_NOT_RECOGNISED, None)
    if policy.mechanism is Mechanism.HLS_GMAC:
        if aarq.calling_ap_title is None or len(aarq.calling_ap_title) != 8:
            raise _RejectError(UserDiagnostic.CALLING_AP_TITLE_NOT_RECOGNIZED, None)
        challenge = aarq.calling_authentication_value or b""
        if not 8 <= len(challenge) <= 64:
            raise _RejectError(UserDiagnostic.AUTHENTICATION_FAILURE, None)
    if aarq.user_information is None:
        raise _initiate_failure(InitiateError.OTHER)


def _initiate_request(
    aarq: Aarq, session: Session, security: Security, first_counter: FirstCounterPolicy
) -> InitiateRequest:
    raw = aarq.user_information or b""
    if not session.policy.ciphered:
        return InitiateRequest.from_bytes(raw)
    # P3 §3.2.3 item 3: the InitiateRequest in the AARQ shall be authenticated+encrypted.
    if not raw or raw[0] != _GLO_INITIATE_REQUEST:
        raise _initiate_failure(InitiateError.OTHER)
    ciphered = CipheredApdu.from_bytes(raw)
    title = aarq.calling_ap_title or b""
    if ciphered.security_control != SC_AUTH_ENC:
        raise _RejectError(UserDiagnostic.NO_REASON_GIVEN, ConfirmedServiceError.deciphering())
    try:
        plain = unprotect(
            security.keys, title, ciphered.invocation_counter, SC_AUTH_ENC, ciphered.text
        )
    except SecurityError:
        raise _RejectError(
            UserDiagnostic.NO_REASON_GIVEN, ConfirmedServiceError.deciphering()
        ) from None
    if not first_counter.accept_first(ciphered.invocation_counter):
        raise _RejectError(UserDiagnostic.NO_REASON_GIVEN, ConfirmedServiceError.deciphering())
    first_counter.seen(ciphered.invocation_counter)
    session.client_system_title = title
    session.ctos = aarq.calling_authentication_value or b""
    session.next_client_ic = ciphered.invocation_counter + 1
    request = InitiateRequest.from_bytes(plain)
    if request.dedicated_key is not None:
        raise _initiate_failure(InitiateError.OTHER)  # P3 §3.2.3 item 5: global keys only
    return request


def _negotiate(request: InitiateRequest, session: Session, config: ServerConfig) -> None:
    if request.dlms_version < DLMS_VERSION:
        raise _initiate_failure(InitiateError.DLMS_VERSION_TOO_LOW)
    negotiated = request.proposed_conformance & session.policy.conformance
    if not negotiated & _CORE_SERVICES:
        raise _initiate_failure(InitiateError.INCOMPATIBLE_CONFORMANCE)
    if request.client_max_receive_pdu_size < config.min_client_pdu_size:
        raise _initiate_failure(InitiateError.PDU_SIZE_TOO_SHORT)
    session.conformance = Conformance(negotiated)
    session.client_max_pdu = request.client_max_receive_pdu_size


def _accepted(
    session: Session, config: ServerConfig, security: Security, challenges: ChallengeSource
) -> Establishment:
    policy = session.policy
    response = InitiateResponse(session.conformance, config.max_receive_pdu_size).to_bytes()
    if policy.ciphered:
        response = security.cipher(_GLO_INITIATE_RESPONSE, response)
    if policy.mechanism is not Mechanism.HLS_GMAC:
        aare = Aare(policy.context, AssociationResult.ACCEPTED, user_information=response)
        return Establishment(aare, session, Trigger.ACCEPT)
    session.stoc = challenges.challenge(config.challenge_length)
    if len(session.stoc) != config.challenge_length:
        raise LocalP3Error("challenge source returned the wrong length")
    aare = Aare(
        policy.context,
        AssociationResult.ACCEPTED,
        UserDiagnostic.AUTHENTICATION_REQUIRED,  # Green Book: HLS pass 3/4 follows
        responding_ap_title=config.system_title,
        mechanism=Mechanism.HLS_GMAC,
        responding_authentication_value=session.stoc,
        user_information=response,
    )
    return Establishment(aare, session, Trigger.ACCEPT_PENDING_HLS)
