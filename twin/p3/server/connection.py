"""The sans-IO DLMS/COSEM server of one TCP connection (DSMR P3 §3: wrapper over TCP).

Bytes in, events out::

    server = DlmsServer(config, objects, keys=..., counters=..., challenges=...,
                        mechanisms=...)  # which HLS mechanisms are enabled (P3 §8.3)
    for event in server.receive_data(chunk):   # Transmit / CloseConnection / Associated ...
        ...
    server.connection_lost()                    # socket gone: reset for the next connection

One association at a time per connection: while client X is associated (or HLS is pending),
APDUs from other client wPorts are discarded. The service layer enforces nb_of_sim_conn = 1
(P3 Table 3-1) by running one connection per meter; the pre-established client 102 needs no
AARQ and is answered whenever it asks (it can reach no object: P3 §2.1.2).
"""

from __future__ import annotations

from twin.p3.dlms.acse import Aare, AssociationResult, Mechanism, Rlre, Rlrq, UserDiagnostic
from twin.p3.dlms.errors import (
    ApduError,
    CounterExhaustedError,
    FramingError,
    SecurityError,
    UnknownApduError,
)
from twin.p3.dlms.initiate import (
    NOT_POSSIBLE,
    ExceptionResponse,
    InitiateRequest,
    InitiateResponse,
    ServiceError,
    StateError,
)
from twin.p3.dlms.security import GLO_TAG, PLAIN_TAG, CipheredApdu
from twin.p3.dlms.wrapper import DEFAULT_MAX_LENGTH, WrapperFramer, WrapperPdu
from twin.p3.server.association import (
    AssociationState,
    ClientPolicy,
    ServerConfig,
    Session,
    State,
    Trigger,
)
from twin.p3.server.establish import Security, evaluate_aarq
from twin.p3.server.events import (
    Associated,
    AuthenticationFailed,
    CloseConnection,
    CounterExhausted,
    Released,
    ServerEvent,
    Transmit,
)
from twin.p3.server.hls import HlsGate
from twin.p3.server.interfaces import (
    AlwaysAllowed,
    ChallengeSource,
    CosemObjects,
    CounterReservation,
    FirstCounterPolicy,
    FixedMechanisms,
    KeyProvider,
    LoginPolicy,
    MechanismPolicy,
    SpecFirstCounter,
)
from twin.p3.server.protection import (
    CIPHER_OVERHEAD,
    GENERAL_GLO,
    REQUEST_GLO_TAGS,
    decipher,
    protect_answer,
)
from twin.p3.server.services import ServiceProvider

AARQ_TAG = 0x60
RLRQ_TAG = 0x62
_PDU_TOO_LONG = ExceptionResponse(StateError.SERVICE_NOT_ALLOWED, ServiceError.PDU_TOO_LONG)
_UNKNOWN = ExceptionResponse(StateError.SERVICE_UNKNOWN, ServiceError.SERVICE_NOT_SUPPORTED)
_MALFORMED = ExceptionResponse(StateError.SERVICE_NOT_ALLOWED, ServiceError.OTHER_REASON)


