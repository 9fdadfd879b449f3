"""Sans-IO DLMS/COSEM server core for the DSMR 4.2.2 P3 port (COSEM wrapper over TCP).

No I/O, no clock, no randomness: the service layer feeds bytes into `DlmsServer` and acts on
the events it returns; keys, invocation counters, challenges and the object model come in
through the Protocols in `twin.p3.interfaces`.

Layers (one module each): `wrapper` (IEC 62056-47 framing) -> `acse` / `initiate` (AARQ,
AARE, RLRQ, RLRE, InitiateRequest/Response) -> `security` (suite 0 AES-GCM, glo-ciphering,
HLS-GMAC, RFC 3394 unwrap) -> `establish` + `hls` + `association` (client policies of P3 §2.1,
state table) -> `get` / `set_action` / `services` / `set_service` (xDLMS, block transfer) ->
`protection` (frame-counter rule, answer ciphering) -> `server`. `counters.BlockReservation`
turns a persist callback into a `CounterReservation`.

Decisions where the texts leave room (each is also commented where it is implemented):

- First client frame counter of an AA: not validated (P3 §3.2.3); `MonotonicFirstCounter`
  is the opt-in "strictly above the last one seen" variant.
- Frame counter not exactly +1, wrong security control, wrong system title, a tag that does
  not verify, an unprotected APDU or RLRQ in the ciphered AA: silent release
  (`Released(graceful=False)` + `CloseConnection`, nothing sent; P3 §3.2.3).
- Wrong GUEK/GAK already at the AARQ: there is no AA to release yet, so the AARQ is refused
  (AARE rejected-permanent, no-reason-given, plain ConfirmedServiceError
  application-reference/deciphering-error) and `AuthenticationFailed` is emitted.
- HLS-GMAC: f(StoC) may use the frame's own counter (dlms-cosem) or the one just before it
  (Gurux); a failed f(StoC) gets action-result read-write-denied and the AA falls back idle.
- Unknown APDU: ExceptionResponse service-unknown; undecodable request: service-not-allowed /
  other-reason; service outside the negotiated conformance: service-not-supported; no AA or
  more than 16 with-list items: operation-not-possible; APDU over 1024 bytes: pdu-too-long.
"""

from __future__ import annotations

from twin.p3.association import (
    DSMR_CLIENTS,
    MANAGEMENT_CLIENT,
    PRE_ESTABLISHED_CLIENT,
    PUBLIC_CLIENT,
    ClientPolicy,
    ServerConfig,
    State,
)
from twin.p3.cosem import ActionResult, AttributeRef, DataAccessResult, SelectiveAccess
from twin.p3.counters import BlockReservation
from twin.p3.errors import LocalP3Error, P3Error, RemoteP3Error
from twin.p3.events import (
    Associated,
    AuthenticationFailed,
    CloseConnection,
    Released,
    ServerEvent,
    Transmit,
)
from twin.p3.interfaces import (
    ActionOutcome,
    ChallengeSource,
    CosemObjects,
    CounterReservation,
    FirstCounterPolicy,
    KeyProvider,
    MonotonicFirstCounter,
    SpecFirstCounter,
)
from twin.p3.security import SecurityKeys, unwrap_key
from twin.p3.server import DlmsServer

__all__ = [
    "DSMR_CLIENTS",
    "MANAGEMENT_CLIENT",
    "PRE_ESTABLISHED_CLIENT",
    "PUBLIC_CLIENT",
    "ActionOutcome",
    "ActionResult",
    "Associated",
    "AttributeRef",
    "AuthenticationFailed",
    "BlockReservation",
    "ChallengeSource",
    "ClientPolicy",
    "CloseConnection",
    "CosemObjects",
    "CounterReservation",
    "DataAccessResult",
    "DlmsServer",
    "FirstCounterPolicy",
    "KeyProvider",
    "LocalP3Error",
    "MonotonicFirstCounter",
    "P3Error",
    "Released",
    "RemoteP3Error",
    "SecurityKeys",
    "SelectiveAccess",
    "ServerConfig",
    "ServerEvent",
    "SpecFirstCounter",
    "State",
    "Transmit",
    "unwrap_key",
]
