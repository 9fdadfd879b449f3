"""AARQ evaluation: turns an AARQ into an AARE and, when accepted, a `Session`
(Green Book §9.4.2 AA establishment; DSMR P3 §2.1 clients, §3.2.2 mechanisms, §3.2.3
ciphered Initiate, §8.3 HLS mechanisms enabled on P3).
"""

from __future__ import annotations

from dataclasses import dataclass

from twin.p3.dlms.acse import (
    HLS_MECHANISMS,
    SECRET_MECHANISMS,
    Aare,
    Aarq,
    AssociationResult,
    Mechanism,
    UserDiagnostic,
)
from twin.p3.dlms.errors import ApduError, LocalP3Error, SecurityError
from twin.p3.dlms.initiate import (
    DLMS_VERSION,
    ConfirmedServiceError,
    Conformance,
    InitiateError,
    InitiateRequest,
    InitiateResponse,
)
from twin.p3.dlms.security import (
    GLO_TAG,
    MAX_INVOCATION_COUNTER,
    SC_AUTH_ENC,
    CipheredApdu,
    SecurityKeys,
    protect,
    unprotect,
)
from twin.p3.server.association import ClientPolicy, ServerConfig, Session, Trigger
from twin.p3.server.interfaces import ChallengeSource, CounterReservation, FirstCounterPolicy

_GLO_INITIATE_REQUEST = GLO_TAG[InitiateRequest.TAG]
_GLO_INITIATE_RESPONSE = GLO_TAG[InitiateResponse.TAG]
_CORE_SERVICES = Conformance.GET | Conformance.SET | Conformance.ACTION


@dataclass(frozen=True, slots=True)
class Establishment:
    aare: Aare
    session: Session | None = None  # None when rejected
    trigger: Trigger | None = None
    failed_login: bool = False  # refused for wrong credentials (P3 §4.2.1 event 46)


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

    def __init__(
        self,
        diagnostic: UserDiagnostic,
        info: ConfirmedServiceError | None,
        *,
        failed_login: bool = False,
    ) -> None:
        super().__init__(diagnostic.name)
        self.diagnostic = diagnostic
        self.info = info
        self.failed_login = failed_login


def _initiate_failure(error: InitiateError) -> _RejectError:
    return _RejectError(UserDiagnostic.NO_REASON_GIVEN, ConfirmedServiceError.initiate(error))


def _deciphering_failure() -> _RejectError:
    """The InitiateRequest does not decipher: wrong keys, a failed login."""
    info = ConfirmedServiceError.deciphering()
    return _RejectError(UserDiagnostic.NO_REASON_GIVEN, info, failed_login=True)


def evaluate_aarq(
    apdu: bytes,
    policy: ClientPolicy,
    *,
    config: ServerConfig,
    security: Security,
    challenges: ChallengeSource,
    first_counter: FirstCounterPolicy,
    enabled: frozenset[Mechanism] = frozenset({Mechanism.HLS_GMAC}),
) -> Establishment:
    """`enabled`: the HLS mechanisms enabled now (`MechanismPolicy`)."""
    try:
        aarq = Aarq.from_bytes(apdu)
        mechanism = _check_acse(aarq, policy, _usable(enabled, security.keys), config)
        session = Session(policy, Conformance.NONE, 0, mechanism)
        session.ctos = aarq.calling_authentication_value or b""
        request = _initiate_request(aarq, session, security, first_counter)
        _negotiate(request, session, config)
    except ApduError:
        return _rejected(policy, _RejectError(UserDiagnostic.NO_REASON_GIVEN, None))
    except _RejectError as reject:
        return _rejected(policy, reject)
    return _accepted(session, config, security, challenges)


def _rejected(policy: ClientPolicy, reject: _RejectError) -> Establishment:
    # A refusal carries no ciphered content: the keys may be exactly what went wrong.
    user_info = reject.info.to_bytes() if reject.info is not None else None
    result = AssociationResult.REJECTED_PERMANENT
    aare = Aare(policy.context, result, reject.diagnostic, user_information=user_info)
    return Establishment(aare, failed_login=reject.failed_login)