class DlmsServer:
    def __init__(
        self,
        config: ServerConfig,
        objects: CosemObjects,
        *,
        keys: KeyProvider,
        counters: CounterReservation,
        challenges: ChallengeSource,
        first_counter: FirstCounterPolicy | None = None,
        mechanisms: MechanismPolicy | None = None,
        logins: LoginPolicy | None = None,
        max_frame: int = DEFAULT_MAX_LENGTH,
    ) -> None:
        self._config = config
        self._objects = objects
        self._keys = keys
        self._counters = counters
        self._challenges = challenges
        self._first = first_counter if first_counter is not None else SpecFirstCounter()
        self._mechanisms = mechanisms if mechanisms is not None else FixedMechanisms()
        self._logins = logins if logins is not None else AlwaysAllowed()
        self._max_frame = max_frame
        self._reset()

    def _reset(self) -> None:
        self._framer = WrapperFramer(self._max_frame)
        self._association = AssociationState()
        self._session: Session | None = None
        self._services = ServiceProvider(self._config)
        self._broadcast = ServiceProvider(self._config)
        self._closed = False

    @property
    def state(self) -> State:
        return self._association.state

    @property
    def client(self) -> int | None:
        """The client SAP of the current (or pending) association."""
        return None if self._session is None else self._session.client

    @property
    def client_system_title(self) -> bytes:
        """The calling-AP-title of the current (or pending) association; empty without one
        (or for a client that sent none). Security setup 0-0:43.0.0 attribute 4 shows it."""
        return b"" if self._session is None else self._session.client_system_title

    @property
    def mechanism(self) -> Mechanism | None:
        """The authentication mechanism of the current (or pending) association
        (association LN attribute 6 shows it)."""
        return None if self._session is None else self._session.mechanism

    def receive_data(self, data: bytes) -> list[ServerEvent]:
        """Feed received bytes; return what to do, in order. After `CloseConnection` all
        further input is ignored until `connection_lost()`."""
        if self._closed:
            return []
        try:
            pdus = self._framer.feed(data)
        except FramingError as exc:
            return self._abort(f"wrapper: {exc}")
        events: list[ServerEvent] = []
        for pdu in pdus:
            try:
                events += self._on_pdu(pdu)
            except CounterExhaustedError as exc:
                # No counter left to protect the answer: end the AA without a word, as for
                # any ciphering failure (P3 §3.2.3); never answer with a reused nonce.
                events += [CounterExhausted(), *self._abort(str(exc))]
            if self._closed:
                break
        return events

    def connection_lost(self) -> list[ServerEvent]:
        """The transport is gone: abort any association and get ready for a new one."""
        events: list[ServerEvent] = []
        if self._session is not None:
            events.append(Released(self._session.client, graceful=False))
        self._reset()
        return events

    # ---- dispatch ----------------------------------------------------------------------
    def _on_pdu(self, pdu: WrapperPdu) -> list[ServerEvent]:
        policy = self._config.clients.get(pdu.source)
        if pdu.destination != self._config.server_sap or policy is None:
            return []  # IEC 62056-47: PDUs for unknown wPorts are discarded
        if len(pdu.apdu) > self._config.max_receive_pdu_size:
            return self._reply(pdu.source, _PDU_TOO_LONG.to_bytes())  # P3 §2.1.3: 1024
        if not pdu.apdu:
            return self._reply(pdu.source, _MALFORMED.to_bytes())
        if policy.pre_established:
            return self._pre_established(policy, pdu.apdu)
        return self._route(policy, pdu)

    def _route(self, policy: ClientPolicy, pdu: WrapperPdu) -> list[ServerEvent]:
        if self._session is not None and self._session.client != policy.sap:
            return []  # one association at a time (see module docstring)
        tag = pdu.apdu[0]
        if tag == AARQ_TAG:
            return self._on_aarq(policy, pdu.apdu)
        if tag == RLRQ_TAG:
            return self._on_rlrq(pdu.source, pdu.apdu)
        return self._on_xdlms(pdu.source, pdu.apdu)

    def _reply(self, client: int, apdu: bytes) -> list[ServerEvent]:
        pdu = WrapperPdu(self._config.server_sap, client, apdu)
        return [Transmit(pdu.to_bytes())]

    def _security(self) -> Security:
        return Security(self._keys.keys(), self._config.system_title, self._counters)

    def _fire(self, trigger: Trigger) -> State:
        state = self._association.fire(trigger)
        if state is State.IDLE:
            self._session = None
            self._services.reset()
        return state

    def _abort(self, reason: str) -> list[ServerEvent]:
        """P3 §3.2.3: release the AA immediately and send no error."""
        events: list[ServerEvent] = []
        if self._session is not None:
            events.append(Released(self._session.client, graceful=False))
            self._fire(Trigger.ABORT)
        self._closed = True
        events.append(CloseConnection(reason))
        return events

    # ---- ACSE --------------------------------------------------------------------------
    def _on_aarq(self, policy: ClientPolicy, apdu: bytes) -> list[ServerEvent]:
        if self._association.state is not State.IDLE:
            refusal = Aare(
                policy.context, AssociationResult.REJECTED_PERMANENT, UserDiagnostic.NO_REASON_GIVEN
            )
            return self._reply(policy.sap, refusal.to_bytes())
        if policy.authenticated and not self._logins.login_allowed():
            # Locked out after failed logins: refused unread (no deciphering, no event),
            # rejected-transient because the same AARQ may succeed later (Green Book §9.4.2).
            refusal = Aare(
                policy.context, AssociationResult.REJECTED_TRANSIENT, UserDiagnostic.NO_REASON_GIVEN
            )
            return self._reply(policy.sap, refusal.to_bytes())
        try:
            done = evaluate_aarq(
                apdu,
                policy,
                config=self._config,
                security=self._security(),
                challenges=self._challenges,
                first_counter=self._first,
                enabled=self._mechanisms.enabled_mechanisms(),
            )
        except CounterExhaustedError:
            # The AARE cannot carry a ciphered InitiateResponse: refuse (in clear, nothing
            # ciphered) until a new GUEK restarts the counter.
            refusal = Aare(
                policy.context, AssociationResult.REJECTED_PERMANENT, UserDiagnostic.NO_REASON_GIVEN
            )
            return [*self._reply(policy.sap, refusal.to_bytes()), CounterExhausted()]
        events = self._reply(policy.sap, done.aare.to_bytes())
        if done.failed_login:
            events.append(AuthenticationFailed(policy.sap))
        if done.session is None or done.trigger is None:
            return events
        self._session = done.session
        self._services.reset()
        if self._fire(done.trigger) is State.ASSOCIATED:
            events.append(Associated(policy.sap))
        return events

    def _on_rlrq(self, source: int, apdu: bytes) -> list[ServerEvent]:
        session = self._session
        if session is None:
            return self._reply(source, NOT_POSSIBLE.to_bytes())
        security = self._security()
        try:
            rlrq = Rlrq.from_bytes(apdu)
            info = self._release_info(session, rlrq, security)
        except (ApduError, SecurityError) as exc:
            if session.policy.ciphered:
                return self._abort(f"RLRQ: {exc}")
            return self._reply(session.client, _MALFORMED.to_bytes())
        events = self._reply(session.client, Rlre(0, info).to_bytes())
        self._fire(Trigger.RELEASE)
        return [*events, Released(session.client, graceful=True)]

    def _release_info(self, session: Session, rlrq: Rlrq, security: Security) -> bytes | None:
        response = InitiateResponse(session.conformance, self._config.max_receive_pdu_size)
        if rlrq.user_information is None:
            # A plain RLRQ (Gurux's default, 62 03 80 01 00) is answered with a plain RLRE,
            # also in a ciphered AA. Green Book §9.3.3 (AA release, as amended in P3 Annex
            # C): the user-information of the RLRQ is optional; *if* it carries an
            # xDLMS-Initiate.request in a ciphered context, that one is authenticated and
            # encrypted (P3 §3.2.3 item 3), and only then does the RLRE carry a ciphered
            # InitiateResponse. The RLRE without user-information discloses nothing, and
            # ending the AA grants a forger nothing that closing TCP or one out-of-sequence
            # frame (a silent release, P3 §3.2.3) would not.
            return None
        if not session.policy.ciphered:
            return response.to_bytes()
        # P3 §3.2.3 item 3: the RLRQ's InitiateRequest is authenticated and encrypted.
        raw = rlrq.user_information
        if not raw or raw[0] != GLO_TAG[InitiateRequest.TAG]:
            raise SecurityError("RLRQ of a ciphered association without glo-InitiateRequest")
        decipher(session, raw, security, pending_hls=False, first_counter=self._first)
        return security.cipher(GLO_TAG[InitiateResponse.TAG], response.to_bytes())

    # ---- xDLMS -------------------------------------------------------------------------
    def _on_xdlms(self, source: int, apdu: bytes) -> list[ServerEvent]:
        session = self._session
        if session is None:
            # No AA: nothing but an AARQ is acceptable here.
            return self._reply(source, NOT_POSSIBLE.to_bytes())
        security = self._security()
        if not session.policy.ciphered:
            if apdu[0] == GENERAL_GLO or apdu[0] in PLAIN_TAG:
                return self._reply(session.client, NOT_POSSIBLE.to_bytes())
            return self._serve(session, apdu, None, security)
        if apdu[0] != GENERAL_GLO and apdu[0] not in REQUEST_GLO_TAGS:
            # P3 §3.2.3 items 1-2: everything in the ciphered context is protected.
            return self._abort("unprotected APDU in a ciphered association")
        floor = session.next_client_ic
        try:
            plain, ciphered = decipher(
                session,
                apdu,
                security,
                # HLS pass 3 outstanding: the frame with f(StoC) may skip one counter. Gurux
                # does for every mechanism (with GMAC, f(StoC) carries the skipped value).
                pending_hls=self.state is State.AWAITING_HLS,
                first_counter=self._first,
            )
        except (ApduError, SecurityError) as exc:
            return self._abort(str(exc))
        return self._serve(session, plain, ciphered, security, floor)

    def _serve(
        self,
        session: Session,
        plain: bytes,
        ciphered: CipheredApdu | None,
        security: Security,
        floor: int | None = None,
    ) -> list[ServerEvent]:
        gate = None
        if self.state is State.AWAITING_HLS:
            counters = None
            if ciphered is not None and floor is not None:
                counters = (floor, ciphered.invocation_counter)
            gate = HlsGate(session, security, counters)
        objects: CosemObjects = gate if gate is not None else self._objects
        overhead = 0 if ciphered is None else CIPHER_OVERHEAD
        answer = self._answer(self._services, session, objects, plain, overhead)
        events: list[ServerEvent] = []
        if answer is not None:
            if ciphered is not None:
                answer = protect_answer(answer, ciphered.tag == GENERAL_GLO, security)
            events = self._reply(session.client, answer)
        if gate is not None and gate.passed is not None:
            events += self._hls_done(session.client, gate.passed)
        return events

    @staticmethod
    def _answer(
        services: ServiceProvider,
        session: Session,
        objects: CosemObjects,
        plain: bytes,
        overhead: int,
    ) -> bytes | None:
        try:
            return services.serve(session, objects, plain, overhead)
        except UnknownApduError:
            return _UNKNOWN.to_bytes()
        except ApduError:
            return _MALFORMED.to_bytes()

    def _hls_done(self, client: int, passed: bool) -> list[ServerEvent]:
        if passed:
            self._fire(Trigger.HLS_PASSED)
            return [Associated(client)]
        self._fire(Trigger.HLS_FAILED)
        return [AuthenticationFailed(client)]

    def _pre_established(self, policy: ClientPolicy, apdu: bytes) -> list[ServerEvent]:
        if apdu[0] == AARQ_TAG:
            refusal = Aare(
                policy.context, AssociationResult.REJECTED_PERMANENT, UserDiagnostic.NO_REASON_GIVEN
            )
            return self._reply(policy.sap, refusal.to_bytes())
        if apdu[0] == RLRQ_TAG:
            return self._reply(policy.sap, NOT_POSSIBLE.to_bytes())
        session = Session(policy, policy.conformance, self._config.max_receive_pdu_size)
        answer = self._answer(self._broadcast, session, self._objects, apdu, 0)
        return [] if answer is None else self._reply(policy.sap, answer)