def _usable(enabled: frozenset[Mechanism], keys: SecurityKeys) -> frozenset[Mechanism]:
    # HLS 3 and 4 need the HLS secret (P3 §3.2.2); without one they cannot be offered.
    return enabled if keys.hls_secret else enabled - SECRET_MECHANISMS


def _check_acse(
    aarq: Aarq, policy: ClientPolicy, enabled: frozenset[Mechanism], config: ServerConfig
) -> Mechanism:
    if policy.pre_established:
        # P3 §2.1.2: client 102 is pre-established; it never sends an AARQ.
        raise _RejectError(UserDiagnostic.NO_REASON_GIVEN, None)
    if aarq.context != policy.context:
        raise _RejectError(UserDiagnostic.APPLICATION_CONTEXT_NAME_NOT_SUPPORTED, None)
    if aarq.mechanism is None and policy.authenticated:
        raise _RejectError(UserDiagnostic.AUTHENTICATION_MECHANISM_NAME_REQUIRED, None)
    mechanism = _mechanism(aarq.mechanism, policy, enabled)
    if mechanism in HLS_MECHANISMS:
        _check_hls(aarq, policy, mechanism, config.system_title)
    if aarq.user_information is None:
        raise _initiate_failure(InitiateError.OTHER)
    return mechanism


def _mechanism(
    requested: int | None, policy: ClientPolicy, enabled: frozenset[Mechanism]
) -> Mechanism:
    value = Mechanism.NONE if requested is None else requested
    usable = {m for m in policy.mechanisms if m not in HLS_MECHANISMS or m in enabled}
    if value not in usable:
        # P3 §3.2.2: no LLS/HLS2 ever, no-security for the public client only; P3 §8.3: an
        # HLS mechanism only while enabled on P3. A client that must log in failed to.
        raise _RejectError(
            UserDiagnostic.AUTHENTICATION_MECHANISM_NAME_NOT_RECOGNISED,
            None,
            failed_login=policy.authenticated,
        )
    return Mechanism(value)


def _check_hls(aarq: Aarq, policy: ClientPolicy, mechanism: Mechanism, server_title: bytes) -> None:
    # The calling-AP-title is the client system title: GMAC and ciphering need it.
    needs_title = policy.ciphered or mechanism is Mechanism.HLS_GMAC
    if needs_title and (aarq.calling_ap_title is None or len(aarq.calling_ap_title) != 8):
        raise _RejectError(UserDiagnostic.CALLING_AP_TITLE_NOT_RECOGNIZED, None)
    if needs_title and not _distinct_title(aarq.calling_ap_title or b"", server_title):
        # The GCM IV is system title || invocation counter (security suite 0, Green Book
        # §9.2) and both directions use the same GUEK: a client using the meter's own title
        # could make the two counters meet and reuse an IV (NIST SP 800-38D §8: fatal for
        # GCM). An all-zero title identifies no entity (a system title is unique per
        # entity). Such an AARQ is a failed login (P3 §4.2.1 event 46).
        raise _RejectError(UserDiagnostic.CALLING_AP_TITLE_NOT_RECOGNIZED, None, failed_login=True)
    challenge = aarq.calling_authentication_value or b""
    if not 8 <= len(challenge) <= 64:  # CtoS: 8..64 bytes (Green Book §9.2.7.4)
        raise _RejectError(UserDiagnostic.AUTHENTICATION_FAILURE, None)


def _distinct_title(title: bytes, server_title: bytes) -> bool:
    return title != server_title and any(title)


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
        raise _deciphering_failure()
    try:
        plain = unprotect(
            security.keys, title, ciphered.invocation_counter, SC_AUTH_ENC, ciphered.text
        )
    except SecurityError:
        raise _deciphering_failure() from None
    if not first_counter.accept_first(ciphered.invocation_counter):
        raise _deciphering_failure()
    first_counter.seen(ciphered.invocation_counter)
    session.client_system_title = title
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
    if session.mechanism not in HLS_MECHANISMS:
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
        mechanism=session.mechanism,
        responding_authentication_value=session.stoc,
        user_information=response,
    )
    return Establishment(aare, session, Trigger.ACCEPT_PENDING_HLS)
